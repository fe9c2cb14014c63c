// Topology-aware best fit for a gang: pure functions over a ClusterState.
//
//   - kNvlink / kRack / kBlock: the fullest group (NVLink domain, rack, block)
//     of the type whose available GPUs still hold the whole gang. Best fit
//     keeps big, empty groups whole for the big gangs that need them. Inside
//     the group, the GPUs are packed onto as few nodes as possible.
//   - kAny: as few nodes as possible, filling partly used nodes first: the
//     fullest single node that holds the gang; else the emptiest nodes in
//     turn, with the last piece again on the fullest node that holds it.
//   - gpu type "any": every type is tried, the tightest fit wins; a gang is
//     always of one type.
//
// Cost: a search of the count buckets (O(largest group / 64)) and O(gang)
// to list the GPUs; a group-level gang also sorts its group's slices. No
// scan of the fleet. The ClusterState is only read; the caller allocates.
// Not thread-safe beyond that: call from the thread that owns the state.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "sched/cluster_state.h"
#include "sched/job.h"

namespace headroom::sched {

struct PlacementRequest {
  std::uint32_t gpus = 1;
  std::optional<TypeIndex> type;  // nullopt: any type (one per gang)
  Packing packing = Packing::kAny;
};

// The Level a packing confines a gang to; kAny has none.
std::optional<Level> packing_level(Packing packing);

// The GPUs chosen (exactly request.gpus of them, all available, all of one
// type, meeting the packing), or nullopt when the gang does not fit now.
std::optional<std::vector<GpuIndex>> place(const ClusterState& state, const PlacementRequest& request);

// Whether the gang could fit the fleet at all, were every GPU free and every
// node up. A request for which this is false can never run.
bool can_ever_fit(const ClusterState& state, const PlacementRequest& request);

// Best fit among `candidates`, GPUs of one type that the caller may hand out
// (a reservation's idle GPUs, a backfill head's claim), whoever holds them:
// the group of the packing's level with the fewest candidates that still
// holds the gang (kAny: all candidates), and inside it as few nodes as
// possible, fullest first, the last piece on the node with the fewest
// candidates that holds it. nullopt when no group holds the gang.
// O(candidates log candidates).
std::optional<std::vector<GpuIndex>> place_within(const ClusterState& state, std::span<const GpuIndex> candidates,
                                                  std::uint32_t gpus, Packing packing);

// Appends up to `count` free GPUs of slice `s` to `out`, in index order.
void append_free_gpus(const ClusterState& state, SliceIndex s, std::uint32_t count, std::vector<GpuIndex>& out);

}  // namespace headroom::sched
