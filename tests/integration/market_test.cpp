// The market end to end, over HTTP against a real `headroom serve`: the
// catalog (GET /v1/prices for everyone, versions added by the admin that
// take effect at their time and rate usage from then on) and the owner's
// economics (GET /v1/economics).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <set>
#include <unistd.h>
#include <thread>

#include "fleet_server.h"

namespace headroom::testing {
namespace {

namespace json = boost::json;

std::string_view text(const json::value& v) { return v.is_string() ? std::string_view(v.as_string()) : ""; }

std::string time_text(std::time_t t) {
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return out;
}

class MarketTest : public FleetServerTest {
 protected:
  // t4: a $3,000 GPU in service since 2020 with a 3-year life (fully
  // depreciated: its book value is its salvage); 70 W at PUE 1.5 and $0.20
  // per kWh is $0.021 per GPU-hour of power.
  std::string config_toml() const override {
    return "[compute.prices.t4]\non_demand = \"3.60\"\nreserved = \"2.40\"\nspot = \"0.36\"\n"
           "[market.economics.t4]\npurchase_price = \"3000\"\nin_service = \"2020-01-01T00:00:00Z\"\n"
           "useful_life_years = 3\nsalvage_value = \"300\"\npower_watts = 70\npue = \"1.5\"\n"
           "energy_price_per_kwh = \"0.20\"\nother_cost_per_gpu_hour = \"0.10\"\non_demand_floor = \"full_cost\"\n"
           "[[fleet.gpu_types]]\nname = \"t4\"\nmemory_gib = 16\n"
           "[[fleet.nodes]]\nname = \"node-1\"\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\n"
           "gpu_type = \"t4\"\ngpus = 8\n";
  }

  // A new external tenant's key with every scope but admin.
  std::string make_tenant_key() {
    static int n = 0;
    Reply t = post("/v1/tenants", admin_,
                   R"({"name":"market-)" + std::to_string(getpid()) + "-" + std::to_string(++n) +
                       R"(","kind":"external"})");
    EXPECT_EQ(t.status, 201) << t.body;
    Reply k = post("/v1/tenants/" + std::string(t.json().at("id").as_string()) + "/keys", admin_,
                   R"({"name":"k","scopes":["compute","inference"]})");
    EXPECT_EQ(k.status, 201) << k.body;
    return std::string(k.json().at("key").as_string());
  }

  // The price of `tier` for t4 in a GET /v1/prices answer's `list`, or "".
  static std::string t4_price(const json::value& answer, std::string_view list, std::string_view tier) {
    for (const auto& p : answer.at(list).as_array()) {
      if (text(p.at("product")) == "gpu_time" && text(p.at("gpu_type")) == "t4" && text(p.at("tier")) == tier) {
        return std::string(p.at("unit_price").as_string());
      }
    }
    return "";
  }
};

