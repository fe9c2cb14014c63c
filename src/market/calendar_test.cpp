#include "market/calendar.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <map>
#include <random>
#include <thread>

namespace headroom::market {
namespace {

// 2026-01-01T00:00:00Z, a whole hour.
constexpr Timestamp kT0 = Timestamp::from_unix_seconds(1'767'225'600);
constexpr std::int64_t kMicrosPerMinute = 60'000'000;

constexpr Timestamp hour(std::int64_t n) { return kT0.plus_micros(n * kMicrosPerHour); }

std::unique_ptr<CapacityCalendar> make(std::vector<CalendarType> types, std::vector<ForecastEntry> forecast,
                                       std::int32_t horizon_hours, Timestamp origin = kT0) {
  auto calendar = CapacityCalendar::create(std::move(types), std::move(forecast), origin, horizon_hours);
  EXPECT_TRUE(calendar.is_ok()) << calendar.status().to_string();
  return std::move(calendar).value();
}

Block block(std::string id, std::string gpu_type, std::uint32_t gpus, std::int64_t start_hour, std::int64_t end_hour) {
  return Block{std::move(id), std::move(gpu_type), gpus, hour(start_hour), hour(end_hour)};
}

std::vector<std::uint32_t> free_hours(const CapacityCalendar& calendar, std::string_view gpu_type, std::int64_t from,
                                      std::int64_t to) {
  std::vector<std::uint32_t> out;
  Status s = calendar.free_by_hour(gpu_type, hour(from), hour(to), out);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return out;
}

// An error's code and that its message starts with the field it names.
void expect_error(const Status& s, ErrorCode code, std::string_view field) {
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_EQ(s.message().rfind(std::string(field), 0), 0u) << s.to_string() << " should name " << field;
}

TEST(SnapToHours, RoundsStartDownAndEndUp) {
  auto w = snap_to_hours(kT0.plus_micros(30 * kMicrosPerMinute), kT0.plus_micros(90 * kMicrosPerMinute));
  ASSERT_TRUE(w.is_ok());
  EXPECT_EQ(w->first, hour(0));
  EXPECT_EQ(w->second, hour(2));

  auto aligned = snap_to_hours(hour(3), hour(5));
  ASSERT_TRUE(aligned.is_ok());
  EXPECT_EQ(aligned->first, hour(3));
  EXPECT_EQ(aligned->second, hour(5));

  // One microsecond inside an hour still takes the whole hour.
  auto tiny = snap_to_hours(hour(4).plus_micros(1), hour(4).plus_micros(2));
  ASSERT_TRUE(tiny.is_ok());
  EXPECT_EQ(tiny->first, hour(4));
  EXPECT_EQ(tiny->second, hour(5));

  // Before 1970 the rounding still goes down and up.
  auto old = snap_to_hours(Timestamp{-kMicrosPerHour - 1}, Timestamp{-1});
  ASSERT_TRUE(old.is_ok());
  EXPECT_EQ(old->first.unix_micros, -2 * kMicrosPerHour);
  EXPECT_EQ(old->second.unix_micros, 0);

  expect_error(snap_to_hours(hour(2), hour(2)).status(), ErrorCode::kInvalidArgument, "end");
  expect_error(snap_to_hours(hour(3), hour(2)).status(), ErrorCode::kInvalidArgument, "end");
  expect_error(snap_to_hours(hour(0), Timestamp{std::numeric_limits<std::int64_t>::max()}).status(),
               ErrorCode::kInvalidArgument, "end");
}

TEST(CapacityCalendar, QuoteBookReleaseArithmetic) {
  // 100 GPUs, 10 kept as a buffer, 20 forecast internally over hours 5..9.
  auto cal = make({{"h100", 100, 10}}, {{"h100", hour(5), hour(10), 20}}, 48);
  ASSERT_TRUE(cal);

  auto q = cal->quote("h100", 1, hour(0), hour(24));
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->available, 70u);  // 100 - 10 - 20
  EXPECT_EQ(q->tightest_hour, hour(5));
  EXPECT_TRUE(q->fits);
  EXPECT_EQ(cal->quote("h100", 1, hour(0), hour(5))->available, 90u);

  ASSERT_TRUE(cal->book(block("a", "h100", 30, 0, 8)).is_ok());
  EXPECT_EQ(cal->quote("h100", 1, hour(0), hour(24))->available, 40u);  // hour 5: 70 - 30
  EXPECT_EQ(cal->quote("h100", 1, hour(0), hour(5))->available, 60u);
  EXPECT_EQ(cal->quote("h100", 1, hour(0), hour(5))->tightest_hour, hour(0));
  EXPECT_EQ(cal->quote("h100", 1, hour(8), hour(10))->available, 70u);

  ASSERT_TRUE(cal->book(block("b", "h100", 40, 6, 7)).is_ok());
  q = cal->quote("h100", 1, hour(0), hour(24));
  EXPECT_EQ(q->available, 0u);  // hour 6: 100 - 10 - 20 - 30 - 40
  EXPECT_EQ(q->tightest_hour, hour(6));
  EXPECT_FALSE(q->fits);

  Status refused = cal->book(block("c", "h100", 1, 6, 7));
  EXPECT_EQ(refused.code(), ErrorCode::kConflict);
  EXPECT_NE(refused.message().find("0 GPUs"), std::string::npos) << refused.message();
  refused = cal->book(block("c", "h100", 41, 7, 9));
  EXPECT_EQ(refused.code(), ErrorCode::kConflict);
  EXPECT_EQ(refused.message().rfind("40 GPUs", 0), 0u) << refused.message();

  EXPECT_EQ(free_hours(*cal, "h100", 4, 11), (std::vector<std::uint32_t>{60, 40, 0, 40, 70, 70, 90}));

  ASSERT_TRUE(cal->release("b").is_ok());
  EXPECT_EQ(cal->quote("h100", 1, hour(0), hour(24))->available, 40u);
  EXPECT_EQ(cal->release("b").code(), ErrorCode::kNotFound);
  ASSERT_TRUE(cal->release("a").is_ok());
  EXPECT_EQ(free_hours(*cal, "h100", 4, 11), (std::vector<std::uint32_t>{90, 70, 70, 70, 70, 70, 90}));
  EXPECT_TRUE(cal->blocks().empty());

  // A quote snaps its window: 00:30..02:10 covers hours 0, 1 and 2.
  q = cal->quote("h100", 5, kT0.plus_micros(30 * kMicrosPerMinute), hour(2).plus_micros(10 * kMicrosPerMinute));
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->start, hour(0));
  EXPECT_EQ(q->end, hour(3));
}

TEST(CapacityCalendar, ForecastIsNeverSold) {
  // 10 GPUs, 2 buffered; the owner needs 5 in hours 2..3 and 3 more for a quarter of hour 10.
  auto cal =
      make({{"a100", 10, 2}},
           {{"a100", hour(2), hour(4), 5},
            {"a100", hour(10).plus_micros(15 * kMicrosPerMinute), hour(10).plus_micros(30 * kMicrosPerMinute), 3}},
           24);
  ASSERT_TRUE(cal);
  EXPECT_EQ(cal->quote("a100", 8, hour(0), hour(2))->available, 8u);
  EXPECT_EQ(cal->book(block("eats-forecast", "a100", 4, 1, 3)).code(), ErrorCode::kConflict);  // hour 2 has 3
  ASSERT_TRUE(cal->book(block("fits", "a100", 3, 1, 4)).is_ok());
  EXPECT_EQ(cal->book(block("one-more", "a100", 1, 3, 4)).code(), ErrorCode::kConflict);
  ASSERT_TRUE(cal->book(block("all-sellable", "a100", 8, 4, 10)).is_ok());
  // A forecast that meets an hour holds back the whole hour.
  EXPECT_EQ(cal->quote("a100", 1, hour(10), hour(11))->available, 5u);
  EXPECT_EQ(cal->book(block("hour-10", "a100", 6, 10, 11)).code(), ErrorCode::kConflict);
  EXPECT_EQ(free_hours(*cal, "a100", 0, 12), (std::vector<std::uint32_t>{8, 5, 0, 0, 0, 0, 0, 0, 0, 0, 5, 8}));
}

TEST(CapacityCalendar, OverlappingForecastEntriesAddUp) {
  auto cal = make({{"l4", 20, 0}}, {{"l4", hour(0), hour(6), 4}, {"l4", hour(3), hour(9), 5}}, 12);
  ASSERT_TRUE(cal);
  EXPECT_EQ(free_hours(*cal, "l4", 0, 10), (std::vector<std::uint32_t>{16, 16, 16, 11, 11, 11, 15, 15, 15, 20}));
}

TEST(CapacityCalendar, AdvanceKeepsRemainingHoursOfBookings) {
  // A forecast at hours 30..31 lies past the first horizon (0..23).
  auto cal = make({{"h100", 50, 0}}, {{"h100", hour(30), hour(32), 7}}, 24);
  ASSERT_TRUE(cal);
  ASSERT_TRUE(cal->book(block("long", "h100", 10, 2, 20)).is_ok());
  ASSERT_TRUE(cal->book(block("whole", "h100", 5, 0, 24)).is_ok());
  ASSERT_TRUE(cal->book(block("past-soon", "h100", 1, 0, 3)).is_ok());

  cal->advance(hour(5).plus_micros(30 * kMicrosPerMinute));
  EXPECT_EQ(cal->current_hour(), hour(5));
  EXPECT_EQ(cal->horizon_end(), hour(29));
  EXPECT_EQ(cal->blocks().size(), 2u);  // past-soon ended at hour 3
  std::vector<std::uint32_t> expected;
  for (int h = 5; h < 29; ++h) expected.push_back(h < 20 ? 35 : (h < 24 ? 45 : 50));
  EXPECT_EQ(free_hours(*cal, "h100", 5, 29), expected);

  // Idempotent, and never backwards.
  cal->advance(hour(5));
  cal->advance(hour(1));
  EXPECT_EQ(cal->current_hour(), hour(5));
  EXPECT_EQ(free_hours(*cal, "h100", 5, 29), expected);

  // Windows now start at hour 5 at the earliest and may reach hour 29.
  expect_error(cal->quote("h100", 1, hour(4), hour(6)).status(), ErrorCode::kInvalidArgument, "start");
  ASSERT_TRUE(cal->book(block("new-end", "h100", 50, 24, 29)).is_ok());

  // The forecast comes into view as the window moves.
  cal->advance(hour(10));
  EXPECT_EQ(free_hours(*cal, "h100", 29, 34), (std::vector<std::uint32_t>{50, 43, 43, 50, 50}));

  // Releasing a block under way gives back only the hours left.
  ASSERT_TRUE(cal->release("whole").is_ok());
  ASSERT_TRUE(cal->release("long").is_ok());
  expected.clear();
  for (int h = 10; h < 34; ++h) expected.push_back(h >= 24 && h < 29 ? 0 : (h == 30 || h == 31 ? 43 : 50));
  EXPECT_EQ(free_hours(*cal, "h100", 10, 34), expected);

  // A jump past the whole horizon forgets everything and starts afresh.
  cal->advance(hour(1000));
  EXPECT_TRUE(cal->blocks().empty());
  EXPECT_EQ(cal->quote("h100", 50, hour(1000), hour(1024))->available, 50u);
}

TEST(CapacityCalendar, AdvanceAcrossTheHorizonManyTimes) {
  // A 7-hour ring wraps many times; each hour a block is tried just ahead.
  auto cal = make({{"x", 10, 1}}, {{"x", hour(0), hour(10'000), 2}}, 7);
  ASSERT_TRUE(cal);
  int booked = 0;
  for (int h = 0; h < 100; ++h) {
    cal->advance(hour(h));
    auto q = cal->quote("x", 3, hour(h + 1), hour(h + 7));
    ASSERT_TRUE(q.is_ok()) << q.status().to_string();
    Status s = cal->book(block("b" + std::to_string(h), "x", 3, h + 1, h + 7));
    ASSERT_EQ(s.is_ok(), q->fits) << h << " " << s.to_string();
    booked += s.is_ok() ? 1 : 0;
    // Recompute every hour from the list of blocks: 10 - 1 - 2 - booked(h).
    std::vector<Block> blocks = cal->blocks();
    std::vector<std::uint32_t> free = free_hours(*cal, "x", h, h + 7);
    for (int k = 0; k < 7; ++k) {
      std::int64_t sum = 0;
      for (const Block& b : blocks) sum += (b.start <= hour(h + k) && hour(h + k) < b.end) ? b.gpus : 0;
      ASSERT_EQ(std::int64_t{free[static_cast<std::size_t>(k)]}, 7 - sum) << "hour " << h + k;
    }
  }
  EXPECT_GT(booked, 10);
}

TEST(CapacityCalendar, ErrorsNameTheField) {
  auto cal = make({{"h100", 16, 0}}, {}, 24);
  ASSERT_TRUE(cal);
  expect_error(cal->quote("nope", 1, hour(0), hour(1)).status(), ErrorCode::kInvalidArgument, "gpu_type");
  expect_error(cal->quote("h100", 0, hour(0), hour(1)).status(), ErrorCode::kInvalidArgument, "gpus");
  expect_error(cal->quote("h100", 17, hour(0), hour(1)).status(), ErrorCode::kInvalidArgument, "gpus");
  expect_error(cal->quote("h100", 1, hour(1), hour(1)).status(), ErrorCode::kInvalidArgument, "end");
  expect_error(cal->quote("h100", 1, hour(-1), hour(1)).status(), ErrorCode::kInvalidArgument, "start");
  expect_error(cal->quote("h100", 1, hour(0), hour(25)).status(), ErrorCode::kInvalidArgument, "end");
  EXPECT_TRUE(cal->quote("h100", 16, hour(0), hour(24)).is_ok());

  expect_error(cal->book(block("", "h100", 1, 0, 1)), ErrorCode::kInvalidArgument, "block.id");
  expect_error(cal->book(block(std::string(200, 'x'), "h100", 1, 0, 1)), ErrorCode::kInvalidArgument, "block.id");
  expect_error(cal->book(block("a", "nope", 1, 0, 1)), ErrorCode::kInvalidArgument, "block.gpu_type");
  expect_error(cal->book(block("a", "h100", 0, 0, 1)), ErrorCode::kInvalidArgument, "block.gpus");
  expect_error(cal->book(block("a", "h100", 1, 1, 1)), ErrorCode::kInvalidArgument, "block.end");
  expect_error(cal->book(block("a", "h100", 1, 0, 30)), ErrorCode::kInvalidArgument, "block.end");
  expect_error(cal->book(Block{"a", "h100", 1, hour(0).plus_micros(1), hour(1)}), ErrorCode::kInvalidArgument,
               "block.start");
  expect_error(cal->book(Block{"a", "h100", 1, hour(0), hour(1).plus_micros(1)}), ErrorCode::kInvalidArgument,
               "block.end");
  ASSERT_TRUE(cal->book(block("a", "h100", 1, 0, 1)).is_ok());
  expect_error(cal->book(block("a", "h100", 1, 2, 3)), ErrorCode::kAlreadyExists, "block.id");
  expect_error(cal->release("zzz"), ErrorCode::kNotFound, "id");

  std::vector<std::uint32_t> out;
  expect_error(cal->free_by_hour("h100", hour(0), hour(30), out), ErrorCode::kInvalidArgument, "to");
  expect_error(cal->free_by_hour("h100", hour(-3), hour(1), out), ErrorCode::kInvalidArgument, "from");
  expect_error(cal->free_by_hour("nope", hour(0), hour(1), out), ErrorCode::kInvalidArgument, "gpu_type");
  EXPECT_TRUE(out.empty());
}

TEST(CapacityCalendar, CreateErrorsNameTheField) {
  auto err = [](std::vector<CalendarType> types, std::vector<ForecastEntry> forecast, std::int32_t horizon = 24) {
    return CapacityCalendar::create(std::move(types), std::move(forecast), kT0, horizon).status();
  };
  expect_error(err({}, {}), ErrorCode::kInvalidArgument, "types");
  expect_error(err({{"", 1, 0}}, {}), ErrorCode::kInvalidArgument, "types[0].gpu_type");
  expect_error(err({{"a", 1, 0}, {"a", 2, 0}}, {}), ErrorCode::kInvalidArgument, "types[1].gpu_type");
  expect_error(err({{"a", 4, 5}}, {}), ErrorCode::kInvalidArgument, "types[0].internal_buffer");
  expect_error(err({{"a", limits::kCalendarGpusPerType + 1, 0}}, {}), ErrorCode::kInvalidArgument, "types[0].total");
  expect_error(err({{"a", 4, 0}}, {{"b", hour(0), hour(1), 1}}), ErrorCode::kInvalidArgument, "forecast[0].gpu_type");
  expect_error(err({{"a", 4, 0}}, {{"a", hour(0), hour(1), 1}, {"a", hour(2), hour(2), 1}}),
               ErrorCode::kInvalidArgument, "forecast[1].to");
  // Two entries that fit alone but not together (4 - 1 = 3 sellable).
  expect_error(err({{"a", 4, 1}}, {{"a", hour(0), hour(5), 2}, {"a", hour(4), hour(9), 2}}),
               ErrorCode::kInvalidArgument, "forecast");
  // Entries that only touch do not add up.
  EXPECT_TRUE(err({{"a", 4, 1}}, {{"a", hour(0), hour(5), 3}, {"a", hour(5), hour(9), 3}}).is_ok());
  expect_error(err({{"a", 4, 0}}, {}, 0), ErrorCode::kInvalidArgument, "horizon_hours");
  expect_error(err({{"a", 4, 0}}, {}, limits::kCalendarHorizonHoursMax + 1), ErrorCode::kInvalidArgument,
               "horizon_hours");
}

TEST(CapacityCalendar, OriginIsTheHourContainingIt) {
  auto cal = make({{"a", 4, 0}}, {}, 10, kT0.plus_micros(59 * kMicrosPerMinute));
  ASSERT_TRUE(cal);
  EXPECT_EQ(cal->current_hour(), hour(0));
  EXPECT_EQ(cal->horizon_end(), hour(10));
  EXPECT_TRUE(cal->quote("a", 1, hour(0), hour(10)).is_ok());
}

// Two threads (here eight) booking the same last GPUs at the same instant:
// exactly one wins, every round.
TEST(CapacityCalendarConcurrency, ExactlyOneWinsTheLastGpus) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 200;
  for (int round = 0; round < kRounds; ++round) {
    auto cal = make({{"h100", 24, 0}}, {{"h100", hour(0), hour(48), 8}}, 48);
    ASSERT_TRUE(cal);
    std::latch start(kThreads);
    std::atomic<int> wins{0};
    std::atomic<int> conflicts{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        Status s = cal->book(block("t" + std::to_string(t), "h100", 16, t % 3, 10 + t));
        if (s.is_ok()) ++wins;
        if (s.code() == ErrorCode::kConflict) ++conflicts;
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(wins.load(), 1) << "round " << round;
    ASSERT_EQ(conflicts.load(), kThreads - 1) << "round " << round;
  }
}

// The naive model: a map of blocks, summed per hour.
struct Model {
  struct Type {
    std::int64_t sellable = 0;
    std::vector<ForecastEntry> forecast;
  };
  std::map<std::string, Type> types;
  std::map<std::string, Block> blocks;
  std::int64_t origin_hour = 0;  // relative to kT0
  std::int32_t horizon_hours = 0;

  std::int64_t ceiling(const std::string& type, std::int64_t h) const {
    const Type& t = types.at(type);
    std::int64_t demand = 0;
    for (const ForecastEntry& e : t.forecast) {
      auto w = snap_to_hours(e.from, e.to).value();
      if (w.first <= hour(h) && hour(h) < w.second) demand += e.gpus;
    }
    return t.sellable - demand;
  }
  std::int64_t booked(const std::string& type, std::int64_t h) const {
    std::int64_t sum = 0;
    for (const auto& [id, b] : blocks) {
      if (b.gpu_type == type && b.start <= hour(h) && hour(h) < b.end) sum += b.gpus;
    }
    return sum;
  }
  std::int64_t free(const std::string& type, std::int64_t h) const { return ceiling(type, h) - booked(type, h); }
  // Least free over [a, b) and its first hour.
  std::pair<std::int64_t, std::int64_t> least(const std::string& type, std::int64_t a, std::int64_t b) const {
    std::pair<std::int64_t, std::int64_t> best{std::numeric_limits<std::int64_t>::max(), a};
    for (std::int64_t h = a; h < b; ++h) {
      std::int64_t f = free(type, h);
      if (f < best.first) best = {f, h};
    }
    return best;
  }
  bool window_ok(std::int64_t a, std::int64_t b) const {
    return a < b && a >= origin_hour && b <= origin_hour + horizon_hours;
  }
};

std::int64_t rel_hour(Timestamp t) { return (t.unix_micros - kT0.unix_micros) / kMicrosPerHour; }

// Checks every hour of every type of the calendar against the model.
void expect_same(const CapacityCalendar& cal, const Model& model) {
  for (const auto& [name, type] : model.types) {
    std::vector<std::uint32_t> got = free_hours(cal, name, model.origin_hour, model.origin_hour + model.horizon_hours);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(model.horizon_hours));
    for (std::int32_t i = 0; i < model.horizon_hours; ++i) {
      ASSERT_EQ(std::int64_t{got[i]}, model.free(name, model.origin_hour + i)) << name << " hour " << i;
    }
  }
  std::vector<Block> blocks = cal.blocks();
  ASSERT_EQ(blocks.size(), model.blocks.size());
  for (const Block& b : blocks) {
    auto it = model.blocks.find(b.id);
    ASSERT_NE(it, model.blocks.end()) << b.id;
    EXPECT_EQ(it->second.gpus, b.gpus);
    EXPECT_EQ(it->second.start, b.start);
  }
}

TEST(CapacityCalendarProperty, MatchesTheNaiveModel) {
  constexpr int kSeeds = 4;
  constexpr int kOps = 3'000;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    std::mt19937_64 rng(seed);
    auto pick = [&](std::int64_t lo, std::int64_t hi) {
      return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
    };
    Model model;
    model.horizon_hours = 60;
    std::vector<CalendarType> types = {{"big", 64, 4}, {"small", 8, 1}};
    std::vector<ForecastEntry> forecast;
    for (int i = 0; i < 12; ++i) {
      const std::string type = i % 2 ? "big" : "small";
      const std::int64_t from_min = pick(0, 600 * 60);
      forecast.push_back({type, kT0.plus_micros(from_min * kMicrosPerMinute),
                          kT0.plus_micros((from_min + pick(1, 40 * 60)) * kMicrosPerMinute),
                          static_cast<std::uint32_t>(i % 2 ? pick(0, 4) : pick(0, 1))});
    }
    for (const auto& t : types) model.types[t.gpu_type].sellable = t.total - t.internal_buffer;
    for (const auto& e : forecast) model.types[e.gpu_type].forecast.push_back(e);
    auto cal = make(types, forecast, model.horizon_hours);
    ASSERT_TRUE(cal);

    int next_id = 0;
    int booked = 0;
    for (int op = 0; op < kOps; ++op) {
      const std::string type = pick(0, 2) ? "big" : "small";
      const std::int64_t sellable = model.types[type].sellable;
      // Windows mostly inside the horizon, some a little outside it.
      const std::int64_t a = model.origin_hour + pick(-2, model.horizon_hours);
      const std::int64_t b = a + pick(0, 30);
      const int kind = static_cast<int>(pick(0, 99));
      if (kind < 45) {
        const auto gpus = static_cast<std::uint32_t>(pick(1, std::max<std::int64_t>(1, sellable / 2)));
        Block blk = block("b" + std::to_string(next_id++), type, gpus, a, b);
        Status s = cal->book(blk);
        if (!model.window_ok(a, b)) {
          ASSERT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.to_string();
        } else if (model.least(type, a, b).first >= gpus) {
          ASSERT_TRUE(s.is_ok()) << s.to_string();
          model.blocks[blk.id] = blk;
          ++booked;
        } else {
          ASSERT_EQ(s.code(), ErrorCode::kConflict) << s.to_string();
          ASSERT_EQ(s.message().rfind(std::to_string(model.least(type, a, b).first) + " GPUs", 0), 0u) << s.message();
        }
      } else if (kind < 65) {
        if (!model.blocks.empty() && pick(0, 9) != 0) {
          auto it = model.blocks.begin();
          std::advance(it, pick(0, static_cast<std::int64_t>(model.blocks.size()) - 1));
          ASSERT_TRUE(cal->release(it->first).is_ok());
          model.blocks.erase(it);
        } else {
          ASSERT_EQ(cal->release("missing" + std::to_string(op)).code(), ErrorCode::kNotFound);
        }
      } else if (kind < 90) {
        const auto gpus = static_cast<std::uint32_t>(pick(1, sellable));
        // Quotes take unaligned times too: a start inside hour a, an end inside hour b - 1.
        const std::int64_t start_offset = pick(0, kMicrosPerHour - 1);
        const std::int64_t end_offset = pick(b == a + 1 ? start_offset + 1 : 1, kMicrosPerHour);
        auto q = cal->quote(type, gpus, hour(a).plus_micros(start_offset), hour(b - 1).plus_micros(end_offset));
        if (b <= a) {  // the end at or before the start
          ASSERT_FALSE(q.is_ok());
          continue;
        }
        if (!model.window_ok(a, b)) {
          ASSERT_EQ(q.status().code(), ErrorCode::kInvalidArgument);
          continue;
        }
        ASSERT_TRUE(q.is_ok()) << q.status().to_string();
        auto [least, least_hour] = model.least(type, a, b);
        ASSERT_EQ(std::int64_t{q->available}, least);
        ASSERT_EQ(rel_hour(q->tightest_hour), least_hour);
        ASSERT_EQ(q->fits, least >= gpus);
        ASSERT_EQ(q->start, hour(a));
        ASSERT_EQ(q->end, hour(b));
      } else if (kind < 96) {
        const std::int64_t step = pick(0, 3) == 0 ? pick(0, 2 * model.horizon_hours) : pick(0, 3);
        cal->advance(hour(model.origin_hour + step).plus_micros(pick(0, kMicrosPerHour - 1)));
        model.origin_hour += step;
        std::erase_if(model.blocks, [&](const auto& kv) { return rel_hour(kv.second.end) <= model.origin_hour; });
      } else {
        expect_same(*cal, model);
        if (HasFatalFailure()) return;
      }
    }
    expect_same(*cal, model);
    EXPECT_GT(booked, kOps / 20) << "the test should book a fair number of blocks";
  }
}

// Eight threads book random blocks on a small fleet at once. Afterwards no
// hour is booked past total - buffer - forecast (recomputed from the list of
// blocks), and since nothing was released, a refused block would not fit the
// final calendar either: capacity only shrank after it was refused.
TEST(CapacityCalendarConcurrency, RandomBookingsNeverOversell) {
  constexpr int kThreads = 8;
  constexpr int kAttemptsPerThread = 400;
  constexpr std::int32_t kHorizonHours = 72;
  std::vector<CalendarType> types = {{"h100", 64, 4}, {"a100", 32, 2}};
  std::vector<ForecastEntry> forecast = {
      {"h100", hour(10), hour(30), 12}, {"a100", hour(0), hour(72), 6}, {"h100", hour(20), hour(50), 8}};
  Model model;
  model.horizon_hours = kHorizonHours;
  for (const auto& t : types) model.types[t.gpu_type].sellable = t.total - t.internal_buffer;
  for (const auto& e : forecast) model.types[e.gpu_type].forecast.push_back(e);
  auto cal = make(types, forecast, kHorizonHours);
  ASSERT_TRUE(cal);

  std::vector<std::vector<Block>> refused(kThreads);
  std::vector<std::vector<Block>> accepted(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      auto pick = [&](std::int64_t lo, std::int64_t hi) {
        return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
      };
      start.arrive_and_wait();
      for (int i = 0; i < kAttemptsPerThread; ++i) {
        const std::string type = pick(0, 1) ? "h100" : "a100";
        const std::int64_t a = pick(0, kHorizonHours - 1);
        Block b =
            block("t" + std::to_string(t) + "-" + std::to_string(i), type, static_cast<std::uint32_t>(pick(1, 12)), a,
                  pick(a + 1, std::min<std::int64_t>(kHorizonHours, a + 24)));
        if (pick(0, 3) == 0) (void)cal->quote(b.gpu_type, b.gpus, b.start, b.end);  // readers in the mix
        Status s = cal->book(b);
        if (s.is_ok()) {
          accepted[t].push_back(b);
        } else {
          EXPECT_EQ(s.code(), ErrorCode::kConflict) << s.to_string();
          refused[t].push_back(b);
        }
      }
    });
  }
  for (auto& th : threads) th.join();

  const std::vector<Block> blocks = cal->blocks();
  std::size_t accepted_count = 0;
  for (const auto& v : accepted) accepted_count += v.size();
  ASSERT_EQ(blocks.size(), accepted_count);
  for (const Block& b : blocks) model.blocks[b.id] = b;
  for (const auto& [name, type] : model.types) {
    for (std::int64_t h = 0; h < kHorizonHours; ++h) {
      ASSERT_LE(model.booked(name, h), model.ceiling(name, h)) << name << " hour " << h << " is oversold";
    }
  }
  std::size_t refused_count = 0;
  for (const auto& v : refused) {
    for (const Block& b : v) {
      ++refused_count;
      ASSERT_LT(model.least(b.gpu_type, rel_hour(b.start), rel_hour(b.end)).first, std::int64_t{b.gpus})
          << b.id << " was refused yet fits even now";
    }
  }
  EXPECT_GT(accepted_count, 0u);
  EXPECT_GT(refused_count, 0u) << "the fleet should fill up";
  expect_same(*cal, model);
}

// Booking, releasing, quoting and advancing all at once: the calendar stays
// consistent with its own list of blocks and never oversells.
TEST(CapacityCalendarConcurrency, MixedOperationsStayConsistent) {
  constexpr int kThreads = 8;
  constexpr int kOpsPerThread = 600;
  constexpr std::int32_t kHorizonHours = 48;
  std::vector<CalendarType> types = {{"h100", 40, 2}};
  std::vector<ForecastEntry> forecast = {{"h100", hour(0), hour(500), 5}};
  auto cal = make(types, forecast, kHorizonHours);
  ASSERT_TRUE(cal);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(500 + t);
      auto pick = [&](std::int64_t lo, std::int64_t hi) {
        return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
      };
      std::vector<std::string> mine;
      start.arrive_and_wait();
      for (int i = 0; i < kOpsPerThread; ++i) {
        const std::int64_t origin = rel_hour(cal->current_hour());
        const std::int64_t a = origin + pick(0, kHorizonHours - 1);
        const std::int64_t b = std::min<std::int64_t>(origin + kHorizonHours, a + pick(1, 12));
        const int kind = static_cast<int>(pick(0, 9));
        if (kind < 5) {
          std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
          Status s = cal->book(block(id, "h100", static_cast<std::uint32_t>(pick(1, 10)), a, b));
          if (s.is_ok()) mine.push_back(id);
          // The window may have moved past `a` between reading the hour and booking.
          EXPECT_TRUE(s.is_ok() || s.code() == ErrorCode::kConflict || s.code() == ErrorCode::kInvalidArgument)
              << s.to_string();
        } else if (kind < 8 && !mine.empty()) {
          Status s = cal->release(mine.back());
          // A block may have ended and dropped off with an advance.
          EXPECT_TRUE(s.is_ok() || s.code() == ErrorCode::kNotFound) << s.to_string();
          mine.pop_back();
        } else if (kind < 9) {
          (void)cal->quote("h100", 1, hour(a), hour(b));
        } else if (t == 0) {
          cal->advance(hour(origin + pick(0, 2)));
        }
      }
    });
  }
  for (auto& th : threads) th.join();

  Model model;
  model.horizon_hours = kHorizonHours;
  model.origin_hour = rel_hour(cal->current_hour());
  for (const auto& ty : types) model.types[ty.gpu_type].sellable = ty.total - ty.internal_buffer;
  for (const auto& e : forecast) model.types[e.gpu_type].forecast.push_back(e);
  for (const Block& b : cal->blocks()) model.blocks[b.id] = b;
  for (std::int64_t h = model.origin_hour; h < model.origin_hour + kHorizonHours; ++h) {
    ASSERT_LE(model.booked("h100", h), model.ceiling("h100", h)) << "hour " << h << " is oversold";
  }
  expect_same(*cal, model);
}

}  // namespace
}  // namespace headroom::market
