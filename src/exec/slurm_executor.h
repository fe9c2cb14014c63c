// SlurmExecutor: the Executor that hands jobs to a Slurm cluster.
//
// Headroom decides placement; Slurm enforces it and runs the job. start()
// writes a batch script into the job's directory and submits it:
//
//   sbatch --parsable --job-name=<job id> --nodes=1 --ntasks=1 --no-requeue
//          [--comment=headroom-run:<spec.run_id>]
//          [--partition=<options.partition>] --nodelist=<spec.nodes>
//          --gres=gpu:<spec.gpu_type>:<GPUs> --output=<job dir>/output.log
//          --open-mode=append --chdir=<workdir> <job dir>/job.sh
//
// so the job lands on the node the scheduler chose, on as many GPUs of the
// chosen type; Slurm picks which GPUs of the node and tells the job through
// CUDA_VISIBLE_DEVICES (HEADROOM_GPUS still names the GPUs Headroom counts it
// on). A gang placed over K nodes gets --nodes=K --ntasks=K, all K in
// --nodelist and --gpus=<type>:<GPUs> (the total, which Slurm spreads over
// them); its batch script runs on the first node, and the job starts its
// work on the others with srun (it gets SLURM_JOB_ID, SLURM_JOB_NODELIST and
// SLURM_CONF for that). The Slurm job id is the job's ProcessHandle::external_id, and is kept
// in the job's directory too (slurm_job_id), so that a new server re-finds its
// jobs after a restart: adopt().
//
// The batch script (slurm_batch_script()) runs the job's argv with exactly
// the environment executor.h promises (env -i, then the variables), waits
// for it, and records its end in the exit file of the executor contract:
// that record is how poll() learns exit codes without Slurm accounting. A
// job killed with the batch shell (kill(), a node lost) has no record:
// scontrol's ExitCode gives it while slurmctld remembers the job (MinJobAge),
// else the job is reported lost.
//
// Signals: notify_preempt() writes the deadline file, asks squeue whether
// the job has started (a job Slurm has not started is cancelled instead: no
// signal can reach it), then runs `scancel --signal=TERM --full <id>`: --full signals every process of the
// batch step (the batch shell, which notes the signal and waits on, the
// job's command, and whatever that started; with proctrack/linuxproc "every
// process" is the step's process tree). kill() runs
// `scancel --signal=KILL --full <id>` then `scancel <id>` (for a job still
// pending, and so that Slurm records it cancelled).
//
// Files in job_dir(id), besides output.log, exit and preempt_deadline:
//
//   | file          | written by      | content                                  |
//   |---------------|-----------------|------------------------------------------|
//   | job.sh        | start()         | the batch script sbatch was given        |
//   | slurm_job_id  | start()         | "<Slurm job id>\n"                       |
//   | run           | start()         | "<run id> 0 0 <Slurm job id>\n" (the run |
//   |               |                 | record of executor.h), when it has one   |
//   | exit.tmp      | the batch shell | the exit record before its rename        |
//
// Finding a run after a takeover (find_run()): start() writes the run file
// once sbatch has returned; a server that died between the two leaves none,
// but Slurm has the job from the moment it accepted it, with the run id in
// its comment, and squeue --states=all shows it while slurmctld remembers it
// (until MinJobAge, 300 s by default, after it ended). The window that
// remains: the server dies after slurmctld accepted the job but before the
// run file is in place, and the server taking over asks only after the job
// ended and slurmctld forgot it. find_run() then says nullopt, and the job
// runs a second time. (Slurm accounting, sacct, would close it; it is not
// required.) A start() whose sbatch timed out here may still have been
// accepted there: find_run() with its run id finds it too.
//
// The jobs root must be on a filesystem every Slurm node mounts at the same
// path (the job writes its log and exit record there, and reads its deadline
// file), and the jobs run as the user that runs `headroom serve`.
//
// Not thread-safe: one thread (the compute service's) drives it. Every call
// but job_dir() may run Slurm commands and block for up to
// options.command_timeout_ms each. Destroying the executor stops nothing:
// its jobs run on in Slurm, to be adopted by the next one.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "exec/exec_limits.h"
#include "exec/executor.h"

