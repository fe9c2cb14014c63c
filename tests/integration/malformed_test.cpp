// Bad input of every kind gets a 4xx with a message that names the problem,
// and the server keeps serving.
#include "fixture.h"

namespace headroom::testing {
namespace {

class MalformedTest : public ServerTest {
 protected:
  void TearDown() override {
    // Whatever happened, the server is alive and well.
    EXPECT_EQ(get("/healthz", "").status, 200);
    EXPECT_EQ(get("/v1/me", admin_).status, 200);
  }

  static void expect_rejected(const Reply& r, int status, std::string_view code, std::string_view mentions) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.error_code(), code) << r.body;
    auto v = r.json();
    ASSERT_TRUE(v.is_object()) << r.body;
    std::string message(v.at("error").at("message").as_string());
    EXPECT_NE(message.find(mentions), std::string::npos) << "message \"" << message << "\" should mention " << mentions;
    EXPECT_TRUE(v.at("error").at("request_id").is_string());
  }
};

TEST_F(MalformedTest, BadJsonBodies) {
  expect_rejected(post("/v1/tenants", admin_, R"({"name":"trunc)"), 400, "invalid_argument", "not valid JSON");
  expect_rejected(post("/v1/tenants", admin_, R"({name:'x'})"), 400, "invalid_argument", "not valid JSON");
  expect_rejected(post("/v1/tenants", admin_, ""), 400, "invalid_argument", "empty");
  expect_rejected(post("/v1/tenants", admin_, "[1,2]"), 400, "invalid_argument", "JSON object");
  expect_rejected(post("/v1/tenants", admin_, R"({"name":42})"), 400, "invalid_argument", "\"name\"");
  expect_rejected(post("/v1/tenants", admin_, R"({"kind":"external"})"), 400, "invalid_argument", "missing field \"name\"");
  expect_rejected(post("/v1/tenants", admin_, R"({"name":"ok-name","kind":"martian"})"), 400, "invalid_argument",
                  "martian");
  expect_rejected(post("/v1/tenants", admin_, R"({"name":"ok-name","colour":"red"})"), 400, "invalid_argument",
                  "colour");
  expect_rejected(post("/v1/tenants", admin_, R"({"name":"has space"})"), 400, "invalid_argument", "\"name\"");
  expect_rejected(post("/v1/tenants", admin_, R"({"name":")" + std::string(65, 'a') + "\"}"), 400, "invalid_argument",
                  "longer than 64");
  std::string deep(100, '[');
  expect_rejected(post("/v1/tenants", admin_, deep), 400, "invalid_argument", "not valid JSON");
  expect_rejected(post("/v1/tenants", admin_, "{\"name\":\"\xff\xfe\"}"), 400, "invalid_argument", "not valid JSON");
  expect_rejected(post("/v1/tenants", admin_, "{\"name\":\"a\"} trailing"), 400, "invalid_argument", "not valid JSON");
  expect_rejected(post("/v1/tenants", admin_, std::string("{\"name\":\"a\0b\"}", 14)), 400, "invalid_argument", "");
  expect_rejected(
      post("/v1/tenants/" + std::string(get("/v1/me", admin_).json().at("tenant").at("id").as_string()) + "/keys",
           admin_, R"({"name":"k","scopes":["compute"],"expires_at":"tomorrow"})"),
      400, "invalid_argument", "expires_at");
}

TEST_F(MalformedTest, HugeBodyIs413) {
  std::string huge(2 * 1024 * 1024, 'x');
  Reply r = post("/v1/tenants", admin_, huge);
  expect_rejected(r, 413, "payload_too_large", "exceeds");
  // Without a Content-Length: chunked past the limit.
  std::string chunked = "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer " +
                        admin_ + "\r\n\r\n";
  for (int i = 0; i < 40; ++i) chunked += "8000\r\n" + std::string(0x8000, 'y') + "\r\n";
  chunked += "0\r\n\r\n";
  std::string out = raw_exchange(server_->port(), chunked);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 413")) << out.substr(0, 200);
}

TEST_F(MalformedTest, BadKeys) {
  expect_rejected(get("/v1/me", ""), 401, "unauthenticated", "missing Authorization");
  expect_rejected(call(server_->url(), "GET", "/v1/me", "", {}, {{"Authorization", "Basic abc"}}), 401,
                  "unauthenticated", "Bearer");
  expect_rejected(get("/v1/me", "hr_short"), 401, "unauthenticated", "malformed");
  std::string flipped = admin_;
  flipped[10] = flipped[10] == 'a' ? 'b' : 'a';  // the checksum catches a typo
  expect_rejected(get("/v1/me", flipped), 401, "unauthenticated", "malformed");
  // Well-formed, checksum right, but unknown.
  Reply keygen_ok = get("/v1/me", "hr_00000000000000000000000000000000" + std::string("000000"));
  EXPECT_EQ(keygen_ok.status, 401);
  Reply r = get("/v1/me", admin_ + "x");
  EXPECT_EQ(r.status, 401);
}

TEST_F(MalformedTest, JunkOnTheWire) {
  std::string junk = raw_exchange(server_->port(), "GARBAGE\r\n\r\n");
  EXPECT_TRUE(junk.starts_with("HTTP/1.1 400")) << junk;
  EXPECT_NE(junk.find("\"code\":\"bad_request\""), std::string::npos) << junk;

  std::string bad_header = raw_exchange(server_->port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
  EXPECT_TRUE(bad_header.starts_with("HTTP/1.1 400")) << bad_header;

  std::string big_header = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  std::string out = raw_exchange(server_->port(), big_header);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 431")) << out.substr(0, 200);

  std::string binary("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);  // a TLS hello to a plain port
  std::string tls = raw_exchange(server_->port(), binary);
  EXPECT_TRUE(tls.empty() || tls.starts_with("HTTP/1.1 400")) << tls;

  std::string truncated = raw_exchange(server_->port(),
                                       "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"na", 1'000);
  EXPECT_EQ(truncated.find("HTTP/1.1 2"), std::string::npos) << truncated;

  std::string bad_length = raw_exchange(server_->port(), "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n");
  EXPECT_TRUE(bad_length.starts_with("HTTP/1.1 400")) << bad_length;
}

TEST_F(MalformedTest, KeepAliveServesManyRequestsOnOneConnection) {
  std::string two = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  std::string out = raw_exchange(server_->port(), two);
  std::size_t first = out.find("HTTP/1.1 200");
  ASSERT_NE(first, std::string::npos) << out;
  EXPECT_NE(out.find("HTTP/1.1 200", first + 1), std::string::npos) << out;
}

TEST_F(MalformedTest, OddPathsAndIds) {
  EXPECT_EQ(get("/v1/tenants/" + std::string(300, 'z'), admin_).status, 404);
  EXPECT_EQ(get("/v1/tenants/%00", admin_).status, 404);
  EXPECT_EQ(get("/v1/tenants/../../etc/passwd", admin_).status, 404);
  EXPECT_EQ(get("/v1//tenants", admin_).status, 404);
  EXPECT_EQ(del("/v1/keys/key_doesnotexist", admin_).status, 404);
  EXPECT_EQ(get("/v1/tenants?after=%ff%fe", admin_).status, 200);
}

}  // namespace
}  // namespace headroom::testing
