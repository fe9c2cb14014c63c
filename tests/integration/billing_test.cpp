// The money end to end, over HTTP against a real `headroom serve`: credits,
// usage ingestion, reports and invoices, holds when jobs start, running out
// of money (402, spot jobs preempted), races for the last dollars, and a
// restart that rebuilds it all.
//
// Prices are picked for easy sums: t4 on-demand $3.60 per GPU-hour is $0.001
// per GPU-second; a run holds its first 100 s, $0.10 per GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "fleet_server.h"

namespace headroom::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

std::string now_text() {
  std::time_t t = std::time(nullptr);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return out;
}

class BillingTest : public FleetServerTest {
 protected:
  std::string config_toml() const override {
    std::ostringstream out;
    out << "[compute]\nspot_grace_s = 2\nusage_interval_s = 1\n"
        << "[compute.prices.t4]\non_demand = \"3.60\"\nspot = \"0.36\"\n"
        << "[billing]\njob_hold_window_s = 100\n"
        << "[billing.token_prices.tiny]\ninput = \"0.05\"\noutput = \"0.20\"\n"
        << "[[fleet.gpu_types]]\nname = \"t4\"\nmemory_gib = 16\n"
        << "[[fleet.nodes]]\nname = \"node-1\"\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\n"
        << "gpu_type = \"t4\"\ngpus = 8\n";
    return out.str();
  }

  // A new external tenant; its id, and a compute key in `key`.
  std::string tenant(std::string& key) {
    static int n = 0;
    Reply t =
        post("/v1/tenants", admin_,
             R"({"name":"billing-)" + std::to_string(getpid()) + "-" + std::to_string(++n) + R"(","kind":"external"})");
    EXPECT_EQ(t.status, 201) << t.body;
    std::string id(t.json().at("id").as_string());
    Reply k = post("/v1/tenants/" + id + "/keys", admin_, R"({"name":"k","scopes":["compute"]})");
    EXPECT_EQ(k.status, 201) << k.body;
    key = std::string(k.json().at("key").as_string());
    return id;
  }

  void credit(const std::string& tenant, std::string_view amount) {
    Reply r = post("/v1/tenants/" + tenant + "/credits", admin_, R"({"amount":")" + std::string(amount) + R"("})");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  json::object balance(const std::string& tenant) {
    Reply r = get("/v1/balance?tenant_id=" + tenant, admin_);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json().is_object() ? r.json().as_object() : json::object();
  }
  std::string field(const std::string& tenant, std::string_view name) {
    return std::string(balance(tenant).at(name).as_string());
  }
  // Polls the balance until `name` reads `value` (rating is asynchronous).
  bool wait_balance(const std::string& tenant, std::string_view name, std::string_view value, double timeout_s = 10) {
    auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
    while (Clock::now() < deadline) {
      if (field(tenant, name) == value) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << name << " never became " << value << ": " << json::serialize(balance(tenant));
    return false;
  }

  std::string gpu_event(const std::string& id, const std::string& tenant, std::int64_t ms,
                        std::string_view tier = "on-demand", std::string_view source = "meter") {
    return R"({"id":")" + id + R"(","tenant_id":")" + tenant + R"(","product":"gpu_time","gpu_type":"t4","tier":")" +
           std::string(tier) + R"(","quantity":)" + std::to_string(ms) + R"(,"start":")" + now_text() + R"(","end":")" +
           now_text() + R"(","source_id":")" + std::string(source) + R"("})";
  }

  json::object wait_job(const std::string& id, const std::string& key, std::string_view state, double timeout_s = 20) {
    auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
    json::object last;
    while (Clock::now() < deadline) {
      Reply r = get("/v1/jobs/" + id, key);
      if (r.status != 200) break;
      last = r.json().as_object();
      if (last.at("state").as_string() == state) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ADD_FAILURE() << "job " << id << " did not reach " << state << ": " << json::serialize(last);
    return last;
  }
};