TEST_F(MarketTest, PricesArePublicVersionedAndRateUsageFromTheirTime) {
  Reply list = get("/v1/prices", "");
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(t4_price(list.json(), "data", "on-demand"), "3.60");
  EXPECT_EQ(t4_price(list.json(), "data", "reserved"), "2.40");
  EXPECT_EQ(list.json().at("scheduled").as_array().size(), 0u);

  auto change = [&](std::string_view entry, const std::string& key) {
    return post("/v1/prices", key, R"({"prices":[)" + std::string(entry) + "]}");
  };
  const std::time_t now = std::time(nullptr);
  const std::string soon = time_text(now + 2);
  const std::string price = R"({"product":"gpu_time","gpu_type":"t4","tier":"on-demand","unit_price":"7.20",)"
                            R"("effective_from":")" + soon + R"("})";
  // Only the admin changes prices; each mistake is named.
  EXPECT_EQ(change(price, make_tenant_key()).status, 403);
  struct Bad {
    std::string entry, says;
  };
  for (const Bad& bad : std::initializer_list<Bad>{
           {R"({"product":"gpu_time","gpu_type":"t4","tier":"gold","unit_price":"1"})", "prices[0].tier"},
           {R"({"product":"gpu_time","gpu_type":"a100","tier":"spot","unit_price":"1"})", "prices[0].gpu_type"},
           {R"({"product":"gpu_time","gpu_type":"t4","tier":"spot","unit_price":"cheap"})", "prices[0].unit_price"},
           {R"({"product":"gpu_time","gpu_type":"t4","tier":"spot","unit_price":"1","colour":"red"})", "colour"},
           {R"({"product":"tokens","model":"tiny","direction":"sideways","unit_price":"1"})", "prices[0]"},
           {R"({"product":"gpu_time","gpu_type":"t4","tier":"spot","unit_price":"1","effective_from":")" +
                time_text(now - 3600) + R"("})",
            "is past"},
           {R"({"product":"films","unit_price":"1"})", "prices[0].product"},
           // The owner's on-demand floor: full cost at 60% ($0.10 / 0.6 + $0.021).
           {R"({"product":"gpu_time","gpu_type":"t4","tier":"on-demand","unit_price":"0.10"})",
            "below the full_cost floor of 0.187666667"}}) {
    Reply r = change(bad.entry, admin_);
    EXPECT_EQ(r.status, 400) << bad.entry << " -> " << r.body;
    EXPECT_NE(r.body.find(bad.says), std::string::npos) << bad.entry << " -> " << r.body;
  }
  EXPECT_EQ(post("/v1/prices", admin_, R"({"prices":[]})").status, 400);

  Reply set = change(price, admin_);
  ASSERT_EQ(set.status, 201) << set.body;
  Reply later = get("/v1/prices", "");
  EXPECT_EQ(t4_price(later.json(), "data", "on-demand"), "3.60");
  EXPECT_EQ(t4_price(later.json(), "scheduled", "on-demand"), "7.20");
  EXPECT_EQ(t4_price(get("/v1/prices?at=" + time_text(now + 3600), "").json(), "data", "on-demand"), "7.20");
  EXPECT_EQ(get("/v1/prices?at=yesterday", "").status, 400);

  // Usage that starts after the change is rated at the new price: an hour
  // of one GPU costs $7.20, not $3.60.
  while (std::time(nullptr) <= now + 3) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Reply t = post("/v1/tenants", admin_, R"({"name":"market-buyer","kind":"external"})");
  ASSERT_EQ(t.status, 201) << t.body;
  const std::string id(t.json().at("id").as_string());
  const std::string began = time_text(std::time(nullptr));
  Reply usage = post("/v1/usage", admin_,
                     R"({"events":[{"id":"u-1","tenant_id":")" + id +
                         R"(","product":"gpu_time","gpu_type":"t4","tier":"on-demand","quantity":3600000,"start":")" +
                         began + R"(","end":")" + began + R"(","source_id":"meter"}]})");
  ASSERT_EQ(usage.status, 200) << usage.body;
  EXPECT_EQ(usage.json().at("data").at(0).at("cost").as_string(), "7.20") << usage.body;

  // The change survives a restart (the config's own price did not change).
  std::string dir = server_->data_dir();
  server_->stop(SIGTERM);
  start(dir);
  EXPECT_EQ(t4_price(get("/v1/prices", "").json(), "data", "on-demand"), "7.20");
}

