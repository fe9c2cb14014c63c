#include "cli/billing_commands.h"

#include <CLI/CLI.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>

#include "cli/api_command.h"
#include "common/money.h"
#include "common/time.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;

using Env = std::shared_ptr<const ClientEnvironment>;

// One thousandth of a GPU-hour: GPU-hours are shown with 3 decimals.
constexpr std::int64_t kGpuMsPerThousandthHour = 3'600;
// A month's spend beyond this many times its budget is shown without a
// percent, which would say nothing more (and could overflow).
constexpr std::int64_t kBudgetMultipleShownMax = 1'000'000;

const std::vector<std::string> kGroupBy = {"day", "product", "gpu_type", "model", "job", "key"};

const std::vector<Column> kBalanceColumns = {{"TENANT", "tenant_id"},
                                             {"CURRENCY", "currency"},
                                             {"BALANCE", "balance"},
                                             {"HELD", "held"},
                                             {"CREDIT LIMIT", "credit_limit"},
                                             {"AVAILABLE", "available"},
                                             {"OWED", "owed"},
                                             {"STATE", "state"},
                                             {"MONTH", "month"},
                                             {"MONTH SPEND", "month_spend"}};

// A credit, for an answer that lacks the balance it should hold.
const std::vector<Column> kCreditColumns = {{"ID", "id"},     {"TENANT", "tenant_id"}, {"AMOUNT", "amount"},
                                            {"KIND", "kind"}, {"NOTE", "note"},        {"CREATED", "created_at"}};

const std::vector<Column> kAlertColumns = {{"MONTH", ""},
                                           {"REACHED", "", Align::kRight},
                                           {"AT", ""},
                                           {"SPEND", "", Align::kRight},
                                           {"BUDGET", "", Align::kRight}};

const std::vector<Column> kUsageColumns = {{"GROUP", ""},
                                           {"PRODUCT", ""},
                                           {"QUANTITY", "", Align::kRight},
                                           {"UNIT", ""},
                                           {"EVENTS", "", Align::kRight},
                                           {"COST", "", Align::kRight}};

const std::vector<Column> kInvoiceListColumns = {{"ID", "id"},
                                                 {"MONTH", "month"},
                                                 {"STATUS", "status"},
                                                 {"TOTAL", "total", Align::kRight},
                                                 {"CURRENCY", "currency"},
                                                 {"PERIOD START", "period_start"},
                                                 {"PERIOD END", "period_end"}};

const std::vector<Column> kInvoiceColumns = {
    {"INVOICE", "id"}, {"TENANT", "tenant_id"}, {"MONTH", "month"}, {"PERIOD", "period"}, {"STATUS", "status"}};

const std::vector<Column> kInvoiceLineColumns = {{"DESCRIPTION", ""},
                                                 {"QUANTITY", "", Align::kRight},
                                                 {"UNIT", ""},
                                                 {"UNIT PRICE", "", Align::kRight},
                                                 {"AMOUNT", "", Align::kRight}};

const std::vector<Column> kAdjustmentColumns = {{"LABEL", ""}, {"AMOUNT", "", Align::kRight}};

const std::vector<Column> kInvoiceFooterColumns = {{"ROUNDING", "rounding"}, {"TOTAL", "total_with_currency"}};

const json::array& array_at(const json::value& value, std::string_view path) {
  static const json::array kEmpty;
  const json::value* found = find_path(value, path);
  return found != nullptr && found->is_array() ? found->get_array() : kEmpty;
}

std::string text_at(const json::value& value, std::string_view path) { return cell_text(find_path(value, path)); }

// A JSON integer that fits an int64; nullopt for anything else.
std::optional<std::int64_t> integer(const json::value* value) {
  if (value == nullptr) return std::nullopt;
  if (value->is_int64()) return value->get_int64();
  if (value->is_uint64() &&
      value->get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return static_cast<std::int64_t>(value->get_uint64());
  }
  return std::nullopt;
}

// Money at `path` when it is a valid amount string.
std::optional<Money> money_at(const json::value& value, std::string_view path) {
  const json::value* found = find_path(value, path);
  if (found == nullptr || !found->is_string()) return std::nullopt;
  auto money = Money::parse(found->get_string());
  if (!money.is_ok()) return std::nullopt;
  return *money;
}

