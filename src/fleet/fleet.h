// The fleet as declared (config file) or detected (nvidia-smi): plain data.
//
// A fleet is a list of GPU types and a list of nodes. Each node carries its
// place in the hierarchy (region -> site -> cluster -> node -> GPUs) and its
// topology (rack, network block, NVLink domain) as names, so the structure
// is flat and cheap to copy, serialise and compare. The scheduler builds its
// own indexes from a FleetSpec once validate() has accepted it.
//
// Naming rules, which validate() enforces:
//   - region, site, cluster and NVLink domain names are fleet-wide ids: a site
//     lies in one region, a cluster in one site, a domain in one cluster.
//   - rack and block names are scoped to their cluster ("r01" may exist in
//     every cluster); empty means unknown.
//   - every node has an NVLink domain; a node whose GPUs talk over NVLink only
//     among themselves (an HGX node) is conventionally its own domain, named
//     after the node. A GB200 NVL72 rack is one domain shared by its 18 nodes.
//
// Nothing here is thread-safe beyond what std::vector and std::string are:
// a FleetSpec is a value, built once and then read.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "fleet/fleet_limits.h"

namespace headroom::fleet {

// The operator's view of a node. Only kUp nodes take new work; kDraining
// nodes finish what runs; kCordoned nodes keep running work but take no new
// work; kDown nodes run nothing.
enum class NodeState : std::uint8_t { kUp, kCordoned, kDraining, kDown };

// "up", "cordoned", "draining", "down".
std::string_view node_state_name(NodeState state);
Result<NodeState> parse_node_state(std::string_view text);

struct GpuType {
  std::string name;          // short id used in prices and requests: "h100", "gb200"
  std::string display_name;  // for people: "NVIDIA H100 80GB HBM3"; may be empty
  std::int64_t memory_mib = 0;
};

struct Gpu {
  std::uint32_t index = 0;  // index on its node, as nvidia-smi and CUDA number it
  std::string uuid;         // "GPU-8f6b..." when known (detected); empty when declared
  std::string type;         // a GpuType::name of the fleet
};

struct Node {
  std::string name;  // unique in the fleet; a real node's host name
  std::string region;
  std::string site;
  std::string cluster;
  std::string rack;           // may be empty: unknown
  std::string block;          // network block (leaf group); may be empty: unknown
  std::string nvlink_domain;  // never empty; see the naming rules above
  NodeState state = NodeState::kUp;
  std::vector<Gpu> gpus;
};

struct FleetSpec {
  std::vector<GpuType> gpu_types;
  std::vector<Node> nodes;
  // True when the GPUs do not exist (a laptop, a demo, a test): work "runs"
  // without touching hardware. Callers show it wherever the fleet is shown.
  bool is_virtual = false;
  // Where the fleet came from: "nvidia-smi", "config", "virtual".
  std::string source;
};

// Accepts a fleet that the scheduler may trust: names well formed and unique,
// every GPU's type declared, GPU indexes unique on their node and uuids in
// the fleet, counts within fleet_limits.h, the hierarchy and NVLink domains
// consistent (see the rules above; a node or domain may mix GPU types).
// Returns invalid_argument naming the first offending node or type. O(GPUs).
Status validate(const FleetSpec& fleet);

// A name of a node, region, site, cluster, rack, block or NVLink domain:
// 1..kFleetNameBytes of [A-Za-z0-9._-], starting with a letter or digit.
bool is_valid_fleet_name(std::string_view name);
// A GPU type's name: 1..kGpuTypeNameBytes of [a-z0-9._-], starting with a
// letter or digit. Lower case, so that "H100" and "h100" are never two types.
bool is_valid_gpu_type_name(std::string_view name);

// The type named `name`, or null.
const GpuType* find_gpu_type(const FleetSpec& fleet, std::string_view name);

// All GPUs of all nodes.
std::size_t gpu_count(const FleetSpec& fleet);

// Text from outside (a name in a config file, a line of nvidia-smi output)
// made safe for an error message: in double quotes, with quotes, backslashes,
// control and non-ASCII bytes escaped (\xNN), cut to `max_bytes` with "...".
// Messages reach logs and API errors; outside text must not forge a log line,
// flood one, or cut a UTF-8 sequence in half.
std::string quote_for_message(std::string_view text, std::size_t max_bytes = 80);

}  // namespace headroom::fleet
