// StopMatcher: decides, as a completion streams, how much of its text may be
// sent now, and when generation ends.
//
// Stop sequences are matched on the generated text, not on tokens, so a stop
// split across tokens ("<|" then "end|>") still ends generation, and a token
// that holds a stop in its middle ("ok.\n\nUser:") is cut at it. Text that
// could still turn out to be the start of a stop is held back until the next
// token settles it; so is an unfinished UTF-8 character at the end, so that
// every piece sent is whole text. On a match the text before the stop is
// released and the stop and everything after it dropped, as OpenAI does;
// finish_reason is "stop". When max_tokens tokens have been pushed without a
// stop, the held text is released and finish_reason is "length".
//
// When stops overlap, the one whose last byte comes first wins, and among
// those the longest; this depends only on the text, never on where the token
// boundaries fall. Matching is byte-wise (Knuth-Morris-Pratt, one automaton
// per stop), O(1) per byte.
//
// Not thread-safe: one per sequence.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "infer/sampling/sampling_params.h"

namespace headroom::infer {

enum class FinishReason : std::uint8_t {
  kNone,    // still generating
  kStop,    // a stop sequence, or the model's end-of-sequence token
  kLength,  // max_tokens
};

// OpenAI's finish_reason: "stop", "length"; "" for kNone.
std::string_view finish_reason_name(FinishReason reason);

class StopMatcher {
 public:
  struct Step {
    // Text that may be sent now (possibly empty); points into the matcher,
    // valid until its next call.
    std::string_view text;
    FinishReason finish = FinishReason::kNone;
  };

  // params must pass validate(); takes its stop and max_tokens.
  explicit StopMatcher(const SamplingParams& params);

  // The text of the next generated token: any bytes, possibly part of a
  // UTF-8 character. Must not be called once finished.
  Step push(std::string_view token_text);

  // The model produced its end-of-sequence token: releases what was held,
  // with finish_reason "stop". Must not be called once finished.
  Step end_of_sequence();

  FinishReason finish() const { return finish_; }
  std::int32_t tokens() const { return tokens_; }

 private:
  struct Stop {
    std::string text;
    std::vector<std::uint16_t> failure;  // KMP: failure[i] = longest proper border of text[0..i]
    std::uint16_t matched = 0;           // bytes of text matched at the end of the text so far
  };

  Step release(std::size_t bytes, FinishReason finish);

  std::vector<Stop> stops_;
  std::optional<std::int32_t> max_tokens_;
  std::int32_t tokens_ = 0;
  FinishReason finish_ = FinishReason::kNone;
  std::string pending_;  // generated, not yet released
  std::string out_;
};

}  // namespace headroom::infer
