// LeaderForwarder: the whole HTTP handler of a follower.
//
// Several `headroom serve` processes share one PostgreSQL database; one of
// them, the leader, runs the API. Every other one is a follower and answers
// each request by passing it on to the leader and the leader's answer back,
// as a Vault standby node forwards to the active node. A client may thus talk
// to any of them.
//
//   GET /healthz   answered here: 200 {"status":"ok","role":"follower"}
//   GET /readyz    answered here: 200 {"status":"ready","role":"follower",
//                  "leader":"<url>"} while a leader is known, else 503
//   anything else  forwarded: method, target (path and query) and body, with
//                  the request headers Authorization, Content-Type, Accept,
//                  Idempotency-Key, OpenAI-Organization and OpenAI-Project
//                  when present (no others), plus X-Request-Id (this
//                  server's id for the request, so that both servers log
//                  one id) and X-Forwarded-For (the client's address). The
//                  leader's status, content type, headers (less the
//                  hop-by-hop ones and those the server sets itself: Date,
//                  Server, X-Request-Id, the framing) and body come back as
//                  they arrive, so streamed bodies (server-sent events,
//                  followed logs) pass through as plain ones do. Bytes read
//                  from the leader and not yet sent are bounded by
//                  limits::kForwardStreamBufferBytes: a slow client slows
//                  the read.
//
// Failures are answered as the Router answers its own (api::write_error):
//   - no leader elected, the leader unreachable, the lookup failing, this
//     server named as the leader, or every worker busy and the queue full:
//     503 with Retry-After: 1, before any byte of the leader's answer;
//   - an unreachable leader is forgotten and the leader looked up again; if
//     the answer names another server (a new leader elected), the request
//     goes there, once. Only when sending it twice is harmless, though: when
//     the old leader was never reached, or the method is idempotent (GET,
//     HEAD, OPTIONS, PUT, DELETE), or it carries an Idempotency-Key. Else
//     the 503 says the request may have taken effect;
//   - the leader failing after its head was passed on: the body just ends
//     there, as the leader's connection did.
//
// Threads: handle() only copies the request and queues it; a pool of worker
// threads does the forwarding, each with its own kept-alive connection to the
// leader. A worker holds its request until the leader's body has ended, so
// Options::workers bounds the requests in flight (a streamed body holds its
// worker for as long as it lasts) and Options::max_queued those waiting.
//
// Thread-safe: handle() and handle_protocol_error() may be called from any
// number of threads at once and never block. Must outlive the server that
// calls it (stop that server first, then this).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/limits.h"
#include "common/status.h"
#include "net/http.h"
#include "net/http_client.h"

namespace headroom::api {

// The client options a follower forwards with: a whole (not streamed)
// completion may keep the leader silent for minutes before its head, and a
// stream may be quiet as long between two chunks.
inline net::HttpClientOptions forward_client_options() {
  net::HttpClientOptions options;
  options.read_timeout_ms = limits::kCompletionWaitMs;
  options.stream_idle_timeout_ms = limits::kCompletionWaitMs;
  return options;
}

class LeaderForwarder final : public net::HttpHandler {
 public:
  // The leader's base URL ("http://127.0.0.1:8080"), nullopt when no leader
  // is elected, or an error when it cannot be asked. Called on a worker
  // thread (never an I/O thread), at most one call at a time; its answer is
  // reused for up to limits::kForwardLeaderCacheMs, and forgotten at once
  // when that leader cannot be reached. It must stay callable until stop()
  // has returned.
  using LeaderLookup = std::function<Result<std::optional<std::string>>()>;

  struct Options {
    // Forwarding threads: the forwards in flight at once. At least 1.
    std::size_t workers = limits::kForwardWorkers;
    // Requests waiting for a worker beyond which a 503 is answered at once. At least 1.
    std::size_t max_queued = limits::kForwardQueue;
    // Never forward to this URL (answer 503 instead): this server's own. Empty: no check.
    std::string self_url;
    // Towards the leader; tests shorten its timeouts.
    net::HttpClientOptions client = forward_client_options();
  };

  // Starts the workers.
  LeaderForwarder(LeaderLookup lookup, Options options);
  ~LeaderForwarder() override;  // stop()

  LeaderForwarder(const LeaderForwarder&) = delete;
  LeaderForwarder& operator=(const LeaderForwarder&) = delete;

  // Idempotent. Answers the requests still queued with 503, makes the
  // forwards in flight stop reading from the leader (and end their bodies)
  // and joins the workers. A forward stops at the next bytes its leader
  // sends, within limits::kHttpStreamPollMs when its client is slow: one
  // whose leader stays silent (a completion not yet begun, a quiet followed
  // log) holds stop() until the leader speaks or the client options' timeout
  // passes, because a net::HttpClient cannot be interrupted from another
  // thread. Stop the server first: it ends the streams, after which the
  // forwards end at the leader's next bytes. Later requests get a 503.
  void stop();

  void handle(const net::HttpRequest& request, net::HttpResponse& response) override;
  // Shapes the server's own errors as api::write_error does.
  void handle_protocol_error(int status, std::string_view code, std::string_view message, std::string_view request_id,
                             net::HttpResponse& response) override;

 private:
  struct Job;         // a request copied for a worker
  struct Connection;  // a worker's client to the leader

  void run_worker();
  void answer_ready(Job& job);
  void forward(Job& job, Connection& leader);
  // Sends `job` to `url`; `answered` turns true once the leader's head has
  // completed the job's response (what is returned then is only logged).
  Status send(Job& job, Connection& leader, const std::string& url, bool& answered);
  // The leader's URL, from the cache while fresh. `unreachable`, when given,
  // is a URL that could not be reached: forgotten if cached, and the leader
  // is looked up again.
  Result<std::optional<std::string>> leader_url(const std::string* unreachable);
  // The cached answer of the lookup while fresh, without waiting for one.
  std::optional<std::optional<std::string>> cached_leader();
  // The URL to forward to, or why there is none (unavailable).
  Result<std::string> usable_leader(const Result<std::optional<std::string>>& url) const;

  const LeaderLookup lookup_;
  const Options options_;

  std::mutex queue_mutex_;
  std::condition_variable queue_ready_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stopping_ = false;                    // guarded by queue_mutex_
  std::atomic<bool> stop_requested_{false};  // stopping_, for workers between chunks

  std::mutex lookup_mutex_;  // one lookup at a time
  std::mutex cache_mutex_;   // the cache below; never held during a lookup
  bool cache_valid_ = false;
  std::optional<std::string> cached_url_;
  std::chrono::steady_clock::time_point cached_at_;

  std::mutex stop_mutex_;  // stop() runs once; a concurrent call waits for it
  std::vector<std::thread> workers_;
};

}  // namespace headroom::api
