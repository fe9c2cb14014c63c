#include "sched/job.h"

namespace headroom::sched {

std::string_view tier_name(Tier tier) {
  switch (tier) {
    case Tier::kInternal: return "internal";
    case Tier::kReserved: return "reserved";
    case Tier::kOnDemand: return "on-demand";
    case Tier::kSpot: return "spot";
  }
  return "?";
}

Result<Tier> parse_tier(std::string_view text) {
  for (Tier t : {Tier::kInternal, Tier::kReserved, Tier::kOnDemand, Tier::kSpot}) {
    if (text == tier_name(t)) return t;
  }
  return Status::invalid_argument("tier: expected internal, reserved, on-demand or spot");
}

std::string_view packing_name(Packing packing) {
  switch (packing) {
    case Packing::kNvlink: return "nvlink";
    case Packing::kRack: return "rack";
    case Packing::kBlock: return "block";
    case Packing::kAny: return "any";
  }
  return "?";
}

Result<Packing> parse_packing(std::string_view text) {
  for (Packing p : {Packing::kNvlink, Packing::kRack, Packing::kBlock, Packing::kAny}) {
    if (text == packing_name(p)) return p;
  }
  return Status::invalid_argument("packing: expected nvlink, rack, block or any");
}

std::string_view job_state_name(JobState state) {
  switch (state) {
    case JobState::kQueued: return "queued";
    case JobState::kStarting: return "starting";
    case JobState::kRunning: return "running";
    case JobState::kPreempting: return "preempting";
    case JobState::kPreempted: return "preempted";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
    case JobState::kLost: return "lost";
  }
  return "?";
}

Result<JobState> parse_job_state(std::string_view text) {
  for (std::size_t i = 0; i < kJobStateCount; ++i) {
    if (text == job_state_name(static_cast<JobState>(i))) return static_cast<JobState>(i);
  }
  return Status::invalid_argument(
      "job state: expected queued, starting, running, preempting, preempted, succeeded, failed, cancelled or lost");
}

bool is_terminal(JobState state) {
  return state == JobState::kPreempted || state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled || state == JobState::kLost;
}

bool holds_gpus(JobState state) {
  return state == JobState::kStarting || state == JobState::kRunning || state == JobState::kPreempting;
}

}  // namespace headroom::sched
