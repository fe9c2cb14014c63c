// The market's routes: the catalog of list prices (GET /v1/prices for
// everyone, POST /v1/prices for the admin), what can be had now (GET
// /v1/offers) and the owner's economics (GET /v1/economics). The billing service keeps the versioned book and
// market/economics.h does the arithmetic; these routes check input and shape
// the JSON.
#include <boost/json.hpp>

#include <map>

#include "api/json_body.h"
#include "api/route_util.h"
#include "api/router.h"
#include "api/services.h"
#include "billing/billing_service.h"
#include "common/log.h"
#include "ledger/ledger_limits.h"
#include "ledger/rating.h"
#include "market/economics.h"

namespace headroom::api {
namespace {

namespace json = boost::json;

// A price version as JSON: gpu_time by GPU type and tier per GPU-hour,
// tokens by model and direction per million tokens.
json::object price_json(const ledger::PriceEntry& p) {
  const bool gpu = p.product == ledger::Product::kGpuTime;
  json::object o{{"product", ledger::product_name(p.product)}};
  o[gpu ? "gpu_type" : "model"] = p.item;
  o[gpu ? "tier" : "direction"] = p.variant;
  o["unit_price"] = p.unit_price.to_string();
  o["unit"] = gpu ? "gpu_hour" : "million_tokens";
  o["effective_from"] = to_rfc3339(p.effective_from);
  return o;
}

// GET /v1/prices[?at=RFC3339]: the list prices in force at `at` (default
// now), and the versions already set to take effect later.
Status get_prices(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  Timestamp at = s.clock.now();
  std::string value;
  if (net::query_param(ctx.http.query, "at", value)) {
    auto parsed = parse_rfc3339(value);
    if (!parsed) return Status::invalid_argument("at: expected an RFC 3339 time such as 2026-11-26T00:00:00Z");
    at = *parsed;
  }
  const billing::BillingService::PriceList prices = s.billing->prices_at(at);
  json::array in_force, scheduled;
  // A capacity block's own price (variant "block:<id>") is its tenant's
  // business, not a list price.
  auto listed = [](const ledger::PriceEntry& p) { return !ledger::is_block_price_variant(p.variant); };
  for (const ledger::PriceEntry& p : prices.in_force) {
    if (listed(p)) in_force.push_back(price_json(p));
  }
  for (const ledger::PriceEntry& p : prices.scheduled) {
    if (listed(p)) scheduled.push_back(price_json(p));
  }
  write_json(response, 200,
             json::object{{"at", to_rfc3339(at)},
                          {"currency", "USD"},
                          {"data", std::move(in_force)},
                          {"scheduled", std::move(scheduled)}});
  return Status::ok();
}

// POST /v1/prices: {"prices":[{"product":"gpu_time","gpu_type":"h100",
// "tier":"on-demand","unit_price":"2.40","effective_from":"..."}, ...]}.
// effective_from defaults to the earliest time a price may change (now).
Status set_prices(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(JsonBody body, JsonBody::parse(ctx.http.body));
  HR_RETURN_IF_ERROR(body.only_fields({"prices"}));
  const json::value* list = body.object().if_contains("prices");
  if (list == nullptr || !list->is_array() || list->as_array().empty()) {
    return Status::invalid_argument("prices: expected a non-empty array of prices");
  }
  if (list->as_array().size() > limits::kCatalogVersionsPerChange) {
    return Status::invalid_argument("prices: at most " + std::to_string(limits::kCatalogVersionsPerChange) +
                                    " in one change");
  }
  std::vector<ledger::PriceEntry> entries;
  std::vector<std::optional<sched::Tier>> tier_of_entry;  // gpu_time entries' tiers
  entries.reserve(list->as_array().size());
  for (std::size_t i = 0; i < list->as_array().size(); ++i) {
    const std::string where = "prices[" + std::to_string(i) + "]";
    auto fail = [&](const Status& why) { return why.with_context(where + "."); };
    const json::value& item = list->as_array()[i];
    if (!item.is_object()) return Status::invalid_argument(where + ": expected an object");
    HR_ASSIGN_OR_RETURN(JsonBody price, JsonBody::parse(json::serialize(item)));
    HR_ASSIGN_OR_RETURN(std::string product, price.required_string("product", 16));
    ledger::PriceEntry p;
    if (product == "gpu_time") {
      HR_RETURN_IF_ERROR(fail(price.only_fields({"product", "gpu_type", "tier", "unit_price", "effective_from"})));
      HR_ASSIGN_OR_RETURN(p.item, price.required_string("gpu_type", limits::kUsageTextBytes));
      HR_ASSIGN_OR_RETURN(p.variant, price.required_string("tier", limits::kUsageTextBytes));
      auto tier = sched::parse_tier(p.variant);
      if (!tier || *tier == sched::Tier::kInternal) {
        return Status::invalid_argument(where + ".tier: expected reserved, on-demand or spot");
      }
      if (!fleet::find_gpu_type(s.fleet, p.item)) {
        return Status::invalid_argument(where + ".gpu_type: the fleet has no " + fleet::quote_for_message(p.item));
      }
      tier_of_entry.push_back(*tier);
    } else if (product == "tokens") {
      HR_RETURN_IF_ERROR(fail(price.only_fields({"product", "model", "direction", "unit_price", "effective_from"})));
      HR_ASSIGN_OR_RETURN(p.item, price.required_string("model", limits::kUsageTextBytes));
      HR_ASSIGN_OR_RETURN(p.variant, price.required_string("direction", 16));
      p.product = ledger::Product::kTokens;
      tier_of_entry.push_back(std::nullopt);
    } else {
      return Status::invalid_argument(where + ".product: expected \"gpu_time\" or \"tokens\"");
    }
    HR_ASSIGN_OR_RETURN(std::string amount, price.required_string("unit_price", 32));
    auto money = Money::parse(amount);
    if (!money) return Status::invalid_argument(where + ".unit_price: expected dollars such as \"2.50\"");
    p.unit_price = *money;
    HR_ASSIGN_OR_RETURN(auto from, price.optional_time("effective_from"));
    p.effective_from = from.value_or(Timestamp{});  // none: as soon as a change may take effect
    // The owner's floor for the tier ([market.economics]): never sell below it.
    if (tier_of_entry.back()) {
      auto economics = s.economics.find(p.item);
      const config::GpuEconomicsConfig* c = economics == s.economics.end() ? nullptr : &economics->second;
      const std::optional<market::FloorPolicy> policy =
          c == nullptr                                       ? std::nullopt
          : *tier_of_entry.back() == sched::Tier::kOnDemand ? c->on_demand_floor
          : *tier_of_entry.back() == sched::Tier::kReserved ? c->reserved_floor
                                                             : std::optional(c->spot_floor);
      if (policy) {
        const Timestamp at = p.effective_from == Timestamp{} ? s.clock.now() : p.effective_from;
        auto floor = market::price_floor(c->economics, *policy, at, c->floor_utilization_permille);
        if (floor && p.unit_price < *floor) {
          return Status::invalid_argument(where + ".unit_price: " + p.unit_price.to_string() + " is below the " +
                                          std::string(market::floor_policy_name(*policy)) + " floor of " +
                                          floor->to_string() + " per GPU-hour for " + p.item + " " + p.variant);
        }
      }
    }
    entries.push_back(std::move(p));
  }
  HR_RETURN_IF_ERROR(s.billing->set_prices(entries));
  json::array added;
  for (const ledger::PriceEntry& p : entries) added.push_back(price_json(p));
  Status audited = s.store.append_audit(audit(s, ctx, "prices.set", "catalog", {{"prices", added}}));
  if (!audited) spdlog::error("audit of a price change: {}", audited.message());
  write_json(response, 201, json::object{{"data", std::move(added)}});
  return Status::ok();
}

std::string percent_text(std::int32_t permille) {
  return std::to_string(permille / 10) + "." + std::to_string(permille % 10);
}

// GET /v1/economics: per GPU type of [market.economics], what one GPU is
// worth and costs now: book value, depreciation, marginal and full cost per
// GPU-hour at the current utilization and at the floor's, the spot floor,
// and the utilization each list price breaks even at.
Status get_economics(Services& s, RequestContext&, net::HttpResponse& response) {
  const Timestamp now = s.clock.now();
  std::map<std::string, sched::TypeSurplus> surplus;
  if (s.compute != nullptr) {
    for (sched::TypeSurplus& t : s.compute->surplus()) surplus.emplace(t.gpu_type, std::move(t));
  }
  json::array data;
  for (const auto& [type, config] : s.economics) {
    const market::GpuEconomics& e = config.economics;
    json::object o{{"gpu_type", type},
                   {"purchase_price", e.purchase_price.to_string()},
                   {"in_service", to_rfc3339(e.in_service)},
                   {"useful_life_years", e.useful_life_years},
                   {"salvage_value", e.salvage_value.to_string()},
                   {"depreciation", market::depreciation_method_name(e.method)},
                   {"book_value", market::book_value(e, now).to_string()},
                   {"depreciation_per_gpu_hour", market::depreciation_per_gpu_hour(e, now).to_string()},
                   {"marginal_cost_per_gpu_hour", market::marginal_cost_per_gpu_hour(e).to_string()},
                   {"other_cost_per_gpu_hour", e.other_cost_per_gpu_hour.to_string()}};
    // Utilization now: the share of the type's GPUs in use or sold (internal
    // work, reserved blocks whether busy or not, on-demand, spot).
    json::value utilization = nullptr, full_cost_now = nullptr;
    if (auto it = surplus.find(type); it != surplus.end() && it->second.total > 0) {
      const sched::TypeSurplus& t = it->second;
      o["gpus"] = t.total;
      const std::uint64_t busy = std::uint64_t{t.internal_in_use} + t.reserved + t.on_demand + t.spot;
      const auto permille = static_cast<std::int32_t>(busy * 1000 / t.total);
      utilization = percent_text(permille);
      if (permille > 0) full_cost_now = market::full_cost_per_gpu_hour(e, now, permille)->to_string();
    }
    o["utilization_percent"] = utilization;
    o["full_cost_per_gpu_hour"] = full_cost_now;
    auto floor = market::price_floor(e, config.spot_floor, now, config.floor_utilization_permille);
    o["spot_floor"] = json::object{{"policy", market::floor_policy_name(config.spot_floor)},
                                   {"utilization_percent", percent_text(config.floor_utilization_permille)},
                                   {"price_per_gpu_hour", floor ? floor->to_string() : ""}};
    for (auto [name, policy] : {std::pair{"on_demand_floor", config.on_demand_floor},
                                std::pair{"reserved_floor", config.reserved_floor}}) {
      auto price = policy ? market::price_floor(e, *policy, now, config.floor_utilization_permille)
                          : Result<Money>(Status::not_found("none"));
      o[name] = policy ? json::value(json::object{{"policy", market::floor_policy_name(*policy)},
                                                  {"price_per_gpu_hour", price ? price->to_string() : ""}})
                       : json::value(nullptr);
    }
    o["full_cost_per_gpu_hour_at_floor_utilization"] =
        market::full_cost_per_gpu_hour(e, now, config.floor_utilization_permille)->to_string();
    json::object break_even;
    for (sched::Tier tier : {sched::Tier::kReserved, sched::Tier::kOnDemand, sched::Tier::kSpot}) {
      auto price = s.billing->price_at(ledger::Product::kGpuTime, type, sched::tier_name(tier), now);
      if (!price) continue;
      auto at = market::break_even_utilization_permille(e, now, *price);
      break_even[sched::tier_name(tier)] =
          json::object{{"list_price_per_gpu_hour", price->to_string()},
                       {"break_even_utilization_percent", at ? json::value(percent_text(*at)) : json::value(nullptr)}};
    }
    o["list_prices"] = std::move(break_even);
    json::array schedule;
    for (const market::DepreciationYear& y : market::depreciation_schedule(e)) {
      schedule.push_back(json::object{{"year", y.year},
                                      {"start_book", y.start_book.to_string()},
                                      {"depreciation", y.depreciation.to_string()},
                                      {"end_book", y.end_book.to_string()}});
    }
    o["schedule"] = std::move(schedule);
    data.push_back(std::move(o));
  }
  write_json(response, 200, json::object{{"at", to_rfc3339(now)}, {"currency", "USD"}, {"data", std::move(data)}});
  return Status::ok();
}

// GET /v1/offers: per GPU type, what can be had now in each tier: list
// prices, the GPUs free per site, what on-demand may take now, the spot
// price with its floor, supply and last 24 hours, and what one more
// capacity block could book per day for the next 14 days.
Status get_offers(Services& s, RequestContext&, net::HttpResponse& response) {
  constexpr std::int32_t kReservableDays = 14;
  const Timestamp now = s.clock.now();
  json::array data;
  for (const compute::TypeOffer& offer : s.compute->offers(kReservableDays)) {
    const std::string& type = offer.surplus.gpu_type;
    auto list = [&](sched::Tier tier) -> json::value {
      auto price = s.billing->price_at(ledger::Product::kGpuTime, type, sched::tier_name(tier), now);
      return price ? json::value(price->to_string()) : json::value(nullptr);
    };
    json::array sites;
    for (const compute::SiteCapacity& site : offer.sites) {
      sites.push_back(json::object{
          {"region", site.region}, {"site", site.site}, {"gpus", site.gpus}, {"available", site.available}});
    }
    json::array reservable;
    for (std::size_t d = 0; d < offer.reservable_by_day.size(); ++d) {
      const Timestamp day = offer.first_day.plus_seconds(static_cast<std::int64_t>(d) * 86'400);
      reservable.push_back(json::object{{"date", to_rfc3339(day).substr(0, 10)}, {"gpus", offer.reservable_by_day[d]}});
    }
    json::array history;
    for (const ledger::PriceEntry& p : s.billing->price_history(ledger::Product::kGpuTime, type, "spot",
                                                                now.plus_seconds(-86'400), now.plus_micros(1))) {
      history.push_back(json::object{{"from", to_rfc3339(p.effective_from)}, {"price_per_gpu_hour", p.unit_price.to_string()}});
    }
    data.push_back(json::object{
        {"gpu_type", type},
        {"gpus", offer.surplus.total},
        {"sites", std::move(sites)},
        {"on_demand", json::object{{"price_per_gpu_hour", list(sched::Tier::kOnDemand)},
                                   {"available_now", offer.surplus.sellable_now}}},
        {"reserved", json::object{{"price_per_gpu_hour", list(sched::Tier::kReserved)},
                                  {"reservable_by_day", std::move(reservable)}}},
        {"spot", json::object{{"price_per_gpu_hour", list(sched::Tier::kSpot)},
                              {"floor_per_gpu_hour", offer.spot_floor.to_string()},
                              {"supply_now", offer.spot_supply},
                              {"history_24h", std::move(history)}}}});
  }
  write_json(response, 200, json::object{{"at", to_rfc3339(now)}, {"currency", "USD"}, {"data", std::move(data)}});
  return Status::ok();
}

}  // namespace

void add_market_routes(Router& router, Services& s) {
  auto bind = [&s](Status (*f)(Services&, RequestContext&, net::HttpResponse&)) {
    return [&s, f](RequestContext& ctx, net::HttpResponse& r) { return f(s, ctx, r); };
  };
  router.add({"GET", "/v1/prices", Access::kPublic, 0, std::nullopt, bind(get_prices),
              {"List prices in force (per GPU-hour by GPU type and tier, per million tokens by model) and the "
               "versions scheduled to take effect later",
               "market", 200, "", "PriceList", "application/json", {"at"}}});
  router.add({"POST", "/v1/prices", Access::kAuthenticated, store::kScopeAdmin, std::nullopt, bind(set_prices),
              {"Add price versions, effective from a time not before now (a change never reprices a charge made)",
               "market", 201, "PriceChange", "PriceList"}});
  router.add({"GET", "/v1/offers", Access::kAuthenticated, 0, std::nullopt, bind(get_offers),
              {"What can be had now per GPU type: list prices, free GPUs per site, on-demand available now, the "
               "spot price with its floor, supply and last 24 hours, and reservable GPUs per day for 14 days",
               "market", 200, "", "Offers"}});
  router.add({"GET", "/v1/economics", Access::kAuthenticated, store::kScopeAdmin, std::nullopt, bind(get_economics),
              {"The owner's economics per GPU type: book value, depreciation, marginal and full cost per GPU-hour, "
               "the spot floor and the utilization each list price breaks even at",
               "market", 200, "", "Economics"}});
}

}  // namespace headroom::api
