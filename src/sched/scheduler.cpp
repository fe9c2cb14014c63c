// The Scheduler's commands, queues and tick. Fair share and quotas are in
// sched_tenants.cpp, preemption in sched_preempt.cpp, backfill in
// sched_backfill.cpp, reservations and surplus in sched_reservations.cpp.
#include "sched/scheduler.h"

#include <algorithm>
#include <cmath>
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
    case Reason::kNodeDraining: return "node_draining";
    case Reason::kReservationEnded: return "reservation_ended";
    case Reason::kBudgetExhausted: return "budget_exhausted";
    case Reason::kOutbid: return "outbid";
  }
  return "?";
}

std::string_view wait_reason_name(WaitReason reason) {
  switch (reason) {
    case WaitReason::kNotConsidered: return "not_considered";
    case WaitReason::kNoFit: return "no_fit";
    case WaitReason::kBackfillHead: return "backfill_head";
    case WaitReason::kWaitingForVictims: return "waiting_for_victims";
    case WaitReason::kQuota: return "quota";
    case WaitReason::kOnDemandHeadroom: return "on_demand_headroom";
    case WaitReason::kReservationNotStarted: return "reservation_not_started";
    case WaitReason::kReservationFull: return "reservation_full";
    case WaitReason::kOutbid: return "outbid";
  }
  return "?";
}

namespace {

bool timer_later(const auto& a, const auto& b) { return a.at > b.at; }

std::uint64_t type_bit(std::size_t t) { return std::uint64_t{1} << t; }

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
  if (options.fair_share_half_life_s < limits::kSchedHalfLifeSMin ||
      options.fair_share_half_life_s > limits::kSchedHalfLifeSMax) {
    return Status::invalid_argument("fair_share_half_life_s: expected " + std::to_string(limits::kSchedHalfLifeSMin) +
                                    ".." + std::to_string(limits::kSchedHalfLifeSMax));
  }
  if (options.sellable_horizon_s <= 0 || options.sellable_horizon_s > limits::kSchedMaxRuntimeS) {
    return Status::invalid_argument("sellable_horizon_s: expected 1.." + std::to_string(limits::kSchedMaxRuntimeS));
  }
  options.tick_scan_jobs = std::clamp<std::size_t>(options.tick_scan_jobs, 1, limits::kSchedTickScanJobs);
  options.tick_preemptions = std::min(options.tick_preemptions, limits::kSchedTickPreemptions);
  HR_ASSIGN_OR_RETURN(ClusterState cluster, ClusterState::build(fleet));
  static_assert(limits::kFleetGpuTypes <= 64, "a set of GPU types is a 64-bit mask");
  for (const auto& [type, gpus] : options.internal_buffer_gpus) {
    const std::optional<TypeIndex> t = cluster.find_type(type);
    if (!t) {
      return Status::invalid_argument("internal_buffer_gpus: the fleet has no GPU type " +
                                      fleet::quote_for_message(type));
    }
    if (gpus > cluster.type_capacity(*t)) {
      return Status::invalid_argument("internal_buffer_gpus: " + type + " has only " +
                                      std::to_string(cluster.type_capacity(*t)) + " GPUs");
    }
  }
  return Scheduler(std::move(cluster), std::move(options));
}

Scheduler::Scheduler(ClusterState cluster, SchedulerOptions options)
    : cluster_(std::move(cluster)), options_(std::move(options)) {
  const std::size_t types = cluster_.type_count();
  failed_gpus_.assign((types + 1) * 4, UINT32_MAX);
  failed_lend_.assign((types + 1) * 4, UINT32_MAX);
  failed_preempt_.assign((types + 1) * 4, UINT32_MAX);
  decay_per_us_ = std::log(2.0) / (static_cast<double>(options_.fair_share_half_life_s) * 1e6);
  buffer_.assign(types, 0);
  for (const auto& [type, gpus] : options_.internal_buffer_gpus) buffer_[*cluster_.find_type(type)] = gpus;
  for (auto& held : held_) held.assign(types, 0);
  ends_by_type_.resize(types);
  spot_index_.resize(types);
  for (std::size_t t = 0; t < types; ++t) {
    const std::uint32_t max_size =
        std::min<std::uint32_t>(limits::kSchedGangGpus, cluster_.type_capacity(static_cast<TypeIndex>(t)));
    spot_index_[t].head.assign(max_size + 1, kNoIndex);
    spot_index_[t].nonempty.assign(max_size / 64 + 1, 0);
  }
  for (std::size_t l = 0; l < kLevelCount; ++l) spot_in_group_[l].assign(cluster_.group_count(Level(l)), 0);
  spot_in_type_.assign(types, 0);
  heads_.resize(types);
  reservation_of_gpu_.assign(cluster_.gpu_count(), kNoIndex);
  reservation_steps_.resize(types);
}

// ---- Lookups -----------------------------------------------------------------

Scheduler::Slot* Scheduler::live(JobId id) {
  auto it = slot_of_.find(id);
  return it == slot_of_.end() ? nullptr : &slots_[it->second];
}

const Scheduler::Slot* Scheduler::live(JobId id) const {
  auto it = slot_of_.find(id);
  return it == slot_of_.end() ? nullptr : &slots_[it->second];
}

