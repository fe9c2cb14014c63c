#include "infer/sampling/stop_matcher.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "infer/sampling/rng.h"

namespace headroom::infer {
namespace {

SamplingParams with_stops(std::vector<std::string> stops, std::optional<std::int32_t> max_tokens = std::nullopt) {
  SamplingParams p;
  p.stop = std::move(stops);
  p.max_tokens = max_tokens;
  return p;
}

struct Streamed {
  std::vector<std::string> pieces;  // what each push released
  std::string text;                 // all of it
  FinishReason finish = FinishReason::kNone;
};

// Pushes tokens until finished; then, if still going, ends the sequence.
Streamed run(StopMatcher& m, const std::vector<std::string>& tokens) {
  Streamed r;
  for (const std::string& token : tokens) {
    const StopMatcher::Step step = m.push(token);
    r.pieces.emplace_back(step.text);
    r.text += step.text;
    r.finish = step.finish;
    if (step.finish != FinishReason::kNone) return r;
  }
  const StopMatcher::Step step = m.end_of_sequence();
  r.pieces.emplace_back(step.text);
  r.text += step.text;
  r.finish = step.finish;
  return r;
}

TEST(StopMatcher, WithoutStopsEverythingGoesOutAtOnce) {
  StopMatcher m(with_stops({}));
  const Streamed r = run(m, {"Hello", ", ", "world"});
  EXPECT_EQ(r.pieces, (std::vector<std::string>{"Hello", ", ", "world", ""}));
  EXPECT_EQ(r.finish, FinishReason::kStop);  // the end-of-sequence token
}

TEST(StopMatcher, AStopSplitAcrossTokens) {
  StopMatcher m(with_stops({"<|end|>"}));
  const Streamed r = run(m, {"Hello <", "|en", "d|>more", "never"});
  EXPECT_EQ(r.pieces, (std::vector<std::string>{"Hello ", "", ""}));
  EXPECT_EQ(r.finish, FinishReason::kStop);
  EXPECT_EQ(m.tokens(), 3);
}

TEST(StopMatcher, HeldTextIsReleasedWhenItTurnsOutNotToBeAStop) {
  StopMatcher m(with_stops({"###"}));
  const Streamed r = run(m, {"a#", "#b", "c"});
  EXPECT_EQ(r.pieces, (std::vector<std::string>{"a", "##b", "c", ""}));
  EXPECT_EQ(r.text, "a##bc");
}

TEST(StopMatcher, AStopInsideOneToken) {
  StopMatcher m(with_stops({"\n\nUser:"}));
  const Streamed r = run(m, {"ok.\n\nUser: hi"});
  EXPECT_EQ(r.text, "ok.");
  EXPECT_EQ(r.finish, FinishReason::kStop);
}

TEST(StopMatcher, SelfOverlappingStop) {
  StopMatcher m(with_stops({"aab"}));
  const Streamed r = run(m, {"xa", "a", "a", "b", "y"});
  EXPECT_EQ(r.pieces, (std::vector<std::string>{"x", "", "a", ""}));
  EXPECT_EQ(r.text, "xa");
}

TEST(StopMatcher, TheStopEndingFirstWinsThenTheLongest) {
  // "bc" ends before "abcd" could.
  StopMatcher first(with_stops({"abcd", "bc"}));
  EXPECT_EQ(run(first, {"xabcd"}).text, "xa");
  // Both end at the same byte: the longer starts earlier.
  StopMatcher longest(with_stops({"bc", "abc"}));
  EXPECT_EQ(run(longest, {"x", "ab", "c"}).text, "x");
}

// The cut depends only on the text: every way of splitting it into tokens
// gives the same output. The reference cuts the whole text at the stop that
// ends first (the longest of those ending together).
std::string reference(const std::string& text, const std::vector<std::string>& stops) {
  for (std::size_t end = 1; end <= text.size(); ++end) {
    std::size_t best = std::string::npos;
    for (const std::string& stop : stops) {
      if (stop.size() <= end && text.compare(end - stop.size(), stop.size(), stop) == 0) {
        best = std::min(best, end - stop.size());
      }
    }
    if (best != std::string::npos) return text.substr(0, best);
  }
  return text;
}

TEST(StopMatcher, TokenBoundariesDoNotMatter) {
  const std::vector<std::string> stops = {"ab", "bab", "aaa", "ba b"};
  Xoshiro256 rng(17);
  const std::string alphabet = "ab ";
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text;
    const auto length = 1 + rng.next() % 14;
    for (std::uint64_t i = 0; i < length; ++i) text += alphabet[rng.next() % alphabet.size()];
    std::vector<std::string> tokens;
    for (std::size_t at = 0; at < text.size();) {
      const std::size_t n = std::min<std::size_t>(text.size() - at, rng.next() % 4);  // empty tokens too
      tokens.push_back(text.substr(at, n));
      at += n;
    }
    StopMatcher m(with_stops(stops));
    const Streamed r = run(m, tokens);
    EXPECT_EQ(r.text, reference(text, stops)) << "text '" << text << "'";
    EXPECT_EQ(r.finish, FinishReason::kStop);
  }
}

TEST(StopMatcher, MaxTokensFinishesWithLengthAndReleasesHeldText) {
  StopMatcher m(with_stops({"##"}, 2));
  EXPECT_EQ(m.push("x").text, "x");
  const StopMatcher::Step last = m.push("y#");
  EXPECT_EQ(last.text, "y#");
  EXPECT_EQ(last.finish, FinishReason::kLength);
  EXPECT_EQ(m.finish(), FinishReason::kLength);
}

TEST(StopMatcher, AStopOnTheLastAllowedTokenIsAStop) {
  StopMatcher m(with_stops({"##"}, 2));
  m.push("x#");
  const StopMatcher::Step last = m.push("#y");
  EXPECT_EQ(last.text, "");
  EXPECT_EQ(last.finish, FinishReason::kStop);
}

TEST(StopMatcher, EndOfSequenceReleasesHeldText) {
  StopMatcher m(with_stops({"</answer>"}));
  EXPECT_EQ(m.push("42 </ans").text, "42 ");
  const StopMatcher::Step end = m.end_of_sequence();
  EXPECT_EQ(end.text, "</ans");
  EXPECT_EQ(end.finish, FinishReason::kStop);
}

TEST(StopMatcher, HoldsAnUnfinishedUtf8Character) {
  StopMatcher m(with_stops({}));
  EXPECT_EQ(m.push("caf\xC3").text, "caf");
  EXPECT_EQ(m.push("\xA9!").text, "\xC3\xA9!");
  // An emoji in four tokens of one byte.
  EXPECT_EQ(m.push("\xF0").text, "");
  EXPECT_EQ(m.push("\x9F").text, "");
  EXPECT_EQ(m.push("\x98").text, "");
  EXPECT_EQ(m.push("\x80").text, "\xF0\x9F\x98\x80");
  // Invalid bytes are not held: the API layer replaces them.
  EXPECT_EQ(m.push("\xFF").text, "\xFF");
  EXPECT_EQ(m.push("a\x80").text, "a\x80");
}

TEST(StopMatcher, NonAsciiStops) {
  StopMatcher m(with_stops({"\xE3\x80\x82"}));  // "。"
  const Streamed r = run(m, {"\xE4\xBD\xA0\xE5", "\xA5\xBD\xE3", "\x80", "\x82\xE5\x90\x97"});
  EXPECT_EQ(r.text, "\xE4\xBD\xA0\xE5\xA5\xBD");  // "你好"
  EXPECT_EQ(r.finish, FinishReason::kStop);
}

TEST(StopMatcher, FinishReasonNames) {
  EXPECT_EQ(finish_reason_name(FinishReason::kStop), "stop");
  EXPECT_EQ(finish_reason_name(FinishReason::kLength), "length");
  EXPECT_EQ(finish_reason_name(FinishReason::kNone), "");
}

}  // namespace
}  // namespace headroom::infer
