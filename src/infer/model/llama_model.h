// LlamaModel: the built-in engine's llama forward pass on the CPU, over the
// weights of a GGUF file as they lie in its mapping.
//
// The architecture is reference_llama.h's (read its comment): rmsnorm,
// grouped-query attention with rope on adjacent pairs, a SwiGLU feed-forward,
// and an output matrix that is token_embd when output.weight is absent. The
// arithmetic is the kernels' (infer/kernels/kernels.h): matrices stay in
// their file type (F32, F16, BF16, Q8_0, Q4_0) and are never copied; only the
// embedding row of each input token is dequantized, on lookup.
//
// load() checks the file as outside input: general.architecture is llama;
// the llama.* hyperparameters are present and in range (head_count divides
// embedding_length into an even head_dim of at most kMaxHeadDim, and
// head_count_kv divides head_count; rope.dimension_count, when present, is
// head_dim); every tensor has exactly the shape the
// hyperparameters give it, and a type the kernels read (norms F32). An error
// names the key or the tensor and what is wrong.
//
// Ownership and threads: a LlamaModel holds views into the GgufFile, which
// must outlive it. It is immutable after load(), so any number of threads
// may run forward() at once, each on its own sequences and ForwardScratch
// (a KvCache holds both for one sequence). Keys and values live in pages
// (kv_cache.h), whether of one sequence or of a batch. The ThreadPool passed to forward() splits
// each step's loops; null runs them on the calling thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "infer/gguf/gguf_file.h"
#include "infer/kernels/kernels.h"
#include "infer/kernels/large_buffer.h"
#include "infer/kernels/thread_pool.h"
#include "infer/model/kv_cache.h"

namespace headroom::infer {

// The most positions a KvCache may hold, and the most tokens one batched
// forward() takes (its scratch grows with the batch).
inline constexpr std::size_t kMaxContextTokens = 1 << 17;
inline constexpr std::size_t kMaxBatchTokens = 512;
static_assert(kMaxBatchTokens <= kMaxContextTokens);

struct LlamaConfig {
  std::size_t dim = 0;             // llama.embedding_length
  std::size_t hidden_dim = 0;      // llama.feed_forward_length
  std::size_t n_layers = 0;        // llama.block_count
  std::size_t n_heads = 0;         // llama.attention.head_count
  std::size_t n_kv_heads = 0;      // llama.attention.head_count_kv (default: n_heads)
  std::size_t head_dim = 0;        // dim / n_heads
  std::size_t kv_dim = 0;          // n_kv_heads * head_dim
  std::size_t vocab = 0;           // token_embd's rows
  std::size_t context_length = 0;  // llama.context_length: what the model was trained on
  float rope_base = 10000.0f;      // llama.rope.freq_base (default 10000)
  float rms_epsilon = 1e-5f;       // llama.attention.layer_norm_rms_epsilon
  bool tied_output = false;        // no output.weight: logits use token_embd
  // The KV cache's values (KvPool): F16 for a model of quantized weights
  // run with Precision::kFast, whose answers already carry the activations'
  // 8-bit rounding; F32 otherwise, so that float models and kExact stay
  // within rounding of the reference. F16 needs head_dim a multiple of 8.
  TensorType kv_type = TensorType::kF32;
};

// The scratch activations of a forward step, sized for the largest batch
// seen so far. One per thread that calls forward(); not thread-safe.
class ForwardScratch {
 private:
  friend class LlamaModel;
  std::vector<float> x_, h_, q_, k_, v_, attended_, out_, gate_, up_, logits_;
  std::vector<RopeAngles> angles_;
  std::vector<std::uint32_t> row_slice_;  // each row's slice
  std::vector<std::size_t> row_pos_;      // each row's position
};

// One sequence's part of a batched forward step: tokens[i] runs at position
// start_pos + i of the sequence whose keys and values `kv` holds (positions
// before start_pos already there, room up to start_pos + tokens.size()).
// With non-empty `logits` (the vocabulary's size), the logits that follow
// the last token are written there.
struct SequenceSlice {
  KvSequence* kv = nullptr;
  std::span<const std::int32_t> tokens;
  std::size_t start_pos = 0;
  std::span<float> logits;
};

// One sequence with a cache of its own: what a caller that runs a single
// sequence needs (the CLI, tests, benchmarks). Movable.
class KvCache {
 public:
  KvCache(const LlamaConfig& config, std::size_t context_tokens);
  std::size_t context_tokens() const { return context_tokens_; }

 private:
  friend class LlamaModel;
  std::size_t context_tokens_;
  std::unique_ptr<KvPool> pool_;
  KvSequence sequence_;
  ForwardScratch scratch_;
};

struct LlamaModelOptions {
  const Kernels* kernels = nullptr;  // null: Kernels::best()
  Precision precision = Precision::kFast;
};

class LlamaModel {
 public:
  // `file` must outlive the model. invalid_argument (or not_found for a
  // missing key or tensor) naming what is wrong.
  static Result<std::unique_ptr<LlamaModel>> load(const GgufFile& file, LlamaModelOptions options = {});

  const LlamaConfig& config() const { return config_; }
  const Kernels& kernels() const { return *kernels_; }
  // The bytes of the weight matrices one forward step reads (every layer's
  // and the output's, as stored in the file).
  std::size_t step_weight_bytes() const { return step_weight_bytes_; }

  // A cache for `context_tokens` positions (0: the model's context_length),
  // clamped to kMaxContextTokens.
  KvCache new_cache(std::size_t context_tokens = 0) const;

  // Runs `token` at position `pos` (positions 0, 1, 2... in order; the cache
  // holds the earlier ones) and writes the vocab logits that follow it.
  // invalid_argument for a token outside the vocabulary, a position past the
  // cache, or logits of the wrong size.
  [[nodiscard]] Status forward(std::int32_t token, std::size_t pos, KvCache& cache, std::span<float> logits,
                               ThreadPool* pool) const;

  // Runs tokens[i] at position start_pos + i, all at once (each weight
  // matrix read once for the batch), and writes the logits that follow the
  // last one. At most kMaxBatchTokens tokens; the same errors as above.
  [[nodiscard]] Status forward(std::span<const std::int32_t> tokens, std::size_t start_pos, KvCache& cache,
                               std::span<float> logits, ThreadPool* pool) const;

  // One step of several sequences at once: the tokens of every slice form
  // one batch for the weight matrices (each read once), and each attends to
  // its own sequence. At most kMaxBatchTokens tokens in all; no two slices
  // of one sequence. Every value is computed as it would be for that
  // sequence alone (the kernels compute each row alone), so the logits are
  // the same bits batched or not. invalid_argument, before anything runs,
  // for a slice that breaks the rules above.
  [[nodiscard]] Status forward(std::span<const SequenceSlice> slices, ForwardScratch& scratch, ThreadPool* pool) const;

  // The embedding row of `token`, dequantized to dim floats.
  void embed(std::int32_t token, float* out) const;

 private:
  struct Layer {
    const float* attn_norm;
    WeightMatrix wq, wk, wv, wo;
    const float* ffn_norm;
    WeightMatrix w_gate, w_up, w_down;
  };
  LlamaModel() = default;

  LlamaConfig config_;
  const Kernels* kernels_ = nullptr;
  Precision precision_ = Precision::kFast;
  WeightMatrix token_embd_;
  std::vector<Layer> layers_;
  const float* output_norm_ = nullptr;
  WeightMatrix output_;
  std::size_t step_weight_bytes_ = 0;
  LargeBuffer packed_;  // what the matrices' `packed` point to
};

}  // namespace headroom::infer
