#include "cli/market_commands.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <algorithm>

#include "cli/api_command.h"
#include "cli/billing_commands.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;
using Env = std::shared_ptr<const ClientEnvironment>;

const std::vector<Column> kPriceColumns = {{"PRODUCT", "product"},      {"GPU TYPE", "gpu_type"},
                                           {"TIER", "tier"},            {"MODEL", "model"},
                                           {"DIRECTION", "direction"},  {"PRICE", "unit_price", Align::kRight},
                                           {"PER", "unit"},             {"SINCE", "effective_from"}};

struct ReportArgs {
  std::string from, to, bucket, group_by;
  bool csv = false;
};

Result<std::string> report_target(std::string_view name, const ReportArgs& args) {
  std::string target = "/v1/reports/" + std::string(name);
  char sep = '?';
  for (auto [key, value] : {std::pair{"from", &args.from}, std::pair{"to", &args.to}}) {
    if (value->empty()) continue;
    HR_ASSIGN_OR_RETURN(std::string time, parse_usage_time(*value));
    target += sep + std::string(key) + "=" + encode_path_segment(time);
    sep = '&';
  }
  for (auto [key, value] : {std::pair{"bucket", &args.bucket}, std::pair{"group_by", &args.group_by}}) {
    if (value->empty()) continue;
    target += sep + std::string(key) + "=" + encode_path_segment(*value);
    sep = '&';
  }
  return target;
}

}  // namespace

std::string render_offers(const json::value& offers) {
  const std::vector<Column> columns = {
      {"GPU TYPE", ""},     {"GPUS", "", Align::kRight},       {"FREE", "", Align::kRight},
      {"ON-DEMAND", "", Align::kRight}, {"AVAILABLE", "", Align::kRight}, {"RESERVED", "", Align::kRight},
      {"RESERVABLE 14D", "", Align::kRight}, {"SPOT", "", Align::kRight}, {"FLOOR", "", Align::kRight},
      {"SPOT SUPPLY", "", Align::kRight}};
  std::vector<std::vector<std::string>> rows;
  const json::value* data = find_path(offers, "data");
  if (data == nullptr || !data->is_array()) return render_table(columns, rows);
  for (const json::value& o : data->as_array()) {
    std::int64_t free = 0;
    if (const json::value* sites = find_path(o, "sites"); sites && sites->is_array()) {
      for (const json::value& site : sites->as_array()) {
        if (const json::value* a = find_path(site, "available"); a && a->is_int64()) free += a->as_int64();
      }
    }
    std::string reservable = "-";
    if (const json::value* days = find_path(o, "reserved.reservable_by_day"); days && days->is_array()) {
      std::int64_t least = -1;
      for (const json::value& d : days->as_array()) {
        if (const json::value* g = find_path(d, "gpus"); g && g->is_int64()) {
          least = least < 0 ? g->as_int64() : std::min(least, g->as_int64());
        }
      }
      if (least >= 0) reservable = std::to_string(least);
    }
    rows.push_back({cell_text(find_path(o, "gpu_type")), cell_text(find_path(o, "gpus")), std::to_string(free),
                    cell_text(find_path(o, "on_demand.price_per_gpu_hour")),
                    cell_text(find_path(o, "on_demand.available_now")),
                    cell_text(find_path(o, "reserved.price_per_gpu_hour")), reservable,
                    cell_text(find_path(o, "spot.price_per_gpu_hour")), cell_text(find_path(o, "spot.floor_per_gpu_hour")),
                    cell_text(find_path(o, "spot.supply_now"))});
  }
  return render_table(columns, rows) + "Prices are per GPU-hour, in USD.\n";
}

