#include "common/random.h"

#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "common/check.h"

namespace headroom {

std::uint64_t Random::next_u64() {
  std::uint64_t value;
  std::uint8_t bytes[sizeof value];
  fill(bytes);
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

namespace {

// A CSPRNG that cannot produce bytes would produce guessable keys: crash.
void rand_bytes(std::uint8_t* out, std::size_t n) {
  CHECK(RAND_bytes(out, static_cast<int>(n)) == 1) << "RAND_bytes failed";
}

// Bumped in a forked child, so that no thread there serves bytes its
// parent may also serve.
std::atomic<std::uint64_t> fork_generation{0};

// Each thread's unserved bytes from one RAND_bytes call: ids are asked for
// a few bytes at a time, once or more a request, and each RAND_bytes call
// costs a getpid() system call (OpenSSL's own fork check) and a lock.
struct Pool {
  static constexpr std::size_t kBytes = 512;
  std::uint8_t bytes[kBytes];
  std::size_t served = kBytes;
  std::uint64_t generation = 0;
  ~Pool() { OPENSSL_cleanse(bytes, sizeof bytes); }
};

}  // namespace

void SecureRandom::fill(std::span<std::uint8_t> out) {
  static std::once_flag at_fork;
  std::call_once(at_fork, [] { pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1); }); });
  if (out.empty()) return;  // memcpy from or to null is undefined, even of nothing
  if (out.size() > Pool::kBytes / 4) {
    rand_bytes(out.data(), out.size());
    return;
  }
  thread_local Pool pool;
  const std::uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (pool.generation != generation || Pool::kBytes - pool.served < out.size()) {
    rand_bytes(pool.bytes, Pool::kBytes);
    pool.served = 0;
    pool.generation = generation;
  }
  std::memcpy(out.data(), pool.bytes + pool.served, out.size());
  // Wiped as served: no copy of a key lingers here.
  OPENSSL_cleanse(pool.bytes + pool.served, out.size());
  pool.served += out.size();
}

void SeededRandom::fill(std::span<std::uint8_t> out) {
  std::lock_guard lock(mutex_);
  std::size_t i = 0;
  while (i < out.size()) {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for (int b = 0; b < 8 && i < out.size(); ++b, ++i) out[i] = static_cast<std::uint8_t>(z >> (8 * b));
  }
}

}  // namespace headroom
