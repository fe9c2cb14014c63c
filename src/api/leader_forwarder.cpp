#include "api/leader_forwarder.h"

#include <spdlog/spdlog.h>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <utility>

#include "api/router.h"

namespace headroom::api {
namespace {

using Clock = std::chrono::steady_clock;

// Request headers the leader needs to answer as if asked itself: who asks,
// what the body is, what the client accepts, and OpenAI's routing headers.
// (The follower's HeaderSource can only be asked by name.)
constexpr std::array<std::string_view, 6> kForwardedRequestHeaders = {
    "authorization", "content-type", "accept", "idempotency-key", "openai-organization", "openai-project",
};

// Response headers not passed back: the hop-by-hop ones (RFC 9110, 7.6.1),
// which describe the leader's connection, not the client's, and those the
// server writes itself (a second copy would contradict it).
constexpr std::array<std::string_view, 13> kDroppedResponseHeaders = {
    "connection", "keep-alive",   "proxy-connection",   "transfer-encoding", "te",
    "trailer",    "upgrade",      "content-length",     "content-type",      "date",
    "server",     "x-request-id", "proxy-authenticate",
};

constexpr std::string_view kNoLeader = "no leader elected yet: retry shortly";

bool ascii_iequal(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

bool is_dropped_response_header(std::string_view name) {
  return std::any_of(kDroppedResponseHeaders.begin(), kDroppedResponseHeaders.end(),
                     [&](std::string_view dropped) { return ascii_iequal(name, dropped); });
}

// A status whose response has no body (RFC 9110, 6.4.1): it gets no stream,
// which the server would frame with chunked encoding.
bool has_no_body(int status) { return (status >= 100 && status < 200) || status == 204 || status == 304; }

std::string_view without_trailing_slash(std::string_view url) {
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  return url;
}

// A 503 that tells the client when to ask again: the causes (an election, a
// restart, a burst) pass within seconds.
void write_unavailable(net::HttpResponse& response, std::string message, std::string_view request_id) {
  write_error(response, Status::unavailable(std::move(message)), request_id);
  response.headers.emplace_back("Retry-After", "1");
}

// The answer to GET /readyz, given the leader to forward to or why there is none.
void write_ready(net::HttpResponse& response, const Result<std::string>& leader, std::string_view request_id) {
  if (!leader) {
    write_unavailable(response, leader.status().message(), request_id);
    return;
  }
  response.body =
      boost::json::serialize(boost::json::object{{"status", "ready"}, {"role", "follower"}, {"leader", *leader}});
}

// The body of a forwarded response. The worker pushes the leader's bytes in
// as they arrive; the server's I/O thread takes them out with next().
// Buffered bytes are bounded by limits::kForwardStreamBufferBytes: past it
// the worker waits, so a slow client slows the read from the leader.
class ForwardStream final : public net::BodyStream {
 public:
  Next next(std::string& out) override {
    std::lock_guard lock(mutex_);
    if (out.empty()) {
      out.swap(buffer_);  // no copy; buffer_ takes out's spent capacity
    } else {
      out += buffer_;
      buffer_.clear();
    }
    room_.notify_one();
    return ended_ ? Next::kEnd : Next::kWait;
  }

  // The worker: appends `chunk`, waiting up to `wait` for room. False when
  // no room came (the caller looks whether the client is still there, and
  // tries again). The caller wake()s after a push.
  bool push(std::string_view chunk, std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    const bool room = room_.wait_for(lock, wait, [&] {
      return buffer_.empty() || buffer_.size() + chunk.size() <= limits::kForwardStreamBufferBytes;
    });
    if (room) buffer_.append(chunk);
    return room;
  }

  // The worker: the body ends after what was pushed.
  void end() {
    {
      std::lock_guard lock(mutex_);
      ended_ = true;
    }
    wake();
  }

 private:
  std::mutex mutex_;
  std::condition_variable room_;
  std::string buffer_;
  bool ended_ = false;
};

}  // namespace

struct LeaderForwarder::Job {
  enum class Kind { kForward, kReady };

  Kind kind = Kind::kForward;
  std::shared_ptr<net::DeferredResponse> deferred;
  std::string request_id;
  // kForward only: the request, and the headers to send with it.
  std::string method;
  std::string target;
  std::string body;
  net::HttpHeaders headers;
};

struct LeaderForwarder::Connection {
  std::string url;                        // as the lookup named it
  std::optional<net::HttpClient> client;  // to `url`; keeps its connection alive between requests
};

namespace {

// Whether a request that failed against `url` with `failure` (before any
// head) may go to another leader. A leader that died after reading it may
// have acted on it, so only a request that never reached it (the connection
// failed: HttpClient's "cannot reach <url>: ..."), a method that is
// idempotent by definition (RFC 9110, 9.2.2) or one with an Idempotency-Key
// may be sent again: a completion must not run, and be billed, twice.
bool may_resend(std::string_view method, bool has_idempotency_key, const std::string& url, const Status& failure) {
  if (failure.message().starts_with("cannot reach " + std::string(without_trailing_slash(url)) + ":")) return true;
  if (has_idempotency_key) return true;
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" || method == "DELETE";
}

}  // namespace

LeaderForwarder::LeaderForwarder(LeaderLookup lookup, Options options)
    : lookup_(std::move(lookup)), options_(std::move(options)) {
  const std::size_t workers = std::max<std::size_t>(options_.workers, 1);
  workers_.reserve(workers);
  for (std::size_t i = 0; i < workers; ++i) workers_.emplace_back([this] { run_worker(); });
}

LeaderForwarder::~LeaderForwarder() { stop(); }

void LeaderForwarder::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  std::deque<std::unique_ptr<Job>> queued;
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
    queued.swap(queue_);
  }
  stop_requested_.store(true);
  queue_ready_.notify_all();
  for (auto& job : queued) {
    net::HttpResponse response;
    write_unavailable(response, "this follower is stopping: retry shortly", job->request_id);
    job->deferred->complete(std::move(response));
  }
  for (auto& worker : workers_) worker.join();
  workers_.clear();
}

