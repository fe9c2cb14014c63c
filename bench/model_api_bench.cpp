// Issue 6, end to end on the built-in engine: tokens/s of 16 concurrent
// streaming chat requests through `headroom serve` (auth, limits, holds,
// metering, server-sent events), beside the engine's own figure for the same
// work in the same run. Goal: >= 90% of the engine's.
//
//   model_api_bench HEADROOM_BINARY [--streams N] [--tokens T] [--rounds R] [--threads K]
//     (defaults: 16 streams of 128 generated tokens, 5 rounds, the engine on every core)
//
// The model: a generated llama of about 20M parameters in Q8_0 (random_llama;
// dim 512, 8 layers, hidden 1376, 8 heads, vocab 4096), big enough that the
// engine, not HTTP, is the work. Both sides run the same requests: a
// 68-token prompt (the chat template's rendering of one short user message,
// tokenized by the server, is what the server runs; in-process the same
// token ids are submitted), max_tokens T, greedy. The client shares the
// machine's cores with the server, so it is one thread (see api_round). tokens/s = generated
// tokens / wall time from the first request sent to the last stream's end,
// the median of R rounds each side, alternating.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "infer/engine/engine.h"
#include "infer/gguf/random_llama.h"
#include "net/async_http_client.h"
#include "net/sse_reader.h"
#include "shell.h"

namespace {

using namespace headroom;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string headroom;
  int streams = 16;
  int tokens = 128;
  int rounds = 5;
  int threads = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "model_api_bench: %s\n", message.c_str());
  std::exit(1);
}

// The engine alone: N requests at once, each the prompt then T tokens.
double engine_round(infer::Engine& engine, const std::vector<infer::TokenId>& prompt, const Args& args) {
  std::atomic<int> left{args.streams};
  std::atomic<long> generated{0};
  std::promise<void> done;
  const auto start = Clock::now();
  for (int i = 0; i < args.streams; ++i) {
    infer::GenerationRequest r;
    r.prompt = prompt;
    r.sampling.temperature = 0;
    r.sampling.max_tokens = args.tokens;
    r.tenant = "bench";
    r.on_finish = [&](const infer::GenerationResult& result) {
      generated += static_cast<long>(result.completion_tokens);
      if (--left == 0) done.set_value();
    };
    if (!engine.submit(std::move(r)).is_ok()) die("the engine refused a request");
  }
  done.get_future().wait();
  return generated / std::chrono::duration<double>(Clock::now() - start).count();
}

// Through the server: N streaming chat requests at once, each on its own
// connection, all from one client thread (as wrk drives its connections): a
// thread per stream would wake N times per engine step, and on 2 shared
// cores those wake-ups are taken from the engine being measured. A token per
// content chunk, checked against the usage.
double api_round(const std::string& url, const std::string& key, const Args& args) {
  const std::string body = json::serialize(
      json::object{{"model", "bench"},
                   {"messages", json::array{json::object{{"role", "user"}, {"content", "Tell me a story."}}}},
                   {"max_tokens", args.tokens},
                   {"temperature", 0},
                   {"stream", true},
                   {"stream_options", json::object{{"include_usage", true}}}});
  struct Stream {
    net::SseReader reader;
    long usage = -1;
    int status = 0;
  };
  std::vector<Stream> streams(static_cast<std::size_t>(args.streams));
  std::vector<std::shared_ptr<net::AsyncHttpClient>> clients;  // one connection each
  long generated = 0;
  boost::asio::io_context io;
  const auto start = Clock::now();
  for (Stream& stream : streams) {
    auto client = net::AsyncHttpClient::create(url);
    if (!client.is_ok()) die(client.status().message());
    clients.push_back(*client);
    clients.back()->start(io,
                          {.method = "POST",
                           .target = "/v1/chat/completions",
                           .body = body,
                           .headers = {{"Authorization", "Bearer " + key}},
                           .on_head = [&stream](const net::HttpClientResponse& head) { stream.status = head.status; },
                           .on_chunk =
                               [&stream](std::string_view chunk) {
                                 stream.reader.feed(chunk, [&](std::string_view data) {
                                   if (data == "[DONE]") return;
                                   const json::value event = json::parse(data);
                                   if (const auto* u = event.as_object().if_contains("usage"); u && u->is_object()) {
                                     stream.usage = u->as_object().at("completion_tokens").as_int64();
                                   }
                                 });
                                 return true;
                               },
                           .on_done =
                               [&stream, &generated](const Status& s) {
                                 if (!s.is_ok() || stream.status != 200 || stream.usage < 0) {
                                   die("a stream failed: " + s.message() + " HTTP " + std::to_string(stream.status));
                                 }
                                 generated += stream.usage;
                               }});
  }
  io.run();
  return static_cast<double>(generated) / std::chrono::duration<double>(Clock::now() - start).count();
}

