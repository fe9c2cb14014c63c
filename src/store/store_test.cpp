// The Store's contract for tenants, API keys and the audit log, checked
// against every store: the SQLite store (sqlite_store_test.cpp instantiates
// these) and the PostgreSQL store (tests/store/postgres_store_test.cpp).
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "store/store_test_util.h"

namespace headroom::store {
namespace {

using namespace headroom::store::testing;  // NOLINT: the suite's vocabulary

TEST_P(StoreTest, FreshStoreIsAtTheLatestSchemaVersionAndEmpty) {
  EXPECT_EQ(store().schema_version(), kSchemaVersion);
  EXPECT_EQ(tenant_count(store()), 0u);
  EXPECT_EQ(audit_count(store()), 0u);
  auto setting = store().get_setting("admin_tenant_id");
  ASSERT_TRUE(setting.is_ok());
  EXPECT_FALSE(setting->has_value());
  auto none = store().find_tenant("ten_none");
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->has_value());
  auto no_key = store().find_key("key_none");
  ASSERT_TRUE(no_key.is_ok());
  EXPECT_FALSE(no_key->has_value());
}

TEST_P(StoreTest, BootstrapOnceThenConflict) {
  Status first = store().bootstrap(
      tenant("ten_admin", "operator", TenantKind::kInternal),
      [] {
        ApiKey k = key("key_admin", "ten_admin");
        k.scopes = kScopeAdmin;
        return k;
      }(),
      audit("aud_boot", "bootstrap", "ten_admin"));
  ASSERT_TRUE(first.is_ok()) << first.to_string();
  auto setting = store().get_setting("admin_tenant_id");
  ASSERT_TRUE(setting.is_ok());
  EXPECT_EQ(setting->value_or(""), "ten_admin");
  auto admin = store().find_key("key_admin");
  ASSERT_TRUE(admin.is_ok() && admin->has_value());
  EXPECT_EQ((*admin)->scopes, kScopeAdmin);
  auto t = store().find_tenant("ten_admin");
  ASSERT_TRUE(t.is_ok() && t->has_value());
  EXPECT_EQ((*t)->kind, TenantKind::kInternal);

  Status again = store().bootstrap(tenant("ten_admin2", "operator2"), key("key_admin2", "ten_admin2"),
                                   audit("aud_boot2", "bootstrap", "ten_admin2"));
  EXPECT_EQ(again.code(), ErrorCode::kConflict) << again.to_string();
  EXPECT_NE(again.message().find("already bootstrapped"), std::string::npos);
  // Nothing of the second attempt was written.
  EXPECT_EQ(tenant_count(store()), 1u);
  EXPECT_EQ(audit_count(store()), 1u);
  EXPECT_FALSE(store().find_key("key_admin2")->has_value());
  EXPECT_EQ(store().get_setting("admin_tenant_id")->value_or(""), "ten_admin");
}

TEST_P(StoreTest, BootstrapIsAtomic) {
  // The key names a tenant that does not exist: the foreign key fails, and
  // neither the tenant nor the setting nor the audit record may remain.
  Status failed = store().bootstrap(tenant("ten_admin", "operator"), key("key_admin", "ten_elsewhere"),
                                    audit("aud_boot", "bootstrap", "ten_admin"));
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(tenant_count(store()), 0u);
  EXPECT_EQ(audit_count(store()), 0u);
  EXPECT_FALSE(store().get_setting("admin_tenant_id")->has_value());
  // ...so bootstrap can then succeed.
  Status ok = store().bootstrap(tenant("ten_admin", "operator"), key("key_admin", "ten_admin"),
                                audit("aud_boot", "bootstrap", "ten_admin"));
  EXPECT_TRUE(ok.is_ok()) << ok.to_string();
}

TEST_P(StoreTest, CreateAndFindTenant) {
  Tenant t = tenant("ten_a", "alpha", TenantKind::kInternal);
  t.created_at = Timestamp{1'767'225'600'123'456};
  ASSERT_TRUE(store().create_tenant(t, audit("aud_1", "tenant.create", "ten_a")).is_ok());
  auto found = store().find_tenant("ten_a");
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->id, "ten_a");
  EXPECT_EQ((*found)->name, "alpha");
  EXPECT_EQ((*found)->kind, TenantKind::kInternal);
  EXPECT_EQ((*found)->created_at, t.created_at);
  // Names are stored as given, bytes and all.
  create_tenant_ok("ten_b", "b\xC3\xA9ta 'quoted' \"double\"; DROP TABLE tenants;--");
  EXPECT_EQ(store().find_tenant("ten_b")->value().name, "b\xC3\xA9ta 'quoted' \"double\"; DROP TABLE tenants;--");
  EXPECT_EQ(tenant_count(store()), 2u);
}

TEST_P(StoreTest, DuplicateTenantNameWritesNothing) {
  create_tenant_ok("ten_a", "acme");
  Status dup = store().create_tenant(tenant("ten_b", "acme"), audit("aud_dup", "tenant.create", "ten_b"));
  EXPECT_EQ(dup.code(), ErrorCode::kAlreadyExists) << dup.to_string();
  EXPECT_NE(dup.message().find("\"acme\""), std::string::npos) << dup.message();
  // Atomic: the audit record of the failed create is not there either.
  EXPECT_EQ(audit_count(store()), 1u);
  EXPECT_EQ(tenant_count(store()), 1u);
  EXPECT_FALSE(store().find_tenant("ten_b")->has_value());
  // Names are case-sensitive: "Acme" is another name.
  create_tenant_ok("ten_c", "Acme");
}

TEST_P(StoreTest, FailedAuditWriteRollsBackTheChange) {
  create_tenant_ok("ten_a", "alpha");
  // The audit id is unique; reusing it fails the audit insert, after the tenant insert.
  Status failed = store().create_tenant(tenant("ten_b", "beta"), audit("aud_ten_a", "tenant.create", "ten_b"));
  ASSERT_FALSE(failed.is_ok());
  EXPECT_FALSE(store().find_tenant("ten_b")->has_value());
  EXPECT_EQ(tenant_count(store()), 1u);
  EXPECT_EQ(audit_count(store()), 1u);
  // And the store is usable afterwards (the transaction was closed).
  create_tenant_ok("ten_b", "beta");
}

TEST_P(StoreTest, ListTenantsKeysetPagination) {
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) {
    // Ids not in sorted order: the listing is by creation, not by id.
    std::string id = "ten_" + std::to_string((i * 7) % 25 + 100);
    ids.push_back(id);
    create_tenant_ok(id, "tenant " + std::to_string(i));
  }
  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  for (;;) {
    auto page = store().list_tenants({.limit = 10, .after = after});
    ASSERT_TRUE(page.is_ok()) << page.status().to_string();
    ++pages;
    for (const auto& t : page->items) seen.push_back(t.id);
    if (!page->has_more) {
      EXPECT_EQ(page->items.size(), 5u);
      break;
    }
    EXPECT_EQ(page->items.size(), 10u);
    after = page->items.back().id;
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, ids);