namespace headroom::exec {

struct SlurmOptions {
  // Where job directories are made; created (mode 0700) when missing. Must be
  // an absolute path shared by the Slurm nodes (see above).
  std::string jobs_root;
  // SLURM_CONF for the commands; empty: Slurm's default (/etc/slurm/slurm.conf,
  // or the configless setup of the machine).
  std::string slurm_conf;
  // The directory of sbatch, squeue, scontrol and scancel; empty: found on PATH.
  std::string bin_dir;
  // The partition jobs are submitted to; empty: the cluster's default.
  std::string partition;
  std::int64_t command_timeout_ms = limits::kSlurmCommandTimeoutMs;
  // poll() queries Slurm at most this often; 0 (tests): on every call.
  std::int64_t poll_interval_ms = limits::kSlurmPollIntervalMs;
};

// What a Slurm command did.
struct CommandOutput {
  int exit_code = 0;
  std::string out;  // its standard output
  std::string err;  // its standard error
};

// Runs one Slurm command: options.bin_dir + program (or program found on
// PATH) with `args` as its argument vector (never a shell), stdin /dev/null,
// an environment of the server's PATH, HOME, LANG and TZ plus SLURM_CONF, in
// its own process group, killed at options.command_timeout_ms. Errors:
// unavailable naming the command when it cannot be run ("sbatch not found"),
// times out, or prints more than kSlurmCommandOutputBytes. A non-zero exit is
// not an error here: the caller reads its stderr.
Result<CommandOutput> run_slurm_command(const SlurmOptions& options, std::string_view program,
                                        const std::vector<std::string>& args);

// The nodes as `scontrol show nodes --oneliner` prints them, for
// fleet::fleet_from_slurm_nodes(). unavailable when the command fails.
Result<std::string> slurm_show_nodes(const SlurmOptions& options);

// ---- The pure parts, tested without Slurm ------------------------------------

// `text` in single quotes for a POSIX shell ('it'\''s'): the shell reads it
// back byte for byte, whatever it holds but NUL.
std::string shell_quote(std::string_view text);

// What the batch script needs besides the spec.
struct BatchScriptContext {
  std::string job_dir;  // absolute
  // The server's PATH, HOME, LANG and TZ, those that are set, in that order.
  std::vector<std::pair<std::string, std::string>> inherited_env;
};

// The batch script of a job (see the header comment). invalid_argument for
// what no job may hold: a bad job id, an empty argv, NUL in any string, a
// command name holding '=' (env(1) would take it for a variable), a variable
// name that is not [A-Za-z_][A-Za-z0-9_]*, repeats, or is CUDA_VISIBLE_DEVICES
// or HEADROOM_*, a GPU name holding ',', more than the limits of exec_limits.h.
Result<std::string> slurm_batch_script(const LaunchSpec& spec, const BatchScriptContext& context);

// The Slurm job id `sbatch --parsable` printed ("1234\n" or "1234;cluster\n").
// invalid_argument when it is not one.
Result<std::string> parse_sbatch_job_id(std::string_view out);

// One line of `squeue --noheader --format=%i|%j|%T`.
struct SqueueJob {
  std::string slurm_id;
  std::string name;   // the Headroom job id, for jobs Headroom submitted
  std::string state;  // PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, CANCELLED, ...
};
inline constexpr std::string_view kSqueueFormat = "%i|%j|%T";
// invalid_argument naming the line when one is not three fields.
Result<std::vector<SqueueJob>> parse_squeue(std::string_view text);

// The comment sbatch gives a job started with a run id: this, then the run id.
inline constexpr std::string_view kRunCommentPrefix = "headroom-run:";
// One line of `squeue --noheader --name=<job id> --format=%i|%j|%T|%k`.
struct SqueueRun {
  std::string slurm_id;
  std::string name;
  std::string state;
  std::string comment;  // "headroom-run:<run id>" for a run Headroom submitted
};
inline constexpr std::string_view kSqueueRunFormat = "%i|%j|%T|%k";
// invalid_argument naming the line when one lacks an id or a state, or three '|'.
Result<std::vector<SqueueRun>> parse_squeue_runs(std::string_view text);

// True for the states of a job whose processes are all gone and whose
// resources are free (COMPLETING is not one: its processes are being ended).
bool is_finished_slurm_state(std::string_view state);

// The fields of `scontrol show job --oneliner <id>` the executor reads.
struct ScontrolJob {
  std::string state;                  // JobState
  int exit_code = 0;                  // ExitCode=<code>:<signal>, as a shell reports it (128 + signal)
  std::optional<Timestamp> end_time;  // EndTime, when it has one (local time of the machine)
};
Result<ScontrolJob> parse_scontrol_job(std::string_view text);

// ---- The executor ----------------------------------------------------------------

class SlurmExecutor final : public Executor {
 public:
  // Creates options.jobs_root when missing (its parent must exist). Fails when
  // it is not absolute, cannot be made, or is not a directory. Runs no Slurm
  // command: a cluster that is down shows in start() and poll().
  static Result<std::unique_ptr<SlurmExecutor>> create(SlurmOptions options, const Clock& clock);

