#include "infer/gguf/random_llama.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "infer/gguf/gguf_test_util.h"

namespace headroom::infer {
namespace {

using testing::ExactBuffer;
using testing::MessageHas;

// A small llama whose dims suit every weight type.
RandomLlamaOptions small(TensorType type) {
  return RandomLlamaOptions{.vocab_size = 300, .dim = 64, .hidden_dim = 96, .n_layers = 2, .n_heads = 4,
                            .n_kv_heads = 2, .context_length = 256, .rope_freq_base = 500000.0f,
                            .rms_norm_eps = 1e-6f, .weight_type = type, .seed = 7};
}

struct Loaded {
  std::string bytes;
  std::unique_ptr<ExactBuffer> buffer;
  std::unique_ptr<GgufFile> file;
};

Loaded generate(const RandomLlamaOptions& options) {
  Loaded out;
  auto writer = random_llama(options);
  EXPECT_TRUE(writer.is_ok()) << writer.status().to_string();
  if (!writer.is_ok()) return out;
  out.bytes = writer->to_bytes();
  out.buffer = std::make_unique<ExactBuffer>(out.bytes);
  auto parsed = GgufFile::parse(out.buffer->span(), "random.gguf");
  EXPECT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  if (parsed.is_ok()) out.file = std::move(parsed).value();
  return out;
}

std::vector<float> dequantize(const TensorView& t) {
  std::vector<float> out(t.elements());
  for (std::uint64_t i = 0; i < t.elements(); ++i) {
    std::uint16_t h;
    switch (t.type) {
      case TensorType::kF32: std::memcpy(&out[i], t.data + 4 * i, 4); break;
      case TensorType::kF16: std::memcpy(&h, t.data + 2 * i, 2); out[i] = f16_to_f32(h); break;
      case TensorType::kBF16: std::memcpy(&h, t.data + 2 * i, 2); out[i] = bf16_to_f32(h); break;
      case TensorType::kQ8_0:
      case TensorType::kQ4_0: break;
    }
  }
  if (t.type == TensorType::kQ8_0 || t.type == TensorType::kQ4_0) {
    for (std::uint64_t b = 0; b < t.elements() / kQuantBlock; ++b) {
      if (t.type == TensorType::kQ8_0) {
        BlockQ8_0 block;
        std::memcpy(&block, t.data + b * sizeof block, sizeof block);
        dequantize_q8_0(block, &out[b * kQuantBlock]);
      } else {
        BlockQ4_0 block;
        std::memcpy(&block, t.data + b * sizeof block, sizeof block);
        dequantize_q4_0(block, &out[b * kQuantBlock]);
      }
    }
  }
  return out;
}

TEST(RandomLlama, EachWeightTypeLoadsWithTheRightShapes) {
  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0,
                          TensorType::kQ4_0}) {
    SCOPED_TRACE(tensor_type_name(type));
    const RandomLlamaOptions options = small(type);
    Loaded model = generate(options);
    ASSERT_TRUE(model.file);
    const GgufFile& file = *model.file;
    EXPECT_EQ(file.tensors().size(), 3u + 9 * 2);
    EXPECT_EQ(*file.get_string("general.architecture"), "llama");
    EXPECT_EQ(*file.get<std::uint32_t>("llama.embedding_length"), 64u);
    EXPECT_EQ(*file.get<std::uint32_t>("llama.feed_forward_length"), 96u);
    EXPECT_EQ(*file.get<std::uint32_t>("llama.block_count"), 2u);
    EXPECT_EQ(*file.get<std::uint32_t>("llama.attention.head_count"), 4u);
    EXPECT_EQ(*file.get<std::uint32_t>("llama.attention.head_count_kv"), 2u);
    EXPECT_EQ(*file.get<std::uint32_t>("llama.context_length"), 256u);
    EXPECT_EQ(*file.get<std::uint32_t>("llama.rope.dimension_count"), 16u);
    EXPECT_EQ(*file.get<float>("llama.rope.freq_base"), 500000.0f);
    EXPECT_EQ(*file.get<float>("llama.attention.layer_norm_rms_epsilon"), 1e-6f);
    EXPECT_EQ(file.get_string_array("tokenizer.ggml.tokens")->size(), 300u);

    const std::pair<std::string, std::vector<std::uint64_t>> shapes[] = {
        {"token_embd.weight", {64, 300}},    {"output_norm.weight", {64}},        {"output.weight", {64, 300}},
        {"blk.1.attn_q.weight", {64, 64}},   {"blk.1.attn_k.weight", {64, 32}},   {"blk.1.attn_v.weight", {64, 32}},
        {"blk.1.attn_output.weight", {64, 64}}, {"blk.1.attn_norm.weight", {64}}, {"blk.1.ffn_gate.weight", {64, 96}},
        {"blk.1.ffn_down.weight", {96, 64}}, {"blk.1.ffn_up.weight", {64, 96}},   {"blk.1.ffn_norm.weight", {64}}};
    for (const auto& [name, dims] : shapes) {
      auto tensor = file.tensor(name, dims);
      ASSERT_TRUE(tensor.is_ok()) << tensor.status().to_string();
      EXPECT_EQ(tensor->type, dims.size() == 1 ? TensorType::kF32 : type) << name;  // norms stay f32
    }
  }
}

