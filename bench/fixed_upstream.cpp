// A fixed-response OpenAI-compatible upstream for bench/gateway_bench.sh:
// POST /v1/chat/completions answers the same small chat completion (with
// usage) every time, at once; GET /v1/models lists its one model. So that
// the benchmark measures what the gateway in front adds, not a model.
//   fixed_upstream [THREADS]   prints "listening on http://127.0.0.1:PORT"
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "net/server.h"

namespace {

using namespace headroom;

constexpr const char* kCompletion =
    R"({"id":"chatcmpl-fixed","object":"chat.completion","created":1795700000,"model":"fixed",)"
    R"("choices":[{"index":0,"message":{"role":"assistant","content":"Once upon a time, there was a little girl."},)"
    R"("logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":11,"total_tokens":23}})";

class FixedHandler final : public net::HttpHandler {
 public:
  void handle(const net::HttpRequest& request, net::HttpResponse& response) override {
    response.content_type = "application/json";
    if (request.method == "POST" && request.path == "/v1/chat/completions") {
      response.body = kCompletion;
    } else if (request.path == "/v1/models") {
      response.body = R"({"object":"list","data":[{"id":"fixed","object":"model","created":0,"owned_by":"bench"}]})";
    } else {
      response.status = 404;
      response.body = R"({"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}})";
    }
  }
  void handle_protocol_error(int status, std::string_view, std::string_view message, std::string_view,
                             net::HttpResponse& response) override {
    response.status = status;
    response.body = std::string(message);
  }
};

}  // namespace

int main(int argc, char** argv) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  FixedHandler handler;
  net::ServerOptions options;
  options.port = 0;
  options.threads = argc > 1 ? static_cast<std::size_t>(std::atoi(argv[1])) : 1;
  auto server = net::HttpServer::start(options, handler);
  if (!server.is_ok()) {
    std::fprintf(stderr, "fixed_upstream: %s\n", server.status().message().c_str());
    return 1;
  }
  std::printf("listening on http://127.0.0.1:%u\n", (*server)->port());
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  return 0;
}
