// Sampling's random numbers: xoshiro256** seeded by splitmix64.
//
// A seed names one stream of numbers on every machine and in every build:
// both generators are fixed integer recipes (Vigna's reference code), and
// next_unit() turns 53 bits into a double exactly, unlike
// std::uniform_real_distribution, whose output each standard library defines
// its own way. (common/random.h's SeededRandom is splitmix64 too, but it sits
// behind a mutex and a virtual call, and assembles its words from bytes in
// the machine's byte order: fine for the simulator, not for a per-token draw
// that must replay on any machine.)
//
// Not thread-safe: one generator per sequence.
#pragma once

#include <cstdint>

namespace headroom::infer {

// splitmix64: used to spread a 64-bit seed over xoshiro's 256 bits of state.
class SplitMix64 {
 public:
  explicit constexpr SplitMix64(std::uint64_t seed) : state_(seed) {}
  constexpr std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

class Xoshiro256 {
 public:
  explicit constexpr Xoshiro256(std::uint64_t seed) {
    SplitMix64 mix(seed);
    for (std::uint64_t& word : s_) word = mix.next();
  }

  constexpr std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // A double in [0, 1): the top 53 bits, scaled exactly.
  constexpr double next_unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  std::uint64_t s_[4] = {};
};

}  // namespace headroom::infer
