// A fixed pool of threads for the engine's data-parallel loops.
//
// Decoding one token runs dozens of small parallel loops (a matvec per
// weight matrix, attention over heads), each only microseconds long, so the
// cost that matters is dispatch latency, not throughput of a queue. The pool
// therefore has no queue: parallel_for() publishes one loop, the calling
// thread works on it beside the workers, and it returns once every index
// has run. Idle workers spin on the published loop for `spin_us` (the gaps
// between a token's loops are shorter than that, so a busy decode never pays
// a wake-up), then sleep on a futex until the next loop.
//
// Each thread owns a contiguous share of a loop and takes it front to back,
// a quarter of what is left at a time, on its own cache line; a thread that
// runs out takes blocks of `grain` indices from the back of another's share. So in the usual case no line
// moves between cores while a loop runs, and a thread streams one
// contiguous run of weights (the prefetcher's best case), while one slow
// or preempted core still gets help. (Shared chunks claimed from one word
// cost decode about a tenth: the word's line moved at every claim, and
// each chunk's boundary wasted the kernels' prefetch run-ahead.)
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

inline constexpr std::size_t kMaxPoolThreads = 256;  // the calling thread included

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
  // indices (or is the whole of a shorter count); which thread runs which
  // range is not fixed. fn must not throw (an exception terminates the
  // process).
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
  void worker_main(std::size_t self);
  // Runs blocks of the published loop, its own share first, then stolen
  // ones, until none is left; counts them in done_.
  void work(std::size_t self);
  bool take_own(std::size_t self, std::uint64_t& first, std::uint64_t& last);
  bool steal(std::size_t self, std::uint64_t& first, std::uint64_t& last);

  const std::int64_t spin_us_;
  std::vector<std::thread> workers_;

  // The published loop, written by its caller before the shares and the
  // generation (release), read by a thread only after it has taken a block
  // (acquire): the loop cannot change before that block is counted done.
  // Indices go in blocks of `grain` (the last block takes the remainder).
  struct alignas(64) Loop {
    Task task = nullptr;
    void* context = nullptr;
    std::size_t count = 0;
    std::size_t grain = 0;
    std::size_t blocks = 0;
  };
  Loop loop_;
  // Each thread's share of the blocks not taken yet: first << 32 | end,
  // stored by the loop's caller, then changed only by compare-exchanges: its
  // owner takes from the front, a thief from the back, so a block is run
  // once. The value is the whole state (a thread that took a share's value
  // takes exactly those blocks), and a late thread's exchange on a new loop's
  // share takes that loop's blocks, whose task it reads after: no epoch needed.
  struct alignas(64) Share {
    std::atomic<std::uint64_t> range{0};
  };
  std::vector<Share> shares_;                       // [0] the caller's, [i] worker i's
  alignas(64) std::atomic<std::uint32_t> generation_{0};  // bumped when a loop is published
  alignas(64) std::atomic<std::size_t> done_{0};         // blocks finished of the published loop
  alignas(64) std::atomic<bool> busy_{false};            // a loop is running (the caller's line)
  alignas(64) std::atomic<std::uint32_t> sleepers_{0};   // workers asleep (or about to be) on generation_
  std::atomic<bool> stop_{false};
};

}  // namespace headroom::infer
