// A tenant's compute quota as the admin sets it (PUT /v1/tenants/{id}/quota)
// and the store keeps it:
//
//   {"max_queued_jobs":100,
//    "gpu_limits":[{"tier":"spot","gpu_type":"h100","max_gpus":16},
//                  {"tier":"on-demand","gpu_type":"any","max_gpus":8}],
//    "fair_share_weight":2.0}
//
// Every field is optional; an absent limit is no limit. Stateless, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "sched/scheduler.h"

namespace headroom::compute {

struct ComputeQuota {
  sched::TenantQuota limits;
  double fair_share_weight = 1.0;  // its share among the tenants of a tier
};

// invalid_argument naming the field.
Result<ComputeQuota> parse_quota(std::string_view json);
std::string to_json(const ComputeQuota& quota);

}  // namespace headroom::compute
