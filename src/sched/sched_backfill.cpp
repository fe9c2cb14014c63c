// The Scheduler's backfill: one head per GPU type, its shadow time, its
// claim and the jobs promised to it (see "Backfill" in scheduler.h).
//
// Invariant while a job is its type's head: the GPUs it claims plus those
// promised to it (the running jobs whose GPUs in its area join its claim
// when they stop) cover its gang. A promise ends when the job stops (its
// GPUs pass to the head), gets a notice (its GPUs belong to whoever
// preempted it, or to nobody) or the head goes; a head that falls short
// plans again at its next turn.
#include <algorithm>

#include "common/check.h"
#include "sched/placement.h"
#include "sched/scheduler.h"

namespace headroom::sched {

struct Scheduler::ShadowPlan {
  std::optional<Level> level;
  std::uint32_t area = 0;
  std::int64_t shadow_us = 0;
  std::uint32_t claim = 0;                                        // available GPUs of the area to claim now
  std::vector<std::pair<std::uint32_t, std::uint32_t>> promised;  // (slot, its GPUs in the area)
};

namespace {

// A job that is not its type's head may retry becoming one after this many
// ticks without a shadow time, or at once when a node changes state.
constexpr std::uint64_t kNoShadowRetryTicks = 64;

}  // namespace

bool Scheduler::in_area(GpuIndex g, std::optional<Level> level, std::uint32_t area) const {
  return level ? cluster_.gpu_group(g, *level) == area : cluster_.gpu_type(g) == area;
}

std::uint32_t Scheduler::area_available(std::optional<Level> level, std::uint32_t area) const {
  return level ? cluster_.group(*level, area).available : cluster_.type_available(static_cast<TypeIndex>(area));
}

std::optional<BackfillHead> Scheduler::backfill_head(TypeIndex type) const {
  if (type >= heads_.size() || heads_[type].slot == kNoIndex) return std::nullopt;
  const Head& h = heads_[type];
  const Slot& slot = slots_[h.slot];
  return BackfillHead{.job = slot.job.id,
                      .shadow = h.shadow,
                      .claimed = static_cast<std::uint32_t>(slot.gpus.size()),
                      .promised = h.promised_gpus};
}

bool Scheduler::drop_head(TypeIndex type, bool release_claim) {
  Head& h = heads_[type];
  if (h.slot == kNoIndex) return false;
  const std::uint32_t s = h.slot;
  for (const auto& [v, id] : h.promised) {
    Slot& promised = slots_[v];
    if (promised.in_use && promised.job.id == id && promised.promised_to == s) {
      promised.promised_to = kNoIndex;
      promised.promised_gpus = 0;
    }
  }
  h = Head{};
  Slot& slot = slots_[s];
  slot.head = false;
  if (!release_claim || slot.gpus.empty()) return false;
  give_back(s, slot.gpus);
  slot.gpus.clear();
  return true;
}

void Scheduler::unpromise(std::uint32_t s) {
  Slot& slot = slots_[s];
  if (slot.promised_to == kNoIndex) return;
  Head& h = heads_[slot.held_type];
  if (h.slot == slot.promised_to) h.promised_gpus -= std::min(h.promised_gpus, slot.promised_gpus);
  slot.promised_to = kNoIndex;
  slot.promised_gpus = 0;
}

// The head's turn: it starts when its claim is whole (topped up from the
// area when that completes it) or when it fits elsewhere now. False when it
// is no longer the head (its plan fell short, or it may not use the type).
bool Scheduler::visit_head(std::uint32_t s, std::uint64_t allowed, Timestamp now, Effects& effects) {
  Slot& slot = slots_[s];
  const TypeIndex type = slot.held_type;
  Head& h = heads_[type];
  CHECK(h.slot == s) << "job " << slot.job.id << " thinks it is a head but is not";
  const std::uint32_t gang = slot.job.gpus;
  if (!(allowed & (std::uint64_t{1} << type)) || slot.gpus.size() + h.promised_gpus < gang) {
    drop_head(type, /*release_claim=*/true);
    return false;
  }
  // Heads later in the order give way to it first when they hold what it needs.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::uint32_t need = gang - static_cast<std::uint32_t>(slot.gpus.size());
    if (need > 0 && area_available(h.level, h.area) >= need) {
      std::vector<GpuIndex> more = claim_available(h.level, h.area, need, slot.job.id);
      slot.gpus.insert(slot.gpus.end(), more.begin(), more.end());
    }
    if (slot.gpus.size() == gang) {
      std::vector<GpuIndex> gpus = slot.gpus;
      start(s, std::move(gpus), now, effects);
      return true;
    }
    if (auto gpus = place_job(slot, allowed, true)) {  // a fit elsewhere, now
      drop_head(type, /*release_claim=*/true);
      start(s, std::move(*gpus), now, effects);
      return true;
    }
    if (attempt == 0 && !drop_later_heads(s, allowed)) break;
  }
  // A job that may preempt became a head when too few GPUs were held by spot
  // jobs; once enough are, it preempts instead of waiting for its shadow time.
  const int tier = static_cast<int>(slot.job.tier);
  if (options_.preempts_spot[tier] && slot.job.tier != Tier::kSpot &&
      std::uint64_t{spot_in_type_[type]} + cluster_.type_available(type) + slot.gpus.size() >= gang) {
    drop_head(type, /*release_claim=*/true);
    return false;
  }
  slot.wait = WaitReason::kBackfillHead;
  return true;
}