std::string render_report(const json::value& report) {
  const json::value* data = find_path(report, "data");
  if (data == nullptr || !data->is_array() || data->as_array().empty()) return "No rows.\n";
  std::vector<Column> columns;
  const json::value& first = data->as_array().front();
  if (!first.is_object()) return "No rows.\n";
  for (const auto& field : first.as_object()) {
    std::string header(field.key());
    std::transform(header.begin(), header.end(), header.begin(),
                   [](char c) { return c == '_' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))); });
    const bool number = field.value().is_number() || header.find("HOURS") != std::string::npos ||
                        header.find("PERCENT") != std::string::npos;
    columns.push_back({header, std::string(field.key()), number ? Align::kRight : Align::kLeft});
  }
  std::string out = render_list(columns, data->as_array());
  if (const json::value* total = find_path(report, "total"); total && total->is_string()) {
    out += "Total: " + printable(total->as_string()) + "\n";
  }
  if (const json::value* ok = find_path(report, "reconciliation.reconciled"); ok && ok->is_bool()) {
    out += ok->as_bool() ? "Reconciled with the ledger.\n" : "NOT reconciled with the ledger.\n";
  }
  return out;
}

void add_market_commands(CLI::App& app, int& exit_code, const Env& env) {
  add_api_command(app,
                  {.name = "prices",
                   .description = "List prices in force: per GPU-hour by GPU type and tier, per million tokens by "
                                  "model",
                   .example = "headroom prices",
                   .make_call = []() -> Result<ApiCall> { return ApiCall{"GET", "/v1/prices", std::nullopt}; },
                   .shape = Shape::kList,
                   .columns = kPriceColumns,
                   .auth = Auth::kNone},
                  exit_code, env);
  add_api_command(app,
                  {.name = "offers",
                   .description = "What can be had now per GPU type: prices, free GPUs, reservable capacity, spot",
                   .example = "headroom offers",
                   .make_call = []() -> Result<ApiCall> { return ApiCall{"GET", "/v1/offers", std::nullopt}; },
                   .render = render_offers},
                  exit_code, env);

  CLI::App* report = add_command_group(app, "report", "The owner's reports (admin): utilization, revenue, margin, payback",
                                       "headroom report revenue --group-by tenant --from 2026-11-01");
  for (const char* name : {"utilization", "revenue", "margin", "payback"}) {
    auto args = std::make_shared<ReportArgs>();
    const std::string which = name;
    add_custom_command(
        *report,
        {.name = which,
         .description = which == "utilization" ? "GPU-hours by tier (internal, reserved, on-demand, spot) and idle"
                        : which == "revenue"   ? "Revenue by product, GPU type, model, tier or tenant"
                        : which == "margin"    ? "Depreciation-adjusted margin per GPU type"
                                               : "Capital recovered to date per GPU type against its book value",
         .example = "headroom report " + which + (which == "payback" ? "" : " --from 2026-11-01"),
         .add_arguments =
             [args, which](CLI::App& command) {
               if (which != "payback") {
                 command.add_option("--from", args->from, "Start: a date or an RFC 3339 time (default: this month)");
                 command.add_option("--to", args->to, "End, not included (default: now)");
               }
               if (which == "utilization") command.add_option("--bucket", args->bucket, "hour or day (default)");
               if (which == "revenue") {
                 command.add_option("--group-by", args->group_by, "product (default), gpu_type, model, tier or tenant");
               }
               command.add_flag("--csv", args->csv, "Print the server's CSV (Accept: text/csv)");
             },
         .run = [args, which](const ClientFlags& flags, const ClientEnvironment& client) -> int {
           auto target = report_target(which, *args);
           if (!target.is_ok()) {
             *client.err << "error: " << target.status().message() << "\n";
             return static_cast<int>(ExitCode::kUsage);
           }
           if (args->csv) return print_csv(*target, flags, client);
           const ApiCommand command{.make_call = [target]() -> Result<ApiCall> {
                                      return ApiCall{"GET", *target, std::nullopt};
                                    },
                                    .render = render_report};
           return static_cast<int>(run_api_command(command, flags, client));
         }},
        exit_code, env);
  }
}

}  // namespace headroom::cli
