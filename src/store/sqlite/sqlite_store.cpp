#include "store/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <mutex>
#include <unordered_map>

#include "common/limits.h"

namespace headroom::store {
namespace {

// Migrations, in order; migration i takes the schema from version i to i+1.
// A released migration is never edited: add a new one.
constexpr const char* kMigrations[] = {
    // 1: tenants, API keys, the append-only audit log, settings.
    R"sql(
CREATE TABLE tenants (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  kind          TEXT NOT NULL CHECK (kind IN ('internal', 'external')),
  created_at_us INTEGER NOT NULL
);
CREATE TABLE api_keys (
  id            TEXT PRIMARY KEY,
  tenant_id     TEXT NOT NULL REFERENCES tenants (id),
  name          TEXT NOT NULL,
  scopes        INTEGER NOT NULL,
  lookup_prefix TEXT NOT NULL UNIQUE,
  secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
  created_at_us INTEGER NOT NULL,
  expires_at_us INTEGER,
  revoked_at_us INTEGER,
  replaces      TEXT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
CREATE TABLE audit_log (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  id              TEXT NOT NULL UNIQUE,
  time_us         INTEGER NOT NULL,
  actor_tenant_id TEXT NOT NULL,
  actor_key_id    TEXT NOT NULL,
  request_id      TEXT NOT NULL,
  action          TEXT NOT NULL,
  target_id       TEXT NOT NULL,
  details         TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE settings (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql",
    // 2: raw compute: jobs and their history, idempotency keys, quotas,
    // node states, reservations.
    R"sql(
CREATE TABLE jobs (
  seq            INTEGER PRIMARY KEY,
  id             TEXT NOT NULL UNIQUE,
  tenant_id      TEXT NOT NULL REFERENCES tenants (id),
  spec           TEXT NOT NULL,
  state          TEXT NOT NULL,
  reason         TEXT NOT NULL,
  message        TEXT NOT NULL,
  exit_code      INTEGER,
  gpu_type       TEXT NOT NULL,
  gpus           TEXT NOT NULL,
  pid            INTEGER NOT NULL,
  start_ticks    INTEGER NOT NULL,
  preemptions    INTEGER NOT NULL,
  created_at_us  INTEGER NOT NULL,
  state_at_us    INTEGER NOT NULL,
  started_at_us  INTEGER,
  ended_at_us    INTEGER,
  usage_until_us INTEGER
);
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, seq);
CREATE INDEX jobs_unsettled ON jobs (seq) WHERE ended_at_us IS NULL OR usage_until_us < ended_at_us;
CREATE TABLE job_events (
  job_seq INTEGER NOT NULL REFERENCES jobs (seq),
  time_us INTEGER NOT NULL,
  state   TEXT NOT NULL,
  reason  TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX job_events_by_job ON job_events (job_seq);
CREATE TABLE job_idempotency (
  tenant_id      TEXT NOT NULL,
  key            TEXT NOT NULL,
  request_sha256 TEXT NOT NULL,
  job_seq        INTEGER NOT NULL REFERENCES jobs (seq),
  PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;
CREATE TABLE compute_quotas (
  tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
  quota     TEXT NOT NULL
);
CREATE TABLE node_states (
  node  TEXT PRIMARY KEY,
  state TEXT NOT NULL
);
CREATE TABLE reservations (
  id              TEXT PRIMARY KEY,
  tenant_id       TEXT NOT NULL REFERENCES tenants (id),
  gpu_type        TEXT NOT NULL,
  gpus            INTEGER NOT NULL CHECK (gpus > 0),
  packing         TEXT NOT NULL,
  start_us        INTEGER NOT NULL,
  end_us          INTEGER NOT NULL CHECK (end_us > start_us),
  created_at_us   INTEGER NOT NULL,
  cancelled_at_us INTEGER
);
CREATE INDEX reservations_by_tenant ON reservations (tenant_id);
)sql",
    // 3: the executor's own id for a job's run (a Slurm job id), by which a
    // restarted server re-finds it; empty for the local executor.
    R"sql(
ALTER TABLE jobs ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
)sql",
    // 4: hosted models deployed through the API, as JSON the API layer owns.
    R"sql(
CREATE TABLE model_deployments (
  name       TEXT PRIMARY KEY,
  deployment TEXT NOT NULL
);
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

// A prepared statement, reset on destruction so it can be reused.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  Statement& bind(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int index, std::int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  Statement& bind(int index, std::optional<Timestamp> t) {
    if (t) sqlite3_bind_int64(stmt_, index, t->unix_micros);
    else sqlite3_bind_null(stmt_, index);
    return *this;
  }
  Statement& bind(int index, const std::string& text) { return bind(index, std::string_view(text)); }
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Statement& bind_optional(int index, const std::optional<std::string>& text) {
    if (text) bind(index, std::string_view(*text));
    else sqlite3_bind_null(stmt_, index);
    return *this;
  }
  Statement& bind_blob(int index, const void* data, int size) {
    sqlite3_bind_blob(stmt_, index, data, size, SQLITE_TRANSIENT);
    return *this;
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }

  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::optional<Timestamp> optional_time(int col) const {
    if (is_null(col)) return std::nullopt;
    return Timestamp{int64(col)};
  }
  std::optional<std::string> optional_text(int col) const {
    if (is_null(col)) return std::nullopt;
    return text(col);
  }
  std::string_view blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    return {static_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
  }

  std::string error() const { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

constexpr const char* kTenantColumns = "id, name, kind, created_at_us";
constexpr const char* kKeyColumns =
    "id, tenant_id, name, scopes, lookup_prefix, secret_sha256, created_at_us, expires_at_us, revoked_at_us, replaces";
constexpr const char* kAuditColumns =
    "seq, id, time_us, actor_tenant_id, actor_key_id, request_id, action, target_id, details";

constexpr const char* kJobColumns =
    "seq, id, tenant_id, spec, state, reason, message, exit_code, gpu_type, gpus, pid, start_ticks, preemptions, "
    "created_at_us, state_at_us, started_at_us, ended_at_us, usage_until_us, external_id";
constexpr const char* kReservationColumns =
    "id, tenant_id, gpu_type, gpus, packing, start_us, end_us, created_at_us, cancelled_at_us";

JobRecord read_job(const Statement& s) {
  JobRecord j;
  j.seq = s.int64(0);
  j.id = s.text(1);
  j.tenant_id = s.text(2);
  j.spec_json = s.text(3);
  j.state = s.text(4);
  j.reason = s.text(5);
  j.message = s.text(6);
  if (!s.is_null(7)) j.exit_code = static_cast<int>(s.int64(7));
  j.gpu_type = s.text(8);
  j.gpus = s.text(9);
  j.pid = static_cast<int>(s.int64(10));
  j.start_ticks = s.int64(11);
  j.preemptions = static_cast<std::int32_t>(s.int64(12));
  j.created_at = Timestamp{s.int64(13)};
  j.state_at = Timestamp{s.int64(14)};
  j.started_at = s.optional_time(15);
  j.ended_at = s.optional_time(16);
  j.usage_until = s.optional_time(17);
  j.external_id = s.text(18);
  return j;
}

ReservationRecord read_reservation(const Statement& s) {
  ReservationRecord r;
  r.id = s.text(0);
  r.tenant_id = s.text(1);
  r.gpu_type = s.text(2);
  r.gpus = s.int64(3);
  r.packing = s.text(4);
  r.start = Timestamp{s.int64(5)};
  r.end = Timestamp{s.int64(6)};
  r.created_at = Timestamp{s.int64(7)};
  r.cancelled_at = s.optional_time(8);
  return r;
}

Result<Tenant> read_tenant(const Statement& s) {
  Tenant t;
  t.id = s.text(0);
  t.name = s.text(1);
  auto kind = parse_tenant_kind(s.text(2));
  if (!kind) return Status::internal("corrupt tenant row " + t.id + ": " + kind.status().message());
  t.kind = *kind;
  t.created_at = Timestamp{s.int64(3)};
  return t;
}

Result<ApiKey> read_key(const Statement& s) {
  ApiKey k;
  k.id = s.text(0);
  k.tenant_id = s.text(1);
  k.name = s.text(2);
  std::int64_t scopes = s.int64(3);
  k.lookup_prefix = s.text(4);
  std::string_view hash = s.blob(5);
  // Assert around durable data: a key row read back must have the shape written.
  if (hash.size() != k.secret_sha256.size() || scopes <= 0 || scopes > kAllScopes) {
    return Status::internal("corrupt api key row " + k.id);
  }
  k.scopes = static_cast<ScopeSet>(scopes);
  std::memcpy(k.secret_sha256.data(), hash.data(), hash.size());
  k.created_at = Timestamp{s.int64(6)};
  k.expires_at = s.optional_time(7);
  k.revoked_at = s.optional_time(8);
  k.replaces = s.optional_text(9);
  return k;
}

AuditRecord read_audit(const Statement& s) {
  AuditRecord a;
  a.seq = s.int64(0);
  a.id = s.text(1);
  a.time = Timestamp{s.int64(2)};
  a.actor_tenant_id = s.text(3);
  a.actor_key_id = s.text(4);
  a.request_id = s.text(5);
  a.action = s.text(6);
  a.target_id = s.text(7);
  a.details_json = s.text(8);
  return a;
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  ~SqliteStore() override {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
  }

  Status migrate() {
    std::lock_guard lock(mutex_);
    HR_RETURN_IF_ERROR(exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_us INTEGER NOT NULL)"));
    // Each step reads the version inside its own write transaction, so that
    // two processes opening a new database at once apply each migration once.
    for (;;) {
      HR_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
      auto current = read_version();
      if (!current) {
        (void)exec("ROLLBACK");
        return current.status();
      }
      int v = *current;
      if (v > kSchemaVersion) {
        (void)exec("ROLLBACK");
        return Status::conflict("the database is at schema version " + std::to_string(v) +
                                ", newer than this headroom (" + std::to_string(kSchemaVersion) +
                                "): upgrade headroom");
      }
      if (v == kSchemaVersion) {
        HR_RETURN_IF_ERROR(exec("COMMIT"));
        break;
      }
      Status applied = exec(kMigrations[v]);
      if (applied) {
        auto s = prepare("INSERT INTO schema_migrations (version, applied_at_us) VALUES (?, ?)");
        s.bind(1, std::int64_t{v + 1}).bind(2, SystemClock().now().unix_micros);
        if (s.step() != SQLITE_DONE) applied = Status::internal("recording migration: " + s.error());
      }
      if (!applied) {
        (void)exec("ROLLBACK");
        return Status::internal("migration to schema version " + std::to_string(v + 1) + " failed: " +
                                applied.message());
      }
      HR_RETURN_IF_ERROR(exec("COMMIT"));
    }
    version_ = kSchemaVersion;
    return Status::ok();
  }

  int schema_version() override { return version_; }

  Result<std::optional<std::string>> get_setting(const std::string& name) override {
    std::lock_guard lock(mutex_);
    auto s = prepare("SELECT value FROM settings WHERE name = ?");
    s.bind(1, name);
    int rc = s.step();
    if (rc == SQLITE_ROW) return std::optional<std::string>(s.text(0));
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    return failure("reading setting " + name, s);
  }

  Status bootstrap(const Tenant& admin_tenant, const ApiKey& admin_key, const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      auto existing = prepare("SELECT 1 FROM settings WHERE name = 'admin_tenant_id'");
      if (existing.step() == SQLITE_ROW) return Status::conflict("the store is already bootstrapped");
      HR_RETURN_IF_ERROR(insert_tenant(admin_tenant));
      HR_RETURN_IF_ERROR(insert_key(admin_key));
      auto s = prepare("INSERT INTO settings (name, value) VALUES ('admin_tenant_id', ?)");
      s.bind(1, admin_tenant.id);
      if (s.step() != SQLITE_DONE) return failure("recording the admin tenant", s);
      return insert_audit(audit);
    });
  }

  Status append_audit(const AuditRecord& audit) override {
    return transaction([&]() -> Status { return insert_audit(audit); });
  }

  Status create_tenant(const Tenant& tenant, const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      HR_RETURN_IF_ERROR(insert_tenant(tenant));
      return insert_audit(audit);
    });
  }

