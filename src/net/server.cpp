#include "net/server.h"

#include <poll.h>
#include <time.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <charconv>
#include <ctime>
#include <limits>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/crypto.h"
#include "common/limits.h"
#include "common/random.h"

namespace headroom::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// Why not beast::tcp_stream and http::async_read/async_write: their per-operation
// timers and composed buffer sequences cost more than the rest of a small
// request together. Here a connection carries one deadline, checked by a
// per-thread sweep; Beast's parser is fed synchronously from our buffer; and
// a response goes out as one gather write of a header we format ourselves.
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunkBytes = 16 * 1024;
constexpr std::size_t kBufferBytes = limits::kHttpHeaderBytes + limits::kHttpBodyBytes + kReadChunkBytes;

using BeastRequest = http::request<http::string_body>;

class BeastHeaders final : public HeaderSource {
 public:
  explicit BeastHeaders(const BeastRequest& request) : request_(request) {}
  std::string_view get(std::string_view name) const override {
    auto it = request_.find(name);
    if (it == request_.end()) return {};
    return std::string_view(it->value());
  }

 private:
  const BeastRequest& request_;
};

// Milliseconds on a coarse monotonic clock: deadlines need no more and it
// costs a few nanoseconds.
std::int64_t coarse_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

constexpr std::int64_t kNoDeadline = std::numeric_limits<std::int64_t>::max();

// A connection as its worker's sweep sees it. Owned by its coroutine; listed
// in its worker's registry, which only that worker's thread touches.
struct Connection {
  tcp::socket* socket = nullptr;
  std::int64_t deadline_ms = 0;  // the sweep cancels the connection's I/O past it
  bool idle = true;              // between requests: closed at once on shutdown
  // While parked (see Parking): the timer it waits on, and what it waits for.
  asio::steady_timer* wake_timer = nullptr;
  // Set by a wake that came while the connection was not waiting (writing,
  // or in next()): its next wait returns at once instead of missing it.
  bool woken = false;
  DeferredResponse* deferred = nullptr;
  BodyStream* stream = nullptr;
};

struct Worker {
  // The registries come before `io`: the coroutines still suspended when the
  // server stops are destroyed with `io`, and unregister themselves on the way.
  std::unordered_set<Connection*> connections;
  std::unordered_map<std::uint64_t, Connection*> parked;  // see Parking
  std::uint64_t next_park_id = 0;
  asio::io_context io{1};  // one thread each: no locking inside Asio
  std::thread thread;
};

// Lists a connection in its worker's registry for the life of its coroutine,
// however that ends.
class Registered {
 public:
  Registered(Worker& worker, Connection& conn) : worker_(worker), conn_(conn) { worker_.connections.insert(&conn_); }
  ~Registered() { worker_.connections.erase(&conn_); }
  Registered(const Registered&) = delete;
  Registered& operator=(const Registered&) = delete;

 private:
  Worker& worker_;
  Connection& conn_;
};

// Wakes a parked connection from any thread: posts to its worker, which looks
// the connection up by id. It holds no pointer into the connection's
// coroutine, which may be gone by the time the post runs. Valid while the
// worker's io_context lives: everything that holds one (a DeferredResponse's
// hook, a BodyStream's waker) is detached when the Parking ends, and by
// stop() before the workers are destroyed.
struct Waker {
  Worker* worker;
  std::uint64_t id;
  void operator()() const {
    asio::post(worker->io, [worker = worker, id = id] {
      auto it = worker->parked.find(id);
      if (it == worker->parked.end()) return;
      it->second->woken = true;
      if (it->second->wake_timer) it->second->wake_timer->cancel();
    });
  }
};

// A connection waiting, with no socket I/O, for a deferred response to
// complete or for a stream to have more bytes: its wait is on timer(), which
// the deferred response's completion, the stream's wake() or stop() cancel.
// Attaches the waker on construction and detaches it (abandoning a deferred
// response never taken) on destruction.
class Parking {
 public:
  Parking(Worker& worker, Connection& conn, DeferredResponse* deferred, BodyStream* stream)
      : worker_(worker), conn_(conn), timer_(worker.io), id_(++worker.next_park_id) {
    worker_.parked.emplace(id_, &conn_);
    conn_.wake_timer = &timer_;
    conn_.deadline_ms = kNoDeadline;  // no socket I/O while parked
    conn_.deferred = deferred;
    conn_.stream = stream;
    Waker waker{&worker_, id_};
    if (deferred) deferred->on_complete([waker](HttpResponse&) { waker(); });
    if (stream) stream->set_waker(waker);
  }
  ~Parking() {
    if (conn_.deferred) conn_.deferred->abandon();  // nothing once taken
    if (conn_.stream) conn_.stream->set_waker({});
    conn_.deferred = nullptr;
    conn_.stream = nullptr;
    conn_.wake_timer = nullptr;
    conn_.woken = false;
    worker_.parked.erase(id_);
  }
  Parking(const Parking&) = delete;
  Parking& operator=(const Parking&) = delete;

