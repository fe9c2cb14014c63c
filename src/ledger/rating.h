// Rating: what a usage event costs, exactly, by the price book.
//
// ---- The rules (written down once) -------------------------------------------
//
// Units. A price is Money (integer nano-dollars) per unit of price:
//   gpu_time  per GPU-hour;       quantity in GPU-milliseconds (3,600,000 per hour)
//   tokens    per million tokens; quantity in tokens (1,000,000 per million)
// A charge is quantity * price / units-per-price-unit. That is not always a
// whole number of nano-dollars ($2.00 per GPU-hour is 555 5/9 nano-dollars
// per GPU-millisecond), so rating never rounds: it yields an exact Amount
// (ledger.h: 1/18,000,000 of a nano-dollar; 18e6 is the least common multiple
// of 3.6e6 and 1e6, so every charge is a whole number of Amount units):
//   gpu_time  amount = quantity_ms * price_nanos_per_gpu_hour * 5    units
//   tokens    amount = quantity_tokens * price_nanos_per_million * 18 units
// e.g. $0.05 per million tokens, 1 token: 50,000,000 * 18 = 900,000,000 units
// = 50 nano-dollars; 20,000,000 tokens: $1.00 exactly.
//
// Rounding happens once per invoice line, in round_line() and nowhere else:
// the exact sum of the line's charges is rounded to the cent (kLineQuantum),
// half to even (a sum exactly half a cent between two cents goes to the
// even cent; banker's rounding, so that rounding does not drift up or down
// over many lines). The ledger keeps exact amounts, and an invoice posts its
// rounding (the rounded total less the exact one, under half a cent per
// line) as one transfer (invoice.h), after which the ledger and the invoice
// agree to the nano-dollar.
//
// Which price. The price book's, at the event's start (the start of the
// interval it covers): a price change applies to events that start at or
// after its effective_from, and never rewrites a charge already rated (the
// book keeps every version). The compute service cuts GPU time into short
// intervals (usage_interval_s), so a change takes effect within one
// interval. The event's own unit_price, set by its source from the same
// config, is cross-checked: when it differs the charge still uses the book's
// price and says so (kSourceDiffers) for the caller to log; the book is the
// one source of truth. An event with no price in the book is not rated
// (not_found): nothing is charged at a price nobody set.
//
// Prices come from the catalog (billing/billing_service.h keeps the book:
// the config's list prices, the admin's versions, and the spot market's
// clearing prices as they clear).
//
// Thread-safety: a PriceBook is plain data; const methods may be called from
// any number of threads while nobody changes it.
#pragma once

#include <cstdint>
#include <iterator>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"
#include "ledger/ledger.h"
#include "ledger/usage.h"

