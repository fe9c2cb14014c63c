// The leader lease: of several `headroom serve` processes sharing one
// PostgreSQL database, exactly one at a time is the leader (runs the
// scheduler and the market); when it dies, another takes over.
//
// How it works:
//  - Leadership is a session-level advisory lock, pg_try_advisory_lock(key),
//    held on a libpq connection of the lease's own (never one of the store's
//    pool). The server drops a session's locks when the session ends, so the
//    lock is freed the moment the holder's process dies (the kernel closes its
//    socket) or its connection drops; nothing has to expire.
//  - A lease thread runs the loop. A follower tries the lock every
//    retry_interval_ms. A leader checks its connection every
//    check_interval_ms (SELECT 1, answered within
//    limits::kLeaderStatementTimeoutMs); a check that fails or goes unanswered
//    loses leadership at once (on_lost), closes the connection (which frees
//    the lock, if the server still held it) and competes again on a new one.
//  - The winner records itself in the table headroom_leader, in the same
//    breath as it takes the lock (before on_elected):
//
//      | column   | type        | meaning                                      |
//      |----------|-------------|----------------------------------------------|
//      | key      | BIGINT PK   | the advisory lock's key                      |
//      | holder   | TEXT        | LeaseOptions::holder of the latest winner    |
//      | epoch    | BIGINT      | 1 at the first election, +1 at each one after |
//      | pid      | INTEGER     | the winner's backend (pg_backend_pid())      |
//      | since_us | BIGINT      | the election's time, Unix microseconds       |
//
//    The row outlives its holder; current_holder() reports it only while
//    that backend still holds the lock (pg_locks), so a dead leader is never
//    named. The lease creates the table (IF NOT EXISTS) at open.
//
// Fencing, and why the epoch exists. The lock alone cannot keep two leaders
// from acting at once: the server frees a dead session's lock when *it*
// notices the session ended, while the old leader learns of the loss only at
// its next check. A process that is killed acts no more, so that case is
// safe. But a leader cut off from the server (a partition, a stalled
// process) may still be acting after the server has dropped its session and
// a follower has won: the old leader stops within check_interval_ms +
// limits::kLeaderStatementTimeoutMs of its last good check, and nothing
// bounds how soon before that the server may have let go. (The lease narrows
// the window: it asks the server to probe its session with TCP keepalives
// every second and libpq to give up on a silent socket after 3 s, so both
// sides notice a dead peer within seconds; it does not close it.) Hence:
//  - A leader's writes must be fenced by its epoch: each transaction that
//    acts as leader (starts a job, hands out a GPU, settles usage) first runs
//    kLeaderFenceSql with the lease's key and goes on only if the epoch read
//    equals the epoch its on_elected received. FOR SHARE makes this sound
//    under READ COMMITTED: a new leader's election updates that row, so
//    either the old leader's transaction commits first (and the new leader,
//    elected after it, sees its writes) or the election commits first (and
//    the old leader reads the new epoch and aborts).
//  - on_lost is called before the lock is given up on purpose (stop()), so a
//    caller that stops its leader-only work inside on_lost never overlaps
//    with its successor on an orderly handover.
//
// Contract:
//  - Thread-safe: is_leader(), epoch(), current_holder() and stop() may be
//    called from any thread at any time. on_elected and on_lost run on the
//    lease thread, one at a time, alternating (elected, lost, elected, ...);
//    they must not call stop() (it joins that thread), and should return
//    promptly: the lease checks nothing while they run.
//  - Failures of the server (down, refusing, dropping the connection) are
//    never errors to the caller after open: the lease logs them, stays or
//    becomes a follower, and retries every retry_interval_ms, forever.
//  - stop() (and the destructor) ends leadership, if held, with on_lost, then
//    releases the lock (pg_advisory_unlock) and joins the thread. It waits
//    out what the thread is doing: a statement (at most
//    limits::kLeaderStatementTimeoutMs), a connection attempt (about
//    limits::kLeaderConnectTimeoutS seconds), or a callback.
//  - The server must be PostgreSQL 14 or newer (client_connection_check_interval).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/limits.h"
#include "common/status.h"
#include "common/time.h"

namespace headroom::store {

// The key of the lock whose holder runs the scheduler and the market
// ("hrleader" as ASCII; the store's own locks use other keys).
inline constexpr std::int64_t kSchedulerLeaderKey = 0x68726c6561646572;

// The fence a leader's write transaction runs first, with $1 = the lease's
// key; it goes on only if the one row's epoch is the one it was elected with.
inline constexpr const char* kLeaderFenceSql = "SELECT epoch FROM headroom_leader WHERE key = $1 FOR SHARE";

struct LeaseOptions {
  std::string url;  // a libpq URI, as for the PostgreSQL store
  std::int64_t key = kSchedulerLeaderKey;
  // Who this is, for current_holder(): "host:pid", or the server's own URL so
  // that followers can forward to it. Non-empty, at most
  // limits::kLeaderHolderBytes, valid UTF-8 without NUL.
  std::string holder;
  std::int64_t retry_interval_ms = limits::kLeaderRetryIntervalMs;
  std::int64_t check_interval_ms = limits::kLeaderCheckIntervalMs;
  // Called on the lease thread once this lease has won, with the new epoch
  // (already in headroom_leader). May be empty.
  std::function<void(std::uint64_t epoch)> on_elected;
  // Called on the lease thread once this lease is leader no more. May be empty.
  std::function<void()> on_lost;
};

// Whoever the table names and the server shows still holding the lock.
struct LeaderInfo {
  std::string holder;
  std::uint64_t epoch = 0;
  Timestamp since;
};

class LeaderLease {
 public:
  // Checks the options (invalid_argument), connects and creates the table
  // (unavailable when the server cannot be reached), then starts competing
  // on the lease thread. It returns before the first try at the lock.
  static Result<std::unique_ptr<LeaderLease>> open(LeaseOptions options);

  virtual ~LeaderLease() = default;

  // Whether this lease holds the lock, as of its last try or check.
  virtual bool is_leader() const = 0;
  // The epoch of the current leadership; 0 while not leader.
  virtual std::uint64_t epoch() const = 0;
  // The live leader of this lease's key, if any (on a connection of its own,
  // one call at a time); unavailable when the server cannot be asked.
  virtual Result<std::optional<LeaderInfo>> current_holder() = 0;
  // Ends leadership (on_lost first), releases the lock, joins the thread.
  // Idempotent. Not from on_elected or on_lost.
  virtual void stop() = 0;
};

}  // namespace headroom::store