// "1.500" from 1500 thousandths; "-0.250" from -250.
std::string thousandths_text(bool negative, std::uint64_t thousandths) {
  std::string fraction = std::to_string(thousandths % 1000);
  fraction.insert(0, 3 - fraction.size(), '0');
  return (negative && thousandths > 0 ? "-" : "") + std::to_string(thousandths / 1000) + "." + fraction;
}

// The whole percent of `budget` that `spend` is, rounded down; nullopt when
// there is no budget to measure against or the spend is far beyond it.
std::optional<std::int64_t> percent_of_budget(Money spend, Money budget) {
  const std::int64_t spent = spend.nanos();
  const std::int64_t allowed = budget.nanos();
  if (allowed <= 0 || spent < 0) return std::nullopt;
  const std::int64_t multiple = spent / allowed;
  if (multiple > kBudgetMultipleShownMax) return std::nullopt;
  const std::int64_t rest = spent % allowed;
  // rest * 100 fits whenever the budget does; past that, a percent of the
  // budget is so many nano-dollars that dividing by it first loses nothing
  // a whole percent shows.
  const std::int64_t rest_percent = allowed <= std::numeric_limits<std::int64_t>::max() / 100
                                        ? rest * 100 / allowed
                                        : std::min<std::int64_t>(rest / (allowed / 100), 99);
  return multiple * 100 + rest_percent;
}

// "250.00 of 500.00 budget (50%)", or "250.00 (no budget)".
std::string month_spend_text(const json::value& balance) {
  const std::string spend = text_at(balance, "month_spend");
  const std::optional<Money> budget = money_at(balance, "monthly_budget");
  if (!budget || budget->nanos() <= 0) return spend + " (no budget)";
  std::string text = spend + " of " + text_at(balance, "monthly_budget") + " budget";
  if (const std::optional<Money> spent = money_at(balance, "month_spend")) {
    if (const std::optional<std::int64_t> percent = percent_of_budget(*spent, *budget)) {
      text += " (" + std::to_string(*percent) + "%)";
    }
  }
  return text;
}

// "2.00/GPU-hour", "0.05/M tokens".
std::string unit_price_text(const json::value& line) {
  const json::value* price = find_path(line, "unit_price");
  if (price == nullptr || price->is_null()) return "-";
  const std::string unit = text_at(line, "price_unit");
  if (unit == "gpu_hour") return cell_text(price) + "/GPU-hour";
  if (unit == "million_tokens") return cell_text(price) + "/M tokens";
  if (unit == "-") return cell_text(price);
  return cell_text(price) + "/" + unit;
}

void append_query(std::string& target, std::string_view name, const std::string& value) {
  if (value.empty()) return;
  target += target.find('?') == std::string::npos ? '?' : '&';
  target += std::string(name) + "=" + encode_path_segment(value);
}

// `--from` and `--to`, checked while parsing and sent on in UTC.
const CLI::Validator kUsageTime(
    [](std::string& text) -> std::string {
      auto parsed = parse_usage_time(text);
      if (!parsed.is_ok()) return parsed.status().message();
      text = std::move(parsed).value();
      return {};
    },
    "DATE|RFC3339");

// An amount of dollars given on the command line, in the server's form
// ("100" -> "100.00"), so that the same amount is always the same body.
Result<std::string> dollars_argument(std::string_view name, const std::string& text, bool zero_allowed) {
  auto money = Money::parse(text);
  const bool in_range = money.is_ok() && (zero_allowed ? money->nanos() >= 0 : money->nanos() > 0);
  if (!in_range) {
    return Status::invalid_argument(std::string(name) + " '" + printable(text) + "' is not an amount of dollars " +
                                    (zero_allowed ? "of zero or more" : "above zero") +
                                    ", such as 100.00 (at most 9 decimals)");
  }
  return money->to_string();
}

void add_tenant_option(CLI::App& command, std::string& tenant) {
  command.add_option("--tenant", tenant, "Admin: another tenant's (ten_...), rather than your own");
}