// Job `s` does not fit. Heads after it in the order (not yet visited in this
// tick) give way: they drop their claims and promises, if their claim could
// make it fit now, or (for a job that is neither a head nor a preemptor) it
// may become the head itself. True when GPUs came back.
bool Scheduler::drop_later_heads(std::uint32_t s, std::uint64_t allowed) {
  const Slot& slot = slots_[s];
  const bool may_head =
      !slot.head && slot.plan.empty() && !(slot.no_shadow_epoch == node_epoch_ + 1 && tick_ < slot.no_shadow_until);
  bool released = false;
  for (std::size_t t = 0; t < heads_.size(); ++t) {
    if (!(allowed & (std::uint64_t{1} << t))) continue;
    const Head& h = heads_[t];
    if (h.slot == kNoIndex || h.slot == s || slots_[h.slot].visit == tick_) continue;
    const bool claim_helps = std::uint64_t{cluster_.type_available(static_cast<TypeIndex>(t))} +
                                 slots_[h.slot].gpus.size() + slot.gpus.size() >=
                             slot.job.gpus;
    if (!claim_helps && !may_head) continue;
    released |= drop_head(static_cast<TypeIndex>(t), /*release_claim=*/true);
  }
  return released;
}

std::optional<Scheduler::ShadowPlan> Scheduler::shadow_plan(std::uint32_t s, TypeIndex type, Timestamp now) {
  const Slot& slot = slots_[s];
  const std::uint32_t gang = slot.job.gpus;
  const std::optional<Level> level = packing_level(slot.job.packing);
  if (cluster_.type_up(type) < gang) return std::nullopt;
  auto up = [&](GpuIndex g) { return cluster_.node(cluster_.gpu_node(g)).state == fleet::NodeState::kUp; };
  // Running jobs whose GPUs would come back to the free pool: not borrowing
  // a reservation, not leaving (their GPUs may be promised to a preemptor),
  // not promised to another head.
  auto eligible = [&](std::uint32_t v) {
    const Slot& other = slots_[v];
    return v != s && other.in_use && holds_gpus(other.job.state) && other.job.state != JobState::kPreempting &&
           !other.lent && other.promised_to == kNoIndex;
  };
  if (!level) {
    ShadowPlan plan{.level = std::nullopt, .area = type, .shadow_us = now.unix_micros};
    const std::uint32_t available = cluster_.type_available(type);
    std::uint64_t freed = 0;
    for (const auto& [end_us, v] : ends_by_type_[type]) {
      if (available + freed >= gang) break;
      if (!eligible(v)) continue;
      std::uint32_t count = 0;
      for (GpuIndex g : slots_[v].gpus) count += up(g) && reservation_of_gpu_[g] == kNoIndex;
      if (count == 0) continue;
      plan.promised.emplace_back(v, count);
      freed += count;
      plan.shadow_us = std::max(plan.shadow_us, end_us);
    }
    if (available + freed < gang) return std::nullopt;
    plan.claim = freed >= gang ? 0 : gang - static_cast<std::uint32_t>(freed);
    return plan;
  }
  // A group level: among the groups with the most available GPUs (then, to
  // make up the number, full ones), the one that can hold the gang soonest.
  const ClusterState::Pool& pool = cluster_.group_pool(*level, type);
  std::vector<GroupIndex> groups;
  for (std::uint32_t c = pool.buckets.max_count(); c > 0 && groups.size() < limits::kSchedShadowGroups;
       c = pool.buckets.max_count_below(c)) {
    for (std::uint32_t item = pool.buckets.first(c); item != kNoIndex && groups.size() < limits::kSchedShadowGroups;
         item = pool.buckets.next(item)) {
      if (cluster_.group(*level, pool.items[item]).capacity >= gang) groups.push_back(pool.items[item]);
    }
  }
  for (std::uint32_t item = 0; item < pool.items.size() && groups.size() < limits::kSchedShadowGroups; ++item) {
    const ClusterState::Group& group = cluster_.group(*level, pool.items[item]);
    if (group.available == 0 && group.capacity >= gang) groups.push_back(pool.items[item]);
  }
  std::optional<ShadowPlan> best;
  struct Running {
    std::int64_t end_us;
    std::uint32_t slot;
    std::uint32_t gpus;
  };
  std::vector<Running> running;
  for (GroupIndex group : groups) {
    running.clear();
    JobId last = kNoJob;
    for (SliceIndex sl : cluster_.group_slices(*level, group)) {
      const ClusterState::Slice& slice = cluster_.slice(sl);
      if (cluster_.node(slice.node).state != fleet::NodeState::kUp) continue;
      for (GpuIndex g = slice.gpu_begin; g < slice.gpu_end; ++g) {
        const JobId holder = cluster_.holder(g);
        if (holder == kNoJob || reservation_of_gpu_[g] != kNoIndex) continue;
        if (holder == last) {
          ++running.back().gpus;
          continue;
        }
        const std::uint32_t v = slot_of_holder(holder);
        if (v == kNoIndex || !eligible(v)) continue;
        last = holder;
        running.push_back(Running{slots_[v].end_us, v, 1});
      }
    }
    std::sort(running.begin(), running.end(), [](const Running& a, const Running& b) { return a.slot < b.slot; });
    std::size_t merged = 0;
    for (std::size_t i = 0; i < running.size(); ++i) {
      if (merged > 0 && running[merged - 1].slot == running[i].slot) {
        running[merged - 1].gpus += running[i].gpus;
      } else {
        running[merged++] = running[i];
      }
    }
    running.resize(merged);
    std::sort(running.begin(), running.end(), [](const Running& a, const Running& b) {
      return a.end_us != b.end_us ? a.end_us < b.end_us : a.slot < b.slot;
    });
    const std::uint32_t available = cluster_.group(*level, group).available;
    ShadowPlan plan{.level = level, .area = group, .shadow_us = now.unix_micros};
    std::uint64_t freed = 0;
    for (const Running& r : running) {
      if (available + freed >= gang) break;
      if (best && r.end_us >= best->shadow_us) break;  // cannot beat it
      plan.promised.emplace_back(r.slot, r.gpus);
      freed += r.gpus;
      plan.shadow_us = std::max(plan.shadow_us, r.end_us);
    }
    if (available + freed < gang) continue;
    plan.claim = freed >= gang ? 0 : gang - static_cast<std::uint32_t>(freed);
    if (!best || plan.shadow_us < best->shadow_us) best = std::move(plan);
  }
  return best;
}