TEST_F(MarketTest, OffersShowWhatCanBeHadNow) {
  EXPECT_EQ(get("/v1/offers", "").status, 401);
  Reply r = get("/v1/offers", make_tenant_key());
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value& t4 = r.json().at("data").at(0);
  EXPECT_EQ(text(t4.at("gpu_type")), "t4");
  EXPECT_EQ(text(t4.at("sites").at(0).at("site")), "s");
  EXPECT_EQ(t4.at("sites").at(0).at("available").as_int64(), 8);
  EXPECT_EQ(text(t4.at("on_demand").at("price_per_gpu_hour")), "3.60");
  EXPECT_EQ(t4.at("on_demand").at("available_now").as_int64(), 8);
  EXPECT_EQ(text(t4.at("reserved").at("price_per_gpu_hour")), "2.40");
  const auto& days = t4.at("reserved").at("reservable_by_day").as_array();
  ASSERT_EQ(days.size(), 14u);
  for (const auto& d : days) EXPECT_EQ(d.at("gpus").as_int64(), 8) << r.body;
  EXPECT_EQ(text(days.at(0).at("date")), time_text(std::time(nullptr)).substr(0, 10));
  // The spot floor: the economics' marginal cost (70 W x 1.5 x $0.20). With
  // no bids nobody loses, so the market's first clearing sets the price to it.
  EXPECT_EQ(text(t4.at("spot").at("floor_per_gpu_hour")), "0.021");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (t4_price(get("/v1/prices", "").json(), "data", "spot") != "0.021" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(t4_price(get("/v1/prices", "").json(), "data", "spot"), "0.021");

  CommandResult offers = run_headroom({"offers"}, {{"HEADROOM_URL", server_->url()}, {"HEADROOM_API_KEY", admin_}});
  EXPECT_EQ(offers.exit_code, 0) << offers.err;
  EXPECT_NE(offers.out.find("t4"), std::string::npos) << offers.out;
  CommandResult prices = run_headroom({"prices"}, {{"HEADROOM_URL", server_->url()}});
  EXPECT_EQ(prices.exit_code, 0) << prices.err;
  EXPECT_NE(prices.out.find("3.60"), std::string::npos) << prices.out;
}

TEST_F(MarketTest, EconomicsShowWhatAGpuIsWorthAndCosts) {
  EXPECT_EQ(get("/v1/economics", make_tenant_key()).status, 403);
  Reply r = get("/v1/economics", admin_);
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value& t4 = r.json().at("data").at(0);
  EXPECT_EQ(text(t4.at("gpu_type")), "t4");
  EXPECT_EQ(t4.at("gpus").as_int64(), 8);
  EXPECT_EQ(text(t4.at("book_value")), "300.00");  // past its life: the salvage value
  EXPECT_EQ(text(t4.at("depreciation_per_gpu_hour")), "0.00");
  // 70 W x 1.5 = 0.105 kW; x $0.20 = $0.021 per GPU-hour.
  EXPECT_EQ(text(t4.at("marginal_cost_per_gpu_hour")), "0.021");
  EXPECT_EQ(text(t4.at("spot_floor").at("policy")), "marginal");
  EXPECT_EQ(text(t4.at("spot_floor").at("price_per_gpu_hour")), "0.021");
  EXPECT_EQ(text(t4.at("on_demand_floor").at("price_per_gpu_hour")), "0.187666667");
  EXPECT_TRUE(t4.at("reserved_floor").is_null());
  // Nothing runs: utilization 0, so no full cost per sold hour.
  EXPECT_EQ(text(t4.at("utilization_percent")), "0.0");
  EXPECT_TRUE(t4.at("full_cost_per_gpu_hour").is_null());
  // At 60%: $0.10 / 0.6 + $0.021 = $0.187666... rounded up to the nano-dollar.
  EXPECT_EQ(text(t4.at("full_cost_per_gpu_hour_at_floor_utilization")), "0.187666667");
  // On-demand at $3.60 breaks even once 0.10 / u + 0.021 <= 3.60: u >= 2.794...%, so 2.8%.
  EXPECT_EQ(text(t4.at("list_prices").at("on-demand").at("break_even_utilization_percent")), "2.8");
  EXPECT_EQ(t4.at("schedule").as_array().size(), 3u);
  EXPECT_EQ(t4.at("schedule").at(0).at("depreciation"), "900.00");
}

TEST_F(MarketTest, ReportsReconcileWithTheLedger) {
  // Two tenants' metered GPU time two hours ago: A 1 GPU-hour on-demand
  // ($3.60) and half a GPU-hour of spot ($0.18); B 2 GPU-hours on-demand ($7.20).
  const std::time_t now = std::time(nullptr), hour = now - now % 3600, at = hour - 2 * 3600;
  std::vector<std::string> tenants;
  for (const char* name : {"report-a", "report-b"}) {
    Reply t = post("/v1/tenants", admin_, R"({"name":")" + std::string(name) + R"(","kind":"external"})");
    ASSERT_EQ(t.status, 201) << t.body;
    tenants.emplace_back(t.json().at("id").as_string());
  }
  auto event = [&](const std::string& id, const std::string& tenant, std::string_view tier, std::int64_t ms) {
    return R"({"id":")" + id + R"(","tenant_id":")" + tenant + R"(","product":"gpu_time","gpu_type":"t4","tier":")" +
           std::string(tier) + R"(","quantity":)" + std::to_string(ms) + R"(,"start":")" + time_text(at) +
           R"(","end":")" + time_text(at + 3600) + R"(","source_id":"meter"})";
  };
  Reply usage = post("/v1/usage", admin_,
                     R"({"events":[)" + event("r-1", tenants[0], "on-demand", 3'600'000) + "," +
                         event("r-2", tenants[0], "spot", 1'800'000) + "," +
                         event("r-3", tenants[1], "on-demand", 7'200'000) + "]}");
  ASSERT_EQ(usage.status, 200) << usage.body;
  const std::string range = "from=" + time_text(hour - 3 * 3600) + "&to=" + time_text(hour + 3600);

  // Revenue by tenant: each one's own usage total, and the ledger's revenue.
  Reply revenue;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    revenue = get("/v1/reports/revenue?group_by=tenant&" + range, admin_);
    if (revenue.status == 200 && text(revenue.json().at("total")) == "10.98") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(revenue.status, 200) << revenue.body;
  EXPECT_EQ(text(revenue.json().at("total")), "10.98") << revenue.body;
  std::map<std::string, std::string> by_tenant;
  for (const auto& row : revenue.json().at("data").as_array()) {
    by_tenant[std::string(text(row.at("group")))] = std::string(text(row.at("revenue")));
  }
  EXPECT_EQ(by_tenant[tenants[0]], "3.78");
  EXPECT_EQ(by_tenant[tenants[1]], "7.20");
  for (const std::string& t : tenants) {
    Reply own = get("/v1/usage?tenant_id=" + t + "&" + range, admin_);
    EXPECT_EQ(text(own.json().at("total_cost")), by_tenant[t]) << own.body;
  }
  EXPECT_TRUE(revenue.json().at("reconciliation").at("reconciled").as_bool()) << revenue.body;
  EXPECT_EQ(text(revenue.json().at("reconciliation").at("ledger_revenue")),
            text(revenue.json().at("reconciliation").at("rated_charges")));
  Reply by_tier = get("/v1/reports/revenue?group_by=tier&" + range, admin_);
  ASSERT_EQ(by_tier.status, 200) << by_tier.body;
  EXPECT_EQ(text(by_tier.json().at("total")), "10.98");

  // Utilization by hour: 3 on-demand and 0.5 spot GPU-hours of 8 in that hour.
  Reply utilization = get("/v1/reports/utilization?bucket=hour&" + range, admin_);
  ASSERT_EQ(utilization.status, 200) << utilization.body;
  bool found = false;
  for (const auto& row : utilization.json().at("data").as_array()) {
    if (text(row.at("bucket")) != time_text(at)) continue;
    found = true;
    EXPECT_EQ(text(row.at("on_demand_gpu_hours")), "3.000");
    EXPECT_EQ(text(row.at("spot_gpu_hours")), "0.500");
    EXPECT_EQ(text(row.at("idle_gpu_hours")), "4.500");
    EXPECT_EQ(text(row.at("utilization_percent")), "43.7");  // 3.5 / 8
  }
  EXPECT_TRUE(found) << utilization.body;
  EXPECT_EQ(get("/v1/reports/utilization?bucket=week", admin_).status, 400);

  // Margin over the 4 hours: $10.98 of revenue; the GPUs are fully
  // depreciated; power $0.021 x 3.5 GPU-hours = $0.0735; other cost $0.10 x
  // 8 GPUs x 4 h = $3.20.
  Reply margin = get("/v1/reports/margin?" + range, admin_);
  ASSERT_EQ(margin.status, 200) << margin.body;
  const json::value& t4 = margin.json().at("data").at(0);
  EXPECT_EQ(text(t4.at("revenue")), "10.98");
  EXPECT_EQ(text(t4.at("depreciation")), "0.00");
  EXPECT_EQ(text(t4.at("power")), "0.0735");
  EXPECT_EQ(text(t4.at("other_operating")), "3.20");
  EXPECT_EQ(text(t4.at("margin")), "7.7065");

  // Payback: 8 GPUs of $3,000, at their $300 salvage now.
  Reply payback = get("/v1/reports/payback", admin_);
  ASSERT_EQ(payback.status, 200) << payback.body;
  EXPECT_EQ(text(payback.json().at("data").at(0).at("capital")), "24000.00");
  EXPECT_EQ(text(payback.json().at("data").at(0).at("book_value")), "2400.00");
  EXPECT_EQ(text(payback.json().at("data").at(0).at("depreciation_to_date")), "21600.00");

  // CSV, and only for the admin.
  Reply csv = call(server_->url(), "GET", "/v1/reports/revenue?group_by=tenant&" + range, admin_, {},
                   {{"Accept", "text/csv"}});
  ASSERT_EQ(csv.status, 200) << csv.body;
  EXPECT_EQ(csv.body.substr(0, csv.body.find('\n')), "group,product,quantity,unit,revenue");
  EXPECT_NE(csv.body.find(tenants[1] + ",gpu_time,7200000,gpu_ms,7.20"), std::string::npos) << csv.body;
  EXPECT_EQ(get("/v1/reports/revenue", make_tenant_key()).status, 403);

  // The same through the CLI.
  const std::map<std::string, std::string> env{{"HEADROOM_URL", server_->url()}, {"HEADROOM_API_KEY", admin_}};
  CommandResult cli = run_headroom({"report", "revenue", "--group-by", "tenant", "--from", time_text(hour - 3 * 3600),
                                    "--to", time_text(hour + 3600)},
                                   env);
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("Total: 10.98"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("Reconciled with the ledger."), std::string::npos) << cli.out;
  CommandResult csv_cli = run_headroom({"report", "payback", "--csv"}, env);
  EXPECT_EQ(csv_cli.exit_code, 0) << csv_cli.err;
  EXPECT_EQ(csv_cli.out.rfind("gpu_type,gpus,in_service,capital", 0), 0u) << csv_cli.out;
}

