#include "net/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"

namespace headroom::net {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

long ms_since(Clock::time_point start) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

// A stream the test feeds from its own thread: next() hands out one pushed
// piece per call (kData while more are queued), then kWait, or kEnd once
// ended.
class TestStream final : public BodyStream {
 public:
  Next next(std::string& out) override {
    calls.fetch_add(1);
    std::lock_guard lock(mutex_);
    if (!pieces_.empty()) {
      out += pieces_.front();
      pieces_.pop_front();
    }
    if (!pieces_.empty()) return Next::kData;
    return ended_ ? Next::kEnd : Next::kWait;
  }

  // Any thread: queues `piece` (and the end, if asked) and wakes the server.
  void push(std::string piece, bool end = false) {
    {
      std::lock_guard lock(mutex_);
      if (!piece.empty()) pieces_.push_back(std::move(piece));
      ended_ = ended_ || end;
    }
    wake();
  }

  std::atomic<int> calls{0};

 private:
  std::mutex mutex_;
  std::deque<std::string> pieces_;
  bool ended_ = false;
};

// A request that the handler deferred, with the copies it needs to answer.
struct PendingRequest {
  std::shared_ptr<DeferredResponse> deferred;
  std::string request_id;
  std::string target;
};

// A trivial handler: answers "METHOD TARGET", plus a few special paths.
class TestHandler final : public HttpHandler {
 public:
  void handle(const HttpRequest& request, HttpResponse& response) override {
    requests.fetch_add(1);
    response.content_type = "text/plain";
    if (request.path == "/defer") {  // answered by the test, through take_pending()
      std::shared_ptr<DeferredResponse> deferred = response.defer();
      if (request.query == "wait_ms=600") deferred->wait_ms = 600;  // work known to take longer
      std::lock_guard lock(mutex_);
      pending_.push_back({std::move(deferred), std::string(request.request_id), std::string(request.target)});
      return;
    }
    if (request.path == "/stream") {  // the stream the test set, after the query as the first bytes
      response.body = std::string(request.query);
      std::lock_guard lock(mutex_);
      response.stream = stream_;
      return;
    }
    if (request.path == "/slow") {
      slow_started.store(true);
      std::this_thread::sleep_for(100ms);
      response.body = "slow done";
      return;
    }
    if (request.path == "/throw") throw std::runtime_error("boom");
    if (request.path == "/echo") {
      response.body = std::string(request.body);
      return;
    }
    if (request.path == "/rid") {
      response.body = std::string(request.request_id);
      return;
    }
    if (request.path == "/header") {  // the value of the header named by the query
      response.body = std::string(request.header(request.query));
      return;
    }
    if (request.path == "/status") {
      response.status = 418;
      response.headers.emplace_back("x-extra", "yes");
    }
    response.body = std::string(request.method) + " " + std::string(request.target);
  }

  void handle_protocol_error(int status, std::string_view code, std::string_view message, std::string_view request_id,
                             HttpResponse& response) override {
    protocol_errors.fetch_add(1);
    boost::json::object error{{"code", code}, {"message", message}, {"request_id", request_id}};
    response.status = status;
    response.content_type = "application/json";
    response.body = boost::json::serialize(boost::json::object{{"error", std::move(error)}});
  }

  // Waits up to `timeout_ms` for `count` deferred requests, and takes them.
  std::vector<PendingRequest> take_pending(std::size_t count, int timeout_ms = 5'000) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (pending_.size() >= count || Clock::now() > deadline) return std::exchange(pending_, {});
      }
      std::this_thread::sleep_for(1ms);
    }
  }

  // The stream that /stream answers with.
  void set_stream(std::shared_ptr<BodyStream> stream) {
    std::lock_guard lock(mutex_);
    stream_ = std::move(stream);
  }

  std::atomic<int> requests{0};
  std::atomic<int> protocol_errors{0};
  std::atomic<bool> slow_started{false};

 private:
  std::mutex mutex_;
  std::vector<PendingRequest> pending_;
  std::shared_ptr<BodyStream> stream_;
};

HttpResponse text_response(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.content_type = "text/plain";
  response.body = std::move(body);
  return response;
}

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "<absent>" : it->second;
  }
};

