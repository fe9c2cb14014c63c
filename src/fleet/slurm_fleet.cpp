#include "fleet/slurm_fleet.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>

#include "fleet/fleet_limits.h"

namespace headroom::fleet {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

// The value of the first "Key=" field of a line that starts the line or
// follows whitespace (so "Gres=" is not found inside "CfgTRES=...gres/gpu=4").
// Values end at whitespace: the fields read here never hold any.
std::optional<std::string_view> field(std::string_view line, std::string_view key) {
  std::size_t at = 0;
  for (;;) {
    at = line.find(key, at);
    if (at == std::string_view::npos) return std::nullopt;
    if (at == 0 || std::isspace(static_cast<unsigned char>(line[at - 1]))) break;
    at += key.size();
  }
  std::string_view value = line.substr(at + key.size());
  std::size_t end = 0;
  while (end < value.size() && !std::isspace(static_cast<unsigned char>(value[end]))) ++end;
  return value.substr(0, end);
}

// Splits on ',' outside parentheses: "gpu:h100:4(S:0,1),gpu:a100:2".
std::vector<std::string_view> split_gres(std::string_view text) {
  std::vector<std::string_view> parts;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || (text[i] == ',' && depth == 0)) {
      if (i > start) parts.push_back(text.substr(start, i - start));
      start = i + 1;
    } else if (text[i] == '(') {
      ++depth;
    } else if (text[i] == ')' && depth > 0) {
      --depth;
    }
  }
  return parts;
}

