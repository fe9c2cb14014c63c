// Small cryptographic and encoding helpers over OpenSSL.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace headroom {

using Sha256Digest = std::array<std::uint8_t, 32>;

Sha256Digest sha256(std::string_view data);
std::string to_hex(std::span<const std::uint8_t> bytes);

// Compares in time independent of where the inputs differ (for secrets).
bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

// CRC-32 (IEEE 802.3), as zlib computes it.
std::uint32_t crc32(std::string_view data);

// Base62 (0-9A-Za-z) digits of a number, left-padded with '0' to `width`.
std::string base62_fixed(std::uint64_t value, std::size_t width);

// Lower-case base32 (RFC 4648 alphabet, no padding) of random-looking bytes.
std::string base32_lower(std::span<const std::uint8_t> bytes);

}  // namespace headroom
