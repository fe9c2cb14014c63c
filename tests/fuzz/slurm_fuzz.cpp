// Fuzz target for the parsers of Slurm's answers (exec/slurm_executor.h,
// fleet/slurm_fleet.h): whatever squeue, scontrol or sbatch print, the
// result is a value or a clear error, never a crash, and a fleet built from
// it is one fleet::validate() accepts.
#include <cstdint>
#include <string_view>

#include "exec/slurm_executor.h"
#include "fleet/slurm_fleet.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace headroom;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto jobs = exec::parse_squeue(text); !jobs) CHECK(!jobs.status().message().empty());
  if (auto job = exec::parse_scontrol_job(text); !job) CHECK(!job.status().message().empty());
  if (auto id = exec::parse_sbatch_job_id(text); id) CHECK(!id->empty());
  if (auto nodes = fleet::parse_scontrol_nodes(text); !nodes) CHECK(!nodes.status().message().empty());
  fleet::SlurmFleetOptions options;
  options.undeclared_gpu_memory_mib = 81920;
  if (auto fleet = fleet::fleet_from_slurm_nodes(text, options); fleet) {
    CHECK(fleet::validate(*fleet).is_ok());
  }
  (void)exec::is_finished_slurm_state(text);
  (void)fleet::node_state_from_slurm(text);
  return 0;
}
