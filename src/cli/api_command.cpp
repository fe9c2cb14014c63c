#include "cli/api_command.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <thread>

#include "common/ids.h"
#include "common/limits.h"
#include "common/random.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;

constexpr const char* kClientOptionsGroup = "Client options";

// Strips the spaces and line ends that copying a key from a file or a
// terminal tends to bring along.
std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

bool is_printable_ascii(std::string_view text) {
  for (char c : text) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

Result<json::value> parse_json(std::string_view text) {
  json::parse_options options;
  options.max_depth = limits::kJsonDepth;
  boost::system::error_code ec;
  json::value value = json::parse(text, ec, json::storage_ptr(), options);
  if (ec) return Status::invalid_argument(ec.message());
  return value;
}

// The API's error object, when the body is one.
const json::object* error_object(const json::value& body) {
  const json::value* error = find_path(body, "error");
  return error == nullptr ? nullptr : error->if_object();
}

std::string string_field(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : std::string();
}

class HttpTransport final : public Transport {
 public:
  explicit HttpTransport(net::HttpClient client) : client_(std::move(client)) {}
  Result<net::HttpClientResponse> request(std::string_view method, std::string_view target, std::string_view body,
                                    const net::HttpHeaders& headers) override {
    return client_.request(method, target, body, headers);
  }
  Status request_stream(std::string_view method, std::string_view target, std::string_view body,
                        const net::HttpHeaders& headers, const std::function<bool(std::string_view)>& on_body_chunk,
                        const std::function<void(const net::HttpClientResponse&)>& on_head) override {
    return client_.request_stream(method, target, body, headers, on_body_chunk, on_head);
  }

 private:
  net::HttpClient client_;
};

// Set by the SIGINT handler while a SystemWaiter lives.
volatile std::sig_atomic_t g_interrupted = 0;

// The first Ctrl-C asks the waiting command to stop; a second one, for a
// call that does not return, ends the process as SIGINT always does. Only
// async-signal-safe calls here.
extern "C" void on_sigint(int signo) {
  if (g_interrupted != 0) {
    std::signal(signo, SIG_DFL);
    std::raise(signo);
    return;
  }
  g_interrupted = 1;
}

class SystemWaiter final : public Waiter {
 public:
  SystemWaiter() {
    g_interrupted = 0;
    struct sigaction action = {};
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;  // a read in flight goes on; the poll loop looks at the flag after it
    sigaction(SIGINT, &action, &previous_);
  }
  ~SystemWaiter() override { sigaction(SIGINT, &previous_, nullptr); }
  SystemWaiter(const SystemWaiter&) = delete;
  SystemWaiter& operator=(const SystemWaiter&) = delete;

  bool wait_ms(std::int64_t ms) override {
    // Short steps, so that Ctrl-C is seen within one.
    constexpr std::int64_t kStepMs = 50;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!interrupted()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<std::int64_t>(left.count(), kStepMs)));
    }
    return false;
  }
  bool interrupted() const override { return g_interrupted != 0; }

 private:
  struct sigaction previous_ = {};
};

Result<std::string> system_current_dir() {
  std::string buffer(4096, '\0');
  if (::getcwd(buffer.data(), buffer.size()) == nullptr) {
    return Status::invalid_argument("cannot tell the current directory: pass --workdir");
  }
  buffer.resize(std::char_traits<char>::length(buffer.c_str()));
  return buffer;
}

ApiError transport_error(const Status& status, const ClientSettings& settings) {
  const bool unavailable = status.code() == ErrorCode::kUnavailable;
  return ApiError{.exit_code = exit_code_for_status(status),
                  .message = status.message(),
                  .hint = unavailable ? hint_for_transport_error(status, settings) : std::string(),
                  .transient = unavailable};
}

ApiError http_error(const net::HttpClientResponse& response, const ClientSettings& settings) {
  return ApiError{.exit_code = exit_code_for_http_status(response.status),
                  .message = describe_http_error(response),
                  .hint = hint_for_http_status(response.status, settings),
                  .transient = response.status == 429 || response.status >= 500};
}

