// A tokenizer's vocabulary as GGUF metadata carries it, and the builder that
// reads it from that metadata.
//
// The metadata keys, each with its GGUF type and what llama.cpp does when
// the key is absent (vocabulary_from_metadata does the same unless noted):
//
//   key                              | type         | field            | when absent
//   ---------------------------------+--------------+------------------+--------------------------------------
//   tokenizer.ggml.model             | string       | kind             | required: "llama" (SPM) or "gpt2" (BPE)
//   tokenizer.ggml.pre               | string       | pre              | "" (the "default" pre-tokenizer)
//   tokenizer.ggml.tokens            | string[]     | tokens           | required
//   tokenizer.ggml.scores            | f32[]        | scores           | all 0 (also read from i32[], as llama.cpp)
//   tokenizer.ggml.token_type        | i32[]        | types            | all normal
//   tokenizer.ggml.merges            | string[]     | merges           | required for gpt2, ignored for llama
//   tokenizer.ggml.bos_token_id      | u32          | bos              | llama: 1; gpt2: none (llama.cpp: 11)
//   tokenizer.ggml.eos_token_id      | u32          | eos              | llama: 2; gpt2: none (llama.cpp: 11)
//   tokenizer.ggml.unknown_token_id  | u32          | unk              | llama: 0; gpt2: none
//   tokenizer.ggml.padding_token_id  | u32          | pad              | none
//   tokenizer.ggml.add_bos_token     | bool         | add_bos          | llama: true; gpt2: true for the Llama 3
//                                    |              |                  |   pre-tokenizer names, else false
//   tokenizer.ggml.add_eos_token     | bool         | add_eos          | false
//   tokenizer.ggml.add_space_prefix  | bool         | add_space_prefix | llama: true; gpt2: false
//
// As llama.cpp, a special id outside the vocabulary counts as absent (files
// write 0xFFFFFFFF for "none"), and a default outside it as none. Integer
// keys may come as any GGUF integer type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/limits.h"
#include "infer/tokenizer/tokenizer_limits.h"
#include "common/status.h"

namespace headroom::infer {

using TokenId = std::int32_t;

using limits::kEncodeTextBytesMax;
using limits::kTokenBytesMax;
using limits::kVocabMergesMax;
using limits::kVocabTokensMax;

enum class VocabKind : std::uint8_t {
  kSpm,  // tokenizer.ggml.model = "llama": SentencePiece BPE with scores and byte fallback
  kBpe,  // tokenizer.ggml.model = "gpt2": byte-level BPE with ranked merges
};

// GGUF's token types (gguf-py's TokenType, llama.cpp's llama_token_type).
enum class TokenType : std::int32_t {
  kNormal = 1,
  kUnknown = 2,      // <unk>
  kControl = 3,      // <s>, </s>, <|eot_id|>...: never produced from plain text unless parse_special
  kUserDefined = 4,  // added tokens: always matched in the text first, rendered verbatim
  kUnused = 5,       // reserved; renders as nothing
  kByte = 6,         // SentencePiece byte fallback: "<0x00>".."<0xFF>"
};

struct Vocabulary {
  VocabKind kind = VocabKind::kSpm;
  std::string pre;                  // tokenizer.ggml.pre; BPE only ("llama-bpe", "qwen2", "smollm", "default"...)
  std::vector<std::string> tokens;  // the text of each id
  std::vector<float> scores;        // empty, or one per token (SPM merge priority)
  std::vector<TokenType> types;     // empty (all normal), or one per token
  std::vector<std::string> merges;  // BPE: "left right", best first
  std::optional<TokenId> bos, eos, unk, pad;
  bool add_bos = false;           // encode() with AddSpecial::kYes starts with bos
  bool add_eos = false;           // ... and ends with eos
  bool add_space_prefix = false;  // SPM: a space before the text (and after each special token)
};

// The GGUF metadata keys the builder reads.
namespace gguf_keys {
inline constexpr std::string_view kModel = "tokenizer.ggml.model";
inline constexpr std::string_view kPre = "tokenizer.ggml.pre";
inline constexpr std::string_view kTokens = "tokenizer.ggml.tokens";
inline constexpr std::string_view kScores = "tokenizer.ggml.scores";
inline constexpr std::string_view kTokenType = "tokenizer.ggml.token_type";
inline constexpr std::string_view kMerges = "tokenizer.ggml.merges";
inline constexpr std::string_view kBosId = "tokenizer.ggml.bos_token_id";
inline constexpr std::string_view kEosId = "tokenizer.ggml.eos_token_id";
inline constexpr std::string_view kUnkId = "tokenizer.ggml.unknown_token_id";
inline constexpr std::string_view kPadId = "tokenizer.ggml.padding_token_id";
inline constexpr std::string_view kAddBos = "tokenizer.ggml.add_bos_token";
inline constexpr std::string_view kAddEos = "tokenizer.ggml.add_eos_token";
inline constexpr std::string_view kAddSpacePrefix = "tokenizer.ggml.add_space_prefix";
}  // namespace gguf_keys

// One metadata value, reduced to what the tokenizer keys need: every GGUF
// integer type arrives as int64 (or int32 for arrays), every float as double
// (or float for arrays).
using MetadataValue = std::variant<bool, std::int64_t, double, std::string, std::vector<std::string>,
                                   std::vector<float>, std::vector<std::int32_t>>;

// What a GGUF reader hands the builder: the tokenizer.* keys it found, by
// name. Keys it leaves out count as absent.
struct TokenizerMetadata {
  std::map<std::string, MetadataValue, std::less<>> values;

  void set(std::string_view key, MetadataValue value) { values.insert_or_assign(std::string(key), std::move(value)); }
  const MetadataValue* find(std::string_view key) const {
    auto it = values.find(key);
    return it == values.end() ? nullptr : &it->second;
  }
};

// The vocabulary the metadata describes, with llama.cpp's defaults for absent
// keys (table above). Errors (invalid_argument) for a missing required key, a
// key of the wrong type, an unsupported model or pre-tokenizer name, a
// scores or token_type array shorter than the tokens (a longer one is cut to
// length, as llama.cpp reads it), or a size past the limits.
// The vocabulary's contents are checked further by Tokenizer::create.
Result<Vocabulary> vocabulary_from_metadata(const TokenizerMetadata& metadata);

}  // namespace headroom::infer
