#include "exec/local_executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <system_error>
#include <type_traits>
#include <utility>

#include "common/check.h"
#include "common/log.h"
#include "common/text.h"

namespace headroom::exec {
namespace {

// Names in a job's directory beside executor.h's.
constexpr const char* kExitTmpFile = "exit.tmp";
constexpr const char* kDeadlineTmpFile = "preempt_deadline.tmp";
constexpr const char* kHeartbeatFile = "heartbeat";
constexpr const char* kRunTmpFile = "run.tmp";

// The supervisor's descriptors: 0 is /dev/null, 1 and 2 the log, and these
// three are close-on-exec, so the job starts with 0, 1 and 2 only.
constexpr int kSupervisorDirFd = 3;     // the job's directory, for the exit record
constexpr int kSupervisorReportFd = 4;  // the pipe that tells start() how the exec went
constexpr int kSupervisorGoFd = 5;      // the socket start() gives the go-ahead on
constexpr int kFirstFreeFd = 6;         // everything from here on is closed

constexpr int kExitKilled = 128 + SIGKILL;  // what a shell reports for a SIGKILLed job

constexpr unsigned kHeartbeatSeconds = static_cast<unsigned>(limits::kExecHeartbeatMs / 1000);
static_assert(limits::kExecHeartbeatMs % 1000 == 0, "alarm() counts whole seconds");

constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin";  // for the lookup when no PATH is set

std::string errno_text(int error) { return std::system_category().message(error); }

Timestamp timestamp_of(const struct timespec& t) {
  return Timestamp{static_cast<std::int64_t>(t.tv_sec) * 1'000'000 + t.tv_nsec / 1'000};
}

// ---------------------------------------------------------------------------
// Async-signal-safe helpers: the only code that runs between fork and exec.
// No allocation, no locks, no logging.

void write_raw(int fd, const char* data, std::size_t bytes) {
  while (bytes > 0) {
    const ssize_t written = ::write(fd, data, bytes);
    if (written < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data += written;
    bytes -= static_cast<std::size_t>(written);
  }
}

void write_raw(int fd, const char* text) { write_raw(fd, text, std::strlen(text)); }

// Writes `value` in decimal to `out` (room for 10 digits); returns the length.
std::size_t format_decimal(char* out, unsigned value) {
  char digits[10];
  std::size_t count = 0;
  do {
    digits[count++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (std::size_t i = 0; i < count; ++i) out[i] = digits[count - 1 - i];
  return count;
}

// strerror() is not async-signal-safe; these are the failures of chdir and
// execve that a job's owner may meet, in the words strerror uses.
const char* describe_exec_errno(int error) {
  switch (error) {
    case ENOENT:
      return "No such file or directory";
    case EACCES:
      return "Permission denied";
    case EPERM:
      return "Operation not permitted";
    case ENOEXEC:
      return "Exec format error";
    case E2BIG:
      return "Argument list too long";
    case ENOMEM:
      return "Cannot allocate memory";
    case ETXTBSY:
      return "Text file busy";
    case ELOOP:
      return "Too many levels of symbolic links";
    case ENAMETOOLONG:
      return "File name too long";
    case ENOTDIR:
      return "Not a directory";
    case EISDIR:
      return "Is a directory";
    case EIO:
      return "Input/output error";
    default:
      return nullptr;
  }
}

// What the report pipe carries when a job could not be started; nothing
// (end of file at the exec) when it was.
enum class Stage : std::int32_t { kSession = 1, kFork = 2, kWorkdir = 3, kExec = 4 };
struct StartFailure {
  std::int32_t stage = 0;
  std::int32_t error = 0;
};
static_assert(sizeof(StartFailure) <= PIPE_BUF, "written in one atomic write");

// Everything the supervisor and the job need, prepared before fork.
struct SupervisorPlan {
  const char* exec_path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* workdir = nullptr;
  int devnull_fd = -1;  // all five at kFirstFreeFd or above, close-on-exec
  int log_fd = -1;
  int dir_fd = -1;
  int report_fd = -1;
  int go_fd = -1;
  int max_fd = 0;                        // where closing stops when close_range is missing
  const char* exec_failed = nullptr;     // "headroom: cannot execute /x: "
  const char* workdir_failed = nullptr;  // "headroom: cannot enter workdir /x: "
};

[[noreturn]] void report_failure(int report_fd, Stage stage, int error) {
  const StartFailure failure{static_cast<std::int32_t>(stage), error};
  write_raw(report_fd, reinterpret_cast<const char*>(&failure), sizeof failure);
  ::_exit(127);
}

// "headroom: cannot execute /x: Permission denied\n" into the job's log.
void log_failure(const char* prefix, int error) {
  write_raw(STDERR_FILENO, prefix);
  if (const char* description = describe_exec_errno(error)) {
    write_raw(STDERR_FILENO, description);
  } else {
    char number[24] = "errno ";
    const std::size_t length = 6 + format_decimal(number + 6, static_cast<unsigned>(error));
    write_raw(STDERR_FILENO, number, length);
  }
  write_raw(STDERR_FILENO, "\n", 1);
}

void close_from(int first_fd, int max_fd) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, static_cast<unsigned>(first_fd), ~0U, 0U) == 0) return;
#endif
  for (int fd = first_fd; fd < max_fd; ++fd) ::close(fd);
}

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U));  // close-on-exec by default
#else
  errno = ENOSYS;
  return -1;
#endif
}

// fork() runs the atfork handlers libraries registered, which may take locks
// a thread of the server held at the first fork; _Fork (glibc 2.34) does not,
// and is async-signal-safe.
pid_t fork_without_handlers() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  return ::_Fork();
#else
  return ::fork();
