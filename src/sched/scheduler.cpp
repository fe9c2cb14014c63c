#include "sched/scheduler.h"

#include <algorithm>
#include <string>
#include <utility>

#include "common/check.h"
#include "sched/placement.h"

namespace headroom::sched {

std::string_view reason_name(Reason reason) {
  switch (reason) {
    case Reason::kSubmitted: return "submitted";
    case Reason::kPlaced: return "placed";
    case Reason::kStarted: return "started";
    case Reason::kExited: return "exited";
    case Reason::kCancelled: return "cancelled";
    case Reason::kPreemptedForHigherTier: return "preempted_for_higher_tier";
    case Reason::kGraceExpired: return "grace_expired";
    case Reason::kMaxRuntimeExceeded: return "max_runtime_exceeded";
    case Reason::kNodeLost: return "node_lost";
    case Reason::kRequeued: return "requeued";
  }
  return "?";
}

namespace {

constexpr std::array<Tier, kTierCount> kTiersInOrder = {Tier::kInternal, Tier::kReserved, Tier::kOnDemand,
                                                         Tier::kSpot};

bool timer_later(const auto& a, const auto& b) { return a.at > b.at; }

}  // namespace

Result<Scheduler> Scheduler::create(const fleet::FleetSpec& fleet, SchedulerOptions options) {
  for (std::int64_t grace : options.grace_ms) {
    if (grace < 0 || grace > limits::kSchedGraceMsMax) {
      return Status::invalid_argument("grace_ms: expected 0.." + std::to_string(limits::kSchedGraceMsMax));
    }
  }
  if (options.max_queued_jobs == 0 || options.max_queued_jobs > limits::kSchedQueuedJobs) {
    return Status::invalid_argument("max_queued_jobs: expected 1.." + std::to_string(limits::kSchedQueuedJobs));
  }
  options.tick_scan_jobs = std::clamp<std::size_t>(options.tick_scan_jobs, 1, limits::kSchedTickScanJobs);
  options.tick_preemptions = std::min(options.tick_preemptions, limits::kSchedTickPreemptions);
  HR_ASSIGN_OR_RETURN(ClusterState cluster, ClusterState::build(fleet));
  return Scheduler(std::move(cluster), options);
}

Scheduler::Scheduler(ClusterState cluster, SchedulerOptions options)
    : cluster_(std::move(cluster)), options_(options) {
  failed_gpus_.assign((cluster_.type_count() + 1) * 4, UINT32_MAX);
}

Scheduler::Slot* Scheduler::live(JobId id) {
  auto it = slot_of_.find(id);
  return it == slot_of_.end() ? nullptr : &slots_[it->second];
}

const Job* Scheduler::find(JobId id) const {
  auto it = slot_of_.find(id);
  return it == slot_of_.end() ? nullptr : &slots_[it->second].job;
}

std::span<const GpuIndex> Scheduler::gpus_of(JobId id) const {
  auto it = slot_of_.find(id);
  if (it == slot_of_.end()) return {};
  return slots_[it->second].gpus;
}

std::size_t Scheduler::failure_key(const Slot& slot) const {
  const std::size_t type = slot.type ? *slot.type : cluster_.type_count();
  return type * 4 + static_cast<std::size_t>(slot.job.packing);
}

void Scheduler::set_state(Slot& slot, JobState state, Reason reason, Timestamp now, Effects& effects) {
  slot.job.state = state;
  slot.job.entered_at[static_cast<int>(state)] = now;
  effects.push_back(Effect{.kind = Effect::Kind::kStateChanged, .job = slot.job.id, .gpus = {}, .deadline = {},
                           .state = state, .reason = reason});
}

void Scheduler::enqueue(std::uint32_t s) {
  Slot& slot = slots_[s];
  Queue& queue = queues_[static_cast<int>(slot.job.tier)];
  slot.prev = queue.tail;
  slot.next = kNoIndex;
  if (queue.tail != kNoIndex) {
    slots_[queue.tail].next = s;
  } else {
    queue.head = s;
  }
  queue.tail = s;
  ++queue.size;
  ++queued_total_;
}

void Scheduler::dequeue(std::uint32_t s) {
  Slot& slot = slots_[s];
  Queue& queue = queues_[static_cast<int>(slot.job.tier)];
  if (slot.prev != kNoIndex) {
    slots_[slot.prev].next = slot.next;
  } else {
    queue.head = slot.next;
  }
  if (slot.next != kNoIndex) {
    slots_[slot.next].prev = slot.prev;
  } else {
    queue.tail = slot.prev;
  }
  slot.prev = slot.next = kNoIndex;
  --queue.size;
  --queued_total_;
}

void Scheduler::arm_timer(std::uint32_t s, Timestamp at) {
  // Stopped and re-armed jobs leave stale entries behind. Compact when they
  // outnumber the live ones, so that the heap stays bounded by the live jobs
  // (amortised O(1) per arm) instead of growing with every job ever started.
  if (timers_.size() >= 2 * slot_of_.size() + 64) {
    std::erase_if(timers_, [&](const Timer& t) {
      const Slot& slot = slots_[t.slot];
      return !slot.in_use || slot.timer_generation != t.generation;
    });
    std::make_heap(timers_.begin(), timers_.end(), timer_later<Timer, Timer>);
  }
  slots_[s].timer_generation = next_generation_++;
  timers_.push_back(Timer{.at = at, .slot = s, .generation = slots_[s].timer_generation});
  std::push_heap(timers_.begin(), timers_.end(), timer_later<Timer, Timer>);
}

Result<Effects> Scheduler::submit(Job job, Timestamp now) {
  if (job.id == kNoJob) return Status::invalid_argument("job id: must be nonzero");
  if (slot_of_.contains(job.id)) return Status::already_exists("job " + std::to_string(job.id) + " is live");
  if (job.gpus == 0 || job.gpus > limits::kSchedGangGpus) {
    return Status::invalid_argument("gpus: expected 1.." + std::to_string(limits::kSchedGangGpus));
  }
  if (job.max_runtime_s <= 0 || job.max_runtime_s > limits::kSchedMaxRuntimeS) {
    return Status::invalid_argument("max_runtime_s: expected 1.." + std::to_string(limits::kSchedMaxRuntimeS));
  }
  if (job.max_price_per_gpu_hour < Money()) return Status::invalid_argument("max_price_per_gpu_hour: negative");
  std::optional<TypeIndex> type;
  if (!job.gpu_type.empty()) {
    type = cluster_.find_type(job.gpu_type);
    if (!type) return Status::invalid_argument("gpu_type: the fleet has no " + fleet::quote_for_message(job.gpu_type));
  }
  if (!can_ever_fit(cluster_, PlacementRequest{.gpus = job.gpus, .type = type, .packing = job.packing})) {
    return Status::invalid_argument("gpus: the fleet has no " + std::string(packing_name(job.packing)) +
                                    " placement of " + std::to_string(job.gpus) + " GPUs of type " +
                                    (job.gpu_type.empty() ? std::string("any") : job.gpu_type));
  }
  if (queued_total_ >= options_.max_queued_jobs) return Status::unavailable("the job queue is full");

  std::uint32_t s;
  if (!free_slots_.empty()) {
    s = free_slots_.back();
    free_slots_.pop_back();
  } else {
    s = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[s];
  slot = Slot{};
  slot.in_use = true;
  slot.type = type;
  if (job.submitted_at == Timestamp{}) job.submitted_at = now;
  job.preemptions = 0;
  job.entered_at = {};
  slot.job = std::move(job);
  slot_of_.emplace(slot.job.id, s);
  Effects effects;
  set_state(slot, JobState::kQueued, Reason::kSubmitted, now, effects);
  enqueue(s);
  return effects;
}

void Scheduler::start(std::uint32_t s, std::vector<GpuIndex> gpus, Timestamp now, Effects& effects) {
  Slot& slot = slots_[s];
  ASSERT(slot.job.state == JobState::kQueued);
  ASSERT(gpus.size() == slot.job.gpus);
  // Allocate what the job does not hold yet (a preemptor holds its claim).
  std::vector<GpuIndex> fresh;
  for (GpuIndex g : gpus) {
    if (cluster_.holder(g) != slot.job.id) fresh.push_back(g);
  }
  CHECK(fresh.size() + cluster_.held_by(slot.job.id) == gpus.size())
      << "job " << slot.job.id << " starts on GPUs that do not cover its claim";
  if (!fresh.empty()) cluster_.allocate(slot.job.id, fresh);
  dequeue(s);
  slot.gpus = std::move(gpus);
  slot.plan.clear();
  if (slot.job.tier == Tier::kSpot) {
    slot.spot_pos = static_cast<std::uint32_t>(active_spot_.size());
    active_spot_.push_back(s);
  }
  arm_timer(s, now.plus_seconds(slot.job.max_runtime_s));
  effects.push_back(Effect{.kind = Effect::Kind::kStart, .job = slot.job.id, .gpus = slot.gpus, .deadline = {},
                           .state = JobState::kStarting, .reason = Reason::kPlaced});
  set_state(slot, JobState::kStarting, Reason::kPlaced, now, effects);
}

void Scheduler::drop_claim(Slot& slot) {
  if (!slot.gpus.empty()) {
    cluster_.release(slot.job.id, slot.gpus);
    slot.gpus.clear();
    std::fill(failed_gpus_.begin(), failed_gpus_.end(), UINT32_MAX);  // GPUs came back
  }
  slot.plan.clear();
}

void Scheduler::stop(std::uint32_t s, JobState state, Reason reason, Timestamp now, Effects& effects) {
  Slot& slot = slots_[s];
  ASSERT(holds_gpus(slot.job.state));
  cluster_.release(slot.job.id, slot.gpus);
  slot.gpus.clear();
  std::fill(failed_gpus_.begin(), failed_gpus_.end(), UINT32_MAX);
  if (slot.spot_pos != kNoIndex) {
    const std::uint32_t moved = active_spot_.back();
    active_spot_[slot.spot_pos] = moved;
    slots_[moved].spot_pos = slot.spot_pos;
    active_spot_.pop_back();
    slot.spot_pos = kNoIndex;
  }
  slot.timer_generation = 0;  // disarms its timer
  set_state(slot, state, reason, now, effects);
  if (state == JobState::kPreempted && slot.job.requeue_on_preempt && queued_total_ < options_.max_queued_jobs) {
    set_state(slot, JobState::kQueued, Reason::kRequeued, now, effects);
    enqueue(s);
    return;
  }
  slot_of_.erase(slot.job.id);
  slot = Slot{};
  free_slots_.push_back(s);
}

void Scheduler::kill(std::uint32_t s, JobState state, Reason reason, Timestamp now, Effects& effects) {
  effects.push_back(Effect{.kind = Effect::Kind::kKill, .job = slots_[s].job.id, .gpus = slots_[s].gpus,
                           .deadline = {}, .state = state, .reason = reason});
  stop(s, state, reason, now, effects);
}

Result<Effects> Scheduler::cancel(JobId id, Timestamp now) {
  Slot* slot = live(id);
  if (slot == nullptr) return Status::not_found("job " + std::to_string(id) + " is not live");
  const std::uint32_t s = slot_of_.at(id);
  Effects effects;
  if (slot->job.state == JobState::kQueued) {
    drop_claim(*slot);
    dequeue(s);
    set_state(*slot, JobState::kCancelled, Reason::kCancelled, now, effects);
    slot_of_.erase(id);
    *slot = Slot{};
    free_slots_.push_back(s);
    return effects;
  }
  kill(s, JobState::kCancelled, Reason::kCancelled, now, effects);
  return effects;
}

Result<Effects> Scheduler::running(JobId id, Timestamp now) {
  Slot* slot = live(id);
  if (slot == nullptr) return Status::not_found("job " + std::to_string(id) + " is not live");
  Effects effects;
  if (slot->job.state == JobState::kStarting) {
    set_state(*slot, JobState::kRunning, Reason::kStarted, now, effects);
  } else if (slot->job.state == JobState::kQueued) {
    return Status::conflict("job " + std::to_string(id) + " is queued, not starting");
  }
  return effects;  // running or preempting already: nothing to do
}

Result<Effects> Scheduler::finished(JobId id, int exit_code, Timestamp now) {
  Slot* slot = live(id);
  if (slot == nullptr) return Status::not_found("job " + std::to_string(id) + " is not live");
  if (!holds_gpus(slot->job.state)) return Status::conflict("job " + std::to_string(id) + " is not running");
  Effects effects;
  const std::uint32_t s = slot_of_.at(id);
  if (slot->job.state == JobState::kPreempting) {
    stop(s, JobState::kPreempted, Reason::kExited, now, effects);
  } else {
    stop(s, exit_code == 0 ? JobState::kSucceeded : JobState::kFailed, Reason::kExited, now, effects);
  }
  return effects;
}

Result<Effects> Scheduler::set_node_state(std::string_view node, fleet::NodeState state, Timestamp now) {
  const std::optional<NodeIndex> n = cluster_.find_node(node);
  if (!n) return Status::not_found("node " + fleet::quote_for_message(node) + " is not in the fleet");
  cluster_.set_node_state(*n, state);
  Effects effects;
  if (state != fleet::NodeState::kDown) return effects;
  // Everything on a down node is lost; claims on it are dropped.
  const ClusterState::Node& info = cluster_.node(*n);
  for (GpuIndex g = info.gpu_begin; g < info.gpu_end; ++g) {
    const JobId holder = cluster_.holder(g);
    if (holder == kNoJob) continue;
    const std::uint32_t s = slot_of_.at(holder);
    if (slots_[s].job.state == JobState::kQueued) {
      drop_claim(slots_[s]);
    } else {
      kill(s, JobState::kLost, Reason::kNodeLost, now, effects);
    }
  }
  return effects;
}

Effects Scheduler::tick(Timestamp now) {
  Effects effects;
  // Deadlines: preemption grace and max runtime.
  while (!timers_.empty() && timers_.front().at <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), timer_later<Timer, Timer>);
    const Timer timer = timers_.back();
    timers_.pop_back();
    Slot& slot = slots_[timer.slot];
    if (!slot.in_use || slot.timer_generation != timer.generation || !holds_gpus(slot.job.state)) continue;
    if (slot.job.state == JobState::kPreempting) {
      kill(timer.slot, JobState::kPreempted, Reason::kGraceExpired, now, effects);
    } else {
      kill(timer.slot, JobState::kFailed, Reason::kMaxRuntimeExceeded, now, effects);
    }
  }
  // Placement, in tier order, FIFO within a tier.
  std::fill(failed_gpus_.begin(), failed_gpus_.end(), UINT32_MAX);
  std::size_t scanned = 0;
  std::size_t preemptions = 0;
  for (Tier tier : kTiersInOrder) {
    std::uint32_t s = queues_[static_cast<int>(tier)].head;
    while (s != kNoIndex && scanned < options_.tick_scan_jobs) {
      const std::uint32_t next = slots_[s].next;  // read first: starting unlinks s
      ++scanned;
      try_schedule(s, now, effects, preemptions);
      s = next;
    }
  }
  return effects;
}

