// Scheduler: the pure core of raw compute. Commands in, effects out.
//
// Commands: submit, cancel, running (the executor confirms a start),
// finished (the job's processes exited), preempt (notice for a reason from
// outside), set_node_state (and cordon, drain, uncordon), add_reservation,
// cancel_reservation, set_tenant_weight, set_quota, and tick. Each returns
// the Effects the caller must carry out, in order: Start (launch the job on
// these GPUs), PreemptNotice (SIGTERM, with the deadline the job may read as
// HEADROOM_PREEMPT_DEADLINE), Kill (SIGKILL the job's process group, before
// carrying out any later Start of the same batch, since its GPUs are already
// given back), and StateChanged (persist it; the ledger closes or opens usage
// here). No I/O, threads, wall clock or randomness inside: time and ids come
// in, so a run replays exactly.
//
// ---- Policy ----------------------------------------------------------------
//
// Placement happens only in tick(), so the caller ticks at least once a
// second; the other commands only change state. One tick, in this order:
//   1. Deadlines: a job past its preemption deadline is killed (preempted),
//      one past its max runtime is killed (failed).
//   2. Reservations whose window is over end (see Reservations).
//   3. The internal tier's queue is served.
//   4. Reservations whose window has begun set their GPUs aside; begun ones
//      that are short of GPUs top up.
//   5. The reserved, on-demand and spot queues are served, in that order.
//
// Order. Tiers strictly in order (internal, reserved, on-demand, spot).
// Within a tier, fair share: the next job considered comes from the tenant
// with the lowest decayed usage / weight (ties: the job queued first), FIFO
// within a tenant. A tenant's usage of a tier is the GPU-seconds its jobs of
// that tier held, decaying exponentially with half-life
// SchedulerOptions::fair_share_half_life_s; weights default to 1
// (set_tenant_weight). A tier's tenants with queued jobs sit in a heap, so a
// decision costs O(log tenants), not a scan of the queue (plus, once a tick,
// O(tenants with queued jobs) to bring their usage up to date). Before that
// order, the tier's jobs that hold claims (backfill heads, jobs waiting for
// victims) are looked at, again while one of them gave GPUs back, so that
// nothing they let go of passes a job that already failed in this tick.
//
// Each job considered, in the order above:
//   a. Quota and admission: a job over its tenant's quota waits (Quotas); an
//      on-demand job waits while its gang exceeds the on-demand headroom
//      (Surplus). A reserved job is placed on its reservation only (below).
//   b. Best-fit placement on available GPUs (placement.h): it starts.
//   c. Else the backfill heads that come later in the order and hold GPUs it
//      could use drop their claims and promises, and b. is tried again.
//   d. Else a spot job may borrow a reservation's idle GPUs (Reservations).
//   e. Else backfill rule 2 (below): it may start on a head's claimed GPUs.
//   f. Else a job of a tier that preempts picks spot victims (Preemption).
//   g. Else, when its GPU type has no head yet, it becomes the head.
//
// Backfill (EASY, one head per GPU type). The head is the first job in the
// order that does not fit and does not preempt. Its shadow time is the
// earliest instant at which, by the running jobs' expected ends (started +
// max_runtime_s, or the preemption deadline), one area of its packing would
// hold its gang: the area is the GPU type for kAny, else an NVLink domain,
// rack or block of the type (the kSchedShadowGroups ones with the most
// available GPUs are tried). The jobs ending by then in that area are
// promised to the head: when they stop, their GPUs there join its claim. Of
// the area's available GPUs it claims now only what the promised ones do not
// cover: k = gang - (their GPUs in the area). A job later in the order then
// starts only
//   rule 1: on available GPUs, i.e. neither claimed nor promised: the head
//           needs none of them, so the job may run past the shadow time; or
//   rule 2: on the head's claimed GPUs, when it ends (started + max runtime,
//           which is enforced) no later than the shadow time; it is promised
//           to the head in turn.
// So the head starts by its shadow time whatever runs behind it (barring
// nodes lost; a head whose claim plus promises falls short of its gang plans
// again), earlier as soon as its claim is whole or it fits elsewhere. A job
// with no shadow time (its gang would not fit even with every running job
// gone) is not a head. Heads are kept across ticks.
//
// Preemption. Only spot jobs are preempted, and only for a higher tier (or
// by preempt(), when the caller has its own reason, such as a spent budget):
//   - A queued job of a tier in SchedulerOptions::preempts_spot (internal by
//     default) that does not fit picks victims among the running spot jobs
//     that are not on a reservation's GPUs. In each area of its packing that
//     would hold the gang once they left, the victims are the cheaper of: the
//     smallest job that covers the need there alone, or the jobs with the
//     most GPUs there first (for kAny: the largest job not above what is still
//     needed, then for the last piece the smallest that covers it); ties go
//     to the most recently started, which loses the least work. The area
//     whose victims hold the fewest GPUs wins. The job claims the area's
//     available GPUs of its plan at once and the victims' GPUs as they leave;
//     if a fit appears elsewhere first, it starts there. Spot jobs are
//     indexed by size per type and counted per group, so a decision costs
//     O(groups of the type + victims), not a scan of every spot job.
//   - A reservation at its start, and a reserved job on its reservation's
//     GPUs lent to spot (Reservations).
// A job of such a tier that became a backfill head (too little spot then)
// preempts as soon as enough spot GPUs of its type exist. A victim gets a
// PreemptNotice with deadline = now + grace_ms[spot] and is killed at the
// first tick at or past it. So an internal job gets its GPUs
// within the grace plus one tick whenever enough of them are held by spot.
// On-demand and internal jobs are never preempted; a reserved job is stopped
// (with notice) only when its own reservation ends.
//
// Reservations. add_reservation books `gpus` GPUs of a type for [start, end),
// set aside together with the reservation's packing. Booking is refused
// (conflict; the message says how many GPUs are free for that window) when,
// at some instant of the window, the reservations overlapping it plus the
// on-demand GPUs still running then (by their expected ends) plus this one
// would exceed the type's total minus its internal buffer. At the first
// tick at or after start the reservation sets its GPUs aside: available GPUs
// by best fit; else, after the type's backfill head drops its claim, the
// spot jobs of the best area get notice and their GPUs join the set as they
// leave. Never GPUs of on-demand, internal or reserved jobs: a reservation
// short of GPUs takes what it can and tops up each tick in its area. The
// set's idle GPUs are held by a stand-in holder, reservation_holder(index).
// During the window only the reservation's own jobs run on the set as
// reserved (best fit within the set, FIFO within the reservation: a job that
// does not fit holds back the later ones of the same reservation, so it is
// not starved). A reserved job may queue before the window and starts in it.
// Idle GPUs of the set are lent to a spot job that fits nowhere else, unless
// the reservation has queued jobs; when a reserved job needs them, the spot
// jobs on the GPUs it picks get notice and it starts once they leave. A GPU of
// the set on a node that is not up leaves the set when nothing runs on it
// (the reservation tops up elsewhere). At the end (or cancel_reservation) the
// reservation's queued jobs are cancelled, its running jobs get notice
// (kReservationEnded, grace_ms[reserved]) and are killed after the grace,
// borrowing spot jobs become ordinary ones, and the idle GPUs are released.
//
// Quotas (set_quota), per tenant: the most GPUs held at once per tier (of a
// GPU type, or of all types when the limit's gpu_type is empty) and the most
// queued jobs. Held = starting, running or preempting. A job that names no
// GPU type is subject to every GPU limit of its tier, since it may land on
// any type. At submit, quota_exceeded (naming the limit) for: a gang larger
// than a limit; a job beyond max_queued_jobs; a job that would take the
// tenant past a limit counting what it holds and has queued, unless
// Job::wait_for_quota (it then queues). In a tick a job starts only while
// held + gang stays within every limit of the type it lands on; otherwise it
// waits. Nothing over quota is dropped silently.
//
// Surplus and the internal buffer. surplus(now) partitions each type's GPUs:
//   total = down + internal_in_use + reserved + on_demand + spot + claimed + idle
// down: on a node that is not up, whoever holds it. Of the rest: reserved: in
// a live reservation's set (idle, its jobs, or spot jobs borrowing it), or
// held by a reserved job in its grace after its reservation ended;
// internal_in_use, on_demand, spot: held by a job of that tier; claimed: held
// by a queued job (an internal job waiting for victims, a backfill head);
// idle: free. The parts are CHECKed to add up. The on-demand headroom of a
// type over [now, now + runtime) is
//   up - internal_buffer - internal - on_demand - (most GPUs the reservations
//   need at one instant of that interval)
// with internal and on-demand counting every GPU they hold. An on-demand job
// starts only if its gang fits the headroom over its max runtime, and a
// booking only if it fits as described above: neither eats into the buffer,
// since neither can be taken back. Spot may (it is preempted).
// sellable_now = min(idle, headroom over SchedulerOptions::sellable_horizon_s).
//
// Node states: only up nodes take new work. cordoned: the jobs keep running.
// draining: spot jobs on it get notice (kNodeDraining) and are killed after
// the grace; the others run to completion. down: its jobs are lost. Claims on
// a node that leaves up are dropped. cordon, drain and uncordon are
// set_node_state with kCordoned, kDraining and kUp.
//
// Jobs leave the Scheduler when they reach a terminal state (the store keeps
// history); a preempted job with requeue_on_preempt goes back to the end of
// its tenant's queue as a new queued stay (not a reserved one whose
// reservation is over).
//
// Not thread-safe: one thread drives it. Pointers and spans it returns are
// valid until the next command.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "fleet/fleet.h"
#include "sched/cluster_state.h"
#include "sched/job.h"
#include "sched/sched_limits.h"

