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

}  // namespace headroom::store
