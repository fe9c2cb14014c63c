#include "cli/generate_command.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <future>
#include <ostream>
#include <random>


#include "cli/api_command.h"
#include "infer/engine/engine.h"

namespace headroom::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

namespace {

infer::SamplingParams sampling_params(const GenerateOptions& options) {
  infer::SamplingParams params;
  params.temperature = options.temperature;
  params.max_tokens = options.max_tokens;
  return params;
}

}  // namespace

Status validate(const GenerateOptions& options) {
  if (Status status = infer::validate(sampling_params(options)); !status.is_ok()) {
    return Status::invalid_argument("--" + status.message());
  }
  if (options.threads > kGenerateMaxThreads) {
    return Status::invalid_argument("--threads must be at most " + std::to_string(kGenerateMaxThreads));
  }
  return Status::ok();
}

Result<GenerateStats> generate(const GenerateOptions& options, std::ostream& out) {
  HR_RETURN_IF_ERROR(validate(options));
  // One sequence: a cache for the model's whole context (at most 2 GiB).
  HR_ASSIGN_OR_RETURN(std::unique_ptr<infer::Engine> engine,
                      infer::Engine::open(options.model_path, {.threads = options.threads,
                                                               .kv_cache_bytes = std::size_t{2} << 30,
                                                               .max_step_tokens = infer::kMaxBatchTokens,
                                                               .max_running = 1,
                                                               .max_waiting = 1}));
  infer::GenerationRequest request;
  HR_ASSIGN_OR_RETURN(request.prompt, engine->tokenizer().encode(options.prompt, infer::AddSpecial::kYes,
                                                                 infer::ParseSpecial::kNo));
  if (request.prompt.empty()) return Status::invalid_argument("the prompt has no tokens (and the model adds no bos)");
  request.sampling = sampling_params(options);
  request.seed = options.seed.has_value() ? *options.seed : std::random_device{}();

  // The callbacks run on the engine's thread while this one waits.
  GenerateStats stats;
  stats.prompt_tokens = request.prompt.size();
  const Clock::time_point start = Clock::now();
  Clock::time_point first_token = start;
  request.on_token = [&](const infer::GeneratedToken& token) {
    if (first_token == start) first_token = Clock::now();
    out << token.text << std::flush;
    return true;
  };
  std::promise<infer::GenerationResult> finished;
  request.on_finish = [&](const infer::GenerationResult& result) {
    if (first_token == start) first_token = Clock::now();
    out << result.text << '\n' << std::flush;
    finished.set_value(result);
  };
  HR_RETURN_IF_ERROR(engine->submit(std::move(request)).status());
  const infer::GenerationResult result = finished.get_future().get();
  HR_RETURN_IF_ERROR(result.error);
  // The first token comes with the prompt's step; the rest are decoding.
  stats.prompt_seconds = std::chrono::duration<double>(first_token - start).count();
  stats.generated_tokens = result.completion_tokens;
  stats.generate_seconds = seconds_since(first_token);
  return stats;
}

void add_generate_command(CLI::App& app, int& exit_code, const std::shared_ptr<const ClientEnvironment>& env) {
  auto options = std::make_shared<GenerateOptions>();
  auto seed = std::make_shared<std::uint64_t>(0);
  CLI::App* command =
      app.add_subcommand("generate", "Generate text with a GGUF llama model on this machine's CPU (no server)");
  command->footer("Example: headroom generate --model stories260K.gguf --prompt \"Once upon a time\" --max-tokens 64");
  command->add_option("--model", options->model_path, "GGUF model file (llama architecture)")->required();
  command->add_option("--prompt", options->prompt, "Text to continue")->required();
  command->add_option("--max-tokens", options->max_tokens, "Most tokens to generate")->capture_default_str();
  command->add_option("--temperature", options->temperature, "0 is greedy; [0, 2]")->capture_default_str();
  CLI::Option* seed_option = command->add_option("--seed", *seed, "Seed of the sampler (default: random)");
  command->add_option("--threads", options->threads, "Threads (default: every core)");
  command->callback([options, seed, seed_option, &exit_code, env]() {
    if (seed_option->count() > 0) options->seed = *seed;
    std::ostream& out = *env->out;
    std::ostream& err = *env->err;
    if (Status status = validate(*options); !status.is_ok()) {
      err << "error: " << status.message() << '\n';
      exit_code = static_cast<int>(ExitCode::kUsage);
      return;
    }
    Result<GenerateStats> stats = generate(*options, out);
    if (!stats.is_ok()) {
      err << "error: " << stats.status().message() << '\n';
      exit_code = static_cast<int>(ExitCode::kServerError);
      return;
    }
    char line[160];
    std::snprintf(line, sizeof line, "prompt: %zu tokens, %.1f tokens/s; generated: %zu tokens, %.1f tokens/s\n",
                  stats->prompt_tokens, stats->prompt_seconds > 0 ? stats->prompt_tokens / stats->prompt_seconds : 0.0,
                  stats->generated_tokens,
                  stats->generate_seconds > 0 ? stats->generated_tokens / stats->generate_seconds : 0.0);
    err << line;
    exit_code = static_cast<int>(ExitCode::kOk);
  });
}

}  // namespace headroom::cli
