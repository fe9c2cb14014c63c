// LlamaModel against the plain float reference (reference_llama.h), on the
// real stories260K and on generated models of every weight type, with the
// portable and the AVX2 kernels.
#include "infer/model/llama_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "infer/gguf/gguf_test_util.h"
#include "infer/gguf/gguf_writer.h"
#include "infer/gguf/random_llama.h"
#include "infer/model/reference_llama.h"
#include "infer/tokenizer/gguf_vocabulary.h"
#include "infer/tokenizer/tokenizer.h"

namespace headroom::infer {
namespace {

using testing::stories_path;

// A tensor's values as floats, whatever its type.
std::vector<float> dequantize(const TensorView& t) {
  std::vector<float> out(t.elements());
  infer::dequantize(t.type, t.data, out.size(), out.data());
  return out;
}

std::vector<float> weights_of(const GgufFile& file, const std::string& name) {
  const TensorView* t = file.find(name);
  EXPECT_NE(t, nullptr) << name;
  return t == nullptr ? std::vector<float>{} : dequantize(*t);
}

reference::Llama reference_of(const GgufFile& file, const LlamaConfig& c, std::size_t context) {
  reference::Config rc{.dim = static_cast<int>(c.dim),
                       .hidden_dim = static_cast<int>(c.hidden_dim),
                       .n_layers = static_cast<int>(c.n_layers),
                       .n_heads = static_cast<int>(c.n_heads),
                       .n_kv_heads = static_cast<int>(c.n_kv_heads),
                       .vocab = static_cast<int>(c.vocab),
                       .context = static_cast<int>(context),
                       .rope_base = c.rope_base,
                       .rms_epsilon = c.rms_epsilon,
                       .f16_cache = c.kv_type == TensorType::kF16};
  reference::Weights w;
  w.token_embd = weights_of(file, "token_embd.weight");
  w.output_norm = weights_of(file, "output_norm.weight");
  if (!c.tied_output) w.output = weights_of(file, "output.weight");
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    reference::Layer L;
    L.attn_norm = weights_of(file, p + "attn_norm.weight");
    L.wq = weights_of(file, p + "attn_q.weight");
    L.wk = weights_of(file, p + "attn_k.weight");
    L.wv = weights_of(file, p + "attn_v.weight");
    L.wo = weights_of(file, p + "attn_output.weight");
    L.ffn_norm = weights_of(file, p + "ffn_norm.weight");
    L.w_gate = weights_of(file, p + "ffn_gate.weight");
    L.w_up = weights_of(file, p + "ffn_up.weight");
    L.w_down = weights_of(file, p + "ffn_down.weight");
    w.layers.push_back(std::move(L));
  }
  return reference::Llama(rc, std::move(w));
}

// The lowest id among the largest logits.
std::int32_t argmax(std::span<const float> logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

double max_abs_diff(std::span<const float> a, std::span<const float> b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
  return worst;
}

std::vector<Isa> isas() {
  std::vector<Isa> out = {Isa::kPortable};
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (Kernels::get(isa).has_value()) out.push_back(isa);
  }
  return out;
}

struct Comparison {
  double max_error = 0;  // the largest |logit - reference logit| of any step
  double max_logit = 0;  // the largest |reference logit|, for scale
};

// Runs `prompt` then greedy-decodes `decode_tokens` tokens with both
// models, both reading the same tokens (the reference's choices), and
// compares every step's logits. The model's greedy choice must be the
// reference's wherever the reference's best logit leads the next by more
// than `tie_margin`: closer than that, the tolerated error may order the two
// either way, and feeding each model its own choice would then compare two
// different continuations.
Comparison compare_with_reference(const GgufFile& file, const Kernels& kernels, Precision precision,
                                  std::span<const std::int32_t> prompt, int decode_tokens, ThreadPool* pool,
                                  double tie_margin) {
  auto model = LlamaModel::load(file, {.kernels = &kernels, .precision = precision});
  EXPECT_TRUE(model.is_ok()) << model.status().message();
  if (!model.is_ok()) return {INFINITY, 0};
  const LlamaConfig& c = (*model)->config();
  const std::size_t context = prompt.size() + decode_tokens + 1;
  reference::Llama ref = reference_of(file, c, context);
  KvCache cache = (*model)->new_cache(context);
  std::vector<float> logits(c.vocab);
  std::vector<float> want;
  Comparison worst;
  std::vector<std::int32_t> tokens(prompt.begin(), prompt.end());
  for (std::size_t pos = 0; pos < tokens.size(); ++pos) {
    EXPECT_TRUE((*model)->forward(tokens[pos], pos, cache, logits, pool).is_ok());
    want = ref.forward(tokens[pos], static_cast<int>(pos));
    worst.max_error = std::max(worst.max_error, max_abs_diff(logits, want));
    for (float v : want) worst.max_logit = std::max(worst.max_logit, std::abs(static_cast<double>(v)));
    if (pos + 1 < prompt.size()) continue;
    const std::int32_t best = argmax(want);
    float runner_up = -INFINITY;
    for (std::size_t i = 0; i < want.size(); ++i) {
      if (static_cast<std::int32_t>(i) != best) runner_up = std::max(runner_up, want[i]);
    }
    if (want[static_cast<std::size_t>(best)] - runner_up > tie_margin) {
      EXPECT_EQ(argmax(logits), best) << isa_name(kernels.isa()) << " at position " << pos;
    }
    tokens.push_back(best);
    if (tokens.size() == prompt.size() + static_cast<std::size_t>(decode_tokens)) break;
  }
  return worst;
}

TEST(LlamaModelTest, Stories260KMatchesTheReferenceForSixtyFourGreedyTokens) {
  const std::string path = stories_path();
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: the repository ships it (models/)";
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  auto vocabulary = vocabulary_from_gguf(**file);
  ASSERT_TRUE(vocabulary.is_ok()) << vocabulary.status().message();
  auto tokenizer = Tokenizer::create(std::move(*vocabulary));
  ASSERT_TRUE(tokenizer.is_ok()) << tokenizer.status().message();
  auto prompt =
      tokenizer->encode("Once upon a time, there was a little girl named Lily", AddSpecial::kYes, ParseSpecial::kNo);
  ASSERT_TRUE(prompt.is_ok());
  ASSERT_EQ(prompt->front(), *tokenizer->bos());
  ThreadPool pool({.threads = 4});
  for (Isa isa : isas()) {
    const Kernels kernels = *Kernels::get(isa);
    // stories260K is F32: only the summation order differs from the
    // reference (which sums in double). Logits are of order 10; the
    // measured max difference is printed.
    const Comparison worst = compare_with_reference(**file, kernels, Precision::kFast, *prompt, 64, &pool, 2e-4);
    std::printf("stories260K %s: max |logit - reference| = %.3g (max |logit| %.3g)\n",
                std::string(isa_name(isa)).c_str(), worst.max_error, worst.max_logit);
    EXPECT_LE(worst.max_error, 1e-4) << isa_name(isa);
  }
}

struct TypeTolerance {
  TensorType type;
  // The largest |logit - reference| allowed with Precision::kFast, on the
  // random models below, whose logits reach about 4 in magnitude. F32, F16
  // and BF16 weights take f32 activations (F16 and BF16 widen exactly, and
  // the reference reads the same values widened), so only summation order
  // differs: measured at most 7.4e-6 (f16, portable). Q8_0 and Q4_0 quantize
  // each activation row to 8 bits per 32-value block (kernels.h), up to d/2
  // per value, about 2% of a matvec's output at worst, and keep their keys
  // and values in F16 (LlamaConfig::kv_type; the reference rounds them the
  // same way): measured 0.094 (q8_0) and 0.084 (q4_0), the same on every
  // ISA, over 2 layers and 22 steps.
  // The tolerances are about 3x the largest error measured. (With
  // Precision::kExact every type is within 1e-4: checked below.)
  double fast_tolerance;
};

class RandomModelTest : public ::testing::TestWithParam<TypeTolerance> {};

TEST_P(RandomModelTest, LogitsMatchTheReferenceWithinTheTypesTolerance) {
  const TypeTolerance param = GetParam();
  RandomLlamaOptions options;
  options.vocab_size = 300;
  options.dim = 64;
  options.hidden_dim = 96;
  options.n_layers = 2;
  options.n_heads = 4;
  options.n_kv_heads = 2;
  options.context_length = 64;
  options.weight_type = param.type;
  options.seed = 7;
  const std::string path = ::testing::TempDir() + "/random_" + std::string(tensor_type_name(param.type)) + ".gguf";
  ASSERT_TRUE(write_random_llama(options, path).is_ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  const std::vector<std::int32_t> prompt = {1, 100, 200, 37, 299, 5};
  for (Isa isa : isas()) {
    const Kernels kernels = *Kernels::get(isa);
    const Comparison fast = compare_with_reference(**file, kernels, Precision::kFast, prompt, 16, nullptr, 2 * param.fast_tolerance);
    const Comparison exact = compare_with_reference(**file, kernels, Precision::kExact, prompt, 16, nullptr, 2e-4);
    std::printf("%s %s: max |logit - reference| fast %.3g, exact %.3g (max |logit| %.3g)\n",
                std::string(tensor_type_name(param.type)).c_str(), std::string(isa_name(isa)).c_str(), fast.max_error,
                exact.max_error, fast.max_logit);
    EXPECT_LE(fast.max_error, param.fast_tolerance) << isa_name(isa);
    // Exact precision takes f32 activations: rounding only.
    EXPECT_LE(exact.max_error, 1e-4) << isa_name(isa);
  }
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Types, RandomModelTest,
                         ::testing::Values(TypeTolerance{TensorType::kF32, 1e-4}, TypeTolerance{TensorType::kF16, 1e-4},
                                           TypeTolerance{TensorType::kBF16, 1e-4},
                                           TypeTolerance{TensorType::kQ8_0, 0.25},
                                           TypeTolerance{TensorType::kQ4_0, 0.25}),
                         [](const ::testing::TestParamInfo<TypeTolerance>& type_info) {
                           return std::string(tensor_type_name(type_info.param.type));
                         });

// A small grouped-query llama (two query heads per kv head), for the
// batching tests.
RandomLlamaOptions small_gqa_llama(std::size_t context_length) {
  RandomLlamaOptions options;
  options.vocab_size = 300;
  options.dim = 64;
  options.hidden_dim = 96;
  options.n_layers = 2;
  options.n_heads = 4;
  options.n_kv_heads = 2;
  options.context_length = context_length;
  return options;
}

TEST(LlamaModelTest, BatchedPrefillMatchesOneTokenAtATime) {
  RandomLlamaOptions options = small_gqa_llama(64);
  options.output = OutputWeights::kTied;
  const std::string path = ::testing::TempDir() + "/random_batch.gguf";
  ASSERT_TRUE(write_random_llama(options, path).is_ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok());
  auto model = LlamaModel::load(**file);
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  EXPECT_TRUE((*model)->config().tied_output);
  const std::vector<std::int32_t> prompt = {1, 100, 200, 37, 299, 5, 42, 7};
  ThreadPool pool({.threads = 3});
  KvCache one = (*model)->new_cache(32), many = (*model)->new_cache(32);
  std::vector<float> a((*model)->config().vocab), b(a.size());
  for (std::size_t pos = 0; pos < prompt.size(); ++pos)
    ASSERT_TRUE((*model)->forward(prompt[pos], pos, one, a, &pool).is_ok());
  // Two batches: the second attends to the first one's cache.
  ASSERT_TRUE((*model)->forward(std::span(prompt).first(3), 0, many, b, &pool).is_ok());
  ASSERT_TRUE((*model)->forward(std::span(prompt).subspan(3), 3, many, b, &pool).is_ok());
  EXPECT_LE(max_abs_diff(a, b), 1e-5);
  // And the next step from either cache gives the same logits.
  ASSERT_TRUE((*model)->forward(9, prompt.size(), one, a, &pool).is_ok());
  ASSERT_TRUE((*model)->forward(9, prompt.size(), many, b, &pool).is_ok());
  EXPECT_LE(max_abs_diff(a, b), 1e-5);
  std::filesystem::remove(path);
}

// A batch this big has its per-row work (norms, rotary, cache stores,
// SwiGLU, residual adds) split over the pool: every value must still have
// the bits one thread gives it, in the logits and in the cache the next
// step reads.
TEST(LlamaModelTest, ABatchSplitOverThePoolHasTheBitsOfOneThread) {
  RandomLlamaOptions options = small_gqa_llama(256);
  options.weight_type = TensorType::kQ8_0;  // an F16 cache, stored by the split rows
  const std::string path = ::testing::TempDir() + "/random_split.gguf";
  ASSERT_TRUE(write_random_llama(options, path).is_ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok());
  auto model = LlamaModel::load(**file);
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  std::vector<std::int32_t> prompt(200);  // 200 rows x 64 values: past the split's threshold
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<std::int32_t>((i * 37 + 1) % 300);
  ThreadPool pool({.threads = 3});
  KvCache alone = (*model)->new_cache(256), split = (*model)->new_cache(256);
  std::vector<float> a((*model)->config().vocab), b(a.size());
  ASSERT_TRUE((*model)->forward(prompt, 0, alone, a, nullptr).is_ok());
  ASSERT_TRUE((*model)->forward(prompt, 0, split, b, &pool).is_ok());
  EXPECT_EQ(max_abs_diff(a, b), 0.0);
  ASSERT_TRUE((*model)->forward(9, prompt.size(), alone, a, nullptr).is_ok());
  ASSERT_TRUE((*model)->forward(9, prompt.size(), split, b, &pool).is_ok());
  EXPECT_EQ(max_abs_diff(a, b), 0.0);
  std::filesystem::remove(path);
}

TEST(LlamaModelTest, ForwardRejectsBadInput) {
  RandomLlamaOptions options;
  options.vocab_size = 300;
  options.n_layers = 1;
  const std::string path = ::testing::TempDir() + "/random_bad_input.gguf";
  ASSERT_TRUE(write_random_llama(options, path).is_ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok());
  auto model = LlamaModel::load(**file);
  ASSERT_TRUE(model.is_ok());
  KvCache cache = (*model)->new_cache(4);
  std::vector<float> logits((*model)->config().vocab);
  EXPECT_FALSE((*model)->forward(300, 0, cache, logits, nullptr).is_ok());
  EXPECT_FALSE((*model)->forward(-1, 0, cache, logits, nullptr).is_ok());
  EXPECT_FALSE((*model)->forward(1, 4, cache, logits, nullptr).is_ok());
  std::vector<float> short_logits(10);
  EXPECT_FALSE((*model)->forward(1, 0, cache, short_logits, nullptr).is_ok());
  std::filesystem::remove(path);
}

TEST(LlamaModelTest, LoadRejectsAModelWhoseShapesDisagree) {
  // A GGUF with no tensors and llama metadata whose heads do not divide dim.
  GgufWriter writer;
  ASSERT_TRUE(writer.add_string("general.architecture", "llama").is_ok());
  ASSERT_TRUE(writer.add("llama.embedding_length", std::uint32_t{64}).is_ok());
  ASSERT_TRUE(writer.add("llama.feed_forward_length", std::uint32_t{96}).is_ok());
  ASSERT_TRUE(writer.add("llama.block_count", std::uint32_t{1}).is_ok());
  ASSERT_TRUE(writer.add("llama.attention.head_count", std::uint32_t{5}).is_ok());
  ASSERT_TRUE(writer.add("llama.context_length", std::uint32_t{64}).is_ok());
  ASSERT_TRUE(writer.add("llama.attention.layer_norm_rms_epsilon", 1e-5f).is_ok());
  const std::string path = ::testing::TempDir() + "/bad_heads.gguf";
  ASSERT_TRUE(writer.write_file(path).is_ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  auto model = LlamaModel::load(**file);
  ASSERT_FALSE(model.is_ok());
  EXPECT_NE(model.status().message().find("does not divide"), std::string::npos) << model.status().message();
  std::filesystem::remove(path);
}

TEST(LlamaModelTest, LoadRejectsAnotherArchitecture) {
  GgufWriter writer;
  ASSERT_TRUE(writer.add_string("general.architecture", "gpt2").is_ok());
  const std::string path = ::testing::TempDir() + "/gpt2.gguf";
  ASSERT_TRUE(writer.write_file(path).is_ok());
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  auto model = LlamaModel::load(**file);
  ASSERT_FALSE(model.is_ok());
  EXPECT_NE(model.status().message().find("'gpt2'"), std::string::npos) << model.status().message();
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace headroom::infer