namespace headroom::sched {

// Job ids at or above this are the scheduler's own (reservation holders).
inline constexpr JobId kFirstReservedJobId = JobId{1} << 62;

struct SchedulerOptions {
  // Notice before the kill, per tier of the victim: spot when preempted or
  // drained, reserved when its reservation ends.
  std::array<std::int64_t, kTierCount> grace_ms = {limits::kSchedSpotGraceMs, limits::kSchedSpotGraceMs,
                                                   limits::kSchedSpotGraceMs, limits::kSchedSpotGraceMs};
  // Which tiers may preempt spot jobs when they do not fit.
  std::array<bool, kTierCount> preempts_spot = {true, false, false, false};
  std::size_t max_queued_jobs = limits::kSchedQueuedJobs;
  std::size_t tick_scan_jobs = limits::kSchedTickScanJobs;
  std::size_t tick_preemptions = limits::kSchedTickPreemptions;
  // Fair share: the half-life of a tenant's usage.
  std::int64_t fair_share_half_life_s = 3600;
  // GPU type name -> GPUs kept out of on-demand sales and bookings, for
  // internal surges. Spot may use them.
  std::unordered_map<std::string, std::uint32_t> internal_buffer_gpus;
  // The runtime surplus() assumes for a new on-demand job.
  std::int64_t sellable_horizon_s = 3600;
};

// Why a job changed state, for the record and for people.
enum class Reason : std::uint8_t {
  kSubmitted,
  kPlaced,
  kStarted,
  kExited,
  kCancelled,
  kPreemptedForHigherTier,
  kGraceExpired,
  kMaxRuntimeExceeded,
  kNodeLost,
  kRequeued,
  kNodeDraining,      // a spot job on a draining node
  kReservationEnded,  // its reservation's window closed or it was cancelled
  kBudgetExhausted,   // a spot job whose tenant's money is spent (preempt())
  kOutbid,            // a spot job whose bid fell below the clearing price (preempt())
};
std::string_view reason_name(Reason reason);

// Why a queued job did not start at its last tick, for people ("pending reason").
enum class WaitReason : std::uint8_t {
  kNotConsidered,          // no tick has looked at it yet
  kNoFit,                  // no placement now (and it may not delay a backfill head)
  kBackfillHead,           // it is its type's backfill head: claims GPUs, has a shadow time
  kWaitingForVictims,      // it preempted spot jobs and waits for them to leave
  kQuota,                  // starting it would exceed its tenant's quota
  kOnDemandHeadroom,       // on-demand: the gang exceeds what may be sold now
  kReservationNotStarted,  // reserved: its window has not begun
  kReservationFull,        // reserved: its reservation's GPUs are busy
  kOutbid,                 // spot: the market let it run on none of the types it fits
};
std::string_view wait_reason_name(WaitReason reason);

struct Effect {
  enum class Kind : std::uint8_t { kStart, kPreemptNotice, kKill, kStateChanged };
  Kind kind = Kind::kStateChanged;
  JobId job = kNoJob;
  std::vector<GpuIndex> gpus;  // kStart: the gang's GPUs; kKill: those it held
  Timestamp deadline;          // kPreemptNotice: killed at this time if still running
  JobState state = JobState::kQueued;  // kStateChanged: the new state
  Reason reason = Reason::kSubmitted;
};
using Effects = std::vector<Effect>;

// A block of GPUs of one type booked by a tenant for a window.
struct Reservation {
  std::string id;         // unique among live reservations; jobs name it
  std::string tenant_id;  // only this tenant's reserved jobs run on it
  std::string gpu_type;   // required: a type of the fleet
  std::uint32_t gpus = 0;
  Packing packing = Packing::kAny;  // how the set of GPUs is packed
  Timestamp start, end;             // [start, end)
};

// A reservation as it stands.
struct ReservationView {
  const Reservation& spec;
  std::uint32_t index;             // its holder is reservation_holder(index)
  bool started;                    // its GPUs are set aside
  std::span<const GpuIndex> gpus;  // the set (idle, its jobs', borrowed by spot, or leaving victims')
  std::uint32_t idle;              // of the set, held by the reservation's holder
  std::uint32_t missing;           // spec.gpus - set size: being topped up
};

struct GpuLimit {
  Tier tier = Tier::kSpot;
  std::string gpu_type;  // empty: all types together
  std::uint32_t max_gpus = 0;
};
struct TenantQuota {
  std::optional<std::size_t> max_queued_jobs;
  std::vector<GpuLimit> gpu_limits;
};

// One GPU type's capacity, by use; see "Surplus" above for the arithmetic.
struct TypeSurplus {
  std::string gpu_type;
  std::uint32_t total = 0;
  // The partition: these add up to total.
  std::uint32_t down = 0;
  std::uint32_t internal_in_use = 0;
  std::uint32_t reserved = 0;
  std::uint32_t on_demand = 0;
  std::uint32_t spot = 0;
  std::uint32_t claimed = 0;
  std::uint32_t idle = 0;
  // Not part of the partition.
  std::uint32_t reserved_lent_to_spot = 0;  // of reserved: borrowed by spot jobs
  std::uint32_t internal_buffer = 0;        // configured
  std::uint32_t sellable_now = 0;           // a new on-demand job could get this many now
};

// A type's backfill head, for tests and for people.
struct BackfillHead {
  JobId job = kNoJob;
  Timestamp shadow;            // it starts by then
  std::uint32_t claimed = 0;   // GPUs it holds while queued
  std::uint32_t promised = 0;  // GPUs of running jobs that join its claim when they stop
};

class Scheduler {
 public:
  // Validates the fleet and options and indexes the fleet.
  static Result<Scheduler> create(const fleet::FleetSpec& fleet, SchedulerOptions options = {});

