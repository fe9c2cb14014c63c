#include "common/crypto.h"

#include <openssl/evp.h>

#include <memory>

#include "common/check.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace headroom {

Sha256Digest sha256(std::string_view data) {
  // OpenSSL 3's one-shot SHA256() looks the algorithm up (under a lock) on
  // every call; the ledger hashes an id per transfer, so fetch it once and
  // keep a context per thread.
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  Sha256Digest digest;
  unsigned int size = 0;
  CHECK(kSha256 != nullptr && ctx != nullptr && EVP_DigestInit_ex2(ctx.get(), kSha256, nullptr) == 1 &&
        EVP_DigestUpdate(ctx.get(), data.data(), data.size()) == 1 &&
        EVP_DigestFinal_ex(ctx.get(), digest.data(), &size) == 1 && size == digest.size())
      << "SHA-256 failed";
  return digest;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::uint32_t crc32(std::string_view data) {
  static const auto kTable = [] {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return table;
  }();
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char ch : data) crc = kTable[(crc ^ ch) & 0xff] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

std::string base62_fixed(std::uint64_t value, std::size_t width) {
  static constexpr char kDigits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out(width, '0');
  for (std::size_t i = width; i > 0 && value > 0; --i) {
    out[i - 1] = kDigits[value % 62];
    value /= 62;
  }
  return out;
}

std::string base32_lower(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (std::uint8_t b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += kDigits[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kDigits[(buffer << (5 - bits)) & 31];
  return out;
}

}  // namespace headroom
