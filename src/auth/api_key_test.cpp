#include "auth/api_key.h"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/crypto.h"

namespace headroom::auth {
namespace {

constexpr std::string_view kBase62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

bool all_base62(std::string_view s) {
  for (char c : s) {
    if (kBase62.find(c) == std::string_view::npos) return false;
  }
  return true;
}

// The checksum as the format describes it: CRC-32 of the head, 6 base62 digits.
std::string with_checksum(std::string_view head) { return std::string(head) + base62_fixed(crc32(head), 6); }

TEST(GenerateApiKey, WellFormed41Chars) {
  SeededRandom random(1);
  for (int i = 0; i < 200; ++i) {
    GeneratedKey key = generate_api_key(random);
    ASSERT_EQ(key.secret.size(), 41u) << key.secret;
    ASSERT_EQ(kKeyChars, 41u);
    EXPECT_TRUE(key.secret.starts_with("hr_")) << key.secret;
    EXPECT_TRUE(all_base62(key.secret.substr(3))) << key.secret;
    EXPECT_TRUE(is_well_formed_api_key(key.secret)) << key.secret;
    EXPECT_EQ(key.secret, with_checksum(key.secret.substr(0, 35)));
  }
}

TEST(GenerateApiKey, LookupPrefixAndHash) {
  SecureRandom random;
  GeneratedKey key = generate_api_key(random);
  EXPECT_EQ(key.lookup_prefix.size(), 11u);
  EXPECT_EQ(key.lookup_prefix, key.secret.substr(0, 11));
  EXPECT_EQ(key.secret_sha256, sha256(key.secret));
  EXPECT_TRUE(is_well_formed_api_key(key.secret));
}

TEST(GenerateApiKey, DistinctKeysAndPrefixes) {
  SecureRandom secure;
  std::set<std::string> secrets, prefixes;
  std::set<Sha256Digest> hashes;
  for (int i = 0; i < 2'000; ++i) {
    GeneratedKey key = generate_api_key(secure);
    secrets.insert(key.secret);
    prefixes.insert(key.lookup_prefix);
    hashes.insert(key.secret_sha256);
  }
  EXPECT_EQ(secrets.size(), 2'000u);
  EXPECT_EQ(prefixes.size(), 2'000u);  // 8 base62 chars: a collision here would be a broken generator
  EXPECT_EQ(hashes.size(), 2'000u);
}

TEST(GenerateApiKey, ReproducibleFromASeed) {
  SeededRandom a(9), b(9);
  EXPECT_EQ(generate_api_key(a).secret, generate_api_key(b).secret);
  EXPECT_NE(generate_api_key(a).secret, generate_api_key(a).secret);
}

// Every base62 digit is about as likely as every other (rejection sampling
// keeps bytes >= 248 from favouring the first digits).
TEST(GenerateApiKey, DigitsAreUniform) {
  SeededRandom random(2026);
  std::map<char, int> counts;
  constexpr int kKeys = 4'000;
  for (int i = 0; i < kKeys; ++i) {
    std::string secret = generate_api_key(random).secret;
    for (char c : secret.substr(3, 32)) ++counts[c];
  }
  ASSERT_EQ(counts.size(), 62u);
  double expected = kKeys * 32.0 / 62;
  for (auto [c, n] : counts) {
    EXPECT_NEAR(n, expected, expected * 0.1) << c;
  }
}

// A Random that hands out a fixed cycle of bytes.
class CycleRandom final : public Random {
 public:
  explicit CycleRandom(std::vector<std::uint8_t> cycle) : cycle_(std::move(cycle)) {}
  void fill(std::span<std::uint8_t> out) override {
    for (auto& b : out) b = cycle_[next_++ % cycle_.size()];
  }

 private:
  std::vector<std::uint8_t> cycle_;
  std::size_t next_ = 0;
};

TEST(GenerateApiKey, SkipsBiasedBytes) {
  CycleRandom random({248, 255, 0, 252, 61, 62, 249, 123});
  GeneratedKey key = generate_api_key(random);
  // Accepted bytes: 0 -> '0', 61 -> 'z', 62 -> '0', 123 -> 'z' (123 % 62 = 61).
  std::string body = key.secret.substr(3, 32);
  for (std::size_t i = 0; i < body.size(); ++i) EXPECT_EQ(body[i], i % 2 == 0 ? '0' : 'z') << i;
  EXPECT_TRUE(is_well_formed_api_key(key.secret));
}

TEST(IsWellFormedApiKey, ChecksumCatchesEverySingleCharacterChange) {
  SeededRandom random(77);
  for (int k = 0; k < 5; ++k) {
    std::string secret = generate_api_key(random).secret;
    ASSERT_TRUE(is_well_formed_api_key(secret));
    int mutations = 0;
    for (std::size_t pos = 0; pos < secret.size(); ++pos) {
      for (char c : kBase62) {
        if (c == secret[pos]) continue;
        std::string mutated = secret;
        mutated[pos] = c;
        EXPECT_FALSE(is_well_formed_api_key(mutated)) << "position " << pos << " -> " << c << ": " << mutated;
        ++mutations;
      }
      for (char c : {'_', '-', ' ', '\0', '\xff', 'h'}) {
        if (c == secret[pos]) continue;
        std::string mutated = secret;
        mutated[pos] = c;
        EXPECT_FALSE(is_well_formed_api_key(mutated)) << "position " << pos << " -> " << static_cast<int>(c);
      }
    }
    EXPECT_EQ(mutations, 41 * 61 + 1);  // 61 other digits everywhere, 62 at the non-digit "_"
  }
}

TEST(IsWellFormedApiKey, ChecksumCatchesAdjacentSwaps) {
  SeededRandom random(78);
  std::string secret = generate_api_key(random).secret;
  for (std::size_t pos = 3; pos + 1 < secret.size(); ++pos) {
    if (secret[pos] == secret[pos + 1]) continue;
    std::string swapped = secret;
    std::swap(swapped[pos], swapped[pos + 1]);
    EXPECT_FALSE(is_well_formed_api_key(swapped)) << pos;
  }
}

TEST(IsWellFormedApiKey, RejectsOtherShapes) {
  SeededRandom random(79);
  std::string secret = generate_api_key(random).secret;
  EXPECT_FALSE(is_well_formed_api_key(""));
  EXPECT_FALSE(is_well_formed_api_key("hr_"));
  EXPECT_FALSE(is_well_formed_api_key(secret.substr(0, 40)));             // truncated
  EXPECT_FALSE(is_well_formed_api_key(secret + "a"));                     // too long
  auto replaced = [&](std::size_t pos, std::string_view with) {
    std::string out = secret;
    out.replace(pos, with.size(), with);
    return out;
  };
  EXPECT_FALSE(is_well_formed_api_key(replaced(0, " ")));
  EXPECT_FALSE(is_well_formed_api_key(replaced(0, "HR_")));
  EXPECT_FALSE(is_well_formed_api_key(replaced(0, "hr-")));
  EXPECT_FALSE(is_well_formed_api_key(secret.substr(0, 40) + "\n"));
  // The right shape with a checksum over a different prefix.
  EXPECT_FALSE(is_well_formed_api_key(with_checksum(replaced(0, "xx_").substr(0, 35))));
  // A key whose head is correct and checksum recomputed is well-formed: the
  // checksum is not a secret, only a typo check.
  std::string other = "hr_" + std::string(32, 'A');
  EXPECT_TRUE(is_well_formed_api_key(with_checksum(other)));
}

}  // namespace
}  // namespace headroom::auth
