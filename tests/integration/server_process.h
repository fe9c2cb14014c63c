// A `headroom serve` child process for integration tests, and small clients
// to talk to it: HttpClient for well-formed requests, raw sockets for the
// malformed ones no client library would send.
#pragma once

#include <sys/types.h>

#include <boost/json.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/http_client.h"

namespace headroom::testing {

struct ServerConfig {
  std::string data_dir;  // empty: a fresh temporary directory
  std::vector<std::string> extra_args;
  std::map<std::string, std::string> env;
};

class ServerProcess {
 public:
  // Starts the binary and waits for its "listening on URL" line. Fails the
  // current test (and returns null) when it does not come up.
  static std::unique_ptr<ServerProcess> start(const ServerConfig& config = {});
  ~ServerProcess();

  const std::string& url() const { return url_; }
  std::uint16_t port() const { return port_; }
  const std::string& data_dir() const { return data_dir_; }
  // The admin key printed at first start; empty on later starts.
  const std::string& printed_admin_key() const { return admin_key_; }
  const std::string& stdout_text() const { return stdout_; }
  pid_t pid() const { return pid_; }

  // Sends `signal` and waits up to `timeout_ms` for exit; the exit status
  // (as from waitpid), or nullopt on timeout.
  std::optional<int> stop(int signal, int timeout_ms = 20'000);
  bool running();

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string url_, data_dir_, admin_key_, stdout_;
  std::uint16_t port_ = 0;
  bool owns_data_dir_ = false;
};

// A fresh temporary directory, removed by the caller (or left for post-mortem).
std::string make_temp_dir();

// One request with an optional bearer key; fails the test on transport errors.
struct Reply {
  int status = 0;
  std::string body;
  net::HttpHeaders headers;
  boost::json::value parsed;  // null when the body is not JSON
  // The parsed body; a reference into this Reply, so `r.json().at(...)` may
  // be used in a range-for.
  const boost::json::value& json() const { return parsed; }
  std::string header(std::string_view name) const;
  // error.code of a JSON error body, or "".
  std::string error_code() const;
};
Reply call(const std::string& url, std::string_view method, std::string_view target, const std::string& key = "",
           std::string_view body = {}, const net::HttpHeaders& headers = {});

// Writes raw bytes to 127.0.0.1:port and reads until the server closes or
// `timeout_ms` passes. Returns what was read.
std::string raw_exchange(std::uint16_t port, std::string_view bytes, int timeout_ms = 5'000);

// Runs the headroom binary as a client; returns its exit code and output.
struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};
CommandResult run_headroom(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});

}  // namespace headroom::testing
