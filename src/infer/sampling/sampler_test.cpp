#include "infer/sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <vector>

#include "infer/sampling/portable_math.h"

namespace headroom::infer::testing {
long allocation_count();  // allocation_counter_test.cpp
}  // namespace headroom::infer::testing

namespace headroom::infer {
namespace {

using Tokens = std::vector<std::int32_t>;

SamplingParams greedy_params() {
  SamplingParams p;
  p.temperature = 0;
  return p;
}

// Logits whose softmax is exactly the given probabilities (up to rounding).
std::vector<float> logits_of(std::vector<double> probabilities) {
  std::vector<float> logits;
  for (double p : probabilities) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

// Random logits from a fixed stream, spread like a model's (-10..10).
std::vector<float> random_logits(std::size_t n, std::uint64_t seed) {
  Xoshiro256 rng(seed);
  std::vector<float> logits(n);
  for (float& l : logits) l = static_cast<float>(rng.next_unit() * 20.0 - 10.0);
  return logits;
}

Tokens tokens_of(std::span<const TokenProbability> distribution) {
  Tokens tokens;
  for (const TokenProbability& t : distribution) tokens.push_back(t.token);
  std::sort(tokens.begin(), tokens.end());
  return tokens;
}

std::int32_t argmax_of(const std::vector<float>& logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// --- greedy ------------------------------------------------------------------

TEST(Sampler, GreedyTakesTheArgmaxAndTheLowestIdOnATie) {
  Sampler sampler(greedy_params(), 1);
  std::vector<float> logits = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f};
  EXPECT_EQ(sampler.sample(logits, {}).token, 1);
  std::vector<float> with_nan = {NAN, 0.0f, 1.0f};
  EXPECT_EQ(sampler.sample(with_nan, {}).token, 2);
}

// Greedy takes its maximum in vector lanes: it must still be the first
// highest logit of a plain scan, at every length (whole lane groups or
// not), with ties, NaNs, signed zeros and nothing but -inf.
TEST(Sampler, GreedyEqualsAPlainScanOnAnyInput) {
  const auto plain = [](const std::vector<float>& logits) {
    std::int32_t best = 0;
    float best_logit = -INFINITY;
    for (std::size_t i = 0; i < logits.size(); ++i) {
      if (!std::isnan(logits[i]) && logits[i] > best_logit) {
        best_logit = logits[i];
        best = static_cast<std::int32_t>(i);
      }
    }
    return best;
  };
  Xoshiro256 rng(7);
  for (int trial = 0; trial < 600; ++trial) {
    const std::size_t n = 1 + static_cast<std::size_t>(rng.next_unit() * 100);
    std::vector<float> logits = random_logits(n, static_cast<std::uint64_t>(trial));
    switch (trial % 6) {
      case 1:  // many ties
        for (float& l : logits) l = std::round(l / 4);
        break;
      case 2:  // NaNs, the first included
        for (std::size_t i = 0; i < n; i += 3) logits[i] = NAN;
        break;
      case 3:  // nothing possible: token 0
        for (float& l : logits) l = rng.next_unit() < 0.5 ? -INFINITY : NAN;
        break;
      case 4:  // signed zeros only: the first of them
        for (float& l : logits) l = rng.next_unit() < 0.5 ? 0.0f : -0.0f;
        break;
      case 5:  // the maximum last, past the whole lane groups
        logits.back() = 11.0f;
        break;
    }
    Sampler sampler(greedy_params(), 1);
    ASSERT_EQ(sampler.sample(logits, {}).token, plain(logits)) << "trial " << trial << ", " << n << " logits";
  }
}

TEST(Sampler, TopKOneEqualsGreedyAtAnyTemperature) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    std::vector<float> logits = random_logits(1000, seed);
    SamplingParams p;
    p.top_k = 1;
    p.temperature = 1.5f;
    Sampler sampler(p, seed);
    EXPECT_EQ(sampler.sample(logits, {}).token, argmax_of(logits));
  }
}

TEST(Sampler, TemperatureNearZeroEqualsGreedy) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    std::vector<float> logits = random_logits(1000, 100 + seed);
    logits[static_cast<std::size_t>(argmax_of(logits))] += 0.01f;  // no near-tie
    SamplingParams p;
    p.temperature = 1e-4f;
    Sampler sampler(p, seed);
    for (int draw = 0; draw < 10; ++draw) EXPECT_EQ(sampler.sample(logits, {}).token, argmax_of(logits));
  }
}

