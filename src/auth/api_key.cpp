#include "auth/api_key.h"

namespace headroom::auth {
namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

bool is_base62(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

std::string checksum_of(std::string_view head) { return base62_fixed(crc32(head), kKeyChecksumChars); }

}  // namespace

GeneratedKey generate_api_key(Random& random) {
  std::string key(kKeyPrefix);
  // Rejection sampling: bytes >= 248 would bias the first 248 % 62 digits.
  std::uint8_t bytes[64];
  while (key.size() < kKeyPrefix.size() + kKeyRandomChars) {
    random.fill(bytes);
    for (std::uint8_t b : bytes) {
      if (b >= 248) continue;
      key += kAlphabet[b % 62];
      if (key.size() == kKeyPrefix.size() + kKeyRandomChars) break;
    }
  }
  key += checksum_of(key);
  GeneratedKey out;
  out.lookup_prefix = key.substr(0, kLookupPrefixChars);
  out.secret_sha256 = sha256(key);
  out.secret = std::move(key);
  return out;
}

bool is_well_formed_api_key(std::string_view text) {
  if (text.size() != kKeyChars || !text.starts_with(kKeyPrefix)) return false;
  for (char c : text.substr(kKeyPrefix.size())) {
    if (!is_base62(c)) return false;
  }
  std::string_view head = text.substr(0, kKeyChars - kKeyChecksumChars);
  return text.substr(head.size()) == checksum_of(head);
}

}  // namespace headroom::auth