  asio::steady_timer& timer() { return timer_; }

 private:
  Worker& worker_;
  Connection& conn_;
  asio::steady_timer timer_;
  std::uint64_t id_;
};

// True when the client has hung up (or the socket failed), seen without
// reading, so that the bytes of a pipelined request stay where they are.
bool peer_hung_up(tcp::socket& socket) {
  pollfd p{socket.native_handle(), POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

// "Thu, 26 Nov 2026 06:21:42 GMT", recomputed at most once a second per thread.
std::string_view http_date() {
  thread_local std::time_t cached_second = 0;
  thread_local char text[40];
  thread_local std::size_t length = 0;
  std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    std::tm tm;
    gmtime_r(&now, &tm);
    length = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_second = now;
  }
  return {text, length};
}

// A client's request id is echoed when it is short and plain; otherwise ours.
void make_request_id(std::string_view from_client, std::string& out) {
  if (!from_client.empty() && from_client.size() <= limits::kRequestIdBytes) {
    bool plain = true;
    for (char c : from_client) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                c == '.' || c == ':';
      if (!ok) { plain = false; break; }
    }
    if (plain) {
      out.assign(from_client);
      return;
    }
  }
  // Unique, not secret: a per-thread generator seeded from the CSPRNG.
  thread_local SeededRandom random = [] {
    SecureRandom secure;
    return SeededRandom(secure.next_u64());
  }();
  std::uint8_t bytes[13];
  random.fill(bytes);
  out = "req_";
  out += base32_lower(bytes);
}

