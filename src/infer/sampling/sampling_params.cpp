#include "infer/sampling/sampling_params.h"

#include <cmath>
#include <string_view>

#include <fmt/format.h>

#include "infer/sampling/sampling_limits.h"

namespace headroom::infer {
namespace {

// A float field within [low, high] (NaN is never within).
Status check_closed(std::string_view field, float value, double low, double high) {
  if (!(value >= low && value <= high)) {
    return Status::invalid_argument(fmt::format("{} must be between {} and {}, got {}", field, low, high, value));
  }
  return Status::ok();
}

}  // namespace

Status validate(const SamplingParams& params) {
  HR_RETURN_IF_ERROR(check_closed("temperature", params.temperature, 0, 2));
  if (!(params.top_p > 0 && params.top_p <= 1)) {
    return Status::invalid_argument(fmt::format("top_p must be in (0, 1], got {}", params.top_p));
  }
  if (params.top_k < 0) {
    return Status::invalid_argument(fmt::format("top_k must be 0 (off) or more, got {}", params.top_k));
  }
  if (!(params.min_p >= 0 && params.min_p < 1)) {
    return Status::invalid_argument(fmt::format("min_p must be in [0, 1), got {}", params.min_p));
  }
  HR_RETURN_IF_ERROR(check_closed("frequency_penalty", params.frequency_penalty, -2, 2));
  HR_RETURN_IF_ERROR(check_closed("presence_penalty", params.presence_penalty, -2, 2));
  if (!(params.repetition_penalty > 0 && params.repetition_penalty <= 100)) {
    return Status::invalid_argument(
        fmt::format("repetition_penalty must be in (0, 100] (1 is off), got {}", params.repetition_penalty));
  }
  if (params.repetition_window_tokens < 0 || params.repetition_window_tokens > limits::kRepetitionWindowTokens) {
    return Status::invalid_argument(fmt::format("repetition_window_tokens must be between 0 and {}, got {}",
                                                limits::kRepetitionWindowTokens, params.repetition_window_tokens));
  }
  if (params.max_tokens && (*params.max_tokens < 1 || *params.max_tokens > limits::kMaxTokens)) {
    return Status::invalid_argument(
        fmt::format("max_tokens must be between 1 and {}, got {}", limits::kMaxTokens, *params.max_tokens));
  }
  if (params.stop.size() > limits::kStopSequences) {
    return Status::invalid_argument(
        fmt::format("stop takes at most {} sequences, got {}", limits::kStopSequences, params.stop.size()));
  }
  for (std::size_t i = 0; i < params.stop.size(); ++i) {
    if (params.stop[i].empty()) return Status::invalid_argument(fmt::format("stop[{}] must not be empty", i));
    if (params.stop[i].size() > limits::kStopSequenceBytes) {
      return Status::invalid_argument(fmt::format("stop[{}] must be at most {} bytes, got {}", i,
                                                  limits::kStopSequenceBytes, params.stop[i].size()));
    }
  }
  if (params.top_logprobs < 0 || params.top_logprobs > static_cast<std::int32_t>(limits::kTopLogprobs)) {
    return Status::invalid_argument(
        fmt::format("top_logprobs must be between 0 and {}, got {}", limits::kTopLogprobs, params.top_logprobs));
  }
  if (params.top_logprobs > 0 && !params.logprobs) {
    return Status::invalid_argument("top_logprobs needs logprobs to be true");
  }
  return Status::ok();
}

}  // namespace headroom::infer
