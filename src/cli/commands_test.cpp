// The client commands run end to end through CLI11, against a fake
// transport that records each request and answers from a script.
#include "cli/commands.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli/api_command.h"
#include "cli/cli_test_util.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;

using test::CliTest;
using test::RunResult;
using test::SentRequest;

class CommandsTest : public CliTest {};

const char* kTenant = R"({"id":"ten_1","name":"acme","kind":"external","created_at":"2026-01-01T00:00:00Z"})";
const char* kNewKey =
    R"({"id":"key_2","tenant_id":"ten_1","name":"ci","scopes":["compute","inference"],"prefix":"hr_AbCdEfGh",
        "created_at":"2026-01-01T00:00:00Z","expires_at":null,"revoked_at":null,"key":"hr_secretsecret"})";

TEST_F(CommandsTest, TenantsCreate) {
  server_.answer(201, kTenant, {{"x-request-id", "req_1"}});
  const RunResult r = run({"tenants", "create", "acme"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(server_.requests.size(), 1u);
  const SentRequest& sent = server_.requests[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1/tenants");
  EXPECT_EQ(json::parse(sent.body), json::parse(R"({"name":"acme","kind":"external"})"));
  EXPECT_EQ(sent.header("Authorization"), "Bearer hr_testkey");
  EXPECT_EQ(r.out,
            "ID       ten_1\n"
            "NAME     acme\n"
            "KIND     external\n"
            "CREATED  2026-01-01T00:00:00Z\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(CommandsTest, TenantsCreateInternalAsJson) {
  server_.answer(201, kTenant);
  const RunResult r = run({"tenants", "create", "owner", "--kind", "internal", "--output", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(server_.requests.at(0).body), json::parse(R"({"name":"owner","kind":"internal"})"));
  EXPECT_EQ(json::parse(r.out), json::parse(kTenant));
  EXPECT_NE(r.out.find("\n  \"id\": \"ten_1\",\n"), std::string::npos) << r.out;
}

TEST_F(CommandsTest, UsageErrorsExitTwoWithoutARequest) {
  EXPECT_EQ(run({"tenants", "create", "acme", "--kind", "friendly"}).exit_code, 2);
  EXPECT_EQ(run({"tenants", "create"}).exit_code, 2);
  EXPECT_EQ(run({"tenants"}).exit_code, 2);
  EXPECT_EQ(run({"tenants", "list", "--output", "yaml"}).exit_code, 2);
  EXPECT_EQ(run({"keys", "create", "--tenant", "ten_1", "--name", "ci"}).exit_code, 2);  // no --scopes
  EXPECT_EQ(run({"keys", "create", "--tenant", "ten_1", "--name", "ci", "--scopes", "compute", "--expires-at",
                 "tomorrow"})
                .exit_code,
            2);
  EXPECT_EQ(run({"keys", "create", "--tenant", "ten_1", "--name", "ci", "--scopes", ","}).exit_code, 2);
  EXPECT_EQ(run({"tenants", "list", "--limit", "0"}).exit_code, 2);
  EXPECT_TRUE(server_.requests.empty());
}

TEST_F(CommandsTest, TenantsListPrintsATableAndPages) {
  server_.answer(200, std::string(R"({"data":[)") + kTenant +
                          R"(,{"id":"ten_2","name":"owner","kind":"internal","created_at":"2026-01-02T00:00:00Z"}],
                              "has_more":true})");
  const RunResult r = run({"tenants", "list", "--limit", "2", "--after", "ten_0"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).method, "GET");
  EXPECT_EQ(server_.requests.at(0).target, "/v1/tenants?limit=2&after=ten_0");
  EXPECT_EQ(r.out,
            "ID     NAME   KIND      CREATED\n"
            "ten_1  acme   external  2026-01-01T00:00:00Z\n"
            "ten_2  owner  internal  2026-01-02T00:00:00Z\n");
  EXPECT_EQ(r.err, "more results: rerun with --after ten_2\n");
}

TEST_F(CommandsTest, TenantsListWithoutPagingFlags) {
  server_.answer(200, R"({"data":[],"has_more":false})");
  const RunResult r = run({"tenants", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).target, "/v1/tenants");
  EXPECT_EQ(r.out, "ID  NAME  KIND  CREATED\n");
}

TEST_F(CommandsTest, TenantsShowEncodesTheId) {
  server_.answer(200, kTenant);
  EXPECT_EQ(run({"tenants", "show", "ten_1"}).exit_code, 0);
  server_.answer(404, R"({"error":{"code":"not_found","message":"no such tenant","request_id":"req_7"}})");
  const RunResult r = run({"tenants", "show", "../keys?x=1"});
  EXPECT_EQ(server_.requests.at(0).target, "/v1/tenants/ten_1");
  EXPECT_EQ(server_.requests.at(1).target, "/v1/tenants/..%2Fkeys%3Fx%3D1");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.err, "error: no such tenant (not_found, HTTP 404, request req_7)\n");
  EXPECT_EQ(r.out, "");
}

TEST_F(CommandsTest, KeysCreateShowsTheSecretOnceWithAWarning) {
  server_.answer(201, kNewKey);
  const RunResult r = run({"keys", "create", "--tenant", "ten_1", "--name", "ci", "--scopes", "compute,inference",
                           "--expires-at", "2026-12-31T23:59:59+01:00"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const SentRequest& sent = server_.requests.at(0);
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1/tenants/ten_1/keys");
  EXPECT_EQ(json::parse(sent.body),
            json::parse(R"({"name":"ci","scopes":["compute","inference"],"expires_at":"2026-12-31T22:59:59Z"})"));
  EXPECT_NE(r.out.find("KEY      hr_secretsecret\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SCOPES   compute,inference\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("EXPIRES  -\n"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("only time the secret of key_2 is shown"), std::string::npos) << r.err;
}

TEST_F(CommandsTest, KeysCreateAsJsonStillWarns) {
  server_.answer(201, kNewKey);
  const RunResult r =
      run({"keys", "create", "--tenant", "ten_1", "--name", "ci", "--scopes", "compute", "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(server_.requests.at(0).body), json::parse(R"({"name":"ci","scopes":["compute"]})"));
  EXPECT_EQ(json::parse(r.out).at("key"), "hr_secretsecret");
  EXPECT_NE(r.err.find("only time"), std::string::npos);
}

TEST_F(CommandsTest, KeysListRevokeRotate) {
  server_.answer(200, R"({"data":[{"id":"key_1","tenant_id":"ten_1","name":"ci","scopes":["compute"],
                            "prefix":"hr_AbCdEfGh","created_at":"2026-01-01T00:00:00Z","expires_at":null,
                            "revoked_at":null}],"has_more":false})");
  RunResult r = run({"keys", "list", "--tenant", "ten_1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.back().target, "/v1/tenants/ten_1/keys");
  EXPECT_EQ(r.out,
            "ID     NAME  PREFIX       SCOPES   CREATED               EXPIRES  REVOKED\n"
            "key_1  ci    hr_AbCdEfGh  compute  2026-01-01T00:00:00Z  -        -\n");

  server_.answer(200, R"({"id":"key_1","revoked_at":"2026-01-03T00:00:00Z"})");
  r = run({"keys", "revoke", "key_1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.back().method, "DELETE");
  EXPECT_EQ(server_.requests.back().target, "/v1/keys/key_1");
  EXPECT_NE(r.out.find("REVOKED  2026-01-03T00:00:00Z\n"), std::string::npos) << r.out;

  server_.answer(201, R"({"id":"key_3","replaces":"key_1","key":"hr_new"})");
  r = run({"keys", "rotate", "key_1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.back().method, "POST");
  EXPECT_EQ(server_.requests.back().target, "/v1/keys/key_1/rotate");
  EXPECT_EQ(json::parse(server_.requests.back().body), json::parse("{}"));
  EXPECT_NE(r.out.find("REPLACES  key_1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("KEY       hr_new\n"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("the old key key_1 keeps working for 24 hours"), std::string::npos) << r.err;

  server_.answer(201, R"({"id":"key_4","replaces":"key_3","key":"hr_newer"})");
  r = run({"keys", "rotate", "key_3", "--old-expires-at", "2026-02-01T00:00:00Z"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(server_.requests.back().body),
            json::parse(R"({"old_key_expires_at":"2026-02-01T00:00:00Z"})"));
  EXPECT_NE(r.err.find("keeps working until 2026-02-01T00:00:00Z"), std::string::npos) << r.err;
}

TEST_F(CommandsTest, Me) {
  server_.answer(200, R"({"tenant":{"id":"ten_1","name":"acme","kind":"external"},
                         "key":{"id":"key_1","name":"ci","prefix":"hr_AbCdEfGh","scopes":["compute","inference"],
                                "expires_at":null}})");
  const RunResult r = run({"me"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).target, "/v1/me");
  EXPECT_EQ(r.out,
            "TENANT       ten_1\n"
            "TENANT NAME  acme\n"
            "KIND         external\n"
            "KEY          key_1\n"
            "KEY NAME     ci\n"
            "PREFIX       hr_AbCdEfGh\n"
            "SCOPES       compute,inference\n"
            "EXPIRES      -\n");
}

TEST_F(CommandsTest, HttpErrorsMapToExitCodes) {
  const std::vector<std::pair<int, int>> cases = {{400, 5}, {401, 3}, {403, 3}, {404, 4}, {405, 5}, {409, 5},
                                                  {413, 5}, {422, 5}, {429, 5}, {500, 1}, {503, 1}};
  for (const auto& [status, expected] : cases) {
    server_.answer(status, R"({"error":{"code":"x","message":"m","request_id":"req_1"}})");
    const RunResult r = run({"me"});
    EXPECT_EQ(r.exit_code, expected) << status;
    EXPECT_EQ(r.err.rfind("error: m (x, HTTP " + std::to_string(status) + ", request req_1)\n", 0), 0u) << r.err;
  }
}

TEST_F(CommandsTest, UnauthenticatedSaysWhichKeyFailed) {
  server_.answer(401, R"({"error":{"code":"unauthenticated","message":"invalid API key","request_id":"req_2"}})");
  const RunResult r = run({"me"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("hint: the server does not accept the API key from HEADROOM_API_KEY"), std::string::npos)
      << r.err;
}

TEST_F(CommandsTest, ErrorWithoutTheApiShapeStillSaysSomething) {
  server_.answer(502, "<html>bad gateway</html>", {{"X-Request-Id", "req_proxy"}});
  const RunResult r = run({"me"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: the server answered HTTP 502 (HTTP 502, request req_proxy)\n", 0), 0u) << r.err;
}

TEST_F(CommandsTest, ServerErrorMessagesCannotDriveTheTerminal) {
  server_.answer(400, R"({"error":{"code":"invalid_argument","message":"bad \u001b[31mname\n"}})");
  const RunResult r = run({"me"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.err, "error: bad ?[31mname? (invalid_argument, HTTP 400)\n");
}

TEST_F(CommandsTest, AnswerThatIsNotJsonIsAnError) {
  server_.answer(200, "<html>");
  const RunResult r = run({"me"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is not JSON"), std::string::npos) << r.err;
  server_.answer(200, R"({"data":"nope"})");
  EXPECT_EQ(run({"tenants", "list"}).exit_code, 1);
}

TEST_F(CommandsTest, CannotConnectExitsSixWithAHint) {
  server_.fail(Status::unavailable("cannot reach http://127.0.0.1:8080: Connection refused"));
  const RunResult r = run({"me"});
  EXPECT_EQ(r.exit_code, 6);
  EXPECT_EQ(r.err,
            "error: cannot reach http://127.0.0.1:8080: Connection refused\n"
            "hint: is `headroom serve` running at http://127.0.0.1:8080? (the URL is from the default; set it with "
            "--url or HEADROOM_URL)\n");
  server_.fail(Status::unavailable("cannot reach https://h: TLS handshake failed: certificate verify failed"));
  EXPECT_NE(run({"me"}).err.find("--ca-file"), std::string::npos);
}

TEST_F(CommandsTest, BadUrlIsAUsageError) {
  server_.connect_error = Status::invalid_argument("malformed URL 'htp:/x'");
  const RunResult r = run({"me", "--url", "htp:/x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "error: malformed URL 'htp:/x'\nhint: the URL is from --url\n");
}

TEST_F(CommandsTest, NoApiKey) {
  vars_.clear();
  const RunResult r = run({"tenants", "list"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err,
            "error: no API key: set HEADROOM_API_KEY or pass --api-key (the admin key is printed by `headroom serve` "
            "on first start)\n");
  EXPECT_TRUE(server_.connects.empty());
}

TEST_F(CommandsTest, FlagsBeatEnvironmentWhichBeatsTheDefault) {
  server_.answer(200, "{}");
  EXPECT_EQ(run({"me"}).exit_code, 0);
  EXPECT_EQ(server_.connects.back().url, "http://127.0.0.1:8080");
  EXPECT_EQ(server_.connects.back().url_source, "the default");

  vars_["HEADROOM_URL"] = "https://env.example ";
  server_.answer(200, "{}");
  EXPECT_EQ(run({"me"}).exit_code, 0);
  EXPECT_EQ(server_.connects.back().url, "https://env.example");

  server_.answer(200, "{}");
  EXPECT_EQ(run({"me", "--url", "https://flag.example", "--api-key", "hr_flag", "--ca-file", "/dev/null"}).exit_code,
            0);
  EXPECT_EQ(server_.connects.back().url, "https://flag.example");
  EXPECT_EQ(server_.connects.back().ca_file, "/dev/null");
  EXPECT_EQ(server_.connects.back().tls_verify, net::TlsVerify::kVerify);
  EXPECT_EQ(server_.requests.back().header("Authorization"), "Bearer hr_flag");
}

TEST_F(CommandsTest, InsecureWarns) {
  vars_["HEADROOM_URL"] = "https://env.example";
  server_.answer(200, "{}");
  const RunResult r = run({"me", "--insecure"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(server_.connects.back().tls_verify, net::TlsVerify::kSkip);
  EXPECT_NE(r.err.find("warning: --insecure"), std::string::npos) << r.err;
}

TEST_F(CommandsTest, KeyWithSpacesInsideIsRefused) {
  vars_["HEADROOM_API_KEY"] = "hr_a b";
  const RunResult r = run({"me"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(server_.requests.empty());
}

class CommandsConfigTest : public CommandsTest {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) / ("headroom_cli_commands_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_ / "headroom");
    vars_.clear();
    vars_["XDG_CONFIG_HOME"] = dir_.string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write_config(const std::string& text, std::filesystem::perms perms = std::filesystem::perms::owner_read |
                                                                            std::filesystem::perms::owner_write) {
    const auto path = dir_ / "headroom" / "config.toml";
    std::ofstream(path) << text;
    std::filesystem::permissions(path, perms);
  }
  std::filesystem::path dir_;
};

TEST_F(CommandsConfigTest, ConfigFileFillsWhatFlagsAndEnvironmentLeaveOut) {
  write_config("url = \"https://cfg.example\"\napi_key = \"hr_cfg\"\n");
  server_.answer(200, "{}");
  RunResult r = run({"me"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(server_.connects.back().url, "https://cfg.example");
  EXPECT_EQ(server_.requests.back().header("Authorization"), "Bearer hr_cfg");

  vars_["HEADROOM_API_KEY"] = "hr_env";
  server_.answer(200, "{}");
  EXPECT_EQ(run({"me"}).exit_code, 0);
  EXPECT_EQ(server_.connects.back().url, "https://cfg.example");
  EXPECT_EQ(server_.requests.back().header("Authorization"), "Bearer hr_env");
}

TEST_F(CommandsConfigTest, ConfigFileOthersMayReadIsWarnedAbout) {
  write_config("api_key = \"hr_cfg\"\n", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                             std::filesystem::perms::others_read);
  server_.answer(200, "{}");
  const RunResult r = run({"me"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
}

TEST_F(CommandsConfigTest, BrokenConfigFileIsAUsageError) {
  write_config("api_key = [\n");
  const RunResult r = run({"me"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("config.toml:"), std::string::npos) << r.err;
}

TEST_F(CommandsTest, EveryCommandHasHelpWithAnExample) {
  for (std::vector<std::string> command : std::vector<std::vector<std::string>>{
           {"tenants"}, {"tenants", "create"}, {"tenants", "list"}, {"tenants", "show"}, {"keys"}, {"keys", "create"},
           {"keys", "list"}, {"keys", "revoke"}, {"keys", "rotate"}, {"me"}, {"run"}, {"jobs"}, {"jobs", "list"},
           {"jobs", "show"}, {"jobs", "logs"}, {"jobs", "cancel"}, {"fleet"}, {"fleet", "cordon"},
           {"fleet", "drain"}, {"fleet", "uncordon"}, {"surplus"}}) {
    const bool group = command.size() == 1 && (command[0] == "tenants" || command[0] == "keys" || command[0] == "jobs");
    command.push_back("--help");
    const RunResult r = run(command);
    EXPECT_EQ(r.exit_code, 0) << command[0];
    EXPECT_NE(r.out.find("Example:\n  headroom"), std::string::npos) << r.out;
    if (!group) {
      EXPECT_NE(r.out.find("--api-key"), std::string::npos) << r.out;
      EXPECT_NE(r.out.find("HEADROOM_URL"), std::string::npos) << r.out;
    }
  }
  EXPECT_TRUE(server_.requests.empty());
}

// The real HttpClient behind the commands, against a port nobody listens on.
TEST_F(CommandsTest, RealTransportCannotConnect) {
  std::string url;
  {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor(
        io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    url = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  }
  connect_ = ClientEnvironment::system().connect;
  const RunResult r = run({"me", "--url", url});
  EXPECT_EQ(r.exit_code, 6);
  EXPECT_EQ(r.err.rfind("error: cannot reach " + url + ": ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("is `headroom serve` running"), std::string::npos) << r.err;

  const RunResult bad = run({"me", "--url", "ftp://x"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

}  // namespace
}  // namespace headroom::cli