  // Queues a job. invalid_argument for a malformed job, one that could never
  // fit the fleet (a type it lacks, a gang larger than any group of its
  // packing), an on-demand gang above the type's total minus its buffer, or a
  // reserved job without a live reservation of its tenant that holds it;
  // already_exists for a live id; quota_exceeded (see Quotas); unavailable
  // when the queue or the tenant table is full.
  Result<Effects> submit(Job job, Timestamp now);
  // After a restart: puts back a job that was holding `gpus` (its whole
  // gang) in `state` (starting, running, or preempting: it gets a full grace
  // from now), as submit() would have queued it, started at `started_at`; its
  // max runtime counts from then. A reserved job's GPUs join its
  // reservation's set. The same invalid_argument as submit() (quotas aside:
  // it runs already), and conflict when a GPU is held or not on an up node.
  // Nothing to carry out on success: the executor runs it already.
  Result<Effects> restore(Job job, std::span<const GpuIndex> gpus, JobState state, Timestamp started_at, Timestamp now);
  // A queued job leaves the queue; a job holding GPUs is killed. not_found
  // for an id that is not live.
  Result<Effects> cancel(JobId id, Timestamp now);
  // The executor started a job that was starting. Idempotent.
  Result<Effects> running(JobId id, Timestamp now);
  // The job's processes exited: succeeded on 0, failed otherwise, preempted
  // if it was preempting. Its GPUs are free for the next tick.
  Result<Effects> finished(JobId id, int exit_code, Timestamp now);
  // Gives a running spot job notice now, for a reason outside the scheduler
  // (its tenant's money is spent): the job is killed at now + the spot grace
  // unless it ends first, like any preempted spot job (requeued when it asked
  // for that). invalid_argument for a job that is not spot; not_found when it
  // is not live; a job already under notice, or queued, is left as it is
  // (ok, no effects).
  Result<Effects> preempt(JobId id, Reason reason, Timestamp now);
  // See "Node states" above. not_found for a node not in the fleet.
  Result<Effects> set_node_state(std::string_view node, fleet::NodeState state, Timestamp now);
  Result<Effects> cordon(std::string_view node, Timestamp now) {
    return set_node_state(node, fleet::NodeState::kCordoned, now);
  }
  Result<Effects> drain(std::string_view node, Timestamp now) {
    return set_node_state(node, fleet::NodeState::kDraining, now);
  }
  Result<Effects> uncordon(std::string_view node, Timestamp now) {
    return set_node_state(node, fleet::NodeState::kUp, now);
  }
  // Runs one round of the policy above.
  Effects tick(Timestamp now);

