// A job request, as tenants send it to POST /v1/jobs and as the store keeps
// it (spec_json): parsing with an error that names the field, and writing
// the normalised form back.
//
//   {"gpus":2,"gpu_type":"any","tier":"spot","max_price_per_gpu_hour":"1.50",
//    "command":["python","train.py"],"args":[],"env":{},"workdir":"/data",
//    "packing":"any","max_runtime_s":3600,"requeue_on_preempt":false,
//    "reservation_id":null,"queue_if_over_quota":false}
//
// Only gpus and command are required. Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "sched/job.h"

namespace headroom::compute {

struct JobSpec {
  std::uint32_t gpus = 1;
  std::string gpu_type;  // empty: any
  sched::Tier tier = sched::Tier::kOnDemand;
  std::optional<Money> max_price_per_gpu_hour;  // spot only, required there
  std::vector<std::string> argv;                // command then args
  std::vector<std::pair<std::string, std::string>> env;
  std::string workdir;  // empty: the job's own directory
  sched::Packing packing = sched::Packing::kAny;
  std::int64_t max_runtime_s = 3600;
  bool requeue_on_preempt = false;
  std::optional<std::string> reservation_id;
  bool queue_if_over_quota = false;
};

// invalid_argument naming the field for anything malformed or out of limits.
Result<JobSpec> parse_job_spec(std::string_view json);
// The normalised JSON; parse_job_spec(to_json(s)) == s.
std::string to_json(const JobSpec& spec);

}  // namespace headroom::compute
