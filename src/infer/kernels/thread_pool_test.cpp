#include "infer/kernels/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace headroom::infer {
namespace {

// Records every index given out and every chunk's size.
struct Coverage {
  explicit Coverage(std::size_t count) : hits(count) {}
  std::vector<std::atomic<int>> hits;
  std::atomic<std::size_t> chunks{0};
  std::atomic<std::size_t> small_chunks{0};  // chunks shorter than the grain
  void record(std::size_t begin, std::size_t end, std::size_t grain) {
    ASSERT_LT(begin, end);
    ASSERT_LE(end, hits.size());
    for (std::size_t i = begin; i < end; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
    chunks.fetch_add(1);
    if (end - begin < grain) small_chunks.fetch_add(1);
  }
};

TEST(ThreadPool, ThreadsCountsTheCaller) {
  EXPECT_EQ(ThreadPool({.threads = 0}).threads(), 1u);
  EXPECT_EQ(ThreadPool({.threads = 1}).threads(), 1u);
  EXPECT_EQ(ThreadPool({.threads = 3}).threads(), 3u);
}

TEST(ThreadPool, EveryIndexExactlyOnce) {
  for (std::size_t threads : {1u, 2u, 3u, 4u, 8u}) {
    ThreadPool pool({.threads = threads});
    for (std::size_t count : {0u, 1u, 2u, 3u, 7u, 10u, 15u, 64u, 1000u, 1999u, 100'003u}) {
      for (std::size_t grain : {1u, 7u, 1000u}) {
        Coverage coverage(count);
        pool.parallel_for(count, grain,
                          [&](std::size_t begin, std::size_t end) { coverage.record(begin, end, grain); });
        for (std::size_t i = 0; i < count; ++i) {
          ASSERT_EQ(coverage.hits[i].load(), 1) << "threads " << threads << " count " << count << " index " << i;
        }
        EXPECT_LE(coverage.chunks.load(), std::max<std::size_t>(1, count / grain));
        EXPECT_EQ(coverage.small_chunks.load(), count > 0 && count < grain ? 1u : 0u) << count << " " << grain;
      }
    }
  }
}

TEST(ThreadPool, ManySmallDispatches) {
  // Decode's pattern: many tiny loops back to back, with workers spinning
  // (the default) and with workers sleeping between loops (spin_us = 0);
  // with more threads than cores, threads are preempted mid-loop, so others
  // take their blocks, and come back late to the next loop's shares.
  for (std::size_t threads : {2u, 5u}) {
    for (std::int64_t spin_us : {200, 0}) {
      ThreadPool pool({.threads = threads, .spin_us = spin_us});
      const int loops = spin_us > 0 ? 100'000 / static_cast<int>(threads) : 5'000;
      std::atomic<std::uint64_t> sum{0};
      for (int loop = 0; loop < loops; ++loop) {
        pool.parallel_for(7, [&](std::size_t begin, std::size_t end) {
          for (std::size_t i = begin; i < end; ++i) sum.fetch_add(i + 1, std::memory_order_relaxed);
        });
      }
      EXPECT_EQ(sum.load(), static_cast<std::uint64_t>(loops) * 28) << threads << " threads, spin_us " << spin_us;
    }
  }
}

TEST(ThreadPool, WorkersShareALoop) {
  // Each chunk waits until a second thread has taken one: the loop can only
  // finish if a worker runs beside the caller.
  ThreadPool pool({.threads = 2});
  std::mutex mutex;
  std::set<std::thread::id> seen;
  std::atomic<int> entered{0};
  pool.parallel_for(8, [&](std::size_t, std::size_t) {
    {
      std::lock_guard lock(mutex);
      if (seen.insert(std::this_thread::get_id()).second) entered.fetch_add(1);
    }
    for (int polls = 0; entered.load() < 2 && polls < 10'000'000; ++polls) std::this_thread::yield();
  });
  EXPECT_EQ(entered.load(), 2);
}

TEST(ThreadPool, NestedCallsRunOnTheCallingThread) {
  ThreadPool pool({.threads = 4});
  constexpr std::size_t kOuter = 16, kInner = 33;
  std::vector<std::atomic<int>> hits(kOuter * kInner);
  std::atomic<int> foreign{0};
  pool.parallel_for(kOuter, [&](std::size_t begin, std::size_t end) {
    for (std::size_t o = begin; o < end; ++o) {
      const auto outer_thread = std::this_thread::get_id();
      pool.parallel_for(kInner, [&](std::size_t b, std::size_t e) {
        if (std::this_thread::get_id() != outer_thread) foreign.fetch_add(1);
        for (std::size_t i = b; i < e; ++i) hits[o * kInner + i].fetch_add(1);
      });
    }
  });
  for (auto& hit : hits) EXPECT_EQ(hit.load(), 1);
  EXPECT_EQ(foreign.load(), 0);
}

TEST(ThreadPool, ConcurrentCallersEachGetTheirWholeRange) {
  ThreadPool pool({.threads = 3});
  constexpr int kCallers = 4, kLoops = 2'000;
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&] {
      for (int loop = 0; loop < kLoops; ++loop) {
        std::atomic<std::size_t> sum{0};
        pool.parallel_for(100, [&](std::size_t begin, std::size_t end) {
          for (std::size_t i = begin; i < end; ++i) sum.fetch_add(i);
        });
        if (sum.load() != 4950) wrong.fetch_add(1);
      }
    });
  }
  for (auto& caller : callers) caller.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(ThreadPool, DestroysWithSleepingAndSpinningWorkers) {
  for (std::int64_t spin_us : {0, 1'000'000}) {
    ThreadPool pool({.threads = 4, .spin_us = spin_us});
    std::atomic<int> ran{0};
    pool.parallel_for(16, [&](std::size_t begin, std::size_t end) { ran.fetch_add(static_cast<int>(end - begin)); });
    EXPECT_EQ(ran.load(), 16);
  }  // joins here; a hang would time the test out
}

}  // namespace
}  // namespace headroom::infer
