// ClusterState: the live capacity index of a fleet, built once from a
// validated fleet::FleetSpec and then changed only by allocate(), release()
// and set_node_state().
//
// Layout (data-oriented: flat vectors and integer indices, nothing allocated
// per GPU, so a 100,000-GPU fleet costs a few MB):
//   - GpuIndex: dense over the fleet. A node's GPUs are contiguous, sorted by
//     type then by their index on the node.
//   - A slice is the GPUs of one type on one node (a node with one type is one
//     slice). Placement works on slices, so a node that mixes types is fine.
//   - A group is the GPUs of one type in one NVLink domain, rack or block
//     (Level). Racks and blocks are scoped to their cluster; a node whose rack
//     or block is unknown (empty) is its own rack or block, since the only
//     thing known about it is that it shares one with itself.
//   - "free" means held by no job; "available" means free on an up node, the
//     only GPUs that take new placements. Per type, the slices and the groups
//     of each level sit in count buckets keyed by their available count, so
//     best fit ("the fullest one that still fits") is a bitset search, not a
//     scan of the fleet.
//
// Invariants, checked always (CHECK), since they protect capacity: a GPU is
// held by at most one job; allocate() takes only available GPUs; release()
// gives back exactly the GPUs the job holds, all of them; release_part() and
// transfer() move only GPUs the job holds.
//
// A holder is a JobId: a job, or a stand-in the scheduler uses for GPUs that
// are set aside but idle (a reservation's). ClusterState does not tell them
// apart.
//
// Not thread-safe: one thread (the scheduler's) drives it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "fleet/fleet.h"
#include "sched/job.h"

namespace headroom::sched {

using GpuIndex = std::uint32_t;
using NodeIndex = std::uint32_t;
using SliceIndex = std::uint32_t;
using GroupIndex = std::uint32_t;
using TypeIndex = std::uint16_t;
inline constexpr std::uint32_t kNoIndex = UINT32_MAX;

// The levels of topology a gang may be confined to.
enum class Level : std::uint8_t { kNvlink, kRack, kBlock };
inline constexpr std::size_t kLevelCount = 3;

// Items 0..n-1, each with a count in [0, max]; items with a nonzero count sit
// in a doubly linked list per count, and a bitset marks the nonempty counts.
// Every update is O(1); the searches are O(max / 64).
class CountBuckets {
 public:
  void init(std::uint32_t items, std::uint32_t max_count);
  void set(std::uint32_t item, std::uint32_t count);
  std::uint32_t count(std::uint32_t item) const { return count_[item]; }
  // The smallest nonempty count >= at_least (at_least >= 1), or 0 when none.
  std::uint32_t min_count_at_least(std::uint32_t at_least) const;
  // The largest nonempty count below `below`, or 0 when none.
  std::uint32_t max_count_below(std::uint32_t below) const;
  std::uint32_t max_count() const { return max_count_below(max_ + 1); }
  std::uint32_t first(std::uint32_t count) const { return head_[count]; }  // kNoIndex when empty
  std::uint32_t next(std::uint32_t item) const { return next_[item]; }     // kNoIndex at the end

 private:
  void unlink(std::uint32_t item);
  std::uint32_t max_ = 0;
  std::vector<std::uint32_t> count_, prev_, next_, head_;
  std::vector<std::uint64_t> nonempty_;
};

class ClusterState {
 public:
  struct Slice {
    NodeIndex node;
    TypeIndex type;
    GpuIndex gpu_begin, gpu_end;
    std::uint32_t free;                          // held by no job, whatever the node's state
    std::uint32_t local;                         // its item in its type's slice buckets
    std::array<GroupIndex, kLevelCount> group;  // its NVLink domain, rack and block
  };
  struct Group {
    TypeIndex type;
    std::uint32_t capacity;   // GPUs
    std::uint32_t available;  // free on up nodes
    std::uint32_t local;      // its item in its (level, type) buckets
    std::uint32_t slice_begin, slice_end;  // into group_slices()
    std::string name;         // "domain", "cluster/rack" or "cluster/block"
  };
  struct Node {
    std::string name;
    fleet::NodeState state;
    GpuIndex gpu_begin, gpu_end;
    SliceIndex slice_begin, slice_end;
    std::uint32_t free;
  };
  // The slices (or groups) of one type, bucketed by available count.
  struct Pool {
    CountBuckets buckets;
    std::vector<std::uint32_t> items;  // local item -> slice or group index
  };

  // Validates the fleet (fleet::validate) and indexes it.
  static Result<ClusterState> build(const fleet::FleetSpec& fleet);

  std::size_t gpu_count() const { return gpu_slice_.size(); }
  std::size_t node_count() const { return nodes_.size(); }
  std::size_t type_count() const { return type_names_.size(); }

