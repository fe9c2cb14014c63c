#include "ledger/usage_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ledger/test_dir.h"

namespace headroom::ledger {
namespace {

using testing::named;
using testing::TempDir;

UsageEvent gpu_event(const std::string& id, const std::string& tenant = "ten_a", std::int64_t ms = 60'000) {
  UsageEvent e;
  e.id = id;
  e.tenant_id = tenant;
  e.product = Product::kGpuTime;
  e.item = "h100";
  e.variant = "spot";
  e.quantity = ms;
  e.unit_price = Money::from_nanos(800'000'000);
  e.start = Timestamp::from_unix_millis(1'767'225'600'000);
  e.end = e.start.plus_micros(ms * 1000);
  e.source_id = "job_1";
  return e;
}

UsageEvent token_event(const std::string& id, const std::string& tenant = "ten_b", std::int64_t tokens = 1234) {
  UsageEvent e;
  e.id = id;
  e.tenant_id = tenant;
  e.product = Product::kTokens;
  e.item = "llama-3-8b";
  e.variant = "output";
  e.quantity = tokens;
  e.unit_price = Money::from_nanos(50);
  e.start = e.end = Timestamp::from_unix_seconds(1'767'225'601);
  e.source_id = "req_9";
  e.key_id = "key_3";
  return e;
}

bool same(const UsageEvent& a, const UsageEvent& b) {
  return a.id == b.id && a.tenant_id == b.tenant_id && a.product == b.product && a.item == b.item &&
         a.variant == b.variant && a.quantity == b.quantity && a.unit_price == b.unit_price && a.start == b.start &&
         a.end == b.end && a.source_id == b.source_id && a.key_id == b.key_id;
}

std::unique_ptr<UsageLog> open_log(const TempDir& dir) {
  auto log = UsageLog::open({.dir = dir.path()});
  EXPECT_TRUE(log.is_ok()) << log.status().to_string();
  return log ? std::move(log).value() : nullptr;
}

std::vector<UsageEvent> read_all(const UsageLog& log) {
  std::vector<UsageEvent> out;
  auto end =
      log.read(RecordLog::kFirstPosition, 1'000'000, [&](LogPosition, const UsageEvent& e) { out.push_back(e); });
  EXPECT_TRUE(end.is_ok()) << end.status().to_string();
  return out;
}

class UsageLogTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST(UsageEncoding, RoundTrips) {
  for (const UsageEvent& e : {gpu_event("job_1:1767225600000"), token_event("req_9:out")}) {
    std::string encoded;
    encode_usage_event(e, encoded);
    EXPECT_EQ(encoded.size(),
              48 + e.id.size() + e.tenant_id.size() + e.item.size() + e.variant.size() + e.source_id.size() +
                  e.key_id.size());
    auto decoded = decode_usage_event(encoded);
    ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
    EXPECT_TRUE(same(*decoded, e));
  }
}

// Events written before key ids were metered had a reserved zero where the
// key id's length now is: they read as events without a key.
TEST(UsageEncoding, EventsWrittenBeforeKeyIdsReadWithoutOne) {
  UsageEvent e = token_event("req_9:out");
  e.key_id.clear();
  std::string encoded;
  encode_usage_event(e, encoded);
  ASSERT_EQ(encoded[12], 0);
  ASSERT_EQ(encoded[13], 0);
  auto decoded = decode_usage_event(encoded);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  EXPECT_EQ(decoded->key_id, "");
  EXPECT_TRUE(same(*decoded, e));
  std::string bad_reserved = encoded;
  bad_reserved[14] = 1;
  EXPECT_FALSE(decode_usage_event(bad_reserved).is_ok());
}

TEST(UsageEncoding, DecodeRefusesWhatItDidNotEncode) {
  std::string good;
  encode_usage_event(gpu_event("a"), good);
  EXPECT_FALSE(decode_usage_event(good.substr(0, good.size() - 1)).is_ok());
  EXPECT_FALSE(decode_usage_event(good + "x").is_ok());
  EXPECT_FALSE(decode_usage_event("").is_ok());
  std::string bad_version = good;
  bad_version[0] = 2;
  EXPECT_FALSE(decode_usage_event(bad_version).is_ok());
  std::string bad_product = good;
  bad_product[1] = 7;
  EXPECT_FALSE(decode_usage_event(bad_product).is_ok());
  // Random bytes never crash it.
  std::mt19937_64 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::string junk = good;
    junk[rng() % junk.size()] = static_cast<char>(rng());
    junk.resize(rng() % (junk.size() + 8), 'z');
    (void)decode_usage_event(junk);
  }
}

TEST(UsageEncoding, ValidatesEvents) {
  EXPECT_TRUE(validate_usage_event(gpu_event("a")).is_ok());
  auto broken = [](auto change) {
    UsageEvent e = gpu_event("a");
    change(e);
    Status s = validate_usage_event(e);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
    return s.message();
  };
  broken([](UsageEvent& e) { e.id.clear(); });
  broken([](UsageEvent& e) { e.id = std::string(limits::kUsageIdBytes + 1, 'i'); });
  broken([](UsageEvent& e) { e.tenant_id.clear(); });
  broken([](UsageEvent& e) { e.source_id = std::string(limits::kUsageTextBytes + 1, 's'); });
  broken([](UsageEvent& e) { e.quantity = -1; });
  broken([](UsageEvent& e) { e.quantity = limits::kUsageQuantityMax + 1; });
  broken([](UsageEvent& e) { e.unit_price = Money::from_nanos(-1); });
  broken([](UsageEvent& e) { e.product = static_cast<Product>(9); });
  EXPECT_NE(broken([](UsageEvent& e) { e.end = e.start.plus_micros(-1); }).find("\"a\""), std::string::npos);
}

TEST_F(UsageLogTest, RecordsAndReplays) {
  std::vector<UsageEvent> events = {gpu_event("g1"), gpu_event("g2", "ten_a", 30'000), token_event("t1"),
                                    token_event("t2", "ten_b", 5)};
  {
    auto log = open_log(dir_);
    ASSERT_TRUE(log->record(events).is_ok());
    EXPECT_EQ(log->totals(), (UsageTotals{4, 60'000 + 30'000 + 1234 + 5}));
  }
  auto log = open_log(dir_);
  EXPECT_EQ(log->replay_report().records, 4u);
  EXPECT_EQ(log->totals(), (UsageTotals{4, 60'000 + 30'000 + 1234 + 5}));
  EXPECT_EQ(log->tenant_totals("ten_a"), (UsageTotals{2, 90'000}));
  EXPECT_EQ(log->tenant_totals("ten_b"), (UsageTotals{2, 1239}));
  EXPECT_EQ(log->tenant_totals("ten_c"), (UsageTotals{0, 0}));
  auto read = read_all(*log);
  ASSERT_EQ(read.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(same(read[i], events[i])) << i;
}

TEST_F(UsageLogTest, ARetryIsANoOp) {
  auto log = open_log(dir_);
  UsageEvent e = gpu_event("job_1:1000");
  ASSERT_TRUE(log->record({&e, 1}).is_ok());
  LogPosition end = log->durable_end();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(log->record({&e, 1}).is_ok());
  EXPECT_EQ(log->durable_end(), end);  // nothing appended
  EXPECT_EQ(log->totals().events, 1u);
  log.reset();
  log = open_log(dir_);
  ASSERT_TRUE(log->record({&e, 1}).is_ok());  // after a restart too
  EXPECT_EQ(read_all(*log).size(), 1u);
}

TEST_F(UsageLogTest, TheSameIdWithOtherContentIsAConflict) {
  auto log = open_log(dir_);
  UsageEvent e = gpu_event("job_1:1000");
  ASSERT_TRUE(log->record({&e, 1}).is_ok());
  UsageEvent changed = e;
  changed.quantity += 1;
  Status s = log->record({&changed, 1});
  EXPECT_EQ(s.code(), ErrorCode::kConflict);
  EXPECT_NE(s.message().find("\"job_1:1000\""), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("quantity"), std::string::npos) << s.message();
  changed = e;
  changed.tenant_id = "ten_z";
  EXPECT_NE(log->record({&changed, 1}).message().find("tenant_id"), std::string::npos);
  EXPECT_EQ(log->totals(), (UsageTotals{1, 60'000}));
  EXPECT_EQ(log->tenant_totals("ten_z").events, 0u);
}

TEST_F(UsageLogTest, EachEventOfABatchHasItsOwnOutcome) {
  auto log = open_log(dir_);
  UsageEvent a = gpu_event("a");
  ASSERT_TRUE(log->record({&a, 1}).is_ok());
  UsageEvent a_changed = a;
  a_changed.end = a.end.plus_micros(1);
  UsageEvent invalid = gpu_event("");
  std::vector<UsageEvent> batch = {gpu_event("b"), a, a_changed, invalid, gpu_event("b"), token_event("c")};
  auto statuses = log->record_each(batch);
  ASSERT_EQ(statuses.size(), batch.size());
  EXPECT_TRUE(statuses[0].is_ok());
  EXPECT_TRUE(statuses[1].is_ok());                     // a retry
  EXPECT_EQ(statuses[2].code(), ErrorCode::kConflict);  // a with other content
  EXPECT_EQ(statuses[3].code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(statuses[4].is_ok());  // b twice in one batch: once
  EXPECT_TRUE(statuses[5].is_ok());
  EXPECT_EQ(log->totals().events, 3u);
  // record() reports the first error; the valid events are recorded regardless.
  std::vector<UsageEvent> second = {gpu_event("d"), a_changed, gpu_event("e")};
  EXPECT_EQ(log->record(second).code(), ErrorCode::kConflict);
  EXPECT_EQ(log->totals().events, 5u);
  // Within a batch the second of two different contents conflicts.
  UsageEvent f = gpu_event("f"), f_changed = gpu_event("f", "ten_a", 1);
  std::vector<UsageEvent> third = {f, f_changed};
  statuses = log->record_each(third);
  EXPECT_TRUE(statuses[0].is_ok());
  EXPECT_EQ(statuses[1].code(), ErrorCode::kConflict);
}

TEST_F(UsageLogTest, ABatchPastTheLimitIsRefused) {
  auto log = open_log(dir_);
  std::vector<UsageEvent> batch(limits::kUsageBatchEvents + 1, gpu_event("x"));
  EXPECT_EQ(log->record(batch).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(log->totals().events, 0u);
}

// Many writers of the same ids at once: each id is appended once.
TEST_F(UsageLogTest, ConcurrentWritersOfTheSameIdsAppendEachOnce) {
  constexpr int kThreads = 12, kIds = 600;
  {
    auto log = open_log(dir_);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(t);
        std::vector<int> order(kIds);
        for (int i = 0; i < kIds; ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), rng);
        for (int i = 0; i < kIds;) {
          std::vector<UsageEvent> batch;
          for (int n = 1 + static_cast<int>(rng() % 8); n > 0 && i < kIds; --n, ++i) {
            batch.push_back(gpu_event(named("id", order[i]), named("ten_", order[i] % 3), order[i]));
          }
          ASSERT_TRUE(log->record(batch).is_ok());
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(log->totals().events, std::uint64_t{kIds});
  }
  auto log = open_log(dir_);
  auto events = read_all(*log);
  ASSERT_EQ(events.size(), std::size_t{kIds});
  std::map<std::string, int> seen;
  for (const auto& e : events) EXPECT_EQ(++seen[e.id], 1) << e.id;
  EXPECT_EQ(log->totals().quantity, std::int64_t{kIds} * (kIds - 1) / 2);
}

TEST_F(UsageLogTest, ATornTailLosesOnlyTheTornEvent) {
  LogPosition last_position = 0;
  {
    auto log = open_log(dir_);
    std::vector<UsageEvent> events = {gpu_event("a"), gpu_event("b"), gpu_event("c")};
    ASSERT_TRUE(log->record(events).is_ok());
    auto read = log->read(RecordLog::kFirstPosition, 100, [&](LogPosition p, const UsageEvent&) { last_position = p; });
    ASSERT_TRUE(read.is_ok());
  }
  testing::truncate_file(dir_.file("usage.log"), last_position + 40);
  auto log = open_log(dir_);
  EXPECT_EQ(log->replay_report().tails_cut, 1u);
  EXPECT_EQ(log->totals().events, 2u);
  // The source's retry of the lost event records it.
  UsageEvent c = gpu_event("c");
  ASSERT_TRUE(log->record({&c, 1}).is_ok());
  EXPECT_EQ(log->totals().events, 3u);
}

TEST_F(UsageLogTest, AnIdTwiceOnDiskFailsOpen) {
  {
    auto raw = RecordLog::open({.dir = dir_.path(), .file_name = "usage.log"}, nullptr);
    ASSERT_TRUE(raw.is_ok());
    std::string a, b;
    encode_usage_event(gpu_event("dup"), a);
    encode_usage_event(gpu_event("other"), b);
    std::vector<std::string_view> payloads = {a, b, a};
    ASSERT_TRUE((*raw)->append(payloads).is_ok());
  }
  auto log = UsageLog::open({.dir = dir_.path()});
  ASSERT_FALSE(log.is_ok());
  EXPECT_EQ(log.status().code(), ErrorCode::kInternal);
  EXPECT_NE(log.status().message().find("\"dup\""), std::string::npos) << log.status().message();
}

TEST_F(UsageLogTest, ARecordThatIsNotAnEventFailsOpen) {
  {
    auto raw = RecordLog::open({.dir = dir_.path(), .file_name = "usage.log"}, nullptr);
    ASSERT_TRUE(raw.is_ok());
    std::vector<std::string_view> payloads = {"not an event"};
    ASSERT_TRUE((*raw)->append(payloads).is_ok());
  }
  auto log = UsageLog::open({.dir = dir_.path()});
  ASSERT_FALSE(log.is_ok());
  EXPECT_EQ(log.status().code(), ErrorCode::kInternal);
}

// The id index grows in steps spread over the inserts (a new table, an old
// one moved into it, then given back): an id must be found in every step,
// and after a replay that grows it the same way.
TEST_F(UsageLogTest, TheIdIndexFindsEveryIdWhileItGrows) {
  auto opened = UsageLog::open({.dir = dir_.path(), .expected_events = 1});  // the smallest table: 1,024 slots
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  auto log = std::move(opened).value();
  constexpr int kEvents = 20'000, kBatch = 100;  // past five growths
  std::mt19937 random(7);
  std::vector<UsageEvent> batch;
  for (int first = 0; first < kEvents; first += kBatch) {
    batch.clear();
    for (int i = first; i < first + kBatch; ++i) batch.push_back(gpu_event(named("e", i)));
    ASSERT_TRUE(log->record(batch).is_ok());
    // Retries of events recorded so far, from this batch and earlier ones.
    const LogPosition end = log->durable_end();
    batch.clear();
    for (int k = 0; k < 20; ++k) batch.push_back(gpu_event(named("e", static_cast<int>(random() % (first + kBatch)))));
    ASSERT_TRUE(log->record(batch).is_ok());
    ASSERT_EQ(log->durable_end(), end) << "a retry was appended after " << first + kBatch << " events";
    UsageEvent changed = gpu_event(named("e", static_cast<int>(random() % (first + kBatch))));
    changed.quantity += 1;
    ASSERT_EQ(log->record({&changed, 1}).code(), ErrorCode::kConflict);
  }
  EXPECT_EQ(log->totals().events, static_cast<std::uint64_t>(kEvents));
  const LogPosition end = log->durable_end();
  log.reset();
  opened = UsageLog::open({.dir = dir_.path(), .expected_events = 1});  // the replay grows it too
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  log = std::move(opened).value();
  for (int first = 0; first < kEvents; first += kBatch) {
    batch.clear();
    for (int i = first; i < first + kBatch; ++i) batch.push_back(gpu_event(named("e", i)));
    ASSERT_TRUE(log->record(batch).is_ok());
  }
  EXPECT_EQ(log->durable_end(), end);
  EXPECT_EQ(log->totals().events, static_cast<std::uint64_t>(kEvents));
}

TEST_F(UsageLogTest, ConsumersReadOnFromWhereTheyStopped) {
  auto log = open_log(dir_);
  std::vector<UsageEvent> events;
  for (int i = 0; i < 25; ++i) events.push_back(token_event(named("t", i)));
  ASSERT_TRUE(log->record(events).is_ok());
  std::vector<std::string> ids;
  LogPosition from = RecordLog::kFirstPosition;
  while (from < log->durable_end()) {
    auto next = log->read(from, 10, [&](LogPosition, const UsageEvent& e) { ids.push_back(e.id); });
    ASSERT_TRUE(next.is_ok());
    from = *next;
  }
  ASSERT_EQ(ids.size(), 25u);
  for (int i = 0; i < 25; ++i) EXPECT_EQ(ids[i], named("t", i));
}

}  // namespace
}  // namespace headroom::ledger

namespace headroom::ledger {
namespace {

// record_async's outcome, as a future.
std::future<Status> record_async(UsageLog& log, std::vector<UsageEvent> events) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> outcome = promise->get_future();
  log.record_async(events, [promise](const Status& s) { promise->set_value(s); });
  return outcome;
}

TEST(UsageLogRecordAsync, AnswersOnceTheEventsAreDurableAsRecordDoes) {
  testing::TempDir dir;
  {
    auto log = open_log(dir);
    auto done = record_async(*log, {token_event("r1:input"), token_event("r1:output")});
    ASSERT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_TRUE(done.get().is_ok());
    EXPECT_EQ(log->durable_end(), log->log_stats().bytes + RecordLog::kFirstPosition);
    // A retry is a no-op, answered at once; other content is a conflict.
    auto again = record_async(*log, {token_event("r1:input")});
    EXPECT_TRUE(again.get().is_ok());
    UsageEvent changed = token_event("r1:output", "ten_a", 99);
    EXPECT_EQ(record_async(*log, {changed}).get().code(), ErrorCode::kConflict);
    UsageEvent invalid = token_event("");
    EXPECT_EQ(record_async(*log, {invalid}).get().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(log->totals().events, 2u);
  }
  auto log = open_log(dir);
  EXPECT_EQ(read_all(*log).size(), 2u);
}

}  // namespace
}  // namespace headroom::ledger
