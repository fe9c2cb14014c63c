// First start of a store, and the route table: shared by `headroom serve`
// and by the tests and fuzzers that drive the API in process.
#include <boost/json.hpp>

#include "api/router.h"
#include "api/services.h"
#include "auth/api_key.h"
#include "common/ids.h"

namespace headroom::api {

Result<std::string> bootstrap_operator(store::Store& store, const Clock& clock, Random& random,
                                       std::string_view given_key, std::string& admin_tenant_id) {
  HR_ASSIGN_OR_RETURN(auto existing, store.get_setting("admin_tenant_id"));
  if (existing) {
    admin_tenant_id = *existing;
    return std::string();
  }
  auth::GeneratedKey generated;
  if (!given_key.empty()) {
    if (!auth::is_well_formed_api_key(given_key)) {
      return Status::invalid_argument("not a Headroom key (make one with `headroom keygen`)");
    }
    generated.secret = std::string(given_key);
    generated.lookup_prefix = generated.secret.substr(0, auth::kLookupPrefixChars);
    generated.secret_sha256 = sha256(generated.secret);
  } else {
    generated = auth::generate_api_key(random);
  }
  Timestamp now = clock.now();
  store::Tenant tenant{make_id(kTenantIdPrefix, random), "operator", store::TenantKind::kInternal, now};
  store::ApiKey key;
  key.id = make_id(kKeyIdPrefix, random);
  key.tenant_id = tenant.id;
  key.name = "admin";
  key.scopes = store::kAllScopes;
  key.lookup_prefix = generated.lookup_prefix;
  key.secret_sha256 = generated.secret_sha256;
  key.created_at = now;
  store::AuditRecord audit;
  audit.id = make_id(kAuditIdPrefix, random);
  audit.time = now;
  audit.actor_tenant_id = "system";
  audit.actor_key_id = "system";
  audit.request_id = "bootstrap";
  audit.action = "platform.bootstrap";
  audit.target_id = tenant.id;
  audit.details_json = boost::json::serialize(boost::json::object{{"admin_key_id", key.id}});
  HR_RETURN_IF_ERROR(store.bootstrap(tenant, key, audit));
  admin_tenant_id = tenant.id;
  return generated.secret;
}

void add_all_routes(Router& router, Services& services) {
  add_platform_routes(router, services);
  add_tenant_routes(router, services);
  add_fleet_routes(router, services);
  add_compute_routes(router, services);
  if (services.billing != nullptr) add_billing_routes(router, services);
  if (services.billing != nullptr) add_market_routes(router, services);
  if (services.billing != nullptr) add_report_routes(router, services);
  if (services.models != nullptr) add_model_routes(router, services);
  if (services.models != nullptr && services.billing != nullptr) add_deployment_routes(router, services);
  router.seal();
}

}  // namespace headroom::api
