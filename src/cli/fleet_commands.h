// The operator's commands for the fleet (admin): `headroom fleet` (the
// nodes and what runs on them), `headroom fleet cordon|drain|uncordon NODE`
// and `headroom surplus` (what could be sold now, per GPU type).
#pragma once

#include <boost/json/fwd.hpp>
#include <memory>
#include <string>

namespace CLI {
class App;
}

namespace headroom::cli {

struct ClientEnvironment;

// GET /v1/fleet as a table of nodes (name, state, GPU type, GPUs, GPUs in
// use, where it is), then a line that sums it up.
std::string render_fleet(const boost::json::value& fleet);

// Adds `fleet` and `surplus` to `app`, as add_client_commands does.
void add_fleet_commands(CLI::App& app, int& exit_code, const std::shared_ptr<const ClientEnvironment>& env);

}  // namespace headroom::cli
