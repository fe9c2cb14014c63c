// HttpClient: a small synchronous HTTP/1.1 client, for the CLI and for tests.
//
//   HR_ASSIGN_OR_RETURN(auto client, net::HttpClient::create("https://headroom.example"));
//   HR_ASSIGN_OR_RETURN(auto response, client.request("GET", "/v1/me", {}, {{"Authorization", "Bearer hr_..."}}));
//   if (response.status == 200) use(response.body);
//
// Contract:
// - One HttpClient holds at most one connection to its base URL and keeps it
//   alive between calls. A call on a kept connection that the server has closed
//   in the meantime reconnects once and sends the request again; this happens
//   only when not a byte of the response had arrived, so the server never saw
//   the request (a server that reads a request and then dies without a word is
//   the one case where a request may be sent twice).
// - A response that the server sends before it has read the whole request
//   (a 413 for a body over its limit) is returned, not the failed write.
// - Every failure to get a response (DNS, refused, TLS, timeout, a malformed
//   response, a body over the limit) is a Status::unavailable whose message
//   names the URL. A response with any HTTP status, 4xx and 5xx included, is a
//   value: the caller reads `status`. Bad arguments (a target without a leading
//   '/', a header with a line break) are Status::invalid_argument. No exception
//   escapes.
// - Not thread-safe: one thread uses a client at a time. Movable, not copyable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/limits.h"
#include "common/status.h"

namespace headroom::net {


using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// A response as the client reads it. (net/http.h's HttpResponse is the
// server's, which a handler fills in; the names differ so that both may
// live in one program.)
struct HttpClientResponse {
  int status = 0;
  std::string body;
  HttpHeaders headers;  // in the order received; names as the server wrote them

  // The value of the first header with this name (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

// Whether an https client checks the server's certificate. kSkip is for tests
// against self-signed servers; it gives up all protection against an
// impostor, so it is never a default.
enum class TlsVerify { kVerify, kSkip };

struct HttpClientOptions {
  // A PEM file of trusted CA certificates for https; empty: the system store.
  std::string ca_file;
  TlsVerify tls_verify = TlsVerify::kVerify;
  // DNS, TCP and TLS together. (A DNS lookup already begun is waited out: the
  // system resolver bounds it by its own timeouts.)
  std::int64_t connect_timeout_ms = limits::kHttpClientConnectTimeoutMs;
  // request(): from sending the request to the response's last byte.
  std::int64_t read_timeout_ms = limits::kHttpClientReadTimeoutMs;
  // request_stream(): the longest wait for the next bytes of the body.
  std::int64_t stream_idle_timeout_ms = limits::kHttpClientStreamIdleTimeoutMs;
  std::size_t max_body_bytes = limits::kHttpClientResponseBodyBytes;  // request() only
  std::string user_agent;  // empty: "headroom/<version>"
};

class HttpClient {
 public:
  // `base_url` is http:// or https://, with an optional port and an optional
  // path prefix ("https://gpu.example/headroom") that is put before every
  // target. Nothing is connected until the first request. Fails
  // (invalid_argument) on a malformed URL or an unreadable CA file.
  static Result<HttpClient> create(std::string_view base_url, HttpClientOptions options = {});

  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  ~HttpClient();

  // Sends one request and reads the whole response. `target` is a path and
  // query ("/v1/tenants?limit=10"), already percent-encoded. A non-empty body
  // is sent as application/json unless `headers` names a Content-Type.
  Result<HttpClientResponse> request(std::string_view method, std::string_view target, std::string_view body = {},
                               const HttpHeaders& headers = {});

  // Sends one request and hands the response body to `on_body_chunk` as it
  // arrives (chunked transfer encoding or not), for log follow and
  // server-sent events. A call carries what one read brought, up to 16 KiB:
  // the server's chunk boundaries are not kept (a call may hold the end of
  // one chunk and the start of the next), so a caller that wants lines or
  // events splits them itself. `on_head`, when given, is called once with the status
  // and headers (its body empty) before the first chunk: the body of a
  // non-2xx response is streamed like any other, so a caller that cares looks
  // at the status there. `on_body_chunk` returning false stops the read and
  // closes the connection; the call then returns ok. Each wait for more bytes
  // is bounded by stream_idle_timeout_ms, the stream as a whole is not.
  // An exception thrown by a callback is returned as Status::internal.
  Status request_stream(std::string_view method, std::string_view target, std::string_view body,
                        const HttpHeaders& headers, const std::function<bool(std::string_view chunk)>& on_body_chunk,
                        const std::function<void(const HttpClientResponse& head)>& on_head = {});

  // The base URL as given, without a trailing '/'. (A moved-from client may
  // only be assigned to or destroyed.)
  const std::string& base_url() const;

  // Closes the kept connection, if any; the next request opens a new one.
  void close();

 private:
  class Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace headroom::net