// A blocking POSIX socket to 127.0.0.1 with a small HTTP/1.1 response reader.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }

  bool connected() const { return connected_; }

  // False once the peer has gone (EPIPE, ECONNRESET).
  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  enum class Read { kData, kClosed, kTimeout };

  // Waits up to `timeout_ms` for bytes; appends them to the buffer.
  Read read_some(int timeout_ms) {
    if (closed_) return Read::kClosed;
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, timeout_ms);
    if (ready == 0) return Read::kTimeout;
    char chunk[16 * 1024];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      closed_ = true;  // EOF or reset
      return Read::kClosed;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return Read::kData;
  }

  // The next response; nullopt on close or timeout first. `head` for a HEAD
  // request (Content-Length without a body).
  std::optional<RawResponse> read_response(int timeout_ms = 3'000, bool head = false) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      std::size_t end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        RawResponse r;
        std::string head_text = buffer_.substr(0, end);
        std::size_t line_end = head_text.find("\r\n");
        std::string status_line = head_text.substr(0, line_end);
        if (status_line.size() >= 12) r.status = std::atoi(status_line.substr(9, 3).c_str());
        std::size_t pos = line_end == std::string::npos ? head_text.size() : line_end + 2;
        while (pos < head_text.size()) {
          std::size_t next = head_text.find("\r\n", pos);
          if (next == std::string::npos) next = head_text.size();
          std::string line = head_text.substr(pos, next - pos);
          std::size_t colon = line.find(':');
          if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            r.headers[name] = value;
          }
          pos = next + 2;
        }
        std::size_t length = 0;
        if (!head && r.headers.count("content-length")) length = std::stoul(r.headers["content-length"]);
        if (buffer_.size() >= end + 4 + length) {
          r.body = buffer_.substr(end + 4, length);
          buffer_.erase(0, end + 4 + length);
          return r;
        }
      }
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (left <= 0) return std::nullopt;
      if (read_some(left) != Read::kData) return std::nullopt;
    }
  }

  // Milliseconds until the peer closes, or -1 if it is still open after
  // `timeout_ms`. Bytes that arrive meanwhile are kept.
  long wait_closed(int timeout_ms) {
    auto start = Clock::now();
    for (;;) {
      int left = timeout_ms - static_cast<int>(ms_since(start));
      if (left <= 0) return -1;
      if (read_some(left) == Read::kClosed) return ms_since(start);
    }
  }

  const std::string& buffered() const { return buffer_; }
  void consume(std::size_t n) { buffer_.erase(0, n); }

  // The body of a chunked response whose head read_response(.., true) has
  // read: nullopt if the last chunk does not come within `timeout_ms`.
  std::optional<std::string> read_chunked_body(int timeout_ms = 3'000) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      std::string body;
      std::size_t pos = 0;
      for (;;) {
        std::size_t line_end = buffer_.find("\r\n", pos);
        if (line_end == std::string::npos) break;
        std::size_t size = std::stoul(buffer_.substr(pos, line_end - pos), nullptr, 16);
        if (buffer_.size() < line_end + 2 + size + 2) break;
        if (size == 0) {
          consume(line_end + 4);  // no trailers
          return body;
        }
        body += buffer_.substr(line_end + 2, size);
        pos = line_end + 2 + size + 2;
      }
      int left =
          static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (left <= 0 || read_some(left) != Read::kData) return std::nullopt;
    }
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    closed_ = true;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
};

std::string get(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) + "\r\n";
}

