// Limits on the fleet a Headroom control plane manages, and on the inputs
// that declare it (the config file, nvidia-smi's output).
//
// They sit beside common/limits.h, in the same namespace, so code reads
// limits::kFleetNodes the way it reads limits::kHttpBodyBytes. Every bound
// that a loop over the fleet or a fleet parser obeys is named here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace headroom::limits {

// The product promises a 100,000-GPU fleet; the ceilings leave room above it.
inline constexpr std::size_t kFleetTargetGpus = 100'000;
inline constexpr std::size_t kFleetGpus = 200'000;
inline constexpr std::size_t kFleetNodes = 50'000;
inline constexpr std::size_t kFleetGpuTypes = 64;
inline constexpr std::size_t kGpusPerNode = 72;             // HGX nodes have 8; a GB200 node 4
inline constexpr std::size_t kNvlinkDomainGpus = 576;       // NVLink Switch's largest domain; NVL72 uses 72
inline constexpr std::int64_t kGpuMemoryMib = 1024 * 1024;  // 1 TiB: well above any GPU sold

// Names of nodes, regions, sites, clusters, racks, blocks and NVLink domains.
// Long enough for a fully qualified host name's useful part.
inline constexpr std::size_t kFleetNameBytes = 128;
inline constexpr std::size_t kGpuTypeNameBytes = 32;     // "h100", "gb200", "rtx-4090"
inline constexpr std::size_t kGpuDisplayNameBytes = 96;  // "NVIDIA H100 80GB HBM3"
inline constexpr std::size_t kGpuUuidBytes = 96;         // "GPU-" + a 36-character UUID, with room to spare

// Local detection: nvidia-smi prints about 80 bytes per GPU.
inline constexpr std::size_t kNvidiaSmiOutputBytes = 64 * 1024;
inline constexpr std::int64_t kNvidiaSmiTimeoutMs = 15'000;  // slow when persistence mode is off

// The config file, read whole before parsing, and its strings.
inline constexpr std::size_t kConfigFileBytes = 16 * 1024 * 1024;
inline constexpr std::size_t kConfigPathBytes = 4096;                  // PATH_MAX: data_dir, tls_cert, tls_key
inline constexpr std::size_t kListenAddressBytes = 300;                // "[" + a 253-byte host name + "]:65535"
inline constexpr std::size_t kConfigPatternBytes = 256;                // "hgx-{:03}" before expansion
inline constexpr std::int64_t kConfigPatternFirstMax = 1'000'000'000;  // the first number of a pattern

static_assert(kFleetGpus >= kFleetTargetGpus);
static_assert(kFleetNodes * 4 >= kFleetTargetGpus, "a 100,000-GPU fleet of 4-GPU GB200 nodes fits");
static_assert(kGpusPerNode <= kNvlinkDomainGpus, "a node's GPUs fit in one NVLink domain");
static_assert(kNvidiaSmiOutputBytes >= kGpusPerNode * 256, "a full node's nvidia-smi lines fit");
static_assert(kConfigFileBytes >= kFleetNodes * 256, "a largest fleet declared node by node fits");
static_assert(kConfigPatternBytes >= kFleetNameBytes, "any valid name may be written as a pattern");
static_assert(kConfigPatternFirstMax + kFleetNodes < (std::int64_t{1} << 62), "pattern numbers cannot overflow");

}  // namespace headroom::limits
