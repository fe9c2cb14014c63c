#include "api/leader_forwarder.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/server.h"

namespace headroom::api {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Runs a function when the scope ends, on failure paths too, so that a
// failed assertion cannot leave a thread or a future waiting for ever.
class ScopeExit {
 public:
  explicit ScopeExit(std::function<void()> f) : f_(std::move(f)) {}
  ~ScopeExit() { f_(); }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;

 private:
  std::function<void()> f_;
};

// A body the test feeds from any thread: next() hands out what was pushed.
class PushStream final : public net::BodyStream {
 public:
  Next next(std::string& out) override {
    std::lock_guard lock(mutex_);
    while (!pieces_.empty()) {
      out += pieces_.front();
      pieces_.pop_front();
    }
    return ended_ ? Next::kEnd : Next::kWait;
  }

  void push(std::string piece, bool end = false) {
    {
      std::lock_guard lock(mutex_);
      if (!piece.empty()) pieces_.push_back(std::move(piece));
      ended_ = ended_ || end;
    }
    wake();
  }

 private:
  std::mutex mutex_;
  std::deque<std::string> pieces_;
  bool ended_ = false;
};

// What the leader saw of a request.
struct SeenRequest {
  std::string method;
  std::string target;
  std::string body;
  std::string authorization;
  std::string idempotency_key;
  std::string request_id;
  std::string forwarded_for;
  std::string content_type;
};

// The leader: /stream answers with the stream the test set; anything else
// with 201, text/plain, an X-Custom header and "METHOD TARGET BODY".
class FakeLeader final : public net::HttpHandler {
 public:
  void handle(const net::HttpRequest& request, net::HttpResponse& response) override {
    {
      std::lock_guard lock(mutex_);
      seen_.push_back({std::string(request.method), std::string(request.target), std::string(request.body),
                       std::string(request.header("authorization")), std::string(request.header("idempotency-key")),
                       std::string(request.request_id), std::string(request.header("x-forwarded-for")),
                       std::string(request.header("content-type"))});
      if (request.path == "/stream") {
        response.content_type = "text/event-stream";
        response.headers.emplace_back("Cache-Control", "no-cache");
        response.stream = stream_;
        return;
      }
    }
    response.status = 201;
    response.content_type = "text/plain";
    response.headers.emplace_back("X-Custom", "from-leader");
    response.body = std::string(request.method) + " " + std::string(request.target) + " " + std::string(request.body);
  }
  void handle_protocol_error(int status, std::string_view, std::string_view message, std::string_view,
                             net::HttpResponse& response) override {
    response.status = status;
    response.body = std::string(message);
  }

  void set_stream(std::shared_ptr<net::BodyStream> stream) {
    std::lock_guard lock(mutex_);
    stream_ = std::move(stream);
  }
  std::vector<SeenRequest> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  std::mutex mutex_;
  std::vector<SeenRequest> seen_;
  std::shared_ptr<net::BodyStream> stream_;
};

net::ServerOptions local_server() {
  net::ServerOptions options;
  options.port = 0;
  options.threads = 2;
  return options;
}

std::string url_of(const net::HttpServer& server) { return "http://127.0.0.1:" + std::to_string(server.port()); }

// A running leader.
struct Leader {
  FakeLeader handler;
  std::unique_ptr<net::HttpServer> server;
  std::string url;

  Leader() {
    auto started = net::HttpServer::start(local_server(), handler);
    EXPECT_TRUE(started.is_ok()) << started.status().to_string();
    server = std::move(started).value();
    url = url_of(*server);
  }
};

// A URL whose port nothing listens on: a server's, once it has stopped.
std::string dead_url() {
  FakeLeader handler;
  auto started = net::HttpServer::start(local_server(), handler);
  EXPECT_TRUE(started.is_ok()) << started.status().to_string();
  std::string url = url_of(**started);
  (*started)->stop();
  return url;
}

// A leader that reads a request's head and hangs up without a word, as one
// that crashed while working on it.
class HangUpLeader {
 public:
  HangUpLeader() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
    thread_ = std::thread([this] { serve(); });
  }
  ~HangUpLeader() {
    stopping_.store(true);
    thread_.join();
    ::close(fd_);
  }

  std::string url;
  std::atomic<int> requests{0};