// The spot market clearing every second on two t4 GPUs (floor: the list
// spot price, $0.36), with a second of notice.
class SpotMarketTest : public MarketTest {
 protected:
  std::string config_toml() const override {
    return "[compute]\nspot_grace_s = 1\nusage_interval_s = 1\n"
           "[compute.prices.t4]\nspot = \"0.36\"\n"
           "[market]\nclearing_interval_s = 1\n"
           "[[fleet.gpu_types]]\nname = \"t4\"\nmemory_gib = 16\n"
           "[[fleet.nodes]]\nname = \"node-1\"\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\n"
           "gpu_type = \"t4\"\ngpus = 2\n";
  }

  json::object wait_job(const std::string& id, const std::string& key, std::string_view state) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    json::object last;
    while (std::chrono::steady_clock::now() < deadline) {
      Reply r = get("/v1/jobs/" + id, key);
      if (r.status != 200) break;
      last = r.json().as_object();
      if (text(last.at("state")) == state) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ADD_FAILURE() << "job " << id << " did not reach " << state << ": " << json::serialize(last);
    return last;
  }
};

TEST_F(SpotMarketTest, AHigherBidTakesTheGpusAndEveryWinnerPaysTheClearingPrice) {
  Reply t = post("/v1/tenants", admin_, R"({"name":"spot-buyer","kind":"external"})");
  ASSERT_EQ(t.status, 201) << t.body;
  const std::string tenant(t.json().at("id").as_string());
  Reply k = post("/v1/tenants/" + tenant + "/keys", admin_, R"({"name":"k","scopes":["compute"]})");
  ASSERT_EQ(k.status, 201) << k.body;
  const std::string key(k.json().at("key").as_string());
  ASSERT_EQ(post("/v1/tenants/" + tenant + "/credits", admin_, R"({"amount":"100.00"})").status, 201);

  // Below the floor: refused at once, naming the floor.
  Reply low = post("/v1/jobs", key, R"({"gpus":1,"tier":"spot","max_price_per_gpu_hour":"0.10","command":["true"]})");
  EXPECT_EQ(low.status, 400) << low.body;
  EXPECT_NE(low.body.find("0.36"), std::string::npos) << low.body;

  auto spot = [&](std::string_view bid) {
    Reply r = post("/v1/jobs", key,
                   R"({"gpus":1,"tier":"spot","max_price_per_gpu_hour":")" + std::string(bid) +
                       R"(","command":["sleep","60"]})");
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? std::string(r.json().at("id").as_string()) : std::string();
  };
  const std::string job_a = spot("1.00"), job_a2 = spot("1.50");
  wait_job(job_a, key, "running");
  wait_job(job_a2, key, "running");
  // A higher bid: at the next clearing it and job_a2 win the 2 GPUs; job_a,
  // the highest loser, gets notice and is killed after the grace.
  const std::string job_b = spot("2.00");
  json::object outbid = wait_job(job_a, key, "preempted");
  bool noticed = false;
  for (const auto& h : outbid.at("history").as_array()) noticed |= text(h.at("reason")) == "outbid";
  EXPECT_TRUE(noticed) << json::serialize(outbid);
  wait_job(job_b, key, "running");
  // A low bid stays queued and loses every clearing: its bid is the price
  // the two winners pay.
  const std::string job_c = spot("0.50");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (t4_price(get("/v1/prices", "").json(), "data", "spot") != "0.50" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(t4_price(get("/v1/prices", "").json(), "data", "spot"), "0.50");
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  EXPECT_EQ(text(get("/v1/jobs/" + job_c, key).json().at("state")), "queued");

  // What the offers show a tenant now: both GPUs sold as spot at $0.50.
  Reply offers = get("/v1/offers", key);
  ASSERT_EQ(offers.status, 200) << offers.body;
  const json::value& t4 = offers.json().at("data").at(0);
  EXPECT_EQ(text(t4.at("gpu_type")), "t4");
  EXPECT_EQ(t4.at("gpus").as_int64(), 2);
  EXPECT_EQ(t4.at("sites").at(0).at("available").as_int64(), 0) << offers.body;
  EXPECT_EQ(text(t4.at("spot").at("price_per_gpu_hour")), "0.50");
  EXPECT_EQ(text(t4.at("spot").at("floor_per_gpu_hour")), "0.36");
  EXPECT_EQ(t4.at("spot").at("supply_now").as_int64(), 2);
  std::vector<std::string> history;
  for (const auto& h : t4.at("spot").at("history_24h").as_array()) {
    history.emplace_back(text(h.at("price_per_gpu_hour")));
  }
  // The list price in force a day ago, then each clearing price since (the
  // clearings between them that changed nothing added no version).
  ASSERT_GE(history.size(), 3u) << offers.body;
  EXPECT_EQ(history.front(), "0.36");
  EXPECT_EQ(history.back(), "0.50");
  EXPECT_NE(std::find(history.begin(), history.end(), "1.00"), history.end()) << offers.body;
  EXPECT_EQ(t4.at("on_demand").at("available_now").as_int64(), 0);
  EXPECT_EQ(t4.at("reserved").at("reservable_by_day").as_array().size(), 14u);
  for (const std::string& job : {job_a2, job_b, job_c}) {
    ASSERT_EQ(post("/v1/jobs/" + job + "/cancel", key, "").status, 200);
  }
  wait_job(job_b, key, "cancelled");
  wait_job(job_a2, key, "cancelled");
  // The winners paid the clearing price, never their bids. (Rating is
  // asynchronous: wait for the last run's charge to reach the invoice.)
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Reply invoices = get("/v1/invoices", key);
  ASSERT_EQ(invoices.status, 200) << invoices.body;
  const std::string invoice(invoices.json().at("data").at(0).at("id").as_string());
  Reply lines = get("/v1/invoices/" + invoice, key);
  ASSERT_EQ(lines.status, 200) << lines.body;
  std::set<std::string> prices;
  for (const auto& line : lines.json().at("lines").as_array()) prices.insert(std::string(text(line.at("unit_price"))));
  EXPECT_TRUE(prices.contains("0.50")) << lines.body;
  EXPECT_FALSE(prices.contains("1.50")) << lines.body;
  EXPECT_FALSE(prices.contains("2.00")) << lines.body;
}

