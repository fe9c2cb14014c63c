// `headroom generate`: runs a GGUF llama model on this machine's CPU with
// the built-in engine (infer/engine/engine.h), no server involved. It loads
// the model, tokenizes the prompt (with bos), submits it as the engine's one
// request, and streams the text to stdout as each token completes a
// character: up to --max-tokens tokens, ending early at the model's eos.
// The prompt's and the generation's tokens per second go to stderr.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"

namespace CLI {
class App;
}

namespace headroom::cli {

struct ClientEnvironment;

inline constexpr std::int32_t kGenerateDefaultMaxTokens = 128;
inline constexpr std::size_t kGenerateMaxThreads = 256;

struct GenerateOptions {
  std::string model_path;
  std::string prompt;
  std::int32_t max_tokens = kGenerateDefaultMaxTokens;
  float temperature = 0.8f;
  std::optional<std::uint64_t> seed;  // absent: one drawn from std::random_device
  std::size_t threads = 0;            // 0: the machine's cores
};

// What a run did, for tests and the stderr summary.
struct GenerateStats {
  std::size_t prompt_tokens = 0;
  std::size_t generated_tokens = 0;
  double prompt_seconds = 0;
  double generate_seconds = 0;
};

// Ok, or invalid_argument naming the first option out of range (as its
// flag: "--temperature must be in [0, 2], got 3").
Status validate(const GenerateOptions& options);

// Runs one generation; the text goes to `out` as it is produced. Errors:
// not_found / invalid_argument for a model file that cannot be opened or
// run, invalid_argument for bad options or a prompt longer than the
// model's context.
Result<GenerateStats> generate(const GenerateOptions& options, std::ostream& out);

// Adds `generate` to `app`; it sets `exit_code` (0, or 2 for a usage error,
// 1 for a model that cannot be loaded or run).
void add_generate_command(CLI::App& app, int& exit_code, const std::shared_ptr<const ClientEnvironment>& env);

}  // namespace headroom::cli