// Resolves the settings and prints their warnings; on failure prints the
// error and returns its exit code.
ExitCode resolve_or_report(const ClientFlags& flags, Auth auth, const ClientEnvironment& env,
                           ClientSettings& settings) {
  auto settings_or = resolve_settings(flags, auth, env);
  if (!settings_or.is_ok()) {
    *env.err << "error: " << settings_or.status().message() << "\n";
    return exit_code_for_status(settings_or.status());
  }
  settings = std::move(settings_or).value();
  for (const auto& warning : settings.warnings) *env.err << "warning: " << warning << "\n";
  return ExitCode::kOk;
}

// Opens the transport; on failure prints the error and returns its exit code.
ExitCode connect_or_report(const ClientSettings& settings, const ClientEnvironment& env,
                           std::unique_ptr<Transport>& transport) {
  auto transport_or = env.connect(settings);
  if (transport_or.is_ok()) {
    transport = std::move(transport_or).value();
    return ExitCode::kOk;
  }
  *env.err << "error: " << transport_or.status().message() << "\n";
  if (transport_or.status().code() == ErrorCode::kInvalidArgument) {
    *env.err << "hint: the URL is from " << settings.url_source << "\n";
    return ExitCode::kUsage;
  }
  return exit_code_for_status(transport_or.status());
}

// Prints a successful answer as the command says.
ExitCode print_answer(const ApiCommand& command, const ApiCall& call, const json::value& answer,
                      OutputFormat format, std::ostream& out, std::ostream& err) {
  if (format == OutputFormat::kJson) {
    out << pretty_json(answer);
  } else if (command.render) {
    out << command.render(answer);
  } else if (command.shape == Shape::kList) {
    const json::value* data = find_path(answer, "data");
    if (data == nullptr || !data->is_array()) {
      err << "error: the server's answer to " << call.method << " " << call.target << " has no \"data\" list\n";
      return ExitCode::kServerError;
    }
    out << render_list(command.columns, data->get_array());
    const json::value* has_more = find_path(answer, "has_more");
    if (command.paging == Paging::kCursor && has_more != nullptr && has_more->is_bool() && has_more->get_bool() &&
        !data->get_array().empty()) {
      err << "more results: rerun with --after " << cell_text(find_path(data->get_array().back(), "id")) << "\n";
    }
  } else {
    if (!answer.is_object()) {
      err << "error: the server's answer to " << call.method << " " << call.target << " is not an object\n";
      return ExitCode::kServerError;
    }
    out << render_record(command.columns, answer);
  }
  return ExitCode::kOk;
}

// Runs a command's callback, so that no exception leaves it.
void guarded(int& exit_code, std::ostream& err, const std::function<int()>& body) {
  exit_code = static_cast<int>(ExitCode::kServerError);
  try {
    exit_code = body();
  } catch (const std::exception& e) {
    err << "error: unexpected: " << e.what() << "\n";
  } catch (...) {
    err << "error: unexpected failure\n";
  }
}

}  // namespace

namespace {

// Runs a parsed command, with --limit and --after added to its call when it pages.
void run_parsed(const ApiCommand& command, const ClientFlags& flags, const std::pair<std::size_t, std::string>& paging,
                const ClientEnvironment& env, int& exit_code) {
  const bool paged = command.paging == Paging::kCursor && (paging.first > 0 || !paging.second.empty());
  if (!paged) {
    exit_code = static_cast<int>(run_api_command(command, flags, env));
    return;
  }
  ApiCommand effective = command;
  effective.make_call = [&command, &paging]() -> Result<ApiCall> {
    HR_ASSIGN_OR_RETURN(ApiCall call, command.make_call());
    char separator = call.target.find('?') == std::string::npos ? '?' : '&';
    if (paging.first > 0) {
      call.target += separator + std::string("limit=") + std::to_string(paging.first);
      separator = '&';
    }
    if (!paging.second.empty()) call.target += separator + std::string("after=") + encode_path_segment(paging.second);
    return call;
  };
  exit_code = static_cast<int>(run_api_command(effective, flags, env));
}

}  // namespace

