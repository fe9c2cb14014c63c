// Tenants, keys (create, use, revoke, rotate, expire), scopes, the audit log,
// and tenant isolation on every route.
#include <thread>

#include "auth/api_key.h"
#include "fixture.h"

namespace headroom::testing {
namespace {

class TenantsKeysTest : public ServerTest {};

TEST_F(TenantsKeysTest, AdminIsTheOperator) {
  Reply me = get("/v1/me", admin_);
  ASSERT_EQ(me.status, 200) << me.body;
  auto v = me.json();
  EXPECT_EQ(v.at("tenant").at("name"), "operator");
  EXPECT_EQ(v.at("tenant").at("kind"), "internal");
  auto scopes = v.at("key").at("scopes").as_array();
  EXPECT_EQ(scopes.size(), 4u);
  EXPECT_TRUE(auth::is_well_formed_api_key(admin_));
  EXPECT_EQ(v.at("key").at("prefix"), admin_.substr(0, 11).c_str());
}

TEST_F(TenantsKeysTest, CreateListShowTenants) {
  Reply created = post("/v1/tenants", admin_, R"({"name":"acme-corp","kind":"external"})");
  ASSERT_EQ(created.status, 201) << created.body;
  auto tenant = created.json();
  std::string id(tenant.at("id").as_string());
  EXPECT_TRUE(id.starts_with("ten_"));
  EXPECT_EQ(tenant.at("name"), "acme-corp");
  EXPECT_EQ(tenant.at("kind"), "external");

  Reply shown = get("/v1/tenants/" + id, admin_);
  EXPECT_EQ(shown.status, 200);
  EXPECT_EQ(shown.json(), tenant);

  Reply list = get("/v1/tenants?limit=1000", admin_);
  ASSERT_EQ(list.status, 200);
  bool found = false;
  for (auto& t : list.json().at("data").as_array()) found = found || t.at("id") == id.c_str();
  EXPECT_TRUE(found);

  Reply duplicate = post("/v1/tenants", admin_, R"({"name":"acme-corp"})");
  EXPECT_EQ(duplicate.status, 409);
  EXPECT_EQ(duplicate.error_code(), "already_exists");
  EXPECT_NE(duplicate.body.find("acme-corp"), std::string::npos);

  // Internal is the default kind for nobody: external unless said.
  Reply plain = post("/v1/tenants", admin_, R"({"name":"plain-co"})");
  EXPECT_EQ(plain.json().at("kind"), "external");
}

TEST_F(TenantsKeysTest, ListsPaginate) {
  for (int i = 0; i < 3; ++i) make_tenant();
  Reply first = get("/v1/tenants?limit=2", admin_);
  ASSERT_EQ(first.status, 200);
  auto page = first.json();
  ASSERT_EQ(page.at("data").as_array().size(), 2u);
  EXPECT_EQ(page.at("has_more"), true);
  std::string last(page.at("data").as_array()[1].at("id").as_string());
  Reply second = get("/v1/tenants?limit=2&after=" + last, admin_);
  ASSERT_EQ(second.status, 200);
  EXPECT_NE(second.json().at("data").as_array()[0].at("id"), page.at("data").as_array()[0].at("id"));
  EXPECT_EQ(get("/v1/tenants?limit=0", admin_).status, 400);
  EXPECT_EQ(get("/v1/tenants?limit=abc", admin_).status, 400);
  EXPECT_EQ(get("/v1/tenants?limit=100000", admin_).status, 400);
}

TEST_F(TenantsKeysTest, KeyLifecycleCreateUseListRevoke) {
  std::string tenant = make_tenant();
  auto [key_id, secret] = make_key(tenant, R"(["compute","inference"])");
  ASSERT_TRUE(auth::is_well_formed_api_key(secret)) << secret;
  EXPECT_TRUE(key_id.starts_with("key_"));

  Reply me = get("/v1/me", secret);
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(me.json().at("tenant").at("id"), tenant.c_str());
  EXPECT_EQ(me.json().at("key").at("id"), key_id.c_str());

  // Listed without the secret, by the tenant itself too.
  Reply list = get("/v1/tenants/" + tenant + "/keys", secret);
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.body.find(secret), std::string::npos);
  EXPECT_EQ(list.body.find(secret.substr(11)), std::string::npos);
  EXPECT_EQ(list.json().at("data").as_array().size(), 1u);
  EXPECT_FALSE(list.json().at("data").as_array()[0].as_object().contains("key"));