// The tensor and key names, their order and their types are stories260K's,
// for stories260K's shape.
TEST(RandomLlama, MirrorsStories260K) {
  const std::filesystem::path path = testing::stories_path();
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: the repository ships it (models/)";
  auto stories = GgufFile::open(path.string());
  ASSERT_TRUE(stories.is_ok());
  Loaded model = generate(RandomLlamaOptions{});
  ASSERT_TRUE(model.file);
  const GgufFile& ours = *model.file;

  ASSERT_EQ(ours.tensors().size(), (*stories)->tensors().size());
  for (std::size_t i = 0; i < ours.tensors().size(); ++i) {
    const TensorView& a = ours.tensors()[i];
    const TensorView& b = (*stories)->tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.type, b.type) << a.name;
    EXPECT_EQ(format_shape(a.shape()), format_shape(b.shape())) << a.name;
    EXPECT_EQ(a.file_offset - ours.data_offset(), b.file_offset - (*stories)->data_offset()) << a.name;
  }
  for (const GgufMetadataEntry& entry : (*stories)->metadata()) {
    // stories260K's two "no such token" ids (0xffffffff) are what an absent key means.
    if (entry.key == "tokenizer.ggml.seperator_token_id" || entry.key == "tokenizer.ggml.padding_token_id") continue;
    const GgufMetadataEntry* mine = ours.find_metadata(entry.key);
    ASSERT_NE(mine, nullptr) << entry.key;
    EXPECT_EQ(mine->type, entry.type) << entry.key;
    EXPECT_EQ(mine->array_type, entry.array_type) << entry.key;
    EXPECT_EQ(mine->array_size, entry.array_size) << entry.key;
    if (entry.key.starts_with("llama.") || entry.key.ends_with("_id") || entry.key.ends_with("model") ||
        entry.key == "general.architecture") {
      EXPECT_EQ(ours.format_value(*mine), (*stories)->format_value(entry)) << entry.key;
    }
  }
  // The first 259 tokens, their scores and types are stories260K's exactly.
  auto our_tokens = *ours.get_string_array("tokenizer.ggml.tokens");
  auto their_tokens = *(*stories)->get_string_array("tokenizer.ggml.tokens");
  auto our_types = *ours.get_array<std::int32_t>("tokenizer.ggml.token_type");
  auto their_types = *(*stories)->get_array<std::int32_t>("tokenizer.ggml.token_type");
  auto our_scores = *ours.get_array<float>("tokenizer.ggml.scores");
  auto their_scores = *(*stories)->get_array<float>("tokenizer.ggml.scores");
  for (std::size_t i = 0; i < 512; ++i) {
    if (i < 259) {
      EXPECT_EQ(our_tokens[i], their_tokens[i]) << i;
    }
    EXPECT_EQ(our_types[i], their_types[i]) << i;
    EXPECT_EQ(our_scores[i], their_scores[i]) << i;
  }
}

