// quote_bench: how long CapacityCalendar::quote takes on a full 90-day
// calendar of a 100,000-GPU fleet, beside the naive way on the same data.
//
// Issue goal: quoting a 1,024-GPU block against a 90-day calendar of a
// 100,000-GPU fleet takes <= 5 ms.
//
// Setup (not timed): 10 GPU types of 10,000 GPUs each (200 of each kept as
// internal_buffer), 10 internal forecast entries per type (100..400 GPUs,
// 1 hour..7 days), a 2,160-hour (90-day) calendar. Random blocks of 8..1,024
// GPUs lasting 1 hour..14 days (both log-uniform, so small and short blocks
// are the most common, as they are in practice; uniform ones would fill the
// fleet with ~2,500 blocks) are booked until 20,000 are (or 400,000 tries are
// spent), which leaves the calendar mostly full. A fixed seed: every run
// books and quotes the same.
//
// Timed, each call alone with std::chrono::steady_clock, single-threaded:
//   1. quote: CapacityCalendar::quote of 1,024 GPUs of a random type over
//      10,000 random windows of 1..2,160 whole hours inside the horizon.
//      The whole call: shared lock, type lookup, snapping, the min scan.
//   2. naive: for the first 100 of those windows, the baseline: for each hour
//      of the window, the forecast entries of the type meeting that hour plus
//      the sum of the booked blocks of the type overlapping it, from a plain
//      std::vector<Block> of all booked blocks; the least free over the
//      window. Its answers are checked against quote's (and "mismatches" is
//      printed). The ratio compares medians over those same 100 windows.
//   3. book+release: 10,000 random windows (1 hour..14 days, log-uniform),
//      each quoted first (not timed) and given min(8..1,024 GPUs, available)
//      so that it fits (windows with nothing free are skipped and counted);
//      book() then release() of the same id, timed as one pair.
//   4. refused book: 10,000 random blocks (as in the fill) whose book() is
//      refused with conflict on the full calendar, each timed alone (a
//      random block that does fit is released again, not timed).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "market/calendar.h"

namespace {

using headroom::Timestamp;
using headroom::market::Block;
using headroom::market::CalendarType;
using headroom::market::CapacityCalendar;
using headroom::market::ForecastEntry;
using headroom::market::kMicrosPerHour;

constexpr Timestamp kT0 = Timestamp::from_unix_seconds(1'767'225'600);  // 2026-01-01T00:00:00Z
constexpr int kTypes = 10;
constexpr std::uint32_t kGpusPerType = 10'000;
constexpr std::uint32_t kBufferGpus = 200;
constexpr int kForecastPerType = 10;
constexpr std::int32_t kHorizonHours = 2'160;
constexpr std::size_t kBlocksWanted = 20'000;
constexpr std::size_t kBookTries = 400'000;
constexpr std::size_t kQuotes = 10'000;
constexpr std::size_t kNaiveQuotes = 100;
constexpr std::size_t kBookPairs = 10'000;
constexpr std::uint32_t kQuoteGpus = 1'024;

Timestamp hour(std::int64_t n) { return kT0.plus_micros(n * kMicrosPerHour); }

struct Stats {
  double median_us = 0;
  double p99_us = 0;
  double mean_us = 0;
  double max_us = 0;
};

Stats stats(std::vector<double> us) {
  Stats s;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  s.median_us = us[us.size() / 2];
  s.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  double sum = 0;
  for (double v : us) sum += v;
  s.mean_us = sum / static_cast<double>(us.size());
  s.max_us = us.back();
  return s;
}

double micros_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t).count();
}

struct Window {
  int type = 0;
  std::int64_t start_hour = 0;
  std::int64_t end_hour = 0;
};