#endif
}

void set_all_signals(void (*disposition)(int)) {
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  action.sa_handler = disposition;
  for (int signo = 1; signo < NSIG; ++signo) {
    if (signo == SIGKILL || signo == SIGSTOP) continue;
    ::sigaction(signo, &action, nullptr);  // fails harmlessly for the C library's own signals
  }
}

void set_signal(int signo, void (*disposition)(int)) {
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  action.sa_handler = disposition;
  ::sigaction(signo, &action, nullptr);
}

void write_exit_record(int status) {
  char record[32];
  std::size_t length = 0;
  const char* word = WIFEXITED(status) ? "exit " : "signal ";
  const unsigned value =
      WIFEXITED(status) ? static_cast<unsigned>(WEXITSTATUS(status)) : static_cast<unsigned>(WTERMSIG(status));
  for (const char* c = word; *c != '\0'; ++c) record[length++] = *c;
  length += format_decimal(record + length, value);
  record[length++] = '\n';

  const int fd = ::openat(kSupervisorDirFd, kExitTmpFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;  // no record: the job will read as lost, the safe side for billing
  write_raw(fd, record, length);
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (synced && ::renameat(kSupervisorDirFd, kExitTmpFile, kSupervisorDirFd, kExitFile) == 0) {
    ::fsync(kSupervisorDirFd);
  }
}

// The job: runs in the supervisor's process group with a clean signal state.
[[noreturn]] void run_job(const SupervisorPlan& plan, pid_t supervisor) {
  // Dispositions set to SIG_IGN survive execve; the job starts with none.
  set_all_signals(SIG_DFL);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != supervisor) ::_exit(127);  // the supervisor died before prctl took hold
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::chdir(plan.workdir) != 0) {
    const int error = errno;
    log_failure(plan.workdir_failed, error);
    report_failure(kSupervisorReportFd, Stage::kWorkdir, error);
  }
  ::execve(plan.exec_path, plan.argv, plan.envp);
  const int error = errno;
  log_failure(plan.exec_failed, error);
  report_failure(kSupervisorReportFd, Stage::kExec, error);
}

// SIGALRM's handler in the supervisor: it only interrupts waitpid, so that
// the heartbeat is touched.
void on_alarm(int) {}

// Waits for any child, touching the heartbeat each time the alarm interrupts.
pid_t wait_any_child(int& status) {
  for (;;) {
    const pid_t waited = ::waitpid(-1, &status, 0);
    if (waited >= 0 || errno != EINTR) return waited;
    ::utimensat(kSupervisorDirFd, kHeartbeatFile, nullptr, 0);
    ::alarm(kHeartbeatSeconds);
  }
}

// SIGKILLs every child of this process, as /proc/self/task/<tid>/children
// lists them; returns how many, or -1 when /proc does not list children.
// A listed child is unreaped, so its pid cannot name another process.
int kill_children(const char* children_path) {
  const int fd = ::open(children_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int count = 0;
  long pid = -1;
  char buffer[512];
  auto kill_pid = [&] {
    if (pid > 0 && pid <= INT_MAX) {
      ::kill(static_cast<pid_t>(pid), SIGKILL);
      ++count;
    }
    pid = -1;
  };
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    for (ssize_t i = 0; i < got; ++i) {
      const char c = buffer[i];
      if (c >= '0' && c <= '9') {
        pid = (pid < 0 ? 0 : pid) * 10 + (c - '0');
        if (pid > INT_MAX) pid = LONG_MAX / 16;  // not a pid; skipped, without overflowing
      } else {
        kill_pid();
      }
    }
  }
  kill_pid();
  ::close(fd);
  return count;
}

// Waits for start()'s one byte on the go socket: true when it came, false at
// end of file (the server's end closed without it).
bool await_go_ahead() {
  char byte = 0;
  for (;;) {
    const ssize_t got = ::read(kSupervisorGoFd, &byte, 1);
    if (got < 0 && errno == EINTR) continue;
    return got == 1;
  }
}

