#include "common/ids.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace headroom {
namespace {

TEST(MakeId, ShapeIsPrefixUnderscoreAnd21Base32Chars) {
  SeededRandom random(1);
  for (std::string_view prefix : {kTenantIdPrefix, kKeyIdPrefix, kRequestIdPrefix, kAuditIdPrefix}) {
    std::string id = make_id(prefix, random);
    EXPECT_EQ(id.size(), prefix.size() + 1 + 21) << id;
    EXPECT_TRUE(id.starts_with(std::string(prefix) + "_")) << id;
    for (char c : id.substr(prefix.size() + 1)) {
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')) << id;
    }
    EXPECT_TRUE(is_id_of(id, prefix)) << id;
  }
}

TEST(MakeId, ReproducibleFromASeedAndDistinct) {
  SeededRandom a(42), b(42);
  std::set<std::string> seen;
  for (int i = 0; i < 10'000; ++i) {
    std::string id = make_id(kTenantIdPrefix, a);
    ASSERT_EQ(id, make_id(kTenantIdPrefix, b));
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 10'000u);
  SecureRandom secure;
  EXPECT_NE(make_id(kKeyIdPrefix, secure), make_id(kKeyIdPrefix, secure));
}

TEST(IsIdOf, RejectsOtherShapes) {
  SeededRandom random(3);
  std::string id = make_id(kTenantIdPrefix, random);
  std::string body = id.substr(4);
  EXPECT_TRUE(is_id_of(id, "ten"));
  EXPECT_FALSE(is_id_of(id, "key"));                 // another type's prefix
  EXPECT_FALSE(is_id_of(id, "te"));
  EXPECT_FALSE(is_id_of("key_" + body, "ten"));
  EXPECT_FALSE(is_id_of("ten-" + body, "ten"));      // not an underscore
  EXPECT_FALSE(is_id_of("ten_" + body + "a", "ten")); // too long
  EXPECT_FALSE(is_id_of("ten_" + body.substr(1), "ten"));  // too short
  EXPECT_FALSE(is_id_of("", "ten"));
  EXPECT_FALSE(is_id_of("ten_", "ten"));
  EXPECT_FALSE(is_id_of("TEN_" + body, "ten"));
  for (char bad : {'A', 'Z', '0', '1', '8', '9', '_', '-', '/', ' ', '\0', '\xC3'}) {
    std::string mutated = id;
    mutated[10] = bad;
    EXPECT_FALSE(is_id_of(mutated, "ten")) << static_cast<int>(bad);
  }
}

}  // namespace
}  // namespace headroom
