#include "auth/authenticator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "auth/api_key.h"
#include "common/crypto.h"

namespace headroom::auth {
namespace {

using store::ApiKey;
using store::Tenant;

class AuthenticatorTest : public ::testing::Test {
 protected:
  AuthenticatorTest() : random_(11), authenticator_(clock_) {
    acme_ = Tenant{"ten_acme", "acme", store::TenantKind::kExternal, clock_.now()};
    ops_ = Tenant{"ten_ops", "ops", store::TenantKind::kInternal, clock_.now()};
    acme_key_ = make_key("key_acme", acme_.id, store::kScopeCompute | store::kScopeInference, acme_secret_);
    admin_key_ = make_key("key_admin", ops_.id, store::kScopeAdmin, admin_secret_);
    authenticator_.load({acme_, ops_}, {acme_key_, admin_key_});
  }

  ApiKey make_key(std::string id, std::string tenant_id, store::ScopeSet scopes, std::string& secret) {
    GeneratedKey generated = generate_api_key(random_);
    ApiKey key;
    key.id = std::move(id);
    key.tenant_id = std::move(tenant_id);
    key.name = "test";
    key.scopes = scopes;
    key.lookup_prefix = generated.lookup_prefix;
    key.secret_sha256 = generated.secret_sha256;
    key.created_at = clock_.now();
    secret = generated.secret;
    return key;
  }

  Result<Caller> auth(const std::string& secret) { return authenticator_.authenticate("Bearer " + secret); }

  static void expect_unauthenticated(const Result<Caller>& result, std::string_view message_part) {
    ASSERT_FALSE(result.is_ok());
    EXPECT_EQ(result.status().code(), ErrorCode::kUnauthenticated);
    EXPECT_NE(result.status().message().find(message_part), std::string::npos) << result.status().message();
  }