// The baseline: least free over the window, summing blocks per hour.
std::pair<std::int64_t, std::int64_t> naive_least(const std::vector<Block>& blocks,
                                                  const std::vector<ForecastEntry>& forecast, const std::string& type,
                                                  const Window& w) {
  std::pair<std::int64_t, std::int64_t> best{std::numeric_limits<std::int64_t>::max(), w.start_hour};
  for (std::int64_t h = w.start_hour; h < w.end_hour; ++h) {
    const Timestamp t = hour(h);
    std::int64_t used = kBufferGpus;
    for (const ForecastEntry& e : forecast) {
      if (e.gpu_type == type && e.from <= t && t < e.to) used += e.gpus;
    }
    for (const Block& b : blocks) {
      if (b.gpu_type == type && b.start <= t && t < b.end) used += b.gpus;
    }
    const std::int64_t free = std::int64_t{kGpusPerType} - used;
    if (free < best.first) best = {free, h};
  }
  return best;
}

}  // namespace

int main() {
  std::mt19937_64 rng(42);
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  auto pick_log = [&](std::int64_t lo, std::int64_t hi) {
    const double x = std::uniform_real_distribution<double>(std::log(double(lo)), std::log(double(hi) + 1))(rng);
    return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::exp(x)), lo, hi);
  };

  std::vector<CalendarType> types;
  std::vector<std::string> names;
  for (int i = 0; i < kTypes; ++i) {
    names.push_back("gpu" + std::to_string(i));
    types.push_back({names.back(), kGpusPerType, kBufferGpus});
  }
  std::vector<ForecastEntry> forecast;
  for (int i = 0; i < kTypes; ++i) {
    for (int k = 0; k < kForecastPerType; ++k) {
      const std::int64_t start = pick(0, kHorizonHours - 1);
      forecast.push_back({names[static_cast<std::size_t>(i)], hour(start), hour(start + pick(1, 7 * 24)),
                          static_cast<std::uint32_t>(pick(100, 400))});
    }
  }
  auto created = CapacityCalendar::create(types, forecast, kT0, kHorizonHours);
  if (!created.is_ok()) {
    std::fprintf(stderr, "create: %s\n", created.status().to_string().c_str());
    return 1;
  }
  std::unique_ptr<CapacityCalendar> cal = std::move(created).value();

  // Fill the calendar.
  std::vector<Block> booked;
  std::size_t tries = 0;
  auto random_block = [&](std::string id) {
    const std::int64_t duration = pick_log(1, 14 * 24);
    const std::int64_t start = pick(0, kHorizonHours - duration);
    return Block{std::move(id), names[static_cast<std::size_t>(pick(0, kTypes - 1))],
                 static_cast<std::uint32_t>(pick_log(8, 1'024)), hour(start), hour(start + duration)};
  };
  for (; tries < kBookTries && booked.size() < kBlocksWanted; ++tries) {
    Block b = random_block("fill" + std::to_string(tries));
    if (cal->book(b).is_ok()) booked.push_back(std::move(b));
  }
  std::int64_t booked_gpu_hours = 0;
  for (const Block& b : booked)
    booked_gpu_hours += std::int64_t{b.gpus} * (b.end.unix_micros - b.start.unix_micros) / kMicrosPerHour;
  const double sellable_gpu_hours = double{kTypes} * (kGpusPerType - kBufferGpus) * kHorizonHours;

  // 1. Quotes.
  std::vector<Window> windows;
  for (std::size_t i = 0; i < kQuotes; ++i) {
    const std::int64_t duration = pick(1, kHorizonHours);
    const std::int64_t start = pick(0, kHorizonHours - duration);
    windows.push_back({static_cast<int>(pick(0, kTypes - 1)), start, start + duration});
  }
  std::vector<double> quote_us;
  std::vector<std::pair<std::int64_t, std::int64_t>> answers;
  std::size_t fits = 0;
  for (const Window& w : windows) {
    const auto t = std::chrono::steady_clock::now();
    auto q = cal->quote(names[static_cast<std::size_t>(w.type)], kQuoteGpus, hour(w.start_hour), hour(w.end_hour));
    quote_us.push_back(micros_since(t));
    if (!q.is_ok()) {
      std::fprintf(stderr, "quote: %s\n", q.status().to_string().c_str());
      return 1;
    }
    fits += q->fits ? 1 : 0;
    answers.emplace_back(q->available, (q->tightest_hour.unix_micros - kT0.unix_micros) / kMicrosPerHour);
  }

  // 2. The naive baseline on the first windows.
  std::vector<double> naive_us;
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < kNaiveQuotes; ++i) {
    const Window& w = windows[i];
    const auto t = std::chrono::steady_clock::now();
    auto least = naive_least(booked, forecast, names[static_cast<std::size_t>(w.type)], w);
    naive_us.push_back(micros_since(t));
    if (least != answers[i]) ++mismatches;
  }
  std::vector<double> quote_same_us(quote_us.begin(), quote_us.begin() + kNaiveQuotes);

  // 3. book + release pairs, of blocks that fit.
  std::vector<double> pair_us;
  std::size_t pairs_skipped = 0;
  for (std::size_t i = 0; i < kBookPairs; ++i) {
    Block b = random_block("pair" + std::to_string(i));
    auto avail = cal->quote(b.gpu_type, 1, b.start, b.end);
    if (!avail.is_ok() || avail->available == 0) {
      ++pairs_skipped;
      continue;
    }
    b.gpus = std::min(b.gpus, avail->available);
    const auto t = std::chrono::steady_clock::now();
    headroom::Status s = cal->book(b);
    headroom::Status r = cal->release(b.id);
    pair_us.push_back(micros_since(t));
    if (!s.is_ok() || !r.is_ok()) {
      std::fprintf(stderr, "book/release: %s / %s\n", s.to_string().c_str(), r.to_string().c_str());
      return 1;
    }
  }

  // 4. Refused books.
  std::vector<double> refused_us;
  for (std::size_t i = 0; i < kBookPairs; ++i) {
    Block b = random_block("refused" + std::to_string(i));
    const auto t = std::chrono::steady_clock::now();
    headroom::Status s = cal->book(b);
    const double us = micros_since(t);
    if (s.is_ok()) {
      (void)cal->release(b.id);
    } else {
      refused_us.push_back(us);
    }
  }

  const Stats q = stats(quote_us);
  const Stats qs = stats(quote_same_us);
  const Stats n = stats(naive_us);
  const Stats p = stats(pair_us);
  const Stats r = stats(refused_us);
  std::printf("quote_bench: %d types x %u GPUs = %u GPUs, %d-hour calendar, %zu forecast entries\n", kTypes,
              kGpusPerType, kTypes * kGpusPerType, kHorizonHours, forecast.size());
  std::printf("filled: %zu blocks booked of %zu tries, %.1f%% of sellable GPU-hours booked\n", booked.size(), tries,
              100.0 * static_cast<double>(booked_gpu_hours) / sellable_gpu_hours);
  std::printf("quotes of %u GPUs: %zu of %zu fit\n\n", kQuoteGpus, fits, windows.size());
  std::printf("%-34s %8s %10s %10s %10s %10s\n", "what", "count", "median_us", "p99_us", "mean_us", "max_us");
  auto row = [](const char* what, std::size_t count, const Stats& s) {
    std::printf("%-34s %8zu %10.2f %10.2f %10.2f %10.2f\n", what, count, s.median_us, s.p99_us, s.mean_us, s.max_us);
  };
  row("quote (all windows)", quote_us.size(), q);
  row("quote (first 100 windows)", quote_same_us.size(), qs);
  row("naive (first 100 windows)", naive_us.size(), n);
  row("book+release (fitting blocks)", pair_us.size(), p);
  row("book (refused, conflict)", refused_us.size(), r);
  std::printf("(book+release: %zu windows with nothing free skipped)\n", pairs_skipped);
  std::printf("\nnaive / quote, medians on the same %zu windows: %.0fx; naive answers that differ: %zu\n", kNaiveQuotes,
              qs.median_us > 0 ? n.median_us / qs.median_us : 0.0, mismatches);
  std::printf("goal: quote <= 5000 us: p99 %.2f us -> %s\n", q.p99_us, q.p99_us <= 5000 ? "met" : "NOT met");
  return mismatches == 0 ? 0 : 1;
}
