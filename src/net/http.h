// The HTTP request and response as handlers see them, free of Beast types so
// that handlers compile fast and do not depend on the transport.
//
// A request's string_views point into the server's buffers: valid only while
// the handler runs. A handler that answers later (HttpResponse::defer) or
// streams (HttpResponse::stream) copies what it needs before it returns.
//
// Three ways to answer, chosen by the handler:
//
//   plainly   fill status, headers and body; the server sends them when
//             handle() returns. The common case, and the fastest.
//   deferred  call response.defer() and hand the DeferredResponse it returns
//             to another thread, which calls complete() with the response
//             when it has one (after a group commit, say). The I/O thread
//             serves other connections meanwhile.
//   streamed  set response.stream; the server sends the head, then the
//             body's bytes as the BodyStream yields them, until it ends, the
//             client goes or the server stops.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace headroom::net {

// Header lookup, implemented by the transport (and by tests and fuzzers).
class HeaderSource {
 public:
  virtual ~HeaderSource() = default;
  // The first value of a header (case-insensitive), or empty.
  virtual std::string_view get(std::string_view name) const = 0;
};

class HttpRequest {
 public:
  std::string_view method;      // "GET"
  std::string_view target;      // "/v1/tenants?limit=10"
  std::string_view path;        // "/v1/tenants"
  std::string_view query;       // "limit=10" (no '?')
  std::string_view body;
  std::string_view request_id;  // the client's X-Request-Id if sane, else ours
  std::string_view remote_address;

  const HeaderSource* headers = nullptr;

  // The io_context of the I/O thread serving this request: a handler may
  // start asynchronous work on it (net::AsyncHttpClient) and complete a
  // deferred response or wake a stream from its handlers, with no thread
  // switch. Null outside a server (tests, fuzzers).
  boost::asio::io_context* io = nullptr;

  // The first value of a header (case-insensitive), or empty.
  std::string_view header(std::string_view name) const { return headers ? headers->get(name) : std::string_view(); }
};

// A response body produced piece by piece: a log followed as it grows, a
// stream of server-sent events.
//
// The server calls next() on its I/O thread, never two calls at once. next()
// appends the bytes ready now to `out` (which the server empties between
// calls) and says what follows:
//   kData  more may come: call again at once;
//   kWait  nothing more is ready yet (it may still have appended some): the
//          server calls again after wake() or limits::kHttpStreamPollMs,
//          whichever comes first;
//   kEnd   the body ends with what was appended (which may be nothing).
// next() must not block. It is not called again after kEnd, after the client
// has gone, or once the server stops; it is never called for a HEAD request.
//
// Over HTTP/1.1 the body goes out with Transfer-Encoding: chunked, each
// next() that yields bytes becoming one chunk; an HTTP/1.0 client gets the
// bytes as they are and the connection closes at the end.
//
// Lifetime: held by std::shared_ptr, by the handler's side (which produces
// the bytes and calls wake()) and by the server until the stream is done.
// Thread-safety: wake() may be called from any thread at any time; next() is
// called on the I/O thread only, so it synchronises with the producer itself.
class BodyStream {
 public:
  enum class Next { kData, kWait, kEnd };

  BodyStream() = default;
  BodyStream(const BodyStream&) = delete;
  BodyStream& operator=(const BodyStream&) = delete;
  virtual ~BodyStream();

  virtual Next next(std::string& out) = 0;

  // Has the server call next() again promptly rather than at the next poll.
  // Call it after making bytes (or the end) ready. Cheap; safe before the
  // stream has started and after it is done (it does nothing then: next() is
  // called first thing when a stream starts).
  void wake();

  // For the transport: wake() calls `waker` (under a lock: it must be quick
  // and must not call back into this stream). An empty function detaches.
  void set_waker(std::function<void()> waker);

 private:
  std::mutex waker_mutex_;
  std::function<void()> waker_;
};