  ManualClock clock_;
  SeededRandom random_;
  Authenticator authenticator_;
  Tenant acme_, ops_;
  ApiKey acme_key_, admin_key_;
  std::string acme_secret_, admin_secret_;
};

TEST_F(AuthenticatorTest, ValidKeyGivesItsCaller) {
  auto caller = auth(acme_secret_);
  ASSERT_TRUE(caller.is_ok()) << caller.status().to_string();
  EXPECT_TRUE(caller->authenticated());
  EXPECT_EQ(caller->tenant_id(), "ten_acme");
  EXPECT_EQ(caller->tenant().name, "acme");
  EXPECT_EQ(caller->key().id, "key_acme");
  EXPECT_TRUE(caller->has_scope(store::kScopeCompute));
  EXPECT_TRUE(caller->has_scope(store::kScopeCompute | store::kScopeInference));
  EXPECT_TRUE(caller->has_scope(0));
  EXPECT_FALSE(caller->has_scope(store::kScopeBilling));
  EXPECT_FALSE(caller->has_scope(store::kScopeCompute | store::kScopeBilling));
  EXPECT_FALSE(caller->is_admin());
  EXPECT_TRUE(caller->may_access("ten_acme"));
  EXPECT_FALSE(caller->may_access("ten_ops"));
  EXPECT_FALSE(caller->may_access(""));
}

TEST_F(AuthenticatorTest, AdminMayAccessEveryTenant) {
  auto caller = auth(admin_secret_);
  ASSERT_TRUE(caller.is_ok()) << caller.status().to_string();
  EXPECT_TRUE(caller->is_admin());
  EXPECT_TRUE(caller->may_access("ten_acme"));
  EXPECT_TRUE(caller->may_access("ten_ops"));
  EXPECT_TRUE(caller->may_access("ten_anyone"));
  // Admin is a scope of its own, not a superset of the others.
  EXPECT_FALSE(caller->has_scope(store::kScopeCompute));
}

TEST(CallerTest, UnauthenticatedCallerMayDoNothing) {
  Caller nobody;
  EXPECT_FALSE(nobody.authenticated());
  EXPECT_FALSE(nobody.has_scope(0));
  EXPECT_FALSE(nobody.is_admin());
  EXPECT_FALSE(nobody.may_access("ten_acme"));
  EXPECT_FALSE(nobody.may_access(""));
}

TEST_F(AuthenticatorTest, UnknownKey) {
  std::string other = generate_api_key(random_).secret;
  expect_unauthenticated(auth(other), "invalid API key");
}

TEST_F(AuthenticatorTest, WrongSecretWithTheRightPrefix) {
  // Same lookup prefix, different secret part, valid checksum: found by
  // prefix, refused by hash.
  std::string head = acme_secret_.substr(0, 35);
  head[20] = head[20] == 'A' ? 'B' : 'A';
  std::string forged = head + base62_fixed(crc32(head), 6);
  ASSERT_TRUE(is_well_formed_api_key(forged));
  ASSERT_EQ(forged.substr(0, 11), acme_key_.lookup_prefix);
  expect_unauthenticated(auth(forged), "invalid API key");
}

TEST_F(AuthenticatorTest, MistypedKeyFailsTheChecksum) {
  std::string typo = acme_secret_;
  typo[15] = typo[15] == 'x' ? 'y' : 'x';
  expect_unauthenticated(auth(typo), "malformed API key");
  expect_unauthenticated(auth(acme_secret_.substr(0, 40)), "malformed API key");
  expect_unauthenticated(auth(acme_secret_ + "0"), "malformed API key");
  expect_unauthenticated(auth("not-a-key"), "malformed API key");
}

TEST_F(AuthenticatorTest, RevokedKey) {
  ApiKey revoked = acme_key_;
  revoked.revoked_at = clock_.now();
  authenticator_.put_key(revoked);
  auto result = auth(acme_secret_);
  expect_unauthenticated(result, "revoked");
  EXPECT_NE(result.status().message().find("key_acme"), std::string::npos);
  EXPECT_NE(result.status().message().find(to_rfc3339(clock_.now())), std::string::npos);
  // Others' keys are untouched.
  EXPECT_TRUE(auth(admin_secret_).is_ok());
}

TEST_F(AuthenticatorTest, ExpiresExactlyAtExpiresAt) {
  ApiKey expiring = acme_key_;
  expiring.expires_at = clock_.now().plus_seconds(60);
  authenticator_.put_key(expiring);

  EXPECT_TRUE(auth(acme_secret_).is_ok());
  clock_.set(expiring.expires_at->plus_micros(-1));
  EXPECT_TRUE(auth(acme_secret_).is_ok()) << "one microsecond before expires_at the key still works";
  clock_.set(*expiring.expires_at);
  auto at = auth(acme_secret_);
  expect_unauthenticated(at, "expired");
  EXPECT_NE(at.status().message().find(to_rfc3339(*expiring.expires_at)), std::string::npos);
  clock_.advance_seconds(3600);
  expect_unauthenticated(auth(acme_secret_), "expired");
  // Turning the clock back (ManualClock can) brings it back: expiry is a comparison, not a state.
  clock_.set(expiring.expires_at->plus_seconds(-1));
  EXPECT_TRUE(auth(acme_secret_).is_ok());
  // The record's own rule agrees.
  EXPECT_TRUE(expiring.usable_at(expiring.expires_at->plus_micros(-1)));
  EXPECT_FALSE(expiring.usable_at(*expiring.expires_at));
}

TEST_F(AuthenticatorTest, RevokedWinsOverExpired) {
  ApiKey both = acme_key_;
  both.expires_at = clock_.now();
  both.revoked_at = clock_.now();
  authenticator_.put_key(both);
  expect_unauthenticated(auth(acme_secret_), "revoked");
}

TEST_F(AuthenticatorTest, AuthorizationHeaderForms) {
  EXPECT_TRUE(authenticator_.authenticate("Bearer " + acme_secret_).is_ok());
  EXPECT_TRUE(authenticator_.authenticate("bearer " + acme_secret_).is_ok());
  EXPECT_TRUE(authenticator_.authenticate("BEARER " + acme_secret_).is_ok());
  EXPECT_TRUE(authenticator_.authenticate("bEaReR " + acme_secret_).is_ok());
  EXPECT_TRUE(authenticator_.authenticate("Bearer    " + acme_secret_).is_ok());
  EXPECT_TRUE(authenticator_.authenticate("Bearer " + acme_secret_ + "   ").is_ok());

  expect_unauthenticated(authenticator_.authenticate(""), "missing Authorization header");
  expect_unauthenticated(authenticator_.authenticate("Basic dXNlcjpwYXNz"), "must be \"Bearer hr_...\"");
  expect_unauthenticated(authenticator_.authenticate("Basic " + acme_secret_), "must be \"Bearer hr_...\"");
  expect_unauthenticated(authenticator_.authenticate("Bearer"), "must be \"Bearer hr_...\"");
  expect_unauthenticated(authenticator_.authenticate("Bear"), "must be \"Bearer hr_...\"");
  expect_unauthenticated(authenticator_.authenticate("Bearer" + acme_secret_), "must be \"Bearer hr_...\"");
  expect_unauthenticated(authenticator_.authenticate("Bearer\t" + acme_secret_), "must be \"Bearer hr_...\"");
  expect_unauthenticated(authenticator_.authenticate(" Bearer " + acme_secret_), "must be \"Bearer hr_...\"");
  expect_unauthenticated(authenticator_.authenticate(acme_secret_), "must be \"Bearer hr_...\"");
  expect_unauthenticated(authenticator_.authenticate("Token " + acme_secret_), "must be \"Bearer hr_...\"");
  expect_unauthenticated(authenticator_.authenticate("Bearer "), "malformed API key");
  expect_unauthenticated(authenticator_.authenticate("Bearer   "), "malformed API key");
  expect_unauthenticated(authenticator_.authenticate("Bearer " + acme_secret_ + " extra"), "malformed API key");
  expect_unauthenticated(authenticator_.authenticate("Bearer " + acme_secret_ + "\t"), "malformed API key");
  expect_unauthenticated(authenticator_.authenticate("Bearer \"" + acme_secret_ + "\""), "malformed API key");
  expect_unauthenticated(authenticator_.authenticate("Bearer " + acme_secret_ + "," + admin_secret_),
                         "malformed API key");
  // High bytes where "Bearer" should be do not crash.
  expect_unauthenticated(authenticator_.authenticate("\xC3\xA9\xFF\x80\x81\x82\x83" + acme_secret_),
                         "must be \"Bearer hr_...\"");
}

TEST_F(AuthenticatorTest, MessagesNeverEchoTheSecret) {
  std::string typo = acme_secret_;
  typo[30] = typo[30] == 'q' ? 'r' : 'q';
  for (const std::string& header : {"Bearer " + typo, "Basic " + acme_secret_, "Bearer " + acme_secret_ + "x"}) {
    auto result = authenticator_.authenticate(header);
    ASSERT_FALSE(result.is_ok());
    EXPECT_EQ(result.status().message().find(acme_secret_.substr(11)), std::string::npos)
        << result.status().message();
  }
}

TEST_F(AuthenticatorTest, PutKeyRotation) {
  // Rotation: the store inserts a new key and gives the old one an expiry;
  // the Authenticator is told of both.
  ApiKey old_after = acme_key_;
  old_after.expires_at = clock_.now().plus_seconds(3600);
  std::string new_secret;
  ApiKey fresh = make_key("key_acme2", acme_.id, acme_key_.scopes, new_secret);
  fresh.replaces = acme_key_.id;
  authenticator_.put_key(old_after);
  authenticator_.put_key(fresh);

  auto old_caller = auth(acme_secret_);
  ASSERT_TRUE(old_caller.is_ok());
  EXPECT_EQ(old_caller->key().expires_at, old_after.expires_at);
  auto new_caller = auth(new_secret);
  ASSERT_TRUE(new_caller.is_ok());
  EXPECT_EQ(new_caller->key().id, "key_acme2");
  EXPECT_EQ(new_caller->key().replaces, std::optional<std::string>("key_acme"));

  clock_.advance_seconds(3600);
  expect_unauthenticated(auth(acme_secret_), "expired");
  EXPECT_TRUE(auth(new_secret).is_ok());
}

TEST_F(AuthenticatorTest, CallerKeepsTheIdentityItWasGiven) {
  auto before = auth(acme_secret_);
  ASSERT_TRUE(before.is_ok());
  ApiKey revoked = acme_key_;
  revoked.revoked_at = clock_.now();
  authenticator_.put_key(revoked);
  // A request already authenticated holds an immutable snapshot.
  EXPECT_FALSE(before->key().revoked_at.has_value());
  EXPECT_FALSE(auth(acme_secret_).is_ok());
}

TEST_F(AuthenticatorTest, LoadReplacesEverything) {
  std::string other_secret;
  ApiKey other = make_key("key_other", acme_.id, store::kScopeBilling, other_secret);
  authenticator_.load({acme_}, {other});
  expect_unauthenticated(auth(acme_secret_), "invalid API key");
  expect_unauthenticated(auth(admin_secret_), "invalid API key");
  EXPECT_TRUE(auth(other_secret).is_ok());
}

TEST_F(AuthenticatorTest, PutTenantThenKey) {
  Tenant beta{"ten_beta", "beta", store::TenantKind::kExternal, clock_.now()};
  authenticator_.put_tenant(beta);
  std::string secret;
  authenticator_.put_key(make_key("key_beta", beta.id, store::kScopeCompute, secret));
  auto caller = auth(secret);
  ASSERT_TRUE(caller.is_ok());
  EXPECT_EQ(caller->tenant().name, "beta");
}

TEST_F(AuthenticatorTest, ConcurrentAuthenticateAndPut) {
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        if (!auth(admin_secret_).is_ok()) failures.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 300; ++i) {
    std::string secret;
    ApiKey key = make_key("key_" + std::to_string(i), acme_.id, store::kScopeCompute, secret);
    authenticator_.put_key(key);
    ASSERT_TRUE(auth(secret).is_ok());
  }
  stop.store(true);
  for (auto& r : readers) r.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(AuthenticatorTest, KeyOfAnUnknownTenantIsAProgrammerError) {
  std::string secret;
  ApiKey orphan = make_key("key_orphan", "ten_nobody", store::kScopeCompute, secret);
  EXPECT_DEATH(authenticator_.put_key(orphan), "unknown tenant ten_nobody");
}

}  // namespace
}  // namespace headroom::auth
