// Limits of the scheduler core. They sit beside common/limits.h and
// fleet/fleet_limits.h in the same namespace, so code reads
// limits::kSchedQueuedJobs the way it reads limits::kFleetGpus. Every queue
// and every loop of the scheduler is bounded by one of these.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fleet/fleet_limits.h"

namespace headroom::limits {

// Jobs the scheduler holds at once: queued ones plus those holding GPUs.
// Finished jobs leave the scheduler (the store keeps their history).
inline constexpr std::size_t kSchedQueuedJobs = 1'000'000;
inline constexpr std::size_t kSchedLiveJobs = kSchedQueuedJobs + kFleetGpus;  // every GPU a 1-GPU job

// A gang: the GPUs of one job, all or nothing.
inline constexpr std::uint32_t kSchedGangGpus = 16'384;

// A job's declared maximum runtime; it is killed when it runs past it.
inline constexpr std::int64_t kSchedMaxRuntimeS = 30LL * 24 * 3600;

// Grace between a preemption notice (SIGTERM) and the kill (SIGKILL).
inline constexpr std::int64_t kSchedSpotGraceMs = 30'000;  // the default for spot
inline constexpr std::int64_t kSchedGraceMsMax = 3'600'000;

// Work one tick does at most: queued jobs it looks at, preemptions it starts.
// A queue deeper than kSchedTickScanJobs is served over several ticks.
inline constexpr std::size_t kSchedTickScanJobs = 100'000;
inline constexpr std::size_t kSchedTickPreemptions = 64;

// Tenants the scheduler knows (weights, quotas, usage); a tenant is known
// from its first job, weight or quota on.
inline constexpr std::size_t kSchedTenants = 100'000;
inline constexpr double kSchedTenantWeightMax = 1'000'000.0;
inline constexpr std::size_t kSchedQuotaLimits = 64;  // GPU limits in one tenant's quota

// Fair share: usage decays with a half-life between these.
inline constexpr std::int64_t kSchedHalfLifeSMin = 1;
inline constexpr std::int64_t kSchedHalfLifeSMax = 365LL * 24 * 3600;

// Reservations booked or running at once, and their shape.
inline constexpr std::size_t kSchedReservations = 4'096;
inline constexpr std::size_t kSchedReservationIdBytes = 128;
inline constexpr std::int64_t kSchedReservationMaxS = 366LL * 24 * 3600;

// Backfill: a blocked job's shadow start is sought in at most this many
// groups (the ones with the most available GPUs), and one tick tries at most
// this many short jobs on a head's claimed GPUs.
inline constexpr std::size_t kSchedShadowGroups = 16;
inline constexpr std::size_t kSchedTickBackfillTries = 256;

static_assert(kSchedGangGpus <= kFleetGpus);
static_assert(kSchedGangGpus >= kNvlinkDomainGpus, "a whole NVLink domain can be one gang");
static_assert(kSchedSpotGraceMs <= kSchedGraceMsMax);
static_assert(kSchedTickScanJobs <= kSchedQueuedJobs);
static_assert(kSchedLiveJobs < (std::size_t{1} << 31), "job slots fit a uint32 with room for a sentinel");
static_assert(kSchedTenants < (std::size_t{1} << 31), "tenant indexes fit a uint32 with room for a sentinel");
static_assert(kSchedReservations < (std::size_t{1} << 31));
static_assert(kSchedShadowGroups >= 1 && kSchedTickBackfillTries >= 1);

}  // namespace headroom::limits
