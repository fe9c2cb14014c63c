#include "infer/kernels/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "common/check.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace headroom::infer {
namespace {

using Clock = std::chrono::steady_clock;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

constexpr std::uint64_t pack(std::uint64_t first, std::uint64_t end) { return first << 32 | end; }
constexpr std::uint64_t first_of(std::uint64_t range) { return range >> 32; }
constexpr std::uint64_t end_of(std::uint64_t range) { return range & 0xffffffff; }
constexpr std::size_t kMaxBlocks = 0xffffffff;
constexpr std::uint64_t kClaimFraction = 4;  // an owner claims 1/4 of what its share has left

// Polls between clock reads while spinning: a clock read costs about as much
// as a few pauses.
constexpr int kPollsPerClockRead = 64;
// The caller's wait for the last blocks: this many polls, then it yields the
// core each poll (a worker may have been preempted mid-block).
constexpr int kCallerPollsBeforeYield = 1 << 14;

}  // namespace

ThreadPool::ThreadPool(ThreadPoolOptions options)
    : spin_us_(std::max<std::int64_t>(0, options.spin_us)),
      shares_(std::clamp<std::size_t>(options.threads, 1, kMaxPoolThreads)) {
  const std::size_t threads = shares_.size();
  workers_.reserve(threads - 1);
  for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run(std::size_t count, std::size_t grain, Task task, void* context) {
  if (count == 0) return;
  grain = std::max({grain, std::size_t{1}, (count + kMaxBlocks - 1) / kMaxBlocks});
  // floor(count / grain) blocks, so each holds at least `grain` indices.
  const std::size_t blocks = count / grain;
  // One block, no workers, or the pool busy (a nested call, or another
  // thread's loop): the caller runs it all.
  if (blocks <= 1 || workers_.empty() || busy_.exchange(true, std::memory_order_acquire)) {
    task(context, 0, count);
    return;
  }
  // Publish: the loop, then each share (release: a stale thief that takes
  // from it sees this loop), then the generation that wakes the workers.
  loop_.task = task;
  loop_.context = context;
  loop_.count = count;
  loop_.grain = grain;
  loop_.blocks = blocks;
  done_.store(0, std::memory_order_relaxed);
  const std::size_t threads = shares_.size();
  for (std::size_t t = 0; t < threads; ++t) {
    shares_[t].range.store(pack(blocks * t / threads, blocks * (t + 1) / threads), std::memory_order_release);
  }
  generation_.fetch_add(1, std::memory_order_seq_cst);
  // A worker counts itself in sleepers_ before its last look at the
  // generation, so either it sees this loop or this sees it (both seq_cst).
  if (sleepers_.load(std::memory_order_seq_cst) != 0) generation_.notify_all();

  work(0);
  for (int polls = 0; done_.load(std::memory_order_acquire) != blocks; ++polls) {
    if (polls < kCallerPollsBeforeYield) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  busy_.store(false, std::memory_order_release);
}

// Takes the next blocks of this thread's share: a quarter of what is left
// (at least one), so that a share goes in a few claims whose ranges are
// long (a kernel may work several rows at a time), and the last, small
// ones leave a thief little to wait for.
bool ThreadPool::take_own(std::size_t self, std::uint64_t& first, std::uint64_t& last) {
  std::atomic<std::uint64_t>& range = shares_[self].range;
  std::uint64_t r = range.load(std::memory_order_acquire);
  while (first_of(r) < end_of(r)) {
    const std::uint64_t take = std::max<std::uint64_t>(1, (end_of(r) - first_of(r)) / kClaimFraction);
    if (range.compare_exchange_weak(r, pack(first_of(r) + take, end_of(r)), std::memory_order_acquire,
                                    std::memory_order_acquire)) {
      first = first_of(r);
      last = first + take;
      return true;
    }
  }
  return false;
}

// Takes the last block of the fullest other share. Shares are written only
// by compare-exchanges once published (a thread keeps what it steals rather
// than moving it to its own share, which the next loop's publishing could
// overwrite), so a block is run once.
bool ThreadPool::steal(std::size_t self, std::uint64_t& first, std::uint64_t& last) {
  const std::size_t threads = shares_.size();
  for (;;) {
    std::size_t victim = self;
    std::uint64_t seen = 0, most = 0;
    for (std::size_t i = 1; i < threads; ++i) {
      const std::size_t t = (self + i) % threads;
      const std::uint64_t r = shares_[t].range.load(std::memory_order_relaxed);
      if (first_of(r) < end_of(r) && end_of(r) - first_of(r) > most) {
        victim = t;
        seen = r;
        most = end_of(r) - first_of(r);
      }
    }
    if (victim == self) return false;
    if (shares_[victim].range.compare_exchange_strong(seen, pack(first_of(seen), end_of(seen) - 1),
                                                      std::memory_order_acquire, std::memory_order_relaxed)) {
      first = end_of(seen) - 1;
      last = end_of(seen);
      return true;
    }
  }
}

void ThreadPool::work(std::size_t self) {
  std::size_t ran = 0;
  std::uint64_t first = 0, last = 0;
  while (take_own(self, first, last) || steal(self, first, last)) {
    // Blocks [first, last) are ours: the loop cannot change until they are counted done.
    const std::size_t begin = first * loop_.grain;
    const std::size_t end = last == loop_.blocks ? loop_.count : last * loop_.grain;
    loop_.task(loop_.context, begin, end);
    ran += last - first;
  }
  if (ran > 0) done_.fetch_add(ran, std::memory_order_release);
}

void ThreadPool::worker_main(std::size_t self) {
  std::uint32_t seen = 0;  // the generation before the first loop
  for (;;) {
    // Spin for the next loop a while: decode's loops come microseconds apart.
    std::uint32_t now = generation_.load(std::memory_order_acquire);
    if (now == seen && spin_us_ > 0) {
      const auto deadline = Clock::now() + std::chrono::microseconds(spin_us_);
      while (now == seen) {
        for (int i = 0; i < kPollsPerClockRead && now == seen; ++i) {
          cpu_relax();
          now = generation_.load(std::memory_order_acquire);
        }
        if (Clock::now() >= deadline) break;
      }
    }
    if (now == seen) {
      // Sleep until a loop is published (or the pool stops).
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      now = generation_.load(std::memory_order_seq_cst);
      if (now == seen) generation_.wait(seen, std::memory_order_seq_cst);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      now = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = now;
    work(self);
  }
}

}  // namespace headroom::infer