ClientEnvironment ClientEnvironment::system() {
  ClientEnvironment env;
  env.getenv = [](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  env.out = &std::cout;
  env.err = &std::cerr;
  env.connect = [](const ClientSettings& settings) -> Result<std::unique_ptr<Transport>> {
    net::HttpClientOptions options;
    options.ca_file = settings.ca_file;
    options.tls_verify = settings.tls_verify;
    HR_ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::create(settings.url, std::move(options)));
    return std::unique_ptr<Transport>(std::make_unique<HttpTransport>(std::move(client)));
  };
  env.make_waiter = []() -> std::unique_ptr<Waiter> { return std::make_unique<SystemWaiter>(); };
  env.new_idempotency_key = [] {
    SecureRandom random;
    return make_id("idem", random);
  };
  env.current_dir = system_current_dir;
  return env;
}

void ApiError::print(std::ostream& err) const {
  err << "error: " << message << "\n";
  if (!hint.empty()) err << "hint: " << hint << "\n";
}

ApiSession::ApiSession(ClientSettings settings, std::unique_ptr<Transport> transport)
    : settings_(std::move(settings)), transport_(std::move(transport)) {}

ExitCode ApiSession::open(const ClientFlags& flags, Auth auth, const ClientEnvironment& env,
                          std::unique_ptr<ApiSession>& session) {
  ClientSettings settings;
  if (ExitCode code = resolve_or_report(flags, auth, env, settings); code != ExitCode::kOk) return code;
  std::unique_ptr<Transport> transport;
  if (ExitCode code = connect_or_report(settings, env, transport); code != ExitCode::kOk) return code;
  session = std::make_unique<ApiSession>(std::move(settings), std::move(transport));
  return ExitCode::kOk;
}

net::HttpHeaders ApiSession::headers(std::string_view accept) const {
  net::HttpHeaders headers = {{"Accept", std::string(accept)}};
  if (!settings_.api_key.empty()) headers.emplace_back("Authorization", "Bearer " + settings_.api_key);
  return headers;
}

std::optional<ApiError> ApiSession::call(const ApiCall& call, ApiAnswer& answer,
                                         const net::HttpHeaders& extra_headers) {
  net::HttpHeaders all_headers = headers("application/json");
  all_headers.insert(all_headers.end(), extra_headers.begin(), extra_headers.end());
  const std::string body = call.body ? json::serialize(*call.body) : std::string();
  auto response = transport_->request(call.method, call.target, body, all_headers);
  if (!response.is_ok()) return transport_error(response.status(), settings_);
  if (exit_code_for_http_status(response->status) != ExitCode::kOk) return http_error(*response, settings_);
  answer.status = response->status;
  answer.body = nullptr;
  if (response->body.empty()) return std::nullopt;
  auto parsed = parse_json(response->body);
  if (!parsed.is_ok()) {
    return ApiError{.message = "the server's answer to " + call.method + " " + call.target +
                               " is not JSON: " + parsed.status().message()};
  }
  answer.body = std::move(parsed).value();
  return std::nullopt;
}

std::optional<ApiError> ApiSession::get_text(std::string_view target, const std::function<void(std::string_view)>& sink,
                                             std::string_view accept) {
  return stream("GET", target, "", [&sink](std::string_view chunk) { sink(chunk); return true; }, accept);
}

std::optional<ApiError> ApiSession::post_stream(std::string_view target, std::string_view body,
                                                const std::function<bool(std::string_view)>& sink,
                                                std::string_view accept) {
  return stream("POST", target, body, sink, accept);
}

std::optional<ApiError> ApiSession::stream(std::string_view method, std::string_view target, std::string_view body,
                                           const std::function<bool(std::string_view)>& sink,
                                           std::string_view accept) {
  // An error's body is read for its message, up to this much.
  constexpr std::size_t kErrorBodyBytes = 64 * 1024;
  net::HttpClientResponse head;
  auto on_head = [&head](const net::HttpClientResponse& received) { head = received; };
  auto on_chunk = [&head, &sink](std::string_view chunk) {
    if (exit_code_for_http_status(head.status) == ExitCode::kOk) return sink(chunk);
    head.body.append(chunk.substr(0, kErrorBodyBytes - head.body.size()));
    return head.body.size() < kErrorBodyBytes;
  };
  const Status status = transport_->request_stream(method, target, body, headers(accept), on_chunk, on_head);
  if (!status.is_ok()) return transport_error(status, settings_);
  if (exit_code_for_http_status(head.status) != ExitCode::kOk) return http_error(head, settings_);
  return std::nullopt;
}