// Job `s` does not fit and its type(s) may have no head yet: it becomes the
// head of the type where its shadow time is earliest.
bool Scheduler::become_head(std::uint32_t s, std::uint64_t allowed, Timestamp now) {
  {
    const Slot& slot = slots_[s];
    if (slot.no_shadow_epoch == node_epoch_ + 1 && tick_ < slot.no_shadow_until) return false;
  }
  std::optional<ShadowPlan> best;
  TypeIndex best_type = 0;
  for (std::size_t t = 0; t < heads_.size(); ++t) {
    if (!(allowed & (std::uint64_t{1} << t)) || heads_[t].slot != kNoIndex) continue;
    std::optional<ShadowPlan> plan = shadow_plan(s, static_cast<TypeIndex>(t), now);
    if (plan && (!best || plan->shadow_us < best->shadow_us)) {
      best = std::move(plan);
      best_type = static_cast<TypeIndex>(t);
    }
  }
  Slot& slot = slots_[s];
  if (!best) {
    slot.no_shadow_epoch = node_epoch_ + 1;
    slot.no_shadow_until = tick_ + kNoShadowRetryTicks;
    return false;
  }
  ASSERT(slot.gpus.empty());
  Head& h = heads_[best_type];
  h.slot = s;
  h.level = best->level;
  h.area = best->area;
  h.shadow = Timestamp{best->shadow_us};
  h.promised_gpus = 0;
  h.promised.clear();
  slot.head = true;
  slot.held_type = best_type;
  slot.gpus = claim_available(best->level, best->area, best->claim, slot.job.id);
  for (const auto& [v, gpus] : best->promised) {
    slots_[v].promised_to = s;
    slots_[v].promised_gpus = gpus;
    h.promised.emplace_back(v, slots_[v].job.id);
    h.promised_gpus += gpus;
  }
  return true;
}