  // The spot market's word on a queued spot job: it may start only on the
  // GPU types whose bit is set in `type_mask` (bit t: cluster().type t), and
  // waits (kOutbid) while none is. Every type by default. Jobs of other
  // tiers, and a running job (it keeps its GPUs until preempt()), are left
  // as they are. not_found when the job is not live.
  Status set_spot_types(JobId id, std::uint64_t type_mask);

  // Fair share: a tenant's weight (default 1). invalid_argument unless
  // 0 < weight <= kSchedTenantWeightMax; unavailable when the tenant table is full.
  Status set_tenant_weight(std::string_view tenant, double weight);
  // Replaces a tenant's quota (an empty one lifts it). invalid_argument for
  // an unknown GPU type or too many limits (a limit of 0 forbids the tier). Jobs already queued
  // or running stay; the quota applies to submits and starts from now on.
  Status set_quota(std::string_view tenant, TenantQuota quota);

  // Books a reservation (see Reservations). invalid_argument for a malformed
  // one (no id or tenant, an unknown type, no GPUs, an empty, past or too long
  // window, a packing the fleet cannot hold); already_exists for a live id;
  // conflict when the type's capacity for the window is booked;
  // unavailable when kSchedReservations are live.
  Status add_reservation(Reservation reservation, Timestamp now);
  // The most GPUs of a type one more reservation of [from, to) could book
  // now (add_reservation's rule: capacity less the buffer, the reservations
  // overlapping it at their peak, and the on-demand GPUs still running then).
  std::uint32_t reservable(TypeIndex type, Timestamp from, Timestamp to, Timestamp now) const;
  // Ends a reservation now (before its start: just forgets it). not_found
  // for an id that is not live.
  Result<Effects> cancel_reservation(std::string_view id, Timestamp now);