std::string run(const std::string& command) { return bench::shell_output(command); }

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (argc < 2) die("usage: model_api_bench HEADROOM_BINARY [--streams N] [--tokens T] [--rounds R] [--threads K]");
  args.headroom = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--streams")
      args.streams = value;
    else if (flag == "--tokens")
      args.tokens = value;
    else if (flag == "--rounds")
      args.rounds = value;
    else if (flag == "--threads")
      args.threads = value;
    else
      die("unknown flag " + flag);
  }
  const std::string dir = std::filesystem::temp_directory_path() / ("headroom-model-api-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string model = dir + "/bench.gguf";
  infer::RandomLlamaOptions shape;
  shape.vocab_size = 4096;
  shape.dim = 512;
  shape.hidden_dim = 1376;
  shape.n_layers = 8;
  shape.n_heads = 8;
  shape.n_kv_heads = 8;
  shape.context_length = 1024;
  shape.weight_type = infer::TensorType::kQ8_0;
  if (Status s = infer::write_random_llama(shape, model); !s.is_ok()) die(s.message());
  const int threads = args.threads > 0 ? args.threads : static_cast<int>(std::thread::hardware_concurrency());

  // The server, on the same model and threads, with limits that never refuse.
  const std::string key = run(args.headroom + " keygen");
  std::ofstream(dir + "/headroom.toml") << "[models.bench]\nfile = \"" << model << "\"\nthreads = " << threads
                                        << "\ninput_price = \"0.10\"\noutput_price = \"0.20\"\n"
                                        << "[gateway.tenant_limits]\nrequests_per_minute = 0\ntokens_per_minute = 0\n"
                                        << "concurrent = 0\n";
  const std::string command = "HEADROOM_ADMIN_KEY=" + key + " " + args.headroom + " serve --data " + dir +
                              "/data --listen 127.0.0.1:0 --threads 1 --config " + dir +
                              "/headroom.toml --log-level warning > " + dir + "/serve.out 2>&1 & echo $!";
  const std::string pid = run(command);
  std::string url;
  for (int i = 0; i < 600 && url.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    url = run("grep -o 'listening on http://[0-9.:]*' " + dir + "/serve.out | cut -d' ' -f3");
  }
  if (url.empty()) die("headroom serve did not start: " + run("cat " + dir + "/serve.out"));

  // The same prompt the server will run: its chat template over the message.
  auto engine = infer::Engine::open(model, {.threads = static_cast<std::size_t>(threads)});
  if (!engine.is_ok()) die(engine.status().message());
  auto prompt = (*engine)->tokenizer().encode("<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n",
                                              infer::AddSpecial::kYes, infer::ParseSpecial::kYes);
  if (!prompt.is_ok()) die(prompt.status().message());

  std::vector<double> engine_rates, api_rates;
  std::printf("round  engine tok/s  through the API tok/s\n");
  for (int r = 0; r < args.rounds; ++r) {
    engine_rates.push_back(engine_round(**engine, *prompt, args));
    // The engine in this process idles while the server's works: they never overlap.
    api_rates.push_back(api_round(url, key, args));
    std::printf("%5d  %12.1f  %21.1f\n", r + 1, engine_rates.back(), api_rates.back());
  }
  run("kill " + pid);
  std::filesystem::remove_all(dir);
  const double e = median(engine_rates), a = median(api_rates);
  std::printf("\n%d streams x %d tokens, %d threads, %d rounds; prompt %zu tokens; model %s\n", args.streams,
              args.tokens, threads, args.rounds, prompt->size(), "random llama dim 512 x 8 layers, Q8_0 (~20M)");
  std::printf("engine alone: median %.1f tok/s; through the API: median %.1f tok/s; ratio %.2f (goal >= 0.90)\n", e, a,
              a / e);
  return 0;
}