 private:
  void serve() {
    while (!stopping_.load()) {
      pollfd listening{fd_, POLLIN, 0};
      if (::poll(&listening, 1, 20) != 1) continue;
      const int connection = ::accept(fd_, nullptr, nullptr);
      if (connection < 0) continue;
      std::string head;
      char buffer[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::read(connection, buffer, sizeof buffer);
        if (n <= 0) break;
        head.append(buffer, static_cast<std::size_t>(n));
      }
      requests.fetch_add(1);
      ::close(connection);
    }
  }

  int fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// A lookup that answers from a list (the last answer repeats) and counts its calls.
struct ScriptedLookup {
  std::mutex mutex;
  std::vector<std::optional<std::string>> answers;
  std::size_t calls = 0;

  LeaderForwarder::LeaderLookup function() {
    return [this]() -> Result<std::optional<std::string>> {
      std::lock_guard lock(mutex);
      const std::size_t i = std::min(calls, answers.size() - 1);
      ++calls;
      return answers[i];
    };
  }
  std::size_t call_count() {
    std::lock_guard lock(mutex);
    return calls;
  }
};

net::HttpClientOptions test_client_options() {
  net::HttpClientOptions options;
  options.connect_timeout_ms = 2'000;
  options.read_timeout_ms = 10'000;
  options.stream_idle_timeout_ms = 10'000;
  return options;
}

// A follower: the forwarder, and a server in front of it (stopped first:
// declared last).
struct Follower {
  LeaderForwarder forwarder;
  std::unique_ptr<net::HttpServer> server;
  std::string url;

  Follower(LeaderForwarder::LeaderLookup lookup, LeaderForwarder::Options options)
      : forwarder(std::move(lookup), std::move(options)) {
    auto started = net::HttpServer::start(local_server(), forwarder);
    EXPECT_TRUE(started.is_ok()) << started.status().to_string();
    server = std::move(started).value();
    url = url_of(*server);
  }

