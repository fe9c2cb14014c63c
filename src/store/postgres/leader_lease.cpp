#include "store/postgres/leader_lease.h"

#include <libpq-fe.h>
#include <poll.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/check.h"
#include "common/log.h"
#include "common/text.h"
#include "store/postgres/postgres_store.h"

namespace headroom::store {
namespace {

using Clock = std::chrono::steady_clock;

// Made by whichever lease opens first; the transaction-scoped advisory lock
// ("hrldrtbl" as ASCII) keeps two processes' CREATE TABLE IF NOT EXISTS from
// racing on the catalog.
constexpr std::int64_t kTableLockKey = 0x68726c6472746c62;
constexpr const char* kCreateTableSql = R"sql(
BEGIN;
SELECT pg_advisory_xact_lock(7526197105962282082);
CREATE TABLE IF NOT EXISTS headroom_leader (
  key      BIGINT PRIMARY KEY,
  holder   TEXT NOT NULL,
  epoch    BIGINT NOT NULL CHECK (epoch > 0),
  pid      INTEGER NOT NULL,
  since_us BIGINT NOT NULL
);
COMMIT;
)sql";
static_assert(kTableLockKey == 7526197105962282082, "kCreateTableSql spells the key out");

// The winner's row; the epoch grows by one at each election. It runs while
// this session holds the lock, so elections of one key are serial.
constexpr const char* kElectSql = R"sql(
INSERT INTO headroom_leader AS l (key, holder, epoch, pid, since_us)
VALUES ($1, $2, 1, pg_backend_pid(), (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
ON CONFLICT (key) DO UPDATE
  SET holder = EXCLUDED.holder, epoch = l.epoch + 1, pid = EXCLUDED.pid, since_us = EXCLUDED.since_us
RETURNING epoch
)sql";

// The row, if its backend still holds the lock. pg_locks shows a bigint
// advisory key as classid (high 32 bits), objid (low 32 bits), objsubid 1.
constexpr const char* kHolderSql = R"sql(
SELECT l.holder, l.epoch, l.since_us FROM headroom_leader l
WHERE l.key = $1 AND EXISTS (
  SELECT 1 FROM pg_locks k
  WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.pid AND k.objsubid = 1
    AND k.classid = (($1::bigint >> 32) & 4294967295)::oid AND k.objid = ($1::bigint & 4294967295)::oid)
)sql";

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

void ignore_notice(void*, const char*) {}

// One libpq connection whose every statement has a deadline: a server that
// stops answering costs a timeout, never a thread stuck in PQexec.
class Connection {
 public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { PQfinish(conn_); }

  static Result<std::unique_ptr<Connection>> open(const std::string& url) {
    // Defaults first, so that the URL's own parameters win. Keepalives and
    // tcp_user_timeout make a silent server (a cut cable) a failed socket
    // within seconds instead of TCP's default of many minutes.
    std::string timeout = std::to_string(limits::kLeaderConnectTimeoutS);
    const char* keys[] = {"connect_timeout",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          nullptr};
    const char* values[] = {timeout.c_str(), "headroom leader", "1", "1", "1", "3", "3000", url.c_str(), nullptr};
    PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (conn == nullptr) return Status::unavailable("leader lease: cannot connect to PostgreSQL: out of memory");
    auto connection = std::unique_ptr<Connection>(new Connection(conn));
    if (PQstatus(conn) != CONNECTION_OK) {
      return Status::unavailable("leader lease: cannot connect to PostgreSQL at " + redact_postgres_url(url) + ": " +
                                 trimmed(PQerrorMessage(conn)));
    }
    PQsetNoticeProcessor(conn, ignore_notice, nullptr);
    // The server's side of the same: it probes this session every second
    // when idle, so that it drops a vanished leader's session (and lock)
    // within seconds even when no FIN ever arrives; it checks for a vanished
    // client while a statement runs (PostgreSQL 14 and later), and gives up a
    // statement when this side would (an election waiting on a fenced write,
    // say), so that no abandoned backend keeps the lock.
    std::string statement_timeout = std::to_string(limits::kLeaderStatementTimeoutMs);
    std::string settings =
        "SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3; "
        "SET tcp_user_timeout = 3000; SET client_connection_check_interval = 1000; SET statement_timeout = " +
        statement_timeout;
    auto set = connection->exec(settings.c_str(), {}, "setting timeouts");
    if (!set) return set.status();
    return connection;
  }