TEST_F(BillingTest, CreditsAreIdempotentAndOnlyForAdmins) {
  std::string key;
  std::string t = tenant(key);
  net::HttpHeaders idem = {{"Idempotency-Key", "top-up-1"}};
  Reply first = post("/v1/tenants/" + t + "/credits", admin_, R"({"amount":"100.00","note":"welcome"})", idem);
  ASSERT_EQ(first.status, 201) << first.body;
  EXPECT_EQ(first.json().at("balance").at("balance").as_string(), "100.00");
  Reply again = post("/v1/tenants/" + t + "/credits", admin_, R"({"amount":"100.00","note":"welcome"})", idem);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(again.json().at("id"), first.json().at("id"));
  Reply other = post("/v1/tenants/" + t + "/credits", admin_, R"({"amount":"5.00"})", idem);
  EXPECT_EQ(other.status, 409) << other.body;
  EXPECT_EQ(field(t, "balance"), "100.00");

  // Mistakes name the field; a tenant cannot credit itself or read others.
  EXPECT_EQ(post("/v1/tenants/" + t + "/credits", admin_, R"({"amount":"-3"})").status, 400);
  EXPECT_EQ(post("/v1/tenants/" + t + "/credits", admin_, R"({"amount":"1","kind":"gift"})").status, 400);
  EXPECT_EQ(post("/v1/tenants/" + t + "/credits", admin_, R"({"amount":"0"})").status, 400);
  EXPECT_EQ(post("/v1/tenants/ten_nobody/credits", admin_, R"({"amount":"1"})").status, 404);
  EXPECT_EQ(post("/v1/tenants/" + t + "/credits", key, R"({"amount":"1"})").status, 403);
  Reply mine = get("/v1/balance", key);
  EXPECT_EQ(mine.status, 200);
  EXPECT_EQ(mine.json().at("tenant_id").as_string(), t);
  std::string other_key;
  std::string other_tenant = tenant(other_key);
  EXPECT_EQ(get("/v1/balance?tenant_id=" + t, other_key).status, 403);
  EXPECT_EQ(get("/v1/usage?tenant_id=" + t, other_key).status, 403);
  EXPECT_EQ(get("/v1/invoices?tenant_id=" + t, other_key).status, 403);
}

TEST_F(BillingTest, IngestedUsageIsRatedReportedAndInvoiced) {
  std::string key;
  std::string t = tenant(key);
  credit(t, "50.00");
  std::string batch = R"({"events":[)" + gpu_event("m-1", t, 3'600'000, "on-demand", "job_a") + "," +
                      gpu_event("m-2", t, 1'800'000, "spot", "job_b") + "," + R"({"id":"m-3","tenant_id":")" + t +
                      R"(","product":"tokens","model":"tiny","direction":"output","quantity":1000000,"start":")" +
                      now_text() + R"(","end":")" + now_text() + R"(","source_id":"req_1"}]})";
  Reply r = post("/v1/usage", admin_, batch);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().at("recorded").as_int64(), 3);
  EXPECT_EQ(r.json().at("data").at(0).at("cost").as_string(), "3.60");
  EXPECT_EQ(r.json().at("data").at(1).at("cost").as_string(), "0.18");
  EXPECT_EQ(r.json().at("data").at(2).at("cost").as_string(), "0.20");
  // The same batch again is a no-op; charged once.
  Reply retry = post("/v1/usage", admin_, batch);
  EXPECT_EQ(retry.status, 200);
  EXPECT_EQ(retry.json().at("recorded").as_int64(), 3);
  ASSERT_TRUE(wait_balance(t, "balance", "46.02"));
  EXPECT_EQ(field(t, "month_spend"), "3.98");

  // Same id, other content: rejected, and charged nothing.
  Reply conflict = post("/v1/usage", admin_, R"({"events":[)" + gpu_event("m-1", t, 5) + "]}");
  EXPECT_EQ(conflict.json().at("rejected").as_int64(), 1) << conflict.body;
  EXPECT_EQ(conflict.json().at("data").at(0).at("error").at("code").as_string(), "conflict");

  // A bad event refuses the whole batch, naming it; nothing of it is recorded.
  Reply bad = post("/v1/usage", admin_,
                   R"({"events":[)" + gpu_event("m-4", t, 5) + "," + gpu_event("m-5", t, 5, "platinum") + "]}");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("events[1]"), std::string::npos) << bad.body;
  EXPECT_NE(bad.body.find("no price"), std::string::npos) << bad.body;
  Reply unknown = post("/v1/usage", admin_, R"({"events":[)" + gpu_event("m-6", "ten_nobody", 5) + "]}");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("no tenant"), std::string::npos) << unknown.body;
  EXPECT_EQ(post("/v1/usage", admin_, R"({"events":[]})").status, 400);
  EXPECT_EQ(post("/v1/usage", admin_, R"({"events":[{"id":"x"}]})").status, 400);
  EXPECT_EQ(post("/v1/usage", key, R"({"events":[)" + gpu_event("m-7", t, 5) + "]}").status, 403);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(field(t, "balance"), "46.02");

  Reply by_job = get("/v1/usage?group_by=job", key);
  ASSERT_EQ(by_job.status, 200) << by_job.body;
  EXPECT_EQ(by_job.json().at("total_cost").as_string(), "3.98");
  ASSERT_EQ(by_job.json().at("data").as_array().size(), 3u) << by_job.body;
  EXPECT_EQ(by_job.json().at("data").at(0).at("group").as_string(), "job_a");
  Reply by_model = get("/v1/usage?group_by=model", key);
  ASSERT_EQ(by_model.json().at("data").as_array().size(), 1u) << by_model.body;
  EXPECT_EQ(by_model.json().at("data").at(0).at("quantity").as_int64(), 1'000'000);
  Reply csv = get("/v1/usage?group_by=gpu_type", key, {{"Accept", "text/csv"}});
  EXPECT_EQ(csv.status, 200);
  EXPECT_EQ(csv.header("Content-Type").substr(0, 8), "text/csv");
  EXPECT_EQ(csv.body, "group,product,quantity,unit,events,cost\nt4,gpu_time,5400000,gpu_ms,2,3.78\n");
  EXPECT_EQ(get("/v1/usage?group_by=week", key).status, 400);
  EXPECT_EQ(get("/v1/usage?from=yesterday", key).status, 400);
  EXPECT_EQ(get("/v1/usage?from=2030-01-01T00:00:00Z&to=2029-01-01T00:00:00Z", key).status, 400);

  Reply invoices = get("/v1/invoices", key);
  ASSERT_EQ(invoices.status, 200) << invoices.body;
  ASSERT_EQ(invoices.json().at("data").as_array().size(), 1u);
  std::string id(invoices.json().at("data").at(0).at("id").as_string());
  Reply invoice = get("/v1/invoices/" + id, key);
  ASSERT_EQ(invoice.status, 200) << invoice.body;
  EXPECT_EQ(invoice.json().at("total").as_string(), "3.98");
  EXPECT_TRUE(invoice.json().at("reconciled").as_bool());
  // Its lines add up to its total, to the cent.
  std::int64_t cents = 0;
  for (const auto& line : invoice.json().at("lines").as_array()) {
    std::string amount(line.at("amount").as_string());
    cents += std::llround(std::stod(amount) * 100);
  }
  EXPECT_EQ(cents, 398);
  EXPECT_EQ(invoice.json().at("lines").as_array().size(), 3u);
  EXPECT_EQ(get("/v1/invoices/inv_209901", key).status, 404);
  EXPECT_EQ(get("/v1/invoices/nonsense", key).status, 404);
}

