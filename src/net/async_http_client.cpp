#include "net/async_http_client.h"

#include <array>
#include <chrono>
#include <exception>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "net/client_request.h"

namespace headroom::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
// Idle connections kept per client and io_context; more are closed. A
// connection is idle only between requests, so this is about the most
// requests a thread has had in flight to one replica at once.
constexpr std::size_t kIdleConnectionsPerClient = 256;

// One connection to the client's origin, plain or TLS, and what was read
// past the last response (nothing, unless the server sent more unasked).
struct Connection {
  std::optional<client::PlainStream> plain;
  std::optional<client::TlsStream> tls;
  beast::flat_buffer buffer;
  // Where a response's body is read, kept with the connection: in the
  // coroutine's frame it made every request allocate 16 KiB.
  std::array<char, client::kStreamChunkBytes> chunk;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  // Runs `f` on the stream, whichever kind it is.
  template <typename F>
  auto with(F&& f) {
    return tls ? f(*tls) : f(*plain);
  }

  // True when a kept connection holds bytes nobody asked for: it is not
  // worth sending a request on. (A close by the server is found by sending:
  // the request is then sent again on a new connection, as the server never
  // saw it. Looking first would cost a system call on every request.)
  bool stale() { return buffer.size() > 0 || !lowest().socket().is_open(); }
};

// The idle connections made on one io_context, by client. A service of the
// io_context, so that they are closed when it shuts down, before the socket
// machinery they use goes (services go in the reverse order of their
// creation, and the server's sockets made that machinery first). Used on
// the io_context's thread only.
class IdleConnections final : public asio::execution_context::service {
 public:
  using key_type = IdleConnections;
  static asio::execution_context::id id;

  explicit IdleConnections(asio::execution_context& context) : asio::execution_context::service(context) {}

  std::unique_ptr<Connection> take(std::uint64_t client) {
    auto it = idle_.find(client);
    if (it == idle_.end() || it->second.connections.empty()) return nullptr;
    std::unique_ptr<Connection> conn = std::move(it->second.connections.back());
    it->second.connections.pop_back();
    return conn;
  }

  void put(std::uint64_t client, const std::shared_ptr<const bool>& alive, std::unique_ptr<Connection> conn) {
    // The connections of clients gone since (an undeployed model's) are closed.
    std::erase_if(idle_, [](const auto& entry) { return entry.second.alive.expired(); });
    Entry& entry = idle_[client];
    entry.alive = alive;
    if (entry.connections.size() < kIdleConnectionsPerClient) entry.connections.push_back(std::move(conn));
  }

 private:
  void shutdown() override { idle_.clear(); }

  struct Entry {
    std::weak_ptr<const bool> alive;
    std::vector<std::unique_ptr<Connection>> connections;
  };
  std::unordered_map<std::uint64_t, Entry> idle_;
};

asio::execution_context::id IdleConnections::id;

std::atomic<std::uint64_t> next_client_id{1};

}  // namespace

struct AsyncHttpClient::Impl {
  HttpClientOptions options;
  client::Origin origin;
  std::uint64_t id = next_client_id.fetch_add(1);
  std::shared_ptr<const bool> alive = std::make_shared<const bool>(true);

  // A call not yet done: its on_done runs exactly once, or on_abandoned
  // should the coroutine holding it be destroyed unfinished (its
  // io_context gone).
  struct Pending {
    AsyncHttpCall call;
    std::string base_url;

    explicit Pending(AsyncHttpCall c, std::string url) : call(std::move(c)), base_url(std::move(url)) {}
    Pending(Pending&& other) noexcept : call(std::move(other.call)), base_url(std::move(other.base_url)) {
      other.call.on_done = nullptr;
      other.call.on_abandoned = nullptr;
    }
    Pending& operator=(Pending&&) = delete;
    ~Pending() {
      if (!call.on_done) return;  // finished, or moved from
      if (auto abandoned = std::move(call.on_abandoned)) {
        call.on_done = nullptr;
        abandoned();
        return;
      }
      finish(Status::unavailable(call.method + " " + base_url + call.target +
                                 ": the server stopped with the request in flight"));
    }
    void finish(const Status& status) {
      auto done = std::move(call.on_done);
      call.on_done = nullptr;
      call.on_abandoned = nullptr;
      if (done) done(status);
    }
  };

