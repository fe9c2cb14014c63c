// Upstream: the replicas of a model served by external OpenAI-compatible
// servers (vLLM, llama.cpp's server, another Headroom), and the threads
// that talk to them.
//
// Requests go to the healthy replica with the fewest outstanding tokens
// (those reserved by the requests in flight there); a replica that cannot
// be reached is marked unhealthy and the request tried on the next one,
// which is safe because the first never saw it. Once a response has begun
// (its status line arrived) it is never retried. A health check asks each
// replica for GET {base}/models every health_interval_ms; a failed one is
// tried last until it answers again.
//
// The HTTP client is synchronous: each request runs on one of `workers`
// threads (each keeps a kept-alive connection per replica), never on the
// server's I/O threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "net/http_client.h"

namespace headroom::gateway {

struct UpstreamOptions {
  std::size_t workers = 64;                 // requests in flight to this model at most; the rest queue
  std::int64_t connect_timeout_ms = 2'000;  // a replica that does not accept by then is tried no more
  std::int64_t idle_timeout_ms = 120'000;   // the longest silence within a response
  std::int64_t health_interval_ms = 5'000;
};

class Upstream {
 public:
  struct Replica {
    std::string base_url;  // "http://10.0.0.5:8000/v1"
    std::atomic<bool> healthy{true};
    std::atomic<std::int64_t> outstanding{0};  // tokens reserved by requests in flight
  };

  // `api_key`, when not empty, is sent as a bearer token. invalid_argument
  // for a malformed URL.
  static Result<std::unique_ptr<Upstream>> create(std::vector<std::string> base_urls, std::string api_key,
                                                   UpstreamOptions options = {});
  // Finishes the queued requests, then stops.
  ~Upstream();

  // Runs `job` on a worker thread.
  void run(std::function<void()> job);

  // The replicas in the order to try them: healthy ones by fewest
  // outstanding tokens, then the unhealthy ones.
  std::vector<Replica*> order();

  // POSTs `body` (JSON) to the replica's base URL + `target`, on the calling
  // (worker) thread; see net::HttpClient::request_stream. unavailable when
  // the replica cannot be reached or the response breaks off.
  Status post(Replica& replica, std::string_view target, std::string_view body,
              const std::function<bool(std::string_view)>& on_chunk,
              const std::function<void(const net::HttpClientResponse&)>& on_head);

  const std::vector<std::unique_ptr<Replica>>& replicas() const { return replicas_; }

 private:
  Upstream() = default;
  void work();
  void check_health();
  net::HttpClient* client_for(const Replica& replica);

  UpstreamOptions options_;
  std::string authorization_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::mutex mutex_;
  std::condition_variable wake_;         // workers: a job, or stopping
  std::condition_variable health_wake_;  // the health check: stopping
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::thread health_;
};

}  // namespace headroom::gateway
