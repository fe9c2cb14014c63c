// Store: the durable state of the control plane.
//
// Every method is one transaction: a change and its audit record commit
// together or not at all, and a change is on disk (fsync) before the method
// returns. Implementations are safe for concurrent use from many threads.
// The embedded default is SQLite (sqlite/); PostgreSQL (postgres/) is the
// scale-out store that several processes share.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/records.h"

namespace headroom::store {

struct StoreOptions {
  // "sqlite:PATH" or a plain file path for SQLite; "postgres://..." or
  // "postgresql://..." (a libpq URI) for PostgreSQL.
  std::string url;
};

// Whether `url` names PostgreSQL (the store several processes may share).
inline bool is_postgres_url(std::string_view url) {
  return url.starts_with("postgres://") || url.starts_with("postgresql://");
}

class Store {
 public:
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options);
  virtual ~Store() = default;

  // The schema version this store is at after migrations.
  virtual int schema_version() = 0;

  // Settings: small named values the platform keeps (such as the admin tenant).
  virtual Result<std::optional<std::string>> get_setting(const std::string& name) = 0;

  // Creates the operator's tenant and first admin key and records the admin
  // tenant's id as the setting "admin_tenant_id", all at once. Conflict when
  // the store is already bootstrapped.
  virtual Status bootstrap(const Tenant& admin_tenant, const ApiKey& admin_key, const AuditRecord& audit) = 0;

  // already_exists when the name is taken.
  virtual Status create_tenant(const Tenant& tenant, const AuditRecord& audit) = 0;
  virtual Result<std::optional<Tenant>> find_tenant(const std::string& id) = 0;
  virtual Result<Page<Tenant>> list_tenants(const PageRequest& page) = 0;
  virtual Result<std::vector<Tenant>> all_tenants() = 0;

  virtual Status create_key(const ApiKey& key, const AuditRecord& audit) = 0;
  virtual Result<std::optional<ApiKey>> find_key(const std::string& id) = 0;
  virtual Result<Page<ApiKey>> list_keys(const std::string& tenant_id, const PageRequest& page) = 0;
  virtual Result<std::vector<ApiKey>> all_keys() = 0;
  virtual Result<std::size_t> count_keys(const std::string& tenant_id) = 0;
  // Sets revoked_at; conflict when already revoked.
  virtual Status revoke_key(const std::string& id, Timestamp revoked_at, const AuditRecord& audit) = 0;
  // Inserts `new_key` and sets the old key's expiry, atomically.
  virtual Status rotate_key(const std::string& old_id, Timestamp old_expires_at, const ApiKey& new_key,
                            const AuditRecord& audit) = 0;

  virtual Result<Page<AuditRecord>> list_audit(const PageRequest& page) = 0;
  // An audit record of a change kept elsewhere (the ledger's journal).
  virtual Status append_audit(const AuditRecord& audit) = 0;

  // ---- Raw compute ----------------------------------------------------------
  // The highest JobRecord::seq ever stored; 0 when none.
  virtual Result<std::int64_t> max_job_seq() = 0;
  // Inserts a batch of jobs in one transaction: one fsync for all (group
  // commit). Each JobInsert gets its own outcome (see records.h); the call
  // fails as a whole only when the transaction does, and then nothing is kept.
  virtual Status insert_jobs(std::span<JobInsert> batch) = 0;
  // Rewrites jobs' rows and appends their events, in one transaction.
  virtual Status update_jobs(std::span<const JobUpdate> updates) = 0;
  virtual Result<std::optional<JobRecord>> find_job(const std::string& id) = 0;
  // Newest first.
  virtual Result<Page<JobRecord>> list_jobs(const JobFilter& filter, const PageRequest& page) = 0;
  // Jobs not ended, or ended with GPU time not yet emitted as usage
  // (usage_until < ended_at), oldest first: what a restart picks up.
  virtual Result<std::vector<JobRecord>> unsettled_jobs() = 0;
  virtual Result<std::vector<JobEvent>> job_events(const std::string& job_id) = 0;

  // A tenant's compute quota, as JSON the API layer owns ("" removes it).
  virtual Status set_quota(const std::string& tenant_id, const std::string& quota_json, const AuditRecord& audit) = 0;
  virtual Result<std::optional<std::string>> find_quota(const std::string& tenant_id) = 0;
  virtual Result<std::vector<std::pair<std::string, std::string>>> all_quotas() = 0;  // (tenant, json)

  // Hosted models deployed through the API (those of the config file are
  // not kept here), as JSON the API layer owns. already_exists when the
  // name is taken; not_found when deleting one that is not there.
  virtual Status create_deployment(const std::string& name, const std::string& deployment_json,
                                   const AuditRecord& audit) = 0;
  virtual Status delete_deployment(const std::string& name, const AuditRecord& audit) = 0;
  virtual Result<std::vector<std::pair<std::string, std::string>>> all_deployments() = 0;  // (name, json), by name

  // The operator's state of a node ("up" removes the override).
  virtual Status set_node_state(const std::string& node, const std::string& state, const AuditRecord& audit) = 0;
  virtual Result<std::vector<std::pair<std::string, std::string>>> node_states() = 0;  // (node, state)

  virtual Status create_reservation(const ReservationRecord& reservation, const AuditRecord& audit) = 0;
  // Sets cancelled_at; conflict when already cancelled.
  virtual Status cancel_reservation(const std::string& id, Timestamp at, const AuditRecord& audit) = 0;
  virtual Result<std::optional<ReservationRecord>> find_reservation(const std::string& id) = 0;
  // tenant_id empty: all.
  virtual Result<Page<ReservationRecord>> list_reservations(const std::string& tenant_id, const PageRequest& page) = 0;
  // Not cancelled and not yet ended at `now`.
  virtual Result<std::vector<ReservationRecord>> live_reservations(Timestamp now) = 0;
};

}  // namespace headroom::store