  const ClusterState& cluster() const { return cluster_; }
  const SchedulerOptions& options() const { return options_; }
  // A live job, or null.
  const Job* find(JobId id) const;
  // The GPUs a live job holds (for a queued job: those it has claimed).
  std::span<const GpuIndex> gpus_of(JobId id) const;
  // Why a queued job waits (kNotConsidered for a job that is not queued).
  WaitReason wait_reason(JobId id) const;
  std::size_t queued(Tier tier) const { return queued_by_tier_[static_cast<int>(tier)]; }
  // Where a queued job stands in the order the next tick considers jobs in
  // (1 = first), by the tenants' usage as of the last tick; 0 for a job that
  // is not queued. O(tenants with queued jobs of its tier + its tenant's queue).
  std::size_t queue_position(JobId id) const;
  std::size_t live_jobs() const { return slot_of_.size(); }
  // Calls f(const Job&, std::span<const GpuIndex> gpus) for every live job.
  template <typename F>
  void for_each_job(F&& f) const {
    for (const Slot& slot : slots_) {
      if (slot.in_use) f(slot.job, std::span<const GpuIndex>(slot.gpus));
    }
  }

  // The holder of a reservation's idle GPUs in cluster().
  static JobId reservation_holder(std::uint32_t index) { return kFirstReservedJobId + index; }
  // Calls f(const ReservationView&) for every live reservation.
  template <typename F>
  void for_each_reservation(F&& f) const {
    for (std::uint32_t r = 0; r < reservations_.size(); ++r) {
      if (reservations_[r].in_use) f(view_of(r));
    }
  }
  std::optional<ReservationView> find_reservation(std::string_view id) const;

  // Per GPU type; see "Surplus". O(GPUs).
  std::vector<TypeSurplus> surplus(Timestamp now) const;
  // The GPUs of a type an on-demand job running from now for runtime_s may
  // take without eating into the buffer or a reservation (see "Surplus").
  std::uint32_t on_demand_headroom(TypeIndex type, Timestamp now, std::int64_t runtime_s) const;
  // A tenant's decayed usage of a tier at `now`, in GPU-seconds (0 for an
  // unknown tenant), and its weight.
  double usage_gpu_seconds(std::string_view tenant, Tier tier, Timestamp now) const;
  double tenant_weight(std::string_view tenant) const;
  // Whether a job of this tenant, tier and size may start on `type` now as
  // far as its quota goes.
  bool quota_allows(std::string_view tenant, Tier tier, TypeIndex type, std::uint32_t gpus) const;
  // The backfill head of a GPU type, if any.
  std::optional<BackfillHead> backfill_head(TypeIndex type) const;

