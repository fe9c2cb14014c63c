#include "compute/job_spec.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "common/json.h"
#include "common/limits.h"
#include "sched/sched_limits.h"

namespace headroom::compute {
namespace {

namespace json = boost::json;

constexpr std::size_t kArgs = 1024;         // command + args
constexpr std::size_t kArgBytes = 16 * 1024;
constexpr std::size_t kEnvVars = 256;
constexpr std::size_t kEnvBytes = 16 * 1024;
constexpr std::size_t kPathBytes = 4096;

Status field_error(std::string_view field, std::string_view what) {
  return Status::invalid_argument("field \"" + std::string(field) + "\" " + std::string(what));
}

Result<std::optional<std::string>> optional_string(const json::object& o, std::string_view field, std::size_t max) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return field_error(field, "must be a string");
  if (v->get_string().size() > max) return field_error(field, "is longer than " + std::to_string(max) + " bytes");
  return std::optional<std::string>(std::string(v->get_string()));
}

Result<std::optional<std::int64_t>> optional_int(const json::object& o, std::string_view field, std::int64_t min,
                                                 std::int64_t max) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<std::int64_t>();
  std::int64_t n = 0;
  if (v->is_int64()) n = v->get_int64();
  else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) n = static_cast<std::int64_t>(v->get_uint64());
  else return field_error(field, "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
  if (n < min || n > max) {
    return field_error(field, "must be from " + std::to_string(min) + " to " + std::to_string(max) + ", not " +
                                  std::to_string(n));
  }
  return std::optional<std::int64_t>(n);
}

Result<bool> optional_bool(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return false;
  if (!v->is_bool()) return field_error(field, "must be true or false");
  return v->get_bool();
}

Status append_strings(const json::object& o, std::string_view field, std::vector<std::string>& out) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return Status::ok();
  if (!v->is_array()) return field_error(field, "must be an array of strings");
  for (const json::value& item : v->get_array()) {
    if (!item.is_string()) return field_error(field, "must be an array of strings");
    if (item.get_string().size() > kArgBytes) return field_error(field, "has an item longer than 16 KiB");
    if (item.get_string().find('\0') != json::string::npos) return field_error(field, "has an item with a NUL byte");
    if (out.size() == kArgs) return field_error(field, "has more than " + std::to_string(kArgs) + " items");
    out.emplace_back(item.get_string());
  }
  return Status::ok();
}

}  // namespace