const Job* Scheduler::find(JobId id) const {
  const Slot* slot = live(id);
  return slot == nullptr ? nullptr : &slot->job;
}

std::span<const GpuIndex> Scheduler::gpus_of(JobId id) const {
  const Slot* slot = live(id);
  if (slot == nullptr) return {};
  return slot->gpus;
}

std::size_t Scheduler::queue_position(JobId id) const {
  const Slot* slot = live(id);
  if (slot == nullptr || slot->job.state != JobState::kQueued) return 0;
  const int tier = static_cast<int>(slot->job.tier);
  std::size_t ahead = 0;
  for (int t = 0; t < tier; ++t) ahead += queued_by_tier_[t];  // higher tiers go first
  // Within the tier: every job of a tenant with a lower key, the jobs queued
  // before it of tenants with the same key, and its own tenant's before it.
  auto key_of = [&](const Tenant& tenant) {
    return usage_gpu_seconds(tenant.name, slot->job.tier, last_tick_at_) / tenant.weight;
  };
  const Tenant& own = tenants_[slot->tenant];
  const double key = key_of(own);
  for (std::uint32_t t : tier_tenants_[tier]) {
    if (t == slot->tenant) continue;
    const Tenant& tenant = tenants_[t];
    const double k = key_of(tenant);
    if (k < key) {
      ahead += tenant.queues[tier].size;
    } else if (k == key) {
      for (std::uint32_t s = tenant.queues[tier].head; s != kNoIndex && slots_[s].seq < slot->seq; s = slots_[s].next) {
        ++ahead;
      }
    }
  }
  for (std::uint32_t s = own.queues[tier].head; s != kNoIndex && slots_[s].job.id != id; s = slots_[s].next) ++ahead;
  return ahead + 1;
}

WaitReason Scheduler::wait_reason(JobId id) const {
  const Slot* slot = live(id);
  if (slot == nullptr || slot->job.state != JobState::kQueued) return WaitReason::kNotConsidered;
  return slot->wait;
}

std::uint32_t Scheduler::slot_of_holder(JobId holder) const {
  if (holder == kNoJob || holder >= kFirstReservedJobId) return kNoIndex;
  auto it = slot_of_.find(holder);
  return it == slot_of_.end() ? kNoIndex : it->second;
}

std::size_t Scheduler::failure_key(std::optional<TypeIndex> type, Packing packing) const {
  const std::size_t t = type ? *type : cluster_.type_count();
  return t * 4 + static_cast<std::size_t>(packing);
}

void Scheduler::reset_failures() {
  std::fill(failed_gpus_.begin(), failed_gpus_.end(), UINT32_MAX);
  std::fill(failed_lend_.begin(), failed_lend_.end(), UINT32_MAX);
  std::fill(failed_preempt_.begin(), failed_preempt_.end(), UINT32_MAX);
}

// ---- State, queues, timers -----------------------------------------------------

void Scheduler::set_state(Slot& slot, JobState state, Reason reason, Timestamp now, Effects& effects) {
  slot.job.state = state;
  slot.job.entered_at[static_cast<int>(state)] = now;
  effects.push_back(Effect{.kind = Effect::Kind::kStateChanged, .job = slot.job.id, .gpus = {}, .deadline = {},
                           .state = state, .reason = reason});
}

void Scheduler::enqueue(std::uint32_t s) {
  Slot& slot = slots_[s];
  const int tier = static_cast<int>(slot.job.tier);
  Tenant& tenant = tenants_[slot.tenant];
  Queue& queue = tenant.queues[tier];
  slot.prev = queue.tail;
  slot.next = kNoIndex;
  if (queue.tail != kNoIndex) {
    slots_[queue.tail].next = s;
  } else {
    queue.head = s;
  }
  queue.tail = s;
  if (++queue.size == 1) {
    tenant.active_pos[tier] = static_cast<std::uint32_t>(tier_tenants_[tier].size());
    tier_tenants_[tier].push_back(slot.tenant);
  }
  slot.seq = next_seq_++;
  slot.wait = WaitReason::kNotConsidered;
  ++tenant.queued_jobs;
  ++queued_by_tier_[tier];
  ++queued_total_;
  count_queued(slot, +1);
  if (slot.job.tier == Tier::kReserved) ++reservations_[slot.reservation].queued_jobs;
}

void Scheduler::dequeue(std::uint32_t s) {
  Slot& slot = slots_[s];
  const int tier = static_cast<int>(slot.job.tier);
  Tenant& tenant = tenants_[slot.tenant];
  Queue& queue = tenant.queues[tier];
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
  if (--queue.size == 0) {
    std::vector<std::uint32_t>& list = tier_tenants_[tier];
    const std::uint32_t pos = tenant.active_pos[tier];
    const std::uint32_t moved = list.back();
    list[pos] = moved;
    tenants_[moved].active_pos[tier] = pos;
    list.pop_back();
    tenant.active_pos[tier] = kNoIndex;
  }
  --tenant.queued_jobs;
  --queued_by_tier_[tier];
  --queued_total_;
  count_queued(slot, -1);
  if (slot.job.tier == Tier::kReserved && slot.reservation != kNoIndex) --reservations_[slot.reservation].queued_jobs;
}

