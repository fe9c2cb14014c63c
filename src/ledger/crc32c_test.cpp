#include "ledger/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace headroom::ledger {
namespace {

TEST(Crc32c, KnownValues) {
  // The check value of CRC-32C, and RFC 3720's test patterns (iSCSI).
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  EXPECT_EQ(crc32c_portable("123456789"), 0xE3069283u);
}

TEST(Crc32c, MatchesThePortableOneOnRandomInput) {
  std::mt19937_64 rng(7);
  for (int n = 0; n < 300; ++n) {
    std::string data(n, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    ASSERT_EQ(crc32c(data), crc32c_portable(data)) << n;
    // Continuing from a prefix gives the CRC of the whole.
    for (std::size_t cut : {std::size_t{0}, data.size() / 3, data.size()}) {
      std::string_view all(data);
      ASSERT_EQ(crc32c(all.substr(cut), crc32c(all.substr(0, cut))), crc32c(all)) << n << " " << cut;
    }
  }
}

}  // namespace
}  // namespace headroom::ledger
