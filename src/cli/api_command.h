// The machinery under every client command: "parse these arguments, make
// this API call, print the answer as a table with these columns or as JSON,
// and exit with a code that says what happened". A new command is one
// ApiCommand value (see commands.cpp); nothing here changes for it.
//
// The outside world (environment variables, stdout and stderr, the network)
// comes in through a ClientEnvironment, so that tests run commands against a
// fake server and read what they print.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "cli/output.h"
#include "common/limits.h"
#include "common/status.h"
#include "net/http_client.h"

namespace CLI {
class App;
}

namespace headroom::cli {

inline constexpr std::string_view kDefaultUrl = "http://127.0.0.1:8080";
inline constexpr const char* kUrlEnv = "HEADROOM_URL";
inline constexpr const char* kApiKeyEnv = "HEADROOM_API_KEY";

// The options every client command takes, as parsed; empty means not given.
struct ClientFlags {
  std::string url;
  std::string api_key;
  std::string output = "table";
  std::string ca_file;
  bool insecure = false;
};

// The options resolved: flag, else environment, else config file, else the
// default. Each `*_source` says where its value came from, for messages.
struct ClientSettings {
  std::string url;
  std::string url_source;
  std::string api_key;  // empty when none was found
  std::string api_key_source;
  OutputFormat output = OutputFormat::kTable;
  std::string ca_file;
  net::TlsVerify tls_verify = net::TlsVerify::kVerify;
  std::vector<std::string> warnings;  // for stderr, such as a config file others may read
};

// How a command talks to the server: an HttpClient in production, a fake in
// tests. Same contract as net::HttpClient.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual Result<net::HttpClientResponse> request(std::string_view method, std::string_view target, std::string_view body,
                                            const net::HttpHeaders& headers) = 0;
  virtual Status request_stream(std::string_view method, std::string_view target, std::string_view body,
                                const net::HttpHeaders& headers,
                                const std::function<bool(std::string_view chunk)>& on_body_chunk,
                                const std::function<void(const net::HttpClientResponse& head)>& on_head) = 0;
};

// How a command that polls (`run`, `jobs logs --follow`) passes the time
// between polls and learns that the user pressed Ctrl-C. The system's
// catches SIGINT for as long as it lives (a second Ctrl-C ends the process
// as usual, for a call that hangs) and sleeps in short steps; a test's
// scripts both, so that no test sleeps. One at a time; not thread-safe.
class Waiter {
 public:
  virtual ~Waiter() = default;
  // Sleeps `ms`, or less when Ctrl-C is pressed meanwhile; false when it
  // has been, at once if it was before the call.
  virtual bool wait_ms(std::int64_t ms) = 0;
  // Whether Ctrl-C has been pressed since the Waiter was made.
  virtual bool interrupted() const = 0;
};

struct ClientEnvironment {
  GetEnv getenv;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Opens a transport to settings.url; an invalid_argument error for a bad
  // URL or CA file.
  std::function<Result<std::unique_ptr<Transport>>(const ClientSettings&)> connect;
  // `run` and `jobs logs --follow` need the three below; `credits add`
  // needs new_idempotency_key, and without make_waiter it sends its credit
  // once only. The others may leave them empty.
  std::function<std::unique_ptr<Waiter>()> make_waiter;
  // A fresh random Idempotency-Key, one per command that sends one (`run`,
  // `credits add`) and is not given --idempotency-key.
  std::function<std::string()> new_idempotency_key;
  // The current directory, absolute: `run`'s default --workdir.
  std::function<Result<std::string>()> current_dir;

  // The process's environment, std::cout, std::cerr, an HttpClient, a
  // SIGINT-catching Waiter, SecureRandom keys and getcwd().
  static ClientEnvironment system();
};

// Whether a command needs an API key.
enum class Auth { kRequired, kNone };

// Whether a list command pages with `limit` and `after` (adds --limit and
// --after, and says how to get the next page when `has_more`).
enum class Paging { kNone, kCursor };

// What the server returns: one object (printed one field a line) or a list
// page `{"data":[...],"has_more":bool}` (printed one row an object).
enum class Shape { kRecord, kList };

