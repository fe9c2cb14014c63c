// The money: balances, credits, billing terms, usage reports, invoices and
// usage ingestion from meters outside Headroom. The BillingService does the
// work; these routes check input and scope, and shape the JSON and CSV.
#include <boost/json.hpp>
#include <memory>

#include "api/json_body.h"
#include "api/route_util.h"
#include "api/router.h"
#include "api/services.h"
#include "billing/billing_service.h"
#include "common/crypto.h"
#include "common/ids.h"
#include "common/log.h"
#include "ledger/ledger_limits.h"

namespace headroom::api {
namespace {

namespace json = boost::json;

constexpr std::size_t kNoteBytes = 256;
// Each I/O thread's arena for POST /v1/usage's parsed body: room for the
// DOM of about 1,500 events (~700 bytes each); a larger body takes more
// from the heap, in a few large blocks.
constexpr std::size_t kIngestArenaBytes = 1 << 20;
// How far ahead of the server's clock an ingested event may start (meters'
// clocks drift); past it the event is refused, so that a price version added
// later never reprices an event already rated.
constexpr std::int64_t kIngestClockSkewS = 300;

std::string month_text(std::int32_t yyyymm) {
  char out[16];
  std::snprintf(out, sizeof out, "%04d-%02d", yyyymm / 100 % 10000, yyyymm % 100);
  return out;
}

// Whose money a request reads: the caller's own, or with ?tenant_id= any
// tenant's for an admin.
Result<std::string> tenant_of(const RequestContext& ctx) {
  std::string value;
  if (!net::query_param(ctx.http.query, "tenant_id", value) || value == ctx.caller.tenant_id()) {
    return ctx.caller.tenant_id();
  }
  if (!ctx.caller.is_admin()) return Status::permission_denied("only an admin key may read another tenant's billing");
  return value.substr(0, 64);
}

json::object balance_json(const billing::Balance& b) {
  json::array alerts;
  for (const auto& a : b.alerts) {
    alerts.push_back(json::object{{"month", month_text(a.month)},
                                  {"percent", a.percent},
                                  {"at", to_rfc3339(a.at)},
                                  {"spend", a.spend.floor_money().to_string()},
                                  {"budget", a.budget.to_string()}});
  }
  return {{"tenant_id", b.tenant_id},
          {"currency", "USD"},
          {"balance", b.balance.to_string()},
          {"held", b.held.to_string()},
          {"credit_limit", b.credit_limit.to_string()},
          {"available", b.available.to_string()},
          {"owed", b.owed.to_string()},
          {"state", b.state == ledger::SpendState::kOk ? "ok" : "exhausted"},
          {"month", month_text(b.month)},
          {"month_spend", b.month_spend.to_string()},
          {"monthly_budget", b.monthly_budget > Money() ? json::value(b.monthly_budget.to_string()) : json::value(nullptr)},
          {"alerts", std::move(alerts)}};
}

Result<Money> amount_field(const JsonBody& body, std::string_view field, bool required) {
  HR_ASSIGN_OR_RETURN(auto text, body.optional_string(field, 32));
  if (!text) {
    if (required) return Status::invalid_argument("field \"" + std::string(field) + "\" is required, such as \"100.00\"");
    return Money::from_nanos(-1);  // absent
  }
  auto money = Money::parse(*text);
  if (!money || *money < Money()) {
    return Status::invalid_argument("field \"" + std::string(field) + "\" must be an amount in dollars such as \"100.00\"");
  }
  return *money;
}

Status add_credits(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(JsonBody body, JsonBody::parse(ctx.http.body));
  HR_RETURN_IF_ERROR(body.only_fields({"amount", "kind", "note"}));
  billing::CreditRequest request;
  request.tenant_id = std::string(ctx.param("id"));
  HR_ASSIGN_OR_RETURN(request.amount, amount_field(body, "amount", true));
  HR_ASSIGN_OR_RETURN(auto kind, body.optional_string("kind", 16));
  if (kind && *kind == "grant") {
    request.kind = billing::CreditKind::kGrant;
  } else if (kind && *kind != "deposit") {
    return Status::invalid_argument("field \"kind\" must be \"deposit\" or \"grant\"");
  }
  HR_ASSIGN_OR_RETURN(auto note, body.optional_string("note", kNoteBytes));
  request.note = note.value_or("");
  HR_ASSIGN_OR_RETURN(std::string_view key, idempotency_key(ctx.http));
  // Without a key every request is a new credit: a key of our own makes its id.
  request.idempotency_key = key.empty() ? make_id("auto", s.random) : std::string(key);
  HR_ASSIGN_OR_RETURN(billing::Credit credit, s.billing->add_credits(request));
  if (!credit.replayed) {
    // The audit record says who gave it and why; the ledger has the money.
    // The credit is made (and durable) already: a failing audit log is reported, not a reason to answer 5xx.
    Status audited = s.store.append_audit(audit(
        s, ctx, request.kind == billing::CreditKind::kGrant ? "credits.grant" : "credits.deposit", request.tenant_id,
        {{"amount", request.amount.to_string()}, {"note", request.note}, {"transfer_id", credit.id.to_string()}}));
    if (!audited) spdlog::error("audit of credit {}: {}", credit.id.to_string(), audited.message());
  }
  write_json(response, credit.replayed ? 200 : 201,
             json::object{{"id", credit.id.to_string()},
                          {"tenant_id", request.tenant_id},
                          {"amount", request.amount.to_string()},
                          {"kind", request.kind == billing::CreditKind::kGrant ? "grant" : "deposit"},
                          {"note", request.note},
                          {"created_at", to_rfc3339(credit.at)},
                          {"balance", balance_json(s.billing->balance(request.tenant_id))}});
  if (credit.replayed) response.headers.emplace_back("Idempotent-Replayed", "true");
  return Status::ok();
}

Status set_terms(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(JsonBody body, JsonBody::parse(ctx.http.body));
  HR_RETURN_IF_ERROR(body.only_fields({"credit_limit", "monthly_budget"}));
  HR_ASSIGN_OR_RETURN(Money limit, amount_field(body, "credit_limit", false));
  HR_ASSIGN_OR_RETURN(Money budget, amount_field(body, "monthly_budget", false));
  auto given = [](Money m) { return m < Money() ? std::nullopt : std::optional<Money>(m); };
  if (!given(limit) && !given(budget)) {
    return Status::invalid_argument("give \"credit_limit\", \"monthly_budget\" or both");
  }
  std::string tenant(ctx.param("id"));
  HR_RETURN_IF_ERROR(s.billing->set_terms(tenant, given(limit), given(budget)));
  json::object details;
  if (given(limit)) details["credit_limit"] = limit.to_string();
  if (given(budget)) details["monthly_budget"] = budget.to_string();
  Status audited = s.store.append_audit(audit(s, ctx, "billing.terms", tenant, std::move(details)));
  if (!audited) spdlog::error("audit of billing terms for {}: {}", tenant, audited.message());
  write_json(response, 200, balance_json(s.billing->balance(tenant)));
  return Status::ok();
}

Status get_balance(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(std::string tenant, tenant_of(ctx));
  write_json(response, 200, balance_json(s.billing->balance(tenant)));
  return Status::ok();
}

std::string_view unit_of(ledger::Product p) { return p == ledger::Product::kGpuTime ? "gpu_ms" : "tokens"; }

Status get_usage(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(std::string tenant, tenant_of(ctx));
  const Timestamp now = s.clock.now();
  Timestamp from = ledger::utc_month_start(ledger::utc_month_of(now));
  Timestamp to = now;
  billing::GroupBy group_by = billing::GroupBy::kDay;
  HR_RETURN_IF_ERROR(read_period(ctx.http, from, to));
  std::string value;
  if (to < from) return Status::invalid_argument("query parameter \"to\" is before \"from\"");
  if (net::query_param(ctx.http.query, "group_by", value)) {
    HR_ASSIGN_OR_RETURN(group_by, billing::parse_group_by(value));
  }
  const billing::UsageReport report = s.billing->usage(tenant, from, to, group_by);
  if (wants_csv(ctx.http)) {
    std::string out = "group,product,quantity,unit,events,cost\n";
    for (const auto& row : report.rows) {
      out += csv_field(row.group) + "," + std::string(ledger::product_name(row.product)) + "," +
             std::to_string(row.quantity) + "," + std::string(unit_of(row.product)) + "," + std::to_string(row.events) +
             "," + row.cost.floor_money().to_string() + "\n";
    }
    response.status = 200;
    response.content_type = "text/csv; charset=utf-8";
    response.body = std::move(out);
    return Status::ok();
  }
  json::array data;
  for (const auto& row : report.rows) {
    data.push_back(json::object{{"group", row.group},
                                {"product", ledger::product_name(row.product)},
                                {"quantity", row.quantity},
                                {"unit", unit_of(row.product)},
                                {"events", row.events},
                                {"cost", row.cost.floor_money().to_string()}});
  }
  write_json(response, 200,
             json::object{{"tenant_id", tenant},
                          {"from", to_rfc3339(from)},
                          {"to", to_rfc3339(to)},
                          {"group_by", billing::group_by_name(group_by)},
                          {"data", std::move(data)},
                          {"total_cost", report.total.floor_money().to_string()}});
  return Status::ok();
}

json::object invoice_summary(std::string_view tenant, std::int32_t month, Money total, Timestamp now) {
  const Timestamp start = ledger::utc_month_start(month);
  const std::int32_t next = month % 100 == 12 ? (month / 100 + 1) * 100 + 1 : month + 1;
  return {{"id", "inv_" + std::to_string(month)},
          {"tenant_id", tenant},
          {"month", month_text(month)},
          {"period_start", to_rfc3339(start)},
          {"period_end", to_rfc3339(ledger::utc_month_start(next))},
          {"status", ledger::utc_month_of(now) > month ? "closed" : "open"},
          {"total", total.to_string()},
          {"currency", "USD"}};
}

Status list_invoices(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(std::string tenant, tenant_of(ctx));
  json::array data;
  const Timestamp now = s.clock.now();
  auto months = s.billing->invoice_months(tenant);
  for (auto it = months.rbegin(); it != months.rend(); ++it) {  // newest first
    HR_ASSIGN_OR_RETURN(ledger::Invoice invoice, s.billing->invoice(tenant, *it));
    data.push_back(invoice_summary(tenant, *it, invoice.total, now));
  }
  write_json(response, 200, json::object{{"data", std::move(data)}, {"has_more", false}});
  return Status::ok();
}

Status show_invoice(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(std::string tenant, tenant_of(ctx));
  std::string_view id = ctx.param("id");
  std::int32_t month = 0;
  bool ok = id.size() == 10 && id.substr(0, 4) == "inv_";
  for (char c : id.substr(std::min<std::size_t>(4, id.size()))) {
    ok = ok && c >= '0' && c <= '9';
    month = month * 10 + (c - '0');
  }
  if (!ok || month % 100 < 1 || month % 100 > 12) {
    return Status::not_found("invoice " + std::string(id.substr(0, 32)) + " not found (ids look like inv_202611)");
  }
  auto invoice = s.billing->invoice(tenant, month);
  if (!invoice && invoice.status().code() == ErrorCode::kNotFound) {
    return Status::not_found("invoice " + std::string(id) + " not found");
  }
  HR_RETURN_IF_ERROR(invoice.status());
  json::object out = invoice_summary(tenant, month, invoice->total, s.clock.now());
  json::array lines;
  for (const auto& line : invoice->lines) {
    lines.push_back(json::object{{"description", line.description()},
                                 {"product", ledger::product_name(line.product)},
                                 {"item", line.item},
                                 {"variant", line.variant},
                                 {"unit_price", line.unit_price.to_string()},
                                 {"price_unit", line.product == ledger::Product::kGpuTime ? "gpu_hour" : "million_tokens"},
                                 {"quantity", line.quantity},
                                 {"unit", unit_of(line.product)},
                                 {"charges", line.charges},
                                 {"amount", line.amount.to_string()}});
  }
  json::array adjustments;
  for (const auto& a : invoice->adjustments) {
    adjustments.push_back(json::object{{"label", a.label}, {"amount", a.amount.to_string()}});
  }
  out["lines"] = std::move(lines);
  out["adjustments"] = std::move(adjustments);
  out["rounding"] = invoice->rounding().floor_money().to_string();
  out["reconciled"] = true;  // invoice() reconciles every line against the charges, or fails
  write_json(response, 200, out);
  return Status::ok();
}

// POST /v1/usage's body, checked as JsonBody::parse() and
// only_fields({"events"}) check other bodies (parse_json_object() in
// common/json.h: the same depth limit, UTF-8 check and messages), but
// parsed into `storage`.
Result<json::value> parse_usage_body(std::string_view text, json::storage_ptr storage) {
  if (text.empty()) return Status::invalid_argument("the request body is empty: send a JSON object");
  json::parse_options options;
  options.max_depth = limits::kJsonDepth;
  boost::system::error_code ec;
  json::value value = json::parse(text, ec, std::move(storage), options);
  if (ec) return Status::invalid_argument("the request body is not valid JSON: " + ec.message());
  if (!value.is_object()) return Status::invalid_argument("the request body must be a JSON object");
  for (const auto& field : value.get_object()) {
    if (field.key() != "events") {
      return Status::invalid_argument("unknown field \"" + std::string(field.key().substr(0, 64)) +
                                      "\" (expected events)");
    }
  }
  return value;
}

// One event of POST /v1/usage.
Result<ledger::UsageEvent> parse_event(const json::value& value, std::size_t index) {
  auto bad = [&](std::string why) {
    return Status::invalid_argument("events[" + std::to_string(index) + "]: " + std::move(why));
  };
  const json::object* o = value.if_object();
  if (o == nullptr) return bad("must be an object");
  // A view into the parsed body: copied only into the event's own fields
  // (a batch is thousands of strings, on the hot path).
  auto text = [&](std::string_view field, bool required, std::size_t max) -> Result<std::string_view> {
    const json::value* v = o->if_contains(field);
    if (v == nullptr || v->is_null()) {
      if (required) return bad("field \"" + std::string(field) + "\" is required");
      return std::string_view();
    }
    if (!v->is_string()) return bad("field \"" + std::string(field) + "\" must be a string");
    const json::string& s = v->get_string();
    if (s.size() > max || (required && s.empty())) {
      return bad("field \"" + std::string(field) + "\" must be 1 to " + std::to_string(max) + " bytes");
    }
    return std::string_view(s);
  };
  ledger::UsageEvent e;
  HR_ASSIGN_OR_RETURN(std::string_view product, text("product", true, 16));
  static constexpr std::string_view kGpuFields[] = {"id", "tenant_id", "product", "gpu_type", "tier", "quantity",
                                                    "unit_price", "start", "end", "source_id"};
  static constexpr std::string_view kTokenFields[] = {"id", "tenant_id", "product", "model", "direction", "quantity",
                                                      "unit_price", "start", "end", "source_id", "key_id"};
  std::span<const std::string_view> known;
  if (product == "gpu_time") {
    e.product = ledger::Product::kGpuTime;
    known = kGpuFields;
    HR_ASSIGN_OR_RETURN(e.item, text("gpu_type", true, limits::kUsageTextBytes));
    HR_ASSIGN_OR_RETURN(e.variant, text("tier", true, limits::kUsageTextBytes));
  } else if (product == "tokens") {
    e.product = ledger::Product::kTokens;
    known = kTokenFields;
    HR_ASSIGN_OR_RETURN(e.item, text("model", true, limits::kUsageTextBytes));
    HR_ASSIGN_OR_RETURN(e.variant, text("direction", true, limits::kUsageTextBytes));
  } else {
    return bad("field \"product\" must be \"gpu_time\" or \"tokens\"");
  }
  for (const auto& [key, v] : *o) {
    if (std::find(known.begin(), known.end(), std::string_view(key)) == known.end()) {
      return bad("unknown field \"" + std::string(key.substr(0, 32)) + "\"");
    }
  }
  HR_ASSIGN_OR_RETURN(e.id, text("id", true, limits::kUsageIdBytes));
  HR_ASSIGN_OR_RETURN(e.tenant_id, text("tenant_id", true, limits::kLedgerOwnerBytes));
  HR_ASSIGN_OR_RETURN(e.source_id, text("source_id", false, limits::kUsageTextBytes));
  if (e.product == ledger::Product::kTokens) {
    HR_ASSIGN_OR_RETURN(e.key_id, text("key_id", false, limits::kUsageTextBytes));
  }
  const json::value* quantity = o->if_contains("quantity");
  if (quantity == nullptr || !quantity->is_int64() || quantity->get_int64() < 0 ||
      quantity->get_int64() > limits::kUsageQuantityMax) {
    return bad("field \"quantity\" must be a whole number from 0 to " + std::to_string(limits::kUsageQuantityMax) +
               (e.product == ledger::Product::kGpuTime ? " (GPU-milliseconds)" : " (tokens)"));
  }
  e.quantity = quantity->get_int64();
  for (auto [field, slot] : {std::pair{"start", &e.start}, std::pair{"end", &e.end}}) {
    HR_ASSIGN_OR_RETURN(std::string_view t, text(field, true, 64));
    auto parsed = parse_rfc3339(t);
    if (!parsed) return bad("field \"" + std::string(field) + "\" must be an RFC 3339 time");
    *slot = *parsed;
  }
  if (e.end < e.start) return bad("\"end\" is before \"start\"");
  HR_ASSIGN_OR_RETURN(std::string_view price, text("unit_price", false, 32));
  if (!price.empty()) {
    auto money = Money::parse(price);
    if (!money || *money < Money()) return bad("field \"unit_price\" must be an amount such as \"2.00\"");
    e.unit_price = *money;
  }
  return e;
}

Status ingest_usage(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  // The body's DOM goes into an arena this thread keeps, and is dropped
  // whole: a batch of 1,000 events is some 5,000 strings and objects, whose
  // malloc and free were a quarter of the handler's CPU.
  thread_local const std::unique_ptr<unsigned char[]> arena(new unsigned char[kIngestArenaBytes]);
  json::monotonic_resource resource(arena.get(), kIngestArenaBytes);
  HR_ASSIGN_OR_RETURN(const json::value body, parse_usage_body(ctx.http.body, &resource));
  const json::value* list = body.get_object().if_contains("events");
  if (list == nullptr || !list->is_array() || list->get_array().empty()) {
    return Status::invalid_argument("field \"events\" must be a non-empty array of usage events");
  }
  const json::array& items = list->get_array();
  if (items.size() > limits::kUsageBatchEvents) {
    return Status::invalid_argument("at most " + std::to_string(limits::kUsageBatchEvents) + " events per request");
  }
  // Every event is checked and priced before any is recorded: a bad batch
  // records nothing.
  std::vector<ledger::UsageEvent> events;
  events.reserve(items.size());
  const Timestamp latest_start = s.clock.now().plus_seconds(kIngestClockSkewS);
  std::string known_tenant;
  for (std::size_t i = 0; i < items.size(); ++i) {
    HR_ASSIGN_OR_RETURN(ledger::UsageEvent e, parse_event(items[i], i));
    if (latest_start < e.start) return Status::invalid_argument("events[" + std::to_string(i) + "]: starts in the future");
    if (e.tenant_id != known_tenant) {
      if (!s.authenticator.has_tenant(e.tenant_id)) {
        return Status::invalid_argument("events[" + std::to_string(i) + "]: no tenant " + e.tenant_id.substr(0, 64));
      }
      known_tenant = e.tenant_id;
    }
    events.push_back(std::move(e));
  }
  std::vector<ledger::Amount> costs;
  HR_RETURN_IF_ERROR(s.billing->quote(events, costs));
  const std::vector<Status> results = s.usage->record_each(events);

  // The answer is written by hand: it is as long as the batch, on the hot path.
  std::string out;
  out.reserve(events.size() * 64 + 64);
  out += R"({"data":[)";
  std::size_t recorded = 0;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i > 0) out += ',';
    out += R"({"id":)";
    out += json::serialize(json::string_view(events[i].id));
    if (results[i].is_ok()) {
      ++recorded;
      out += R"(,"status":"recorded","cost":")";
      out += costs[i].floor_money().to_string();
      out += R"("})";
    } else {
      out += R"(,"status":"rejected","error":{"code":")";
      out += error_code_name(results[i].code());
      out += R"(","message":)";
      out += json::serialize(json::string_view(results[i].message()));
      out += "}}";
    }
  }
  out += R"(],"recorded":)" + std::to_string(recorded) + R"(,"rejected":)" + std::to_string(events.size() - recorded) +
         "}";
  response.status = 200;
  response.body = std::move(out);
  return Status::ok();
}

}  // namespace