void add_balance_command(CLI::App& app, int& exit_code, const Env& env) {
  auto tenant = std::make_shared<std::string>();
  add_api_command(app,
                  {.name = "balance",
                   .description = "Show your balance, what is held for running work, your credit and this month's "
                                  "spend against its budget",
                   .example = "headroom balance",
                   .add_arguments = [tenant](CLI::App& command) { add_tenant_option(command, *tenant); },
                   .make_call = [tenant]() -> Result<ApiCall> {
                     std::string target = "/v1/balance";
                     append_query(target, "tenant_id", *tenant);
                     return ApiCall{"GET", target, std::nullopt};
                   },
                   .shape = Shape::kRecord,
                   .render = render_balance},
                  exit_code, env);
}

struct UsageArgs {
  std::string from;  // RFC 3339 in UTC once parsed
  std::string to;
  std::string group_by;
  bool csv = false;
  std::string tenant;
};

Result<std::string> usage_target(const UsageArgs& args) {
  if (!args.from.empty() && !args.to.empty()) {
    auto from = parse_rfc3339(args.from);
    auto to = parse_rfc3339(args.to);
    if (from.is_ok() && to.is_ok() && *from > *to) {
      return Status::invalid_argument("--from " + args.from + " is after --to " + args.to);
    }
  }
  std::string target = "/v1/usage";
  append_query(target, "from", args.from);
  append_query(target, "to", args.to);
  append_query(target, "group_by", args.group_by);
  append_query(target, "tenant_id", args.tenant);
  return target;
}

}  // namespace

int print_csv(const std::string& target, const ClientFlags& flags, const ClientEnvironment& env) {
  std::unique_ptr<ApiSession> session;
  if (ExitCode code = ApiSession::open(flags, Auth::kRequired, env, session); code != ExitCode::kOk) {
    return static_cast<int>(code);
  }
  std::ostream& out = *env.out;
  auto print = [&out](std::string_view chunk) { out << chunk; };
  if (std::optional<ApiError> error = session->get_text(target, print, "text/csv")) {
    error->print(*env.err);
    return static_cast<int>(error->exit_code);
  }
  out.flush();
  return 0;
}

