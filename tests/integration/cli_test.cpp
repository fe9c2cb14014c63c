// The `headroom` client commands against a real server: output, secrets
// shown once, and exit codes that scripts can trust.
#include "auth/api_key.h"
#include "fixture.h"

namespace headroom::testing {
namespace {

class CliTest : public ServerTest {
 protected:
  static CommandResult headroom(std::vector<std::string> args, const std::string& key) {
    return run_headroom(args, {{"HEADROOM_URL", server_->url()}, {"HEADROOM_API_KEY", key}});
  }
  static boost::json::value parse(const std::string& text) {
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    EXPECT_FALSE(ec) << text;
    return v;
  }
};

TEST_F(CliTest, TenantsAndKeysEndToEnd) {
  CommandResult created = headroom({"tenants", "create", "cli-co", "--kind", "external", "--output", "json"}, admin_);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string tenant(parse(created.out).at("id").as_string());

  CommandResult table = headroom({"tenants", "list"}, admin_);
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("cli-co"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("ID"), std::string::npos) << "a table has a header row: " << table.out;

  CommandResult shown = headroom({"tenants", "show", tenant, "-o", "json"}, admin_);
  ASSERT_EQ(shown.exit_code, 0);
  EXPECT_EQ(parse(shown.out).at("name"), "cli-co");

  CommandResult key = headroom(
      {"keys", "create", "--tenant", tenant, "--name", "ci", "--scopes", "compute,inference", "-o", "json"}, admin_);
  ASSERT_EQ(key.exit_code, 0) << key.err;
  auto key_json = parse(key.out);
  std::string secret(key_json.at("key").as_string());
  std::string key_id(key_json.at("id").as_string());
  EXPECT_TRUE(auth::is_well_formed_api_key(secret));
  EXPECT_NE(key.err.find("only time"), std::string::npos) << "warns that the secret is shown once: " << key.err;

  CommandResult me = headroom({"me", "-o", "json"}, secret);
  ASSERT_EQ(me.exit_code, 0) << me.err;
  EXPECT_EQ(parse(me.out).at("tenant").at("id"), tenant.c_str());

  CommandResult listed = headroom({"keys", "list", "--tenant", tenant}, secret);
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find(key_id), std::string::npos);
  EXPECT_EQ(listed.out.find(secret), std::string::npos) << "never the secret";

  CommandResult rotated = headroom({"keys", "rotate", key_id, "-o", "json"}, admin_);
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  std::string new_secret(parse(rotated.out).at("key").as_string());
  EXPECT_EQ(headroom({"me"}, new_secret).exit_code, 0);

  CommandResult revoked = headroom({"keys", "revoke", key_id}, admin_);
  EXPECT_EQ(revoked.exit_code, 0) << revoked.err;
  CommandResult refused = headroom({"me"}, secret);
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.err.find("revoked"), std::string::npos) << refused.err;
}

TEST_F(CliTest, ExitCodes) {
  EXPECT_EQ(headroom({"me"}, "").exit_code, 3);  // no key at all
  CommandResult no_key = headroom({"me"}, "");
  EXPECT_NE(no_key.err.find("HEADROOM_API_KEY"), std::string::npos) << no_key.err;
  EXPECT_EQ(headroom({"tenants", "show", "ten_aaaaaaaaaaaaaaaaaaaaa"}, admin_).exit_code, 4);
  CommandResult bad = headroom({"tenants", "create", "bad name!"}, admin_);
  EXPECT_EQ(bad.exit_code, 5);
  EXPECT_NE(bad.err.find("name"), std::string::npos) << bad.err;
  EXPECT_EQ(headroom({"tenants", "frobnicate"}, admin_).exit_code, 2);
  CommandResult unreachable =
      run_headroom({"me"}, {{"HEADROOM_URL", "http://127.0.0.1:1"}, {"HEADROOM_API_KEY", admin_}});
  EXPECT_EQ(unreachable.exit_code, 6);
  EXPECT_NE(unreachable.err.find("127.0.0.1:1"), std::string::npos) << unreachable.err;
}

TEST_F(CliTest, HelpOnEveryCommand) {
  for (std::vector<std::string> cmd : {std::vector<std::string>{"--help"},
                                       {"serve", "--help"},
                                       {"keygen", "--help"},
                                       {"tenants", "--help"},
                                       {"tenants", "create", "--help"},
                                       {"tenants", "list", "--help"},
                                       {"tenants", "show", "--help"},
                                       {"keys", "--help"},
                                       {"keys", "create", "--help"},
                                       {"keys", "list", "--help"},
                                       {"keys", "revoke", "--help"},
                                       {"keys", "rotate", "--help"},
                                       {"me", "--help"}}) {
    CommandResult r = run_headroom(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd[0];
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd[0] << ": " << r.out;
  }
}

}  // namespace
}  // namespace headroom::testing
