// Sampler: picks each next token of one sequence from the model's logits.
//
// The chain, in llama.cpp's default order (common/sampling.cpp):
//
//   1. penalties, on the logits in place: first repetition_penalty over the
//      last repetition_window_tokens of the history (a logit > 0 is divided
//      by it, one <= 0 multiplied), then OpenAI's frequency and presence
//      penalties over the whole history;
//   2. top_k: keep the k highest logits;
//   3. top_p: softmax over what is left, keep the smallest most-likely prefix
//      whose probabilities add up to >= top_p;
//   4. min_p: keep tokens with p >= min_p * p_max;
//   5. temperature: divide the logits by it;
//   6. draw one token from the softmax of what is left.
//
// As in llama.cpp, top_k, top_p and min_p see the distribution before
// temperature (OpenAI's and Hugging Face's top_p see it after). Temperature 0,
// or top_k 1, is greedy: the argmax after penalties, in one pass, with no
// draw. At least one token always survives.
//
// Ties between equal logits go to the lower token id, in every step, so the
// result never depends on how a standard library sorts. A NaN logit counts
// as -inf; -inf tokens are never drawn (if every token is -inf: token 0).
//
// Reproducible: the same seed, parameters, logits and history give the same
// token, and distribution() the same bits, on every machine, compiler and
// flag set (the tests pin both). The draw uses Xoshiro256 (rng.h), the
// softmax portable_exp() (portable_math.h), sums run in a fixed order, and
// sampler.cpp is compiled without fused multiply-adds; nothing depends on the
// C library's exp or on std::uniform_real_distribution.
//
// Log-probabilities (params.logprobs) are those of the model's own
// distribution, as OpenAI reports them: log_softmax of the raw logits as
// passed in, over the whole vocabulary, before penalties, truncation and
// temperature. So the chosen token's log-probability says how likely the
// model found it, not how likely the sampler was to draw it; a token that
// the model masked with -inf has -inf. (They use the C library's log once a
// step, so their last bit may differ between machines; the tokens do not.)
//
// Cost per token, n the vocabulary: greedy is one pass with no exp; a draw
// adds one exp per token. top_k keeps a heap of k (most tokens lose one
// comparison to its front); top_p without top_k finds its nucleus the same
// way among the best 64, then 512, and sorts all n (radix, O(n)) only for a
// flatter distribution; min_p needs no sort. Penalties cost O(history).
// Allocation-free after the first call: buffers the size of the vocabulary
// are allocated then and reused. Not thread-safe: one Sampler per sequence.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "infer/sampling/rng.h"
#include "infer/sampling/sampling_params.h"

namespace headroom::infer {

struct TokenLogprob {
  std::int32_t token = 0;
  float logprob = 0.0f;
};

struct TokenProbability {
  std::int32_t token = 0;
  double probability = 0.0;
};

struct Sample {
  std::int32_t token = 0;
  // With params.logprobs: the token's log-probability under the model
  // (see above); 0 otherwise.
  float logprob = 0.0f;
  // With params.top_logprobs > 0: that many most likely tokens under the
  // model, most likely first (the chosen one may or may not be among them).
  // Points into the Sampler; valid until its next call.
  std::span<const TokenLogprob> top_logprobs;
};

class Sampler {
 public:
  // params must pass validate(). seed: params.seed when the client gave one,
  // else one the caller drew.
  Sampler(const SamplingParams& params, std::uint64_t seed);

  // The next token. logits: one per vocabulary entry (the same size on every
  // call); the penalties are applied to them in place. history: the tokens
  // the penalties count, oldest first (the engine passes the tokens generated
  // so far); ids outside the vocabulary are ignored.
  Sample sample(std::span<float> logits, std::span<const std::int32_t> history);

  // Steps 1 to 5 without the draw: the tokens that could be drawn and their
  // probabilities (summing to 1), either in token-id order or most likely
  // first. Greedy gives the one argmax at probability 1. Points into the
  // Sampler; valid until its next call. For tests and diagnostics.
  std::span<const TokenProbability> distribution(std::span<float> logits, std::span<const std::int32_t> history);

 private:
  struct Candidate {
    std::int32_t token;
    float logit;
    double weight;  // unnormalised probability; see truncate()
  };

  struct PenalisedToken {
    std::int32_t token;
    float raw_logit;  // before the penalties
  };

  bool penalised() const;
  void prepare(std::size_t vocabulary);
  void apply_penalties(std::span<float> logits, std::span<const std::int32_t> history, bool keep_raw);
  float raw_logit(std::span<const float> logits, std::int32_t token) const;
  void record_logprobs(std::span<const float> raw_logits);
  bool greedy() const;
  // Steps 2 to 5 into candidates_, each with its unnormalised weight; returns
  // their sum.
  double truncate(std::span<const float> logits);
  // Cuts candidates_ at top_p: sorted by better() already, or in token
  // order, when it finds as many of the best as the cut needs.
  void cut_top_p(double normaliser, bool already_sorted);
  // Sorts candidates_, in token order, by better().
  void radix_sort_candidates();

  SamplingParams params_;
  Xoshiro256 rng_;

  // Reused across calls, sized on the first one.
  std::vector<std::uint32_t> counts_;          // per token id; all zero between calls
  std::size_t vocabulary_ = 0;                 // 0 until the first call
  std::vector<PenalisedToken> raw_penalised_;  // this step's, kept for logprobs
  std::vector<Candidate> candidates_;
  std::vector<Candidate> radix_scratch_;  // top_p's selections and radix sort
  std::vector<TokenProbability> distribution_;
  std::vector<TokenLogprob> top_;
  // The model's log-sum-exp and max over the raw logits of this step.
  double raw_max_ = 0.0;
  double raw_log_sum_ = 0.0;
};

}  // namespace headroom::infer
