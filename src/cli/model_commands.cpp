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
const std::vector<Column> kDeploymentColumns = {{"NAME", "name"},
                                                {"ORIGIN", "origin"},
                                                {"SOURCE", "source"},
                                                {"INPUT $/M", "input_price"},
                                                {"OUTPUT $/M", "output_price"},
                                                {"CONTEXT", "context_tokens"}};

// `headroom deployments create`: the body of POST /v1/deployments.
struct DeployArgs {
  std::string name;
  std::string file;
  std::vector<std::string> upstreams;
  std::string upstream_model;
  std::string upstream_api_key_env;
  std::string input_price, output_price;
  std::optional<std::int64_t> context_tokens, max_running, kv_cache_mb, threads, upstream_workers;

  Result<ApiCall> call() const {
    if (file.empty() == upstreams.empty()) {
      return Status::invalid_argument("give either --file (a GGUF model) or --upstream (base URLs), not both");
    }
    json::object body{{"name", name}, {"input_price", input_price}, {"output_price", output_price}};
    if (!file.empty()) body["file"] = file;
    if (!upstreams.empty()) {
      json::array urls;
      for (const std::string& u : upstreams) urls.emplace_back(u);
      body["upstreams"] = std::move(urls);
    }
    if (!upstream_model.empty()) body["upstream_model"] = upstream_model;
    if (!upstream_api_key_env.empty()) body["upstream_api_key_env"] = upstream_api_key_env;
    for (auto [field, value] : {std::pair{"context_tokens", context_tokens}, std::pair{"max_running", max_running},
                                std::pair{"kv_cache_mb", kv_cache_mb}, std::pair{"threads", threads},
                                std::pair{"upstream_workers", upstream_workers}}) {
      if (value) body[field] = *value;
    }
    return ApiCall{"POST", "/v1/deployments", std::move(body)};
  }
};

void add_deployment_commands(CLI::App& app, int& exit_code, const Env& env) {
  CLI::App* deployments = add_command_group(app, "deployments", "The hosted models' deployments (admin)",
                                            "headroom deployments list");
  add_api_command(*deployments,
                  {.name = "list",
                   .description = "List the deployments: origin, source, prices in force, context",
                   .example = "headroom deployments list",
                   .make_call = []() -> Result<ApiCall> { return ApiCall{"GET", "/v1/deployments", std::nullopt}; },
                   .shape = Shape::kList,
                   .columns = kDeploymentColumns},
                  exit_code, env);
  auto show_name = std::make_shared<std::string>();
  add_api_command(*deployments,
                  {.name = "show",
                   .description = "Show one deployment",
                   .example = "headroom deployments show stories260K",
                   .add_arguments = [show_name](CLI::App& command) {
                     command.add_option("name", *show_name, "Model name")->required();
                   },
                   .make_call = [show_name]() -> Result<ApiCall> {
                     return ApiCall{"GET", "/v1/deployments/" + encode_path_segment(*show_name), std::nullopt};
                   },
                   .shape = Shape::kRecord,
                   .columns = kDeploymentColumns},
                  exit_code, env);
  auto deploy = std::make_shared<DeployArgs>();
  add_api_command(
      *deployments,
      {.name = "create",
       .description = "Deploy a model, served at once and after restarts",
       .example = "headroom deployments create tiny --file /srv/models/tiny.gguf --input-price 0.05 --output-price 0.10",
       .add_arguments =
           [deploy](CLI::App& command) {
             command.add_option("name", deploy->name, "The model's id in the API")->required();
             command.add_option("--file", deploy->file, "A GGUF file on the server, or builtin:stories260K");
             command.add_option("--upstream", deploy->upstreams,
                                "Base URL of an OpenAI-compatible server, one per replica (repeat)");
             command.add_option("--upstream-model", deploy->upstream_model, "The model's name on the upstreams");
             command.add_option("--upstream-api-key-env", deploy->upstream_api_key_env,
                                "The server's environment variable holding the upstreams' key");
             command.add_option("--input-price", deploy->input_price, "Dollars per million input tokens")->required();
             command.add_option("--output-price", deploy->output_price, "Dollars per million output tokens")
                 ->required();
             command.add_option("--context-tokens", deploy->context_tokens, "A sequence's most positions");
             command.add_option("--max-running", deploy->max_running, "Sequences batched together");
             command.add_option("--kv-cache-mb", deploy->kv_cache_mb, "The KV cache's memory");
             command.add_option("--threads", deploy->threads, "Engine threads");
             command.add_option("--upstream-workers", deploy->upstream_workers, "Requests in flight to the upstreams");
           },
       .make_call = [deploy]() { return deploy->call(); },
       .shape = Shape::kRecord,
       .columns = kDeploymentColumns},
      exit_code, env);
  auto delete_name = std::make_shared<std::string>();
  add_api_command(*deployments,
                  {.name = "delete",
                   .description = "Remove a deployment made through the API; requests under way end, metered",
                   .example = "headroom deployments delete tiny",
                   .add_arguments = [delete_name](CLI::App& command) {
                     command.add_option("name", *delete_name, "Model name")->required();
                   },
                   .make_call = [delete_name]() -> Result<ApiCall> {
                     return ApiCall{"DELETE", "/v1/deployments/" + encode_path_segment(*delete_name), std::nullopt};
                   },
                   .shape = Shape::kRecord,
                   .columns = {{"NAME", "name"}, {"DELETED", "deleted"}}},
                  exit_code, env);
}

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
  add_deployment_commands(app, exit_code, env);
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
