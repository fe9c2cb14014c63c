#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "store/postgres/postgres_store.h"
#include "store/store.h"
#include "store/store_test_util.h"

// The SQLite store: the shared suites on it, and what only SQLite has (a
// file, other connections to it).
namespace headroom::store {
namespace {

using namespace headroom::store::testing;  // NOLINT: the suite's vocabulary

// A second, raw connection to the same file: what another process, or an
// operator with the sqlite3 shell, would see and do.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5'000);
  }
  ~RawDb() { sqlite3_close(db_); }

  // The error message, or "" when it ran.
  std::string exec(const std::string& sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
    std::string message = rc == SQLITE_OK ? "" : (error ? error : "error");
    sqlite3_free(error);
    return message;
  }
  std::int64_t scalar(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW) << sql;
    std::int64_t value = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return value;
  }

 private:
  sqlite3* db_ = nullptr;
};

// The shared suites (store_test.cpp, compute_store_test.cpp) on SQLite: a file,
// and in memory.
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreTest, ::testing::Values(Backend::kSqliteFile, Backend::kSqliteMemory),
                         backend_name);
INSTANTIATE_TEST_SUITE_P(Sqlite, ComputeStoreTest, ::testing::Values(Backend::kSqliteFile, Backend::kSqliteMemory),
                         backend_name);

// ---- File-only behaviour: reopening, other connections. ----

class SqliteFileTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.file("headroom.db"); }
  std::string url() const { return "sqlite:" + path(); }
  TempDir dir_;
};

TEST_F(SqliteFileTest, ReopenKeepsDataAndMigratesOnce) {
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
  RawDb raw(path());
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM schema_migrations"), kSchemaVersion);
  EXPECT_EQ(raw.scalar("SELECT max(version) FROM schema_migrations"), kSchemaVersion);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM tenants"), 1);
}

TEST_F(SqliteFileTest, PlainPathWorksLikeSqliteUrl) {
  auto store = open_or_die(path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
  EXPECT_TRUE(fs::exists(path()));
}

TEST_F(SqliteFileTest, ANewerSchemaIsRefused) {
  { ASSERT_NE(open_or_die(url()), nullptr); }
  {
    RawDb raw(path());
    ASSERT_EQ(raw.exec("INSERT INTO schema_migrations (version, applied_at_us) VALUES (99, 0)"), "");
  }
  auto store = Store::open({url()});
  ASSERT_FALSE(store.is_ok());
  EXPECT_EQ(store.status().code(), ErrorCode::kConflict);
  EXPECT_NE(store.status().message().find("newer"), std::string::npos) << store.status().message();
}

TEST_F(SqliteFileTest, AuditLogIsAppendOnlyEvenForOtherConnections) {
  auto store = open_or_die(url());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  RawDb raw(path());
  std::string update = raw.exec("UPDATE audit_log SET action = 'forged' WHERE id = 'aud_1'");
  EXPECT_NE(update.find("append-only"), std::string::npos) << "UPDATE: " << update;
  std::string remove = raw.exec("DELETE FROM audit_log");
  EXPECT_NE(remove.find("append-only"), std::string::npos) << "DELETE: " << remove;
  // Appending is allowed.
  EXPECT_EQ(raw.exec("INSERT INTO audit_log (id, time_us, actor_tenant_id, actor_key_id, request_id, action, "
                     "target_id, details) VALUES ('aud_raw', 0, '', '', '', 'manual', '', '{}')"),
            "");
  auto page = store->list_audit({.limit = 10});
  ASSERT_TRUE(page.is_ok());
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].action, "tenant.create");
  EXPECT_EQ(page->items[1].id, "aud_raw");
}

TEST_F(SqliteFileTest, WritesAreVisibleToAnotherConnectionAtOnce) {
  auto store = open_or_die(url());
  ASSERT_NE(store, nullptr);
  RawDb raw(path());
  ASSERT_TRUE(store->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM tenants"), 1);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM audit_log"), 1);
}

TEST_F(SqliteFileTest, TwoStoresOnOneFileShareData) {
  auto a = open_or_die(url());
  auto b = open_or_die(url());
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  EXPECT_TRUE(b->find_tenant("ten_a")->has_value());
  Status dup = b->create_tenant(tenant("ten_b", "alpha"), audit("aud_2", "tenant.create", "ten_b"));
  EXPECT_EQ(dup.code(), ErrorCode::kAlreadyExists);
}

