#include "infer/sampling/stop_matcher.h"

#include <algorithm>

#include "common/check.h"
#include "infer/sampling/sampling_limits.h"

namespace headroom::infer {
namespace {

static_assert(limits::kStopSequenceBytes < 65'536, "KMP tables hold uint16 lengths");

// The end of the longest prefix of text[0, end) that holds no unfinished
// UTF-8 character at its end. Invalid bytes are left for the caller to
// replace: only a lead byte whose continuation may still come is held.
std::size_t whole_utf8_end(std::string_view text, std::size_t end) {
  std::size_t lead = end;
  for (int back = 0; back < 3 && lead > 0; ++back) {
    const auto byte = static_cast<unsigned char>(text[lead - 1]);
    if ((byte & 0xC0) != 0x80) {
      --lead;
      const std::size_t length = byte >= 0xF0 && byte <= 0xF4 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC2 ? 2 : 1;
      return lead + length > end && byte >= 0xC2 && byte <= 0xF4 ? lead : end;
    }
    --lead;  // a continuation byte: look further back for its lead
  }
  return end;
}

}  // namespace

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
  }
  return "";
}

StopMatcher::StopMatcher(const SamplingParams& params) : max_tokens_(params.max_tokens) {
  const Status status = validate(params);
  CHECK(status.is_ok()) << "a StopMatcher needs validated params: " << status.to_string();
  stops_.reserve(params.stop.size());
  for (const std::string& text : params.stop) {
    Stop stop{text, std::vector<std::uint16_t>(text.size(), 0)};
    for (std::size_t i = 1, k = 0; i < text.size(); ++i) {
      while (k > 0 && text[i] != text[k]) k = stop.failure[k - 1];
      if (text[i] == text[k]) ++k;
      stop.failure[i] = static_cast<std::uint16_t>(k);
    }
    stops_.push_back(std::move(stop));
  }
  pending_.reserve(limits::kStopSequenceBytes + 64);
}

StopMatcher::Step StopMatcher::release(std::size_t bytes, FinishReason finish) {
  out_.assign(pending_, 0, bytes);
  pending_.erase(0, bytes);
  finish_ = finish;
  if (finish != FinishReason::kNone) pending_.clear();
  return {out_, finish};
}

StopMatcher::Step StopMatcher::push(std::string_view token_text) {
  CHECK(finish_ == FinishReason::kNone) << "push() after the completion finished";
  ++tokens_;
  for (char byte : token_text) {
    pending_.push_back(byte);
    // Feed the byte to every automaton; of the stops completing here, the
    // longest starts first.
    const Stop* matched = nullptr;
    for (Stop& stop : stops_) {
      std::size_t k = stop.matched;
      while (k > 0 && byte != stop.text[k]) k = stop.failure[k - 1];
      if (byte == stop.text[k]) ++k;
      if (k == stop.text.size()) {
        if (matched == nullptr || stop.text.size() > matched->text.size()) matched = &stop;
        k = stop.failure[k - 1];
      }
      stop.matched = static_cast<std::uint16_t>(k);
    }
    if (matched != nullptr) {
      // Held text is always a prefix of a stop or part of a character, so the
      // stop starts within pending_.
      ASSERT(pending_.size() >= matched->text.size());
      return release(pending_.size() - matched->text.size(), FinishReason::kStop);
    }
  }
  if (max_tokens_ && tokens_ >= *max_tokens_) return release(pending_.size(), FinishReason::kLength);

  std::size_t held = 0;
  for (const Stop& stop : stops_) held = std::max<std::size_t>(held, stop.matched);
  return release(whole_utf8_end(pending_, pending_.size() - held), FinishReason::kNone);
}

StopMatcher::Step StopMatcher::end_of_sequence() {
  CHECK(finish_ == FinishReason::kNone) << "end_of_sequence() after the completion finished";
  return release(pending_.size(), FinishReason::kStop);
}

}  // namespace headroom::infer
