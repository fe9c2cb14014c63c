// `headroom balance`, `usage`, `invoices` and `credits` end to end through
// CLI11, against a fake server: each command's request (method, target,
// headers, body) and what it prints for a canned answer.
#include "cli/billing_commands.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "cli/cli_test_util.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;

using test::CliTest;
using test::RunResult;
using test::SentRequest;

class BillingCommandsTest : public CliTest {};

const char* kBalance = R"({"tenant_id":"ten_1","currency":"USD","balance":"120.00","held":"5.50",
  "credit_limit":"50.00","available":"164.50","owed":"0.00","state":"ok","month":"2026-11",
  "month_spend":"333.33","monthly_budget":"500.00",
  "alerts":[{"month":"2026-11","percent":50,"at":"2026-11-12T08:00:00Z","spend":"250.01","budget":"500.00"}]})";

const char* kBalanceText =
    "TENANT        ten_1\n"
    "CURRENCY      USD\n"
    "BALANCE       120.00\n"
    "HELD          5.50\n"
    "CREDIT LIMIT  50.00\n"
    "AVAILABLE     164.50\n"
    "OWED          0.00\n"
    "STATE         ok\n"
    "MONTH         2026-11\n"
    "MONTH SPEND   333.33 of 500.00 budget (66%)\n"
    "\n"
    "BUDGET ALERTS\n"
    "MONTH    REACHED  AT                     SPEND  BUDGET\n"
    "2026-11      50%  2026-11-12T08:00:00Z  250.01  500.00\n";

const char* kNoBudget = R"({"tenant_id":"ten_2","currency":"USD","balance":"-20.00","held":"0.00",
  "credit_limit":"20.00","available":"0.00","owed":"20.00","state":"exhausted","month":"2026-11",
  "month_spend":"20.00","monthly_budget":null,"alerts":[]})";

const char* kUsage = R"({"tenant_id":"ten_1","from":"2026-11-01T00:00:00Z","to":"2026-11-27T00:00:00Z",
  "group_by":"day","data":[
    {"group":"2026-11-25","product":"gpu_time","quantity":5400000,"unit":"gpu_ms","events":3,"cost":"3.00"},
    {"group":"2026-11-26","product":"gpu_time","quantity":1800,"unit":"gpu_ms","events":1,"cost":"0.001"},
    {"group":"2026-11-26","product":"tokens","quantity":1250000,"unit":"tokens","events":40,"cost":"0.0625"}],
  "total_cost":"3.0635"})";

const char* kInvoices = R"({"data":[
  {"id":"inv_202611","tenant_id":"ten_1","month":"2026-11","period_start":"2026-11-01T00:00:00Z",
   "period_end":"2026-12-01T00:00:00Z","status":"open","total":"12.34","currency":"USD"},
  {"id":"inv_202610","tenant_id":"ten_1","month":"2026-10","period_start":"2026-10-01T00:00:00Z",
   "period_end":"2026-11-01T00:00:00Z","status":"closed","total":"101.00","currency":"USD"}]})";

const char* kInvoice = R"({"id":"inv_202610","tenant_id":"ten_1","month":"2026-10",
  "period_start":"2026-10-01T00:00:00Z","period_end":"2026-11-01T00:00:00Z","status":"closed",
  "total":"101.00","currency":"USD",
  "lines":[
    {"description":"GPU time, h100 on-demand","product":"gpu_time","item":"h100","variant":"on-demand",
     "unit_price":"2.00","price_unit":"gpu_hour","quantity":180000000,"unit":"gpu_ms","charges":7,"amount":"100.00"},
    {"description":"Tokens, tiny-llama input","product":"tokens","item":"tiny-llama","variant":"input",
     "unit_price":"0.05","price_unit":"million_tokens","quantity":40000000,"unit":"tokens","charges":900,
     "amount":"2.000000004"}],
  "adjustments":[{"label":"welcome grant","amount":"-1.00"}],
  "rounding":"-0.000000004","reconciled":true})";