// Capacity blocks on eight t4 GPUs at $3.60 per GPU-hour reserved, with the
// owner's internal demand of 4 GPUs declared from 48 to 72 hours from now.
class BlockTest : public MarketTest {
 protected:
  std::string config_toml() const override {
    const std::time_t now = std::time(nullptr);
    return "[compute.prices.t4]\nreserved = \"3.60\"\n"
           "[[market.internal_forecast]]\ngpu_type = \"t4\"\ngpus = 4\nfrom = \"" +
           time_text(now + 48 * 3600) + "\"\nto = \"" + time_text(now + 72 * 3600) +
           "\"\n"
           "[[fleet.gpu_types]]\nname = \"t4\"\nmemory_gib = 16\n"
           "[[fleet.nodes]]\nname = \"node-1\"\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\n"
           "gpu_type = \"t4\"\ngpus = 8\n";
  }

  // A new tenant with $1,000 and a compute key: {tenant id, key}.
  std::pair<std::string, std::string> buyer() {
    static int n = 0;
    Reply t = post("/v1/tenants", admin_, R"({"name":"block-)" + std::to_string(++n) + R"(","kind":"external"})");
    EXPECT_EQ(t.status, 201) << t.body;
    const std::string id(t.json().at("id").as_string());
    Reply k = post("/v1/tenants/" + id + "/keys", admin_, R"({"name":"k","scopes":["compute"]})");
    EXPECT_EQ(k.status, 201) << k.body;
    EXPECT_EQ(post("/v1/tenants/" + id + "/credits", admin_, R"({"amount":"1000.00"})").status, 201);
    return {id, std::string(k.json().at("key").as_string())};
  }
  Reply quote(const std::string& key, std::uint32_t gpus, std::time_t start, std::time_t end) {
    return post("/v1/reservations/quote", key,
                R"({"gpu_type":"t4","gpus":)" + std::to_string(gpus) + R"(,"start":")" + time_text(start) +
                    R"(","end":")" + time_text(end) + R"("})");
  }
  std::string balance(const std::string& tenant, std::string_view field) {
    Reply r = get("/v1/balance?tenant_id=" + tenant, admin_);
    return r.status == 200 ? std::string(text(r.json().at(field))) : "";
  }
  bool wait_balance(const std::string& tenant, std::string_view field, std::string_view value) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (balance(tenant, field) == value) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ADD_FAILURE() << field << " never became " << value << ": " << balance(tenant, field);
    return false;
  }
  static std::time_t hour_of(std::time_t t) { return t - t % 3600; }
};

