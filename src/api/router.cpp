#include "api/router.h"

#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include "common/text.h"

namespace headroom::api {
namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    out.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

bool is_param(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// Matches without allocating: walks the path's segments against the pattern's.
bool match(const std::vector<std::string>& pattern, std::string_view path,
           std::vector<std::pair<std::string_view, std::string_view>>* params) {
  if (path.empty() || path.front() != '/') return false;
  std::size_t start = 1;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (start > path.size()) return false;
    std::size_t slash = path.find('/', start);
    bool last = i + 1 == pattern.size();
    if (slash == std::string_view::npos) slash = path.size();
    else if (last) return false;  // the path has more segments
    std::string_view segment = path.substr(start, slash - start);
    const std::string& want = pattern[i];
    if (is_param(want)) {
      if (segment.empty()) return false;
      if (params) params->emplace_back(std::string_view(want).substr(1, want.size() - 2), segment);
    } else if (segment != want) {
      return false;
    }
    start = slash + 1;
  }
  return start > path.size();
}

}  // namespace

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return 200;
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kUnauthenticated: return 401;
    case ErrorCode::kInsufficientFunds: return 402;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kMethodNotAllowed: return 405;
    case ErrorCode::kAlreadyExists: return 409;
    case ErrorCode::kConflict: return 409;
    case ErrorCode::kPayloadTooLarge: return 413;
    case ErrorCode::kQuotaExceeded: return 429;
    case ErrorCode::kRateLimited: return 429;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kInternal: return 500;
  }
  return 500;
}

// {"error":{"code":...,"message":...,"request_id":...}}, the one error shape.
void write_error_body(net::HttpResponse& response, int status, std::string_view code, std::string_view message,
                      std::string_view request_id) {
  boost::json::object error;
  error["code"] = code;
  error["message"] = to_valid_utf8(message);
  error["request_id"] = request_id;
  response.status = status;
  response.content_type = "application/json";
  response.body = boost::json::serialize(boost::json::object{{"error", std::move(error)}});
  response.stream.reset();  // an error is never streamed
}

namespace {

void log_if_failed(std::string_view request_id, std::string_view method, std::string_view path,
                   const net::HttpResponse& response) {
  if (response.status >= 500) {
    spdlog::error("{} {} {} -> {}: {}", request_id, method, path, response.status, response.body);
  }
}

std::int64_t micros_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void write_error(net::HttpResponse& response, const Status& status, std::string_view request_id) {
  write_error_body(response, http_status(status.code()), error_code_name(status.code()), status.message(), request_id);
}

void Router::add(Route route) {
  CHECK(!metrics_) << "routes are fixed once the router is sealed";
  compiled_.push_back({split_path(route.pattern)});
  routes_.push_back(std::move(route));
}

void Router::seal() {
  std::vector<std::string> names;
  for (const auto& r : routes_) names.push_back(r.method + " " + r.pattern);
  names.push_back("unmatched");
  names.push_back("protocol_error");
  metrics_ = std::make_unique<Metrics>(std::move(names));
}

void Router::handle(const net::HttpRequest& request, net::HttpResponse& response) {
  CHECK(metrics_) << "seal() the router before serving";
  auto start = std::chrono::steady_clock::now();
  std::size_t route_index = unmatched_index();
  dispatch(request, response, route_index);
  if (response.deferred) [[unlikely]] {
    // Measured and labelled when it completes, so that the latency counts the
    // wait. The request's views die with this call: the hook keeps copies.
    response.deferred->on_complete([this, route_index, start, request_id = std::string(request.request_id),
                                    method = std::string(request.method),
                                    path = std::string(request.path)](net::HttpResponse& completed) {
      completed.route = routes_[route_index].pattern;
      log_if_failed(request_id, method, path, completed);
      metrics_->record(route_index, completed.status, micros_since(start));
    });
    return;
  }
  log_if_failed(request.request_id, request.method, request.path, response);
  metrics_->record(route_index, response.status, micros_since(start));
}

void Router::dispatch(const net::HttpRequest& request, net::HttpResponse& response, std::size_t& route_index) {
  RequestContext ctx{request, {}, {}};
  bool path_matched = false;
  std::string allowed;
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    ctx.params.clear();
    if (!match(compiled_[i].segments, request.path, &ctx.params)) continue;
    path_matched = true;
    const Route& r = routes_[i];
    bool same_method = r.method == request.method || (request.method == "HEAD" && r.method == "GET");
    if (!same_method) {
      if (!allowed.empty()) allowed += ", ";
      allowed += r.method;
      continue;
    }
    route_index = i;
    break;
  }
  if (route_index == unmatched_index()) {
    if (path_matched) {
      response.headers.emplace_back("allow", allowed);
      write_error(response, Status::method_not_allowed(std::string(request.method) + " is not allowed on " +
                                                       std::string(request.path) + " (allowed: " + allowed + ")"),
                  request.request_id);
    } else {
      write_error(response, Status::not_found("no route " + std::string(request.method) + " " +
                                              std::string(request.path.substr(0, 200))),
                  request.request_id);
    }
    return;
  }
  const Route& route = routes_[route_index];
  response.route = route.pattern;

  if (route.access == Access::kAuthenticated) {
    auto caller = authenticator_.authenticate(request.header("authorization"));
    if (!caller) {
      response.headers.emplace_back("www-authenticate", "Bearer");
      route.errors(response, caller.status(), request.request_id);
      return;
    }
    ctx.caller = std::move(*caller);
    if (!ctx.caller.has_scope(route.scope)) {
      std::string needed;
      for (auto name : store::scope_names(route.scope)) needed += (needed.empty() ? "" : ", ") + std::string(name);
      route.errors(response, Status::permission_denied("this route needs a key with the " + needed + " scope"),
                  request.request_id);
      return;
    }
    if (route.ownership) {
      std::string_view id = ctx.param(route.ownership->param);
      auto not_found = Status::not_found(std::string(route.ownership->noun) + " " + std::string(id.substr(0, 64)) +
                                         " not found");
      auto owner = route.ownership->owner_of(id);
      if (!owner) {
        route.errors(response, owner.status(), request.request_id);
        return;
      }
      // The same answer for "no such object" and "not yours": reveal nothing.
      if (!*owner || !ctx.caller.may_access(**owner)) {
        route.errors(response, not_found, request.request_id);
        return;
      }
    }
  }

  Status status = route.handler(ctx, response);
  if (!status) {
    // A handler that deferred and then failed: the error is the answer, and
    // whoever holds the deferred response finds it abandoned.
    if (response.deferred) {
      response.deferred->abandon();
      response.deferred.reset();
    }
    route.errors(response, status, request.request_id);
  }
}

void Router::handle_protocol_error(int status, std::string_view code, std::string_view message,
                                   std::string_view request_id, net::HttpResponse& response) {
  write_error_body(response, status, code, message, request_id);
  if (metrics_) metrics_->record(protocol_index(), status, 0);
}

}  // namespace headroom::api