// One API request: `target` is a path and query, already encoded (use
// encode_path_segment for ids). A body, when present, is sent as JSON.
struct ApiCall {
  std::string method = {};
  std::string target = {};
  std::optional<boost::json::value> body = {};
};

struct ApiCommand {
  std::string name = {};         // "create"
  std::string description = {};  // one line, for --help
  std::string example = {};      // one command line, for --help
  // Adds the command's own arguments, bound to state the closures share.
  std::function<void(CLI::App& command)> add_arguments = {};
  // Builds the request from the parsed arguments; invalid_argument for a
  // usage error the parser could not catch.
  std::function<Result<ApiCall>()> make_call = {};
  Shape shape = Shape::kRecord;
  std::vector<Column> columns = {};
  Auth auth = Auth::kRequired;
  Paging paging = Paging::kNone;
  // Called after a successful answer is printed, to tell the user more on
  // stderr (such as "this secret is shown once"). May be empty.
  std::function<void(const boost::json::value& answer, std::ostream& err)> notes = {};
  // In table format, the text to print instead of `columns`, for an answer
  // that one table cannot show (a job with its history, the fleet with a
  // summary). May be empty.
  std::function<std::string(const boost::json::value& answer)> render = {};
};

// A command that is more than one call (`run`, `jobs logs --follow`): its
// arguments and a function that runs it, returning the process's exit code
// (an ExitCode, or a job's own exit code). It gets the client flags as
// parsed and prints what it has to say itself, errors included.
struct CustomCommand {
  std::string name = {};
  std::string description = {};
  std::string example = {};
  std::function<void(CLI::App& command)> add_arguments = {};
  std::function<int(const ClientFlags& flags, const ClientEnvironment& env)> run = {};
};

// A failed call, described for the user; print() writes "error: ..." and,
// when there is one, "hint: ..." to `err`.
struct ApiError {
  ExitCode exit_code = ExitCode::kServerError;
  std::string message;
  std::string hint;
  // Cannot connect, HTTP 429 or 5xx: another try a little later may pass.
  bool transient = false;

  void print(std::ostream& err) const;
};

// A successful answer: its HTTP status and its body as JSON (null when the
// body is empty).
struct ApiAnswer {
  int status = 0;
  boost::json::value body;
};

// A command's conversation with the server: the resolved settings and an
// open transport; each call sends the API key. Not thread-safe.
class ApiSession {
 public:
  ApiSession(ClientSettings settings, std::unique_ptr<Transport> transport);

  // Resolves the settings, prints their warnings and opens the transport.
  // On failure prints the error (and a hint) to env.err, leaves `session`
  // null and returns the exit code; kOk otherwise.
  static ExitCode open(const ClientFlags& flags, Auth auth, const ClientEnvironment& env,
                       std::unique_ptr<ApiSession>& session);

  const ClientSettings& settings() const { return settings_; }

  // Sends `call` with `extra_headers`. A 2xx answer fills `answer` (its body
  // must be JSON or empty); anything else is the error, described.
  std::optional<ApiError> call(const ApiCall& call, ApiAnswer& answer, const net::HttpHeaders& extra_headers = {});

  // GETs `target`, asking for `accept`, and hands a 2xx body to `sink` as
  // it arrives, however long (a job's log, usage as CSV); on an error
  // nothing reaches `sink`.
  std::optional<ApiError> get_text(std::string_view target, const std::function<void(std::string_view)>& sink,
                                   std::string_view accept = "text/plain");
  // POSTs the JSON `body` to `target` and hands a 2xx answer's body to
  // `sink` as it arrives (server-sent events); `sink` returning false stops
  // the read. On an error nothing reaches `sink`.
  std::optional<ApiError> post_stream(std::string_view target, std::string_view body,
                                      const std::function<bool(std::string_view)>& sink,
                                      std::string_view accept = "text/event-stream");

 private:
  net::HttpHeaders headers(std::string_view accept) const;
  std::optional<ApiError> stream(std::string_view method, std::string_view target, std::string_view body,
                                 const std::function<bool(std::string_view)>& sink, std::string_view accept);

