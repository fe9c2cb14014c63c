// HttpServer: HTTP/1.1 (and HTTPS) on Boost.Beast with C++20 coroutines.
//
// One I/O thread per io_context, each with its own SO_REUSEPORT acceptor, so
// that threads share nothing on the request path. Every connection is bounded:
// header and body sizes (431, 413), a read deadline for a whole request once
// its first byte arrives, an idle deadline between keep-alive requests, and a
// write deadline. Each response carries x-request-id.
//
// A deferred response (HttpResponse::defer) parks its connection, not its
// thread, until the DeferredResponse completes or deferred_timeout_ms passes
// (then a 503 and the connection closes). A streamed response
// (HttpResponse::stream) has no total deadline: each write has the write
// deadline, and the stream ends when its BodyStream ends, when the client goes
// (a failed write, or a hang-up seen while waiting) or when the server stops.
//
// start() binds and returns; stop() stops accepting, closes idle connections,
// ends streams (with their last chunk), lets in-flight requests, deferred ones
// included, finish (up to limits::kShutdownGraceMs), abandons what is left
// and joins.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/limits.h"
#include "common/status.h"
#include "net/http.h"

namespace headroom::net {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 picks a free port; see HttpServer::port()
  std::size_t threads = 1;
  std::string tls_cert_path;  // both set: HTTPS; both empty: HTTP
  std::string tls_key_path;
  // Deadlines; tests shorten them.
  std::int64_t read_timeout_ms = limits::kHttpReadTimeoutMs;
  std::int64_t idle_timeout_ms = limits::kHttpIdleTimeoutMs;
  std::int64_t write_timeout_ms = limits::kHttpWriteTimeoutMs;
  std::int64_t shutdown_grace_ms = limits::kShutdownGraceMs;
  std::int64_t deferred_timeout_ms = limits::kHttpDeferredTimeoutMs;
  std::int64_t stream_poll_ms = limits::kHttpStreamPollMs;
};

class HttpServer {
 public:
  // `handler` must outlive the server.
  static Result<std::unique_ptr<HttpServer>> start(const ServerOptions& options, HttpHandler& handler);
  virtual ~HttpServer() = default;

  virtual std::uint16_t port() const = 0;
  virtual bool is_tls() const = 0;
  // Graceful: see above. Idempotent; also run by the destructor.
  virtual void stop() = 0;
};

}  // namespace headroom::net
