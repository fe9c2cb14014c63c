#include "gateway/openai_request.h"

#include "infer/sampling/sampling_limits.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cmath>
#include <cstdio>

namespace headroom::gateway {
namespace {

namespace json = boost::json;

std::string_view kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: return "a number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
  }
  return "a value";
}

// A value as the client wrote it, near enough: numbers as %g, not Boost's
// "2.5E0".
std::string show(const json::value& v) {
  if (v.is_double()) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", v.as_double());
    return text;
  }
  return json::serialize(v);
}

// Reads the fields of one request object; the first error wins.
class Fields {
 public:
  Fields(const json::object& object, ApiError& error) : object_(object), error_(error) {}
  bool failed() const { return failed_; }

  const json::value* find(std::string_view name) {
    const json::value* v = object_.if_contains(name);
    return v == nullptr || v->is_null() ? nullptr : v;
  }

  bool fail(std::string_view param, std::string message) {
    if (!failed_) error_ = ApiError::invalid(std::string(param), std::move(message));
    failed_ = true;
    return false;
  }

  std::optional<double> number(std::string_view name, double min, double max, bool min_open = false) {
    const json::value* v = find(name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number()) return fail(name, std::string(name) + " must be a number, got " + std::string(kind_name(*v))), std::nullopt;
    const double d = v->to_number<double>();
    if (!std::isfinite(d) || d > max || (min_open ? d <= min : d < min)) {
      fail(name, std::string(name) + " must be in " + (min_open ? "(" : "[") + format(min) + ", " + format(max) +
                     "], got " + show(*v));
      return std::nullopt;
    }
    return d;
  }

  std::optional<std::int64_t> integer(std::string_view name, std::int64_t min, std::int64_t max) {
    const json::value* v = find(name);
    if (v == nullptr) return std::nullopt;
    std::int64_t i = 0;
    if (v->is_int64()) {
      i = v->as_int64();
    } else if (v->is_uint64()) {
      i = v->as_uint64() > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(v->as_uint64());
    } else if (v->is_double() && std::trunc(v->as_double()) == v->as_double() && std::fabs(v->as_double()) < 9e18) {
      i = static_cast<std::int64_t>(v->as_double());
    } else {
      fail(name, std::string(name) + " must be an integer, got " + show(*v));
      return std::nullopt;
    }
    if (i < min || i > max) {
      fail(name, std::string(name) + " must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " +
                     std::to_string(i));
      return std::nullopt;
    }
    return i;
  }

  std::optional<bool> boolean(std::string_view name) {
    const json::value* v = find(name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_bool()) return fail(name, std::string(name) + " must be a boolean, got " + std::string(kind_name(*v))), std::nullopt;
    return v->as_bool();
  }

  std::optional<std::string> string(std::string_view name, std::size_t max_bytes) {
    const json::value* v = find(name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) return fail(name, std::string(name) + " must be a string, got " + std::string(kind_name(*v))), std::nullopt;
    if (v->as_string().size() > max_bytes) {
      fail(name, std::string(name) + " is longer than " + std::to_string(max_bytes) + " bytes");
      return std::nullopt;
    }
    return std::string(v->as_string());
  }

 private:
  static std::string format(double d) { return show(json::value(d)); }

  const json::object& object_;
  ApiError& error_;
  bool failed_ = false;
};

// A message's content: a string, or an array of parts of which only text
// parts are understood.
bool read_content(const json::value& content, std::string_view param, std::string& out, Fields& fields) {
  if (content.is_string()) {
    out = content.as_string();
    return true;
  }
  if (!content.is_array()) return fields.fail(param, std::string(param) + " must be a string or an array of content parts");
  for (std::size_t i = 0; i < content.as_array().size(); ++i) {
    const json::value& part = content.as_array()[i];
    const std::string at = std::string(param) + "[" + std::to_string(i) + "]";
    const json::object* o = part.if_object();
    const json::value* type = o != nullptr ? o->if_contains("type") : nullptr;
    if (type == nullptr || !type->is_string()) return fields.fail(at, at + " must be an object with a type");
    if (type->as_string() != "text") {
      return fields.fail(at, at + " is a " + std::string(type->as_string()) + " part; this model reads text only");
    }
    const json::value* text = o->if_contains("text");
    if (text == nullptr || !text->is_string()) return fields.fail(at + ".text", at + ".text must be a string");
    out += text->as_string();
  }
  return true;
}