namespace {

int run_usage(const UsageArgs& args, const ClientFlags& flags, const ClientEnvironment& env) {
  if (!args.csv) {
    const ApiCommand usage{.make_call = [&args]() -> Result<ApiCall> {
                             HR_ASSIGN_OR_RETURN(std::string target, usage_target(args));
                             return ApiCall{"GET", target, std::nullopt};
                           },
                           .shape = Shape::kRecord,
                           .render = render_usage};
    return static_cast<int>(run_api_command(usage, flags, env));
  }
  auto target = usage_target(args);
  Status usage_ok = target.status();
  if (usage_ok.is_ok() && flags.output == "json") {
    usage_ok = Status::invalid_argument("--csv and --output json are two formats: give one of them");
  }
  if (!usage_ok.is_ok()) {
    *env.err << "error: " << usage_ok.message() << "\n";
    return static_cast<int>(ExitCode::kUsage);
  }
  return print_csv(*target, flags, env);
}

void add_usage_command(CLI::App& app, int& exit_code, const Env& env) {
  auto args = std::make_shared<UsageArgs>();
  add_custom_command(
      app,
      {.name = "usage",
       .description = "Show what you used and what it cost, by day, product, GPU type, model or job (default: this "
                      "month by day)",
       .example = "headroom usage --from 2026-11-01 --to 2026-12-01 --group-by gpu_type",
       .add_arguments =
           [args](CLI::App& command) {
             command
                 .add_option("--from", args->from,
                             "Start: a date (2026-11-01, midnight UTC) or an RFC 3339 time (default: the start of "
                             "this month, UTC)")
                 ->transform(kUsageTime);
             command.add_option("--to", args->to, "End, not included: a date or an RFC 3339 time (default: now)")
                 ->transform(kUsageTime);
             command
                 .add_option("--group-by", args->group_by, "One row per day (default), product, gpu_type, model or job")
                 ->check(CLI::IsMember(kGroupBy));
             command.add_flag("--csv", args->csv, "Print the server's CSV (Accept: text/csv), for a spreadsheet");
             add_tenant_option(command, args->tenant);
           },
       .run = [args](const ClientFlags& flags,
                     const ClientEnvironment& client) { return run_usage(*args, flags, client); }},
      exit_code, env);
}

struct InvoicesArgs {
  std::string id;  // empty: list them
  std::string tenant;
};

// Without an id the list, with one that invoice's statement: one call
// either way, printed by run_api_command.
int run_invoices(const InvoicesArgs& args, const ClientFlags& flags, const ClientEnvironment& env) {
  std::string target = "/v1/invoices";
  if (!args.id.empty()) target += "/" + encode_path_segment(args.id);
  append_query(target, "tenant_id", args.tenant);
  auto make_call = [call = ApiCall{"GET", target, std::nullopt}]() -> Result<ApiCall> { return call; };
  ApiCommand command{.make_call = make_call, .shape = Shape::kList, .columns = kInvoiceListColumns};
  if (!args.id.empty()) command = ApiCommand{.make_call = make_call, .shape = Shape::kRecord, .render = render_invoice};
  return static_cast<int>(run_api_command(command, flags, env));
}

void add_invoices_command(CLI::App& app, int& exit_code, const Env& env) {
  auto args = std::make_shared<InvoicesArgs>();
  add_custom_command(app,
                     {.name = "invoices",
                      .description = "List your invoices, one a month; with an id, show that invoice's statement",
                      .example = "headroom invoices inv_202611",
                      .add_arguments =
                          [args](CLI::App& command) {
                            command.add_option("id", args->id, "Invoice id (inv_...): show its statement");
                            add_tenant_option(command, args->tenant);
                          },
                      .run = [args](const ClientFlags& flags,
                                    const ClientEnvironment& client) { return run_invoices(*args, flags, client); }},
                     exit_code, env);
}

struct CreditArgs {
  std::string tenant;
  std::string amount;
  bool grant = false;
  std::string note;
  std::string idempotency_key;  // empty: a fresh random one
};

Result<json::object> make_credit_body(const CreditArgs& args) {
  HR_ASSIGN_OR_RETURN(std::string amount, dollars_argument("AMOUNT", args.amount, /*zero_allowed=*/false));
  HR_RETURN_IF_ERROR(check_idempotency_key(args.idempotency_key));
  json::object body{{"amount", amount}, {"kind", args.grant ? "grant" : "deposit"}};
  if (!args.note.empty()) body["note"] = args.note;
  return body;
}

int run_credits_add(const CreditArgs& args, const ClientFlags& flags, const ClientEnvironment& env) {
  std::ostream& err = *env.err;
  auto body = make_credit_body(args);
  if (!body.is_ok()) {
    err << "error: " << body.status().message() << "\n";
    return static_cast<int>(ExitCode::kUsage);
  }
  std::unique_ptr<ApiSession> session;
  if (ExitCode code = ApiSession::open(flags, Auth::kRequired, env, session); code != ExitCode::kOk) {
    return static_cast<int>(code);
  }
  const ApiCall call{"POST", "/v1/tenants/" + encode_path_segment(args.tenant) + "/credits",
                     json::value(std::move(body).value())};
  const std::string key = args.idempotency_key.empty() ? env.new_idempotency_key() : args.idempotency_key;
  ApiAnswer answer;
  // No Waiter until the credit must be sent again: Ctrl-C while it is on
  // its way ends the command at once, as it does for the other commands.
  if (std::optional<ApiError> error = call_with_idempotency_key(*session, call, key, "credit", env,
                                                                /*waiter=*/nullptr, answer)) {
    error->print(err);
    return static_cast<int>(error->exit_code);
  }
  // The credit is added by now: an answer without the balance is still a
  // success (exit 0), lest a script add the credit again with another key.
  const json::value* balance = find_path(answer.body, "balance");
  if (session->settings().output == OutputFormat::kJson) {
    *env.out << pretty_json(answer.body);
  } else if (balance != nullptr && balance->is_object()) {
    *env.out << render_balance(*balance);
  } else {
    *env.out << render_record(kCreditColumns, answer.body);
  }
  env.out->flush();
  const std::string id = text_at(answer.body, "id");
  if (answer.status == 200) {
    err << "note: a credit was added with Idempotency-Key " << key << " before: this is that credit, " << id
        << "; nothing more was added\n";
  } else {
    err << "added " << text_at(answer.body, "amount") << " (" << text_at(answer.body, "kind") << ") to "
        << printable(args.tenant) << " as " << id << "\n";
  }
  return 0;
}

void add_credits_add(CLI::App& credits, int& exit_code, const Env& env) {
  auto args = std::make_shared<CreditArgs>();
  add_custom_command(
      credits,
      {.name = "add",
       .description = "Add credit to a tenant's balance: a payment received (deposit) or a free grant (admin)",
       .example = "headroom credits add ten_k3v9x2m1q8d7r4t6p0za 100.00 --note \"invoice 2026-11 paid\"",
       .add_arguments =
           [args](CLI::App& command) {
             command.add_option("tenant", args->tenant, "Tenant id (ten_...)")->required();
             command.add_option("amount", args->amount, "Dollars to add, such as 100.00")->required();
             command.add_flag("--grant", args->grant, "A grant (free credit) rather than a deposit (money received)");
             command.add_option("--note", args->note, "Why, for the record");
             command.add_option("--idempotency-key", args->idempotency_key,
                                "Send this Idempotency-Key rather than a fresh one: the same key never adds twice");
           },
       .run = [args](const ClientFlags& flags,
                     const ClientEnvironment& client) { return run_credits_add(*args, flags, client); }},
      exit_code, env);
}

void add_credits_set(CLI::App& credits, int& exit_code, const Env& env) {
  struct SetArgs {
    std::string tenant;
    std::string credit_limit;
    std::string budget;
  };
  auto args = std::make_shared<SetArgs>();
  add_api_command(
      credits,
      {.name = "set",
       .description = "Set how far a tenant may go below zero (credit limit) and its monthly budget (admin)",
       .example = "headroom credits set ten_k3v9x2m1q8d7r4t6p0za --credit-limit 50.00 --budget 500.00",
       .add_arguments =
           [args](CLI::App& command) {
             command.add_option("tenant", args->tenant, "Tenant id (ten_...)")->required();
             command.add_option("--credit-limit", args->credit_limit, "Dollars the tenant may owe, such as 50.00");
             command.add_option("--budget", args->budget,
                                "Dollars a month, such as 500.00, with alerts as spend nears it; 0 removes it");
           },
       .make_call = [args]() -> Result<ApiCall> {
         if (args->credit_limit.empty() && args->budget.empty()) {
           return Status::invalid_argument("give --credit-limit, --budget or both");
         }
         json::object body;
         if (!args->credit_limit.empty()) {
           HR_ASSIGN_OR_RETURN(body["credit_limit"], dollars_argument("--credit-limit", args->credit_limit, true));
         }
         if (!args->budget.empty()) {
           HR_ASSIGN_OR_RETURN(body["monthly_budget"], dollars_argument("--budget", args->budget, true));
         }
         return ApiCall{"PUT", "/v1/tenants/" + encode_path_segment(args->tenant) + "/billing", std::move(body)};
       },
       .shape = Shape::kRecord,
       .render = render_balance},
      exit_code, env);
}

}  // namespace

