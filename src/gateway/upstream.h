// Upstream: the replicas of a model served by external OpenAI-compatible
// servers (vLLM, llama.cpp's server, another Headroom), and the calls to them.
//
// Requests go to the healthy replica with the fewest outstanding tokens
// (those reserved by the requests in flight there); a replica that cannot
// be reached is marked unhealthy and the request tried on the next one,
// which is safe because the first never saw it. Once a response has begun
// (its status line arrived) it is never retried. A health check asks each
// replica for GET {base}/models every health_interval_ms, on a thread of its
// own; a failed one is tried last until it answers again.
//
// Calls run on the I/O thread the client's request came in on (its
// io_context), through net::AsyncHttpClient: no thread is parked per
// request, and the answer goes back to the client without a thread switch.
// At most max_in_flight requests are in flight to the model's replicas;
// the rest wait their turn, in order.
//
// Lifetime: held by std::shared_ptr, by the model and by each request using
// it, so that an undeployed model's requests in flight run to their end.
// stop() ends the health checks (and is what the model's owner calls); the
// last holder frees the rest.
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
#include "net/async_http_client.h"

namespace headroom::gateway {

struct UpstreamOptions {
  std::size_t max_in_flight = 64;           // requests in flight to this model at most; the rest wait
  std::int64_t connect_timeout_ms = 2'000;  // a replica that does not accept by then is tried no more
  std::int64_t idle_timeout_ms = 120'000;   // the longest silence within a response
  std::int64_t health_interval_ms = 5'000;
};

class Upstream {
 public:
  struct Replica {
    std::string base_url;  // "http://10.0.0.5:8000/v1"
    std::shared_ptr<net::AsyncHttpClient> client;
    std::atomic<bool> healthy{true};
    std::atomic<std::int64_t> outstanding{0};  // tokens reserved by requests in flight
  };

  // `api_key`, when not empty, is sent as a bearer token. invalid_argument
  // for a malformed URL.
  static Result<std::shared_ptr<Upstream>> create(std::vector<std::string> base_urls, std::string api_key,
                                                  UpstreamOptions options = {});
  ~Upstream();

  // Ends the health checks; returns once the check thread has.
  void stop();

  // Runs `start` now, or once a request in flight has left(): each started
  // request must leave() exactly once. `start` may then run on the thread
  // that left, so it should only hand its work to the request's own thread.
  // A request that left because the server is stopping (its I/O thread
  // going) passes kServerStopping on to the next in line, which must not
  // start on its own I/O thread either, and leave the same way.
  enum class Turn { kGo, kServerStopping };
  void enter(std::function<void(Turn)> start);
  void leave(Turn next = Turn::kGo);

  // The replicas in the order to try them: healthy ones by fewest
  // outstanding tokens, then the unhealthy ones.
  std::vector<Replica*> order();

  // POSTs `call.body` (JSON) to the replica's base URL + `call.target`, on
  // `io`, with the model's key; the callbacks (see net::AsyncHttpClient)
  // run on io's thread.
  void post(boost::asio::io_context& io, Replica& replica, net::AsyncHttpCall call);

  const std::vector<std::unique_ptr<Replica>>& replicas() const { return replicas_; }

 private:
  Upstream() = default;
  void check_health();

  UpstreamOptions options_;
  std::string authorization_;
  std::vector<std::unique_ptr<Replica>> replicas_;

  std::mutex mutex_;
  std::size_t in_flight_ = 0;                      // under mutex_
  std::deque<std::function<void(Turn)>> waiting_;  // under mutex_: requests past max_in_flight
  bool stopping_ = false;                          // under mutex_
  std::condition_variable health_wake_;            // the health check: stopping
  std::thread health_;
};

}  // namespace headroom::gateway