 private:
  struct Queue {
    std::uint32_t head = kNoIndex, tail = kNoIndex;
    std::size_t size = 0;
  };
  struct Slot {
    Job job;
    std::optional<TypeIndex> type;  // asked for; a reserved job gets its reservation's
    TypeIndex held_type = 0;        // of the GPUs it holds while active; a head's type while queued
    std::vector<GpuIndex> gpus;     // held while active; its claim while queued
    std::vector<GpuIndex> plan;     // a queued preemptor's whole future gang, while victims leave
    std::uint32_t tenant = kNoIndex;
    std::uint32_t reservation = kNoIndex;                      // a reserved job's; a borrowing spot job's lender
    std::uint32_t prev = kNoIndex, next = kNoIndex;            // in its tenant's queue of its tier
    std::uint32_t spot_prev = kNoIndex, spot_next = kNoIndex;  // in its type's spot size list
    std::uint32_t promised_to = kNoIndex;                      // the head (slot) its GPUs go to when it stops
    std::uint32_t promised_gpus = 0;                           // how many it counts on
    std::int64_t end_us = 0;                                   // expected end, its key in ends_by_type_
    std::uint64_t seq = 0;                                     // queue order
    std::uint64_t visit = 0;                                   // the tick that last considered it
    std::uint64_t no_shadow_epoch = 0;                         // node_epoch_ + 1 when it had no shadow time...
    std::uint64_t no_shadow_until = 0;                         // ...and the tick after which it looks again
    std::uint64_t timer_generation = 0;
    WaitReason wait = WaitReason::kNotConsidered;
    std::uint64_t spot_types = ~std::uint64_t{0};  // set_spot_types()
    bool in_spot_index = false;
    bool in_ends = false;
    bool lent = false;  // a spot job on a reservation's GPUs
    bool head = false;  // its type's backfill head
    bool in_use = false;
  };
  struct Timer {
    Timestamp at;
    std::uint32_t slot;
    std::uint64_t generation;
  };
  struct Limit {
    Tier tier;
    std::uint32_t type;  // kNoIndex: all types
    std::uint32_t max_gpus;
    std::string gpu_type;  // for messages
  };
  struct Tenant {
    std::string name;
    double weight = 1.0;
    std::array<double, kTierCount> usage_gpu_s{};  // decayed, as of usage_at_us
    std::array<std::int64_t, kTierCount> usage_at_us{};
    std::array<std::uint32_t, kTierCount> held{};  // GPUs held, all types
    std::array<Queue, kTierCount> queues{};
    std::array<std::uint32_t, kTierCount> active_pos{kNoIndex, kNoIndex, kNoIndex, kNoIndex};
    std::size_t queued_jobs = 0;
    std::optional<std::size_t> max_queued_jobs;
    std::vector<Limit> limits;
    std::vector<std::uint32_t> held_by;    // [tier * types + type]
    std::vector<std::uint32_t> queued_by;  // [tier * (types + 1) + type]; type == types: any type
  };
  struct ReservationState {
    Reservation spec;
    TypeIndex type = 0;
    std::optional<Level> level;
    std::uint32_t area = kNoIndex;  // its group at `level` once set aside (kAny: the type)
    std::vector<GpuIndex> gpus;     // the set
    std::uint32_t idle = 0;         // held by its holder
    std::uint32_t queued_jobs = 0;
    std::uint64_t blocked_visit = 0;  // the tick in which one of its jobs did not fit
    bool started = false;
    bool short_listed = false;  // counted in reservations_short_
    bool in_use = false;
  };
  struct Head {
    std::uint32_t slot = kNoIndex;
    std::optional<Level> level;
    std::uint32_t area = 0;
    Timestamp shadow;
    std::uint32_t promised_gpus = 0;
    std::vector<std::pair<std::uint32_t, JobId>> promised;  // may hold stale entries
  };
  struct SpotIndex {                  // the active spot jobs of one type not on a reservation, by size
    std::vector<std::uint32_t> head;  // [size] -> slot; most recently started first
    std::vector<std::uint64_t> nonempty;
  };
  struct HeapEntry {
    double key;
    std::uint64_t seq;
    std::uint32_t tenant;
    std::uint32_t slot;
  };
  struct Admission {
    std::optional<TypeIndex> type;
    std::uint32_t reservation = kNoIndex;
  };
  struct VictimPlan {
    std::optional<Level> level;
    TypeIndex type = 0;
    std::uint32_t area = kNoIndex;       // a group at `level`, or the type for kAny
    std::vector<std::uint32_t> victims;  // slots
    std::vector<GpuIndex> victim_gpus;   // theirs in the area, on up nodes, at most the gang
    std::uint32_t free_needed = 0;       // available GPUs of the area to claim with them
    std::uint64_t cost = 0;              // GPUs the victims hold
  };
  struct ShadowPlan;

