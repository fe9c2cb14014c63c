// The owner's reports (admin), from the rated charges, so that they
// reconcile with the ledger: GET /v1/reports/utilization, /revenue, /margin
// and /payback, as JSON or, with Accept: text/csv, as CSV.
//
//   utilization  per bucket (hour or day) and GPU type: the GPU-hours of
//                each tier (internal, reserved, on-demand, spot) and idle.
//                A tier's GPU-hours are its rated GPU time (a capacity block
//                counts whole, used or not), by the start of each usage
//                interval; idle is what is left of the type's GPUs x hours.
//   revenue      by product, GPU type, tier or tenant, exact to the
//                nano-dollar, with the ledger's revenue beside the sum of
//                every rated charge (they must be equal).
//   margin       per GPU type of [market.economics]: revenue less
//                depreciation over the period, the power of the GPU-hours
//                used (internal work included) and the other operating cost
//                of every GPU-hour.
//   payback      per GPU type of [market.economics]: the capital, the book
//                value now, the depreciation to date, and the capital
//                recovered: all the type's revenue since it went into
//                service less its power and other operating cost.
#include <boost/json.hpp>

#include <algorithm>
#include <limits>
#include <map>

#include "api/json_body.h"
#include "api/route_util.h"
#include "api/router.h"
#include "api/services.h"
#include "billing/billing_service.h"
#include "ledger/ledger.h"
#include "market/economics.h"

