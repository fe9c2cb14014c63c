#include "gateway/openai_request.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <random>

namespace headroom::gateway {
namespace {

CompletionRequest parse_ok(Endpoint endpoint, std::string_view body) {
  CompletionRequest out;
  ApiError error;
  EXPECT_TRUE(parse_completion_request(endpoint, body, out, error)) << error.message;
  return out;
}

ApiError parse_error(Endpoint endpoint, std::string_view body) {
  CompletionRequest out;
  ApiError error;
  EXPECT_FALSE(parse_completion_request(endpoint, body, out, error)) << body;
  return error;
}

TEST(OpenAiRequest, ChatWithEveryFieldThatMatters) {
  const CompletionRequest r = parse_ok(Endpoint::kChat, R"({
    "model": "m", "messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": null},
      {"role": "user", "content": "again"}],
    "max_tokens": 10, "max_completion_tokens": 20, "temperature": 0.5, "top_p": 0.9, "n": 2,
    "stop": ["\n", "END"], "seed": 42, "presence_penalty": 0.5, "frequency_penalty": -0.5,
    "logprobs": true, "top_logprobs": 3, "user": "u1", "stream": true,
    "stream_options": {"include_usage": true}, "some_future_field": {"x": 1}})");
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, infer::ChatRole::kSystem);
  EXPECT_EQ(r.messages[1].content, "Hi there");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.sampling.max_tokens, 20) << "max_completion_tokens wins";
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.sampling.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_TRUE(r.sampling.logprobs);
  EXPECT_EQ(r.sampling.top_logprobs, 3);
  EXPECT_EQ(r.user, "u1");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(OpenAiRequest, CompletionDefaultsAreOpenAis) {
  const CompletionRequest r = parse_ok(Endpoint::kCompletion, R"({"model":"m","prompt":["Once"],"logprobs":2})");
  EXPECT_EQ(r.prompt, "Once");
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_FALSE(r.sampling.max_tokens.has_value());
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream);
  EXPECT_TRUE(r.sampling.logprobs);
  EXPECT_EQ(r.sampling.top_logprobs, 2);
}

TEST(OpenAiRequest, EachBadValueNamesItsField) {
  struct Case {
    Endpoint endpoint;
    const char* body;
    const char* param;
    const char* message;
  };
  const Case cases[] = {
      {Endpoint::kChat, R"({"messages":[{"role":"user","content":"x"}]})", "model", "model is required"},
      {Endpoint::kChat, R"({"model":7,"messages":[]})", "model", "model must be a string, got a number"},
      {Endpoint::kChat, R"({"model":"m"})", "messages", "messages is required"},
      {Endpoint::kChat, R"({"model":"m","messages":[]})", "messages", "messages must be a non-empty array"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"robot","content":"x"}]})", "messages[0].role",
       "messages[0].role must be one of system, developer, user, assistant; got 'robot'"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user"}]})", "messages[0].content",
       "messages[0].content is required"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
       "messages[0].content[0]", "messages[0].content[0] is a image_url part; this model reads text only"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":2.5})",
       "temperature", "temperature must be in [0, 2], got 2.5"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_p":0})", "top_p",
       "top_p must be in (0, 1], got 0"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":9})", "n",
       "n must be in [1, 8], got 9"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})", "max_tokens",
       "max_tokens must be in [1, 131072], got 0"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1.5})",
       "max_tokens", "max_tokens must be an integer, got 1.5"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]})", "stop",
       "stop must be a string or an array of strings"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream",
       "stream must be a boolean, got a string"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{}})",
       "stream_options", "stream_options is only allowed when stream is true"},
      {Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2})",
       "top_logprobs", "top_logprobs needs logprobs set to true"},
      {Endpoint::kCompletion, R"({"model":"m","prompt":["a","b"]})", "prompt",
       "prompt must be a string (or an array of exactly one string)"},
  };
  for (const Case& c : cases) {
    const ApiError e = parse_error(c.endpoint, c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_EQ(e.message, c.message) << c.body;
  }
  EXPECT_EQ(parse_error(Endpoint::kChat, "{not json").message.rfind("the body is not valid JSON", 0), 0u);
  EXPECT_EQ(parse_error(Endpoint::kChat, "[1]").message, "the body must be a JSON object");
}

TEST(OpenAiRequest, TooMuchIsRefused) {
  std::string big = R"({"model":"m","prompt":")" + std::string(kMaxPromptBytes + 1, 'a') + R"("})";
  EXPECT_EQ(parse_error(Endpoint::kCompletion, big).param, "prompt");
  std::string deep = R"({"model":"m","prompt":"x","z":)" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_NE(parse_error(Endpoint::kCompletion, deep).message.find("not valid JSON"), std::string::npos);
}

// Random mutations of a valid body: each parses or is refused with a
// message, never a crash.
TEST(OpenAiRequest, MutatedBodiesNeverCrash) {
  const std::string valid = R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":1,"n":2,)"
                            R"("stop":["x"],"stream":true,"stream_options":{"include_usage":true}})";
  std::mt19937 rng(5);
  const std::string alphabet = "{}[]\":,0123456789.-eE nultrfa\\";
  for (int i = 0; i < 20000; ++i) {
    std::string body = valid;
    for (int m = 0; m < 1 + static_cast<int>(rng() % 4); ++m) {
      const std::size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0: body[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: body.erase(at, 1); break;
        default: body.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
      }
    }
    CompletionRequest out;
    ApiError error;
    if (!parse_completion_request(Endpoint::kChat, body, out, error)) {
      EXPECT_FALSE(error.message.empty()) << body;
    }
  }
}

TEST(OpenAiRequest, ErrorBodyIsOpenAisShape) {
  const ApiError e = ApiError::invalid("temperature", "bad");
  EXPECT_EQ(boost::json::parse(error_body(e)),
            boost::json::parse(R"({"error":{"message":"bad","type":"invalid_request_error","param":"temperature","code":null}})"));
  EXPECT_EQ(api_error(Status::insufficient_funds("no money")).status, 402);
  EXPECT_EQ(api_error(Status::rate_limited("slow")).code, "rate_limit_exceeded");
  EXPECT_EQ(api_error(Status::unauthenticated("who")).status, 401);
}

}  // namespace
}  // namespace headroom::gateway