// --- reproducibility -----------------------------------------------------------

Tokens generate(const SamplingParams& p, std::uint64_t seed, int steps) {
  Sampler sampler(p, seed);
  Tokens history;
  for (int step = 0; step < steps; ++step) {
    std::vector<float> logits = random_logits(512, 1000 + static_cast<std::uint64_t>(step));
    history.push_back(sampler.sample(logits, history).token);
  }
  return history;
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_p = 0.95f;
  p.frequency_penalty = 0.3f;
  EXPECT_EQ(generate(p, 42, 200), generate(p, 42, 200));
  EXPECT_NE(generate(p, 42, 200), generate(p, 43, 200));
}

// The exact tokens for a seed, pinned: a change of the generator, of exp, of
// the summation order or of the chain shows here first. The values were
// checked against an independent Python model of the chain (math.exp, Vigna's
// xoshiro256**), so they are what any machine must produce.
TEST(Sampler, PinnedStreamForASeed) {
  std::vector<float> logits(50);
  for (std::size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>((i * 37) % 101) / 10.0f - 5.0f;

  SamplingParams plain;
  plain.temperature = 1.0f;
  Sampler a(plain, 1234);
  Tokens got_plain;
  for (int i = 0; i < 16; ++i) got_plain.push_back(a.sample(logits, {}).token);
  EXPECT_EQ(got_plain, (Tokens{5, 46, 35, 46, 8, 49, 27, 16, 30, 30, 30, 16, 8, 30, 21, 46}));

  SamplingParams chain;
  chain.temperature = 0.7f;
  chain.top_k = 12;
  chain.top_p = 0.9f;
  chain.min_p = 0.05f;
  Sampler b(chain, 99);
  Tokens got_chain;
  for (int i = 0; i < 16; ++i) got_chain.push_back(b.sample(logits, {}).token);
  EXPECT_EQ(got_chain, (Tokens{19, 49, 19, 27, 38, 30, 19, 30, 27, 49, 38, 30, 30, 30, 19, 49}));
}

// The probabilities themselves, bit for bit, through every step of the chain.
TEST(Sampler, PinnedDistributionBits) {
  std::vector<float> logits(300);
  for (std::size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>((i * 7919) % 1009) / 97.0f - 4.0f;
  SamplingParams p;
  p.temperature = 0.83f;
  p.top_k = 200;
  p.top_p = 0.93f;
  p.min_p = 0.004f;
  p.frequency_penalty = 0.37f;
  p.presence_penalty = 0.21f;
  p.repetition_penalty = 1.3f;
  p.repetition_window_tokens = 8;
  Sampler sampler(p, 1);
  const auto d = sampler.distribution(logits, Tokens{3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26, 43, 3, 83});
  std::uint64_t hash = 1469598103934665603ULL;  // FNV-1a over (token, probability bits)
  for (const TokenProbability& t : d) {
    hash = (hash ^ static_cast<std::uint64_t>(t.token)) * 1099511628211ULL;
    hash = (hash ^ std::bit_cast<std::uint64_t>(t.probability)) * 1099511628211ULL;
  }
  EXPECT_EQ(d.size(), 77u);
  EXPECT_EQ(hash, 0xa3e62c3a521728f7ULL);
}

// --- truncation masks ----------------------------------------------------------

TEST(Sampler, TopKKeepsTheKHighest) {
  SamplingParams p;
  p.top_k = 2;
  Sampler sampler(p, 1);
  std::vector<float> logits = {1.0f, 4.0f, 2.0f, 3.0f, 0.0f};
  const auto d = sampler.distribution(logits, {});
  EXPECT_EQ(tokens_of(d), (Tokens{1, 3}));
  const double e = std::exp(-1.0);
  EXPECT_NEAR(d[0].probability, 1 / (1 + e), 1e-12);
  EXPECT_NEAR(d[1].probability, e / (1 + e), 1e-12);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
  const std::vector<double> probs = {0.05, 0.5, 0.15, 0.3};
  const std::pair<float, Tokens> cases[] = {
      {0.4f, {1}}, {0.75f, {1, 3}}, {0.85f, {1, 2, 3}}, {0.96f, {0, 1, 2, 3}}, {1.0f, {0, 1, 2, 3}},
  };
  for (const auto& [top_p, expected] : cases) {
    SamplingParams p;
    p.top_p = top_p;
    Sampler sampler(p, 1);
    std::vector<float> logits = logits_of(probs);
    EXPECT_EQ(tokens_of(sampler.distribution(logits, {})), expected) << "top_p " << top_p;
  }
}

TEST(Sampler, MinPKeepsTokensAtLeastMinPTimesTheBest) {
  const std::vector<double> probs = {0.05, 0.5, 0.15, 0.3};
  // Thresholds: min_p * 0.5.
  const std::pair<float, Tokens> cases[] = {
      {0.05f, {0, 1, 2, 3}},
      {0.25f, {1, 2, 3}},
      {0.35f, {1, 3}},
      {0.7f, {1}},
  };
  for (const auto& [min_p, expected] : cases) {
    SamplingParams p;
    p.min_p = min_p;
    Sampler sampler(p, 1);
    std::vector<float> logits = logits_of(probs);
    EXPECT_EQ(tokens_of(sampler.distribution(logits, {})), expected) << "min_p " << min_p;
  }
}

TEST(Sampler, TopPSeesTheDistributionTopKLeft) {
  // Over everything, top_p 0.83 needs 3 tokens (0.5, 0.8, 0.95); after top_k 3
  // renormalises to (0.526, 0.316, 0.158) it needs 2, as in llama.cpp.
  std::vector<float> logits = logits_of({0.5, 0.3, 0.15, 0.05});
  SamplingParams p;
  p.top_p = 0.83f;
  Sampler alone(p, 1);
  EXPECT_EQ(tokens_of(alone.distribution(logits, {})), (Tokens{0, 1, 2}));
  p.top_k = 3;
  Sampler after_k(p, 1);
  EXPECT_EQ(tokens_of(after_k.distribution(logits, {})), (Tokens{0, 1}));
}

TEST(Sampler, TruncatedProbabilitiesAreRenormalisedThenTempered) {
  std::vector<float> logits = logits_of({0.5, 0.3, 0.15, 0.05});
  SamplingParams p;
  p.top_p = 0.75f;
  Sampler one(p, 1);
  auto d = one.distribution(logits, {});
  ASSERT_EQ(d.size(), 2u);
  EXPECT_NEAR(d[0].probability, 0.5 / 0.8, 1e-7);
  EXPECT_NEAR(d[1].probability, 0.3 / 0.8, 1e-7);

  // Temperature after truncation: weights p^(1/T) over what is left.
  p.temperature = 2.0f;
  Sampler two(p, 1);
  d = two.distribution(logits, {});
  ASSERT_EQ(d.size(), 2u);
  const double a = std::sqrt(0.5), b = std::sqrt(0.3);
  EXPECT_NEAR(d[0].probability, a / (a + b), 1e-7);
  EXPECT_NEAR(d[1].probability, b / (a + b), 1e-7);
}

// A plain reference of steps 2 to 4: sort everything, then cut.
Tokens reference_mask(const std::vector<float>& logits, int top_k, double top_p, double min_p) {
  struct C {
    std::int32_t token;
    float logit;
  };
  std::vector<C> c;
  for (std::size_t i = 0; i < logits.size(); ++i) c.push_back({static_cast<std::int32_t>(i), logits[i]});
  std::sort(c.begin(), c.end(),
            [](const C& a, const C& b) { return a.logit != b.logit ? a.logit > b.logit : a.token < b.token; });
  if (top_k > 0 && static_cast<std::size_t>(top_k) < c.size()) c.resize(static_cast<std::size_t>(top_k));
  const double m = c[0].logit;
  if (top_p < 1) {
    double z = 0;
    for (const C& x : c) z += portable_exp(x.logit - m);
    double cumulative = 0;
    for (std::size_t i = 0; i < c.size(); ++i) {
      cumulative += portable_exp(c[i].logit - m) / z;
      if (cumulative >= top_p) {
        c.resize(i + 1);
        break;
      }
    }
  }
  std::erase_if(c, [&](const C& x) { return portable_exp(x.logit - m) < min_p; });
  Tokens tokens;
  for (const C& x : c) tokens.push_back(x.token);
  std::sort(tokens.begin(), tokens.end());
  return tokens;
}

TEST(Sampler, MasksMatchAFullSortReferenceOnALargeVocabulary) {
  // Flat enough that top_p needs hundreds of tokens: the partial sort grows.
  for (std::uint64_t seed = 0; seed < 6; ++seed) {
    std::vector<float> logits = random_logits(5000, 7 + seed);
    for (float& l : logits) l *= 0.3f;
    for (int top_k : {0, 40, 3000}) {
      for (double top_p : {1.0, 0.5, 0.9, 0.99}) {
        for (double min_p : {0.0, 0.01, 0.2}) {
          SamplingParams p;
          p.top_k = top_k;
          p.top_p = static_cast<float>(top_p);
          p.min_p = static_cast<float>(min_p);
          Sampler sampler(p, 1);
          std::vector<float> copy = logits;
          EXPECT_EQ(tokens_of(sampler.distribution(copy, {})), reference_mask(logits, top_k, p.top_p, p.min_p))
              << "top_k " << top_k << " top_p " << top_p << " min_p " << min_p;
        }
      }
    }
  }
}

TEST(Sampler, MasksBreakTiesByTokenIdAsTheReferenceDoes) {
  // Few distinct values, so the cuts fall among equal logits (and -0 == +0).
  const float values[] = {-1.0f, -0.0f, 0.0f, 0.5f, 1.0f};
  Xoshiro256 rng(3);
  std::vector<float> logits(3000);
  for (float& l : logits) l = values[rng.next() % 5];
  for (int top_k : {0, 7, 1000}) {
    for (double top_p : {1.0, 0.1, 0.5, 0.97}) {
      SamplingParams p;
      p.top_k = top_k;
      p.top_p = static_cast<float>(top_p);
      Sampler sampler(p, 1);
      std::vector<float> copy = logits;
      EXPECT_EQ(tokens_of(sampler.distribution(copy, {})), reference_mask(logits, top_k, p.top_p, 0))
          << "top_k " << top_k << " top_p " << top_p;
    }
  }
}

TEST(Sampler, MaskedTokensAreNeverDrawn) {
  const std::vector<float> logits = {-INFINITY, 0.0f, -INFINITY, 0.0f, NAN};
  for (int top_k : {0, 4}) {
    for (float top_p : {1.0f, 0.99f}) {
      SamplingParams p;
      p.top_k = top_k;  // more than the possible tokens
      p.top_p = top_p;
      Sampler sampler(p, 5);
      for (int i = 0; i < 1000; ++i) {
        std::vector<float> copy = logits;
        const std::int32_t token = sampler.sample(copy, {}).token;
        ASSERT_TRUE(token == 1 || token == 3) << token;
      }
      std::vector<float> copy = logits;
      EXPECT_EQ(tokens_of(sampler.distribution(copy, {})), (Tokens{1, 3}));
    }
  }
  // Everything masked: the lowest id, as greedy picks.
  std::vector<float> none = {-INFINITY, -INFINITY};
  Sampler sampler(SamplingParams{}, 5);
  EXPECT_EQ(sampler.sample(none, {}).token, 0);
}

// --- the draw ------------------------------------------------------------------

TEST(Sampler, DrawsFollowTheDistribution) {
  const std::vector<double> probs = {0.1, 0.2, 0.3, 0.4};
  std::vector<float> logits = logits_of(probs);
  Sampler sampler(SamplingParams{}, 2024);
  constexpr int kDraws = 200'000;
  std::vector<int> counts(probs.size(), 0);
  for (int i = 0; i < kDraws; ++i) ++counts[sampler.sample(logits, {}).token];
  // Four binomial standard deviations at most 0.0044 of kDraws.
  for (std::size_t t = 0; t < probs.size(); ++t) {
    EXPECT_NEAR(counts[t] / double(kDraws), probs[t], 0.005) << "token " << t;
  }
}

// --- penalties -------------------------------------------------------------------

TEST(Sampler, FrequencyAndPresencePenaltiesAsOpenAiSpecifies) {
  SamplingParams p = greedy_params();
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  Sampler sampler(p, 1);
  std::vector<float> logits = {1.0f, 2.0f, -1.0f, 0.5f};
  sampler.sample(logits, Tokens{1, 1, 2});
  // logit -= count * 0.5 + (count > 0) * 0.25
  EXPECT_EQ(logits, (std::vector<float>{1.0f, 2.0f - (2 * 0.5f + 0.25f), -1.0f - (0.5f + 0.25f), 0.5f}));
}

TEST(Sampler, NegativePenaltiesEncourageRepeats) {
  SamplingParams p = greedy_params();
  p.frequency_penalty = -2.0f;
  Sampler sampler(p, 1);
  std::vector<float> logits = {3.0f, 1.0f};
  EXPECT_EQ(sampler.sample(logits, Tokens{1, 1}).token, 1);  // 1 + 4 = 5 > 3
  EXPECT_EQ(logits[1], 5.0f);
}

TEST(Sampler, RepetitionPenaltyAsLlamaCppOverTheLastNTokens) {
  SamplingParams p = greedy_params();
  p.repetition_penalty = 2.0f;
  p.repetition_window_tokens = 2;
  Sampler sampler(p, 1);
  std::vector<float> logits = {1.0f, 2.0f, -1.0f, 0.5f};
  sampler.sample(logits, Tokens{0, 3, 2, 1});  // the window is {2, 1}
  EXPECT_EQ(logits, (std::vector<float>{1.0f, 1.0f, -2.0f, 0.5f}));
}

TEST(Sampler, AllPenaltiesTogetherRepetitionFirst) {
  SamplingParams p = greedy_params();
  p.repetition_penalty = 2.0f;
  p.repetition_window_tokens = 2;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  Sampler sampler(p, 1);
  std::vector<float> logits = {1.0f, 2.0f, -1.0f, 0.5f};
  sampler.sample(logits, Tokens{0, 1, 1, 2});  // counts 0:1 1:2 2:1; window {1, 2}
  EXPECT_EQ(logits, (std::vector<float>{1.0f - 0.75f, 2.0f / 2 - 1.25f, -1.0f * 2 - 0.75f, 0.5f}));
}

TEST(Sampler, PenaltiesIgnoreIdsOutsideTheVocabulary) {
  SamplingParams p = greedy_params();
  p.presence_penalty = 1.0f;
  p.repetition_penalty = 2.0f;
  Sampler sampler(p, 1);
  std::vector<float> logits = {1.0f, 2.0f};
  sampler.sample(logits, Tokens{-1, 2, 7, 1});
  EXPECT_EQ(logits, (std::vector<float>{1.0f, 0.0f}));
  // The next step starts from clean counts.
  std::vector<float> again = {1.0f, 2.0f};
  sampler.sample(again, Tokens{0});
  EXPECT_EQ(again, (std::vector<float>{-0.5f, 2.0f}));
}

// --- log-probabilities -----------------------------------------------------------

TEST(Sampler, LogprobsAreTheModelsBeforePenaltiesAndTemperature) {
  SamplingParams p;
  p.temperature = 0.5f;
  p.top_k = 2;
  p.frequency_penalty = 1.5f;
  p.logprobs = true;
  p.top_logprobs = 3;
  const std::vector<float> raw = {0.5f, 2.0f, -1.0f, 1.0f, 1.5f};
  double z = 0;
  for (float l : raw) z += std::exp(double(l));
  Sampler sampler(p, 3);
  for (int i = 0; i < 50; ++i) {
    std::vector<float> logits = raw;
    const Sample s = sampler.sample(logits, Tokens{1, 1});
    EXPECT_NEAR(s.logprob, raw[s.token] - std::log(z), 1e-6) << s.token;
    ASSERT_EQ(s.top_logprobs.size(), 3u);
    EXPECT_EQ(s.top_logprobs[0].token, 1);  // the model's favourite, although penalised
    EXPECT_EQ(s.top_logprobs[1].token, 4);
    EXPECT_EQ(s.top_logprobs[2].token, 3);
    EXPECT_NEAR(s.top_logprobs[0].logprob, 2.0 - std::log(z), 1e-6);
  }
}

TEST(Sampler, TopLogprobsOverTheWholeVocabularySumToOne) {
  SamplingParams p;
  p.logprobs = true;
  p.top_logprobs = 20;
  Sampler sampler(p, 11);
  std::vector<float> logits = random_logits(20, 5);
  const Sample s = sampler.sample(logits, {});
  ASSERT_EQ(s.top_logprobs.size(), 20u);
  double sum = 0;
  for (std::size_t i = 0; i < s.top_logprobs.size(); ++i) {
    sum += std::exp(double(s.top_logprobs[i].logprob));
    if (i > 0) {
      EXPECT_GE(s.top_logprobs[i - 1].logprob, s.top_logprobs[i].logprob);
    }
  }
  EXPECT_NEAR(sum, 1.0, 1e-5);
  const auto chosen = std::find_if(s.top_logprobs.begin(), s.top_logprobs.end(),
                                   [&](const TokenLogprob& t) { return t.token == s.token; });
  ASSERT_NE(chosen, s.top_logprobs.end());
  EXPECT_EQ(chosen->logprob, s.logprob);
}

TEST(Sampler, DistributionSumsToOne) {
  SamplingParams p;
  p.temperature = 1.3f;
  p.top_p = 0.9f;
  Sampler sampler(p, 1);
  std::vector<float> logits = random_logits(3000, 8);
  const auto d = sampler.distribution(logits, {});
  double sum = 0;
  for (const TokenProbability& t : d) sum += t.probability;
  EXPECT_NEAR(sum, 1.0, 1e-12);
}

// --- allocation ------------------------------------------------------------------

TEST(Sampler, AllocatesNothingAfterTheFirstCall) {
  const long start = testing::allocation_count();
  ::operator delete(::operator new(16));  // a call, unlike a new-expression, cannot be elided
  ASSERT_GT(testing::allocation_count(), start) << "the counter counts";

  SamplingParams base;
  base.temperature = 0.8f;
  base.frequency_penalty = 0.2f;
  base.repetition_penalty = 1.1f;
  base.logprobs = true;
  base.top_logprobs = 5;
  std::vector<SamplingParams> variants;
  for (int top_k : {0, 40}) {
    for (float top_p : {0.95f, 0.999f}) {
      for (float min_p : {0.0f, 0.01f}) {
        SamplingParams p = base;
        p.top_k = top_k;
        p.top_p = top_p;
        p.min_p = min_p;
        variants.push_back(p);
      }
    }
  }
  variants.push_back(SamplingParams{});  // nothing to cut
  for (const SamplingParams& p : variants) {
    Sampler sampler(p, 1);
    std::vector<float> logits = random_logits(32000, 1);  // flat: top_p 0.999 sorts them all
    Tokens history(600);
    std::iota(history.begin(), history.end(), 0);
    sampler.sample(logits, history);  // warm-up
    const long before = testing::allocation_count();
    for (int step = 0; step < 20; ++step) {
      logits[static_cast<std::size_t>(step)] += 0.5f;
      sampler.sample(logits, history);
    }
    EXPECT_EQ(testing::allocation_count() - before, 0)
        << "top_k " << p.top_k << " top_p " << p.top_p << " min_p " << p.min_p;
  }
}

}  // namespace
}  // namespace headroom::infer
