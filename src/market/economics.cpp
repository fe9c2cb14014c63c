#include "market/economics.h"

#include <algorithm>
#include <limits>

#include "common/check.h"

namespace headroom::market {

namespace {

// A GCC/Clang extension; __extension__ keeps -Wpedantic quiet.
__extension__ using Int128 = __int128;

constexpr std::int64_t kNanosPerDollar = Money::kNanosPerDollar;
// marginal = watts * pue_milli * price_nanos / kMarginalDivisor: watts to kW
// (/1000) and PUE from milli (/1000).
constexpr Int128 kMarginalDivisor = 1'000'000;

// Floor and ceiling division of non-negative numbers.
Int128 floor_div(Int128 num, Int128 den) {
  ASSERT(num >= 0 && den > 0);
  return num / den;
}
Int128 ceil_div(Int128 num, Int128 den) {
  ASSERT(num >= 0 && den > 0);
  return (num + den - 1) / den;
}

Money to_money(Int128 nanos) {
  CHECK(nanos >= std::numeric_limits<std::int64_t>::min() && nanos <= std::numeric_limits<std::int64_t>::max())
      << "an economics result does not fit Money";
  return Money::from_nanos(static_cast<std::int64_t>(nanos));
}

void check_valid(const GpuEconomics& economics) {
  Status status = validate(economics);
  CHECK(status.is_ok()) << status.to_string();
}

Status check_utilization(std::int32_t utilization_permille) {
  if (utilization_permille < 1 || utilization_permille > limits::kUtilizationPermilleMax) {
    return Status::invalid_argument("utilization_permille: must be between 1 and " +
                                    std::to_string(limits::kUtilizationPermilleMax) + ", got " +
                                    std::to_string(utilization_permille));
  }
  return Status::ok();
}

std::string dollars(std::int64_t whole_dollars) { return Money::from_dollars(whole_dollars).to_string(); }

// Depreciation of year k (1-based) of a life of `life` years that starts at
// `start_book`, before the final-year remainder (the caller applies it).
Int128 year_depreciation(const GpuEconomics& e, std::int32_t k, Int128 start_book) {
  const Int128 life = e.useful_life_years;
  const Int128 salvage = e.salvage_value.nanos();
  const Int128 depreciable = Int128{e.purchase_price.nanos()} - salvage;
  switch (e.method) {
    case DepreciationMethod::kStraightLine:
      return floor_div(depreciable, life);
    case DepreciationMethod::kDoubleDeclining: {
      const Int128 declining = floor_div(start_book * 2, life);
      const Int128 straight = floor_div(start_book - salvage, life - k + 1);
      return std::min(std::max(declining, straight), start_book - salvage);
    }
    case DepreciationMethod::kSumOfYearsDigits:
      return floor_div(depreciable * (life - k + 1), life * (life + 1) / 2);
  }
  CHECK(false) << "unknown depreciation method " << static_cast<int>(e.method);
  return 0;
}

// Where `at` falls: before service, inside year `year` at `into_micros`
// from its start, or after the useful life.
struct ServicePosition {
  enum Kind : std::uint8_t { kBefore, kInside, kAfter } kind = kBefore;
  std::int32_t year = 0;
  std::int64_t into_micros = 0;
};

ServicePosition position(const GpuEconomics& e, Timestamp at) {
  if (at < e.in_service) return {};
  // in_service >= 0 (validate), so the difference cannot overflow.
  const std::int64_t elapsed_micros = at.unix_micros - e.in_service.unix_micros;
  const std::int64_t year_index = elapsed_micros / kMicrosPerServiceYear;
  if (year_index >= e.useful_life_years) return {ServicePosition::kAfter, 0, 0};
  return {ServicePosition::kInside, static_cast<std::int32_t>(year_index + 1), elapsed_micros % kMicrosPerServiceYear};
}

}  // namespace

std::string_view depreciation_method_name(DepreciationMethod method) {
  switch (method) {
    case DepreciationMethod::kStraightLine:
      return "straight_line";
    case DepreciationMethod::kDoubleDeclining:
      return "double_declining";
    case DepreciationMethod::kSumOfYearsDigits:
      return "sum_of_years_digits";
  }
  return "?";
}

Result<DepreciationMethod> parse_depreciation_method(std::string_view text) {
  for (auto method : {DepreciationMethod::kStraightLine, DepreciationMethod::kDoubleDeclining,
                      DepreciationMethod::kSumOfYearsDigits}) {
    if (text == depreciation_method_name(method)) return method;
  }
  return Status::invalid_argument("depreciation method \"" + std::string(text) +
                                  "\": expected straight_line, double_declining or sum_of_years_digits");
}

std::string_view floor_policy_name(FloorPolicy policy) {
  switch (policy) {
    case FloorPolicy::kMarginal:
      return "marginal";
    case FloorPolicy::kFullCost:
      return "full_cost";
  }
  return "?";
}

Result<FloorPolicy> parse_floor_policy(std::string_view text) {
  for (auto policy : {FloorPolicy::kMarginal, FloorPolicy::kFullCost}) {
    if (text == floor_policy_name(policy)) return policy;
  }
  return Status::invalid_argument("floor policy \"" + std::string(text) + "\": expected marginal or full_cost");
}

Status validate(const GpuEconomics& e) {
  if (e.gpu_type.empty() || e.gpu_type.size() > limits::kEconomicsGpuTypeBytes) {
    return Status::invalid_argument("gpu_type: must be 1 to " + std::to_string(limits::kEconomicsGpuTypeBytes) +
                                    " bytes, got " + std::to_string(e.gpu_type.size()));
  }
  if (e.purchase_price <= Money() ||
      e.purchase_price > Money::from_dollars(limits::kEconomicsPurchasePriceDollarsMax)) {
    return Status::invalid_argument("purchase_price: must be above 0 and at most " +
                                    dollars(limits::kEconomicsPurchasePriceDollarsMax) + ", got " +
                                    e.purchase_price.to_string());
  }
  if (e.in_service.unix_micros < 0 ||
      e.in_service >= Timestamp::from_unix_seconds(limits::kEconomicsInServiceUnixSecondsMax)) {
    return Status::invalid_argument("in_service: must be in [1970-01-01, 2100-01-01), got " +
                                    std::to_string(e.in_service.unix_micros) + " unix micros");
  }
  if (e.useful_life_years < 1 || e.useful_life_years > limits::kEconomicsLifeYearsMax) {
    return Status::invalid_argument("useful_life_years: must be between 1 and " +
                                    std::to_string(limits::kEconomicsLifeYearsMax) + ", got " +
                                    std::to_string(e.useful_life_years));
  }
  if (e.salvage_value < Money() || e.salvage_value > e.purchase_price) {
    return Status::invalid_argument("salvage_value: must be between 0 and purchase_price (" +
                                    e.purchase_price.to_string() + "), got " + e.salvage_value.to_string());
  }
  if (depreciation_method_name(e.method) == "?") {
    return Status::invalid_argument("method: unknown depreciation method " +
                                    std::to_string(static_cast<int>(e.method)));
  }
  if (e.power_watts < 0 || e.power_watts > limits::kEconomicsPowerWattsMax) {
    return Status::invalid_argument("power_watts: must be between 0 and " +
                                    std::to_string(limits::kEconomicsPowerWattsMax) + ", got " +
                                    std::to_string(e.power_watts));
  }
  if (e.pue_milli < limits::kEconomicsPueMilliMin || e.pue_milli > limits::kEconomicsPueMilliMax) {
    return Status::invalid_argument("pue_milli: must be between " + std::to_string(limits::kEconomicsPueMilliMin) +
                                    " and " + std::to_string(limits::kEconomicsPueMilliMax) + ", got " +
                                    std::to_string(e.pue_milli));
  }
  if (e.energy_price_per_kwh < Money() ||
      e.energy_price_per_kwh > Money::from_dollars(limits::kEconomicsEnergyPricePerKwhDollarsMax)) {
    return Status::invalid_argument("energy_price_per_kwh: must be between 0 and " +
                                    dollars(limits::kEconomicsEnergyPricePerKwhDollarsMax) + ", got " +
                                    e.energy_price_per_kwh.to_string());
  }
  if (e.other_cost_per_gpu_hour < Money() ||
      e.other_cost_per_gpu_hour > Money::from_dollars(limits::kEconomicsOtherCostPerGpuHourDollarsMax)) {
    return Status::invalid_argument("other_cost_per_gpu_hour: must be between 0 and " +
                                    dollars(limits::kEconomicsOtherCostPerGpuHourDollarsMax) + ", got " +
                                    e.other_cost_per_gpu_hour.to_string());
  }
  return Status::ok();
}

std::vector<DepreciationYear> depreciation_schedule(const GpuEconomics& e) {
  check_valid(e);
  const Int128 salvage = e.salvage_value.nanos();
  std::vector<DepreciationYear> schedule;
  schedule.reserve(static_cast<std::size_t>(e.useful_life_years));
  Int128 book = e.purchase_price.nanos();
  Int128 total = 0;
  for (std::int32_t k = 1; k <= e.useful_life_years; ++k) {
    // The final year takes the remainder, so the book ends at salvage exactly.
    const Int128 depreciation = k == e.useful_life_years ? book - salvage : year_depreciation(e, k, book);
    CHECK(depreciation >= 0 && book - depreciation >= salvage)
        << "year " << k << " of " << e.gpu_type << " would depreciate below salvage";
    schedule.push_back({k, to_money(book), to_money(depreciation), to_money(book - depreciation)});
    book -= depreciation;
    total += depreciation;
  }
  CHECK(book == salvage && total == Int128{e.purchase_price.nanos()} - salvage)
      << "the schedule of " << e.gpu_type << " does not add up to purchase - salvage";
  return schedule;
}

Money book_value(const GpuEconomics& e, Timestamp at) {
  check_valid(e);
  const ServicePosition where = position(e, at);
  switch (where.kind) {
    case ServicePosition::kBefore:
      return e.purchase_price;
    case ServicePosition::kAfter:
      return e.salvage_value;
    case ServicePosition::kInside:
      break;
  }
  const DepreciationYear year = depreciation_schedule(e)[static_cast<std::size_t>(where.year - 1)];
  const Int128 accrued =
      floor_div(Int128{year.depreciation.nanos()} * where.into_micros, kMicrosPerServiceYear);  // rounded down
  return to_money(Int128{year.start_book.nanos()} - accrued);
}

Money depreciation_per_gpu_hour(const GpuEconomics& e, Timestamp at) {
  check_valid(e);
  const ServicePosition where = position(e, at);
  if (where.kind != ServicePosition::kInside) return Money();
  const Money depreciation = depreciation_schedule(e)[static_cast<std::size_t>(where.year - 1)].depreciation;
  return to_money(ceil_div(depreciation.nanos(), kHoursPerServiceYear));
}

namespace {

// marginal * kMarginalDivisor, exact.
Int128 marginal_scaled(const GpuEconomics& e) {
  return Int128{e.power_watts} * e.pue_milli * e.energy_price_per_kwh.nanos();
}

// (depreciation per hour + other cost per hour) * kHoursPerServiceYear, exact.
Int128 fixed_per_year(const GpuEconomics& e, Timestamp at) {
  const ServicePosition where = position(e, at);
  Int128 depreciation = 0;
  if (where.kind == ServicePosition::kInside) {
    depreciation = depreciation_schedule(e)[static_cast<std::size_t>(where.year - 1)].depreciation.nanos();
  }
  return depreciation + Int128{e.other_cost_per_gpu_hour.nanos()} * kHoursPerServiceYear;
}

}  // namespace

Money marginal_cost_per_gpu_hour(const GpuEconomics& e) {
  check_valid(e);
  return to_money(ceil_div(marginal_scaled(e), kMarginalDivisor));
}

Result<Money> full_cost_per_gpu_hour(const GpuEconomics& e, Timestamp at, std::int32_t utilization_permille) {
  check_valid(e);
  HR_RETURN_IF_ERROR(check_utilization(utilization_permille));
  // fixed * 1000 / u + marginal over the common denominator H * u * 1e6:
  //   (F * 1000 * 1e6 + M * H * u) / (H * u * 1e6), F = fixed_per_year, M = marginal_scaled.
  const Int128 u = utilization_permille;
  const Int128 numerator = fixed_per_year(e, at) * limits::kUtilizationPermilleMax * kMarginalDivisor +
                           marginal_scaled(e) * kHoursPerServiceYear * u;
  return to_money(ceil_div(numerator, kHoursPerServiceYear * u * kMarginalDivisor));
}

Result<Money> price_floor(const GpuEconomics& e, FloorPolicy policy, Timestamp at, std::int32_t utilization_permille) {
  check_valid(e);
  HR_RETURN_IF_ERROR(check_utilization(utilization_permille));
  switch (policy) {
    case FloorPolicy::kMarginal:
      return marginal_cost_per_gpu_hour(e);
    case FloorPolicy::kFullCost:
      return full_cost_per_gpu_hour(e, at, utilization_permille);
  }
  CHECK(false) << "unknown floor policy " << static_cast<int>(policy);
  return Status::internal("unknown floor policy");
}

std::optional<std::int32_t> break_even_utilization_permille(const GpuEconomics& e, Timestamp at,
                                                            Money price_per_gpu_hour) {
  check_valid(e);
  // full cost at u <= price  <=>  (the price is whole nano-dollars, so the
  // rounding up does not matter)  F * 1000 * 1e6 <= u * H * (price * 1e6 - M).
  const Int128 fixed = fixed_per_year(e, at) * limits::kUtilizationPermilleMax * kMarginalDivisor;
  const Int128 margin = Int128{price_per_gpu_hour.nanos()} * kMarginalDivisor - marginal_scaled(e);
  if (margin < 0) return std::nullopt;
  if (fixed == 0) return 1;  // nothing to recover: any utilization breaks even
  if (margin == 0) return std::nullopt;
  const Int128 needed = std::max<Int128>(1, ceil_div(fixed, kHoursPerServiceYear * margin));
  if (needed > limits::kUtilizationPermilleMax) return std::nullopt;
  return static_cast<std::int32_t>(needed);
}

}  // namespace headroom::market
