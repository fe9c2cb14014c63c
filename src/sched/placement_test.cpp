#include "sched/placement.h"

#include <gtest/gtest.h>

#include <set>

#include "sched/cluster_state.h"
#include "sched/test_fleet.h"

namespace headroom::sched {
namespace {

using testing::make_fleet;

ClusterState build(int hgx, int nvl) {
  auto state = ClusterState::build(make_fleet(hgx, nvl));
  EXPECT_TRUE(state.is_ok()) << state.status().to_string();
  return std::move(state).value();
}

TEST(CountBuckets, FindsMinAndMax) {
  CountBuckets b;
  b.init(5, 200);
  EXPECT_EQ(b.min_count_at_least(1), 0u);
  EXPECT_EQ(b.max_count(), 0u);
  b.set(0, 3);
  b.set(1, 130);
  b.set(2, 64);
  EXPECT_EQ(b.min_count_at_least(1), 3u);
  EXPECT_EQ(b.min_count_at_least(4), 64u);
  EXPECT_EQ(b.min_count_at_least(65), 130u);
  EXPECT_EQ(b.min_count_at_least(131), 0u);
  EXPECT_EQ(b.max_count(), 130u);
  EXPECT_EQ(b.max_count_below(130), 64u);
  EXPECT_EQ(b.max_count_below(64), 3u);
  EXPECT_EQ(b.max_count_below(3), 0u);
  b.set(1, 0);
  EXPECT_EQ(b.max_count(), 64u);
  EXPECT_EQ(b.first(64), 2u);
  b.set(3, 64);
  EXPECT_EQ(b.first(64), 3u);
  EXPECT_EQ(b.next(3), 2u);
  EXPECT_EQ(b.next(2), kNoIndex);
}

TEST(ClusterState, IndexesTheFleet) {
  ClusterState cs = build(8, 1);
  EXPECT_EQ(cs.gpu_count(), 64u + 72u);
  EXPECT_EQ(cs.node_count(), 8u + 18u);
  const TypeIndex h100 = *cs.find_type("h100");
  const TypeIndex gb200 = *cs.find_type("gb200");
  EXPECT_EQ(cs.type_available(h100), 64u);
  EXPECT_EQ(cs.type_available(gb200), 72u);
  EXPECT_EQ(cs.max_group_capacity(Level::kNvlink, h100), 8u);
  EXPECT_EQ(cs.max_group_capacity(Level::kNvlink, gb200), 72u);
  EXPECT_EQ(cs.max_group_capacity(Level::kRack, h100), 32u);
  EXPECT_EQ(cs.max_group_capacity(Level::kBlock, h100), 64u);
  EXPECT_EQ(cs.group_count(Level::kNvlink), 9u);
}

TEST(ClusterState, AllocateReleaseAndNodeStatesKeepCounts) {
  ClusterState cs = build(2, 0);
  const TypeIndex h100 = *cs.find_type("h100");
  const std::vector<GpuIndex> gpus = {0, 1, 2};
  cs.allocate(7, gpus);
  EXPECT_EQ(cs.holder(1), 7u);
  EXPECT_EQ(cs.node(0).free, 5u);
  EXPECT_EQ(cs.type_available(h100), 13u);
  EXPECT_EQ(cs.group(Level::kNvlink, cs.gpu_group(0, Level::kNvlink)).available, 5u);
  cs.set_node_state(0, fleet::NodeState::kCordoned);
  EXPECT_EQ(cs.type_available(h100), 8u);
  cs.release(7, gpus);
  EXPECT_EQ(cs.type_available(h100), 8u);  // free, but not on an up node
  cs.set_node_state(0, fleet::NodeState::kUp);
  EXPECT_EQ(cs.type_available(h100), 16u);
  EXPECT_EQ(cs.jobs_holding(), 0u);
}

TEST(ClusterStateDeathTest, AGpuIsNeverHeldTwice) {
  ClusterState cs = build(1, 0);
  const std::vector<GpuIndex> gpus = {3};
  cs.allocate(1, gpus);
  EXPECT_DEATH(cs.allocate(2, gpus), "already held|is held by job");
  const std::vector<GpuIndex> wrong = {4};
  EXPECT_DEATH(cs.release(1, wrong), "releases gpu");
  EXPECT_DEATH(cs.release(3, gpus), "holds no GPUs");
}

TEST(ClusterState, TransferAndPartialReleaseKeepCounts) {
  ClusterState cs = build(2, 0);
  const TypeIndex h100 = *cs.find_type("h100");
  cs.allocate(7, std::vector<GpuIndex>{0, 1, 2, 3});
  cs.transfer(7, 9, std::vector<GpuIndex>{2, 3});
  EXPECT_EQ(cs.held_by(7), 2u);
  EXPECT_EQ(cs.held_by(9), 2u);
  EXPECT_EQ(cs.holder(3), 9u);
  EXPECT_EQ(cs.type_available(h100), 12u);  // a transfer frees nothing
  cs.release_part(9, std::vector<GpuIndex>{3});
  EXPECT_EQ(cs.held_by(9), 1u);
  EXPECT_EQ(cs.type_available(h100), 13u);
  cs.release_part(9, std::vector<GpuIndex>{2});
  EXPECT_EQ(cs.held_by(9), 0u);
  EXPECT_EQ(cs.jobs_holding(), 1u);
  EXPECT_EQ(cs.type_up(h100), 16u);
  cs.set_node_state(1, fleet::NodeState::kDraining);
  EXPECT_EQ(cs.type_up(h100), 8u);
  EXPECT_DEATH(cs.transfer(7, 9, std::vector<GpuIndex>{5}), "hands over gpu");
  EXPECT_DEATH(cs.release_part(7, std::vector<GpuIndex>{6}), "releases gpu");
}

TEST(Placement, WithinAGivenSetTakesTheTightestGroupAndFewestNodes) {
  ClusterState cs = build(4, 0);  // one rack of 4 nodes
  // Candidates: 3 on node 0, 6 on node 1, 5 on node 2.
  std::vector<GpuIndex> candidates = {0, 1, 2, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20};
  auto nvlink = place_within(cs, candidates, 5, Packing::kNvlink);
  ASSERT_TRUE(nvlink);
  for (GpuIndex g : *nvlink) EXPECT_EQ(cs.gpu_node(g), 2u);  // the tightest domain that holds 5
  EXPECT_FALSE(place_within(cs, candidates, 7, Packing::kNvlink));
  auto any = place_within(cs, candidates, 9, Packing::kAny);
  ASSERT_TRUE(any);
  std::set<NodeIndex> nodes;
  for (GpuIndex g : *any) nodes.insert(cs.gpu_node(g));
  EXPECT_EQ(nodes, (std::set<NodeIndex>{1, 0}));  // 6 on the fullest node, the last 3 on the one that fits them best
  EXPECT_FALSE(place_within(cs, candidates, 15, Packing::kAny));
}

TEST(Placement, NvlinkTakesTheFullestDomainThatFits) {
  ClusterState cs = build(3, 1);
  const TypeIndex h100 = *cs.find_type("h100");
  // Node 0: 2 free; node 1: 5 free; node 2: 8 free.
  cs.allocate(1, std::vector<GpuIndex>{0, 1, 2, 3, 4, 5});
  cs.allocate(2, std::vector<GpuIndex>{8, 9, 10});
  auto gpus = place(cs, {.gpus = 4, .type = h100, .packing = Packing::kNvlink});
  ASSERT_TRUE(gpus);
  ASSERT_EQ(gpus->size(), 4u);
  for (GpuIndex g : *gpus) EXPECT_EQ(cs.gpu_node(g), 1u);
  // A 72-GPU gang takes the NVL72 domain whole; a 73-GPU one never fits.
  auto big = place(cs, {.gpus = 72, .type = std::nullopt, .packing = Packing::kNvlink});
  ASSERT_TRUE(big);
  std::set<GroupIndex> domains;
  for (GpuIndex g : *big) domains.insert(cs.gpu_group(g, Level::kNvlink));
  EXPECT_EQ(domains.size(), 1u);
  EXPECT_FALSE(can_ever_fit(cs, {.gpus = 73, .type = std::nullopt, .packing = Packing::kNvlink}));
  EXPECT_FALSE(can_ever_fit(cs, {.gpus = 9, .type = h100, .packing = Packing::kNvlink}));
  EXPECT_TRUE(can_ever_fit(cs, {.gpus = 24, .type = h100, .packing = Packing::kAny}));
}

TEST(Placement, AnyPacksOntoFewNodesFillingPartlyUsedOnesFirst) {
  ClusterState cs = build(4, 0);
  const TypeIndex h100 = *cs.find_type("h100");
  cs.allocate(1, std::vector<GpuIndex>{8, 9, 10, 11, 12});  // node 1: 3 free
  auto small = place(cs, {.gpus = 3, .type = h100, .packing = Packing::kAny});
  ASSERT_TRUE(small);
  for (GpuIndex g : *small) EXPECT_EQ(cs.gpu_node(g), 1u);
  // 11 GPUs: one whole node and the last 3 on the partly used node.
  auto gang = place(cs, {.gpus = 11, .type = h100, .packing = Packing::kAny});
  ASSERT_TRUE(gang);
  std::set<NodeIndex> nodes;
  for (GpuIndex g : *gang) nodes.insert(cs.gpu_node(g));
  EXPECT_EQ(nodes.size(), 2u);
  EXPECT_TRUE(nodes.contains(1u));
  EXPECT_FALSE(place(cs, {.gpus = 28, .type = h100, .packing = Packing::kAny}));
  EXPECT_TRUE(place(cs, {.gpus = 27, .type = h100, .packing = Packing::kAny}));
}

TEST(Placement, RackAndBlockStayInside) {
  ClusterState cs = build(12, 0);  // 3 racks of 4 nodes, one block
  auto rack = place(cs, {.gpus = 20, .type = std::nullopt, .packing = Packing::kRack});
  ASSERT_TRUE(rack);
  std::set<GroupIndex> racks;
  for (GpuIndex g : *rack) racks.insert(cs.gpu_group(g, Level::kRack));
  EXPECT_EQ(racks.size(), 1u);
  EXPECT_FALSE(can_ever_fit(cs, {.gpus = 33, .type = std::nullopt, .packing = Packing::kRack}));
  EXPECT_TRUE(can_ever_fit(cs, {.gpus = 96, .type = std::nullopt, .packing = Packing::kBlock}));
}

}  // namespace
}  // namespace headroom::sched
