// Shared by the Store's test suites, which run against every store: SQLite (a
// file, and in memory) in headroom_store_test, PostgreSQL in
// headroom_store_postgres_test (tests/CMakeLists.txt). The suites' fixtures
// are declared here; each binary instantiates them with its own backends.
//
// The PostgreSQL cases need a server: its URL is read from the file that
// HEADROOM_TEST_PG_URL_FILE names (ctest sets it, after its fixture
// scripts/test-postgres.sh started a throwaway cluster), or taken from
// HEADROOM_TEST_PG_URL. Each case gets a database of its own, made from a
// random name and dropped afterwards, so cases are independent and may run in
// parallel. Without a server the cases skip, except when CI=true: CI must
// never pass by skipping.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include "common/crypto.h"
#include "store/store.h"

namespace headroom::store::testing {

namespace fs = std::filesystem;

// The schema version of every store. The stores share one history of
// migrations: one added to SQLite is added to PostgreSQL, and this moves.
inline constexpr int kSchemaVersion = 4;

enum class Backend { kSqliteFile, kSqliteMemory, kPostgres };

inline const char* to_string(Backend backend) {
  switch (backend) {
    case Backend::kSqliteFile:
      return "SqliteFile";
    case Backend::kSqliteMemory:
      return "SqliteMemory";
    case Backend::kPostgres:
      return "PostgreSQL";
  }
  return "unknown";
}
inline std::string backend_name(const ::testing::TestParamInfo<Backend>& info) { return to_string(info.param); }
// For gtest's messages ("where GetParam() = PostgreSQL").
inline void PrintTo(Backend backend, std::ostream* out) { *out << to_string(backend); }

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::path(::testing::TempDir()) / "headroom_store_test_XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// The test server's URL, or "" with `why` set when there is none.
inline std::string postgres_server_url(std::string& why) {
  if (const char* url = std::getenv("HEADROOM_TEST_PG_URL"); url && *url) return url;
  const char* file = std::getenv("HEADROOM_TEST_PG_URL_FILE");
  if (!file || !*file) {
    why =
        "neither HEADROOM_TEST_PG_URL nor HEADROOM_TEST_PG_URL_FILE is set (ctest sets the latter after "
        "scripts/test-postgres.sh starts a server)";
    return "";
  }
  std::ifstream in(file);
  std::string url;
  if (!in || !std::getline(in, url) || url.empty()) {
    why = std::string("no PostgreSQL URL in ") + file + " (scripts/test-postgres.sh start DIR writes DIR/url)";
    return "";
  }
  return url;
}

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// `url` with its database name replaced by `dbname`.
inline std::string with_database(const std::string& url, const std::string& dbname) {
  std::size_t scheme = url.find("://");
  std::size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  std::size_t slash = url.find('/', start);
  std::size_t query = url.find('?', start);
  if (slash == std::string::npos || (query != std::string::npos && slash > query)) {
    std::size_t at = query == std::string::npos ? url.size() : query;
    return url.substr(0, at) + "/" + dbname + url.substr(at);
  }
  std::size_t end = query == std::string::npos ? url.size() : query;
  return url.substr(0, slash + 1) + dbname + url.substr(end);
}

// A raw connection to a store's database: what another process, or an
// operator with psql or sqlite3, would see and do.
class RawSql {
 public:
  virtual ~RawSql() = default;
  // The error message, or "" when it ran.
  virtual std::string exec(const std::string& sql) = 0;
  // The first column of the first row.
  virtual std::int64_t scalar(const std::string& sql) = 0;
};

class RawSqlite final : public RawSql {
 public:
  explicit RawSqlite(const std::string& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5'000);
  }
  RawSqlite(const RawSqlite&) = delete;
  RawSqlite& operator=(const RawSqlite&) = delete;
  ~RawSqlite() override { sqlite3_close(db_); }

