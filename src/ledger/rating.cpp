#include "ledger/rating.h"

#include <limits>

#include "common/check.h"

namespace headroom::ledger {

namespace {

constexpr Money kUnitPriceMax = Money::from_dollars(limits::kRatingUnitPriceDollarsMax);

bool valid_variant(Product product, std::string_view variant) {
  if (variant.empty()) return false;
  return product != Product::kTokens || variant == "input" || variant == "output";
}

}  // namespace

std::string_view product_name(Product product) {
  switch (product) {
    case Product::kGpuTime:
      return "gpu_time";
    case Product::kTokens:
      return "tokens";
  }
  return "?";
}

Amount exact_cost(Product product, std::int64_t quantity, Money unit_price) {
  CHECK(quantity >= 0 && quantity <= limits::kRatingQuantityMax) << "quantity " << quantity << " out of range";
  CHECK(unit_price >= Money() && unit_price <= kUnitPriceMax) << "unit price " << unit_price.to_string();
  std::int64_t units_per_nano_per_quantity = 0;
  switch (product) {
    case Product::kGpuTime:
      units_per_nano_per_quantity = Amount::kUnitsPerNano / kMillisPerGpuHour;
      break;
    case Product::kTokens:
      units_per_nano_per_quantity = Amount::kUnitsPerNano / kTokensPerMillion;
      break;
  }
  CHECK(units_per_nano_per_quantity > 0) << "unknown product";
  return Amount::from_units(AmountUnits{quantity} * unit_price.nanos() * units_per_nano_per_quantity);
}

Result<Money> round_line(Amount exact) {
  const AmountUnits quantum = Amount::from_money(kLineQuantum).units();
  AmountUnits q = exact.units() / quantum;
  AmountUnits r = exact.units() % quantum;
  if (r < 0) {  // floor division: 0 <= r < quantum
    r += quantum;
    --q;
  }
  if (2 * r > quantum || (2 * r == quantum && q % 2 != 0)) ++q;  // half to even
  AmountUnits nanos = q * kLineQuantum.nanos();
  if (nanos > std::numeric_limits<std::int64_t>::max() || nanos < std::numeric_limits<std::int64_t>::min()) {
    return Status::invalid_argument("an invoice line of " + exact.to_string() + " dollars does not fit Money");
  }
  return Money::from_nanos(static_cast<std::int64_t>(nanos));
}

Status PriceBook::set(const PriceEntry& entry) {
  HR_RETURN_IF_ERROR(check(entry));
  auto& versions = prices_[Key{entry.product, entry.item, entry.variant}];
  if (versions.emplace(entry.effective_from, entry.unit_price).second) ++versions_;
  return Status::ok();
}

Status PriceBook::check(const PriceEntry& entry) const {
  std::string key_words = std::string(product_name(entry.product)) + " " + entry.item + " " + entry.variant;
  if (entry.product != Product::kGpuTime && entry.product != Product::kTokens) {
    return Status::invalid_argument("price: unknown product");
  }
  if (entry.item.empty() || entry.item.size() > limits::kUsageTextBytes) {
    return Status::invalid_argument("price of " + key_words + ": the item (GPU type or model) must be 1 to " +
                                    std::to_string(limits::kUsageTextBytes) + " bytes");
  }
  if (!valid_variant(entry.product, entry.variant) || entry.variant.size() > limits::kUsageTextBytes) {
    return Status::invalid_argument("price of " + key_words +
                                    ": the variant must be a tier for gpu_time, input or output for tokens");
  }
  if (entry.unit_price < Money() || entry.unit_price > kUnitPriceMax) {
    return Status::invalid_argument("price of " + key_words + ": " + entry.unit_price.to_string() +
                                    " is out of range (0 to " + kUnitPriceMax.to_string() + ")");
  }
  auto key = prices_.find(std::make_tuple(entry.product, std::string_view(entry.item), std::string_view(entry.variant)));
  if (key != prices_.end()) {
    auto it = key->second.find(entry.effective_from);
    if (it != key->second.end()) {
      if (it->second == entry.unit_price) return Status::ok();
      return Status::conflict("price of " + key_words + " from " + to_rfc3339(entry.effective_from) +
                              " is already " + it->second.to_string() + "; a change needs a new effective time");
    }
  }
  if (versions_ >= limits::kRatingPriceVersions) return Status::unavailable("the price book is full");
  return Status::ok();
}

Result<Money> PriceBook::price_at(Product product, std::string_view item, std::string_view variant,
                                  Timestamp at) const {
  auto key = std::make_tuple(product, item, variant);
  auto it = prices_.find(key);
  if (it != prices_.end()) {
    auto version = it->second.upper_bound(at);  // the first one after `at`
    if (version != it->second.begin()) return std::prev(version)->second;
  }
  return Status::not_found("no price for " + std::string(product_name(product)) + " " + std::string(item) + " " +
                           std::string(variant) + " at " + to_rfc3339(at));
}

std::vector<PriceEntry> PriceBook::history(Product product, std::string_view item, std::string_view variant,
                                           Timestamp from, Timestamp to) const {
  std::vector<PriceEntry> out;
  auto key = prices_.find(std::make_tuple(product, item, variant));
  if (key == prices_.end()) return out;
  auto it = key->second.upper_bound(from);
  if (it != key->second.begin()) --it;  // the version in force at `from`
  for (; it != key->second.end() && it->first < to; ++it) {
    out.push_back({product, std::string(item), std::string(variant), it->first, it->second});
  }
  return out;
}

Result<RatedCharge> rate(const PriceBook& book, const UsageEvent& event) {
  auto bad = [&](std::string_view why) {
    return Status::invalid_argument("usage event \"" + event.id.substr(0, 64) + "\": " + std::string(why));
  };
  if (event.id.empty()) return bad("no id");
  if (event.tenant_id.empty()) return bad("no tenant");
  if (event.product != Product::kGpuTime && event.product != Product::kTokens) return bad("unknown product");
  if (event.quantity < 0 || event.quantity > limits::kRatingQuantityMax) {
    return bad("quantity " + std::to_string(event.quantity) + " out of range");
  }
  if (event.end < event.start) return bad("ends before it starts");
  HR_ASSIGN_OR_RETURN(Money price, book.price_at(event.product, event.item, event.variant, event.start));

  RatedCharge charge;
  charge.event_id = event.id;
  charge.tenant_id = event.tenant_id;
  charge.product = event.product;
  charge.item = event.item;
  charge.variant = event.variant;
  charge.quantity = event.quantity;
  charge.unit_price = price;
  charge.amount = exact_cost(event.product, event.quantity, price);
  charge.start = event.start;
  charge.end = event.end;
  charge.source_id = event.source_id;
  charge.key_id = event.key_id;
  charge.source_unit_price = event.unit_price;
  charge.price_check = event.unit_price == price ? PriceCheck::kMatches : PriceCheck::kSourceDiffers;
  return charge;
}

}  // namespace headroom::ledger
