#include "infer/sampling/sampling_params.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

namespace headroom::infer {
namespace {

TEST(SamplingParams, DefaultsAreValid) { EXPECT_TRUE(validate(SamplingParams{}).is_ok()); }

TEST(SamplingParams, AcceptsTheEdgesOfEachRange) {
  SamplingParams p;
  p.temperature = 0;
  p.top_p = 1;
  p.min_p = 0;
  p.frequency_penalty = -2;
  p.presence_penalty = 2;
  p.repetition_penalty = 100;
  p.repetition_window_tokens = 0;
  p.max_tokens = 1;
  p.stop = {"a", "b", "c", std::string(256, 'd')};
  p.logprobs = true;
  p.top_logprobs = 20;
  EXPECT_TRUE(validate(p).is_ok()) << validate(p).to_string();
  p.temperature = 2;
  p.top_p = 1e-6f;
  p.min_p = 0.999f;
  p.frequency_penalty = 2;
  p.presence_penalty = -2;
  p.repetition_penalty = 1e-3f;
  p.repetition_window_tokens = 4096;
  p.max_tokens = 131072;
  EXPECT_TRUE(validate(p).is_ok()) << validate(p).to_string();
}

struct Bad {
  std::string field;  // the name the error must mention
  std::function<void(SamplingParams&)> spoil;
};

TEST(SamplingParams, RejectsEachFieldOutOfRangeByName) {
  const Bad cases[] = {
      {"temperature", [](SamplingParams& p) { p.temperature = 2.01f; }},
      {"temperature", [](SamplingParams& p) { p.temperature = -0.1f; }},
      {"temperature", [](SamplingParams& p) { p.temperature = NAN; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.5f; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -1; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1; }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.5f; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = 2.5f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = -3; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = INFINITY; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 101; }},
      {"repetition_window_tokens", [](SamplingParams& p) { p.repetition_window_tokens = -1; }},
      {"repetition_window_tokens", [](SamplingParams& p) { p.repetition_window_tokens = 4097; }},
      {"max_tokens", [](SamplingParams& p) { p.max_tokens = 0; }},
      {"max_tokens", [](SamplingParams& p) { p.max_tokens = 131073; }},
      {"stop takes at most 4",
       [](SamplingParams& p) {
         p.stop = {"a", "b", "c", "d", "e"};
       }},
      {"stop[1] must not be empty",
       [](SamplingParams& p) {
         p.stop = {"a", ""};
       }},
      {"stop[0] must be at most 256 bytes", [](SamplingParams& p) { p.stop = {std::string(257, 'x')}; }},
      {"top_logprobs", [](SamplingParams& p) { p.logprobs = true, p.top_logprobs = 21; }},
      {"top_logprobs", [](SamplingParams& p) { p.logprobs = true, p.top_logprobs = -1; }},
      {"top_logprobs needs logprobs", [](SamplingParams& p) { p.top_logprobs = 3; }},
  };
  for (const Bad& bad : cases) {
    SamplingParams p;
    bad.spoil(p);
    const Status status = validate(p);
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << bad.field;
    EXPECT_NE(status.message().find(bad.field), std::string::npos) << status.message();
  }
}

TEST(SamplingParams, MessagesSayTheRangeAndTheValue) {
  SamplingParams p;
  p.temperature = 3.5f;
  EXPECT_EQ(validate(p).message(), "temperature must be between 0 and 2, got 3.5");
  p = {};
  p.top_p = 1.5f;
  EXPECT_EQ(validate(p).message(), "top_p must be in (0, 1], got 1.5");
}

}  // namespace
}  // namespace headroom::infer