void Scheduler::try_schedule(std::uint32_t s, Timestamp now, Effects& effects, std::size_t& preemptions) {
  Slot& slot = slots_[s];
  const PlacementRequest request{.gpus = slot.job.gpus, .type = slot.type, .packing = slot.job.packing};
  if (!slot.plan.empty()) {
    // A preemptor waiting for its victims: start when the whole plan is ours
    // or free; drop the plan if part of it went off an up node.
    bool complete = true;
    bool broken = false;
    for (GpuIndex g : slot.plan) {
      if (cluster_.node(cluster_.gpu_node(g)).state != fleet::NodeState::kUp) {
        broken = true;
        break;
      }
      const JobId holder = cluster_.holder(g);
      if (holder != slot.job.id && holder != kNoJob) complete = false;
    }
    if (broken) {
      drop_claim(slot);
    } else if (complete) {
      std::vector<GpuIndex> plan = slot.plan;
      start(s, std::move(plan), now, effects);
      return;
    } else {
      if (auto gpus = place(cluster_, request)) {  // a fit elsewhere, sooner
        drop_claim(slot);
        start(s, std::move(*gpus), now, effects);
      }
      return;
    }
  }
  const std::size_t key = failure_key(slot);
  if (slot.job.gpus < failed_gpus_[key]) {
    if (auto gpus = place(cluster_, request)) {
      start(s, std::move(*gpus), now, effects);
      return;
    }
    failed_gpus_[key] = slot.job.gpus;
  }
  if (options_.preempts_spot[static_cast<int>(slot.job.tier)] && slot.job.tier != Tier::kSpot &&
      preemptions < options_.tick_preemptions) {
    if (try_preempt(s, now, effects)) ++preemptions;
  }
}

