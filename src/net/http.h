// The HTTP request and response as handlers see them, free of Beast types so
// that handlers compile fast and do not depend on the transport.
//
// A request's string_views point into the server's buffers: valid only while
// the handler runs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

  // The first value of a header (case-insensitive), or empty.
  std::string_view header(std::string_view name) const { return headers ? headers->get(name) : std::string_view(); }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set by the router so that metrics can be labelled by route pattern.
  std::string_view route = "unmatched";
};

// Answers requests. Called on the server's I/O threads, concurrently:
// implementations must be thread-safe and should not block for long.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  virtual void handle(const HttpRequest& request, HttpResponse& response) = 0;
  // An error the server answers itself (bad framing, a body past its limit):
  // lets the handler count it and shape its body like other errors.
  virtual void handle_protocol_error(int status, std::string_view code, std::string_view message,
                                     std::string_view request_id, HttpResponse& response) = 0;
};

// Looks up `name` in a query string ("a=1&b=2"), percent-decoding the value.
// Returns false when absent.
bool query_param(std::string_view query, std::string_view name, std::string& value);

}  // namespace headroom::net