ServerOptions test_options() {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 2;
  options.read_timeout_ms = 3'000;
  options.idle_timeout_ms = 3'000;
  options.write_timeout_ms = 3'000;
  options.shutdown_grace_ms = 3'000;
  return options;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void start(const ServerOptions& options = test_options()) {
    auto started = HttpServer::start(options, handler_);
    ASSERT_TRUE(started.is_ok()) << started.status().to_string();
    server_ = std::move(started).value();
    ASSERT_NE(server_->port(), 0);
  }
  std::uint16_t port() const { return server_->port(); }

  TestHandler handler_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AnswersARequest) {
  start();
  EXPECT_FALSE(server_->is_tls());
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(get("/hello?x=1")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /hello?x=1");
  EXPECT_EQ(r->header("content-type"), "text/plain");
  EXPECT_EQ(r->header("content-length"), "14");
  EXPECT_EQ(r->header("server"), "headroom");
  EXPECT_NE(r->header("date"), "<absent>");
  // Handler status and headers go out as set.
  ASSERT_TRUE(c.send(get("/status")));
  auto teapot = c.read_response();
  ASSERT_TRUE(teapot.has_value());
  EXPECT_EQ(teapot->status, 418);
  EXPECT_EQ(teapot->header("x-extra"), "yes");
  // Request headers reach the handler, case-insensitively.
  ASSERT_TRUE(c.send(get("/header?x-custom", "X-CUSTOM: value 1\r\n")));
  EXPECT_EQ(c.read_response()->body, "value 1");
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  ServerOptions options = test_options();
  options.idle_timeout_ms = 100;
  start(options);
  RawClient silent(port());  // never sends a byte
  RawClient served(port());
  ASSERT_TRUE(silent.connected() && served.connected());
  ASSERT_TRUE(served.send(get("/hello")));
  auto r = served.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("connection"), "<absent>") << "HTTP/1.1 keeps the connection by default";
  long waited = served.wait_closed(2'000);
  EXPECT_GE(waited, 50) << "closed long before the idle timeout";
  EXPECT_NE(waited, -1) << "an idle keep-alive connection must be closed after idle_timeout_ms";
  EXPECT_NE(silent.wait_closed(1'000), -1) << "a connection that never sends is closed too";
  EXPECT_TRUE(served.buffered().empty()) << "nothing is sent on an idle close: " << served.buffered();
}

TEST_F(HttpServerTest, SlowlorisIsCutOffAfterReadTimeout) {
  ServerOptions options = test_options();
  options.read_timeout_ms = 120;
  options.idle_timeout_ms = 5'000;
  start(options);
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  auto start_time = Clock::now();
  ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nHost: test\r\n"));
  long closed_after = -1;
  // Keep trickling header bytes, far faster than any timeout, never finishing.
  for (int i = 0; i < 100 && closed_after < 0; ++i) {
    if (!c.send("X-Slow-" + std::to_string(i) + ": a\r\n")) {
      closed_after = ms_since(start_time);
      break;
    }
    if (c.read_some(20) == RawClient::Read::kClosed) closed_after = ms_since(start_time);
  }
  ASSERT_NE(closed_after, -1) << "the server kept a trickling client for 2 s";
  EXPECT_GE(closed_after, 80);
  EXPECT_LT(closed_after, 1'500);
  EXPECT_EQ(c.buffered().find("200 OK"), std::string::npos);
  EXPECT_EQ(handler_.requests.load(), 0);
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  std::string batch = get("/n?1") +
                      "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 7\r\n\r\npayload" +
                      "HEAD /n?3 HTTP/1.1\r\nHost: test\r\n\r\n" + get("/n?4") + get("/rid", "X-Request-Id: r5\r\n");
  ASSERT_TRUE(c.send(batch));
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  auto r3 = c.read_response(3'000, /*head=*/true);
  auto r4 = c.read_response();
  auto r5 = c.read_response();
  ASSERT_TRUE(r1 && r2 && r3 && r4 && r5) << c.buffered();
  EXPECT_EQ(r1->body, "GET /n?1");
  EXPECT_EQ(r2->body, "payload");
  EXPECT_EQ(r3->status, 200);
  EXPECT_EQ(r3->header("content-length"), "9") << "HEAD: the length of the body it would have had";
  EXPECT_EQ(r4->body, "GET /n?4") << "a HEAD response must carry no body bytes";
  EXPECT_EQ(r5->body, "r5");
  EXPECT_EQ(r5->header("x-request-id"), "r5");
}

TEST_F(HttpServerTest, PipelinedRequestsSplitAcrossWrites) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  std::string batch = get("/a") + get("/b") + get("/c");
  // Cut mid-line: the parser must carry the rest over.
  ASSERT_TRUE(c.send(batch.substr(0, 30)));
  std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(c.send(batch.substr(30)));
  for (std::string want : {"GET /a", "GET /b", "GET /c"}) {
    auto r = c.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->body, want);
  }
}

TEST_F(HttpServerTest, ExpectContinueGets100ThenTheResponse) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = c.read_response(2'000);
  ASSERT_TRUE(interim.has_value()) << "no 100 Continue before the body: " << c.buffered();
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c.send("hello"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  // Without Expect, no interim response.
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi"));
  auto plain = c.read_response();
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->status, 200);
  EXPECT_EQ(plain->body, "hi");
}

TEST_F(HttpServerTest, ExpectContinueWithATooLargeBodyGets413Not100) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: " +
                     std::to_string(limits::kHttpBodyBytes + 1) + "\r\nExpect: 100-continue\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("payload_too_large"), std::string::npos) << r->body;
  EXPECT_EQ(handler_.requests.load(), 0);
  EXPECT_NE(c.wait_closed(2'000), -1);
}

TEST_F(HttpServerTest, RequestIdIsEchoedOrGenerated) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(get("/rid", "X-Request-Id: client-id_1.2:3\r\n")));
  auto echoed = c.read_response();
  ASSERT_TRUE(echoed.has_value());
  EXPECT_EQ(echoed->header("x-request-id"), "client-id_1.2:3");
  EXPECT_EQ(echoed->body, "client-id_1.2:3");

  std::vector<std::string> generated;
  for (std::string extra : {std::string(), std::string("X-Request-Id: has space\r\n"),
                            std::string("X-Request-Id: ") + std::string(limits::kRequestIdBytes + 1, 'a') + "\r\n",
                            std::string("X-Request-Id: <script>\r\n"), std::string("X-Request-Id: \xC3\xA9\r\n")}) {
    ASSERT_TRUE(c.send(get("/rid", extra)));
    auto r = c.read_response();
    ASSERT_TRUE(r.has_value());
    std::string id = r->header("x-request-id");
    EXPECT_TRUE(id.starts_with("req_")) << id;
    EXPECT_EQ(id.size(), 4u + 21u) << id;
    EXPECT_EQ(r->body, id) << "the handler sees the id the client gets";
    generated.push_back(id);
  }
  std::sort(generated.begin(), generated.end());
  EXPECT_EQ(std::unique(generated.begin(), generated.end()), generated.end()) << "generated ids are unique";
  // The longest acceptable id is echoed.
  std::string longest(limits::kRequestIdBytes, 'b');
  ASSERT_TRUE(c.send(get("/rid", "X-Request-Id: " + longest + "\r\n")));
  EXPECT_EQ(c.read_response()->header("x-request-id"), longest);
}

TEST_F(HttpServerTest, HandlerExceptionIs500JsonAndServingGoesOn) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(get("/throw", "X-Request-Id: boom-1\r\n")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->header("content-type"), "application/json");
  boost::system::error_code ec;
  boost::json::value body = boost::json::parse(r->body, ec);
  ASSERT_FALSE(ec) << r->body;
  EXPECT_EQ(body.at("error").at("code").as_string(), "internal");
  EXPECT_EQ(body.at("error").at("request_id").as_string(), "boom-1");
  EXPECT_EQ(r->body.find("boom\""), std::string::npos) << "the exception's text is not sent to the client";
  EXPECT_EQ(handler_.protocol_errors.load(), 1);
  // The same connection and new ones keep working.
  ASSERT_TRUE(c.send(get("/after")));
  auto after = c.read_response();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->body, "GET /after");
  RawClient fresh(port());
  ASSERT_TRUE(fresh.send(get("/fresh")));
  EXPECT_EQ(fresh.read_response()->body, "GET /fresh");
}

TEST_F(HttpServerTest, MalformedRequestIs400AndClosed) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("THIS IS NOT HTTP\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("bad_request"), std::string::npos) << r->body;
  EXPECT_NE(r->header("x-request-id"), "<absent>");
  EXPECT_NE(c.wait_closed(2'000), -1);
  EXPECT_EQ(handler_.requests.load(), 0);
}

TEST_F(HttpServerTest, OversizedHeaderIs431) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  std::string big = get("/x", "X-Big: " + std::string(limits::kHttpHeaderBytes + 100, 'a') + "\r\n");
  c.send(big);  // the server may answer and close before reading it all
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value()) << c.buffered();
  EXPECT_EQ(r->status, 431);
  EXPECT_NE(r->body.find("header_too_large"), std::string::npos) << r->body;
  EXPECT_EQ(handler_.requests.load(), 0);
}