TEST_F(BlockTest, QuoteBookAndCancelByTheRules) {
  auto [tenant, key] = buyer();
  const std::time_t day = hour_of(std::time(nullptr)) + 30 * 3600;
  // 2 GPUs for 2 hours (the start snaps down, the end up) at $3.60: $14.40.
  Reply q = quote(key, 2, day + 600, day + 2 * 3600 - 600);
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_EQ(text(q.json().at("start")), time_text(day));
  EXPECT_EQ(text(q.json().at("end")), time_text(day + 2 * 3600));
  EXPECT_EQ(q.json().at("available").as_int64(), 8);
  EXPECT_EQ(text(q.json().at("price_per_gpu_hour")), "3.60");
  EXPECT_EQ(text(q.json().at("price")), "14.40");

  // The owner's forecast is never sold: 4 of 8 are free from 48 h on.
  const std::time_t forecast = hour_of(std::time(nullptr)) + 50 * 3600;
  Reply busy = quote(key, 5, forecast, forecast + 3600);
  EXPECT_EQ(busy.status, 409) << busy.body;
  EXPECT_NE(busy.body.find("only 4 t4 GPUs"), std::string::npos) << busy.body;
  EXPECT_EQ(quote(key, 4, forecast, forecast + 3600).status, 200);

  // Bad quotes are named.
  for (const auto& [body, says] : std::initializer_list<std::pair<std::string, std::string>>{
           {R"({"gpu_type":"t4","gpus":0,"start":"2030-01-01T00:00:00Z","end":"2030-01-01T01:00:00Z"})", "gpus"},
           {R"({"gpu_type":"a100","gpus":1,"start":")" + time_text(day) + R"(","end":")" + time_text(day + 3600) +
                R"("})",
            "gpu_type"},
           {R"({"gpu_type":"t4","gpus":1,"start":")" + time_text(day) + R"(","end":")" + time_text(day - 3600) +
                R"("})",
            "end"},
           {R"({"gpu_type":"t4","gpus":1,"start":")" + time_text(day) + R"("})", "end"},
           {R"({"gpu_type":"t4","gpus":1,"start":")" + time_text(day) + R"(","end":")" +
                time_text(day + 400LL * 86400) + R"("})",
            "end"}}) {
    Reply r = post("/v1/reservations/quote", key, body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_NE(r.body.find(says), std::string::npos) << body << " -> " << r.body;
  }

  // Booking holds the price; the quote is used up; nobody else may book it.
  auto [other, other_key] = buyer();
  const std::string quote_id(q.json().at("quote_id").as_string());
  EXPECT_EQ(post("/v1/reservations", other_key, R"({"quote_id":")" + quote_id + R"("})").status, 404);
  Reply booked = post("/v1/reservations", key, R"({"quote_id":")" + quote_id + R"("})");
  ASSERT_EQ(booked.status, 201) << booked.body;
  const std::string reservation(booked.json().at("id").as_string());
  EXPECT_EQ(text(booked.json().at("tenant_id")), tenant);
  EXPECT_EQ(balance(tenant, "held"), "14.40");
  // The block's locked price is not a list price anyone can read.
  EXPECT_EQ(get("/v1/prices", "").body.find(reservation), std::string::npos);
  EXPECT_EQ(post("/v1/reservations", key, R"({"quote_id":")" + quote_id + R"("})").status, 404);
  EXPECT_EQ(post("/v1/reservations", key, R"({"quote_id":"quo_nope"})").status, 404);
  // A tenant books by quote only.
  EXPECT_EQ(post("/v1/reservations", key,
                 R"({"tenant_id":")" + tenant + R"(","gpu_type":"t4","gpus":1,"start":")" + time_text(day) +
                     R"(","end":")" + time_text(day + 3600) + R"("})")
                .status,
            403);
  // The calendar counts it: 6 left for that window.
  EXPECT_EQ(quote(key, 1, day, day + 3600).json().at("available").as_int64(), 6);
  EXPECT_EQ(call(server_->url(), "DELETE", "/v1/reservations/" + reservation, other_key).status, 404);

  // 30 hours ahead: cancelling is free, and the GPUs come back.
  Reply cancelled = call(server_->url(), "DELETE", "/v1/reservations/" + reservation, key);
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_TRUE(wait_balance(tenant, "held", "0.00"));
  EXPECT_EQ(balance(tenant, "balance"), "1000.00");
  EXPECT_EQ(quote(key, 1, day, day + 3600).json().at("available").as_int64(), 8);

  // Within 24 hours of the start: a quarter of the price ($14.40 / 4).
  const std::time_t soon = hour_of(std::time(nullptr)) + 3 * 3600;
  Reply late = quote(key, 2, soon, soon + 2 * 3600);
  ASSERT_EQ(late.status, 200) << late.body;
  Reply late_booked = post("/v1/reservations", key, R"({"quote_id":")" + std::string(late.json().at("quote_id").as_string()) + R"("})");
  ASSERT_EQ(late_booked.status, 201) << late_booked.body;
  ASSERT_EQ(call(server_->url(), "DELETE", "/v1/reservations/" + std::string(late_booked.json().at("id").as_string()), key)
                .status,
            200);
  EXPECT_TRUE(wait_balance(tenant, "balance", "996.40"));
  EXPECT_TRUE(wait_balance(tenant, "held", "0.00"));
}

