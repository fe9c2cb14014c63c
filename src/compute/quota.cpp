#include "compute/quota.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "common/json.h"
#include "common/limits.h"
#include "sched/sched_limits.h"

namespace headroom::compute {
namespace {
namespace json = boost::json;

constexpr std::size_t kGpuLimits = 64;
constexpr double kMaxWeight = 1'000'000;

Result<std::int64_t> integer(const json::value& v, std::string_view field, std::int64_t max) {
  std::int64_t n = -1;
  if (v.is_int64()) n = v.get_int64();
  else if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(max)) n = static_cast<std::int64_t>(v.get_uint64());
  if (n < 0 || n > max) {
    return Status::invalid_argument("field \"" + std::string(field) + "\" must be an integer from 0 to " +
                                    std::to_string(max));
  }
  return n;
}

}  // namespace

Result<ComputeQuota> parse_quota(std::string_view text) {
  HR_ASSIGN_OR_RETURN(const json::object object, parse_json_object(text));
  ComputeQuota quota;
  for (const auto& field : object) {
    std::string_view key = field.key();
    const json::value& v = field.value();
    if (key == "max_queued_jobs") {
      if (v.is_null()) continue;
      HR_ASSIGN_OR_RETURN(std::int64_t n, integer(v, key, static_cast<std::int64_t>(limits::kSchedQueuedJobs)));
      quota.limits.max_queued_jobs = static_cast<std::size_t>(n);
    } else if (key == "fair_share_weight") {
      if (!v.is_number() || v.to_number<double>() <= 0 || v.to_number<double>() > kMaxWeight) {
        return Status::invalid_argument("field \"fair_share_weight\" must be a number above 0 and at most 1000000");
      }
      quota.fair_share_weight = v.to_number<double>();
    } else if (key == "gpu_limits") {
      if (!v.is_array()) return Status::invalid_argument("field \"gpu_limits\" must be an array");
      if (v.get_array().size() > kGpuLimits) {
        return Status::invalid_argument("field \"gpu_limits\" has more than " + std::to_string(kGpuLimits) + " items");
      }
      for (const json::value& item : v.get_array()) {
        const json::object* o = item.if_object();
        if (o == nullptr) return Status::invalid_argument("each item of \"gpu_limits\" must be an object");
        sched::GpuLimit limit;
        bool has_tier = false, has_max = false;
        for (const auto& f : *o) {
          if (f.key() == "tier") {
            auto tier = f.value().is_string() ? sched::parse_tier(f.value().get_string()) : Result<sched::Tier>(Status::invalid_argument(""));
            if (!tier) return Status::invalid_argument("gpu_limits: \"tier\" must be internal, reserved, on-demand or spot");
            limit.tier = *tier;
            has_tier = true;
          } else if (f.key() == "gpu_type") {
            if (!f.value().is_string() || f.value().get_string().size() > limits::kGpuTypeNameBytes) {
              return Status::invalid_argument("gpu_limits: \"gpu_type\" must be a GPU type name or \"any\"");
            }
            limit.gpu_type = f.value().get_string() == "any" ? "" : std::string(f.value().get_string());
          } else if (f.key() == "max_gpus") {
            HR_ASSIGN_OR_RETURN(std::int64_t n, integer(f.value(), "gpu_limits.max_gpus", limits::kFleetGpus));
            limit.max_gpus = static_cast<std::uint32_t>(n);
            has_max = true;
          } else {
            return Status::invalid_argument("gpu_limits: unknown field \"" + std::string(f.key().substr(0, 64)) +
                                            "\" (expected tier, gpu_type, max_gpus)");
          }
        }
        if (!has_tier || !has_max) return Status::invalid_argument("gpu_limits: each limit needs \"tier\" and \"max_gpus\"");
        quota.limits.gpu_limits.push_back(std::move(limit));
      }
    } else {
      return Status::invalid_argument("unknown field \"" + std::string(key.substr(0, 64)) +
                                      "\" (expected max_queued_jobs, gpu_limits, fair_share_weight)");
    }
  }
  return quota;
}

std::string to_json(const ComputeQuota& quota) {
  json::object o;
  if (quota.limits.max_queued_jobs) o["max_queued_jobs"] = *quota.limits.max_queued_jobs;
  else o["max_queued_jobs"] = nullptr;
  json::array limits;
  for (const sched::GpuLimit& l : quota.limits.gpu_limits) {
    limits.push_back(json::object{{"tier", sched::tier_name(l.tier)},
                                  {"gpu_type", l.gpu_type.empty() ? "any" : l.gpu_type},
                                  {"max_gpus", l.max_gpus}});
  }
  o["gpu_limits"] = std::move(limits);
  o["fair_share_weight"] = quota.fair_share_weight;
  return json::serialize(o);
}

}  // namespace headroom::compute
