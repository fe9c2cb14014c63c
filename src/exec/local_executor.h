// LocalExecutor: the Executor that runs jobs as processes on this machine.
//
// Process tree of one job (the supervisor leads its own session and process
// group, so the job's process group id is the supervisor's pid):
//
//   headroom serve
//     └─ supervisor      setsid; ignores every signal it can but SIGCHLD;
//          │             a child subreaper (the job's orphans come to it);
//          │             waits for start()'s go-ahead (below), forks the job,
//          │             waits for the job, records its exit, then kills and
//          │             reaps all the job left, and exits
//          └─ job        argv[0] with a clean signal state, stdin /dev/null,
//                        stdout and stderr appended to output.log; gets
//                        SIGKILL if its supervisor dies (PR_SET_PDEATHSIG)
//
// notify_preempt() and kill() signal the whole group, so they reach what the
// job started too; the supervisor ignores SIGTERM (and whatever the job sends
// its own group, `kill 0` included) and lives to record the exit. The
// supervisor does not die with the server: after a restart, a new
// LocalExecutor adopt()s it from its ProcessHandle. (So the server's service
// manager must not kill the server's whole cgroup when it stops: systemd's
// KillMode=mixed or process.)
//
// Files in job_dir(id), besides those executor.h lists (output.log, exit,
// preempt_deadline):
//
//   | file                  | written by      | content                                        |
//   |-----------------------|-----------------|------------------------------------------------|
//   | exit.tmp              | supervisor      | the exit record before its rename to exit      |
//   | preempt_deadline.tmp  | notify_preempt  | the deadline file before its rename            |
//   | heartbeat             | start, then the | empty; its mtime is the last time the          |
//   |                       | supervisor      | supervisor was seen alive (every               |
//   |                       |                 | kExecHeartbeatMs): a lost job's ended_at       |
//   | run.tmp               | start           | the run record before its rename to run        |
//
// The run file (executor.h) names the supervisor: "<run id> <pid>
// <start ticks>\n". start() forks the supervisor, writes the run file
// (fsynced, renamed, the directory fsynced), and only then gives the
// supervisor the go-ahead (one byte on a socket pair); the supervisor runs
// the job's command only after it. When the server dies before that, the
// supervisor reads end of file and exits at once: no command, no exit record.
// So every run whose command may have run has its run file, and find_run()
// never takes a run that ran for one that did not.
//
// The window that remains: the server dies after the run file is in place
// but before the go-ahead (microseconds). find_run() then finds the run and
// adopt() reports it lost (exit 137) though its command never ran: the job is
// never run twice, but ends lost rather than being started again.
//
// The exit record is written to exit.tmp, fsynced and renamed, so a reader
// sees a whole record or none. start() removes the exit record and the
// deadline file an earlier run of the same job id left; output.log is
// appended to, so a requeued job's log holds all its runs. It removes the run
// file of an earlier run too, so only the latest run of a job id is found;
// a start() that fails removes its own (its command never ran).
//
// When poll() reports a job ended on its own, none of its descendants is
// left: the supervisor killed and reaped them all before it exited, those
// that left the process group (setsid) included. kill() SIGKILLs the group,
// supervisor included, so a descendant that left the group survives it;
// cgroups would catch those and are the next step. Jobs run as the server's
// user.
//
// Not thread-safe: one thread (the compute service's) drives it. The Clock
// must outlive the executor. Destroying the executor stops nothing: its jobs
// run on, to be adopted by the next one (supervisors that are this process's
// children stay unreaped until this process exits or an executor adopts them).
// Linux only: it needs /proc, and uses pidfds where the kernel has them.
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "exec/exec_limits.h"
#include "exec/executor.h"

namespace headroom::exec {

// The fields of /proc/<pid>/stat the executor reads.
struct ProcStat {
  char state = '?';               // field 3: R, S, D, Z (zombie), X (dead), ...
  int ppid = 0;                   // field 4
  int pgrp = 0;                   // field 5
  std::uint64_t start_ticks = 0;  // field 22: clock ticks after boot
};

// Parses the text of /proc/<pid>/stat. Field 2 (comm, in parentheses) may
// itself hold spaces and parentheses, so fields are counted from after the
// last ')'. invalid_argument when the text is not such a line.
Result<ProcStat> parse_proc_stat(std::string_view text);

class LocalExecutor final : public Executor {
 public:
  // Creates jobs_root (mode 0700) when missing; its parent must exist. Fails
  // when jobs_root cannot be made or is not a directory, when its path is too
  // long for job directories, or when /proc cannot be read.
  static Result<std::unique_ptr<LocalExecutor>> create(std::string jobs_root, const Clock& clock);

  ~LocalExecutor() override;  // sends no signal: the jobs run on
  LocalExecutor(const LocalExecutor&) = delete;
  LocalExecutor& operator=(const LocalExecutor&) = delete;

