#include "fleet/fleet.h"

#include <string>
#include <unordered_map>
#include <unordered_set>

namespace headroom::fleet {
namespace {

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_punct(char c) { return c == '.' || c == '_' || c == '-'; }

bool is_printable(std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

// What later nodes of an NVLink domain must agree with.
struct DomainInfo {
  const Node* first_node = nullptr;
  std::size_t gpus = 0;
};

Status node_error(const Node& node, const std::string& message) {
  return Status::invalid_argument("node " + quote_for_message(node.name) + ": " + message);
}

Status check_name_field(const Node& node, std::string_view field, std::string_view value, bool may_be_empty) {
  if (value.empty() && may_be_empty) return Status::ok();
  if (is_valid_fleet_name(value)) return Status::ok();
  return node_error(node, std::string(field) + " " + quote_for_message(value) + " is not a valid name (1 to " +
                              std::to_string(limits::kFleetNameBytes) +
                              " of A-Z a-z 0-9 . _ -, starting with a letter or digit)");
}

Status validate_gpu_types(const FleetSpec& fleet) {
  if (fleet.gpu_types.empty()) return Status::invalid_argument("the fleet declares no GPU types");
  if (fleet.gpu_types.size() > limits::kFleetGpuTypes) {
    return Status::invalid_argument("the fleet declares " + std::to_string(fleet.gpu_types.size()) +
                                    " GPU types; at most " + std::to_string(limits::kFleetGpuTypes) + " are allowed");
  }
  std::unordered_set<std::string_view> names;
  for (const GpuType& type : fleet.gpu_types) {
    if (!is_valid_gpu_type_name(type.name)) {
      return Status::invalid_argument("GPU type name " + quote_for_message(type.name) + " is not valid (1 to " +
                                      std::to_string(limits::kGpuTypeNameBytes) +
                                      " of a-z 0-9 . _ -, starting with a letter or digit)");
    }
    if (!names.insert(type.name).second) {
      return Status::invalid_argument("GPU type " + quote_for_message(type.name) + " is declared twice");
    }
    if (type.display_name.size() > limits::kGpuDisplayNameBytes || !is_printable(type.display_name)) {
      return Status::invalid_argument("GPU type " + quote_for_message(type.name) + ": display name " +
                                      quote_for_message(type.display_name) +
                                      " is too long or holds control characters");
    }
    if (type.memory_mib <= 0 || type.memory_mib > limits::kGpuMemoryMib) {
      return Status::invalid_argument("GPU type " + quote_for_message(type.name) + ": memory " +
                                      std::to_string(type.memory_mib) + " MiB is out of range (1 to " +
                                      std::to_string(limits::kGpuMemoryMib) + ")");
    }
  }
  return Status::ok();
}

}  // namespace

std::string_view node_state_name(NodeState state) {
  switch (state) {
    case NodeState::kUp: return "up";
    case NodeState::kCordoned: return "cordoned";
    case NodeState::kDraining: return "draining";
    case NodeState::kDown: return "down";
  }
  return "unknown";
}

Result<NodeState> parse_node_state(std::string_view text) {
  for (NodeState state : {NodeState::kUp, NodeState::kCordoned, NodeState::kDraining, NodeState::kDown}) {
    if (node_state_name(state) == text) return state;
  }
  return Status::invalid_argument("unknown node state " + quote_for_message(text) +
                                  " (expected up, cordoned, draining or down)");
}

bool is_valid_fleet_name(std::string_view name) {
  if (name.empty() || name.size() > limits::kFleetNameBytes || !is_alnum(name.front())) return false;
  for (char c : name) {
    if (!is_alnum(c) && !is_punct(c)) return false;
  }
  return true;
}

bool is_valid_gpu_type_name(std::string_view name) {
  if (name.empty() || name.size() > limits::kGpuTypeNameBytes || !is_lower_alnum(name.front())) return false;
  for (char c : name) {
    if (!is_lower_alnum(c) && !is_punct(c)) return false;
  }
  return true;
}

const GpuType* find_gpu_type(const FleetSpec& fleet, std::string_view name) {
  for (const GpuType& type : fleet.gpu_types) {
    if (type.name == name) return &type;
  }
  return nullptr;
}

std::string quote_for_message(std::string_view text, std::size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < max_bytes; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_bytes) out += "...";
  out += '"';
  return out;
}

std::size_t gpu_count(const FleetSpec& fleet) {
  std::size_t n = 0;
  for (const Node& node : fleet.nodes) n += node.gpus.size();
  return n;
}

Status validate(const FleetSpec& fleet) {
  HR_RETURN_IF_ERROR(validate_gpu_types(fleet));
  if (fleet.nodes.empty()) return Status::invalid_argument("the fleet has no nodes");
  if (fleet.nodes.size() > limits::kFleetNodes) {
    return Status::invalid_argument("the fleet has " + std::to_string(fleet.nodes.size()) + " nodes; at most " +
                                    std::to_string(limits::kFleetNodes) + " are allowed");
  }

  std::unordered_set<std::string_view> type_names;
  for (const GpuType& type : fleet.gpu_types) type_names.insert(type.name);

  // Views into `fleet`, which outlives this function's maps.
  std::unordered_set<std::string_view> node_names;
  std::unordered_set<std::string_view> uuids;
  std::unordered_map<std::string_view, std::string_view> region_of_site;
  std::unordered_map<std::string_view, std::string_view> site_of_cluster;
  std::unordered_map<std::string_view, DomainInfo> domains;
  node_names.reserve(fleet.nodes.size());
  std::size_t total_gpus = 0;

  for (const Node& node : fleet.nodes) {
    if (!is_valid_fleet_name(node.name)) {
      return Status::invalid_argument("node name " + quote_for_message(node.name) + " is not valid (1 to " +
                                      std::to_string(limits::kFleetNameBytes) +
                                      " of A-Z a-z 0-9 . _ -, starting with a letter or digit)");
    }
    if (!node_names.insert(node.name).second) return node_error(node, "the name is used by two nodes");
    HR_RETURN_IF_ERROR(check_name_field(node, "region", node.region, false));
    HR_RETURN_IF_ERROR(check_name_field(node, "site", node.site, false));
    HR_RETURN_IF_ERROR(check_name_field(node, "cluster", node.cluster, false));
    HR_RETURN_IF_ERROR(check_name_field(node, "rack", node.rack, true));
    HR_RETURN_IF_ERROR(check_name_field(node, "block", node.block, true));
    HR_RETURN_IF_ERROR(check_name_field(node, "nvlink_domain", node.nvlink_domain, false));
    if (static_cast<std::uint8_t>(node.state) > static_cast<std::uint8_t>(NodeState::kDown)) {
      return node_error(node, "state " + std::to_string(static_cast<int>(node.state)) + " is not a node state");
    }

    if (node.gpus.empty()) return node_error(node, "the node has no GPUs");
    if (node.gpus.size() > limits::kGpusPerNode) {
      return node_error(node, "the node has " + std::to_string(node.gpus.size()) + " GPUs; at most " +
                                  std::to_string(limits::kGpusPerNode) + " are allowed");
    }
    total_gpus += node.gpus.size();
    if (total_gpus > limits::kFleetGpus) {
      return Status::invalid_argument("the fleet has more than " + std::to_string(limits::kFleetGpus) + " GPUs");
    }

    bool index_used[limits::kGpusPerNode] = {};
    for (const Gpu& gpu : node.gpus) {
      if (gpu.index >= limits::kGpusPerNode) {
        return node_error(node, "GPU index " + std::to_string(gpu.index) + " is out of range (0 to " +
                                    std::to_string(limits::kGpusPerNode - 1) + ")");
      }
      if (index_used[gpu.index]) return node_error(node, "GPU index " + std::to_string(gpu.index) + " appears twice");
      index_used[gpu.index] = true;
      if (!type_names.contains(gpu.type)) {
        return node_error(node, "GPU " + std::to_string(gpu.index) + " has type " + quote_for_message(gpu.type) +
                                    ", which the fleet does not declare");
      }
      if (!gpu.uuid.empty()) {
        if (gpu.uuid.size() > limits::kGpuUuidBytes || !is_printable(gpu.uuid)) {
          return node_error(
              node, "GPU " + std::to_string(gpu.index) + " has a malformed uuid " + quote_for_message(gpu.uuid));
        }
        if (!uuids.insert(gpu.uuid).second) {
          return node_error(node, "GPU uuid " + quote_for_message(gpu.uuid) + " appears twice in the fleet");
        }
      }
    }

    // The hierarchy is a tree: each site in one region, each cluster in one site.
    if (auto [it, inserted] = region_of_site.try_emplace(node.site, node.region);
        !inserted && it->second != node.region) {
      return node_error(node, "site " + quote_for_message(node.site) + " is in region " +
                                  quote_for_message(it->second) + " on other nodes but in region " +
                                  quote_for_message(node.region) + " here");
    }
    if (auto [it, inserted] = site_of_cluster.try_emplace(node.cluster, node.site);
        !inserted && it->second != node.site) {
      return node_error(node, "cluster " + quote_for_message(node.cluster) + " is in site " +
                                  quote_for_message(it->second) + " on other nodes but in site " +
                                  quote_for_message(node.site) + " here");
    }

    // An NVLink domain is cabled within one rack, so within one cluster. Its
    // GPUs may mix types (a workstation), which only narrows where gangs fit.
    auto [domain_it, new_domain] = domains.try_emplace(node.nvlink_domain);
    DomainInfo& domain = domain_it->second;
    if (new_domain) {
      domain.first_node = &node;
    } else if (domain.first_node->cluster != node.cluster) {
      return node_error(node, "NVLink domain " + quote_for_message(node.nvlink_domain) + " spans clusters " +
                                  quote_for_message(domain.first_node->cluster) + " and " +
                                  quote_for_message(node.cluster));
    }
    domain.gpus += node.gpus.size();
    if (domain.gpus > limits::kNvlinkDomainGpus) {
      return node_error(node, "NVLink domain " + quote_for_message(node.nvlink_domain) + " has more than " +
                                  std::to_string(limits::kNvlinkDomainGpus) + " GPUs");
    }
  }
  return Status::ok();
}

}  // namespace headroom::fleet
