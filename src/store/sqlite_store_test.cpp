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

// The shared suites (store_test.cpp, compute_store_test.cpp) on SQLite: a file,
// and in memory; durable_store_test.cpp on the file.
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreTest, ::testing::Values(Backend::kSqliteFile, Backend::kSqliteMemory),
                         backend_name);
INSTANTIATE_TEST_SUITE_P(Sqlite, ComputeStoreTest, ::testing::Values(Backend::kSqliteFile, Backend::kSqliteMemory),
                         backend_name);
INSTANTIATE_TEST_SUITE_P(Sqlite, DurableStoreTest, ::testing::Values(Backend::kSqliteFile), backend_name);

// ---- File-only behaviour: reopening, other connections. ----

class SqliteFileTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.file("headroom.db"); }
  std::string url() const { return "sqlite:" + path(); }
  TempDir dir_;
};

TEST_F(SqliteFileTest, PlainPathWorksLikeSqliteUrl) {
  auto store = open_or_die(path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
  EXPECT_TRUE(fs::exists(path()));
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
    RawSqlite raw(dir_.file("race" + std::to_string(round) + ".db"));
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

}  // namespace
}  // namespace headroom::store
