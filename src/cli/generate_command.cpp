#include "cli/generate_command.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ostream>
#include <random>
#include <thread>
#include <vector>

#include "cli/api_command.h"
#include "infer/gguf/gguf_file.h"
#include "infer/model/llama_model.h"
#include "infer/sampling/sampler.h"
#include "infer/sampling/sampling_params.h"
#include "infer/tokenizer/detokenizer.h"
#include "infer/tokenizer/gguf_vocabulary.h"
#include "infer/tokenizer/tokenizer.h"

namespace headroom::cli {
namespace {

using infer::TokenId;
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
  const infer::SamplingParams params = sampling_params(options);

  HR_ASSIGN_OR_RETURN(std::unique_ptr<infer::GgufFile> file, infer::GgufFile::open(options.model_path));
  HR_ASSIGN_OR_RETURN(std::unique_ptr<infer::LlamaModel> model, infer::LlamaModel::load(*file));
  HR_ASSIGN_OR_RETURN(infer::Vocabulary vocabulary, infer::vocabulary_from_gguf(*file));
  HR_ASSIGN_OR_RETURN(infer::Tokenizer tokenizer, infer::Tokenizer::create(std::move(vocabulary)));
  HR_ASSIGN_OR_RETURN(std::vector<TokenId> prompt,
                      tokenizer.encode(options.prompt, infer::AddSpecial::kYes, infer::ParseSpecial::kNo));
  if (prompt.empty()) return Status::invalid_argument("the prompt has no tokens (and the model adds no bos)");

  const infer::LlamaConfig& config = model->config();
  const std::size_t context = std::min(config.context_length, infer::kMaxContextTokens);
  if (prompt.size() >= context) {
    return Status::invalid_argument("the prompt is " + std::to_string(prompt.size()) +
                                    " tokens, the model's context " + std::to_string(context));
  }
  const std::size_t max_tokens =
      std::min(static_cast<std::size_t>(options.max_tokens), context - prompt.size());

  std::size_t threads = options.threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  infer::ThreadPool pool({.threads = threads});
  infer::KvCache cache = model->new_cache(prompt.size() + max_tokens);
  std::vector<float> logits(config.vocab);

  GenerateStats stats;
  stats.prompt_tokens = prompt.size();
  const Clock::time_point prompt_start = Clock::now();
  for (std::size_t at = 0; at < prompt.size(); at += infer::kMaxBatchTokens) {
    const std::size_t n = std::min(infer::kMaxBatchTokens, prompt.size() - at);
    HR_RETURN_IF_ERROR(model->forward(std::span(prompt).subspan(at, n), at, cache, logits, &pool));
  }
  stats.prompt_seconds = seconds_since(prompt_start);

  const std::uint64_t seed = options.seed.has_value() ? *options.seed : std::random_device{}();
  infer::Sampler sampler(params, seed);
  infer::Detokenizer detokenizer(tokenizer);
  std::vector<std::int32_t> generated;
  generated.reserve(max_tokens);
  const std::optional<TokenId> eos = tokenizer.eos();
  const Clock::time_point generate_start = Clock::now();
  for (std::size_t i = 0; i < max_tokens; ++i) {
    const infer::Sample sample = sampler.sample(logits, generated);
    generated.push_back(sample.token);
    ++stats.generated_tokens;
    if (eos.has_value() && sample.token == *eos) break;
    out << detokenizer.push(sample.token) << std::flush;
    if (i + 1 == max_tokens) break;
    HR_RETURN_IF_ERROR(model->forward(sample.token, prompt.size() + i, cache, logits, &pool));
  }
  out << detokenizer.finish() << '\n' << std::flush;
  stats.generate_seconds = seconds_since(generate_start);
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
