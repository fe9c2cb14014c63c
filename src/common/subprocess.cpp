#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/log.h"

extern char** environ;

namespace headroom {
namespace {

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

ProgramResult run_program(const ProgramRun& run) {
  using SteadyClock = std::chrono::steady_clock;
  ProgramResult result;
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(run.timeout_ms);

  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(run.program.c_str()));
  for (const std::string& arg : run.args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (run.env) {
    for (const std::string& e : *run.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.spawn_error = std::strerror(errno);
    return result;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.spawn_error = std::strerror(errno);
    close_fd(out_pipe[0]);
    close_fd(out_pipe[1]);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty_set;
  sigset_t default_set;
  sigemptyset(&empty_set);
  sigemptyset(&default_set);
  sigaddset(&default_set, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &empty_set);
  posix_spawnattr_setsigdefault(&attr, &default_set);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  char** const env = run.env ? envp.data() : environ;
  const int spawn_error = run.program.find('/') == std::string::npos
                              ? ::posix_spawnp(&pid, run.program.c_str(), &actions, &attr, argv.data(), env)
                              : ::posix_spawn(&pid, run.program.c_str(), &actions, &attr, argv.data(), env);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close_fd(out_pipe[1]);
  close_fd(err_pipe[1]);
  if (spawn_error != 0) {
    close_fd(out_pipe[0]);
    close_fd(err_pipe[0]);
    result.not_found = spawn_error == ENOENT;
    result.spawn_error = std::strerror(spawn_error);
    return result;
  }

  // Both pipes until both close, the output outgrows its bound, or time runs out.
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  char buffer[16384];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const auto left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left_ms <= 0) {
      result.timed_out = true;
      break;
    }
    const int ready = ::poll(fds, 2, static_cast<int>(std::min<std::int64_t>(left_ms, 1000)));
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close_fd(fds[i].fd);
        continue;
      }
      sinks[i]->append(buffer, static_cast<std::size_t>(n));
      if (sinks[i]->size() > run.max_output_bytes) result.too_large = true;
    }
    if (result.too_large) break;
  }
  close_fd(fds[0].fd);
  close_fd(fds[1].fd);

  // Reaps it, killing it first when it overran, or when it closed its
  // output but hangs on past the deadline.
  bool killed = result.timed_out || result.too_large;
  if (killed) ::kill(-pid, SIGKILL);
  auto give_up = (killed ? SteadyClock::now() : deadline) + std::chrono::seconds(1);
  for (;;) {
    int wstatus = 0;
    const pid_t r = ::waitpid(pid, &wstatus, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(wstatus)) {
        result.exit_code = WEXITSTATUS(wstatus);
      } else if (WIFSIGNALED(wstatus)) {
        result.signal = WTERMSIG(wstatus);
      }
      return result;
    }
    if (r < 0 && errno != EINTR) return result;  // ECHILD: the server ignores SIGCHLD
    const auto now = SteadyClock::now();
    if (!killed && now >= deadline) {
      ::kill(-pid, SIGKILL);
      killed = result.timed_out = true;
      give_up = now + std::chrono::seconds(1);
    }
    if (now >= give_up) {
      spdlog::warn("{} (pid {}) survived SIGKILL; leaving it", run.program, pid);
      return result;
    }
    ::poll(nullptr, 0, 5);
  }
}

}  // namespace headroom
