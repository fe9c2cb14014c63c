// Every limit in one place. Each bound that a loop, queue or input obeys is
// named here, with its unit last, and related to the others by static_assert.
#pragma once

#include <cstddef>
#include <cstdint>

namespace headroom::limits {

// HTTP.
inline constexpr std::size_t kHttpHeaderBytes = 16 * 1024;         // request line + headers
inline constexpr std::size_t kHttpBodyBytes = 1024 * 1024;         // JSON bodies; 413 past it
inline constexpr std::int64_t kHttpReadTimeoutMs = 10'000;         // one whole request, first byte to last
inline constexpr std::int64_t kHttpWriteTimeoutMs = 10'000;        // one whole response
inline constexpr std::int64_t kHttpIdleTimeoutMs = 60'000;         // keep-alive wait for the next request
inline constexpr std::int64_t kHttpTlsHandshakeTimeoutMs = 10'000;
inline constexpr std::int64_t kShutdownGraceMs = 15'000;           // in-flight requests at SIGTERM
inline constexpr std::size_t kHttpConnections = 10'000;            // per process; further accepts wait
inline constexpr std::size_t kServerThreads = 64;
inline constexpr std::size_t kRequestIdBytes = 128;                // a client's X-Request-Id, echoed if sane
inline constexpr std::int64_t kHttpDeferredTimeoutMs = 30'000;     // a deferred response, handler to complete()
inline constexpr std::int64_t kCompletionWaitMs = 30 * 60'000;      // a whole (not streamed) completion: long ones take minutes
inline constexpr std::int64_t kHttpStreamPollMs = 100;             // a waiting stream's next() is retried this often

static_assert(kHttpBodyBytes > kHttpHeaderBytes);
static_assert(kHttpReadTimeoutMs < kHttpIdleTimeoutMs);
static_assert(kShutdownGraceMs > kHttpReadTimeoutMs, "a request in flight at shutdown may finish reading");
static_assert(kHttpStreamPollMs < kHttpWriteTimeoutMs);

// HTTP client (the CLI, tests).
inline constexpr std::int64_t kHttpClientConnectTimeoutMs = 10'000;      // DNS + TCP + TLS handshake
inline constexpr std::int64_t kHttpClientReadTimeoutMs = 60'000;         // a whole response, write to last byte
inline constexpr std::int64_t kHttpClientStreamIdleTimeoutMs = 300'000;  // a stream's longest silence
inline constexpr std::size_t kHttpClientResponseHeaderBytes = 64 * 1024;
inline constexpr std::size_t kHttpClientResponseBodyBytes = 64 * 1024 * 1024;
static_assert(kHttpClientResponseBodyBytes >= kHttpBodyBytes, "a client reads what a server may send back");
static_assert(kHttpDeferredTimeoutMs < kHttpClientReadTimeoutMs, "a client waits out a deferred response");

// Tenants and keys.
inline constexpr std::size_t kNameBytes = 64;                      // tenant and key names
inline constexpr std::size_t kTenants = 100'000;
inline constexpr std::size_t kKeysPerTenant = 100;
inline constexpr std::size_t kListPageSize = 100;                  // default page of a list route
inline constexpr std::size_t kListPageSizeMax = 1'000;
static_assert(kListPageSize <= kListPageSizeMax);
static_assert(kKeysPerTenant <= kListPageSizeMax, "a tenant's keys fit one page");

// JSON bodies: nesting depth, checked while parsing (kHttpBodyBytes bounds the rest).
inline constexpr std::size_t kJsonDepth = 32;

// Store.
inline constexpr std::int64_t kStoreBusyTimeoutMs = 5'000;
// PostgreSQL: connections one store (one process) keeps open at most. Each
// Store call holds one for the length of its transaction, so this bounds the
// calls in flight; more wait up to kStoreBusyTimeoutMs for a free one. Several
// processes share a server whose max_connections (100 by default) must cover
// them all.
inline constexpr std::size_t kStorePostgresConnections = 8;
inline constexpr std::int64_t kStorePostgresConnectTimeoutS = 5;
static_assert(kStorePostgresConnections >= 1 && kStorePostgresConnections <= 64);

// Leader election (store/postgres/leader_lease.h): one `headroom serve` of
// several leads, holding a PostgreSQL advisory lock on a connection of its own.
inline constexpr std::int64_t kLeaderRetryIntervalMs = 500;    // a follower tries the lock this often
inline constexpr std::int64_t kLeaderCheckIntervalMs = 500;    // a leader checks its connection this often
inline constexpr std::int64_t kLeaderStatementTimeoutMs = 1'000;  // a lease statement unanswered by then: lost
inline constexpr std::int64_t kLeaderIntervalMinMs = 10;       // bounds of the two intervals above, as options
inline constexpr std::int64_t kLeaderIntervalMaxMs = 60'000;
inline constexpr std::int64_t kLeaderConnectTimeoutS = 2;      // libpq's minimum
inline constexpr std::size_t kLeaderHolderBytes = 256;         // a holder's name ("host:pid", a URL)
inline constexpr std::int64_t kLeaderPollMs = 50;                // `serve` looks at its lease this often
inline constexpr std::int64_t kLeaderFirstElectionWaitMs = 2'000;  // `serve` waits this long to start as leader
inline constexpr std::int64_t kLeaderDataLockPollMs = 100;       // a new leader retries DATA/LOCK this often
inline constexpr std::int64_t kLeaderTakeoverGoalMs = 5'000;   // issue 8: a killed leader replaced within
static_assert(kLeaderIntervalMinMs <= kLeaderRetryIntervalMs && kLeaderRetryIntervalMs <= kLeaderIntervalMaxMs);
static_assert(kLeaderIntervalMinMs <= kLeaderCheckIntervalMs && kLeaderCheckIntervalMs <= kLeaderIntervalMaxMs);
static_assert(kLeaderRetryIntervalMs + kLeaderStatementTimeoutMs < kLeaderTakeoverGoalMs,
              "a follower gets at least one try at a freed lock within the takeover goal");
static_assert(kLeaderCheckIntervalMs + kLeaderStatementTimeoutMs < kLeaderTakeoverGoalMs,
              "a leader cut off from the server learns it within the takeover goal");

// Follower forwarding (api/leader_forwarder.h): a follower passes every request
// on to the leader, one request per worker thread for as long as it runs.
inline constexpr std::size_t kForwardWorkers = 32;                 // each holds a thread and a connection to the leader
inline constexpr std::size_t kForwardQueue = 1'024;                // waiting for a worker; 503 past it, not a pile-up
inline constexpr std::size_t kForwardStreamBufferBytes = 1 << 20;  // read, not yet sent: a slow client slows the read
inline constexpr std::int64_t kForwardLeaderCacheMs = 1'000;       // one lookup a second, not one a request
static_assert(kForwardQueue >= kForwardWorkers, "a burst the size of the pool queues rather than failing");
static_assert(kForwardLeaderCacheMs < kLeaderTakeoverGoalMs, "a follower finds a new leader within the takeover goal");

// An Idempotency-Key header's value (printable ASCII).
inline constexpr std::size_t kIdempotencyKeyBytes = 255;

// Hosted models: a model's name ("tiny-llama-1.1b"), as clients send it.
inline constexpr std::size_t kModelNameBytes = 128;

}  // namespace headroom::limits