// The supervisor: the child of fork() in start(). The server may have many
// threads, so only async-signal-safe calls are made here.
[[noreturn]] void run_supervisor(const SupervisorPlan& plan) {
  // The server's handlers must never run here. Every signal a job may send
  // its own group (`trap 'kill 0' EXIT` is common, and SIGTERM is how
  // preemption is announced) is ignored, so the supervisor lives to record
  // the exit; SIGCHLD stays default, so that waitpid works, and SIGALRM
  // paces the heartbeat. (A real fault still kills: the kernel resets an
  // ignored SIGSEGV it must deliver.)
  set_all_signals(SIG_IGN);
  set_signal(SIGCHLD, SIG_DFL);
  set_signal(SIGALRM, on_alarm);
  if (::setsid() < 0) report_failure(plan.report_fd, Stage::kSession, errno);

  if (::dup2(plan.devnull_fd, STDIN_FILENO) < 0 || ::dup2(plan.log_fd, STDOUT_FILENO) < 0 ||
      ::dup2(plan.log_fd, STDERR_FILENO) < 0 || ::dup3(plan.dir_fd, kSupervisorDirFd, O_CLOEXEC) < 0 ||
      ::dup3(plan.report_fd, kSupervisorReportFd, O_CLOEXEC) < 0 ||
      ::dup3(plan.go_fd, kSupervisorGoFd, O_CLOEXEC) < 0) {
    report_failure(plan.report_fd, Stage::kSession, errno);
  }
  // The server's sockets and files: a listening socket kept open here would
  // keep the next server from binding its port. (The server's end of the go
  // socket goes too, so that the server's death reads as end of file here.)
  close_from(kFirstFreeFd, plan.max_fd);
  (void)::chdir("/");  // holds no mount busy
  // What the job leaves behind when its parents die comes here, not to init:
  // to be reaped while the job runs, and killed when it ends, even when it
  // left the process group.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // The command runs only once start() has recorded this run (the run file),
  // so that a server taking over finds every run whose command may have run.
  // End of file instead: the server died first, or gave this run up; it is
  // then no run at all: nothing runs, and no exit record is written.
  if (!await_go_ahead()) ::_exit(0);
  ::close(kSupervisorGoFd);

  const pid_t supervisor = ::getpid();
  const pid_t job = fork_without_handlers();
  if (job < 0) report_failure(kSupervisorReportFd, Stage::kFork, errno);
  if (job == 0) run_job(plan, supervisor);
  ::close(kSupervisorReportFd);  // start() reads end of file once the job's exec closes its copy

  // Wait for the job, reaping the orphans it makes on the way.
  ::alarm(kHeartbeatSeconds);
  for (;;) {
    int status = 0;
    const pid_t waited = wait_any_child(status);
    if (waited == job) {
      write_exit_record(status);
      break;
    }
    if (waited < 0) break;  // ECHILD: cannot be while the job is a child
  }

  // Children cleaned up: kill what is left, round by round (a killed
  // process's children come here in turn), and reap it, so that when this
  // process ends, and poll() reports the job ended, nothing of it holds a
  // GPU any more.
  char children_path[64] = "/proc/self/task/";
  std::size_t length = std::strlen(children_path);
  length += format_decimal(children_path + length, static_cast<unsigned>(supervisor));
  std::memcpy(children_path + length, "/children", sizeof "/children");
  bool all_gone = false;
  for (std::size_t round = 0; round < limits::kExecCleanupRounds; ++round) {
    const int killed = kill_children(children_path);
    if (killed <= 0) {
      all_gone = killed == 0;
      break;
    }
    int status = 0;
    if (wait_any_child(status) < 0) break;
    while (::waitpid(-1, &status, WNOHANG) > 0) {
    }
  }
  if (!all_gone)
    ::kill(0, SIGKILL);  // no /proc list, or a job forking faster than it dies: the group, this process too
  ::_exit(0);
}

// ---------------------------------------------------------------------------
// Reading /proc and job files (the server side; allocation is fine here).

std::optional<std::string> read_small_file(const std::string& path, std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buffer[4096];
  while (text.size() < max_bytes) {
    const ssize_t got = ::read(fd, buffer, std::min(sizeof buffer, max_bytes - text.size()));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    text.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fd);
  return text;
}

std::optional<ProcStat> read_proc_stat(int pid) {
  constexpr std::size_t kStatBytes = 4096;  // 52 numbers and a comm of at most 64 bytes
  std::optional<std::string> text = read_small_file("/proc/" + std::to_string(pid) + "/stat", kStatBytes);
  if (!text) return std::nullopt;
  Result<ProcStat> parsed = parse_proc_stat(*text);
  if (!parsed) return std::nullopt;
  return *parsed;
}

bool is_ended_state(char state) { return state == 'Z' || state == 'X'; }

// True while `pid` names the process that `handle` recorded, not yet ended.
bool handle_is_running(const ProcessHandle& handle) {
  std::optional<ProcStat> proc = read_proc_stat(handle.pid);
  return proc && proc->start_ticks == handle.start_ticks && !is_ended_state(proc->state);
}

void reap(int pid) {
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) < 0 && errno == EINTR) {
  }
}

struct ExitRecord {
  int exit_code = 0;
  Timestamp ended_at;
};

std::optional<ExitRecord> read_exit_record(const std::string& dir) {
  constexpr std::size_t kRecordBytes = 64;
  const std::string path = dir + "/" + kExitFile;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  struct stat info {};
  const bool stated = ::fstat(fd, &info) == 0;
  char buffer[kRecordBytes];
  ssize_t got = -1;
  do {
    got = ::read(fd, buffer, sizeof buffer);
  } while (got < 0 && errno == EINTR);
  ::close(fd);
  if (!stated || got < 0) return std::nullopt;
  Result<int> code = parse_exit_record(std::string_view(buffer, static_cast<std::size_t>(got)));
  if (!code) {
    spdlog::warn("{}: {}; the job is taken as lost", path, code.status().message());
    return std::nullopt;
  }
  // Checked after reading, as it was before writing (parse_exit_record's bounds).
  ASSERT(*code >= 0 && *code <= 128 + 64);
  return ExitRecord{*code, timestamp_of(info.st_mtim)};
}

std::optional<Timestamp> mtime_of(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return std::nullopt;
  return timestamp_of(info.st_mtim);
}

// After a supervisor died without an exit record (SIGKILLed by someone else,
// the OOM killer) its job got SIGKILL too (PR_SET_PDEATHSIG), but what the
// job started may run on in its process group, on GPUs the scheduler is
// about to give to another job. The group's id is the supervisor's old pid.
// The kernel reuses no pid while a group of that id exists, but the group
// could still be a later one under the same number, so it is killed only
// when a member carries this job's HEADROOM_JOB_ID.
void kill_leftovers(std::string_view job_id, int pgid) {
  if (pgid <= 1 || ::kill(-pgid, 0) != 0) return;  // no such group: nothing left
  std::string needle(1, '\0');
  needle += "HEADROOM_JOB_ID=";
  needle += job_id;
  needle += '\0';
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return;
  bool ours = false;
  std::size_t entries = 0;
  while (dirent* entry = ::readdir(proc)) {
    if (++entries > limits::kExecProcScanEntries) break;
    int pid = 0;
    const char* name = entry->d_name;
    const char* end = name + std::strlen(name);
    if (std::from_chars(name, end, pid).ptr != end || pid <= 0) continue;
    std::optional<ProcStat> member = read_proc_stat(pid);
    if (!member || member->pgrp != pgid) continue;
    std::optional<std::string> environment =
        read_small_file("/proc/" + std::to_string(pid) + "/environ", limits::kExecEnvironScanBytes);
    if (environment && (std::string(1, '\0') + *environment).find(needle) != std::string::npos) {
      ours = true;
      break;
    }
  }
  ::closedir(proc);
  if (ours) {
    spdlog::warn("job {}: its supervisor died without an exit record; killing what is left of process group {}", job_id,
                 pgid);
    ::kill(-pgid, SIGKILL);
  }
}

