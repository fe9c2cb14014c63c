// Router: the control API's front door. It matches a request to a route,
// authenticates it, checks the route's scope and the caller's right to the
// object the path names, runs the handler and renders errors, and records
// metrics. Routes declare these rules as data, so no handler can forget them.
#pragma once

#include <boost/json/value.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/metrics.h"
#include "auth/authenticator.h"
#include "net/http.h"

namespace headroom::api {

struct RequestContext {
  const net::HttpRequest& http;
  auth::Caller caller;  // unauthenticated on public routes
  std::vector<std::pair<std::string_view, std::string_view>> params;  // from the path pattern

  std::string_view param(std::string_view name) const {
    for (auto& [k, v] : params) {
      if (k == name) return v;
    }
    return {};
  }
};

// Fills the response on success; an error Status becomes a JSON error.
//
// A handler may instead answer later: it calls response.defer(), hands the
// DeferredResponse on (with copies of what it needs from the request: the
// context's views die when it returns) and returns Status::ok(). Whoever
// completes it fills a fresh HttpResponse, with write_error() for a failure,
// and calls complete(). The router labels the completed response with the
// route and records its metrics then, so the latency includes the wait. A
// handler that defers and then returns an error answers with the error; the
// deferred response is abandoned (its complete() does nothing).
//
// Or it may stream: set response.stream (net/http.h's BodyStream). Its
// metrics are recorded when the handler returns, with the head.
using Handler = std::function<Status(RequestContext&, net::HttpResponse&)>;

enum class Access {
  kPublic,         // no key needed (health, metrics, the OpenAPI document)
  kAuthenticated,  // a valid key with the route's scope
};

// How to find the tenant that owns the object a path names, such as the
// {id} of /v1/keys/{id}. The router answers 404 when the object does not
// exist or the caller may not see it, with the same message either way.
struct Ownership {
  std::string_view noun;         // "tenant", "key": for the 404 message
  std::string_view param = "id"; // the path parameter naming the object
  // The owning tenant's id; nullopt when the object does not exist.
  std::function<Result<std::optional<std::string>>(std::string_view id)> owner_of;
};

// What the OpenAPI document says of a route.
struct RouteDoc {
  std::string summary;
  std::string tag;
  int success_status = 200;
  std::string request_schema;   // a components/schemas name, or empty
  std::string response_schema;  // a components/schemas name, or empty
  std::string response_content_type = "application/json";
  std::vector<std::string> query_params;
};

// Writes an error response; a route picks the shape of its errors.
using ErrorWriter = void (*)(net::HttpResponse& response, const Status& status, std::string_view request_id);
void write_error(net::HttpResponse& response, const Status& status, std::string_view request_id);

struct Route {
  std::string method;
  std::string pattern;  // "/v1/tenants/{id}/keys"
  Access access = Access::kAuthenticated;
  store::ScopeSet scope = 0;  // scopes the key must have; 0: any key
  std::optional<Ownership> ownership;
  Handler handler;
  RouteDoc doc;
  // Every error of the route, the router's (authentication, scope,
  // ownership) included: Headroom's shape, or OpenAI's on its API's routes.
  ErrorWriter errors = write_error;
};

// Thread-safe once sealed. Must outlive the server, and every response it
// deferred that is not yet completed or abandoned (the server abandons those
// it still waits on when it stops).
class Router final : public net::HttpHandler {
 public:
  explicit Router(auth::Authenticator& authenticator) : authenticator_(authenticator) {}

  // All routes are added before the server starts; the table is then fixed.
  void add(Route route);
  // Builds the metrics over the final route table. Call once, after add().
  void seal();

  void handle(const net::HttpRequest& request, net::HttpResponse& response) override;
  void handle_protocol_error(int status, std::string_view code, std::string_view message,
                             std::string_view request_id, net::HttpResponse& response) override;

  const std::vector<Route>& routes() const { return routes_; }
  const Metrics& metrics() const { return *metrics_; }

 private:
  struct Compiled {
    std::vector<std::string> segments;  // "{id}" marks a parameter
  };
  std::size_t unmatched_index() const { return routes_.size(); }
  std::size_t protocol_index() const { return routes_.size() + 1; }
  void dispatch(const net::HttpRequest& request, net::HttpResponse& response, std::size_t& route_index);

  auth::Authenticator& authenticator_;
  std::vector<Route> routes_;
  std::vector<Compiled> compiled_;
  std::unique_ptr<Metrics> metrics_;
};

// The HTTP status of an error code.
int http_status(ErrorCode code);
// {"error":{"code":...,"message":...,"request_id":...}}, replacing the
// response's status and body (and dropping any stream). Also for the
// completion of a deferred response.
void write_error(net::HttpResponse& response, const Status& status, std::string_view request_id);
// The same shape for a code a Status cannot carry (the server's own, such
// as "header_too_large").
void write_error_body(net::HttpResponse& response, int status, std::string_view code, std::string_view message,
                      std::string_view request_id);

}  // namespace headroom::api
