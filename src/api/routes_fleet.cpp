// The fleet as declared or detected, with the scheduler's live view: each
// node's state and who holds each GPU.
#include <boost/json.hpp>

#include <string_view>
#include <unordered_map>

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
                // Who holds each GPU and each node's state, as the scheduler sees them now.
                std::vector<compute::GpuHolding> holdings = s.compute->holdings();
                std::vector<fleet::NodeState> states = s.compute->node_states();
                std::unordered_map<std::string_view, std::size_t> first_gpu;
                for (std::size_t i = holdings.size(); i-- > 0;) first_gpu[holdings[i].node] = i;
                json::array nodes;
                for (std::size_t n_index = 0; n_index < s.fleet.nodes.size(); ++n_index) {
                  const fleet::Node& n = s.fleet.nodes[n_index];
                  json::array gpus;
                  std::size_t base = first_gpu[n.name];
                  for (const auto& g : n.gpus) {
                    json::value job = nullptr, tenant = nullptr;
                    for (std::size_t i = base; i < holdings.size() && holdings[i].node == n.name; ++i) {
                      if (holdings[i].index == g.index && !holdings[i].job_id.empty()) {
                        job = holdings[i].job_id;
                        tenant = holdings[i].tenant_id;
                      }
                    }
                    gpus.push_back(json::object{{"index", g.index}, {"type", g.type}, {"uuid", g.uuid},
                                                {"job_id", job}, {"tenant_id", tenant}});
                  }
                  nodes.push_back(json::object{{"name", n.name},
                                               {"region", n.region},
                                               {"site", n.site},
                                               {"cluster", n.cluster},
                                               {"rack", n.rack},
                                               {"block", n.block},
                                               {"nvlink_domain", n.nvlink_domain},
                                               {"state", fleet::node_state_name(states[n_index])},
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