Result<std::string> parse_usage_time(std::string_view text) {
  // A date alone is the one form with exactly ten characters.
  constexpr std::size_t kDateLength = 10;
  const bool date_only = text.size() == kDateLength;
  auto parsed = parse_rfc3339(date_only ? std::string(text) + "T00:00:00Z" : std::string(text));
  if (!parsed.is_ok()) {
    return Status::invalid_argument("'" + printable(text) +
                                    "' is neither a date such as 2026-11-01 nor an RFC 3339 time such as "
                                    "2026-11-01T00:00:00Z");
  }
  return to_rfc3339(*parsed);
}

ReadableQuantity readable_quantity(const json::value* quantity, const json::value* unit) {
  const std::string unit_text = cell_text(unit);
  const std::optional<std::int64_t> count = integer(quantity);
  if (count && unit_text == "gpu_ms") {
    const bool negative = *count < 0;
    const std::uint64_t ms = negative ? 0 - static_cast<std::uint64_t>(*count) : static_cast<std::uint64_t>(*count);
    constexpr auto kStep = static_cast<std::uint64_t>(kGpuMsPerThousandthHour);
    return {thousandths_text(negative, (ms + kStep / 2) / kStep), "GPU-hours"};
  }
  if (count && unit_text == "tokens") return {std::to_string(*count), "tokens"};
  return {cell_text(quantity), unit_text};
}

