#include "server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace headroom::testing {
namespace {

// Reads what is available from `fd` into `out` within `timeout_ms`; false at EOF.
bool read_some(int fd, std::string& out, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return true;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n <= 0) return false;
  out.append(buf, static_cast<std::size_t>(n));
  return true;
}

std::vector<std::string> make_env(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    if (name.rfind("HEADROOM_", 0) == 0 || extra.count(name)) continue;
    env.push_back(entry);
  }
  for (auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

// fork and exec with stdout (and optionally stderr) piped back. The child
// dies with the test process (PR_SET_PDEATHSIG), so a test killed by its
// timeout leaves no server behind.
pid_t spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& extra_env, int* out_fd,
            int* err_fd) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) return -1;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env = make_env(extra_env);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(out_pipe[1], 1);
    if (err_fd) dup2(err_pipe[1], 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (pid < 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return -1;
  }
  *out_fd = out_pipe[0];
  if (err_fd) *err_fd = err_pipe[0];
  else close(err_pipe[0]);
  return pid;
}

}  // namespace

std::string make_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "headroom-test-XXXXXX").string();
  char* dir = mkdtemp(tmpl.data());
  return dir ? std::string(dir) : std::string();
}

std::unique_ptr<ServerProcess> ServerProcess::start(const ServerConfig& config) {
  auto p = std::unique_ptr<ServerProcess>(new ServerProcess());
  p->data_dir_ = config.data_dir;
  if (p->data_dir_.empty()) {
    p->data_dir_ = make_temp_dir();
    p->owns_data_dir_ = true;
  }
  std::vector<std::string> args = {HEADROOM_BINARY, "serve", "--listen", "127.0.0.1:0", "--data", p->data_dir_,
                                   "--threads", "2", "--log-level", "warning"};
  args.insert(args.end(), config.extra_args.begin(), config.extra_args.end());
  p->pid_ = spawn(args, config.env, &p->stdout_fd_, nullptr);
  if (p->pid_ < 0) {
    ADD_FAILURE() << "cannot start " << HEADROOM_BINARY;
    return nullptr;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    std::size_t at = p->stdout_.find("listening on ");
    if (at != std::string::npos && p->stdout_.find('\n', at) != std::string::npos) {
      std::size_t end = p->stdout_.find('\n', at);
      p->url_ = p->stdout_.substr(at + 13, end - at - 13);
      p->port_ = static_cast<std::uint16_t>(std::stoi(p->url_.substr(p->url_.rfind(':') + 1)));
      std::size_t key_at = p->stdout_.find("admin key (shown once, keep it safe): ");
      if (key_at != std::string::npos) {
        key_at += std::strlen("admin key (shown once, keep it safe): ");
        p->admin_key_ = p->stdout_.substr(key_at, p->stdout_.find('\n', key_at) - key_at);
      }
      return p;
    }
    if (!read_some(p->stdout_fd_, p->stdout_, 100)) break;
  }
  ADD_FAILURE() << "headroom serve did not print its URL; stdout:\n" << p->stdout_;
  return nullptr;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && running()) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
  if (owns_data_dir_) {
    std::error_code ignored;
    std::filesystem::remove_all(data_dir_, ignored);
  }
}

bool ServerProcess::running() {
  if (pid_ <= 0) return false;
  int status;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

std::optional<int> ServerProcess::stop(int signal, int timeout_ms) {
  if (pid_ <= 0) return std::nullopt;
  kill(pid_, signal);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    usleep(5'000);
  }
  return std::nullopt;
}

std::string Reply::header(std::string_view name) const {
  for (auto& [k, v] : headers) {
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return "";
}

std::string Reply::error_code() const {
  const auto& v = json();
  if (!v.is_object()) return "";
  auto* e = v.as_object().if_contains("error");
  if (!e || !e->is_object()) return "";
  auto* c = e->as_object().if_contains("code");
  return c && c->is_string() ? std::string(c->as_string()) : "";
}

Reply call(const std::string& url, std::string_view method, std::string_view target, const std::string& key,
           std::string_view body, const net::HttpHeaders& headers) {
  auto client = net::HttpClient::create(url);
  if (!client) {
    ADD_FAILURE() << client.status().to_string();
    return {};
  }
  net::HttpHeaders all = headers;
  if (!key.empty()) all.emplace_back("Authorization", "Bearer " + key);
  auto r = client->request(method, target, body, all);
  if (!r) {
    ADD_FAILURE() << method << " " << target << ": " << r.status().to_string();
    return {};
  }
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(r->body, ec);
  return {r->status, r->body, r->headers, ec ? boost::json::value() : std::move(parsed)};
}

std::string raw_exchange(std::uint16_t port, std::string_view bytes, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (413): read its answer
    sent += static_cast<std::size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  return out;
}

CommandResult run_headroom(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {HEADROOM_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::map<std::string, std::string> full_env = env;
  if (!full_env.count("XDG_CONFIG_HOME")) full_env["XDG_CONFIG_HOME"] = "/nonexistent-headroom-test-config";
  CommandResult result;
  int out_fd = -1, err_fd = -1;
  pid_t pid = spawn(argv, full_env, &out_fd, &err_fd);
  if (pid < 0) {
    ADD_FAILURE() << "cannot run " << HEADROOM_BINARY;
    return result;
  }
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    pollfd fds[2] = {{out_open ? out_fd : -1, POLLIN, 0}, {err_open ? err_fd : -1, POLLIN, 0}};
    if (poll(fds, 2, 30'000) <= 0) break;
    char buf[4096];
    if (fds[0].revents) {
      ssize_t n = read(out_fd, buf, sizeof buf);
      if (n <= 0) out_open = false;
      else result.out.append(buf, static_cast<std::size_t>(n));
    }
    if (fds[1].revents) {
      ssize_t n = read(err_fd, buf, sizeof buf);
      if (n <= 0) err_open = false;
      else result.err.append(buf, static_cast<std::size_t>(n));
    }
  }
  close(out_fd);
  close(err_fd);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace headroom::testing
