// A job as the scheduler sees it: what it asks for (a gang of GPUs of a type,
// a tier, a packing) and where it stands (its state, with the time it entered
// each state). Plain data: the Scheduler owns the live copies; callers get
// copies or const pointers valid until the next call into the Scheduler.
//
// Ids are passed in: a JobId is a nonzero integer the caller assigns (the
// store's sequence); the public "job_..." string id is the API layer's.
// Not thread-safe beyond what a value type is.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"

namespace headroom::sched {

using JobId = std::uint64_t;
inline constexpr JobId kNoJob = 0;

// Highest priority first: a lower value always wins. Preemption only goes
// downward: spot jobs are preempted by internal and reserved work; a reserved
// job is stopped (with notice) only when its own reservation ends.
enum class Tier : std::uint8_t { kInternal, kReserved, kOnDemand, kSpot };
inline constexpr std::size_t kTierCount = 4;

// Where a gang's GPUs must lie. kNvlink: one NVLink domain; kRack: one rack;
// kBlock: one network block; kAny: anywhere (packed onto few nodes).
enum class Packing : std::uint8_t { kNvlink, kRack, kBlock, kAny };

enum class JobState : std::uint8_t {
  kQueued,      // waiting for GPUs (an internal job may hold part of them while victims leave)
  kStarting,    // GPUs allocated, the executor was told to start it
  kRunning,     // the executor confirmed the start
  kPreempting,  // told to leave (SIGTERM); killed at its deadline
  kPreempted,   // terminal unless requeued
  kSucceeded,   // terminal: exit code 0
  kFailed,      // terminal: nonzero exit, or killed at its max runtime
  kCancelled,   // terminal
  kLost,        // terminal: its node went down under it
};
inline constexpr std::size_t kJobStateCount = 9;

std::string_view tier_name(Tier tier);            // "internal", "reserved", "on-demand", "spot"
Result<Tier> parse_tier(std::string_view text);
std::string_view packing_name(Packing packing);   // "nvlink", "rack", "block", "any"
Result<Packing> parse_packing(std::string_view text);
std::string_view job_state_name(JobState state);  // "queued", ..., "lost"
Result<JobState> parse_job_state(std::string_view text);
bool is_terminal(JobState state);                 // preempted counts: a requeue makes a new queued stay
bool holds_gpus(JobState state);                  // starting, running, preempting

struct Job {
  // What the submitter asks for.
  JobId id = kNoJob;
  std::string tenant_id;
  Tier tier = Tier::kSpot;
  std::uint32_t gpus = 1;                  // a gang: all or nothing
  std::string gpu_type;                    // a GpuType::name, or empty for any (one type per gang)
  Packing packing = Packing::kAny;
  std::int64_t max_runtime_s = 3600;
  Money max_price_per_gpu_hour;               // spot only; the market clears it, the scheduler keeps it
  std::optional<std::string> reservation_id;  // reserved only, and required there: the tenant's reservation
  bool requeue_on_preempt = false;
  bool wait_for_quota = false;  // over quota: queue until under it, instead of being refused
  Timestamp submitted_at;

  // Where it stands; the Scheduler sets these.
  JobState state = JobState::kQueued;
  std::array<Timestamp, kJobStateCount> entered_at{};  // last time it entered each state
  std::uint32_t preemptions = 0;
};

}  // namespace headroom::sched
