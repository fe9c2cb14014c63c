// Issue 5, Benchmark: the built-in engine's inference speed beside this
// machine's memory bandwidth and beside llama2.c, in one run.
//
//   infer_bench [--quick] [--types LIST] [--runs N] [--threads N] [--stories PATH] [--tmp DIR]
//
// Models: the real stories260K (F32; --stories, default
// models/stories260K.gguf, the repository's copy of ../shared's), and a
// generated llama of stories110M's shape (dim 768, 12 layers, 12 heads,
// hidden 2048, vocab 32000, output tied to the embedding: 110M parameters)
// in F32, Q8_0 and Q4_0, written at run time by random_llama (deterministic
// random weights) into a temporary directory that is removed at exit.
//
// Per model and thread count (all cores; stories260K also 1 thread):
//   decode   single-stream tokens/s: from BOS, `decode` greedy steps (one
//            forward() and an argmax each) on a fresh cache; the median of
//            --runs timed runs after one warm-up run.
//   bound    the bandwidth bound on decode: the streaming-read bandwidth at
//            the same thread count / the weight bytes one decode step reads
//            (every matrix, the output matrix included, one embedding row,
//            the norms; the KV cache, a few MB at most here, is not counted).
//            The bandwidth is measured again right before each decode run
//            (it moves with the neighbours' load on a shared machine), and
//            "of bound" is the median over the runs of decode / that run's
//            bound; "bw GB/s" the median bandwidth. stories260K (1 MB) lives
//            in the caches, so its bound means nothing and is not printed.
//   prefill  tokens/s of one batched forward() over a `prompt`-token prompt
//            on a fresh cache; the median of --runs.
// Beside them, in the same run: the memory bandwidth (bench/bandwidth.h),
// and llama2.c's run.c (bench/llama2c_run.h, one thread, the same compiler
// flags, stories260K's weights) decoding the same 256 greedy steps, checked
// to choose the same tokens, timed in turns with the engine's 1-thread
// decode (2 * runs + 1 pairs; the goal takes the median of their ratios).
// Aggregate, through the continuous-batching engine (infer/engine): N = 1,
// 4, 16, 64 requests submitted at once, each a 17-token prompt then a fixed
// number of greedy tokens past any end of sequence (ignore_eos); aggregate
// = all generated tokens / wall time from the first submit to the last
// finish (prompt reading included); the median of 3 runs after a warm-up.
//
// The goals, each printed as met or not met:
//   110M Q8_0 single-stream decode >= 70% of the bandwidth bound;
//   stories260K single-stream on one thread >= 3x llama2.c on one thread;
//   aggregate at 16 sequences >= 4x single-stream (the engine's own figure
//   at 1 sequence, measured the same way), per model.
// INFER_BENCH_VERBOSE=1 prints every run's figure (to stderr).
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "bandwidth.h"
#include "infer/engine/engine.h"
#include "infer/gguf/gguf_file.h"
#include "infer/gguf/random_llama.h"
#include "infer/kernels/kernels.h"
#include "infer/kernels/thread_pool.h"
#include "infer/model/kv_cache.h"
#include "infer/model/llama_model.h"
#include "llama2c_run.h"