// Rule 2: job `s` starts on GPUs a head claims when it ends by the head's
// shadow time; it is promised to the head, so they go back when it stops.
bool Scheduler::backfill_on_head(std::uint32_t s, std::uint64_t allowed, Timestamp now, Effects& effects) {
  const std::uint32_t gang = slots_[s].job.gpus;
  const std::int64_t end_us = now.plus_seconds(slots_[s].job.max_runtime_s).unix_micros;
  for (std::size_t t = 0; t < heads_.size(); ++t) {
    if (!(allowed & (std::uint64_t{1} << t))) continue;
    Head& h = heads_[t];
    if (h.slot == kNoIndex || h.slot == s) continue;
    Slot& head = slots_[h.slot];
    if (end_us > h.shadow.unix_micros || head.gpus.size() < gang) continue;
    if (backfill_tries_ >= limits::kSchedTickBackfillTries) return false;
    ++backfill_tries_;
    std::optional<std::vector<GpuIndex>> gpus = place_within(cluster_, head.gpus, gang, slots_[s].job.packing);
    if (!gpus) continue;
    std::vector<GpuIndex> taken = *gpus;
    std::sort(taken.begin(), taken.end());
    std::erase_if(head.gpus, [&](GpuIndex g) { return std::binary_search(taken.begin(), taken.end(), g); });
    const std::uint32_t head_slot = h.slot;
    start(s, std::move(*gpus), now, effects, /*donor=*/head.job.id);
    Slot& slot = slots_[s];
    slot.promised_to = head_slot;
    slot.promised_gpus = gang;
    h.promised.emplace_back(s, slot.job.id);
    h.promised_gpus += gang;
    if (h.promised.size() % 64 == 0) {  // forget promises that ended, now and then
      std::erase_if(h.promised, [&](const std::pair<std::uint32_t, JobId>& p) {
        const Slot& other = slots_[p.first];
        return !other.in_use || other.job.id != p.second || other.promised_to != head_slot;
      });
    }
    return true;
  }
  return false;
}

}  // namespace headroom::sched
