// A generator of deterministic random-weight llama models, for tests and
// benchmarks: any llama shape, weights in any type the engine reads, written
// as GGUF with llama.cpp's tensor names and metadata keys (mirroring
// ../shared/models/stories260K.gguf, a real llama.cpp conversion).
//
// Tensors, in stories260K's order (dims as GGUF stores them, ne0 first;
// head_dim = dim / n_heads, kv_dim = n_kv_heads * head_dim):
//   token_embd.weight         [dim, vocab]        weight type
//   output_norm.weight        [dim]               f32
//   output.weight             [dim, vocab]        weight type (absent when tied)
//   blk.N.attn_q.weight       [dim, dim]          weight type
//   blk.N.attn_k.weight       [dim, kv_dim]       weight type
//   blk.N.attn_v.weight       [dim, kv_dim]       weight type
//   blk.N.attn_output.weight  [dim, dim]          weight type
//   blk.N.attn_norm.weight    [dim]               f32
//   blk.N.ffn_gate.weight     [dim, hidden_dim]   weight type
//   blk.N.ffn_down.weight     [hidden_dim, dim]   weight type
//   blk.N.ffn_up.weight       [dim, hidden_dim]   weight type
//   blk.N.ffn_norm.weight     [dim]               f32
// Norm weights stay f32, as llama.cpp keeps them.
//
// Metadata: general.architecture = llama, general.name, general.file_type,
// llama.context_length, .embedding_length, .feed_forward_length,
// .attention.head_count, .attention.head_count_kv, .block_count,
// .rope.dimension_count, .rope.freq_base, .attention.layer_norm_rms_epsilon,
// and a synthetic SentencePiece vocabulary: tokenizer.ggml.model = llama,
// .tokens, .scores, .token_type, .unknown_token_id, .bos_token_id,
// .eos_token_id. Its tokens are, as in stories260K: 0 <unk> (type 2,
// unknown), 1 <s> and 2 </s> (3, control), 3..258 the byte tokens
// <0x00>..<0xFF> (6, byte), then normal tokens (1): merged pieces with
// scores 0, -1, -2, ..., then the single characters they are made of, last.
// Every merged piece is the concatenation of an earlier piece and a
// character, so a SentencePiece BPE tokenizer can reach it; "▁" (U+2581,
// SentencePiece's space) only starts a piece. A vocabulary too small for
// all 74 characters keeps the first ones and has no merged pieces.
//
// Determinism: the file is a function of the options alone. Each tensor's
// values come from a generator seeded by (seed, tensor name), so a tensor's
// values do not depend on the weight type: the f16 model holds the f32
// model's values rounded to f16, the q8_0 model those values quantized.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "infer/gguf/gguf_writer.h"
#include "infer/gguf/tensor_types.h"

namespace headroom::infer {

enum class OutputWeights {
  kSeparate,  // output.weight is its own tensor
  kTied,      // no output.weight: the model reuses token_embd.weight
};

enum class ExtraMetadata {
  kNone,
  // headroom.sample.* entries of every GGUF value type (scalars, strings,
  // arrays of each), for loader tests and fuzz corpora.
  kEveryValueType,
};

// The defaults are stories260K's shape.
struct RandomLlamaOptions {
  std::uint32_t vocab_size = 512;      // >= 259: 3 special tokens and 256 byte tokens come first
  std::uint32_t dim = 64;              // llama.embedding_length
  std::uint32_t hidden_dim = 172;      // llama.feed_forward_length
  std::uint32_t n_layers = 5;          // llama.block_count
  std::uint32_t n_heads = 8;           // llama.attention.head_count; divides dim, dim / n_heads even
  std::uint32_t n_kv_heads = 4;        // llama.attention.head_count_kv; divides n_heads
  std::uint32_t context_length = 2048;
  float rope_freq_base = 10000.0f;
  float rms_norm_eps = 1e-5f;
  // Weights of the matrices. q8_0 and q4_0 need dim and hidden_dim to be
  // multiples of 32 (ffn_down's rows are hidden_dim long).
  TensorType weight_type = TensorType::kF32;
  OutputWeights output = OutputWeights::kSeparate;
  std::uint64_t seed = 1;
  std::string name = "headroom-random-llama";  // general.name
  GgufWriterOptions format;                    // GGUF version and alignment
  ExtraMetadata extra = ExtraMetadata::kNone;
};

// invalid_argument naming the first option out of range.
Status validate(const RandomLlamaOptions& options);

// The synthetic vocabulary, as written: pieces, scores, token types.
struct RandomVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<std::int32_t> token_types;
};
RandomVocab random_vocab(std::uint32_t vocab_size, std::uint64_t seed);

// A writer holding the whole model, its tensors filled as it is written.
Result<GgufWriter> random_llama(const RandomLlamaOptions& options);

// random_llama() written to `path`.
Status write_random_llama(const RandomLlamaOptions& options, const std::string& path);

// The values of a generated tensor before conversion to the weight type,
// for tests that check a model against them: `elements` floats of the
// tensor called `name` of a model with this seed. `norm` selects the
// distribution of norm weights (1 +- 0.1) rather than of matrices
// (uniform, variance 1 / fan_in with fan_in = row_values).
enum class RandomTensorKind { kMatrix, kNorm };
std::vector<float> random_tensor_values(std::uint64_t seed, std::string_view name, RandomTensorKind kind,
                                        std::uint64_t row_values, std::uint64_t elements);

}  // namespace headroom::infer