void add_billing_routes(Router& router, Services& s) {
  auto tenant_in_path = Ownership{"tenant", "id", [&s](std::string_view id) -> Result<std::optional<std::string>> {
                                    HR_ASSIGN_OR_RETURN(auto t, s.store.find_tenant(std::string(id)));
                                    if (!t) return std::optional<std::string>();
                                    return std::optional<std::string>(t->id);
                                  }};
  auto bind = [&s](Status (*f)(Services&, RequestContext&, net::HttpResponse&)) {
    return [&s, f](RequestContext& ctx, net::HttpResponse& r) { return f(s, ctx, r); };
  };
  router.add({"GET", "/v1/balance", Access::kAuthenticated, 0, std::nullopt, bind(get_balance),
              {"The caller's balance, holds, credit, month spend and budget alerts (admin: ?tenant_id=)", "billing",
               200, "", "Balance", "application/json", {"tenant_id"}}});
  router.add({"POST", "/v1/tenants/{id}/credits", Access::kAuthenticated, store::kScopeAdmin, tenant_in_path,
              bind(add_credits),
              {"Add prepaid credit to a tenant (idempotent with an Idempotency-Key header)", "billing", 201,
               "CreditRequest", "Credit"}});
  router.add({"PUT", "/v1/tenants/{id}/billing", Access::kAuthenticated, store::kScopeAdmin, tenant_in_path,
              bind(set_terms), {"Set a tenant's credit limit and monthly budget", "billing", 200, "BillingTerms",
                                "Balance"}});
  router.add({"GET", "/v1/usage", Access::kAuthenticated, 0, std::nullopt, bind(get_usage),
              {"Rated usage from ?from= to ?to=, grouped by day, product, gpu_type, model or job (CSV with "
               "Accept: text/csv)",
               "billing", 200, "", "UsageReport", "application/json", {"from", "to", "group_by", "tenant_id"}}});
  router.add({"POST", "/v1/usage", Access::kAuthenticated, store::kScopeAdmin, std::nullopt, bind(ingest_usage),
              {"Record usage events from a meter outside Headroom (idempotent per event id)", "billing", 200,
               "UsageBatch", "UsageBatchResult"}});
  router.add({"GET", "/v1/invoices", Access::kAuthenticated, 0, std::nullopt, bind(list_invoices),
              {"Monthly invoices, newest first (admin: ?tenant_id=)", "billing", 200, "", "InvoiceList",
               "application/json", {"tenant_id"}}});
  router.add({"GET", "/v1/invoices/{id}", Access::kAuthenticated, 0, std::nullopt, bind(show_invoice),
              {"A monthly invoice with its lines, reconciled to the rated usage", "billing", 200, "", "Invoice",
               "application/json", {"tenant_id"}}});
}

}  // namespace headroom::api
