// The Scheduler's reservations (booking, setting aside, placing reserved
// jobs, lending to spot, ending), and the surplus and on-demand headroom that
// depend on them. See "Reservations" and "Surplus" in scheduler.h.
//
// A reservation's set of GPUs lives in reservation_of_gpu_ (GPU ->
// reservation) and ReservationState::gpus. Every GPU of a live set is held by
// the reservation's holder (idle), by one of its reserved jobs, by a queued
// reserved job of it (a claim), or by a spot job (borrowing, or leaving after
// a notice); never by anything else. The Scheduler's own code keeps this;
// the randomised test checks it after every step.
#include <algorithm>
#include <string>

#include "common/check.h"
#include "sched/placement.h"
#include "sched/scheduler.h"

namespace headroom::sched {

// ---- Views and the need over time -----------------------------------------------

ReservationView Scheduler::view_of(std::uint32_t r) const {
  const ReservationState& res = reservations_[r];
  return ReservationView{.spec = res.spec,
                         .index = r,
                         .started = res.started,
                         .gpus = res.gpus,
                         .idle = res.idle,
                         .missing = res.spec.gpus - static_cast<std::uint32_t>(res.gpus.size())};
}

std::optional<std::uint32_t> Scheduler::reservation_of(std::string_view id) const {
  auto it = reservation_by_id_.find(std::string(id));
  if (it == reservation_by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<ReservationView> Scheduler::find_reservation(std::string_view id) const {
  const std::optional<std::uint32_t> r = reservation_of(id);
  if (!r) return std::nullopt;
  return view_of(*r);
}

void Scheduler::rebuild_reservation_events(TypeIndex type) {
  auto& steps = reservation_steps_[type];
  steps.clear();
  for (const ReservationState& res : reservations_) {
    if (!res.in_use || res.type != type) continue;
    steps.emplace_back(res.spec.start.unix_micros, static_cast<std::int64_t>(res.spec.gpus));
    steps.emplace_back(res.spec.end.unix_micros, -static_cast<std::int64_t>(res.spec.gpus));
  }
  std::sort(steps.begin(), steps.end());  // at one instant, ends before starts: windows are [start, end)
}

// The most GPUs the reservations of a type need at one instant of [from, to).
std::uint32_t Scheduler::reserved_need_max(TypeIndex type, std::int64_t from_us, std::int64_t to_us) const {
  std::int64_t need = 0;
  std::int64_t most = 0;
  bool inside = false;
  for (const auto& [at, delta] : reservation_steps_[type]) {
    if (at >= to_us) break;
    if (at > from_us && !inside) {
      most = need;  // the need at `from`
      inside = true;
    }
    need += delta;
    if (inside) most = std::max(most, need);
  }
  if (!inside) most = need;
  return static_cast<std::uint32_t>(std::max<std::int64_t>(most, 0));
}

// GPUs of a type held by on-demand jobs expected to run past `at_us`.
std::uint32_t Scheduler::on_demand_running_after(TypeIndex type, std::int64_t at_us) const {
  std::uint64_t gpus = 0;
  const auto& ends = ends_by_type_[type];
  for (auto it = ends.upper_bound({at_us, UINT32_MAX}); it != ends.end(); ++it) {
    const Slot& slot = slots_[it->second];
    if (slot.job.tier == Tier::kOnDemand) gpus += slot.job.gpus;
  }
  return static_cast<std::uint32_t>(gpus);
}

std::uint32_t Scheduler::on_demand_headroom(TypeIndex type, Timestamp now, std::int64_t runtime_s) const {
  const std::int64_t headroom = std::int64_t{cluster_.type_up(type)} - buffer_[type] -
                                held_[static_cast<int>(Tier::kInternal)][type] -
                                held_[static_cast<int>(Tier::kOnDemand)][type] -
                                reserved_need_max(type, now.unix_micros, now.plus_seconds(runtime_s).unix_micros);
  return static_cast<std::uint32_t>(std::max<std::int64_t>(headroom, 0));
}

// ---- Booking ---------------------------------------------------------------------

Status Scheduler::add_reservation(Reservation reservation, Timestamp now) {
  const Reservation& r = reservation;
  if (r.id.empty() || r.id.size() > limits::kSchedReservationIdBytes) {
    return Status::invalid_argument("id: expected 1.." + std::to_string(limits::kSchedReservationIdBytes) + " bytes");
  }
  if (r.tenant_id.empty()) return Status::invalid_argument("tenant_id: required");
  const std::optional<TypeIndex> type = cluster_.find_type(r.gpu_type);
  if (!type) return Status::invalid_argument("gpu_type: the fleet has no " + fleet::quote_for_message(r.gpu_type));
  if (r.gpus == 0 || r.gpus > limits::kSchedGangGpus) {
    return Status::invalid_argument("gpus: expected 1.." + std::to_string(limits::kSchedGangGpus));
  }
  if (r.end <= r.start) return Status::invalid_argument("end: must be after start");
  if (r.end <= now) return Status::invalid_argument("end: " + to_rfc3339(r.end) + " is past");
  if (r.end.unix_micros - r.start.unix_micros > limits::kSchedReservationMaxS * 1'000'000) {
    return Status::invalid_argument("end: a reservation lasts at most " +
                                    std::to_string(limits::kSchedReservationMaxS / 86'400) + " days");
  }
  if (!can_ever_fit(cluster_, PlacementRequest{.gpus = r.gpus, .type = type, .packing = r.packing})) {
    return Status::invalid_argument("gpus: the fleet has no " + std::string(packing_name(r.packing)) +
                                    " placement of " + std::to_string(r.gpus) + " " + r.gpu_type + " GPUs");
  }
  if (reservation_by_id_.contains(r.id)) {
    return Status::already_exists("reservation " + fleet::quote_for_message(r.id) + " is live");
  }
  if (reservation_by_id_.size() >= limits::kSchedReservations) {
    return Status::unavailable("the scheduler holds " + std::to_string(limits::kSchedReservations) +
                               " reservations already");
  }
  const std::uint32_t free = reservable(*type, r.start, r.end, now);
  if (r.gpus > free) {
    return Status::conflict("only " + std::to_string(free) + " " + r.gpu_type +
                            " GPUs are free to reserve from " + to_rfc3339(r.start) + " to " + to_rfc3339(r.end) +
                            " (" + std::to_string(r.gpus) + " asked)");
  }
  std::uint32_t index;
  if (!free_reservations_.empty()) {
    index = free_reservations_.back();
    free_reservations_.pop_back();
  } else {
    index = static_cast<std::uint32_t>(reservations_.size());
    reservations_.emplace_back();
  }
  ReservationState& res = reservations_[index];
  res = ReservationState{};
  res.spec = std::move(reservation);
  res.type = *type;
  res.level = packing_level(res.spec.packing);
  res.in_use = true;
  reservation_by_id_.emplace(res.spec.id, index);
  rebuild_reservation_events(*type);
  recompute_next_reservation_event();
  return Status::ok();
}

std::uint32_t Scheduler::reservable(TypeIndex type, Timestamp from, Timestamp to, Timestamp now) const {
  const std::int64_t start = std::max(from, now).unix_micros;
  if (to.unix_micros <= start) return 0;
  const std::int64_t free = std::int64_t{cluster_.type_capacity(type)} - buffer_[type] -
                            reserved_need_max(type, start, to.unix_micros) - on_demand_running_after(type, start);
  return static_cast<std::uint32_t>(std::max<std::int64_t>(free, 0));
}

Result<Effects> Scheduler::cancel_reservation(std::string_view id, Timestamp now) {
  const std::optional<std::uint32_t> r = reservation_of(id);
  if (!r) return Status::not_found("reservation " + fleet::quote_for_message(id) + " is not live");
  Effects effects;
  end_reservation(*r, now, effects);
  recompute_next_reservation_event();
  return effects;
}

void Scheduler::recompute_next_reservation_event() {
  next_reservation_event_us_ = INT64_MAX;
  for (const ReservationState& res : reservations_) {
    if (!res.in_use) continue;
    next_reservation_event_us_ =
        std::min(next_reservation_event_us_, res.started ? res.spec.end.unix_micros : res.spec.start.unix_micros);
  }
}

void Scheduler::update_short(std::uint32_t r) {
  ReservationState& res = reservations_[r];
  const bool is_short = res.in_use && res.started && res.gpus.size() < res.spec.gpus;
  if (is_short == res.short_listed) return;
  res.short_listed = is_short;
  if (is_short) {
    ++reservations_short_;
  } else {
    --reservations_short_;
  }
}

// ---- The set ---------------------------------------------------------------------

void Scheduler::add_to_reservation(std::uint32_t r, std::span<const GpuIndex> gpus) {
  ReservationState& res = reservations_[r];
  for (GpuIndex g : gpus) {
    CHECK(reservation_of_gpu_[g] == kNoIndex)
        << "gpu " << g << " is in reservation " << reservation_of_gpu_[g] << " and would join " << r;
    reservation_of_gpu_[g] = r;
    res.gpus.push_back(g);
  }
  CHECK(res.gpus.size() <= res.spec.gpus) << "reservation " << res.spec.id << " holds more GPUs than it booked";
  update_short(r);
}

void Scheduler::leave_reservation(std::uint32_t r, GpuIndex g) {
  ReservationState& res = reservations_[r];
  CHECK(reservation_of_gpu_[g] == r) << "gpu " << g << " is not in reservation " << r;
  reservation_of_gpu_[g] = kNoIndex;
  auto it = std::find(res.gpus.begin(), res.gpus.end(), g);
  *it = res.gpus.back();
  res.gpus.pop_back();
  update_short(r);
}

std::vector<GpuIndex> Scheduler::idle_reserved(std::uint32_t r) const {
  const ReservationState& res = reservations_[r];
  std::vector<GpuIndex> idle;
  idle.reserve(res.idle);
  for (GpuIndex g : res.gpus) {
    if (cluster_.holder(g) == reservation_holder(r) &&
        cluster_.node(cluster_.gpu_node(g)).state == fleet::NodeState::kUp) {
      idle.push_back(g);
    }
  }
  return idle;
}

void Scheduler::take_victims(std::uint32_t r, const VictimPlan& plan, Timestamp now, Effects& effects) {
  ReservationState& res = reservations_[r];
  if (plan.free_needed > 0) {
    const std::vector<GpuIndex> claim = claim_available(plan.level, plan.area, plan.free_needed, reservation_holder(r));
    res.idle += static_cast<std::uint32_t>(claim.size());
    add_to_reservation(r, claim);
  }
  add_to_reservation(r, plan.victim_gpus);  // theirs until they leave
  const Timestamp deadline = now.plus_micros(options_.grace_ms[static_cast<int>(Tier::kSpot)] * 1000);
  for (std::uint32_t v : plan.victims) notice(v, deadline, Reason::kPreemptedForHigherTier, now, effects);
}

// Sets a begun reservation's GPUs aside, or tops up one that is short.
void Scheduler::fill_reservation(std::uint32_t r, Timestamp now, Effects& effects) {
  ReservationState& res = reservations_[r];
  const std::uint32_t need = res.spec.gpus - static_cast<std::uint32_t>(res.gpus.size());
  if (need == 0) return;
  const JobId holder = reservation_holder(r);
  const std::uint64_t type_mask = std::uint64_t{1} << res.type;
  if (res.area == kNoIndex) {
    // First: the whole set by best fit, else the best area with spot victims.
    const PlacementRequest request{.gpus = need, .type = res.type, .packing = res.spec.packing};
    std::optional<std::vector<GpuIndex>> gpus = place(cluster_, request);
    if (!gpus && drop_unserved_head(res.type)) gpus = place(cluster_, request);
    if (gpus) {
      cluster_.allocate(holder, *gpus);
      res.idle += need;
      res.area = res.level ? cluster_.gpu_group((*gpus)[0], *res.level) : res.type;
      add_to_reservation(r, *gpus);
      return;
    }
    const std::optional<VictimPlan> plan = plan_victims(need, type_mask, res.spec.packing, /*partial=*/true);
    if (!plan) return;  // nothing to take yet: the next tick tries again
    res.area = plan->area;
    take_victims(r, *plan, now, effects);
    return;
  }
  // Topping up inside its area: available GPUs (after the type's backfill
  // head lets go of its claim there), then spot victims.
  if (area_available(res.level, res.area) < need && heads_[res.type].slot != kNoIndex) {
    const Slot& head = slots_[heads_[res.type].slot];
    const bool claims_here =
        std::any_of(head.gpus.begin(), head.gpus.end(), [&](GpuIndex g) { return in_area(g, res.level, res.area); });
    if (claims_here) drop_unserved_head(res.type);
  }
  const std::uint32_t take = std::min(need, area_available(res.level, res.area));
  if (take > 0) {
    const std::vector<GpuIndex> claim = claim_available(res.level, res.area, take, holder);
    res.idle += take;
    add_to_reservation(r, claim);
  }
  if (take == need) return;
  const std::optional<VictimPlan> plan =
      plan_victims(need - take, type_mask, res.spec.packing, /*partial=*/true, res.area);
  if (plan && !plan->victims.empty()) take_victims(r, *plan, now, effects);
}

// A reservation sets its GPUs aside after the internal tier is served and
// before the others: it may take the claim of a head not served yet in this
// tick (on-demand or spot), never of one served before it.
bool Scheduler::drop_unserved_head(TypeIndex type) {
  const Head& h = heads_[type];
  if (h.slot == kNoIndex || slots_[h.slot].visit == tick_) return false;
  return drop_head(type, /*release_claim=*/true);
}

void Scheduler::start_reservations(Timestamp now, Effects& effects) {
  if (now.unix_micros < next_reservation_event_us_ && reservations_short_ == 0) return;
  for (std::uint32_t r = 0; r < reservations_.size(); ++r) {
    ReservationState& res = reservations_[r];
    if (!res.in_use) continue;
    if (!res.started && res.spec.start <= now && now < res.spec.end) {
      res.started = true;
      update_short(r);
      fill_reservation(r, now, effects);
    } else if (res.started && res.short_listed) {
      fill_reservation(r, now, effects);
    }
  }
  recompute_next_reservation_event();
}

void Scheduler::end_reservations(Timestamp now, Effects& effects) {
  if (now.unix_micros < next_reservation_event_us_) return;
  for (std::uint32_t r = 0; r < reservations_.size(); ++r) {
    if (reservations_[r].in_use && reservations_[r].spec.end <= now) end_reservation(r, now, effects);
  }
  recompute_next_reservation_event();
}

void Scheduler::end_reservation(std::uint32_t r, Timestamp now, Effects& effects) {
  ReservationState& res = reservations_[r];
  const JobId holder = reservation_holder(r);
  // Its queued jobs can never run now.
  if (res.queued_jobs > 0) {
    const std::uint32_t t = tenant_of_.at(res.spec.tenant_id);
    std::uint32_t s = tenants_[t].queues[static_cast<int>(Tier::kReserved)].head;
    while (s != kNoIndex && res.queued_jobs > 0) {
      const std::uint32_t next = slots_[s].next;
      if (slots_[s].reservation == r) {
        drop_claim(s);
        dequeue(s);
        set_state(slots_[s], JobState::kCancelled, Reason::kReservationEnded, now, effects);
        free_slot(s);
      }
      s = next;
    }
  }
  // Its running jobs get notice; borrowers become ordinary spot jobs.
  const Timestamp deadline = now.plus_micros(options_.grace_ms[static_cast<int>(Tier::kReserved)] * 1000);
  JobId last = kNoJob;
  for (std::size_t i = 0; i < res.gpus.size(); ++i) {
    const JobId h = cluster_.holder(res.gpus[i]);
    if (h == kNoJob || h == holder || h == last) continue;
    last = h;
    const std::uint32_t v = slot_of_holder(h);
    CHECK(v != kNoIndex) << "gpu " << res.gpus[i] << " of reservation " << res.spec.id << " held by unknown job " << h;
    Slot& slot = slots_[v];
    if (slot.job.tier == Tier::kReserved && slot.reservation == r) {
      slot.reservation = kNoIndex;
      if (slot.job.state != JobState::kPreempting) notice(v, deadline, Reason::kReservationEnded, now, effects);
    } else if (slot.lent && slot.reservation == r) {
      slot.lent = false;
      slot.reservation = kNoIndex;
      if (slot.job.state != JobState::kPreempting) spot_index_add(v);
    }
  }
  std::vector<GpuIndex> idle;
  for (GpuIndex g : res.gpus) {
    reservation_of_gpu_[g] = kNoIndex;
    if (cluster_.holder(g) == holder) idle.push_back(g);
  }
  if (!idle.empty()) {
    cluster_.release(holder, idle);
    reset_failures();
  }
  CHECK(cluster_.held_by(holder) == 0) << "reservation " << res.spec.id << " ended holding GPUs";
  res.gpus.clear();
  res.in_use = false;
  update_short(r);
  const TypeIndex type = res.type;
  reservation_by_id_.erase(res.spec.id);
  res = ReservationState{};
  free_reservations_.push_back(r);
  rebuild_reservation_events(type);
}

// ---- Reserved jobs and lending --------------------------------------------------

// A reserved job, on its reservation's set only. FIFO within the
// reservation: once one of its jobs does not fit in a tick, the later ones
// wait too, so a large one is not starved by small ones.
void Scheduler::schedule_reserved(std::uint32_t s, Timestamp now, Effects& effects) {
  Slot& slot = slots_[s];
  const std::uint32_t r = slot.reservation;
  ReservationState& res = reservations_[r];
  if (!res.started) {
    slot.wait = WaitReason::kReservationNotStarted;
    return;
  }
  if (res.blocked_visit == tick_) {
    slot.wait = WaitReason::kReservationFull;
    return;
  }
  if (!quota_allows_start(tenants_[slot.tenant], Tier::kReserved, res.type, slot.job.gpus)) {
    drop_claim(s);
    slot.wait = WaitReason::kQuota;
    return;
  }
  const JobId holder = reservation_holder(r);
  auto up = [&](GpuIndex g) { return cluster_.node(cluster_.gpu_node(g)).state == fleet::NodeState::kUp; };
  if (!slot.plan.empty()) {
    // Waiting for borrowers to leave.
    bool complete = true;
    bool broken = false;
    for (GpuIndex g : slot.plan) {
      if (!up(g) || reservation_of_gpu_[g] != r) {
        broken = true;
        break;
      }
      const JobId h = cluster_.holder(g);
      if (h == slot.job.id || h == holder) continue;
      complete = false;
      const std::uint32_t v = slot_of_holder(h);
      if (v == kNoIndex || slots_[v].job.tier != Tier::kSpot || slots_[v].job.state != JobState::kPreempting) {
        broken = true;
        break;
      }
    }
    if (broken) {
      drop_claim(s);
    } else if (complete) {
      std::vector<GpuIndex> plan = slot.plan;
      start(s, std::move(plan), now, effects);
      return;
    } else {
      slot.wait = WaitReason::kWaitingForVictims;
      res.blocked_visit = tick_;
      return;
    }
  }
  const std::vector<GpuIndex> idle = idle_reserved(r);
  if (auto gpus = place_within(cluster_, idle, slot.job.gpus, slot.job.packing)) {
    start(s, std::move(*gpus), now, effects);
    return;
  }
  // Spot jobs on the set (borrowers, or victims still leaving) count as
  // coming back: preempt the borrowers in the way.
  std::vector<GpuIndex> candidates;
  for (GpuIndex g : res.gpus) {
    if (!up(g)) continue;
    const JobId h = cluster_.holder(g);
    if (h == holder) {
      candidates.push_back(g);
      continue;
    }
    const std::uint32_t v = slot_of_holder(h);
    if (v != kNoIndex && slots_[v].job.tier == Tier::kSpot) candidates.push_back(g);
  }
  res.blocked_visit = tick_;
  std::optional<std::vector<GpuIndex>> plan = place_within(cluster_, candidates, slot.job.gpus, slot.job.packing);
  if (!plan) {
    slot.wait = WaitReason::kReservationFull;
    return;
  }
  const Timestamp deadline = now.plus_micros(options_.grace_ms[static_cast<int>(Tier::kSpot)] * 1000);
  std::vector<GpuIndex> claim;
  JobId last = kNoJob;
  for (GpuIndex g : *plan) {
    const JobId h = cluster_.holder(g);
    if (h == holder) {
      claim.push_back(g);
      continue;
    }
    if (h == last) continue;
    last = h;
    const std::uint32_t v = slot_of_holder(h);
    if (slots_[v].job.state != JobState::kPreempting) {
      notice(v, deadline, Reason::kPreemptedForHigherTier, now, effects);
    }
  }
  cluster_.transfer(holder, slot.job.id, claim);
  res.idle -= static_cast<std::uint32_t>(claim.size());
  slot.gpus = std::move(claim);
  slot.plan = std::move(*plan);
  planned_.emplace_back(s, slot.job.id);
  slot.wait = WaitReason::kWaitingForVictims;
}

// A spot job that fits nowhere else borrows a begun reservation's idle GPUs,
// unless the reservation has jobs of its own waiting.
bool Scheduler::lend(std::uint32_t s, std::uint64_t allowed, Timestamp now, Effects& effects) {
  Slot& slot = slots_[s];
  const std::uint32_t gang = slot.job.gpus;
  const std::size_t key = failure_key(slot.type, slot.job.packing);
  if (gang >= failed_lend_[key]) return false;
  for (std::uint32_t r = 0; r < reservations_.size(); ++r) {
    const ReservationState& res = reservations_[r];
    if (!res.in_use || !res.started || res.idle < gang || res.queued_jobs > 0 || res.blocked_visit == tick_ ||
        !(allowed & (std::uint64_t{1} << res.type))) {
      continue;
    }
    const std::vector<GpuIndex> idle = idle_reserved(r);
    std::optional<std::vector<GpuIndex>> gpus = place_within(cluster_, idle, gang, slot.job.packing);
    if (!gpus) continue;
    slot.lent = true;
    slot.reservation = r;
    start(s, std::move(*gpus), now, effects);
    return true;
  }
  failed_lend_[key] = std::min(failed_lend_[key], gang);
  return false;
}

// ---- Surplus ---------------------------------------------------------------------

std::vector<TypeSurplus> Scheduler::surplus(Timestamp now) const {
  const std::size_t types = cluster_.type_count();
  std::vector<TypeSurplus> out(types);
  for (std::size_t t = 0; t < types; ++t) {
    out[t].gpu_type = cluster_.type_name(static_cast<TypeIndex>(t));
    out[t].total = cluster_.type_capacity(static_cast<TypeIndex>(t));
    out[t].internal_buffer = buffer_[t];
  }
  JobId last = kNoJob;
  const Slot* last_slot = nullptr;
  for (GpuIndex g = 0; g < cluster_.gpu_count(); ++g) {
    TypeSurplus& s = out[cluster_.gpu_type(g)];
    if (cluster_.node(cluster_.gpu_node(g)).state != fleet::NodeState::kUp) {
      ++s.down;
      continue;
    }
    const JobId holder = cluster_.holder(g);
    const Slot* slot = nullptr;
    if (holder != kNoJob && holder < kFirstReservedJobId) {
      if (holder != last) {
        last = holder;
        last_slot = live(holder);
        CHECK(last_slot != nullptr) << "gpu " << g << " held by job " << holder << " that is not live";
      }
      slot = last_slot;
    }
    if (reservation_of_gpu_[g] != kNoIndex) {
      ++s.reserved;
      if (slot != nullptr && slot->job.tier == Tier::kSpot) ++s.reserved_lent_to_spot;
      continue;
    }
    if (holder == kNoJob) {
      ++s.idle;
      continue;
    }
    CHECK(slot != nullptr) << "gpu " << g << " held by reservation holder " << holder << " but in no reservation";
    if (slot->job.state == JobState::kQueued) {
      ++s.claimed;
      continue;
    }
    switch (slot->job.tier) {
      case Tier::kInternal: ++s.internal_in_use; break;
      case Tier::kReserved: ++s.reserved; break;
      case Tier::kOnDemand: ++s.on_demand; break;
      case Tier::kSpot: ++s.spot; break;
    }
  }
  for (std::size_t t = 0; t < types; ++t) {
    TypeSurplus& s = out[t];
    CHECK(s.down + s.internal_in_use + s.reserved + s.on_demand + s.spot + s.claimed + s.idle == s.total)
        << "surplus of " << s.gpu_type << " does not add up";
    s.sellable_now = std::min(s.idle, on_demand_headroom(static_cast<TypeIndex>(t), now, options_.sellable_horizon_s));
  }
  return out;
}

}  // namespace headroom::sched