namespace headroom::api {
namespace {

namespace json = boost::json;

constexpr std::int64_t kHourUs = 3'600'000'000;
constexpr std::int64_t kReportBucketsMax = 24 * 400;  // an hourly report covers about 400 days at most

// A report's rows: flat objects with the same keys, in order.
struct Table {
  std::vector<std::string> columns;
  json::array rows;
};

void write_table(const net::HttpRequest& http, net::HttpResponse& response, Table table, json::object head) {
  if (!wants_csv(http)) {
    head["data"] = std::move(table.rows);
    write_json(response, 200, head);
    return;
  }
  std::string out;
  for (std::size_t i = 0; i < table.columns.size(); ++i) out += (i ? "," : "") + table.columns[i];
  out += "\n";
  for (const json::value& row : table.rows) {
    for (std::size_t i = 0; i < table.columns.size(); ++i) {
      if (i) out += ",";
      const json::value& v = row.as_object().at(table.columns[i]);
      out += v.is_string() ? csv_field(v.as_string()) : json::serialize(v);
    }
    out += "\n";
  }
  response.status = 200;
  response.headers.emplace_back("Content-Type", "text/csv; charset=utf-8");
  response.body = std::move(out);
}

// ?from= and ?to=: RFC 3339; by default the current UTC month to now.
Result<std::pair<Timestamp, Timestamp>> period(Services& s, const RequestContext& ctx) {
  const Timestamp now = s.clock.now();
  Timestamp from = ledger::utc_month_start(ledger::utc_month_of(now)), to = now;
  HR_RETURN_IF_ERROR(read_period(ctx.http, from, to));
  if (!(from < to)) return Status::invalid_argument("to: must be after from");
  return std::pair{from, to};
}

std::string money_text(ledger::Amount a) { return a.floor_money().to_string(); }
std::string hours_text(std::int64_t gpu_ms) {
  char out[32];
  std::snprintf(out, sizeof out, "%lld.%03lld", static_cast<long long>(gpu_ms / 3'600'000),
                static_cast<long long>(gpu_ms % 3'600'000 / 3'600));
  return out;
}

// A share in thousandths as a percent with one decimal: -12 -> "-1.2".
std::string percent_text(long long permille) {
  const long long magnitude = permille < 0 ? -permille : permille;
  char out[32];
  std::snprintf(out, sizeof out, "%s%lld.%lld", permille < 0 ? "-" : "", magnitude / 10, magnitude % 10);
  return out;
}

std::map<std::string, std::uint32_t> gpus_by_type(const fleet::FleetSpec& fleet) {
  std::map<std::string, std::uint32_t> out;
  for (const fleet::GpuType& t : fleet.gpu_types) out[t.name] = 0;
  for (const fleet::Node& node : fleet.nodes) {
    for (const fleet::Gpu& gpu : node.gpus) ++out[gpu.type];
  }
  return out;
}

Status utilization(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(auto range, period(s, ctx));
  auto [from, to] = range;
  std::string value = "day";
  net::query_param(ctx.http.query, "bucket", value);
  if (value != "hour" && value != "day") return Status::invalid_argument("bucket: expected hour or day");
  const std::int64_t bucket_us = value == "hour" ? kHourUs : 24 * kHourUs;
  if ((to.unix_micros - from.unix_micros) / bucket_us > kReportBucketsMax) {
    return Status::invalid_argument("the period holds more than " + std::to_string(kReportBucketsMax) +
                                    " buckets: shorten it or use bucket=day");
  }
  constexpr std::string_view kTiers[] = {"internal", "reserved", "on-demand", "spot"};
  std::map<std::pair<std::int64_t, std::string>, std::map<std::string, std::int64_t>> used;  // gpu-ms
  for (const billing::ChargeSummary& c : s.billing->summary(from, to, bucket_us)) {
    if (c.product == ledger::Product::kGpuTime) used[{c.bucket.unix_micros, c.item}][c.tier] += c.quantity;
  }
  Table table{{"bucket", "gpu_type", "gpus", "internal_gpu_hours", "reserved_gpu_hours", "on_demand_gpu_hours",
               "spot_gpu_hours", "idle_gpu_hours", "utilization_percent"}};
  for (std::int64_t b = from.unix_micros; b < to.unix_micros; b += bucket_us) {
    const std::int64_t span_ms = (std::min(b + bucket_us, to.unix_micros) - b) / 1000;
    for (const auto& [type, gpus] : gpus_by_type(s.fleet)) {
      const auto it = used.find({b, type});
      json::object row{{"bucket", to_rfc3339(Timestamp{b})}, {"gpu_type", type}, {"gpus", gpus}};
      std::int64_t busy = 0;
      for (std::string_view tier : kTiers) {
        std::int64_t ms = 0;
        if (it != used.end()) {
          if (auto t = it->second.find(std::string(tier)); t != it->second.end()) ms = t->second;
        }
        busy += ms;
        std::string column = std::string(tier == "on-demand" ? "on_demand" : tier) + "_gpu_hours";
        row[column] = hours_text(ms);
      }
      const std::int64_t capacity = std::int64_t{gpus} * span_ms;
      row["idle_gpu_hours"] = hours_text(std::max<std::int64_t>(capacity - busy, 0));
      row["utilization_percent"] = percent_text(capacity > 0 ? std::min<std::int64_t>(busy * 1000 / capacity, 1000) : 0);
      table.rows.push_back(std::move(row));
    }
  }
  write_table(ctx.http, response, std::move(table),
              {{"from", to_rfc3339(from)}, {"to", to_rfc3339(to)}, {"bucket", value}});
  return Status::ok();
}

Status revenue(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(auto range, period(s, ctx));
  auto [from, to] = range;
  std::string by = "product";
  net::query_param(ctx.http.query, "group_by", by);
  if (by != "product" && by != "gpu_type" && by != "model" && by != "tier" && by != "tenant") {
    return Status::invalid_argument("group_by: expected product, gpu_type, model, tier or tenant");
  }
  std::map<std::pair<std::string, std::string>, std::pair<std::int64_t, ledger::Amount>> groups;
  ledger::Amount total;
  for (const billing::ChargeSummary& c : s.billing->summary(from, to, 0)) {
    const bool gpu = c.product == ledger::Product::kGpuTime;
    if ((by == "gpu_type" && !gpu) || (by == "model" && gpu)) continue;
    const std::string group = by == "product" ? std::string(ledger::product_name(c.product))
                              : by == "tier"   ? c.tier
                              : by == "tenant" ? c.tenant_id
                                               : c.item;
    auto& [quantity, amount] = groups[{group, std::string(ledger::product_name(c.product))}];
    quantity += c.quantity;
    amount += c.amount;
    total += c.amount;
  }
  Table table{{"group", "product", "quantity", "unit", "revenue"}};
  for (const auto& [key, sum] : groups) {
    table.rows.push_back(json::object{{"group", key.first},
                                      {"product", key.second},
                                      {"quantity", sum.first},
                                      {"unit", key.second == "gpu_time" ? "gpu_ms" : "tokens"},
                                      {"revenue", money_text(sum.second)}});
  }
  // Every rated charge against the ledger's revenue accounts, all time.
  const billing::BillingTotals totals = s.billing->totals();
  write_table(ctx.http, response, std::move(table),
              {{"from", to_rfc3339(from)},
               {"to", to_rfc3339(to)},
               {"group_by", by},
               {"currency", "USD"},
               {"total", money_text(total)},
               {"reconciliation", json::object{{"ledger_revenue", money_text(totals.revenue)},
                                               {"rated_charges", money_text(totals.rated_amount)},
                                               {"reconciled", totals.revenue == totals.rated_amount}}}});
  return Status::ok();
}

// What one GPU type earned and cost over [from, to), by its economics.
struct TypeMoney {
  ledger::Amount revenue;
  std::int64_t used_gpu_ms = 0;  // every tier, internal work included
};
std::map<std::string, TypeMoney> gpu_money(Services& s, Timestamp from, Timestamp to) {
  std::map<std::string, TypeMoney> out;
  for (const billing::ChargeSummary& c : s.billing->summary(from, to, 0)) {
    if (c.product != ledger::Product::kGpuTime) continue;
    TypeMoney& m = out[c.item];
    m.revenue += c.amount;
    m.used_gpu_ms += c.quantity;
  }
  return out;
}

// Money for a quantity of GPU-ms at a price per GPU-hour, floored. Not
// ledger::exact_cost: a fleet's hours since it went into service are past
// the limit one usage event may rate; this never charges anybody.
Money per_hours(std::int64_t gpu_ms, Money per_gpu_hour) {
  const ledger::AmountUnits nanos = static_cast<ledger::AmountUnits>(gpu_ms) * per_gpu_hour.nanos() / ledger::kMillisPerGpuHour;
  return Money::from_nanos(static_cast<std::int64_t>(
      std::clamp<ledger::AmountUnits>(nanos, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max())));
}

Status margin(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(auto range, period(s, ctx));
  auto [from, to] = range;
  const auto money = gpu_money(s, from, to);
  const auto gpus = gpus_by_type(s.fleet);
  Table table{{"gpu_type", "gpus", "revenue", "depreciation", "power", "other_operating", "margin",
               "margin_percent"}};
  for (const auto& [type, config] : s.economics) {
    const market::GpuEconomics& e = config.economics;
    const std::int64_t n = gpus.contains(type) ? gpus.at(type) : 0;
    const auto it = money.find(type);
    const TypeMoney m = it == money.end() ? TypeMoney{} : it->second;
    const Money revenue_money = m.revenue.floor_money();
    const Money depreciation =
        Money::from_nanos((market::book_value(e, from).nanos() - market::book_value(e, to).nanos()) * n);
    const Money power = per_hours(m.used_gpu_ms, market::marginal_cost_per_gpu_hour(e));
    const Money other = per_hours(n * ((to.unix_micros - from.unix_micros) / 1000), e.other_cost_per_gpu_hour);
    const Money result = revenue_money - depreciation - power - other;
    std::string percent;  // none without revenue
    if (revenue_money > Money()) {
      percent = percent_text(
          static_cast<long long>(static_cast<ledger::AmountUnits>(result.nanos()) * 1000 / revenue_money.nanos()));
    }
    table.rows.push_back(json::object{{"gpu_type", type},
                                      {"gpus", n},
                                      {"revenue", revenue_money.to_string()},
                                      {"depreciation", depreciation.to_string()},
                                      {"power", power.to_string()},
                                      {"other_operating", other.to_string()},
                                      {"margin", result.to_string()},
                                      {"margin_percent", percent}});
  }
  write_table(ctx.http, response, std::move(table),
              {{"from", to_rfc3339(from)}, {"to", to_rfc3339(to)}, {"currency", "USD"}});
  return Status::ok();
}

Status payback(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  const Timestamp now = s.clock.now();
  const auto gpus = gpus_by_type(s.fleet);
  Table table{{"gpu_type", "gpus", "in_service", "capital", "book_value", "depreciation_to_date", "revenue",
               "operating_cost", "recovered", "recovered_percent"}};
  for (const auto& [type, config] : s.economics) {
    const market::GpuEconomics& e = config.economics;
    const std::int64_t n = gpus.contains(type) ? gpus.at(type) : 0;
    const Timestamp since = std::min(e.in_service, now);
    const auto money = gpu_money(s, since, now.plus_micros(1));
    const auto it = money.find(type);
    const TypeMoney m = it == money.end() ? TypeMoney{} : it->second;
    const Money capital = Money::from_nanos(e.purchase_price.nanos() * n);
    const Money book = Money::from_nanos(market::book_value(e, now).nanos() * n);
    const Money operating =
        per_hours(m.used_gpu_ms, market::marginal_cost_per_gpu_hour(e)) +
        per_hours(n * ((now.unix_micros - since.unix_micros) / 1000), e.other_cost_per_gpu_hour);
    const Money recovered = m.revenue.floor_money() - operating;
    const std::string percent =
        capital > Money()
            ? percent_text(static_cast<long long>(static_cast<ledger::AmountUnits>(recovered.nanos()) * 1000 / capital.nanos()))
            : "0.0";
    table.rows.push_back(json::object{{"gpu_type", type},
                                      {"gpus", n},
                                      {"in_service", to_rfc3339(e.in_service)},
                                      {"capital", capital.to_string()},
                                      {"book_value", book.to_string()},
                                      {"depreciation_to_date", (capital - book).to_string()},
                                      {"revenue", m.revenue.floor_money().to_string()},
                                      {"operating_cost", operating.to_string()},
                                      {"recovered", recovered.to_string()},
                                      {"recovered_percent", percent}});
  }
  write_table(ctx.http, response, std::move(table), {{"at", to_rfc3339(now)}, {"currency", "USD"}});
  return Status::ok();
}

}  // namespace

void add_report_routes(Router& router, Services& s) {
  auto bind = [&s](Status (*f)(Services&, RequestContext&, net::HttpResponse&)) {
    return [&s, f](RequestContext& ctx, net::HttpResponse& r) { return f(s, ctx, r); };
  };
  router.add({"GET", "/v1/reports/utilization", Access::kAuthenticated, store::kScopeAdmin, std::nullopt,
              bind(utilization),
              {"GPU-hours per bucket and GPU type by tier (internal, reserved, on-demand, spot) and idle (CSV with "
               "Accept: text/csv)",
               "reports", 200, "", "Report", "application/json", {"from", "to", "bucket"}}});
  router.add({"GET", "/v1/reports/revenue", Access::kAuthenticated, store::kScopeAdmin, std::nullopt, bind(revenue),
              {"Revenue by product, GPU type, model, tier or tenant, reconciled with the ledger (CSV with Accept: "
               "text/csv)",
               "reports", 200, "", "Report", "application/json", {"from", "to", "group_by"}}});
  router.add({"GET", "/v1/reports/margin", Access::kAuthenticated, store::kScopeAdmin, std::nullopt, bind(margin),
              {"Depreciation-adjusted margin per GPU type (CSV with Accept: text/csv)", "reports", 200, "", "Report",
               "application/json", {"from", "to"}}});
  router.add({"GET", "/v1/reports/payback", Access::kAuthenticated, store::kScopeAdmin, std::nullopt, bind(payback),
              {"Capital recovered to date per GPU type against its book value (CSV with Accept: text/csv)", "reports",
               200, "", "Report"}});
}

}  // namespace headroom::api