  Result<std::optional<Tenant>> find_tenant(const std::string& id) override {
    std::lock_guard lock(mutex_);
    auto s = prepare(std::string("SELECT ") + kTenantColumns + " FROM tenants WHERE id = ?");
    s.bind(1, id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<Tenant>();
    if (rc != SQLITE_ROW) return failure("reading tenant " + id, s);
    HR_ASSIGN_OR_RETURN(Tenant t, read_tenant(s));
    return std::optional<Tenant>(std::move(t));
  }

  Result<Page<Tenant>> list_tenants(const PageRequest& page) override {
    std::lock_guard lock(mutex_);
    return read_page<Tenant>(std::string("SELECT ") + kTenantColumns +
                                 " FROM tenants WHERE rowid > coalesce((SELECT rowid FROM tenants WHERE id = ?1), 0)"
                                 " ORDER BY rowid LIMIT ?2",
                             page, {}, read_tenant);
  }

  Result<std::vector<Tenant>> all_tenants() override {
    std::lock_guard lock(mutex_);
    return read_all<Tenant>(std::string("SELECT ") + kTenantColumns + " FROM tenants ORDER BY rowid", read_tenant);
  }

  Status create_key(const ApiKey& key, const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      HR_RETURN_IF_ERROR(insert_key(key));
      return insert_audit(audit);
    });
  }

