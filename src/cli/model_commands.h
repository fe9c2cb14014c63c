// Hosted models from the command line: `headroom models list`, `headroom
// models show ID` and `headroom chat MODEL "prompt"`, which streams the
// answer as the model writes it (the OpenAI API's server-sent events); and
// for the operator, `headroom deployments list|show|create|delete`.
#pragma once

#include <memory>

namespace CLI {
class App;
}

namespace headroom::cli {

struct ClientEnvironment;

void add_model_commands(CLI::App& app, int& exit_code, const std::shared_ptr<const ClientEnvironment>& env);

}  // namespace headroom::cli
