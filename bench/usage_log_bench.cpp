// Issue 4, Benchmark: durable usage events per second, in-process, beside
// SQLite inserting the same records in the same run.
//
//   usage_log_bench [--seconds S] [--producers N] [--batch B] [--dir DIR]
//     (defaults: 3 s a round, 64 producers, batches of 1 and of 100, a fresh
//     directory under $TMPDIR or /tmp)
//
// Each round runs N producer threads for S seconds; each calls record() in
// a loop with a batch of B events (B = 1, then 100) and times each call:
// the call returns once its events are acknowledged, i.e. on disk.
//   - UsageLog: the events are appended to the usage log; one writer thread
//     writes whatever is queued with one pwrite and one fdatasync (group
//     commit), then wakes the callers.
//   - SQLite: the same events inserted into one table (id TEXT PRIMARY KEY,
//     the same columns as the store's usage_events) through one connection
//     in WAL mode with synchronous=FULL, one transaction per record() call
//     (BEGIN IMMEDIATE; INSERT ... ON CONFLICT (id) DO NOTHING per event;
//     COMMIT), the connection shared by the producers under a mutex as the
//     store shares its own (sqlite_usage_baseline.h, which usage_http_bench
//     shares).
// Events per second = acknowledged events / round time; the latency figures
// are those of the record() calls (p50, p99). Each event is a GPU-time event
// with a 24-byte id; every id is new (retries are measured by the crash
// harness, tests/crash). Both stores write to the same directory's disk.
// The goal: >= 500,000 events/s in-process.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ledger/usage_log.h"
#include "sqlite_usage_baseline.h"

namespace {

using headroom::Money;
using headroom::Status;
using headroom::Timestamp;
using namespace headroom::ledger;
using SteadyClock = std::chrono::steady_clock;

struct Figures {
  double events_per_s = 0;
  double p50_us = 0, p99_us = 0;
  std::uint64_t events = 0;
  std::uint64_t syncs = 0;  // UsageLog only
};

// Producer p's n-th event, made in place in a reused event (no allocation
// once its strings have grown): id "p<3 digits>-<20 digits>".
void make_event(UsageEvent& e, int producer, std::uint64_t n) {
  char id[32];
  std::snprintf(id, sizeof id, "p%03d-%020llu", producer, static_cast<unsigned long long>(n));
  e.id.assign(id);
  e.tenant_id.assign("ten_");
  e.tenant_id += static_cast<char>('a' + (n + producer) % 20);
  e.product = Product::kGpuTime;
  e.item.assign("h100");
  e.variant.assign("spot");
  e.quantity = 60'000 + static_cast<std::int64_t>(n % 1000);
  e.unit_price = Money::from_nanos(800'000'000);
  e.start = Timestamp::from_unix_millis(1'767'225'600'000 + static_cast<std::int64_t>(n) * 60'000);
  e.end = e.start.plus_seconds(60);
  e.source_id.assign("job_");
  e.source_id.append(id + 1, 3);
}

// Runs `producers` threads calling sink(batch) for `seconds`; returns the figures.
Figures run_round(int producers, std::size_t batch, double seconds,
                  const std::function<Status(std::span<const UsageEvent>)>& sink) {
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::vector<std::vector<std::uint32_t>> latencies_ns(producers);
  std::vector<std::uint64_t> counts(producers, 0);
  std::vector<std::thread> threads;
  auto started = SteadyClock::now();
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      std::vector<UsageEvent> events(batch);
      std::vector<std::uint32_t>& lat = latencies_ns[p];
      lat.reserve(1 << 16);
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (UsageEvent& e : events) make_event(e, p, n++);
        auto t0 = SteadyClock::now();
        Status s = sink(events);
        auto t1 = SteadyClock::now();
        if (!s.is_ok()) {
          std::fprintf(stderr, "record: %s\n", s.to_string().c_str());
          failed = true;
          return;
        }
        lat.push_back(static_cast<std::uint32_t>(
            std::min<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count(), UINT32_MAX)));
        counts[p] += batch;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(SteadyClock::now() - started).count();
  if (failed) std::exit(1);

  Figures f;
  std::vector<std::uint32_t> all;
  for (int p = 0; p < producers; ++p) {
    f.events += counts[p];
    all.insert(all.end(), latencies_ns[p].begin(), latencies_ns[p].end());
  }
  f.events_per_s = static_cast<double>(f.events) / elapsed;
  if (!all.empty()) {
    auto at = [&](double q) {
      std::size_t i = std::min(all.size() - 1, static_cast<std::size_t>(q * static_cast<double>(all.size())));
      std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(i), all.end());
      return all[i] / 1000.0;
    };
    f.p50_us = at(0.50);
    f.p99_us = at(0.99);
  }
  return f;
}