TEST_F(BlockTest, TwoTenantsRacingForTheLastGpusNeverBothGetThem) {
  const std::time_t start = hour_of(std::time(nullptr)) + 10 * 3600;
  for (int round = 0; round < 5; ++round) {
    auto [a, a_key] = buyer();
    auto [b, b_key] = buyer();
    const std::time_t from = start + round * 3600;
    Reply qa = quote(a_key, 8, from, from + 3600), qb = quote(b_key, 8, from, from + 3600);
    ASSERT_EQ(qa.status, 200) << qa.body;
    ASSERT_EQ(qb.status, 200) << qb.body;
    int statuses[2] = {0, 0};
    std::thread ta([&] {
      statuses[0] = post("/v1/reservations", a_key, R"({"quote_id":")" + std::string(qa.json().at("quote_id").as_string()) + R"("})").status;
    });
    std::thread tb([&] {
      statuses[1] = post("/v1/reservations", b_key, R"({"quote_id":")" + std::string(qb.json().at("quote_id").as_string()) + R"("})").status;
    });
    ta.join();
    tb.join();
    EXPECT_EQ(std::min(statuses[0], statuses[1]), 201) << statuses[0] << " " << statuses[1];
    EXPECT_EQ(std::max(statuses[0], statuses[1]), 409) << statuses[0] << " " << statuses[1];
    // Only the winner's money is held.
    EXPECT_EQ(balance(statuses[0] == 201 ? b : a, "held"), "0.00");
  }
}

