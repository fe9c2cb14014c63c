// What HttpClient (synchronous, for the CLI and tests) and AsyncHttpClient
// (on a server's I/O threads, for the gateway) share: the base URL parsed
// and checked once, the request built from it, the TLS set-up, and how
// failures read. Internal to net/.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "common/status.h"
#include "net/http_client.h"

namespace headroom::net::client {

namespace beast = boost::beast;
namespace http = boost::beast::http;

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using Request = http::request<http::string_body>;

// A base URL, "https://gpu.example:8443/headroom", as a client uses it.
struct Origin {
  std::string base_url;     // as given, without a trailing '/'
  bool tls = false;         // https
  std::string host;         // for the resolver, SNI and certificate checks (IPv6 without brackets)
  std::string port;         // "443"
  std::string host_header;  // host[:port] as the Host header wants it
  std::string path_prefix;  // the base URL's path, no trailing '/'
  std::string user_agent;
  TlsVerify tls_verify = TlsVerify::kVerify;
  std::shared_ptr<boost::asio::ssl::context> ssl_context;  // https only
};

// invalid_argument naming what is wrong with the URL or the CA file.
Result<Origin> parse_origin(std::string_view base_url, const HttpClientOptions& options);

// The request for `target` (a path and query) under the origin's prefix;
// invalid_argument for a bad method, target or header.
Result<Request> make_request(const Origin& origin, std::string_view method, std::string_view target,
                             std::string_view body, const HttpHeaders& headers);

// Sets SNI and the certificate check on a new TLS stream, before its
// handshake; unavailable (with `where` in front) when it cannot.
Status prepare_tls(TlsStream& stream, const Origin& origin, const std::string& where);

// Errors after which a kept connection is known to have been closed by the
// server before it answered: the request can be sent again on a new one.
bool is_closed_by_peer(const beast::error_code& ec);

// An error as a person reads it: "timed out", "connection closed by the server".
std::string describe(const beast::error_code& ec);

bool ascii_iequal(std::string_view a, std::string_view b);

// The status and headers of a response, its body empty.
template <typename Message>
HttpClientResponse head_of(const Message& message) {
  HttpClientResponse response;
  response.status = static_cast<int>(message.result_int());
  for (const auto& field : message) {
    response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  return response;
}

// The most bytes one streamed piece of a response body carries (both
// clients' on_chunk).
inline constexpr std::size_t kStreamChunkBytes = 16 * 1024;

}  // namespace headroom::net::client
