// The fleet as a Slurm cluster describes it: what `headroom serve` sells when
// jobs run through Slurm (exec/slurm_executor.h).
//
// fleet_from_slurm_nodes() reads the text of `scontrol show nodes --oneliner`
// (one line per node, "Key=Value" fields; exec::slurm_show_nodes() runs it):
//
//   NodeName=gpu01 ... Gres=gpu:h100:8(S:0-1) ... State=MIXED+DRAIN ... Partitions=batch
//
// Every node becomes a Node of the fleet with one Gpu per GPU of its GPU GRES
// (gpu:TYPE:COUNT, or gpu:COUNT for an untyped GRES, which takes
// options.untyped_gpu_type), indexed 0..n-1 in the order Slurm lists them, as
// Slurm numbers them in CUDA_VISIBLE_DEVICES. Slurm's type names are
// lowered ("H100" -> "h100"). Nodes without GPUs are left out. States:
//
//   | Slurm (base state, +flags)                               | NodeState  |
//   |----------------------------------------------------------|------------|
//   | IDLE, ALLOCATED, MIXED, COMPLETING                       | kUp        |
//   | any with +DRAIN, +FAIL, +MAINT, +RESERVED                | kDraining  |
//   | DOWN, FUTURE, UNKNOWN; any with +NOT_RESPONDING,         | kDown      |
//   | +POWERED_DOWN, +POWERING_DOWN, +POWERING_UP, +REBOOT_... |            |
//
// Slurm does not know how much memory a GPU has: each type found must be one
// of options.gpu_types (their display names and memory come from there),
// else the parse fails naming it, unless options.undeclared_gpu_memory_mib
// is set. The hierarchy is flat: every node lies in options.region, .site
// and .cluster, and is its own NVLink domain; racks and blocks are unknown.
//
// Pure: no I/O. Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "fleet/fleet.h"

namespace headroom::fleet {

struct SlurmFleetOptions {
  std::vector<GpuType> gpu_types;              // the types the operator declared
  std::int64_t undeclared_gpu_memory_mib = 0;  // 0: an undeclared type is an error
  std::string untyped_gpu_type = "gpu";        // for gpu:COUNT
  std::string region = "slurm";
  std::string site = "slurm";
  std::string cluster = "slurm";
  // Only nodes in this partition (empty: all nodes).
  std::string partition;
};

// One node as scontrol describes it.
struct SlurmNode {
  std::string name;
  std::string state;  // as printed: "IDLE", "MIXED+DRAIN", ...
  std::vector<std::string> partitions;
  struct GpuGres {
    std::string type;  // as Slurm spells it; empty when untyped
    std::uint32_t count = 0;
  };
  std::vector<GpuGres> gpus;
};

// The nodes of `scontrol show nodes --oneliner` output. invalid_argument
// naming the line when a line has no NodeName= or State=, or a GPU GRES
// count is malformed. Blank lines are skipped; "No nodes in the system" gives
// none.
Result<std::vector<SlurmNode>> parse_scontrol_nodes(std::string_view text);

// The NodeState of a Slurm state (the table above).
NodeState node_state_from_slurm(std::string_view state);

// The fleet of those nodes (see above), validated; source "slurm".
// invalid_argument when a type is undeclared, when no node has GPUs, or when
// validate() refuses the result.
Result<FleetSpec> fleet_from_slurm_nodes(std::string_view scontrol_text, const SlurmFleetOptions& options);

}  // namespace headroom::fleet