  net::HttpClient client() {
    auto client = net::HttpClient::create(url, test_client_options());
    EXPECT_TRUE(client.is_ok()) << client.status().to_string();
    return std::move(client).value();
  }
};

LeaderForwarder::Options forwarder_options(std::size_t workers = 4) {
  LeaderForwarder::Options options;
  options.workers = workers;
  options.client = test_client_options();
  return options;
}

int count_headers(const net::HttpClientResponse& response, std::string_view name) {
  int n = 0;
  for (const auto& [key, value] : response.headers) {
    if (key.size() == name.size() && std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      ++n;
    }
  }
  return n;
}

TEST(LeaderForwarderTest, PassesPlainRequestsThrough) {
  Leader leader;
  Follower follower([url = leader.url]() -> Result<std::optional<std::string>> { return std::optional(url); },
                    forwarder_options());
  net::HttpClient client = follower.client();

  auto posted = client.request("POST", "/v1/things?limit=3", R"({"a":1})",
                               {{"Authorization", "Bearer hr_test"},
                                {"Idempotency-Key", "idem-1"},
                                {"X-Request-Id", "req-forward-1"},
                                {"X-Not-Forwarded", "no"}});
  ASSERT_TRUE(posted.is_ok()) << posted.status().to_string();
  EXPECT_EQ(posted->status, 201);
  EXPECT_EQ(posted->body, R"(POST /v1/things?limit=3 {"a":1})");
  EXPECT_EQ(posted->header("content-type"), "text/plain");
  EXPECT_EQ(posted->header("x-custom"), "from-leader");
  EXPECT_EQ(posted->header("x-request-id"), "req-forward-1");
  EXPECT_EQ(count_headers(*posted, "x-request-id"), 1) << "the leader's copy is dropped";
  EXPECT_EQ(count_headers(*posted, "server"), 1);
  EXPECT_EQ(count_headers(*posted, "date"), 1);

  auto got = client.request("GET", "/v1/me", {}, {{"Authorization", "Bearer hr_other"}});
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_EQ(got->status, 201);
  EXPECT_EQ(got->body, "GET /v1/me ");

  std::vector<SeenRequest> seen = leader.handler.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/v1/things?limit=3");
  EXPECT_EQ(seen[0].authorization, "Bearer hr_test");
  EXPECT_EQ(seen[0].idempotency_key, "idem-1");
  EXPECT_EQ(seen[0].request_id, "req-forward-1");
  EXPECT_EQ(seen[0].forwarded_for, "127.0.0.1");
  EXPECT_EQ(seen[0].content_type, "application/json");
  EXPECT_EQ(seen[1].method, "GET");
  EXPECT_EQ(seen[1].authorization, "Bearer hr_other");
  EXPECT_EQ(seen[1].idempotency_key, "");
  EXPECT_FALSE(seen[1].request_id.empty());
  EXPECT_EQ(seen[1].request_id, got->header("x-request-id")) << "both servers log one id";
}

TEST(LeaderForwarderTest, StreamsArriveWholeAndInOrder) {
  Leader leader;
  auto stream = std::make_shared<PushStream>();
  leader.handler.set_stream(stream);
  Follower follower([url = leader.url]() -> Result<std::optional<std::string>> { return std::optional(url); },
                    forwarder_options());
  net::HttpClient client = follower.client();

  // Lock-step: the leader sends event i+1 only once the client has event i,
  // so a forwarder that waited for the whole body would stall the stream
  // (and the client's read time out).
  constexpr int kEvents = 5;
  stream->push("data: 0\n\n");
  std::string received;
  int next_event = 1;
  int head_status = 0;
  std::string content_type;
  std::string cache_control;
  Status status = client.request_stream(
      "GET", "/stream?follow=true", {}, {},
      [&](std::string_view chunk) {
        received += chunk;
        while (next_event < kEvents &&
               received.find("data: " + std::to_string(next_event - 1) + "\n\n") != std::string::npos) {
          stream->push("data: " + std::to_string(next_event) + "\n\n", next_event == kEvents - 1);
          ++next_event;
        }
        return true;
      },
      [&](const net::HttpClientResponse& head) {
        head_status = head.status;
        content_type = head.header("content-type");
        cache_control = head.header("cache-control");
      });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(head_status, 200);
  EXPECT_EQ(content_type, "text/event-stream");
  EXPECT_EQ(cache_control, "no-cache");
  EXPECT_EQ(received, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
  ASSERT_EQ(leader.handler.seen().size(), 1u);
  EXPECT_EQ(leader.handler.seen()[0].target, "/stream?follow=true");
}

TEST(LeaderForwarderTest, HealthzIsAnsweredLocally) {
  ScriptedLookup lookup;
  lookup.answers = {std::nullopt};
  Follower follower(lookup.function(), forwarder_options());
  net::HttpClient client = follower.client();
  auto health = client.request("GET", "/healthz");
  ASSERT_TRUE(health.is_ok()) << health.status().to_string();
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, R"({"status":"ok","role":"follower"})");
  EXPECT_EQ(lookup.call_count(), 0u);
}

TEST(LeaderForwarderTest, ReadyzIsUnavailableWithoutALeader) {
  ScriptedLookup lookup;
  lookup.answers = {std::nullopt};
  Follower follower(lookup.function(), forwarder_options());
  net::HttpClient client = follower.client();
  auto ready = client.request("GET", "/readyz");
  ASSERT_TRUE(ready.is_ok()) << ready.status().to_string();
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("no leader elected yet: retry shortly"), std::string::npos) << ready->body;
  EXPECT_NE(ready->body.find(R"("code":"unavailable")"), std::string::npos) << ready->body;
  EXPECT_EQ(lookup.call_count(), 1u);

  // Anything else is refused the same way, without a leader to send it to.
  auto other = client.request("GET", "/v1/me");
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  EXPECT_EQ(other->status, 503);
  EXPECT_EQ(other->header("retry-after"), "1");
  EXPECT_NE(other->body.find("no leader elected yet"), std::string::npos) << other->body;
}

TEST(LeaderForwarderTest, ReadyzNamesTheLeader) {
  ScriptedLookup lookup;
  lookup.answers = {std::string("http://127.0.0.1:9")};
  Follower follower(lookup.function(), forwarder_options());
  net::HttpClient client = follower.client();
  auto ready = client.request("GET", "/readyz");
  ASSERT_TRUE(ready.is_ok()) << ready.status().to_string();
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(ready->body, R"({"status":"ready","role":"follower","leader":"http://127.0.0.1:9"})");
}

TEST(LeaderForwarderTest, ReadyzNamesALookupError) {
  Follower follower([]() -> Result<std::optional<std::string>> { return Status::unavailable("database is down"); },
                    forwarder_options());
  net::HttpClient client = follower.client();
  auto ready = client.request("GET", "/readyz");
  ASSERT_TRUE(ready.is_ok()) << ready.status().to_string();
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("database is down"), std::string::npos) << ready->body;
}