  // As Executor::start, and:
  //   - invalid_argument: a bad job id; an empty argv; an argument, variable
  //     name or value holding NUL; a variable name that is empty, holds '=',
  //     repeats, or is CUDA_VISIBLE_DEVICES or HEADROOM_*; a negative device
  //     index; a GPU name holding ','; a command line past the limits;
  //     "workdir must be an absolute path: x"; "workdir does not exist: /x";
  //     "workdir is not a directory: /x"; "command not found: foo";
  //     "cannot execute /bin/x: Permission denied" (execve failed).
  //   - conflict: the job id is running here already.
  //   - unavailable: kExecLiveJobs running; the OS refused (fork, files).
  // argv[0] without '/' is looked up in the job's PATH (spec.env's PATH when
  // it sets one); a relative argv[0] or PATH entry is relative to the workdir.
  // Errors found once the job's directory exists are also written to its
  // output.log, as "headroom: <message>", for the job's owner to read. A job
  // id an earlier server started must be adopted, or known ended, before it
  // is started again: only jobs live here are checked for a conflict.
  Result<ProcessHandle> start(const LaunchSpec& spec) override;

  // invalid_argument for a bad id, not_found for a job not running here, ok
  // when its processes are gone already (poll() reports the end). The signal
  // is sent even when the deadline file cannot be written; the error is
  // returned after.
  Status notify_preempt(std::string_view job_id, Timestamp deadline) override;
  Status kill(std::string_view job_id) override;

  // Costs one poll(2) over the supervisors' pidfds, plus a little work per
  // job that ended; a few thousand live jobs take well under a millisecond.
  // A job whose supervisor ended without an exit record is reported with
  // exit_code 137 and ended_at now; lost unless kill() ended it.
  std::vector<Exit> poll() override;
  Timestamp checked_until() const override { return checked_until_; }

  // As Executor::adopt. A handle whose pid is gone or now names another
  // process (its start_ticks differ) means the job ended: `ended` comes from
  // its exit record, or is lost (exit_code 137, ended_at its last heartbeat).
  // Adopting a job already live here (with the same handle) returns true and
  // changes nothing.
  bool adopt(std::string_view job_id, const ProcessHandle& handle, Exit& ended) override;

  // As Executor::find_run, from the run file: the handle when it names
  // run_id; nullopt when there is none or it names another run. unavailable
  // when it cannot be read, invalid_argument for a bad id or a malformed file.
  // Touches no process: adopt() checks the handle.
  Result<std::optional<ProcessHandle>> find_run(std::string_view job_id, std::string_view run_id) override;

  // jobs_root + "/" + job_id; for an invalid id, jobs_root + "/.invalid", a
  // path no job uses (ids have no '.'), so a request with a hostile id reads
  // nothing.
  std::string job_dir(std::string_view job_id) const override;

  const std::string& jobs_root() const { return jobs_root_; }
  std::size_t live_jobs() const { return jobs_.size(); }

  // For tests: called by start() once the run file is in place, right before
  // the supervisor is given the go-ahead (a test kills the server there).
  void set_before_go_ahead_for_testing(std::function<void()> hook) { before_go_ahead_for_testing_ = std::move(hook); }

 private:
  // An owned file descriptor, closed on destruction.
  class Fd {
   public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept;
    ~Fd();
    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    int release() {
      int fd = fd_;
      fd_ = -1;
      return fd;
    }

   private:
    int fd_ = -1;
  };

  // Who reaps a supervisor: this process (it forked it, or adopted one that
  // an executor before it forked), or someone else (init, after a restart).
  enum class Parent : std::uint8_t { kUs, kOther };
  enum class Ending : std::uint8_t { kOnItsOwn, kKilledByUs };

  struct LiveJob {
    ProcessHandle handle;
    Fd pidfd;  // invalid when the kernel gave none: watched through waitpid or /proc
    Parent parent = Parent::kUs;
    Ending ending = Ending::kOnItsOwn;
  };

  LocalExecutor(std::string jobs_root, const Clock& clock) : jobs_root_(std::move(jobs_root)), clock_(clock) {}

  // True while the job's supervisor has not ended (reaps it when it has and
  // is ours). For jobs without a pidfd.
  bool still_running_slow(LiveJob& job);
  // True while the supervisor runs, so that its pid still names its group.
  bool group_is_ours(const LiveJob& job) const;
  Status signal_group(const LiveJob& job, int signo);
  // The Exit of a job whose supervisor ended (and was reaped, if ours).
  Exit ended_exit(const std::string& job_id, const LiveJob& job);
  // Whether processes of a job whose supervisor is gone may be left in its
  // group: not when the supervisor's pid names another process now (the
  // kernel reuses no pid while a group of that id exists).
  enum class Leftovers : std::uint8_t { kImpossible, kPossible };
  // The Exit of an adopted job found ended: its record, or lost (and then
  // what it may have left in its process group is killed).
  Exit gone_exit(std::string_view job_id, const ProcessHandle& handle, Leftovers leftovers);

  std::string jobs_root_;
  const Clock& clock_;
  Timestamp checked_until_;  // see Executor::checked_until()
  std::unordered_map<std::string, LiveJob> jobs_;
  std::function<void()> before_go_ahead_for_testing_;
  // Scratch for poll(), kept to spare an allocation per call.
  std::vector<::pollfd> poll_fds_;
  std::vector<std::unordered_map<std::string, LiveJob>::iterator> poll_jobs_;
  std::vector<std::unordered_map<std::string, LiveJob>::iterator> ended_jobs_;
};

}  // namespace headroom::exec
