// The Scheduler's preemption: the index of preemptible spot jobs and the
// choice of victims (see "Preemption" in scheduler.h).
//
// The index holds the running spot jobs that are not on a reservation's GPUs
// and have no notice yet. Per GPU type, a list per gang size (most recently
// started first) with a bitset of the sizes present, so "the largest job of
// at most n GPUs" and "the smallest of at least n" are bit searches; per
// group of each level, the count of their GPUs there, so the groups that
// could hold a gang are found without looking at any job.
#include <algorithm>
#include <bit>

#include "common/check.h"
#include "sched/placement.h"
#include "sched/scheduler.h"

namespace headroom::sched {

namespace {

std::uint32_t min_size_at_least(const std::vector<std::uint64_t>& bits, std::uint32_t at_least) {
  if (at_least == 0) at_least = 1;
  std::size_t word = at_least / 64;
  if (word >= bits.size()) return 0;
  std::uint64_t b = bits[word] & (~std::uint64_t{0} << (at_least % 64));
  while (true) {
    if (b != 0) return static_cast<std::uint32_t>(word * 64 + std::countr_zero(b));
    if (++word == bits.size()) return 0;
    b = bits[word];
  }
}

std::uint32_t max_size_at_most(const std::vector<std::uint64_t>& bits, std::uint32_t at_most) {
  if (at_most == 0) return 0;
  const std::uint32_t top = std::min<std::uint32_t>(at_most, static_cast<std::uint32_t>(bits.size() * 64 - 1));
  std::size_t word = top / 64;
  std::uint64_t b = bits[word] & (~std::uint64_t{0} >> (63 - top % 64));
  while (true) {
    if (b != 0) return static_cast<std::uint32_t>(word * 64 + 63 - std::countl_zero(b));
    if (word == 0) return 0;
    b = bits[--word];
  }
}

}  // namespace

void Scheduler::spot_index_add(std::uint32_t s) {
  Slot& slot = slots_[s];
  ASSERT(!slot.in_spot_index && slot.job.tier == Tier::kSpot && !slot.lent);
  SpotIndex& index = spot_index_[slot.held_type];
  const std::uint32_t size = slot.job.gpus;
  slot.spot_prev = kNoIndex;
  slot.spot_next = index.head[size];
  if (index.head[size] != kNoIndex) slots_[index.head[size]].spot_prev = s;
  index.head[size] = s;
  index.nonempty[size / 64] |= std::uint64_t{1} << (size % 64);
  slot.in_spot_index = true;
  spot_in_type_[slot.held_type] += size;
  for (GpuIndex g : slot.gpus) {
    for (std::size_t l = 0; l < kLevelCount; ++l) ++spot_in_group_[l][cluster_.gpu_group(g, Level(l))];
  }
}

void Scheduler::spot_index_remove(std::uint32_t s) {
  Slot& slot = slots_[s];
  ASSERT(slot.in_spot_index);
  SpotIndex& index = spot_index_[slot.held_type];
  const std::uint32_t size = slot.job.gpus;
  if (slot.spot_prev != kNoIndex) {
    slots_[slot.spot_prev].spot_next = slot.spot_next;
  } else {
    index.head[size] = slot.spot_next;
    if (index.head[size] == kNoIndex) index.nonempty[size / 64] &= ~(std::uint64_t{1} << (size % 64));
  }
  if (slot.spot_next != kNoIndex) slots_[slot.spot_next].spot_prev = slot.spot_prev;
  slot.spot_prev = slot.spot_next = kNoIndex;
  slot.in_spot_index = false;
  spot_in_type_[slot.held_type] -= size;
  for (GpuIndex g : slot.gpus) {
    for (std::size_t l = 0; l < kLevelCount; ++l) --spot_in_group_[l][cluster_.gpu_group(g, Level(l))];
  }
}

std::optional<Scheduler::VictimPlan> Scheduler::plan_victims(std::uint32_t gang, std::uint64_t types, Packing packing,
                                                             bool partial, std::uint32_t only_area) {
  const std::optional<Level> level = packing_level(packing);
  auto up = [&](GpuIndex g) { return cluster_.node(cluster_.gpu_node(g)).state == fleet::NodeState::kUp; };
  auto useful = [&](const Slot& v) {
    std::uint32_t n = 0;
    for (GpuIndex g : v.gpus) n += up(g);
    return n;
  };
  auto started_at = [&](std::uint32_t v) { return slots_[v].job.entered_at[static_cast<int>(JobState::kStarting)]; };
  std::optional<VictimPlan> best;
  std::optional<VictimPlan> closest;  // partial: the most GPUs when none suffices
  std::uint64_t closest_gpus = 0;

  for (std::size_t t = 0; t < cluster_.type_count(); ++t) {
    if (!(types & (std::uint64_t{1} << t))) continue;
    const TypeIndex type = static_cast<TypeIndex>(t);
    if (!level) {
      // kAny: the area is the type.
      if (only_area != kNoIndex && only_area != t) continue;
      const std::uint32_t available = cluster_.type_available(type);
      const std::uint32_t needed = available >= gang ? 0 : gang - available;
      const std::uint64_t preemptible = spot_in_type_[t];
      if (preemptible < needed && !partial) continue;
      const SpotIndex& index = spot_index_[t];
      ++plan_stamp_;
      if (plan_mark_.size() < slots_.size()) plan_mark_.resize(slots_.size(), 0);
      // Greedy: the largest job not above what is still needed; then the
      // smallest that covers the last piece.
      std::vector<std::uint32_t> greedy;
      std::uint64_t greedy_cost = 0;
      std::uint32_t remaining = needed;
      std::uint32_t limit = remaining;
      while (remaining > 0) {
        const std::uint32_t size = max_size_at_most(index.nonempty, limit);
        if (size == 0) break;
        for (std::uint32_t v = index.head[size]; v != kNoIndex && remaining >= size; v = slots_[v].spot_next) {
          const std::uint32_t u = useful(slots_[v]);
          if (u == 0) continue;
          plan_mark_[v] = plan_stamp_;
          greedy.push_back(v);
          greedy_cost += size;
          remaining -= std::min(u, remaining);
        }
        limit = std::min(remaining, size - 1);
      }
      for (std::uint32_t size = min_size_at_least(index.nonempty, remaining); remaining > 0 && size != 0;
           size = min_size_at_least(index.nonempty, size + 1)) {
        for (std::uint32_t v = index.head[size]; v != kNoIndex && remaining > 0; v = slots_[v].spot_next) {
          if (plan_mark_[v] == plan_stamp_) continue;
          const std::uint32_t u = useful(slots_[v]);
          if (u == 0) continue;
          plan_mark_[v] = plan_stamp_;
          greedy.push_back(v);
          greedy_cost += size;
          remaining -= std::min(u, remaining);
        }
      }
      // One job that covers all (the first few of the smallest sizes that could).
      std::uint32_t single = kNoIndex;
      std::uint64_t single_cost = UINT64_MAX;
      std::size_t looked = 0;
      for (std::uint32_t size = min_size_at_least(index.nonempty, needed); needed > 0 && size != 0 && looked < 64;
           size = min_size_at_least(index.nonempty, size + 1)) {
        for (std::uint32_t v = index.head[size]; v != kNoIndex && looked < 64; v = slots_[v].spot_next, ++looked) {
          if (useful(slots_[v]) >= needed) {
            single = v;
            single_cost = size;
            break;
          }
        }
        if (single != kNoIndex) break;
      }
      VictimPlan plan{.level = std::nullopt, .type = type, .area = static_cast<std::uint32_t>(t)};
      if (single != kNoIndex && (remaining > 0 || single_cost <= greedy_cost)) {
        plan.victims.assign(1, single);
        plan.cost = single_cost;
        remaining = 0;
      } else {
        plan.victims = std::move(greedy);
        plan.cost = greedy_cost;
      }
      for (std::uint32_t v : plan.victims) {
        for (GpuIndex g : slots_[v].gpus) {
          if (plan.victim_gpus.size() < gang && up(g)) plan.victim_gpus.push_back(g);
        }
      }
      const std::uint32_t from_victims = static_cast<std::uint32_t>(plan.victim_gpus.size());
      plan.free_needed = std::min(available, gang - from_victims);
      if (remaining == 0) {
        if (!best || plan.cost < best->cost) best = std::move(plan);
      } else if (partial && std::uint64_t{from_victims} + plan.free_needed > closest_gpus) {
        closest_gpus = std::uint64_t{from_victims} + plan.free_needed;
        closest = std::move(plan);
      }
      continue;
    }
    // A group level: the groups whose available GPUs and indexed spot GPUs
    // could hold the gang, fewest missing first; an area's cost is at least
    // what it misses, so the search stops at the first that cannot beat the best.
    const ClusterState::Pool& pool = cluster_.group_pool(*level, type);
    struct Area {
      std::uint32_t needed;
      GroupIndex group;
    };
    std::vector<Area> areas;
    GroupIndex closest_group = kNoIndex;
    std::uint64_t closest_reach = 0;
    for (std::uint32_t item = 0; item < pool.items.size(); ++item) {
      const GroupIndex g = pool.items[item];
      if (only_area != kNoIndex && g != only_area) continue;
      const ClusterState::Group& group = cluster_.group(*level, g);
      if (group.capacity < gang && only_area == kNoIndex) continue;
      const std::uint64_t reach = std::uint64_t{group.available} + spot_in_group_[static_cast<int>(*level)][g];
      if (reach >= gang) {
        areas.push_back(Area{group.available >= gang ? 0 : gang - group.available, g});
      } else if (partial && reach > closest_reach) {
        closest_reach = reach;
        closest_group = g;
      }
    }
    if (areas.empty() && partial && closest_group != kNoIndex && !best) {
      const ClusterState::Group& group = cluster_.group(*level, closest_group);
      areas.push_back(Area{gang - group.available, closest_group});
    }
    std::sort(areas.begin(), areas.end(), [](const Area& a, const Area& b) {
      return a.needed != b.needed ? a.needed < b.needed : a.group < b.group;
    });
    struct Candidate {
      std::uint32_t slot;
      std::uint32_t gpus_in_area;
    };
    std::vector<Candidate> candidates;
    for (const Area& area : areas) {
      if (best && area.needed >= best->cost) break;
      candidates.clear();
      JobId last = kNoJob;
      for (SliceIndex sl : cluster_.group_slices(*level, area.group)) {
        const ClusterState::Slice& slice = cluster_.slice(sl);
        if (cluster_.node(slice.node).state != fleet::NodeState::kUp) continue;
        for (GpuIndex g = slice.gpu_begin; g < slice.gpu_end; ++g) {
          const JobId holder = cluster_.holder(g);
          if (holder == kNoJob) continue;
          if (holder == last) {
            ++candidates.back().gpus_in_area;
            continue;
          }
          const std::uint32_t v = slot_of_holder(holder);
          if (v == kNoIndex || !slots_[v].in_spot_index) continue;
          last = holder;
          candidates.push_back(Candidate{v, 1});
        }
      }
      // A job split across slices appears more than once: merge.
      std::sort(candidates.begin(), candidates.end(),
                [](const Candidate& a, const Candidate& b) { return a.slot < b.slot; });
      std::size_t merged = 0;
      for (std::size_t i = 0; i < candidates.size(); ++i) {
        if (merged > 0 && candidates[merged - 1].slot == candidates[i].slot) {
          candidates[merged - 1].gpus_in_area += candidates[i].gpus_in_area;
        } else {
          candidates[merged++] = candidates[i];
        }
      }
      candidates.resize(merged);
      // Most GPUs here first, then the smallest job, then the most recently
      // started (the least work lost).
      std::sort(candidates.begin(), candidates.end(), [&](const Candidate& a, const Candidate& b) {
        if (a.gpus_in_area != b.gpus_in_area) return a.gpus_in_area > b.gpus_in_area;
        const Job& ja = slots_[a.slot].job;
        const Job& jb = slots_[b.slot].job;
        if (ja.gpus != jb.gpus) return ja.gpus < jb.gpus;
        if (started_at(a.slot) != started_at(b.slot)) return started_at(a.slot) > started_at(b.slot);
        return ja.id < jb.id;
      });
      std::uint32_t single = kNoIndex;
      std::uint64_t single_cost = UINT64_MAX;
      for (std::size_t k = 0; k < candidates.size(); ++k) {
        const std::uint32_t size = slots_[candidates[k].slot].job.gpus;
        if (candidates[k].gpus_in_area >= area.needed && size < single_cost) {
          single_cost = size;
          single = static_cast<std::uint32_t>(k);
        }
      }
      std::vector<std::uint32_t> victims;
      std::uint64_t freed = 0;
      std::uint64_t cost = 0;
      for (std::size_t k = 0; k < candidates.size() && freed < area.needed; ++k) {
        victims.push_back(static_cast<std::uint32_t>(k));
        freed += candidates[k].gpus_in_area;
        cost += slots_[candidates[k].slot].job.gpus;
      }
      const bool enough = freed >= area.needed;
      if (single != kNoIndex && single_cost <= cost) {
        victims.assign(1, single);
        cost = single_cost;
      }
      if (!enough && !(partial && !best)) continue;
      if (enough && best && cost >= best->cost) continue;
      VictimPlan plan{.level = level, .type = type, .area = area.group};
      for (std::uint32_t k : victims) {
        const std::uint32_t v = candidates[k].slot;
        plan.victims.push_back(v);
        for (GpuIndex g : slots_[v].gpus) {
          if (plan.victim_gpus.size() < gang && up(g) && cluster_.gpu_group(g, *level) == area.group) {
            plan.victim_gpus.push_back(g);
          }
        }
      }
      plan.cost = cost;
      const std::uint32_t available = cluster_.group(*level, area.group).available;
      plan.free_needed = std::min(available, gang - static_cast<std::uint32_t>(plan.victim_gpus.size()));
      if (enough) {
        best = std::move(plan);
      } else if (std::uint64_t{plan.victim_gpus.size()} + plan.free_needed > closest_gpus) {
        closest_gpus = std::uint64_t{plan.victim_gpus.size()} + plan.free_needed;
        closest = std::move(plan);
      }
    }
  }
  if (best) return best;
  if (partial && closest && closest_gpus > 0) return closest;
  return std::nullopt;
}

std::vector<GpuIndex> Scheduler::claim_available(std::optional<Level> level, std::uint32_t area, std::uint32_t count,
                                                 JobId holder) {
  std::vector<GpuIndex> claim;
  if (count == 0) return claim;
  claim.reserve(count);
  if (level) {
    for (SliceIndex sl : cluster_.group_slices(*level, area)) {
      if (claim.size() == count) break;
      if (cluster_.slice_available(sl) == 0) continue;
      append_free_gpus(cluster_, sl, count - static_cast<std::uint32_t>(claim.size()), claim);
    }
  } else {
    // Whole free slices first: they are the ones a gang of its own would want.
    const ClusterState::Pool& pool = cluster_.slice_pool(static_cast<TypeIndex>(area));
    for (std::uint32_t c = pool.buckets.max_count(); c > 0 && claim.size() < count;
         c = pool.buckets.max_count_below(c)) {
      for (std::uint32_t item = pool.buckets.first(c); item != kNoIndex && claim.size() < count;
           item = pool.buckets.next(item)) {
        append_free_gpus(cluster_, pool.items[item], count - static_cast<std::uint32_t>(claim.size()), claim);
      }
    }
  }
  CHECK(claim.size() == count) << "area " << area << " has fewer available GPUs than counted";
  cluster_.allocate(holder, claim);
  return claim;
}

bool Scheduler::try_preempt(std::uint32_t s, std::uint64_t allowed, Timestamp now, Effects& effects) {
  Slot& slot = slots_[s];
  const std::uint32_t gang = slot.job.gpus;
  const std::size_t key = failure_key(slot.type, slot.job.packing);
  if (gang >= failed_preempt_[key]) return false;
  std::optional<VictimPlan> plan = plan_victims(gang, allowed, slot.job.packing, /*partial=*/false);
  if (!plan || plan->victims.empty()) {
    failed_preempt_[key] = std::min(failed_preempt_[key], gang);
    return false;
  }
  ASSERT(slot.gpus.empty());
  slot.gpus = claim_available(plan->level, plan->area, plan->free_needed, slot.job.id);
  slot.plan = plan->victim_gpus;
  slot.plan.insert(slot.plan.end(), slot.gpus.begin(), slot.gpus.end());
  planned_.emplace_back(s, slot.job.id);
  CHECK(slot.plan.size() == gang) << "preemption plan of job " << slot.job.id << " has " << slot.plan.size()
                                  << " GPUs for a gang of " << gang;
  const Timestamp deadline = now.plus_micros(options_.grace_ms[static_cast<int>(Tier::kSpot)] * 1000);
  for (std::uint32_t v : plan->victims) notice(v, deadline, Reason::kPreemptedForHigherTier, now, effects);
  return true;
}

}  // namespace headroom::sched
