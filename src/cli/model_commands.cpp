#include "cli/model_commands.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <optional>
#include <ostream>

#include "cli/api_command.h"
#include "net/sse_reader.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;
using Env = std::shared_ptr<const ClientEnvironment>;

const std::vector<Column> kModelColumns = {{"ID", "id"}, {"OWNED BY", "owned_by"}, {"CREATED", "created"}};

struct ChatArgs {
  std::string model;
  std::string prompt;
  std::string system;
  std::optional<std::int32_t> max_tokens;
  std::optional<double> temperature;
};

// Streams one chat completion: the text to stdout as it comes, the usage to
// stderr at the end.
int run_chat(const ChatArgs& args, const ClientFlags& flags, const ClientEnvironment& env) {
  std::unique_ptr<ApiSession> session;
  if (ExitCode code = ApiSession::open(flags, Auth::kRequired, env, session); code != ExitCode::kOk) {
    return static_cast<int>(code);
  }
  json::array messages;
  if (!args.system.empty()) messages.push_back(json::object{{"role", "system"}, {"content", args.system}});
  messages.push_back(json::object{{"role", "user"}, {"content", args.prompt}});
  json::object body{{"model", args.model},
                    {"messages", std::move(messages)},
                    {"stream", true},
                    {"stream_options", json::object{{"include_usage", true}}}};
  if (args.max_tokens) body["max_tokens"] = *args.max_tokens;
  if (args.temperature) body["temperature"] = *args.temperature;

  std::ostream& out = *env.out;
  net::SseReader reader;
  std::string failure;  // an error the server sent inside the stream
  json::value usage;
  auto on_data = [&](std::string_view data) {
    if (data == "[DONE]") return;
    boost::system::error_code ec;
    const json::value event = json::parse(data, ec);
    if (ec || !event.is_object()) return;
    const json::object& o = event.as_object();
    if (const json::value* error = o.if_contains("error"); error != nullptr && error->is_object()) {
      if (const json::value* m = error->as_object().if_contains("message"); m && m->is_string()) {
        failure = m->as_string();
      }
      return;
    }
    if (const json::value* u = o.if_contains("usage"); u != nullptr && u->is_object()) usage = *u;
    const json::value* choices = o.if_contains("choices");
    if (choices == nullptr || !choices->is_array()) return;
    for (const json::value& choice : choices->as_array()) {
      const json::value* content = choice.is_object() ? choice.as_object().if_contains("delta") : nullptr;
      content = content != nullptr && content->is_object() ? content->as_object().if_contains("content") : nullptr;
      if (content != nullptr && content->is_string()) out << std::string_view(content->as_string()) << std::flush;
    }
  };
  std::optional<ApiError> error = session->post_stream("/v1/chat/completions", json::serialize(body),
                                                       [&](std::string_view chunk) {
                                                         reader.feed(chunk, on_data);
                                                         return true;
                                                       });
  if (error) {
    error->print(*env.err);
    return static_cast<int>(error->exit_code);
  }
  out << '\n' << std::flush;
  if (!failure.empty()) {
    *env.err << "error: " << failure << '\n';
    return static_cast<int>(ExitCode::kServerError);
  }
  if (usage.is_object()) {
    const json::object& u = usage.as_object();
    *env.err << "tokens: " << json::serialize(u.at("prompt_tokens")) << " prompt, "
             << json::serialize(u.at("completion_tokens")) << " completion\n";
  }
  return 0;
}

}  // namespace

void add_model_commands(CLI::App& app, int& exit_code, const Env& env) {
  CLI::App* models = add_command_group(app, "models", "The hosted models you may call", "headroom models list");
  add_api_command(*models,
                  {.name = "list",
                   .description = "List the hosted models",
                   .example = "headroom models list",
                   .make_call = []() -> Result<ApiCall> { return ApiCall{"GET", "/v1/models", std::nullopt}; },
                   .shape = Shape::kList,
                   .columns = kModelColumns},
                  exit_code, env);
  auto show_id = std::make_shared<std::string>();
  add_api_command(*models,
                  {.name = "show",
                   .description = "Show one hosted model",
                   .example = "headroom models show stories260K",
                   .add_arguments = [show_id](CLI::App& command) {
                     command.add_option("id", *show_id, "Model id")->required();
                   },
                   .make_call = [show_id]() -> Result<ApiCall> {
                     return ApiCall{"GET", "/v1/models/" + encode_path_segment(*show_id), std::nullopt};
                   },
                   .shape = Shape::kRecord,
                   .columns = kModelColumns},
                  exit_code, env);

  auto chat = std::make_shared<ChatArgs>();
  add_custom_command(
      app,
      {.name = "chat",
       .description = "Ask a hosted model, and print its answer as it is written",
       .example = "headroom chat stories260K \"Tell me a story about a cat\"",
       .add_arguments =
           [chat](CLI::App& command) {
             command.add_option("model", chat->model, "Model id (see `headroom models list`)")->required();
             command.add_option("prompt", chat->prompt, "What to ask")->required();
             command.add_option("--system", chat->system, "A system message before the prompt");
             command.add_option("--max-tokens", chat->max_tokens, "Most tokens to generate")
                 ->check(CLI::Range(1, 131072));
             command.add_option("--temperature", chat->temperature, "0 is greedy; [0, 2]")->check(CLI::Range(0.0, 2.0));
           },
       .run = [chat](const ClientFlags& flags, const ClientEnvironment& client) {
         return run_chat(*chat, flags, client);
       }},
      exit_code, env);
}

}  // namespace headroom::cli
