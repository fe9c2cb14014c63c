// The client commands of `headroom`: tenants, keys, me, run, jobs, fleet,
// surplus, balance, usage, invoices, credits (and, as they come, models...),
// each a call to the server's API.
//
// Exit codes, which scripts may rely on (docs/cli.md lists them too):
//
//   | code | meaning                                                           |
//   |------|-------------------------------------------------------------------|
//   | 0    | success                                                           |
//   | 1    | the server failed (HTTP 5xx), or something unexpected             |
//   | 2    | usage error: bad flags or arguments, a bad --url or config file   |
//   | 3    | authentication or permission: no API key, HTTP 401 or 403         |
//   | 4    | not found: HTTP 404                                               |
//   | 5    | the server rejected the request: any other 4xx (400, 409, 413,    |
//   |      | 422, 429...)                                                      |
//   | 6    | cannot connect: refused, DNS, TLS, timeout, no valid HTTP answer  |
//
// Except `headroom run` and `headroom jobs logs --follow` once the job has
// ended: they exit with the job's own code (see exit_code_for_job in
// job_follow.h), and with 130 when the user stops following with Ctrl-C.
//
// Every client command takes --url (env HEADROOM_URL), --api-key (env
// HEADROOM_API_KEY), --output table|json, --ca-file and --insecure; when
// neither a flag nor the environment gives the URL or the key, they come
// from $XDG_CONFIG_HOME/headroom/config.toml (else ~/.config/headroom/config.toml).
#pragma once

#include <memory>

namespace CLI {
class App;
}

namespace headroom::cli {

enum class ExitCode : int {
  kOk = 0,
  kServerError = 1,
  kUsage = 2,
  kAuth = 3,
  kNotFound = 4,
  kRejected = 5,
  kCannotConnect = 6,
};

// Adds the client commands to `app`. When one of them runs (during
// app.parse), it sets `exit_code`, which must outlive the parse. Reads the
// process environment and the config file, writes to stdout and stderr.
// No exception leaves a command.
void add_client_commands(CLI::App& app, int& exit_code);

// The same, with the environment, streams and transport given (tests).
struct ClientEnvironment;
void add_client_commands(CLI::App& app, int& exit_code, std::shared_ptr<const ClientEnvironment> env);

}  // namespace headroom::cli
