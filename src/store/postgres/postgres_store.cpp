#include "store/postgres/postgres_store.h"

#include <libpq-fe.h>

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common/check.h"
#include "common/limits.h"

namespace headroom::store {
namespace {

// Migrations, in order; migration i takes the schema from version i to i+1.
// A released migration is never edited: add a new one. The tables are the
// SQLite store's (sqlite/sqlite_store.cpp), column for column, with three
// differences: SQLite's implicit rowid, which orders tenants, keys,
// reservations and job events by creation, is an explicit identity column
// `seq` (or `id`) here; the audit log's append-only rule is a trigger
// function; and job_idempotency's reference to its job is checked at commit,
// so that the key can be claimed before the job is written (see insert_jobs).
constexpr const char* kMigrations[] = {
    // 1: tenants, API keys, the append-only audit log, settings.
    R"sql(
CREATE TABLE tenants (
  seq           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  kind          TEXT NOT NULL CHECK (kind IN ('internal', 'external')),
  created_at_us BIGINT NOT NULL
);
CREATE TABLE api_keys (
  seq           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
  id            TEXT PRIMARY KEY,
  tenant_id     TEXT NOT NULL REFERENCES tenants (id),
  name          TEXT NOT NULL,
  scopes        BIGINT NOT NULL,
  lookup_prefix TEXT NOT NULL UNIQUE,
  secret_sha256 BYTEA NOT NULL CHECK (length(secret_sha256) = 32),
  created_at_us BIGINT NOT NULL,
  expires_at_us BIGINT,
  revoked_at_us BIGINT,
  replaces      TEXT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, seq);
CREATE TABLE audit_log (
  seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id              TEXT NOT NULL UNIQUE,
  time_us         BIGINT NOT NULL,
  actor_tenant_id TEXT NOT NULL,
  actor_key_id    TEXT NOT NULL,
  request_id      TEXT NOT NULL,
  action          TEXT NOT NULL,
  target_id       TEXT NOT NULL,
  details         TEXT NOT NULL
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only';
END
$$;
-- Per statement, so that even an UPDATE or DELETE matching no row is refused.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE TABLE settings (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql",
    // 2: raw compute: jobs and their history, idempotency keys, quotas,
    // node states, reservations.
    R"sql(
CREATE TABLE jobs (
  seq            BIGINT PRIMARY KEY,
  id             TEXT NOT NULL UNIQUE,
  tenant_id      TEXT NOT NULL REFERENCES tenants (id),
  spec           TEXT NOT NULL,
  state          TEXT NOT NULL,
  reason         TEXT NOT NULL,
  message        TEXT NOT NULL,
  exit_code      BIGINT,
  gpu_type       TEXT NOT NULL,
  gpus           TEXT NOT NULL,
  pid            BIGINT NOT NULL,
  start_ticks    BIGINT NOT NULL,
  preemptions    BIGINT NOT NULL,
  created_at_us  BIGINT NOT NULL,
  state_at_us    BIGINT NOT NULL,
  started_at_us  BIGINT,
  ended_at_us    BIGINT,
  usage_until_us BIGINT
);
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, seq);
CREATE INDEX jobs_unsettled ON jobs (seq) WHERE ended_at_us IS NULL OR usage_until_us < ended_at_us;
CREATE TABLE job_events (
  id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_seq BIGINT NOT NULL REFERENCES jobs (seq),
  time_us BIGINT NOT NULL,
  state   TEXT NOT NULL,
  reason  TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX job_events_by_job ON job_events (job_seq, id);
CREATE TABLE job_idempotency (
  tenant_id      TEXT NOT NULL,
  key            TEXT NOT NULL,
  request_sha256 TEXT NOT NULL,
  job_seq        BIGINT NOT NULL REFERENCES jobs (seq) DEFERRABLE INITIALLY DEFERRED,
  PRIMARY KEY (tenant_id, key)
);
CREATE TABLE compute_quotas (
  tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
  quota     TEXT NOT NULL
);
CREATE TABLE node_states (
  node  TEXT PRIMARY KEY,
  state TEXT NOT NULL
);
CREATE TABLE reservations (
  seq             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
  id              TEXT PRIMARY KEY,
  tenant_id       TEXT NOT NULL REFERENCES tenants (id),
  gpu_type        TEXT NOT NULL,
  gpus            BIGINT NOT NULL CHECK (gpus > 0),
  packing         TEXT NOT NULL,
  start_us        BIGINT NOT NULL,
  end_us          BIGINT NOT NULL CHECK (end_us > start_us),
  created_at_us   BIGINT NOT NULL,
  cancelled_at_us BIGINT
);
CREATE INDEX reservations_by_tenant ON reservations (tenant_id, seq);
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

// The advisory lock that serialises migrations between processes ("hrmigrat"
// as ASCII). Leader election will take a lock of its own, with another key.
constexpr std::int64_t kMigrationLockKey = 0x68726d6967726174;
// The advisory lock every audited change holds for its whole transaction
// ("hraudit" as ASCII). Identity columns are drawn when a row is inserted, not
// when it commits: without it, two changes committing out of order would
// leave a lower audit seq (or tenant, key, reservation seq) appearing after a
// reader had paged past it, and keyset paging would skip it for good. With it
// these sequences grow in commit order, as in SQLite, whose writes are serial
// anyway. Audited changes are administrative and rare; job submissions and
// updates are not audited and do not take it.
constexpr std::int64_t kAuditLockKey = 0x0068726175646974;

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// One parameter of a statement, in PostgreSQL's text format; nullopt is NULL.
class Param {
 public:
  Param(std::string_view text) : value_(std::string(text)) {}    // NOLINT: implicit by design
  Param(const std::string& text) : value_(text) {}               // NOLINT
  Param(const char* text) : value_(std::string(text)) {}         // NOLINT
  Param(std::int64_t value) : value_(std::to_string(value)) {}   // NOLINT
  Param(Timestamp t) : value_(std::to_string(t.unix_micros)) {}  // NOLINT
  Param(std::optional<Timestamp> t) {                            // NOLINT
    if (t) value_ = std::to_string(t->unix_micros);
  }
  Param(const std::optional<std::string>& text) : value_(text) {}  // NOLINT
  static Param null() { return Param(std::optional<std::string>()); }
  // bytea's hex input format, "\x00ff...".
  static Param bytes(const std::uint8_t* data, std::size_t size) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex = "\\x";
    for (std::size_t i = 0; i < size; ++i) {
      hex += kHex[data[i] >> 4];
      hex += kHex[data[i] & 15];
    }
    return Param(hex);
  }

  const char* c_str() const { return value_ ? value_->c_str() : nullptr; }
  // PostgreSQL's text cannot hold a NUL byte; in the text format it would cut
  // the value short without a word, so such a value is refused instead.
  bool has_nul() const { return value_ && value_->find('\0') != std::string::npos; }

 private:
  std::optional<std::string> value_;
};

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// The rows of a statement, in text format.
class Rows {
 public:
  explicit Rows(ResultPtr result) : result_(std::move(result)) {}

  int size() const { return PQntuples(result_.get()); }
  // Rows an INSERT, UPDATE or DELETE changed.
  std::int64_t affected() const {
    const char* n = PQcmdTuples(result_.get());
    std::int64_t value = 0;
    std::from_chars(n, n + std::strlen(n), value);
    return value;
  }
  bool is_null(int row, int col) const { return PQgetisnull(result_.get(), row, col) != 0; }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(result_.get(), row, col),
                       static_cast<std::size_t>(PQgetlength(result_.get(), row, col)));
  }
  std::int64_t int64(int row, int col) const {
    const char* p = PQgetvalue(result_.get(), row, col);
    std::size_t n = static_cast<std::size_t>(PQgetlength(result_.get(), row, col));
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(p, p + n, value);
    // The columns read this way are BIGINT: anything else is a bug in our SQL.
    CHECK(ec == std::errc() && end == p + n) << "column " << col << " is not an integer: " << std::string(p, n);
    return value;
  }
  std::optional<Timestamp> optional_time(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return Timestamp{int64(row, col)};
  }
  std::optional<std::string> optional_text(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return text(row, col);
  }
  // A bytea column (hex output format, "\x..."); nullopt when malformed.
  std::optional<std::string> bytes(int row, int col) const {
    std::string hex = text(row, col);
    if (hex.size() < 2 || hex[0] != '\\' || hex[1] != 'x' || hex.size() % 2 != 0) return std::nullopt;
    std::string out;
    for (std::size_t i = 2; i < hex.size(); i += 2) {
      unsigned value = 0;
      auto [end, ec] = std::from_chars(hex.data() + i, hex.data() + i + 2, value, 16);
      if (ec != std::errc() || end != hex.data() + i + 2) return std::nullopt;
      out += static_cast<char>(value);
    }
    return out;
  }

 private:
  ResultPtr result_;
};

// One connection to the server, used by one thread at a time (the pool sees
// to that), with the statements it has prepared.
class Connection {
 public:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { PQfinish(conn_); }

  bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }
  // Outside any transaction: what a connection must be to go back to the pool.
  bool idle() const { return PQtransactionStatus(conn_) == PQTRANS_IDLE; }
  // The SQLSTATE and constraint of the last failed statement ("" when none).
  const std::string& last_sqlstate() const { return last_sqlstate_; }
  const std::string& last_constraint() const { return last_constraint_; }

  // Runs `sql` as a prepared statement (prepared on this connection at its
  // first use). `what` names the operation in the error.
  Result<Rows> run(const std::string& sql, std::initializer_list<Param> params, std::string_view what) {
    last_sqlstate_.clear();
    last_constraint_.clear();
    for (const Param& p : params) {
      if (p.has_nul()) {
        return Status::invalid_argument(std::string(what) +
                                        ": a value holds a NUL byte, which PostgreSQL cannot store");
      }
    }
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      std::string name = "hr" + std::to_string(prepared_.size() + 1);
      ResultPtr made(PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(params.size()), nullptr));
      if (PQresultStatus(made.get()) != PGRES_COMMAND_OK) return failure(made.get(), what);
      it = prepared_.emplace(sql, std::move(name)).first;
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const Param& p : params) values.push_back(p.c_str());
    ResultPtr result(PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                                    nullptr, /*resultFormat=*/0));
    ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) return failure(result.get(), what);
    return Rows(std::move(result));
  }

  // Runs SQL text without parameters (transaction control, migrations; it may
  // hold several statements).
  Status exec(const char* sql, std::string_view what) {
    last_sqlstate_.clear();
    last_constraint_.clear();
    ResultPtr result(PQexec(conn_, sql));
    ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) return failure(result.get(), what);
    return Status::ok();
  }

  // Commits the open transaction. PostgreSQL answers COMMIT of a transaction
  // that had failed with a successful "ROLLBACK": that is an error here.
  Status commit() {
    last_sqlstate_.clear();
    last_constraint_.clear();
    ResultPtr result(PQexec(conn_, "COMMIT"));
    if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) return failure(result.get(), "committing");
    if (std::string_view(PQcmdStatus(result.get())) != "COMMIT") {
      return Status::internal("committing: the transaction had failed, and was rolled back");
    }
    return Status::ok();
  }

 private:
  // The error of a failed statement: unavailable when the connection or the
  // server is the cause (retrying later may work), internal otherwise.
  Status failure(const PGresult* result, std::string_view what) {
    const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    const char* constraint = result ? PQresultErrorField(result, PG_DIAG_CONSTRAINT_NAME) : nullptr;
    last_sqlstate_ = state ? state : "";
    last_constraint_ = constraint ? constraint : "";
    std::string message =
        trimmed(result && *PQresultErrorMessage(result) ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
    std::string_view code = last_sqlstate_;
    // Class 08: connection exceptions; 57P: the server is shutting down or
    // restarting; 53: out of resources (too many connections).
    if (broken() || code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")) {
      return Status::unavailable(std::string(what) + ": PostgreSQL is unavailable: " + message);
    }
    // Class 22: data exceptions (text that is not UTF-8, a value out of range).
    if (code.starts_with("22")) return Status::invalid_argument(std::string(what) + ": " + message);
    // Serialization failures, deadlocks and lock timeouts: busy, retry later.
    if (code == "40001" || code == "40P01" || code == "55P03") {
      return Status::unavailable(std::string(what) + ": the database is busy: " + message);
    }
    return Status::internal(std::string(what) + ": postgres: " + message);
  }

  PGconn* conn_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> statement name
  std::string last_sqlstate_, last_constraint_;
};

