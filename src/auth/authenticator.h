// Authenticator: turns an Authorization header into a Caller, from memory.
//
// It keeps every key (by lookup prefix) and tenant in memory, so that
// authenticating a request costs one SHA-256 and one hash lookup, and no
// store access. The store is the source of truth: callers write a change to
// the store first, then tell the Authenticator (put_key / put_tenant).
// Thread-safe: lookups take a shared lock, updates an exclusive one.
//
// With several processes sharing one store (scale-out), each process must
// reload on changes made by others; that arrives with the PostgreSQL store.
#pragma once

#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/time.h"
#include "store/records.h"

namespace headroom::auth {

// Who is calling: an authenticated key and its tenant, immutable.
struct Identity {
  store::Tenant tenant;
  store::ApiKey key;
};

class Caller {
 public:
  Caller() = default;
  explicit Caller(std::shared_ptr<const Identity> identity) : identity_(std::move(identity)) {}

  bool authenticated() const { return identity_ != nullptr; }
  const store::Tenant& tenant() const { return identity_->tenant; }
  const store::ApiKey& key() const { return identity_->key; }
  const std::string& tenant_id() const { return identity_->tenant.id; }
  bool has_scope(store::ScopeSet scope) const { return identity_ && (identity_->key.scopes & scope) == scope; }
  bool is_admin() const { return has_scope(store::kScopeAdmin); }

  // May the caller see and touch objects owned by `tenant_id`? The admin may
  // see all; everyone else only their own tenant's. The one place this rule lives.
  bool may_access(std::string_view owner_tenant_id) const {
    return identity_ && (is_admin() || identity_->tenant.id == owner_tenant_id);
  }

 private:
  std::shared_ptr<const Identity> identity_;
};

class Authenticator {
 public:
  explicit Authenticator(const Clock& clock) : clock_(clock) {}

  // Replaces everything (at start).
  void load(const std::vector<store::Tenant>& tenants, const std::vector<store::ApiKey>& keys);
  void put_tenant(const store::Tenant& tenant);
  void put_key(const store::ApiKey& key);
  bool has_tenant(const std::string& tenant_id) const;
  std::optional<store::TenantKind> tenant_kind(const std::string& tenant_id) const;

  // From an "Authorization: Bearer hr_..." header value. Unauthenticated,
  // with a message that says what is wrong, when it does not verify.
  Result<Caller> authenticate(std::string_view authorization) const;

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Map = std::unordered_map<std::string, std::shared_ptr<const Identity>, StringHash, std::equal_to<>>;

  void put_key_locked(const store::ApiKey& key);

  const Clock& clock_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, store::Tenant> tenants_;
  Map by_prefix_;
};

}  // namespace headroom::auth
