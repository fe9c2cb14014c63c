#include "market/economics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <random>

namespace headroom::market {
namespace {

const Timestamp kT0 = Timestamp::from_unix_seconds(1'767'225'600);  // 2026-01-01T00:00:00Z
constexpr std::int64_t kMicrosPerHour = 3'600'000'000;
constexpr std::int64_t kNano = 1'000'000'000;  // nano-dollars per dollar

Money usd(std::string_view text) { return Money::parse(text).value(); }
Money nanos(std::int64_t n) { return Money::from_nanos(n); }
std::int64_t ceil_div(std::int64_t num, std::int64_t den) { return (num + den - 1) / den; }

// A service year is 365.25 days = 8,766 hours.
Timestamp after_hours(std::int64_t hours) { return kT0.plus_micros(hours * kMicrosPerHour); }

// The worked example: a $30,000 GPU, 5 years, $3,000 salvage; 700 W at a
// PUE of 1.3 and $0.10/kWh; $0.50 an hour of other costs.
GpuEconomics gpu(DepreciationMethod method = DepreciationMethod::kStraightLine, Money salvage = usd("3000")) {
  GpuEconomics e;
  e.gpu_type = "h100";
  e.purchase_price = usd("30000");
  e.in_service = kT0;
  e.useful_life_years = 5;
  e.salvage_value = salvage;
  e.method = method;
  e.power_watts = 700;
  e.pue_milli = 1300;
  e.energy_price_per_kwh = usd("0.10");
  e.other_cost_per_gpu_hour = usd("0.50");
  return e;
}

std::vector<Money> depreciations(const GpuEconomics& e) {
  std::vector<Money> out;
  for (const DepreciationYear& y : depreciation_schedule(e)) out.push_back(y.depreciation);
  return out;
}

TEST(EconomicsNames, RoundTripAndRejectUnknown) {
  for (auto m : {DepreciationMethod::kStraightLine, DepreciationMethod::kDoubleDeclining,
                 DepreciationMethod::kSumOfYearsDigits}) {
    EXPECT_EQ(parse_depreciation_method(depreciation_method_name(m)).value(), m);
  }
  EXPECT_EQ(depreciation_method_name(DepreciationMethod::kSumOfYearsDigits), "sum_of_years_digits");
  Result<DepreciationMethod> bad = parse_depreciation_method("declining");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  for (const char* name : {"straight_line", "double_declining", "sum_of_years_digits"}) {
    EXPECT_NE(bad.status().message().find(name), std::string::npos) << name;
  }
  for (auto p : {FloorPolicy::kMarginal, FloorPolicy::kFullCost}) {
    EXPECT_EQ(parse_floor_policy(floor_policy_name(p)).value(), p);
  }
  EXPECT_EQ(floor_policy_name(FloorPolicy::kFullCost), "full_cost");
  EXPECT_EQ(parse_floor_policy("Marginal").status().code(), ErrorCode::kInvalidArgument);
}

TEST(EconomicsSchedule, StraightLine) {
  // (30,000 - 3,000) / 5 = 5,400 a year.
  std::vector<DepreciationYear> s = depreciation_schedule(gpu());
  ASSERT_EQ(s.size(), 5u);
  std::int64_t book = 30'000;
  for (std::int32_t k = 1; k <= 5; ++k) {
    const DepreciationYear& y = s[static_cast<std::size_t>(k - 1)];
    EXPECT_EQ(y.year, k);
    EXPECT_EQ(y.start_book, Money::from_dollars(book));
    EXPECT_EQ(y.depreciation, Money::from_dollars(5'400));
    book -= 5'400;
    EXPECT_EQ(y.end_book, Money::from_dollars(book));
  }
  EXPECT_EQ(book, 3'000);
}

TEST(EconomicsSchedule, DoubleDecliningEndsAtSalvage) {
  // Rate 2/5 = 40% of the start-of-year book:
  //   y1 30,000 * 0.4 = 12,000 (straight line on the rest: 27,000 / 5 = 5,400)
  //   y2 18,000 * 0.4 =  7,200 (15,000 / 4 = 3,750)
  //   y3 10,800 * 0.4 =  4,320 ( 7,800 / 3 = 2,600)
  //   y4  6,480 * 0.4 =  2,592 ( 3,480 / 2 = 1,740): declining still larger, no switch
  //   y5 the book 3,888 goes to salvage 3,000: 888
  EXPECT_EQ(depreciations(gpu(DepreciationMethod::kDoubleDeclining)),
            (std::vector<Money>{Money::from_dollars(12'000), Money::from_dollars(7'200), Money::from_dollars(4'320),
                                Money::from_dollars(2'592), Money::from_dollars(3'888 - 3'000)}));
}

TEST(EconomicsSchedule, DoubleDecliningSwitchesToStraightLine) {
  // No salvage: y1-y3 as above (12,000, 7,200, 4,320), book 6,480. In y4
  // declining gives 6,480 * 0.4 = 2,592 but straight line over the two
  // years left gives 6,480 / 2 = 3,240: the switch takes 3,240, twice.
  // (Without the switch: 2,592 then 3,888.)
  EXPECT_EQ(depreciations(gpu(DepreciationMethod::kDoubleDeclining, Money())),
            (std::vector<Money>{Money::from_dollars(12'000), Money::from_dollars(7'200), Money::from_dollars(4'320),
                                Money::from_dollars(3'240), Money::from_dollars(3'240)}));
}

TEST(EconomicsSchedule, DoubleDecliningNeverBelowSalvage) {
  // A 2-year life: the rate is 100%, capped at the depreciable 27,000 in y1.
  GpuEconomics e = gpu(DepreciationMethod::kDoubleDeclining);
  e.useful_life_years = 2;
  EXPECT_EQ(depreciations(e), (std::vector<Money>{Money::from_dollars(27'000), Money()}));
  e.useful_life_years = 1;
  EXPECT_EQ(depreciations(e), (std::vector<Money>{Money::from_dollars(27'000)}));
}

TEST(EconomicsSchedule, SumOfYearsDigits) {
  // Digits 5+4+3+2+1 = 15: 27,000 * 5/15, 4/15, 3/15, 2/15, 1/15.
  EXPECT_EQ(depreciations(gpu(DepreciationMethod::kSumOfYearsDigits)),
            (std::vector<Money>{Money::from_dollars(9'000), Money::from_dollars(7'200), Money::from_dollars(5'400),
                                Money::from_dollars(3'600), Money::from_dollars(1'800)}));
}

TEST(EconomicsSchedule, RoundsDownAndPutsTheRemainderInTheFinalYear) {
  // $100 over 3 years straight line, no salvage: 100e9 / 3 = 33,333,333,333.33
  // nano-dollars, rounded down in y1 and y2; y3 takes the rest.
  GpuEconomics e = gpu(DepreciationMethod::kStraightLine, Money());
  e.purchase_price = usd("100");
  e.useful_life_years = 3;
  EXPECT_EQ(depreciations(e), (std::vector<Money>{nanos(33'333'333'333), nanos(33'333'333'333),
                                                  nanos(100 * kNano - 2 * 33'333'333'333)}));
  // 7 nano-dollars over 5 years: 1, 1, 1, 1, then 3.
  e.purchase_price = nanos(7);
  e.useful_life_years = 5;
  EXPECT_EQ(depreciations(e), (std::vector<Money>{nanos(1), nanos(1), nanos(1), nanos(1), nanos(3)}));
  // Sum of digits, 4 nano-dollars over 3 years (digits sum 6): 4*3/6 = 2, 4*2/6 = 1.33 -> 1, rest 1.
  e.method = DepreciationMethod::kSumOfYearsDigits;
  e.purchase_price = nanos(4);
  e.useful_life_years = 3;
  EXPECT_EQ(depreciations(e), (std::vector<Money>{nanos(2), nanos(1), nanos(1)}));
  // Salvage equal to the purchase price: nothing depreciates.
  e = gpu(DepreciationMethod::kDoubleDeclining, usd("30000"));
  EXPECT_EQ(depreciations(e), std::vector<Money>(5, Money()));
}

TEST(EconomicsBookValue, BeforeDuringAndAfterService) {
  const GpuEconomics sl = gpu();
  EXPECT_EQ(book_value(sl, kT0.plus_seconds(-1)), usd("30000"));
  EXPECT_EQ(book_value(sl, Timestamp{-4'000'000'000'000'000'000}), usd("30000"));
  EXPECT_EQ(book_value(sl, kT0), usd("30000"));
  // Half of year 1 (4,383 hours): 30,000 - 5,400 / 2.
  EXPECT_EQ(book_value(sl, after_hours(4'383)), usd("27300"));
  // One hour in: 5,400 / 8,766 dollars accrued, rounded down to the nano.
  EXPECT_EQ(book_value(sl, after_hours(1)), usd("30000") - nanos(5'400 * kNano / 8'766));
  EXPECT_EQ(book_value(sl, after_hours(8'766)), usd("24600"));  // the start of year 2
  EXPECT_EQ(book_value(sl, after_hours(8'766 * 5 - 1)), usd("3000") + nanos(ceil_div(5'400 * kNano, 8'766)));
  EXPECT_EQ(book_value(sl, after_hours(8'766 * 5)), usd("3000"));  // the end of life
  EXPECT_EQ(book_value(sl, after_hours(8'766 * 40)), usd("3000"));
  EXPECT_EQ(book_value(sl, Timestamp{std::numeric_limits<std::int64_t>::max()}), usd("3000"));

  // Double declining, a quarter into year 2 (2,191.5 hours): 18,000 - 7,200 / 4.
  const GpuEconomics ddb = gpu(DepreciationMethod::kDoubleDeclining);
  EXPECT_EQ(book_value(ddb, after_hours(8'766).plus_seconds(2'191 * 3600 + 1800)), usd("16200"));
  // Sum of digits, half into year 3: 30,000 - 9,000 - 7,200 - 5,400 / 2.
  EXPECT_EQ(book_value(gpu(DepreciationMethod::kSumOfYearsDigits), after_hours(2 * 8'766 + 4'383)), usd("11100"));
}

TEST(EconomicsCosts, DepreciationPerGpuHour) {
  const GpuEconomics sl = gpu();
  // 5,400 dollars / 8,766 hours, rounded up: 616,016,427.08 -> 616,016,428 nano-dollars.
  EXPECT_EQ(depreciation_per_gpu_hour(sl, kT0), nanos(ceil_div(5'400 * kNano, 8'766)));
  EXPECT_EQ(depreciation_per_gpu_hour(sl, kT0), nanos(616'016'428));
  EXPECT_EQ(depreciation_per_gpu_hour(sl, kT0.plus_seconds(-1)), Money());
  EXPECT_EQ(depreciation_per_gpu_hour(sl, after_hours(8'766 * 5)), Money());
  // Double declining's year 2 (7,200 dollars).
  EXPECT_EQ(depreciation_per_gpu_hour(gpu(DepreciationMethod::kDoubleDeclining), after_hours(8'766 + 10)),
            nanos(ceil_div(7'200 * kNano, 8'766)));
}

TEST(EconomicsCosts, MarginalCost) {
  // 0.7 kW * 1.3 * $0.10 = $0.091 per GPU-hour.
  EXPECT_EQ(marginal_cost_per_gpu_hour(gpu()), usd("0.091"));
  // Rounded up: 1 W at PUE 1.0 and 1 nano-dollar per kWh is 0.001 nano-dollars.
  GpuEconomics e = gpu();
  e.power_watts = 1;
  e.pue_milli = 1000;
  e.energy_price_per_kwh = nanos(1);
  EXPECT_EQ(marginal_cost_per_gpu_hour(e), nanos(1));
  e.power_watts = 0;
  EXPECT_EQ(marginal_cost_per_gpu_hour(e), Money());
}

// A GPU whose straight-line depreciation is exactly $1.00 an hour:
// (46,830 - 3,000) / 5 = 8,766 dollars a year. Fixed cost $1.50 an hour.
GpuEconomics dollar_an_hour() {
  GpuEconomics e = gpu();
  e.purchase_price = usd("46830");
  return e;
}

TEST(EconomicsCosts, FullCostAtUtilization) {
  const GpuEconomics e = dollar_an_hour();
  // (1.00 + 0.50) * 1000 / u + 0.091
  EXPECT_EQ(full_cost_per_gpu_hour(e, kT0, 1000).value(), usd("1.591"));
  EXPECT_EQ(full_cost_per_gpu_hour(e, kT0, 500).value(), usd("3.091"));
  EXPECT_EQ(full_cost_per_gpu_hour(e, kT0, 250).value(), usd("6.091"));
  EXPECT_EQ(full_cost_per_gpu_hour(e, kT0, 1).value(), usd("1500.091"));
  // 1.5 * 1000 / 700 = 2.142857142857... rounded up.
  EXPECT_EQ(full_cost_per_gpu_hour(e, kT0, 700).value(), nanos(ceil_div(1'500 * kNano, 700) + 91'000'000));
  // After the life only the other costs remain: 0.50 * 2 + 0.091.
  EXPECT_EQ(full_cost_per_gpu_hour(e, after_hours(8'766 * 5), 500).value(), usd("1.091"));

  // The $30,000 GPU: depreciation 5,400 / 8,766 an hour, not whole nano-dollars;
  // rounded once over the exact sum.
  const GpuEconomics w = gpu();
  const std::int64_t fixed_per_year_nanos = 5'400 * kNano + 500'000'000LL * 8'766;
  EXPECT_EQ(full_cost_per_gpu_hour(w, kT0, 1000).value(),
            nanos(ceil_div(fixed_per_year_nanos, 8'766) + 91'000'000));  // $1.207016428
  EXPECT_EQ(full_cost_per_gpu_hour(w, kT0, 500).value(),
            nanos(ceil_div(fixed_per_year_nanos * 2, 8'766) + 91'000'000));  // $2.323032855

  for (std::int32_t bad : {0, -1, 1001}) {
    Result<Money> r = full_cost_per_gpu_hour(e, kT0, bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("utilization_permille"), std::string::npos);
  }
}

TEST(EconomicsCosts, PriceFloor) {
  const GpuEconomics e = dollar_an_hour();
  EXPECT_EQ(price_floor(e, FloorPolicy::kMarginal, kT0, 500).value(), usd("0.091"));
  EXPECT_EQ(price_floor(e, FloorPolicy::kFullCost, kT0, 500).value(), usd("3.091"));
  EXPECT_EQ(price_floor(e, FloorPolicy::kFullCost, kT0, 1000).value(), usd("1.591"));
  EXPECT_EQ(price_floor(e, FloorPolicy::kMarginal, kT0, 0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(price_floor(e, FloorPolicy::kFullCost, kT0, 1001).status().code(), ErrorCode::kInvalidArgument);
}

TEST(EconomicsCosts, BreakEvenUtilization) {
  const GpuEconomics e = dollar_an_hour();
  // $2.00: 1.5 * 1000 / u <= 2.00 - 0.091 = 1.909  =>  u >= 785.75..., so 786.
  EXPECT_EQ(break_even_utilization_permille(e, kT0, usd("2.00")), 786);
  EXPECT_LE(full_cost_per_gpu_hour(e, kT0, 786).value(), usd("2.00"));
  EXPECT_GT(full_cost_per_gpu_hour(e, kT0, 785).value(), usd("2.00"));
  EXPECT_EQ(break_even_utilization_permille(e, kT0, usd("3.091")), 500);
  EXPECT_EQ(break_even_utilization_permille(e, kT0, usd("1.591")), 1000);
  EXPECT_EQ(break_even_utilization_permille(e, kT0, usd("1.590999999")), std::nullopt);  // > 1000 needed
  EXPECT_EQ(break_even_utilization_permille(e, kT0, usd("0.091")), std::nullopt);        // only the marginal
  EXPECT_EQ(break_even_utilization_permille(e, kT0, usd("0.05")), std::nullopt);         // below the marginal
  EXPECT_EQ(break_even_utilization_permille(e, kT0, usd("-1")), std::nullopt);
  EXPECT_EQ(break_even_utilization_permille(e, kT0, usd("1500.091")), 1);
  EXPECT_EQ(break_even_utilization_permille(e, kT0, usd("1000000")), 1);

  // No fixed cost left (after the life, no other costs): the marginal cost suffices.
  GpuEconomics free = e;
  free.other_cost_per_gpu_hour = Money();
  EXPECT_EQ(break_even_utilization_permille(free, after_hours(8'766 * 6), usd("0.091")), 1);
  EXPECT_EQ(break_even_utilization_permille(free, after_hours(8'766 * 6), usd("0.090")), std::nullopt);
}

TEST(EconomicsValidate, RejectsEachBadFieldByName) {
  EXPECT_TRUE(validate(gpu()).is_ok());
  struct Case {
    const char* field;
    void (*spoil)(GpuEconomics&);
  };
  const Case cases[] = {
      {"gpu_type", [](GpuEconomics& e) { e.gpu_type = ""; }},
      {"gpu_type", [](GpuEconomics& e) { e.gpu_type = std::string(limits::kEconomicsGpuTypeBytes + 1, 'x'); }},
      {"purchase_price", [](GpuEconomics& e) { e.purchase_price = Money(); }},
      {"purchase_price", [](GpuEconomics& e) { e.purchase_price = usd("-1"); }},
      {"purchase_price", [](GpuEconomics& e) { e.purchase_price = usd("1000000.000000001"); }},
      {"in_service", [](GpuEconomics& e) { e.in_service = Timestamp{-1}; }},
      {"in_service", [](GpuEconomics& e) { e.in_service = Timestamp::from_unix_seconds(4'102'444'800); }},
      {"useful_life_years", [](GpuEconomics& e) { e.useful_life_years = 0; }},
      {"useful_life_years", [](GpuEconomics& e) { e.useful_life_years = limits::kEconomicsLifeYearsMax + 1; }},
      {"salvage_value", [](GpuEconomics& e) { e.salvage_value = usd("-0.000000001"); }},
      {"salvage_value", [](GpuEconomics& e) { e.salvage_value = usd("30000.000000001"); }},
      {"method", [](GpuEconomics& e) { e.method = static_cast<DepreciationMethod>(7); }},
      {"power_watts", [](GpuEconomics& e) { e.power_watts = -1; }},
      {"power_watts", [](GpuEconomics& e) { e.power_watts = limits::kEconomicsPowerWattsMax + 1; }},
      {"pue_milli", [](GpuEconomics& e) { e.pue_milli = 999; }},
      {"pue_milli", [](GpuEconomics& e) { e.pue_milli = 3001; }},
      {"energy_price_per_kwh", [](GpuEconomics& e) { e.energy_price_per_kwh = usd("-0.01"); }},
      {"energy_price_per_kwh", [](GpuEconomics& e) { e.energy_price_per_kwh = usd("10.01"); }},
      {"other_cost_per_gpu_hour", [](GpuEconomics& e) { e.other_cost_per_gpu_hour = usd("-0.01"); }},
      {"other_cost_per_gpu_hour", [](GpuEconomics& e) { e.other_cost_per_gpu_hour = usd("1000.01"); }},
  };
  for (const Case& c : cases) {
    GpuEconomics e = gpu();
    c.spoil(e);
    Status s = validate(e);
    ASSERT_FALSE(s.is_ok()) << c.field;
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(s.message().rfind(std::string(c.field) + ": ", 0), 0u) << s.message();
  }
  // The bounds themselves are valid.
  GpuEconomics edge = gpu();
  edge.gpu_type = std::string(limits::kEconomicsGpuTypeBytes, 'x');
  edge.purchase_price = Money::from_dollars(limits::kEconomicsPurchasePriceDollarsMax);
  edge.salvage_value = edge.purchase_price;
  edge.in_service = Timestamp{0};
  edge.useful_life_years = limits::kEconomicsLifeYearsMax;
  edge.power_watts = limits::kEconomicsPowerWattsMax;
  edge.pue_milli = limits::kEconomicsPueMilliMax;
  edge.energy_price_per_kwh = Money::from_dollars(limits::kEconomicsEnergyPricePerKwhDollarsMax);
  edge.other_cost_per_gpu_hour = Money::from_dollars(limits::kEconomicsOtherCostPerGpuHourDollarsMax);
  EXPECT_TRUE(validate(edge).is_ok()) << validate(edge).to_string();
}

TEST(EconomicsValidateDeathTest, FunctionsCheckTheirInput) {
  GpuEconomics e = gpu();
  e.salvage_value = usd("40000");
  EXPECT_DEATH((void)depreciation_schedule(e), "salvage_value");
}

// Random valid inputs, including the extremes of every bound.
GpuEconomics random_gpu(std::mt19937_64& rng) {
  auto pick = [&rng](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  GpuEconomics e;
  e.gpu_type = "g";
  const std::int64_t purchase_max = limits::kEconomicsPurchasePriceDollarsMax * kNano;
  switch (pick(0, 3)) {
    case 0:
      e.purchase_price = nanos(pick(1, 100));
      break;
    case 1:
      e.purchase_price = nanos(purchase_max - pick(0, 100));
      break;
    default:
      e.purchase_price = nanos(pick(1, purchase_max));
      break;
  }
  switch (pick(0, 3)) {
    case 0:
      e.salvage_value = Money();
      break;
    case 1:
      e.salvage_value = e.purchase_price - nanos(pick(0, std::min<std::int64_t>(5, e.purchase_price.nanos())));
      break;
    default:
      e.salvage_value = nanos(pick(0, e.purchase_price.nanos()));
      break;
  }
  e.in_service = Timestamp::from_unix_seconds(pick(0, limits::kEconomicsInServiceUnixSecondsMax - 1));
  e.useful_life_years = static_cast<std::int32_t>(pick(1, limits::kEconomicsLifeYearsMax));
  e.method = static_cast<DepreciationMethod>(pick(0, 2));
  e.power_watts = pick(0, limits::kEconomicsPowerWattsMax);
  e.pue_milli = pick(limits::kEconomicsPueMilliMin, limits::kEconomicsPueMilliMax);
  e.energy_price_per_kwh = nanos(pick(0, limits::kEconomicsEnergyPricePerKwhDollarsMax * kNano));
  e.other_cost_per_gpu_hour =
      nanos(pick(0, 3) == 0 ? 0 : pick(0, limits::kEconomicsOtherCostPerGpuHourDollarsMax * kNano));
  return e;
}

TEST(EconomicsProperty, SchedulesAddUpExactly) {
  std::mt19937_64 rng(20261126);
  for (int i = 0; i < 20'000; ++i) {
    const GpuEconomics e = random_gpu(rng);
    ASSERT_TRUE(validate(e).is_ok()) << validate(e).to_string();
    const std::vector<DepreciationYear> s = depreciation_schedule(e);
    ASSERT_EQ(s.size(), static_cast<std::size_t>(e.useful_life_years));
    Money sum;
    Money book = e.purchase_price;
    for (const DepreciationYear& y : s) {
      ASSERT_EQ(y.start_book, book);
      ASSERT_GE(y.depreciation, Money());
      ASSERT_EQ(y.end_book, y.start_book - y.depreciation);
      ASSERT_GE(y.end_book, e.salvage_value);
      // The book value at each year's start is the schedule's.
      ASSERT_EQ(book_value(e, e.in_service.plus_micros((y.year - 1) * kMicrosPerServiceYear)), y.start_book);
      sum += y.depreciation;
      book = y.end_book;
    }
    ASSERT_EQ(sum, e.purchase_price - e.salvage_value) << "case " << i;
    ASSERT_EQ(book, e.salvage_value);
    ASSERT_EQ(book_value(e, e.in_service.plus_micros(e.useful_life_years * kMicrosPerServiceYear)), e.salvage_value);
    // Against the exact shares (D * weight / total weight, in int64: D * 15 fits):
    // each year but the last is its share rounded down; the last is over by
    // less than one nano-dollar per earlier year.
    if (e.method != DepreciationMethod::kDoubleDeclining) {
      const std::int64_t life = e.useful_life_years;
      const std::int64_t d = (e.purchase_price - e.salvage_value).nanos();
      const bool syd = e.method == DepreciationMethod::kSumOfYearsDigits;
      const std::int64_t total_weight = syd ? life * (life + 1) / 2 : life;
      for (std::int64_t k = 1; k <= life; ++k) {
        const std::int64_t share = d * (syd ? life - k + 1 : 1) / total_weight;  // rounded down
        const std::int64_t got = s[static_cast<std::size_t>(k - 1)].depreciation.nanos();
        if (k < life) {
          ASSERT_EQ(got, share) << "case " << i << " year " << k;
        } else {
          ASSERT_GE(got, share);
          ASSERT_LT(got, share + life);
        }
      }
    }
    if (e.method == DepreciationMethod::kSumOfYearsDigits) {  // front-loaded: never rising, but for the remainder
      for (std::size_t k = 1; k + 1 < s.size(); ++k) ASSERT_LE(s[k].depreciation, s[k - 1].depreciation);
    }
  }
}

TEST(EconomicsProperty, BookValueNeverRisesAndStaysInRange) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 500; ++i) {
    const GpuEconomics e = random_gpu(rng);
    const std::int64_t span = (e.useful_life_years + 1) * kMicrosPerServiceYear;
    std::vector<std::int64_t> offsets;
    for (int j = 0; j < 50; ++j) offsets.push_back(std::uniform_int_distribution<std::int64_t>(-span / 10, span)(rng));
    std::sort(offsets.begin(), offsets.end());
    Money previous = e.purchase_price;
    for (std::int64_t offset : offsets) {
      const Money v = book_value(e, e.in_service.plus_micros(offset));
      ASSERT_LE(v, previous);
      ASSERT_GE(v, e.salvage_value);
      previous = v;
    }
  }
}

TEST(EconomicsProperty, BreakEvenIsTheLeastUtilizationThatCovers) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 300; ++i) {
    const GpuEconomics e = random_gpu(rng);
    const Timestamp at = e.in_service.plus_micros(
        std::uniform_int_distribution<std::int64_t>(0, (e.useful_life_years + 1) * kMicrosPerServiceYear)(rng));
    // A price between the marginal cost and the full cost at 1 permille.
    const Money low = marginal_cost_per_gpu_hour(e);
    const Money high = full_cost_per_gpu_hour(e, at, 1).value();
    const Money price = nanos(std::uniform_int_distribution<std::int64_t>(low.nanos() - 2, high.nanos() + 2)(rng));
    std::optional<std::int32_t> brute;
    for (std::int32_t u = 1; u <= 1000; ++u) {
      if (full_cost_per_gpu_hour(e, at, u).value() <= price) {
        brute = u;
        break;
      }
    }
    ASSERT_EQ(break_even_utilization_permille(e, at, price), brute) << "case " << i << " price " << price.to_string();
    // The full cost is rounded once, so it is at most the sum of its rounded
    // parts and at most one nano-dollar less.
    const Money parts = depreciation_per_gpu_hour(e, at) + e.other_cost_per_gpu_hour + marginal_cost_per_gpu_hour(e);
    ASSERT_LE(full_cost_per_gpu_hour(e, at, 1000).value(), parts);
    ASSERT_GE(full_cost_per_gpu_hour(e, at, 1000).value(), parts - nanos(1));
  }
}

}  // namespace
}  // namespace headroom::market