void append_number(std::string& out, std::size_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

// How the end of a body is told.
enum class Framing {
  kLength,      // Content-Length
  kChunked,     // Transfer-Encoding: chunked (a stream, HTTP/1.1)
  kUntilClose,  // the connection closes (a stream, HTTP/1.0)
};

// The status line and headers of `response`, into `out` (reused, so that a
// keep-alive connection formats without allocating).
void format_head(const HttpResponse& response, std::string_view request_id, bool keep_alive, bool http10,
                 Framing framing, std::string& out) {
  out.clear();
  out += http10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  append_number(out, static_cast<std::size_t>(response.status));
  out += ' ';
  out += std::string_view(http::obsolete_reason(static_cast<http::status>(response.status)));
  out += "\r\nServer: headroom\r\nDate: ";
  out += http_date();
  out += "\r\nx-request-id: ";
  out += request_id;
  if (!response.content_type.empty()) {
    out += "\r\nContent-Type: ";
    out += response.content_type;
  }
  if (framing == Framing::kLength) {
    out += "\r\nContent-Length: ";
    append_number(out, response.body.size());
  } else if (framing == Framing::kChunked) {
    out += "\r\nTransfer-Encoding: chunked";
  }
  if (!keep_alive && !http10) out += "\r\nConnection: close";
  if (keep_alive && http10) out += "\r\nConnection: keep-alive";
  for (const auto& [name, value] : response.headers) {
    ASSERT(name.find_first_of("\r\n") == std::string::npos && value.find_first_of("\r\n") == std::string::npos);
    out += "\r\n";
    out += name;
    out += ": ";
    out += value;
  }
  out += "\r\n\r\n";
}

class ServerImpl final : public HttpServer {
 public:
  ServerImpl(const ServerOptions& options, HttpHandler& handler) : options_(options), handler_(handler) {}
  ~ServerImpl() override { stop(); }

  Status open() {
    std::size_t threads = std::clamp<std::size_t>(options_.threads, 1, limits::kServerThreads);
    for (std::size_t i = 0; i < threads; ++i) workers_.push_back(std::make_unique<Worker>());

    if (!options_.tls_cert_path.empty() || !options_.tls_key_path.empty()) {
      if (options_.tls_cert_path.empty() || options_.tls_key_path.empty()) {
        return Status::invalid_argument("HTTPS needs both --tls-cert and --tls-key");
      }
      tls_.emplace(ssl::context::tls_server);
      tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      boost::system::error_code ec;
      tls_->use_certificate_chain_file(options_.tls_cert_path, ec);
      if (ec) return Status::invalid_argument("cannot load TLS certificate " + options_.tls_cert_path + ": " + ec.message());
      tls_->use_private_key_file(options_.tls_key_path, ssl::context::pem, ec);
      if (ec) return Status::invalid_argument("cannot load TLS key " + options_.tls_key_path + ": " + ec.message());
    }

    boost::system::error_code ec;
    auto address = asio::ip::make_address(options_.host.empty() ? "0.0.0.0" : options_.host, ec);
    if (ec) return Status::invalid_argument("bad listen host \"" + options_.host + "\": " + ec.message());
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.emplace(workers_[0]->io);
    acceptor_->open(endpoint.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(endpoint, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::unavailable("cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " +
                                 ec.message());
    }
    port_ = acceptor_->local_endpoint().port();

    asio::co_spawn(workers_[0]->io, accept_loop(), asio::detached);
    for (auto& worker : workers_) {
      Worker* w = worker.get();
      asio::co_spawn(w->io, sweep_loop(*w), asio::detached);
      w->thread = std::thread([w] { w->io.run(); });
    }
    return Status::ok();
  }

  std::uint16_t port() const override { return port_; }
  bool is_tls() const override { return tls_.has_value(); }

  void stop() override {
    if (stopped_.exchange(true)) return;
    stopping_.store(true);
    for (auto& worker : workers_) {
      Worker* w = worker.get();
      asio::post(w->io, [this, w] {
        if (w == workers_[0].get() && acceptor_) {
          boost::system::error_code ignored;
          acceptor_->close(ignored);
        }
        // Idle keep-alive connections wait for a request that should not
        // come: close them. Streams end now (their loop sees stopping_ once
        // woken). Busy ones, deferred ones included, close after their
        // response.
        for (Connection* c : w->connections) {
          boost::system::error_code ignored;
          if (c->idle) c->socket->cancel(ignored);
          if (c->stream && c->wake_timer) c->wake_timer->cancel();
        }
      });
    }
    // Wait for in-flight requests, within the grace period.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.shutdown_grace_ms);
    while (open_connections_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    if (open_connections_.load() > 0) {
      spdlog::warn("shutdown: closing {} connections still open after the grace period", open_connections_.load());
    }
    for (auto& worker : workers_) worker->io.stop();
    for (auto& worker : workers_) {
      if (worker->thread.joinable()) worker->thread.join();
    }
    // The coroutines still parked never resume. Cut them off from the threads
    // that could still complete a deferred response or wake a stream, before
    // the workers (and their io_contexts, which those would post to) go.
    std::size_t abandoned = 0;
    for (auto& worker : workers_) {
      for (auto& [id, c] : worker->parked) {
        if (c->deferred) {
          c->deferred->abandon();
          ++abandoned;
        }
        if (c->stream) c->stream->set_waker({});
      }
    }
    if (abandoned > 0) spdlog::warn("shutdown: abandoned {} deferred responses not completed in time", abandoned);
  }

 private:
  asio::awaitable<void> accept_loop() {
    std::size_t next = 0;
    for (;;) {
      Worker& target = *workers_[next];
      next = (next + 1) % workers_.size();
      auto [ec, socket] = co_await acceptor_->async_accept(target.io, kUseTuple);
      if (ec) {
        if (stopping_.load() || !acceptor_->is_open()) co_return;
        // Out of descriptors or similar: back off instead of spinning.
        spdlog::warn("accept failed: {}", ec.message());
        asio::steady_timer pause(workers_[0]->io, 50ms);
        co_await pause.async_wait(kUseTuple);
        continue;
      }
      if (open_connections_.load() >= limits::kHttpConnections) {
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      open_connections_.fetch_add(1);
      asio::co_spawn(target.io, run_connection(target, std::move(socket)), asio::detached);
    }
  }

  // Cancels the I/O of connections past their deadline: the read, write or
  // handshake then fails and the connection's coroutine ends.
  asio::awaitable<void> sweep_loop(Worker& worker) {
    std::int64_t shortest = std::min({options_.read_timeout_ms, options_.idle_timeout_ms, options_.write_timeout_ms});
    auto period = std::chrono::milliseconds(std::clamp<std::int64_t>(shortest / 4, 5, 250));
    asio::steady_timer timer(worker.io);
    while (!stopped_.load()) {
      timer.expires_after(period);
      auto [ec] = co_await timer.async_wait(kUseTuple);
      if (ec) co_return;
      std::int64_t now = coarse_now_ms();
      for (Connection* c : worker.connections) {
        if (now > c->deadline_ms) {
          boost::system::error_code ignored;
          c->socket->cancel(ignored);
          c->deadline_ms = std::numeric_limits<std::int64_t>::max();  // once is enough
        }
      }
    }
  }

  asio::awaitable<void> run_connection(Worker& worker, tcp::socket socket) {
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::string remote;
    auto endpoint = socket.remote_endpoint(ignored);
    if (!ignored) remote = endpoint.address().to_string();
    try {
      if (tls_) {
        ssl::stream<tcp::socket> stream(std::move(socket), *tls_);
        Connection conn{&stream.next_layer(), coarse_now_ms() + std::min(limits::kHttpTlsHandshakeTimeoutMs, options_.read_timeout_ms), false};
        Registered registered(worker, conn);
        auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, kUseTuple);
        if (!ec) {
          co_await serve_requests(worker, stream, conn, remote);
          conn.deadline_ms = coarse_now_ms() + 1000;
          co_await stream.async_shutdown(kUseTuple);
        }
      } else {
        Connection conn{&socket, 0, true};
        Registered registered(worker, conn);
        co_await serve_requests(worker, socket, conn, remote);
        socket.shutdown(tcp::socket::shutdown_send, ignored);
      }
    } catch (const std::exception& e) {
      // Nothing on the request path throws by design; if something does
      // (out of memory), drop this connection and keep serving the others.
      spdlog::error("connection from {} ended by an exception: {}", remote, e.what());
    }
    open_connections_.fetch_sub(1);
  }

  // Reads more bytes into `buffer`; false when the connection is done
  // (closed, reset, past its deadline, shutting down, or the buffer is full).
  template <typename Stream>
  asio::awaitable<bool> read_more(Stream& stream, beast::flat_buffer& buffer) {
    if (buffer.size() + kReadChunkBytes > buffer.max_size()) co_return false;
    auto [ec, n] = co_await stream.async_read_some(buffer.prepare(kReadChunkBytes), kUseTuple);
    if (ec) co_return false;
    buffer.commit(n);
    co_return true;
  }

  template <typename Stream>
  asio::awaitable<void> serve_requests(Worker& worker, Stream& stream, Connection& conn, const std::string& remote) {
    beast::flat_buffer buffer(kBufferBytes);
    std::string request_id;
    std::string head;
    for (;;) {
      // Wait for the first byte of the next request under the idle deadline...
      conn.idle = true;
      if (stopping_.load()) co_return;
      conn.deadline_ms = coarse_now_ms() + options_.idle_timeout_ms;
      if (buffer.size() == 0 && !co_await read_more(stream, buffer)) co_return;
      conn.idle = false;

      // ...then the whole request under the read deadline, so a slow client
      // cannot hold the connection by trickling bytes.
      conn.deadline_ms = coarse_now_ms() + options_.read_timeout_ms;
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits::kHttpHeaderBytes));
      parser.body_limit(limits::kHttpBodyBytes);
      parser.eager(false);  // stop after the header: the body may need a 100 Continue first
      bool continue_sent = false;
      while (!parser.is_done()) {
        boost::system::error_code ec;
        auto data = buffer.data();
        std::size_t used = data.size() == 0 ? 0 : parser.put(data, ec);
        buffer.consume(used);
        if (data.size() == 0 || ec == http::error::need_more) {
          if (co_await read_more(stream, buffer)) continue;
          co_return;  // closed mid-request, timed out, or shutting down
        }
        if (ec) {
          request_id.clear();
          if (parser.is_header_done()) make_request_id(parser.get()["x-request-id"], request_id);
          if (ec == http::error::body_limit) {
            co_await reply_error(stream, 413, "payload_too_large",
                                 "request body exceeds the limit of " + std::to_string(limits::kHttpBodyBytes) +
                                     " bytes",
                                 request_id);
          } else if (ec == http::error::header_limit) {
            co_await reply_error(stream, 431, "header_too_large",
                                 "request headers exceed " + std::to_string(limits::kHttpHeaderBytes) + " bytes",
                                 request_id);
          } else {
            co_await reply_error(stream, 400, "bad_request", "malformed HTTP request: " + ec.message(), request_id);
          }
          co_return;
        }
        if (parser.is_header_done() && !continue_sent) {
          continue_sent = true;
          parser.eager(true);
          if (!parser.is_done() && beast::iequals(parser.get()[http::field::expect], "100-continue")) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(kContinue), kUseTuple);
            if (wec) co_return;
          }
        }
      }

      BeastRequest& req = parser.get();
      make_request_id(req["x-request-id"], request_id);
      BeastHeaders headers(req);
      HttpRequest request;
      request.headers = &headers;
      request.method = req.method_string();
      request.target = req.target();
      std::size_t question = request.target.find('?');
      request.path = request.target.substr(0, question);
      request.query = question == std::string_view::npos ? std::string_view() : request.target.substr(question + 1);
      request.body = req.body();
      request.request_id = request_id;
      request.remote_address = remote;
      request.io = &worker.io;

      HttpResponse response;
      try {
        handler_.handle(request, response);
      } catch (const std::exception& e) {
        spdlog::error("request {} {} {}: unexpected exception: {}", request_id, request.method, request.path, e.what());
        if (response.deferred) response.deferred->abandon();
        response = HttpResponse();
        handler_.handle_protocol_error(500, "internal", "internal error", request_id, response);
      }
      bool too_late = false;
      if (response.deferred) [[unlikely]] {
        std::shared_ptr<DeferredResponse> deferred = std::move(response.deferred);
        std::optional<HttpResponse> completed = co_await wait_deferred(worker, conn, deferred);
        if (completed) {
          response = std::move(*completed);
        } else {
          too_late = true;
          response = HttpResponse();
          handler_.handle_protocol_error(503, "unavailable",
                                         "the response was not ready within " +
                                             std::to_string(deferred->wait_ms > 0 ? deferred->wait_ms
                                                                                  : options_.deferred_timeout_ms) +
                                             " ms; the request may still take effect",
                                         request_id, response);
        }
      }
      bool keep_alive = req.keep_alive() && !stopping_.load() && !too_late;
      bool http10 = req.version() == 10;
      bool head_only = req.method() == http::verb::head;
      if (response.stream) [[unlikely]] {
        if (!co_await write_stream(worker, stream, conn, response, request_id, http10, keep_alive, head_only, head)) {
          co_return;
        }
        continue;
      }
      conn.deadline_ms = coarse_now_ms() + options_.write_timeout_ms;
      if (!co_await write_response(stream, response, request_id, http10, keep_alive, head_only, head)) {
        co_return;
      }
      if (!keep_alive) co_return;
    }
  }

  // Parks the connection until `deferred` completes; nullopt past
  // deferred_timeout_ms (it is then abandoned). A graceful stop lets the wait
  // go on within its grace period; past that, the coroutine is not resumed.
  asio::awaitable<std::optional<HttpResponse>> wait_deferred(Worker& worker, Connection& conn,
                                                             std::shared_ptr<DeferredResponse> deferred) {
    Parking parking(worker, conn, deferred.get(), nullptr);
    parking.timer().expires_after(
        std::chrono::milliseconds(deferred->wait_ms > 0 ? deferred->wait_ms : options_.deferred_timeout_ms));
    for (;;) {
      if (std::optional<HttpResponse> response = deferred->take()) co_return response;
      auto [ec] = co_await parking.timer().async_wait(kUseTuple);
      if (!ec) co_return deferred->take();  // the timeout; Parking abandons it if still pending
      // Cancelled: woken by the completion (or spuriously): look again.
    }
  }

  // Sends a streamed response: the head, then `response.body` and what the
  // stream yields, as chunks (HTTP/1.1) or raw until the connection closes
  // (HTTP/1.0). True when the connection may carry another request.
  template <typename Stream>
  asio::awaitable<bool> write_stream(Worker& worker, Stream& stream, Connection& conn, const HttpResponse& response,
                                     std::string_view request_id, bool http10, bool keep_alive, bool head_only,
                                     std::string& head) {
    const bool chunked = !http10;
    if (!chunked) keep_alive = false;  // the body ends with the connection
    format_head(response, request_id, keep_alive, http10, chunked ? Framing::kChunked : Framing::kUntilClose, head);
    if (head_only) {
      conn.deadline_ms = coarse_now_ms() + options_.write_timeout_ms;
      auto [ec, n] = co_await asio::async_write(stream, asio::buffer(head), kUseTuple);
      co_return !ec && keep_alive;
    }

    BodyStream& body = *response.stream;
    Parking parking(worker, conn, nullptr, &body);
    const auto poll = std::chrono::milliseconds(std::max<std::int64_t>(options_.stream_poll_ms, 1));
    static constexpr std::string_view kCrlf = "\r\n";
    static constexpr std::string_view kLastChunk = "0\r\n\r\n";
    std::string data = response.body;
    bool head_sent = false;
    for (;;) {
      bool stopping = stopping_.load();
      BodyStream::Next next = stopping ? BodyStream::Next::kEnd : body.next(data);
      bool end = next == BodyStream::Next::kEnd;
      if (!data.empty() || !head_sent || end) {
        char size_line[24];
        std::size_t size_length = 0;
        if (chunked && !data.empty()) {
          auto [ptr, ec] = std::to_chars(size_line, size_line + sizeof size_line - 2, data.size(), 16);
          ptr[0] = '\r';
          ptr[1] = '\n';
          size_length = static_cast<std::size_t>(ptr + 2 - size_line);
        }
        std::array<asio::const_buffer, 5> buffers{
            asio::buffer(head_sent ? std::string_view() : std::string_view(head)),
            asio::buffer(size_line, size_length),
            asio::buffer(data),
            asio::buffer(size_length > 0 ? kCrlf : std::string_view()),
            asio::buffer(chunked && end ? kLastChunk : std::string_view()),
        };
        conn.deadline_ms = coarse_now_ms() + options_.write_timeout_ms;
        auto [ec, n] = co_await asio::async_write(stream, buffers, kUseTuple);
        conn.deadline_ms = kNoDeadline;
        if (ec) co_return false;  // the client has gone, or stalled past the write deadline
        head_sent = true;
        data.clear();
        if (end) co_return keep_alive && !stopping;
        if (next == BodyStream::Next::kData) continue;
      }
      // kWait (or a kData that yielded nothing, which must not spin): wait
      // for wake(), stop() or the poll. stop() may have run while the write
      // above was in flight, when there was no wait for it to cancel: look
      // before waiting.
      if (stopping_.load()) continue;
      if (std::exchange(conn.woken, false)) continue;  // woken while not waiting: look again now
      parking.timer().expires_after(poll);
      auto [ec] = co_await parking.timer().async_wait(kUseTuple);
      // A quiet stream writes nothing that could fail: on each poll, see
      // whether the client is still there.
      if (!ec && peer_hung_up(*conn.socket)) co_return false;
    }
  }

  template <typename Stream>
  asio::awaitable<bool> write_response(Stream& stream, const HttpResponse& response, std::string_view request_id,
                                       bool http10, bool keep_alive, bool head_only, std::string& head) {
    format_head(response, request_id, keep_alive, http10, Framing::kLength, head);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head),
                                              asio::buffer(head_only ? std::string_view() : response.body)};
    auto [ec, n] = co_await asio::async_write(stream, buffers, kUseTuple);
    co_return !ec;
  }

  // Answers a request the server rejects before routing; the caller closes.
  template <typename Stream>
  asio::awaitable<void> reply_error(Stream& stream, int status, std::string_view code, const std::string& message,
                                    std::string request_id) {
    if (request_id.empty()) make_request_id({}, request_id);
    HttpResponse response;
    handler_.handle_protocol_error(status, code, message, request_id, response);
    response.stream.reset();
    std::string head;
    co_await write_response(stream, response, request_id, false, false, false, head);
  }

  ServerOptions options_;
  HttpHandler& handler_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::optional<tcp::acceptor> acceptor_;
  std::optional<ssl::context> tls_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<std::size_t> open_connections_{0};
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(const ServerOptions& options, HttpHandler& handler) {
  auto server = std::make_unique<ServerImpl>(options, handler);
  HR_RETURN_IF_ERROR(server->open());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace headroom::net