  std::string exec(const std::string& sql) override {
    char* error = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
    std::string message = rc == SQLITE_OK ? "" : (error ? error : "error");
    sqlite3_free(error);
    return message;
  }
  std::int64_t scalar(const std::string& sql) override {
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

class RawPg final : public RawSql {
 public:
  explicit RawPg(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    EXPECT_EQ(PQstatus(conn_), CONNECTION_OK) << url << ": " << PQerrorMessage(conn_);
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
  }
  RawPg(const RawPg&) = delete;
  RawPg& operator=(const RawPg&) = delete;
  ~RawPg() override { PQfinish(conn_); }

  std::string exec(const std::string& sql) override {
    PGresult* r = PQexec(conn_, sql.c_str());
    ExecStatusType status = PQresultStatus(r);
    bool ran = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
    std::string message = ran ? "" : std::string(PQresultErrorMessage(r));
    PQclear(r);
    if (!ran && message.empty()) message = "error";
    return message;
  }
  std::int64_t scalar(const std::string& sql) override {
    PGresult* r = PQexec(conn_, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << sql << ": " << PQresultErrorMessage(r);
    std::int64_t value = PQntuples(r) > 0 ? std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10) : -1;
    PQclear(r);
    return value;
  }

 private:
  PGconn* conn_;
};

// A database of its own on the test server, dropped (connections and all)
// when destroyed.
class PostgresTestDatabase {
 public:
  explicit PostgresTestDatabase(std::string server_url) : server_url_(std::move(server_url)) {
    std::random_device random;
    std::uniform_int_distribution<std::uint64_t> bits;
    char name[40];
    std::snprintf(name, sizeof name, "hr_test_%016llx", static_cast<unsigned long long>(bits(random)));
    name_ = name;
    url_ = with_database(server_url_, name_);
    RawPg admin(server_url_);
    std::string error = admin.exec("CREATE DATABASE " + name_);
    EXPECT_EQ(error, "") << "creating the test database " << name_;
  }
  PostgresTestDatabase(const PostgresTestDatabase&) = delete;
  PostgresTestDatabase& operator=(const PostgresTestDatabase&) = delete;
  ~PostgresTestDatabase() {
    RawPg admin(server_url_);
    std::string error = admin.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    EXPECT_EQ(error, "") << "dropping the test database " << name_;
  }
  const std::string& url() const { return url_; }

 private:
  std::string server_url_, name_, url_;
};

// For a PostgreSQL case: sets `url` to the test server's URL; or skips the
// test (fails it under CI=true) and leaves `url` empty. Callers return when the
// test is skipped or failed.
inline void require_postgres_server(std::string& url) {
  std::string why;
  url = postgres_server_url(why);
  if (!url.empty()) return;
  if (in_ci()) {
    ADD_FAILURE() << "CI=true and no PostgreSQL server for the PostgreSQL store tests: " << why;
    return;
  }
  GTEST_SKIP() << "no PostgreSQL server: " << why;
}

inline std::unique_ptr<Store> open_or_die(const std::string& url) {
  auto store = Store::open({url});
  EXPECT_TRUE(store.is_ok()) << url << ": " << store.status().to_string();
  return store ? std::move(store).value() : nullptr;
}

// The URL of a fresh, empty store of `backend`: a file in `dir`, memory, or a
// new database on the test server (kept alive by `pg`). "" when the test was
// skipped or failed for want of a server.
inline std::string fresh_store_url(Backend backend, const TempDir& dir, std::unique_ptr<PostgresTestDatabase>& pg) {
  switch (backend) {
    case Backend::kSqliteFile:
      return "sqlite:" + dir.file("headroom.db");
    case Backend::kSqliteMemory:
      return ":memory:";
    case Backend::kPostgres: {
      std::string server;
      require_postgres_server(server);
      if (server.empty()) return "";
      pg = std::make_unique<PostgresTestDatabase>(server);
      return pg->url();
    }
  }
  return "";
}

// ---- Records -----------------------------------------------------------------

inline Tenant tenant(std::string id, std::string name, TenantKind kind = TenantKind::kExternal) {
  return Tenant{std::move(id), std::move(name), kind, Timestamp::from_unix_seconds(1'767'225'600)};
}

inline ApiKey key(std::string id, std::string tenant_id, std::string lookup_prefix = "") {
  ApiKey k;
  k.id = std::move(id);
  k.tenant_id = std::move(tenant_id);
  k.name = "key " + k.id;
  k.scopes = kScopeCompute | kScopeInference;
  k.lookup_prefix = lookup_prefix.empty() ? "hr_" + k.id : std::move(lookup_prefix);
  k.secret_sha256 = sha256(k.id);
  k.created_at = Timestamp::from_unix_seconds(1'767'225'601);
  return k;
}

inline AuditRecord audit(std::string id, std::string action, std::string target) {
  AuditRecord a;
  a.id = std::move(id);
  a.time = Timestamp::from_unix_seconds(1'767'225'602);
  a.actor_tenant_id = "ten_admin";
  a.actor_key_id = "key_admin";
  a.request_id = "req_1";
  a.action = std::move(action);
  a.target_id = std::move(target);
  a.details_json = R"({"k":"v"})";
  return a;
}

inline std::size_t audit_count(Store& store) {
  auto page = store.list_audit({.limit = 100'000});
  EXPECT_TRUE(page.is_ok());
  return page ? page->items.size() : 0;
}

inline std::size_t tenant_count(Store& store) {
  auto all = store.all_tenants();
  EXPECT_TRUE(all.is_ok());
  return all ? all->size() : 0;
}

inline JobRecord job(std::int64_t seq, const std::string& tenant) {
  JobRecord j;
  j.id = "job_" + std::to_string(seq);
  j.seq = seq;
  j.tenant_id = tenant;
  j.spec_json = R"({"gpus":1})";
  j.state = "queued";
  j.reason = "submitted";
  j.created_at = j.state_at = Timestamp{1000 + seq};
  return j;
}

// ---- The suites' fixtures ----------------------------------------------------

// store_test.cpp: tenants, keys, the audit log.
class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    url_ = fresh_store_url(GetParam(), dir_, pg_);
    if (IsSkipped()) return;
    ASSERT_FALSE(HasFailure()) << "no store to test";
    store_ = open_or_die(url_);
    ASSERT_NE(store_, nullptr);
  }
  Store& store() { return *store_; }

  void create_tenant_ok(const std::string& id, const std::string& name) {
    Status s = store().create_tenant(tenant(id, name), audit("aud_" + id, "tenant.create", id));
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }

  TempDir dir_;
  std::unique_ptr<PostgresTestDatabase> pg_;  // outlives store_: declared first, destroyed last
  std::string url_;
  std::unique_ptr<Store> store_;
};

// compute_store_test.cpp: jobs, quotas, node states, reservations.
class ComputeStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    std::string url = fresh_store_url(GetParam(), dir_, pg_);
    if (IsSkipped()) return;
    ASSERT_FALSE(HasFailure()) << "no store to test";
    store_ = open_or_die(url);
    ASSERT_NE(store_, nullptr);
    for (const char* id : {"ten_a", "ten_b"}) {
      Tenant t{id, std::string("name-") + id, TenantKind::kExternal, Timestamp{1}};
      ASSERT_TRUE(store_->create_tenant(t, next_audit("create " + std::string(id))).is_ok());
    }
  }

  AuditRecord next_audit(const std::string& what) {
    return AuditRecord{0, "aud_" + std::to_string(++audits_), Timestamp{1}, "", "", "", "test", what, "{}"};
  }

  TempDir dir_;
  std::unique_ptr<PostgresTestDatabase> pg_;
  std::unique_ptr<Store> store_;
  int audits_ = 0;
};

// durable_store_test.cpp: what a store on disk keeps across opens and shows
// other connections (SQLite in a file, PostgreSQL).
class DurableStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    url_ = fresh_store_url(GetParam(), dir_, pg_);
    if (IsSkipped()) return;
    ASSERT_FALSE(HasFailure()) << "no store to test";
  }
  const std::string& url() const { return url_; }
  std::unique_ptr<RawSql> raw() const {
    if (GetParam() == Backend::kPostgres) return std::make_unique<RawPg>(url_);
    return std::make_unique<RawSqlite>(dir_.file("headroom.db"));
  }

  TempDir dir_;
  std::unique_ptr<PostgresTestDatabase> pg_;
  std::string url_;
};

}  // namespace headroom::store::testing
