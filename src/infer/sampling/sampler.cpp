#include "infer/sampling/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "common/check.h"
#include "infer/sampling/portable_math.h"
#include "infer/sampling/sampling_limits.h"

// Sums and products here must round the same way on every machine, so no
// a * b + c may become one fused multiply-add (rounded once): GCC fuses by
// default in C++ wherever the target has FMA, Clang under -ffp-contract=on.
// This also lets GCC inline portable_exp(), which is compiled the same way.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace headroom::infer {
namespace {

constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();

// A NaN logit (a kernel's bug) would break the sort's ordering: it counts as
// impossible instead.
float clean(float logit) { return std::isnan(logit) ? kNegativeInfinity : logit; }

// The one order every step uses: higher logit first, then lower token id.
template <typename T>
bool better(const T& a, const T& b) {
  if (a.logit != b.logit) return a.logit > b.logit;
  return a.token < b.token;
}

// The highest logit, NaNs ignored (as clean() reads them); -inf when there
// is none. A greedy step's whole cost at a large vocabulary: the maximum is
// taken in kLanes independent lanes, a loop the compiler turns into vector
// max instructions (a NaN never compares greater, so a lane never takes
// one), then the lanes are combined. A maximum is exact, so the order does
// not change it.
float max_logit(std::span<const float> logits) {
  constexpr std::size_t kLanes = 16;
  float lanes[kLanes];
  for (float& lane : lanes) lane = kNegativeInfinity;
  const std::size_t full = logits.size() / kLanes * kLanes;
  for (std::size_t i = 0; i < full; i += kLanes) {
    for (std::size_t j = 0; j < kLanes; ++j) {
      const float logit = logits[i + j];
      lanes[j] = logit > lanes[j] ? logit : lanes[j];
    }
  }
  float best = kNegativeInfinity;
  for (float lane : lanes) best = lane > best ? lane : best;
  for (std::size_t i = full; i < logits.size(); ++i) best = logits[i] > best ? logits[i] : best;
  return best;
}

// The highest logit's token, lowest id among equals; token 0 when all are
// -inf (or NaN).
std::int32_t argmax(std::span<const float> logits) {
  const float best = max_logit(logits);
  if (best == kNegativeInfinity) return 0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] == best) return static_cast<std::int32_t>(i);
  }
  return 0;  // not reached: best is one of the logits
}

}  // namespace

Sampler::Sampler(const SamplingParams& params, std::uint64_t seed) : params_(params), rng_(seed) {
  const Status status = validate(params);
  CHECK(status.is_ok()) << "a Sampler needs validated params: " << status.to_string();
}

bool Sampler::greedy() const { return params_.temperature == 0.0f || params_.top_k == 1; }

bool Sampler::penalised() const {
  return (params_.repetition_penalty != 1.0f && params_.repetition_window_tokens > 0) ||
         params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
}

void Sampler::prepare(std::size_t vocabulary) {
  CHECK(vocabulary > 0 && vocabulary <= limits::kVocabularyTokens) << "logits for " << vocabulary << " tokens";
  if (vocabulary_ == vocabulary) return;
  // The first call (or, against the contract, a new vocabulary): size every
  // buffer this Sampler's params need, so that later calls allocate nothing.
  vocabulary_ = vocabulary;
  counts_.assign(penalised() ? vocabulary : 0, 0);
  raw_penalised_.clear();
  if (penalised() && params_.logprobs) raw_penalised_.reserve(vocabulary);  // one entry per distinct token
  candidates_.clear();
  if (!greedy()) {
    candidates_.reserve(vocabulary);
    radix_scratch_.reserve(vocabulary);
  }
  top_.reserve(limits::kTopLogprobs);
}