void Scheduler::free_slot(std::uint32_t s) {
  ASSERT(slots_[s].gpus.empty() && !slots_[s].head && !slots_[s].in_ends && !slots_[s].in_spot_index);
  slot_of_.erase(slots_[s].job.id);
  slots_[s] = Slot{};
  free_slots_.push_back(s);
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

void Scheduler::set_end(std::uint32_t s, std::int64_t end_us) {
  Slot& slot = slots_[s];
  auto& ends = ends_by_type_[slot.held_type];
  if (slot.in_ends) ends.erase({slot.end_us, s});
  slot.end_us = end_us;
  ends.emplace(end_us, s);
  slot.in_ends = true;
}

// ---- Commands --------------------------------------------------------------------

// What submit() and restore() both check: the job is well formed, could
// run on this fleet, and a reserved job names a live reservation of its
// tenant that holds it.
Result<Scheduler::Admission> Scheduler::validate(const Job& job, Timestamp now) const {
  if (job.id == kNoJob) return Status::invalid_argument("job id: must be nonzero");
  if (job.id >= kFirstReservedJobId) {
    return Status::invalid_argument("job id: must be below " + std::to_string(kFirstReservedJobId));
  }
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
  std::uint32_t reservation = kNoIndex;
  if (job.tier == Tier::kReserved) {
    if (!job.reservation_id) return Status::invalid_argument("reservation_id: a reserved job names its reservation");
    const std::optional<std::uint32_t> r = reservation_of(*job.reservation_id);
    if (!r || reservations_[*r].spec.tenant_id != job.tenant_id) {
      return Status::invalid_argument("reservation_id: tenant " + fleet::quote_for_message(job.tenant_id) +
                                      " has no live reservation " + fleet::quote_for_message(*job.reservation_id));
    }
    const ReservationState& res = reservations_[*r];
    if (now >= res.spec.end) {
      return Status::invalid_argument("reservation_id: reservation " + fleet::quote_for_message(res.spec.id) +
                                      " ended at " + to_rfc3339(res.spec.end));
    }
    if (type && *type != res.type) {
      return Status::invalid_argument("gpu_type: reservation " + fleet::quote_for_message(res.spec.id) + " holds " +
                                      res.spec.gpu_type + " GPUs");
    }
    if (job.gpus > res.spec.gpus) {
      return Status::invalid_argument("gpus: reservation " + fleet::quote_for_message(res.spec.id) + " holds " +
                                      std::to_string(res.spec.gpus) + " GPUs");
    }
    type = res.type;
    reservation = *r;
  } else if (job.reservation_id) {
    return Status::invalid_argument("reservation_id: only reserved jobs name a reservation");
  }
  if (!can_ever_fit(cluster_, PlacementRequest{.gpus = job.gpus, .type = type, .packing = job.packing})) {
    return Status::invalid_argument("gpus: the fleet has no " + std::string(packing_name(job.packing)) +
                                    " placement of " + std::to_string(job.gpus) + " GPUs of type " +
                                    (job.gpu_type.empty() ? std::string("any") : job.gpu_type));
  }
  if (job.tier == Tier::kOnDemand) {
    std::uint32_t most = 0;
    for (std::size_t t = 0; t < cluster_.type_count(); ++t) {
      if (type && *type != t) continue;
      const std::uint32_t cap = cluster_.type_capacity(static_cast<TypeIndex>(t));
      most = std::max(most, cap > buffer_[t] ? cap - buffer_[t] : 0u);
    }
    if (job.gpus > most) {
      return Status::invalid_argument("gpus: at most " + std::to_string(most) + " GPUs of type " +
                                      (job.gpu_type.empty() ? std::string("any") : job.gpu_type) +
                                      " are sold on demand (the rest is the internal buffer)");
    }
  }
  return Admission{.type = type, .reservation = reservation};
}

Result<Effects> Scheduler::submit(Job job, Timestamp now) {
  HR_ASSIGN_OR_RETURN(const Admission admission, validate(job, now));
  const std::optional<TypeIndex> type = admission.type;
  const std::uint32_t reservation = admission.reservation;
  if (queued_total_ >= options_.max_queued_jobs) return Status::unavailable("the job queue is full");
  const std::uint32_t tenant = tenant_index(job.tenant_id, /*create=*/true);
  if (tenant == kNoIndex) return Status::unavailable("the scheduler knows too many tenants");
  HR_RETURN_IF_ERROR(check_quota_at_submit(tenants_[tenant], job, type));

  const std::uint32_t s = new_slot();
  Slot& slot = slots_[s];
  slot.type = type;
  slot.tenant = tenant;
  slot.reservation = reservation;
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

std::uint32_t Scheduler::new_slot() {
  std::uint32_t s;
  if (!free_slots_.empty()) {
    s = free_slots_.back();
    free_slots_.pop_back();
  } else {
    s = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  slots_[s] = Slot{};
  slots_[s].in_use = true;
  return s;
}

Result<Effects> Scheduler::restore(Job job, std::span<const GpuIndex> gpus, JobState state, Timestamp started_at,
                                   Timestamp now) {
  if (state != JobState::kStarting && state != JobState::kRunning && state != JobState::kPreempting) {
    return Status::invalid_argument("state: a restored job is starting, running or preempting");
  }
  if (state == JobState::kPreempting && job.tier != Tier::kSpot && job.tier != Tier::kReserved) {
    return Status::invalid_argument("state: only spot and reserved jobs are ever preempting");
  }
  HR_ASSIGN_OR_RETURN(const Admission admission, validate(job, now));
  if (gpus.size() != job.gpus) {
    return Status::invalid_argument("gpus: job " + std::to_string(job.id) + " has a gang of " +
                                    std::to_string(job.gpus) + ", not " + std::to_string(gpus.size()));
  }
  std::vector<GpuIndex> sorted(gpus.begin(), gpus.end());
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const GpuIndex g = sorted[i];
    if (g >= cluster_.gpu_count() || (i > 0 && sorted[i - 1] == g)) {
      return Status::invalid_argument("gpus: " + std::to_string(g) + " is out of range or listed twice");
    }
    if (!cluster_.is_available(g) || reservation_of_gpu_[g] != kNoIndex) {
      return Status::conflict("gpu " + std::to_string(g) + " is held already or on a node that is not up");
    }
    if (cluster_.gpu_type(g) != cluster_.gpu_type(sorted[0]) ||
        (admission.type && cluster_.gpu_type(g) != *admission.type)) {
      return Status::invalid_argument("gpus: not all of type " +
                                      cluster_.type_name(admission.type.value_or(cluster_.gpu_type(sorted[0]))));
    }
  }
  if (job.tier == Tier::kReserved) {
    // Its GPUs join its reservation's set (which starts with them when the
    // reservation has not set its GPUs aside yet).
    ReservationState& res = reservations_[admission.reservation];
    if (now < res.spec.start) return Status::conflict("reservation " + res.spec.id + " has not begun");
    if (res.gpus.size() + gpus.size() > res.spec.gpus) {
      return Status::conflict("reservation " + res.spec.id + " has no room for job " + std::to_string(job.id));
    }
  }
  const std::uint32_t tenant = tenant_index(job.tenant_id, /*create=*/true);
  if (tenant == kNoIndex) return Status::unavailable("the scheduler knows too many tenants");

  const std::uint32_t s = new_slot();
  Slot& slot = slots_[s];
  slot.type = admission.type;
  slot.tenant = tenant;
  slot.reservation = admission.reservation;
  if (job.submitted_at == Timestamp{}) job.submitted_at = started_at;
  job.entered_at = {};
  job.entered_at[static_cast<int>(JobState::kQueued)] = job.submitted_at;
  job.entered_at[static_cast<int>(JobState::kStarting)] = started_at;
  if (state != JobState::kStarting) job.entered_at[static_cast<int>(JobState::kRunning)] = started_at;
  if (state == JobState::kPreempting) job.entered_at[static_cast<int>(JobState::kPreempting)] = now;
  job.state = state;
  slot.job = std::move(job);
  slot_of_.emplace(slot.job.id, s);
  cluster_.allocate(slot.job.id, gpus);
  slot.gpus.assign(gpus.begin(), gpus.end());
  slot.held_type = cluster_.gpu_type(slot.gpus[0]);
  if (slot.job.tier == Tier::kReserved) {
    ReservationState& res = reservations_[slot.reservation];
    if (!res.started) {
      res.started = true;
      res.area = res.level ? cluster_.gpu_group(slot.gpus[0], *res.level) : res.type;
    }
    add_to_reservation(slot.reservation, slot.gpus);
    recompute_next_reservation_event();
  }
  count_held(slot, +1, now);
  if (slot.job.tier == Tier::kSpot && state != JobState::kPreempting) spot_index_add(s);
  // It was told its deadline before the restart; it gets a full grace again.
  const Timestamp end = state == JobState::kPreempting
                            ? now.plus_micros(options_.grace_ms[static_cast<int>(slot.job.tier)] * 1000)
                            : started_at.plus_seconds(slot.job.max_runtime_s);
  set_end(s, end.unix_micros);
  arm_timer(s, end);
  return Effects{};
}

// Starts a queued job on `gpus`: those it claimed already, available ones,
// idle ones of a reservation (held by its holder) and, with `donor`, ones the
// donor holds (a backfill head's claim, for rule 2).
void Scheduler::start(std::uint32_t s, std::vector<GpuIndex> gpus, Timestamp now, Effects& effects, JobId donor) {
  Slot& slot = slots_[s];
  ASSERT(slot.job.state == JobState::kQueued);
  ASSERT(gpus.size() == slot.job.gpus);
  const JobId id = slot.job.id;
  ASSERT(donor < kFirstReservedJobId);  // a reservation's GPUs are taken below, counted
  std::vector<GpuIndex> fresh, from_donor;
  std::uint32_t own = 0;
  std::uint32_t from_reservation = 0;
  for (GpuIndex g : gpus) {
    const JobId holder = cluster_.holder(g);
    if (holder == id) {
      ++own;
    } else if (holder == kNoJob) {
      fresh.push_back(g);
    } else if (donor != kNoJob && holder == donor) {
      from_donor.push_back(g);
    } else {
      const std::uint32_t r = reservation_of_gpu_[g];
      CHECK(r != kNoIndex && holder == reservation_holder(r))
          << "job " << id << " starts on gpu " << g << " held by job " << holder;
      ++from_reservation;
    }
  }
  CHECK(own == cluster_.held_by(id)) << "job " << id << " starts on GPUs that do not cover its claim";
  if (!fresh.empty()) cluster_.allocate(id, fresh);
  if (!from_donor.empty()) cluster_.transfer(donor, id, from_donor);
  if (from_reservation > 0) {
    for (GpuIndex g : gpus) {
      const std::uint32_t r = reservation_of_gpu_[g];
      if (r == kNoIndex || cluster_.holder(g) != reservation_holder(r)) continue;
      cluster_.transfer(reservation_holder(r), id, std::span<const GpuIndex>(&g, 1));
      --reservations_[r].idle;
    }
  }
  CHECK(cluster_.held_by(id) == gpus.size())
      << "job " << id << " holds " << cluster_.held_by(id) << " GPUs, not " << gpus.size();
  if (slot.head) drop_head(slot.held_type, /*release_claim=*/false);
  dequeue(s);
  slot.gpus = std::move(gpus);
  slot.plan.clear();
  slot.held_type = cluster_.gpu_type(slot.gpus[0]);
  count_held(slot, +1, now);
  if (slot.job.tier == Tier::kSpot && !slot.lent) spot_index_add(s);
  set_end(s, now.plus_seconds(slot.job.max_runtime_s).unix_micros);
  arm_timer(s, now.plus_seconds(slot.job.max_runtime_s));
  effects.push_back(Effect{.kind = Effect::Kind::kStart, .job = id, .gpus = slot.gpus, .deadline = {},
                           .state = JobState::kStarting, .reason = Reason::kPlaced});
  set_state(slot, JobState::kStarting, Reason::kPlaced, now, effects);
}

// Hands back GPUs the job of slot `s` holds: one of a live reservation's set
// goes back to the reservation's holder (or leaves the set when its node is
// not up); one promised to a backfill head joins the head's claim; the rest
// are released.
void Scheduler::give_back(std::uint32_t s, std::span<const GpuIndex> gpus) {
  Slot& slot = slots_[s];
  const JobId id = slot.job.id;
  Slot* head = nullptr;
  const Head* h = nullptr;
  if (slot.promised_to != kNoIndex && heads_[slot.held_type].slot == slot.promised_to) {
    head = &slots_[slot.promised_to];
    h = &heads_[slot.held_type];
  }
  std::vector<GpuIndex> release, to_head, to_reservation;
  std::uint32_t to_r = kNoIndex;
  auto flush_reservation = [&] {
    if (to_reservation.empty()) return;
    cluster_.transfer(id, reservation_holder(to_r), to_reservation);
    reservations_[to_r].idle += static_cast<std::uint32_t>(to_reservation.size());
    to_reservation.clear();
  };
  for (GpuIndex g : gpus) {
    const bool up = cluster_.node(cluster_.gpu_node(g)).state == fleet::NodeState::kUp;
    const std::uint32_t r = reservation_of_gpu_[g];
    if (r != kNoIndex) {
      if (up) {
        if (r != to_r) flush_reservation();
        to_r = r;
        to_reservation.push_back(g);
      } else {
        leave_reservation(r, g);
        release.push_back(g);
      }
      continue;
    }
    if (head != nullptr && up && head->gpus.size() + to_head.size() < head->job.gpus && in_area(g, h->level, h->area)) {
      to_head.push_back(g);
      continue;
    }
    release.push_back(g);
  }
  flush_reservation();
  if (!to_head.empty()) {
    cluster_.transfer(id, head->job.id, to_head);
    head->gpus.insert(head->gpus.end(), to_head.begin(), to_head.end());
  }
  if (!release.empty()) {
    if (release.size() == cluster_.held_by(id)) {
      cluster_.release(id, release);
    } else {
      cluster_.release_part(id, release);
    }
    reset_failures();  // GPUs came back
    ++releases_;
  }
}

void Scheduler::drop_claim(std::uint32_t s) {
  Slot& slot = slots_[s];
  if (slot.head) {
    drop_head(slot.held_type, /*release_claim=*/true);
  } else if (!slot.gpus.empty()) {
    give_back(s, slot.gpus);
    slot.gpus.clear();
  }
  slot.plan.clear();
}

void Scheduler::stop(std::uint32_t s, JobState state, Reason reason, Timestamp now, Effects& effects) {
  Slot& slot = slots_[s];
  ASSERT(holds_gpus(slot.job.state));
  count_held(slot, -1, now);
  if (slot.in_spot_index) spot_index_remove(s);
  if (slot.in_ends) {
    ends_by_type_[slot.held_type].erase({slot.end_us, s});
    slot.in_ends = false;
  }
  give_back(s, slot.gpus);
  slot.gpus.clear();
  unpromise(s);
  CHECK(cluster_.held_by(slot.job.id) == 0) << "job " << slot.job.id << " stopped but holds GPUs";
  slot.timer_generation = 0;  // disarms its timer
  if (slot.lent) {
    slot.lent = false;
    slot.reservation = kNoIndex;
  }
  set_state(slot, state, reason, now, effects);
  const bool can_requeue = slot.job.tier != Tier::kReserved || slot.reservation != kNoIndex;
  if (state == JobState::kPreempted && slot.job.requeue_on_preempt && can_requeue &&
      queued_total_ < options_.max_queued_jobs) {
    set_state(slot, JobState::kQueued, Reason::kRequeued, now, effects);
    enqueue(s);
    return;
  }
  free_slot(s);
}

void Scheduler::kill(std::uint32_t s, JobState state, Reason reason, Timestamp now, Effects& effects) {
  effects.push_back(Effect{.kind = Effect::Kind::kKill, .job = slots_[s].job.id, .gpus = slots_[s].gpus,
                           .deadline = {}, .state = state, .reason = reason});
  stop(s, state, reason, now, effects);
}

void Scheduler::notice(std::uint32_t s, Timestamp deadline, Reason reason, Timestamp now, Effects& effects) {
  Slot& victim = slots_[s];
  CHECK(holds_gpus(victim.job.state) && victim.job.state != JobState::kPreempting)
      << "job " << victim.job.id << " is not running and may not get notice";
  CHECK(victim.job.tier == Tier::kSpot || (victim.job.tier == Tier::kReserved && reason == Reason::kReservationEnded))
      << "job " << victim.job.id << " of tier " << tier_name(victim.job.tier) << " may not be preempted";
  if (victim.in_spot_index) spot_index_remove(s);
  unpromise(s);
  ++victim.job.preemptions;
  set_end(s, deadline.unix_micros);
  arm_timer(s, deadline);
  effects.push_back(Effect{.kind = Effect::Kind::kPreemptNotice, .job = victim.job.id, .gpus = {},
                           .deadline = deadline, .state = JobState::kPreempting, .reason = reason});
  set_state(victim, JobState::kPreempting, reason, now, effects);
}

Result<Effects> Scheduler::cancel(JobId id, Timestamp now) {
  Slot* slot = live(id);
  if (slot == nullptr) return Status::not_found("job " + std::to_string(id) + " is not live");
  const std::uint32_t s = slot_of_.at(id);
  Effects effects;
  if (slot->job.state == JobState::kQueued) {
    drop_claim(s);
    dequeue(s);
    set_state(slots_[s], JobState::kCancelled, Reason::kCancelled, now, effects);
    free_slot(s);
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

Result<Effects> Scheduler::preempt(JobId id, Reason reason, Timestamp now) {
  Slot* slot = live(id);
  if (slot == nullptr) return Status::not_found("job " + std::to_string(id) + " is not live");
  if (slot->job.tier != Tier::kSpot) {
    return Status::invalid_argument("job " + std::to_string(id) + " is " + std::string(tier_name(slot->job.tier)) +
                                    ", not spot: only spot jobs may be preempted");
  }
  Effects effects;
  // A queued job holds nothing to give notice for (the caller keeps it from
  // starting), and one under notice keeps its deadline: a second notice
  // would only push the kill later.
  if (!holds_gpus(slot->job.state) || slot->job.state == JobState::kPreempting) return effects;
  const Timestamp deadline = now.plus_micros(options_.grace_ms[static_cast<int>(Tier::kSpot)] * 1000);
  notice(slot_of_.at(id), deadline, reason, now, effects);
  return effects;
}

Status Scheduler::set_spot_types(JobId id, std::uint64_t type_mask) {
  Slot* slot = live(id);
  if (slot == nullptr) return Status::not_found("job " + std::to_string(id) + " is not live");
  if (slot->job.tier == Tier::kSpot) slot->spot_types = type_mask;
  return Status::ok();
}

Result<Effects> Scheduler::set_node_state(std::string_view node, fleet::NodeState state, Timestamp now) {
  const std::optional<NodeIndex> n = cluster_.find_node(node);
  if (!n) return Status::not_found("node " + fleet::quote_for_message(node) + " is not in the fleet");
  Effects effects;
  if (cluster_.node(*n).state == state) return effects;
  cluster_.set_node_state(*n, state);
  ++node_epoch_;
  reset_failures();
  if (state == fleet::NodeState::kUp) return effects;
  // Claims and idle reserved GPUs on the node go; down loses its jobs,
  // draining gives its spot jobs notice.
  const ClusterState::Node& info = cluster_.node(*n);
  const Timestamp deadline = now.plus_micros(options_.grace_ms[static_cast<int>(Tier::kSpot)] * 1000);
  for (GpuIndex g = info.gpu_begin; g < info.gpu_end; ++g) {
    const JobId holder = cluster_.holder(g);
    if (holder == kNoJob) continue;
    if (holder >= kFirstReservedJobId) {
      const std::uint32_t r = static_cast<std::uint32_t>(holder - kFirstReservedJobId);
      cluster_.release_part(holder, std::span<const GpuIndex>(&g, 1));
      --reservations_[r].idle;
      leave_reservation(r, g);
      continue;
    }
    const std::uint32_t s = slot_of_.at(holder);
    Slot& slot = slots_[s];
    if (slot.job.state == JobState::kQueued) {
      drop_claim(s);
    } else if (state == fleet::NodeState::kDown) {
      kill(s, JobState::kLost, Reason::kNodeLost, now, effects);
    } else if (state == fleet::NodeState::kDraining && slot.job.tier == Tier::kSpot &&
               slot.job.state != JobState::kPreempting) {
      notice(s, deadline, Reason::kNodeDraining, now, effects);
    }
  }
  return effects;
}

// ---- The tick --------------------------------------------------------------------

Effects Scheduler::tick(Timestamp now) {
  Effects effects;
  ++tick_;
  last_tick_at_ = now;
  backfill_tries_ = 0;
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
  end_reservations(now, effects);
  reset_failures();
  std::size_t scanned = 0;
  std::size_t preemptions = 0;
  serve_tier(Tier::kInternal, now, effects, scanned, preemptions);
  start_reservations(now, effects);
  serve_tier(Tier::kReserved, now, effects, scanned, preemptions);
  serve_tier(Tier::kOnDemand, now, effects, scanned, preemptions);
  serve_tier(Tier::kSpot, now, effects, scanned, preemptions);
  return effects;
}

// The tier's jobs in fair-share order: a heap of its tenants with queued
// jobs on (usage / weight, queue order of their next job).
void Scheduler::serve_tier(Tier tier, Timestamp now, Effects& effects, std::size_t& scanned, std::size_t& preemptions) {
  const int t = static_cast<int>(tier);
  if (tier_tenants_[t].empty() || scanned >= options_.tick_scan_jobs) return;
  // First the tier's jobs that hold claims (backfill heads, jobs waiting for
  // victims): whatever they let go of then goes through the whole order, so
  // no job that failed earlier in this tick could have used it.
  claimers_.clear();
  for (const Head& h : heads_) {
    if (h.slot != kNoIndex && slots_[h.slot].job.tier == tier) claimers_.push_back(h.slot);
  }
  std::erase_if(planned_, [&](const std::pair<std::uint32_t, JobId>& p) {
    const Slot& slot = slots_[p.first];
    return !slot.in_use || slot.job.id != p.second || slot.plan.empty() || slot.job.state != JobState::kQueued;
  });
  for (const auto& [s, id] : planned_) {
    if (slots_[s].job.tier == tier) claimers_.push_back(s);
  }
  // One of them may let go of GPUs another looked at before: then they all
  // look again (a few rounds at most; it is rare).
  for (int round = 0; round < 4; ++round) {
    const std::uint64_t releases = releases_;
    for (std::uint32_t s : claimers_) {
      if (scanned >= options_.tick_scan_jobs) return;
      const Slot& slot = slots_[s];
      if (!slot.in_use || slot.job.state != JobState::kQueued || slot.job.tier != tier) continue;
      if (round == 0 && slot.visit == tick_) continue;
      ++scanned;
      try_schedule(s, now, effects, preemptions);
    }
    if (releases_ == releases) break;
  }
  // Then all of them, in fair-share order.
  auto later = [](const HeapEntry& a, const HeapEntry& b) { return a.key != b.key ? a.key > b.key : a.seq > b.seq; };
  heap_.clear();
  for (std::uint32_t tenant : tier_tenants_[t]) {
    const std::uint32_t s = tenants_[tenant].queues[t].head;
    heap_.push_back(HeapEntry{share_key(tenant, tier, now), slots_[s].seq, tenant, s});
  }
  std::make_heap(heap_.begin(), heap_.end(), later);
  while (!heap_.empty() && scanned < options_.tick_scan_jobs) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const HeapEntry entry = heap_.back();
    heap_.pop_back();
    const std::uint32_t next = slots_[entry.slot].next;  // read first: starting unlinks the job
    if (slots_[entry.slot].visit != tick_) {
      ++scanned;
      try_schedule(entry.slot, now, effects, preemptions);
    }
    if (next != kNoIndex) {
      // The tenant's usage does not move within a tick, so neither does its key.
      heap_.push_back(HeapEntry{entry.key, slots_[next].seq, entry.tenant, next});
      std::push_heap(heap_.begin(), heap_.end(), later);
    }
  }
}

std::uint64_t Scheduler::allowed_types(const Slot& slot, Timestamp now, WaitReason& why) const {
  const std::size_t types = cluster_.type_count();
  std::uint64_t mask = slot.type ? type_bit(*slot.type) : (types >= 64 ? ~std::uint64_t{0} : type_bit(types) - 1);
  if (slot.job.tier == Tier::kSpot) {
    mask &= slot.spot_types;
    if (mask == 0) {
      why = WaitReason::kOutbid;
      return 0;
    }
  }
  const Tenant& tenant = tenants_[slot.tenant];
  if (!tenant.limits.empty()) {
    for (std::size_t t = 0; t < types; ++t) {
      if ((mask & type_bit(t)) &&
          !quota_allows_start(tenant, slot.job.tier, static_cast<TypeIndex>(t), slot.job.gpus)) {
        mask &= ~type_bit(t);
      }
    }
    if (mask == 0) {
      why = WaitReason::kQuota;
      return 0;
    }
  }
  if (slot.job.tier == Tier::kOnDemand) {
    for (std::size_t t = 0; t < types; ++t) {
      if ((mask & type_bit(t)) &&
          slot.job.gpus > on_demand_headroom(static_cast<TypeIndex>(t), now, slot.job.max_runtime_s)) {
        mask &= ~type_bit(t);
      }
    }
    if (mask == 0) why = WaitReason::kOnDemandHeadroom;
  }
  return mask;
}

std::optional<std::vector<GpuIndex>> Scheduler::place_job(const Slot& slot, std::uint64_t allowed, bool use_cache) {
  const std::size_t types = cluster_.type_count();
  const std::uint64_t all = slot.type ? type_bit(*slot.type) : (types >= 64 ? ~std::uint64_t{0} : type_bit(types) - 1);
  const std::uint32_t gang = slot.job.gpus;
  if (allowed == all) {
    const std::size_t key = failure_key(slot.type, slot.job.packing);
    if (use_cache && gang >= failed_gpus_[key]) return std::nullopt;
    auto gpus = place(cluster_, PlacementRequest{.gpus = gang, .type = slot.type, .packing = slot.job.packing});
    if (!gpus) failed_gpus_[key] = std::min(failed_gpus_[key], gang);
    return gpus;
  }
  for (std::size_t t = 0; t < types; ++t) {
    if (!(allowed & type_bit(t))) continue;
    const std::size_t key = failure_key(static_cast<TypeIndex>(t), slot.job.packing);
    if (use_cache && gang >= failed_gpus_[key]) continue;
    auto gpus =
        place(cluster_, PlacementRequest{.gpus = gang, .type = static_cast<TypeIndex>(t), .packing = slot.job.packing});
    if (gpus) return gpus;
    failed_gpus_[key] = std::min(failed_gpus_[key], gang);
  }
  return std::nullopt;
}

void Scheduler::try_schedule(std::uint32_t s, Timestamp now, Effects& effects, std::size_t& preemptions) {
  Slot& slot = slots_[s];
  slot.visit = tick_;
  if (slot.job.tier == Tier::kReserved) {
    schedule_reserved(s, now, effects);
    return;
  }
  WaitReason why = WaitReason::kNoFit;
  const std::uint64_t allowed = allowed_types(slot, now, why);
  if (allowed == 0) {
    drop_claim(s);  // what it claimed serves others while it waits
    slot.wait = why;
    return;
  }
  if (!slot.plan.empty() && follow_plan(s, allowed, now, effects)) return;
  if (slot.head && visit_head(s, allowed, now, effects)) return;
  ASSERT(slot.gpus.empty());
  if (auto gpus = place_job(slot, allowed, true)) {
    start(s, std::move(*gpus), now, effects);
    return;
  }
  if (drop_later_heads(s, allowed)) {
    if (auto gpus = place_job(slot, allowed, true)) {
      start(s, std::move(*gpus), now, effects);
      return;
    }
  }
  if (slot.job.tier == Tier::kSpot && lend(s, allowed, now, effects)) return;
  if (backfill_on_head(s, allowed, now, effects)) return;
  const int tier = static_cast<int>(slot.job.tier);
  if (options_.preempts_spot[tier] && slot.job.tier != Tier::kSpot && preemptions < options_.tick_preemptions &&
      try_preempt(s, allowed, now, effects)) {
    ++preemptions;
    slot.wait = WaitReason::kWaitingForVictims;
    return;
  }
  if (become_head(s, allowed, now)) {
    slot.wait = WaitReason::kBackfillHead;
    return;
  }
  slot.wait = WaitReason::kNoFit;
}

// A preemptor waiting for its victims: it starts when its whole plan is its
// own or free; the plan is dropped when part of it went off an up node or to
// a job that is not leaving. True when the job is dealt with for this tick.
bool Scheduler::follow_plan(std::uint32_t s, std::uint64_t allowed, Timestamp now, Effects& effects) {
  Slot& slot = slots_[s];
  bool complete = true;
  bool broken = false;
  JobId last_leaving = kNoJob;
  for (GpuIndex g : slot.plan) {
    if (cluster_.node(cluster_.gpu_node(g)).state != fleet::NodeState::kUp) {
      broken = true;
      break;
    }
    const JobId holder = cluster_.holder(g);
    if (holder == slot.job.id || holder == kNoJob) continue;
    complete = false;
    if (holder == last_leaving) continue;
    const std::uint32_t v = slot_of_holder(holder);
    if (v == kNoIndex || slots_[v].job.state != JobState::kPreempting) {
      broken = true;
      break;
    }
    last_leaving = holder;
  }
  if (broken) {
    drop_claim(s);
    return false;
  }
  if (complete && !(allowed & type_bit(cluster_.gpu_type(slot.plan[0])))) {
    drop_claim(s);  // its quota changed under it
    return false;
  }
  if (complete) {
    std::vector<GpuIndex> plan = slot.plan;
    start(s, std::move(plan), now, effects);
    return true;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (auto gpus = place_job(slot, allowed, true)) {  // a fit elsewhere, sooner
      drop_claim(s);
      start(s, std::move(*gpus), now, effects);
      return true;
    }
    if (attempt == 0 && !drop_later_heads(s, allowed)) break;
  }
  slot.wait = WaitReason::kWaitingForVictims;
  return true;
}

}  // namespace headroom::sched