TEST(LeaderForwarderTest, UnreachableLeaderIsA503NamingIt) {
  const std::string dead = dead_url();
  ScriptedLookup lookup;
  lookup.answers = {dead};
  Follower follower(lookup.function(), forwarder_options());
  net::HttpClient client = follower.client();
  auto response = client.request("POST", "/v1/things", "{}");
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->header("retry-after"), "1");
  EXPECT_NE(response->body.find("cannot reach the leader at " + dead), std::string::npos) << response->body;
  // Looked up again after the failure; the same answer is not tried twice.
  EXPECT_EQ(lookup.call_count(), 2u);
}

TEST(LeaderForwarderTest, RetriesOnceWhenANewLeaderIsNamed) {
  Leader leader;
  ScriptedLookup lookup;
  lookup.answers = {dead_url(), leader.url};
  Follower follower(lookup.function(), forwarder_options());
  net::HttpClient client = follower.client();
  auto response = client.request("POST", "/v1/things", "{}", {{"Idempotency-Key", "idem-2"}});
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  EXPECT_EQ(response->status, 201) << response->body;
  EXPECT_EQ(response->body, "POST /v1/things {}");
  EXPECT_EQ(lookup.call_count(), 2u);
  ASSERT_EQ(leader.handler.seen().size(), 1u);
  EXPECT_EQ(leader.handler.seen()[0].idempotency_key, "idem-2");
}

TEST(LeaderForwarderTest, DoesNotResendARequestTheDeadLeaderMayHaveActedOn) {
  Leader leader;
  HangUpLeader dying;
  ScriptedLookup lookup;
  lookup.answers = {dying.url, leader.url};
  Follower follower(lookup.function(), forwarder_options());
  net::HttpClient client = follower.client();
  auto response = client.request("POST", "/v1/completions", "{}");
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  EXPECT_EQ(response->status, 503) << response->body;
  EXPECT_EQ(response->header("retry-after"), "1");
  EXPECT_NE(response->body.find("may have taken effect"), std::string::npos) << response->body;
  EXPECT_EQ(dying.requests.load(), 1);
  EXPECT_TRUE(leader.handler.seen().empty()) << "a POST without an Idempotency-Key was sent twice";
}

TEST(LeaderForwarderTest, ResendsAnIdempotentRequestToTheNewLeader) {
  Leader leader;
  HangUpLeader dying;
  ScriptedLookup lookup;
  lookup.answers = {dying.url, leader.url};
  Follower follower(lookup.function(), forwarder_options());
  net::HttpClient client = follower.client();
  auto response = client.request("POST", "/v1/completions", "{}", {{"Idempotency-Key", "idem-3"}});
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  EXPECT_EQ(response->status, 201) << response->body;
  EXPECT_EQ(dying.requests.load(), 1);
  ASSERT_EQ(leader.handler.seen().size(), 1u);
  EXPECT_EQ(leader.handler.seen()[0].idempotency_key, "idem-3");
}

TEST(LeaderForwarderTest, NeverForwardsToItself) {
  Leader leader;
  LeaderForwarder::Options options = forwarder_options();
  options.self_url = leader.url + "/";  // the trailing '/' does not hide it
  Follower follower([url = leader.url]() -> Result<std::optional<std::string>> { return std::optional(url); },
                    std::move(options));
  net::HttpClient client = follower.client();
  auto response = client.request("GET", "/v1/me");
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->header("retry-after"), "1");
  EXPECT_TRUE(leader.handler.seen().empty());
}

