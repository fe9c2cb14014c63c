#include "net/http_client.h"

#include "net/client_request.h"

#include <poll.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <exception>
#include <optional>

namespace headroom::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

using client::ascii_iequal;
using client::describe;
using client::is_closed_by_peer;
using client::PlainStream;
using client::TlsStream;

}  // namespace

std::string HttpClientResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (ascii_iequal(key, name)) return value;
  }
  return {};
}

class HttpClient::Impl {
 public:
  explicit Impl(HttpClientOptions options) : options_(std::move(options)) {}

  Status init(std::string_view base_url) {
    HR_ASSIGN_OR_RETURN(origin_, client::parse_origin(base_url, options_));
    return Status::ok();
  }

  const std::string& base_url() const { return origin_.base_url; }

  void close() {
    beast::error_code ignored;
    if (plain_) plain_->socket().close(ignored);
    if (tls_) beast::get_lowest_layer(*tls_).socket().close(ignored);
    plain_.reset();
    tls_.reset();
    buffer_.clear();
  }

  Result<HttpClientResponse> request(std::string_view method, std::string_view target, std::string_view body,
                                     const HttpHeaders& headers) {
    HR_ASSIGN_OR_RETURN(auto req, make_request(method, target, body, headers));
    const auto deadline = Clock::now() + std::chrono::milliseconds(options_.read_timeout_ms);
    std::optional<http::response_parser<http::string_body>> parser;
    HR_RETURN_IF_ERROR(exchange(
        req, deadline, [&]() -> auto& {
          parser.emplace();
          parser->header_limit(static_cast<std::uint32_t>(limits::kHttpClientResponseHeaderBytes));
          parser->body_limit(options_.max_body_bytes);
          if (req.method() == http::verb::head) parser->skip(true);
          return *parser;
        }));
    const beast::error_code ec = parser->is_done() ? beast::error_code() : with_stream([&](auto& stream) {
      return run([&](auto handler) { http::async_read(stream, buffer_, *parser, std::move(handler)); });
    });
    if (ec) {
      close();
      return exchange_error(req, ec, deadline);
    }
    auto& message = parser->get();
    HttpClientResponse response = client::head_of(message);
    response.body = std::move(message.body());
    finish(message.keep_alive() && !parser->need_eof());
    return response;
  }