TEST_F(BlockTest, ABlockUnderWayIsChargedForTheHoursBegunAndItsJobsAreNotChargedTwice) {
  auto [tenant, key] = buyer();
  const std::time_t now = std::time(nullptr);
  Reply q = quote(key, 1, now, hour_of(now) + 3600);  // the rest of this hour
  ASSERT_EQ(q.status, 200) << q.body;
  Reply booked = post("/v1/reservations", key, R"({"quote_id":")" + std::string(q.json().at("quote_id").as_string()) + R"("})");
  ASSERT_EQ(booked.status, 201) << booked.body;
  const std::string reservation(booked.json().at("id").as_string());
  Reply job = post("/v1/jobs", key,
                   R"({"gpus":1,"tier":"reserved","reservation_id":")" + reservation + R"(","command":["true"]})");
  ASSERT_EQ(job.status, 201) << job.body;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (text(get("/v1/jobs/" + std::string(job.json().at("id").as_string()), key).json().at("state")) != "succeeded" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_EQ(call(server_->url(), "DELETE", "/v1/reservations/" + reservation, key).status, 200);
  EXPECT_TRUE(wait_balance(tenant, "held", "0.00"));
  // The hour begun is charged from the booking, at most $3.60; the job adds nothing.
  const double spent = 1000.0 - std::stod(balance(tenant, "balance"));
  EXPECT_GT(spent, 0.0);
  EXPECT_LE(spent, 3.60);
  Reply usage = get("/v1/usage?group_by=job", key);
  ASSERT_EQ(usage.status, 200) << usage.body;
  for (const auto& row : usage.json().at("data").as_array()) EXPECT_EQ(text(row.at("group")), reservation) << usage.body;
}

}  // namespace
}  // namespace headroom::testing
