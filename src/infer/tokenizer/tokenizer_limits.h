// Limits of the tokenizers, beside common/limits.h in the same namespace.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/limits.h"

namespace headroom::limits {

// Bounds on what a vocabulary may hold. The largest llama-family vocabularies
// have about 256k tokens and 300k merges; their longest tokens are a few
// hundred bytes (runs of spaces or dashes).
inline constexpr std::size_t kVocabTokensMax = 1 << 20;
inline constexpr std::size_t kVocabMergesMax = 1 << 21;
inline constexpr std::size_t kTokenBytesMax = 4096;
// The longest text encode() takes: a request body is shorter still.
inline constexpr std::size_t kEncodeTextBytesMax = 8 * 1024 * 1024;
static_assert(kEncodeTextBytesMax >= kHttpBodyBytes, "a prompt that fits a request fits the tokenizer");
static_assert(kVocabTokensMax <= static_cast<std::size_t>(INT32_MAX), "token ids are int32");

}  // namespace headroom::limits
