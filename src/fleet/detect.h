// Local fleet detection: what `headroom serve` sells when no fleet is declared.
//
// detect_local_fleet() asks nvidia-smi for this machine's GPUs and describes
// them as a one-node fleet named after the host. Without nvidia-smi on PATH
// it returns a virtual fleet, flagged is_virtual, so that a laptop runs the
// whole platform; nothing pretends those GPUs exist. When nvidia-smi is there
// but fails (no driver, no devices, a hang), detection fails rather than sell
// a virtual fleet on a GPU machine: the operator fixes the driver or declares
// the fleet in the config file.
//
// Detection sees one node and no topology beyond it: each node is its own
// NVLink domain. GB200 NVL72 racks and multi-node fleets are declared in the
// config file.
//
// The parsing steps are pure functions, tested without nvidia-smi.
// detect_local_fleet() runs a child process and blocks for up to its timeout;
// it is safe to call from any thread but is meant for startup.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "fleet/fleet.h"
#include "fleet/fleet_limits.h"

namespace headroom::fleet {

// The query detect_local_fleet() runs: one CSV line per GPU,
// "0, GPU-8f6b..., NVIDIA H100 80GB HBM3, 81559" (memory in MiB).
inline constexpr std::string_view kNvidiaSmiQueryArg = "--query-gpu=index,uuid,name,memory.total";
inline constexpr std::string_view kNvidiaSmiFormatArg = "--format=csv,noheader,nounits";

// One line of nvidia-smi's answer.
struct DetectedGpu {
  std::uint32_t index = 0;
  std::string uuid;  // empty when nvidia-smi reports it as N/A
  std::string name;  // the product name, "NVIDIA H100 80GB HBM3"
  std::int64_t memory_mib = 0;
};

// Parses the output of the query above. Blank lines are skipped; any other
// line that is not four well-formed fields, or that lacks its end of line
// (truncated output), fails with invalid_argument naming the line number and
// what was wrong. Fails too on no GPUs, more than kGpusPerNode GPUs, or a
// repeated index or uuid.
Result<std::vector<DetectedGpu>> parse_nvidia_smi_csv(std::string_view csv);

// A GPU type name from a product name: lower case, without the vendor, brand,
// memory size and form factor. "NVIDIA H100 80GB HBM3" -> "h100",
// "NVIDIA A100-SXM4-40GB" -> "a100", "NVIDIA GeForce RTX 4090" -> "rtx-4090".
// Always returns a name that is_valid_gpu_type_name() accepts ("gpu" when
// nothing of the product name is usable).
std::string gpu_type_from_product_name(std::string_view product_name);

// A host name made into a valid node name: characters outside [A-Za-z0-9._-]
// become '-', the length is capped; "local" when nothing usable remains.
std::string node_name_from_host_name(std::string_view host_name);

// The one-node fleet those GPUs make: region, site and cluster "local", the
// node its own NVLink domain, one GpuType per distinct type name (its memory
// the least that any of its GPUs reports), source "nvidia-smi". Validated.
Result<FleetSpec> fleet_from_detected_gpus(std::string_view node_name, const std::vector<DetectedGpu>& gpus);

// The fleet of a machine without GPUs: node "local" with 8 GPUs of type
// "virtual" (80 GiB each), is_virtual, source "virtual".
FleetSpec virtual_local_fleet();

struct DetectOptions {
  // Run by posix_spawnp: a bare name is looked up on PATH; a name with a
  // slash (a test's fake) is run as is.
  std::string nvidia_smi = "nvidia-smi";
  std::int64_t timeout_ms = limits::kNvidiaSmiTimeoutMs;
  std::string node_name;  // empty: this machine's host name
};

// nvidia-smi's GPUs as a one-node fleet; the virtual fleet when the program
// does not exist. Errors: unavailable when it fails, exits non-zero, times out
// or prints more than kNvidiaSmiOutputBytes; invalid_argument when its output
// does not parse.
Result<FleetSpec> detect_local_fleet();
Result<FleetSpec> detect_local_fleet(const DetectOptions& options);

}  // namespace headroom::fleet
