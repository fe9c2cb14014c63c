#include "infer/gguf/gguf_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "infer/gguf/gguf_test_util.h"

namespace headroom::infer {
namespace {

using testing::ExactBuffer;
using testing::RawGguf;
using testing::MessageHas;

float float_at(const TensorView& tensor, std::size_t i) {
  float value;
  std::memcpy(&value, tensor.data + 4 * i, sizeof value);
  return value;
}

class Stories260K : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::filesystem::path path = testing::stories_path();
    ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: the repository ships it (models/)";
    auto opened = GgufFile::open(path.string());
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    file_ = std::move(opened).value();
  }
  std::unique_ptr<GgufFile> file_;
};

TEST_F(Stories260K, Header) {
  EXPECT_EQ(file_->version(), 3u);
  EXPECT_EQ(file_->alignment(), 32u);
  EXPECT_EQ(file_->metadata().size(), 19u);
  EXPECT_EQ(file_->tensors().size(), 48u);
  EXPECT_EQ(file_->data_offset(), 14176u);  // the infos end at 14152, aligned up to 32
  EXPECT_EQ(file_->file_bytes(), 1185376u);
}

TEST_F(Stories260K, Metadata) {
  EXPECT_EQ(*file_->get_string("general.architecture"), "llama");
  EXPECT_EQ(*file_->get_string("general.name"), "llama");
  EXPECT_EQ(*file_->get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(*file_->get<std::uint32_t>("llama.context_length"), 2048u);
  EXPECT_EQ(*file_->get<std::uint32_t>("llama.embedding_length"), 64u);
  EXPECT_EQ(*file_->get<std::uint32_t>("llama.feed_forward_length"), 172u);
  EXPECT_EQ(*file_->get<std::uint32_t>("llama.attention.head_count"), 8u);
  EXPECT_EQ(*file_->get<std::uint32_t>("llama.attention.head_count_kv"), 4u);
  EXPECT_EQ(*file_->get<std::uint32_t>("llama.block_count"), 5u);
  EXPECT_EQ(*file_->get<std::uint32_t>("llama.rope.dimension_count"), 8u);
  EXPECT_FLOAT_EQ(*file_->get<float>("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(*file_->get_unsigned("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(*file_->get_unsigned("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(*file_->get_unsigned("tokenizer.ggml.unknown_token_id"), 0u);
  EXPECT_EQ(*file_->get<std::uint32_t>("tokenizer.ggml.padding_token_id"), 0xffffffffu);
  EXPECT_NEAR(*file_->get_real("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
  EXPECT_FALSE(file_->has("general.alignment"));

  auto tokens = file_->get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.is_ok()) << tokens.status().to_string();
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[2], "</s>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  EXPECT_EQ((*tokens)[258], "<0xFF>");
  EXPECT_EQ((*tokens)[259], "\xe2\x96\x81t");  // ▁t
  EXPECT_EQ((*tokens)[265], "\xe2\x96\x81the");
  EXPECT_EQ((*tokens)[511], "\xe2\x80\x8a");  // U+200A, the last

  auto scores = file_->get_array<float>("tokenizer.ggml.scores");
  ASSERT_TRUE(scores.is_ok());
  ASSERT_EQ(scores->size(), 512u);
  EXPECT_EQ((*scores)[0], 0.0f);
  EXPECT_EQ((*scores)[260], -1.0f);
  EXPECT_EQ((*scores)[511], -252.0f);

  auto types = file_->get_array<std::int32_t>("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.is_ok());
  std::vector<std::int32_t> all(types->begin(), types->end());
  ASSERT_EQ(all.size(), 512u);
  EXPECT_EQ(all[0], 2);    // unknown
  EXPECT_EQ(all[1], 3);    // control
  EXPECT_EQ(all[3], 6);    // byte
  EXPECT_EQ(all[300], 1);  // normal
}

TEST_F(Stories260K, Tensors) {
  struct Expected {
    std::string_view name;
    std::vector<std::uint64_t> dims;
  };
  const Expected first[] = {{"token_embd.weight", {64, 512}},     {"output_norm.weight", {64}},
                            {"output.weight", {64, 512}},         {"blk.0.attn_q.weight", {64, 64}},
                            {"blk.0.attn_k.weight", {64, 32}},    {"blk.0.attn_v.weight", {64, 32}},
                            {"blk.0.attn_output.weight", {64, 64}}, {"blk.0.attn_norm.weight", {64}},
                            {"blk.0.ffn_gate.weight", {64, 172}}, {"blk.0.ffn_down.weight", {172, 64}},
                            {"blk.0.ffn_up.weight", {64, 172}},   {"blk.0.ffn_norm.weight", {64}}};
  for (std::size_t i = 0; i < std::size(first); ++i) {
    const TensorView& t = file_->tensors()[i];
    EXPECT_EQ(t.name, first[i].name);
    EXPECT_EQ(t.type, TensorType::kF32) << t.name;
    EXPECT_EQ(std::vector<std::uint64_t>(t.shape().begin(), t.shape().end()), first[i].dims) << t.name;
  }
  for (const TensorView& t : file_->tensors()) {
    EXPECT_EQ(t.bytes, t.elements() * 4) << t.name;
    EXPECT_EQ(t.file_offset % 32, 0u) << t.name;
    EXPECT_EQ(t.data, file_->tensors()[0].data + (t.file_offset - file_->data_offset())) << t.name;
  }
  auto embd = file_->tensor("token_embd.weight", {64, 512});
  ASSERT_TRUE(embd.is_ok()) << embd.status().to_string();
  EXPECT_EQ(embd->file_offset, 14176u);
  EXPECT_EQ(embd->rows(), 512u);
  EXPECT_EQ(embd->row_bytes(), 256u);
  EXPECT_FLOAT_EQ(float_at(*embd, 0), -0.29474878f);
  EXPECT_FLOAT_EQ(float_at(*embd, 1), 0.56189561f);
  EXPECT_FLOAT_EQ(float_at(*file_->find("output_norm.weight"), 0), 2.4583089f);
  const TensorView* last = file_->find("blk.4.ffn_norm.weight");
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->file_offset + last->bytes, file_->file_bytes());  // the last tensor ends the file
  EXPECT_FLOAT_EQ(float_at(*last, 0), 1.0344242f);
  EXPECT_FLOAT_EQ(float_at(*last, 63), 1.2342612f);
}

TEST_F(Stories260K, ErrorsNameTheKeyAndTheTypes) {
  auto wrong = file_->get<std::int32_t>("llama.block_count");
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_EQ(wrong.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(MessageHas(wrong.status(), "'llama.block_count' is uint32, not int32"));

  auto array = file_->get_array<float>("tokenizer.ggml.tokens");
  EXPECT_TRUE(MessageHas(array.status(), "is an array of string, not an array of float32"));
  auto scalar_as_array = file_->get_array<std::uint32_t>("llama.block_count");
  EXPECT_TRUE(MessageHas(scalar_as_array.status(), "is uint32, not an array of uint32"));
  EXPECT_TRUE(MessageHas(file_->get_string("llama.block_count").status(), "is uint32, not string"));
  EXPECT_TRUE(MessageHas(file_->get_real("llama.block_count").status(), "not float32 or float64"));
  EXPECT_TRUE(MessageHas(file_->get_unsigned("general.name").status(), "is string, not an integer"));

  auto missing = file_->get<std::uint32_t>("llama.expert_count");
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(MessageHas(missing.status(), "no metadata key 'llama.expert_count'"));

  EXPECT_EQ(file_->find("blk.5.attn_q.weight"), nullptr);
  auto no_tensor = file_->tensor("blk.5.attn_q.weight");
  EXPECT_EQ(no_tensor.status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(MessageHas(no_tensor.status(), "stories260K.gguf: no tensor 'blk.5.attn_q.weight'"));
  auto shape = file_->tensor("blk.0.attn_k.weight", {64, 64});
  EXPECT_TRUE(MessageHas(shape.status(), "'blk.0.attn_k.weight' has shape [64, 32], expected [64, 64]"));
}

TEST_F(Stories260K, FormatsValuesForDumps) {
  EXPECT_EQ(file_->format_value(*file_->find_metadata("general.architecture")), "llama");
  EXPECT_EQ(file_->format_value(*file_->find_metadata("llama.block_count")), "5");
  EXPECT_EQ(file_->format_value(*file_->find_metadata("tokenizer.ggml.tokens"), 3),
            "[<unk>, <s>, </s>, ... 512 strings]");
  EXPECT_EQ(file_->format_value(*file_->find_metadata("tokenizer.ggml.token_type"), 2), "[2, 3, ... 512 int32s]");
}

TEST(GgufFile, OpenErrors) {
  auto missing = GgufFile::open("/nonexistent/model.gguf");
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(MessageHas(missing.status(), "/nonexistent/model.gguf"));

  auto directory = GgufFile::open(std::filesystem::temp_directory_path().string());
  EXPECT_EQ(directory.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(MessageHas(directory.status(), "not a regular file"));

  testing::TempDir dir;
  const std::string empty = dir.file("empty.gguf");
  std::ofstream(empty).close();
  auto opened = GgufFile::open(empty);
  EXPECT_EQ(opened.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(MessageHas(opened.status(), "empty.gguf: 0 bytes is too short for a GGUF file"));
}

// A file with every value type, read back through every getter.
TEST(GgufFile, ReadsEveryValueType) {
  RawGguf raw;
  raw.header(0, 17, 2);
  raw.key("u8", GgufValueType::kUint8).u8(200);
  raw.key("i8", GgufValueType::kInt8).u8(0x80);
  raw.key("u16", GgufValueType::kUint16).u8(0x34).u8(0x12);
  raw.key("i16", GgufValueType::kInt16).u8(0xff).u8(0xff);
  raw.key("u32", GgufValueType::kUint32).u32(4000000000u);
  raw.key("i32", GgufValueType::kInt32).u32(static_cast<std::uint32_t>(-7));
  raw.key("f32", GgufValueType::kFloat32).f32(0.25f);
  raw.key("bool", GgufValueType::kBool).u8(1);
  raw.key("string", GgufValueType::kString).str("héllo");
  raw.key("u64", GgufValueType::kUint64).u64(1ULL << 40);
  raw.key("i64", GgufValueType::kInt64).u64(static_cast<std::uint64_t>(-5));
  double f64 = -1.5;
  std::uint64_t f64_bits;
  std::memcpy(&f64_bits, &f64, 8);
  raw.key("f64", GgufValueType::kFloat64).u64(f64_bits);
  raw.key("empty_string", GgufValueType::kString).str("");
  raw.key("u16s", GgufValueType::kArray).u32(static_cast<std::uint32_t>(GgufValueType::kUint16)).u64(3);
  raw.u8(1).u8(0).u8(2).u8(0).u8(3).u8(0);
  raw.key("bools", GgufValueType::kArray).u32(static_cast<std::uint32_t>(GgufValueType::kBool)).u64(2).u8(0).u8(1);
  raw.key("strings", GgufValueType::kArray).u32(static_cast<std::uint32_t>(GgufValueType::kString)).u64(3);
  raw.str("a").str("").str("ccc");
  raw.key("empty_array", GgufValueType::kArray).u32(static_cast<std::uint32_t>(GgufValueType::kFloat64)).u64(0);
  ExactBuffer buffer(raw.bytes());
  auto parsed = GgufFile::parse(buffer.span(), "values.gguf");
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  const GgufFile& file = **parsed;
  EXPECT_EQ(file.version(), 2u);
  EXPECT_EQ(*file.get<std::uint8_t>("u8"), 200);
  EXPECT_EQ(*file.get<std::int8_t>("i8"), -128);
  EXPECT_EQ(*file.get<std::uint16_t>("u16"), 0x1234);
  EXPECT_EQ(*file.get<std::int16_t>("i16"), -1);
  EXPECT_EQ(*file.get<std::uint32_t>("u32"), 4000000000u);
  EXPECT_EQ(*file.get<std::int32_t>("i32"), -7);
  EXPECT_EQ(*file.get<float>("f32"), 0.25f);
  EXPECT_EQ(*file.get<bool>("bool"), true);
  EXPECT_EQ(*file.get_string("string"), "héllo");
  EXPECT_EQ(*file.get<std::uint64_t>("u64"), 1ULL << 40);
  EXPECT_EQ(*file.get<std::int64_t>("i64"), -5);
  EXPECT_EQ(*file.get<double>("f64"), -1.5);
  EXPECT_EQ(*file.get_string("empty_string"), "");
  EXPECT_EQ(*file.get_unsigned("u8"), 200u);
  EXPECT_EQ(*file.get_unsigned("u64"), 1ULL << 40);
  EXPECT_TRUE(MessageHas(file.get_unsigned("i64").status(), "is -5, not a count or an id"));
  EXPECT_EQ(*file.get_real("f32"), 0.25);
  EXPECT_EQ(*file.get_real("f64"), -1.5);

  auto u16s = file.get_array<std::uint16_t>("u16s");
  ASSERT_TRUE(u16s.is_ok());
  EXPECT_EQ(std::vector<std::uint16_t>(u16s->begin(), u16s->end()), (std::vector<std::uint16_t>{1, 2, 3}));
  auto bools = file.get_array<bool>("bools");
  ASSERT_TRUE(bools.is_ok());
  EXPECT_FALSE((*bools)[0]);
  EXPECT_TRUE((*bools)[1]);
  auto strings = file.get_string_array("strings");
  ASSERT_TRUE(strings.is_ok());
  ASSERT_EQ(strings->size(), 3u);
  EXPECT_EQ((*strings)[0], "a");
  EXPECT_EQ((*strings)[1], "");
  EXPECT_EQ((*strings)[2], "ccc");
  auto empty = file.get_array<double>("empty_array");
  ASSERT_TRUE(empty.is_ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(empty->begin(), empty->end());
  EXPECT_TRUE(file.tensors().empty());

  EXPECT_EQ(file.format_value(*file.find_metadata("bools")), "[false, true]");
  EXPECT_EQ(file.format_value(*file.find_metadata("strings")), "[a, , ccc]");
  EXPECT_EQ(file.format_value(*file.find_metadata("empty_array")), "[]");
  EXPECT_EQ(file.format_value(*file.find_metadata("f64")), "-1.5");
  ASSERT_EQ(file.metadata().size(), 17u);
  EXPECT_EQ(file.metadata()[13].key, "u16s");
  EXPECT_EQ(file.metadata()[13].array_type, GgufValueType::kUint16);
  EXPECT_EQ(file.metadata()[13].array_size, 3u);
}

// A file of one tensor of each supported type, with general.alignment 64.
TEST(GgufFile, ReadsTensorsOfEachTypeAtTheirAlignment) {
  RawGguf raw;
  raw.header(5, 1).key("general.alignment", GgufValueType::kUint32).u32(64);
  raw.tensor("f32", {3, 2}, 0, 0);        // 24 bytes
  raw.tensor("f16", {5}, 1, 64);          // 10 bytes
  raw.tensor("bf16", {2, 2, 2, 2}, 30, 128);  // 32 bytes
  raw.tensor("q8_0", {64, 3}, 8, 192);    // 6 blocks, 204 bytes
  raw.tensor("q4_0", {32}, 2, 448);       // 18 bytes
  raw.pad(64);
  const std::size_t data_offset = raw.bytes().size();
  raw.zeros(448 + 18);
  ExactBuffer buffer(raw.bytes());
  auto parsed = GgufFile::parse(buffer.span(), "types.gguf");
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  const GgufFile& file = **parsed;
  EXPECT_EQ(file.alignment(), 64u);
  EXPECT_EQ(file.data_offset(), data_offset);
  const std::uint64_t bytes[] = {24, 10, 32, 204, 18};
  const TensorType types[] = {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0,
                              TensorType::kQ4_0};
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(file.tensors()[i].bytes, bytes[i]) << i;
    EXPECT_EQ(file.tensors()[i].type, types[i]) << i;
    EXPECT_EQ(file.tensors()[i].file_offset % 64, 0u) << i;
  }
  EXPECT_EQ(file.find("bf16")->n_dims, 4u);
  EXPECT_EQ(file.find("q8_0")->rows(), 3u);
  EXPECT_EQ(file.find("q8_0")->row_bytes(), 68u);
}

// The fuzz corpus (tests/fuzz/corpus/gguf) stays what its names say.
TEST(GgufFile, FuzzCorpusIsWhatItsNamesSay) {
  const std::filesystem::path dir = testing::source_dir() / "tests/fuzz/corpus/gguf";
  auto q4 = GgufFile::open((dir / "tiny-q4_0.gguf").string());
  ASSERT_TRUE(q4.is_ok()) << q4.status().to_string();
  EXPECT_EQ((*q4)->find("blk.0.ffn_down.weight")->type, TensorType::kQ4_0);
  auto f16 = GgufFile::open((dir / "tiny-f16-tied-v2.gguf").string());
  ASSERT_TRUE(f16.is_ok()) << f16.status().to_string();
  EXPECT_EQ((*f16)->version(), 2u);
  EXPECT_EQ((*f16)->alignment(), 64u);
  EXPECT_EQ((*f16)->find("output.weight"), nullptr);
  EXPECT_TRUE((*f16)->has("headroom.sample.array.string"));
  auto cut = GgufFile::open((dir / "tiny-q8_0-cut.gguf").string());
  EXPECT_TRUE(MessageHas(cut.status(), "tiny-q8_0-cut.gguf: truncated"));
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_LE(entry.file_size(), 64u * 1024) << entry.path() << ": the fuzz driver mutates inputs up to 64 KiB";
  }
}

}  // namespace
}  // namespace headroom::infer
