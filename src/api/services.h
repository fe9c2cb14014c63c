// What the control API's routes work with. Owned by serve(); every member
// outlives the server.
#pragma once

#include <atomic>
#include <string>

#include "auth/authenticator.h"
#include "common/random.h"
#include "common/time.h"
#include "fleet/fleet.h"
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
  std::atomic<bool> ready{false};  // false while starting and once shutting down
};

// Route groups, one per file.
void add_platform_routes(Router& router, Services& services);
void add_tenant_routes(Router& router, Services& services);
void add_fleet_routes(Router& router, Services& services);

// The OpenAPI 3 document of every route in `router`.
std::string openapi_document(const Router& router);

}  // namespace headroom::api