Status check_idempotency_key(std::string_view key) {
  if (key.size() > kIdempotencyKeyBytes) {
    return Status::invalid_argument("--idempotency-key is over " + std::to_string(kIdempotencyKeyBytes) + " bytes");
  }
  if (!is_printable_ascii(key)) {
    return Status::invalid_argument("--idempotency-key may hold printable ASCII only, without spaces");
  }
  return Status::ok();
}

std::optional<ApiError> call_with_idempotency_key(ApiSession& session, const ApiCall& call, const std::string& key,
                                                  std::string_view what, const ClientEnvironment& env, Waiter* waiter,
                                                  ApiAnswer& answer) {
  const net::HttpHeaders headers = {{"Idempotency-Key", key}};
  std::optional<ApiError> error = session.call(call, answer, headers);
  if (!error || error->exit_code != ExitCode::kCannotConnect) return error;
  if (waiter == nullptr && !env.make_waiter) return error;
  *env.err << "warning: " << error->message << "; sending the " << what
           << " once more, with the same Idempotency-Key\n";
  std::unique_ptr<Waiter> made;
  if (waiter == nullptr) {
    made = env.make_waiter();
    waiter = made.get();
  }
  if (!waiter->wait_ms(kIdempotentRetryPauseMs)) return error;
  return session.call(call, answer, headers);
}

ExitCode exit_code_for_http_status(int status) {
  if (status >= 200 && status <= 299) return ExitCode::kOk;
  if (status == 401 || status == 403) return ExitCode::kAuth;
  if (status == 404) return ExitCode::kNotFound;
  if (status >= 400 && status <= 499) return ExitCode::kRejected;
  return ExitCode::kServerError;
}

ExitCode exit_code_for_status(const Status& status) {
  switch (status.code()) {
    case ErrorCode::kOk:
      return ExitCode::kOk;
    case ErrorCode::kInvalidArgument:
      return ExitCode::kUsage;
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kPermissionDenied:
      return ExitCode::kAuth;
    case ErrorCode::kNotFound:
      return ExitCode::kNotFound;
    case ErrorCode::kUnavailable:
      return ExitCode::kCannotConnect;
    default:
      return ExitCode::kServerError;
  }
}

std::string encode_path_segment(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' ||
                            u == '.' || u == '_' || u == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  // "." and ".." are unreserved but mean something in a path: encode them.
  if (out == "." || out == "..") {
    std::string dots;
    for (std::size_t i = 0; i < out.size(); ++i) dots += "%2E";
    return dots;
  }
  return out;
}

std::string describe_http_error(const net::HttpClientResponse& response) {
  std::string message;
  std::string code;
  std::string request_id;
  if (auto body = parse_json(response.body); body.is_ok()) {
    if (const json::object* error = error_object(*body)) {
      message = string_field(*error, "message");
      code = string_field(*error, "code");
      request_id = string_field(*error, "request_id");
    }
  }
  if (request_id.empty()) request_id = response.header("x-request-id");
  if (message.empty()) message = "the server answered HTTP " + std::to_string(response.status);
  std::string details = code.empty() ? "" : code + ", ";
  details += "HTTP " + std::to_string(response.status);
  if (!request_id.empty()) details += ", request " + request_id;
  return printable(message) + " (" + printable(details) + ")";
}

std::string hint_for_http_status(int status, const ClientSettings& settings) {
  switch (status) {
    case 401:
      return "the server does not accept the API key from " + settings.api_key_source +
             ": check it, or make a new one with `headroom keys create`";
    case 403:
      return "the API key from " + settings.api_key_source +
             " lacks the permission for this: use a key with the needed scope, or the admin key";
    case 429:
      return "too many requests for now: wait a little and try again";
    case 500:
    case 502:
    case 503:
    case 504:
      return "the server is in trouble: try again later; its log has the request id";
    default:
      return "";
  }
}

