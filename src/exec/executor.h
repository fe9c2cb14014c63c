// Executor: runs a job's processes on the machine that hosts its GPUs. The
// compute service drives it from one thread (not thread-safe): start a job,
// give it notice, kill it, and poll for the jobs whose processes ended.
//
// Every job has a directory, job_dir(job_id), holding:
//   output.log         stdout and stderr, in the order written
//   exit               written by the job's supervisor when its command
//                      exits: "exit <code>\n" or "signal <n>\n"; its mtime is
//                      when the job ended
//   preempt_deadline   written on notice: "HEADROOM_PREEMPT_DEADLINE=<RFC 3339>\n",
//                      a line a shell can source
//   run                written by start() for a LaunchSpec with a run id, before
//                      the job's command may run: the run record (below) that
//                      find_run() reads after a takeover
//
// Each job runs under a small supervisor process that leads its own session
// and process group; the supervisor survives a restart of `headroom serve`,
// so a new server can adopt() the job and still learn its exit status.
// (That is the local executor, exec/local_executor.h; with the Slurm
// executor, exec/slurm_executor.h, Slurm's batch step is the supervisor and
// the job directory lies on a filesystem the nodes share.)
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace headroom::exec {

// The job directory's files (above), whatever executor runs the job.
inline constexpr const char* kLogFile = "output.log";
inline constexpr const char* kExitFile = "exit";
inline constexpr const char* kDeadlineFile = "preempt_deadline";
inline constexpr const char* kRunFile = "run";

// The server's variables a job gets, when set there (see start()).
inline constexpr std::array<const char*, 4> kInheritedVariables = {"PATH", "HOME", "LANG", "TZ"};

struct LaunchSpec {
  std::string job_id;                 // the public id, "job_..."
  std::vector<std::string> argv;      // argv[0] is looked up in PATH when it has no '/'
  std::vector<std::pair<std::string, std::string>> env;  // the job's own variables
  std::string workdir;                // empty: the job's directory
  std::vector<int> gpu_devices;       // device indices on this node -> CUDA_VISIBLE_DEVICES
  std::vector<std::string> gpu_names; // fleet names of its GPUs -> HEADROOM_GPUS (comma-separated)
  // Where the scheduler placed it, for executors that place work on other
  // machines (Slurm: --nodelist, --gres=gpu:TYPE:N): its nodes, each once, in
  // the order of its GPUs (a gang may span several), and its GPUs' type.
  // Empty: not placed on GPUs. The local executor ignores them.
  std::vector<std::string> nodes;
  std::string gpu_type;
  // Names this one start of the job, for find_run() after a takeover: 1 to
  // kExecRunIdBytes characters of [A-Za-z0-9._-] (the compute service passes
  // "<seq>.<micros>"). Empty: nothing is recorded, find_run() cannot find it.
  std::string run_id;
};

// What identifies a job's supervisor across restarts: for the local
// executor its pid and the kernel's start time for it (so a reused pid is
// never mistaken for it); for an executor that hands jobs to another system,
// that system's id for the job (Slurm's job id), with pid and start_ticks 0.
struct ProcessHandle {
  int pid = 0;
  std::uint64_t start_ticks = 0;  // field 22 of /proc/<pid>/stat
  std::string external_id;        // empty for the local executor
};

struct Exit {
  std::string job_id;
  int exit_code = 0;     // 128 + n when killed by signal n, as shells report it
  Timestamp ended_at;
  bool lost = false;     // no exit record: it vanished (killed with its supervisor, or the machine rebooted);
                         // ended_at is then when poll() noticed it, or for adopt() its last sign of life,
                         // so it is not billed for the time no server watched it
};

class Executor {
 public:
  virtual ~Executor() = default;

  // Starts the job's command. The environment is the server's PATH, HOME,
  // LANG and TZ, then CUDA_VISIBLE_DEVICES, HEADROOM_JOB_ID, HEADROOM_GPUS,
  // HEADROOM_PREEMPT_DEADLINE_FILE, then spec.env (which may not override the
  // HEADROOM_ ones or CUDA_VISIBLE_DEVICES). An error names what failed (no
  // such command, workdir missing): the job fails with that message.
  virtual Result<ProcessHandle> start(const LaunchSpec& spec) = 0;
  // Writes the deadline file, then SIGTERM to the job's process group.
  // Both signalling calls: not_found for a job not running here (never
  // started, or already reported by poll()); ok when its processes have
  // ended but poll() has not reported it yet.
  virtual Status notify_preempt(std::string_view job_id, Timestamp deadline) = 0;
  // SIGKILL to the job's process group (supervisor included).
  virtual Status kill(std::string_view job_id) = 0;
  // The jobs that ended since the last call; each is reported once, and is
  // then no longer running here.
  virtual std::vector<Exit> poll() = 0;
  // The time of the last look poll() took at the jobs: each job it did not
  // report had run at least until then. GPU time is billed no further, so a
  // job that ended unseen between two looks is not billed past its end.
  virtual Timestamp checked_until() const = 0;
  // After a restart: takes back a job an earlier server started. Returns
  // true when its supervisor still runs (poll() reports its end later); false
  // when it is gone, with `ended` filled from its exit file or marked lost.
  virtual bool adopt(std::string_view job_id, const ProcessHandle& handle, Exit& ended) = 0;
  // After a takeover or restart: the handle of the run that start() began
  // for (job_id, run_id), even if whoever called start() never kept it (it
  // died between start() and recording the handle). nullopt: that run was
  // never started, and never will be, so starting it now is safe. The handle
  // is then given to adopt() as usual (which says whether it still runs, or
  // how it ended). unavailable when it cannot tell (say, Slurm does not
  // answer): the caller retries later, never assumes nullopt.
  // invalid_argument for a bad job id or a run id that is empty or bad.
  // Meant for the latest start() of a job id: for an earlier run id the
  // answer is nullopt (the local executor forgets a run at the next start())
  // or that earlier run's own handle (squeue still shows it), never the
  // handle of another run.
  virtual Result<std::optional<ProcessHandle>> find_run(std::string_view job_id, std::string_view run_id) = 0;

  virtual std::string job_dir(std::string_view job_id) const = 0;
  std::string log_path(std::string_view job_id) const { return job_dir(job_id) + "/" + kLogFile; }
};

// Ok when `job_id` is 1 to kExecJobIdBytes characters of [A-Za-z0-9_-]: such
// an id is one path component that is neither "." nor "..", so job_dir()
// never names anything outside the jobs root. invalid_argument otherwise.
Status validate_job_id(std::string_view job_id);

// Ok when `run_id` is 1 to kExecRunIdBytes characters of [A-Za-z0-9._-]
// (one word in a run file, one token in a Slurm comment). invalid_argument
// otherwise.
Status validate_run_id(std::string_view run_id);

// Checks what every executor requires of a LaunchSpec, against
// exec_limits.h: a valid job id; a run id empty or valid; a command of at most kExecArgs arguments
// without NUL, its name not empty; at most kExecEnvVars variables of the
// job's own, each named (no '=' or NUL), set once, not CUDA_VISIBLE_DEVICES
// or HEADROOM_*, its value without NUL; GPU names without ',' or NUL, device
// indices not negative; command and variables within kExecArgvEnvBytes.
// invalid_argument naming what is wrong.
Status check_launch_spec(const LaunchSpec& spec);

// The run file: one line naming the run and its handle.
//
//   | field        | content                                              |
//   |--------------|------------------------------------------------------|
//   | run_id       | LaunchSpec::run_id (validate_run_id)                 |
//   | pid          | ProcessHandle::pid, decimal; 0 with an external id   |
//   | start_ticks  | ProcessHandle::start_ticks, decimal                  |
//   | external_id  | only when the handle has one ([A-Za-z0-9._-]+)       |
//
// Fields are separated by one space, the line ends with '\n':
// "1.1732694000000000 4242 98765\n", "7.1732694000000000 0 0 1234\n".
struct RunRecord {
  std::string run_id;
  ProcessHandle handle;
};
// The line for `record`, which must hold a valid run id and either a pid
// above 0 or an external id of the characters above (CHECKed).
std::string format_run_record(const RunRecord& record);
// invalid_argument when `text` is not such a line.
Result<RunRecord> parse_run_record(std::string_view text);

// Parses an exit record: "exit <0-255>\n" gives the code, "signal <1-64>\n"
// gives 128 + the signal, as shells report it. invalid_argument otherwise.
Result<int> parse_exit_record(std::string_view text);

// Outside text (a job's strings, a tool's messages) as quoted in a message:
// valid UTF-8, control characters as '?', at most 200 bytes and "...".
std::string shown(std::string_view text);

}  // namespace headroom::exec