  // Runs `sql` (one statement when it has parameters) and waits at most
  // limits::kLeaderStatementTimeoutMs for all of its results; the last one.
  // A failure is unavailable and names `what`; the connection is then not to
  // be trusted again (the caller drops it).
  Result<PgResult> exec(const char* sql, const std::vector<std::string>& params, std::string_view what) {
    std::vector<const char*> values;
    for (const std::string& p : params) values.push_back(p.c_str());
    int sent = params.empty() ? PQsendQuery(conn_, sql)
                              : PQsendQueryParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(),
                                                  nullptr, nullptr, 0);
    if (!sent) return failure(what, nullptr);
    auto deadline = Clock::now() + std::chrono::milliseconds(limits::kLeaderStatementTimeoutMs);
    PgResult last;
    for (int results = 0;; ++results) {
      CHECK(results <= 16) << "a lease statement returned more results than any of them has";
      while (PQisBusy(conn_)) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
          return Status::unavailable(std::string("leader lease: ") + std::string(what) +
                                     ": no answer from PostgreSQL in " +
                                     std::to_string(limits::kLeaderStatementTimeoutMs) + " ms");
        }
        pollfd fd{PQsocket(conn_), POLLIN, 0};
        if (fd.fd < 0) return failure(what, nullptr);
        int ready = ::poll(&fd, 1, static_cast<int>(left));
        if (ready < 0 && errno != EINTR) return failure(what, nullptr);
        if (ready > 0 && !PQconsumeInput(conn_)) return failure(what, nullptr);
      }
      PgResult next(PQgetResult(conn_));
      if (!next) break;
      ExecStatusType status = PQresultStatus(next.get());
      if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        Status failed = failure(what, next.get());
        return failed;
      }
      last = std::move(next);
    }
    if (!last) return failure(what, nullptr);
    return last;
  }

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}

  Status failure(std::string_view what, const PGresult* result) const {
    std::string message =
        trimmed(result && *PQresultErrorMessage(result) ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
    return Status::unavailable("leader lease: " + std::string(what) + ": " + message);
  }

  PGconn* conn_;
};

bool is_true(const PgResult& r) {
  return PQntuples(r.get()) == 1 && std::string_view(PQgetvalue(r.get(), 0, 0)) == "t";
}

std::int64_t int_at(const PgResult& r, int column) { return std::strtoll(PQgetvalue(r.get(), 0, column), nullptr, 10); }

class PostgresLeaderLease final : public LeaderLease {
 public:
  PostgresLeaderLease(LeaseOptions options, std::unique_ptr<Connection> conn)
      : options_(std::move(options)), key_text_(std::to_string(options_.key)), conn_(std::move(conn)) {
    thread_ = std::thread([this] { run(); });
  }
  ~PostgresLeaderLease() override { stop(); }

  bool is_leader() const override { return epoch_.load() != 0; }
  std::uint64_t epoch() const override { return epoch_.load(); }

  Result<std::optional<LeaderInfo>> current_holder() override {
    std::lock_guard lock(query_mutex_);
    for (int attempt = 0; attempt < 2; ++attempt) {  // once more on a fresh connection after a drop
      if (!query_conn_) {
        auto opened = Connection::open(options_.url);
        if (!opened) return opened.status();
        query_conn_ = std::move(opened).value();
      }
      auto r = query_conn_->exec(kHolderSql, {key_text_}, "reading the leader");
      if (!r) {
        query_conn_.reset();
        if (attempt == 0) continue;
        return r.status();
      }
      if (PQntuples(r->get()) == 0) return std::optional<LeaderInfo>();
      LeaderInfo info;
      info.holder = PQgetvalue(r->get(), 0, 0);
      info.epoch = static_cast<std::uint64_t>(int_at(*r, 1));
      info.since = Timestamp{int_at(*r, 2)};
      CHECK(info.epoch > 0);
      return std::optional<LeaderInfo>(std::move(info));
    }
    return Status::internal("leader lease: unreachable");
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    std::lock_guard joining(join_mutex_);  // two threads stopping at once: one joins, the other waits
    CHECK(std::this_thread::get_id() != thread_.get_id()) << "LeaderLease::stop() from its own callback";
    if (thread_.joinable()) thread_.join();
  }

