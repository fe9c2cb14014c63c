// Scheduler: the pure core of raw compute. Commands in, effects out.
//
// Commands: submit, cancel, running (the executor confirms a start),
// finished (the job's processes exited), set_node_state, and tick. Each
// returns the Effects the caller must carry out, in order: Start (launch the
// job on these GPUs), PreemptNotice (SIGTERM, with the deadline the job may
// read as HEADROOM_PREEMPT_DEADLINE), Kill (SIGKILL the job's process group,
// before carrying out any later Start of the same batch, since its GPUs are
// already given back), and StateChanged (persist it; the ledger closes or
// opens usage here). No I/O, threads, wall clock or randomness inside: time
// and ids come in, so a run replays exactly.
//
// Policy today:
//   - Placement happens only in tick(), so the caller ticks at least once a
//     second; the other commands only change state.
//   - Tiers strictly in order (internal, reserved, on-demand, spot); FIFO
//     within a tier. A job that does not fit does not block the jobs behind
//     it (lower tiers may use GPUs it cannot), but a higher tier is always
//     considered first, so a job never starts while a higher-tier job that
//     fits the GPUs it took waits.
//   - Only spot jobs are ever preempted, and only by tiers whose
//     SchedulerOptions::preempts_spot is set (internal by default). A queued
//     preempting job that does not fit picks the victims that free enough
//     GPUs in the shape it needs while disturbing the fewest GPUs (ties: the
//     most recently started, the least work lost). It claims the free GPUs of
//     that shape at once (holding them while queued, so nothing below it takes
//     them) and the victims' GPUs as they leave: on exit, or killed at a tick
//     past their deadline = notice + the spot tier's grace. If a fit appears
//     elsewhere first, it starts there and drops the claim.
//   - On-demand and reserved jobs are never preempted. Reservation windows
//     (reservation_id) are kept on the job but not yet honoured: reserved is
//     a tier queue for now. Fair share, backfill and spot prices are not here
//     yet either.
//   - Jobs leave the Scheduler when they reach a terminal state (the store
//     keeps history); a preempted job with requeue_on_preempt goes back to the
//     end of its tier's queue as a new queued stay.
//
// Not thread-safe: one thread drives it. Pointers and spans it returns are
// valid until the next command.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "fleet/fleet.h"
#include "sched/cluster_state.h"
#include "sched/job.h"
#include "sched/sched_limits.h"

namespace headroom::sched {

struct SchedulerOptions {
  // Notice before the kill, per tier of the victim (only spot is preempted today).
  std::array<std::int64_t, kTierCount> grace_ms = {limits::kSchedSpotGraceMs, limits::kSchedSpotGraceMs,
                                                   limits::kSchedSpotGraceMs, limits::kSchedSpotGraceMs};
  // Which tiers may preempt spot jobs when they do not fit.
  std::array<bool, kTierCount> preempts_spot = {true, false, false, false};
  std::size_t max_queued_jobs = limits::kSchedQueuedJobs;
  std::size_t tick_scan_jobs = limits::kSchedTickScanJobs;
  std::size_t tick_preemptions = limits::kSchedTickPreemptions;
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
};
std::string_view reason_name(Reason reason);

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

class Scheduler {
 public:
  // Validates the fleet and indexes it.
  static Result<Scheduler> create(const fleet::FleetSpec& fleet, SchedulerOptions options = {});

  // Queues a job. invalid_argument for a malformed job or one that could
  // never fit the fleet (a type it lacks, a gang larger than any group of its
  // packing); already_exists for a live id; unavailable when the queue is full.
  Result<Effects> submit(Job job, Timestamp now);
  // A queued job leaves the queue; a job holding GPUs is killed. not_found
  // for an id that is not live.
  Result<Effects> cancel(JobId id, Timestamp now);
  // The executor started a job that was starting. Idempotent.
  Result<Effects> running(JobId id, Timestamp now);
  // The job's processes exited: succeeded on 0, failed otherwise, preempted
  // if it was preempting. Its GPUs are free for the next tick.
  Result<Effects> finished(JobId id, int exit_code, Timestamp now);
  // Only up nodes take new work; the jobs on a node that goes down are lost.
  Result<Effects> set_node_state(std::string_view node, fleet::NodeState state, Timestamp now);
  // Kills what is past its deadline, then places queued jobs in tier order,
  // starting preemptions for the jobs that may preempt.
  Effects tick(Timestamp now);

  const ClusterState& cluster() const { return cluster_; }
  const SchedulerOptions& options() const { return options_; }
  // A live job, or null.
  const Job* find(JobId id) const;
  // The GPUs a live job holds (for a queued job: those it has claimed).
  std::span<const GpuIndex> gpus_of(JobId id) const;
  std::size_t queued(Tier tier) const { return queues_[static_cast<int>(tier)].size; }
  std::size_t live_jobs() const { return slot_of_.size(); }
  // Calls f(const Job&, std::span<const GpuIndex> gpus) for every live job.
  template <typename F>
  void for_each_job(F&& f) const {
    for (const Slot& slot : slots_) {
      if (slot.in_use) f(slot.job, std::span<const GpuIndex>(slot.gpus));
    }
  }

 private:
  struct Slot {
    Job job;
    std::optional<TypeIndex> type;
    std::vector<GpuIndex> gpus;  // held while active; the claimed part while queued with a plan
    std::vector<GpuIndex> plan;  // a queued preemptor's whole future gang, while victims leave
    std::uint32_t prev = kNoIndex, next = kNoIndex;  // in its tier's queue
    std::uint32_t spot_pos = kNoIndex;                // in active_spot_
    std::uint64_t timer_generation = 0;
    bool in_use = false;
  };
  struct Queue {
    std::uint32_t head = kNoIndex, tail = kNoIndex;
    std::size_t size = 0;
  };
  struct Timer {
    Timestamp at;
    std::uint32_t slot;
    std::uint64_t generation;
  };

  Scheduler(ClusterState cluster, SchedulerOptions options);

  Slot* live(JobId id);
  void set_state(Slot& slot, JobState state, Reason reason, Timestamp now, Effects& effects);
  void enqueue(std::uint32_t s);
  void dequeue(std::uint32_t s);
  void arm_timer(std::uint32_t s, Timestamp at);
  void start(std::uint32_t s, std::vector<GpuIndex> gpus, Timestamp now, Effects& effects);
  void drop_claim(Slot& slot);
  // A job holding GPUs stops: GPUs back, state set, and it leaves (or requeues).
  void stop(std::uint32_t s, JobState state, Reason reason, Timestamp now, Effects& effects);
  void kill(std::uint32_t s, JobState state, Reason reason, Timestamp now, Effects& effects);
  void try_schedule(std::uint32_t s, Timestamp now, Effects& effects, std::size_t& preemptions);
  bool try_preempt(std::uint32_t s, Timestamp now, Effects& effects);
  std::size_t failure_key(const Slot& slot) const;  // into failed_gpus_

  ClusterState cluster_;
  SchedulerOptions options_;
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::unordered_map<JobId, std::uint32_t> slot_of_;
  std::array<Queue, kTierCount> queues_;
  std::size_t queued_total_ = 0;
  std::vector<std::uint32_t> active_spot_;  // spot jobs holding GPUs, not yet preempting
  std::vector<Timer> timers_;               // a min-heap on `at`; stale entries skipped, compacted in arm_timer
  std::uint64_t next_generation_ = 1;
  // Within one tick: the smallest gang of each (type, packing) that failed to
  // fit; a larger one fails too until some GPUs come back.
  std::vector<std::uint32_t> failed_gpus_;
};

}  // namespace headroom::sched
