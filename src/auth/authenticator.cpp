#include "auth/authenticator.h"

#include <mutex>

#include "auth/api_key.h"

namespace headroom::auth {

void Authenticator::load(const std::vector<store::Tenant>& tenants, const std::vector<store::ApiKey>& keys) {
  std::unique_lock lock(mutex_);
  tenants_.clear();
  by_prefix_.clear();
  for (const auto& t : tenants) tenants_[t.id] = t;
  for (const auto& k : keys) put_key_locked(k);
}

void Authenticator::put_tenant(const store::Tenant& tenant) {
  std::unique_lock lock(mutex_);
  tenants_[tenant.id] = tenant;
}

void Authenticator::put_key(const store::ApiKey& key) {
  std::unique_lock lock(mutex_);
  put_key_locked(key);
}

void Authenticator::put_key_locked(const store::ApiKey& key) {
  auto tenant = tenants_.find(key.tenant_id);
  CHECK(tenant != tenants_.end()) << "key " << key.id << " of unknown tenant " << key.tenant_id;
  by_prefix_[key.lookup_prefix] = std::make_shared<const Identity>(Identity{tenant->second, key});
}

Result<Caller> Authenticator::authenticate(std::string_view authorization) const {
  if (authorization.empty()) {
    return Status::unauthenticated("missing Authorization header: send \"Authorization: Bearer hr_...\"");
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() < kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), authorization.begin(),
                  [](char a, char b) {
                    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
                  })) {
    return Status::unauthenticated("the Authorization header must be \"Bearer hr_...\"");
  }
  std::string_view key = authorization.substr(kBearer.size());
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
  if (!is_well_formed_api_key(key)) {
    return Status::unauthenticated("malformed API key: a Headroom key is \"hr_\" and 38 letters and digits, "
                                   "with a checksum (was it truncated or mistyped?)");
  }
  Sha256Digest digest = sha256(key);
  std::shared_ptr<const Identity> identity;
  {
    std::shared_lock lock(mutex_);
    auto it = by_prefix_.find(key.substr(0, kLookupPrefixChars));
    if (it != by_prefix_.end()) identity = it->second;
  }
  if (!identity || !constant_time_equal(identity->key.secret_sha256, digest)) {
    return Status::unauthenticated("invalid API key");
  }
  Timestamp now = clock_.now();
  if (identity->key.revoked_at) {
    return Status::unauthenticated("API key " + identity->key.id + " was revoked at " +
                                   to_rfc3339(*identity->key.revoked_at));
  }
  if (identity->key.expires_at && now >= *identity->key.expires_at) {
    return Status::unauthenticated("API key " + identity->key.id + " expired at " +
                                   to_rfc3339(*identity->key.expires_at));
  }
  return Caller(std::move(identity));
}

bool Authenticator::has_tenant(const std::string& tenant_id) const {
  std::shared_lock lock(mutex_);
  return tenants_.contains(tenant_id);
}

std::optional<store::TenantKind> Authenticator::tenant_kind(const std::string& tenant_id) const {
  std::shared_lock lock(mutex_);
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end()) return std::nullopt;
  return it->second.kind;
}

}  // namespace headroom::auth
