#include "fleet/slurm_fleet.h"

#include <gtest/gtest.h>

namespace headroom::fleet {
namespace {

// Captured from Slurm 22.05.8 (`scontrol show nodes --oneliner`), the first
// line as is, the others edited to cover more GRES and states.
constexpr const char* kNodes =
    "NodeName=vm Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUEfctv=16 CPUTot=16 CPULoad=0.98 "
    "AvailableFeatures=(null) ActiveFeatures=(null) Gres=gpu:h100:4 NodeAddr=127.0.0.1 NodeHostName=vm "
    "Version=22.05.8 OS=Linux 6.18.44-fc-v669 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=1000 AllocMem=0 "
    "FreeMem=22254 Sockets=16 Boards=1 State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A "
    "MCS_label=N/A Partitions=hrtest  BootTime=2026-11-26T06:16:32 SlurmdStartTime=2026-11-27T03:31:42 "
    "LastBusyTime=2026-11-27T03:31:42 CfgTRES=cpu=16,mem=1000M,billing=16 AllocTRES= CapWatts=n/a "
    "CurrentWatts=0 AveWatts=0 ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s\n"
    "NodeName=gpu02 Arch=x86_64 Gres=gpu:H100:8(S:0-1),shard:h100:16 State=MIXED+DRAIN "
    "Partitions=batch,spot CfgTRES=cpu=64,gres/gpu=8\n"
    "NodeName=gpu03 Gres=gpu:a100:2(S:0,1),gpu:h100:2 State=DOWN+NOT_RESPONDING Partitions=batch\n"
    "NodeName=cpu01 Gres=(null) State=ALLOCATED Partitions=batch\n"
    "\n"
    "NodeName=gpu04 Gres=gpu:2 State=ALLOCATED Partitions=spot\n";

SlurmFleetOptions declared() {
  SlurmFleetOptions options;
  options.gpu_types = {{"h100", "NVIDIA H100 80GB HBM3", 81559}, {"a100", "NVIDIA A100", 40960}};
  options.undeclared_gpu_memory_mib = 0;
  options.untyped_gpu_type = "a100";
  return options;
}

TEST(SlurmFleet, ParsesNodesGresAndStates) {
  auto nodes = parse_scontrol_nodes(kNodes);
  ASSERT_TRUE(nodes.is_ok()) << nodes.status().to_string();
  ASSERT_EQ(nodes->size(), 5u);
  EXPECT_EQ((*nodes)[0].name, "vm");
  EXPECT_EQ((*nodes)[0].state, "IDLE");
  ASSERT_EQ((*nodes)[0].gpus.size(), 1u);
  EXPECT_EQ((*nodes)[0].gpus[0].type, "h100");
  EXPECT_EQ((*nodes)[0].gpus[0].count, 4u);
  EXPECT_EQ((*nodes)[0].partitions, std::vector<std::string>{"hrtest"});
  ASSERT_EQ((*nodes)[1].gpus.size(), 1u);  // the shards are not GPUs
  EXPECT_EQ((*nodes)[1].gpus[0].type, "H100");
  EXPECT_EQ((*nodes)[1].gpus[0].count, 8u);
  EXPECT_EQ((*nodes)[1].partitions, (std::vector<std::string>{"batch", "spot"}));
  ASSERT_EQ((*nodes)[2].gpus.size(), 2u);
  EXPECT_EQ((*nodes)[2].gpus[0].type, "a100");
  EXPECT_EQ((*nodes)[2].gpus[1].count, 2u);
  EXPECT_TRUE((*nodes)[3].gpus.empty());
  EXPECT_EQ((*nodes)[4].gpus[0].type, "");
  EXPECT_EQ((*nodes)[4].gpus[0].count, 2u);
}

TEST(SlurmFleet, MapsStates) {
  EXPECT_EQ(node_state_from_slurm("IDLE"), NodeState::kUp);
  EXPECT_EQ(node_state_from_slurm("ALLOCATED"), NodeState::kUp);
  EXPECT_EQ(node_state_from_slurm("MIXED"), NodeState::kUp);
  EXPECT_EQ(node_state_from_slurm("IDLE+DRAIN"), NodeState::kDraining);
  EXPECT_EQ(node_state_from_slurm("MIXED+DRAIN"), NodeState::kDraining);
  EXPECT_EQ(node_state_from_slurm("DOWN"), NodeState::kDown);
  EXPECT_EQ(node_state_from_slurm("DOWN+DRAIN"), NodeState::kDown);
  EXPECT_EQ(node_state_from_slurm("IDLE+NOT_RESPONDING"), NodeState::kDown);
  EXPECT_EQ(node_state_from_slurm("IDLE+POWERED_DOWN"), NodeState::kDown);
  EXPECT_EQ(node_state_from_slurm("idle*"), NodeState::kDown);
  EXPECT_EQ(node_state_from_slurm("SOMETHING_NEW"), NodeState::kDown);
}

TEST(SlurmFleet, BuildsAValidFleet) {
  auto fleet = fleet_from_slurm_nodes(kNodes, declared());
  ASSERT_TRUE(fleet.is_ok()) << fleet.status().to_string();
  EXPECT_EQ(fleet->source, "slurm");
  EXPECT_FALSE(fleet->is_virtual);
  ASSERT_EQ(fleet->nodes.size(), 4u);  // cpu01 has no GPUs
  const Node& vm = fleet->nodes[0];
  EXPECT_EQ(vm.name, "vm");
  EXPECT_EQ(vm.nvlink_domain, "vm");
  EXPECT_EQ(vm.state, NodeState::kUp);
  ASSERT_EQ(vm.gpus.size(), 4u);
  EXPECT_EQ(vm.gpus[3].index, 3u);
  EXPECT_EQ(vm.gpus[3].type, "h100");
  EXPECT_EQ(fleet->nodes[1].gpus.size(), 8u);
  EXPECT_EQ(fleet->nodes[1].gpus[0].type, "h100");  // lowered
  EXPECT_EQ(fleet->nodes[1].state, NodeState::kDraining);
  EXPECT_EQ(fleet->nodes[2].gpus.size(), 4u);
  EXPECT_EQ(fleet->nodes[2].gpus[0].type, "a100");
  EXPECT_EQ(fleet->nodes[2].gpus[2].type, "h100");
  EXPECT_EQ(fleet->nodes[2].state, NodeState::kDown);
  EXPECT_EQ(fleet->nodes[3].gpus[1].type, "a100");  // untyped
  ASSERT_EQ(fleet->gpu_types.size(), 2u);
  EXPECT_EQ(find_gpu_type(*fleet, "h100")->memory_mib, 81559);
}

TEST(SlurmFleet, PartitionFilters) {
  SlurmFleetOptions options = declared();
  options.partition = "spot";
  auto fleet = fleet_from_slurm_nodes(kNodes, options);
  ASSERT_TRUE(fleet.is_ok()) << fleet.status().to_string();
  ASSERT_EQ(fleet->nodes.size(), 2u);
  EXPECT_EQ(fleet->nodes[0].name, "gpu02");
  EXPECT_EQ(fleet->nodes[1].name, "gpu04");
  options.partition = "none";
  EXPECT_FALSE(fleet_from_slurm_nodes(kNodes, options).is_ok());
}

TEST(SlurmFleet, UndeclaredTypesNeedAMemory) {
  SlurmFleetOptions options;
  auto refused = fleet_from_slurm_nodes(kNodes, options);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("\"h100\""), std::string::npos) << refused.status().message();
  options.undeclared_gpu_memory_mib = 1024;
  auto fleet = fleet_from_slurm_nodes(kNodes, options);
  ASSERT_TRUE(fleet.is_ok()) << fleet.status().to_string();
  EXPECT_NE(find_gpu_type(*fleet, "gpu"), nullptr);
}

TEST(SlurmFleet, RefusesMalformedText) {
  EXPECT_FALSE(parse_scontrol_nodes("Arch=x86_64 State=IDLE\n").is_ok());
  EXPECT_FALSE(parse_scontrol_nodes("NodeName=a Gres=gpu:h100:x State=IDLE\n").is_ok());
  EXPECT_FALSE(parse_scontrol_nodes("NodeName=a Gres=gpu:h100:-1 State=IDLE\n").is_ok());
  EXPECT_TRUE(parse_scontrol_nodes("No nodes in the system\n").value().empty());
  EXPECT_FALSE(fleet_from_slurm_nodes("", declared()).is_ok());
  // A node name the fleet cannot hold.
  EXPECT_FALSE(fleet_from_slurm_nodes("NodeName=a/b Gres=gpu:h100:1 State=IDLE\n", declared()).is_ok());
}

}  // namespace
}  // namespace headroom::fleet