TEST(RandomLlama, VocabularyIsUniqueAndMergeable) {
  for (std::uint32_t size : {259u, 260u, 333u, 5000u}) {
    const RandomVocab vocab = random_vocab(size, 3);
    ASSERT_EQ(vocab.tokens.size(), size);
    std::set<std::string> unique(vocab.tokens.begin(), vocab.tokens.end());
    EXPECT_EQ(unique.size(), size);
    EXPECT_EQ(vocab.tokens[0], "<unk>");
    EXPECT_EQ(vocab.tokens[1], "<s>");
    EXPECT_EQ(vocab.tokens[2], "</s>");
    EXPECT_EQ(vocab.tokens[3 + 0x41], "<0x41>");
    // Every normal token of two or more characters is an earlier token plus one character.
    for (std::size_t i = 259; i < size; ++i) {
      const std::string& token = vocab.tokens[i];
      EXPECT_EQ(vocab.token_types[i], 1);
      EXPECT_LE(token.size(), limits::kRandomLlamaTokenBytes);
      EXPECT_EQ(vocab.scores[i], -static_cast<float>(i - 259));
      EXPECT_EQ(token.find("\xe2\x96\x81", 1), std::string::npos) << token;  // ▁ starts a piece or is absent
      const bool single = token.size() == 1 || token == "\xe2\x96\x81";
      if (!single) {
        EXPECT_TRUE(unique.contains(token.substr(0, token.size() - 1))) << token;
      }
    }
  }
  EXPECT_EQ(random_vocab(5000, 3).tokens, random_vocab(5000, 3).tokens);
  EXPECT_NE(random_vocab(5000, 3).tokens, random_vocab(5000, 4).tokens);
}

TEST(RandomLlama, IsDeterministic) {
  const std::string a = random_llama(small(TensorType::kQ4_0))->to_bytes();
  const std::string b = random_llama(small(TensorType::kQ4_0))->to_bytes();
  EXPECT_EQ(a, b);
  RandomLlamaOptions other = small(TensorType::kQ4_0);
  other.seed = 8;
  EXPECT_NE(random_llama(other)->to_bytes(), a);
}

// One set of values per (seed, tensor name): every weight type holds the f32
// model's values, converted.
TEST(RandomLlama, WeightTypesHoldTheSameValues) {
  Loaded f32 = generate(small(TensorType::kF32));
  ASSERT_TRUE(f32.file);
  const std::vector<float> expected_q = random_tensor_values(7, "blk.0.attn_q.weight", RandomTensorKind::kMatrix, 64,
                                                             64 * 64);
  EXPECT_EQ(dequantize(*f32.file->find("blk.0.attn_q.weight")), expected_q);
  const std::vector<float> norm = dequantize(*f32.file->find("blk.0.attn_norm.weight"));
  EXPECT_EQ(norm, random_tensor_values(7, "blk.0.attn_norm.weight", RandomTensorKind::kNorm, 64, 64));
  for (float v : norm) EXPECT_TRUE(v >= 0.9f && v <= 1.1f) << v;
  const float bound = std::sqrt(3.0f / 64);
  for (float v : expected_q) EXPECT_TRUE(std::fabs(v) <= bound) << v;

  for (TensorType type : {TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0, TensorType::kQ4_0}) {
    SCOPED_TRACE(tensor_type_name(type));
    Loaded model = generate(small(type));
    ASSERT_TRUE(model.file);
    for (const TensorView& t : model.file->tensors()) {
      const std::vector<float> want = dequantize(*f32.file->find(t.name));
      const std::vector<float> got = dequantize(t);
      ASSERT_EQ(got.size(), want.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        float expected = want[i];
        if (t.type == TensorType::kF16) expected = f16_to_f32(f32_to_f16(want[i]));
        if (t.type == TensorType::kBF16) expected = bf16_to_f32(f32_to_bf16(want[i]));
        // Quantized: within one q4_0 step of the block's largest value (|v| <= bound, d <= bound / 8).
        const float tolerance = t.type == TensorType::kQ8_0 ? bound / 127 : t.type == TensorType::kQ4_0 ? bound / 8 : 0;
        ASSERT_LE(std::fabs(got[i] - expected), tolerance) << t.name << " value " << i;
      }
    }
  }
}

TEST(RandomLlama, TiedOutputHasNoOutputTensor) {
  RandomLlamaOptions options = small(TensorType::kQ8_0);
  options.output = OutputWeights::kTied;
  Loaded model = generate(options);
  ASSERT_TRUE(model.file);
  EXPECT_EQ(model.file->find("output.weight"), nullptr);
  EXPECT_NE(model.file->find("token_embd.weight"), nullptr);
  EXPECT_EQ(model.file->tensors().size(), 2u + 9 * 2);
}

