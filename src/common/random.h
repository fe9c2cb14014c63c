// Random: randomness is an input, like time.
//
// Secrets (API keys) come from SecureRandom; the simulator and tests use
// SeededRandom so that a seed replays a run exactly.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>

namespace headroom {

class Random {
 public:
  virtual ~Random() = default;
  virtual void fill(std::span<std::uint8_t> out) = 0;
  std::uint64_t next_u64();
};

// OpenSSL's CSPRNG, drawn 512 bytes at a time into a buffer per thread
// (wiped as served, dropped in a forked child). Thread-safe.
class SecureRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override;
};

// splitmix64: fast, reproducible, not for secrets. Thread-safe.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(std::uint64_t seed) : state_(seed) {}
  void fill(std::span<std::uint8_t> out) override;

 private:
  std::mutex mutex_;
  std::uint64_t state_;
};

}  // namespace headroom
