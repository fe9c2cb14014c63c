// The OpenAI API's request bodies, read as OpenAI's API reference defines
// them, and its error shape.
//
// POST /v1/chat/completions and POST /v1/completions: the fields that
// matter are read and checked (model, messages or prompt, max_tokens and
// max_completion_tokens, temperature, top_p, n, stop, seed, presence and
// frequency penalties, logprobs and top_logprobs, user, stream,
// stream_options.include_usage); fields OpenAI defines that we do not use,
// and unknown fields, are ignored, as OpenAI's own server does. A wrong
// value is an ApiError naming the field (`param`), as OpenAI answers it:
//
//   {"error":{"message":"...","type":"invalid_request_error","param":"temperature","code":null}}
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "infer/sampling/chat_template.h"
#include "infer/sampling/sampling_params.h"

namespace headroom::gateway {

// An error as OpenAI reports it.
struct ApiError {
  int status = 400;
  std::string type = "invalid_request_error";  // invalid_request_error, authentication_error, ... server_error
  std::string message;
  std::string param;  // the field at fault; empty: null
  std::string code;   // a machine code ("model_not_found", "rate_limit_exceeded"); empty: null

  static ApiError invalid(std::string param, std::string message) {
    return {400, "invalid_request_error", std::move(message), std::move(param), ""};
  }
};

// OpenAI's error body: {"error":{"message","type","param","code"}}.
std::string error_body(const ApiError& error);
// The ApiError of a Status from elsewhere (auth, budgets, the engine).
ApiError api_error(const Status& status);

enum class Endpoint : std::uint8_t {
  kChat,        // /v1/chat/completions: messages, a chat template
  kCompletion,  // /v1/completions: a prompt, as is
};

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;
  std::vector<infer::ChatMessage> messages;  // kChat
  std::string prompt;                        // kCompletion
  infer::SamplingParams sampling;            // checked by infer::validate
  std::int32_t n = 1;                        // choices, each its own sequence
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string user;
  // The body as the client sent it, for an external upstream, which gets
  // every field (ours and those we ignore).
  boost::json::object body;
};

inline constexpr std::int32_t kMaxChoices = 8;            // n
inline constexpr std::size_t kMaxMessages = 1024;         // messages in a chat request
inline constexpr std::size_t kMaxPromptBytes = 1 << 20;   // a prompt, or all messages' content together
inline constexpr std::size_t kMaxModelNameBytes = 256;
inline constexpr std::size_t kMaxUserBytes = 256;

// Parses and checks a body of `endpoint` into `out`; false with `error`
// (400, naming the field) when it is wrong. max_tokens (or
// max_completion_tokens, which wins) is optional: absent, a choice may run
// to the end of the model's context.
bool parse_completion_request(Endpoint endpoint, std::string_view body, CompletionRequest& out, ApiError& error);

}  // namespace headroom::gateway
