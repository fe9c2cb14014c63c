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

constexpr std::uint64_t pack(std::uint32_t epoch, std::uint64_t next, std::uint64_t total) {
  return (static_cast<std::uint64_t>(epoch) << 32) | (next << 16) | total;
}
constexpr std::uint64_t next_of(std::uint64_t word) { return (word >> 16) & 0xffff; }
constexpr std::uint64_t total_of(std::uint64_t word) { return word & 0xffff; }
constexpr std::uint64_t kOneChunk = std::uint64_t{1} << 16;

// Polls between clock reads while spinning: a clock read costs about as much
// as a few pauses.
constexpr int kPollsPerClockRead = 64;
// The caller's wait for the last chunks: this many polls, then it yields the
// core each poll (a worker may have been preempted mid-chunk).
constexpr int kCallerPollsBeforeYield = 1 << 14;

}  // namespace

ThreadPool::ThreadPool(ThreadPoolOptions options) : spin_us_(std::max<std::int64_t>(0, options.spin_us)) {
  const std::size_t threads = std::clamp<std::size_t>(options.threads, 1, kMaxPoolThreads);
  workers_.reserve(threads - 1);
  for (std::size_t i = 0; i + 1 < threads; ++i) workers_.emplace_back([this] { worker_main(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  wake_.fetch_add(1, std::memory_order_seq_cst);
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run(std::size_t count, std::size_t grain, Task task, void* context) {
  if (count == 0) return;
  grain = std::max<std::size_t>(grain, 1);
  const std::size_t max_chunks = std::min(threads() * kChunksPerThread, kMaxChunksPerLoop);
  // floor(count / grain) chunks at most, so each holds at least `grain` indices.
  std::size_t chunks = std::min(count / grain, max_chunks);
  // One chunk, no workers, or the pool busy (a nested call, or another
  // thread's loop): the caller runs it all.
  if (chunks <= 1 || workers_.empty() || busy_.exchange(true, std::memory_order_acquire)) {
    task(context, 0, count);
    return;
  }
  const std::size_t chunk = (count + chunks - 1) / chunks;
  chunks = (count + chunk - 1) / chunk;

  // Publish: the loop first, then the claim word that opens it (release).
  loop_.task = task;
  loop_.context = context;
  loop_.count = count;
  loop_.chunk = chunk;
  done_.store(0, std::memory_order_relaxed);
  ++epoch_;
  loop_.claim.store(pack(epoch_, 0, chunks), std::memory_order_seq_cst);
  // A worker counts itself in sleepers_ before its last look at the claim, so
  // either it sees this loop or this sees it (both seq_cst).
  if (sleepers_.load(std::memory_order_seq_cst) != 0) {
    wake_.fetch_add(1, std::memory_order_seq_cst);
    wake_.notify_all();
  }

  run_chunks();
  for (int polls = 0; done_.load(std::memory_order_acquire) != chunks; ++polls) {
    if (polls < kCallerPollsBeforeYield) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  busy_.store(false, std::memory_order_release);
}

bool ThreadPool::has_unclaimed_chunk() const {
  const std::uint64_t word = loop_.claim.load(std::memory_order_relaxed);
  return next_of(word) < total_of(word);
}

bool ThreadPool::run_chunks() {
  bool ran = false;
  std::uint64_t word = loop_.claim.load(std::memory_order_acquire);
  while (next_of(word) < total_of(word)) {
    if (!loop_.claim.compare_exchange_weak(word, word + kOneChunk, std::memory_order_acquire,
                                           std::memory_order_acquire)) {
      continue;  // word now holds the current value
    }
    // Chunk next_of(word) is ours; the loop cannot change until we count it done.
    const std::size_t begin = next_of(word) * loop_.chunk;
    const std::size_t end = std::min(loop_.count, begin + loop_.chunk);
    loop_.task(loop_.context, begin, end);
    done_.fetch_add(1, std::memory_order_release);
    ran = true;
    word = loop_.claim.load(std::memory_order_acquire);
  }
  return ran;
}

void ThreadPool::worker_main() {
  for (;;) {
    if (run_chunks()) continue;
    if (stop_.load(std::memory_order_relaxed)) return;
    // Spin for the next loop a while: decode's loops come microseconds apart.
    bool found = false;
    if (spin_us_ > 0) {
      const auto deadline = Clock::now() + std::chrono::microseconds(spin_us_);
      while (!found) {
        for (int i = 0; i < kPollsPerClockRead && !found; ++i) {
          cpu_relax();
          found = has_unclaimed_chunk() || stop_.load(std::memory_order_relaxed);
        }
        if (Clock::now() >= deadline) break;
      }
    }
    if (found) continue;
    // Sleep until a loop is published (or the pool stops).
    const std::uint32_t seen = wake_.load(std::memory_order_seq_cst);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    const std::uint64_t word = loop_.claim.load(std::memory_order_seq_cst);
    if (next_of(word) >= total_of(word) && !stop_.load(std::memory_order_seq_cst)) wake_.wait(seen);
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

}  // namespace headroom::infer
