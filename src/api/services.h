// What the control API's routes work with. Owned by serve(); every member
// outlives the server.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <string>

#include "auth/authenticator.h"
#include "common/random.h"
#include "common/time.h"
#include "billing/billing_service.h"
#include "compute/compute_service.h"
#include "config/config.h"
#include "fleet/fleet.h"
#include "gateway/model_service.h"
#include "store/store.h"

namespace headroom::api {

class Router;

struct Services {
  store::Store& store;
  auth::Authenticator& authenticator;
  const Clock& clock;
  Random& random;  // ids and secrets: a CSPRNG in production
  const fleet::FleetSpec& fleet;
  std::string admin_tenant_id;
  std::filesystem::path data_dir;              // the server's; the built-in model is written under it
  compute::ComputeService* compute = nullptr;  // raw compute; set before the server starts
  billing::BillingService* billing = nullptr;  // the money; set before the server starts
  ledger::UsageLog* usage = nullptr;           // where usage is recorded
  gateway::ModelService* models = nullptr;     // hosted models; set before the server starts
  std::map<std::string, config::GpuEconomicsConfig> economics;  // the owner's, by GPU type ([market.economics])
  std::atomic<bool> ready{false};  // false while starting and once shutting down
};

// First start: creates the operator's tenant and its admin key unless the
// store has them, and sets `admin_tenant_id` either way. The key is
// `given_key` when not empty (it must be well formed), else a new one. Returns
// the key's secret on first start (to print once), else an empty string.
Result<std::string> bootstrap_operator(store::Store& store, const Clock& clock, Random& random,
                                       std::string_view given_key, std::string& admin_tenant_id);

// Every route group, then Router::seal().
void add_all_routes(Router& router, Services& services);

// Route groups, one per file.
void add_platform_routes(Router& router, Services& services);
void add_tenant_routes(Router& router, Services& services);
void add_fleet_routes(Router& router, Services& services);
void add_compute_routes(Router& router, Services& services);
void add_billing_routes(Router& router, Services& services);
void add_model_routes(Router& router, Services& services);  // the OpenAI API
void add_deployment_routes(Router& router, Services& services);  // the models' deployments, for the operator
void add_market_routes(Router& router, Services& services);  // prices, offers, economics
void add_report_routes(Router& router, Services& services);  // the owner's reports

// The OpenAPI 3 document of every route in `router`.
std::string openapi_document(const Router& router);

}  // namespace headroom::api