TEST(RandomLlama, WritesAFile) {
  testing::TempDir dir;
  const std::string path = dir.file("model.gguf");
  ASSERT_TRUE(write_random_llama(small(TensorType::kBF16), path).is_ok());
  auto opened = GgufFile::open(path);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  EXPECT_EQ(*(*opened)->get<std::uint32_t>("general.file_type"), 32u);
  EXPECT_EQ((*opened)->find("blk.0.ffn_up.weight")->type, TensorType::kBF16);
}

TEST(RandomLlama, OtherFormatsAndEveryValueType) {
  RandomLlamaOptions options = small(TensorType::kF16);
  options.format = GgufWriterOptions{.version = 2, .alignment = 64};
  options.extra = ExtraMetadata::kEveryValueType;
  Loaded model = generate(options);
  ASSERT_TRUE(model.file);
  const GgufFile& file = *model.file;
  EXPECT_EQ(file.version(), 2u);
  EXPECT_EQ(file.alignment(), 64u);
  for (const TensorView& t : file.tensors()) EXPECT_EQ(t.file_offset % 64, 0u) << t.name;
  EXPECT_EQ(*file.get<std::int8_t>("headroom.sample.int8"), -100);
  EXPECT_EQ(*file.get<double>("headroom.sample.float64"), 1e-300);
  EXPECT_EQ(*file.get_string("headroom.sample.string"), "h\xc3\xa9" "adroom");
  EXPECT_EQ((*file.get_string_array("headroom.sample.array.string"))[2], "\xe2\x96\x81" "b");
  EXPECT_EQ((*file.get_array<std::int16_t>("headroom.sample.array.int16"))[0], -1);
  EXPECT_TRUE(file.get_array<double>("headroom.sample.array.empty")->empty());
  std::set<GgufValueType> scalar_types, array_types;
  for (const GgufMetadataEntry& entry : file.metadata()) {
    if (!entry.key.starts_with("headroom.sample.")) continue;
    (entry.type == GgufValueType::kArray ? array_types : scalar_types).insert(entry.array_type);
  }
  EXPECT_EQ(scalar_types.size(), 12u);  // every type but array
  EXPECT_EQ(array_types.size(), 12u);   // arrays of each of them
}

TEST(RandomLlama, RefusesBadShapes) {
  auto with = [](auto change) {
    RandomLlamaOptions options = small(TensorType::kQ8_0);
    change(options);
    return validate(options);
  };
  EXPECT_TRUE(with([](RandomLlamaOptions&) {}).is_ok());
  EXPECT_TRUE(MessageHas(with([](RandomLlamaOptions& o) { o.vocab_size = 100; }), "vocab_size is 100"));
  EXPECT_TRUE(MessageHas(with([](RandomLlamaOptions& o) { o.n_heads = 5; }), "n_heads is 5"));
  EXPECT_TRUE(MessageHas(with([](RandomLlamaOptions& o) { o.n_heads = 64; }), "heads of an even size"));
  EXPECT_TRUE(MessageHas(with([](RandomLlamaOptions& o) { o.n_kv_heads = 3; }), "n_kv_heads is 3"));
  EXPECT_TRUE(MessageHas(with([](RandomLlamaOptions& o) { o.hidden_dim = 172; }), "blk.0.ffn_down.weight"));
  EXPECT_TRUE(MessageHas(with([](RandomLlamaOptions& o) { o.dim = 48; o.n_heads = 4; }), "dim is 48"));
  EXPECT_TRUE(MessageHas(with([](RandomLlamaOptions& o) { o.n_layers = 0; }), "n_layers is 0"));
  EXPECT_TRUE(MessageHas(with([](RandomLlamaOptions& o) { o.rope_freq_base = -1; }), "rope_freq_base"));
  EXPECT_TRUE(MessageHas(with([](RandomLlamaOptions& o) { o.rms_norm_eps = 0; }), "rms_norm_eps"));
  EXPECT_TRUE(MessageHas(random_llama(RandomLlamaOptions{.weight_type = TensorType::kQ4_0}).status(),
                         "hidden_dim is 172"));
}

}  // namespace
}  // namespace headroom::infer