  ClientSettings settings_;
  std::unique_ptr<Transport> transport_;
};

// The longest Idempotency-Key a command sends (--idempotency-key of `run`
// and `credits add`); the server may take less.
using limits::kIdempotencyKeyBytes;  // the server's limit (common/limits.h)

// How long a command waits before it sends a POST a second time, after the
// first try could not reach the server (see call_with_idempotency_key).
inline constexpr std::int64_t kIdempotentRetryPauseMs = 1'000;

// invalid_argument, naming --idempotency-key, unless `key` is at most
// kIdempotencyKeyBytes of printable ASCII without spaces. An empty key
// passes: the command makes a fresh one.
Status check_idempotency_key(std::string_view key);

// Sends `call` with the header Idempotency-Key: `key`; when that try cannot
// reach the server, sends it once more with the same key, which keeps the
// server from acting on it twice. Before the second try it warns on env.err
// ("...; sending the `what` once more, with the same Idempotency-Key") and
// waits kIdempotentRetryPauseMs on `waiter`; Ctrl-C during the wait means no
// second try. `waiter` may be null: then one is made from env.make_waiter
// only when the wait comes (until then Ctrl-C ends the process as usual),
// and without env.make_waiter there is no second try. Returns the last
// try's error, or nullopt with `answer` filled.
std::optional<ApiError> call_with_idempotency_key(ApiSession& session, const ApiCall& call, const std::string& key,
                                                  std::string_view what, const ClientEnvironment& env, Waiter* waiter,
                                                  ApiAnswer& answer);

// The exit code for an HTTP status: 2xx 0, 401/403 3, 404 4, other 4xx 5,
// anything else 1.
ExitCode exit_code_for_http_status(int status);

// The exit code for a failure before or instead of an HTTP answer:
// invalid_argument 2, unauthenticated and permission_denied 3, not_found 4,
// unavailable 6, anything else 1.
ExitCode exit_code_for_status(const Status& status);

// Percent-encodes everything but RFC 3986's unreserved characters, so that
// the result is one path segment or one query value.
std::string encode_path_segment(std::string_view text);

// "tenant ten_x does not exist (not_found, HTTP 404, request req_1)", from
// the API's error body; falls back to the status line when the body is not
// the API's shape (a proxy's HTML page, say).
std::string describe_http_error(const net::HttpClientResponse& response);

// What to do about an HTTP error, or "" when there is nothing to add.
std::string hint_for_http_status(int status, const ClientSettings& settings);

// What to do about a failure to reach the server.
std::string hint_for_transport_error(const Status& status, const ClientSettings& settings);

// Resolves the options; reads the config file only when a flag and the
// environment leave the URL or the key unset. Errors: invalid_argument for a
// bad --output or config file, unauthenticated when `auth` is kRequired and
// no key is found.
Result<ClientSettings> resolve_settings(const ClientFlags& flags, Auth auth, const ClientEnvironment& env);

// Runs a command whose arguments are parsed: resolves the settings, makes
// the call, prints the answer or the error. Never throws.
ExitCode run_api_command(const ApiCommand& command, const ClientFlags& flags, const ClientEnvironment& env);

// Adds --url, --api-key, --output, --ca-file and --insecure to `command`.
void add_client_flags(CLI::App& command, ClientFlags& flags);

// Adds `command` under `parent`, with the client flags and --help showing
// its description and example; running it sets `exit_code`. A command may
// hold subcommands of its own (`fleet` holds `fleet cordon`): it runs only
// when none of them is given.
CLI::App* add_api_command(CLI::App& parent, ApiCommand command, int& exit_code,
                          std::shared_ptr<const ClientEnvironment> env);

// Adds a custom command under `parent`, as add_api_command does.
CLI::App* add_custom_command(CLI::App& parent, CustomCommand command, int& exit_code,
                             std::shared_ptr<const ClientEnvironment> env);

// Adds a command that only holds others ("tenants", "keys"), one of which
// must be given.
CLI::App* add_command_group(CLI::App& parent, const std::string& name, const std::string& description,
                            const std::string& example);

}  // namespace headroom::cli