  Scheduler(ClusterState cluster, SchedulerOptions options);

  // scheduler.cpp: jobs, queues, the tick.
  Slot* live(JobId id);
  const Slot* live(JobId id) const;
  Result<Admission> validate(const Job& job, Timestamp now) const;
  std::uint32_t new_slot();
  void set_state(Slot& slot, JobState state, Reason reason, Timestamp now, Effects& effects);
  void enqueue(std::uint32_t s);
  void dequeue(std::uint32_t s);
  void free_slot(std::uint32_t s);
  void arm_timer(std::uint32_t s, Timestamp at);
  void start(std::uint32_t s, std::vector<GpuIndex> gpus, Timestamp now, Effects& effects, JobId donor = kNoJob);
  void give_back(std::uint32_t s, std::span<const GpuIndex> gpus);
  void drop_claim(std::uint32_t s);
  void stop(std::uint32_t s, JobState state, Reason reason, Timestamp now, Effects& effects);
  void kill(std::uint32_t s, JobState state, Reason reason, Timestamp now, Effects& effects);
  void notice(std::uint32_t s, Timestamp deadline, Reason reason, Timestamp now, Effects& effects);
  void set_end(std::uint32_t s, std::int64_t end_us);
  void serve_tier(Tier tier, Timestamp now, Effects& effects, std::size_t& scanned, std::size_t& preemptions);
  void try_schedule(std::uint32_t s, Timestamp now, Effects& effects, std::size_t& preemptions);
  bool follow_plan(std::uint32_t s, std::uint64_t allowed_types, Timestamp now, Effects& effects);
  std::optional<std::vector<GpuIndex>> place_job(const Slot& slot, std::uint64_t allowed_types, bool use_cache);
  std::uint64_t allowed_types(const Slot& slot, Timestamp now, WaitReason& why) const;
  std::size_t failure_key(std::optional<TypeIndex> type, Packing packing) const;
  void reset_failures();
  std::uint32_t slot_of_holder(JobId holder) const;

  // sched_tenants.cpp: fair share and quotas.
  std::uint32_t tenant_index(std::string_view name, bool create);
  void accrue(Tenant& tenant, Tier tier, Timestamp now) const;
  double share_key(std::uint32_t t, Tier tier, Timestamp now);
  void count_queued(const Slot& slot, int delta);
  void count_held(const Slot& slot, int delta, Timestamp now);
  Status check_quota_at_submit(const Tenant& tenant, const Job& job, std::optional<TypeIndex> type) const;
  bool quota_allows_start(const Tenant& tenant, Tier tier, TypeIndex type, std::uint32_t gpus) const;

  // sched_preempt.cpp: the spot index and victim choice.
  void spot_index_add(std::uint32_t s);
  void spot_index_remove(std::uint32_t s);
  // The victims that free `gang` GPUs of one of `types` in one area of the
  // packing (only `only_area` when given), fewest GPUs disturbed. With
  // `partial`, the area that comes closest when none suffices.
  std::optional<VictimPlan> plan_victims(std::uint32_t gang, std::uint64_t types, Packing packing, bool partial,
                                         std::uint32_t only_area = kNoIndex);
  bool try_preempt(std::uint32_t s, std::uint64_t allowed_types, Timestamp now, Effects& effects);
  std::vector<GpuIndex> claim_available(std::optional<Level> level, std::uint32_t area, std::uint32_t count,
                                        JobId holder);

  // sched_backfill.cpp: backfill heads.
  bool visit_head(std::uint32_t s, std::uint64_t allowed_types, Timestamp now, Effects& effects);
  bool drop_later_heads(std::uint32_t s, std::uint64_t allowed_types);
  bool drop_head(TypeIndex type, bool release_claim);
  void unpromise(std::uint32_t s);
  bool become_head(std::uint32_t s, std::uint64_t allowed_types, Timestamp now);
  std::optional<ShadowPlan> shadow_plan(std::uint32_t s, TypeIndex type, Timestamp now);
  bool backfill_on_head(std::uint32_t s, std::uint64_t allowed_types, Timestamp now, Effects& effects);
  bool in_area(GpuIndex g, std::optional<Level> level, std::uint32_t area) const;
  std::uint32_t area_available(std::optional<Level> level, std::uint32_t area) const;