void Sampler::apply_penalties(std::span<float> logits, std::span<const std::int32_t> history, bool keep_raw) {
  raw_penalised_.clear();
  const std::size_t window_tokens =
      std::min(history.size(), static_cast<std::size_t>(params_.repetition_window_tokens));
  const bool repetition = params_.repetition_penalty != 1.0f && window_tokens > 0;
  const bool openai = params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
  if (!repetition && !openai) return;
  ASSERT(history.size() < (std::size_t{1} << 31));

  const std::size_t vocabulary = logits.size();
  auto in_vocabulary = [vocabulary](std::int32_t token) {
    return token >= 0 && static_cast<std::size_t>(token) < vocabulary;
  };
  // counts_[token]: its count in the history, with kInWindow set when it is
  // also among the last window_tokens. Every entry touched is zeroed again
  // below, which is what makes each token penalised once.
  constexpr std::uint32_t kInWindow = 1u << 31;
  const std::span<const std::int32_t> window = history.last(window_tokens);
  if (repetition) {
    for (std::int32_t token : window) {
      if (in_vocabulary(token)) counts_[token] |= kInWindow;
    }
  }
  if (openai) {
    for (std::int32_t token : history) {
      if (in_vocabulary(token)) ++counts_[token];
    }
  }
  // The window lies within the history, so this visits every marked token.
  for (std::int32_t token : openai ? history : window) {
    if (!in_vocabulary(token) || counts_[token] == 0) continue;
    const std::uint32_t marks = counts_[token];
    counts_[token] = 0;
    float& logit = logits[token];
    if (keep_raw) raw_penalised_.push_back({token, logit});
    if (marks & kInWindow) {
      logit = logit <= 0.0f ? logit * params_.repetition_penalty : logit / params_.repetition_penalty;
    }
    if (openai) {
      const auto count = static_cast<float>(marks & ~kInWindow);
      logit -= count * params_.frequency_penalty + (count > 0.0f ? params_.presence_penalty : 0.0f);
    }
  }
}

float Sampler::raw_logit(std::span<const float> logits, std::int32_t token) const {
  for (const PenalisedToken& penalised : raw_penalised_) {
    if (penalised.token == token) return penalised.raw_logit;
  }
  return logits[token];
}

void Sampler::record_logprobs(std::span<const float> raw_logits) {
  const float m = max_logit(raw_logits);
  if (m == kNegativeInfinity) {
    // Nothing is possible: every log-probability is -inf.
    raw_max_ = 0.0;
    raw_log_sum_ = std::numeric_limits<double>::infinity();
  } else {
    double sum = 0.0;
    for (float logit : raw_logits) sum += portable_exp(static_cast<double>(clean(logit)) - m);
    raw_max_ = m;
    raw_log_sum_ = std::log(sum);
  }

  // The top_logprobs best, kept sorted while scanning: most tokens fail the
  // first comparison, so this stays one pass. Each entry's logprob field
  // holds its logit until the scan ends.
  top_.clear();
  const auto wanted = static_cast<std::size_t>(params_.top_logprobs);
  if (wanted == 0) return;
  struct Entry {
    std::int32_t token;
    float logit;
  };
  for (std::size_t i = 0; i < raw_logits.size(); ++i) {
    const Entry entry{static_cast<std::int32_t>(i), clean(raw_logits[i])};
    if (top_.size() == wanted && !better(entry, Entry{top_.back().token, top_.back().logprob})) continue;
    if (top_.size() < wanted) {
      top_.push_back({entry.token, entry.logit});
    } else {
      top_.back() = {entry.token, entry.logit};
    }
    for (std::size_t j = top_.size() - 1; j > 0; --j) {
      const Entry here{top_[j].token, top_[j].logprob};
      if (!better(here, Entry{top_[j - 1].token, top_[j - 1].logprob})) break;
      std::swap(top_[j], top_[j - 1]);
    }
  }
  for (TokenLogprob& entry : top_) {
    entry.logprob = static_cast<float>(static_cast<double>(entry.logprob) - raw_max_ - raw_log_sum_);
  }
}

