// For the CLI's tests only: a fake server behind the Transport seam, a fake
// Waiter whose time passes only when a command waits, and a fixture that
// runs `headroom ARGS...` through CLI11 as main.cpp does.
#pragma once

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <boost/json/parse.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/api_command.h"
#include "cli/commands.h"

namespace headroom::cli::test {

struct SentRequest {
  std::string method;
  std::string target;
  std::string body;
  net::HttpHeaders headers;
  std::string header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return value;
    }
    return {};
  }
};

// What the fake server saw and what it will answer, shared by every
// transport a test's commands open. `route`, when set, answers first (a
// fake API with state); what it leaves (nullopt) comes from `answers`, in
// order.
struct FakeServer {
  std::vector<SentRequest> requests;
  std::deque<Result<net::HttpClientResponse>> answers;
  std::function<std::optional<Result<net::HttpClientResponse>>(const SentRequest&)> route;
  std::vector<ClientSettings> connects;
  Status connect_error;

  void answer(int status, std::string body, net::HttpHeaders headers = {}) {
    answers.push_back(net::HttpClientResponse{status, std::move(body), std::move(headers)});
  }
  void fail(Status status) { answers.push_back(std::move(status)); }

  Result<net::HttpClientResponse> respond(SentRequest request) {
    requests.push_back(std::move(request));
    if (route) {
      if (auto answer = route(requests.back())) return std::move(*answer);
    }
    if (answers.empty()) return Status::internal("the test gave no answer to " + requests.back().target);
    auto answer = std::move(answers.front());
    answers.pop_front();
    return answer;
  }
};

class FakeTransport final : public Transport {
 public:
  explicit FakeTransport(FakeServer& server) : server_(server) {}
  Result<net::HttpClientResponse> request(std::string_view method, std::string_view target, std::string_view body,
                                          const net::HttpHeaders& headers) override {
    return server_.respond({std::string(method), std::string(target), std::string(body), headers});
  }
  // The answer's body comes in two chunks, as a real one may.
  Status request_stream(std::string_view method, std::string_view target, std::string_view body,
                        const net::HttpHeaders& headers, const std::function<bool(std::string_view)>& on_body_chunk,
                        const std::function<void(const net::HttpClientResponse&)>& on_head) override {
    auto answer = server_.respond({std::string(method), std::string(target), std::string(body), headers});
    if (!answer.is_ok()) return answer.status();
    if (on_head) on_head(net::HttpClientResponse{answer->status, "", answer->headers});
    const std::string_view whole = answer->body;
    const std::size_t half = whole.size() / 2;
    if (half > 0 && !on_body_chunk(whole.substr(0, half))) return Status::ok();
    if (whole.size() > half) on_body_chunk(whole.substr(half));
    return Status::ok();
  }

 private:
  FakeServer& server_;
};

// Time for the waiters a test's commands make: it passes only in wait_ms,
// which calls `on_wait` (to move a fake job on) and may play Ctrl-C.
struct FakeClock {
  std::vector<std::int64_t> waits_ms;
  bool interrupted = false;                                      // Ctrl-C pressed
  std::size_t interrupt_at_wait = static_cast<std::size_t>(-1);  // Ctrl-C during this wait (1 = the first)
  std::function<void()> on_wait;
};

class FakeWaiter final : public Waiter {
 public:
  explicit FakeWaiter(FakeClock& clock) : clock_(clock) {}
  bool wait_ms(std::int64_t ms) override {
    if (clock_.interrupted) return false;
    clock_.waits_ms.push_back(ms);
    if (clock_.on_wait) clock_.on_wait();
    if (clock_.waits_ms.size() >= clock_.interrupt_at_wait) clock_.interrupted = true;
    return !clock_.interrupted;
  }
  bool interrupted() const override { return clock_.interrupted; }

 private:
  FakeClock& clock_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class CliTest : public ::testing::Test {
 protected:
  // Runs `headroom ARGS...` as main.cpp does.
  RunResult run(std::vector<std::string> args) {
    std::ostringstream out;
    std::ostringstream err;
    auto env = std::make_shared<ClientEnvironment>();
    env->getenv = [this](const char* name) -> std::optional<std::string> {
      auto it = vars_.find(name);
      if (it == vars_.end()) return std::nullopt;
      return it->second;
    };
    env->out = &out;
    env->err = &err;
    if (connect_) {
      env->connect = connect_;
    } else {
      env->connect = [this](const ClientSettings& settings) -> Result<std::unique_ptr<Transport>> {
        server_.connects.push_back(settings);
        if (!server_.connect_error.is_ok()) return server_.connect_error;
        return std::unique_ptr<Transport>(std::make_unique<FakeTransport>(server_));
      };
    }
    env->make_waiter = [this] { return std::unique_ptr<Waiter>(std::make_unique<FakeWaiter>(clock_)); };
    env->new_idempotency_key = [] { return std::string("idem_fresh"); };
    env->current_dir = [this]() -> Result<std::string> { return current_dir_; };
    CLI::App app{"headroom test"};
    app.require_subcommand(1);
    RunResult result;
    result.exit_code = 0;
    add_client_commands(app, result.exit_code, env);
    args.insert(args.begin(), "headroom");
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      const int code = app.exit(e, out, err);
      result.exit_code = code == 0 ? 0 : 2;
    }
    result.out = out.str();
    result.err = err.str();
    return result;
  }

  // Runs `args`, which ask for `-o json`, against the answer 200 `body`,
  // and checks that the command succeeds and prints that answer (the same
  // JSON; the spacing may differ).
  void expect_prints_answer_as_json(std::vector<std::string> args, const std::string& body) {
    server_.answer(200, body);
    const RunResult r = run(std::move(args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(boost::json::parse(r.out), boost::json::parse(body));
  }

  // Checks what a command that POSTs with an Idempotency-Key has sent when
  // its first try could not reach the server: the same body twice, both
  // times with `key`, one pause of a second between them.
  void expect_sent_twice_with_key(const std::string& key) {
    ASSERT_EQ(server_.requests.size(), 2u);
    EXPECT_EQ(server_.requests[0].header("Idempotency-Key"), key);
    EXPECT_EQ(server_.requests[1].header("Idempotency-Key"), key);
    EXPECT_EQ(server_.requests[0].body, server_.requests[1].body);
    EXPECT_EQ(clock_.waits_ms, std::vector<std::int64_t>{1000});
  }

  std::map<std::string, std::string> vars_ = {{"HEADROOM_API_KEY", "hr_testkey"}};
  FakeServer server_;
  FakeClock clock_;
  std::string current_dir_ = "/home/ada/project";
  std::function<Result<std::unique_ptr<Transport>>(const ClientSettings&)> connect_;
};

}  // namespace headroom::cli::test
