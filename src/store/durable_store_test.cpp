// What a store on disk keeps across opens and shows other connections, on
// every such store: SQLite in a file (headroom_store_test) and PostgreSQL
// (headroom_store_postgres_test), each instantiating DurableStoreTest.
#include <gtest/gtest.h>

#include "common/crypto.h"
#include "store/store_test_util.h"

namespace headroom::store {
namespace {

using namespace headroom::store::testing;  // NOLINT: the suite's vocabulary

TEST_P(DurableStoreTest, ReopenKeepsDataAndMigratesOnce) {
  {
    auto store = open_or_die(url());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
    ASSERT_TRUE(store->create_key(key("key_1", "ten_a"), audit("aud_2", "key.create", "key_1")).is_ok());
  }
  for (int round = 0; round < 3; ++round) {
    auto store = open_or_die(url());
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->schema_version(), kSchemaVersion);
    EXPECT_EQ(store->find_tenant("ten_a")->value().name, "alpha");
    EXPECT_EQ(store->find_key("key_1")->value().secret_sha256, sha256("key_1"));
    EXPECT_EQ(audit_count(*store), 2u);
  }
  auto sql = raw();
  EXPECT_EQ(sql->scalar("SELECT count(*) FROM schema_migrations"), kSchemaVersion);
  EXPECT_EQ(sql->scalar("SELECT max(version) FROM schema_migrations"), kSchemaVersion);
  EXPECT_EQ(sql->scalar("SELECT count(*) FROM tenants"), 1);
}

TEST_P(DurableStoreTest, ANewerSchemaIsRefused) {
  { ASSERT_NE(open_or_die(url()), nullptr); }
  ASSERT_EQ(raw()->exec("INSERT INTO schema_migrations (version, applied_at_us) VALUES (99, 0)"), "");
  auto store = Store::open({url()});
  ASSERT_FALSE(store.is_ok());
  EXPECT_EQ(store.status().code(), ErrorCode::kConflict);
  EXPECT_NE(store.status().message().find("newer"), std::string::npos) << store.status().message();
}

TEST_P(DurableStoreTest, AuditLogIsAppendOnlyEvenForOtherConnections) {
  auto store = open_or_die(url());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  auto sql = raw();
  std::string update = sql->exec("UPDATE audit_log SET action = 'forged' WHERE id = 'aud_1'");
  EXPECT_NE(update.find("append-only"), std::string::npos) << "UPDATE: " << update;
  std::string remove = sql->exec("DELETE FROM audit_log");
  EXPECT_NE(remove.find("append-only"), std::string::npos) << "DELETE: " << remove;
  // Appending is allowed.
  EXPECT_EQ(sql->exec("INSERT INTO audit_log (id, time_us, actor_tenant_id, actor_key_id, request_id, action, "
                      "target_id, details) VALUES ('aud_raw', 0, '', '', '', 'manual', '', '{}')"),
            "");
  auto page = store->list_audit({.limit = 10});
  ASSERT_TRUE(page.is_ok());
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].action, "tenant.create");
  EXPECT_EQ(page->items[1].id, "aud_raw");
}

TEST_P(DurableStoreTest, WritesAreVisibleToAnotherConnectionWhenTheCallReturns) {
  auto store = open_or_die(url());
  ASSERT_NE(store, nullptr);
  auto sql = raw();
  ASSERT_TRUE(store->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  EXPECT_EQ(sql->scalar("SELECT count(*) FROM tenants"), 1);
  EXPECT_EQ(sql->scalar("SELECT count(*) FROM audit_log"), 1);
  // Values are 64-bit: microseconds and money do not fit 32 bits.
  EXPECT_EQ(sql->scalar("SELECT created_at_us FROM tenants"), Timestamp::from_unix_seconds(1'767'225'600).unix_micros);
}

// Schema 3: the executor's own id for a job's run (a Slurm job id), kept so
// that a restarted server re-finds the job (exec::ProcessHandle::external_id).
TEST_P(DurableStoreTest, JobsKeepTheExecutorsIdForTheirRun) {
  auto store = open_or_die(url());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  std::vector<JobInsert> batch(1);
  batch[0].job = job(1, "ten_a");
  ASSERT_TRUE(store->insert_jobs(batch).is_ok());
  EXPECT_EQ(store->find_job("job_1")->value().external_id, "");
  JobRecord running = job(1, "ten_a");
  running.state = "running";
  running.external_id = "4242";
  std::vector<JobUpdate> updates = {{running, JobEvent{"job_1", Timestamp{2000}, "running", "started", ""}}};
  ASSERT_TRUE(store->update_jobs(updates).is_ok());
  EXPECT_EQ(store->find_job("job_1")->value().external_id, "4242");
  store.reset();
  auto reopened = open_or_die(url());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->find_job("job_1")->value().external_id, "4242");
  auto unsettled = reopened->unsettled_jobs();
  ASSERT_TRUE(unsettled.is_ok());
  ASSERT_EQ(unsettled->size(), 1u);
  EXPECT_EQ((*unsettled)[0].external_id, "4242");
}

}  // namespace
}  // namespace headroom::store