double Sampler::truncate(std::span<const float> logits) {
  const std::size_t vocabulary = logits.size();
  const double m = max_logit(logits);
  candidates_.clear();
  if (m == -std::numeric_limits<double>::infinity()) {
    // Every token masked: nothing to weigh, so the lowest id, as greedy does.
    candidates_.push_back({0, kNegativeInfinity, 1.0});
    return 1.0;
  }
  const bool top_k = params_.top_k > 0 && static_cast<std::size_t>(params_.top_k) < vocabulary;
  const bool top_p = params_.top_p < 1.0f;
  const bool min_p = params_.min_p > 0.0f;
  const double temperature = params_.temperature;
  const double inverse_temperature = 1.0 / temperature;
  // Each candidate's weight is first its p / p_max = e^(logit - max), what
  // top_p and min_p compare; tempered last, when temperature is not 1.
  bool tempered = temperature == 1.0;
  auto relative = [m](float logit) { return portable_exp(static_cast<double>(logit) - m); };

  if (top_k) {
    // The k best in one pass, kept in a heap whose front is the worst of
    // them: most tokens lose to it at once.
    const auto k = static_cast<std::size_t>(params_.top_k);
    for (std::size_t i = 0; i < vocabulary; ++i) {
      const Candidate c{static_cast<std::int32_t>(i), clean(logits[i]), 0.0};
      if (candidates_.size() < k) {
        candidates_.push_back(c);
        std::push_heap(candidates_.begin(), candidates_.end(), better<Candidate>);
      } else if (better(c, candidates_.front())) {
        std::pop_heap(candidates_.begin(), candidates_.end(), better<Candidate>);
        candidates_.back() = c;
        std::push_heap(candidates_.begin(), candidates_.end(), better<Candidate>);
      }
    }
    std::sort(candidates_.begin(), candidates_.end(), better<Candidate>);
    double normaliser = 0.0;  // top_p's, over what top_k left, most likely first
    for (Candidate& c : candidates_) {
      c.weight = relative(c.logit);
      normaliser += c.weight;
    }
    if (top_p) cut_top_p(normaliser, /*already_sorted=*/true);
    if (min_p) std::erase_if(candidates_, [&](const Candidate& c) { return c.weight < params_.min_p; });
  } else if (top_p || min_p) {
    // min_p keeps a most-likely prefix, and so does top_p: applying min_p
    // first, with top_p's normaliser taken over everything (in token order),
    // leaves the same set as llama.cpp's top_p-then-min_p, and sorts less.
    double normaliser = 0.0;
    for (std::size_t i = 0; i < vocabulary; ++i) {
      const float logit = clean(logits[i]);
      if (logit == kNegativeInfinity) continue;
      const double r = relative(logit);
      normaliser += r;
      if (!min_p || r >= params_.min_p) candidates_.push_back({static_cast<std::int32_t>(i), logit, r});
    }
    if (top_p) cut_top_p(normaliser, /*already_sorted=*/false);
  } else {
    // Nothing to cut: straight to the tempered weights, one exp per token.
    for (std::size_t i = 0; i < vocabulary; ++i) {
      const float logit = clean(logits[i]);
      if (logit == kNegativeInfinity) continue;
      candidates_.push_back(
          {static_cast<std::int32_t>(i), logit, portable_exp((static_cast<double>(logit) - m) * inverse_temperature)});
    }
    tempered = true;
  }

  double total = 0.0;
  for (Candidate& c : candidates_) {
    if (!tempered) c.weight = portable_exp((static_cast<double>(c.logit) - m) * inverse_temperature);
    total += c.weight;
  }
  return total;
}