Result<JobSpec> parse_job_spec(std::string_view text) {
  HR_ASSIGN_OR_RETURN(const json::object o, parse_json_object(text));
  static constexpr std::string_view kFields[] = {
      "gpus",    "gpu_type", "tier",         "max_price_per_gpu_hour", "command",        "args",
      "env",     "workdir",  "packing",      "max_runtime_s",          "requeue_on_preempt", "reservation_id",
      "queue_if_over_quota"};
  for (const auto& field : o) {
    bool known = false;
    for (std::string_view k : kFields) known = known || field.key() == k;
    if (!known) {
      return Status::invalid_argument("unknown field \"" + std::string(field.key().substr(0, 64)) +
                                      "\" (expected gpus, gpu_type, tier, max_price_per_gpu_hour, command, args, env, "
                                      "workdir, packing, max_runtime_s, requeue_on_preempt, reservation_id, "
                                      "queue_if_over_quota)");
    }
  }

  JobSpec spec;
  HR_ASSIGN_OR_RETURN(auto gpus, optional_int(o, "gpus", 1, limits::kSchedGangGpus));
  if (!gpus) return Status::invalid_argument("missing field \"gpus\" (how many GPUs, all or nothing)");
  spec.gpus = static_cast<std::uint32_t>(*gpus);

  HR_ASSIGN_OR_RETURN(auto type, optional_string(o, "gpu_type", limits::kGpuTypeNameBytes));
  if (type && *type != "any") spec.gpu_type = *type;

  HR_ASSIGN_OR_RETURN(auto tier, optional_string(o, "tier", 32));
  if (tier) {
    auto parsed = sched::parse_tier(*tier);
    if (!parsed) return field_error("tier", "must be internal, reserved, on-demand or spot");
    spec.tier = *parsed;
  }

  HR_ASSIGN_OR_RETURN(auto price, optional_string(o, "max_price_per_gpu_hour", 32));
  if (price) {
    auto parsed = Money::parse(*price);
    if (!parsed) return field_error("max_price_per_gpu_hour", "must be a decimal amount such as \"1.50\": " +
                                                                  parsed.status().message());
    if (parsed->nanos() <= 0) return field_error("max_price_per_gpu_hour", "must be more than zero");
    spec.max_price_per_gpu_hour = *parsed;
  }
  if (spec.tier == sched::Tier::kSpot && !spec.max_price_per_gpu_hour) {
    return Status::invalid_argument("a spot job needs \"max_price_per_gpu_hour\", the most it pays per GPU-hour");
  }
  if (spec.tier != sched::Tier::kSpot && spec.max_price_per_gpu_hour) {
    return Status::invalid_argument("\"max_price_per_gpu_hour\" is for spot jobs only");
  }

  HR_RETURN_IF_ERROR(append_strings(o, "command", spec.argv));
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return Status::invalid_argument("missing field \"command\" (an array: the program, then its arguments)");
  }
  HR_RETURN_IF_ERROR(append_strings(o, "args", spec.argv));

  if (const json::value* env = o.if_contains("env"); env != nullptr && !env->is_null()) {
    if (!env->is_object()) return field_error("env", "must be an object of strings");
    for (const auto& var : env->get_object()) {
      if (!var.value().is_string()) return field_error("env", "must be an object of strings");
      if (spec.env.size() == kEnvVars) return field_error("env", "has more than 256 variables");
      std::string_view name = var.key();
      const json::string& v = var.value().get_string();
      if (name.empty() || name.size() > 256 || name.find('=') != std::string_view::npos ||
          name.find('\0') != std::string_view::npos) {
        return field_error("env", "has an invalid variable name");
      }
      if (v.size() > kEnvBytes || v.find('\0') != json::string::npos) {
        return field_error("env", "variable " + std::string(name) + " has a value over 16 KiB or with a NUL byte");
      }
      if (name.starts_with("HEADROOM_") || name == "CUDA_VISIBLE_DEVICES") {
        return field_error("env", "may not set " + std::string(name) + ": Headroom sets it");
      }
      spec.env.emplace_back(std::string(name), std::string(v));
    }
  }

  HR_ASSIGN_OR_RETURN(auto workdir, optional_string(o, "workdir", kPathBytes));
  if (workdir) {
    if (!workdir->starts_with('/')) return field_error("workdir", "must be an absolute path");
    if (workdir->find('\0') != std::string::npos) return field_error("workdir", "has a NUL byte");
    spec.workdir = *workdir;
  }

  HR_ASSIGN_OR_RETURN(auto packing, optional_string(o, "packing", 32));
  if (packing) {
    auto parsed = sched::parse_packing(*packing);
    if (!parsed) return field_error("packing", "must be nvlink, rack, block or any");
    spec.packing = *parsed;
  }

  HR_ASSIGN_OR_RETURN(auto runtime, optional_int(o, "max_runtime_s", 1, limits::kSchedMaxRuntimeS));
  if (runtime) spec.max_runtime_s = *runtime;
  HR_ASSIGN_OR_RETURN(spec.requeue_on_preempt, optional_bool(o, "requeue_on_preempt"));
  HR_ASSIGN_OR_RETURN(spec.queue_if_over_quota, optional_bool(o, "queue_if_over_quota"));

  HR_ASSIGN_OR_RETURN(spec.reservation_id, optional_string(o, "reservation_id", 64));
  if (spec.tier == sched::Tier::kReserved && !spec.reservation_id) {
    return Status::invalid_argument("a reserved job needs \"reservation_id\", the capacity block it runs in");
  }
  if (spec.tier != sched::Tier::kReserved && spec.reservation_id) {
    return Status::invalid_argument("\"reservation_id\" is for reserved jobs only");
  }
  return spec;
}

std::string to_json(const JobSpec& spec) {
  json::object o;
  o["gpus"] = spec.gpus;
  o["gpu_type"] = spec.gpu_type.empty() ? "any" : spec.gpu_type;
  o["tier"] = sched::tier_name(spec.tier);
  if (spec.max_price_per_gpu_hour) o["max_price_per_gpu_hour"] = spec.max_price_per_gpu_hour->to_string();
  else o["max_price_per_gpu_hour"] = nullptr;
  json::array command;
  for (const std::string& a : spec.argv) command.emplace_back(a);
  o["command"] = std::move(command);
  json::object env;
  for (const auto& [k, v] : spec.env) env[k] = v;
  o["env"] = std::move(env);
  if (spec.workdir.empty()) o["workdir"] = nullptr;
  else o["workdir"] = spec.workdir;
  o["packing"] = sched::packing_name(spec.packing);
  o["max_runtime_s"] = spec.max_runtime_s;
  o["requeue_on_preempt"] = spec.requeue_on_preempt;
  if (spec.reservation_id) o["reservation_id"] = *spec.reservation_id;
  else o["reservation_id"] = nullptr;
  o["queue_if_over_quota"] = spec.queue_if_over_quota;
  return json::serialize(o);
}

}  // namespace headroom::compute
