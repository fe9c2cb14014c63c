#include "common/crypto.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace headroom {
namespace {

std::string sha256_hex(std::string_view data) { return to_hex(sha256(data)); }

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

TEST(Sha256, KnownVectors) {
  // FIPS 180-2 / NIST examples.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, BinaryInputWithNulBytes) {
  std::string with_nul("a\0b", 3);
  EXPECT_NE(sha256(with_nul), sha256("a"));
  EXPECT_NE(sha256(with_nul), sha256(std::string_view("a\0c", 3)));
  EXPECT_EQ(sha256(with_nul), sha256(std::string("a\0b", 3)));
}

TEST(ToHex, LowerCaseTwoDigitsPerByte) {
  EXPECT_EQ(to_hex({}), "");
  std::array<std::uint8_t, 5> bytes{0x00, 0x0f, 0x10, 0xab, 0xff};
  EXPECT_EQ(to_hex(bytes), "000f10abff");
}

TEST(Crc32, KnownVectors) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  EXPECT_EQ(crc32(""), 0u);
  EXPECT_EQ(crc32("a"), 0xE8B7BE43u);
  EXPECT_EQ(crc32("The quick brown fox jumps over the lazy dog"), 0x414FA339u);
  EXPECT_NE(crc32(std::string_view("\0", 1)), crc32(""));
}

TEST(Base62Fixed, DigitsAndPadding) {
  EXPECT_EQ(base62_fixed(0, 6), "000000");
  EXPECT_EQ(base62_fixed(9, 2), "09");
  EXPECT_EQ(base62_fixed(10, 2), "0A");
  EXPECT_EQ(base62_fixed(35, 2), "0Z");
  EXPECT_EQ(base62_fixed(36, 2), "0a");
  EXPECT_EQ(base62_fixed(61, 2), "0z");
  EXPECT_EQ(base62_fixed(62, 2), "10");
  EXPECT_EQ(base62_fixed(62 * 62 - 1, 2), "zz");
  EXPECT_EQ(base62_fixed(0xFFFFFFFFu, 6), "4gfFC3");  // every CRC-32 fits 6 digits
  EXPECT_EQ(base62_fixed(0xCBF43926u, 6), "3jZRME");
  EXPECT_EQ(base62_fixed(UINT64_MAX, 11), "LygHa16AHYF");
  EXPECT_EQ(base62_fixed(123, 0), "");
}

TEST(Base62Fixed, TooNarrowKeepsTheLowDigits) {
  EXPECT_EQ(base62_fixed(123, 1), "z");   // 123 = 1*62 + 61
  EXPECT_EQ(base62_fixed(62ull * 62 * 62 * 62 * 62 * 62, 6), "000000");
}

TEST(Base32Lower, Rfc4648VectorsLowerCaseUnpadded) {
  auto enc = [](std::string_view s) { return base32_lower(bytes_of(s)); };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "my");
  EXPECT_EQ(enc("fo"), "mzxq");
  EXPECT_EQ(enc("foo"), "mzxw6");
  EXPECT_EQ(enc("foob"), "mzxw6yq");
  EXPECT_EQ(enc("fooba"), "mzxw6ytb");
  EXPECT_EQ(enc("foobar"), "mzxw6ytboi");
  std::array<std::uint8_t, 13> ones;
  ones.fill(0xff);
  EXPECT_EQ(base32_lower(ones), "777777777777777777776");
  std::array<std::uint8_t, 13> counting;
  for (std::size_t i = 0; i < counting.size(); ++i) counting[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(base32_lower(counting), "aaaqeayeaudaocajbifqy");
}

TEST(Base32Lower, LengthIsCeilOfBitsOverFive) {
  std::vector<std::uint8_t> bytes;
  for (std::size_t n = 0; n < 40; ++n) {
    EXPECT_EQ(base32_lower(bytes).size(), (n * 8 + 4) / 5) << n;
    for (char c : base32_lower(bytes)) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')) << c;
    bytes.push_back(static_cast<std::uint8_t>(n * 37 + 11));
  }
}

TEST(ConstantTimeEqual, ComparesContentAndSize) {
  EXPECT_TRUE(constant_time_equal(bytes_of(""), bytes_of("")));
  EXPECT_TRUE(constant_time_equal(bytes_of("secret"), bytes_of("secret")));
  EXPECT_FALSE(constant_time_equal(bytes_of("secret"), bytes_of("Secret")));   // first byte
  EXPECT_FALSE(constant_time_equal(bytes_of("secret"), bytes_of("secreT")));   // last byte
  EXPECT_FALSE(constant_time_equal(bytes_of("secret"), bytes_of("secre")));    // a prefix
  EXPECT_FALSE(constant_time_equal(bytes_of("secre"), bytes_of("secret")));
  EXPECT_FALSE(constant_time_equal(bytes_of(""), bytes_of("x")));
  Sha256Digest a = sha256("a"), b = sha256("a");
  EXPECT_TRUE(constant_time_equal(a, b));
  for (std::size_t i = 0; i < a.size(); ++i) {
    Sha256Digest c = a;
    c[i] ^= 0x01;
    EXPECT_FALSE(constant_time_equal(a, c)) << i;
  }
}

}  // namespace
}  // namespace headroom