void ignore_notice(void*, const char*) {}

Result<std::unique_ptr<Connection>> connect(const std::string& url) {
  // The URL comes after the defaults so that its own parameters win.
  std::string timeout = std::to_string(limits::kStorePostgresConnectTimeoutS);
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), "headroom", url.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return Status::unavailable("cannot connect to PostgreSQL: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = trimmed(PQerrorMessage(conn));
    PQfinish(conn);
    return Status::unavailable("cannot connect to PostgreSQL at " + redact_postgres_url(url) + ": " + message);
  }
  // Notices ("relation already exists, skipping") are not for the operator's terminal.
  PQsetNoticeProcessor(conn, ignore_notice, nullptr);
  return std::make_unique<Connection>(conn);
}

// At most limits::kStorePostgresConnections connections, opened on demand.
class Pool {
 public:
  explicit Pool(std::string url) : url_(std::move(url)) {}

  // A borrowed connection; back to the pool when destroyed (closed instead
  // when it is broken or still inside a transaction: see give_back).
  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (conn_) pool_->give_back(std::move(conn_));
    }
    Connection& operator*() { return *conn_; }
    Connection* operator->() { return conn_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  Result<Lease> acquire() {
    std::unique_lock lock(mutex_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits::kStoreBusyTimeoutMs);
    bool free =
        freed_.wait_until(lock, deadline, [&] { return !idle_.empty() || open_ < limits::kStorePostgresConnections; });
    if (!free) {
      return Status::unavailable("the PostgreSQL store is busy: all " +
                                 std::to_string(limits::kStorePostgresConnections) + " connections in use for " +
                                 std::to_string(limits::kStoreBusyTimeoutMs) + " ms");
    }
    if (!idle_.empty()) {
      std::unique_ptr<Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
    ++open_;  // counted now, so that no other thread opens one past the bound
    lock.unlock();
    auto conn = connect(url_);
    if (!conn) {
      lock.lock();
      --open_;
      freed_.notify_one();
      return conn.status();
    }
    return Lease(this, std::move(conn).value());
  }

 private:
  void give_back(std::unique_ptr<Connection> conn) {
    std::lock_guard lock(mutex_);
    // A connection the server dropped is closed; the next caller opens a new
    // one. So is one left inside a transaction (a failed ROLLBACK): its next
    // user's BEGIN would only warn, and run in what is left of this one.
    if (conn->broken() || !conn->idle()) {
      // A connection found dead most often means the server restarted or
      // failed over: the idle ones are dead too, and are closed with it, so
      // that a retry gets a fresh connection rather than the next dead one.
      if (conn->broken()) {
        open_ -= idle_.size();
        idle_.clear();
      }
      --open_;
      conn.reset();
    } else {
      idle_.push_back(std::move(conn));
    }
    freed_.notify_one();
  }

  const std::string url_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;  // idle and lent
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

std::string select(const char* columns, std::string_view rest) {
  return std::string("SELECT ") + columns + " " + std::string(rest);
}

Result<Tenant> read_tenant(const Rows& r, int i) {
  Tenant t;
  t.id = r.text(i, 0);
  t.name = r.text(i, 1);
  auto kind = parse_tenant_kind(r.text(i, 2));
  if (!kind) return Status::internal("corrupt tenant row " + t.id + ": " + kind.status().message());
  t.kind = *kind;
  t.created_at = Timestamp{r.int64(i, 3)};
  return t;
}

Result<ApiKey> read_key(const Rows& r, int i) {
  ApiKey k;
  k.id = r.text(i, 0);
  k.tenant_id = r.text(i, 1);
  k.name = r.text(i, 2);
  std::int64_t scopes = r.int64(i, 3);
  k.lookup_prefix = r.text(i, 4);
  std::optional<std::string> hash = r.bytes(i, 5);
  // Assert around durable data: a key row read back must have the shape written.
  if (!hash || hash->size() != k.secret_sha256.size() || scopes <= 0 || scopes > kAllScopes) {
    return Status::internal("corrupt api key row " + k.id);
  }
  k.scopes = static_cast<ScopeSet>(scopes);
  std::memcpy(k.secret_sha256.data(), hash->data(), hash->size());
  k.created_at = Timestamp{r.int64(i, 6)};
  k.expires_at = r.optional_time(i, 7);
  k.revoked_at = r.optional_time(i, 8);
  k.replaces = r.optional_text(i, 9);
  return k;
}

Result<AuditRecord> read_audit(const Rows& r, int i) {
  AuditRecord a;
  a.seq = r.int64(i, 0);
  a.id = r.text(i, 1);
  a.time = Timestamp{r.int64(i, 2)};
  a.actor_tenant_id = r.text(i, 3);
  a.actor_key_id = r.text(i, 4);
  a.request_id = r.text(i, 5);
  a.action = r.text(i, 6);
  a.target_id = r.text(i, 7);
  a.details_json = r.text(i, 8);
  return a;
}

Result<JobRecord> read_job(const Rows& r, int i) {
  JobRecord j;
  j.seq = r.int64(i, 0);
  j.id = r.text(i, 1);
  j.tenant_id = r.text(i, 2);
  j.spec_json = r.text(i, 3);
  j.state = r.text(i, 4);
  j.reason = r.text(i, 5);
  j.message = r.text(i, 6);
  if (!r.is_null(i, 7)) j.exit_code = static_cast<int>(r.int64(i, 7));
  j.gpu_type = r.text(i, 8);
  j.gpus = r.text(i, 9);
  j.pid = static_cast<int>(r.int64(i, 10));
  j.start_ticks = r.int64(i, 11);
  j.preemptions = static_cast<std::int32_t>(r.int64(i, 12));
  j.created_at = Timestamp{r.int64(i, 13)};
  j.state_at = Timestamp{r.int64(i, 14)};
  j.started_at = r.optional_time(i, 15);
  j.ended_at = r.optional_time(i, 16);
  j.usage_until = r.optional_time(i, 17);
  j.external_id = r.text(i, 18);
  return j;
}

Result<ReservationRecord> read_reservation(const Rows& r, int i) {
  ReservationRecord res;
  res.id = r.text(i, 0);
  res.tenant_id = r.text(i, 1);
  res.gpu_type = r.text(i, 2);
  res.gpus = r.int64(i, 3);
  res.packing = r.text(i, 4);
  res.start = Timestamp{r.int64(i, 5)};
  res.end = Timestamp{r.int64(i, 6)};
  res.created_at = Timestamp{r.int64(i, 7)};
  res.cancelled_at = r.optional_time(i, 8);
  return res;
}

template <typename T, typename Reader>
Result<std::vector<T>> read_rows(const Rows& rows, Reader reader) {
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(rows.size()));
  for (int i = 0; i < rows.size(); ++i) {
    HR_ASSIGN_OR_RETURN(T item, reader(rows, i));
    out.push_back(std::move(item));
  }
  return out;
}

// A page from rows fetched with LIMIT page.limit + 1: the extra row only says
// that there is more.
template <typename T, typename Reader>
Result<Page<T>> read_page(const Rows& rows, const PageRequest& page, Reader reader) {
  Page<T> out;
  for (int i = 0; i < rows.size(); ++i) {
    if (out.items.size() == page.limit) {
      out.has_more = true;
      break;
    }
    HR_ASSIGN_OR_RETURN(T item, reader(rows, i));
    out.items.push_back(std::move(item));
  }
  return out;
}

std::int64_t limit_of(const PageRequest& page) { return static_cast<std::int64_t>(page.limit + 1); }

// Text sorted byte by byte, as SQLite sorts it, whatever the database's locale.
constexpr const char* kBytewise = " COLLATE \"C\"";

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(std::string url) : pool_(std::move(url)) {}

  Status migrate() {
    auto status = transaction([&](Connection& c) -> Status {
      // Held to the end of this transaction: a second process opening the
      // same new database waits here, then finds the schema made.
      HR_RETURN_IF_ERROR(
          c.run("SELECT pg_advisory_xact_lock($1)", {kMigrationLockKey}, "locking for migrations").status());
      HR_RETURN_IF_ERROR(c.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at_us BIGINT NOT NULL)",
          "creating schema_migrations"));
      HR_ASSIGN_OR_RETURN(Rows current, c.run("SELECT coalesce(max(version), 0) FROM schema_migrations", {},
                                              "reading the schema version"));
      std::int64_t v = current.int64(0, 0);
      if (v > kSchemaVersion) {
        return Status::conflict("the database is at schema version " + std::to_string(v) +
                                ", newer than this headroom (" + std::to_string(kSchemaVersion) +
                                "): upgrade headroom");
      }
      // DDL is transactional in PostgreSQL: all the steps commit together.
      for (; v < kSchemaVersion; ++v) {
        Status applied = c.exec(kMigrations[v], "migration");
        if (applied) {
          applied = c.run("INSERT INTO schema_migrations (version, applied_at_us) VALUES ($1, $2)",
                          {std::int64_t{v + 1}, SystemClock().now()}, "recording migration")
                        .status();
        }
        if (!applied) {
          if (applied.code() == ErrorCode::kUnavailable) return applied;
          return Status::internal("migration to schema version " + std::to_string(v + 1) +
                                  " failed: " + applied.message());
        }
      }
      return Status::ok();
    });
    if (status) version_ = kSchemaVersion;
    return status;
  }

  int schema_version() override { return version_; }

  Result<std::optional<std::string>> get_setting(const std::string& name) override {
    return read<std::optional<std::string>>([&](Connection& c) -> Result<std::optional<std::string>> {
      HR_ASSIGN_OR_RETURN(Rows rows,
                          c.run("SELECT value FROM settings WHERE name = $1", {name}, "reading setting " + name));
      if (rows.size() == 0) return std::optional<std::string>();
      return std::optional<std::string>(rows.text(0, 0));
    });
  }

  Status bootstrap(const Tenant& admin_tenant, const ApiKey& admin_key, const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      // The setting is claimed first: of two processes bootstrapping at once,
      // the second waits for the first to commit, then finds it taken.
      HR_ASSIGN_OR_RETURN(Rows claimed, c.run("INSERT INTO settings (name, value) VALUES ('admin_tenant_id', $1) "
                                              "ON CONFLICT (name) DO NOTHING",
                                              {admin_tenant.id}, "recording the admin tenant"));
      if (claimed.affected() != 1) return Status::conflict("the store is already bootstrapped");
      HR_RETURN_IF_ERROR(insert_tenant(c, admin_tenant));
      HR_RETURN_IF_ERROR(insert_key(c, admin_key));
      return insert_audit(c, audit);
    });
  }

  Status append_audit(const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status { return insert_audit(c, audit); });
  }

  Status create_tenant(const Tenant& tenant, const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      HR_RETURN_IF_ERROR(insert_tenant(c, tenant));
      return insert_audit(c, audit);
    });
  }

  Result<std::optional<Tenant>> find_tenant(const std::string& id) override {
    return read<std::optional<Tenant>>([&](Connection& c) -> Result<std::optional<Tenant>> {
      HR_ASSIGN_OR_RETURN(Rows rows,
                          c.run(select(kTenantColumns, "FROM tenants WHERE id = $1"), {id}, "reading tenant " + id));
      if (rows.size() == 0) return std::optional<Tenant>();
      HR_ASSIGN_OR_RETURN(Tenant t, read_tenant(rows, 0));
      return std::optional<Tenant>(std::move(t));
    });
  }

  Result<Page<Tenant>> list_tenants(const PageRequest& page) override {
    return read<Page<Tenant>>([&](Connection& c) -> Result<Page<Tenant>> {
      HR_ASSIGN_OR_RETURN(Rows rows,
                          c.run(select(kTenantColumns,
                                       "FROM tenants WHERE seq > coalesce((SELECT seq FROM tenants WHERE id = $1), 0) "
                                       "ORDER BY seq LIMIT $2"),
                                {page.after, limit_of(page)}, "listing tenants"));
      return read_page<Tenant>(rows, page, read_tenant);
    });
  }

  Result<std::vector<Tenant>> all_tenants() override {
    return read<std::vector<Tenant>>([&](Connection& c) -> Result<std::vector<Tenant>> {
      HR_ASSIGN_OR_RETURN(Rows rows, c.run(select(kTenantColumns, "FROM tenants ORDER BY seq"), {}, "listing tenants"));
      return read_rows<Tenant>(rows, read_tenant);
    });
  }

  Status create_key(const ApiKey& key, const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      HR_RETURN_IF_ERROR(insert_key(c, key));
      return insert_audit(c, audit);
    });
  }

  Result<std::optional<ApiKey>> find_key(const std::string& id) override {
    return read<std::optional<ApiKey>>([&](Connection& c) { return find_key_on(c, id); });
  }

  Result<Page<ApiKey>> list_keys(const std::string& tenant_id, const PageRequest& page) override {
    return read<Page<ApiKey>>([&](Connection& c) -> Result<Page<ApiKey>> {
      HR_ASSIGN_OR_RETURN(Rows rows,
                          c.run(select(kKeyColumns,
                                       "FROM api_keys WHERE tenant_id = $3 AND seq > "
                                       "coalesce((SELECT seq FROM api_keys WHERE id = $1), 0) ORDER BY seq LIMIT $2"),
                                {page.after, limit_of(page), tenant_id}, "listing keys"));
      return read_page<ApiKey>(rows, page, read_key);
    });
  }

  Result<std::vector<ApiKey>> all_keys() override {
    return read<std::vector<ApiKey>>([&](Connection& c) -> Result<std::vector<ApiKey>> {
      HR_ASSIGN_OR_RETURN(Rows rows, c.run(select(kKeyColumns, "FROM api_keys ORDER BY seq"), {}, "listing keys"));
      return read_rows<ApiKey>(rows, read_key);
    });
  }

  Result<std::size_t> count_keys(const std::string& tenant_id) override {
    return read<std::size_t>([&](Connection& c) -> Result<std::size_t> {
      HR_ASSIGN_OR_RETURN(Rows rows,
                          c.run("SELECT count(*) FROM api_keys WHERE tenant_id = $1", {tenant_id}, "counting keys"));
      return static_cast<std::size_t>(rows.int64(0, 0));
    });
  }

  Status revoke_key(const std::string& id, Timestamp revoked_at, const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      HR_ASSIGN_OR_RETURN(Rows rows,
                          c.run("UPDATE api_keys SET revoked_at_us = $1 WHERE id = $2 AND revoked_at_us IS NULL",
                                {revoked_at, id}, "revoking key " + id));
      if (rows.affected() != 1) return key_missing_or(c, id, "is already revoked");
      return insert_audit(c, audit);
    });
  }

  Status rotate_key(const std::string& old_id, Timestamp old_expires_at, const ApiKey& new_key,
                    const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      HR_ASSIGN_OR_RETURN(Rows rows, c.run("UPDATE api_keys SET expires_at_us = least(coalesce(expires_at_us, $1), $1) "
                                           "WHERE id = $2 AND revoked_at_us IS NULL",
                                           {old_expires_at, old_id}, "rotating key " + old_id));
      if (rows.affected() != 1) return key_missing_or(c, old_id, "is revoked and cannot be rotated");
      HR_RETURN_IF_ERROR(insert_key(c, new_key));
      return insert_audit(c, audit);
    });
  }

  Result<Page<AuditRecord>> list_audit(const PageRequest& page) override {
    return read<Page<AuditRecord>>([&](Connection& c) -> Result<Page<AuditRecord>> {
      HR_ASSIGN_OR_RETURN(
          Rows rows, c.run(select(kAuditColumns,
                                  "FROM audit_log WHERE seq > coalesce((SELECT seq FROM audit_log WHERE id = $1), 0) "
                                  "ORDER BY seq LIMIT $2"),
                           {page.after, limit_of(page)}, "listing the audit log"));
      return read_page<AuditRecord>(rows, page, read_audit);
    });
  }

  // ---- Raw compute ----------------------------------------------------------

  Result<std::int64_t> max_job_seq() override {
    return read<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
      HR_ASSIGN_OR_RETURN(Rows rows, c.run("SELECT coalesce(max(seq), 0) FROM jobs", {}, "reading the job sequence"));
      return rows.int64(0, 0);
    });
  }

  Status insert_jobs(std::span<JobInsert> batch) override {
    return transaction([&](Connection& c) -> Status {
      for (JobInsert& item : batch) {
        item.status = Status::ok();
        item.replay.reset();
        if (!item.idempotency_key.empty()) {
          // The key is claimed before the job is written (its reference to
          // the job is checked at commit). Of two processes using one key at
          // once, the second waits for the first to commit, then replays it.
          HR_ASSIGN_OR_RETURN(
              Rows claimed,
              c.run("INSERT INTO job_idempotency (tenant_id, key, request_sha256, job_seq) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (tenant_id, key) DO NOTHING",
                    {item.job.tenant_id, item.idempotency_key, item.request_sha256, item.job.seq},
                    "recording an idempotency key"));
          if (claimed.affected() != 1) {
            HR_ASSIGN_OR_RETURN(Rows seen,
                                c.run("SELECT request_sha256, job_seq FROM job_idempotency "
                                      "WHERE tenant_id = $1 AND key = $2",
                                      {item.job.tenant_id, item.idempotency_key}, "reading idempotency keys"));
            if (seen.size() != 1) {
              return Status::internal("idempotency key \"" + item.idempotency_key + "\" vanished while in use");
            }
            if (seen.text(0, 0) != item.request_sha256) {
              item.status = Status::conflict("Idempotency-Key \"" + item.idempotency_key +
                                             "\" was already used for a different request");
              continue;
            }
            HR_ASSIGN_OR_RETURN(Rows first, c.run(select(kJobColumns, "FROM jobs WHERE seq = $1"), {seen.int64(0, 1)},
                                                  "reading a replayed job"));
            if (first.size() != 1) {
              return Status::internal("idempotency key \"" + item.idempotency_key + "\" names job seq " +
                                      std::to_string(seen.int64(0, 1)) + ", which is not in the jobs table");
            }
            HR_ASSIGN_OR_RETURN(JobRecord job, read_job(first, 0));
            item.replay = std::move(job);
            continue;
          }
        }
        HR_RETURN_IF_ERROR(write_job(c, item.job, /*insert=*/true));
        HR_RETURN_IF_ERROR(insert_job_event(
            c, item.job.seq,
            JobEvent{item.job.id, item.job.state_at, item.job.state, item.job.reason, item.job.message}));
      }
      return Status::ok();
    });
  }

  Status update_jobs(std::span<const JobUpdate> updates) override {
    return transaction([&](Connection& c) -> Status {
      for (const JobUpdate& u : updates) {
        HR_RETURN_IF_ERROR(write_job(c, u.job, /*insert=*/false));
        if (!u.event.state.empty()) HR_RETURN_IF_ERROR(insert_job_event(c, u.job.seq, u.event));
      }
      return Status::ok();
    });
  }

  Result<std::optional<JobRecord>> find_job(const std::string& id) override {
    return read<std::optional<JobRecord>>([&](Connection& c) -> Result<std::optional<JobRecord>> {
      HR_ASSIGN_OR_RETURN(Rows rows, c.run(select(kJobColumns, "FROM jobs WHERE id = $1"), {id}, "reading job " + id));
      if (rows.size() == 0) return std::optional<JobRecord>();
      HR_ASSIGN_OR_RETURN(JobRecord j, read_job(rows, 0));
      return std::optional<JobRecord>(std::move(j));
    });
  }

  Result<Page<JobRecord>> list_jobs(const JobFilter& filter, const PageRequest& page) override {
    return read<Page<JobRecord>>([&](Connection& c) -> Result<Page<JobRecord>> {
      HR_ASSIGN_OR_RETURN(
          Rows rows,
          c.run(
              select(kJobColumns,
                     "FROM jobs WHERE ($1::text = '' OR tenant_id = $1) AND ($2::text = '' OR state = $2) AND seq < "
                     "coalesce((SELECT seq FROM jobs WHERE id = $3), 9223372036854775807) ORDER BY seq DESC LIMIT $4"),
              {filter.tenant_id, filter.state, page.after, limit_of(page)}, "listing jobs"));
      return read_page<JobRecord>(rows, page, read_job);
    });
  }

  Result<std::vector<JobRecord>> unsettled_jobs() override {
    return read<std::vector<JobRecord>>([&](Connection& c) -> Result<std::vector<JobRecord>> {
      HR_ASSIGN_OR_RETURN(
          Rows rows,
          c.run(select(kJobColumns, "FROM jobs WHERE ended_at_us IS NULL OR usage_until_us < ended_at_us ORDER BY seq"),
                {}, "listing unsettled jobs"));
      return read_rows<JobRecord>(rows, read_job);
    });
  }

  Result<std::vector<JobEvent>> job_events(const std::string& job_id) override {
    return read<std::vector<JobEvent>>([&](Connection& c) -> Result<std::vector<JobEvent>> {
      HR_ASSIGN_OR_RETURN(Rows rows, c.run("SELECT time_us, state, reason, message FROM job_events "
                                           "WHERE job_seq = (SELECT seq FROM jobs WHERE id = $1) ORDER BY id",
                                           {job_id}, "reading job events"));
      std::vector<JobEvent> out;
      for (int i = 0; i < rows.size(); ++i) {
        out.push_back(JobEvent{job_id, Timestamp{rows.int64(i, 0)}, rows.text(i, 1), rows.text(i, 2), rows.text(i, 3)});
      }
      return out;
    });
  }

  Status set_quota(const std::string& tenant_id, const std::string& quota_json, const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      std::string what = "setting the quota of " + tenant_id;
      auto done = quota_json.empty() ? c.run("DELETE FROM compute_quotas WHERE tenant_id = $1", {tenant_id}, what)
                                     : c.run(
                                           "INSERT INTO compute_quotas (tenant_id, quota) VALUES ($1, $2) "
                                           "ON CONFLICT (tenant_id) DO UPDATE SET quota = excluded.quota",
                                           {tenant_id, quota_json}, what);
      HR_RETURN_IF_ERROR(done.status());
      return insert_audit(c, audit);
    });
  }

  Result<std::optional<std::string>> find_quota(const std::string& tenant_id) override {
    return read<std::optional<std::string>>([&](Connection& c) -> Result<std::optional<std::string>> {
      HR_ASSIGN_OR_RETURN(Rows rows, c.run("SELECT quota FROM compute_quotas WHERE tenant_id = $1", {tenant_id},
                                           "reading the quota of " + tenant_id));
      if (rows.size() == 0) return std::optional<std::string>();
      return std::optional<std::string>(rows.text(0, 0));
    });
  }

  Result<std::vector<std::pair<std::string, std::string>>> all_quotas() override {
    return read_pairs(std::string("SELECT tenant_id, quota FROM compute_quotas ORDER BY tenant_id") + kBytewise,
                      "listing quotas");
  }

  Status create_deployment(const std::string& name, const std::string& deployment_json,
                           const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      auto done = c.run("INSERT INTO model_deployments (name, deployment) VALUES ($1, $2)", {name, deployment_json},
                        "deploying model " + name);
      if (!done && c.last_sqlstate() == "23505") {
        return Status::already_exists("a model named \"" + name + "\" is already deployed");
      }
      HR_RETURN_IF_ERROR(done.status());
      return insert_audit(c, audit);
    });
  }

  Status delete_deployment(const std::string& name, const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      HR_ASSIGN_OR_RETURN(Rows rows, c.run("DELETE FROM model_deployments WHERE name = $1", {name},
                                           "removing the deployment of " + name));
      if (rows.affected() == 0) return Status::not_found("no model named \"" + name + "\" is deployed");
      return insert_audit(c, audit);
    });
  }

  Result<std::vector<std::pair<std::string, std::string>>> all_deployments() override {
    return read_pairs(std::string("SELECT name, deployment FROM model_deployments ORDER BY name") + kBytewise,
                      "listing deployments");
  }

  Status set_node_state(const std::string& node, const std::string& state, const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      std::string what = "setting the state of node " + node;
      auto done = state == "up" ? c.run("DELETE FROM node_states WHERE node = $1", {node}, what)
                                : c.run(
                                      "INSERT INTO node_states (node, state) VALUES ($1, $2) "
                                      "ON CONFLICT (node) DO UPDATE SET state = excluded.state",
                                      {node, state}, what);
      HR_RETURN_IF_ERROR(done.status());
      return insert_audit(c, audit);
    });
  }

  Result<std::vector<std::pair<std::string, std::string>>> node_states() override {
    return read_pairs(std::string("SELECT node, state FROM node_states ORDER BY node") + kBytewise,
                      "listing node states");
  }

  Status create_reservation(const ReservationRecord& r, const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      HR_RETURN_IF_ERROR(
          c.run("INSERT INTO reservations (id, tenant_id, gpu_type, gpus, packing, start_us, end_us, "
                "created_at_us, cancelled_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                {r.id, r.tenant_id, r.gpu_type, r.gpus, r.packing, r.start, r.end, r.created_at, r.cancelled_at},
                "creating reservation")
              .status());
      return insert_audit(c, audit);
    });
  }

  Status cancel_reservation(const std::string& id, Timestamp at, const AuditRecord& audit) override {
    return audited_transaction([&](Connection& c) -> Status {
      HR_ASSIGN_OR_RETURN(
          Rows rows, c.run("UPDATE reservations SET cancelled_at_us = $1 WHERE id = $2 AND cancelled_at_us IS NULL",
                           {at, id}, "cancelling reservation " + id));
      if (rows.affected() != 1) {
        HR_ASSIGN_OR_RETURN(auto r, find_reservation_on(c, id));
        if (!r) return Status::not_found("reservation " + id + " not found");
        return Status::conflict("reservation " + id + " is already cancelled");
      }
      return insert_audit(c, audit);
    });
  }

  Result<std::optional<ReservationRecord>> find_reservation(const std::string& id) override {
    return read<std::optional<ReservationRecord>>([&](Connection& c) { return find_reservation_on(c, id); });
  }

  Result<Page<ReservationRecord>> list_reservations(const std::string& tenant_id, const PageRequest& page) override {
    return read<Page<ReservationRecord>>([&](Connection& c) -> Result<Page<ReservationRecord>> {
      HR_ASSIGN_OR_RETURN(
          Rows rows, c.run(select(kReservationColumns,
                                  "FROM reservations WHERE ($3::text = '' OR tenant_id = $3) AND seq > "
                                  "coalesce((SELECT seq FROM reservations WHERE id = $1), 0) ORDER BY seq LIMIT $2"),
                           {page.after, limit_of(page), tenant_id}, "listing reservations"));
      return read_page<ReservationRecord>(rows, page, read_reservation);
    });
  }

  Result<std::vector<ReservationRecord>> live_reservations(Timestamp now) override {
    return read<std::vector<ReservationRecord>>([&](Connection& c) -> Result<std::vector<ReservationRecord>> {
      HR_ASSIGN_OR_RETURN(Rows rows, c.run(select(kReservationColumns,
                                                  "FROM reservations WHERE cancelled_at_us IS NULL AND end_us > $1 "
                                                  "ORDER BY start_us, seq"),
                                           {now}, "listing reservations"));
      return read_rows<ReservationRecord>(rows, read_reservation);
    });
  }

 private:
  // Runs a read (one statement, or several that need no common snapshot) on
  // a pooled connection. A read is safe to repeat, so when the connection
  // turned out to be dead (the server restarted, or cut an idle connection)
  // it is tried once more on a fresh one.
  template <typename T, typename Body>
  Result<T> read(Body body) {
    for (int attempt = 0;; ++attempt) {
      HR_ASSIGN_OR_RETURN(Pool::Lease lease, pool_.acquire());
      Result<T> result = body(*lease);
      if (!result.is_ok() && lease->broken() && attempt == 0) continue;
      return result;
    }
  }

  // Runs `body` in a transaction on a pooled connection; commits when it
  // returns ok, rolls back otherwise. Only a BEGIN that failed on a dead
  // connection is retried: after that, the outcome of a retry could differ.
  template <typename Body>
  Status transaction(Body body) {
    for (int attempt = 0;; ++attempt) {
      HR_ASSIGN_OR_RETURN(Pool::Lease lease, pool_.acquire());
      Connection& c = *lease;
      Status begun = c.exec("BEGIN", "starting a transaction");
      if (!begun) {
        if (c.broken() && attempt == 0) continue;
        return begun;
      }
      Status status = body(c);
      if (!status) {
        // A dead connection rolled back on the server already; the lease drops it.
        if (!c.broken()) (void)c.exec("ROLLBACK", "rolling back");
        return status;
      }
      Status committed = c.commit();
      if (!committed && committed.code() == ErrorCode::kUnavailable) {
        return Status::unavailable(committed.message() + " (the transaction may or may not have committed)");
      }
      return committed;
    }
  }

  // A transaction that writes an audit record: see kAuditLockKey.
  template <typename Body>
  Status audited_transaction(Body body) {
    return transaction([&](Connection& c) -> Status {
      HR_RETURN_IF_ERROR(
          c.run("SELECT pg_advisory_xact_lock($1)", {kAuditLockKey}, "waiting for the audit log").status());
      return body(c);
    });
  }

  Result<std::vector<std::pair<std::string, std::string>>> read_pairs(const std::string& sql, std::string_view what) {
    using Pairs = std::vector<std::pair<std::string, std::string>>;
    return read<Pairs>([&](Connection& c) -> Result<Pairs> {
      HR_ASSIGN_OR_RETURN(Rows rows, c.run(sql, {}, what));
      Pairs out;
      for (int i = 0; i < rows.size(); ++i) out.emplace_back(rows.text(i, 0), rows.text(i, 1));
      return out;
    });
  }

  Status write_job(Connection& c, const JobRecord& j, bool insert) {
    CHECK(!j.id.empty() && !j.tenant_id.empty() && !j.state.empty());
    CHECK(j.seq > 0);
    const char* sql = insert
                          ? "INSERT INTO jobs (tenant_id, spec, state, reason, message, exit_code, gpu_type, gpus, "
                            "pid, start_ticks, preemptions, created_at_us, state_at_us, started_at_us, "
                            "ended_at_us, usage_until_us, external_id, id, seq) "
                            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, "
                            "$19)"
                          : "UPDATE jobs SET tenant_id = $1, spec = $2, state = $3, reason = $4, message = $5, "
                            "exit_code = $6, gpu_type = $7, gpus = $8, pid = $9, start_ticks = $10, "
                            "preemptions = $11, created_at_us = $12, state_at_us = $13, started_at_us = $14, "
                            "ended_at_us = $15, usage_until_us = $16, external_id = $17 WHERE id = $18 AND seq = $19";
    Param exit_code = j.exit_code ? Param(std::int64_t{*j.exit_code}) : Param::null();
    HR_ASSIGN_OR_RETURN(
        Rows rows, c.run(sql,
                         {j.tenant_id, j.spec_json, j.state, j.reason, j.message, exit_code, j.gpu_type, j.gpus,
                          std::int64_t{j.pid}, j.start_ticks, std::int64_t{j.preemptions}, j.created_at, j.state_at,
                          j.started_at, j.ended_at, j.usage_until, j.external_id, j.id, j.seq},
                         insert ? "inserting job " + j.id : "updating job " + j.id));
    if (!insert && rows.affected() != 1) return Status::internal("updating job " + j.id + ": no such job");
    return Status::ok();
  }

  Status insert_job_event(Connection& c, std::int64_t seq, const JobEvent& e) {
    return c
        .run("INSERT INTO job_events (job_seq, time_us, state, reason, message) VALUES ($1, $2, $3, $4, $5)",
             {seq, e.time, e.state, e.reason, e.message}, "writing a job event")
        .status();
  }

  Status insert_tenant(Connection& c, const Tenant& t) {
    CHECK(!t.id.empty() && !t.name.empty());
    auto done = c.run("INSERT INTO tenants (id, name, kind, created_at_us) VALUES ($1, $2, $3, $4)",
                      {t.id, t.name, to_string(t.kind), t.created_at}, "creating tenant");
    if (!done && c.last_sqlstate() == "23505" && c.last_constraint() == "tenants_name_key") {
      return Status::already_exists("a tenant named \"" + t.name + "\" already exists");
    }
    return done.status();
  }

  Status insert_key(Connection& c, const ApiKey& k) {
    CHECK(!k.id.empty() && !k.tenant_id.empty() && k.scopes != 0 && (k.scopes & ~kAllScopes) == 0);
    HR_RETURN_IF_ERROR(c.run("INSERT INTO api_keys (id, tenant_id, name, scopes, lookup_prefix, secret_sha256, "
                             "created_at_us, expires_at_us, revoked_at_us, replaces) "
                             "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                             {k.id, k.tenant_id, k.name, std::int64_t{k.scopes}, k.lookup_prefix,
                              Param::bytes(k.secret_sha256.data(), k.secret_sha256.size()), k.created_at, k.expires_at,
                              k.revoked_at, k.replaces},
                             "creating key")
                           .status());
    // Read back what was written: a key that cannot authenticate is worse than an error now.
    HR_ASSIGN_OR_RETURN(auto back, find_key_on(c, k.id));
    CHECK(back && back->secret_sha256 == k.secret_sha256 && back->scopes == k.scopes);
    return Status::ok();
  }

  Status insert_audit(Connection& c, const AuditRecord& a) {
    CHECK(!a.id.empty() && !a.action.empty());
    return c
        .run(
            "INSERT INTO audit_log (id, time_us, actor_tenant_id, actor_key_id, request_id, action, target_id, "
            "details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            {a.id, a.time, a.actor_tenant_id, a.actor_key_id, a.request_id, a.action, a.target_id, a.details_json},
            "writing the audit log")
        .status();
  }

  // After an UPDATE of a key matched no row: not_found, or conflict with `why`.
  Status key_missing_or(Connection& c, const std::string& id, std::string_view why) {
    HR_ASSIGN_OR_RETURN(auto key, find_key_on(c, id));
    if (!key) return Status::not_found("key " + id + " not found");
    return Status::conflict("key " + id + " " + std::string(why));
  }

  Result<std::optional<ApiKey>> find_key_on(Connection& c, const std::string& id) {
    HR_ASSIGN_OR_RETURN(Rows rows,
                        c.run(select(kKeyColumns, "FROM api_keys WHERE id = $1"), {id}, "reading key " + id));
    if (rows.size() == 0) return std::optional<ApiKey>();
    HR_ASSIGN_OR_RETURN(ApiKey k, read_key(rows, 0));
    return std::optional<ApiKey>(std::move(k));
  }

  Result<std::optional<ReservationRecord>> find_reservation_on(Connection& c, const std::string& id) {
    HR_ASSIGN_OR_RETURN(Rows rows, c.run(select(kReservationColumns, "FROM reservations WHERE id = $1"), {id},
                                         "reading reservation " + id));
    if (rows.size() == 0) return std::optional<ReservationRecord>();
    HR_ASSIGN_OR_RETURN(ReservationRecord r, read_reservation(rows, 0));
    return std::optional<ReservationRecord>(std::move(r));
  }

  Pool pool_;
  int version_ = 0;  // set once by migrate(), before the store is shared
};

}  // namespace