void Sampler::cut_top_p(double normaliser, bool already_sorted) {
  auto walk = [&](std::span<const Candidate> sorted, std::size_t from, double& cumulative) -> std::size_t {
    for (std::size_t i = from; i < sorted.size(); ++i) {
      cumulative += sorted[i].weight / normaliser;
      if (cumulative >= params_.top_p) return i + 1;
    }
    return 0;  // not reached
  };
  double cumulative = 0.0;
  if (already_sorted) {
    if (const std::size_t keep = walk(candidates_, 0, cumulative)) candidates_.resize(keep);
    return;
  }

  // candidates_ is in token order. Select the best 64 into scratch, sorted,
  // then the best 512: each a pass over all candidates with a bounded heap
  // (most lose one comparison to its front); the first ones of a round are
  // the previous round's, so the walk goes on where it stopped. A nucleus
  // larger than that (a flat distribution), or one that is an eighth of the
  // candidates, is found by sorting them all.
  const std::size_t size = candidates_.size();
  std::size_t walked = 0;
  for (std::size_t front = 64; front <= 512 && front * 8 < size; front *= 8) {
    radix_scratch_.clear();
    for (const Candidate& c : candidates_) {
      if (radix_scratch_.size() < front) {
        radix_scratch_.push_back(c);
        std::push_heap(radix_scratch_.begin(), radix_scratch_.end(), better<Candidate>);
      } else if (better(c, radix_scratch_.front())) {
        std::pop_heap(radix_scratch_.begin(), radix_scratch_.end(), better<Candidate>);
        radix_scratch_.back() = c;
        std::push_heap(radix_scratch_.begin(), radix_scratch_.end(), better<Candidate>);
      }
    }
    std::sort_heap(radix_scratch_.begin(), radix_scratch_.end(), better<Candidate>);
    if (const std::size_t keep = walk(radix_scratch_, walked, cumulative)) {
      candidates_.assign(radix_scratch_.begin(), radix_scratch_.begin() + static_cast<std::ptrdiff_t>(keep));
      return;
    }
    walked = front;
  }
  radix_sort_candidates();
  // The prefix already walked is the same; if the sum never reaches top_p
  // (rounding), everything stays.
  cumulative = 0.0;
  if (const std::size_t keep = walk(candidates_, 0, cumulative)) candidates_.resize(keep);
}

void Sampler::radix_sort_candidates() {
  // A stable LSD radix sort on the logit's bits made monotonic and inverted
  // (higher first; -0 taken as +0, as == does), in 11-bit digits: candidates
  // are in token order, and stability keeps equal logits so, which is
  // better()'s order. Each pass ends in the other buffer; the buffers swap.
  constexpr int kDigitBits = 11;
  constexpr int kPasses = (32 + kDigitBits - 1) / kDigitBits;
  constexpr std::uint32_t kDigitMask = (1u << kDigitBits) - 1;
  auto key = [](const Candidate& c) {
    const auto bits = std::bit_cast<std::uint32_t>(c.logit + 0.0f);
    return ~((bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u);
  };
  radix_scratch_.resize(candidates_.size());
  for (int pass = 0; pass < kPasses; ++pass) {
    const int shift = pass * kDigitBits;
    std::uint32_t offsets[kDigitMask + 1] = {};
    for (const Candidate& c : candidates_) ++offsets[(key(c) >> shift) & kDigitMask];
    std::uint32_t total = 0;
    for (std::uint32_t& offset : offsets) {
      const std::uint32_t count = offset;
      offset = total;
      total += count;
    }
    for (const Candidate& c : candidates_) radix_scratch_[offsets[(key(c) >> shift) & kDigitMask]++] = c;
    candidates_.swap(radix_scratch_);
  }
}

Sample Sampler::sample(std::span<float> logits, std::span<const std::int32_t> history) {
  prepare(logits.size());
  if (params_.logprobs) record_logprobs(logits);
  apply_penalties(logits, history, params_.logprobs);

  Sample result;
  if (greedy()) {
    result.token = argmax(logits);
  } else {
    // The first candidate whose running weight passes u * total. The running
    // sum ends at total exactly (the same additions in the same order), but
    // u * total may round up to it: then the last one that has any weight.
    const double total = truncate(logits);
    const double target = rng_.next_unit() * total;
    double cumulative = 0.0;
    for (const Candidate& c : candidates_) {
      if (c.weight == 0.0) continue;
      result.token = c.token;
      cumulative += c.weight;
      if (cumulative > target) break;
    }
  }
  if (params_.logprobs) {
    const double raw = clean(raw_logit(logits, result.token));
    result.logprob = static_cast<float>(raw - raw_max_ - raw_log_sum_);
    result.top_logprobs = top_;
  }
  return result;
}

std::span<const TokenProbability> Sampler::distribution(std::span<float> logits,
                                                        std::span<const std::int32_t> history) {
  prepare(logits.size());
  apply_penalties(logits, history, /*keep_raw=*/false);
  distribution_.clear();
  if (greedy()) {
    distribution_.push_back({argmax(logits), 1.0});
    return distribution_;
  }
  const double total = truncate(logits);
  for (const Candidate& c : candidates_) {
    if (c.weight > 0.0) distribution_.push_back({c.token, c.weight / total});
  }
  return distribution_;
}

}  // namespace headroom::infer