  static asio::awaitable<void> run(std::shared_ptr<Impl> self, asio::io_context& io, Pending pending) {
    Status status;
    try {
      status = co_await self->exchange(io, pending.call);
    } catch (const std::exception& e) {
      status =
          Status::internal(pending.call.method + " " + self->origin.base_url + pending.call.target + ": " + e.what());
    }
    pending.finish(status);
  }

  Status failure(const AsyncHttpCall& call, const std::string& what) const {
    return Status::unavailable(call.method + " " + origin.base_url + call.target + ": " + what);
  }

  asio::awaitable<Status> exchange(asio::io_context& io, AsyncHttpCall& call) {
    Result<client::Request> req = client::make_request(origin, call.method, call.target, call.body, call.headers);
    if (!req.is_ok()) co_return req.status();
    IdleConnections& idle = asio::use_service<IdleConnections>(static_cast<asio::execution_context&>(io));
    std::unique_ptr<Connection> conn;
    std::optional<http::response_parser<http::buffer_body>> parser;
    bool close_after_response = false;  // the request was not sent whole
    for (int attempt = 0;; ++attempt) {
      conn = idle.take(id);
      bool reused = conn != nullptr;
      if (reused && conn->stale()) {
        conn.reset();
        reused = false;
      }
      if (!conn) {
        Result<std::unique_ptr<Connection>> made = co_await connect(io);
        if (!made.is_ok()) co_return made.status();
        conn = std::move(*made);
      }
      parser.emplace();
      parser->header_limit(static_cast<std::uint32_t>(limits::kHttpClientResponseHeaderBytes));
      parser->body_limit(boost::none);  // a stream is bounded by its reader, who may stop it
      if (req->method() == http::verb::head) parser->skip(true);
      conn->lowest().expires_after(std::chrono::milliseconds(options.read_timeout_ms));
      auto [write_ec, written] = co_await conn->with([&](auto& s) { return http::async_write(s, *req, kUseTuple); });
      beast::error_code ec = write_ec;
      // A server may answer before it has read the whole request (a 413 for
      // a body it will not take) and close: the write then fails, but the
      // answer is there to read.
      if (!write_ec || client::is_closed_by_peer(write_ec)) {
        auto [read_ec, read] =
            co_await conn->with([&](auto& s) { return http::async_read_header(s, conn->buffer, *parser, kUseTuple); });
        ec = read_ec;
        if (!ec && write_ec) close_after_response = true;
      }
      if (!ec) break;
      conn.reset();
      if (reused && attempt == 0 && !parser->got_some() && client::is_closed_by_peer(ec)) continue;
      const beast::error_code cause = write_ec ? write_ec : ec;
      co_return failure(call, cause == beast::error::timeout
                                  ? "no response within " + std::to_string(options.read_timeout_ms) + " ms"
                                  : client::describe(cause));
    }
    if (call.on_head) call.on_head(client::head_of(parser->get()));

    std::array<char, client::kStreamChunkBytes>& chunk = conn->chunk;
    while (!parser->is_done()) {
      parser->get().body().data = chunk.data();
      parser->get().body().size = chunk.size();
      conn->lowest().expires_after(std::chrono::milliseconds(options.stream_idle_timeout_ms));
      auto [ec, read] =
          co_await conn->with([&](auto& s) { return http::async_read_some(s, conn->buffer, *parser, kUseTuple); });
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        co_return failure(call, "reading the response: " +
                                    (ec == beast::error::timeout
                                         ? "no data for " + std::to_string(options.stream_idle_timeout_ms) + " ms"
                                         : client::describe(ec)));
      }
      const std::size_t filled = chunk.size() - parser->get().body().size;
      if (filled > 0 && call.on_chunk && !call.on_chunk(std::string_view(chunk.data(), filled))) {
        co_return Status::ok();  // the rest is unread: the connection closes with `conn`
      }
    }
    if (parser->get().keep_alive() && !parser->need_eof() && !close_after_response) {
      conn->lowest().expires_never();
      idle.put(id, alive, std::move(conn));
    }
    co_return Status::ok();
  }

  // A new connection: DNS, TCP and TLS within connect_timeout_ms.
  asio::awaitable<Result<std::unique_ptr<Connection>>> connect(asio::io_context& io) {
    const std::string where = "cannot reach " + origin.base_url + ": ";
    const auto timeout = std::chrono::milliseconds(options.connect_timeout_ms);
    // The lookup has no deadline of its own: a timer cancels it. Both are
    // shared with the timer's handler, which may run after this returns.
    auto resolver = std::make_shared<tcp::resolver>(io);
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer timer(io);
    timer.expires_after(timeout);
    timer.async_wait([resolver, timed_out](const beast::error_code& ec) {
      if (ec) return;
      *timed_out = true;
      resolver->cancel();
    });
    auto [resolve_ec, endpoints] = co_await resolver->async_resolve(origin.host, origin.port, kUseTuple);
    timer.cancel();
    if (*timed_out) {
      co_return Status::unavailable(where + "timed out resolving '" + origin.host + "' after " +
                                    std::to_string(options.connect_timeout_ms) + " ms");
    }
    if (resolve_ec) {
      co_return Status::unavailable(where + "cannot resolve '" + origin.host + "': " + resolve_ec.message());
    }
    auto conn = std::make_unique<Connection>();
    client::PlainStream stream(io);
    stream.expires_after(timeout);
    auto [connect_ec, endpoint] = co_await stream.async_connect(endpoints, kUseTuple);
    if (connect_ec == beast::error::timeout) {
      co_return Status::unavailable(where + "timed out connecting after " + std::to_string(options.connect_timeout_ms) +
                                    " ms");
    }
    if (connect_ec) co_return Status::unavailable(where + connect_ec.message());
    beast::error_code ignored;
    stream.socket().set_option(tcp::no_delay(true), ignored);
    if (!origin.tls) {
      conn->plain.emplace(std::move(stream));
      co_return conn;
    }
    conn->tls.emplace(std::move(stream), *origin.ssl_context);
    if (Status ready = client::prepare_tls(*conn->tls, origin, where); !ready.is_ok()) co_return ready;
    auto [handshake_ec] = co_await conn->tls->async_handshake(boost::asio::ssl::stream_base::client, kUseTuple);
    if (handshake_ec == beast::error::timeout) {
      co_return Status::unavailable(where + "timed out in the TLS handshake after " +
                                    std::to_string(options.connect_timeout_ms) + " ms");
    }
    if (handshake_ec) co_return Status::unavailable(where + "TLS handshake failed: " + handshake_ec.message());
    co_return conn;
  }
};

Result<std::shared_ptr<AsyncHttpClient>> AsyncHttpClient::create(std::string_view base_url, HttpClientOptions options) {
  try {
    auto impl = std::make_unique<Impl>();
    HR_ASSIGN_OR_RETURN(impl->origin, client::parse_origin(base_url, options));
    impl->options = std::move(options);
    return std::shared_ptr<AsyncHttpClient>(new AsyncHttpClient(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::invalid_argument("cannot set up a client for '" + std::string(base_url) + "': " + e.what());
  }
}

AsyncHttpClient::AsyncHttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AsyncHttpClient::~AsyncHttpClient() = default;

const std::string& AsyncHttpClient::base_url() const { return impl_->origin.base_url; }

void AsyncHttpClient::start(boost::asio::io_context& io, AsyncHttpCall call) {
  // The coroutine shares the client's state, so that a call outlives a
  // client dropped meanwhile (an undeployed model's last requests).
  std::shared_ptr<Impl> state(shared_from_this(), impl_.get());
  asio::co_spawn(io, Impl::run(std::move(state), io, Impl::Pending(std::move(call), impl_->origin.base_url)),
                 asio::detached);
}

}  // namespace headroom::net
