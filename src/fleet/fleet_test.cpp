#include "fleet/fleet.h"

#include <gtest/gtest.h>

#include <string>

namespace headroom::fleet {
namespace {

Node make_node(std::string name, std::size_t gpus, std::string type = "h100") {
  Node node;
  node.name = name;
  node.region = "us-east";
  node.site = "iad1";
  node.cluster = "iad1-a";
  node.rack = "r01";
  node.block = "b1";
  node.nvlink_domain = name;
  for (std::size_t i = 0; i < gpus; ++i) {
    node.gpus.push_back({.index = static_cast<std::uint32_t>(i), .uuid = "", .type = type});
  }
  return node;
}

FleetSpec small_fleet() {
  FleetSpec fleet;
  fleet.source = "test";
  fleet.gpu_types.push_back({.name = "h100", .display_name = "NVIDIA H100 80GB HBM3", .memory_mib = 81'920});
  fleet.gpu_types.push_back({.name = "gb200", .display_name = "", .memory_mib = 190'464});
  fleet.nodes.push_back(make_node("hgx-001", 8));
  fleet.nodes.push_back(make_node("hgx-002", 8));
  return fleet;
}

// The fleet is invalid, with a message holding `fragment`.
void expect_invalid(const FleetSpec& fleet, const std::string& fragment) {
  const Status status = validate(fleet);
  ASSERT_FALSE(status.is_ok()) << "expected an error containing: " << fragment;
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find(fragment), std::string::npos) << status.message();
}

TEST(Fleet, SmallFleetIsValid) {
  const FleetSpec fleet = small_fleet();
  EXPECT_TRUE(validate(fleet).is_ok()) << validate(fleet).to_string();
  EXPECT_EQ(gpu_count(fleet), 16u);
  ASSERT_NE(find_gpu_type(fleet, "gb200"), nullptr);
  EXPECT_EQ(find_gpu_type(fleet, "gb200")->memory_mib, 190'464);
  EXPECT_EQ(find_gpu_type(fleet, "a100"), nullptr);
}

TEST(Fleet, NodeStateNamesRoundTrip) {
  for (NodeState state : {NodeState::kUp, NodeState::kCordoned, NodeState::kDraining, NodeState::kDown}) {
    auto parsed = parse_node_state(node_state_name(state));
    ASSERT_TRUE(parsed.is_ok());
    EXPECT_EQ(*parsed, state);
  }
  auto bad = parse_node_state("Up");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("expected up, cordoned, draining or down"), std::string::npos);
}

TEST(Fleet, Names) {
  EXPECT_TRUE(is_valid_fleet_name("hgx-001"));
  EXPECT_TRUE(is_valid_fleet_name("node7.iad1.example.com"));
  EXPECT_TRUE(is_valid_fleet_name("A_b"));
  EXPECT_FALSE(is_valid_fleet_name(""));
  EXPECT_FALSE(is_valid_fleet_name("-lead"));
  EXPECT_FALSE(is_valid_fleet_name(".hidden"));
  EXPECT_FALSE(is_valid_fleet_name("has space"));
  EXPECT_FALSE(is_valid_fleet_name("slash/y"));
  EXPECT_FALSE(is_valid_fleet_name(std::string(limits::kFleetNameBytes + 1, 'a')));
  EXPECT_TRUE(is_valid_fleet_name(std::string(limits::kFleetNameBytes, 'a')));

  EXPECT_TRUE(is_valid_gpu_type_name("h100"));
  EXPECT_TRUE(is_valid_gpu_type_name("rtx-4090"));
  EXPECT_FALSE(is_valid_gpu_type_name("H100"));
  EXPECT_FALSE(is_valid_gpu_type_name("-x"));
  EXPECT_FALSE(is_valid_gpu_type_name(""));
  EXPECT_FALSE(is_valid_gpu_type_name(std::string(limits::kGpuTypeNameBytes + 1, 'a')));
}

TEST(Fleet, GpuTypeErrors) {
  FleetSpec fleet = small_fleet();
  fleet.gpu_types.clear();
  expect_invalid(fleet, "declares no GPU types");

  fleet = small_fleet();
  fleet.gpu_types.push_back(fleet.gpu_types.front());
  expect_invalid(fleet, "GPU type \"h100\" is declared twice");

  fleet = small_fleet();
  fleet.gpu_types[0].name = "H100";
  expect_invalid(fleet, "GPU type name \"H100\" is not valid");

  fleet = small_fleet();
  fleet.gpu_types[0].memory_mib = 0;
  expect_invalid(fleet, "memory 0 MiB is out of range");

  fleet = small_fleet();
  fleet.gpu_types[0].memory_mib = limits::kGpuMemoryMib + 1;
  expect_invalid(fleet, "out of range");

  fleet = small_fleet();
  fleet.gpu_types[0].display_name = "bad\nname";
  expect_invalid(fleet, "control characters");

  fleet = small_fleet();
  for (std::size_t i = 0; i <= limits::kFleetGpuTypes; ++i) {
    fleet.gpu_types.push_back(
        {.name = std::string("t").append(std::to_string(i)), .display_name = "", .memory_mib = 1024});
  }
  expect_invalid(fleet, "GPU types; at most 64");
}

TEST(Fleet, NodeErrors) {
  FleetSpec fleet = small_fleet();
  fleet.nodes.clear();
  expect_invalid(fleet, "the fleet has no nodes");

  fleet = small_fleet();
  fleet.nodes[1].name = "hgx-001";
  fleet.nodes[1].nvlink_domain = "hgx-001b";
  expect_invalid(fleet, "node \"hgx-001\": the name is used by two nodes");

  fleet = small_fleet();
  fleet.nodes[0].name = "bad name";
  expect_invalid(fleet, "node name \"bad name\" is not valid");

  fleet = small_fleet();
  fleet.nodes[0].region = "";
  expect_invalid(fleet, "node \"hgx-001\": region \"\" is not a valid name");

  fleet = small_fleet();
  fleet.nodes[0].site = "a b";
  expect_invalid(fleet, "site \"a b\" is not a valid name");

  fleet = small_fleet();
  fleet.nodes[0].cluster = "";
  expect_invalid(fleet, "cluster \"\" is not a valid name");

  fleet = small_fleet();
  fleet.nodes[0].rack = "";
  fleet.nodes[0].block = "";
  EXPECT_TRUE(validate(fleet).is_ok()) << "rack and block may be unknown";
  fleet.nodes[0].rack = "r 1";
  expect_invalid(fleet, "rack \"r 1\"");

  fleet = small_fleet();
  fleet.nodes[0].nvlink_domain = "";
  expect_invalid(fleet, "nvlink_domain \"\" is not a valid name");

  fleet = small_fleet();
  fleet.nodes[0].state = static_cast<NodeState>(9);
  expect_invalid(fleet, "state 9 is not a node state");
}

TEST(Fleet, GpuErrors) {
  FleetSpec fleet = small_fleet();
  fleet.nodes[0].gpus.clear();
  expect_invalid(fleet, "node \"hgx-001\": the node has no GPUs");

  fleet = small_fleet();
  fleet.nodes[0] = make_node("hgx-001", limits::kGpusPerNode + 1);
  expect_invalid(fleet, "the node has 73 GPUs; at most 72");

  fleet = small_fleet();
  fleet.nodes[0] = make_node("hgx-001", limits::kGpusPerNode);
  EXPECT_TRUE(validate(fleet).is_ok());

  fleet = small_fleet();
  fleet.nodes[0].gpus[3].index = 2;
  expect_invalid(fleet, "GPU index 2 appears twice");

  fleet = small_fleet();
  fleet.nodes[0].gpus[3].index = 72;
  expect_invalid(fleet, "GPU index 72 is out of range");

  fleet = small_fleet();
  fleet.nodes[1].gpus[5].type = "h200";
  expect_invalid(fleet, "node \"hgx-002\": GPU 5 has type \"h200\", which the fleet does not declare");

  fleet = small_fleet();
  fleet.nodes[0].gpus[0].uuid = "GPU-1";
  fleet.nodes[1].gpus[0].uuid = "GPU-1";
  expect_invalid(fleet, "GPU uuid \"GPU-1\" appears twice in the fleet");

  fleet = small_fleet();
  fleet.nodes[0].gpus[0].uuid = "GPU-\x01";
  expect_invalid(fleet, "malformed uuid \"GPU-\\x01\"");
}

TEST(Fleet, MixedGpuTypesOnANodeAreAllowed) {
  FleetSpec fleet = small_fleet();
  fleet.nodes[0].gpus[7].type = "gb200";
  EXPECT_TRUE(validate(fleet).is_ok());
}

TEST(Fleet, HierarchyMustBeATree) {
  FleetSpec fleet = small_fleet();
  fleet.nodes[1].region = "eu-west";
  expect_invalid(fleet,
                 "node \"hgx-002\": site \"iad1\" is in region \"us-east\" on other nodes but in region "
                 "\"eu-west\" here");

  fleet = small_fleet();
  fleet.nodes[1].site = "iad2";
  expect_invalid(fleet, "cluster \"iad1-a\" is in site \"iad1\" on other nodes but in site \"iad2\" here");

  // Racks are scoped to clusters: the same rack name in two clusters is fine.
  fleet = small_fleet();
  fleet.nodes[1].cluster = "iad1-b";
  EXPECT_TRUE(validate(fleet).is_ok());
}

TEST(Fleet, NvlinkDomains) {
  // A GB200 NVL72 rack: 18 nodes of 4 GPUs in one domain.
  FleetSpec fleet;
  fleet.gpu_types.push_back({.name = "gb200", .display_name = "", .memory_mib = 190'464});
  for (int i = 0; i < 18; ++i) {
    Node node = make_node("gb-" + std::to_string(i), 4, "gb200");
    node.nvlink_domain = "nvl72-01";
    fleet.nodes.push_back(node);
  }
  EXPECT_TRUE(validate(fleet).is_ok()) << validate(fleet).to_string();

  FleetSpec spans = fleet;
  spans.nodes[17].cluster = "other";
  expect_invalid(spans, "node \"gb-17\": NVLink domain \"nvl72-01\" spans clusters \"iad1-a\" and \"other\"");

  FleetSpec too_big;
  too_big.gpu_types = fleet.gpu_types;
  for (std::size_t i = 0; i <= limits::kNvlinkDomainGpus / 72; ++i) {
    Node node = make_node("big-" + std::to_string(i), 72, "gb200");
    node.nvlink_domain = "huge";
    too_big.nodes.push_back(node);
  }
  expect_invalid(too_big, "NVLink domain \"huge\" has more than 576 GPUs");
}

TEST(Fleet, HundredThousandGpuFleetIsValid) {
  FleetSpec fleet;
  fleet.gpu_types.push_back({.name = "h100", .display_name = "", .memory_mib = 81'920});
  const std::size_t nodes = limits::kFleetTargetGpus / 8;
  fleet.nodes.reserve(nodes);
  for (std::size_t i = 0; i < nodes; ++i) {
    Node node = make_node("hgx-" + std::to_string(i), 8);
    node.region = i % 2 ? "us-east" : "eu-west";
    node.site = node.region + "-s" + std::to_string(i % 8);
    node.cluster = node.site + "-c" + std::to_string(i % 32);
    fleet.nodes.push_back(std::move(node));
  }
  EXPECT_TRUE(validate(fleet).is_ok()) << validate(fleet).to_string();
  EXPECT_EQ(gpu_count(fleet), limits::kFleetTargetGpus);
}

TEST(Fleet, SizeLimits) {
  FleetSpec fleet;
  fleet.gpu_types.push_back({.name = "h100", .display_name = "", .memory_mib = 81'920});
  for (std::size_t i = 0; i <= limits::kFleetNodes; ++i) fleet.nodes.push_back(make_node("n" + std::to_string(i), 1));
  expect_invalid(fleet, "nodes; at most 50000 are allowed");

  fleet.nodes.clear();
  for (std::size_t i = 0; i * limits::kGpusPerNode <= limits::kFleetGpus; ++i) {
    fleet.nodes.push_back(make_node("n" + std::to_string(i), limits::kGpusPerNode));
  }
  expect_invalid(fleet, "the fleet has more than 200000 GPUs");
}

TEST(Fleet, MessagesEscapeOutsideText) {
  FleetSpec fleet = small_fleet();
  fleet.nodes[0].name = "evil\n2026-01-01 INFO forged";
  const Status status = validate(fleet);
  ASSERT_FALSE(status.is_ok());
  EXPECT_EQ(status.message().find('\n'), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("evil\\x0a"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace headroom::fleet