void LeaderForwarder::handle(const net::HttpRequest& request, net::HttpResponse& response) {
  const bool get = request.method == "GET";
  if (get && request.path == "/healthz") {
    response.body = R"({"status":"ok","role":"follower"})";
    return;
  }

  const bool ready = get && request.path == "/readyz";
  if (ready) {
    // Answered at once while the cache is fresh, so that a prober is not
    // queued behind long forwards; else a worker looks the leader up.
    if (std::optional<std::optional<std::string>> cached = cached_leader()) {
      write_ready(response, usable_leader(std::move(*cached)), request.request_id);
      return;
    }
  }
  // The one copy of the request: its views die when this returns.
  auto job = std::make_unique<Job>();
  job->request_id = request.request_id;
  if (ready) {
    job->kind = Job::Kind::kReady;
  } else {
    job->method = request.method;
    job->target = request.target;
    job->body = request.body;
    job->headers.reserve(kForwardedRequestHeaders.size() + 2);
    for (std::string_view name : kForwardedRequestHeaders) {
      std::string_view value = request.header(name);
      if (!value.empty()) job->headers.emplace_back(name, value);
    }
    job->headers.emplace_back("X-Request-Id", request.request_id);
    if (!request.remote_address.empty()) job->headers.emplace_back("X-Forwarded-For", request.remote_address);
  }
  job->deferred = response.defer();
  // A whole completion on the leader may take minutes before its head.
  if (job->kind == Job::Kind::kForward) job->deferred->wait_ms = limits::kCompletionWaitMs;

  std::string_view refusal;
  {
    std::lock_guard lock(queue_mutex_);
    if (stopping_) {
      refusal = "this follower is stopping: retry shortly";
    } else if (queue_.size() >= std::max<std::size_t>(options_.max_queued, 1)) {
      refusal = "this follower is busy forwarding: retry shortly";
    } else {
      queue_.push_back(std::move(job));
    }
  }
  if (!refusal.empty()) {
    response.deferred.reset();  // answered now, plainly
    write_unavailable(response, std::string(refusal), request.request_id);
    return;
  }
  queue_ready_.notify_one();
}

void LeaderForwarder::handle_protocol_error(int status, std::string_view code, std::string_view message,
                                            std::string_view request_id, net::HttpResponse& response) {
  write_error_body(response, status, code, message, request_id);
}

void LeaderForwarder::run_worker() {
  Connection leader;
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock lock(queue_mutex_);
      queue_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping: stop() answers what was queued
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    if (job->kind == Job::Kind::kReady) {
      answer_ready(*job);
    } else {
      forward(*job, leader);
    }
  }
}

void LeaderForwarder::answer_ready(Job& job) {
  net::HttpResponse response;
  write_ready(response, usable_leader(leader_url(nullptr)), job.request_id);
  job.deferred->complete(std::move(response));
}

void LeaderForwarder::forward(Job& job, Connection& leader) {
  Result<std::string> url = usable_leader(leader_url(nullptr));
  if (!url) {
    net::HttpResponse response;
    write_unavailable(response, url.status().message(), job.request_id);
    job.deferred->complete(std::move(response));
    return;
  }
  std::string target_url = std::move(url).value();
  bool answered = false;
  Status status = send(job, leader, target_url, answered);
  if (!answered && status.code() == ErrorCode::kUnavailable && !stop_requested_.load()) {
    // The leader may have died and another been elected: ask again, and try
    // once more if the answer is another server. Once only, so that a
    // request goes to at most two leaders, and only when sending it twice is
    // harmless.
    spdlog::warn("{} {} {}: {}", job.request_id, job.method, job.target, status.message());
    Result<std::string> again = usable_leader(leader_url(&target_url));
    if (again && *again != target_url) {
      const bool has_idempotency_key = std::any_of(
          job.headers.begin(), job.headers.end(), [](const auto& header) { return header.first == "idempotency-key"; });
      if (!may_resend(job.method, has_idempotency_key, target_url, status)) {
        net::HttpResponse response;
        write_unavailable(response,
                          "the leader at " + target_url + " failed before answering: " + status.message() +
                              " (the request may have taken effect; retry it with an Idempotency-Key)",
                          job.request_id);
        job.deferred->complete(std::move(response));
        return;
      }
      target_url = std::move(again).value();
      status = send(job, leader, target_url, answered);
    }
  }
  if (answered) {
    // A failure after the head: the body has just ended there.
    if (!status) spdlog::warn("{} {} {}: {}", job.request_id, job.method, job.target, status.message());
    return;
  }
  net::HttpResponse response;
  if (status.code() == ErrorCode::kUnavailable) {
    write_unavailable(response, "cannot reach the leader at " + target_url + ": " + status.message(), job.request_id);
  } else {
    // A request the client cannot send (a target not starting with '/').
    write_error(response, status.is_ok() ? Status::internal("the leader sent no response head") : status,
                job.request_id);
  }
  job.deferred->complete(std::move(response));
}