std::string render_balance(const json::value& balance) {
  json::value shown = balance;
  if (json::object* object = shown.if_object()) (*object)["month_spend"] = month_spend_text(balance);
  std::string text = render_record(kBalanceColumns, shown);
  const json::array& alerts = array_at(balance, "alerts");
  if (!alerts.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const json::value& alert : alerts) {
      const std::string percent = text_at(alert, "percent");
      rows.push_back({text_at(alert, "month"), percent == "-" ? percent : percent + "%", text_at(alert, "at"),
                      text_at(alert, "spend"), text_at(alert, "budget")});
    }
    text += "\nBUDGET ALERTS\n" + render_table(kAlertColumns, rows);
  }
  return text;
}

std::string render_usage(const json::value& usage) {
  std::vector<std::vector<std::string>> rows;
  // The events add up only while every row has a count, and it fits.
  std::int64_t events_total = 0;
  bool events_known = true;
  for (const json::value& row : array_at(usage, "data")) {
    const ReadableQuantity quantity = readable_quantity(find_path(row, "quantity"), find_path(row, "unit"));
    const std::optional<std::int64_t> events = integer(find_path(row, "events"));
    if (events && *events >= 0 && *events <= std::numeric_limits<std::int64_t>::max() - events_total) {
      events_total += *events;
    } else {
      events_known = false;
    }
    rows.push_back({text_at(row, "group"), text_at(row, "product"), quantity.amount, quantity.unit,
                    text_at(row, "events"), text_at(row, "cost")});
  }
  rows.push_back(
      {"total", "", "", "", events_known ? std::to_string(events_total) : "-", text_at(usage, "total_cost")});
  std::string text = render_table(kUsageColumns, rows);
  text += "from " + text_at(usage, "from") + " to " + text_at(usage, "to") + ", by " + text_at(usage, "group_by");
  return text + ", tenant " + text_at(usage, "tenant_id") + "\n";
}

std::string render_invoice(const json::value& invoice) {
  json::value shown = invoice;
  if (json::object* object = shown.if_object()) {
    (*object)["period"] = text_at(invoice, "period_start") + " to " + text_at(invoice, "period_end");
    const std::string currency = text_at(invoice, "currency");
    (*object)["total_with_currency"] = text_at(invoice, "total") + (currency == "-" ? "" : " " + currency);
  }
  std::string text = render_record(kInvoiceColumns, shown) + "\n";

  std::vector<std::vector<std::string>> lines;
  for (const json::value& line : array_at(invoice, "lines")) {
    const ReadableQuantity quantity = readable_quantity(find_path(line, "quantity"), find_path(line, "unit"));
    lines.push_back(
        {text_at(line, "description"), quantity.amount, quantity.unit, unit_price_text(line), text_at(line, "amount")});
  }
  text += render_table(kInvoiceLineColumns, lines);

  const json::array& adjustments = array_at(invoice, "adjustments");
  if (!adjustments.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const json::value& adjustment : adjustments) {
      rows.push_back({text_at(adjustment, "label"), text_at(adjustment, "amount")});
    }
    text += "\nADJUSTMENTS\n" + render_table(kAdjustmentColumns, rows);
  }

  text += "\n" + render_record(kInvoiceFooterColumns, shown);
  const json::value* reconciled = find_path(invoice, "reconciled");
  if (reconciled != nullptr && reconciled->is_bool() && !reconciled->get_bool()) {
    text += "warning: the server reports that the lines, adjustments and rounding do not add up to the total\n";
  }
  return text;
}

void add_billing_commands(CLI::App& app, int& exit_code, const Env& env) {
  add_balance_command(app, exit_code, env);
  add_usage_command(app, exit_code, env);
  add_invoices_command(app, exit_code, env);
  CLI::App* credits =
      add_command_group(app, "credits", "Add credit to a tenant, set its credit limit and budget (admin)",
                        "headroom credits add ten_k3v9x2m1q8d7r4t6p0za 100.00");
  add_credits_add(*credits, exit_code, env);
  add_credits_set(*credits, exit_code, env);
}

}  // namespace headroom::cli
