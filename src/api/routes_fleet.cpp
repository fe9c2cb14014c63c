// The fleet as declared or detected. The scheduler's live view (who holds
// each GPU, cordon and drain) extends this route.
#include <boost/json.hpp>

#include "api/json_body.h"
#include "api/router.h"
#include "api/services.h"

namespace headroom::api {

namespace json = boost::json;

void add_fleet_routes(Router& router, Services& s) {
  router.add({"GET", "/v1/fleet", Access::kAuthenticated, store::kScopeAdmin, std::nullopt,
              [&s](RequestContext&, net::HttpResponse& r) {
                json::array types;
                for (const auto& t : s.fleet.gpu_types) {
                  types.push_back(
                      json::object{{"name", t.name}, {"display_name", t.display_name}, {"memory_mib", t.memory_mib}});
                }
                json::array nodes;
                for (const auto& n : s.fleet.nodes) {
                  json::array gpus;
                  for (const auto& g : n.gpus) {
                    gpus.push_back(json::object{{"index", g.index}, {"type", g.type}, {"uuid", g.uuid}});
                  }
                  nodes.push_back(json::object{{"name", n.name},
                                               {"region", n.region},
                                               {"site", n.site},
                                               {"cluster", n.cluster},
                                               {"rack", n.rack},
                                               {"block", n.block},
                                               {"nvlink_domain", n.nvlink_domain},
                                               {"state", fleet::node_state_name(n.state)},
                                               {"gpus", std::move(gpus)}});
                }
                write_json(r, 200,
                           json::object{{"source", s.fleet.source},
                                        {"virtual", s.fleet.is_virtual},
                                        {"gpus", fleet::gpu_count(s.fleet)},
                                        {"gpu_types", std::move(types)},
                                        {"nodes", std::move(nodes)}});
                return Status::ok();
              },
              {"The fleet: regions, nodes, GPUs and their topology", "fleet", 200, "", "Fleet"}});
}

}  // namespace headroom::api