std::string credit_answer(std::string_view kind) {
  return std::string(R"({"id":"crd_1","tenant_id":"ten_1","amount":"100.00","kind":")") + std::string(kind) +
         R"(","note":null,"created_at":"2026-11-26T10:00:00Z","balance":)" + kBalance + "}";
}

// Every command here refuses these before sending anything.
void expect_usage_error(const RunResult& r, const std::string& message) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
}

TEST_F(BillingCommandsTest, BalanceShowsEachFieldThenTheAlerts) {
  server_.answer(200, kBalance);
  const RunResult r = run({"balance"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(server_.requests.size(), 1u);
  const SentRequest& sent = server_.requests[0];
  EXPECT_EQ(sent.method, "GET");
  EXPECT_EQ(sent.target, "/v1/balance");
  EXPECT_EQ(sent.body, "");
  EXPECT_EQ(sent.header("Accept"), "application/json");
  EXPECT_EQ(sent.header("Authorization"), "Bearer hr_testkey");
  EXPECT_EQ(r.out, kBalanceText);
  EXPECT_EQ(r.err, "");
}

TEST_F(BillingCommandsTest, BalanceOfAnotherTenantWithoutABudget) {
  server_.answer(200, kNoBudget);
  const RunResult r = run({"balance", "--tenant", "ten_2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).target, "/v1/balance?tenant_id=ten_2");
  EXPECT_EQ(r.out,
            "TENANT        ten_2\n"
            "CURRENCY      USD\n"
            "BALANCE       -20.00\n"
            "HELD          0.00\n"
            "CREDIT LIMIT  20.00\n"
            "AVAILABLE     0.00\n"
            "OWED          20.00\n"
            "STATE         exhausted\n"
            "MONTH         2026-11\n"
            "MONTH SPEND   20.00 (no budget)\n");
}

TEST_F(BillingCommandsTest, BalanceAsJsonIsTheServersAnswer) {
  expect_prints_answer_as_json({"balance", "-o", "json"}, kBalance);
}

TEST_F(BillingCommandsTest, MonthSpendAgainstItsBudget) {
  auto spend_line = [](std::string_view spend, std::string_view budget) {
    const std::string text = render_balance(json::parse(std::string(R"({"month_spend":")") + std::string(spend) +
                                                        R"(","monthly_budget":)" + std::string(budget) + "}"));
    const std::size_t at = text.find("MONTH SPEND   ");
    return at == std::string::npos ? text : text.substr(at + 14, text.find('\n', at) - at - 14);
  };
  EXPECT_EQ(spend_line("0.00", R"("500.00")"), "0.00 of 500.00 budget (0%)");
  EXPECT_EQ(spend_line("499.999999999", R"("500.00")"), "499.999999999 of 500.00 budget (99%)");
  EXPECT_EQ(spend_line("600.00", R"("500.00")"), "600.00 of 500.00 budget (120%)");
  // A budget of 0 is none; a huge one still gives a percent, rounded down.
  EXPECT_EQ(spend_line("5.00", R"("0.00")"), "5.00 (no budget)");
  EXPECT_EQ(spend_line("5000000000.00", R"("9000000000.00")"), "5000000000.00 of 9000000000.00 budget (55%)");
  // Far past the budget the percent would say nothing more.
  EXPECT_EQ(spend_line("9000000000.00", R"("0.000000001")"), "9000000000.00 of 0.000000001 budget");
  EXPECT_EQ(spend_line("oops", R"("500.00")"), "oops of 500.00 budget");
}

TEST_F(BillingCommandsTest, UsageTableWithTotal) {
  server_.answer(200, kUsage);
  const RunResult r = run({"usage"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).method, "GET");
  EXPECT_EQ(server_.requests.at(0).target, "/v1/usage");
  EXPECT_EQ(server_.requests.at(0).header("Accept"), "application/json");
  EXPECT_EQ(r.out,
            "GROUP       PRODUCT   QUANTITY  UNIT       EVENTS    COST\n"
            "2026-11-25  gpu_time     1.500  GPU-hours       3    3.00\n"
            "2026-11-26  gpu_time     0.001  GPU-hours       1   0.001\n"
            "2026-11-26  tokens     1250000  tokens         40  0.0625\n"
            "total                                          44  3.0635\n"
            "from 2026-11-01T00:00:00Z to 2026-11-27T00:00:00Z, by day, tenant ten_1\n");
}

TEST_F(BillingCommandsTest, UsageSendsDatesAsMidnightUtcAndTheOtherOptions) {
  server_.answer(200, kUsage);
  const RunResult r = run({"usage", "--from", "2026-11-01", "--to", "2026-11-26T12:00:00+01:00", "--group-by",
                           "gpu_type", "--tenant", "ten_1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).target,
            "/v1/usage?from=2026-11-01T00%3A00%3A00Z&to=2026-11-26T11%3A00%3A00Z&group_by=gpu_type&tenant_id=ten_1");
}

TEST_F(BillingCommandsTest, UsageAsJsonIsTheServersAnswer) {
  expect_prints_answer_as_json({"usage", "--group-by", "day", "-o", "json"}, kUsage);
  EXPECT_EQ(server_.requests.at(0).target, "/v1/usage?group_by=day");
}

TEST_F(BillingCommandsTest, UsageCsvAsksForCsvAndPrintsItAsItIs) {
  const std::string csv =
      "group,product,quantity,unit,events,cost\n"
      "2026-11-25,gpu_time,5400000,gpu_ms,3,3.00\n"
      "2026-11-26,tokens,1250000,tokens,40,0.0625\n";
  server_.answer(200, csv, {{"content-type", "text/csv"}});
  const RunResult r = run({"usage", "--csv", "--from", "2026-11-01", "--group-by", "product"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(server_.requests.size(), 1u);
  const SentRequest& sent = server_.requests[0];
  EXPECT_EQ(sent.method, "GET");
  EXPECT_EQ(sent.target, "/v1/usage?from=2026-11-01T00%3A00%3A00Z&group_by=product");
  EXPECT_EQ(sent.header("Accept"), "text/csv");
  EXPECT_EQ(sent.header("Authorization"), "Bearer hr_testkey");
  EXPECT_EQ(r.out, csv);
  EXPECT_EQ(r.err, "");
}

TEST_F(BillingCommandsTest, UsageErrorsShowTheServersMessage) {
  server_.answer(402,
                 R"({"error":{"code":"insufficient_funds","message":"the balance is spent","request_id":"req_1"}})");
  RunResult r = run({"usage"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "error: the balance is spent (insufficient_funds, HTTP 402, request req_1)\n");

  server_.answer(402,
                 R"({"error":{"code":"insufficient_funds","message":"the balance is spent","request_id":"req_2"}})");
  r = run({"usage", "--csv"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "error: the balance is spent (insufficient_funds, HTTP 402, request req_2)\n");

  server_.answer(404, R"({"error":{"code":"not_found","message":"no tenant ten_9"}})");
  r = run({"usage", "--csv", "--tenant", "ten_9"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.err, "error: no tenant ten_9 (not_found, HTTP 404)\n");

  server_.fail(Status::unavailable("cannot reach http://127.0.0.1:8080: Connection refused"));
  r = run({"usage", "--csv"});
  EXPECT_EQ(r.exit_code, 6);
  EXPECT_NE(r.err.find("hint: is `headroom serve` running"), std::string::npos) << r.err;
}

TEST_F(BillingCommandsTest, UsageRefusesBadArgumentsBeforeSending) {
  expect_usage_error(run({"usage", "--group-by", "week"}), "--group-by");
  expect_usage_error(run({"usage", "--from", "2026-13-01"}),
                     "'2026-13-01' is neither a date such as 2026-11-01 nor an RFC 3339 time");
  expect_usage_error(run({"usage", "--to", "yesterday"}), "'yesterday' is neither a date");
  expect_usage_error(run({"usage", "--from", "2026-11-26T10:00:00"}), "is neither a date");
  expect_usage_error(run({"usage", "--from", "2026-12-01", "--to", "2026-11-01"}),
                     "error: --from 2026-12-01T00:00:00Z is after --to 2026-11-01T00:00:00Z\n");
  expect_usage_error(run({"usage", "--csv", "--from", "2026-12-01", "--to", "2026-11-01"}), "is after --to");
  expect_usage_error(run({"usage", "--csv", "-o", "json"}),
                     "error: --csv and --output json are two formats: give one of them\n");
  EXPECT_TRUE(server_.requests.empty());
}

TEST_F(BillingCommandsTest, UsageTimes) {
  EXPECT_EQ(*parse_usage_time("2026-11-01"), "2026-11-01T00:00:00Z");
  EXPECT_EQ(*parse_usage_time("2028-02-29"), "2028-02-29T00:00:00Z");
  EXPECT_EQ(*parse_usage_time("2026-11-01T00:30:00+01:00"), "2026-10-31T23:30:00Z");
  EXPECT_EQ(*parse_usage_time("2026-11-01t10:00:00.5z"), "2026-11-01T10:00:00.500000Z");
  for (const char* bad :
       {"", "2026-02-29", "2026-1-01", "01/11/2026", "2026-11-01T", "2026-11-01 10:00:00Z", "2026-11-01Z", "now"}) {
    EXPECT_FALSE(parse_usage_time(bad).is_ok()) << bad;
  }
}

TEST_F(BillingCommandsTest, ReadableQuantities) {
  auto readable = [](std::string_view quantity, std::string_view unit) {
    const json::value q = json::parse(quantity);
    const json::value u = json::parse(unit);
    const ReadableQuantity r = readable_quantity(&q, &u);
    return r.amount + " " + r.unit;
  };
  EXPECT_EQ(readable("3600000", R"("gpu_ms")"), "1.000 GPU-hours");
  EXPECT_EQ(readable("0", R"("gpu_ms")"), "0.000 GPU-hours");
  EXPECT_EQ(readable("1799", R"("gpu_ms")"), "0.000 GPU-hours");  // under half a thousandth
  EXPECT_EQ(readable("1800", R"("gpu_ms")"), "0.001 GPU-hours");  // half rounds up
  EXPECT_EQ(readable("-5400000", R"("gpu_ms")"), "-1.500 GPU-hours");
  EXPECT_EQ(readable("9223372036854775807", R"("gpu_ms")"), "2562047788015.216 GPU-hours");
  EXPECT_EQ(readable("1000000", R"("tokens")"), "1000000 tokens");
  EXPECT_EQ(readable("12", R"("requests")"), "12 requests");
  EXPECT_EQ(readable("1.5", R"("gpu_ms")"), "1.5 gpu_ms");  // not an integer: as it came
  EXPECT_EQ(readable("18446744073709551615", R"("tokens")"), "18446744073709551615 tokens");
  const ReadableQuantity missing = readable_quantity(nullptr, nullptr);
  EXPECT_EQ(missing.amount + " " + missing.unit, "- -");
}

TEST_F(BillingCommandsTest, InvoicesList) {
  server_.answer(200, kInvoices);
  const RunResult r = run({"invoices"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).method, "GET");
  EXPECT_EQ(server_.requests.at(0).target, "/v1/invoices");
  EXPECT_EQ(r.out,
            "ID          MONTH    STATUS   TOTAL  CURRENCY  PERIOD START          PERIOD END\n"
            "inv_202611  2026-11  open     12.34  USD       2026-11-01T00:00:00Z  2026-12-01T00:00:00Z\n"
            "inv_202610  2026-10  closed  101.00  USD       2026-10-01T00:00:00Z  2026-11-01T00:00:00Z\n");

  server_.answer(200, kInvoices);
  const RunResult as_json = run({"invoices", "--tenant", "ten_1", "-o", "json"});
  EXPECT_EQ(as_json.exit_code, 0) << as_json.err;
  EXPECT_EQ(server_.requests.at(1).target, "/v1/invoices?tenant_id=ten_1");
  EXPECT_EQ(json::parse(as_json.out), json::parse(kInvoices));
}

TEST_F(BillingCommandsTest, InvoiceStatement) {
  server_.answer(200, kInvoice);
  const RunResult r = run({"invoices", "inv_202610", "--tenant", "ten_1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).target, "/v1/invoices/inv_202610?tenant_id=ten_1");
  EXPECT_EQ(r.out,
            "INVOICE  inv_202610\n"
            "TENANT   ten_1\n"
            "MONTH    2026-10\n"
            "PERIOD   2026-10-01T00:00:00Z to 2026-11-01T00:00:00Z\n"
            "STATUS   closed\n"
            "\n"
            "DESCRIPTION               QUANTITY  UNIT          UNIT PRICE       AMOUNT\n"
            "GPU time, h100 on-demand    50.000  GPU-hours  2.00/GPU-hour       100.00\n"
            "Tokens, tiny-llama input  40000000  tokens     0.05/M tokens  2.000000004\n"
            "\n"
            "ADJUSTMENTS\n"
            "LABEL          AMOUNT\n"
            "welcome grant   -1.00\n"
            "\n"
            "ROUNDING  -0.000000004\n"
            "TOTAL     101.00 USD\n");

  server_.answer(200, kInvoice);
  const RunResult as_json = run({"invoices", "inv_202610", "-o", "json"});
  EXPECT_EQ(server_.requests.at(1).target, "/v1/invoices/inv_202610");
  EXPECT_EQ(json::parse(as_json.out), json::parse(kInvoice));
}

TEST_F(BillingCommandsTest, InvoiceThatDoesNotAddUpSaysSo) {
  const std::string text = render_invoice(json::parse(
      R"({"id":"inv_1","total":"1.00","currency":"USD","lines":[],"adjustments":[],"rounding":"0.00",
          "reconciled":false})"));
  EXPECT_EQ(text.substr(text.find("ROUNDING")),
            "ROUNDING  0.00\n"
            "TOTAL     1.00 USD\n"
            "warning: the server reports that the lines, adjustments and rounding do not add up to the total\n");
  EXPECT_EQ(text.find("ADJUSTMENTS"), std::string::npos);
}

TEST_F(BillingCommandsTest, InvoiceNotFound) {
  server_.answer(404, R"({"error":{"code":"not_found","message":"no invoice inv_1999","request_id":"req_7"}})");
  const RunResult r = run({"invoices", "inv_1999"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "error: no invoice inv_1999 (not_found, HTTP 404, request req_7)\n");
  EXPECT_EQ(server_.requests.at(0).target, "/v1/invoices/inv_1999");
}

TEST_F(BillingCommandsTest, CreditsAddSendsADepositWithAFreshKey) {
  server_.answer(201, credit_answer("deposit"));
  const RunResult r = run({"credits", "add", "ten_1", "100"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(server_.requests.size(), 1u);
  const SentRequest& sent = server_.requests[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1/tenants/ten_1/credits");
  EXPECT_EQ(json::parse(sent.body), json::parse(R"({"amount":"100.00","kind":"deposit"})"));
  EXPECT_EQ(sent.header("Idempotency-Key"), "idem_fresh");
  EXPECT_EQ(sent.header("Authorization"), "Bearer hr_testkey");
  EXPECT_EQ(r.out, kBalanceText);
  EXPECT_EQ(r.err, "added 100.00 (deposit) to ten_1 as crd_1\n");
}

TEST_F(BillingCommandsTest, CreditsAddGrantWithANoteAndAKey) {
  server_.answer(201, credit_answer("grant"));
  const RunResult r = run({"credits", "add", "ten 1", "0.000000001", "--grant", "--note", "welcome, acme",
                           "--idempotency-key", "promo-ten_1", "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const SentRequest& sent = server_.requests.at(0);
  EXPECT_EQ(sent.target, "/v1/tenants/ten%201/credits");
  EXPECT_EQ(json::parse(sent.body), json::parse(R"({"amount":"0.000000001","kind":"grant","note":"welcome, acme"})"));
  EXPECT_EQ(sent.header("Idempotency-Key"), "promo-ten_1");
  EXPECT_EQ(json::parse(r.out), json::parse(credit_answer("grant")));
}

TEST_F(BillingCommandsTest, CreditsAddSendsOnceMoreWithTheSameKeyWhenTheServerCannotBeReached) {
  server_.fail(Status::unavailable("cannot reach http://127.0.0.1:8080: Connection reset"));
  server_.answer(201, credit_answer("deposit"));
  const RunResult r = run({"credits", "add", "ten_1", "100.00"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_NO_FATAL_FAILURE(expect_sent_twice_with_key("idem_fresh"));
  EXPECT_EQ(r.err.rfind("warning: cannot reach http://127.0.0.1:8080: Connection reset; sending the credit once "
                        "more, with the same Idempotency-Key\n",
                        0),
            0u)
      << r.err;
}

TEST_F(BillingCommandsTest, CreditsAddTriesTwiceAtMostAndNeverAfterARefusal) {
  server_.fail(Status::unavailable("cannot reach http://127.0.0.1:8080: Connection refused"));
  server_.fail(Status::unavailable("cannot reach http://127.0.0.1:8080: Connection refused"));
  EXPECT_EQ(run({"credits", "add", "ten_1", "1.00"}).exit_code, 6);
  EXPECT_EQ(server_.requests.size(), 2u);

  server_.answer(409, R"({"error":{"code":"conflict","message":"key used for another credit"}})");
  const RunResult r = run({"credits", "add", "ten_1", "1.00", "--idempotency-key", "k1"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.err, "error: key used for another credit (conflict, HTTP 409)\n");
  EXPECT_EQ(server_.requests.size(), 3u);

  server_.answer(404, R"({"error":{"code":"not_found","message":"no tenant ten_9"}})");
  EXPECT_EQ(run({"credits", "add", "ten_9", "1.00"}).exit_code, 4);
  EXPECT_EQ(server_.requests.size(), 4u);
}

TEST_F(BillingCommandsTest, CreditsAddSaysWhenTheKeyWasSeenBefore) {
  server_.answer(200, credit_answer("deposit"), {{"Idempotent-Replayed", "true"}});
  const RunResult r = run({"credits", "add", "ten_1", "100.00", "--idempotency-key", "k1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kBalanceText);
  EXPECT_EQ(r.err,
            "note: a credit was added with Idempotency-Key k1 before: this is that credit, crd_1; nothing more was "
            "added\n");
}

TEST_F(BillingCommandsTest, CreditsAddWithoutABalanceInTheAnswerStillSucceeds) {
  // The credit is added: exit 1 would invite a rerun, and a second credit.
  server_.answer(201, R"({"id":"crd_1","tenant_id":"ten_1","amount":"5.00","kind":"deposit","note":null,
                          "created_at":"2026-11-26T10:00:00Z"})");
  const RunResult r = run({"credits", "add", "ten_1", "5"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID       crd_1\n"
            "TENANT   ten_1\n"
            "AMOUNT   5.00\n"
            "KIND     deposit\n"
            "NOTE     -\n"
            "CREATED  2026-11-26T10:00:00Z\n");
  EXPECT_EQ(r.err, "added 5.00 (deposit) to ten_1 as crd_1\n");
}

TEST_F(BillingCommandsTest, CreditsAddRefusesBadArgumentsBeforeSending) {
  expect_usage_error(run({"credits", "add", "ten_1", "ten"}),
                     "error: AMOUNT 'ten' is not an amount of dollars above zero, such as 100.00");
  expect_usage_error(run({"credits", "add", "ten_1", "0.00"}), "above zero");
  expect_usage_error(run({"credits", "add", "ten_1", "1.0000000001"}), "at most 9 decimals");
  expect_usage_error(run({"credits", "add", "ten_1", "$5"}), "is not an amount of dollars");
  expect_usage_error(run({"credits", "add", "ten_1", "1,000.00"}), "is not an amount of dollars");
  expect_usage_error(run({"credits", "add", "ten_1", "--", "-5.00"}), "above zero");
  expect_usage_error(run({"credits", "add", "ten_1", "5.00", "--idempotency-key", "a b"}),
                     "error: --idempotency-key may hold printable ASCII only, without spaces\n");
  expect_usage_error(run({"credits", "add", "ten_1"}), "amount");
  expect_usage_error(run({"credits", "add"}), "tenant");
  expect_usage_error(run({"credits"}), "");
  EXPECT_TRUE(server_.requests.empty());
}

TEST_F(BillingCommandsTest, CreditsSet) {
  server_.answer(200, kBalance);
  const RunResult r = run({"credits", "set", "ten_1", "--credit-limit", "50", "--budget", "500.5"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const SentRequest& sent = server_.requests.at(0);
  EXPECT_EQ(sent.method, "PUT");
  EXPECT_EQ(sent.target, "/v1/tenants/ten_1/billing");
  EXPECT_EQ(json::parse(sent.body), json::parse(R"({"credit_limit":"50.00","monthly_budget":"500.50"})"));
  EXPECT_EQ(sent.header("Idempotency-Key"), "");
  EXPECT_EQ(r.out, kBalanceText);

  // Each option alone; a budget of 0 removes it.
  server_.answer(200, kNoBudget);
  EXPECT_EQ(run({"credits", "set", "ten_2", "--budget", "0"}).exit_code, 0);
  EXPECT_EQ(json::parse(server_.requests.at(1).body), json::parse(R"({"monthly_budget":"0.00"})"));
  server_.answer(200, kNoBudget);
  EXPECT_EQ(run({"credits", "set", "ten_2", "--credit-limit", "0.00", "-o", "json"}).exit_code, 0);
  EXPECT_EQ(json::parse(server_.requests.at(2).body), json::parse(R"({"credit_limit":"0.00"})"));

  server_.answer(403, R"({"error":{"code":"permission_denied","message":"admin only"}})");
  const RunResult denied = run({"credits", "set", "ten_1", "--budget", "10"});
  EXPECT_EQ(denied.exit_code, 3);
  EXPECT_EQ(denied.err.rfind("error: admin only (permission_denied, HTTP 403)\n", 0), 0u) << denied.err;
}

TEST_F(BillingCommandsTest, CreditsSetRefusesBadArgumentsBeforeSending) {
  expect_usage_error(run({"credits", "set", "ten_1"}), "error: give --credit-limit, --budget or both\n");
  expect_usage_error(run({"credits", "set", "ten_1", "--credit-limit", "lots"}),
                     "error: --credit-limit 'lots' is not an amount of dollars of zero or more, such as 100.00");
  expect_usage_error(run({"credits", "set", "ten_1", "--budget", "-1.00"}), "--budget '-1.00' is not an amount");
  expect_usage_error(run({"credits", "set", "--budget", "1.00"}), "tenant");
  EXPECT_TRUE(server_.requests.empty());
}

}  // namespace
}  // namespace headroom::cli
