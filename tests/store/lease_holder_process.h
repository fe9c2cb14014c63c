// A leader_lease_holder child process (leader_lease_holder.cpp), for the
// leader-failover test and benchmark: start it, read its event lines with a
// deadline, SIGKILL it.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace headroom::testing {

inline std::int64_t mono_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The integer after "NAME=" in an event line, or -1.
inline std::int64_t field(std::string_view line, std::string_view name) {
  std::string key = std::string(name) + "=";
  std::size_t at = line.find(key);
  if (at == std::string_view::npos) return -1;
  return std::strtoll(std::string(line.substr(at + key.size())).c_str(), nullptr, 10);
}

class HolderProcess {
 public:
  // Starts `binary URL KEY HOLDER RETRY_MS`; null when fork or pipe fails.
  static std::unique_ptr<HolderProcess> start(const std::string& binary, const std::string& url, std::int64_t key,
                                              const std::string& holder, std::int64_t retry_interval_ms) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return nullptr;
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      return nullptr;
    }
    std::vector<std::string> args = {binary, url, std::to_string(key), holder, std::to_string(retry_interval_ms)};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
      ::dup2(in[0], STDIN_FILENO);
      ::dup2(out[1], STDOUT_FILENO);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    auto p = std::unique_ptr<HolderProcess>(new HolderProcess());
    p->pid_ = pid;
    p->stdin_fd_ = in[1];
    p->stdout_fd_ = out[0];
    return p;
  }
  HolderProcess(const HolderProcess&) = delete;
  HolderProcess& operator=(const HolderProcess&) = delete;
  ~HolderProcess() {
    kill_hard();
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
  }

  pid_t pid() const { return pid_; }

  // The next line that starts with `prefix` (lines before it are skipped),
  // or nullopt when none comes within `timeout_ms` or the process exits.
  std::optional<std::string> wait_line(std::string_view prefix, int timeout_ms) {
    std::int64_t deadline = mono_us() + std::int64_t{timeout_ms} * 1000;
    for (;;) {
      for (std::size_t nl = buffer_.find('\n'); nl != std::string::npos; nl = buffer_.find('\n')) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        lines_.push_back(line);
        if (line.starts_with(prefix)) return line;
      }
      std::int64_t left_ms = (deadline - mono_us()) / 1000;
      if (left_ms <= 0) return std::nullopt;
      pollfd fd{stdout_fd_, POLLIN, 0};
      int ready = ::poll(&fd, 1, static_cast<int>(left_ms));
      if (ready < 0) continue;  // EINTR
      if (ready == 0) return std::nullopt;
      char chunk[512];
      ssize_t n = ::read(stdout_fd_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;  // exited
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Every line read so far, for failure messages.
  std::string transcript() const {
    std::string all;
    for (const std::string& l : lines_) all += l + "\n";
    return all;
  }

  // SIGKILL, then reaps it. Idempotent.
  void kill_hard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  HolderProcess() = default;

  pid_t pid_ = -1;
  int stdin_fd_ = -1, stdout_fd_ = -1;
  std::string buffer_;
  std::vector<std::string> lines_;
};

}  // namespace headroom::testing
