// What a client asks of sampling, with OpenAI's names, defaults and ranges.
//
// The API layer fills a SamplingParams from a request body and calls
// validate(); an error names the field the way the client wrote it
// ("top_p must be in (0, 1], got 1.5"), so it can be returned as a 400 as is.
// A Sampler and a StopMatcher take only validated params.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace headroom::infer {

struct SamplingParams {
  // 0 picks the most likely token every step (greedy); otherwise the logits
  // are divided by it before the draw. [0, 2].
  float temperature = 1.0f;
  // Nucleus sampling: keep the most likely tokens whose probabilities first
  // add up to at least top_p. (0, 1]; 1 is off.
  float top_p = 1.0f;
  // Keep the top_k most likely tokens. >= 0; 0 is off.
  std::int32_t top_k = 0;
  // Keep the tokens at least min_p times as likely as the most likely one.
  // [0, 1); 0 is off.
  float min_p = 0.0f;

  // OpenAI's penalties, over the whole history given to Sampler::sample():
  // logit -= frequency_penalty * count + presence_penalty * (count > 0).
  // [-2, 2] each; 0 is off.
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  // llama.cpp's repeat penalty, over the last repetition_window_tokens tokens
  // of the history: a positive logit is divided by it, a negative one
  // multiplied. > 0 (at most 100); 1 is off.
  float repetition_penalty = 1.0f;
  std::int32_t repetition_window_tokens = 64;  // [0, limits::kRepetitionWindowTokens]

  // The same seed, parameters and logits give the same tokens on every
  // machine. Absent: the caller draws one (from a Random), so that unseeded
  // requests differ.
  std::optional<std::uint64_t> seed;

  // The most tokens to generate: finish_reason "length" when reached.
  // [1, limits::kMaxTokens]; absent, the model's context bounds it.
  std::optional<std::int32_t> max_tokens;

  // Up to limits::kStopSequences non-empty strings: generation ends before
  // the first of them to appear in the output (finish_reason "stop").
  std::vector<std::string> stop;

  // Report the chosen token's log-probability, and the top_logprobs most
  // likely tokens at each step (0..limits::kTopLogprobs; needs logprobs).
  bool logprobs = false;
  std::int32_t top_logprobs = 0;
};

// Ok, or invalid_argument naming the first field out of range.
Status validate(const SamplingParams& params);

}  // namespace headroom::infer