namespace {

using namespace headroom::infer;
using headroom::bench::seconds_since;
using Clock = std::chrono::steady_clock;

constexpr std::int32_t kBos = 1;  // stories260K's and random_llama's <s>

struct Options {
  bool quick = false;
  // The 110M model's types to measure (--types f32,q8_0,q4_0; "none" for
  // stories260K alone, e.g. to profile it).
  std::string types = "f32,q8_0,q4_0";
  int runs = 5;
  std::size_t threads = std::max(1u, std::thread::hardware_concurrency());
  std::string stories_path = std::string(HEADROOM_SOURCE_DIR) + "/models/stories260K.gguf";
  std::string tmp_root = std::filesystem::temp_directory_path().string();
  // Greedy steps per decode run: stories260K's as llama2.c's run.c default
  // (-n 256); the 110M model's fewer, each step streaming 60-440 MB.
  std::size_t small_decode_tokens = 256;
  std::size_t large_decode_tokens = 128;
  std::size_t prompt_tokens = 128;
  // Aggregate: each sequence's prompt, and the tokens it generates.
  std::size_t aggregate_prompt_tokens = 17;  // BOS and 16 tokens
  std::size_t small_generated_tokens = 128;
  std::size_t large_generated_tokens = 64;
  int aggregate_runs = 3;  // each a few seconds at 64 sequences of the f32 110M model
  std::size_t bandwidth_mib = 1024;
  double bandwidth_seconds = 0.5;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

// ---- Models -----------------------------------------------------------------

struct Model {
  std::string name;  // "stories260K", "110M"
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<LlamaModel> model;
  std::string type;                   // of the matrices
  std::uint64_t params = 0;           // values of every tensor (a tied output counted once)
  std::uint64_t bytes_per_token = 0;  // weight bytes one decode step reads
};

std::optional<Model> load_model(std::string name, const std::string& path) {
  auto file = GgufFile::open(path);
  if (!file.is_ok()) {
    std::fprintf(stderr, "infer_bench: %s\n", file.status().to_string().c_str());
    return std::nullopt;
  }
  Model m;
  m.name = std::move(name);
  m.file = std::move(file.value());
  auto model = LlamaModel::load(*m.file);
  if (!model.is_ok()) {
    std::fprintf(stderr, "infer_bench: %s\n", model.status().to_string().c_str());
    return std::nullopt;
  }
  m.model = std::move(model.value());
  const bool tied = m.model->config().tied_output;
  for (const TensorView& t : m.file->tensors()) {
    m.params += t.elements();
    // A separate embedding is read a row a token; a tied one is the output
    // matrix too, read whole.
    m.bytes_per_token += t.name == "token_embd.weight" && !tied ? t.row_bytes() : t.bytes;
    if (t.name == "blk.0.attn_q.weight") m.type = std::string(tensor_type_name(t.type));
  }
  return m;
}

// stories110M's shape, in `type`; tied output (110M parameters, as llama2.c's).
RandomLlamaOptions llama_110m(TensorType type) {
  RandomLlamaOptions o;
  o.vocab_size = 32000;
  o.dim = 768;
  o.hidden_dim = 2048;
  o.n_layers = 12;
  o.n_heads = 12;
  o.n_kv_heads = 12;
  o.context_length = 1024;
  o.weight_type = type;
  o.output = OutputWeights::kTied;
  o.seed = 110;
  o.name = "headroom-bench-110M";
  return o;
}

// ---- Measurements -------------------------------------------------------------

std::int32_t argmax(const std::vector<float>& logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Seconds for `steps` greedy decode steps from BOS on a fresh cache; the
// tokens chosen go to `tokens` when given.
double decode_seconds(const LlamaModel& model, ThreadPool* pool, std::size_t steps,
                      std::vector<std::int32_t>* tokens = nullptr) {
  KvCache cache = model.new_cache(steps + 1);
  std::vector<float> logits(model.config().vocab);
  std::int32_t token = kBos;
  const auto start = Clock::now();
  for (std::size_t pos = 0; pos < steps; ++pos) {
    if (!model.forward(token, pos, cache, logits, pool).is_ok()) std::abort();
    token = argmax(logits);
    if (tokens != nullptr) tokens->push_back(token);
  }
  return seconds_since(start);
}

// A deterministic prompt of normal tokens (past the 259 special and byte tokens).
std::vector<std::int32_t> prompt_of(std::size_t n, std::size_t vocab) {
  std::vector<std::int32_t> prompt(n);
  prompt[0] = kBos;
  for (std::size_t i = 1; i < n; ++i) prompt[i] = static_cast<std::int32_t>(259 + (i * 7919) % (vocab - 259));
  return prompt;
}

double prefill_seconds(const LlamaModel& model, ThreadPool* pool, const std::vector<std::int32_t>& prompt) {
  KvCache cache = model.new_cache(prompt.size());
  std::vector<float> logits(model.config().vocab);
  const auto start = Clock::now();
  if (!model.forward(prompt, 0, cache, logits, pool).is_ok()) std::abort();
  return seconds_since(start);
}

struct Row {
  std::string model, type;
  std::size_t threads = 0;
  double decode_tps = 0, decode_spread = 0;  // median, and (max - min) / median of the runs
  // Memory-bound models only (0 otherwise: stories260K lives in the caches):
  double bandwidth_gbps = 0;  // median of the measurements taken beside the decode runs
  double bound_fraction = 0;  // median over the runs of decode / (bandwidth just before it / bytes per token)
  double bound_tps = 0;       // bandwidth_gbps / bytes per token
  double prefill_tps = 0;
};

// Median of `runs` measurements of tokens / seconds, after one warm-up
// (which maps the weights' pages in and sizes the scratch).
template <typename Measure>
std::pair<double, double> median_rate(int runs, std::size_t tokens, Measure measure) {
  measure();
  std::vector<double> rates;
  for (int r = 0; r < runs; ++r) rates.push_back(static_cast<double>(tokens) / measure());
  if (std::getenv("INFER_BENCH_VERBOSE") != nullptr) {
    for (double rate : rates) std::fprintf(stderr, " %.1f", rate);
    std::fprintf(stderr, " tok/s\n");
  }
  const double mid = median(rates);
  return {mid, (*std::max_element(rates.begin(), rates.end()) - *std::min_element(rates.begin(), rates.end())) / mid};
}

// Single-stream decode and prefill. With `bandwidth` (a buffer to read;
// null for a model that fits the caches), each decode run follows a
// measurement of the bandwidth on the same threads, and the run's fraction
// of the bound is taken against that measurement: this machine's bandwidth
// moves with its neighbours' load, and a bound measured minutes apart
// would compare the decode with another machine.
Row measure(const Model& m, std::size_t threads, ThreadPool* pool, const Options& o, std::size_t decode_tokens,
            const headroom::bench::Buffer* bandwidth) {
  Row row{.model = m.name, .type = m.type, .threads = threads};
  decode_seconds(*m.model, pool, decode_tokens);  // warm-up: maps the weights' pages in
  std::vector<double> rates, gbps, fractions;
  for (int r = 0; r < o.runs; ++r) {
    if (bandwidth != nullptr) gbps.push_back(headroom::bench::measure_bandwidth(*bandwidth, pool, 0).bound_gbps());
    rates.push_back(static_cast<double>(decode_tokens) / decode_seconds(*m.model, pool, decode_tokens));
    if (bandwidth != nullptr) fractions.push_back(rates.back() / (gbps.back() * 1e9 / m.bytes_per_token));
  }
  if (std::getenv("INFER_BENCH_VERBOSE") != nullptr) {
    for (std::size_t r = 0; r < rates.size(); ++r) {
      std::fprintf(stderr, " %.1f tok/s", rates[r]);
      if (bandwidth != nullptr) std::fprintf(stderr, " (%.1f GB/s, %.0f%%)", gbps[r], 100 * fractions[r]);
    }
    std::fprintf(stderr, "  decode\n");
  }
  row.decode_tps = median(rates);
  row.decode_spread =
      (*std::max_element(rates.begin(), rates.end()) - *std::min_element(rates.begin(), rates.end())) / row.decode_tps;
  if (bandwidth != nullptr) {
    row.bandwidth_gbps = median(gbps);
    row.bound_fraction = median(fractions);
    row.bound_tps = row.bandwidth_gbps * 1e9 / static_cast<double>(m.bytes_per_token);
  }
  const std::vector<std::int32_t> prompt = prompt_of(o.prompt_tokens, m.model->config().vocab);
  row.prefill_tps = median_rate(o.runs, prompt.size(), [&] { return prefill_seconds(*m.model, pool, prompt); }).first;
  return row;
}

// ---- llama2.c ---------------------------------------------------------------------

// A tensor's values as floats, whatever its type.
std::vector<float> dequantize(const TensorView& t) {
  std::vector<float> out(t.elements());
  headroom::infer::dequantize(t.type, t.data, out.size(), out.data());
  return out;
}

struct Llama2c {
  headroom::bench::llama2c::Config config;
  headroom::bench::llama2c::TransformerWeights weights;
};

// run.c's weights from a GGUF llama: per-layer tensors concatenated in
// layer order, as run.c's checkpoint lays them out.
Llama2c llama2c_weights(const GgufFile& file, const LlamaConfig& c, std::size_t seq_len) {
  Llama2c out;
  out.config = {.dim = static_cast<int>(c.dim),
                .hidden_dim = static_cast<int>(c.hidden_dim),
                .n_layers = static_cast<int>(c.n_layers),
                .n_heads = static_cast<int>(c.n_heads),
                .n_kv_heads = static_cast<int>(c.n_kv_heads),
                .vocab_size = static_cast<int>(c.vocab),
                .seq_len = static_cast<int>(seq_len),
                .rope_base = c.rope_base};
  const auto get = [&](const std::string& name) { return dequantize(file.tensor(name).value()); };
  const auto append = [](std::vector<float>& to, const std::vector<float>& from) {
    to.insert(to.end(), from.begin(), from.end());
  };
  auto& w = out.weights;
  w.token_embedding_table = get("token_embd.weight");
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    append(w.rms_att_weight, get(p + "attn_norm.weight"));
    append(w.rms_ffn_weight, get(p + "ffn_norm.weight"));
    append(w.wq, get(p + "attn_q.weight"));
    append(w.wk, get(p + "attn_k.weight"));
    append(w.wv, get(p + "attn_v.weight"));
    append(w.wo, get(p + "attn_output.weight"));
    append(w.w1, get(p + "ffn_gate.weight"));
    append(w.w2, get(p + "ffn_down.weight"));
    append(w.w3, get(p + "ffn_up.weight"));
  }
  w.rms_final_weight = get("output_norm.weight");
  w.wcls = c.tied_output ? w.token_embedding_table : get("output.weight");
  return out;
}

// Seconds for `steps` greedy steps from BOS, as run.c's generate() loop
// with temperature 0 (forward, then argmax).
double llama2c_decode_seconds(const Llama2c& m, std::size_t steps, std::vector<std::int32_t>* tokens = nullptr) {
  namespace l2 = headroom::bench::llama2c;
  l2::RunState state;
  l2::malloc_run_state(&state, &m.config);
  int token = kBos;
  const auto start = Clock::now();
  for (std::size_t pos = 0; pos < steps; ++pos) {
    const float* logits = l2::forward(&m.config, &m.weights, &state, token, static_cast<int>(pos));
    token = l2::sample_argmax(logits, m.config.vocab_size);
    if (tokens != nullptr) tokens->push_back(token);
  }
  return seconds_since(start);
}

// ---- Aggregate, through the continuous-batching engine -----------------------------

constexpr std::size_t kConcurrencies[] = {1, 4, 16, 64};

struct AggregateRow {
  std::string model, type;
  double tps[std::size(kConcurrencies)] = {};  // generated tokens / wall second, by concurrency
};

// Seconds for `n` requests submitted at once, each `prompt_tokens` of
// prompt (a different one each) then `generated` greedy tokens past any
// end-of-sequence, until the last finishes.
double aggregate_seconds(Engine& engine, std::size_t n, std::size_t prompt_tokens, std::size_t generated) {
  std::mutex mutex;
  std::condition_variable finished_cv;
  std::size_t finished = 0;
  bool failed = false;
  const std::size_t vocab = engine.config().vocab;
  const auto start = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    GenerationRequest request;
    request.prompt = prompt_of(prompt_tokens, vocab);
    for (std::size_t t = 1; t < request.prompt.size(); ++t) {
      request.prompt[t] = static_cast<std::int32_t>(259 + (request.prompt[t] - 259 + i * 104729) % (vocab - 259));
    }
    request.sampling.temperature = 0.0f;
    request.sampling.max_tokens = static_cast<std::int32_t>(generated);
    request.seed = i;
    request.ignore_eos = true;
    request.on_finish = [&](const GenerationResult& result) {
      std::lock_guard lock(mutex);
      failed |= !result.error.is_ok() || result.completion_tokens != generated;
      ++finished;
      finished_cv.notify_one();
    };
    if (auto id = engine.submit(std::move(request)); !id.is_ok()) {
      std::fprintf(stderr, "infer_bench: submit: %s\n", id.status().to_string().c_str());
      std::abort();
    }
  }
  std::unique_lock lock(mutex);
  finished_cv.wait(lock, [&] { return finished == n; });
  const double seconds = seconds_since(start);
  if (failed) {
    std::fprintf(stderr, "infer_bench: a request failed or stopped short of %zu tokens\n", generated);
    std::abort();
  }
  return seconds;
}

AggregateRow measure_aggregate(const Model& m, const std::string& path, const Options& o, std::size_t generated) {
  AggregateRow row{.model = m.name, .type = m.type};
  // Room for every sequence's prompt and tokens at the largest concurrency,
  // so that nothing waits for the cache or is preempted.
  const std::size_t pages_per_sequence = (o.aggregate_prompt_tokens + generated) / kKvPageTokens + 2;
  EngineOptions options;
  options.threads = o.threads;
  options.max_running = kConcurrencies[std::size(kConcurrencies) - 1];
  options.kv_cache_bytes = KvPool::page_bytes(m.model->config()) * pages_per_sequence * options.max_running;
  auto engine = Engine::open(path, options);
  if (!engine.is_ok()) {
    std::fprintf(stderr, "infer_bench: %s\n", engine.status().to_string().c_str());
    std::abort();
  }
  for (std::size_t c = 0; c < std::size(kConcurrencies); ++c) {
    const std::size_t n = kConcurrencies[c];
    row.tps[c] = median_rate(std::min(o.runs, o.aggregate_runs), n * generated, [&] {
                   return aggregate_seconds(*engine.value(), n, o.aggregate_prompt_tokens, generated);
                 }).first;
  }
  return row;
}

// ---- Output -------------------------------------------------------------------------

void print_goal(const char* goal, double achieved, double target, const char* unit) {
  std::printf("  %-62s %7.2f%s (goal %.2f%s)  %s\n", goal, achieved, unit, target, unit,
              achieved >= target ? "MET" : "NOT MET");
}

int usage() {
  std::fprintf(stderr,
               "usage: infer_bench [--quick] [--types LIST] [--runs N] [--threads N] [--stories PATH] [--tmp DIR]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const bool has_value = i + 1 < argc;
    if (flag == "--quick") {
      o.quick = true;
    } else if (flag == "--types" && has_value) {
      o.types = argv[++i];
    } else if (flag == "--runs" && has_value) {
      o.runs = std::max(1, std::atoi(argv[++i]));
    } else if (flag == "--threads" && has_value) {
      o.threads = std::max(1, std::atoi(argv[++i]));
    } else if (flag == "--stories" && has_value) {
      o.stories_path = argv[++i];
    } else if (flag == "--tmp" && has_value) {
      o.tmp_root = argv[++i];
    } else {
      return usage();
    }
  }
  if (o.quick) {
    // A look in about a tenth of the time: fewer runs and steps, less bandwidth buffer.
    o.runs = std::min(o.runs, 3);
    o.large_decode_tokens = 32;
    o.prompt_tokens = 64;
    o.small_generated_tokens = 32;
    o.large_generated_tokens = 16;
    o.aggregate_runs = 1;
    o.bandwidth_mib = 512;
    o.bandwidth_seconds = 0.2;
  }
  const Kernels& kernels = Kernels::best();
  std::printf("infer_bench: %s, %u hardware threads, kernels %s; medians of %d runs%s\n", cpu_name().c_str(),
              std::thread::hardware_concurrency(), std::string(isa_name(kernels.isa())).c_str(), o.runs,
              o.quick ? " (--quick)" : "");

  ThreadPool pool({.threads = o.threads});
  ThreadPool* all_cores = o.threads > 1 ? &pool : nullptr;

  // The streaming-read bandwidth on 1 thread and on all, before and after
  // the models, for the record: this machine's bandwidth moves with its
  // neighbours' load, so the bound of each decode run is measured right
  // before it, on the same buffer (measure()).
  headroom::bench::Buffer buffer(o.bandwidth_mib << 20);
  const auto measure_bandwidth = [&] {
    const headroom::bench::Bandwidth one = headroom::bench::measure_bandwidth(buffer, nullptr, o.bandwidth_seconds);
    const headroom::bench::Bandwidth all =
        o.threads > 1 ? headroom::bench::measure_bandwidth(buffer, all_cores, o.bandwidth_seconds) : one;
    return std::pair(one.bound_gbps(), all.bound_gbps());
  };
  const auto [bw1_before, bw_all_before] = measure_bandwidth();

  std::vector<Row> rows;
  std::optional<Model> stories = load_model("stories260K", o.stories_path);
  if (!stories) return 1;
  std::printf("\nMeasuring stories260K...\n");
  std::fflush(stdout);
  rows.push_back(measure(*stories, 1, nullptr, o, o.small_decode_tokens, nullptr));
  if (o.threads > 1) rows.push_back(measure(*stories, o.threads, all_cores, o, o.small_decode_tokens, nullptr));
  std::vector<AggregateRow> aggregates;
  aggregates.push_back(measure_aggregate(*stories, o.stories_path, o, o.small_generated_tokens));

  // llama2.c on the same weights, one thread, the same steps; checked to
  // choose the same greedy tokens as the engine. The two are timed in
  // turns, run by run, and the goal takes the median of the runs' ratios:
  // on a shared machine a burst of other work then slows both sides of a
  // ratio, not one.
  const Llama2c l2 = llama2c_weights(*stories->file, stories->model->config(), o.small_decode_tokens);
  std::vector<std::int32_t> l2_tokens, our_tokens;
  llama2c_decode_seconds(l2, o.small_decode_tokens, &l2_tokens);
  decode_seconds(*stories->model, nullptr, o.small_decode_tokens, &our_tokens);
  std::size_t same = 0;
  while (same < l2_tokens.size() && l2_tokens[same] == our_tokens[same]) ++same;
  std::vector<double> l2_rates, our_rates, ratios;
  const auto steps = static_cast<double>(o.small_decode_tokens);
  for (int r = 0; r < 2 * o.runs + 1; ++r) {
    const double ours = decode_seconds(*stories->model, nullptr, o.small_decode_tokens);
    const double theirs = llama2c_decode_seconds(l2, o.small_decode_tokens);
    our_rates.push_back(steps / ours);
    l2_rates.push_back(steps / theirs);
    ratios.push_back(theirs / ours);
  }
  const double l2_tps = median(l2_rates), stories_one_thread = median(our_rates), l2_ratio = median(ratios);

  // The 110M model in each type, generated now (deterministic), one at a
  // time so that only one is on disk and mapped.
  const std::filesystem::path dir =
      std::filesystem::path(o.tmp_root) / ("headroom-infer-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (TensorType type : {TensorType::kF32, TensorType::kQ8_0, TensorType::kQ4_0}) {
    if (("," + o.types + ",").find("," + std::string(tensor_type_name(type)) + ",") == std::string::npos) continue;
    const std::string path = (dir / ("llama-110M-" + std::string(tensor_type_name(type)) + ".gguf")).string();
    std::printf("Generating and measuring the 110M model in %s...\n", std::string(tensor_type_name(type)).c_str());
    std::fflush(stdout);
    if (const auto status = write_random_llama(llama_110m(type), path); !status.is_ok()) {
      std::fprintf(stderr, "infer_bench: %s\n", status.to_string().c_str());
      return 1;
    }
    {
      std::optional<Model> m = load_model("110M", path);
      if (!m) return 1;
      rows.push_back(measure(*m, o.threads, all_cores, o, o.large_decode_tokens, &buffer));
      aggregates.push_back(measure_aggregate(*m, path, o, o.large_generated_tokens));
      std::printf("  %s: %.0fM parameters, %.1f MB of weights read per token\n", m->type.c_str(),
                  static_cast<double>(m->params) / 1e6, static_cast<double>(m->bytes_per_token) / 1e6);
    }
    std::filesystem::remove(path);
  }
  std::filesystem::remove_all(dir);

  const auto [bw1_after, bw_all_after] = measure_bandwidth();
  std::printf(
      "\nMemory bandwidth, streaming read of %zu MiB (best pass of 1 and 4 streams a thread), GB/s, "
      "before and after the models:\n",
      o.bandwidth_mib);
  std::printf("  1 thread:   %6.1f %6.1f\n", bw1_before, bw1_after);
  std::printf("  %zu threads: %6.1f %6.1f\n", o.threads, bw_all_before, bw_all_after);

  std::printf(
      "\nSingle stream (decode: %zu greedy steps from BOS for stories260K, %zu for 110M; prefill: one "
      "batch of %zu tokens)\n",
      o.small_decode_tokens, o.large_decode_tokens, o.prompt_tokens);
  std::printf("  %-12s %-5s %7s | %12s %7s | %8s %12s %8s | %13s\n", "model", "type", "threads", "decode tok/s",
              "spread", "bw GB/s", "bound tok/s", "of bound", "prefill tok/s");
  double q8_fraction = 0;
  for (const Row& r : rows) {
    char bw[32] = "-", bound[32] = "-", of[32] = "-";
    if (r.bound_tps > 0) {
      std::snprintf(bw, sizeof bw, "%.1f", r.bandwidth_gbps);
      std::snprintf(bound, sizeof bound, "%.1f", r.bound_tps);
      std::snprintf(of, sizeof of, "%.0f%%", 100 * r.bound_fraction);
      if (r.type == "q8_0") q8_fraction = r.bound_fraction;
    }
    std::printf("  %-12s %-5s %7zu | %12.1f %6.0f%% | %8s %12s %8s | %13.1f\n", r.model.c_str(), r.type.c_str(),
                r.threads, r.decode_tps, 100 * r.decode_spread, bw, bound, of, r.prefill_tps);
  }
  std::printf(
      "  llama2.c (run.c, same weights and flags) beside the engine, stories260K, 1 thread, in turns, "
      "medians of %d runs:\n    llama2.c %.1f tok/s, engine %.1f tok/s, median ratio %.2fx\n",
      2 * o.runs + 1, l2_tps, stories_one_thread, l2_ratio);
  std::printf("  greedy tokens: llama2.c and the engine agree on %zu of %zu%s\n", same, l2_tokens.size(),
              same == l2_tokens.size() ? "" : "  (MISMATCH)");

  std::printf(
      "\nAggregate through the engine, %zu threads: N sequences at once, each a %zu-token prompt then %zu "
      "(stories260K) or %zu (110M) greedy tokens past any end of sequence; generated tokens / wall time\n",
      o.threads, o.aggregate_prompt_tokens, o.small_generated_tokens, o.large_generated_tokens);
  std::printf("  %-12s %-5s |", "model", "type");
  for (std::size_t n : kConcurrencies) std::printf(" %9zu seq", n);
  std::printf(" | %9s\n", "16 vs 1");
  for (const AggregateRow& a : aggregates) {
    std::printf("  %-12s %-5s |", a.model.c_str(), a.type.c_str());
    for (double tps : a.tps) std::printf(" %13.1f", tps);
    std::printf(" | %8.2fx\n", a.tps[2] / a.tps[0]);
  }

  std::printf("\nGoals (issue 5):\n");
  if (q8_fraction > 0) {
    print_goal("110M q8_0 single-stream decode, fraction of the bandwidth bound", 100 * q8_fraction, 70, "%");
  }
  print_goal("stories260K single-stream decode on 1 thread / llama2.c on 1 thread", l2_ratio, 3, "x");
  for (const AggregateRow& a : aggregates) {
    const std::string goal = "aggregate at 16 sequences / at 1, " + a.model + " " + a.type;
    print_goal(goal.c_str(), a.tps[2] / a.tps[0], 4, "x");
  }
  return same == l2_tokens.size() ? 0 : 1;
}
