// The market end to end, over HTTP against a real `headroom serve`: the
// catalog (GET /v1/prices for everyone, versions added by the admin that
// take effect at their time and rate usage from then on) and the owner's
// economics (GET /v1/economics).
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
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
           "energy_price_per_kwh = \"0.20\"\nother_cost_per_gpu_hour = \"0.10\"\n"
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
  EXPECT_EQ(t4_price(list.json(), "data", "spot"), "0.36");
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
           {R"({"product":"films","unit_price":"1"})", "prices[0].product"}}) {
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

}  // namespace
}  // namespace headroom::testing
