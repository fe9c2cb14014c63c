#include "net/http_client.h"

#include <poll.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <exception>
#include <optional>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
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
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace headroom::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// The size of the buffer that request_stream() hands chunks from.
constexpr std::size_t kStreamChunkBytes = 16 * 1024;

bool ascii_iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

// RFC 9110 token characters: what a method or a header name may hold.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool is_header_value(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// A request target from the caller: origin-form, no spaces or controls.
bool is_origin_target(std::string_view s) {
  if (s.empty() || s.front() != '/') return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// Errors after which a kept connection is known to have been closed by the
// server before it answered: the request can be sent again on a new one.
bool is_closed_by_peer(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

std::string describe(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  if (ec == http::error::end_of_stream || ec == asio::error::eof) return "connection closed by the server";
  if (ec == http::error::body_limit) return "response body over the limit";
  if (ec == http::error::header_limit) return "response header over the limit";
  if (ec.category() == beast::error_code(http::error::bad_version).category()) {
    return "malformed response: " + ec.message();
  }
  return ec.message();
}

}  // namespace

std::string HttpClientResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (ascii_iequal(key, name)) return value;
  }
  return {};
}

class HttpClient::Impl {
 public:
  enum class Scheme { kHttp, kHttps };

  explicit Impl(HttpClientOptions options) : options_(std::move(options)) {}

  Status init(std::string_view base_url) {
    auto parsed = boost::urls::parse_uri(base_url);
    if (!parsed) {
      return Status::invalid_argument("malformed URL '" + std::string(base_url) + "': " + parsed.error().message());
    }
    const boost::urls::url_view url = *parsed;
    if (url.scheme_id() == boost::urls::scheme::http) {
      scheme_ = Scheme::kHttp;
    } else if (url.scheme_id() == boost::urls::scheme::https) {
      scheme_ = Scheme::kHttps;
    } else {
      return Status::invalid_argument("URL '" + std::string(base_url) + "' is neither http:// nor https://");
    }
    if (!url.has_authority() || url.encoded_host().empty()) {
      return Status::invalid_argument("URL '" + std::string(base_url) + "' has no host");
    }
    if (url.has_userinfo() || url.has_query() || url.has_fragment()) {
      return Status::invalid_argument("URL '" + std::string(base_url) +
                                      "' may hold only a scheme, a host, a port and a path");
    }
    if (url.host_type() == boost::urls::host_type::ipvfuture) {
      return Status::invalid_argument("URL '" + std::string(base_url) + "' has an unsupported host");
    }
    host_ = url.host_address();  // IPv6 without brackets, for the resolver
    if (host_.empty() || !is_header_value(host_)) {
      return Status::invalid_argument("URL '" + std::string(base_url) + "' has an invalid host");
    }
    const std::string_view default_port = scheme_ == Scheme::kHttps ? "443" : "80";
    if (url.has_port()) {
      const std::string_view port = url.port();
      unsigned long number = 0;
      for (char c : port) {
        number = number * 10 + static_cast<unsigned long>(c - '0');  // Boost.URL lets only digits through
        if (number > 65535) break;
      }
      if (port.empty() || number == 0 || number > 65535) {
        return Status::invalid_argument("URL '" + std::string(base_url) + "' has an invalid port");
      }
      port_ = std::to_string(number);
    } else {
      port_ = default_port;
    }
    host_header_ = std::string(url.encoded_host());  // IPv6 keeps its brackets here
    if (port_ != default_port) host_header_ += ":" + port_;
    path_prefix_ = std::string(url.encoded_path());
    while (!path_prefix_.empty() && path_prefix_.back() == '/') path_prefix_.pop_back();
    base_url_ = std::string(base_url);
    while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
    if (options_.user_agent.empty()) options_.user_agent = "headroom/" HEADROOM_VERSION;

    if (scheme_ == Scheme::kHttps) {
      ssl_context_.emplace(ssl::context::tls_client);
      ssl_context_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                                ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      beast::error_code ec;
      if (options_.tls_verify == TlsVerify::kVerify) {
        ssl_context_->set_verify_mode(ssl::verify_peer, ec);
        if (!options_.ca_file.empty()) {
          ssl_context_->load_verify_file(options_.ca_file, ec);
          if (ec) {
            return Status::invalid_argument("cannot load CA file '" + options_.ca_file + "': " + ec.message());
          }
        } else {
          ssl_context_->set_default_verify_paths(ec);
          if (ec) return Status::invalid_argument("cannot load the system's CA certificates: " + ec.message());
        }
      } else {
        ssl_context_->set_verify_mode(ssl::verify_none, ec);
      }
    }
    return Status::ok();
  }

