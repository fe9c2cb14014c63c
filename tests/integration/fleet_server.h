// A test fixture for end-to-end tests of work that runs: a fresh `headroom
// serve` per test on a declared fleet (the test's headroom.toml), restartable
// on the same data, and torn down so that no job outlives its test.
#pragma once

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include "server_process.h"

namespace headroom::testing {

class FleetServerTest : public ::testing::Test {
 protected:
  // The config file's text.
  virtual std::string config_toml() const = 0;

  void SetUp() override { start(make_temp_dir()); }
  // No job outlives its test: what still runs is cancelled, then the data goes.
  void TearDown() override {
    if (!server_) return;
    for (const char* state : {"running", "queued", "preempting", "starting"}) {
      Reply live = get(std::string("/v1/jobs?state=") + state, admin_);
      if (!live.json().is_object()) continue;
      for (const auto& job : live.json().at("data").as_array()) {
        post("/v1/jobs/" + std::string(job.at("id").as_string()) + "/cancel", admin_, "");
      }
    }
    std::string dir = server_->data_dir();
    server_->stop(SIGTERM);
    server_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }

  // Starts the server on `data_dir` (again, after a stop: the admin key carries over).
  void start(const std::string& data_dir) {
    const std::string path = data_dir + "/headroom.toml";
    std::ofstream(path) << config_toml();
    ServerConfig config;
    config.data_dir = data_dir;
    config.extra_args = {"--config", path};
    if (!admin_.empty()) config.env["HEADROOM_ADMIN_KEY"] = admin_;
    server_ = ServerProcess::start(config);
    ASSERT_NE(server_, nullptr);
    if (admin_.empty()) admin_ = server_->printed_admin_key();
  }

  Reply get(std::string_view target, const std::string& key, const net::HttpHeaders& headers = {}) {
    return call(server_->url(), "GET", target, key, {}, headers);
  }
  Reply post(std::string_view target, const std::string& key, std::string_view body,
             const net::HttpHeaders& headers = {}) {
    return call(server_->url(), "POST", target, key, body, headers);
  }

  std::unique_ptr<ServerProcess> server_;
  std::string admin_;
};

}  // namespace headroom::testing
