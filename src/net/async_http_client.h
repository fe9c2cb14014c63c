// AsyncHttpClient: HTTP/1.1 requests to one base URL, run on the caller's
// io_context, for the gateway's calls to external model servers from the
// server's own I/O threads (HttpRequest::io): no thread of its own, no hop
// to another thread and back, no thread parked per request in flight.
//
//   client->start(*request.io, {.method = "POST", .target = "/chat/completions", .body = body,
//                               .on_head = ..., .on_chunk = ..., .on_done = ...});
//
// Contract:
// - Connections are kept alive and reused, per io_context: an idle one is
//   only ever used on the io_context that made it. They live in a service of
//   that io_context (see async_http_client.cpp), so they close before it
//   goes, whichever of it and the client goes first.
// - As HttpClient: a kept connection that the server has closed meanwhile
//   is replaced and the request sent again, only when not a byte of the
//   response had arrived; every failure to get a response is unavailable
//   naming the URL; a response with any status is a value.
// - on_head is called once with the status and headers, then on_chunk with
//   the body's bytes as they arrive (chunk boundaries not kept); on_chunk
//   returning false stops the read (the connection is closed). on_done is
//   called exactly once, last: ok after a whole response (or one the caller
//   stopped), else why there was none or it broke off. All three run on the
//   io_context's thread. Should the io_context be destroyed with the request
//   still in flight, on_abandoned runs then instead (nothing more can run on
//   that io_context), or on_done with unavailable when on_abandoned is unset.
// - Each wait for bytes is bounded: connect_timeout_ms for DNS, TCP and TLS,
//   read_timeout_ms from sending to the response's head, and
//   stream_idle_timeout_ms between pieces of the body.
// - Thread-safe: start() may be called from any thread, on any io_context
//   run by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "net/http_client.h"

namespace boost::asio {
class io_context;
}

namespace headroom::net {

struct AsyncHttpCall {
  std::string method = "GET";
  std::string target;  // path and query, percent-encoded, after the base URL's path
  std::string body;    // sent as application/json unless `headers` names a Content-Type
  HttpHeaders headers;
  std::function<void(const HttpClientResponse& head)> on_head;
  std::function<bool(std::string_view chunk)> on_chunk;
  std::function<void(const Status& status)> on_done;
  std::function<void()> on_abandoned;
};

class AsyncHttpClient : public std::enable_shared_from_this<AsyncHttpClient> {
 public:
  // invalid_argument on a malformed URL or an unreadable CA file.
  static Result<std::shared_ptr<AsyncHttpClient>> create(std::string_view base_url, HttpClientOptions options = {});
  ~AsyncHttpClient();

  // Starts `call` on `io`; returns at once. A bad method, target or header
  // is reported through on_done.
  void start(boost::asio::io_context& io, AsyncHttpCall call);

  const std::string& base_url() const;

  struct Impl;

 private:
  explicit AsyncHttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace headroom::net