class DeferredResponse;

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set by the router so that metrics can be labelled by route pattern.
  std::string_view route = "unmatched";

  // When set, the response's body is `body` (sent first, may be empty)
  // followed by what the stream yields. See BodyStream.
  std::shared_ptr<BodyStream> stream;

  // Set by defer(): the server ignores the rest of this response and waits
  // for the DeferredResponse's completion instead.
  std::shared_ptr<DeferredResponse> deferred;

  // Marks the response deferred and returns the object that completes it
  // (the same one if called again).
  std::shared_ptr<DeferredResponse> defer();
};

// A response that a handler completes after handle() has returned, from any
// thread: the handler calls HttpResponse::defer(), passes the returned
// pointer on (to a compute thread's queue, say) and returns; whoever holds
// it later builds an HttpResponse (api::write_error works on it as on any)
// and calls complete(). The server then sends it as if handle() had filled
// it in: x-request-id, keep-alive and HEAD are handled as usual, and the
// response may carry a stream.
//
// The request's string_views are dead by then: copy the request id and
// whatever else the completion needs before handle() returns.
//
// The server waits up to ServerOptions::deferred_timeout_ms (or the
// response's own wait_ms, for work known to take longer, such as a long
// completion), and at a graceful stop up to its grace period; past either it gives up on the
// request (abandon()). complete() stays safe whatever became of the
// connection or the server, even after both are destroyed: it then drops the
// response.
//
// Thread-safe. Held by std::shared_ptr: by the response until the server
// takes it, by the server while it waits, and by whoever will complete it.
class DeferredResponse final {
 public:
  // Runs on the completed response, once. See on_complete().
  using Hook = std::function<void(HttpResponse&)>;

  DeferredResponse() = default;
  DeferredResponse(const DeferredResponse&) = delete;
  DeferredResponse& operator=(const DeferredResponse&) = delete;

  // Completes the request with `response`, which must not itself be
  // deferred. Any thread, once: a second call is a bug, logged and ignored.
  // After abandon() the response is dropped.
  void complete(HttpResponse response);

  // True once complete() or abandon() has been called: the completer may
  // skip work nobody will see. (Advisory: it may turn true right after.)
  bool done() const;

  // How long the server waits for complete(), when the handler knows the
  // work may outlast ServerOptions::deferred_timeout_ms; set it before the
  // handler returns. 0: the server's.
  std::int64_t wait_ms = 0;

  // ---- For the router and the transport, not for handlers. ----

  // Adds a hook to run on the response when it completes, after those added
  // before, on the completing thread; or at once, on this thread, if it has
  // already completed. Hooks run under this object's lock: they must be
  // quick and must not call into this object. A hook may change the response
  // (the router labels its route) and is dropped unrun on abandon().
  void on_complete(Hook hook);
  // The completed response, once; nullopt before completion and after.
  std::optional<HttpResponse> take();
  // Nobody will send the response any more: drops the hooks and any
  // response; a later complete() does nothing. Idempotent.
  void abandon();

 private:
  enum class State { kPending, kCompleted, kTaken, kAbandoned };

  mutable std::mutex mutex_;
  State state_ = State::kPending;
  std::optional<HttpResponse> response_;
  std::vector<Hook> hooks_;
};

// Answers requests. Called on the server's I/O threads, concurrently:
// implementations must be thread-safe and should not block for long (a
// handler with slow work defers its response).
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  virtual void handle(const HttpRequest& request, HttpResponse& response) = 0;
  // An error the server answers itself (bad framing, a body past its limit,
  // a deferred response that came too late): lets the handler count it and
  // shape its body like other errors.
  virtual void handle_protocol_error(int status, std::string_view code, std::string_view message,
                                     std::string_view request_id, HttpResponse& response) = 0;
};

// Looks up `name` in a query string ("a=1&b=2"), percent-decoding the value.
// Returns false when absent.
bool query_param(std::string_view query, std::string_view name, std::string& value);

}  // namespace headroom::net
