#include "net/server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <ctime>
#include <optional>
#include <thread>
#include <unordered_set>

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

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunkBytes = 16 * 1024;
constexpr std::string_view kServerName = "headroom";

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

// A connection as the shutdown sweep sees it. Owned by its coroutine; listed
// in its worker's registry, which only that worker's thread touches.
struct Connection {
  beast::tcp_stream* tcp = nullptr;
  bool idle = true;
};

struct Worker {
  asio::io_context io{1};  // one thread each: no locking inside Asio
  std::unordered_set<Connection*> connections;
  std::thread thread;
};

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
std::string make_request_id(std::string_view from_client) {
  if (!from_client.empty() && from_client.size() <= limits::kRequestIdBytes) {
    bool plain = true;
    for (char c : from_client) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                c == '.' || c == ':';
      if (!ok) { plain = false; break; }
    }
    if (plain) return std::string(from_client);
  }
  // Unique, not secret: a per-thread generator seeded from the CSPRNG.
  thread_local SeededRandom random = [] {
    SecureRandom secure;
    return SeededRandom(secure.next_u64());
  }();
  std::uint8_t bytes[13];
  random.fill(bytes);
  std::string id = "req_";
  id += base32_lower(bytes);
  return id;
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
      beast::error_code ec;
      tls_->use_certificate_chain_file(options_.tls_cert_path, ec);
      if (ec) return Status::invalid_argument("cannot load TLS certificate " + options_.tls_cert_path + ": " + ec.message());
      tls_->use_private_key_file(options_.tls_key_path, ssl::context::pem, ec);
      if (ec) return Status::invalid_argument("cannot load TLS key " + options_.tls_key_path + ": " + ec.message());
    }

    beast::error_code ec;
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
      w->thread = std::thread([w] {
        auto guard = asio::make_work_guard(w->io);  // stay up until stop() releases it
        (void)guard;
        w->io.run();
      });
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
          beast::error_code ignored;
          acceptor_->close(ignored);
        }
        // Idle keep-alive connections are waiting for a request that should
        // not come: close them. Busy ones close after their response.
        for (Connection* c : w->connections) {
          if (c->idle) c->tcp->socket().cancel();
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
        beast::error_code ignored;
        socket.close(ignored);
        continue;
      }
      open_connections_.fetch_add(1);
      asio::co_spawn(target.io, run_connection(target, std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> run_connection(Worker& worker, tcp::socket socket) {
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::string remote;
    auto endpoint = socket.remote_endpoint(ignored);
    if (!ignored) remote = endpoint.address().to_string();
    try {
      if (tls_) {
        beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *tls_);
        Connection conn{&beast::get_lowest_layer(stream), false};
        worker.connections.insert(&conn);
        conn.tcp->expires_after(std::chrono::milliseconds(std::min(limits::kHttpTlsHandshakeTimeoutMs, options_.read_timeout_ms)));
        auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, kUseTuple);
        if (!ec) {
          co_await serve_requests(stream, conn, remote);
          conn.tcp->expires_after(1s);
          co_await stream.async_shutdown(kUseTuple);
        }
        worker.connections.erase(&conn);
      } else {
        beast::tcp_stream stream(std::move(socket));
        Connection conn{&stream, true};
        worker.connections.insert(&conn);
        co_await serve_requests(stream, conn, remote);
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        worker.connections.erase(&conn);
      }
    } catch (const std::exception& e) {
      // Nothing on the request path throws by design; if something does
      // (out of memory), drop this connection and keep serving the others.
      spdlog::error("connection from {} ended by an exception: {}", remote, e.what());
    }
    open_connections_.fetch_sub(1);
  }

  template <typename Stream>
  asio::awaitable<void> serve_requests(Stream& stream, Connection& conn, const std::string& remote) {
    beast::flat_buffer buffer(limits::kHttpHeaderBytes + limits::kHttpBodyBytes + kReadChunkBytes);
    for (;;) {
      // Wait for the first byte of the next request under the idle deadline...
      conn.idle = true;
      if (stopping_.load()) co_return;
      if (buffer.size() == 0) {
        conn.tcp->expires_after(std::chrono::milliseconds(options_.idle_timeout_ms));
        auto [ec, n] = co_await stream.async_read_some(buffer.prepare(kReadChunkBytes), kUseTuple);
        if (ec) co_return;  // closed, idle too long, or shutting down
        buffer.commit(n);
      }
      conn.idle = false;

      // ...then the whole request under the read deadline, so a slow client
      // cannot hold the connection by trickling bytes.
      conn.tcp->expires_after(std::chrono::milliseconds(options_.read_timeout_ms));
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits::kHttpHeaderBytes));
      parser.body_limit(limits::kHttpBodyBytes);
      auto [header_ec, header_n] = co_await http::async_read_header(stream, buffer, parser, kUseTuple);
      if (header_ec) {
        if (header_ec == http::error::body_limit) {
          // Beast checks Content-Length against the body limit with the header.
          co_await reply_error(stream, 413, "payload_too_large",
                               "request body exceeds the limit of " + std::to_string(limits::kHttpBodyBytes) + " bytes",
                               "");
        } else if (header_ec == http::error::header_limit || header_ec == http::error::buffer_overflow) {
          co_await reply_error(stream, 431, "header_too_large",
                               "request headers exceed " + std::to_string(limits::kHttpHeaderBytes) + " bytes", "");
        } else if (header_ec != beast::error::timeout && header_ec != http::error::end_of_stream &&
                   header_ec != asio::error::operation_aborted && header_ec != asio::error::eof &&
                   header_ec != asio::error::connection_reset) {
          co_await reply_error(stream, 400, "bad_request", "malformed HTTP request: " + header_ec.message(), "");
        }
        co_return;
      }
      const BeastRequest& head = parser.get();
      std::string request_id = make_request_id(head["x-request-id"]);
      if (auto length = parser.content_length(); length && *length > limits::kHttpBodyBytes) {
        co_await reply_error(stream, 413, "payload_too_large",
                             "request body of " + std::to_string(*length) + " bytes exceeds the limit of " +
                                 std::to_string(limits::kHttpBodyBytes) + " bytes",
                             request_id);
        co_return;
      }
      if (!parser.is_done()) {
        if (beast::iequals(head[http::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          auto [ec, n] = co_await asio::async_write(stream, asio::buffer(kContinue), kUseTuple);
          if (ec) co_return;
        }
        auto [body_ec, body_n] = co_await http::async_read(stream, buffer, parser, kUseTuple);
        if (body_ec) {
          if (body_ec == http::error::body_limit) {
            co_await reply_error(stream, 413, "payload_too_large",
                                 "request body exceeds the limit of " + std::to_string(limits::kHttpBodyBytes) +
                                     " bytes",
                                 request_id);
          } else if (body_ec != beast::error::timeout && body_ec != asio::error::eof &&
                     body_ec != http::error::end_of_stream && body_ec != asio::error::operation_aborted) {
            co_await reply_error(stream, 400, "bad_request", "malformed HTTP request body: " + body_ec.message(),
                                 request_id);
          }
          co_return;
        }
      }

      BeastRequest& req = parser.get();
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

      HttpResponse response;
      try {
        handler_.handle(request, response);
      } catch (const std::exception& e) {
        spdlog::error("request {} {} {}: unexpected exception: {}", request_id, request.method, request.path, e.what());
        response = HttpResponse();
        handler_.handle_protocol_error(500, "internal", "internal error", request_id, response);
      }
      bool keep_alive = req.keep_alive() && !stopping_.load();
      if (!co_await write_response(stream, std::move(response), request_id, req.version(), keep_alive,
                                   req.method() == http::verb::head)) {
        co_return;
      }
      if (!keep_alive) co_return;
    }
  }

  template <typename Stream>
  asio::awaitable<bool> write_response(Stream& stream, HttpResponse&& response, std::string_view request_id,
                                       unsigned version, bool keep_alive, bool head_only) {
    http::response<http::string_body> res(static_cast<http::status>(response.status), version);
    res.set(http::field::server, kServerName);
    res.set(http::field::date, http_date());
    res.set("x-request-id", request_id);
    if (!response.content_type.empty()) res.set(http::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) res.set(name, value);
    std::size_t length = response.body.size();
    if (!head_only) res.body() = std::move(response.body);
    res.keep_alive(keep_alive);
    res.content_length(length);
    conn_write_deadline(stream);
    http::response_serializer<http::string_body> serializer(res);
    if (head_only) serializer.split(true);
    beast::error_code ec;
    if (head_only) {
      std::tie(ec, std::ignore) = co_await http::async_write_header(stream, serializer, kUseTuple);
    } else {
      std::tie(ec, std::ignore) = co_await http::async_write(stream, serializer, kUseTuple);
    }
    co_return !ec;
  }

  template <typename Stream>
  void conn_write_deadline(Stream& stream) {
    beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds(options_.write_timeout_ms));
  }

  // Answers a request the server rejects before routing, then the caller closes.
  template <typename Stream>
  asio::awaitable<void> reply_error(Stream& stream, int status, std::string_view code, const std::string& message,
                                    std::string request_id) {
    if (request_id.empty()) request_id = make_request_id({});
    HttpResponse response;
    handler_.handle_protocol_error(status, code, message, request_id, response);
    co_await write_response(stream, std::move(response), request_id, 11, false, false);
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
