// Tenants, API keys, the caller's identity and the audit log.
#include <boost/json.hpp>

#include "api/json_body.h"
#include "api/route_util.h"
#include "api/router.h"
#include "api/services.h"
#include "auth/api_key.h"
#include "common/ids.h"
#include "common/limits.h"

namespace headroom::api {
namespace {

namespace json = boost::json;
using store::ApiKey;
using store::Tenant;

json::object tenant_json(const Tenant& t) {
  return {{"id", t.id}, {"name", t.name}, {"kind", store::to_string(t.kind)}, {"created_at", to_rfc3339(t.created_at)}};
}

json::object key_json(const ApiKey& k) {
  json::array scopes;
  for (auto name : store::scope_names(k.scopes)) scopes.emplace_back(name);
  json::object out{{"id", k.id},
                   {"tenant_id", k.tenant_id},
                   {"name", k.name},
                   {"scopes", std::move(scopes)},
                   {"prefix", k.lookup_prefix},
                   {"created_at", to_rfc3339(k.created_at)},
                   {"expires_at", json_time(k.expires_at)},
                   {"revoked_at", json_time(k.revoked_at)}};
  if (k.replaces) out["replaces"] = *k.replaces;
  return out;
}

// Names people type: letters, digits and ". _ -", starting with a letter or digit.
Status check_name(std::string_view field, std::string_view name) {
  auto plain = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  };
  bool ok = !name.empty() && name.size() <= limits::kNameBytes && plain(name.front()) && name.front() != '.' &&
            name.front() != '_' && name.front() != '-';
  for (char c : name) ok = ok && plain(c);
  if (!ok) {
    return Status::invalid_argument("field \"" + std::string(field) + "\" must be 1 to " +
                                    std::to_string(limits::kNameBytes) +
                                    " letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
  return Status::ok();
}

// A new key for `tenant`, not yet stored; the secret goes to the caller once.
ApiKey new_key(Services& s, const std::string& tenant_id, std::string name, store::ScopeSet scopes,
               std::optional<Timestamp> expires_at, std::string& secret) {
  auth::GeneratedKey generated = auth::generate_api_key(s.random);
  ApiKey key;
  key.id = make_id(kKeyIdPrefix, s.random);
  key.tenant_id = tenant_id;
  key.name = std::move(name);
  key.scopes = scopes;
  key.lookup_prefix = generated.lookup_prefix;
  key.secret_sha256 = generated.secret_sha256;
  key.created_at = s.clock.now();
  key.expires_at = expires_at;
  secret = std::move(generated.secret);
  return key;
}

Result<std::optional<std::string>> tenant_owner(Services& s, std::string_view id) {
  HR_ASSIGN_OR_RETURN(auto tenant, s.store.find_tenant(std::string(id)));
  if (!tenant) return std::optional<std::string>();
  return std::optional<std::string>(tenant->id);
}

Result<std::optional<std::string>> key_owner(Services& s, std::string_view id) {
  HR_ASSIGN_OR_RETURN(auto key, s.store.find_key(std::string(id)));
  if (!key) return std::optional<std::string>();
  return std::optional<std::string>(key->tenant_id);
}

Status create_tenant(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(JsonBody body, JsonBody::parse(ctx.http.body));
  HR_RETURN_IF_ERROR(body.only_fields({"name", "kind"}));
  HR_ASSIGN_OR_RETURN(std::string name, body.required_string("name", limits::kNameBytes));
  HR_RETURN_IF_ERROR(check_name("name", name));
  HR_ASSIGN_OR_RETURN(auto kind_text, body.optional_string("kind", 16));
  HR_ASSIGN_OR_RETURN(store::TenantKind kind, store::parse_tenant_kind(kind_text.value_or("external")));
  Tenant tenant{make_id(kTenantIdPrefix, s.random), name, kind, s.clock.now()};
  HR_RETURN_IF_ERROR(s.store.create_tenant(
      tenant, audit(s, ctx, "tenant.create", tenant.id, {{"name", name}, {"kind", store::to_string(kind)}})));
  s.authenticator.put_tenant(tenant);
  write_json(response, 201, tenant_json(tenant));
  return Status::ok();
}

Status create_key(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  std::string tenant_id(ctx.param("id"));
  HR_ASSIGN_OR_RETURN(JsonBody body, JsonBody::parse(ctx.http.body));
  HR_RETURN_IF_ERROR(body.only_fields({"name", "scopes", "expires_at"}));
  HR_ASSIGN_OR_RETURN(std::string name, body.required_string("name", limits::kNameBytes));
  HR_RETURN_IF_ERROR(check_name("name", name));
  HR_ASSIGN_OR_RETURN(auto scope_list, body.required_string_array("scopes", 8, 16));
  store::ScopeSet scopes = 0;
  for (const auto& scope : scope_list) {
    HR_ASSIGN_OR_RETURN(store::ScopeSet bit, store::parse_scope(scope));
    scopes |= bit;
  }
  if (scopes == 0) return Status::invalid_argument("field \"scopes\" must name at least one scope");
  if ((scopes & store::kScopeAdmin) && tenant_id != s.admin_tenant_id) {
    return Status::invalid_argument("only the operator's tenant may hold keys with the admin scope");
  }
  HR_ASSIGN_OR_RETURN(auto expires_at, body.optional_time("expires_at"));
  Timestamp now = s.clock.now();
  if (expires_at && *expires_at <= now) return Status::invalid_argument("field \"expires_at\" is in the past");
  HR_ASSIGN_OR_RETURN(std::size_t count, s.store.count_keys(tenant_id));
  if (count >= limits::kKeysPerTenant) {
    return Status::quota_exceeded("tenant " + tenant_id + " has " + std::to_string(count) +
                                  " keys, the most allowed; revoke unused ones first");
  }
  std::string secret;
  ApiKey key = new_key(s, tenant_id, name, scopes, expires_at, secret);
  json::array scope_json;
  for (auto n : store::scope_names(scopes)) scope_json.emplace_back(n);
  HR_RETURN_IF_ERROR(s.store.create_key(
      key, audit(s, ctx, "key.create", key.id,
                 {{"tenant_id", tenant_id}, {"name", name}, {"scopes", scope_json}, {"expires_at", json_time(expires_at)}})));
  s.authenticator.put_key(key);
  json::object out = key_json(key);
  out["key"] = secret;
  write_json(response, 201, out);
  return Status::ok();
}

Status revoke_key(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  std::string id(ctx.param("id"));
  Timestamp now = s.clock.now();
  HR_RETURN_IF_ERROR(s.store.revoke_key(id, now, audit(s, ctx, "key.revoke", id, {})));
  HR_ASSIGN_OR_RETURN(auto key, s.store.find_key(id));
  if (!key) return Status::internal("key " + id + " vanished while being revoked");
  s.authenticator.put_key(*key);
  write_json(response, 200, key_json(*key));
  return Status::ok();
}

Status rotate_key(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  std::string id(ctx.param("id"));
  Timestamp now = s.clock.now();
  std::optional<Timestamp> old_expires_at;
  if (!ctx.http.body.empty()) {
    HR_ASSIGN_OR_RETURN(JsonBody body, JsonBody::parse(ctx.http.body));
    HR_RETURN_IF_ERROR(body.only_fields({"old_key_expires_at"}));
    HR_ASSIGN_OR_RETURN(old_expires_at, body.optional_time("old_key_expires_at"));
  }
  // By default the old key keeps working for a day, time to roll out the new one.
  Timestamp old_until = old_expires_at.value_or(now.plus_seconds(24 * 3600));
  if (old_until < now) return Status::invalid_argument("field \"old_key_expires_at\" is in the past");
  HR_ASSIGN_OR_RETURN(auto old_key, s.store.find_key(id));
  if (!old_key) return Status::not_found("key " + id + " not found");
  std::string secret;
  ApiKey key = new_key(s, old_key->tenant_id, old_key->name, old_key->scopes, old_key->expires_at, secret);
  key.replaces = old_key->id;
  HR_RETURN_IF_ERROR(s.store.rotate_key(
      id, old_until, key,
      audit(s, ctx, "key.rotate", id, {{"new_key_id", key.id}, {"old_key_expires_at", to_rfc3339(old_until)}})));
  HR_ASSIGN_OR_RETURN(auto old_after, s.store.find_key(id));
  if (!old_after) return Status::internal("key " + id + " vanished while being rotated");
  s.authenticator.put_key(*old_after);
  s.authenticator.put_key(key);
  json::object out = key_json(key);
  out["key"] = secret;
  write_json(response, 201, out);
  return Status::ok();
}

}  // namespace

void add_tenant_routes(Router& router, Services& s) {
  Ownership tenant_in_path{"tenant", "id", [&s](std::string_view id) { return tenant_owner(s, id); }};
  Ownership key_in_path{"key", "id", [&s](std::string_view id) { return key_owner(s, id); }};

  router.add({"GET", "/v1/me", Access::kAuthenticated, 0, std::nullopt,
              [](RequestContext& ctx, net::HttpResponse& response) {
                write_json(response, 200,
                           json::object{{"tenant", tenant_json(ctx.caller.tenant())}, {"key", key_json(ctx.caller.key())}});
                return Status::ok();
              },
              {"Who is calling: the key's tenant and the key itself", "identity", 200, "", "Me"}});

  router.add({"POST", "/v1/tenants", Access::kAuthenticated, store::kScopeAdmin, std::nullopt,
              [&s](RequestContext& ctx, net::HttpResponse& r) { return create_tenant(s, ctx, r); },
              {"Create a tenant", "tenants", 201, "TenantCreate", "Tenant"}});

  router.add({"GET", "/v1/tenants", Access::kAuthenticated, store::kScopeAdmin, std::nullopt,
              [&s](RequestContext& ctx, net::HttpResponse& r) -> Status {
                HR_ASSIGN_OR_RETURN(auto page, page_request(ctx.http));
                HR_ASSIGN_OR_RETURN(auto tenants, s.store.list_tenants(page));
                write_page(r, tenants, tenant_json);
                return Status::ok();
              },
              {"List tenants", "tenants", 200, "", "TenantList", "application/json", {"limit", "after"}}});

  router.add({"GET", "/v1/tenants/{id}", Access::kAuthenticated, 0, tenant_in_path,
              [&s](RequestContext& ctx, net::HttpResponse& r) -> Status {
                HR_ASSIGN_OR_RETURN(auto tenant, s.store.find_tenant(std::string(ctx.param("id"))));
                if (!tenant) return Status::not_found("tenant " + std::string(ctx.param("id")) + " not found");
                write_json(r, 200, tenant_json(*tenant));
                return Status::ok();
              },
              {"Show a tenant", "tenants", 200, "", "Tenant"}});

  router.add({"POST", "/v1/tenants/{id}/keys", Access::kAuthenticated, store::kScopeAdmin, tenant_in_path,
              [&s](RequestContext& ctx, net::HttpResponse& r) { return create_key(s, ctx, r); },
              {"Issue an API key to a tenant; the secret is in the answer, once", "keys", 201, "KeyCreate",
               "KeyWithSecret"}});

  router.add({"GET", "/v1/tenants/{id}/keys", Access::kAuthenticated, 0, tenant_in_path,
              [&s](RequestContext& ctx, net::HttpResponse& r) -> Status {
                HR_ASSIGN_OR_RETURN(auto page, page_request(ctx.http));
                HR_ASSIGN_OR_RETURN(auto keys, s.store.list_keys(std::string(ctx.param("id")), page));
                write_page(r, keys, key_json);
                return Status::ok();
              },
              {"List a tenant's keys (never their secrets)", "keys", 200, "", "KeyList", "application/json",
               {"limit", "after"}}});

  // A tenant may revoke its own keys (to kill a leaked one at once); only the
  // admin may mint keys, by creation or rotation.
  router.add({"DELETE", "/v1/keys/{id}", Access::kAuthenticated, 0, key_in_path,
              [&s](RequestContext& ctx, net::HttpResponse& r) { return revoke_key(s, ctx, r); },
              {"Revoke a key", "keys", 200, "", "Key"}});

  router.add({"POST", "/v1/keys/{id}/rotate", Access::kAuthenticated, store::kScopeAdmin, key_in_path,
              [&s](RequestContext& ctx, net::HttpResponse& r) { return rotate_key(s, ctx, r); },
              {"Rotate a key: a new secret now, the old one working until old_key_expires_at (default 24 h)", "keys",
               201, "KeyRotate", "KeyWithSecret"}});

  router.add({"GET", "/v1/audit", Access::kAuthenticated, store::kScopeAdmin, std::nullopt,
              [&s](RequestContext& ctx, net::HttpResponse& r) -> Status {
                HR_ASSIGN_OR_RETURN(auto page, page_request(ctx.http));
                HR_ASSIGN_OR_RETURN(auto records, s.store.list_audit(page));
                write_page(r, records, [](const store::AuditRecord& a) {
                  boost::system::error_code ec;
                  json::value details = json::parse(a.details_json, ec);
                  return json::object{{"id", a.id},
                                      {"time", to_rfc3339(a.time)},
                                      {"actor_tenant_id", a.actor_tenant_id},
                                      {"actor_key_id", a.actor_key_id},
                                      {"request_id", a.request_id},
                                      {"action", a.action},
                                      {"target_id", a.target_id},
                                      {"details", ec ? json::value(a.details_json) : details}};
                });
                return Status::ok();
              },
              {"The audit log of administrative actions, oldest first", "audit", 200, "", "AuditList",
               "application/json", {"limit", "after"}}});
}

}  // namespace headroom::api
