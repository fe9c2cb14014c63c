// The PostgreSQL store: the shared suites (src/store/store_test.cpp,
// src/store/compute_store_test.cpp) on it, and what only a shared server has:
// several stores (processes) on one database, other connections, connections
// the server drops, a bounded pool. Every case gets a database of its own on
// the test server (src/store/store_test_util.h); tests/CMakeLists.txt starts
// that server (scripts/test-postgres.sh) as a ctest fixture.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <string>
#include <thread>
#include <vector>

#include "common/limits.h"
#include "store/store_test_util.h"

namespace headroom::store {
namespace {

using namespace headroom::store::testing;  // NOLINT: the suite's vocabulary

INSTANTIATE_TEST_SUITE_P(Postgres, StoreTest, ::testing::Values(Backend::kPostgres), backend_name);
INSTANTIATE_TEST_SUITE_P(Postgres, ComputeStoreTest, ::testing::Values(Backend::kPostgres), backend_name);
INSTANTIATE_TEST_SUITE_P(Postgres, DurableStoreTest, ::testing::Values(Backend::kPostgres), backend_name);

void create_ok(Store& store) {
  Status s = store.create_tenant(tenant("ten_ok", "ok"), audit("aud_ok", "tenant.create", "ten_ok"));
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = fresh_store_url(Backend::kPostgres, dir_, pg_);
    if (IsSkipped()) return;
    ASSERT_FALSE(HasFailure()) << "no database to test";
  }
  const std::string& url() const { return url_; }

  TempDir dir_;
  std::unique_ptr<PostgresTestDatabase> pg_;
  std::string url_;
};

// PostgreSQL has TRUNCATE, which skips row triggers: the audit log refuses it too.
TEST_F(PostgresTest, AuditLogRefusesTruncate) {
  auto store = open_or_die(url());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  RawPg raw(url());
  std::string truncate = raw.exec("TRUNCATE audit_log");
  EXPECT_NE(truncate.find("append-only"), std::string::npos) << "TRUNCATE: " << truncate;
  EXPECT_EQ(audit_count(*store), 1u);
}

TEST_F(PostgresTest, TextItCannotStoreIsRefusedWholly) {
  auto store = open_or_die(url());
  ASSERT_NE(store, nullptr);
  Status nul =
      store->create_tenant(tenant("ten_a", std::string("al\0pha", 6)), audit("aud_1", "tenant.create", "ten_a"));
  EXPECT_EQ(nul.code(), ErrorCode::kInvalidArgument) << nul.to_string();
  EXPECT_NE(nul.message().find("NUL"), std::string::npos) << nul.message();
  Status latin1 = store->create_tenant(tenant("ten_a", "caf\xE9"), audit("aud_1", "tenant.create", "ten_a"));
  EXPECT_EQ(latin1.code(), ErrorCode::kInvalidArgument) << latin1.to_string();
  EXPECT_EQ(tenant_count(*store), 0u);
  EXPECT_EQ(audit_count(*store), 0u);
  create_ok(*store);
}

// Two `headroom serve` processes on one database: what one writes, the other
// sees, and nothing that the other needs is kept in one process's memory.
TEST_F(PostgresTest, TwoStoresOnOneDatabaseShareEverything) {
  auto a = open_or_die(url());
  auto b = open_or_die(url());
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  EXPECT_TRUE(b->find_tenant("ten_a")->has_value());
  Status dup = b->create_tenant(tenant("ten_b", "alpha"), audit("aud_2", "tenant.create", "ten_b"));
  EXPECT_EQ(dup.code(), ErrorCode::kAlreadyExists) << dup.to_string();

  std::vector<JobInsert> first(1);
  first[0].job = job(7, "ten_a");
  first[0].idempotency_key = "k";
  first[0].request_sha256 = "h";
  ASSERT_TRUE(a->insert_jobs(first).is_ok());
  EXPECT_EQ(b->max_job_seq().value(), 7);
  // The key used through one store replays through the other.
  std::vector<JobInsert> retry(1);
  retry[0].job = job(8, "ten_a");
  retry[0].idempotency_key = "k";
  retry[0].request_sha256 = "h";
  ASSERT_TRUE(b->insert_jobs(retry).is_ok());
  ASSERT_TRUE(retry[0].replay.has_value());
  EXPECT_EQ(retry[0].replay->id, "job_7");
  EXPECT_FALSE(a->find_job("job_8")->has_value());

  Status bootstrapped = a->bootstrap(tenant("ten_admin", "operator"), key("key_admin", "ten_admin"),
                                     audit("aud_boot", "bootstrap", "ten_admin"));
  ASSERT_TRUE(bootstrapped.is_ok()) << bootstrapped.to_string();
  Status again = b->bootstrap(tenant("ten_admin2", "operator2"), key("key_admin2", "ten_admin2"),
                              audit("aud_boot2", "bootstrap", "ten_admin2"));
  EXPECT_EQ(again.code(), ErrorCode::kConflict) << again.to_string();
}

// Many processes submitting one idempotency key at once: one job, the others
// replay it, none fails.
TEST_F(PostgresTest, OneIdempotencyKeyFromManyStoresAtOnceMakesOneJob) {
  constexpr int kStores = 4;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kStores; ++i) stores.push_back(open_or_die(url()));
  for (auto& s : stores) ASSERT_NE(s, nullptr);
  ASSERT_TRUE(stores[0]->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  std::barrier start(kStores);
  std::vector<JobInsert> inserts(kStores);
  std::vector<Status> results(kStores);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStores; ++i) {
    threads.emplace_back([&, i] {
      inserts[i].job = job(100 + i, "ten_a");
      inserts[i].idempotency_key = "same";
      inserts[i].request_sha256 = "h";
      start.arrive_and_wait();
      results[i] = stores[i]->insert_jobs({&inserts[i], 1});
    });
  }
  for (auto& t : threads) t.join();
  int made = 0;
  for (int i = 0; i < kStores; ++i) {
    ASSERT_TRUE(results[i].is_ok()) << results[i].to_string();
    ASSERT_TRUE(inserts[i].status.is_ok()) << inserts[i].status.to_string();
    if (!inserts[i].replay) ++made;
  }
  EXPECT_EQ(made, 1);
  RawPg raw(url());
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM jobs"), 1);
  std::int64_t winner = raw.scalar("SELECT seq FROM jobs");
  for (int i = 0; i < kStores; ++i) {
    if (inserts[i].replay) {
      EXPECT_EQ(inserts[i].replay->seq, winner);
    }
  }
}