std::string lowered(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Result<std::vector<SlurmNode>> parse_scontrol_nodes(std::string_view text) {
  std::vector<SlurmNode> nodes;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    std::string_view line = trim(text.substr(0, newline));
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    ++line_number;
    if (line.empty() || line.starts_with("No nodes in the system")) continue;
    auto bad = [&](const std::string& why) {
      return Status::invalid_argument("scontrol show nodes, line " + std::to_string(line_number) + ": " + why);
    };
    if (nodes.size() == limits::kFleetNodes) {
      return bad("more than " + std::to_string(limits::kFleetNodes) + " nodes");
    }
    SlurmNode node;
    auto name = field(line, "NodeName=");
    auto state = field(line, "State=");
    if (!name || name->empty() || !state || state->empty()) {
      return bad("no NodeName= or State= in " + quote_for_message(line));
    }
    node.name = std::string(*name);
    node.state = std::string(*state);
    if (auto partitions = field(line, "Partitions=")) {
      std::string_view rest = *partitions;
      while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        if (comma != 0) node.partitions.emplace_back(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    }
    if (auto gres = field(line, "Gres="); gres && *gres != "(null)") {
      for (std::string_view entry : split_gres(*gres)) {
        entry = entry.substr(0, entry.find('('));  // "(S:0-1)": the sockets, not needed
        // name[:type]:count; a type may not hold ':'.
        if (!entry.starts_with("gpu:")) continue;  // another GRES (shard, mps, nic)
        entry.remove_prefix(4);
        SlurmNode::GpuGres gpu;
        const std::size_t colon = entry.rfind(':');
        std::string_view count = entry;
        if (colon != std::string_view::npos) {
          gpu.type = std::string(entry.substr(0, colon));
          count = entry.substr(colon + 1);
        }
        const auto [ptr, error] = std::from_chars(count.data(), count.data() + count.size(), gpu.count);
        if (count.empty() || error != std::errc() || ptr != count.data() + count.size()) {
          return bad("node " + quote_for_message(node.name) + ": malformed GPU GRES count in " +
                     quote_for_message(*gres));
        }
        if (gpu.count > 0) node.gpus.push_back(std::move(gpu));
      }
    }
    nodes.push_back(std::move(node));
  }
  return nodes;
}

NodeState node_state_from_slurm(std::string_view state) {
  std::vector<std::string_view> flags;
  std::string_view base = state.substr(0, state.find('+'));
  // sinfo's short forms end in '*' (not responding), '~' (powered down), ...
  if (!base.empty() && (base.back() == '*' || base.back() == '~' || base.back() == '#' || base.back() == '%')) {
    return NodeState::kDown;
  }
  for (std::size_t at = state.find('+'); at != std::string_view::npos;) {
    const std::size_t next = state.find('+', at + 1);
    flags.push_back(state.substr(at + 1, next == std::string_view::npos ? std::string_view::npos : next - at - 1));
    at = next;
  }
  auto has = [&](std::string_view prefix) {
    return std::any_of(flags.begin(), flags.end(), [&](std::string_view f) { return f.starts_with(prefix); });
  };
  if (base == "DOWN" || base == "FUTURE" || base == "UNKNOWN" || has("NOT_RESPONDING") || has("POWER") ||
      has("REBOOT")) {
    return NodeState::kDown;
  }
  if (has("DRAIN") || has("FAIL") || has("MAINT") || has("RESERVED")) return NodeState::kDraining;
  if (base == "IDLE" || base == "ALLOCATED" || base == "MIXED" || base == "COMPLETING") return NodeState::kUp;
  return NodeState::kDown;  // a state this code does not know: sell nothing on it
}

Result<FleetSpec> fleet_from_slurm_nodes(std::string_view scontrol_text, const SlurmFleetOptions& options) {
  HR_ASSIGN_OR_RETURN(std::vector<SlurmNode> nodes, parse_scontrol_nodes(scontrol_text));
  FleetSpec fleet;
  fleet.source = "slurm";
  std::map<std::string, std::size_t> type_index;  // name -> position in fleet.gpu_types
  for (const SlurmNode& slurm_node : nodes) {
    if (slurm_node.gpus.empty()) continue;
    if (!options.partition.empty() && std::find(slurm_node.partitions.begin(), slurm_node.partitions.end(),
                                                options.partition) == slurm_node.partitions.end()) {
      continue;
    }
    Node node;
    node.name = slurm_node.name;
    node.region = options.region;
    node.site = options.site;
    node.cluster = options.cluster;
    node.nvlink_domain = node.name;
    node.state = node_state_from_slurm(slurm_node.state);
    for (const SlurmNode::GpuGres& gres : slurm_node.gpus) {
      const std::string type = gres.type.empty() ? options.untyped_gpu_type : lowered(gres.type);
      if (!type_index.contains(type)) {
        auto declared = std::find_if(options.gpu_types.begin(), options.gpu_types.end(),
                                     [&](const GpuType& t) { return t.name == type; });
        if (declared != options.gpu_types.end()) {
          fleet.gpu_types.push_back(*declared);
        } else if (options.undeclared_gpu_memory_mib > 0) {
          fleet.gpu_types.push_back(
              {.name = type, .display_name = "", .memory_mib = options.undeclared_gpu_memory_mib});
        } else {
          return Status::invalid_argument("Slurm node " + quote_for_message(node.name) + " has GPUs of type " +
                                          quote_for_message(type) +
                                          ", which the configuration does not declare (its memory is needed)");
        }
        type_index.emplace(type, fleet.gpu_types.size() - 1);
      }
      if (node.gpus.size() + gres.count > limits::kGpusPerNode) {
        return Status::invalid_argument("Slurm node " + quote_for_message(node.name) + " has more than " +
                                        std::to_string(limits::kGpusPerNode) + " GPUs");
      }
      for (std::uint32_t i = 0; i < gres.count; ++i) {
        node.gpus.push_back({.index = static_cast<std::uint32_t>(node.gpus.size()), .uuid = "", .type = type});
      }
    }
    fleet.nodes.push_back(std::move(node));
  }
  if (fleet.nodes.empty()) {
    return Status::invalid_argument(
        "no Slurm node has a GPU GRES" +
        (options.partition.empty() ? std::string() : " in partition " + quote_for_message(options.partition)) +
        " (GresTypes=gpu in slurm.conf, Gres=gpu:TYPE:N on the nodes)");
  }
  HR_RETURN_IF_ERROR(validate(fleet));
  return fleet;
}

}  // namespace headroom::fleet