 private:
  // The lease thread's loop: connect, try, check, until stop().
  void run() {
    while (!stopping()) {
      if (!conn_) {
        auto opened = Connection::open(options_.url);
        if (!opened) {
          log_once(opened.status());
          wait_ms(options_.retry_interval_ms);
          continue;
        }
        conn_ = std::move(opened).value();
      }
      if (!is_leader()) {
        if (Status tried = try_to_lead(); !tried) {
          log_once(tried);
          conn_.reset();  // frees the lock, should the server have granted it unbeknown to us
          wait_ms(options_.retry_interval_ms);
          continue;
        }
        wait_ms(is_leader() ? options_.check_interval_ms : options_.retry_interval_ms);
        continue;
      }
      auto alive = conn_->exec("SELECT 1", {}, "checking the leader's connection");
      if (!alive) {
        spdlog::warn("{}: leadership of key {} lost: {}", options_.holder, options_.key, alive.status().message());
        lose();
        conn_.reset();
        continue;  // compete again at once, on a fresh connection
      }
      logged_ = false;
      wait_ms(options_.check_interval_ms);
    }
    if (is_leader()) {
      lose();  // on_lost before the lock goes: the caller's leader work has stopped
      if (auto released = conn_->exec("SELECT pg_advisory_unlock($1)", {key_text_}, "releasing the lock"); !released) {
        spdlog::warn("{}: {} (the lock goes with the connection)", options_.holder, released.status().message());
      }
    }
    conn_.reset();
  }

  Status try_to_lead() {
    auto locked = conn_->exec("SELECT pg_try_advisory_lock($1)", {key_text_}, "trying the lock");
    if (!locked) return locked.status();
    if (!is_true(*locked)) return Status::ok();  // another leads
    // Ours: record it before anyone is told. Should this fail, the caller
    // drops the connection and with it the lock.
    auto elected = conn_->exec(kElectSql, {key_text_, options_.holder}, "recording the election");
    if (!elected) return elected.status();
    auto epoch = static_cast<std::uint64_t>(int_at(*elected, 0));
    CHECK(epoch > 0) << "epoch " << epoch << " read back from headroom_leader";
    logged_ = false;
    epoch_.store(epoch);
    spdlog::info("{}: elected leader of key {} (epoch {})", options_.holder, options_.key, epoch);
    if (options_.on_elected) options_.on_elected(epoch);
    return Status::ok();
  }

  void lose() {
    epoch_.store(0);
    if (options_.on_lost) options_.on_lost();
  }

  // One line per outage, not one per retry.
  void log_once(const Status& status) {
    if (logged_) return;
    logged_ = true;
    spdlog::warn("{}: {} (retrying every {} ms)", options_.holder, status.message(), options_.retry_interval_ms);
  }

  bool stopping() {
    std::lock_guard lock(mutex_);
    return stopping_;
  }
  void wait_ms(std::int64_t ms) {
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
  }

  const LeaseOptions options_;
  const std::string key_text_;
  std::atomic<std::uint64_t> epoch_{0};  // 0: not leader

  std::mutex mutex_;  // guards stopping_
  std::condition_variable wake_;
  bool stopping_ = false;

  // The lease thread's own.
  std::unique_ptr<Connection> conn_;
  bool logged_ = false;

  std::mutex query_mutex_;  // guards query_conn_
  std::unique_ptr<Connection> query_conn_;

  std::mutex join_mutex_;  // guards joining thread_
  std::thread thread_;     // last: started once everything above is built
};

Status check_options(const LeaseOptions& o) {
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(o.url.c_str(), &error);
  if (parsed == nullptr) {
    std::string message = error ? trimmed(error) : "out of memory";
    PQfreemem(error);
    return Status::invalid_argument("leader lease: bad PostgreSQL URL " + redact_postgres_url(o.url) + ": " + message);
  }
  PQconninfoFree(parsed);
  if (o.holder.empty() || o.holder.size() > limits::kLeaderHolderBytes || o.holder.find('\0') != std::string::npos ||
      to_valid_utf8(o.holder) != o.holder) {
    return Status::invalid_argument("leader lease: the holder must be 1 to " +
                                    std::to_string(limits::kLeaderHolderBytes) + " bytes of UTF-8 without NUL");
  }
  using Interval = std::pair<const char*, std::int64_t>;
  for (auto [name, ms] :
       {Interval{"retry_interval_ms", o.retry_interval_ms}, Interval{"check_interval_ms", o.check_interval_ms}}) {
    if (ms < limits::kLeaderIntervalMinMs || ms > limits::kLeaderIntervalMaxMs) {
      return Status::invalid_argument("leader lease: " + std::string(name) + " " + std::to_string(ms) + " is outside " +
                                      std::to_string(limits::kLeaderIntervalMinMs) + ".." +
                                      std::to_string(limits::kLeaderIntervalMaxMs));
    }
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<LeaderLease>> LeaderLease::open(LeaseOptions options) {
  if (Status valid = check_options(options); !valid) return valid;
  auto conn = Connection::open(options.url);
  if (!conn) return conn.status();
  auto made = (*conn)->exec(kCreateTableSql, {}, "creating the table headroom_leader");
  if (!made) return made.status();
  return std::unique_ptr<LeaderLease>(new PostgresLeaderLease(std::move(options), std::move(conn).value()));
}

}  // namespace headroom::store
