// The executor `headroom serve` runs jobs through, and for Slurm the fleet
// it sells, chosen by the config's [exec] section (docs/slurm.md).
//
//   kind = "local": exec::LocalExecutor, job directories in jobs_dir or
//   DATA/jobs; the fleet is the declared one or nvidia-smi's.
//   kind = "slurm": exec::SlurmExecutor; the fleet is the declared one, or
//   else read from Slurm (scontrol show nodes), its GPU types' memory from
//   [exec] gpu_memory_gib.
//
// Both run at startup, from one thread; they block on the commands they run.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "common/time.h"
#include "config/config.h"
#include "exec/executor.h"
#include "fleet/fleet.h"

namespace headroom::api {

// The fleet when the config declares none: Slurm's for kind = "slurm",
// else fleet::detect_local_fleet(). Errors name what failed (scontrol not
// answering, an undeclared GPU type).
Result<fleet::FleetSpec> undeclared_fleet(const config::ServeConfig& config);

// The executor of config.exec; `default_jobs_dir` (DATA/jobs) serves the
// local executor when jobs_dir is not set.
Result<std::unique_ptr<exec::Executor>> make_executor(const config::ExecConfig& config,
                                                      const std::string& default_jobs_dir, const Clock& clock);

}  // namespace headroom::api