  Result<std::optional<ApiKey>> find_key(const std::string& id) override {
    std::lock_guard lock(mutex_);
    return find_key_locked(id);
  }

  Result<Page<ApiKey>> list_keys(const std::string& tenant_id, const PageRequest& page) override {
    std::lock_guard lock(mutex_);
    return read_page<ApiKey>(std::string("SELECT ") + kKeyColumns +
                                 " FROM api_keys WHERE tenant_id = ?3 AND rowid > "
                                 "coalesce((SELECT rowid FROM api_keys WHERE id = ?1), 0) ORDER BY rowid LIMIT ?2",
                             page, tenant_id, read_key);
  }

  Result<std::vector<ApiKey>> all_keys() override {
    std::lock_guard lock(mutex_);
    return read_all<ApiKey>(std::string("SELECT ") + kKeyColumns + " FROM api_keys ORDER BY rowid", read_key);
  }

  Result<std::size_t> count_keys(const std::string& tenant_id) override {
    std::lock_guard lock(mutex_);
    auto s = prepare("SELECT count(*) FROM api_keys WHERE tenant_id = ?");
    s.bind(1, tenant_id);
    if (s.step() != SQLITE_ROW) return failure("counting keys", s);
    return static_cast<std::size_t>(s.int64(0));
  }

