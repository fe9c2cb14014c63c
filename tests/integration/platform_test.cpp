// Health, readiness, metrics, the OpenAPI document and request ids.
#include <set>

#include "fixture.h"

namespace headroom::testing {
namespace {

class PlatformTest : public ServerTest {};

TEST_F(PlatformTest, HealthAndReadiness) {
  Reply health = get("/healthz", "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.json().at("status"), "ok");
  Reply ready = get("/readyz", "");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.json().at("status"), "ready");
}

TEST_F(PlatformTest, EveryResponseHasARequestId) {
  Reply ok = get("/healthz", "");
  EXPECT_TRUE(ok.header("x-request-id").starts_with("req_")) << ok.header("x-request-id");
  Reply missing = get("/no/such/route", "");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.error_code(), "not_found");
  EXPECT_EQ(std::string(missing.json().at("error").at("request_id").as_string()), missing.header("x-request-id"));
  // A client's own sane id is echoed; a hostile one is replaced.
  Reply echoed = call(server_->url(), "GET", "/healthz", "", {}, {{"X-Request-Id", "trace-42.a"}});
  EXPECT_EQ(echoed.header("x-request-id"), "trace-42.a");
  Reply replaced = call(server_->url(), "GET", "/healthz", "", {}, {{"X-Request-Id", "<script>"}});
  EXPECT_TRUE(replaced.header("x-request-id").starts_with("req_"));
}

TEST_F(PlatformTest, WrongMethodIs405WithAllow) {
  Reply r = call(server_->url(), "PUT", "/v1/tenants", admin_, "{}");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.error_code(), "method_not_allowed");
  EXPECT_NE(r.header("allow").find("GET"), std::string::npos);
}

TEST_F(PlatformTest, MetricsCountRequestsByRouteAndStatus) {
  get("/v1/me", admin_);
  get("/v1/me", "hr_bad");
  Reply m = get("/metrics", "");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.header("content-type").find("text/plain"), std::string::npos);
  EXPECT_NE(m.body.find(R"(headroom_http_requests_total{route="GET /v1/me",status="200"})"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find(R"(headroom_http_requests_total{route="GET /v1/me",status="401"})"), std::string::npos);
  EXPECT_NE(m.body.find(R"(headroom_http_request_duration_seconds_bucket{route="GET /v1/me",status="200",le="+Inf"})"),
            std::string::npos);
  EXPECT_NE(m.body.find("headroom_build_info{version="), std::string::npos);
}

// The document is valid OpenAPI 3 in structure, every $ref resolves, and
// every route the server answers is in it (checked by probing each path).
TEST_F(PlatformTest, OpenApiDocumentsEveryRoute) {
  Reply r = get("/openapi.json", "");
  ASSERT_EQ(r.status, 200);
  auto doc = r.json();
  ASSERT_TRUE(doc.is_object()) << r.body;
  EXPECT_TRUE(doc.at("openapi").as_string().starts_with("3."));
  EXPECT_TRUE(doc.at("info").at("title").is_string());
  EXPECT_TRUE(doc.at("info").at("version").is_string());
  const auto& paths = doc.at("paths").as_object();
  const auto& schemas = doc.at("components").at("schemas").as_object();

  // Every $ref points at a schema that exists.
  std::function<void(const boost::json::value&)> check_refs = [&](const boost::json::value& v) {
    if (v.is_object()) {
      for (auto& [k, child] : v.as_object()) {
        if (k == "$ref") {
          std::string ref(child.as_string());
          ASSERT_TRUE(ref.starts_with("#/components/schemas/")) << ref;
          EXPECT_TRUE(schemas.contains(ref.substr(21))) << "dangling " << ref;
        } else {
          check_refs(child);
        }
      }
    } else if (v.is_array()) {
      for (auto& child : v.as_array()) check_refs(child);
    }
  };
  check_refs(doc);

  std::set<std::string> methods = {"get", "post", "put", "delete", "patch"};
  for (auto& [path, item] : paths) {
    for (auto& [method, op] : item.as_object()) {
      EXPECT_TRUE(methods.count(std::string(method))) << path << " " << method;
      EXPECT_TRUE(op.as_object().contains("responses")) << path << " " << method;
      EXPECT_FALSE(op.at("responses").as_object().empty());
      // Path parameters are declared.
      std::string p(path);
      for (std::size_t open = p.find('{'); open != std::string::npos; open = p.find('{', open + 1)) {
        std::string name = p.substr(open + 1, p.find('}', open) - open - 1);
        bool declared = false;
        if (auto* params = op.as_object().if_contains("parameters")) {
          for (auto& param : params->as_array()) declared = declared || param.at("name") == name.c_str();
        }
        EXPECT_TRUE(declared) << path << " does not declare {" << name << "}";
      }
    }
  }
  // The routes this issue names are all documented.
  for (const char* route : {"/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/me", "/v1/tenants",
                            "/v1/tenants/{id}", "/v1/tenants/{id}/keys", "/v1/keys/{id}", "/v1/audit"}) {
    EXPECT_TRUE(paths.contains(route)) << route;
  }
  // And no path answers that the document does not list: each documented
  // path exists (not 404 for "no route"), and an undocumented one is 404.
  for (auto& [path, item] : paths) {
    // The path with each {parameter} replaced by "x".
    std::string p;
    bool in_param = false;
    for (char c : path) {
      if (c == '{') in_param = true, p += 'x';
      else if (c == '}') in_param = false;
      else if (!in_param) p += c;
    }
    for (auto& [method, op] : item.as_object()) {
      std::string m(method);
      for (char& c : m) c = static_cast<char>(std::toupper(c));
      Reply probe = call(server_->url(), m, p, admin_, m == "GET" || m == "DELETE" ? "" : "{}");
      if (probe.status == 404) {
        EXPECT_EQ(probe.json().at("error").at("message").as_string().find("no route"), std::string::npos)
            << m << " " << p << " is documented but not routed";
      }
    }
  }
}

}  // namespace
}  // namespace headroom::testing
