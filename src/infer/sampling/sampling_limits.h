// Limits on sampling and on the requests that configure it.
//
// They sit beside common/limits.h, in the same namespace, so code reads
// limits::kStopSequences the way it reads limits::kHttpBodyBytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace headroom::limits {

// OpenAI's documented bounds: up to 4 stop sequences, top_logprobs 0..20.
inline constexpr std::size_t kStopSequences = 4;
inline constexpr std::size_t kTopLogprobs = 20;

// OpenAI documents no length for a stop sequence; ours bounds how much text
// the stop matcher holds back (at most one stop sequence, less a byte, plus an
// unfinished UTF-8 character).
inline constexpr std::size_t kStopSequenceBytes = 256;

// The most tokens one completion may ask for; the model's context bounds it
// further. Every generation loop runs at most this many steps.
inline constexpr std::int32_t kMaxTokens = 131'072;

// repetition_penalty looks back at most this many tokens (llama.cpp's
// penalty_last_n; its default is 64).
inline constexpr std::int32_t kRepetitionWindowTokens = 4'096;
static_assert(kRepetitionWindowTokens <= kMaxTokens);

// A vocabulary larger than this is a corrupt model, not a big one (Llama 3's
// is 128,256; Gemma's 256,000). Token ids fit an int32 with room to spare.
inline constexpr std::size_t kVocabularyTokens = 1'048'576;
static_assert(kTopLogprobs < kVocabularyTokens);

}  // namespace headroom::limits
