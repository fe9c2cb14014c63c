#include "api/router.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "auth/api_key.h"
#include "common/random.h"

namespace headroom::api {
namespace {

namespace json = boost::json;

// Headers for a test request: case-insensitive lookup, first value wins.
class TestHeaders final : public net::HeaderSource {
 public:
  TestHeaders() = default;
  TestHeaders(std::initializer_list<std::pair<std::string, std::string>> headers) : headers_(headers) {}
  std::string_view get(std::string_view name) const override {
    for (const auto& [k, v] : headers_) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
        return v;
      }
    }
    return {};
  }

 private:
  std::vector<std::pair<std::string, std::string>> headers_;
};

std::string header_of(const net::HttpResponse& response, std::string_view name) {
  for (const auto& [k, v] : response.headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

struct ErrorBody {
  std::string code, message, request_id;
};

// Parses {"error":{"code","message","request_id"}}; fails the test otherwise.
ErrorBody error_of(const net::HttpResponse& response) {
  EXPECT_EQ(response.content_type, "application/json");
  boost::system::error_code ec;
  json::value v = json::parse(response.body, ec);
  EXPECT_FALSE(ec) << response.body;
  if (ec || !v.is_object() || !v.as_object().contains("error")) {
    ADD_FAILURE() << "not an error body: " << response.body;
    return {};
  }
  const json::object& root = v.as_object();
  EXPECT_EQ(root.size(), 1u) << response.body;
  const json::object& e = root.at("error").as_object();
  EXPECT_EQ(e.size(), 3u) << response.body;
  return {std::string(e.at("code").as_string()), std::string(e.at("message").as_string()),
          std::string(e.at("request_id").as_string())};
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() : random_(5), authenticator_(clock_), router_(authenticator_) {
    store::Tenant acme{"ten_acme", "acme", store::TenantKind::kExternal, clock_.now()};
    store::Tenant other{"ten_other", "other", store::TenantKind::kExternal, clock_.now()};
    store::Tenant ops{"ten_ops", "ops", store::TenantKind::kInternal, clock_.now()};
    std::vector<store::ApiKey> keys = {
        make_key("key_compute", acme.id, store::kScopeCompute, compute_key_),
        make_key("key_billing", acme.id, store::kScopeBilling, billing_key_),
        make_key("key_admin", ops.id, store::kScopeAdmin, admin_key_),
        make_key("key_both", acme.id, store::kScopeCompute | store::kScopeInference, both_key_),
    };
    authenticator_.load({acme, other, ops}, keys);

    owners_ = {{"t_acme", "ten_acme"}, {"t_other", "ten_other"}};
    Ownership thing{"thing", "id", [this](std::string_view id) -> Result<std::optional<std::string>> {
                      ++owner_lookups_;
                      if (id == "boom") return Status::unavailable("the store is down");
                      auto it = owners_.find(std::string(id));
                      if (it == owners_.end()) return std::optional<std::string>();
                      return std::optional<std::string>(it->second);
                    }};

    router_.add({.method = "GET", .pattern = "/health", .access = Access::kPublic,
                 .handler = [this](RequestContext& ctx, net::HttpResponse& r) {
                   ++calls_;
                   EXPECT_FALSE(ctx.caller.authenticated());
                   r.content_type = "text/plain";
                   r.body = "ok";
                   return Status::ok();
                 }});
    router_.add({.method = "GET", .pattern = "/v1/things", .scope = store::kScopeCompute, .handler = ok_handler()});
    router_.add({.method = "POST", .pattern = "/v1/things", .scope = store::kScopeCompute,
                 .handler = [this](RequestContext&, net::HttpResponse& r) {
                   ++calls_;
                   r.status = 201;
                   r.body = "{}";
                   return Status::ok();
                 }});
    router_.add({.method = "GET", .pattern = "/v1/things/{id}", .ownership = thing, .handler = ok_handler()});
    router_.add({.method = "DELETE", .pattern = "/v1/things/{id}", .scope = store::kScopeCompute,
                 .ownership = thing, .handler = ok_handler()});
    router_.add({.method = "GET", .pattern = "/v1/both", .scope = store::kScopeCompute | store::kScopeInference,
                 .handler = ok_handler()});
    router_.add({.method = "GET", .pattern = "/v1/tenants/{tenant}/things/{id}",
                 .handler = [this](RequestContext& ctx, net::HttpResponse& r) {
                   ++calls_;
                   r.body = std::string(ctx.param("tenant")) + "|" + std::string(ctx.param("id")) + "|" +
                            std::string(ctx.param("absent"));
                   return Status::ok();
                 }});
    router_.add({.method = "GET", .pattern = "/v1/fail/{code}",
                 .handler = [](RequestContext& ctx, net::HttpResponse& r) -> Status {
                   r.body = "partial output that must not leak";
                   return make_status(static_cast<ErrorCode>(std::stoi(std::string(ctx.param("code")))),
                                      "failure " + std::string(ctx.param("code")));
                 }});
    router_.add({.method = "GET", .pattern = "/v1/bad-utf8", .access = Access::kPublic,
                 .handler = [](RequestContext&, net::HttpResponse&) {
                   return Status::invalid_argument("name \"\xFF\xFE\xC3\" is not valid \xE2\x82");
                 }});
    router_.add({.method = "GET", .pattern = "/", .access = Access::kPublic, .handler = ok_handler()});
    // Answered later by the test, as a compute thread would after a commit.
    router_.add({.method = "POST", .pattern = "/v1/deferred", .scope = store::kScopeCompute,
                 .handler = [this](RequestContext& ctx, net::HttpResponse& r) {
                   ++calls_;
                   std::lock_guard lock(deferred_mutex_);
                   deferred_.push_back({r.defer(), std::string(ctx.http.request_id)});
                   return Status::ok();
                 }});
    router_.add({.method = "POST", .pattern = "/v1/deferred-then-fail", .scope = store::kScopeCompute,
                 .handler = [this](RequestContext& ctx, net::HttpResponse& r) {
                   std::lock_guard lock(deferred_mutex_);
                   deferred_.push_back({r.defer(), std::string(ctx.http.request_id)});
                   return Status::conflict("changed my mind");
                 }});
    router_.seal();
  }

  Handler ok_handler() {
    return [this](RequestContext& ctx, net::HttpResponse& r) {
      ++calls_;
      last_tenant_ = ctx.caller.authenticated() ? ctx.caller.tenant_id() : "";
      r.body = R"({"ok":true})";
      return Status::ok();
    };
  }

  static Status make_status(ErrorCode code, std::string message) {
    switch (code) {
      case ErrorCode::kOk: return Status::ok();
      case ErrorCode::kInvalidArgument: return Status::invalid_argument(message);
      case ErrorCode::kNotFound: return Status::not_found(message);
      case ErrorCode::kAlreadyExists: return Status::already_exists(message);
      case ErrorCode::kConflict: return Status::conflict(message);
      case ErrorCode::kUnauthenticated: return Status::unauthenticated(message);
      case ErrorCode::kPermissionDenied: return Status::permission_denied(message);
      case ErrorCode::kPayloadTooLarge: return Status::payload_too_large(message);
      case ErrorCode::kInsufficientFunds: return Status::insufficient_funds(message);
      case ErrorCode::kQuotaExceeded: return Status::quota_exceeded(message);
      case ErrorCode::kRateLimited: return Status::rate_limited(message);
      case ErrorCode::kUnavailable: return Status::unavailable(message);
      case ErrorCode::kInternal: return Status::internal(message);
      case ErrorCode::kMethodNotAllowed: return Status::method_not_allowed(message);
    }
    return Status::internal(message);
  }

  store::ApiKey make_key(std::string id, std::string tenant_id, store::ScopeSet scopes, std::string& secret) {
    auth::GeneratedKey generated = auth::generate_api_key(random_);
    store::ApiKey key;
    key.id = std::move(id);
    key.tenant_id = std::move(tenant_id);
    key.name = key.id;
    key.scopes = scopes;
    key.lookup_prefix = generated.lookup_prefix;
    key.secret_sha256 = generated.secret_sha256;
    key.created_at = clock_.now();
    secret = generated.secret;
    return key;
  }

  net::HttpResponse call(std::string_view method, std::string_view path, const std::string& key = "") {
    TestHeaders headers;
    if (!key.empty()) headers = TestHeaders{{"Authorization", "Bearer " + key}};
    return call_with(method, path, headers);
  }

  net::HttpResponse call_with(std::string_view method, std::string_view path, const TestHeaders& headers) {
    net::HttpRequest request;
    request.method = method;
    request.target = path;
    request.path = path;
    request.request_id = "req_test";
    request.headers = &headers;
    net::HttpResponse response;
    router_.handle(request, response);
    return response;
  }

  struct Deferred {
    std::shared_ptr<net::DeferredResponse> response;
    std::string request_id;
  };
  std::vector<Deferred> take_deferred() {
    std::lock_guard lock(deferred_mutex_);
    return std::exchange(deferred_, {});
  }

  std::string metrics_text() const { return router_.metrics().render(""); }

  ManualClock clock_;
  SeededRandom random_;
  auth::Authenticator authenticator_;
  Router router_;
  std::string compute_key_, billing_key_, admin_key_, both_key_;
  std::map<std::string, std::string> owners_;
  int calls_ = 0;
  int owner_lookups_ = 0;
  std::string last_tenant_;
  std::mutex deferred_mutex_;
  std::vector<Deferred> deferred_;
};

TEST_F(RouterTest, UnknownPathIs404NoRoute) {
  auto r = call("GET", "/v1/nowhere", compute_key_);
  EXPECT_EQ(r.status, 404);
  ErrorBody e = error_of(r);
  EXPECT_EQ(e.code, "not_found");
  EXPECT_NE(e.message.find("no route GET /v1/nowhere"), std::string::npos) << e.message;
  EXPECT_EQ(e.request_id, "req_test");
  EXPECT_EQ(r.route, "unmatched");
  EXPECT_EQ(calls_, 0);
  // Without a key too: an unknown path says nothing about authentication.
  EXPECT_EQ(call("GET", "/v1/nowhere").status, 404);
}

TEST_F(RouterTest, LongUnknownPathIsTruncatedInTheMessage) {
  std::string path = "/" + std::string(5'000, 'a');
  ErrorBody e = error_of(call("GET", path));
  EXPECT_LT(e.message.size(), 300u);
}

TEST_F(RouterTest, WrongMethodIs405WithAllow) {
  auto r = call("PUT", "/v1/things", compute_key_);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(header_of(r, "allow"), "GET, POST");
  ErrorBody e = error_of(r);
  EXPECT_EQ(e.code, "method_not_allowed");
  EXPECT_NE(e.message.find("PUT is not allowed on /v1/things"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("GET, POST"), std::string::npos) << e.message;

  auto on_item = call("POST", "/v1/things/t_acme", compute_key_);
  EXPECT_EQ(on_item.status, 405);
  EXPECT_EQ(header_of(on_item, "allow"), "GET, DELETE");
  EXPECT_EQ(calls_, 0);
  EXPECT_EQ(owner_lookups_, 0);  // no object lookup for a method that does not exist
}

TEST_F(RouterTest, PublicRouteNeedsNoKey) {
  auto r = call("GET", "/health");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(r.content_type, "text/plain");
  EXPECT_EQ(r.route, "/health");
  // A bad key on a public route is ignored, not rejected.
  auto with_garbage = call_with("GET", "/health", TestHeaders{{"Authorization", "Bearer nonsense"}});
  EXPECT_EQ(with_garbage.status, 200);
  EXPECT_EQ(calls_, 2);
  EXPECT_EQ(call("GET", "/").status, 200);
}

TEST_F(RouterTest, MissingKeyIs401WithWwwAuthenticate) {
  auto r = call("GET", "/v1/things");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(header_of(r, "www-authenticate"), "Bearer");
  ErrorBody e = error_of(r);
  EXPECT_EQ(e.code, "unauthenticated");
  EXPECT_NE(e.message.find("missing Authorization header"), std::string::npos) << e.message;
  EXPECT_EQ(calls_, 0);

  auto bad = call_with("GET", "/v1/things", TestHeaders{{"authorization", "Basic dXNlcjpwYXNz"}});
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(header_of(bad, "www-authenticate"), "Bearer");
  auto unknown = call("GET", "/v1/things", auth::generate_api_key(random_).secret);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_NE(error_of(unknown).message.find("invalid API key"), std::string::npos);
}

TEST_F(RouterTest, AuthenticationComesBeforeOwnership) {
  // An anonymous caller learns nothing about which objects exist.
  auto missing = call("GET", "/v1/things/t_nope");
  auto existing = call("GET", "/v1/things/t_acme");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(existing.status, 401);
  EXPECT_EQ(owner_lookups_, 0);
}

TEST_F(RouterTest, MissingScopeIs403NamingTheScope) {
  auto r = call("GET", "/v1/things", billing_key_);
  EXPECT_EQ(r.status, 403);
  ErrorBody e = error_of(r);
  EXPECT_EQ(e.code, "permission_denied");
  EXPECT_NE(e.message.find("compute scope"), std::string::npos) << e.message;
  EXPECT_EQ(calls_, 0);

  auto both = call("GET", "/v1/both", compute_key_);
  EXPECT_EQ(both.status, 403);
  EXPECT_NE(error_of(both).message.find("compute, inference"), std::string::npos) << both.body;
  EXPECT_EQ(call("GET", "/v1/both", both_key_).status, 200);
  // Admin is not a wildcard scope.
  EXPECT_EQ(call("GET", "/v1/things", admin_key_).status, 403);
  EXPECT_EQ(call("GET", "/v1/things", compute_key_).status, 200);
  EXPECT_EQ(header_of(r, "www-authenticate"), "<absent>");
}

TEST_F(RouterTest, ScopeIsCheckedBeforeOwnership) {
  auto r = call("DELETE", "/v1/things/t_other", billing_key_);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(owner_lookups_, 0);
}

TEST_F(RouterTest, AnotherTenantsObjectLooksExactlyLikeAMissingOne) {
  auto own = call("GET", "/v1/things/t_acme", compute_key_);
  EXPECT_EQ(own.status, 200);
  EXPECT_EQ(last_tenant_, "ten_acme");
  EXPECT_EQ(calls_, 1);

  auto foreign = call("GET", "/v1/things/t_other", compute_key_);
  auto missing = call("GET", "/v1/things/t_nope", compute_key_);
  EXPECT_EQ(foreign.status, 404);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(calls_, 1) << "the handler must not run for a foreign object";
  ErrorBody f = error_of(foreign), m = error_of(missing);
  EXPECT_EQ(f.code, "not_found");
  EXPECT_EQ(m.code, "not_found");
  EXPECT_EQ(f.message, "thing t_other not found");
  EXPECT_EQ(m.message, "thing t_nope not found");
  EXPECT_EQ(foreign.headers, missing.headers);
  EXPECT_EQ(foreign.content_type, missing.content_type);
  // Byte for byte the same, once the id in the message is the same length.
  auto missing_same_length = call("GET", "/v1/things/t_nopee", compute_key_);
  std::string a = foreign.body, b = missing_same_length.body;
  a.replace(a.find("t_other"), 7, "X");
  b.replace(b.find("t_nopee"), 7, "X");
  EXPECT_EQ(a, b);
  // Also for DELETE.
  EXPECT_EQ(call("DELETE", "/v1/things/t_other", compute_key_).status, 404);
}

TEST_F(RouterTest, AdminMayAccessAnyObject) {
  EXPECT_EQ(call("GET", "/v1/things/t_other", admin_key_).status, 200);
  EXPECT_EQ(call("GET", "/v1/things/t_acme", admin_key_).status, 200);
  EXPECT_EQ(last_tenant_, "ten_ops");
  // A missing object is still 404 for the admin.
  EXPECT_EQ(call("GET", "/v1/things/t_nope", admin_key_).status, 404);
}

TEST_F(RouterTest, OwnerLookupErrorIsPassedThrough) {
  auto r = call("GET", "/v1/things/boom", compute_key_);
  EXPECT_EQ(r.status, 503);
  ErrorBody e = error_of(r);
  EXPECT_EQ(e.code, "unavailable");
  EXPECT_EQ(e.message, "the store is down");
  EXPECT_EQ(calls_, 0);
}

TEST_F(RouterTest, HandlerErrorsBecomeJsonWithTheirHttpStatus) {
  const std::map<ErrorCode, int> expected = {
      {ErrorCode::kInvalidArgument, 400},  {ErrorCode::kNotFound, 404},        {ErrorCode::kAlreadyExists, 409},
      {ErrorCode::kConflict, 409},         {ErrorCode::kUnauthenticated, 401}, {ErrorCode::kPermissionDenied, 403},
      {ErrorCode::kPayloadTooLarge, 413},  {ErrorCode::kInsufficientFunds, 402}, {ErrorCode::kQuotaExceeded, 429},
      {ErrorCode::kRateLimited, 429},      {ErrorCode::kUnavailable, 503},     {ErrorCode::kInternal, 500},
      {ErrorCode::kMethodNotAllowed, 405},
  };
  ASSERT_EQ(expected.size(), static_cast<std::size_t>(ErrorCode::kMethodNotAllowed));
  for (auto [code, status] : expected) {
    int n = static_cast<int>(code);
    auto r = call("GET", "/v1/fail/" + std::to_string(n), compute_key_);
    EXPECT_EQ(r.status, status) << error_code_name(code);
    EXPECT_EQ(http_status(code), status) << error_code_name(code);
    ErrorBody e = error_of(r);
    EXPECT_EQ(e.code, error_code_name(code));
    EXPECT_EQ(e.message, "failure " + std::to_string(n));
    EXPECT_EQ(e.request_id, "req_test");
    EXPECT_EQ(r.body.find("partial output"), std::string::npos) << "an error replaces what the handler wrote";
  }
  EXPECT_EQ(http_status(ErrorCode::kOk), 200);
  EXPECT_EQ(http_status(static_cast<ErrorCode>(99)), 500);
}

TEST_F(RouterTest, InvalidUtf8InAMessageStaysValidJson) {
  auto r = call("GET", "/v1/bad-utf8");
  EXPECT_EQ(r.status, 400);
  ErrorBody e = error_of(r);  // parses: boost::json rejects invalid UTF-8
  EXPECT_NE(e.message.find("\xEF\xBF\xBD"), std::string::npos) << e.message;
  EXPECT_EQ(e.message.find('\xFF'), std::string::npos);

  // Also the router's own messages that quote the request.
  auto unknown = call("GET", "/v1/\xFF\xC0\xAF");
  EXPECT_EQ(unknown.status, 404);
  error_of(unknown);
  auto wrong_method = call("\xFE\xFF", "/v1/things", compute_key_);
  EXPECT_EQ(wrong_method.status, 405);
  error_of(wrong_method);
}

TEST_F(RouterTest, WriteErrorShape) {
  net::HttpResponse r;
  write_error(r, Status::conflict("a \"quoted\" \\ thing\n"), "req_x");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.content_type, "application/json");
  ErrorBody e = error_of(r);
  EXPECT_EQ(e.code, "conflict");
  EXPECT_EQ(e.message, "a \"quoted\" \\ thing\n");
  EXPECT_EQ(e.request_id, "req_x");
}

TEST_F(RouterTest, PathParamsAreExtracted) {
  auto r = call("GET", "/v1/tenants/ten_1/things/t_9", compute_key_);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ten_1|t_9|");
  EXPECT_EQ(r.route, "/v1/tenants/{tenant}/things/{id}");
  // Parameters are raw path segments: no decoding, any characters but '/'.
  auto raw = call("GET", "/v1/tenants/a%2Fb/things/{x}", compute_key_);
  EXPECT_EQ(raw.body, "a%2Fb|{x}|");
}

TEST_F(RouterTest, TrailingAndDoubleSlashesDoNotMatch) {
  for (std::string_view path : {"/v1/things/", "//v1/things", "/v1//things", "/v1/things//", "/v1/things/t_acme/",
                                "/v1/things//t_acme", "/v1/tenants//things/t_9", "/v1/tenants/ten_1/things/",
                                "/v1/tenants/ten_1/things/t_9/", "/health/", "//health", "v1/things", "",
                                "/V1/things", "/v1/things/t_acme/extra", "/v1", "/v1/tenants/ten_1/things"}) {
    auto r = call("GET", path, admin_key_);
    EXPECT_EQ(r.status, 404) << "\"" << path << "\"";
    EXPECT_EQ(error_of(r).code, "not_found") << path;
  }
  EXPECT_EQ(calls_, 0);
  EXPECT_EQ(owner_lookups_, 0);
}

TEST_F(RouterTest, HeadIsTreatedAsGet) {
  auto r = call("HEAD", "/health");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.route, "/health");
  EXPECT_EQ(call("HEAD", "/v1/things", compute_key_).status, 200);
  EXPECT_EQ(call("HEAD", "/v1/things").status, 401);
  EXPECT_EQ(call("HEAD", "/v1/things/t_other", compute_key_).status, 404);
  EXPECT_EQ(call("HEAD", "/v1/things/t_acme", compute_key_).status, 200);
  // But not the other way round, and not for other methods.
  EXPECT_EQ(call("HEAD", "/v1/fail/1", compute_key_).status, 400);  // GET route: runs
  EXPECT_EQ(call("GET", "/v1/things", compute_key_).status, 200);
  EXPECT_EQ(call("OPTIONS", "/v1/things", compute_key_).status, 405);
  EXPECT_EQ(call("get", "/v1/things", compute_key_).status, 405);  // methods are case-sensitive
}

TEST_F(RouterTest, MetricsCountEveryAnswer) {
  (void)call("GET", "/health");
  (void)call("GET", "/health");
  (void)call("GET", "/v1/things");
  (void)call("GET", "/nowhere");
  net::HttpResponse protocol;
  router_.handle_protocol_error(431, "header_too_large", "too big \xFF", "req_p", protocol);
  EXPECT_EQ(protocol.status, 431);
  ErrorBody e = error_of(protocol);
  EXPECT_EQ(e.code, "header_too_large");
  EXPECT_EQ(e.request_id, "req_p");
  EXPECT_NE(e.message.find("\xEF\xBF\xBD"), std::string::npos);

  std::string text = router_.metrics().render("");
  EXPECT_NE(text.find("headroom_http_requests_total{route=\"GET /health\",status=\"200\"} 2\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("headroom_http_requests_total{route=\"GET /v1/things\",status=\"401\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("headroom_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("headroom_http_requests_total{route=\"protocol_error\",status=\"431\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(router_.routes().size(), 12u);
}

TEST_F(RouterTest, ConcurrentRequests) {
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        TestHeaders headers{{"Authorization", "Bearer " + compute_key_}};
        net::HttpRequest request;
        request.method = "GET";
        request.path = "/v1/tenants/ten_1/things/t_9";
        request.request_id = "req";
        request.headers = &headers;
        net::HttpResponse response;
        router_.handle(request, response);
        if (response.status != 200 || response.body != "ten_1|t_9|") wrong.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_NE(router_.metrics().render("").find(
                "headroom_http_requests_total{route=\"GET /v1/tenants/{tenant}/things/{id}\",status=\"200\"} 800\n"),
            std::string::npos);
}

TEST_F(RouterTest, DeferredRouteIsMeasuredAndLabelledWhenCompleted) {
  net::HttpResponse response = call("POST", "/v1/deferred", compute_key_);
  ASSERT_NE(response.deferred, nullptr);
  auto deferred = take_deferred();
  ASSERT_EQ(deferred.size(), 1u);
  EXPECT_EQ(deferred[0].request_id, "req_test");
  EXPECT_EQ(deferred[0].response, response.deferred);
  // What the server does: wait for the completion, after the router's hook.
  std::string completed_route;
  int completed_status = 0;
  response.deferred->on_complete([&](net::HttpResponse& r) {
    completed_route = std::string(r.route);
    completed_status = r.status;
  });
  EXPECT_EQ(metrics_text().find("POST /v1/deferred\""), std::string::npos) << "recorded before it was answered";

  std::thread completer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    net::HttpResponse r;
    r.status = 201;
    r.body = R"({"id":"job_1"})";
    deferred[0].response->complete(std::move(r));
  });
  completer.join();
  EXPECT_EQ(completed_route, "/v1/deferred");
  EXPECT_EQ(completed_status, 201);
  std::optional<net::HttpResponse> sent = response.deferred->take();
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(sent->body, R"({"id":"job_1"})");

  std::string text = metrics_text();
  EXPECT_NE(text.find("headroom_http_requests_total{route=\"POST /v1/deferred\",status=\"201\"} 1\n"),
            std::string::npos)
      << text;
  // The latency counts the wait for the completion.
  std::string sum_key = "headroom_http_request_duration_seconds_sum{route=\"POST /v1/deferred\",status=\"201\"} ";
  std::size_t at = text.find(sum_key);
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_GE(std::stod(text.substr(at + sum_key.size())), 0.029) << text;
}

TEST_F(RouterTest, DeferredCompletionMayBeAnError) {
  net::HttpResponse response = call("POST", "/v1/deferred", compute_key_);
  ASSERT_NE(response.deferred, nullptr);
  auto deferred = take_deferred();
  ASSERT_EQ(deferred.size(), 1u);
  std::thread completer([&] {
    net::HttpResponse r;
    write_error(r, Status::insufficient_funds("the balance does not cover the job"), deferred[0].request_id);
    deferred[0].response->complete(std::move(r));
  });
  completer.join();
  std::optional<net::HttpResponse> sent = response.deferred->take();
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(sent->status, 402);
  EXPECT_EQ(sent->route, "/v1/deferred");
  ErrorBody e = error_of(*sent);
  EXPECT_EQ(e.code, "insufficient_funds");
  EXPECT_EQ(e.request_id, "req_test");
  EXPECT_NE(metrics_text().find("headroom_http_requests_total{route=\"POST /v1/deferred\",status=\"402\"} 1\n"),
            std::string::npos);
}

TEST_F(RouterTest, HandlerThatDefersThenFailsAnswersTheError) {
  net::HttpResponse response = call("POST", "/v1/deferred-then-fail", compute_key_);
  EXPECT_EQ(response.deferred, nullptr) << "the error is the answer: nothing to wait for";
  EXPECT_EQ(response.status, 409);
  EXPECT_EQ(error_of(response).code, "conflict");
  auto deferred = take_deferred();
  ASSERT_EQ(deferred.size(), 1u);
  EXPECT_TRUE(deferred[0].response->done()) << "abandoned";
  deferred[0].response->complete(net::HttpResponse());  // dropped
  EXPECT_FALSE(deferred[0].response->take().has_value());
  EXPECT_NE(
      metrics_text().find("headroom_http_requests_total{route=\"POST /v1/deferred-then-fail\",status=\"409\"} 1\n"),
      std::string::npos);
}

TEST_F(RouterTest, RefusedRequestToADeferringRouteIsAnsweredAtOnce) {
  // Refused before the handler runs: answered (and recorded) at once.
  net::HttpResponse response = call("POST", "/v1/deferred", billing_key_);
  EXPECT_EQ(response.status, 403);
  EXPECT_EQ(response.deferred, nullptr);
  EXPECT_TRUE(take_deferred().empty());
}

TEST(RouterDeathTest, RoutesAreFixedOnceSealed) {
  ManualClock clock;
  auth::Authenticator authenticator(clock);
  Router router(authenticator);
  router.seal();
  EXPECT_DEATH(router.add({.method = "GET", .pattern = "/late",
                           .handler = [](RequestContext&, net::HttpResponse&) { return Status::ok(); }}),
               "fixed once the router is sealed");
}

TEST(RouterDeathTest, HandleBeforeSealIsABug) {
  ManualClock clock;
  auth::Authenticator authenticator(clock);
  Router router(authenticator);
  net::HttpRequest request;
  request.method = "GET";
  request.path = "/";
  net::HttpResponse response;
  EXPECT_DEATH(router.handle(request, response), "seal");
}

}  // namespace
}  // namespace headroom::api