namespace headroom::ledger {

inline constexpr std::int64_t kMillisPerGpuHour = 3'600'000;
inline constexpr std::int64_t kTokensPerMillion = 1'000'000;
static_assert(Amount::kUnitsPerNano % kMillisPerGpuHour == 0 && Amount::kUnitsPerNano % kTokensPerMillion == 0,
              "every charge is a whole number of Amount units");

// An invoice line is rounded to this: one cent.
inline constexpr Money kLineQuantum = Money::from_nanos(10'000'000);

std::string_view product_name(Product product);  // "gpu_time", "tokens"

// The exact cost of `quantity` at `unit_price` (see Units). quantity and
// unit_price must be >= 0 and within kRatingQuantityMax and
// kRatingUnitPriceDollarsMax (rate() checks; here it is a CHECK).
Amount exact_cost(Product product, std::int64_t quantity, Money unit_price);

// THE rounding rule: to the nearest cent, half to even. Once per invoice line.
// invalid_argument when the result does not fit Money.
Result<Money> round_line(Amount exact);

// One price, effective from a time until the next version of the same key.
struct PriceEntry {
  Product product = Product::kGpuTime;
  std::string item;     // gpu_time: the GPU type ("h100"); tokens: the model
  std::string variant;  // gpu_time: the tier ("on-demand"); tokens: "input" or "output"
  Timestamp effective_from;
  Money unit_price;  // per GPU-hour or per million tokens
};

class PriceBook {
 public:
  // Adds a version. invalid_argument for an empty item or variant, a tokens
  // variant other than input/output, or a price out of range; conflict when
  // the key already has a different price from the same time (the same
  // price again is a no-op); unavailable past kRatingPriceVersions.
  Status set(const PriceEntry& entry);
  // What set() would answer, without changing anything.
  Status check(const PriceEntry& entry) const;
  // The price in force at `at`: the version with the latest effective_from
  // <= at. not_found when there is none.
  Result<Money> price_at(Product product, std::string_view item, std::string_view variant, Timestamp at) const;
  std::size_t size() const { return versions_; }
  // Calls f(const PriceEntry&, bool scheduled) for each key's version in
  // force at `at` (scheduled false) and each version after it (true), by
  // key, oldest first. O(keys + versions after `at`).
  template <typename F>
  void for_each_at(Timestamp at, F&& f) const {
    PriceEntry entry;
    for (const auto& [key, versions] : prices_) {
      std::tie(entry.product, entry.item, entry.variant) = key;
      const auto later = versions.upper_bound(at);  // the first version after `at`
      for (auto v = later == versions.begin() ? later : std::prev(later); v != versions.end(); ++v) {
        entry.effective_from = v->first;
        entry.unit_price = v->second;
        f(static_cast<const PriceEntry&>(entry), at < v->first);
      }
    }
  }
  // The versions of one key in force at some time of [from, to), oldest first.
  std::vector<PriceEntry> history(Product product, std::string_view item, std::string_view variant, Timestamp from,
                                  Timestamp to) const;

 private:
  using Key = std::tuple<Product, std::string, std::string>;
  std::map<Key, std::map<Timestamp, Money>, std::less<>> prices_;
  std::size_t versions_ = 0;
};

// Where a meter reads the price in force, to put on its events and to hold
// a run's or a request's cost (the billing service: the book). Thread-safe.
class PriceSource {
 public:
  virtual ~PriceSource() = default;
  virtual Result<Money> price_at(Product product, std::string_view item, std::string_view variant,
                                 Timestamp at) const = 0;
};

// The catalog: a price source that also takes new versions (the billing
// service; the spot market publishes its clearing prices here). Thread-safe.
class PriceCatalog : public PriceSource {
 public:
  // Adds versions, all or none, durable when it returns (see BillingService).
  // An entry without an effective_from (Timestamp{}) takes effect at the
  // earliest time a change may, which is written back into it.
  virtual Status set_prices(std::span<PriceEntry> prices) = 0;
  // The earliest time a new version may take effect.
  virtual Timestamp earliest_price_change() const = 0;
  // One key's versions in force at some time of [from, to), oldest first.
  virtual std::vector<PriceEntry> price_history(Product product, std::string_view item, std::string_view variant,
                                                Timestamp from, Timestamp to) const = 0;
};

enum class PriceCheck : std::uint8_t {
  kMatches,        // the event's unit_price equals the book's
  kSourceDiffers,  // it does not: the book's price was used
};

// A capacity block's own GPU-time price: the variant "block:<reservation
// id>", locked when the block was booked, under which its hours are billed.
inline std::string block_price_variant(std::string_view reservation_id) {
  return "block:" + std::string(reservation_id);
}
inline bool is_block_price_variant(std::string_view variant) { return variant.starts_with("block:"); }

// A usage event with its exact cost.
struct RatedCharge {
  std::string event_id;
  std::string tenant_id;
  Product product = Product::kGpuTime;
  std::string item, variant;
  std::int64_t quantity = 0;
  Money unit_price;  // the book's, used
  Amount amount;     // exact: quantity * unit_price, never rounded
  Timestamp start, end;
  std::string source_id;
  std::string key_id;
  PriceCheck price_check = PriceCheck::kMatches;
  Money source_unit_price;  // the event's
};

// Rates one event. invalid_argument for a malformed event (no id or
// tenant, a negative or too large quantity, end before start); not_found
// when the book has no price for it at its start.
Result<RatedCharge> rate(const PriceBook& book, const UsageEvent& event);

}  // namespace headroom::ledger
