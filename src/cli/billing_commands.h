// The commands for money: `headroom balance`, `headroom usage`, `headroom
// invoices [ID]` and, for the admin, `headroom credits add|set`, over the
// billing routes (GET /v1/balance, GET /v1/usage, GET /v1/invoices[/{id}],
// POST /v1/tenants/{id}/credits, PUT /v1/tenants/{id}/billing).
//
// Money comes from the server as decimal strings of dollars ("12.34") and is
// printed as it came; the CLI does arithmetic on it only through Money
// (a month's spend as a percent of its budget), never through a double.
#pragma once

#include <boost/json/fwd.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace CLI {
class App;
}

namespace headroom::cli {

struct ClientEnvironment;

// `--from` and `--to` of `usage`: an RFC 3339 time, sent on in UTC, or a
// date YYYY-MM-DD, which means midnight UTC at its start
// ("2026-11-01" -> "2026-11-01T00:00:00Z"). invalid_argument otherwise.
Result<std::string> parse_usage_time(std::string_view text);

// A quantity of the API (`quantity` with its `unit`) as people read it:
// gpu_ms as GPU-hours with 3 decimals ("1.500", "GPU-hours"), tokens as a
// whole number ("1500", "tokens"); another unit as it came.
struct ReadableQuantity {
  std::string amount;
  std::string unit;
};
ReadableQuantity readable_quantity(const boost::json::value* quantity, const boost::json::value* unit);

// A balance (GET /v1/balance, PUT /v1/tenants/{id}/billing, and `balance`
// inside POST /v1/tenants/{id}/credits's answer): one field a line, the
// month's spend against its budget, then the budget alerts, if any.
std::string render_balance(const boost::json::value& balance);

// GET /v1/usage as a table (group, product, quantity, unit, events, cost),
// a total row, then the period it covers.
std::string render_usage(const boost::json::value& usage);

// GET /v1/invoices/{id} as a statement: the invoice's fields, its lines,
// its adjustments, the rounding and the total.
std::string render_invoice(const boost::json::value& invoice);

struct ClientFlags;
// GET `target` with Accept: text/csv and print the server's CSV as it comes
// (`usage --csv`, `report --csv`); the exit code.
int print_csv(const std::string& target, const ClientFlags& flags, const ClientEnvironment& env);

// Adds `balance`, `usage`, `invoices` and `credits` to `app`, as
// add_client_commands does.
void add_billing_commands(CLI::App& app, int& exit_code, const std::shared_ptr<const ClientEnvironment>& env);

}  // namespace headroom::cli
