#include "common/text.h"

#include <gtest/gtest.h>

namespace headroom {
namespace {

TEST(ToValidUtf8, KeepsValidText) {
  for (std::string_view s : {"", "plain ascii", "caf\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC", "\xF0\x9F\x98\x80"}) {
    EXPECT_EQ(to_valid_utf8(s), s);
  }
}

TEST(ToValidUtf8, ReplacesInvalidSequences) {
  EXPECT_EQ(to_valid_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(to_valid_utf8("\xC3"), "\xEF\xBF\xBD");                     // truncated
  EXPECT_EQ(to_valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");     // overlong '/'
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80").substr(0, 3), "\xEF\xBF\xBD");        // past U+10FFFF
}

}  // namespace
}  // namespace headroom
