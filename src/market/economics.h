// Economics: what one GPU costs its owner, per year and per GPU-hour, and so
// the lowest price the market may sell its time at.
//
// Pure and deterministic: no clock, no I/O, no randomness; every time is an
// argument. All functions are free functions on plain data, safe to call
// from any number of threads.
//
// ---- The rules (written down once) -------------------------------------------
//
// Service years. A year of service is 365.25 days: 8,766 hours
// (kHoursPerServiceYear), counted from in_service. Service year k (1-based)
// is [in_service + (k-1) years, in_service + k years). Before in_service
// nothing has depreciated; from in_service + life years on, the book value
// is the salvage value and nothing more depreciates.
//
// Depreciable amount D = purchase_price - salvage_value, spread over
// useful_life_years = L by the method:
//   straight line        every year D / L.
//   double declining     rate 2/L on the year's start book value, switching
//                        to straight line when that is larger: year k gets
//                        max(start_book * 2 / L,
//                            (start_book - salvage) / (L - k + 1)),
//                        never taking the book below salvage, and the final
//                        year takes the book to salvage exactly. (The
//                        switch is the convention of the textbooks that
//                        include it, of Excel's VDB and of MACRS: once the
//                        remaining book spread evenly over the remaining
//                        years beats the declining rate, it is used.)
//   sum of years' digits year k gets D * (L - k + 1) / (L * (L + 1) / 2).
// Within a year depreciation accrues linearly: at a time a fraction f into
// year k the book value is start_book(k) - depreciation(k) * f.
//
// Rounding. Money is integer nano-dollars and all arithmetic is in integers
// (products in __int128), so results are exact up to one rounding each:
//   - Depreciation (each year of the schedule, the part accrued in
//     book_value) is rounded DOWN to the nano-dollar. Every year but the
//     last is rounded; the FINAL year takes the remainder, so a schedule's
//     depreciations add up EXACTLY to purchase - salvage and the last
//     end_book is exactly the salvage value. Rounding down keeps every
//     year >= 0 and the remainder in the last year >= 0.
//   - Costs per GPU-hour (depreciation_per_gpu_hour, marginal, full cost,
//     and so price_floor) are rounded UP to the nano-dollar: a cost is never
//     understated, so a price at the floor covers it. Each is computed
//     exactly from the inputs and rounded once: a full cost is not the sum
//     of the rounded parts (it may be up to a nano-dollar less).
//
// Costs per GPU-hour (H = 8,766 hours a year, u = utilization permille):
//   depreciation   this service year's depreciation / H (0 outside life)
//   marginal       power_watts / 1000 * pue_milli / 1000 * energy_price_per_kwh:
//                  what one GPU-hour of work adds (power runs only when the
//                  GPU works)
//   full cost      (depreciation + other_cost_per_gpu_hour) * 1000 / u + marginal:
//                  the cost of one SOLD GPU-hour when u/1000 of all hours
//                  are sold, since capital and fixed costs run every hour.
//                  It is also the break-even price at that utilization.
//
// Inputs. validate() checks every bound (the limits below); every other
// function CHECKs that its GpuEconomics is valid (passing an invalid one is
// a programmer error), and returns invalid_argument for a bad utilization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"
#include "market/market_limits.h"

namespace headroom::market {

// A year of service: 365.25 days.
inline constexpr std::int64_t kHoursPerServiceYear = 8'766;
inline constexpr std::int64_t kMicrosPerServiceYear = kHoursPerServiceYear * 3'600 * 1'000'000;

enum class DepreciationMethod : std::uint8_t { kStraightLine, kDoubleDeclining, kSumOfYearsDigits };

// "straight_line", "double_declining", "sum_of_years_digits".
std::string_view depreciation_method_name(DepreciationMethod method);
// The inverse; invalid_argument naming the three for anything else.
Result<DepreciationMethod> parse_depreciation_method(std::string_view text);

// The owner's costs of one GPU of one type.
struct GpuEconomics {
  std::string gpu_type;                // non-empty, at most kEconomicsGpuTypeBytes
  Money purchase_price;                // capital cost of one GPU (its share of the server): > 0
  Timestamp in_service;                // when depreciation starts
  std::int32_t useful_life_years = 5;  // 1..kEconomicsLifeYearsMax
  Money salvage_value;                 // 0 <= salvage_value <= purchase_price
  DepreciationMethod method = DepreciationMethod::kStraightLine;
  std::int64_t power_watts = 0;    // one GPU at load, with its share of the host: >= 0
  std::int64_t pue_milli = 1'000;  // power usage effectiveness x1000 (1.3 -> 1300)
  Money energy_price_per_kwh;      // >= 0
  Money other_cost_per_gpu_hour;   // >= 0: space, staff, network, support; runs every hour
};

// ok, or invalid_argument whose message starts with the first bad field's
// name: "salvage_value: must be between 0 and purchase_price (...)".
Status validate(const GpuEconomics& economics);

// One year of a depreciation schedule. end_book = start_book - depreciation.
struct DepreciationYear {
  std::int32_t year = 0;  // 1..useful_life_years
  Money start_book;
  Money depreciation;
  Money end_book;
};

// useful_life_years entries, year 1 first. The first start_book is the
// purchase price, each end_book the next start_book, the last end_book the
// salvage value; the depreciations sum exactly to purchase - salvage.
std::vector<DepreciationYear> depreciation_schedule(const GpuEconomics& economics);

// The book value at `at`: the purchase price up to in_service, the salvage
// value from the end of the useful life on, linear within each year.
Money book_value(const GpuEconomics& economics, Timestamp at);

// The depreciation of the service year holding `at`, per GPU-hour (/ 8,766),
// rounded up; 0 before in_service and after the useful life.
Money depreciation_per_gpu_hour(const GpuEconomics& economics, Timestamp at);

// The power one working GPU-hour draws, priced: watts / 1000 * PUE * price
// per kWh, rounded up.
Money marginal_cost_per_gpu_hour(const GpuEconomics& economics);

// The cost of one sold GPU-hour when utilization_permille of all hours are
// sold (see Costs per GPU-hour), rounded up: the break-even price at that
// utilization. invalid_argument unless 1 <= utilization_permille <= 1000.
Result<Money> full_cost_per_gpu_hour(const GpuEconomics& economics, Timestamp at, std::int32_t utilization_permille);

enum class FloorPolicy : std::uint8_t {
  kMarginal,  // sell at no less than the power it burns: spare capacity that would otherwise idle
  kFullCost,  // sell at no less than the full cost at the expected utilization
};

std::string_view floor_policy_name(FloorPolicy policy);  // "marginal", "full_cost"
Result<FloorPolicy> parse_floor_policy(std::string_view text);

// The lowest price a tier may sell at: the marginal cost, or the full cost at
// utilization_permille. The utilization is checked (invalid_argument unless
// 1..1000) under both policies, so a bad setting is caught whichever is in force.
Result<Money> price_floor(const GpuEconomics& economics, FloorPolicy policy, Timestamp at,
                          std::int32_t utilization_permille);

// The least utilization (permille, 1..1000) at which price_per_gpu_hour
// covers the full cost: the least u with full_cost_per_gpu_hour(u) <= price.
// nullopt when the price is below the marginal cost (or equal to it while
// fixed costs remain), or when more than 1000 permille would be needed.
std::optional<std::int32_t> break_even_utilization_permille(const GpuEconomics& economics, Timestamp at,
                                                            Money price_per_gpu_hour);

}  // namespace headroom::market