Status write_deadline_file(const std::string& dir, Timestamp deadline) {
  const std::string content = "HEADROOM_PREEMPT_DEADLINE=" + to_rfc3339(deadline) + "\n";
  const std::string tmp = dir + "/" + kDeadlineTmpFile;
  const std::string path = dir + "/" + kDeadlineFile;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::unavailable("cannot write " + tmp + ": " + errno_text(errno));
  write_raw(fd, content.data(), content.size());
  // No fsync: the file matters only while the job runs, and a crash ends it.
  const bool closed = ::close(fd) == 0;
  if (!closed || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::unavailable("cannot write " + path + ": " + errno_text(errno));
  }
  return Status::ok();
}

// Moves `fd` to kFirstFreeFd or above (keeping close-on-exec), so that the
// supervisor's dup2 onto 0 to 4 cannot clobber another of its sources.
Status move_above_fixed_fds(int& fd) {
  if (fd >= kFirstFreeFd) return Status::ok();
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, kFirstFreeFd);
  if (moved < 0) return Status::unavailable("cannot duplicate a descriptor: " + errno_text(errno));
  ::close(fd);
  fd = moved;
  return Status::ok();
}

bool is_inherited_variable(std::string_view name) {
  return std::find(kInheritedVariables.begin(), kInheritedVariables.end(), name) != kInheritedVariables.end();
}

template <typename T>
std::string join(const std::vector<T>& items) {
  std::string out;
  for (const T& item : items) {
    if (!out.empty()) out += ',';
    if constexpr (std::is_same_v<T, std::string>) {
      out += item;
    } else {
      out += std::to_string(item);
    }
  }
  return out;
}

// The job's environment, "NAME=value" strings, in the order executor.h gives,
// for a spec check_launch_spec() passed.
std::vector<std::string> job_environment(const LaunchSpec& spec, const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> variables;
  for (const char* name : kInheritedVariables) {
    if (const char* value = std::getenv(name)) variables.emplace_back(name, value);
  }
  variables.emplace_back("CUDA_VISIBLE_DEVICES", join(spec.gpu_devices));
  variables.emplace_back("HEADROOM_JOB_ID", spec.job_id);
  variables.emplace_back("HEADROOM_GPUS", join(spec.gpu_names));
  variables.emplace_back("HEADROOM_PREEMPT_DEADLINE_FILE", dir + "/" + kDeadlineFile);
  for (const auto& [name, value] : spec.env) {
    auto inherited = std::find_if(variables.begin(), variables.end(), [&](const auto& v) { return v.first == name; });
    if (inherited != variables.end() && is_inherited_variable(name)) {
      inherited->second = value;  // the job's own PATH, HOME, LANG or TZ wins over the server's
    } else {
      variables.emplace_back(name, value);
    }
  }
  std::vector<std::string> environment;
  environment.reserve(variables.size());
  for (auto& [name, value] : variables) environment.push_back(name + "=" + value);
  return environment;
}

// The PATH the job will see, for looking its command up as execvp would.
std::string job_path(const std::vector<std::string>& environment) {
  for (const std::string& variable : environment) {
    if (variable.starts_with("PATH=")) return variable.substr(5);
  }
  return kDefaultPath;
}