// Picks spot victims for a queued job that does not fit. A candidate area is
// a group of the job's packing level, or for kAny a whole GPU type. In each
// area that could hold the gang once its spot jobs left, the victims are the
// cheaper of (a) the smallest single job that frees enough there, and (b)
// greedily the jobs with the most GPUs there; the area whose victims hold the
// fewest GPUs in all wins. O(spot GPUs + candidates log candidates).
bool Scheduler::try_preempt(std::uint32_t s, Timestamp now, Effects& effects) {
  Slot& slot = slots_[s];
  const std::uint32_t gang = slot.job.gpus;
  const std::optional<Level> level = packing_level(slot.job.packing);
  auto area_of = [&](GpuIndex g) -> std::uint32_t {
    return level ? cluster_.gpu_group(g, *level) : cluster_.gpu_type(g);
  };
  auto area_type = [&](std::uint32_t area) -> TypeIndex {
    return level ? cluster_.group(*level, area).type : static_cast<TypeIndex>(area);
  };
  auto area_available = [&](std::uint32_t area) -> std::uint32_t {
    return level ? cluster_.group(*level, area).available : cluster_.type_available(static_cast<TypeIndex>(area));
  };

  struct Candidate {
    std::uint32_t area;
    std::uint32_t slot;
    std::uint32_t gpus_in_area;
  };
  std::vector<Candidate> candidates;
  std::vector<std::uint32_t> areas;
  for (std::uint32_t v : active_spot_) {
    const Slot& victim = slots_[v];
    areas.clear();
    for (GpuIndex g : victim.gpus) {
      if (cluster_.node(cluster_.gpu_node(g)).state != fleet::NodeState::kUp) continue;
      const std::uint32_t area = area_of(g);
      if (slot.type && area_type(area) != *slot.type) continue;
      areas.push_back(area);
    }
    std::sort(areas.begin(), areas.end());
    for (std::size_t i = 0; i < areas.size();) {
      std::size_t j = i;
      while (j < areas.size() && areas[j] == areas[i]) ++j;
      candidates.push_back(Candidate{areas[i], v, static_cast<std::uint32_t>(j - i)});
      i = j;
    }
  }
  if (candidates.empty()) return false;
  // Within an area: most GPUs there first, then the smallest job, then the
  // most recently started (the least work lost).
  std::sort(candidates.begin(), candidates.end(), [&](const Candidate& a, const Candidate& b) {
    if (a.area != b.area) return a.area < b.area;
    if (a.gpus_in_area != b.gpus_in_area) return a.gpus_in_area > b.gpus_in_area;
    const Job& ja = slots_[a.slot].job;
    const Job& jb = slots_[b.slot].job;
    if (ja.gpus != jb.gpus) return ja.gpus < jb.gpus;
    const Timestamp sa = ja.entered_at[static_cast<int>(JobState::kStarting)];
    const Timestamp sb = jb.entered_at[static_cast<int>(JobState::kStarting)];
    if (sa != sb) return sa > sb;
    return ja.id < jb.id;
  });

  std::uint64_t best_cost = UINT64_MAX;
  std::uint32_t best_area = kNoIndex;
  std::vector<std::uint32_t> best_victims;  // indexes into candidates
  std::vector<std::uint32_t> victims;
  for (std::size_t i = 0; i < candidates.size();) {
    std::size_t end = i;
    std::uint64_t preemptible = 0;
    while (end < candidates.size() && candidates[end].area == candidates[i].area) {
      preemptible += candidates[end].gpus_in_area;
      ++end;
    }
    const std::uint32_t area = candidates[i].area;
    const std::uint32_t available = area_available(area);
    if (available < gang && available + preemptible >= gang) {
      const std::uint32_t needed = gang - available;
      // (a) the smallest single victim that frees enough here.
      std::uint64_t single_cost = UINT64_MAX;
      std::uint32_t single = kNoIndex;
      for (std::size_t k = i; k < end; ++k) {
        const std::uint32_t size = slots_[candidates[k].slot].job.gpus;
        if (candidates[k].gpus_in_area >= needed && size < single_cost) {
          single_cost = size;
          single = static_cast<std::uint32_t>(k);
        }
      }
      // (b) greedy, most GPUs here first.
      victims.clear();
      std::uint64_t freed = 0;
      std::uint64_t greedy_cost = 0;
      for (std::size_t k = i; k < end && freed < needed; ++k) {
        victims.push_back(static_cast<std::uint32_t>(k));
        freed += candidates[k].gpus_in_area;
        greedy_cost += slots_[candidates[k].slot].job.gpus;
      }
      if (single != kNoIndex && single_cost <= greedy_cost) {
        victims.assign(1, single);
        greedy_cost = single_cost;
      }
      if (greedy_cost < best_cost) {
        best_cost = greedy_cost;
        best_area = area;
        best_victims = victims;
      }
    }
    i = end;
  }
  if (best_area == kNoIndex) return false;

  // The plan: the victims' GPUs in the area first (they are vacated anyway),
  // then free GPUs of the area, packed.
  std::vector<GpuIndex> plan;
  plan.reserve(gang);
  for (std::uint32_t k : best_victims) {
    for (GpuIndex g : slots_[candidates[k].slot].gpus) {
      if (plan.size() == gang) break;
      if (cluster_.node(cluster_.gpu_node(g)).state == fleet::NodeState::kUp && area_of(g) == best_area) {
        plan.push_back(g);
      }
    }
  }
  std::vector<GpuIndex> claim;
  const std::uint32_t free_needed = gang - static_cast<std::uint32_t>(plan.size());
  if (free_needed > 0) {
    if (level) {
      for (SliceIndex sl : cluster_.group_slices(*level, best_area)) {
        if (claim.size() == free_needed) break;
        if (cluster_.slice_available(sl) == 0) continue;
        append_free_gpus(cluster_, sl, free_needed - static_cast<std::uint32_t>(claim.size()), claim);
      }
    } else {
      const ClusterState::Pool& pool = cluster_.slice_pool(static_cast<TypeIndex>(best_area));
      for (std::uint32_t count = pool.buckets.max_count(); count > 0 && claim.size() < free_needed;
           count = pool.buckets.max_count_below(count)) {
        for (std::uint32_t item = pool.buckets.first(count); item != kNoIndex && claim.size() < free_needed;
             item = pool.buckets.next(item)) {
          append_free_gpus(cluster_, pool.items[item], free_needed - static_cast<std::uint32_t>(claim.size()), claim);
        }
      }
    }
    CHECK(claim.size() == free_needed) << "area " << best_area << " has fewer available GPUs than counted";
    cluster_.allocate(slot.job.id, claim);
  }
  slot.gpus = claim;
  plan.insert(plan.end(), claim.begin(), claim.end());
  slot.plan = std::move(plan);

  const Timestamp deadline = now.plus_micros(options_.grace_ms[static_cast<int>(Tier::kSpot)] * 1000);
  for (std::uint32_t k : best_victims) {
    const std::uint32_t v = candidates[k].slot;
    Slot& victim = slots_[v];
    CHECK(victim.job.tier == Tier::kSpot && holds_gpus(victim.job.state) && victim.job.state != JobState::kPreempting)
        << "job " << victim.job.id << " is not a running spot job and may not be preempted";
    const std::uint32_t moved = active_spot_.back();
    active_spot_[victim.spot_pos] = moved;
    slots_[moved].spot_pos = victim.spot_pos;
    active_spot_.pop_back();
    victim.spot_pos = kNoIndex;
    ++victim.job.preemptions;
    arm_timer(v, deadline);
    effects.push_back(Effect{.kind = Effect::Kind::kPreemptNotice, .job = victim.job.id, .gpus = {},
                             .deadline = deadline, .state = JobState::kPreempting,
                             .reason = Reason::kPreemptedForHigherTier});
    set_state(victim, JobState::kPreempting, Reason::kPreemptedForHigherTier, now, effects);
  }
  return true;
}

}  // namespace headroom::sched
