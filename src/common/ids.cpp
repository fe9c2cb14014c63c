#include "common/ids.h"

#include <array>

#include "common/crypto.h"

namespace headroom {

namespace {
constexpr std::size_t kRandomBytes = 13;  // 104 bits -> 21 base32 chars
constexpr std::size_t kBodyChars = (kRandomBytes * 8 + 4) / 5;
}  // namespace

std::string make_id(std::string_view prefix, Random& random) {
  std::array<std::uint8_t, kRandomBytes> bytes;
  random.fill(bytes);
  std::string id(prefix);
  id += '_';
  id += base32_lower(bytes);
  return id;
}

bool is_id_of(std::string_view id, std::string_view prefix) {
  if (id.size() != prefix.size() + 1 + kBodyChars) return false;
  if (id.substr(0, prefix.size()) != prefix || id[prefix.size()] != '_') return false;
  for (char c : id.substr(prefix.size() + 1)) {
    if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'))) return false;
  }
  return true;
}

}  // namespace headroom