TEST_F(BillingTest, ATenantWithoutMoneyGets402UntilItTopsUp) {
  std::string key;
  std::string t = tenant(key);
  Reply refused = post("/v1/jobs", key, R"({"gpus":1,"command":["true"]})");
  EXPECT_EQ(refused.status, 402) << refused.body;
  EXPECT_EQ(refused.error_code(), "insufficient_funds");
  EXPECT_NE(refused.body.find("/credits"), std::string::npos) << refused.body;
  EXPECT_EQ(
      post("/v1/jobs", key, R"({"gpus":1,"tier":"spot","max_price_per_gpu_hour":"1.00","command":["true"]})").status,
      402);
  credit(t, "1.00");
  Reply ok = post("/v1/jobs", key, R"({"gpus":1,"command":["true"]})");
  EXPECT_EQ(ok.status, 201) << ok.body;
}

TEST_F(BillingTest, RunsHoldTheirFirstWindowAndAreChargedForWhatTheyUse) {
  std::string key;
  std::string t = tenant(key);
  credit(t, "10.00");
  Reply r = post("/v1/jobs", key, R"({"gpus":2,"command":["sleep","30"]})");
  ASSERT_EQ(r.status, 201) << r.body;
  std::string job(r.json().at("id").as_string());
  wait_job(job, key, "running");
  EXPECT_EQ(field(t, "held"), "0.20");  // 2 GPUs x 100 s x $0.001
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  ASSERT_EQ(post("/v1/jobs/" + job + "/cancel", key, "").status, 200);
  wait_job(job, key, "cancelled");
  // What it used is charged (from the hold); the rest of the hold goes back.
  ASSERT_TRUE(wait_balance(t, "held", "0.00"));
  json::object b = balance(t);
  double spent = 10.0 - std::stod(std::string(b.at("balance").as_string()));
  EXPECT_GT(spent, 0.004) << json::serialize(b);  // at least 2 GPUs x 2 s
  EXPECT_LT(spent, 0.02) << json::serialize(b);
  EXPECT_EQ(b.at("available"), b.at("balance"));
  Reply usage = get("/v1/usage?group_by=job", key);
  ASSERT_EQ(usage.json().at("data").as_array().size(), 1u) << usage.body;
  EXPECT_EQ(usage.json().at("data").at(0).at("group").as_string(), job);
}

