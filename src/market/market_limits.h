// Limits of the market: the catalog, the economics, spot clearing and the
// capacity calendar. They sit beside common/limits.h and sched/sched_limits.h
// in the same namespace, so code reads limits::kMarketClearingBids the way
// it reads limits::kSchedQueuedJobs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fleet/fleet_limits.h"
#include "sched/sched_limits.h"

namespace headroom::limits {

// ---- economics ----

// The bounds keep every product below in
// __int128 and every cost per GPU-hour in Money (int64 nano-dollars).
inline constexpr std::size_t kEconomicsGpuTypeBytes = 64;
inline constexpr std::int32_t kEconomicsLifeYearsMax = 15;                    // useful_life_years: 1..this
inline constexpr std::int64_t kEconomicsPurchasePriceDollarsMax = 1'000'000;  // one GPU with its share of the host
inline constexpr std::int64_t kEconomicsPowerWattsMax = 10'000;               // one GPU with its share of the host
inline constexpr std::int64_t kEconomicsPueMilliMin = 1'000;                  // a PUE of 1.0: no overhead at all
inline constexpr std::int64_t kEconomicsPueMilliMax = 3'000;
inline constexpr std::int64_t kEconomicsEnergyPricePerKwhDollarsMax = 10;
inline constexpr std::int64_t kEconomicsOtherCostPerGpuHourDollarsMax = 1'000;
// in_service lies in [1970-01-01, 2100-01-01).
inline constexpr std::int64_t kEconomicsInServiceUnixSecondsMax = 4'102'444'800;
inline constexpr std::int32_t kUtilizationPermilleMax = 1'000;  // utilization_permille: 1..this

static_assert(kEconomicsLifeYearsMax >= 1 && kEconomicsPueMilliMin <= kEconomicsPueMilliMax);
// The largest cost per GPU-hour, the full cost at 1 permille, fits Money:
// a year's depreciation is at most the purchase price, so the fixed part is
// under (purchase + other cost) * 1000, and power adds watts * PUE * price.
static_assert((kEconomicsPurchasePriceDollarsMax + kEconomicsOtherCostPerGpuHourDollarsMax) * 1'000'000'000 *
                          kUtilizationPermilleMax +
                      kEconomicsPowerWattsMax * kEconomicsPueMilliMax * kEconomicsEnergyPricePerKwhDollarsMax * 1'000 <
                  9'223'372'036'854'775'807LL,
              "every cost per GPU-hour fits Money");

// ---- clearing ----

// Bids in one clearing (one GPU type). Every queued spot job may bid.
inline constexpr std::size_t kMarketClearingBids = 1'000'000;
static_assert(kMarketClearingBids >= kSchedQueuedJobs, "every queued job may be a spot bid on one type");
static_assert(kMarketClearingBids <= UINT32_MAX, "a bid's index fits 32 bits");

// ---- calendar ----

// The calendar's horizon, in hours: 90 days by default, a leap year at most.
inline constexpr std::int32_t kCalendarHorizonHoursDefault = 90 * 24;
inline constexpr std::int32_t kCalendarHorizonHoursMax = 366 * 24;
static_assert(kCalendarHorizonHoursDefault <= kCalendarHorizonHoursMax);

// GPU types a calendar holds, and GPUs of one type.
inline constexpr std::size_t kCalendarGpuTypes = kFleetGpuTypes;
inline constexpr std::uint32_t kCalendarGpusPerType = static_cast<std::uint32_t>(kFleetGpus);

// Forecast entries (internal demand windows) over all types.
inline constexpr std::size_t kCalendarForecastEntries = 100'000;

// Live blocks at once, and the bytes of a block's id.
inline constexpr std::size_t kCalendarBlocks = 1'000'000;
inline constexpr std::size_t kCalendarBlockIdBytes = 128;

// Sums of GPUs over a calendar's hours stay far inside an int64.
static_assert(static_cast<double>(kCalendarGpusPerType) * kCalendarBlocks < 9.2e18);

}  // namespace headroom::limits