  Status request_stream(std::string_view method, std::string_view target, std::string_view body,
                        const HttpHeaders& headers, const std::function<bool(std::string_view)>& on_body_chunk,
                        const std::function<void(const HttpClientResponse&)>& on_head) {
    HR_ASSIGN_OR_RETURN(auto req, make_request(method, target, body, headers));
    const auto deadline = Clock::now() + std::chrono::milliseconds(options_.read_timeout_ms);
    std::optional<http::response_parser<http::buffer_body>> parser;
    HR_RETURN_IF_ERROR(exchange(
        req, deadline, [&]() -> auto& {
          parser.emplace();
          parser->header_limit(static_cast<std::uint32_t>(limits::kHttpClientResponseHeaderBytes));
          parser->body_limit(boost::none);  // a stream is bounded by its reader, who may stop it
          if (req.method() == http::verb::head) parser->skip(true);
          return *parser;
        }));
    if (on_head) on_head(client::head_of(parser->get()));

    std::array<char, client::kStreamChunkBytes> chunk;
    while (!parser->is_done()) {
      parser->get().body().data = chunk.data();
      parser->get().body().size = chunk.size();
      const auto idle_deadline = Clock::now() + std::chrono::milliseconds(options_.stream_idle_timeout_ms);
      beast::error_code ec = with_stream([&](auto& stream) {
        beast::get_lowest_layer(stream).expires_at(idle_deadline);
        return run([&](auto handler) { http::async_read_some(stream, buffer_, *parser, std::move(handler)); });
      });
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        close();
        return Status::unavailable(std::string(req.method_string()) + " " + origin_.base_url + std::string(target) +
                                   ": reading the response stream: " +
                                   (ec == beast::error::timeout
                                        ? "no data for " + std::to_string(options_.stream_idle_timeout_ms) + " ms"
                                        : describe(ec)));
      }
      const std::size_t filled = chunk.size() - parser->get().body().size;
      if (filled > 0 && !on_body_chunk(std::string_view(chunk.data(), filled))) {
        close();  // the rest of the body is unread: the connection cannot carry another request
        return Status::ok();
      }
    }
    finish(parser->get().keep_alive() && !parser->need_eof());
    return Status::ok();
  }

 private:
  // Runs one asynchronous operation to completion on the private io_context:
  // the synchronous face over Beast's asynchronous timeouts.
  template <typename Initiate>
  beast::error_code run(Initiate&& initiate) {
    beast::error_code result = asio::error::would_block;
    bool done = false;
    initiate([&result, &done](beast::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    io_.restart();
    io_.run();
    if (!done) return asio::error::operation_aborted;
    return result;
  }

  template <typename F>
  beast::error_code with_stream(F&& f) {
    if (tls_) return f(*tls_);
    return f(*plain_);
  }

  bool connected() const { return plain_.has_value() || tls_.has_value(); }

  // True when a kept connection shows the server's close (or anything else
  // unasked for) waiting on it: it is not worth sending a request on.
  bool connection_is_stale() {
    if (buffer_.size() > 0) return true;
    tcp::socket& socket = tls_ ? beast::get_lowest_layer(*tls_).socket() : plain_->socket();
    if (!socket.is_open()) return true;
    pollfd fd{};
    fd.fd = socket.native_handle();
    fd.events = POLLIN;
    return ::poll(&fd, 1, 0) != 0;  // readable, hung up, or poll failed
  }

  Status connect(Clock::time_point deadline) {
    close();
    const std::string where = "cannot reach " + origin_.base_url + ": ";
    // Resolve, bounded by a timer that cancels the lookup.
    tcp::resolver resolver(io_);
    asio::steady_timer timer(io_);
    timer.expires_at(deadline);
    bool timed_out = false;
    timer.async_wait([&](beast::error_code ec) {
      if (!ec) {
        timed_out = true;
        resolver.cancel();
      }
    });
    tcp::resolver::results_type endpoints;
    beast::error_code resolve_ec = asio::error::would_block;
    resolver.async_resolve(origin_.host, origin_.port, [&](beast::error_code ec, tcp::resolver::results_type results) {
      resolve_ec = ec;
      endpoints = std::move(results);
      timer.cancel();
    });
    io_.restart();
    io_.run();
    if (timed_out) {
      return Status::unavailable(where + "timed out resolving '" + origin_.host + "' after " +
                                 std::to_string(options_.connect_timeout_ms) + " ms");
    }
    if (resolve_ec)
      return Status::unavailable(where + "cannot resolve '" + origin_.host + "': " + resolve_ec.message());

    PlainStream tcp_stream(io_);
    tcp_stream.expires_at(deadline);
    beast::error_code ec = run([&](auto handler) { tcp_stream.async_connect(endpoints, std::move(handler)); });
    if (ec == beast::error::timeout) {
      return Status::unavailable(where + "timed out connecting after " + std::to_string(options_.connect_timeout_ms) +
                                 " ms");
    }
    if (ec) return Status::unavailable(where + ec.message());
    beast::error_code ignored;
    tcp_stream.socket().set_option(tcp::no_delay(true), ignored);

    if (!origin_.tls) {
      plain_.emplace(std::move(tcp_stream));
      return Status::ok();
    }
    TlsStream tls(std::move(tcp_stream), *origin_.ssl_context);
    HR_RETURN_IF_ERROR(client::prepare_tls(tls, origin_, where));
    ec = run([&](auto handler) { tls.async_handshake(ssl::stream_base::client, std::move(handler)); });
    if (ec == beast::error::timeout) {
      return Status::unavailable(where + "timed out in the TLS handshake after " +
                                 std::to_string(options_.connect_timeout_ms) + " ms");
    }
    if (ec) return Status::unavailable(where + "TLS handshake failed: " + ec.message());
    tls_.emplace(std::move(tls));
    return Status::ok();
  }

  Result<client::Request> make_request(std::string_view method, std::string_view target, std::string_view body,
                                       const HttpHeaders& headers) const {
    return client::make_request(origin_, method, target, body, headers);
  }

  // Sends `req` and reads the response's header into the parser that
  // `new_parser` makes, connecting first, and once more if a kept
  // connection turns out closed.
  template <typename NewParser>
  Status exchange(http::request<http::string_body>& req, Clock::time_point deadline, NewParser&& new_parser) {
    for (int attempt = 0;; ++attempt) {
      bool reused = connected();
      if (reused && connection_is_stale()) {
        close();
        reused = false;
      }
      if (!reused) {
        const auto connect_deadline =
            std::min(deadline, Clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms));
        HR_RETURN_IF_ERROR(connect(connect_deadline));
      }
      auto& parser = new_parser();
      close_after_response_ = false;
      const beast::error_code write_ec = with_stream([&](auto& stream) {
        beast::get_lowest_layer(stream).expires_at(deadline);
        return run([&](auto handler) { http::async_write(stream, req, std::move(handler)); });
      });
      beast::error_code ec = write_ec;
      // A server may answer before it has read the whole request (a 413 for
      // a body it will not take) and close: the write then fails, but the
      // answer is there to read.
      if (!write_ec || is_closed_by_peer(write_ec)) {
        ec = with_stream([&](auto& stream) {
          return run([&](auto handler) { http::async_read_header(stream, buffer_, parser, std::move(handler)); });
        });
        if (!ec && write_ec) close_after_response_ = true;
      }
      if (!ec) return Status::ok();
      close();
      if (reused && attempt == 0 && !parser.got_some() && is_closed_by_peer(ec)) continue;
      return exchange_error(req, write_ec ? write_ec : ec, deadline);
    }
  }

  Status exchange_error(const http::request<http::string_body>& req, const beast::error_code& ec,
                        Clock::time_point deadline) const {
    std::string what = describe(ec);
    if (ec == beast::error::timeout || Clock::now() >= deadline) {
      what = "no complete response within " + std::to_string(options_.read_timeout_ms) + " ms";
    } else if (ec == http::error::body_limit) {
      what = "response body over " + std::to_string(options_.max_body_bytes) + " bytes";
    }
    std::string target(req.target());
    if (!origin_.path_prefix.empty()) target.erase(0, origin_.path_prefix.size());
    return Status::unavailable(std::string(req.method_string()) + " " + origin_.base_url + target + ": " + what);
  }

  void finish(bool keep_alive) {
    if (!keep_alive || close_after_response_) close();
  }

  HttpClientOptions options_;
  client::Origin origin_;
  asio::io_context io_{1};
  std::optional<PlainStream> plain_;
  std::optional<TlsStream> tls_;
  beast::flat_buffer buffer_;
  bool close_after_response_ = false;  // the request was not sent whole
};

