// Fleets for the scheduler's tests: HGX nodes (8 GPUs, each its own NVLink
// domain) and GB200 NVL72 racks (18 nodes of 4 GPUs in one 72-GPU domain).
#pragma once

#include <string>

#include "fleet/fleet.h"

namespace headroom::sched::testing {

inline fleet::Node make_node(std::string name, std::string rack, std::string block, std::string domain,
                             std::uint32_t gpus, std::string type) {
  fleet::Node node;
  node.name = name;
  node.region = "us-east";
  node.site = "iad1";
  node.cluster = "iad1-a";
  node.rack = std::move(rack);
  node.block = std::move(block);
  node.nvlink_domain = domain.empty() ? name : std::move(domain);
  for (std::uint32_t i = 0; i < gpus; ++i) node.gpus.push_back({.index = i, .uuid = "", .type = type});
  return node;
}

// `hgx_nodes` HGX nodes of 8 h100 in racks of 4 (three racks a block), then
// `nvl_racks` NVL72 racks of gb200 in their own block.
inline fleet::FleetSpec make_fleet(int hgx_nodes, int nvl_racks) {
  fleet::FleetSpec spec;
  spec.source = "test";
  spec.is_virtual = true;
  spec.gpu_types.push_back({.name = "h100", .display_name = "", .memory_mib = 81'920});
  spec.gpu_types.push_back({.name = "gb200", .display_name = "", .memory_mib = 190'464});
  for (int i = 0; i < hgx_nodes; ++i) {
    const int rack = i / 4;
    spec.nodes.push_back(make_node("hgx-" + std::to_string(i), "r" + std::to_string(rack),
                                   "b" + std::to_string(rack / 3), "", 8, "h100"));
  }
  for (int r = 0; r < nvl_racks; ++r) {
    for (int i = 0; i < 18; ++i) {
      spec.nodes.push_back(make_node("nvl-" + std::to_string(r) + "-" + std::to_string(i),
                                     "nr" + std::to_string(r), "bnvl", "nvl72-" + std::to_string(r), 4, "gb200"));
    }
  }
  return spec;
}

}  // namespace headroom::sched::testing