  ~SlurmExecutor() override = default;  // cancels nothing: the jobs run on
  SlurmExecutor(const SlurmExecutor&) = delete;
  SlurmExecutor& operator=(const SlurmExecutor&) = delete;

  // As Executor::start, and: invalid_argument as slurm_batch_script();
  // invalid_argument "workdir must be an absolute path"; conflict when the job
  // id is live here; unavailable when kExecLiveJobs run, when sbatch cannot
  // be run, or when Slurm refuses the job (the message is sbatch's: an unknown
  // node or GPU type, a partition that does not exist). A command that is not
  // found fails on the node, not here: exit 127 and env's message in the log.
  // The handle is {0, 0, Slurm job id}.
  Result<ProcessHandle> start(const LaunchSpec& spec) override;

  // As Executor::notify_preempt; a job Slurm has not started yet is cancelled
  // instead (it has nothing to warn). unavailable when scancel fails.
  Status notify_preempt(std::string_view job_id, Timestamp deadline) override;
  Status kill(std::string_view job_id) override;

  // One squeue query for all live jobs (at most every poll_interval_ms). A job
  // is reported once Slurm has it finished or has forgotten it: its exit
  // record gives its code and end (the record's mtime); without one,
  // scontrol's ExitCode and EndTime; without those it is lost (137, now),
  // unless kill() ended it. When squeue fails, nothing is reported and the
  // next call tries again.
  std::vector<Exit> poll() override;
  Timestamp checked_until() const override { return checked_until_; }

  // As Executor::adopt, by the Slurm job id in handle.external_id (or, when
  // that is empty, in the job's slurm_job_id file). True when Slurm has the
  // job unfinished under the same name; false when it ended (`ended` from its
  // exit record, scontrol, or lost with ended_at the last write to its log).
  // When Slurm cannot be asked, the job is taken back as live: the next polls
  // settle it.
  bool adopt(std::string_view job_id, const ProcessHandle& handle, Exit& ended) override;

  // As Executor::find_run: {0, 0, Slurm job id} of the run. The job's run
  // file when it names run_id; else `squeue --states=all --name=<job id>`,
  // for the job whose comment is "headroom-run:<run id>" (the server died
  // between sbatch and writing the run file; of two such jobs, which only a
  // caller reusing a run id makes, the unfinished one, else the newest);
  // nullopt when neither has it.
  // unavailable when squeue cannot be run or fails. See the header comment
  // for the window that remains.
  Result<std::optional<ProcessHandle>> find_run(std::string_view job_id, std::string_view run_id) override;

  // jobs_root + "/" + job_id; jobs_root + "/.invalid" for an invalid id.
  std::string job_dir(std::string_view job_id) const override;

  std::size_t live_jobs() const { return jobs_.size(); }
  const SlurmOptions& options() const { return options_; }

 private:
  enum class Ending : std::uint8_t { kOnItsOwn, kKilledByUs };
  struct LiveJob {
    std::string slurm_id;
    Ending ending = Ending::kOnItsOwn;
  };

  SlurmExecutor(SlurmOptions options, const Clock& clock) : options_(std::move(options)), clock_(clock) {}

  // The Exit of a job Slurm has finished or forgotten.
  Exit finished_exit(const std::string& job_id, const std::string& slurm_id, Ending ending, Timestamp lost_at);
  // `scontrol show job` for one job; nullopt when Slurm does not know it.
  std::optional<ScontrolJob> show_job(const std::string& slurm_id);
  // squeue's state of one job; nullopt when Slurm does not know it or cannot be asked.
  std::optional<std::string> slurm_state(const std::string& slurm_id);
  Status scancel(const std::vector<std::string>& args, std::string_view job_id);

  SlurmOptions options_;
  const Clock& clock_;
  Timestamp checked_until_;  // the last squeue that answered (Executor::checked_until())
  std::unordered_map<std::string, LiveJob> jobs_;
  std::chrono::steady_clock::time_point next_poll_{};
};

}  // namespace headroom::exec