std::string redact_postgres_url(const std::string& url) {
  std::string out = url;
  // postgres://user:PASSWORD@host...
  std::size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    std::size_t start = scheme + 3;
    std::size_t at = out.find('@', start);
    std::size_t slash = out.find('/', start);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      std::size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // ...?password=PASSWORD&...
  for (std::size_t pos = out.find("password="); pos != std::string::npos; pos = out.find("password=", pos + 1)) {
    std::size_t value = pos + 9;
    std::size_t end = out.find('&', value);
    out.replace(value, (end == std::string::npos ? out.size() : end) - value, "***");
  }
  return out;
}

Result<std::unique_ptr<Store>> open_postgres_store(const std::string& url) {
  // Parse first, so that a malformed URL is the operator's mistake, not an outage.
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    std::string message = error ? trimmed(error) : "out of memory";
    PQfreemem(error);
    return Status::invalid_argument("bad PostgreSQL URL " + redact_postgres_url(url) + ": " + message);
  }
  PQconninfoFree(options);
  auto store = std::make_unique<PostgresStore>(url);
  Status migrated = store->migrate();
  if (!migrated) {
    if (migrated.code() == ErrorCode::kUnavailable || migrated.code() == ErrorCode::kConflict) return migrated;
    return Status::internal("opening the PostgreSQL store at " + redact_postgres_url(url) + ": " + migrated.message());
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace headroom::store