  // A page that ends exactly at the last record has no more.
  auto exact = store().list_tenants({.limit = 5, .after = ids[19]});
  ASSERT_TRUE(exact.is_ok());
  EXPECT_EQ(exact->items.size(), 5u);
  EXPECT_FALSE(exact->has_more);
  auto all = store().list_tenants({.limit = 25});
  EXPECT_EQ(all->items.size(), 25u);
  EXPECT_FALSE(all->has_more);
  auto past_end = store().list_tenants({.limit = 10, .after = ids.back()});
  EXPECT_TRUE(past_end->items.empty());
  EXPECT_FALSE(past_end->has_more);
  auto one = store().list_tenants({.limit = 1});
  ASSERT_EQ(one->items.size(), 1u);
  EXPECT_EQ(one->items[0].id, ids[0]);
  EXPECT_TRUE(one->has_more);
  auto zero = store().list_tenants({.limit = 0});
  EXPECT_TRUE(zero->items.empty());
  EXPECT_TRUE(zero->has_more);

  auto everything = store().all_tenants();
  ASSERT_TRUE(everything.is_ok());
  ASSERT_EQ(everything->size(), 25u);
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ((*everything)[i].id, ids[i]);
}

TEST_P(StoreTest, KeysCreateFindListCount) {
  create_tenant_ok("ten_a", "alpha");
  create_tenant_ok("ten_b", "beta");
  ApiKey full = key("key_a1", "ten_a");
  full.scopes = kScopeBilling;
  full.expires_at = Timestamp{1'800'000'000'000'001};
  full.replaces = "key_a0";
  ASSERT_TRUE(store().create_key(full, audit("aud_k1", "key.create", "key_a1")).is_ok());
  for (int i = 2; i <= 12; ++i) {
    std::string id = "key_a" + std::to_string(i);
    ASSERT_TRUE(store().create_key(key(id, "ten_a"), audit("aud_" + id, "key.create", id)).is_ok());
  }
  ASSERT_TRUE(store().create_key(key("key_b1", "ten_b"), audit("aud_kb1", "key.create", "key_b1")).is_ok());

  auto found = store().find_key("key_a1");
  ASSERT_TRUE(found.is_ok() && found->has_value());
  const ApiKey& k = **found;
  EXPECT_EQ(k.id, "key_a1");
  EXPECT_EQ(k.tenant_id, "ten_a");
  EXPECT_EQ(k.name, full.name);
  EXPECT_EQ(k.scopes, kScopeBilling);
  EXPECT_EQ(k.lookup_prefix, full.lookup_prefix);
  EXPECT_EQ(k.secret_sha256, full.secret_sha256);
  EXPECT_EQ(k.created_at, full.created_at);
  EXPECT_EQ(k.expires_at, full.expires_at);
  EXPECT_FALSE(k.revoked_at.has_value());
  EXPECT_EQ(k.replaces, full.replaces);
  auto plain = store().find_key("key_a2");
  EXPECT_FALSE((*plain)->expires_at.has_value());
  EXPECT_FALSE((*plain)->replaces.has_value());

  EXPECT_EQ(store().count_keys("ten_a").value(), 12u);
  EXPECT_EQ(store().count_keys("ten_b").value(), 1u);
  EXPECT_EQ(store().count_keys("ten_none").value(), 0u);

  auto first = store().list_keys("ten_a", {.limit = 5});
  ASSERT_TRUE(first.is_ok());
  ASSERT_EQ(first->items.size(), 5u);
  EXPECT_TRUE(first->has_more);
  EXPECT_EQ(first->items[0].id, "key_a1");
  auto second = store().list_keys("ten_a", {.limit = 5, .after = first->items.back().id});
  ASSERT_EQ(second->items.size(), 5u);
  EXPECT_EQ(second->items[0].id, "key_a6");
  auto third = store().list_keys("ten_a", {.limit = 5, .after = second->items.back().id});
  ASSERT_EQ(third->items.size(), 2u);
  EXPECT_FALSE(third->has_more);
  EXPECT_EQ(third->items.back().id, "key_a12");
  // Only the tenant's own keys.
  auto b = store().list_keys("ten_b", {.limit = 100});
  ASSERT_EQ(b->items.size(), 1u);
  EXPECT_EQ(b->items[0].id, "key_b1");
  EXPECT_TRUE(store().list_keys("ten_none", {.limit = 100})->items.empty());

  auto all = store().all_keys();
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(all->size(), 13u);
  EXPECT_EQ(audit_count(store()), 2u + 13u);
}

TEST_P(StoreTest, KeyOfAnUnknownTenantIsRefusedAtomically) {
  Status s = store().create_key(key("key_x", "ten_nobody"), audit("aud_x", "key.create", "key_x"));
  EXPECT_FALSE(s.is_ok());
  EXPECT_FALSE(store().find_key("key_x")->has_value());
  EXPECT_EQ(audit_count(store()), 0u);
}

TEST_P(StoreTest, DuplicateLookupPrefixRefusedAtomically) {
  create_tenant_ok("ten_a", "alpha");
  ASSERT_TRUE(store().create_key(key("key_1", "ten_a", "hr_SAMEPREF"), audit("aud_k1", "key.create", "key_1")).is_ok());
  Status s = store().create_key(key("key_2", "ten_a", "hr_SAMEPREF"), audit("aud_k2", "key.create", "key_2"));
  EXPECT_FALSE(s.is_ok());
  EXPECT_FALSE(store().find_key("key_2")->has_value());
  EXPECT_EQ(store().count_keys("ten_a").value(), 1u);
  EXPECT_EQ(audit_count(store()), 2u);
}

TEST_P(StoreTest, RevokeOnceThenConflict) {
  create_tenant_ok("ten_a", "alpha");
  ASSERT_TRUE(store().create_key(key("key_1", "ten_a"), audit("aud_k1", "key.create", "key_1")).is_ok());
  Timestamp at = Timestamp::from_unix_seconds(1'767'300'000);
  Status first = store().revoke_key("key_1", at, audit("aud_r1", "key.revoke", "key_1"));
  ASSERT_TRUE(first.is_ok()) << first.to_string();
  EXPECT_EQ(store().find_key("key_1")->value().revoked_at, std::optional<Timestamp>(at));

  Status second = store().revoke_key("key_1", at.plus_seconds(10), audit("aud_r2", "key.revoke", "key_1"));
  EXPECT_EQ(second.code(), ErrorCode::kConflict) << second.to_string();
  EXPECT_NE(second.message().find("already revoked"), std::string::npos);
  // The first revocation time stands, and the failed attempt left no audit record.
  EXPECT_EQ(store().find_key("key_1")->value().revoked_at, std::optional<Timestamp>(at));
  EXPECT_EQ(audit_count(store()), 3u);

  Status unknown = store().revoke_key("key_nope", at, audit("aud_r3", "key.revoke", "key_nope"));
  EXPECT_FALSE(unknown.is_ok());
  EXPECT_EQ(audit_count(store()), 3u);
}

TEST_P(StoreTest, RotateSetsTheOldExpiryToTheEarlierAndInsertsTheNewKey) {
  create_tenant_ok("ten_a", "alpha");
  Timestamp t0 = Timestamp::from_unix_seconds(1'767'300'000);
  ApiKey no_expiry = key("key_none", "ten_a");
  ApiKey early = key("key_early", "ten_a");
  early.expires_at = t0;
  ApiKey late = key("key_late", "ten_a");
  late.expires_at = t0.plus_seconds(1'000'000);
  for (const ApiKey& k : {no_expiry, early, late}) {
    ASSERT_TRUE(store().create_key(k, audit("aud_c_" + k.id, "key.create", k.id)).is_ok());
  }
  Timestamp given = t0.plus_seconds(86'400);
  int n = 0;
  for (const ApiKey& old : {no_expiry, early, late}) {
    ApiKey fresh = key(old.id + "_new", "ten_a");
    fresh.replaces = old.id;
    Status s = store().rotate_key(old.id, given, fresh, audit("aud_rot" + std::to_string(n++), "key.rotate", old.id));
    ASSERT_TRUE(s.is_ok()) << old.id << ": " << s.to_string();
    auto inserted = store().find_key(fresh.id);
    ASSERT_TRUE(inserted.is_ok() && inserted->has_value()) << fresh.id;
    EXPECT_EQ((*inserted)->replaces, std::optional<std::string>(old.id));
    EXPECT_EQ((*inserted)->secret_sha256, fresh.secret_sha256);
  }
  // min(existing, given); no existing expiry: given.
  EXPECT_EQ(store().find_key("key_none")->value().expires_at, std::optional<Timestamp>(given));
  EXPECT_EQ(store().find_key("key_early")->value().expires_at, std::optional<Timestamp>(t0));
  EXPECT_EQ(store().find_key("key_late")->value().expires_at, std::optional<Timestamp>(given));
  EXPECT_EQ(store().count_keys("ten_a").value(), 6u);
  EXPECT_EQ(audit_count(store()), 1u + 3u + 3u);
}

TEST_P(StoreTest, RotateIsAtomic) {
  create_tenant_ok("ten_a", "alpha");
  ASSERT_TRUE(store().create_key(key("key_old", "ten_a"), audit("aud_c1", "key.create", "key_old")).is_ok());
  ASSERT_TRUE(
      store().create_key(key("key_other", "ten_a", "hr_TAKEN000"), audit("aud_c2", "key.create", "key_other")).is_ok());
  // The new key's lookup prefix is taken: the insert fails after the
  // expiry update, which must be rolled back.
  Status s = store().rotate_key("key_old", Timestamp::from_unix_seconds(1'767'400'000),
                                key("key_new", "ten_a", "hr_TAKEN000"), audit("aud_rot", "key.rotate", "key_old"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_FALSE(store().find_key("key_old")->value().expires_at.has_value());
  EXPECT_FALSE(store().find_key("key_new")->has_value());
  EXPECT_EQ(audit_count(store()), 3u);

  // A revoked key cannot be rotated, and nothing is inserted.
  ASSERT_TRUE(
      store()
          .revoke_key("key_old", Timestamp::from_unix_seconds(1'767'300'000), audit("aud_rev", "key.revoke", "key_old"))
          .is_ok());
  Status revoked = store().rotate_key("key_old", Timestamp::from_unix_seconds(1'767'400'000), key("key_new", "ten_a"),
                                      audit("aud_rot2", "key.rotate", "key_old"));
  EXPECT_EQ(revoked.code(), ErrorCode::kConflict) << revoked.to_string();
  EXPECT_FALSE(store().find_key("key_new")->has_value());
  EXPECT_FALSE(store().find_key("key_old")->value().expires_at.has_value());
  EXPECT_EQ(audit_count(store()), 4u);
}

TEST_P(StoreTest, AuditLogInOrderWithPagination) {
  create_tenant_ok("ten_a", "alpha");
  ASSERT_TRUE(store().create_key(key("key_1", "ten_a"), audit("aud_k1", "key.create", "key_1")).is_ok());
  ASSERT_TRUE(store().revoke_key("key_1", Timestamp{5}, audit("aud_r1", "key.revoke", "key_1")).is_ok());
  auto page = store().list_audit({.limit = 2});
  ASSERT_TRUE(page.is_ok());
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_TRUE(page->has_more);
  EXPECT_EQ(page->items[0].id, "aud_ten_a");
  EXPECT_EQ(page->items[0].action, "tenant.create");
  EXPECT_EQ(page->items[0].target_id, "ten_a");
  EXPECT_EQ(page->items[0].actor_tenant_id, "ten_admin");
  EXPECT_EQ(page->items[0].actor_key_id, "key_admin");
  EXPECT_EQ(page->items[0].request_id, "req_1");
  EXPECT_EQ(page->items[0].details_json, R"({"k":"v"})");
  EXPECT_EQ(page->items[0].time, Timestamp::from_unix_seconds(1'767'225'602));
  EXPECT_EQ(page->items[1].id, "aud_k1");
  EXPECT_LT(page->items[0].seq, page->items[1].seq);
  auto rest = store().list_audit({.limit = 2, .after = page->items.back().id});
  ASSERT_EQ(rest->items.size(), 1u);
  EXPECT_FALSE(rest->has_more);
  EXPECT_EQ(rest->items[0].id, "aud_r1");
  EXPECT_EQ(rest->items[0].action, "key.revoke");
}

// Schema 4: hosted models deployed through the API.
TEST_P(StoreTest, ModelDeployments) {
  auto none = store().all_deployments();
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(store().create_deployment("tiny", R"({"replicas":1})", audit("aud_d1", "model.deploy", "tiny")).is_ok());
  ASSERT_TRUE(store().create_deployment("Big", R"({"replicas":2})", audit("aud_d2", "model.deploy", "Big")).is_ok());
  Status dup = store().create_deployment("tiny", "{}", audit("aud_d3", "model.deploy", "tiny"));
  EXPECT_EQ(dup.code(), ErrorCode::kAlreadyExists) << dup.to_string();
  auto all = store().all_deployments();
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0], std::make_pair(std::string("Big"), std::string(R"({"replicas":2})")));  // by name, bytewise
  EXPECT_EQ((*all)[1].first, "tiny");
  ASSERT_TRUE(store().delete_deployment("tiny", audit("aud_d4", "model.undeploy", "tiny")).is_ok());
  EXPECT_EQ(store().delete_deployment("tiny", audit("aud_d5", "model.undeploy", "tiny")).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store().all_deployments()->size(), 1u);
  // Each change with its audit record; the refused ones left none.
  EXPECT_EQ(audit_count(store()), 3u);
}

TEST_P(StoreTest, ConcurrentCreatesLoseNothing) {
  constexpr int kThreads = 8, kEach = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string id = "ten_" + std::to_string(t) + "_" + std::to_string(i);
        if (!store().create_tenant(tenant(id, "name " + id), audit("aud_" + id, "tenant.create", id)).is_ok()) {
          failures.fetch_add(1);
          continue;
        }
        std::string kid = "key_" + std::to_string(t) + "_" + std::to_string(i);
        if (!store().create_key(key(kid, id), audit("aud_" + kid, "key.create", kid)).is_ok()) failures.fetch_add(1);
        // Readers interleave with the writers.
        if (!store().find_tenant(id).is_ok() || !store().list_tenants({.limit = 5}).is_ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(tenant_count(store()), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ(store().all_keys()->size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ(audit_count(store()), static_cast<std::size_t>(2 * kThreads * kEach));
  // Sequence numbers are unique and increasing.
  auto records = store().list_audit({.limit = 1'000});
  for (std::size_t i = 1; i < records->items.size(); ++i) {
    EXPECT_LT(records->items[i - 1].seq, records->items[i].seq);
  }
}

}  // namespace
}  // namespace headroom::store
