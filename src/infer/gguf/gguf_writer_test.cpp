#include "infer/gguf/gguf_writer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <numeric>

#include "infer/gguf/gguf_test_util.h"

namespace headroom::infer {
namespace {

using testing::ExactBuffer;
using testing::MessageHas;

std::vector<std::uint8_t> pattern(std::size_t bytes, std::uint8_t start) {
  std::vector<std::uint8_t> out(bytes);
  std::iota(out.begin(), out.end(), start);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every value type and one tensor of each type, written and read back.
GgufWriter full_writer(GgufWriterOptions options) {
  GgufWriter w(options);
  EXPECT_TRUE(w.add<std::uint8_t>("a.u8", 250).is_ok());
  EXPECT_TRUE(w.add<std::int8_t>("a.i8", -3).is_ok());
  EXPECT_TRUE(w.add<std::uint16_t>("a.u16", 65000).is_ok());
  EXPECT_TRUE(w.add<std::int16_t>("a.i16", -300).is_ok());
  EXPECT_TRUE(w.add<std::uint32_t>("a.u32", 123456789).is_ok());
  EXPECT_TRUE(w.add<std::int32_t>("a.i32", -123456789).is_ok());
  EXPECT_TRUE(w.add<std::uint64_t>("a.u64", 1ULL << 63).is_ok());
  EXPECT_TRUE(w.add<std::int64_t>("a.i64", -(1LL << 62)).is_ok());
  EXPECT_TRUE(w.add<float>("a.f32", 3.5f).is_ok());
  EXPECT_TRUE(w.add<double>("a.f64", 1e300).is_ok());
  EXPECT_TRUE(w.add<bool>("a.bool", true).is_ok());
  EXPECT_TRUE(w.add_string("a.string", "llama").is_ok());
  const std::vector<float> floats = {1.0f, -2.0f, 0.5f};
  EXPECT_TRUE(w.add_array<float>("a.floats", floats).is_ok());
  const std::vector<std::int64_t> longs = {-1, 0, 1LL << 40};
  EXPECT_TRUE(w.add_array<std::int64_t>("a.longs", longs).is_ok());
  const std::vector<std::uint8_t> no_bytes;
  EXPECT_TRUE(w.add_array<std::uint8_t>("a.empty", no_bytes).is_ok());
  const bool bools[] = {true, false, true};
  EXPECT_TRUE(w.add_array<bool>("a.bools", bools).is_ok());
  const std::vector<std::string> strings = {"<unk>", "", "\xe2\x96\x81the"};
  EXPECT_TRUE(w.add_string_array("a.strings", strings).is_ok());

  const std::uint64_t f32_dims[] = {3, 2}, f16_dims[] = {5}, bf16_dims[] = {2, 2, 2, 2}, q8_dims[] = {64, 3},
                      q4_dims[] = {32, 1, 2};
  EXPECT_TRUE(w.add_tensor("t.f32", TensorType::kF32, f32_dims, pattern(24, 1)).is_ok());
  EXPECT_TRUE(w.add_tensor("t.f16", TensorType::kF16, f16_dims, pattern(10, 2)).is_ok());
  EXPECT_TRUE(w.add_tensor("t.bf16", TensorType::kBF16, bf16_dims, pattern(32, 3)).is_ok());
  EXPECT_TRUE(w.add_tensor("t.q8_0", TensorType::kQ8_0, q8_dims, pattern(204, 4)).is_ok());
  EXPECT_TRUE(w.add_tensor("t.q4_0", TensorType::kQ4_0, q4_dims, pattern(36, 5)).is_ok());
  return w;
}

void expect_full_contents(const GgufFile& file, std::uint32_t version, std::uint32_t alignment) {
  EXPECT_EQ(file.version(), version);
  EXPECT_EQ(file.alignment(), alignment);
  EXPECT_EQ(file.has("general.alignment"), alignment != 32);
  EXPECT_EQ(*file.get<std::uint8_t>("a.u8"), 250);
  EXPECT_EQ(*file.get<std::int8_t>("a.i8"), -3);
  EXPECT_EQ(*file.get<std::uint16_t>("a.u16"), 65000);
  EXPECT_EQ(*file.get<std::int16_t>("a.i16"), -300);
  EXPECT_EQ(*file.get<std::uint32_t>("a.u32"), 123456789u);
  EXPECT_EQ(*file.get<std::int32_t>("a.i32"), -123456789);
  EXPECT_EQ(*file.get<std::uint64_t>("a.u64"), 1ULL << 63);
  EXPECT_EQ(*file.get<std::int64_t>("a.i64"), -(1LL << 62));
  EXPECT_EQ(*file.get<float>("a.f32"), 3.5f);
  EXPECT_EQ(*file.get<double>("a.f64"), 1e300);
  EXPECT_EQ(*file.get<bool>("a.bool"), true);
  EXPECT_EQ(*file.get_string("a.string"), "llama");
  auto floats = file.get_array<float>("a.floats");
  EXPECT_EQ(std::vector<float>(floats->begin(), floats->end()), (std::vector<float>{1.0f, -2.0f, 0.5f}));
  auto longs = file.get_array<std::int64_t>("a.longs");
  EXPECT_EQ(std::vector<std::int64_t>(longs->begin(), longs->end()), (std::vector<std::int64_t>{-1, 0, 1LL << 40}));
  EXPECT_TRUE(file.get_array<std::uint8_t>("a.empty")->empty());
  auto bools = file.get_array<bool>("a.bools");
  EXPECT_EQ(std::vector<bool>(bools->begin(), bools->end()), (std::vector<bool>{true, false, true}));
  auto strings = file.get_string_array("a.strings");
  ASSERT_EQ(strings->size(), 3u);
  EXPECT_EQ((*strings)[0], "<unk>");
  EXPECT_EQ((*strings)[1], "");
  EXPECT_EQ((*strings)[2], "\xe2\x96\x81the");

  const std::pair<std::string_view, std::vector<std::uint8_t>> tensors[] = {
      {"t.f32", pattern(24, 1)}, {"t.f16", pattern(10, 2)}, {"t.bf16", pattern(32, 3)},
      {"t.q8_0", pattern(204, 4)}, {"t.q4_0", pattern(36, 5)}};
  ASSERT_EQ(file.tensors().size(), std::size(tensors));
  for (std::size_t i = 0; i < std::size(tensors); ++i) {
    const TensorView& t = file.tensors()[i];
    EXPECT_EQ(t.name, tensors[i].first);
    EXPECT_EQ(t.file_offset % alignment, 0u) << t.name;
    EXPECT_EQ(std::vector<std::uint8_t>(t.data, t.data + t.bytes), tensors[i].second) << t.name;
  }
  EXPECT_EQ(file.find("t.q4_0")->n_dims, 3u);
  EXPECT_EQ(file.find("t.q4_0")->rows(), 2u);
}

TEST(GgufWriter, RoundTripsEveryValueAndTensorType) {
  for (const GgufWriterOptions& options : {GgufWriterOptions{}, GgufWriterOptions{.version = 2, .alignment = 64},
                                           GgufWriterOptions{.version = 3, .alignment = 8}}) {
    SCOPED_TRACE(::testing::Message() << "v" << options.version << " alignment " << options.alignment);
    const GgufWriter writer = full_writer(options);
    const std::string bytes = writer.to_bytes();
    EXPECT_EQ(bytes.size(), writer.file_bytes());
    EXPECT_EQ(bytes.size() % options.alignment, 0u);  // each tensor is padded, the last too
    ExactBuffer buffer(bytes);
    auto parsed = GgufFile::parse(buffer.span(), "memory");
    ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
    expect_full_contents(**parsed, options.version, options.alignment);

    testing::TempDir dir;
    const std::string path = dir.file("full.gguf");
    ASSERT_TRUE(writer.write_file(path).is_ok());
    EXPECT_EQ(read_file(path), bytes);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    auto opened = GgufFile::open(path);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    expect_full_contents(**opened, options.version, options.alignment);
  }
}

TEST(GgufWriter, AnEmptyFileIsValid) {
  const std::string bytes = GgufWriter().to_bytes();
  EXPECT_EQ(bytes.size(), 32u);  // a 24-byte header padded to 32
  ExactBuffer buffer(bytes);
  auto parsed = GgufFile::parse(buffer.span(), "empty");
  ASSERT_TRUE(parsed.is_ok());
  EXPECT_TRUE((*parsed)->metadata().empty());
}

TEST(GgufWriter, RefusesWhatTheLoaderWouldRefuse) {
  GgufWriter w;
  ASSERT_TRUE(w.add<std::uint32_t>("k", 1).is_ok());
  EXPECT_EQ(w.add<std::uint32_t>("k", 2).code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(w.add_string("", "x").code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(MessageHas(w.add<std::uint32_t>("general.alignment", 64), "GgufWriterOptions::alignment"));
  EXPECT_TRUE(MessageHas(w.add_string(std::string(limits::kGgufKeyBytes + 1, 'k'), "x"), "more than the limit"));

  const std::uint64_t ok[] = {32, 2}, zero[] = {32, 0}, five[] = {1, 1, 1, 1, 1}, ragged[] = {33, 2},
                      huge[] = {1ULL << 31, 1ULL << 31};
  ASSERT_TRUE(w.add_tensor("t", TensorType::kQ8_0, ok, pattern(68, 0)).is_ok());
  EXPECT_EQ(w.add_tensor("t", TensorType::kQ8_0, ok, pattern(68, 0)).code(), ErrorCode::kAlreadyExists);
  EXPECT_TRUE(MessageHas(w.add_tensor("u", TensorType::kQ8_0, ok, pattern(67, 0)), "takes 68 bytes, not 67"));
  EXPECT_TRUE(MessageHas(w.add_tensor("u", TensorType::kF32, zero, pattern(0, 0)), "has shape [32, 0]"));
  EXPECT_TRUE(MessageHas(w.add_tensor("u", TensorType::kF32, five, pattern(4, 0)), "5 dimensions"));
  EXPECT_TRUE(MessageHas(w.add_tensor("u", TensorType::kQ4_0, ragged, pattern(0, 0)), "not a multiple of 32"));
  EXPECT_TRUE(MessageHas(w.add_tensor("u", TensorType::kF32, huge, [](std::span<std::uint8_t>) {}), "too large"));
  EXPECT_TRUE(MessageHas(w.add_tensor("", TensorType::kF32, ok, pattern(256, 0)), "empty"));
  // What was refused left no trace: the file holds k and t only.
  const std::string bytes = w.to_bytes();
  ExactBuffer buffer(bytes);
  auto parsed = GgufFile::parse(buffer.span(), "refusals");
  ASSERT_TRUE(parsed.is_ok());
  EXPECT_EQ((*parsed)->metadata().size(), 1u);
  EXPECT_EQ((*parsed)->tensors().size(), 1u);
}

TEST(GgufWriter, WriteFileReportsAnUnwritablePath) {
  GgufWriter w;
  Status status = w.write_file("/nonexistent-dir/model.gguf");
  EXPECT_EQ(status.code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(MessageHas(status, "/nonexistent-dir/model.gguf.tmp"));
}

}  // namespace
}  // namespace headroom::infer
