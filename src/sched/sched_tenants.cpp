// The Scheduler's tenants: fair-share usage and weights, and quotas.
//
// Usage. A tenant's usage of a tier U (GPU-seconds) decays with rate
// lambda = ln 2 / half-life while its jobs of that tier hold g GPUs:
//   U(t + d) = U(t) e^(-lambda d) + g (1 - e^(-lambda d)) / lambda
// exact for a constant g, so it is brought up to date whenever g changes
// (a job of the tier starts or stops) and when the tier is served.
#include <cmath>
#include <string>

#include "common/check.h"
#include "sched/scheduler.h"

namespace headroom::sched {

namespace {

double decayed(double usage_gpu_s, std::uint32_t held, std::int64_t elapsed_us, double decay_per_us) {
  if (elapsed_us <= 0) return usage_gpu_s;
  const double x = decay_per_us * static_cast<double>(elapsed_us);
  const double keep = std::exp(-x);
  const double gained = -std::expm1(-x);  // 1 - e^-x, exact for small x
  return usage_gpu_s * keep + static_cast<double>(held) * gained / (decay_per_us * 1e6);
}

std::string limit_name(const GpuLimit& limit) {
  return std::string(tier_name(limit.tier)) + " GPUs" +
         (limit.gpu_type.empty() ? std::string(" of all types") : " of type " + limit.gpu_type);
}

}  // namespace

std::uint32_t Scheduler::tenant_index(std::string_view name, bool create) {
  auto it = tenant_of_.find(std::string(name));
  if (it != tenant_of_.end()) return it->second;
  if (!create || tenants_.size() >= limits::kSchedTenants) return kNoIndex;
  const std::size_t types = cluster_.type_count();
  Tenant tenant;
  tenant.name = std::string(name);
  tenant.held_by.assign(kTierCount * types, 0);
  tenant.queued_by.assign(kTierCount * (types + 1), 0);
  const std::uint32_t index = static_cast<std::uint32_t>(tenants_.size());
  tenants_.push_back(std::move(tenant));
  tenant_of_.emplace(std::string(name), index);
  return index;
}

void Scheduler::accrue(Tenant& tenant, Tier tier, Timestamp now) const {
  const int t = static_cast<int>(tier);
  const std::int64_t elapsed = now.unix_micros - tenant.usage_at_us[t];
  if (elapsed <= 0) return;  // a command from the past moves nothing
  tenant.usage_gpu_s[t] = decayed(tenant.usage_gpu_s[t], tenant.held[t], elapsed, decay_per_us_);
  tenant.usage_at_us[t] = now.unix_micros;
}

double Scheduler::share_key(std::uint32_t t, Tier tier, Timestamp now) {
  Tenant& tenant = tenants_[t];
  accrue(tenant, tier, now);
  return tenant.usage_gpu_s[static_cast<int>(tier)] / tenant.weight;
}

void Scheduler::count_queued(const Slot& slot, int delta) {
  Tenant& tenant = tenants_[slot.tenant];
  const std::size_t types = cluster_.type_count();
  const std::size_t i = static_cast<std::size_t>(slot.job.tier) * (types + 1) + (slot.type ? *slot.type : types);
  tenant.queued_by[i] = static_cast<std::uint32_t>(static_cast<std::int64_t>(tenant.queued_by[i]) +
                                                   delta * static_cast<std::int64_t>(slot.job.gpus));
}

void Scheduler::count_held(const Slot& slot, int delta, Timestamp now) {
  Tenant& tenant = tenants_[slot.tenant];
  const int tier = static_cast<int>(slot.job.tier);
  accrue(tenant, slot.job.tier, now);
  const std::int64_t gpus = delta * static_cast<std::int64_t>(slot.job.gpus);
  tenant.held[tier] = static_cast<std::uint32_t>(tenant.held[tier] + gpus);
  std::uint32_t& by_type = tenant.held_by[tier * cluster_.type_count() + slot.held_type];
  by_type = static_cast<std::uint32_t>(by_type + gpus);
  held_[tier][slot.held_type] = static_cast<std::uint32_t>(held_[tier][slot.held_type] + gpus);
}

Status Scheduler::check_quota_at_submit(const Tenant& tenant, const Job& job, std::optional<TypeIndex> type) const {
  if (tenant.max_queued_jobs && tenant.queued_jobs >= *tenant.max_queued_jobs) {
    return Status::quota_exceeded("quota: tenant " + fleet::quote_for_message(tenant.name) + " may queue at most " +
                                  std::to_string(*tenant.max_queued_jobs) + " jobs");
  }
  const std::size_t types = cluster_.type_count();
  const int tier = static_cast<int>(job.tier);
  for (const Limit& limit : tenant.limits) {
    if (limit.tier != job.tier) continue;
    if (limit.type != kNoIndex && type && *type != limit.type) continue;
    const GpuLimit named{.tier = limit.tier, .gpu_type = limit.gpu_type, .max_gpus = limit.max_gpus};
    if (job.gpus > limit.max_gpus) {
      return Status::quota_exceeded("quota: a gang of " + std::to_string(job.gpus) + " GPUs exceeds tenant " +
                                    fleet::quote_for_message(tenant.name) + "'s limit of " +
                                    std::to_string(limit.max_gpus) + " " + limit_name(named));
    }
    if (job.wait_for_quota) continue;
    std::uint64_t committed = 0;
    const std::uint32_t* queued = &tenant.queued_by[tier * (types + 1)];
    if (limit.type == kNoIndex) {
      committed = tenant.held[tier];
      for (std::size_t t = 0; t <= types; ++t) committed += queued[t];
    } else {
      committed = std::uint64_t{tenant.held_by[tier * types + limit.type]} + queued[limit.type] + queued[types];
    }
    if (committed + job.gpus > limit.max_gpus) {
      return Status::quota_exceeded("quota: tenant " + fleet::quote_for_message(tenant.name) + " holds or has queued " +
                                    std::to_string(committed) + " of its limit of " + std::to_string(limit.max_gpus) +
                                    " " + limit_name(named) + "; " + std::to_string(job.gpus) +
                                    " more would exceed it (wait_for_quota queues the job instead)");
    }
  }
  return Status::ok();
}

bool Scheduler::quota_allows_start(const Tenant& tenant, Tier tier, TypeIndex type, std::uint32_t gpus) const {
  const int t = static_cast<int>(tier);
  for (const Limit& limit : tenant.limits) {
    if (limit.tier != tier) continue;
    if (limit.type == kNoIndex) {
      if (std::uint64_t{tenant.held[t]} + gpus > limit.max_gpus) return false;
    } else if (limit.type == type) {
      if (std::uint64_t{tenant.held_by[t * cluster_.type_count() + type]} + gpus > limit.max_gpus) return false;
    }
  }
  return true;
}

Status Scheduler::set_tenant_weight(std::string_view tenant, double weight) {
  if (!std::isfinite(weight) || weight <= 0 || weight > limits::kSchedTenantWeightMax) {
    return Status::invalid_argument("weight: expected a number in (0, " +
                                    std::to_string(static_cast<std::int64_t>(limits::kSchedTenantWeightMax)) + "]");
  }
  const std::uint32_t t = tenant_index(tenant, /*create=*/true);
  if (t == kNoIndex) return Status::unavailable("the scheduler knows too many tenants");
  tenants_[t].weight = weight;
  return Status::ok();
}

Status Scheduler::set_quota(std::string_view tenant, TenantQuota quota) {
  if (quota.gpu_limits.size() > limits::kSchedQuotaLimits) {
    return Status::invalid_argument("gpu_limits: at most " + std::to_string(limits::kSchedQuotaLimits));
  }
  if (quota.max_queued_jobs && *quota.max_queued_jobs > limits::kSchedQueuedJobs) {
    return Status::invalid_argument("max_queued_jobs: expected 0.." + std::to_string(limits::kSchedQueuedJobs));
  }
  std::vector<Limit> resolved;
  for (const GpuLimit& limit : quota.gpu_limits) {
    std::uint32_t type = kNoIndex;
    if (!limit.gpu_type.empty()) {
      const std::optional<TypeIndex> t = cluster_.find_type(limit.gpu_type);
      if (!t)
        return Status::invalid_argument("gpu_limits: the fleet has no GPU type " +
                                        fleet::quote_for_message(limit.gpu_type));
      type = *t;
    }
    if (static_cast<std::size_t>(limit.tier) >= kTierCount) return Status::invalid_argument("gpu_limits: bad tier");
    resolved.push_back(Limit{.tier = limit.tier, .type = type, .max_gpus = limit.max_gpus, .gpu_type = limit.gpu_type});
  }
  const std::uint32_t t = tenant_index(tenant, /*create=*/true);
  if (t == kNoIndex) return Status::unavailable("the scheduler knows too many tenants");
  tenants_[t].limits = std::move(resolved);
  tenants_[t].max_queued_jobs = quota.max_queued_jobs;
  return Status::ok();
}

double Scheduler::usage_gpu_seconds(std::string_view tenant, Tier tier, Timestamp now) const {
  auto it = tenant_of_.find(std::string(tenant));
  if (it == tenant_of_.end()) return 0;
  const Tenant& tn = tenants_[it->second];
  const int t = static_cast<int>(tier);
  return decayed(tn.usage_gpu_s[t], tn.held[t], now.unix_micros - tn.usage_at_us[t], decay_per_us_);
}

double Scheduler::tenant_weight(std::string_view tenant) const {
  auto it = tenant_of_.find(std::string(tenant));
  return it == tenant_of_.end() ? 1.0 : tenants_[it->second].weight;
}

bool Scheduler::quota_allows(std::string_view tenant, Tier tier, TypeIndex type, std::uint32_t gpus) const {
  auto it = tenant_of_.find(std::string(tenant));
  if (it == tenant_of_.end()) return true;
  return quota_allows_start(tenants_[it->second], tier, type, gpus);
}

}  // namespace headroom::sched
