#include "cli/api_command.h"

#include <gtest/gtest.h>

#include <csignal>

namespace headroom::cli {
namespace {

TEST(ApiCommand, ExitCodeForHttpStatus) {
  EXPECT_EQ(exit_code_for_http_status(200), ExitCode::kOk);
  EXPECT_EQ(exit_code_for_http_status(201), ExitCode::kOk);
  EXPECT_EQ(exit_code_for_http_status(204), ExitCode::kOk);
  EXPECT_EQ(exit_code_for_http_status(401), ExitCode::kAuth);
  EXPECT_EQ(exit_code_for_http_status(403), ExitCode::kAuth);
  EXPECT_EQ(exit_code_for_http_status(404), ExitCode::kNotFound);
  for (int status : {400, 405, 409, 413, 422, 429, 499}) {
    EXPECT_EQ(exit_code_for_http_status(status), ExitCode::kRejected) << status;
  }
  for (int status : {500, 502, 503, 504, 301, 100, 0}) {
    EXPECT_EQ(exit_code_for_http_status(status), ExitCode::kServerError) << status;
  }
}

TEST(ApiCommand, ExitCodeForStatus) {
  EXPECT_EQ(exit_code_for_status(Status::ok()), ExitCode::kOk);
  EXPECT_EQ(exit_code_for_status(Status::invalid_argument("x")), ExitCode::kUsage);
  EXPECT_EQ(exit_code_for_status(Status::unauthenticated("x")), ExitCode::kAuth);
  EXPECT_EQ(exit_code_for_status(Status::permission_denied("x")), ExitCode::kAuth);
  EXPECT_EQ(exit_code_for_status(Status::not_found("x")), ExitCode::kNotFound);
  EXPECT_EQ(exit_code_for_status(Status::unavailable("x")), ExitCode::kCannotConnect);
  EXPECT_EQ(exit_code_for_status(Status::internal("x")), ExitCode::kServerError);
}

TEST(ApiCommand, EncodesPathSegments) {
  EXPECT_EQ(encode_path_segment("ten_k3v9x2m1q8d7r4t6p0za"), "ten_k3v9x2m1q8d7r4t6p0za");
  EXPECT_EQ(encode_path_segment("a/b?c#d e%"), "a%2Fb%3Fc%23d%20e%25");
  EXPECT_EQ(encode_path_segment("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(encode_path_segment(".."), "%2E%2E");
  EXPECT_EQ(encode_path_segment("."), "%2E");
  EXPECT_EQ(encode_path_segment("a.b-c~"), "a.b-c~");
  EXPECT_EQ(encode_path_segment(""), "");
}

TEST(ApiCommand, DescribesApiErrors) {
  net::HttpClientResponse response{409, R"({"error":{"code":"conflict","message":"key revoked","request_id":"req_a"}})",
                             {{"x-request-id", "req_header"}}};
  EXPECT_EQ(describe_http_error(response), "key revoked (conflict, HTTP 409, request req_a)");
  response.body = R"({"error":{"code":"conflict","message":"key revoked"}})";
  EXPECT_EQ(describe_http_error(response), "key revoked (conflict, HTTP 409, request req_header)");
  response.body = "";
  response.headers.clear();
  EXPECT_EQ(describe_http_error(response), "the server answered HTTP 409 (HTTP 409)");
}

TEST(ApiCommand, HintsNameWhereTheKeyCameFrom) {
  ClientSettings settings;
  settings.api_key_source = "/home/u/.config/headroom/config.toml";
  EXPECT_NE(hint_for_http_status(401, settings).find(settings.api_key_source), std::string::npos);
  EXPECT_NE(hint_for_http_status(403, settings).find("scope"), std::string::npos);
  EXPECT_EQ(hint_for_http_status(404, settings), "");
}

TEST(ApiCommand, HintsForTransportErrors) {
  ClientSettings settings;
  settings.url = "http://gpu.example:8080";
  settings.url_source = "HEADROOM_URL";
  EXPECT_NE(hint_for_transport_error(Status::unavailable("cannot reach x: Connection refused"), settings)
                .find("is `headroom serve` running at http://gpu.example:8080?"),
            std::string::npos);
  EXPECT_NE(hint_for_transport_error(Status::unavailable("cannot reach x: cannot resolve 'gpu.example': no"), settings)
                .find("check the host name"),
            std::string::npos);
  EXPECT_NE(hint_for_transport_error(Status::unavailable("cannot reach x: TLS handshake failed: bad"), settings)
                .find("--ca-file"),
            std::string::npos);
  EXPECT_NE(hint_for_transport_error(Status::unavailable("GET x/v1/me: malformed response: bad version"), settings)
                .find("is a Headroom server"),
            std::string::npos);
}

// The system's Waiter turns Ctrl-C into a value while it lives, and puts
// back what SIGINT did before when it goes.
TEST(ApiCommand, ChecksIdempotencyKeys) {
  EXPECT_TRUE(check_idempotency_key("").is_ok());
  EXPECT_TRUE(check_idempotency_key("ci-build-42").is_ok());
  EXPECT_TRUE(check_idempotency_key(std::string(kIdempotencyKeyBytes, 'k')).is_ok());
  EXPECT_EQ(check_idempotency_key(std::string(kIdempotencyKeyBytes + 1, 'k')).message(),
            "--idempotency-key is over 255 bytes");
  for (const char* bad : {"a b", "tab\t", "del\x7f", "caf\xc3\xa9"}) {
    EXPECT_EQ(check_idempotency_key(bad).message(), "--idempotency-key may hold printable ASCII only, without spaces")
        << bad;
  }
}

TEST(ApiCommand, SystemWaiterCatchesCtrlC) {
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction before = {};
  ASSERT_EQ(sigaction(SIGINT, &ignore, &before), 0);
  {
    const ClientEnvironment env = ClientEnvironment::system();
    std::unique_ptr<Waiter> waiter = env.make_waiter();
    EXPECT_FALSE(waiter->interrupted());
    EXPECT_TRUE(waiter->wait_ms(1));
    std::raise(SIGINT);
    EXPECT_TRUE(waiter->interrupted());
    EXPECT_FALSE(waiter->wait_ms(60'000));  // at once
  }
  struct sigaction after = {};
  ASSERT_EQ(sigaction(SIGINT, &before, &after), 0);
  EXPECT_EQ(after.sa_handler, SIG_IGN);
}

TEST(ApiCommand, SystemEnvironmentForRun) {
  const ClientEnvironment env = ClientEnvironment::system();
  const std::string key = env.new_idempotency_key();
  EXPECT_EQ(key.rfind("idem_", 0), 0u) << key;
  EXPECT_NE(key, env.new_idempotency_key());
  auto cwd = env.current_dir();
  ASSERT_TRUE(cwd.is_ok());
  EXPECT_EQ(cwd->front(), '/');
}

}  // namespace
}  // namespace headroom::cli
