// The market's commands: `headroom prices` (GET /v1/prices), `headroom
// offers` (GET /v1/offers) and, for the admin, `headroom report
// utilization|revenue|margin|payback` (GET /v1/reports/...).
#pragma once

#include <boost/json/fwd.hpp>
#include <memory>
#include <string>

namespace CLI {
class App;
}

namespace headroom::cli {

struct ClientEnvironment;

// GET /v1/offers as a table, one GPU type a row: GPUs, free now, each
// tier's price, on-demand available now, the fewest GPUs reservable on any of
// the next 14 days, the spot floor and supply.
std::string render_offers(const boost::json::value& offers);

// A report (GET /v1/reports/...) as a table: one column per field of its
// rows, in the order the server sends them, then its totals, if any.
std::string render_report(const boost::json::value& report);

void add_market_commands(CLI::App& app, int& exit_code, const std::shared_ptr<const ClientEnvironment>& env);

}  // namespace headroom::cli