  Status revoke_key(const std::string& id, Timestamp revoked_at, const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      auto s = prepare("UPDATE api_keys SET revoked_at_us = ? WHERE id = ? AND revoked_at_us IS NULL");
      s.bind(1, revoked_at.unix_micros).bind(2, id);
      if (s.step() != SQLITE_DONE) return failure("revoking key " + id, s);
      if (sqlite3_changes(db_) != 1) return key_missing_or(id, "is already revoked");
      return insert_audit(audit);
    });
  }

  Status rotate_key(const std::string& old_id, Timestamp old_expires_at, const ApiKey& new_key,
                    const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      auto s = prepare(
          "UPDATE api_keys SET expires_at_us = min(coalesce(expires_at_us, ?1), ?1) "
          "WHERE id = ?2 AND revoked_at_us IS NULL");
      s.bind(1, old_expires_at.unix_micros).bind(2, old_id);
      if (s.step() != SQLITE_DONE) return failure("rotating key " + old_id, s);
      if (sqlite3_changes(db_) != 1) return key_missing_or(old_id, "is revoked and cannot be rotated");
      HR_RETURN_IF_ERROR(insert_key(new_key));
      return insert_audit(audit);
    });
  }

  Result<Page<AuditRecord>> list_audit(const PageRequest& page) override {
    std::lock_guard lock(mutex_);
    return read_page<AuditRecord>(std::string("SELECT ") + kAuditColumns +
                                      " FROM audit_log WHERE seq > "
                                      "coalesce((SELECT seq FROM audit_log WHERE id = ?1), 0) ORDER BY seq LIMIT ?2",
                                  page, {}, [](const Statement& s) -> Result<AuditRecord> { return read_audit(s); });
  }

  // ---- Raw compute ----------------------------------------------------------

  Result<std::int64_t> max_job_seq() override {
    std::lock_guard lock(mutex_);
    auto s = prepare("SELECT coalesce(max(seq), 0) FROM jobs");
    if (s.step() != SQLITE_ROW) return failure("reading the job sequence", s);
    return s.int64(0);
  }

  Status insert_jobs(std::span<JobInsert> batch) override {
    return transaction([&]() -> Status {
      for (JobInsert& item : batch) {
        item.status = Status::ok();
        item.replay.reset();
        if (!item.idempotency_key.empty()) {
          auto seen = prepare(
              "SELECT request_sha256, (SELECT id FROM jobs WHERE seq = job_seq) FROM job_idempotency "
              "WHERE tenant_id = ? AND key = ?");
          seen.bind(1, item.job.tenant_id).bind(2, item.idempotency_key);
          int rc = seen.step();
          if (rc == SQLITE_ROW) {
            if (seen.text(0) != item.request_sha256) {
              item.status = Status::conflict("Idempotency-Key \"" + item.idempotency_key +
                                             "\" was already used for a different request");
              continue;
            }
            HR_ASSIGN_OR_RETURN(auto first, find_job_locked(seen.text(1)));
            CHECK(first.has_value());
            item.replay = std::move(*first);
            continue;
          }
          if (rc != SQLITE_DONE) return failure("reading idempotency keys", seen);
        }
        HR_RETURN_IF_ERROR(write_job(item.job, /*insert=*/true));
        HR_RETURN_IF_ERROR(insert_job_event(item.job.seq, JobEvent{item.job.id, item.job.state_at, item.job.state,
                                                                   item.job.reason, item.job.message}));
        if (!item.idempotency_key.empty()) {
          auto s = prepare(
              "INSERT INTO job_idempotency (tenant_id, key, request_sha256, job_seq) VALUES (?, ?, ?, ?)");
          s.bind(1, item.job.tenant_id).bind(2, item.idempotency_key).bind(3, item.request_sha256);
          s.bind(4, item.job.seq);
          if (s.step() != SQLITE_DONE) return failure("recording an idempotency key", s);
        }
      }
      return Status::ok();
    });
  }

  Status update_jobs(std::span<const JobUpdate> updates) override {
    return transaction([&]() -> Status {
      for (const JobUpdate& u : updates) {
        HR_RETURN_IF_ERROR(write_job(u.job, /*insert=*/false));
        if (!u.event.state.empty()) HR_RETURN_IF_ERROR(insert_job_event(u.job.seq, u.event));
      }
      return Status::ok();
    });
  }

  Result<std::optional<JobRecord>> find_job(const std::string& id) override {
    std::lock_guard lock(mutex_);
    return find_job_locked(id);
  }

  Result<Page<JobRecord>> list_jobs(const JobFilter& filter, const PageRequest& page) override {
    std::lock_guard lock(mutex_);
    auto s = prepare(std::string("SELECT ") + kJobColumns +
                     " FROM jobs WHERE (?1 = '' OR tenant_id = ?1) AND (?2 = '' OR state = ?2) AND seq < "
                     "coalesce((SELECT seq FROM jobs WHERE id = ?3), 9223372036854775807) ORDER BY seq DESC LIMIT ?4");
    s.bind(1, filter.tenant_id).bind(2, filter.state).bind(3, page.after);
    s.bind(4, static_cast<std::int64_t>(page.limit + 1));
    Page<JobRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      if (out.items.size() == page.limit) {
        out.has_more = true;
        break;
      }
      out.items.push_back(read_job(s));
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return failure("listing jobs", s);
    return out;
  }

  Result<std::vector<JobRecord>> unsettled_jobs() override {
    std::lock_guard lock(mutex_);
    return read_all<JobRecord>(std::string("SELECT ") + kJobColumns +
                                   " FROM jobs WHERE ended_at_us IS NULL OR usage_until_us < ended_at_us ORDER BY seq",
                               [](const Statement& s) -> Result<JobRecord> { return read_job(s); });
  }

  Result<std::vector<JobEvent>> job_events(const std::string& job_id) override {
    std::lock_guard lock(mutex_);
    auto s = prepare(
        "SELECT time_us, state, reason, message FROM job_events "
        "WHERE job_seq = (SELECT seq FROM jobs WHERE id = ?) ORDER BY rowid");
    s.bind(1, job_id);
    std::vector<JobEvent> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      out.push_back(JobEvent{job_id, Timestamp{s.int64(0)}, s.text(1), s.text(2), s.text(3)});
    }
    if (rc != SQLITE_DONE) return failure("reading job events", s);
    return out;
  }

  Status set_quota(const std::string& tenant_id, const std::string& quota_json, const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      auto s = quota_json.empty()
                   ? prepare("DELETE FROM compute_quotas WHERE tenant_id = ?1")
                   : prepare("INSERT INTO compute_quotas (tenant_id, quota) VALUES (?1, ?2) "
                             "ON CONFLICT (tenant_id) DO UPDATE SET quota = excluded.quota");
      s.bind(1, tenant_id);
      if (!quota_json.empty()) s.bind(2, quota_json);
      if (s.step() != SQLITE_DONE) return failure("setting the quota of " + tenant_id, s);
      return insert_audit(audit);
    });
  }

  Result<std::optional<std::string>> find_quota(const std::string& tenant_id) override {
    std::lock_guard lock(mutex_);
    auto s = prepare("SELECT quota FROM compute_quotas WHERE tenant_id = ?");
    s.bind(1, tenant_id);
    int rc = s.step();
    if (rc == SQLITE_ROW) return std::optional<std::string>(s.text(0));
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    return failure("reading the quota of " + tenant_id, s);
  }

  Result<std::vector<std::pair<std::string, std::string>>> all_quotas() override {
    std::lock_guard lock(mutex_);
    return read_pairs("SELECT tenant_id, quota FROM compute_quotas ORDER BY tenant_id");
  }

  Status create_deployment(const std::string& name, const std::string& deployment_json,
                           const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      auto s = prepare("INSERT INTO model_deployments (name, deployment) VALUES (?1, ?2)");
      s.bind(1, name).bind(2, deployment_json);
      const int rc = s.step();
      if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status::already_exists("a model named \"" + name + "\" is already deployed");
      }
      if (rc != SQLITE_DONE) return failure("deploying model " + name, s);
      return insert_audit(audit);
    });
  }

  Status delete_deployment(const std::string& name, const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      auto s = prepare("DELETE FROM model_deployments WHERE name = ?1");
      s.bind(1, name);
      if (s.step() != SQLITE_DONE) return failure("removing the deployment of " + name, s);
      if (sqlite3_changes(db_) == 0) return Status::not_found("no model named \"" + name + "\" is deployed");
      return insert_audit(audit);
    });
  }

  Result<std::vector<std::pair<std::string, std::string>>> all_deployments() override {
    std::lock_guard lock(mutex_);
    return read_pairs("SELECT name, deployment FROM model_deployments ORDER BY name");
  }

  Status set_node_state(const std::string& node, const std::string& state, const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      auto s = state == "up" ? prepare("DELETE FROM node_states WHERE node = ?1")
                             : prepare("INSERT INTO node_states (node, state) VALUES (?1, ?2) "
                                       "ON CONFLICT (node) DO UPDATE SET state = excluded.state");
      s.bind(1, node);
      if (state != "up") s.bind(2, state);
      if (s.step() != SQLITE_DONE) return failure("setting the state of node " + node, s);
      return insert_audit(audit);
    });
  }

  Result<std::vector<std::pair<std::string, std::string>>> node_states() override {
    std::lock_guard lock(mutex_);
    return read_pairs("SELECT node, state FROM node_states ORDER BY node");
  }

  Status create_reservation(const ReservationRecord& r, const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      auto s = prepare(
          "INSERT INTO reservations (id, tenant_id, gpu_type, gpus, packing, start_us, end_us, created_at_us, "
          "cancelled_at_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
      s.bind(1, r.id).bind(2, r.tenant_id).bind(3, r.gpu_type).bind(4, r.gpus).bind(5, r.packing);
      s.bind(6, r.start.unix_micros).bind(7, r.end.unix_micros).bind(8, r.created_at.unix_micros);
      s.bind(9, r.cancelled_at);
      if (s.step() != SQLITE_DONE) return failure("creating reservation", s);
      return insert_audit(audit);
    });
  }

  Status cancel_reservation(const std::string& id, Timestamp at, const AuditRecord& audit) override {
    return transaction([&]() -> Status {
      auto s = prepare("UPDATE reservations SET cancelled_at_us = ? WHERE id = ? AND cancelled_at_us IS NULL");
      s.bind(1, at.unix_micros).bind(2, id);
      if (s.step() != SQLITE_DONE) return failure("cancelling reservation " + id, s);
      if (sqlite3_changes(db_) != 1) {
        HR_ASSIGN_OR_RETURN(auto r, find_reservation_locked(id));
        if (!r) return Status::not_found("reservation " + id + " not found");
        return Status::conflict("reservation " + id + " is already cancelled");
      }
      return insert_audit(audit);
    });
  }

  Result<std::optional<ReservationRecord>> find_reservation(const std::string& id) override {
    std::lock_guard lock(mutex_);
    return find_reservation_locked(id);
  }

  Result<Page<ReservationRecord>> list_reservations(const std::string& tenant_id, const PageRequest& page) override {
    std::lock_guard lock(mutex_);
    return read_page<ReservationRecord>(
        std::string("SELECT ") + kReservationColumns +
            " FROM reservations WHERE (?3 = '' OR tenant_id = ?3) AND rowid > "
            "coalesce((SELECT rowid FROM reservations WHERE id = ?1), 0) ORDER BY rowid LIMIT ?2",
        page, tenant_id, [](const Statement& s) -> Result<ReservationRecord> { return read_reservation(s); },
        /*always_bind_scope=*/true);
  }

  Result<std::vector<ReservationRecord>> live_reservations(Timestamp now) override {
    std::lock_guard lock(mutex_);
    auto s = prepare(std::string("SELECT ") + kReservationColumns +
                     " FROM reservations WHERE cancelled_at_us IS NULL AND end_us > ? ORDER BY start_us");
    s.bind(1, now.unix_micros);
    std::vector<ReservationRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_reservation(s));
    if (rc != SQLITE_DONE) return failure("listing reservations", s);
    return out;
  }

 private:
  Status write_job(const JobRecord& j, bool insert) {
    CHECK(!j.id.empty() && !j.tenant_id.empty() && !j.state.empty());
    auto s = insert ? prepare(
                          "INSERT INTO jobs (tenant_id, spec, state, reason, message, exit_code, gpu_type, gpus, pid, "
                          "start_ticks, preemptions, created_at_us, state_at_us, started_at_us, ended_at_us, "
                          "usage_until_us, external_id, id, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                          "?, ?)")
                    : prepare(
                          "UPDATE jobs SET tenant_id = ?, spec = ?, state = ?, reason = ?, message = ?, "
                          "exit_code = ?, gpu_type = ?, gpus = ?, pid = ?, start_ticks = ?, preemptions = ?, "
                          "created_at_us = ?, state_at_us = ?, started_at_us = ?, ended_at_us = ?, "
                          "usage_until_us = ?, external_id = ? WHERE id = ? AND seq = ?");
    s.bind(1, j.tenant_id).bind(2, j.spec_json).bind(3, j.state).bind(4, j.reason).bind(5, j.message);
    if (j.exit_code) s.bind(6, std::int64_t{*j.exit_code});
    s.bind(7, j.gpu_type).bind(8, j.gpus).bind(9, std::int64_t{j.pid}).bind(10, j.start_ticks);
    s.bind(11, std::int64_t{j.preemptions}).bind(12, j.created_at.unix_micros).bind(13, j.state_at.unix_micros);
    s.bind(14, j.started_at).bind(15, j.ended_at).bind(16, j.usage_until).bind(17, j.external_id).bind(18, j.id);
    CHECK(j.seq > 0);
    s.bind(19, j.seq);
    if (s.step() != SQLITE_DONE) return failure(insert ? "inserting job " + j.id : "updating job " + j.id, s);
    if (!insert && sqlite3_changes(db_) != 1) return Status::internal("updating job " + j.id + ": no such job");
    return Status::ok();
  }

  Status insert_job_event(std::int64_t seq, const JobEvent& e) {
    auto s = prepare("INSERT INTO job_events (job_seq, time_us, state, reason, message) VALUES (?, ?, ?, ?, ?)");
    s.bind(1, seq).bind(2, e.time.unix_micros).bind(3, e.state).bind(4, e.reason).bind(5, e.message);
    if (s.step() != SQLITE_DONE) return failure("writing a job event", s);
    return Status::ok();
  }

  Result<std::optional<JobRecord>> find_job_locked(const std::string& id) {
    auto s = prepare(std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?");
    s.bind(1, id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<JobRecord>();
    if (rc != SQLITE_ROW) return failure("reading job " + id, s);
    return std::optional<JobRecord>(read_job(s));
  }

  Result<std::optional<ReservationRecord>> find_reservation_locked(const std::string& id) {
    auto s = prepare(std::string("SELECT ") + kReservationColumns + " FROM reservations WHERE id = ?");
    s.bind(1, id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<ReservationRecord>();
    if (rc != SQLITE_ROW) return failure("reading reservation " + id, s);
    return std::optional<ReservationRecord>(read_reservation(s));
  }

  Result<std::vector<std::pair<std::string, std::string>>> read_pairs(const std::string& sql) {
    auto s = prepare(sql);
    std::vector<std::pair<std::string, std::string>> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.emplace_back(s.text(0), s.text(1));
    if (rc != SQLITE_DONE) return failure("listing", s);
    return out;
  }

  Status exec(const char* sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error ? error : sqlite3_errmsg(db_);
      sqlite3_free(error);
      return Status::internal("sqlite: " + message);
    }
    return Status::ok();
  }

  // A cached prepared statement. Preparing fails only on a bug in our SQL.
  Statement prepare(const std::string& sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      sqlite3_stmt* stmt = nullptr;
      int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr);
      CHECK(rc == SQLITE_OK) << "preparing \"" << sql << "\": " << sqlite3_errmsg(db_);
      it = statements_.emplace(sql, stmt).first;
    }
    return Statement(db_, it->second);
  }

  Status failure(const std::string& what, const Statement& s) {
    int rc = sqlite3_extended_errcode(db_);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return Status::unavailable(what + ": the database is busy");
    return Status::internal(what + ": sqlite: " + s.error());
  }

  // Runs `body` in an IMMEDIATE transaction; commits when it returns ok.
  template <typename Body>
  Status transaction(Body body) {
    std::lock_guard lock(mutex_);
    HR_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    Status status = body();
    if (!status) {
      (void)exec("ROLLBACK");
      return status;
    }
    Status committed = exec("COMMIT");
    if (!committed) (void)exec("ROLLBACK");
    return committed;
  }

  Result<int> read_version() {
    auto s = prepare("SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (s.step() != SQLITE_ROW) return failure("reading the schema version", s);
    return static_cast<int>(s.int64(0));
  }

  Status insert_tenant(const Tenant& t) {
    CHECK(!t.id.empty() && !t.name.empty());
    auto s = prepare("INSERT INTO tenants (id, name, kind, created_at_us) VALUES (?, ?, ?, ?)");
    s.bind(1, t.id).bind(2, t.name).bind(3, to_string(t.kind)).bind(4, t.created_at.unix_micros);
    int rc = s.step();
    if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_UNIQUE && s.error().find("tenants.name") != std::string::npos) {
      return Status::already_exists("a tenant named \"" + t.name + "\" already exists");
    }
    if (rc != SQLITE_DONE) return failure("creating tenant", s);
    return Status::ok();
  }

  Status insert_key(const ApiKey& k) {
    CHECK(!k.id.empty() && !k.tenant_id.empty() && k.scopes != 0 && (k.scopes & ~kAllScopes) == 0);
    auto s = prepare(
        "INSERT INTO api_keys (id, tenant_id, name, scopes, lookup_prefix, secret_sha256, created_at_us, "
        "expires_at_us, revoked_at_us, replaces) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, k.id).bind(2, k.tenant_id).bind(3, k.name).bind(4, std::int64_t{k.scopes}).bind(5, k.lookup_prefix);
    s.bind_blob(6, k.secret_sha256.data(), static_cast<int>(k.secret_sha256.size()));
    s.bind(7, k.created_at.unix_micros).bind(8, k.expires_at).bind(9, k.revoked_at).bind_optional(10, k.replaces);
    int rc = s.step();
    if (rc != SQLITE_DONE) return failure("creating key", s);
    // Read back what was written: a key that cannot authenticate is worse than an error now.
    auto back = find_key_locked(k.id);
    if (!back) return back.status();
    CHECK(*back && (*back)->secret_sha256 == k.secret_sha256 && (*back)->scopes == k.scopes);
    return Status::ok();
  }

  Status insert_audit(const AuditRecord& a) {
    CHECK(!a.id.empty() && !a.action.empty());
    auto s = prepare(
        "INSERT INTO audit_log (id, time_us, actor_tenant_id, actor_key_id, request_id, action, target_id, details) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, a.id).bind(2, a.time.unix_micros).bind(3, a.actor_tenant_id).bind(4, a.actor_key_id);
    s.bind(5, a.request_id).bind(6, a.action).bind(7, a.target_id).bind(8, a.details_json);
    if (s.step() != SQLITE_DONE) return failure("writing the audit log", s);
    return Status::ok();
  }

  // After an UPDATE of a key matched no row: not_found, or conflict with `why`.
  Status key_missing_or(const std::string& id, std::string_view why) {
    auto key = find_key_locked(id);
    if (!key) return key.status();
    if (!*key) return Status::not_found("key " + id + " not found");
    return Status::conflict("key " + id + " " + std::string(why));
  }

  Result<std::optional<ApiKey>> find_key_locked(const std::string& id) {
    auto s = prepare(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = ?");
    s.bind(1, id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<ApiKey>();
    if (rc != SQLITE_ROW) return failure("reading key " + id, s);
    HR_ASSIGN_OR_RETURN(ApiKey k, read_key(s));
    return std::optional<ApiKey>(std::move(k));
  }

  template <typename T, typename Reader>
  Result<Page<T>> read_page(const std::string& sql, const PageRequest& page, const std::string& scope_id,
                            Reader reader, bool always_bind_scope = false) {
    auto s = prepare(sql);
    s.bind(1, page.after).bind(2, static_cast<std::int64_t>(page.limit + 1));
    if (!scope_id.empty() || always_bind_scope) s.bind(3, scope_id);
    Page<T> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      if (out.items.size() == page.limit) {
        out.has_more = true;
        break;
      }
      HR_ASSIGN_OR_RETURN(T item, reader(s));
      out.items.push_back(std::move(item));
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return failure("listing", s);
    return out;
  }

  template <typename T, typename Reader>
  Result<std::vector<T>> read_all(const std::string& sql, Reader reader) {
    auto s = prepare(sql);
    std::vector<T> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      HR_ASSIGN_OR_RETURN(T item, reader(s));
      out.push_back(std::move(item));
    }
    if (rc != SQLITE_DONE) return failure("listing", s);
    return out;
  }

  sqlite3* db_;
  std::mutex mutex_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
  int version_ = 0;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Status::unavailable("cannot open database " + path + ": " + message);
  }
  auto store = std::make_unique<SqliteStore>(db);
  sqlite3_busy_timeout(db, static_cast<int>(limits::kStoreBusyTimeoutMs));
  // WAL: readers never block the writer; FULL: a commit is on disk before it returns.
  // Switching to WAL skips the busy handler when another connection holds the
  // file (as at two first opens at once), so retry it within the busy timeout.
  auto retry_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits::kStoreBusyTimeoutMs);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    for (;;) {
      char* error = nullptr;
      int pragma_rc = sqlite3_exec(db, pragma, nullptr, nullptr, &error);
      std::string message = error ? error : "unknown error";
      sqlite3_free(error);
      if (pragma_rc == SQLITE_OK) break;
      if ((pragma_rc == SQLITE_BUSY || pragma_rc == SQLITE_LOCKED) && std::chrono::steady_clock::now() < retry_until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        continue;
      }
      return Status::unavailable("cannot configure database " + path + " (" + pragma + "): " + message);
    }
  }
  HR_RETURN_IF_ERROR(store->migrate());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace headroom::store