  // Per GPU.
  NodeIndex gpu_node(GpuIndex g) const { return slices_[gpu_slice_[g]].node; }
  TypeIndex gpu_type(GpuIndex g) const { return slices_[gpu_slice_[g]].type; }
  SliceIndex gpu_slice(GpuIndex g) const { return gpu_slice_[g]; }
  GroupIndex gpu_group(GpuIndex g, Level level) const { return slices_[gpu_slice_[g]].group[static_cast<int>(level)]; }
  std::uint32_t gpu_index_on_node(GpuIndex g) const { return gpu_index_on_node_[g]; }  // for CUDA_VISIBLE_DEVICES
  JobId holder(GpuIndex g) const { return gpu_holder_[g]; }
  bool is_available(GpuIndex g) const {
    return gpu_holder_[g] == kNoJob && nodes_[gpu_node(g)].state == fleet::NodeState::kUp;
  }

  // Per node, slice, group and type.
  const Node& node(NodeIndex n) const { return nodes_[n]; }
  std::optional<NodeIndex> find_node(std::string_view name) const;
  // The GPU with this index (as CUDA numbers it) on the named node, or nullopt.
  std::optional<GpuIndex> find_gpu(std::string_view node, std::uint32_t index_on_node) const;
  const Slice& slice(SliceIndex s) const { return slices_[s]; }
  std::uint32_t slice_available(SliceIndex s) const {
    return nodes_[slices_[s].node].state == fleet::NodeState::kUp ? slices_[s].free : 0;
  }
  std::size_t group_count(Level level) const { return groups_[static_cast<int>(level)].size(); }
  const Group& group(Level level, GroupIndex g) const { return groups_[static_cast<int>(level)][g]; }
  std::span<const SliceIndex> group_slices(Level level, GroupIndex g) const;
  const std::string& type_name(TypeIndex t) const { return type_names_[t]; }
  std::optional<TypeIndex> find_type(std::string_view name) const;
  std::uint32_t type_available(TypeIndex t) const { return type_available_[t]; }
  std::uint32_t type_capacity(TypeIndex t) const { return type_capacity_[t]; }
  // GPUs of the type on up nodes, held or not.
  std::uint32_t type_up(TypeIndex t) const { return type_up_[t]; }
  // The largest group of a level and type, in GPUs: a gang above it never fits.
  std::uint32_t max_group_capacity(Level level, TypeIndex t) const {
    return max_group_capacity_[static_cast<int>(level)][t];
  }
  const Pool& slice_pool(TypeIndex t) const { return slice_pools_[t]; }
  const Pool& group_pool(Level level, TypeIndex t) const { return group_pools_[static_cast<int>(level)][t]; }
  std::uint32_t available() const { return available_; }
  std::size_t jobs_holding() const { return job_gpus_.size(); }
  std::uint32_t held_by(JobId job) const;  // GPUs the job holds; 0 for none

  // Gives `gpus` to `job` (adding to what it holds already). CHECKs each GPU
  // is available and listed once.
  void allocate(JobId job, std::span<const GpuIndex> gpus);
  // Takes back all the GPUs `job` holds. CHECKs `gpus` is exactly that set.
  void release(JobId job, std::span<const GpuIndex> gpus);
  // Takes back some of the GPUs `job` holds. CHECKs each is held by `job`.
  void release_part(JobId job, std::span<const GpuIndex> gpus);
  // Hands GPUs held by `from` to `to` (`to` may hold others already). They
  // stay held, so nothing becomes available; the node's state does not
  // matter. CHECKs each is held by `from` and listed once.
  void transfer(JobId from, JobId to, std::span<const GpuIndex> gpus);
  // Only kUp nodes take new placements; what runs elsewhere keeps its GPUs
  // until released (the scheduler releases the GPUs of jobs on a down node).
  void set_node_state(NodeIndex n, fleet::NodeState state);

 private:
  void adjust_available(SliceIndex s, std::int64_t delta);

  std::vector<std::string> type_names_;
  std::vector<std::uint32_t> type_available_, type_capacity_, type_up_;
  std::vector<Node> nodes_;
  std::unordered_map<std::string, NodeIndex> node_by_name_;
  std::vector<Slice> slices_;
  std::array<std::vector<Group>, kLevelCount> groups_;
  std::array<std::vector<SliceIndex>, kLevelCount> group_slices_;
  std::array<std::vector<std::uint32_t>, kLevelCount> max_group_capacity_;  // [level][type]
  std::vector<Pool> slice_pools_;                                            // [type]
  std::array<std::vector<Pool>, kLevelCount> group_pools_;                   // [level][type]
  std::vector<SliceIndex> gpu_slice_;
  std::vector<std::uint32_t> gpu_index_on_node_;
  std::vector<JobId> gpu_holder_;
  std::unordered_map<JobId, std::uint32_t> job_gpus_;  // GPUs held, per job holding any
  std::uint32_t available_ = 0;
};

}  // namespace headroom::sched
