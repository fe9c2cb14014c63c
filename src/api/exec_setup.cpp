#include "api/exec_setup.h"

#include "exec/local_executor.h"
#include "exec/slurm_executor.h"
#include "fleet/detect.h"
#include "fleet/slurm_fleet.h"

namespace headroom::api {
namespace {

exec::SlurmOptions slurm_options(const config::ExecConfig& config) {
  exec::SlurmOptions options;
  options.jobs_root = config.jobs_dir;
  options.slurm_conf = config.slurm_conf;
  options.bin_dir = config.slurm_bin_dir;
  options.partition = config.partition;
  return options;
}

}  // namespace

Result<fleet::FleetSpec> undeclared_fleet(const config::ServeConfig& config) {
  if (config.exec.kind != "slurm") return fleet::detect_local_fleet();
  HR_ASSIGN_OR_RETURN(std::string nodes, exec::slurm_show_nodes(slurm_options(config.exec)));
  fleet::SlurmFleetOptions options;
  options.partition = config.exec.partition;
  for (const auto& [type, gib] : config.exec.gpu_memory_gib) {
    options.gpu_types.push_back({.name = type, .display_name = "", .memory_mib = gib * 1024});
  }
  auto fleet = fleet::fleet_from_slurm_nodes(nodes, options);
  if (!fleet) {
    return Status::invalid_argument("the fleet read from Slurm: " + fleet.status().message() +
                                    " (declare GPU types in [exec] gpu_memory_gib)");
  }
  return fleet;
}

Result<std::unique_ptr<exec::Executor>> make_executor(const config::ExecConfig& config,
                                                      const std::string& default_jobs_dir, const Clock& clock) {
  if (config.kind == "slurm") {
    HR_ASSIGN_OR_RETURN(auto executor, exec::SlurmExecutor::create(slurm_options(config), clock));
    return std::unique_ptr<exec::Executor>(std::move(executor));
  }
  HR_ASSIGN_OR_RETURN(auto executor,
                      exec::LocalExecutor::create(config.jobs_dir.empty() ? default_jobs_dir : config.jobs_dir, clock));
  return std::unique_ptr<exec::Executor>(std::move(executor));
}

}  // namespace headroom::api
