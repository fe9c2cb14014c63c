// `headroom serve --store postgres://...` end to end: the real binary on a
// database of its own on the test server (see src/store/store_test_util.h),
// killed with SIGKILL, and a second process with a data directory of its own
// that finds everything the first acknowledged, since only the database holds
// it.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "server_process.h"
#include "store/store_test_util.h"

namespace headroom::testing {
namespace {

using store::testing::Backend;
using store::testing::PostgresTestDatabase;
using store::testing::RawPg;
using store::testing::TempDir;

TEST(ServePostgres, AcknowledgedStateOutlivesTheProcess) {
  TempDir dir;
  std::unique_ptr<PostgresTestDatabase> pg;
  std::string url = store::testing::fresh_store_url(Backend::kPostgres, dir, pg);
  if (IsSkipped()) return;
  ASSERT_FALSE(HasFailure());
  // One cordoned node: the job queues and never starts, so no process of it
  // outlives the server.
  std::string config = dir.file("fleet.toml");
  std::ofstream(config) << "[[fleet.gpu_types]]\nname = \"h100\"\nmemory_gib = 80\n"
                           "[[fleet.nodes]]\nname = \"n1\"\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\n"
                           "gpu_type = \"h100\"\ngpus = 8\nstate = \"cordoned\"\n";
  std::vector<std::string> args = {"--store", url, "--config", config};

  auto first = ServerProcess::start({.extra_args = args});
  ASSERT_NE(first, nullptr);
  std::string admin = first->printed_admin_key();
  ASSERT_FALSE(admin.empty()) << first->stdout_text();
  EXPECT_NE(first->stdout_text().find("store " + url), std::string::npos) << first->stdout_text();
  Reply t = call(first->url(), "POST", "/v1/tenants", admin, R"({"name":"pg-tenant","kind":"external"})");
  ASSERT_EQ(t.status, 201) << t.body;
  std::string tenant(t.json().at("id").as_string());
  Reply c = call(first->url(), "POST", "/v1/tenants/" + tenant + "/credits", admin, R"({"amount":"100.00"})");
  ASSERT_EQ(c.status, 201) << c.body;
  Reply k =
      call(first->url(), "POST", "/v1/tenants/" + tenant + "/keys", admin, R"({"name":"k","scopes":["compute"]})");
  ASSERT_EQ(k.status, 201) << k.body;
  std::string key(k.json().at("key").as_string());
  Reply j = call(first->url(), "POST", "/v1/jobs", key, R"({"gpus":1,"command":["true"]})");
  ASSERT_EQ(j.status, 201) << j.body;
  std::string job(j.json().at("id").as_string());
  ASSERT_TRUE(first->stop(SIGKILL).has_value());

  auto second = ServerProcess::start({.extra_args = args});
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->printed_admin_key(), "") << "bootstrapped once, by the first process";
  Reply tenant_again = call(second->url(), "GET", "/v1/tenants/" + tenant, admin);
  EXPECT_EQ(tenant_again.status, 200) << tenant_again.body;
  Reply job_again = call(second->url(), "GET", "/v1/jobs/" + job, key);
  EXPECT_EQ(job_again.status, 200) << job_again.body;

  RawPg raw(url);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM jobs"), 1);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM tenants WHERE name = 'pg-tenant'"), 1);
}

TEST(ServePostgres, AServerThatRefusesIsAClearErrorAtStart) {
  TempDir dir;
  CommandResult r = run_headroom({"serve", "--listen", "127.0.0.1:0", "--data", dir.file("data"), "--store",
                                  "postgres://headroom:s3cret@127.0.0.1:1/headroom"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot connect to PostgreSQL at postgres://headroom:***@127.0.0.1:1/headroom"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("s3cret"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace headroom::testing