std::string hint_for_transport_error(const Status& status, const ClientSettings& settings) {
  const std::string& message = status.message();
  if (message.find("TLS") != std::string::npos || message.find("certificate") != std::string::npos) {
    return "if the server's certificate comes from a private CA, pass --ca-file CA.pem (or --insecure, for tests "
           "only)";
  }
  if (message.find("cannot resolve") != std::string::npos) {
    return "check the host name in " + settings.url + " (the URL is from " + settings.url_source + ")";
  }
  if (message.find("cannot reach") != std::string::npos) {
    return "is `headroom serve` running at " + settings.url + "? (the URL is from " + settings.url_source +
           "; set it with --url or " + kUrlEnv + ")";
  }
  return "the server's answer did not arrive whole; check that " + settings.url +
         " is a Headroom server, and try again";
}

Result<ClientSettings> resolve_settings(const ClientFlags& flags, Auth auth, const ClientEnvironment& env) {
  ClientSettings settings;
  HR_ASSIGN_OR_RETURN(settings.output, parse_output_format(flags.output));
  settings.ca_file = flags.ca_file;
  settings.tls_verify = flags.insecure ? net::TlsVerify::kSkip : net::TlsVerify::kVerify;

  auto from_env = [&](const char* name) -> std::string {
    const std::optional<std::string> value = env.getenv ? env.getenv(name) : std::nullopt;
    return value ? trim(*value) : std::string();
  };
  if (!flags.url.empty()) {
    settings.url = trim(flags.url);
    settings.url_source = "--url";
  } else if (std::string url = from_env(kUrlEnv); !url.empty()) {
    settings.url = url;
    settings.url_source = kUrlEnv;
  }
  if (!flags.api_key.empty()) {
    settings.api_key = trim(flags.api_key);
    settings.api_key_source = "--api-key";
  } else if (std::string key = from_env(kApiKeyEnv); !key.empty()) {
    settings.api_key = key;
    settings.api_key_source = kApiKeyEnv;
  }

  const bool need_key = auth == Auth::kRequired && settings.api_key.empty();
  if (settings.url.empty() || need_key) {
    if (const std::optional<std::string> path = env.getenv ? cli_config_path(env.getenv) : std::nullopt) {
      HR_ASSIGN_OR_RETURN(CliConfig config, read_cli_config(*path));
      if (settings.url.empty() && config.url && !trim(*config.url).empty()) {
        settings.url = trim(*config.url);
        settings.url_source = *path;
      }
      if (need_key && config.api_key && !trim(*config.api_key).empty()) {
        settings.api_key = trim(*config.api_key);
        settings.api_key_source = *path;
        if (config.readable_by_others) {
          settings.warnings.push_back("config file " + *path +
                                      " holds an API key and others may read it: run `chmod 600 " + *path + "`");
        }
      }
    }
  }
  if (settings.url.empty()) {
    settings.url = std::string(kDefaultUrl);
    settings.url_source = "the default";
  }
  if (auth == Auth::kRequired && settings.api_key.empty()) {
    return Status::unauthenticated(std::string("no API key: set ") + kApiKeyEnv +
                                   " or pass --api-key (the admin key is printed by `headroom serve` on first start)");
  }
  if (!settings.api_key.empty() && !is_printable_ascii(settings.api_key)) {
    return Status::invalid_argument("the API key from " + settings.api_key_source +
                                    " holds spaces or characters that no key has");
  }
  if (settings.tls_verify == net::TlsVerify::kSkip && settings.url.rfind("https:", 0) == 0) {
    settings.warnings.push_back("--insecure: the server's certificate is not checked, so anyone in between can "
                                "read and change this conversation");
  }
  return settings;
}