// Processes opening a new database at once (two `headroom serve`s) each
// migrate; every one succeeds and each migration is applied once.
TEST_F(PostgresTest, ConcurrentFirstOpensAllSucceed) {
  constexpr int kOpeners = 4;
  std::barrier start(kOpeners);
  std::vector<std::string> errors(kOpeners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto store = Store::open({url()});
      if (!store)
        errors[i] = store.status().to_string();
      else if ((*store)->schema_version() != kSchemaVersion)
        errors[i] = "schema version " + std::to_string((*store)->schema_version());
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kOpeners; ++i) EXPECT_EQ(errors[i], "") << "opener " << i;
  RawPg raw(url());
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM schema_migrations"), kSchemaVersion);
}

// The server drops every connection (a restart, a failover, an idle timeout):
// the next calls open fresh ones instead of failing.
TEST_F(PostgresTest, ConnectionsTheServerDropsAreReplaced) {
  auto store = open_or_die(url());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a")).is_ok());
  for (int round = 0; round < 3; ++round) {
    // Several connections in the pool, all of which the server then drops.
    std::vector<std::thread> warm;
    for (int i = 0; i < 4; ++i) {
      warm.emplace_back([&] {
        for (int j = 0; j < 20; ++j) EXPECT_TRUE(store->list_tenants({.limit = 5}).is_ok());
      });
    }
    for (auto& t : warm) t.join();
    {
      RawPg raw(url());
      EXPECT_GE(raw.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()"),
                1);
    }
    std::string id = "ten_" + std::to_string(round);
    if (round % 2 == 0) {
      auto found = store->find_tenant("ten_a");
      ASSERT_TRUE(found.is_ok()) << found.status().to_string();
      EXPECT_TRUE(found->has_value());
    } else {
      Status created = store->create_tenant(tenant(id, "t" + id), audit("aud_" + id, "tenant.create", id));
      ASSERT_TRUE(created.is_ok()) << created.to_string();
    }
  }
}

// A database that goes away under a running store: every call is an
// unavailable (or internal) Status naming what failed, never a crash.
TEST_F(PostgresTest, ADatabaseThatGoesAwayIsAStatusNotACrash) {
  auto store = open_or_die(url());
  ASSERT_NE(store, nullptr);
  pg_.reset();  // DROP DATABASE ... WITH (FORCE): connections cut, the database gone
  auto found = store->find_tenant("ten_a");
  ASSERT_FALSE(found.is_ok());
  EXPECT_EQ(found.status().code(), ErrorCode::kUnavailable) << found.status().to_string();
  EXPECT_NE(found.status().message().find("PostgreSQL"), std::string::npos) << found.status().message();
  Status created = store->create_tenant(tenant("ten_a", "alpha"), audit("aud_1", "tenant.create", "ten_a"));
  ASSERT_FALSE(created.is_ok());
  EXPECT_EQ(created.code(), ErrorCode::kUnavailable) << created.to_string();
  EXPECT_NE(created.message().find("does not exist"), std::string::npos) << created.message();
}

// Many threads through one store: all succeed, and the store never holds more
// connections than its bound.
TEST_F(PostgresTest, ManyThreadsShareTheBoundedPool) {
  auto store = open_or_die(url());
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 24, kEach = 10;
  std::atomic<int> failures{0};
  std::atomic<std::int64_t> most_connections{0};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    RawPg raw(url());
    while (!done.load()) {
      std::int64_t n = raw.scalar(
          "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
          "AND application_name = 'headroom'");
      if (n > most_connections.load()) most_connections.store(n);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string id = "ten_" + std::to_string(t) + "_" + std::to_string(i);
        if (!store->create_tenant(tenant(id, "name " + id), audit("aud_" + id, "tenant.create", id)).is_ok()) {
          failures.fetch_add(1);
        }
        if (!store->find_tenant(id).is_ok() || !store->list_tenants({.limit = 5}).is_ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  done.store(true);
  watcher.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(tenant_count(*store), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_GE(most_connections.load(), 1);
  EXPECT_LE(most_connections.load(), static_cast<std::int64_t>(limits::kStorePostgresConnections));
}

}  // namespace
}  // namespace headroom::store
