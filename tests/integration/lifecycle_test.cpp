// Starting, restarting, stopping and HTTPS: the process as an operator sees it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server_process.h"
#include "auth/api_key.h"
#include <gtest/gtest.h>

namespace headroom::testing {
namespace {

TEST(LifecycleTest, FirstStartPrintsAWorkingAdminKeyAndRestartKeepsState) {
  std::string dir = make_temp_dir();
  std::string tenant_id;
  std::string admin;
  {
    auto server = ServerProcess::start({.data_dir = dir});
    ASSERT_NE(server, nullptr);
    admin = server->printed_admin_key();
    ASSERT_TRUE(auth::is_well_formed_api_key(admin)) << server->stdout_text();
    EXPECT_NE(server->stdout_text().find("virtual"), std::string::npos) << "the virtual fleet is clearly labelled";
    Reply created = call(server->url(), "POST", "/v1/tenants", admin, R"({"name":"survivor"})");
    ASSERT_EQ(created.status, 201);
    tenant_id = std::string(created.json().at("id").as_string());
    auto status = server->stop(SIGTERM);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  }
  EXPECT_TRUE(std::filesystem::exists(dir + "/headroom.db"));
  {
    auto server = ServerProcess::start({.data_dir = dir});
    ASSERT_NE(server, nullptr);
    EXPECT_TRUE(server->printed_admin_key().empty()) << "the admin key is shown once only";
    Reply shown = call(server->url(), "GET", "/v1/tenants/" + tenant_id, admin);
    EXPECT_EQ(shown.status, 200) << shown.body;
    EXPECT_EQ(server->stop(SIGINT).value_or(-1), 0);
  }
  std::filesystem::remove_all(dir);
}

TEST(LifecycleTest, AdminKeyFromEnvironment) {
  CommandResult keygen = run_headroom({"keygen"});
  ASSERT_EQ(keygen.exit_code, 0);
  std::string key = keygen.out.substr(0, keygen.out.find('\n'));
  ASSERT_TRUE(auth::is_well_formed_api_key(key)) << key;
  auto server = ServerProcess::start({.env = {{"HEADROOM_ADMIN_KEY", key}}});
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->printed_admin_key(), key);
  EXPECT_EQ(call(server->url(), "GET", "/v1/me", key).status, 200);
}

TEST(LifecycleTest, BadAdminKeyFromEnvironmentIsRefusedAtStart) {
  std::string dir = make_temp_dir();
  CommandResult r = run_headroom({"serve", "--listen", "127.0.0.1:0", "--data", dir}, {{"HEADROOM_ADMIN_KEY", "letmein"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("HEADROOM_ADMIN_KEY"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

TEST(LifecycleTest, TwoServersCannotShareADataDirectory) {
  auto first = ServerProcess::start();
  ASSERT_NE(first, nullptr);
  CommandResult second = run_headroom({"serve", "--listen", "127.0.0.1:0", "--data", first->data_dir()});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("another headroom serve"), std::string::npos) << second.err;
}

TEST(LifecycleTest, BadFlagsSayWhatIsWrong) {
  CommandResult listen = run_headroom({"serve", "--listen", "nonsense", "--data", "/tmp/unused-headroom"});
  EXPECT_NE(listen.exit_code, 0);
  EXPECT_NE(listen.err.find("nonsense"), std::string::npos) << listen.err;
  CommandResult tls = run_headroom({"serve", "--tls-cert", "/nonexistent.pem"});
  EXPECT_EQ(tls.exit_code, 2);
}

// SIGTERM while a request is half sent: the request completes, then the
// server exits 0; idle keep-alive connections do not hold it up.
TEST(LifecycleTest, GracefulShutdownFinishesInFlightRequests) {
  auto server = ServerProcess::start();
  ASSERT_NE(server, nullptr);
  std::string admin = server->printed_admin_key();

  int idle = socket(AF_INET, SOCK_STREAM, 0);
  int busy = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(idle, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(connect(busy, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string body = R"({"name":"late-arrival"})";
  std::string head = "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin +
                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  std::string first = head + body.substr(0, 5);
  ASSERT_EQ(send(busy, first.data(), first.size(), 0), static_cast<ssize_t>(first.size()));
  usleep(200'000);  // let the server read the partial request

  kill(server->pid(), SIGTERM);
  usleep(200'000);
  std::string rest = body.substr(5);
  ASSERT_EQ(send(busy, rest.data(), rest.size(), 0), static_cast<ssize_t>(rest.size()));
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = recv(busy, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 201")) << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;

  auto status = server->stop(0, 10'000);  // signal 0: just wait
  ASSERT_TRUE(status.has_value()) << "the server did not exit";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_EQ(recv(idle, buf, sizeof buf, 0), 0) << "the idle connection was closed";
  close(idle);
  close(busy);
}

TEST(LifecycleTest, ServesHttpsWithACertificate) {
  std::string dir = make_temp_dir();
  std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert +
                    " -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a certificate";
  auto server = ServerProcess::start({.extra_args = {"--tls-cert", cert, "--tls-key", key}});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->url().starts_with("https://")) << server->url();

  net::HttpClientOptions options;
  options.ca_file = cert;
  auto client = net::HttpClient::create(server->url(), options);
  ASSERT_TRUE(client) << client.status().to_string();
  auto r = client->request("GET", "/v1/me", {}, {{"Authorization", "Bearer " + server->printed_admin_key()}});
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  // Plain HTTP to the HTTPS port is not answered as HTTP.
  std::string plain = raw_exchange(server->port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 2'000);
  EXPECT_EQ(plain.find("HTTP/1.1 200"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace headroom::testing