Result<HttpClient> HttpClient::create(std::string_view base_url, HttpClientOptions options) {
  try {
    auto impl = std::make_unique<Impl>(std::move(options));
    HR_RETURN_IF_ERROR(impl->init(base_url));
    return HttpClient(std::move(impl));
  } catch (const std::exception& e) {
    return Status::invalid_argument("cannot set up a client for '" + std::string(base_url) + "': " + e.what());
  }
}

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;
HttpClient::~HttpClient() = default;

Result<HttpClientResponse> HttpClient::request(std::string_view method, std::string_view target, std::string_view body,
                                               const HttpHeaders& headers) {
  try {
    return impl_->request(method, target, body, headers);
  } catch (const std::exception& e) {
    impl_->close();
    return Status::unavailable(std::string(method) + " " + impl_->base_url() + std::string(target) + ": " + e.what());
  } catch (...) {
    impl_->close();
    return Status::unavailable(std::string(method) + " " + impl_->base_url() + std::string(target) +
                               ": unexpected failure");
  }
}

Status HttpClient::request_stream(std::string_view method, std::string_view target, std::string_view body,
                                  const HttpHeaders& headers,
                                  const std::function<bool(std::string_view chunk)>& on_body_chunk,
                                  const std::function<void(const HttpClientResponse& head)>& on_head) {
  try {
    return impl_->request_stream(method, target, body, headers, on_body_chunk, on_head);
  } catch (const std::exception& e) {
    impl_->close();
    return Status::internal(std::string(method) + " " + impl_->base_url() + std::string(target) + ": " + e.what());
  } catch (...) {
    impl_->close();
    return Status::internal(std::string(method) + " " + impl_->base_url() + std::string(target) + ": a callback threw");
  }
}

const std::string& HttpClient::base_url() const { return impl_->base_url(); }

void HttpClient::close() { impl_->close(); }

}  // namespace headroom::net