  Reply revoked = del("/v1/keys/" + key_id, admin_);
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_TRUE(revoked.json().at("revoked_at").is_string());
  Reply after = get("/v1/me", secret);
  EXPECT_EQ(after.status, 401);
  EXPECT_NE(after.body.find("revoked"), std::string::npos);
  EXPECT_EQ(del("/v1/keys/" + key_id, admin_).status, 409);
}

TEST_F(TenantsKeysTest, TenantMayRevokeItsOwnKeyButNotMintOne) {
  std::string tenant = make_tenant();
  auto [a_id, a_secret] = make_key(tenant, R"(["compute"])");
  auto [b_id, b_secret] = make_key(tenant, R"(["compute"])");
  EXPECT_EQ(post("/v1/tenants/" + tenant + "/keys", a_secret, R"({"name":"x","scopes":["compute"]})").status, 403);
  EXPECT_EQ(post("/v1/keys/" + b_id + "/rotate", a_secret, "{}").status, 403);
  EXPECT_EQ(del("/v1/keys/" + b_id, a_secret).status, 200);
  EXPECT_EQ(get("/v1/me", b_secret).status, 401);
  EXPECT_EQ(get("/v1/me", a_secret).status, 200);
}

TEST_F(TenantsKeysTest, RotationKeepsTheOldKeyUntilItsExpiry) {
  std::string tenant = make_tenant();
  auto [old_id, old_secret] = make_key(tenant, R"(["billing"])");
  Reply rotated = post("/v1/keys/" + old_id + "/rotate", admin_, R"({"old_key_expires_at":"2999-01-01T00:00:00Z"})");
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  auto v = rotated.json();
  std::string new_secret(v.at("key").as_string());
  EXPECT_EQ(v.at("replaces"), old_id.c_str());
  EXPECT_EQ(v.at("scopes").as_array().size(), 1u);
  EXPECT_NE(new_secret, old_secret);
  EXPECT_EQ(get("/v1/me", new_secret).status, 200);
  EXPECT_EQ(get("/v1/me", old_secret).status, 200);  // still within its grace

  // Rotate with the old key ending (almost) now: it stops working.
  auto [id2, secret2] = make_key(tenant, R"(["billing"])");
  std::string soon = "1970-01-01T00:00:00Z";
  Reply past = post("/v1/keys/" + id2 + "/rotate", admin_, R"({"old_key_expires_at":")" + soon + R"("})");
  EXPECT_EQ(past.status, 400);
  EXPECT_EQ(past.error_code(), "invalid_argument");
  Reply now_rotated = post("/v1/keys/" + id2 + "/rotate", admin_, "");  // default grace: 24 h
  ASSERT_EQ(now_rotated.status, 201);
  EXPECT_EQ(get("/v1/me", secret2).status, 200);
  Reply listed = get("/v1/tenants/" + tenant + "/keys", admin_);
  for (auto& k : listed.json().at("data").as_array()) {
    if (k.at("id") == id2.c_str()) {
      EXPECT_TRUE(k.at("expires_at").is_string());
    }
  }
}

TEST_F(TenantsKeysTest, ExpiredKeyIsRefused) {
  std::string tenant = make_tenant();
  // Expires one second from now by the server's clock: poll until refused.
  auto now = std::chrono::system_clock::now() + std::chrono::milliseconds(1500);
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  auto [id, secret] = make_key(tenant, R"(["compute"])", std::string(R"(,"expires_at":")") + when + "\"");
  ASSERT_FALSE(secret.empty());
  EXPECT_EQ(get("/v1/me", secret).status, 200);
  int status = 200;
  for (int i = 0; i < 100 && status == 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = get("/v1/me", secret).status;
  }
  EXPECT_EQ(status, 401);
  Reply r = get("/v1/me", secret);
  EXPECT_NE(r.body.find("expired"), std::string::npos) << r.body;

  Reply past = post("/v1/tenants/" + tenant + "/keys", admin_,
                    R"({"name":"old","scopes":["compute"],"expires_at":"2001-01-01T00:00:00Z"})");
  EXPECT_EQ(past.status, 400);
}

TEST_F(TenantsKeysTest, ScopesAreEnforced) {
  std::string tenant = make_tenant();
  auto [id, compute] = make_key(tenant, R"(["compute"])");
  Reply list = get("/v1/tenants", compute);
  EXPECT_EQ(list.status, 403);
  EXPECT_EQ(list.error_code(), "permission_denied");
  EXPECT_NE(list.body.find("admin"), std::string::npos);
  EXPECT_EQ(post("/v1/tenants", compute, R"({"name":"evil"})").status, 403);
  EXPECT_EQ(get("/v1/audit", compute).status, 403);
  EXPECT_EQ(get("/v1/fleet", compute).status, 403);
  // The admin scope belongs to the operator's tenant alone.
  Reply escalate = post("/v1/tenants/" + tenant + "/keys", admin_, R"({"name":"x","scopes":["admin"]})");
  EXPECT_EQ(escalate.status, 400);
  Reply unknown = post("/v1/tenants/" + tenant + "/keys", admin_, R"({"name":"x","scopes":["root"]})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("root"), std::string::npos);
  EXPECT_EQ(post("/v1/tenants/" + tenant + "/keys", admin_, R"({"name":"x","scopes":[]})").status, 400);
}

// A tenant's key on another tenant's objects: 404, exactly as for objects
// that do not exist, so it learns nothing.
TEST_F(TenantsKeysTest, TenantsCannotSeeEachOther) {
  std::string a = make_tenant(), b = make_tenant();
  auto [a_key_id, a_secret] = make_key(a, R"(["compute","inference","billing"])");
  auto [b_key_id, b_secret] = make_key(b, R"(["compute"])");

  Reply other = get("/v1/tenants/" + b, a_secret);
  Reply none = get("/v1/tenants/ten_aaaaaaaaaaaaaaaaaaaaa", a_secret);
  EXPECT_EQ(other.status, 404);
  EXPECT_EQ(none.status, 404);
  EXPECT_EQ(other.error_code(), "not_found");
  EXPECT_EQ(other.body.find(b_secret.substr(0, 11)), std::string::npos);

  Reply keys = get("/v1/tenants/" + b + "/keys", a_secret);
  EXPECT_EQ(keys.status, 404);
  EXPECT_EQ(keys.body.find(b_key_id), std::string::npos);
  EXPECT_EQ(del("/v1/keys/" + b_key_id, a_secret).status, 404);
  EXPECT_EQ(get("/v1/me", b_secret).status, 200);  // untouched
  EXPECT_EQ(post("/v1/keys/" + b_key_id + "/rotate", a_secret, "{}").status, 403);

  // Own objects are fine.
  EXPECT_EQ(get("/v1/tenants/" + a, a_secret).status, 200);
  EXPECT_EQ(get("/v1/tenants/" + a + "/keys", a_secret).status, 200);
}

TEST_F(TenantsKeysTest, AuditLogRecordsAdminActions) {
  std::string tenant = make_tenant();
  auto [key_id, secret] = make_key(tenant, R"(["inference"])");
  ASSERT_EQ(del("/v1/keys/" + key_id, admin_).status, 200);
  Reply audit = get("/v1/audit?limit=1000", admin_);
  ASSERT_EQ(audit.status, 200);
  bool created = false, key_created = false, revoked = false;
  std::string admin_key_id(get("/v1/me", admin_).json().at("key").at("id").as_string());
  for (auto& a : audit.json().at("data").as_array()) {
    if (a.at("target_id") == tenant.c_str() && a.at("action") == "tenant.create") {
      created = true;
      EXPECT_EQ(a.at("actor_key_id"), admin_key_id.c_str());
      EXPECT_TRUE(a.at("request_id").as_string().starts_with("req_"));
      EXPECT_TRUE(a.at("time").is_string());
    }
    if (a.at("target_id") == key_id.c_str() && a.at("action") == "key.create") {
      key_created = true;
      EXPECT_EQ(a.at("details").at("tenant_id"), tenant.c_str());
    }
    if (a.at("target_id") == key_id.c_str() && a.at("action") == "key.revoke") revoked = true;
  }
  EXPECT_TRUE(created && key_created && revoked) << audit.body;
  // The secret is never written to the audit log.
  EXPECT_EQ(audit.body.find(secret), std::string::npos);
}

TEST_F(TenantsKeysTest, FleetIsShownToTheAdmin) {
  Reply fleet = get("/v1/fleet", admin_);
  ASSERT_EQ(fleet.status, 200) << fleet.body;
  auto v = fleet.json();
  EXPECT_GE(v.at("gpus").as_int64(), 1);
  if (v.at("virtual").as_bool()) {
    EXPECT_EQ(v.at("gpus").as_int64(), 8);
    EXPECT_EQ(v.at("nodes").as_array().size(), 1u);
  }
}

}  // namespace
}  // namespace headroom::testing
