// The API key format.
//
//   hr_ 8rT2kQ9vLm3XpZ7cWn4bYd6fHs1jKg5e Ab12Cd
//   │   └─ 32 random base62 characters  └─ CRC-32 of everything before it,
//   │      (about 190 bits)                  6 base62 characters
//   └─ prefix: "this is a Headroom key"
//
// The checksum lets a secret scanner tell a real key from random text
// offline, and lets us reject a mistyped key without a lookup. The first 11
// characters ("hr_" and 8 random ones) are the lookup prefix, stored in clear
// and shown in listings; the other 24 random characters (about 142 bits) are
// secret. Only the SHA-256 of the whole key is stored.
#pragma once

#include <string>
#include <string_view>

#include "common/crypto.h"
#include "common/random.h"

namespace headroom::auth {

inline constexpr std::string_view kKeyPrefix = "hr_";
inline constexpr std::size_t kKeyRandomChars = 32;
inline constexpr std::size_t kKeyChecksumChars = 6;
inline constexpr std::size_t kKeyChars = 3 + kKeyRandomChars + kKeyChecksumChars;  // 41
inline constexpr std::size_t kLookupPrefixChars = 3 + 8;

struct GeneratedKey {
  std::string secret;         // shown to the user once
  std::string lookup_prefix;  // stored, shown in listings
  Sha256Digest secret_sha256; // stored
};

GeneratedKey generate_api_key(Random& random);

// True when `text` has the key's shape and its checksum holds.
bool is_well_formed_api_key(std::string_view text);

}  // namespace headroom::auth
