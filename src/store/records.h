// The durable records of the control plane: tenants, API keys, the audit log.
// Plain data; the Store (store.h) keeps them, the layers above give them meaning.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto.h"
#include "common/status.h"
#include "common/time.h"

namespace headroom::store {

enum class TenantKind : std::uint8_t {
  kInternal,  // the owner's own teams: may run the internal tier
  kExternal,  // outside customers
};
std::string_view to_string(TenantKind kind);
Result<TenantKind> parse_tenant_kind(std::string_view text);

struct Tenant {
  std::string id;  // "ten_..."
  std::string name;
  TenantKind kind = TenantKind::kExternal;
  Timestamp created_at;
};

// What a key may do, as a bit set. `kAdmin` is the operator's: it sees and
// manages every tenant.
enum Scope : std::uint8_t {
  kScopeAdmin = 1 << 0,
  kScopeCompute = 1 << 1,
  kScopeInference = 1 << 2,
  kScopeBilling = 1 << 3,
};
using ScopeSet = std::uint8_t;
inline constexpr ScopeSet kAllScopes = kScopeAdmin | kScopeCompute | kScopeInference | kScopeBilling;
std::vector<std::string_view> scope_names(ScopeSet scopes);
Result<ScopeSet> parse_scope(std::string_view name);

struct ApiKey {
  std::string id;         // "key_..."
  std::string tenant_id;
  std::string name;
  ScopeSet scopes = 0;
  std::string lookup_prefix;   // the key's first characters, unique, shown to users
  Sha256Digest secret_sha256;  // of the whole key; the key itself is never stored
  Timestamp created_at;
  std::optional<Timestamp> expires_at;
  std::optional<Timestamp> revoked_at;
  std::optional<std::string> replaces;  // the key this one rotated

  bool usable_at(Timestamp now) const {
    return !revoked_at && (!expires_at || now < *expires_at);
  }
};

// One administrative action, written in the same transaction as the change.
struct AuditRecord {
  std::int64_t seq = 0;  // assigned by the store, increasing
  std::string id;        // "aud_..."
  Timestamp time;
  std::string actor_tenant_id;  // empty for the system itself (bootstrap)
  std::string actor_key_id;
  std::string request_id;
  std::string action;     // "tenant.create", "key.revoke", ...
  std::string target_id;  // the object acted on
  std::string details_json;  // what changed, as a JSON object
};

// Keyset pagination: up to `limit` records after the one with id `after`,
// in creation order.
struct PageRequest {
  std::size_t limit = 100;
  std::string after;
};

template <typename T>
struct Page {
  std::vector<T> items;
  bool has_more = false;
};


// ---- Raw compute -------------------------------------------------------------

// A job as kept: what was asked (spec_json, the request as accepted and
// normalised: the API layer owns its shape) and where it stands. The
// scheduler's view of a live job is rebuilt from these at start.
struct JobRecord {
  std::string id;         // "job_..."
  std::int64_t seq = 0;   // the scheduler's JobId: unique, increasing, never reused
  std::string tenant_id;
  std::string spec_json;
  std::string state;      // a sched::JobState name
  std::string reason;     // why it entered that state
  std::string message;    // for people: why it failed to start, ...
  std::optional<int> exit_code;
  std::string gpu_type;   // the type it was placed on, once placed
  std::string gpus;       // its GPUs, "node:index,...", once placed
  int pid = 0;            // its supervisor process, while it runs locally
  std::int64_t start_ticks = 0;
  std::string external_id;  // the executor's own id for its run (a Slurm job id), while it runs there
  std::int32_t preemptions = 0;
  Timestamp created_at;
  Timestamp state_at;     // when it entered `state`
  std::optional<Timestamp> started_at;     // first running
  std::optional<Timestamp> ended_at;       // terminal
  std::optional<Timestamp> usage_until;    // GPU time emitted up to here
};

// One state a job entered; a job's events are its history.
struct JobEvent {
  std::string job_id;
  Timestamp time;
  std::string state;
  std::string reason;
  std::string message;
};

// A job to insert, with its idempotency key (may be empty). Outcome: `status`
// ok and `job.seq` set; or `replay` set when the key was seen with the same
// request (the first job is returned); or a conflict status when the key was
// used for a different request.
struct JobInsert {
  JobRecord job;
  std::string idempotency_key;
  std::string request_sha256;  // hex, of the normalised request
  Status status;
  std::optional<JobRecord> replay;
};

// A change of a job's state, with the fields it sets.
struct JobUpdate {
  JobRecord job;     // the whole new row (matched by id)
  JobEvent event;    // appended to its history
};

struct JobFilter {
  std::string tenant_id;  // empty: every tenant (admin)
  std::string state;      // empty: any state
};

// A capacity block: `gpus` GPUs of `gpu_type` from `start` to `end`.
struct ReservationRecord {
  std::string id;  // "res_..."
  std::string tenant_id;
  std::string gpu_type;
  std::int64_t gpus = 0;
  std::string packing;
  Timestamp start, end;
  Timestamp created_at;
  std::optional<Timestamp> cancelled_at;
};

}  // namespace headroom::store