bool read_messages(const json::value* messages, CompletionRequest& out, Fields& fields) {
  if (messages == nullptr) return fields.fail("messages", "messages is required");
  if (!messages->is_array() || messages->as_array().empty()) {
    return fields.fail("messages", "messages must be a non-empty array");
  }
  if (messages->as_array().size() > kMaxMessages) {
    return fields.fail("messages", "messages holds more than " + std::to_string(kMaxMessages) + " messages");
  }
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < messages->as_array().size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    const json::object* m = messages->as_array()[i].if_object();
    if (m == nullptr) return fields.fail(at, at + " must be an object");
    const json::value* role = m->if_contains("role");
    if (role == nullptr || !role->is_string()) return fields.fail(at + ".role", at + ".role is required");
    infer::ChatMessage message;
    // OpenAI's "developer" is the system role of its newer models.
    const std::string_view role_name = role->as_string() == "developer" ? "system" : std::string_view(role->as_string());
    std::optional<infer::ChatRole> parsed = infer::chat_role_from_name(role_name);
    if (!parsed.has_value()) {
      return fields.fail(at + ".role", at + ".role must be one of system, developer, user, assistant; got '" +
                                           std::string(role->as_string()) + "'");
    }
    message.role = *parsed;
    const json::value* content = m->if_contains("content");
    if (content == nullptr || content->is_null()) {
      if (message.role != infer::ChatRole::kAssistant) return fields.fail(at + ".content", at + ".content is required");
    } else if (!read_content(*content, at + ".content", message.content, fields)) {
      return false;
    }
    bytes += message.content.size();
    if (bytes > kMaxPromptBytes) {
      return fields.fail("messages", "the messages hold more than " + std::to_string(kMaxPromptBytes) + " bytes");
    }
    out.messages.push_back(std::move(message));
  }
  return true;
}

bool read_prompt(const json::value* prompt, CompletionRequest& out, Fields& fields) {
  if (prompt == nullptr) return fields.fail("prompt", "prompt is required");
  const json::value* text = prompt;
  // A list of prompts is a batch in OpenAI's API; one is all we take.
  if (prompt->is_array()) {
    if (prompt->as_array().size() != 1 || !prompt->as_array()[0].is_string()) {
      return fields.fail("prompt", "prompt must be a string (or an array of exactly one string)");
    }
    text = &prompt->as_array()[0];
  }
  if (!text->is_string()) return fields.fail("prompt", "prompt must be a string");
  if (text->as_string().size() > kMaxPromptBytes) {
    return fields.fail("prompt", "prompt is longer than " + std::to_string(kMaxPromptBytes) + " bytes");
  }
  out.prompt = text->as_string();
  return true;
}

bool read_stop(const json::value* stop, infer::SamplingParams& sampling, Fields& fields) {
  if (stop == nullptr) return true;
  if (stop->is_string()) {
    if (!stop->as_string().empty()) sampling.stop.emplace_back(stop->as_string());
    return true;
  }
  if (!stop->is_array()) return fields.fail("stop", "stop must be a string or an array of strings");
  for (const json::value& s : stop->as_array()) {
    if (!s.is_string()) return fields.fail("stop", "stop must be a string or an array of strings");
    if (!s.as_string().empty()) sampling.stop.emplace_back(s.as_string());
  }
  return true;
}

}  // namespace