  const std::string& base_url() const { return base_url_; }

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
    HR_RETURN_IF_ERROR(exchange(req, deadline, [&]() -> auto& {
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
    HttpClientResponse response = head_of(message);
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
    HR_RETURN_IF_ERROR(exchange(req, deadline, [&]() -> auto& {
      parser.emplace();
      parser->header_limit(static_cast<std::uint32_t>(limits::kHttpClientResponseHeaderBytes));
      parser->body_limit(boost::none);  // a stream is bounded by its reader, who may stop it
      if (req.method() == http::verb::head) parser->skip(true);
      return *parser;
    }));
    if (on_head) on_head(head_of(parser->get()));

    std::array<char, kStreamChunkBytes> chunk;
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
        return Status::unavailable(std::string(req.method_string()) + " " + base_url_ + std::string(target) +
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
    const std::string where = "cannot reach " + base_url_ + ": ";
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
    resolver.async_resolve(host_, port_, [&](beast::error_code ec, tcp::resolver::results_type results) {
      resolve_ec = ec;
      endpoints = std::move(results);
      timer.cancel();
    });
    io_.restart();
    io_.run();
    if (timed_out) {
      return Status::unavailable(where + "timed out resolving '" + host_ + "' after " +
                                 std::to_string(options_.connect_timeout_ms) + " ms");
    }
    if (resolve_ec) return Status::unavailable(where + "cannot resolve '" + host_ + "': " + resolve_ec.message());

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

    if (scheme_ == Scheme::kHttp) {
      plain_.emplace(std::move(tcp_stream));
      return Status::ok();
    }
    TlsStream tls(std::move(tcp_stream), *ssl_context_);
    beast::error_code address_ec;
    asio::ip::make_address(host_, address_ec);
    if (address_ec) {  // a name, not an address: send it for SNI
      if (SSL_set_tlsext_host_name(tls.native_handle(), host_.c_str()) != 1) {
        return Status::unavailable(where + "TLS: cannot set the server name '" + host_ + "'");
      }
    }
    if (options_.tls_verify == TlsVerify::kVerify) {
      tls.set_verify_callback(ssl::host_name_verification(host_), ec);
    }
    ec = run([&](auto handler) { tls.async_handshake(ssl::stream_base::client, std::move(handler)); });
    if (ec == beast::error::timeout) {
      return Status::unavailable(where + "timed out in the TLS handshake after " +
                                 std::to_string(options_.connect_timeout_ms) + " ms");
    }
    if (ec) return Status::unavailable(where + "TLS handshake failed: " + ec.message());
    tls_.emplace(std::move(tls));
    return Status::ok();
  }

  Result<http::request<http::string_body>> make_request(std::string_view method, std::string_view target,
                                                        std::string_view body, const HttpHeaders& headers) const {
    if (!is_token(method)) return Status::invalid_argument("invalid HTTP method '" + std::string(method) + "'");
    if (!is_origin_target(target)) {
      return Status::invalid_argument("invalid request target '" + std::string(target) +
                                      "': it must start with '/' and hold no spaces");
    }
    http::request<http::string_body> req;
    const http::verb verb = http::string_to_verb(method);
    if (verb == http::verb::unknown) {
      req.method_string(method);
    } else {
      req.method(verb);
    }
    req.target(path_prefix_ + std::string(target));
    req.version(11);
    req.set(http::field::host, host_header_);
    req.set(http::field::user_agent, options_.user_agent);
    bool has_content_type = false;
    for (const auto& [name, value] : headers) {
      if (!is_token(name) || !is_header_value(value)) {
        return Status::invalid_argument("invalid HTTP header '" + name + "'");
      }
      if (ascii_iequal(name, "host") || ascii_iequal(name, "content-length") ||
          ascii_iequal(name, "transfer-encoding")) {
        return Status::invalid_argument("header '" + name + "' is set by the client itself");
      }
      has_content_type = has_content_type || ascii_iequal(name, "content-type");
      req.insert(name, value);
    }
    if (!body.empty()) {
      req.body() = std::string(body);
      if (!has_content_type) req.set(http::field::content_type, "application/json");
    }
    req.prepare_payload();
    return req;
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
    if (!path_prefix_.empty()) target.erase(0, path_prefix_.size());
    return Status::unavailable(std::string(req.method_string()) + " " + base_url_ + target + ": " + what);
  }

  template <typename Message>
  static HttpClientResponse head_of(const Message& message) {
    HttpClientResponse response;
    response.status = static_cast<int>(message.result_int());
    for (const auto& field : message) {
      response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    return response;
  }

  void finish(bool keep_alive) {
    if (!keep_alive || close_after_response_) close();
  }

  HttpClientOptions options_;
  Scheme scheme_ = Scheme::kHttp;
  std::string base_url_;
  std::string host_;         // for the resolver, SNI and certificate checks
  std::string port_;
  std::string host_header_;  // host[:port] as the Host header wants it
  std::string path_prefix_;  // the base URL's path, no trailing '/'
  asio::io_context io_{1};
  std::optional<ssl::context> ssl_context_;
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
    return Status::internal(std::string(method) + " " + impl_->base_url() + std::string(target) +
                            ": a callback threw");
  }
}

const std::string& HttpClient::base_url() const { return impl_->base_url(); }

void HttpClient::close() { impl_->close(); }

}  // namespace headroom::net
