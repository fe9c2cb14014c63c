#include "sched/placement.h"

#include <algorithm>
#include <utility>

#include "common/check.h"

namespace headroom::sched {

namespace {

// A plan: the slices to take GPUs from and how many from each.
struct Pick {
  std::vector<std::pair<SliceIndex, std::uint32_t>> takes;
  std::uint32_t last_slack = 0;  // available GPUs left on the slice of the last piece
};

// kAny within one type, on the type's slice buckets.
bool pick_any(const ClusterState& state, TypeIndex type, std::uint32_t gpus, Pick& pick) {
  if (state.type_available(type) < gpus) return false;
  const CountBuckets& buckets = state.slice_pool(type).buckets;
  const auto& items = state.slice_pool(type).items;
  std::uint32_t remaining = gpus;
  std::uint32_t count = buckets.max_count();
  while (remaining > 0) {
    CHECK(count > 0) << "slice buckets disagree with the type's available count";
    for (std::uint32_t item = buckets.first(count); item != kNoIndex && remaining > 0; item = buckets.next(item)) {
      if (count >= remaining) {
        // The last piece: the fullest slice that holds it. Slices already
        // taken all have `count` or more, so a smaller bucket is untouched.
        const std::uint32_t best = buckets.min_count_at_least(remaining);
        const std::uint32_t chosen = best < count ? buckets.first(best) : item;
        pick.takes.emplace_back(items[chosen], remaining);
        pick.last_slack = std::min(best, count) - remaining;
        remaining = 0;
      } else {
        pick.takes.emplace_back(items[item], count);
        remaining -= count;
      }
    }
    count = buckets.max_count_below(count);
  }
  return true;
}

// Within one group: the same policy over the group's slices.
void pick_in_group(const ClusterState& state, Level level, GroupIndex group, std::uint32_t gpus, Pick& pick) {
  std::vector<std::pair<std::uint32_t, SliceIndex>> slices;
  for (SliceIndex s : state.group_slices(level, group)) {
    const std::uint32_t available = state.slice_available(s);
    if (available > 0) slices.emplace_back(available, s);
  }
  std::sort(slices.begin(), slices.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::uint32_t remaining = gpus;
  for (std::size_t i = 0; i < slices.size() && remaining > 0; ++i) {
    if (slices[i].first >= remaining) {
      std::size_t j = i;
      while (j + 1 < slices.size() && slices[j + 1].first >= remaining) ++j;
      pick.takes.emplace_back(slices[j].second, remaining);
      pick.last_slack = slices[j].first - remaining;
      remaining = 0;
    } else {
      pick.takes.emplace_back(slices[i].second, slices[i].first);
      remaining -= slices[i].first;
    }
  }
  CHECK(remaining == 0) << "group " << state.group(level, group).name << " has fewer GPUs than its count";
}

std::vector<GpuIndex> materialise(const ClusterState& state, const Pick& pick, std::uint32_t gpus) {
  std::vector<GpuIndex> out;
  out.reserve(gpus);
  for (const auto& [slice, count] : pick.takes) append_free_gpus(state, slice, count, out);
  CHECK(out.size() == gpus) << "placement found " << out.size() << " of " << gpus << " GPUs";
  return out;
}

}  // namespace

std::optional<Level> packing_level(Packing packing) {
  switch (packing) {
    case Packing::kNvlink: return Level::kNvlink;
    case Packing::kRack: return Level::kRack;
    case Packing::kBlock: return Level::kBlock;
    case Packing::kAny: return std::nullopt;
  }
  return std::nullopt;
}

void append_free_gpus(const ClusterState& state, SliceIndex s, std::uint32_t count, std::vector<GpuIndex>& out) {
  const ClusterState::Slice& slice = state.slice(s);
  for (GpuIndex g = slice.gpu_begin; g < slice.gpu_end && count > 0; ++g) {
    if (state.holder(g) == kNoJob) {
      out.push_back(g);
      --count;
    }
  }
}

std::optional<std::vector<GpuIndex>> place(const ClusterState& state, const PlacementRequest& request) {
  if (request.gpus == 0 || request.gpus > state.available()) return std::nullopt;
  const std::size_t first_type = request.type ? *request.type : 0;
  const std::size_t end_type = request.type ? *request.type + 1u : state.type_count();
  const std::optional<Level> level = packing_level(request.packing);
  if (level) {
    // The tightest group over the allowed types.
    std::uint32_t best_count = 0;
    GroupIndex best_group = kNoIndex;
    for (std::size_t t = first_type; t < end_type; ++t) {
      const ClusterState::Pool& pool = state.group_pool(*level, static_cast<TypeIndex>(t));
      const std::uint32_t count = pool.buckets.min_count_at_least(request.gpus);
      if (count != 0 && (best_group == kNoIndex || count < best_count)) {
        best_count = count;
        best_group = pool.items[pool.buckets.first(count)];
      }
    }
    if (best_group == kNoIndex) return std::nullopt;
    Pick pick;
    pick_in_group(state, *level, best_group, request.gpus, pick);
    return materialise(state, pick, request.gpus);
  }
  // kAny: fewest slices, then the least slack left where the last piece went.
  std::optional<Pick> best;
  for (std::size_t t = first_type; t < end_type; ++t) {
    Pick pick;
    if (!pick_any(state, static_cast<TypeIndex>(t), request.gpus, pick)) continue;
    if (!best || pick.takes.size() < best->takes.size() ||
        (pick.takes.size() == best->takes.size() && pick.last_slack < best->last_slack)) {
      best = std::move(pick);
    }
  }
  if (!best) return std::nullopt;
  return materialise(state, *best, request.gpus);
}

std::optional<std::vector<GpuIndex>> place_within(const ClusterState& state, std::span<const GpuIndex> candidates,
                                                  std::uint32_t gpus, Packing packing) {
  if (gpus == 0 || candidates.size() < gpus) return std::nullopt;
  const std::optional<Level> level = packing_level(packing);
  struct Entry {
    std::uint32_t group;
    NodeIndex node;
    GpuIndex gpu;
    auto operator<=>(const Entry&) const = default;
  };
  std::vector<Entry> entries;
  entries.reserve(candidates.size());
  for (GpuIndex g : candidates) {
    entries.push_back(Entry{level ? state.gpu_group(g, *level) : 0u, state.gpu_node(g), g});
  }
  std::sort(entries.begin(), entries.end());
  // The group with the fewest candidates that still holds the gang.
  std::size_t best_begin = 0, best_end = 0;
  for (std::size_t i = 0; i < entries.size();) {
    std::size_t j = i;
    while (j < entries.size() && entries[j].group == entries[i].group) ++j;
    if (j - i >= gpus && (best_end == best_begin || j - i < best_end - best_begin)) {
      best_begin = i;
      best_end = j;
    }
    i = j;
  }
  if (best_end == best_begin) return std::nullopt;
  // Its nodes, fullest first.
  struct NodeRun {
    std::uint32_t count;
    std::size_t begin;
  };
  std::vector<NodeRun> nodes;
  for (std::size_t i = best_begin; i < best_end;) {
    std::size_t j = i;
    while (j < best_end && entries[j].node == entries[i].node) ++j;
    nodes.push_back(NodeRun{static_cast<std::uint32_t>(j - i), i});
    i = j;
  }
  std::stable_sort(nodes.begin(), nodes.end(), [](const NodeRun& a, const NodeRun& b) { return a.count > b.count; });
  std::vector<GpuIndex> out;
  out.reserve(gpus);
  std::uint32_t remaining = gpus;
  for (std::size_t i = 0; i < nodes.size() && remaining > 0; ++i) {
    std::size_t k = i;
    if (nodes[i].count >= remaining) {
      while (k + 1 < nodes.size() && nodes[k + 1].count >= remaining) ++k;  // the tightest node that holds the rest
    }
    const std::uint32_t take = std::min(remaining, nodes[k].count);
    for (std::uint32_t n = 0; n < take; ++n) out.push_back(entries[nodes[k].begin + n].gpu);
    remaining -= take;
  }
  CHECK(remaining == 0) << "place_within counted " << best_end - best_begin << " candidates but found fewer";
  return out;
}

bool can_ever_fit(const ClusterState& state, const PlacementRequest& request) {
  if (request.gpus == 0) return false;
  const std::size_t first_type = request.type ? *request.type : 0;
  const std::size_t end_type = request.type ? *request.type + 1u : state.type_count();
  const std::optional<Level> level = packing_level(request.packing);
  for (std::size_t t = first_type; t < end_type; ++t) {
    const TypeIndex type = static_cast<TypeIndex>(t);
    const std::uint32_t room = level ? state.max_group_capacity(*level, type) : state.type_capacity(type);
    if (room >= request.gpus) return true;
  }
  return false;
}

}  // namespace headroom::sched