bool parse_completion_request(Endpoint endpoint, std::string_view body, CompletionRequest& out, ApiError& error) {
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 32;
  json::value parsed = json::parse(body, ec, {}, options);
  if (ec) {
    error = ApiError::invalid("", "the body is not valid JSON: " + ec.message());
    return false;
  }
  if (!parsed.is_object()) {
    error = ApiError::invalid("", "the body must be a JSON object");
    return false;
  }
  Fields fields(parsed.as_object(), error);
  out = CompletionRequest{};
  out.endpoint = endpoint;

  std::optional<std::string> model = fields.string("model", kMaxModelNameBytes);
  if (fields.failed()) return false;
  if (!model.has_value() || model->empty()) return fields.fail("model", "model is required");
  out.model = std::move(*model);
  if (endpoint == Endpoint::kChat ? !read_messages(fields.find("messages"), out, fields)
                                  : !read_prompt(fields.find("prompt"), out, fields)) {
    return false;
  }

  infer::SamplingParams& s = out.sampling;
  // Sampling: OpenAI's defaults are temperature 1 and top_p 1.
  if (auto v = fields.number("temperature", 0, 2)) s.temperature = static_cast<float>(*v);
  if (auto v = fields.number("top_p", 0, 1, /*min_open=*/true)) s.top_p = static_cast<float>(*v);
  if (auto v = fields.number("presence_penalty", -2, 2)) s.presence_penalty = static_cast<float>(*v);
  if (auto v = fields.number("frequency_penalty", -2, 2)) s.frequency_penalty = static_cast<float>(*v);
  if (auto v = fields.integer("seed", INT64_MIN, INT64_MAX)) s.seed = static_cast<std::uint64_t>(*v);
  std::optional<std::int64_t> max_tokens = fields.integer("max_tokens", 1, limits::kMaxTokens);
  if (auto v = fields.integer("max_completion_tokens", 1, limits::kMaxTokens)) max_tokens = v;
  if (max_tokens.has_value()) s.max_tokens = static_cast<std::int32_t>(*max_tokens);
  if (auto v = fields.integer("n", 1, kMaxChoices)) out.n = static_cast<std::int32_t>(*v);
  if (!read_stop(fields.find("stop"), s, fields)) return false;
  if (endpoint == Endpoint::kChat) {
    if (auto v = fields.boolean("logprobs")) s.logprobs = *v;
    if (auto v = fields.integer("top_logprobs", 0, limits::kTopLogprobs)) {
      if (!s.logprobs && *v > 0) return fields.fail("top_logprobs", "top_logprobs needs logprobs set to true");
      s.top_logprobs = static_cast<std::int32_t>(*v);
    }
  } else if (auto v = fields.integer("logprobs", 0, 5)) {  // the legacy API: how many top tokens
    s.logprobs = true;
    s.top_logprobs = static_cast<std::int32_t>(*v);
  }
  if (auto v = fields.string("user", kMaxUserBytes)) out.user = std::move(*v);
  if (auto v = fields.boolean("stream")) out.stream = *v;
  if (const json::value* options_value = fields.find("stream_options")) {
    const json::object* o = options_value->if_object();
    if (o == nullptr) return fields.fail("stream_options", "stream_options must be an object");
    if (!out.stream) return fields.fail("stream_options", "stream_options is only allowed when stream is true");
    if (const json::value* include = o->if_contains("include_usage"); include != nullptr && !include->is_null()) {
      if (!include->is_bool()) {
        return fields.fail("stream_options.include_usage", "stream_options.include_usage must be a boolean");
      }
      out.include_usage = include->as_bool();
    }
  }
  if (fields.failed()) return false;
  if (Status status = infer::validate(s); !status.is_ok()) {
    // The sampler's own check, in case its ranges are narrower than the API's.
    error = ApiError::invalid("", status.message());
    return false;
  }
  out.body = std::move(parsed.as_object());  // moved, not copied: only an upstream reads it
  return true;
}

std::string error_body(const ApiError& error) {
  json::object e;
  e["message"] = error.message;
  e["type"] = error.type;
  e["param"] = error.param.empty() ? json::value(nullptr) : json::value(error.param);
  e["code"] = error.code.empty() ? json::value(nullptr) : json::value(error.code);
  return json::serialize(json::object{{"error", std::move(e)}});
}

ApiError api_error(const Status& status) {
  ApiError e;
  e.message = status.message();
  switch (status.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kPayloadTooLarge:
      e.status = status.code() == ErrorCode::kPayloadTooLarge ? 413 : 400;
      break;
    case ErrorCode::kUnauthenticated:
      e = {401, "authentication_error", status.message(), "", "invalid_api_key"};
      break;
    case ErrorCode::kPermissionDenied:
      e = {403, "permission_error", status.message(), "", ""};
      break;
    case ErrorCode::kNotFound:
      e = {404, "invalid_request_error", status.message(), "", "not_found"};
      break;
    case ErrorCode::kInsufficientFunds:
      e = {402, "insufficient_quota", status.message(), "", "insufficient_funds"};
      break;
    case ErrorCode::kRateLimited:
    case ErrorCode::kQuotaExceeded:
      e = {429, "rate_limit_error", status.message(), "", "rate_limit_exceeded"};
      break;
    case ErrorCode::kUnavailable:
      e = {503, "server_error", status.message(), "", "overloaded"};
      break;
    case ErrorCode::kMethodNotAllowed:
      e = {405, "invalid_request_error", status.message(), "", ""};
      break;
    default:
      e = {500, "server_error", status.message(), "", ""};
      break;
  }
  return e;
}

}  // namespace headroom::gateway
