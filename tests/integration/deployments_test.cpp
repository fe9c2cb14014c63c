// Hosted models deployed by the operator at run time, over HTTP against a
// real `headroom serve`: POST/GET/DELETE /v1/deployments, the model served
// at once through the OpenAI API and billed at its own prices, kept across
// restarts, and gone once deleted; the config file's model listed beside it
// and changed only there.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>

#include "fleet_server.h"

namespace headroom::testing {
namespace {

namespace json = boost::json;

std::string_view text(const json::value& v) { return v.is_string() ? std::string_view(v.as_string()) : ""; }

class DeploymentsTest : public FleetServerTest {
 protected:
  std::string config_toml() const override {
    return "[models.stories260K]\nfile = \"builtin:stories260K\"\ninput_price = \"0.05\"\noutput_price = \"0.10\"\n"
           "[[fleet.gpu_types]]\nname = \"t4\"\nmemory_gib = 16\n"
           "[[fleet.nodes]]\nname = \"node-1\"\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\n"
           "gpu_type = \"t4\"\ngpus = 1\n";
  }

  Reply del(std::string_view target, const std::string& key) { return call(server_->url(), "DELETE", target, key); }

  // Rating is asynchronous: a request's charge lands a moment after its
  // answer. GETs `target` until `ready` holds of the reply (5 s at most).
  Reply get_when(std::string_view target, const std::string& key, const std::function<bool(const Reply&)>& ready) {
    Reply r;
    for (int i = 0; i < 100; ++i) {
      r = get(target, key);
      if (r.status == 200 && ready(r)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return r;
  }

  // A tenant with $10 of credit and an inference key; its key's secret.
  std::string paying_tenant_key() {
    Reply t = post("/v1/tenants", admin_, R"({"name":"deploy-)" + std::to_string(getpid()) + R"(","kind":"external"})");
    EXPECT_EQ(t.status, 201) << t.body;
    const std::string id(t.json().at("id").as_string());
    EXPECT_EQ(post("/v1/tenants/" + id + "/credits", admin_, R"({"amount":"10.00"})", {{"Idempotency-Key", "c1"}}).status,
              201);
    Reply k = post("/v1/tenants/" + id + "/keys", admin_, R"({"name":"k","scopes":["inference","billing"]})");
    EXPECT_EQ(k.status, 201) << k.body;
    return std::string(k.json().at("key").as_string());
  }

  // name -> origin, from GET /v1/deployments.
  std::map<std::string, std::string> listed() {
    Reply r = get("/v1/deployments", admin_);
    EXPECT_EQ(r.status, 200) << r.body;
    std::map<std::string, std::string> out;
    if (!r.json().is_object()) return out;
    for (const auto& d : r.json().at("data").as_array()) out[std::string(text(d.at("name")))] = text(d.at("origin"));
    return out;
  }

  Reply complete(const std::string& key, std::string_view model) {
    return post("/v1/completions", key,
                R"({"model":")" + std::string(model) + R"(","prompt":"Once upon a time","max_tokens":6,"seed":1})");
  }
};

constexpr std::string_view kTiny =
    R"({"name":"tiny-2","file":"builtin:stories260K","input_price":"1.00","output_price":"2.00","max_running":4})";

TEST_F(DeploymentsTest, DeployServeBillRestartAndDelete) {
  EXPECT_EQ(listed(), (std::map<std::string, std::string>{{"stories260K", "config"}}));

  Reply made = post("/v1/deployments", admin_, kTiny);
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(text(made.json().at("origin")), "api");
  EXPECT_EQ(text(made.json().at("source")), "file");
  EXPECT_EQ(text(made.json().at("input_price")), "1.00");
  EXPECT_EQ(text(made.json().at("output_price")), "2.00");
  EXPECT_EQ(made.json().at("max_running").as_int64(), 4);
  EXPECT_EQ(listed(), (std::map<std::string, std::string>{{"stories260K", "config"}, {"tiny-2", "api"}}));

  // Served at once, through the OpenAI API, and billed at its own prices.
  const std::string key = paying_tenant_key();
  EXPECT_EQ(get("/v1/models/tiny-2", key).status, 200);
  Reply answer = complete(key, "tiny-2");
  ASSERT_EQ(answer.status, 200) << answer.body;
  const std::int64_t prompt = answer.json().at("usage").at("prompt_tokens").as_int64();
  const std::int64_t completion = answer.json().at("usage").at("completion_tokens").as_int64();
  Reply usage = get_when("/v1/usage?group_by=model", key, [&](const Reply& r) {
    const json::array& data = r.json().at("data").as_array();
    return !data.empty() && data.at(0).at("quantity").as_int64() == prompt + completion;
  });
  ASSERT_EQ(usage.status, 200) << usage.body;
  ASSERT_EQ(usage.json().at("data").as_array().size(), 1u) << usage.body;
  const json::value& row = usage.json().at("data").at(0);
  EXPECT_EQ(text(row.at("group")), "tiny-2");
  EXPECT_EQ(row.at("quantity").as_int64(), prompt + completion);
  // $1 per million input tokens and $2 per million output tokens, in micro-dollars.
  const std::int64_t micros = prompt * 1 + completion * 2;
  const std::string spent = "0.0000" + std::string(micros < 10 ? "0" : "") + std::to_string(micros);
  Reply balance =
      get_when("/v1/balance", key, [&](const Reply& r) { return text(r.json().at("month_spend")) == spent; });
  ASSERT_EQ(balance.status, 200) << balance.body;
  EXPECT_EQ(text(balance.json().at("month_spend")), spent) << balance.body;

  // Kept across a restart, and still served.
  std::string dir = server_->data_dir();
  server_->stop(SIGTERM);
  start(dir);
  EXPECT_EQ(listed(), (std::map<std::string, std::string>{{"stories260K", "config"}, {"tiny-2", "api"}}));
  EXPECT_EQ(complete(key, "tiny-2").status, 200);

  // Deleted: no longer listed or served; the config's model is changed only there.
  Reply deleted = del("/v1/deployments/tiny-2", admin_);
  EXPECT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(deleted.body, R"({"name":"tiny-2","object":"deployment","deleted":true})");
  EXPECT_EQ(get("/v1/models/tiny-2", key).status, 404);
  EXPECT_EQ(complete(key, "tiny-2").status, 404);
  EXPECT_EQ(del("/v1/deployments/tiny-2", admin_).status, 404);
  Reply config_model = del("/v1/deployments/stories260K", admin_);
  EXPECT_EQ(config_model.status, 409) << config_model.body;
  EXPECT_NE(config_model.body.find("config file"), std::string::npos) << config_model.body;
  EXPECT_EQ(complete(key, "stories260K").status, 200);
  server_->stop(SIGTERM);
  start(dir);
  EXPECT_EQ(listed(), (std::map<std::string, std::string>{{"stories260K", "config"}}));
  // The name may be deployed again.
  EXPECT_EQ(post("/v1/deployments", admin_, kTiny).status, 201);
}

// A deployment kept in the store whose pricing never happened (the server
// stopped between the two) is priced at the next start, not served unpriced.
TEST_F(DeploymentsTest, AKeptDeploymentWithoutPricesIsPricedAtStart) {
  std::string dir = server_->data_dir();
  server_->stop(SIGTERM);
  const std::string insert =
      "sqlite3 " + dir + "/headroom.db \"INSERT INTO model_deployments (name, deployment) VALUES ('tiny-3', "
      "'{\\\"name\\\":\\\"tiny-3\\\",\\\"file\\\":\\\"builtin:stories260K\\\",\\\"input_price\\\":\\\"3.00\\\","
      "\\\"output_price\\\":\\\"4.00\\\"}')\"";
  ASSERT_EQ(std::system(insert.c_str()), 0) << insert;
  start(dir);
  EXPECT_EQ(listed(), (std::map<std::string, std::string>{{"stories260K", "config"}, {"tiny-3", "api"}}));
  Reply shown = get("/v1/deployments/tiny-3", admin_);
  EXPECT_EQ(text(shown.json().at("input_price")), "3.00") << shown.body;
  const std::string key = paying_tenant_key();
  Reply answer = complete(key, "tiny-3");
  ASSERT_EQ(answer.status, 200) << answer.body;
  const std::int64_t micros = answer.json().at("usage").at("prompt_tokens").as_int64() * 3 +
                              answer.json().at("usage").at("completion_tokens").as_int64() * 4;
  // The request's hold turns into its charge a moment after the answer.
  const std::string expected = "0.0000" + std::string(micros < 10 ? "0" : "") + std::to_string(micros);
  Reply balance =
      get_when("/v1/balance", key, [&](const Reply& r) { return text(r.json().at("month_spend")) == expected; });
  EXPECT_EQ(text(balance.json().at("month_spend")), expected) << balance.body;
}

TEST_F(DeploymentsTest, BadDeploymentsAreRefusedByName) {
  auto refused = [&](std::string_view body, int status, std::string_view names) {
    Reply r = post("/v1/deployments", admin_, body);
    EXPECT_EQ(r.status, status) << body << " -> " << r.body;
    EXPECT_NE(r.body.find(names), std::string::npos) << body << " -> " << r.body;
  };
  refused(R"({"name":"x","file":"builtin:stories260K","input_price":"1"})", 400, "output_price");
  refused(R"({"name":"x","input_price":"1","output_price":"1"})", 400, "either file");
  refused(R"({"name":"x","file":"a.gguf","upstreams":["http://127.0.0.1:1/v1"],"input_price":"1","output_price":"1"})",
          400, "either file");
  refused(R"({"name":"a/b","file":"builtin:stories260K","input_price":"1","output_price":"1"})", 400, "name");
  refused(R"({"name":"x","file":"builtin:stories260K","input_price":"-1","output_price":"1"})", 400, "input_price");
  refused(R"({"name":"x","file":"builtin:stories260K","input_price":"1","output_price":"1","max_running":0})", 400,
          "max_running");
  refused(R"({"name":"x","file":"builtin:stories260K","input_price":"1","output_price":"1","colour":"red"})", 400,
          "colour");
  refused(R"({"name":"x","file":"/no/such/model.gguf","input_price":"1","output_price":"1"})", 400,
          "/no/such/model.gguf");
  refused(R"({"name":"x","file":"builtin:llama-405b","input_price":"1","output_price":"1"})", 400, "file");
  refused(R"({"name":"stories260K","file":"builtin:stories260K","input_price":"1","output_price":"1"})", 409,
          "already deployed");
  refused("[1,2]", 400, "object");
  // Nothing refused was kept or priced.
  EXPECT_EQ(listed(), (std::map<std::string, std::string>{{"stories260K", "config"}}));
  Reply prices = get("/v1/prices", "");
  EXPECT_EQ(prices.body.find("\"x\""), std::string::npos) << prices.body;
  // Only the operator deploys.
  const std::string key = paying_tenant_key();
  EXPECT_EQ(post("/v1/deployments", key, kTiny).status, 403);
  EXPECT_EQ(get("/v1/deployments", key).status, 403);
}

}  // namespace
}  // namespace headroom::testing
