// A fixed pool of threads for the engine's data-parallel loops.
//
// Decoding one token runs dozens of small parallel loops (a matvec per
// weight matrix, attention over heads), each only microseconds long, so the
// cost that matters is dispatch latency, not throughput of a queue. The pool
// therefore has no queue: parallel_for() publishes one loop, the calling
// thread takes chunks of it beside the workers, and it returns once every
// chunk has run. Idle workers spin on the published loop for `spin_us`
// (the gaps between a token's loops are shorter than that, so a busy decode
// never pays a wake-up), then sleep on a futex until the next loop.
//
// One pool is shared by an engine. It is safe to call parallel_for() from
// any thread; one loop runs on the workers at a time. A call made while the
// pool is busy (from inside a running chunk, i.e. a nested call, or from
// another thread during someone else's loop) runs its whole range on its own
// calling thread instead of waiting: it never deadlocks and never
// oversubscribes the cores.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace headroom::infer {

inline constexpr std::size_t kMaxPoolThreads = 256;       // the calling thread included
inline constexpr std::size_t kMaxChunksPerLoop = 0xffff;  // fits the claim word's 16-bit fields
inline constexpr std::size_t kChunksPerThread = 4;        // load balance against one slow core
static_assert(kMaxPoolThreads * kChunksPerThread <= kMaxChunksPerLoop);

struct ThreadPoolOptions {
  // Threads that run a loop, the calling thread included: threads - 1
  // workers are started. 1 (or 0) runs every loop on the caller.
  std::size_t threads = 1;
  // How long an idle worker keeps polling for the next loop before it
  // sleeps. 0 sleeps at once (each loop then pays a futex wake-up).
  std::int64_t spin_us = 200;
};

class ThreadPool {
 public:
  explicit ThreadPool(ThreadPoolOptions options = {});
  // Stops and joins the workers. No parallel_for() may be running or start.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // The threads that run a loop, the caller included (>= 1).
  std::size_t threads() const { return workers_.size() + 1; }

  // Calls fn(begin, end) on disjoint ranges that together cover [0, count)
  // exactly once, from the pool's workers and the calling thread, and
  // returns when all have returned. Each range holds at least `grain`
  // indices (or is the whole of a shorter count), and there are at most
  // threads() * kChunksPerThread of them; which thread runs which range is
  // not fixed. fn must not throw (an exception terminates the process).
  template <typename Fn>
  void parallel_for(std::size_t count, std::size_t grain, Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run(
        count, grain,
        [](void* context, std::size_t begin, std::size_t end) noexcept { (*static_cast<F*>(context))(begin, end); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }
  template <typename Fn>
  void parallel_for(std::size_t count, Fn&& fn) {
    parallel_for(count, 1, std::forward<Fn>(fn));
  }

 private:
  using Task = void (*)(void* context, std::size_t begin, std::size_t end) noexcept;

  void run(std::size_t count, std::size_t grain, Task task, void* context);
  void worker_main();
  // Claims and runs chunks of the published loop until none is left;
  // returns whether it ran any.
  bool run_chunks();
  bool has_unclaimed_chunk() const;

  const std::int64_t spin_us_;
  std::vector<std::thread> workers_;

  // The published loop, on one cache line so that a worker's first miss
  // brings all of it. claim is epoch (32 bits) | next chunk (16) | chunk
  // count (16); a chunk is claimed by a compare-exchange that moves `next`
  // on. The other fields are written before claim (release) and only read
  // after a successful claim; they cannot be replaced before that chunk is
  // counted in done_, so a late worker never runs a stale loop.
  struct alignas(64) Loop {
    std::atomic<std::uint64_t> claim{0};
    Task task = nullptr;
    void* context = nullptr;
    std::size_t count = 0;
    std::size_t chunk = 0;
  };
  Loop loop_;
  alignas(64) std::atomic<std::uint32_t> done_{0};  // chunks finished of the published loop
  alignas(64) std::atomic<bool> busy_{false};       // a loop is running (the caller's line)
  std::uint32_t epoch_ = 0;
  alignas(64) std::atomic<std::uint32_t> sleepers_{0};  // workers asleep (or about to be) on wake_
  std::atomic<std::uint32_t> wake_{0};                  // bumped to wake sleepers (a futex word)
  std::atomic<bool> stop_{false};
};

}  // namespace headroom::infer
