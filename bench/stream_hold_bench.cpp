// Issue 6: 1,000 concurrent streaming connections held for a minute with no
// errors. Starts `headroom serve` with its built-in stories260K (limits
// off), then keeps N streaming chat completions open at all times for D
// seconds: N client threads, each with its own keep-alive connection, each
// opening a new stream the moment its last one ends. Every stream must be a
// 200 that ends with its usage and [DONE]; anything else is an error.
// Reports streams finished, tokens streamed, errors, the most streams open
// at once (sampled every 100 ms), and the time to first token (p50, p99).
//
//   stream_hold_bench HEADROOM_BINARY [--streams N] [--seconds D] [--max-tokens T]
//     (defaults: 1,000 streams, 60 s, 256 tokens each)
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "shell.h"
#include "net/http_client.h"
#include "net/sse_reader.h"

namespace {

using namespace headroom;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "stream_hold_bench: %s\n", message.c_str());
  std::exit(1);
}

std::string run(const std::string& command) { return bench::shell_output(command); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: stream_hold_bench HEADROOM_BINARY [--streams N] [--seconds D] [--max-tokens T]");
  int streams = 1000, seconds = 60, max_tokens = 256;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--streams") streams = value;
    else if (flag == "--seconds") seconds = value;
    else if (flag == "--max-tokens") max_tokens = value;
    else die("unknown flag " + flag);
  }
  // A thread and a socket per stream, here and in the server.
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);

  const std::string dir = std::filesystem::temp_directory_path() / ("headroom-streams-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string key = run(std::string(argv[1]) + " keygen");
  std::ofstream(dir + "/headroom.toml")
      << "[models.stories260K]\nfile = \"builtin:stories260K\"\nmax_running = 64\n"
      << "[gateway.tenant_limits]\nrequests_per_minute = 0\ntokens_per_minute = 0\nconcurrent = 0\n";
  const std::string pid = run("ulimit -n " + std::to_string(files.rlim_cur) + "; HEADROOM_ADMIN_KEY=" + key + " " +
                              argv[1] + " serve --data " + dir + "/data --listen 127.0.0.1:0 --config " + dir +
                              "/headroom.toml --log-level warning > " + dir + "/serve.out 2>&1 & echo $!");
  std::string url;
  for (int i = 0; i < 600 && url.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    url = run("grep -o 'listening on http://[0-9.:]*' " + dir + "/serve.out | cut -d' ' -f3");
  }
  if (url.empty()) die("headroom serve did not start: " + run("cat " + dir + "/serve.out"));

  const std::string body = json::serialize(json::object{
      {"model", "stories260K"},
      {"messages", json::array{json::object{{"role", "user"}, {"content", "Tell me a story."}}}},
      {"max_tokens", max_tokens},
      {"temperature", 1.0},
      {"stream", true},
      {"stream_options", json::object{{"include_usage", true}}}});
  std::atomic<bool> stop{false};
  std::atomic<int> open{0}, most_open{0};
  std::atomic<long> finished{0}, tokens{0}, errors{0};
  std::mutex mutex;
  std::vector<double> first_token_ms;
  std::string first_error;
  const auto end = Clock::now() + std::chrono::seconds(seconds);

  std::vector<std::thread> clients;
  clients.reserve(streams);
  for (int i = 0; i < streams; ++i) {
    clients.emplace_back([&] {
      net::HttpClientOptions options;
      options.stream_idle_timeout_ms = 600'000;  // a stream may wait its turn in the engine's queue
      auto client = net::HttpClient::create(url, options);
      if (!client.is_ok()) die(client.status().message());
      while (!stop && Clock::now() < end) {
        net::SseReader reader;
        bool done = false, usage = false, first = true;
        int status = 0;
        long chunks = 0;
        const auto start = Clock::now();
        ++open;
        const Status s = client->request_stream(
            "POST", "/v1/chat/completions", body, {{"Authorization", "Bearer " + key}},
            [&](std::string_view chunk) {
              reader.feed(chunk, [&](std::string_view data) {
                if (data == "[DONE]") {
                  done = true;
                  return;
                }
                if (first) {
                  first = false;
                  std::lock_guard lock(mutex);
                  first_token_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
                }
                if (data.find("\"usage\":{") != std::string_view::npos) usage = true;
                ++chunks;
              });
              return true;
            },
            [&](const net::HttpClientResponse& head) { status = head.status; });
        --open;
        if (!s.is_ok() || status != 200 || !done || !usage) {
          ++errors;
          std::lock_guard lock(mutex);
          if (first_error.empty()) first_error = "HTTP " + std::to_string(status) + " " + s.message();
          continue;
        }
        ++finished;
        tokens += chunks;
      }
    });
  }
  std::thread sampler([&] {
    while (Clock::now() < end) {
      most_open = std::max(most_open.load(), open.load());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  sampler.join();
  stop = true;
  for (auto& c : clients) c.join();
  const std::string rss = run("awk '/^VmHWM/ {print $2}' /proc/" + pid + "/status");
  run("kill " + pid);
  std::filesystem::remove_all(dir);
  std::sort(first_token_ms.begin(), first_token_ms.end());
  auto pct = [&](double p) {
    return first_token_ms.empty() ? 0.0 : first_token_ms[std::min(first_token_ms.size() - 1,
                                                                   static_cast<std::size_t>(p * first_token_ms.size()))];
  };
  std::printf("%d streams held for %d s (each reopened as it ends), stories260K, max_tokens %d, %u cores\n", streams,
              seconds, max_tokens, std::thread::hardware_concurrency());
  std::printf("most open at once: %d; streams finished: %ld; chunks streamed: %ld; errors: %ld%s%s\n",
              most_open.load(), finished.load(), tokens.load(), errors.load(), first_error.empty() ? "" : " first: ",
              first_error.c_str());
  std::printf("time to first token: p50 %.0f ms, p99 %.0f ms; server peak resident memory %s kB\n", pct(0.5),
              pct(0.99), rss.c_str());
  return errors == 0 ? 0 : 1;
}