TEST_F(HttpServerTest, DeclaredBodyOverTheLimitIs413) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: " +
                     std::to_string(limits::kHttpBodyBytes * 2) + "\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(handler_.requests.load(), 0);
}

TEST_F(HttpServerTest, BodyOfExactlyTheLimitIsAccepted) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  std::string body(limits::kHttpBodyBytes, 'z');
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n" + body));
  auto r = c.read_response(5'000);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), body.size());
}

TEST_F(HttpServerTest, ChunkedRequestBody) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello, world");
  // A chunk that would take the body past the limit is refused.
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"));
  char hex[32];
  std::snprintf(hex, sizeof hex, "%zx\r\n", limits::kHttpBodyBytes + 1);
  ASSERT_TRUE(c.send(hex));
  auto too_big = c.read_response();
  ASSERT_TRUE(too_big.has_value()) << c.buffered();
  EXPECT_EQ(too_big->status, 413);
  EXPECT_EQ(handler_.requests.load(), 1);
}

TEST_F(HttpServerTest, ConnectionCloseAndHttp10) {
  start();
  {
    RawClient c(port());
    ASSERT_TRUE(c.send(get("/bye", "Connection: close\r\n")));
    auto r = c.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->header("connection"), "close");
    EXPECT_NE(c.wait_closed(2'000), -1);
  }
  {
    RawClient c(port());
    ASSERT_TRUE(c.send("GET /old HTTP/1.0\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->body, "GET /old");
    EXPECT_NE(c.wait_closed(2'000), -1) << "HTTP/1.0 without keep-alive closes";
  }
}

TEST_F(HttpServerTest, StopReturnsPromptlyWithIdleConnectionsOpen) {
  ServerOptions options = test_options();
  options.shutdown_grace_ms = 5'000;
  options.idle_timeout_ms = 10'000;
  start(options);
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 5; ++i) {
    idle.push_back(std::make_unique<RawClient>(port()));
    ASSERT_TRUE(idle.back()->send(get("/warm")));
    ASSERT_TRUE(idle.back()->read_response().has_value());
  }
  RawClient never_sent(port());
  ASSERT_TRUE(never_sent.connected());
  std::this_thread::sleep_for(10ms);  // let the server register the last connection
  auto start_time = Clock::now();
  server_->stop();
  long took = ms_since(start_time);
  EXPECT_LT(took, 1'000) << "stop() waited for idle keep-alive connections";
  for (auto& c : idle) EXPECT_NE(c->wait_closed(1'000), -1);
  EXPECT_NE(never_sent.wait_closed(1'000), -1);
  server_->stop();  // idempotent
}

TEST_F(HttpServerTest, StopLetsAnInFlightRequestFinishWithConnectionClose) {
  ServerOptions options = test_options();
  options.shutdown_grace_ms = 3'000;
  start(options);
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(get("/slow")));
  auto wait_start = Clock::now();
  while (!handler_.slow_started.load() && ms_since(wait_start) < 2'000) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(handler_.slow_started.load());

  auto start_time = Clock::now();
  server_->stop();
  long took = ms_since(start_time);
  EXPECT_LT(took, 2'000) << "stop() should return once the in-flight request is done";

  auto r = c.read_response(1'000);
  ASSERT_TRUE(r.has_value()) << "the in-flight request was cut: " << c.buffered();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "slow done");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_NE(c.wait_closed(1'000), -1);

  // No longer accepting: refused, or at least never answered.
  RawClient late(port());
  if (late.connected()) {
    late.send(get("/late"));
    EXPECT_FALSE(late.read_response(300).has_value());
  }
}

TEST_F(HttpServerTest, DestructorStops) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/x")));
  ASSERT_TRUE(c.read_response().has_value());
  auto start_time = Clock::now();
  server_.reset();
  EXPECT_LT(ms_since(start_time), 1'000);
  EXPECT_NE(c.wait_closed(1'000), -1);
}

TEST_F(HttpServerTest, TwoHundredConcurrentConnections) {
  ServerOptions options = test_options();
  options.threads = 4;
  start(options);
  constexpr int kConnections = 200;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kConnections; ++i) {
    clients.push_back(std::make_unique<RawClient>(port()));
    ASSERT_TRUE(clients.back()->connected()) << i;
  }
  // Every connection open at once, each with a request in flight.
  for (int i = 0; i < kConnections; ++i) ASSERT_TRUE(clients[i]->send(get("/c?" + std::to_string(i))));
  int ok = 0;
  for (int i = 0; i < kConnections; ++i) {
    auto r = clients[i]->read_response(5'000);
    if (r && r->status == 200 && r->body == "GET /c?" + std::to_string(i)) ++ok;
  }
  EXPECT_EQ(ok, kConnections);
  EXPECT_EQ(handler_.requests.load(), kConnections);
  // And a second round on the same (kept-alive) connections.
  for (int i = 0; i < kConnections; ++i) ASSERT_TRUE(clients[i]->send(get("/d?" + std::to_string(i))));
  ok = 0;
  for (int i = 0; i < kConnections; ++i) {
    auto r = clients[i]->read_response(5'000);
    if (r && r->body == "GET /d?" + std::to_string(i)) ++ok;
  }
  EXPECT_EQ(ok, kConnections);
}

TEST(HttpServerStart, BadOptions) {
  TestHandler handler;
  ServerOptions bad_host = test_options();
  bad_host.host = "not-an-address";
  auto a = HttpServer::start(bad_host, handler);
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), ErrorCode::kInvalidArgument);

  auto first = HttpServer::start(test_options(), handler);
  ASSERT_TRUE(first.is_ok());
  ServerOptions same_port = test_options();
  same_port.port = (*first)->port();
  auto second = HttpServer::start(same_port, handler);
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(second.status().message().find(std::to_string(same_port.port)), std::string::npos);

  ServerOptions half_tls = test_options();
  half_tls.tls_cert_path = "/nonexistent/cert.pem";
  auto c = HttpServer::start(half_tls, handler);
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("both"), std::string::npos);

  ServerOptions missing_files = test_options();
  missing_files.tls_cert_path = "/nonexistent/cert.pem";
  missing_files.tls_key_path = "/nonexistent/key.pem";
  auto d = HttpServer::start(missing_files, handler);
  ASSERT_FALSE(d.is_ok());
  EXPECT_EQ(d.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("/nonexistent/cert.pem"), std::string::npos);
}

// ---- Deferred responses. ----

TEST_F(HttpServerTest, DeferredResponseIsCompletedFromAnotherThreadWhileOthersAreServed) {
  start();
  RawClient deferred_client(port());
  ASSERT_TRUE(deferred_client.connected());
  // A deferred request, with an ordinary one pipelined behind it.
  ASSERT_TRUE(deferred_client.send(get("/defer?a", "X-Request-Id: deferred-1\r\n") + get("/after")));
  auto pending = handler_.take_pending(1);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].request_id, "deferred-1");
  EXPECT_EQ(pending[0].target, "/defer?a");

  // Other connections are served meanwhile, on both I/O threads.
  for (int i = 0; i < 4; ++i) {
    RawClient other(port());
    ASSERT_TRUE(other.send(get("/other?" + std::to_string(i))));
    auto r = other.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->body, "GET /other?" + std::to_string(i));
  }
  EXPECT_EQ(deferred_client.read_some(20), RawClient::Read::kTimeout) << deferred_client.buffered();

  std::thread completer([&] {
    std::this_thread::sleep_for(30ms);
    HttpResponse response = text_response(201, "done " + pending[0].target);
    response.headers.emplace_back("x-extra", "late");
    pending[0].deferred->complete(std::move(response));
  });
  auto r = deferred_client.read_response();
  completer.join();
  ASSERT_TRUE(r.has_value()) << deferred_client.buffered();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "done /defer?a");
  EXPECT_EQ(r->header("x-request-id"), "deferred-1");
  EXPECT_EQ(r->header("x-extra"), "late");
  EXPECT_EQ(r->header("connection"), "<absent>");
  auto after = deferred_client.read_response();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->body, "GET /after") << "the pipelined request is answered after the deferred one";
  EXPECT_TRUE(pending[0].deferred->done());

  // HEAD: the deferred response's length, without its body; the connection goes on.
  ASSERT_TRUE(deferred_client.send("HEAD /defer HTTP/1.1\r\nHost: test\r\n\r\n" + get("/next")));
  auto head_pending = handler_.take_pending(1);
  ASSERT_EQ(head_pending.size(), 1u);
  head_pending[0].deferred->complete(text_response(200, "twelve bytes"));
  auto head = deferred_client.read_response(3'000, /*head=*/true);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->header("content-length"), "12");
  auto next = deferred_client.read_response();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->body, "GET /next");
}

TEST_F(HttpServerTest, FiveHundredDeferredRequestsCompletedInOneBatch) {
  start();
  constexpr int kRequests = 500;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.push_back(std::make_unique<RawClient>(port()));
    ASSERT_TRUE(clients.back()->connected()) << i;
    ASSERT_TRUE(
        clients.back()->send(get("/defer?" + std::to_string(i), "X-Request-Id: batch-" + std::to_string(i) + "\r\n")));
  }
  auto pending = handler_.take_pending(kRequests);
  ASSERT_EQ(pending.size(), static_cast<std::size_t>(kRequests));
  // All in flight on two I/O threads, which still answer others.
  RawClient other(port());
  ASSERT_TRUE(other.send(get("/still")));
  auto still = other.read_response();
  ASSERT_TRUE(still.has_value());
  EXPECT_EQ(still->body, "GET /still");

  // One "commit" answers them all, from one other thread.
  std::thread committer([&] {
    for (auto& p : pending) p.deferred->complete(text_response(201, p.request_id + " " + p.target));
  });
  int ok = 0;
  for (int i = 0; i < kRequests; ++i) {
    auto r = clients[i]->read_response(10'000);
    std::string id = "batch-" + std::to_string(i);
    if (r && r->status == 201 && r->body == id + " /defer?" + std::to_string(i) && r->header("x-request-id") == id) {
      ++ok;
    }
  }
  committer.join();
  EXPECT_EQ(ok, kRequests);
}

TEST_F(HttpServerTest, DeferredCompletionAfterTheClientLeftIsHarmless) {
  start();
  {
    RawClient gone(port());
    ASSERT_TRUE(gone.send(get("/defer")));
    auto pending = handler_.take_pending(1);
    ASSERT_EQ(pending.size(), 1u);
    gone.close();
    std::this_thread::sleep_for(20ms);
    pending[0].deferred->complete(text_response(200, std::string(64 * 1024, 'x')));  // more than one write
  }
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/fine")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "GET /fine");
}

TEST_F(HttpServerTest, DeferredResponseCompletedTwiceKeepsTheFirst) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/defer")));
  auto pending = handler_.take_pending(1);
  ASSERT_EQ(pending.size(), 1u);
  pending[0].deferred->complete(text_response(200, "first"));
  pending[0].deferred->complete(text_response(500, "second"));  // a bug: logged and ignored
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "first");
  EXPECT_EQ(c.read_some(50), RawClient::Read::kTimeout) << c.buffered();
}

TEST_F(HttpServerTest, DeferredResponseNotCompletedInTimeIs503AndClosed) {
  ServerOptions options = test_options();
  options.deferred_timeout_ms = 100;
  start(options);
  RawClient c(port());
  auto start_time = Clock::now();
  ASSERT_TRUE(c.send(get("/defer", "X-Request-Id: too-late\r\n")));
  auto pending = handler_.take_pending(1);
  ASSERT_EQ(pending.size(), 1u);
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_GE(ms_since(start_time), 90);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("unavailable"), std::string::npos) << r->body;
  EXPECT_EQ(r->header("x-request-id"), "too-late");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_NE(c.wait_closed(1'000), -1);
  EXPECT_EQ(handler_.protocol_errors.load(), 1);
  EXPECT_TRUE(pending[0].deferred->done()) << "the server gave up on it";
  pending[0].deferred->complete(text_response(200, "too late"));  // dropped
}

TEST_F(HttpServerTest, ADeferredResponseMayAskForALongerWait) {
  ServerOptions options = test_options();
  options.deferred_timeout_ms = 100;
  start(options);
  RawClient c(port());
  auto start_time = Clock::now();
  ASSERT_TRUE(c.send(get("/defer?wait_ms=600")));
  auto pending = handler_.take_pending(1);
  ASSERT_EQ(pending.size(), 1u);
  std::this_thread::sleep_for(250ms);  // past the server's 100 ms, within the response's 600
  pending[0].deferred->complete(text_response(200, "slow but sure"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "slow but sure");
  // And past its own wait, it too is given up on.
  ASSERT_TRUE(c.send(get("/defer?wait_ms=600")));
  pending = handler_.take_pending(1);
  ASSERT_EQ(pending.size(), 1u);
  r = c.read_response(3'000);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_GE(ms_since(start_time), 250 + 550);
}

TEST_F(HttpServerTest, StopWaitsForADeferredResponseCompletedWithinTheGrace) {
  ServerOptions options = test_options();
  options.shutdown_grace_ms = 3'000;
  start(options);
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/defer")));
  auto pending = handler_.take_pending(1);
  ASSERT_EQ(pending.size(), 1u);
  std::thread completer([&] {
    std::this_thread::sleep_for(100ms);
    pending[0].deferred->complete(text_response(200, "committed"));
  });
  auto start_time = Clock::now();
  server_->stop();
  long took = ms_since(start_time);
  completer.join();
  EXPECT_GE(took, 80);
  EXPECT_LT(took, 2'000);
  auto r = c.read_response(1'000);
  ASSERT_TRUE(r.has_value()) << c.buffered();
  EXPECT_EQ(r->body, "committed");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_NE(c.wait_closed(1'000), -1);
}

TEST_F(HttpServerTest, StopAbandonsADeferredResponseAfterTheGrace) {
  ServerOptions options = test_options();
  options.shutdown_grace_ms = 200;
  start(options);
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/defer")));
  RawClient c2(port());
  ASSERT_TRUE(c2.send(get("/defer")));
  auto pending = handler_.take_pending(2);
  ASSERT_EQ(pending.size(), 2u);
  auto start_time = Clock::now();
  server_->stop();
  long took = ms_since(start_time);
  EXPECT_GE(took, 150);
  EXPECT_LT(took, 1'500) << "stop() waits for a deferred response no longer than its grace";
  EXPECT_TRUE(pending[0].deferred->done());
  // Completion after the stop, and after the server is gone: dropped, safely.
  pending[0].deferred->complete(text_response(200, "after stop"));
  server_.reset();
  pending[1].deferred->complete(text_response(200, "after destruction"));
  EXPECT_NE(c.wait_closed(1'000), -1);
  EXPECT_EQ(c.buffered().find("after"), std::string::npos);
}

TEST_F(HttpServerTest, DeferredCompletionMayCarryAStream) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/defer")));
  auto pending = handler_.take_pending(1);
  ASSERT_EQ(pending.size(), 1u);
  auto stream = std::make_shared<TestStream>();
  stream->push("queued; ");
  stream->push("running", /*end=*/true);
  HttpResponse response = text_response(200, "accepted; ");
  response.stream = stream;
  pending[0].deferred->complete(std::move(response));
  auto head = c.read_response(3'000, /*head=*/true);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->header("transfer-encoding"), "chunked");
  EXPECT_EQ(c.read_chunked_body(), "accepted; queued; running");
}

// ---- Streamed responses. ----

TEST_F(HttpServerTest, StreamIsSentInChunksAsItsDataComes) {
  ServerOptions options = test_options();
  options.stream_poll_ms = 20;
  start(options);
  auto stream = std::make_shared<TestStream>();
  handler_.set_stream(stream);
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/stream?hello", "X-Request-Id: s-1\r\n")));
  auto head = c.read_response(3'000, /*head=*/true);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("transfer-encoding"), "chunked");
  EXPECT_EQ(head->header("content-length"), "<absent>");
  EXPECT_EQ(head->header("x-request-id"), "s-1");
  // The response's body goes first, at once; the stream has nothing yet.
  while (c.buffered().find("hello\r\n") == std::string::npos) {
    ASSERT_EQ(c.read_some(2'000), RawClient::Read::kData);
  }
  EXPECT_EQ(c.buffered(), "5\r\nhello\r\n");
  c.consume(c.buffered().size());
  // While it waits, next() is polled.
  auto wait_start = Clock::now();
  while (stream->calls.load() < 4 && ms_since(wait_start) < 2'000) std::this_thread::sleep_for(5ms);
  EXPECT_GE(stream->calls.load(), 4);
  std::thread producer([&] {
    stream->push("one");
    stream->push("-two");
    stream->push("", /*end=*/true);
  });
  producer.join();
  auto body = c.read_chunked_body();
  ASSERT_TRUE(body.has_value()) << c.buffered();
  EXPECT_EQ(*body, "one-two");
  int calls = stream->calls.load();
  // The connection carries the next request; the ended stream is not called again.
  ASSERT_TRUE(c.send(get("/after")));
  auto after = c.read_response();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->body, "GET /after");
  EXPECT_EQ(stream->calls.load(), calls);
}

TEST_F(HttpServerTest, StreamWakeFromAnotherThreadIsPrompt) {
  ServerOptions options = test_options();
  options.stream_poll_ms = 10'000;  // only wake() can be prompt
  start(options);
  auto stream = std::make_shared<TestStream>();
  handler_.set_stream(stream);
  auto client = HttpClient::create("http://127.0.0.1:" + std::to_string(port()));
  ASSERT_TRUE(client.is_ok());
  std::vector<std::string> chunks;
  std::vector<long> delays_ms;
  int head_status = 0;
  std::string transfer_encoding;
  Clock::time_point pushed = Clock::now();
  int next_piece = 0;
  // Each chunk the client gets makes a thread push the next piece.
  std::vector<std::thread> producers;
  auto start_time = Clock::now();
  Status status = client->request_stream(
      "GET", "/stream?first", {}, {},
      [&](std::string_view chunk) {
        chunks.emplace_back(chunk);
        delays_ms.push_back(ms_since(pushed));
        ++next_piece;
        pushed = Clock::now();
        producers.emplace_back(
            [&stream, piece = next_piece] { stream->push("piece " + std::to_string(piece), /*end=*/piece == 3); });
        return true;
      },
      [&](const HttpClientResponse& head) {
        head_status = head.status;
        transfer_encoding = head.header("transfer-encoding");
      });
  for (auto& t : producers) t.join();
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(head_status, 200);
  EXPECT_EQ(transfer_encoding, "chunked");
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0], "first");
  EXPECT_EQ(chunks[1], "piece 1");
  EXPECT_EQ(chunks[3], "piece 3");
  for (long d : delays_ms) EXPECT_LT(d, 2'000) << "a woken stream waited for the poll";
  EXPECT_LT(ms_since(start_time), 5'000);
  // The stream ended cleanly: the kept connection serves the next request.
  auto after = client->request("GET", "/after");
  ASSERT_TRUE(after.is_ok());
  EXPECT_EQ(after->body, "GET /after");
}

TEST_F(HttpServerTest, StreamEndsWhenTheClientLeaves) {
  ServerOptions options = test_options();
  options.stream_poll_ms = 10;
  start(options);
  for (bool producing : {false, true}) {
    auto stream = std::make_shared<TestStream>();
    handler_.set_stream(stream);
    {
      RawClient c(port());
      ASSERT_TRUE(c.send(get("/stream?x")));
      ASSERT_TRUE(c.read_response(3'000, /*head=*/true).has_value());
      c.close();
    }
    handler_.set_stream(nullptr);
    // Waiting (the server sees the hang-up) or producing (a write fails):
    // either way the server lets go of the stream.
    std::atomic<bool> done{false};
    std::thread producer([&] {
      while (producing && !done.load()) {
        stream->push(std::string(4096, 'p'));
        std::this_thread::sleep_for(1ms);
      }
    });
    auto wait_start = Clock::now();
    while (stream.use_count() > 1 && ms_since(wait_start) < 3'000) std::this_thread::sleep_for(5ms);
    done.store(true);
    producer.join();
    EXPECT_EQ(stream.use_count(), 1) << "the server still holds a stream whose client left (producing=" << producing
                                     << ")";
    int calls = stream->calls.load();
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(stream->calls.load(), calls) << "next() is called after the client left";
    stream->wake();  // detached: does nothing
  }
}

TEST_F(HttpServerTest, HeadOnAStreamSendsTheHeadOnly) {
  start();
  auto stream = std::make_shared<TestStream>();
  handler_.set_stream(stream);
  RawClient c(port());
  ASSERT_TRUE(c.send("HEAD /stream?body HTTP/1.1\r\nHost: test\r\n\r\n" + get("/after")));
  auto head = c.read_response(3'000, /*head=*/true);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("transfer-encoding"), "chunked");
  auto after = c.read_response();
  ASSERT_TRUE(after.has_value()) << c.buffered();
  EXPECT_EQ(after->body, "GET /after");
  EXPECT_EQ(stream->calls.load(), 0);
}

TEST_F(HttpServerTest, StreamToAnHttp10ClientEndsWithTheConnection) {
  start();
  auto stream = std::make_shared<TestStream>();
  stream->push("old ");
  stream->push("school", /*end=*/true);
  handler_.set_stream(stream);
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /stream HTTP/1.0\r\n\r\n"));
  EXPECT_NE(c.wait_closed(3'000), -1);
  const std::string& raw = c.buffered();
  EXPECT_TRUE(raw.starts_with("HTTP/1.0 200")) << raw;
  EXPECT_EQ(raw.find("Transfer-Encoding"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("Content-Length"), std::string::npos) << raw;
  EXPECT_TRUE(raw.ends_with("\r\n\r\nold school")) << raw;
}

TEST_F(HttpServerTest, StopEndsAStreamWithItsLastChunk) {
  ServerOptions options = test_options();
  options.stream_poll_ms = 10'000;
  options.shutdown_grace_ms = 5'000;
  start(options);
  auto stream = std::make_shared<TestStream>();
  handler_.set_stream(stream);
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/stream?partial")));
  auto head = c.read_response(3'000, /*head=*/true);
  ASSERT_TRUE(head.has_value());
  while (c.buffered().find("partial\r\n") == std::string::npos) {
    ASSERT_EQ(c.read_some(2'000), RawClient::Read::kData);
  }
  auto start_time = Clock::now();
  server_->stop();
  EXPECT_LT(ms_since(start_time), 1'000) << "stop() waited for a stream";
  auto body = c.read_chunked_body(1'000);
  ASSERT_TRUE(body.has_value()) << c.buffered();
  EXPECT_EQ(*body, "partial");
  EXPECT_NE(c.wait_closed(1'000), -1);
  stream->push("after stop", true);  // wake() on a stopped server: nothing
  EXPECT_EQ(stream.use_count(), 2) << "held by the test and the handler only";
}

TEST_F(HttpServerTest, StreamThatThrowsDropsItsConnectionOnly) {
  ServerOptions options = test_options();
  options.read_timeout_ms = 200;  // a fast sweep, to run over the connection's old entry
  options.write_timeout_ms = 200;
  start(options);
  class Throwing final : public BodyStream {
   public:
    Next next(std::string&) override { throw std::runtime_error("stream bug"); }
  };
  handler_.set_stream(std::make_shared<Throwing>());
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/stream")));
  EXPECT_NE(c.wait_closed(2'000), -1);
  EXPECT_EQ(c.buffered().find("0\r\n\r\n"), std::string::npos) << "a broken stream must not look complete";
  std::this_thread::sleep_for(150ms);
  RawClient other(port());
  ASSERT_TRUE(other.send(get("/fine")));
  auto r = other.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "GET /fine");
}

// ---- HTTPS, with a self-signed certificate made by the openssl CLI. ----

class HttpsServerTest : public HttpServerTest {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::path(::testing::TempDir()) / "headroom_server_tls_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    cert_ = (dir_ / "cert.pem").string();
    key_ = (dir_ / "key.pem").string();
    std::string command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                          "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
                          "-keyout '" + key_ + "' -out '" + cert_ + "' >/dev/null 2>&1";
    int rc = std::system(command.c_str());
    if (rc != 0) GTEST_SKIP() << "the openssl command line tool is not available (" << rc << ")";
    ServerOptions options = test_options();
    options.tls_cert_path = cert_;
    options.tls_key_path = key_;
    start(options);
  }
  void TearDown() override {
    server_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::filesystem::path dir_;
  std::string cert_, key_;
};

TEST_F(HttpsServerTest, RequestOverTlsWithTheCertAsCa) {
  EXPECT_TRUE(server_->is_tls());
  for (std::string host : {"localhost", "127.0.0.1"}) {
    auto client = HttpClient::create("https://" + host + ":" + std::to_string(port()), {.ca_file = cert_});
    ASSERT_TRUE(client.is_ok()) << client.status().to_string();
    auto r = client->request("GET", "/hello", {}, {{"X-Request-Id", "tls-1"}});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "GET /hello");
    EXPECT_EQ(r->header("x-request-id"), "tls-1");
    // A second request on the kept TLS connection, with a body.
    auto echo = client->request("POST", "/echo", R"({"a":1})");
    ASSERT_TRUE(echo.is_ok()) << echo.status().to_string();
    EXPECT_EQ(echo->body, R"({"a":1})");
    client->close();
  }
}

TEST_F(HttpsServerTest, UntrustedClientFailsAndServerGoesOn) {
  // The system store does not trust our self-signed certificate.
  auto untrusted = HttpClient::create("https://localhost:" + std::to_string(port()));
  ASSERT_TRUE(untrusted.is_ok());
  auto refused = untrusted->request("GET", "/hello");
  EXPECT_FALSE(refused.is_ok());
  // Plain HTTP to the TLS port gets no HTTP answer.
  RawClient plain(port());
  ASSERT_TRUE(plain.connected());
  plain.send(get("/hello"));
  EXPECT_FALSE(plain.read_response(1'000).has_value());
  // The server still serves.
  auto client = HttpClient::create("https://localhost:" + std::to_string(port()), {.ca_file = cert_});
  ASSERT_TRUE(client.is_ok());
  auto r = client->request("GET", "/still");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->body, "GET /still");
  client->close();
}

TEST_F(HttpsServerTest, DeferredAndStreamedResponsesOverTls) {
  auto client = HttpClient::create("https://localhost:" + std::to_string(port()), {.ca_file = cert_});
  ASSERT_TRUE(client.is_ok());
  std::thread completer([&] {
    auto pending = handler_.take_pending(1);
    ASSERT_EQ(pending.size(), 1u);
    pending[0].deferred->complete(text_response(202, "later"));
  });
  auto deferred = client->request("POST", "/defer", "{}");
  completer.join();
  ASSERT_TRUE(deferred.is_ok()) << deferred.status().to_string();
  EXPECT_EQ(deferred->status, 202);
  EXPECT_EQ(deferred->body, "later");

  auto stream = std::make_shared<TestStream>();
  handler_.set_stream(stream);
  std::string body;
  Status status = client->request_stream("GET", "/stream?a", {}, {}, [&](std::string_view chunk) {
    body += chunk;
    if (body == "a") stream->push("b");
    if (body == "ab") stream->push("c", /*end=*/true);
    return true;
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(body, "abc");
  auto after = client->request("GET", "/after");
  ASSERT_TRUE(after.is_ok());
  EXPECT_EQ(after->body, "GET /after");
  client->close();
}

}  // namespace
}  // namespace headroom::net