// Two processes starting at once on a fresh file (two `headroom serve`s, or
// serve beside bootstrap) both migrate; the loser must see the winner's
// schema, not fail on "table already exists".
TEST_F(SqliteFileTest, ConcurrentFirstOpensBothSucceed) {
  for (int round = 0; round < 6; ++round) {
    std::string url = "sqlite:" + dir_.file("race" + std::to_string(round) + ".db");
    constexpr int kOpeners = 4;
    std::barrier start(kOpeners);
    std::vector<std::string> errors(kOpeners);
    std::vector<std::thread> threads;
    for (int i = 0; i < kOpeners; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        auto store = Store::open({url});
        if (!store) errors[i] = store.status().to_string();
        else if ((*store)->schema_version() != kSchemaVersion)
          errors[i] = "schema version " + std::to_string((*store)->schema_version());
      });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < kOpeners; ++i) EXPECT_EQ(errors[i], "") << "round " << round << ", opener " << i;
    RawDb raw(dir_.file("race" + std::to_string(round) + ".db"));
    EXPECT_EQ(raw.scalar("SELECT count(*) FROM schema_migrations"), kSchemaVersion) << "round " << round;
  }
}

TEST(StoreOpen, Errors) {
  auto empty = Store::open({""});
  ASSERT_FALSE(empty.is_ok());
  EXPECT_EQ(empty.status().code(), ErrorCode::kInvalidArgument);
  auto empty_sqlite = Store::open({"sqlite:"});
  EXPECT_EQ(empty_sqlite.status().code(), ErrorCode::kInvalidArgument);
  // PostgreSQL URLs go to the PostgreSQL store: a server that refuses is
  // unavailable, named, with the password hidden; a malformed URL is invalid.
  for (std::string url : {"postgres://headroom:s3cret@127.0.0.1:1/headroom",
                          "postgresql://headroom:s3cret@127.0.0.1:1/headroom?connect_timeout=2"}) {
    auto pg = Store::open({url});
    ASSERT_FALSE(pg.is_ok()) << url;
    EXPECT_EQ(pg.status().code(), ErrorCode::kUnavailable) << pg.status().to_string();
    EXPECT_NE(pg.status().message().find("PostgreSQL at postgres"), std::string::npos) << pg.status().message();
    EXPECT_NE(pg.status().message().find("127.0.0.1"), std::string::npos) << pg.status().message();
    EXPECT_EQ(pg.status().message().find("s3cret"), std::string::npos) << pg.status().message();
  }
  auto bad = Store::open({"postgresql://[::1/headroom"});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument) << bad.status().to_string();
  EXPECT_NE(bad.status().message().find("bad PostgreSQL URL"), std::string::npos) << bad.status().message();
  auto missing_dir = Store::open({"sqlite:/nonexistent-dir-for-headroom-tests/x/y.db"});
  ASSERT_FALSE(missing_dir.is_ok());
  EXPECT_EQ(missing_dir.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(missing_dir.status().message().find("/nonexistent-dir-for-headroom-tests/x/y.db"), std::string::npos);
}

TEST(StoreOpen, PostgresUrlsAreRedacted) {
  EXPECT_EQ(redact_postgres_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
  EXPECT_EQ(redact_postgres_url("postgres://u@h/db?password=pw&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require");
  EXPECT_EQ(redact_postgres_url("postgres://h:5432/db"), "postgres://h:5432/db");
  EXPECT_EQ(redact_postgres_url("postgresql:///db?host=/run/pg"), "postgresql:///db?host=/run/pg");
}

TEST(StoreOpen, MemoryUrls) {
  for (std::string url : {":memory:", "sqlite::memory:"}) {
    auto store = Store::open({url});
    ASSERT_TRUE(store.is_ok()) << url << ": " << store.status().to_string();
    EXPECT_EQ((*store)->schema_version(), kSchemaVersion);
  }
  // Two in-memory stores are separate databases.
  auto a = Store::open({":memory:"});
  auto b = Store::open({":memory:"});
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  ASSERT_TRUE((*a)->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  EXPECT_FALSE((*b)->find_tenant("ten_a")->has_value());
}

// Schema 3: the executor's own id for a job's run (a Slurm job id), kept so
// that a restarted server re-finds the job (exec::ProcessHandle::external_id).
TEST_F(SqliteFileTest, JobsKeepTheExecutorsIdForTheirRun) {
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
