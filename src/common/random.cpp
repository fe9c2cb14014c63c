#include "common/random.h"

#include <openssl/rand.h>

#include <cstring>

#include "common/check.h"

namespace headroom {

std::uint64_t Random::next_u64() {
  std::uint64_t value;
  std::uint8_t bytes[sizeof value];
  fill(bytes);
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

void SecureRandom::fill(std::span<std::uint8_t> out) {
  // A CSPRNG that cannot produce bytes would produce guessable keys: crash.
  CHECK(RAND_bytes(out.data(), static_cast<int>(out.size())) == 1) << "RAND_bytes failed";
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