  // sched_reservations.cpp.
  ReservationView view_of(std::uint32_t r) const;
  std::optional<std::uint32_t> reservation_of(std::string_view id) const;
  std::uint32_t reserved_need_max(TypeIndex type, std::int64_t from_us, std::int64_t to_us) const;
  std::uint32_t on_demand_running_after(TypeIndex type, std::int64_t at_us) const;
  void rebuild_reservation_events(TypeIndex type);
  void end_reservations(Timestamp now, Effects& effects);
  void end_reservation(std::uint32_t r, Timestamp now, Effects& effects);
  void start_reservations(Timestamp now, Effects& effects);
  void fill_reservation(std::uint32_t r, Timestamp now, Effects& effects);
  void add_to_reservation(std::uint32_t r, std::span<const GpuIndex> gpus);
  void leave_reservation(std::uint32_t r, GpuIndex g);
  void take_victims(std::uint32_t r, const VictimPlan& plan, Timestamp now, Effects& effects);
  void update_short(std::uint32_t r);
  bool drop_unserved_head(TypeIndex type);
  void recompute_next_reservation_event();
  void schedule_reserved(std::uint32_t s, Timestamp now, Effects& effects);
  bool lend(std::uint32_t s, std::uint64_t allowed_types, Timestamp now, Effects& effects);
  std::vector<GpuIndex> idle_reserved(std::uint32_t r) const;

  ClusterState cluster_;
  SchedulerOptions options_;
  double decay_per_us_ = 0;            // ln 2 / half-life
  std::vector<std::uint32_t> buffer_;  // [type]

  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::unordered_map<JobId, std::uint32_t> slot_of_;
  std::array<std::size_t, kTierCount> queued_by_tier_{};
  std::size_t queued_total_ = 0;
  std::uint64_t next_seq_ = 1;
  std::uint64_t tick_ = 0;
  Timestamp last_tick_at_;
  std::uint64_t next_generation_ = 1;  // of timers
  std::uint64_t node_epoch_ = 0;       // bumped when a node changes state
  std::vector<Timer> timers_;          // a min-heap on `at`; stale entries skipped, compacted in arm_timer

  std::vector<Tenant> tenants_;
  std::unordered_map<std::string, std::uint32_t> tenant_of_;
  std::array<std::vector<std::uint32_t>, kTierCount> tier_tenants_;  // tenants with queued jobs
  std::vector<HeapEntry> heap_;
  // Queued jobs with a plan (waiting for victims), as (slot, id); may hold stale entries.
  std::vector<std::pair<std::uint32_t, JobId>> planned_;
  std::vector<std::uint32_t> claimers_;  // scratch of serve_tier
  std::uint64_t releases_ = 0;           // times GPUs went back to the free pool

  // [tier][type]: GPUs held by active jobs.
  std::array<std::vector<std::uint32_t>, kTierCount> held_;
  // [type]: active jobs by expected end (started + max runtime, or deadline).
  std::vector<std::set<std::pair<std::int64_t, std::uint32_t>>> ends_by_type_;

  std::vector<SpotIndex> spot_index_;                                  // [type]
  std::array<std::vector<std::uint32_t>, kLevelCount> spot_in_group_;  // [level][group]: indexed spot GPUs
  std::vector<std::uint32_t> spot_in_type_;                            // [type]
  std::uint64_t plan_stamp_ = 0;
  std::vector<std::uint64_t> plan_mark_;  // [slot]

  std::vector<Head> heads_;  // [type]
  std::size_t backfill_tries_ = 0;

  std::vector<ReservationState> reservations_;
  std::vector<std::uint32_t> free_reservations_;
  std::unordered_map<std::string, std::uint32_t> reservation_by_id_;
  std::vector<std::uint32_t> reservation_of_gpu_;  // [gpu] -> reservation, kNoIndex
  // [type]: the reservations' need over time, as sorted (time, delta) steps.
  std::vector<std::vector<std::pair<std::int64_t, std::int64_t>>> reservation_steps_;
  std::int64_t next_reservation_event_us_ = INT64_MAX;
  std::size_t reservations_short_ = 0;  // started ones with missing GPUs

  // Within one tick: the smallest gang of each (type, packing) that failed
  // to fit (normal placement, lending, preemption); a larger one fails too
  // until some GPUs come back.
  std::vector<std::uint32_t> failed_gpus_;
  std::vector<std::uint32_t> failed_lend_;
  std::vector<std::uint32_t> failed_preempt_;
};

}  // namespace headroom::sched