Figures bench_usage_log(const std::string& dir, int producers, std::size_t batch, double seconds) {
  // The id index sized for the round up front, so that no rehash lands in it.
  auto expected = static_cast<std::size_t>(seconds * 5'000'000);
  auto opened = UsageLog::open({.dir = dir, .expected_events = expected});
  if (!opened) {
    std::fprintf(stderr, "UsageLog::open: %s\n", opened.status().to_string().c_str());
    std::exit(1);
  }
  UsageLog& log = **opened;
  Figures f =
      run_round(producers, batch, seconds, [&](std::span<const UsageEvent> events) { return log.record(events); });
  f.syncs = log.log_stats().syncs;
  if (log.totals().events != f.events) {
    std::fprintf(stderr, "usage log holds %llu events, %llu were acknowledged\n",
                 static_cast<unsigned long long>(log.totals().events), static_cast<unsigned long long>(f.events));
    std::exit(1);
  }
  return f;
}

Figures bench_sqlite(const std::string& path, int producers, std::size_t batch, double seconds) {
  headroom::bench::SqliteUsageBaseline sqlite(path, "");
  std::mutex mu;
  return run_round(producers, batch, seconds, [&](std::span<const UsageEvent> events) {
    std::lock_guard lock(mu);
    sqlite.begin();
    for (const UsageEvent& e : events) {
      sqlite.insert({.id = e.id,
                     .tenant_id = e.tenant_id,
                     .product = static_cast<int>(e.product),
                     .item = e.item,
                     .variant = e.variant,
                     .quantity = e.quantity,
                     .unit_nanos = e.unit_price.nanos(),
                     .start_us = e.start.unix_micros,
                     .end_us = e.end.unix_micros,
                     .source_id = e.source_id});
    }
    sqlite.commit();
    return Status::ok();
  });
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int producers = 64;
  std::string dir;
  std::vector<std::size_t> batches;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (arg == "--producers" && i + 1 < argc) {
      producers = std::atoi(argv[++i]);
    } else if (arg == "--batch" && i + 1 < argc) {
      batches.push_back(static_cast<std::size_t>(std::atol(argv[++i])));
    } else if (arg == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fprintf(stderr, "usage: usage_log_bench [--seconds S] [--producers N] [--batch B] [--dir DIR]\n");
      return 2;
    }
  }
  bool made_dir = dir.empty();
  if (made_dir) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/usage_log_bench_XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = pattern;
  }
  std::printf("durable usage events: %d producers, %.1f s a round, in %s\n", producers, seconds, dir.c_str());
  std::printf("%-34s %6s %14s %10s %10s %14s\n", "store", "batch", "events/s", "p50 ms", "p99 ms", "events/fsync");
  if (batches.empty()) batches = {1, 100};
  for (std::size_t batch : batches) {
    std::string round = dir + "/round-" + std::to_string(batch);
    std::filesystem::create_directories(round);
    Figures ours = bench_usage_log(round + "/usage", producers, batch, seconds);
    std::printf("%-34s %6zu %14.0f %10.3f %10.3f %14.1f\n", "UsageLog (group commit, fdatasync)", batch,
                ours.events_per_s, ours.p50_us / 1000, ours.p99_us / 1000,
                ours.syncs ? static_cast<double>(ours.events) / static_cast<double>(ours.syncs) : 0.0);
    Figures lite = bench_sqlite(round + "/sqlite.db", producers, batch, seconds);
    std::printf("%-34s %6zu %14.0f %10.3f %10.3f %14.1f\n", "SQLite (WAL, synchronous=FULL)", batch, lite.events_per_s,
                lite.p50_us / 1000, lite.p99_us / 1000, static_cast<double>(batch));
    std::printf("  batch %zu: UsageLog / SQLite = %.1fx events/s; p99 %.1fx lower%s\n", batch,
                ours.events_per_s / lite.events_per_s, lite.p99_us / ours.p99_us,
                batch == 100 ? (ours.events_per_s >= 500'000 ? "; goal >= 500,000 events/s: met"
                                                             : "; goal >= 500,000 events/s: NOT met")
                             : "");
    std::filesystem::remove_all(round);
  }
  if (made_dir) std::filesystem::remove_all(dir);
  return 0;
}