Status LeaderForwarder::send(Job& job, Connection& leader, const std::string& url, bool& answered) {
  if (!leader.client || leader.url != url) {
    leader.client.reset();
    Result<net::HttpClient> client = net::HttpClient::create(url, options_.client);
    if (!client) {  // as HttpClient words a failure to connect: nothing was sent
      return Status::unavailable("cannot reach " + std::string(without_trailing_slash(url)) + ": " +
                                 client.status().message());
    }
    leader.client.emplace(std::move(client).value());
    leader.url = url;
  }

  // Only a weak reference stays here once the response has the stream: when
  // the server drops it (the client has gone, the server stops), the read
  // from the leader stops too.
  std::weak_ptr<ForwardStream> weak_stream;
  const auto on_head = [&](const net::HttpClientResponse& head) {
    net::HttpResponse response;
    response.status = head.status;
    response.content_type.clear();
    response.headers.reserve(head.headers.size());
    for (const auto& [name, value] : head.headers) {
      if (ascii_iequal(name, "content-type")) {
        if (response.content_type.empty()) response.content_type = value;
      } else if (!is_dropped_response_header(name)) {
        response.headers.emplace_back(name, value);
      }
    }
    if (!has_no_body(head.status)) {
      auto stream = std::make_shared<ForwardStream>();
      weak_stream = stream;
      response.stream = std::move(stream);
    }
    answered = true;
    job.deferred->complete(std::move(response));
  };
  const auto on_chunk = [&](std::string_view chunk) {
    const auto poll = std::chrono::milliseconds(limits::kHttpStreamPollMs);
    for (;;) {
      if (stop_requested_.load(std::memory_order_relaxed)) return false;
      std::shared_ptr<ForwardStream> stream = weak_stream.lock();
      if (!stream) return false;  // the client has gone, or the status has no body
      if (stream->push(chunk, poll)) {
        stream->wake();
        return true;
      }
    }
  };
  Status status = leader.client->request_stream(job.method, job.target, job.body, job.headers, on_chunk, on_head);
  if (std::shared_ptr<ForwardStream> stream = weak_stream.lock()) stream->end();
  return status;
}

Result<std::optional<std::string>> LeaderForwarder::leader_url(const std::string* unreachable) {
  const auto asked_at = Clock::now();
  {
    std::lock_guard lock(cache_mutex_);
    if (cache_valid_ && unreachable && cached_url_ == *unreachable) cache_valid_ = false;
    if (cache_valid_ && asked_at - cached_at_ < std::chrono::milliseconds(limits::kForwardLeaderCacheMs)) {
      return cached_url_;
    }
  }
  std::lock_guard lookup_lock(lookup_mutex_);
  {
    // Another worker asked after this one did, while this one waited for
    // its turn: its answer is as new as this one's would be.
    std::lock_guard lock(cache_mutex_);
    if (cache_valid_ && cached_at_ >= asked_at) return cached_url_;
  }
  const auto started_at = Clock::now();
  Result<std::optional<std::string>> url = lookup_();
  std::lock_guard lock(cache_mutex_);
  cache_valid_ = url.is_ok();
  if (url) {
    cached_url_ = *url;
    cached_at_ = started_at;  // the answer is as old as the question
  }
  return url;
}

std::optional<std::optional<std::string>> LeaderForwarder::cached_leader() {
  std::lock_guard lock(cache_mutex_);
  if (!cache_valid_ || Clock::now() - cached_at_ >= std::chrono::milliseconds(limits::kForwardLeaderCacheMs)) {
    return std::nullopt;
  }
  return cached_url_;
}

Result<std::string> LeaderForwarder::usable_leader(const Result<std::optional<std::string>>& url) const {
  if (!url) return Status::unavailable("cannot look up the leader: " + url.status().message());
  if (!url->has_value()) return Status::unavailable(std::string(kNoLeader));
  const std::string& leader = **url;
  if (!options_.self_url.empty() && without_trailing_slash(leader) == without_trailing_slash(options_.self_url)) {
    // This server was the leader until just now, or the lookup lags: sending
    // the request to itself would only queue it again.
    return Status::unavailable("the leader is named as this server (" + leader +
                               "), which is a follower: retry shortly");
  }
  return leader;
}

}  // namespace headroom::api
