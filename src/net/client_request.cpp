#include "net/client_request.h"

#include <algorithm>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace headroom::net::client {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

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

}  // namespace

bool ascii_iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

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

Result<Origin> parse_origin(std::string_view base_url, const HttpClientOptions& options) {
  auto parsed = boost::urls::parse_uri(base_url);
  if (!parsed) {
    return Status::invalid_argument("malformed URL '" + std::string(base_url) + "': " + parsed.error().message());
  }
  const boost::urls::url_view url = *parsed;
  Origin origin;
  if (url.scheme_id() == boost::urls::scheme::http) {
    origin.tls = false;
  } else if (url.scheme_id() == boost::urls::scheme::https) {
    origin.tls = true;
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
  origin.host = url.host_address();  // IPv6 without brackets, for the resolver
  if (origin.host.empty() || !is_header_value(origin.host)) {
    return Status::invalid_argument("URL '" + std::string(base_url) + "' has an invalid host");
  }
  const std::string_view default_port = origin.tls ? "443" : "80";
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
    origin.port = std::to_string(number);
  } else {
    origin.port = default_port;
  }
  origin.host_header = std::string(url.encoded_host());  // IPv6 keeps its brackets here
  if (origin.port != default_port) origin.host_header += ":" + origin.port;
  origin.path_prefix = std::string(url.encoded_path());
  while (!origin.path_prefix.empty() && origin.path_prefix.back() == '/') origin.path_prefix.pop_back();
  origin.base_url = std::string(base_url);
  while (!origin.base_url.empty() && origin.base_url.back() == '/') origin.base_url.pop_back();
  origin.user_agent = options.user_agent.empty() ? "headroom/" HEADROOM_VERSION : options.user_agent;
  origin.tls_verify = options.tls_verify;

  if (origin.tls) {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
    context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    beast::error_code ec;
    if (options.tls_verify == TlsVerify::kVerify) {
      context->set_verify_mode(ssl::verify_peer, ec);
      if (!options.ca_file.empty()) {
        context->load_verify_file(options.ca_file, ec);
        if (ec) return Status::invalid_argument("cannot load CA file '" + options.ca_file + "': " + ec.message());
      } else {
        context->set_default_verify_paths(ec);
        if (ec) return Status::invalid_argument("cannot load the system's CA certificates: " + ec.message());
      }
    } else {
      context->set_verify_mode(ssl::verify_none, ec);
    }
    origin.ssl_context = std::move(context);
  }
  return origin;
}

Result<Request> make_request(const Origin& origin, std::string_view method, std::string_view target,
                             std::string_view body, const HttpHeaders& headers) {
  if (!is_token(method)) return Status::invalid_argument("invalid HTTP method '" + std::string(method) + "'");
  if (!is_origin_target(target)) {
    return Status::invalid_argument("invalid request target '" + std::string(target) +
                                    "': it must start with '/' and hold no spaces");
  }
  Request req;
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    req.method_string(method);
  } else {
    req.method(verb);
  }
  req.target(origin.path_prefix + std::string(target));
  req.version(11);
  req.set(http::field::host, origin.host_header);
  req.set(http::field::user_agent, origin.user_agent);
  bool has_content_type = false;
  for (const auto& [name, value] : headers) {
    if (!is_token(name) || !is_header_value(value)) {
      return Status::invalid_argument("invalid HTTP header '" + name + "'");
    }
    if (ascii_iequal(name, "host") || ascii_iequal(name, "content-length") || ascii_iequal(name, "transfer-encoding")) {
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

Status prepare_tls(TlsStream& stream, const Origin& origin, const std::string& where) {
  beast::error_code address_ec;
  asio::ip::make_address(origin.host, address_ec);
  if (address_ec) {  // a name, not an address: send it for SNI
    if (SSL_set_tlsext_host_name(stream.native_handle(), origin.host.c_str()) != 1) {
      return Status::unavailable(where + "TLS: cannot set the server name '" + origin.host + "'");
    }
  }
  if (origin.tls_verify == TlsVerify::kVerify) {
    beast::error_code ec;
    stream.set_verify_callback(ssl::host_name_verification(origin.host), ec);
    if (ec) return Status::unavailable(where + "TLS: cannot check the server's name: " + ec.message());
  }
  return Status::ok();
}

}  // namespace headroom::net::client
