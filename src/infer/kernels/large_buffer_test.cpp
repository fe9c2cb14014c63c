#include "infer/kernels/large_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>

namespace headroom::infer {
namespace {

TEST(LargeBuffer, HugePageAlignedZeroedAndWritable) {
  LargeBuffer buffer = LargeBuffer::map((3 << 20) + 5).value();
  ASSERT_NE(buffer.data(), nullptr);
  EXPECT_EQ(buffer.size(), (3u << 20) + 5);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buffer.data()) % (2 << 20), 0u);
  for (std::size_t i = 0; i < buffer.size(); i += 4096) EXPECT_EQ(buffer.data()[i], 0) << i;
  EXPECT_EQ(buffer.data()[buffer.size() - 1], 0);
  buffer.data()[buffer.size() - 1] = 7;  // the last byte asked for is ours
  EXPECT_EQ(buffer.data()[buffer.size() - 1], 7);
}

TEST(LargeBuffer, EmptyAndMoved) {
  LargeBuffer empty = LargeBuffer::map(0).value();
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_EQ(empty.size(), 0u);

  LargeBuffer a = LargeBuffer::map(100).value();
  a.data()[99] = 1;
  LargeBuffer b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(b.size(), 100u);
  EXPECT_EQ(b.data()[99], 1);
  LargeBuffer c = LargeBuffer::map(10).value();
  c = std::move(b);
  EXPECT_EQ(c.size(), 100u);
  EXPECT_EQ(c.data()[99], 1);
}

TEST(LargeBuffer, TooLargeIsAnErrorNotACrash) {
  const Result<LargeBuffer> huge = LargeBuffer::map(std::size_t{1} << 62);
  ASSERT_FALSE(huge.is_ok());
  EXPECT_EQ(huge.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(huge.status().message().find("cannot map 4611686018427387904 bytes"), std::string::npos)
      << huge.status().message();
}

}  // namespace
}  // namespace headroom::infer
