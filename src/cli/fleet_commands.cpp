#include "cli/fleet_commands.h"

#include <CLI/CLI.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <map>
#include <set>

#include "cli/api_command.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;

using Env = std::shared_ptr<const ClientEnvironment>;

const std::vector<Column> kNodeColumns = {
    {"NAME", ""},   {"STATE", ""},   {"TYPE", ""}, {"GPUS", "", Align::kRight}, {"USED", "", Align::kRight},
    {"REGION", ""}, {"CLUSTER", ""}, {"RACK", ""}};

const std::vector<Column> kNodeStateColumns = {{"NODE", "node"}, {"STATE", "state"}};

const std::vector<Column> kSurplusColumns = {{"GPU TYPE", "gpu_type"},
                                             {"TOTAL", "total", Align::kRight},
                                             {"DOWN", "down", Align::kRight},
                                             {"INTERNAL", "internal_in_use", Align::kRight},
                                             {"BUFFER", "internal_buffer", Align::kRight},
                                             {"RESERVED", "reserved", Align::kRight},
                                             {"ON-DEMAND", "on_demand", Align::kRight},
                                             {"SPOT", "spot", Align::kRight},
                                             {"IDLE", "idle", Align::kRight},
                                             {"SELLABLE NOW", "sellable_now", Align::kRight}};

// Node states in the order the summary names them; others follow by name.
const std::vector<std::string> kNodeStates = {"up", "cordoned", "draining", "down"};

struct NodeRow {
  std::vector<std::string> cells;
  std::size_t gpus = 0;
  std::size_t used = 0;
  std::string state;
};

const json::array& array_at(const json::value& value, std::string_view path) {
  static const json::array kEmpty;
  const json::value* found = find_path(value, path);
  return found != nullptr && found->is_array() ? found->get_array() : kEmpty;
}

NodeRow node_row(const json::value& node) {
  NodeRow row;
  std::set<std::string> types;
  for (const json::value& gpu : array_at(node, "gpus")) {
    ++row.gpus;
    const json::value* job = find_path(gpu, "job_id");
    if (job != nullptr && !job->is_null()) ++row.used;
    types.insert(cell_text(find_path(gpu, "type")));
  }
  std::string type_text;
  for (const std::string& type : types) type_text += (type_text.empty() ? "" : ",") + type;
  row.state = cell_text(find_path(node, "state"));
  row.cells = {cell_text(find_path(node, "name")),
               row.state,
               type_text.empty() ? "-" : type_text,
               std::to_string(row.gpus),
               std::to_string(row.used),
               cell_text(find_path(node, "region")),
               cell_text(find_path(node, "cluster")),
               cell_text(find_path(node, "rack"))};
  return row;
}

// "24 GPUs on 3 nodes (2 up, 1 cordoned), 5 in use; source fleet.toml (virtual)"
std::string fleet_summary(const json::value& fleet, const std::vector<NodeRow>& rows) {
  std::size_t gpus = 0;
  std::size_t used = 0;
  std::map<std::string, std::size_t> by_state;
  for (const NodeRow& row : rows) {
    gpus += row.gpus;
    used += row.used;
    ++by_state[row.state];
  }
  std::string states;
  auto add_state = [&states](const std::string& state, std::size_t count) {
    states += (states.empty() ? "" : ", ") + std::to_string(count) + " " + state;
  };
  for (const std::string& state : kNodeStates) {
    if (auto it = by_state.find(state); it != by_state.end()) add_state(state, it->second);
  }
  for (const auto& [state, count] : by_state) {
    if (std::find(kNodeStates.begin(), kNodeStates.end(), state) == kNodeStates.end()) add_state(state, count);
  }
  std::string line = std::to_string(gpus) + " GPUs on " + std::to_string(rows.size()) + " nodes";
  if (!states.empty()) line += " (" + states + ")";
  line += ", " + std::to_string(used) + " in use";
  if (const std::string source = cell_text(find_path(fleet, "source")); source != "-") line += "; source " + source;
  const json::value* is_virtual = find_path(fleet, "virtual");
  if (is_virtual != nullptr && is_virtual->is_bool() && is_virtual->get_bool()) line += " (virtual)";
  return line + "\n";
}

void add_fleet_command(CLI::App& app, int& exit_code, const Env& env) {
  CLI::App* fleet = add_api_command(app,
                                    {.name = "fleet",
                                     .description = "Show the fleet's nodes and what runs on them (admin)",
                                     .example = "headroom fleet",
                                     .make_call = []() -> Result<ApiCall> {
                                       return ApiCall{"GET", "/v1/fleet", std::nullopt};
                                     },
                                     .shape = Shape::kRecord,
                                     .render = render_fleet},
                                    exit_code, env);

  struct Action {
    std::string name;
    std::string description;
  };
  const std::vector<Action> actions = {{"cordon", "Stop placing new jobs on a node; the jobs on it go on (admin)"},
                                       {"drain", "Stop placing new jobs on a node and move its jobs off it (admin)"},
                                       {"uncordon", "Place jobs on a node again (admin)"}};
  for (const Action& action : actions) {
    auto node = std::make_shared<std::string>();
    add_api_command(
        *fleet,
        {.name = action.name,
         .description = action.description,
         .example = "headroom fleet " + action.name + " node-17",
         .add_arguments = [node](CLI::App& command) { command.add_option("node", *node, "Node name")->required(); },
         .make_call = [node, name = action.name]() -> Result<ApiCall> {
           return ApiCall{"POST", "/v1/fleet/nodes/" + encode_path_segment(*node) + "/" + name, std::nullopt};
         },
         .shape = Shape::kRecord,
         .columns = kNodeStateColumns},
        exit_code, env);
  }
}

void add_surplus_command(CLI::App& app, int& exit_code, const Env& env) {
  add_api_command(app,
                  {.name = "surplus",
                   .description = "Show, per GPU type, where the GPUs are and how many could be sold now (admin)",
                   .example = "headroom surplus --output json",
                   .make_call = []() -> Result<ApiCall> {
                     return ApiCall{"GET", "/v1/surplus", std::nullopt};
                   },
                   .shape = Shape::kList,
                   .columns = kSurplusColumns},
                  exit_code, env);
}

}  // namespace

std::string render_fleet(const json::value& fleet) {
  std::vector<NodeRow> rows;
  std::vector<std::vector<std::string>> cells;
  for (const json::value& node : array_at(fleet, "nodes")) {
    rows.push_back(node_row(node));
    cells.push_back(rows.back().cells);
  }
  return render_table(kNodeColumns, cells) + fleet_summary(fleet, rows);
}

void add_fleet_commands(CLI::App& app, int& exit_code, const Env& env) {
  add_fleet_command(app, exit_code, env);
  add_surplus_command(app, exit_code, env);
}

}  // namespace headroom::cli
