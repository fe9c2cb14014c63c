// A server shared by the tests of one suite, with an admin key at hand.
#pragma once

#include <gtest/gtest.h>

#include "server_process.h"

namespace headroom::testing {

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = ServerProcess::start().release();
    ASSERT_NE(server_, nullptr);
    admin_ = server_->printed_admin_key();
    ASSERT_FALSE(admin_.empty()) << server_->stdout_text();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static Reply get(std::string_view target, const std::string& key) { return call(server_->url(), "GET", target, key); }
  static Reply post(std::string_view target, const std::string& key, std::string_view body) {
    return call(server_->url(), "POST", target, key, body);
  }
  static Reply del(std::string_view target, const std::string& key) { return call(server_->url(), "DELETE", target, key); }

  // A new tenant (with a unique name) and its id.
  static std::string make_tenant(std::string_view kind = "external") {
    static int n = 0;
    std::string name = "tenant-" + std::to_string(getpid()) + "-" + std::to_string(++n);
    Reply r = post("/v1/tenants", admin_, R"({"name":")" + name + R"(","kind":")" + std::string(kind) + R"("})");
    EXPECT_EQ(r.status, 201) << r.body;
    return std::string(r.json().at("id").as_string());
  }

  // A new key for `tenant`: {id, secret}.
  static std::pair<std::string, std::string> make_key(const std::string& tenant, std::string_view scopes_json,
                                                      std::string_view extra = "") {
    std::string body = R"({"name":"k","scopes":)" + std::string(scopes_json) + std::string(extra) + "}";
    Reply r = post("/v1/tenants/" + tenant + "/keys", admin_, body);
    EXPECT_EQ(r.status, 201) << r.body;
    auto v = r.json();
    if (!v.is_object()) return {};
    return {std::string(v.at("id").as_string()), std::string(v.at("key").as_string())};
  }

  static inline ServerProcess* server_ = nullptr;
  static inline std::string admin_;
};

}  // namespace headroom::testing
