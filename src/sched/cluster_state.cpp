#include "sched/cluster_state.h"

#include <algorithm>
#include <bit>

#include "common/check.h"

namespace headroom::sched {

// ---- CountBuckets ----------------------------------------------------------

void CountBuckets::init(std::uint32_t items, std::uint32_t max_count) {
  max_ = max_count;
  count_.assign(items, 0);
  prev_.assign(items, kNoIndex);
  next_.assign(items, kNoIndex);
  head_.assign(max_count + 1, kNoIndex);
  nonempty_.assign(max_count / 64 + 1, 0);
}

void CountBuckets::unlink(std::uint32_t item) {
  const std::uint32_t c = count_[item];
  if (prev_[item] != kNoIndex) {
    next_[prev_[item]] = next_[item];
  } else {
    head_[c] = next_[item];
    if (head_[c] == kNoIndex) nonempty_[c / 64] &= ~(std::uint64_t{1} << (c % 64));
  }
  if (next_[item] != kNoIndex) prev_[next_[item]] = prev_[item];
  prev_[item] = next_[item] = kNoIndex;
}

void CountBuckets::set(std::uint32_t item, std::uint32_t count) {
  ASSERT(count <= max_);
  if (count_[item] == count) return;
  if (count_[item] != 0) unlink(item);
  count_[item] = count;
  if (count == 0) return;
  // Push front: the most recently changed item of a count comes first, which
  // keeps a gang's follow-up placements on the slices it just touched.
  next_[item] = head_[count];
  prev_[item] = kNoIndex;
  if (head_[count] != kNoIndex) prev_[head_[count]] = item;
  head_[count] = item;
  nonempty_[count / 64] |= std::uint64_t{1} << (count % 64);
}

std::uint32_t CountBuckets::min_count_at_least(std::uint32_t at_least) const {
  if (at_least == 0) at_least = 1;
  if (at_least > max_) return 0;
  std::size_t word = at_least / 64;
  std::uint64_t bits = nonempty_[word] & (~std::uint64_t{0} << (at_least % 64));
  while (true) {
    if (bits != 0) return static_cast<std::uint32_t>(word * 64 + std::countr_zero(bits));
    if (++word == nonempty_.size()) return 0;
    bits = nonempty_[word];
  }
}

std::uint32_t CountBuckets::max_count_below(std::uint32_t below) const {
  if (below <= 1) return 0;
  const std::uint32_t top = std::min(below - 1, max_);  // inclusive; count 0 never has its bit set
  std::size_t word = top / 64;
  std::uint64_t bits = nonempty_[word] & (~std::uint64_t{0} >> (63 - top % 64));
  while (true) {
    if (bits != 0) return static_cast<std::uint32_t>(word * 64 + 63 - std::countl_zero(bits));
    if (word == 0) return 0;
    bits = nonempty_[--word];
  }
}

// ---- ClusterState ----------------------------------------------------------

namespace {

std::string scoped(const fleet::Node& node, const std::string& name) {
  if (name.empty()) return "node:" + node.name;  // unknown: the node is alone in it
  return node.cluster + "/" + name;
}

}  // namespace

Result<ClusterState> ClusterState::build(const fleet::FleetSpec& fleet) {
  HR_RETURN_IF_ERROR(fleet::validate(fleet));
  ClusterState cs;
  std::unordered_map<std::string, TypeIndex> type_by_name;
  for (const fleet::GpuType& t : fleet.gpu_types) {
    type_by_name.emplace(t.name, static_cast<TypeIndex>(cs.type_names_.size()));
    cs.type_names_.push_back(t.name);
  }
  const std::size_t types = cs.type_names_.size();
  cs.type_available_.assign(types, 0);
  cs.type_capacity_.assign(types, 0);
  cs.type_up_.assign(types, 0);

  std::array<std::unordered_map<std::string, GroupIndex>, kLevelCount> group_by_key;
  std::array<std::vector<std::vector<SliceIndex>>, kLevelCount> members;
  cs.nodes_.reserve(fleet.nodes.size());
  std::vector<std::pair<TypeIndex, std::uint32_t>> order;
  for (const fleet::Node& spec : fleet.nodes) {
    const NodeIndex n = static_cast<NodeIndex>(cs.nodes_.size());
    Node node{.name = spec.name, .state = spec.state, .gpu_begin = static_cast<GpuIndex>(cs.gpu_slice_.size()),
              .gpu_end = 0, .slice_begin = static_cast<SliceIndex>(cs.slices_.size()), .slice_end = 0, .free = 0};
    order.clear();
    for (const fleet::Gpu& gpu : spec.gpus) order.emplace_back(type_by_name.at(gpu.type), gpu.index);
    std::sort(order.begin(), order.end());
    const std::array<std::string, kLevelCount> names = {spec.nvlink_domain, scoped(spec, spec.rack),
                                                        scoped(spec, spec.block)};
    for (std::size_t i = 0; i < order.size();) {
      const TypeIndex type = order[i].first;
      const SliceIndex s = static_cast<SliceIndex>(cs.slices_.size());
      Slice slice{.node = n, .type = type, .gpu_begin = static_cast<GpuIndex>(cs.gpu_slice_.size()), .gpu_end = 0,
                  .free = 0, .local = 0, .group = {}};
      for (; i < order.size() && order[i].first == type; ++i) {
        cs.gpu_slice_.push_back(s);
        cs.gpu_index_on_node_.push_back(order[i].second);
        cs.gpu_holder_.push_back(kNoJob);
        ++slice.free;
      }
      slice.gpu_end = static_cast<GpuIndex>(cs.gpu_slice_.size());
      for (std::size_t level = 0; level < kLevelCount; ++level) {
        std::string key = names[level];
        key += '\0';
        key += cs.type_names_[type];
        auto [it, inserted] = group_by_key[level].emplace(key, static_cast<GroupIndex>(cs.groups_[level].size()));
        if (inserted) {
          cs.groups_[level].push_back(Group{.type = type, .capacity = 0, .available = 0, .local = 0,
                                            .slice_begin = 0, .slice_end = 0, .name = names[level]});
          members[level].emplace_back();
        }
        slice.group[level] = it->second;
        cs.groups_[level][it->second].capacity += slice.free;
        members[level][it->second].push_back(s);
      }
      node.free += slice.free;
      cs.type_capacity_[type] += slice.free;
      cs.slices_.push_back(slice);
    }
    node.gpu_end = static_cast<GpuIndex>(cs.gpu_slice_.size());
    node.slice_end = static_cast<SliceIndex>(cs.slices_.size());
    cs.node_by_name_.emplace(spec.name, n);
    cs.nodes_.push_back(std::move(node));
  }

  // Slice pools, per type.
  cs.slice_pools_.resize(types);
  std::vector<std::uint32_t> max_slice(types, 0);
  for (SliceIndex s = 0; s < cs.slices_.size(); ++s) {
    Slice& slice = cs.slices_[s];
    slice.local = static_cast<std::uint32_t>(cs.slice_pools_[slice.type].items.size());
    cs.slice_pools_[slice.type].items.push_back(s);
    max_slice[slice.type] = std::max(max_slice[slice.type], slice.free);
  }
  for (std::size_t t = 0; t < types; ++t) {
    cs.slice_pools_[t].buckets.init(static_cast<std::uint32_t>(cs.slice_pools_[t].items.size()), max_slice[t]);
  }
  // Group pools, per level and type, and the flattened member lists.
  for (std::size_t level = 0; level < kLevelCount; ++level) {
    cs.group_pools_[level].resize(types);
    cs.max_group_capacity_[level].assign(types, 0);
    for (GroupIndex g = 0; g < cs.groups_[level].size(); ++g) {
      Group& group = cs.groups_[level][g];
      group.local = static_cast<std::uint32_t>(cs.group_pools_[level][group.type].items.size());
      cs.group_pools_[level][group.type].items.push_back(g);
      cs.max_group_capacity_[level][group.type] = std::max(cs.max_group_capacity_[level][group.type], group.capacity);
      group.slice_begin = static_cast<std::uint32_t>(cs.group_slices_[level].size());
      cs.group_slices_[level].insert(cs.group_slices_[level].end(), members[level][g].begin(), members[level][g].end());
      group.slice_end = static_cast<std::uint32_t>(cs.group_slices_[level].size());
    }
    for (std::size_t t = 0; t < types; ++t) {
      Pool& pool = cs.group_pools_[level][t];
      pool.buckets.init(static_cast<std::uint32_t>(pool.items.size()), cs.max_group_capacity_[level][t]);
    }
  }
  // Everything starts free; count what is available on up nodes.
  for (SliceIndex s = 0; s < cs.slices_.size(); ++s) {
    if (cs.nodes_[cs.slices_[s].node].state == fleet::NodeState::kUp) {
      cs.adjust_available(s, cs.slices_[s].free);
      cs.type_up_[cs.slices_[s].type] += cs.slices_[s].gpu_end - cs.slices_[s].gpu_begin;
    }
  }
  return cs;
}

std::optional<NodeIndex> ClusterState::find_node(std::string_view name) const {
  auto it = node_by_name_.find(std::string(name));
  if (it == node_by_name_.end()) return std::nullopt;
  return it->second;
}

std::optional<GpuIndex> ClusterState::find_gpu(std::string_view node, std::uint32_t index_on_node) const {
  const std::optional<NodeIndex> n = find_node(node);
  if (!n) return std::nullopt;
  for (GpuIndex g = nodes_[*n].gpu_begin; g < nodes_[*n].gpu_end; ++g) {
    if (gpu_index_on_node_[g] == index_on_node) return g;
  }
  return std::nullopt;
}

std::optional<TypeIndex> ClusterState::find_type(std::string_view name) const {
  for (std::size_t t = 0; t < type_names_.size(); ++t) {
    if (type_names_[t] == name) return static_cast<TypeIndex>(t);
  }
  return std::nullopt;
}

std::span<const SliceIndex> ClusterState::group_slices(Level level, GroupIndex g) const {
  const Group& group = groups_[static_cast<int>(level)][g];
  return std::span<const SliceIndex>(group_slices_[static_cast<int>(level)]).subspan(
      group.slice_begin, group.slice_end - group.slice_begin);
}

std::uint32_t ClusterState::held_by(JobId job) const {
  auto it = job_gpus_.find(job);
  return it == job_gpus_.end() ? 0 : it->second;
}

// Moves a slice's available count by `delta` everywhere it is counted: its
// type's slice buckets, its groups and their buckets, the type and the fleet.
void ClusterState::adjust_available(SliceIndex s, std::int64_t delta) {
  const Slice& slice = slices_[s];
  const std::uint32_t now_available =
      static_cast<std::uint32_t>(static_cast<std::int64_t>(slice_pools_[slice.type].buckets.count(slice.local)) + delta);
  slice_pools_[slice.type].buckets.set(slice.local, now_available);
  for (std::size_t level = 0; level < kLevelCount; ++level) {
    Group& group = groups_[level][slice.group[level]];
    group.available = static_cast<std::uint32_t>(group.available + delta);
    ASSERT(group.available <= group.capacity);
    group_pools_[level][slice.type].buckets.set(group.local, group.available);
  }
  type_available_[slice.type] = static_cast<std::uint32_t>(type_available_[slice.type] + delta);
  available_ = static_cast<std::uint32_t>(available_ + delta);
}

void ClusterState::allocate(JobId job, std::span<const GpuIndex> gpus) {
  CHECK(job != kNoJob) << "allocate to no job";
  CHECK(!gpus.empty()) << "job " << job << ": allocate of no GPUs";
  for (GpuIndex g : gpus) {
    CHECK(g < gpu_slice_.size()) << "job " << job << ": gpu " << g << " out of range";
    CHECK(gpu_holder_[g] == kNoJob) << "gpu " << g << " given to job " << job << " is held by job " << gpu_holder_[g];
    const SliceIndex s = gpu_slice_[g];
    Node& node = nodes_[slices_[s].node];
    CHECK(node.state == fleet::NodeState::kUp) << "gpu " << g << " given to job " << job << " is on node "
                                                 << node.name << " which is " << fleet::node_state_name(node.state);
    gpu_holder_[g] = job;  // a GPU listed twice fails the CHECK above on its second visit
    --slices_[s].free;
    --node.free;
    adjust_available(s, -1);
  }
  job_gpus_[job] += static_cast<std::uint32_t>(gpus.size());
}

void ClusterState::release(JobId job, std::span<const GpuIndex> gpus) {
  auto it = job_gpus_.find(job);
  CHECK(it != job_gpus_.end()) << "release by job " << job << " which holds no GPUs";
  CHECK(it->second == gpus.size()) << "job " << job << " releases " << gpus.size() << " GPUs but holds "
                                   << it->second;
  for (GpuIndex g : gpus) {
    CHECK(g < gpu_slice_.size()) << "job " << job << ": gpu " << g << " out of range";
    CHECK(gpu_holder_[g] == job) << "job " << job << " releases gpu " << g << " held by job " << gpu_holder_[g];
    gpu_holder_[g] = kNoJob;  // listed twice: the CHECK above fails on its second visit
    const SliceIndex s = gpu_slice_[g];
    Node& node = nodes_[slices_[s].node];
    ++slices_[s].free;
    ++node.free;
    if (node.state == fleet::NodeState::kUp) adjust_available(s, +1);
  }
  job_gpus_.erase(it);
}

void ClusterState::release_part(JobId job, std::span<const GpuIndex> gpus) {
  if (gpus.empty()) return;
  auto it = job_gpus_.find(job);
  CHECK(it != job_gpus_.end()) << "release by job " << job << " which holds no GPUs";
  CHECK(it->second >= gpus.size()) << "job " << job << " releases " << gpus.size() << " GPUs but holds " << it->second;
  for (GpuIndex g : gpus) {
    CHECK(g < gpu_slice_.size()) << "job " << job << ": gpu " << g << " out of range";
    CHECK(gpu_holder_[g] == job) << "job " << job << " releases gpu " << g << " held by job " << gpu_holder_[g];
    gpu_holder_[g] = kNoJob;
    const SliceIndex s = gpu_slice_[g];
    Node& node = nodes_[slices_[s].node];
    ++slices_[s].free;
    ++node.free;
    if (node.state == fleet::NodeState::kUp) adjust_available(s, +1);
  }
  it->second -= static_cast<std::uint32_t>(gpus.size());
  if (it->second == 0) job_gpus_.erase(it);
}

void ClusterState::transfer(JobId from, JobId to, std::span<const GpuIndex> gpus) {
  if (gpus.empty()) return;
  CHECK(to != kNoJob && to != from) << "transfer from job " << from << " to job " << to;
  auto it = job_gpus_.find(from);
  CHECK(it != job_gpus_.end() && it->second >= gpus.size())
      << "job " << from << " hands over " << gpus.size() << " GPUs but holds " << held_by(from);
  for (GpuIndex g : gpus) {
    CHECK(g < gpu_slice_.size()) << "job " << from << ": gpu " << g << " out of range";
    CHECK(gpu_holder_[g] == from) << "job " << from << " hands over gpu " << g << " held by job " << gpu_holder_[g];
    gpu_holder_[g] = to;  // listed twice: the CHECK above fails on its second visit
  }
  it->second -= static_cast<std::uint32_t>(gpus.size());
  if (it->second == 0) job_gpus_.erase(it);
  job_gpus_[to] += static_cast<std::uint32_t>(gpus.size());
}

void ClusterState::set_node_state(NodeIndex n, fleet::NodeState state) {
  Node& node = nodes_[n];
  const bool was_up = node.state == fleet::NodeState::kUp;
  const bool is_up = state == fleet::NodeState::kUp;
  node.state = state;
  if (was_up == is_up) return;
  for (SliceIndex s = node.slice_begin; s < node.slice_end; ++s) {
    const std::int64_t free = slices_[s].free;
    adjust_available(s, is_up ? free : -free);
    const std::uint32_t gpus = slices_[s].gpu_end - slices_[s].gpu_begin;
    type_up_[slices_[s].type] = is_up ? type_up_[slices_[s].type] + gpus : type_up_[slices_[s].type] - gpus;
  }
}

}  // namespace headroom::sched