TEST(LeaderForwarderTest, FullQueueIsRefusedAtOnce) {
  Leader leader;
  auto stream = std::make_shared<PushStream>();
  leader.handler.set_stream(stream);
  LeaderForwarder::Options options = forwarder_options(1);
  options.max_queued = 1;
  Follower follower([url = leader.url]() -> Result<std::optional<std::string>> { return std::optional(url); },
                    std::move(options));

  // The one worker is held by a stream until the test ends it.
  std::future<Result<net::HttpClientResponse>> first;
  std::future<Result<net::HttpClientResponse>> second;
  std::thread streaming;
  ScopeExit end_stream([&] {  // before the futures wait, the queued one included
    stream->push("", /*end=*/true);
    if (streaming.joinable()) streaming.join();
  });
  std::promise<void> head_seen;
  streaming = std::thread([&] {
    net::HttpClient client = follower.client();
    Status status = client.request_stream(
        "GET", "/stream", {}, {}, [](std::string_view) { return true; },
        [&](const net::HttpClientResponse&) { head_seen.set_value(); });
    EXPECT_TRUE(status.is_ok()) << status.to_string();
  });
  ASSERT_EQ(head_seen.get_future().wait_for(10s), std::future_status::ready);

  // A prober is not queued behind the forwards: the stream's lookup, just
  // made, answers it.
  {
    net::HttpClient client = follower.client();
    auto ready = client.request("GET", "/readyz");
    ASSERT_TRUE(ready.is_ok()) << ready.status().to_string();
    EXPECT_EQ(ready->status, 200) << ready->body;
  }

  // Of two more requests, one waits in the queue and the other is refused.
  auto ask = [&] {
    net::HttpClient client = follower.client();
    return client.request("GET", "/v1/me");
  };
  first = std::async(std::launch::async, ask);
  second = std::async(std::launch::async, ask);
  std::optional<Result<net::HttpClientResponse>> refused;
  for (auto deadline = Clock::now() + 10s; !refused && Clock::now() < deadline;) {
    if (first.wait_for(10ms) == std::future_status::ready) {
      refused.emplace(first.get());
    } else if (second.wait_for(10ms) == std::future_status::ready) {
      refused.emplace(second.get());
    }
  }
  ASSERT_TRUE(refused.has_value());
  ASSERT_TRUE(refused->is_ok()) << refused->status().to_string();
  EXPECT_EQ((*refused)->status, 503);
  EXPECT_EQ((*refused)->header("retry-after"), "1");
  EXPECT_NE((*refused)->body.find("busy forwarding"), std::string::npos) << (*refused)->body;

  stream->push("done", /*end=*/true);
  streaming.join();
  auto& queued = first.valid() ? first : second;
  Result<net::HttpClientResponse> answered = queued.get();
  ASSERT_TRUE(answered.is_ok()) << answered.status().to_string();
  EXPECT_EQ(answered->status, 201);
}

TEST(LeaderForwarderTest, StopEndsAStreamInFlightPromptly) {
  Leader leader;
  auto stream = std::make_shared<PushStream>();
  leader.handler.set_stream(stream);
  auto follower = std::make_unique<Follower>(
      [url = leader.url]() -> Result<std::optional<std::string>> { return std::optional(url); }, forwarder_options());

  // An endless stream: the leader sends a piece each time the client has
  // the previous one, until the test gives up on it.
  std::atomic<bool> give_up{false};
  std::promise<void> first_piece;
  std::atomic<int> pieces{0};
  std::thread reader;
  ScopeExit end_stream([&] {
    give_up.store(true);
    stream->push("", /*end=*/true);
    if (reader.joinable()) reader.join();
  });
  stream->push("x");
  reader = std::thread([&, client = follower->client()]() mutable {
    Status status = client.request_stream("GET", "/stream", {}, {}, [&](std::string_view) {
      if (pieces.fetch_add(1) == 0) first_piece.set_value();
      stream->push("x", give_up.load());
      return true;
    });
    EXPECT_TRUE(status.is_ok()) << status.to_string();
  });
  ASSERT_EQ(first_piece.get_future().wait_for(10s), std::future_status::ready);

  const auto start = Clock::now();
  auto stopped = std::async(std::launch::async, [&] { follower->forwarder.stop(); });
  const bool prompt = stopped.wait_for(2s) == std::future_status::ready;
  EXPECT_TRUE(prompt) << "stop() still waits for the stream after 2 s";
  if (!prompt) {
    give_up.store(true);
    stream->push("", /*end=*/true);
  }
  stopped.get();
  EXPECT_LT(Clock::now() - start, 2s);
  reader.join();  // the client's stream ended with the forward
  const int seen_at_stop = pieces.load();

  // Stopped: later requests are refused, not queued for nobody.
  net::HttpClient client = follower->client();
  auto after = client.request("GET", "/v1/me");
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  EXPECT_EQ(after->status, 503);
  EXPECT_GE(seen_at_stop, 1);
}

TEST(LeaderForwarderTest, ProtocolErrorsHaveTheApiShape) {
  LeaderForwarder forwarder([]() -> Result<std::optional<std::string>> { return std::optional<std::string>(); },
                            forwarder_options(1));
  net::HttpResponse response;
  forwarder.handle_protocol_error(431, "header_too_large", "headers over 16384 bytes", "req-1", response);
  EXPECT_EQ(response.status, 431);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(response.body,
            R"({"error":{"code":"header_too_large","message":"headers over 16384 bytes","request_id":"req-1"}})");
}

}  // namespace
}  // namespace headroom::api