// The path to execve, as execvp would build it: the command itself when it
// holds a '/', else the first PATH entry that has it. A relative path is
// relative to the workdir, where the job is when it execs.
Result<std::string> resolve_command(const std::string& command, const std::string& path_list,
                                    const std::string& workdir) {
  // Appended piecewise: GCC 12 at -O3 warns falsely on `a + "/" + b` (-Wrestrict, bug 105329).
  auto in_workdir = [&](std::string_view path) {
    std::string out;
    if (!path.starts_with('/')) {
      out += workdir;
      out += '/';
    }
    out += path;
    return out;
  };
  if (command.find('/') != std::string::npos) {
    if (::access(in_workdir(command).c_str(), F_OK) != 0) {
      return Status::invalid_argument("command not found: " + shown(command));
    }
    return command;  // one it cannot execute fails at the exec, with the reason
  }
  std::string_view rest = path_list;
  for (;;) {
    const std::size_t colon = rest.find(':');
    std::string_view dir = rest.substr(0, colon);
    if (dir.empty()) dir = ".";  // an empty entry is the working directory, as in a shell
    std::string candidate;
    candidate += dir;
    candidate += '/';
    candidate += command;
    const std::string checked = in_workdir(candidate);
    struct stat info {};
    if (::stat(checked.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(checked.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return Status::invalid_argument("command not found: " + shown(command));
}

Status check_workdir(const std::string& workdir) {
  if (workdir.find('\0') != std::string::npos) return Status::invalid_argument("workdir holds NUL");
  if (!workdir.starts_with('/')) return Status::invalid_argument("workdir must be an absolute path: " + shown(workdir));
  struct stat info {};
  if (::stat(workdir.c_str(), &info) != 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) {
      return Status::invalid_argument("workdir does not exist: " + shown(workdir));
    }
    return Status::invalid_argument("cannot use workdir " + shown(workdir) + ": " + errno_text(error));
  }
  if (!S_ISDIR(info.st_mode)) return Status::invalid_argument("workdir is not a directory: " + shown(workdir));
  return Status::ok();
}

// Waits for the report of start()'s supervisor: nothing when the job's
// command was executed, a StartFailure when not.
std::optional<StartFailure> await_start_report(int fd) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits::kExecStartReportMs);
  StartFailure failure;
  std::size_t got = 0;
  while (got < sizeof failure) {
    const auto left_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left_ms <= 0) {
      spdlog::warn("no word from a job's supervisor after {} ms; taking the job as started",
                   limits::kExecStartReportMs);
      return std::nullopt;
    }
    struct pollfd watch = {fd, POLLIN, 0};
    const int ready = ::poll(&watch, 1, static_cast<int>(left_ms));
    if (ready < 0 && errno != EINTR) return std::nullopt;
    if (ready <= 0) continue;
    const ssize_t n = ::read(fd, reinterpret_cast<char*>(&failure) + got, sizeof failure - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;  // end of file: the exec closed the pipe
    got += static_cast<std::size_t>(n);
  }
  return failure;
}

// Records the run in the job's directory: the run record to run.tmp, fsynced,
// renamed to run, the directory fsynced; once this returns ok, a server
// taking over finds the run even after a reboot. Nothing for an empty run id.
Status write_run_file(int dir_fd, const std::string& dir, const std::string& run_id, const ProcessHandle& handle) {
  if (run_id.empty()) return Status::ok();
  const std::string record = format_run_record(RunRecord{run_id, handle});
  const int fd = ::openat(dir_fd, kRunTmpFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::unavailable("cannot write " + dir + "/" + kRunTmpFile + ": " + errno_text(errno));
  std::size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = ::write(fd, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  const bool written = done == record.size() && ::fsync(fd) == 0;
  const int error = errno;
  if (::close(fd) != 0 || !written) {
    return Status::unavailable("cannot write " + dir + "/" + kRunTmpFile + ": " + errno_text(written ? errno : error));
  }
  if (::renameat(dir_fd, kRunTmpFile, dir_fd, kRunFile) != 0 || ::fsync(dir_fd) != 0) {
    return Status::unavailable("cannot write " + dir + "/" + kRunFile + ": " + errno_text(errno));
  }
  return Status::ok();
}

// The go-ahead: one byte on the go socket. False when the supervisor is gone
// (its end closed); MSG_NOSIGNAL, so that this is no SIGPIPE.
bool send_go_ahead(int fd) {
  for (;;) {
    const ssize_t sent = ::send(fd, "g", 1, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    return sent == 1;
  }
}

int max_fd_to_close() {
  constexpr int kFallbackMaxFd = 1 << 20;
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return kFallbackMaxFd;
  return static_cast<int>(std::min<rlim_t>(limit.rlim_cur, kFallbackMaxFd));
}

}  // namespace

// ---------------------------------------------------------------------------

Result<ProcStat> parse_proc_stat(std::string_view text) {
  auto bad = [](std::string_view why) {
    return Status::invalid_argument("malformed /proc stat line: " + std::string(why));
  };
  const std::size_t open = text.find('(');
  const std::size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return bad("no (comm)");

  // Fields 3 to 22 follow the comm, one space apart.
  constexpr std::size_t kFields = 20;
  std::array<std::string_view, kFields> fields;
  std::size_t count = 0;
  std::string_view rest = text.substr(close + 1);
  while (count < kFields) {
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\n')) rest.remove_prefix(1);
    if (rest.empty()) break;
    const std::size_t end = std::min(rest.find(' '), rest.size());
    fields[count++] = rest.substr(0, end);
    rest.remove_prefix(end);
  }
  if (count < kFields) return bad("fewer than 22 fields");

  auto number = [](std::string_view field, auto& out) {
    const auto [ptr, error] = std::from_chars(field.data(), field.data() + field.size(), out);
    return error == std::errc() && ptr == field.data() + field.size();
  };
  ProcStat parsed;
  if (fields[0].size() != 1) return bad("the state is not one character");
  parsed.state = fields[0][0];
  if (!number(fields[1], parsed.ppid)) return bad("the ppid is not a number");
  if (!number(fields[2], parsed.pgrp)) return bad("the pgrp is not a number");
  if (!number(fields[19], parsed.start_ticks)) return bad("the start time is not a number");
  return parsed;
}

LocalExecutor::Fd& LocalExecutor::Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

LocalExecutor::Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<LocalExecutor>> LocalExecutor::create(std::string jobs_root, const Clock& clock) {
  if (jobs_root.empty()) return Status::invalid_argument("the jobs root is empty");
  if (jobs_root.find('\0') != std::string::npos) return Status::invalid_argument("the jobs root holds NUL");
  if (::mkdir(jobs_root.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::unavailable("cannot create jobs root " + jobs_root + ": " + errno_text(errno));
  }
  // Absolute, so that HEADROOM_PREEMPT_DEADLINE_FILE holds wherever the job cds to.
  char* real = ::realpath(jobs_root.c_str(), nullptr);
  if (real == nullptr) return Status::unavailable("cannot resolve jobs root " + jobs_root + ": " + errno_text(errno));
  std::string root(real);
  std::free(real);
  struct stat info {};
  if (::stat(root.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return Status::invalid_argument("jobs root is not a directory: " + root);
  }
  constexpr std::size_t kLongestFileName = 32;  // "preempt_deadline.tmp" and room
  if (root.size() + 1 + limits::kExecJobIdBytes + 1 + kLongestFileName >= PATH_MAX) {
    return Status::invalid_argument("jobs root path is too long: " + root);
  }
  if (!read_proc_stat(::getpid())) {
    return Status::unavailable("cannot read /proc/self/stat: the local executor needs /proc to identify its processes");
  }
  return std::unique_ptr<LocalExecutor>(new LocalExecutor(std::move(root), clock));
}

LocalExecutor::~LocalExecutor() = default;

std::string LocalExecutor::job_dir(std::string_view job_id) const {
  if (!validate_job_id(job_id).is_ok()) return jobs_root_ + "/.invalid";
  std::string dir = jobs_root_;
  dir += '/';
  dir += job_id;
  return dir;
}

Result<ProcessHandle> LocalExecutor::start(const LaunchSpec& spec) {
  HR_RETURN_IF_ERROR(check_launch_spec(spec));
  if (jobs_.contains(spec.job_id)) return Status::conflict("job " + spec.job_id + " is already running");
  if (jobs_.size() >= limits::kExecLiveJobs) {
    return Status::unavailable("this node runs " + std::to_string(jobs_.size()) + " jobs, its limit");
  }
  const std::string dir = job_dir(spec.job_id);
  const std::vector<std::string> environment = job_environment(spec, dir);

  // The job's directory, cleared of what an earlier run of this id left.
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::unavailable("cannot create " + dir + ": " + errno_text(errno));
  }
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir_fd.valid()) return Status::unavailable("cannot open " + dir + ": " + errno_text(errno));
  for (const char* stale : {kExitFile, kExitTmpFile, kDeadlineFile, kDeadlineTmpFile, kRunFile, kRunTmpFile}) {
    if (::unlinkat(dir_fd.get(), stale, 0) != 0 && errno != ENOENT) {
      return Status::unavailable("cannot remove " + dir + "/" + stale + ": " + errno_text(errno));
    }
  }
  Fd log(::openat(dir_fd.get(), kLogFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!log.valid()) return Status::unavailable("cannot open " + log_path(spec.job_id) + ": " + errno_text(errno));
  {
    Fd heartbeat(::openat(dir_fd.get(), kHeartbeatFile, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!heartbeat.valid() || ::futimens(heartbeat.get(), nullptr) != 0) {
      return Status::unavailable("cannot write " + dir + "/" + kHeartbeatFile + ": " + errno_text(errno));
    }
  }
  // From here on, the job's owner reads in its log why it did not start.
  auto fail = [&](Status status) {
    const std::string line = "headroom: " + status.message() + "\n";
    write_raw(log.get(), line.data(), line.size());
    return status;
  };

  const std::string workdir = spec.workdir.empty() ? dir : spec.workdir;
  if (Status checked = check_workdir(workdir); !checked) return fail(std::move(checked));
  Result<std::string> resolved = resolve_command(spec.argv[0], job_path(environment), workdir);
  if (!resolved) return fail(resolved.status());
  const std::string exec_path = std::move(resolved).value();

  Fd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull.valid()) return fail(Status::unavailable("cannot open /dev/null: " + errno_text(errno)));
  int report_fds[2] = {-1, -1};
  if (::pipe2(report_fds, O_CLOEXEC) != 0) return fail(Status::unavailable("cannot make a pipe: " + errno_text(errno)));
  Fd report_read(report_fds[0]);
  Fd report_write(report_fds[1]);
  // A socket, not a pipe: send() to a supervisor that died early is EPIPE, not SIGPIPE.
  int go_fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go_fds) != 0) {
    return fail(Status::unavailable("cannot make a socket pair: " + errno_text(errno)));
  }
  Fd go_read(go_fds[0]);  // the supervisor's end
  Fd go_write(go_fds[1]);
  for (Fd* fd : {&devnull, &log, &dir_fd, &report_write, &go_read, &go_write}) {
    int raw = fd->release();
    Status moved = move_above_fixed_fds(raw);
    *fd = Fd(raw);
    if (!moved) return fail(std::move(moved));
  }

  // Everything the child touches is built now: after fork, no allocation.
  std::vector<char*> argv;
  argv.reserve(spec.argv.size() + 1);
  for (const std::string& arg : spec.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(environment.size() + 1);
  for (const std::string& variable : environment) envp.push_back(const_cast<char*>(variable.c_str()));
  envp.push_back(nullptr);
  const std::string exec_failed = "headroom: cannot execute " + exec_path + ": ";
  const std::string workdir_failed = "headroom: cannot enter workdir " + workdir + ": ";
  const SupervisorPlan plan{
      .exec_path = exec_path.c_str(),
      .argv = argv.data(),
      .envp = envp.data(),
      .workdir = workdir.c_str(),
      .devnull_fd = devnull.get(),
      .log_fd = log.get(),
      .dir_fd = dir_fd.get(),
      .report_fd = report_write.get(),
      .go_fd = go_read.get(),
      .max_fd = max_fd_to_close(),
      .exec_failed = exec_failed.c_str(),
      .workdir_failed = workdir_failed.c_str(),
  };

  // No signal handler of the server may run in the child before it resets them.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t pid = ::fork();
  if (pid == 0) run_supervisor(plan);
  const int fork_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  report_write = Fd();
  go_read = Fd();
  if (pid < 0)
    return fail(Status::unavailable("cannot start job " + spec.job_id + ": fork: " + errno_text(fork_error)));

  // The supervisor is an unreaped child, so its pid and start time are fixed.
  // The run is recorded before the supervisor gets the go-ahead, so that its
  // command runs only once a server taking over can find it (find_run()).
  std::optional<ProcStat> proc = read_proc_stat(pid);
  Status recorded = proc ? write_run_file(dir_fd.get(), dir, spec.run_id, ProcessHandle{pid, proc->start_ticks})
                         : Status::internal("cannot read /proc/" + std::to_string(pid) + "/stat of a new supervisor");
  if (recorded && before_go_ahead_for_testing_) before_go_ahead_for_testing_();
  const bool went_ahead = recorded && send_go_ahead(go_write.get());
  go_write = Fd();  // without the go-ahead: end of file, and the supervisor exits without running anything
  std::optional<StartFailure> failure;
  // Given the go-ahead, or it could not be (the supervisor died early, and may have said why).
  if (recorded) failure = await_start_report(report_read.get());
  if (!went_ahead || failure) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    // The command never ran: no run to find.
    if (!spec.run_id.empty() && ::unlinkat(dir_fd.get(), kRunFile, 0) != 0 && errno != ENOENT) {
      spdlog::warn("job {}: cannot remove {}/{} of a run that did not start: {}", spec.job_id, dir, kRunFile,
                   errno_text(errno));
    }
  }
  if (failure) {
    const std::string reason = errno_text(failure->error);
    switch (static_cast<Stage>(failure->stage)) {
      case Stage::kWorkdir:  // the job wrote these two in its log itself
        return Status::invalid_argument("cannot enter workdir " + shown(workdir) + ": " + reason);
      case Stage::kExec:
        return Status::invalid_argument("cannot execute " + shown(exec_path) + ": " + reason);
      case Stage::kFork:
        return fail(Status::unavailable("cannot start job " + spec.job_id + ": fork: " + reason));
      case Stage::kSession:
      default:
        return fail(Status::unavailable("cannot start a supervisor for job " + spec.job_id + ": " + reason));
    }
  }
  if (!recorded) return fail(std::move(recorded));
  if (!went_ahead) {
    return fail(Status::unavailable("the supervisor of job " + spec.job_id + " ended before it started the job"));
  }

  const ProcessHandle handle{pid, proc->start_ticks};
  LiveJob job;
  job.handle = handle;
  job.pidfd = Fd(open_pidfd(pid));
  job.parent = Parent::kUs;
  jobs_.emplace(spec.job_id, std::move(job));
  return handle;
}

Result<std::optional<ProcessHandle>> LocalExecutor::find_run(std::string_view job_id, std::string_view run_id) {
  HR_RETURN_IF_ERROR(validate_job_id(job_id));
  HR_RETURN_IF_ERROR(validate_run_id(run_id));
  const std::string path = job_dir(job_id) + "/" + kRunFile;
  constexpr std::size_t kRunRecordBytes = 256;  // a run id, two numbers, three separators
  static_assert(limits::kExecRunIdBytes + 1 + 10 + 1 + 20 + 1 < kRunRecordBytes);
  std::optional<std::string> text = read_small_file(path, kRunRecordBytes);
  if (!text) {
    if (errno == ENOENT) return std::optional<ProcessHandle>();  // no run recorded, or no such job
    return Status::unavailable("cannot read " + path + ": " + errno_text(errno));
  }
  // Checked after reading, as format_run_record() checked it before writing.
  HR_ASSIGN_OR_RETURN(RunRecord record, parse_run_record(*text));
  if (!record.handle.external_id.empty()) {
    return Status::invalid_argument(path + " names an external job (" + record.handle.external_id +
                                    "), not a local supervisor");
  }
  if (record.run_id != run_id) return std::optional<ProcessHandle>();
  return std::optional<ProcessHandle>(record.handle);
}

bool LocalExecutor::group_is_ours(const LiveJob& job) const {
  if (job.pidfd.valid()) {
    struct pollfd watch = {job.pidfd.get(), POLLIN, 0};
    return ::poll(&watch, 1, 0) == 0;  // not readable: the supervisor runs, its pid is its group's
  }
  return handle_is_running(job.handle);
}

Status LocalExecutor::signal_group(const LiveJob& job, int signo) {
  if (!group_is_ours(job)) return Status::ok();  // ended: poll() reports it
  if (::kill(-job.handle.pid, signo) != 0 && errno != ESRCH) {
    return Status::internal("cannot signal process group " + std::to_string(job.handle.pid) + ": " + errno_text(errno));
  }
  return Status::ok();
}

Status LocalExecutor::notify_preempt(std::string_view job_id, Timestamp deadline) {
  HR_RETURN_IF_ERROR(validate_job_id(job_id));
  auto it = jobs_.find(std::string(job_id));
  if (it == jobs_.end()) return Status::not_found("job " + std::string(job_id) + " is not running here");
  Status written = write_deadline_file(job_dir(job_id), deadline);
  HR_RETURN_IF_ERROR(signal_group(it->second, SIGTERM));
  return written;
}

Status LocalExecutor::kill(std::string_view job_id) {
  HR_RETURN_IF_ERROR(validate_job_id(job_id));
  auto it = jobs_.find(std::string(job_id));
  if (it == jobs_.end()) return Status::not_found("job " + std::string(job_id) + " is not running here");
  it->second.ending = Ending::kKilledByUs;
  return signal_group(it->second, SIGKILL);
}

bool LocalExecutor::still_running_slow(LiveJob& job) {
  if (job.parent == Parent::kUs) {
    int status = 0;
    pid_t waited = -1;
    do {
      waited = ::waitpid(job.handle.pid, &status, WNOHANG);
    } while (waited < 0 && errno == EINTR);
    if (waited == job.handle.pid) return false;
    if (waited == 0) return true;
    // ECHILD: this process ignores SIGCHLD, so the kernel reaps; ask /proc.
  }
  return handle_is_running(job.handle);
}

Exit LocalExecutor::ended_exit(const std::string& job_id, const LiveJob& job) {
  Exit result{.job_id = job_id};
  if (std::optional<ExitRecord> record = read_exit_record(job_dir(job_id))) {
    result.exit_code = record->exit_code;
    result.ended_at = record->ended_at;
    return result;
  }
  // No record: the supervisor was SIGKILLed, by kill() or by someone else.
  result.exit_code = kExitKilled;
  result.ended_at = clock_.now();
  result.lost = job.ending != Ending::kKilledByUs;
  if (result.lost) {
    spdlog::warn("job {}: its supervisor (pid {}) ended without an exit record; the job is lost", job_id,
                 job.handle.pid);
    kill_leftovers(job_id, job.handle.pid);
  }
  return result;
}

Exit LocalExecutor::gone_exit(std::string_view job_id, const ProcessHandle& handle, Leftovers leftovers) {
  Exit result{.job_id = std::string(job_id)};
  const std::string dir = job_dir(job_id);
  if (std::optional<ExitRecord> record = read_exit_record(dir)) {
    result.exit_code = record->exit_code;
    result.ended_at = record->ended_at;
    return result;
  }
  // It died unseen (a reboot, a stray SIGKILL): it ended after its last
  // heartbeat (or the last line it logged), and that is all it is billed for.
  result.exit_code = kExitKilled;
  result.lost = true;
  const Timestamp now = clock_.now();
  std::optional<Timestamp> seen = mtime_of(dir + "/" + kHeartbeatFile);
  if (std::optional<Timestamp> logged = mtime_of(dir + "/" + kLogFile))
    seen = std::max(seen.value_or(*logged), *logged);
  result.ended_at = seen ? std::min(*seen, now) : now;
  spdlog::warn("job {}: its supervisor (pid {}) is gone without an exit record; the job is lost, ended at {}", job_id,
               handle.pid, to_rfc3339(result.ended_at));
  if (leftovers == Leftovers::kPossible) kill_leftovers(job_id, handle.pid);
  return result;
}

bool LocalExecutor::adopt(std::string_view job_id, const ProcessHandle& handle, Exit& ended) {
  ended = Exit{.job_id = std::string(job_id)};
  if (Status valid = validate_job_id(job_id); !valid) {
    spdlog::warn("cannot adopt a job: {}; it is taken as lost", valid.message());
    ended.exit_code = kExitKilled;
    ended.ended_at = clock_.now();
    ended.lost = true;
    return false;
  }
  if (auto it = jobs_.find(std::string(job_id)); it != jobs_.end()) {
    ASSERT(it->second.handle.pid == handle.pid && it->second.handle.start_ticks == handle.start_ticks);
    return true;
  }
  if (handle.pid <= 0) {
    ended = gone_exit(job_id, handle, Leftovers::kImpossible);
    return false;
  }

  // The pidfd first, then the check that it names the recorded process.
  Fd pidfd(open_pidfd(handle.pid));
  std::optional<ProcStat> proc = read_proc_stat(handle.pid);
  if (!proc) {
    // No such process; a group of that id may outlive it.
    ended = gone_exit(job_id, handle, Leftovers::kPossible);
    return false;
  }
  if (proc->start_ticks != handle.start_ticks) {
    // The pid names another process now, so no group of the old one is left.
    ended = gone_exit(job_id, handle, Leftovers::kImpossible);
    return false;
  }
  const Parent parent = proc->ppid == ::getpid() ? Parent::kUs : Parent::kOther;
  if (is_ended_state(proc->state)) {
    if (parent == Parent::kUs) reap(handle.pid);
    ended = gone_exit(job_id, handle, Leftovers::kPossible);
    return false;
  }
  LiveJob job;
  job.handle = handle;
  job.pidfd = std::move(pidfd);
  job.parent = parent;
  jobs_.emplace(std::string(job_id), std::move(job));
  return true;
}

std::vector<Exit> LocalExecutor::poll() {
  std::vector<Exit> exits;
  checked_until_ = clock_.now();  // before the look: whatever it finds running ran at least until now
  if (jobs_.empty()) return exits;
  poll_fds_.clear();
  poll_jobs_.clear();
  ended_jobs_.clear();
  for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
    if (it->second.pidfd.valid()) {
      poll_fds_.push_back({it->second.pidfd.get(), POLLIN, 0});
      poll_jobs_.push_back(it);
    } else if (!still_running_slow(it->second)) {
      ended_jobs_.push_back(it);
    }
  }
  if (!poll_fds_.empty()) {
    int ready = -1;
    do {
      ready = ::poll(poll_fds_.data(), poll_fds_.size(), 0);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) spdlog::error("poll over {} supervisors failed: {}", poll_fds_.size(), errno_text(errno));
    for (std::size_t i = 0; ready > 0 && i < poll_fds_.size(); ++i) {
      if (poll_fds_[i].revents == 0) continue;
      ASSERT((poll_fds_[i].revents & POLLNVAL) == 0);
      LiveJob& job = poll_jobs_[i]->second;
      if (job.parent == Parent::kUs) reap(job.handle.pid);
      ended_jobs_.push_back(poll_jobs_[i]);
    }
  }
  exits.reserve(ended_jobs_.size());
  for (auto it : ended_jobs_) {
    exits.push_back(ended_exit(it->first, it->second));
    jobs_.erase(it);
  }
  return exits;
}

}  // namespace headroom::exec