TEST_F(BillingTest, ManyJobsRacingForTheLastDollarsNeverOverdraw) {
  std::string key;
  std::string t = tenant(key);
  credit(t, "0.30");  // three holds of $0.10
  std::vector<std::string> ids(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      Reply r = call(server_->url(), "POST", "/v1/jobs", key, R"({"gpus":1,"command":["sleep","30"]})");
      if (r.status == 201) ids[i] = std::string(r.json().at("id").as_string());
    });
  }
  for (auto& th : threads) th.join();
  int running = 0, failed = 0;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    running = failed = 0;
    for (const std::string& id : ids) {
      if (id.empty()) continue;
      const Reply job = get("/v1/jobs/" + id, key);
      const std::string_view state = job.json().at("state").as_string();
      running += state == "running";
      failed += state == "failed";
    }
    if (running + failed == 8) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(running, 3);
  EXPECT_EQ(failed, 5);
  for (const std::string& id : ids) {
    json::object job = get("/v1/jobs/" + id, key).json().as_object();
    if (job.at("state") == "failed") {
      EXPECT_NE(std::string(job.at("message").as_string()).find("cannot cover this run's hold"), std::string::npos)
          << json::serialize(job);
    }
  }
  json::object b = balance(t);
  EXPECT_EQ(b.at("held").as_string(), "0.30") << json::serialize(b);
  EXPECT_EQ(b.at("available").as_string(), "0.00") << json::serialize(b);
}

TEST_F(BillingTest, SpentMoneyPreemptsSpotJobsWithNotice) {
  std::string key;
  std::string t = tenant(key);
  credit(t, "1.00");
  ASSERT_EQ(call(server_->url(), "PUT", "/v1/tenants/" + t + "/billing", admin_, R"({"monthly_budget":"1.50"})").status,
            200);
  Reply r =
      post("/v1/jobs", key, R"({"gpus":1,"tier":"spot","max_price_per_gpu_hour":"0.50","command":["sleep","60"]})");
  ASSERT_EQ(r.status, 201) << r.body;
  std::string job(r.json().at("id").as_string());
  wait_job(job, key, "running");
  // A meter reports $3.60 of usage: the balance is spent, $2.60 is owed.
  ASSERT_EQ(post("/v1/usage", admin_, R"({"events":[)" + gpu_event("big-1", t, 3'600'000) + "]}").status, 200);
  json::object notice = wait_job(job, key, "preempting", 10);
  EXPECT_EQ(notice.at("reason").as_string(), "budget_exhausted") << json::serialize(notice);
  wait_job(job, key, "preempted", 10);
  json::object b = balance(t);
  EXPECT_EQ(b.at("state").as_string(), "exhausted") << json::serialize(b);
  EXPECT_NE(b.at("owed").as_string(), "0.00");
  // The month's spend from the prepaid balance ($1.00 of a $1.50 budget) crossed 50%.
  ASSERT_EQ(b.at("alerts").as_array().size(), 1u) << json::serialize(b);
  EXPECT_EQ(b.at("alerts").at(0).at("percent").as_int64(), 50);
  EXPECT_EQ(post("/v1/jobs", key, R"({"gpus":1,"command":["true"]})").status, 402);
  // New money pays the debt first; then the tenant may run again.
  credit(t, "10.00");
  b = balance(t);
  EXPECT_EQ(b.at("owed").as_string(), "0.00") << json::serialize(b);
  EXPECT_EQ(b.at("state").as_string(), "ok");
  EXPECT_EQ(post("/v1/jobs", key, R"({"gpus":1,"command":["true"]})").status, 201);
}

TEST_F(BillingTest, ARestartKeepsEveryDollar) {
  std::string key;
  std::string t = tenant(key);
  credit(t, "20.00");
  const std::string event = R"({"events":[)" + gpu_event("r-1", t, 1'000'000) + "]}";
  ASSERT_EQ(post("/v1/usage", admin_, event).status, 200);
  ASSERT_TRUE(wait_balance(t, "balance", "19.00"));
  ASSERT_EQ(call(server_->url(), "PUT", "/v1/tenants/" + t + "/billing", admin_, R"({"credit_limit":"5.00"})").status,
            200);
  json::object before = balance(t);
  std::string usage_before = get("/v1/usage?group_by=product", key).body;
  std::string dir = server_->data_dir();
  ASSERT_TRUE(server_->stop(SIGKILL).has_value());
  server_.reset();
  start(dir);
  EXPECT_EQ(json::serialize(balance(t)), json::serialize(before));
  Reply after = get("/v1/usage?group_by=product", key);
  EXPECT_EQ(after.json().at("data"), json::parse(usage_before).at("data"));
  // The same event again after the restart is still a no-op.
  Reply again = post("/v1/usage", admin_, event);
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(again.json().at("recorded").as_int64(), 1) << again.body;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(field(t, "balance"), "19.00");
}

}  // namespace
}  // namespace headroom::testing