ExitCode run_api_command(const ApiCommand& command, const ClientFlags& flags, const ClientEnvironment& env) {
  std::ostream& out = *env.out;
  std::ostream& err = *env.err;
  try {
    ClientSettings settings;
    if (ExitCode code = resolve_or_report(flags, command.auth, env, settings); code != ExitCode::kOk) return code;
    auto call = command.make_call();
    if (!call.is_ok()) {
      err << "error: " << call.status().message() << "\n";
      return ExitCode::kUsage;
    }
    std::unique_ptr<Transport> transport;
    if (ExitCode code = connect_or_report(settings, env, transport); code != ExitCode::kOk) return code;
    ApiSession session(std::move(settings), std::move(transport));

    ApiAnswer answer;
    if (std::optional<ApiError> error = session.call(*call, answer)) {
      error->print(err);
      return error->exit_code;
    }
    if (answer.body.is_null()) return ExitCode::kOk;
    const ExitCode code = print_answer(command, *call, answer.body, session.settings().output, out, err);
    if (code != ExitCode::kOk) return code;
    if (command.notes) command.notes(answer.body, err);
    out.flush();
    return ExitCode::kOk;
  } catch (const std::exception& e) {
    err << "error: unexpected: " << e.what() << "\n";
    return ExitCode::kServerError;
  } catch (...) {
    err << "error: unexpected failure\n";
    return ExitCode::kServerError;
  }
}

void add_client_flags(CLI::App& command, ClientFlags& flags) {
  command.add_option("--url", flags.url,
                     std::string("Server URL (env ") + kUrlEnv + ", then config file `url`; default " +
                         std::string(kDefaultUrl) + ")")
      ->group(kClientOptionsGroup);
  command.add_option("--api-key", flags.api_key,
                     std::string("API key, hr_... (env ") + kApiKeyEnv + ", then config file `api_key`)")
      ->group(kClientOptionsGroup);
  command.add_option("-o,--output", flags.output, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str()
      ->group(kClientOptionsGroup);
  command.add_option("--ca-file", flags.ca_file, "PEM file of CA certificates to trust for https")
      ->check(CLI::ExistingFile)
      ->group(kClientOptionsGroup);
  command.add_flag("--insecure", flags.insecure, "Do not check the server's certificate (tests only)")
      ->group(kClientOptionsGroup);
}

CLI::App* add_api_command(CLI::App& parent, ApiCommand command, int& exit_code,
                          std::shared_ptr<const ClientEnvironment> env) {
  CLI::App* app = parent.add_subcommand(command.name, command.description);
  app->footer("Example:\n  " + command.example);
  auto flags = std::make_shared<ClientFlags>();
  if (command.add_arguments) command.add_arguments(*app);
  auto paging = std::make_shared<std::pair<std::size_t, std::string>>(0, "");
  if (command.paging == Paging::kCursor) {
    app->add_option("--limit", paging->first, "Most results on the page")
        ->check(CLI::Range(std::size_t{1}, limits::kListPageSizeMax));
    app->add_option("--after", paging->second, "Start after this id (from the previous page)");
  }
  add_client_flags(*app, *flags);
  auto shared = std::make_shared<ApiCommand>(std::move(command));
  app->callback([app, shared, flags, paging, env, &exit_code] {
    // CLI11 runs a subcommand's callback before its parent's: the one given
    // has run, and set the exit code, already.
    if (!app->get_subcommands().empty()) return;
    guarded(exit_code, *env->err, [&] {
      int code = static_cast<int>(ExitCode::kServerError);
      run_parsed(*shared, *flags, *paging, *env, code);
      return code;
    });
  });
  return app;
}

CLI::App* add_custom_command(CLI::App& parent, CustomCommand command, int& exit_code,
                             std::shared_ptr<const ClientEnvironment> env) {
  CLI::App* app = parent.add_subcommand(command.name, command.description);
  app->footer("Example:\n  " + command.example);
  auto flags = std::make_shared<ClientFlags>();
  if (command.add_arguments) command.add_arguments(*app);
  add_client_flags(*app, *flags);
  auto run = std::move(command.run);
  app->callback([run, flags, env, &exit_code] {
    guarded(exit_code, *env->err, [&] { return run(*flags, *env); });
  });
  return app;
}

CLI::App* add_command_group(CLI::App& parent, const std::string& name, const std::string& description,
                            const std::string& example) {
  CLI::App* group = parent.add_subcommand(name, description);
  group->require_subcommand(1);
  group->footer("Example:\n  " + example);
  return group;
}

}  // namespace headroom::cli
