#include "exec/slurm_executor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <utility>

#include "common/log.h"
#include "common/subprocess.h"
#include "common/text.h"


namespace headroom::exec {
namespace {

// Names in a job's directory beside executor.h's.
constexpr const char* kExitTmpFile = "exit.tmp";
constexpr const char* kDeadlineTmpFile = "preempt_deadline.tmp";
constexpr const char* kScriptFile = "job.sh";
constexpr const char* kScriptTmpFile = "job.sh.tmp";
constexpr const char* kSlurmIdFile = "slurm_job_id";
constexpr const char* kSlurmIdTmpFile = "slurm_job_id.tmp";
constexpr const char* kRunTmpFile = "run.tmp";

constexpr int kExitKilled = 128 + SIGKILL;  // what a shell reports for a SIGKILLed job


std::string errno_text(int error) { return std::system_category().message(error); }

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

std::vector<std::pair<std::string, std::string>> inherited_environment() {
  std::vector<std::pair<std::string, std::string>> env;
  for (const char* name : kInheritedVariables) {
    if (const char* value = std::getenv(name)) env.emplace_back(name, value);
  }
  return env;
}

Timestamp timestamp_of(const struct timespec& t) {
  return Timestamp{static_cast<std::int64_t>(t.tv_sec) * 1'000'000 + t.tv_nsec / 1'000};
}

std::optional<Timestamp> mtime_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return timestamp_of(st.st_mtim);
}

// The whole of a small file; nullopt when it cannot be read.
std::optional<std::string> read_small_file(const std::string& path) {
  constexpr std::size_t kMaxBytes = 4096;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buffer[512];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || text.size() > kMaxBytes) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

// Writes `content` to dir/tmp_name, fsyncs it and renames it to dir/name, so
// that a reader (on any node) sees all of it or none.
Status write_file_atomically(const std::string& dir, const char* tmp_name, const char* name, std::string_view content,
                             mode_t mode) {
  const std::string tmp = dir + "/" + tmp_name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::unavailable("cannot write " + tmp + ": " + errno_text(errno));
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return Status::unavailable("cannot write " + tmp + ": " + errno_text(error));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    return Status::unavailable("cannot write " + tmp + ": " + errno_text(errno));
  if (::rename(tmp.c_str(), (dir + "/" + name).c_str()) != 0) {
    return Status::unavailable("cannot rename " + tmp + ": " + errno_text(errno));
  }
  return Status::ok();
}

// Appends "headroom: <message>" to the job's log, for its owner to read why it
// did not start. Best effort: the error is returned to the caller anyway.
void note_in_log(const std::string& dir, std::string_view message) {
  const int fd = ::open((dir + "/" + kLogFile).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  const std::string line = "headroom: " + std::string(message) + "\n";
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

bool is_variable_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}


// "2026-11-27T03:31:56" in the machine's local time, as Slurm prints times.
std::optional<Timestamp> parse_slurm_time(std::string_view text) {
  if (text.size() != 19 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  auto field = [&](std::size_t at, std::size_t len, int& out) {
    const auto [ptr, error] = std::from_chars(text.data() + at, text.data() + at + len, out);
    return error == std::errc() && ptr == text.data() + at + len;
  };
  struct tm tm {};
  int year = 0, month = 0;
  if (!field(0, 4, year) || !field(5, 2, month) || !field(8, 2, tm.tm_mday) || !field(11, 2, tm.tm_hour) ||
      !field(14, 2, tm.tm_min) || !field(17, 2, tm.tm_sec)) {
    return std::nullopt;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_isdst = -1;
  const time_t t = ::mktime(&tm);
  if (t == static_cast<time_t>(-1)) return std::nullopt;
  return Timestamp::from_unix_seconds(static_cast<std::int64_t>(t));
}

// Slurm's answer for a job id it no longer (or never) knew.
bool says_unknown_job(std::string_view err) { return err.find("Invalid job id") != std::string_view::npos; }
// scancel's answers for a job whose processes are ending or gone.
bool says_job_ended(std::string_view err) {
  return says_unknown_job(err) || err.find("already completing or completed") != std::string_view::npos ||
         err.find("Job/step already") != std::string_view::npos;
}
// The states of a job whose batch script has not started: a signal cannot
// reach it (scancel --signal then retries for a minute and a half, "Job can
// not be altered now"), a plain scancel ends it.
bool is_unstarted_slurm_state(std::string_view state) {
  state = state.substr(0, state.find('+'));
  return state == "PENDING" || state == "CONFIGURING" || state == "REQUEUED" || state == "REQUEUE_HOLD" ||
         state == "REQUEUE_FED" || state == "RESV_DEL_HOLD";
}

}  // namespace

// ---- Commands ------------------------------------------------------------------

Result<CommandOutput> run_slurm_command(const SlurmOptions& options, std::string_view program_name,
                                        const std::vector<std::string>& args) {
  const std::string name(program_name);
  ProgramRun run{.program = options.bin_dir.empty() ? name : options.bin_dir + "/" + name,
                 .args = args,
                 .env = std::vector<std::string>(),
                 .timeout_ms = options.command_timeout_ms,
                 .max_output_bytes = limits::kSlurmCommandOutputBytes};
  // A clean environment: the commands read SBATCH_*, SQUEUE_* and SLURM_*
  // variables, and sbatch hands its whole environment to the batch shell;
  // neither should see the server's secrets or settings.
  for (const auto& [key, value] : inherited_environment()) run.env->push_back(key + "=" + value);
  if (!options.slurm_conf.empty()) run.env->push_back("SLURM_CONF=" + options.slurm_conf);

  ProgramResult ran = run_program(run);
  if (ran.not_found) {
    return Status::unavailable(run.program + " not found" +
                               (options.bin_dir.empty() ? std::string(" on PATH (is Slurm's client installed?)") : ""));
  }
  if (!ran.ran()) return Status::unavailable("cannot run " + run.program + ": " + ran.spawn_error);
  if (ran.timed_out) {
    return Status::unavailable(name + " did not answer within " + std::to_string(options.command_timeout_ms) +
                               " ms (is slurmctld up? SLURM_CONF=" +
                               (options.slurm_conf.empty() ? std::string("(default)") : options.slurm_conf) + ")");
  }
  if (ran.too_large) {
    return Status::unavailable(name + " printed more than " + std::to_string(limits::kSlurmCommandOutputBytes) +
                               " bytes");
  }
  if (!ran.exit_code && ran.signal == 0) return Status::unavailable(name + ": cannot learn its exit status");
  CommandOutput result;
  result.exit_code = ran.exit_code ? *ran.exit_code : 128 + ran.signal;
  result.out = std::move(ran.out);
  result.err = std::move(ran.err);
  return result;
}

Result<std::string> slurm_show_nodes(const SlurmOptions& options) {
  HR_ASSIGN_OR_RETURN(CommandOutput out, run_slurm_command(options, "scontrol", {"show", "nodes", "--oneliner"}));
  if (out.exit_code != 0) {
    return Status::unavailable("scontrol show nodes failed (exit " + std::to_string(out.exit_code) +
                               "): " + shown(trim(out.err)));
  }
  return std::move(out.out);
}

// ---- The pure parts ------------------------------------------------------------

std::string shell_quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  out += '\'';
  return out;
}

Result<std::string> slurm_batch_script(const LaunchSpec& spec, const BatchScriptContext& context) {
  HR_RETURN_IF_ERROR(check_launch_spec(spec));
  // What the batch script's shell and env(1) need beyond that.
  if (spec.argv[0].find('=') != std::string::npos) {
    // env(1) would take it for a variable to set.
    return Status::invalid_argument("command name \"" + shown(spec.argv[0]) +
                                    "\" holds '=', which Slurm jobs cannot run");
  }
  for (const auto& [name, value] : spec.env) {
    if (!is_variable_name(name)) {
      return Status::invalid_argument("environment variable name \"" + shown(name) +
                                      "\" is not a shell name ([A-Za-z_][A-Za-z0-9_]*)");
    }
  }
  std::string gpus;
  for (const std::string& gpu : spec.gpu_names) {
    if (!gpus.empty()) gpus += ',';
    gpus += gpu;
  }

  std::string s;
  s.reserve(limits::kExecArgvEnvBytes / 8 + 2048);
  s += "#!/bin/sh\n";
  s += "# The Slurm batch script of Headroom job " + spec.job_id + ", written by headroom serve\n";
  s += "# (src/exec/slurm_executor.h). It runs the job's command with the environment\n";
  s += "# of the executor contract and records how it ended in the exit file.\n";
  s += "d=" + shell_quote(context.job_dir) + "\n";
  s += "# scancel --signal=TERM --full reaches this shell as well as the command: the\n";
  s += "# shell notes it and waits on, to record how the command ended. (A caught\n";
  s += "# signal is reset for the command, which gets TERM as it should.)\n";
  s += "trap : TERM\n";
  s += "env -i --";
  auto assign = [&](std::string_view name, std::string_view value) {
    s += " \\\n  ";
    s += shell_quote(std::string(name) + "=" + std::string(value));
  };
  for (const auto& [name, value] : context.inherited_env) {
    const bool overridden =
        std::any_of(spec.env.begin(), spec.env.end(), [&](const auto& v) { return v.first == name; });
    if (!overridden) assign(name, value);
  }
  // Slurm chose the GPUs of the node and says which in CUDA_VISIBLE_DEVICES.
  s += " \\\n  \"CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-}\"";
  assign("HEADROOM_JOB_ID", spec.job_id);
  assign("HEADROOM_GPUS", gpus);
  assign("HEADROOM_PREEMPT_DEADLINE_FILE", context.job_dir + "/" + kDeadlineFile);
  // What srun needs to start the job's steps on the other nodes of a gang.
  s += " \\\n  \"SLURM_JOB_ID=${SLURM_JOB_ID-}\" \"SLURM_JOB_NODELIST=${SLURM_JOB_NODELIST-}\"";
  s += " \\\n  ${SLURM_CONF:+\"SLURM_CONF=$SLURM_CONF\"}";
  for (const auto& [name, value] : spec.env) assign(name, value);
  s += " \\\n ";
  for (const std::string& arg : spec.argv) {
    s += ' ';
    s += shell_quote(arg);
  }
  s += "\n";
  s += "rc=$?\n";
  s += "printf 'exit %d\\n' \"$rc\" >\"$d/" + std::string(kExitTmpFile) + "\" && mv -f -- \"$d/" + kExitTmpFile +
       "\" \"$d/" + kExitFile + "\"\n";
  s += "exit \"$rc\"\n";
  return s;
}

Result<std::string> parse_sbatch_job_id(std::string_view out) {
  std::string_view id = trim(out);
  id = id.substr(0, id.find(';'));  // "1234;cluster" on a multi-cluster setup
  if (id.empty() || id.size() > 20 || !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Status::invalid_argument("sbatch printed \"" + shown(out) + "\", not a job id");
  }
  return std::string(id);
}

namespace {

// squeue's lines, trimmed, the empty ones skipped: `parse` makes a T of each
// (its number given for messages), or the first error ends the walk.
template <typename T, typename Parse>
Result<std::vector<T>> parse_lines(std::string_view text, Parse parse) {
  std::vector<T> out;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    ++line_number;
    line = trim(line);
    if (line.empty()) continue;
    Result<T> item = parse(line, line_number);
    if (!item) return item.status();
    out.push_back(std::move(item).value());
  }
  return out;
}

Status bad_squeue_line(std::size_t line_number, std::string_view line, std::string_view why) {
  return Status::invalid_argument("squeue line " + std::to_string(line_number) + " \"" + shown(line) + "\" " +
                                  std::string(why));
}

}  // namespace

Result<std::vector<SqueueJob>> parse_squeue(std::string_view text) {
  return parse_lines<SqueueJob>(text, [](std::string_view line, std::size_t number) -> Result<SqueueJob> {
    // The name sits between the first and the last '|', whatever it holds.
    const std::size_t first = line.find('|');
    const std::size_t last = line.rfind('|');
    if (first == std::string_view::npos || first == last) return bad_squeue_line(number, line, "is not id|name|state");
    SqueueJob job{std::string(trim(line.substr(0, first))), std::string(line.substr(first + 1, last - first - 1)),
                  std::string(trim(line.substr(last + 1)))};
    if (job.slurm_id.empty() || job.state.empty()) return bad_squeue_line(number, line, "lacks an id or a state");
    return job;
  });
}

Result<std::vector<SqueueRun>> parse_squeue_runs(std::string_view text) {
  return parse_lines<SqueueRun>(text, [](std::string_view line, std::size_t number) -> Result<SqueueRun> {
    // The id, the name and the state hold no '|' (the name is a Headroom
    // job id, asked for by --name); the comment, last, is all that follows.
    const std::size_t first = line.find('|');
    const std::size_t second = first == std::string_view::npos ? first : line.find('|', first + 1);
    const std::size_t third = second == std::string_view::npos ? second : line.find('|', second + 1);
    if (third == std::string_view::npos) return bad_squeue_line(number, line, "is not id|name|state|comment");
    SqueueRun run{std::string(trim(line.substr(0, first))), std::string(line.substr(first + 1, second - first - 1)),
                  std::string(trim(line.substr(second + 1, third - second - 1))),
                  std::string(trim(line.substr(third + 1)))};
    if (run.slurm_id.empty() || run.state.empty()) return bad_squeue_line(number, line, "lacks an id or a state");
    return run;
  });
}

bool is_finished_slurm_state(std::string_view state) {
  // squeue --states=all and scontrol spell the states in full; a state may
  // carry flags after '+' ("CANCELLED+").
  state = state.substr(0, state.find('+'));
  static constexpr std::array<std::string_view, 11> kFinished = {
      "COMPLETED", "FAILED",   "CANCELLED",     "TIMEOUT", "NODE_FAIL",   "PREEMPTED",
      "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT"};
  return std::find(kFinished.begin(), kFinished.end(), state) != kFinished.end();
}

Result<ScontrolJob> parse_scontrol_job(std::string_view text) {
  // Fields are "Key=Value", space-separated; the first of each is the job's
  // own (later ones, in free text such as Comment=, are not looked at).
  auto field = [&](std::string_view key) -> std::optional<std::string_view> {
    std::size_t at = 0;
    for (;;) {
      at = text.find(key, at);
      if (at == std::string_view::npos) return std::nullopt;
      if (at == 0 || std::isspace(static_cast<unsigned char>(text[at - 1]))) break;
      at += key.size();
    }
    std::string_view value = text.substr(at + key.size());
    std::size_t end = 0;
    while (end < value.size() && !std::isspace(static_cast<unsigned char>(value[end]))) ++end;
    return value.substr(0, end);
  };
  ScontrolJob job;
  auto state = field("JobState=");
  auto exit_code = field("ExitCode=");
  if (!state || state->empty() || !exit_code) {
    return Status::invalid_argument("scontrol show job printed no JobState= and ExitCode=: \"" +
                                    shown(text.substr(0, 120)) + "\"");
  }
  job.state = std::string(*state);
  // ExitCode=<code>:<signal>; a signal means the batch shell was killed by it.
  const std::size_t colon = exit_code->find(':');
  int code = 0, signo = 0;
  auto number = [](std::string_view digits, int& out) {
    const auto [ptr, error] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return !digits.empty() && error == std::errc() && ptr == digits.data() + digits.size();
  };
  if (colon == std::string_view::npos || !number(exit_code->substr(0, colon), code) ||
      !number(exit_code->substr(colon + 1), signo) || code < 0 || code > 255 || signo < 0 || signo > 64) {
    return Status::invalid_argument("scontrol show job: malformed ExitCode=" + shown(*exit_code));
  }
  job.exit_code = signo != 0 ? 128 + signo : code;
  if (auto end = field("EndTime=")) job.end_time = parse_slurm_time(*end);
  return job;
}

// ---- The executor ----------------------------------------------------------------

Result<std::unique_ptr<SlurmExecutor>> SlurmExecutor::create(SlurmOptions options, const Clock& clock) {
  std::string& root = options.jobs_root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root.empty() || root[0] != '/') {
    return Status::invalid_argument("the Slurm jobs directory must be an absolute path: \"" + shown(root) + "\"");
  }
  if (root.size() + 1 + limits::kExecJobIdBytes + 32 > PATH_MAX) {
    return Status::invalid_argument("the Slurm jobs directory's path is too long: " + root);
  }
  if (::mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::unavailable("cannot create the Slurm jobs directory " + root + ": " + errno_text(errno));
  }
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::unavailable("the Slurm jobs directory " + root + " is not a directory");
  }
  if (options.command_timeout_ms <= 0) return Status::invalid_argument("the Slurm command timeout must be positive");
  if (options.poll_interval_ms < 0) return Status::invalid_argument("the Slurm poll interval must not be negative");
  return std::unique_ptr<SlurmExecutor>(new SlurmExecutor(std::move(options), clock));
}

std::string SlurmExecutor::job_dir(std::string_view job_id) const {
  if (!validate_job_id(job_id)) return options_.jobs_root + "/.invalid";
  return options_.jobs_root + "/" + std::string(job_id);
}

Result<ProcessHandle> SlurmExecutor::start(const LaunchSpec& spec) {
  HR_RETURN_IF_ERROR(validate_job_id(spec.job_id));
  if (jobs_.contains(spec.job_id)) return Status::conflict("job " + spec.job_id + " is running already");
  if (jobs_.size() >= limits::kExecLiveJobs) {
    return Status::unavailable("the Slurm executor runs " + std::to_string(limits::kExecLiveJobs) + " jobs already");
  }
  const std::string dir = job_dir(spec.job_id);
  HR_ASSIGN_OR_RETURN(std::string script, slurm_batch_script(spec, {dir, inherited_environment()}));
  // The nodes share the jobs root, so a workdir missing here is missing there
  // (where Slurm would run the job in /tmp instead).
  const std::string workdir = spec.workdir.empty() ? dir : spec.workdir;
  if (workdir[0] != '/') return Status::invalid_argument("workdir must be an absolute path: " + shown(workdir));
  std::string nodelist;
  for (const std::string& node : spec.nodes) {
    if (node.empty() || node.find_first_of(",[]=: \t\n") != std::string::npos) {
      return Status::invalid_argument("node \"" + shown(node) + "\" is not a Slurm node name");
    }
    if (!nodelist.empty()) nodelist += ',';
    nodelist += node;
  }
  if (spec.gpu_type.find_first_of(",:= \t\n") != std::string::npos) {
    return Status::invalid_argument("GPU type \"" + shown(spec.gpu_type) + "\" is not a Slurm GRES type");
  }

  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::unavailable("cannot create " + dir + ": " + errno_text(errno));
  }
  // What an earlier run of the same job id left (a requeued job).
  for (const char* name :
       {kExitFile, kExitTmpFile, kDeadlineFile, kDeadlineTmpFile, kSlurmIdFile, kRunFile, kRunTmpFile}) {
    ::unlink((dir + "/" + name).c_str());
  }
  if (spec.workdir.size() > 0) {
    struct stat st {};
    if (::stat(workdir.c_str(), &st) != 0) {
      const std::string message = "workdir does not exist: " + shown(workdir);
      note_in_log(dir, message);
      return Status::invalid_argument(message);
    }
    if (!S_ISDIR(st.st_mode)) {
      const std::string message = "workdir is not a directory: " + shown(workdir);
      note_in_log(dir, message);
      return Status::invalid_argument(message);
    }
  }
  HR_RETURN_IF_ERROR(write_file_atomically(dir, kScriptTmpFile, kScriptFile, script, 0700));

  const std::size_t node_count = std::max<std::size_t>(spec.nodes.size(), 1);
  std::vector<std::string> args = {"--parsable", "--job-name=" + spec.job_id, "--nodes=" + std::to_string(node_count),
                                   "--ntasks=" + std::to_string(node_count),
                                   // Headroom decides what runs again: Slurm must not requeue
                                   // the job itself (after a node failure) under the same id.
                                   "--no-requeue"};
  // The run id, for find_run() to ask squeue after a takeover: Slurm has the
  // job, comment included, from the moment it accepts it.
  if (!spec.run_id.empty()) args.push_back("--comment=" + std::string(kRunCommentPrefix) + spec.run_id);
  if (!options_.partition.empty()) args.push_back("--partition=" + options_.partition);
  if (!nodelist.empty()) args.push_back("--nodelist=" + nodelist);
  if (!spec.gpu_devices.empty()) {
    const std::string type = spec.gpu_type.empty() ? std::string() : spec.gpu_type + ":";
    // One node: exactly its GPUs there. A gang over several nodes: the total,
    // which Slurm spreads over the listed nodes (cons_tres).
    args.push_back((node_count == 1 ? "--gres=gpu:" : "--gpus=") + type + std::to_string(spec.gpu_devices.size()));
  }
  args.push_back("--output=" + dir + "/" + kLogFile);
  args.push_back("--open-mode=append");  // a requeued job's log holds all its runs, as locally
  args.push_back("--chdir=" + workdir);
  args.push_back(dir + "/" + kScriptFile);
  auto submitted = run_slurm_command(options_, "sbatch", args);
  if (!submitted) {
    note_in_log(dir, submitted.status().message());
    return submitted.status();
  }
  if (submitted->exit_code != 0) {
    const std::string message = "Slurm refused job " + spec.job_id + ": " + shown(trim(submitted->err));
    note_in_log(dir, message);
    return Status::unavailable(message);
  }
  HR_ASSIGN_OR_RETURN(std::string slurm_id, parse_sbatch_job_id(submitted->out));
  // Kept beside the job too, for an operator and for an adopt() whose handle
  // lost it. The job is submitted: a failure here is logged, not returned.
  if (Status s = write_file_atomically(dir, kSlurmIdTmpFile, kSlurmIdFile, slurm_id + "\n", 0600); !s) {
    spdlog::warn("job {}: {}", spec.job_id, s.message());
  }
  // The run file, for a find_run() after slurmctld forgot the job (MinJobAge
  // after it ended); until then squeue finds it by its comment.
  if (!spec.run_id.empty()) {
    const std::string record = format_run_record(RunRecord{spec.run_id, ProcessHandle{0, 0, slurm_id}});
    if (Status s = write_file_atomically(dir, kRunTmpFile, kRunFile, record, 0600); !s) {
      spdlog::warn("job {}: {}", spec.job_id, s.message());
    }
  }
  jobs_[spec.job_id] = LiveJob{slurm_id, Ending::kOnItsOwn};
  return ProcessHandle{0, 0, slurm_id};
}

Status SlurmExecutor::scancel(const std::vector<std::string>& args, std::string_view job_id) {
  HR_ASSIGN_OR_RETURN(CommandOutput out, run_slurm_command(options_, "scancel", args));
  if (out.exit_code == 0 || says_job_ended(out.err)) return Status::ok();
  return Status::unavailable("scancel for job " + std::string(job_id) + " failed: " + shown(trim(out.err)));
}

std::optional<std::string> SlurmExecutor::slurm_state(const std::string& slurm_id) {
  auto out = run_slurm_command(options_, "squeue", {"--noheader", "--states=all", "--jobs=" + slurm_id, "--format=%T"});
  if (!out || out->exit_code != 0) return std::nullopt;
  return std::string(trim(out->out));
}

Status SlurmExecutor::notify_preempt(std::string_view job_id, Timestamp deadline) {
  HR_RETURN_IF_ERROR(validate_job_id(job_id));
  auto it = jobs_.find(std::string(job_id));
  if (it == jobs_.end()) return Status::not_found("job " + std::string(job_id) + " is not running here");
  // The deadline file first, so that the job's handler finds it.
  const Status written = write_file_atomically(job_dir(job_id), kDeadlineTmpFile, kDeadlineFile,
                                               "HEADROOM_PREEMPT_DEADLINE=" + to_rfc3339(deadline) + "\n", 0600);
  if (std::optional<std::string> state = slurm_state(it->second.slurm_id); state && is_unstarted_slurm_state(*state)) {
    // Slurm has not started it: there is nothing to warn, and cancelling it
    // gives the GPUs back now.
    HR_RETURN_IF_ERROR(scancel({it->second.slurm_id}, job_id));
    return written;
  }
  HR_ASSIGN_OR_RETURN(CommandOutput out,
                      run_slurm_command(options_, "scancel", {"--signal=TERM", "--full", it->second.slurm_id}));
  if (out.exit_code != 0 && !says_job_ended(out.err)) {
    return Status::unavailable("scancel --signal=TERM for job " + std::string(job_id) +
                               " failed: " + shown(trim(out.err)));
  }
  return written;
}

Status SlurmExecutor::kill(std::string_view job_id) {
  HR_RETURN_IF_ERROR(validate_job_id(job_id));
  auto it = jobs_.find(std::string(job_id));
  if (it == jobs_.end()) return Status::not_found("job " + std::string(job_id) + " is not running here");
  it->second.ending = Ending::kKilledByUs;
  // SIGKILL to every process of the batch step now (a plain scancel would
  // send TERM and wait KillWait first: the grace was notify_preempt's), then
  // a plain scancel, which has Slurm record the job as cancelled. A job not
  // started yet gets the plain scancel alone.
  std::optional<std::string> state = slurm_state(it->second.slurm_id);
  Status killed = Status::ok();
  if (!state || !is_unstarted_slurm_state(*state)) {
    HR_ASSIGN_OR_RETURN(CommandOutput out,
                        run_slurm_command(options_, "scancel", {"--signal=KILL", "--full", it->second.slurm_id}));
    if (out.exit_code != 0 && !says_job_ended(out.err)) {
      killed = Status::unavailable("scancel --signal=KILL for job " + std::string(job_id) +
                                   " failed: " + shown(trim(out.err)));
    }
  }
  HR_RETURN_IF_ERROR(scancel({it->second.slurm_id}, job_id));
  return killed;
}

std::optional<ScontrolJob> SlurmExecutor::show_job(const std::string& slurm_id) {
  auto out = run_slurm_command(options_, "scontrol", {"show", "job", "--oneliner", slurm_id});
  if (!out || out->exit_code != 0) return std::nullopt;
  auto job = parse_scontrol_job(out->out);
  if (!job) {
    spdlog::warn("Slurm job {}: {}", slurm_id, job.status().message());
    return std::nullopt;
  }
  return *job;
}

Exit SlurmExecutor::finished_exit(const std::string& job_id, const std::string& slurm_id, Ending ending,
                                  Timestamp lost_at) {
  Exit exit;
  exit.job_id = job_id;
  const std::string dir = job_dir(job_id);
  const std::string record_path = dir + "/" + kExitFile;
  if (auto record = read_small_file(record_path)) {
    if (auto code = parse_exit_record(*record)) {
      exit.exit_code = *code;
      exit.ended_at = mtime_of(record_path).value_or(clock_.now());
      return exit;
    }
  }
  // No record: the batch shell was killed (kill(), a node lost, Slurm's time
  // limit). Slurm knows how, while it remembers the job.
  if (!slurm_id.empty()) {
    if (std::optional<ScontrolJob> job = show_job(slurm_id); job && is_finished_slurm_state(job->state)) {
      exit.exit_code = job->exit_code;
      exit.ended_at = job->end_time.value_or(clock_.now());
      return exit;
    }
  }
  exit.exit_code = kExitKilled;
  if (ending == Ending::kKilledByUs) {
    exit.ended_at = clock_.now();
  } else {
    exit.lost = true;
    exit.ended_at = lost_at;
  }
  return exit;
}

std::vector<Exit> SlurmExecutor::poll() {
  std::vector<Exit> exits;
  if (jobs_.empty()) {
    checked_until_ = clock_.now();  // nothing runs here to bill
    return exits;
  }
  const auto now_steady = std::chrono::steady_clock::now();
  if (now_steady < next_poll_) return exits;
  next_poll_ = now_steady + std::chrono::milliseconds(options_.poll_interval_ms);
  // Taken before squeue: the jobs it finds running ran at least until then.
  const Timestamp looked_at = clock_.now();

  // Slurm's view of the live jobs: one squeue per kSlurmJobIdsPerQuery jobs.
  std::unordered_map<std::string, SqueueJob> seen;
  std::vector<std::string> ids;
  ids.reserve(std::min(jobs_.size(), limits::kSlurmJobIdsPerQuery));
  auto query = [&]() -> bool {
    std::string list;
    for (const std::string& id : ids) {
      if (!list.empty()) list += ',';
      list += id;
    }
    ids.clear();
    auto out = run_slurm_command(
        options_, "squeue", {"--noheader", "--states=all", "--jobs=" + list, "--format=" + std::string(kSqueueFormat)});
    if (!out) {
      spdlog::warn("Slurm executor: {}", out.status().message());
      return false;
    }
    if (out->exit_code != 0) {
      // Every job of the list forgotten: squeue says so instead of printing nothing.
      if (says_unknown_job(out->err)) return true;
      spdlog::warn("Slurm executor: squeue failed (exit {}): {}", out->exit_code, shown(trim(out->err)));
      return false;
    }
    auto parsed = parse_squeue(out->out);
    if (!parsed) {
      spdlog::warn("Slurm executor: {}", parsed.status().message());
      return false;
    }
    for (SqueueJob& job : *parsed) seen[job.slurm_id] = std::move(job);
    return true;
  };
  for (const auto& [job_id, job] : jobs_) {
    ids.push_back(job.slurm_id);
    if (ids.size() == limits::kSlurmJobIdsPerQuery && !query()) return exits;
  }
  if (!ids.empty() && !query()) return exits;
  checked_until_ = looked_at;

  const Timestamp now = clock_.now();
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    auto found = seen.find(it->second.slurm_id);
    const bool live =
        found != seen.end() && found->second.name == it->first && !is_finished_slurm_state(found->second.state);
    if (live) {
      ++it;
      continue;
    }
    exits.push_back(finished_exit(it->first, it->second.slurm_id, it->second.ending, now));
    it = jobs_.erase(it);
  }
  return exits;
}

Result<std::optional<ProcessHandle>> SlurmExecutor::find_run(std::string_view job_id_view, std::string_view run_id) {
  HR_RETURN_IF_ERROR(validate_job_id(job_id_view));
  HR_RETURN_IF_ERROR(validate_run_id(run_id));
  const std::string job_id(job_id_view);
  // The run file first: it outlives slurmctld's memory of the job.
  const std::string run_path = job_dir(job_id) + "/" + kRunFile;
  if (std::optional<std::string> text = read_small_file(run_path)) {
    Result<RunRecord> record = parse_run_record(*text);
    if (!record) {
      spdlog::warn("job {}: {}; asking squeue", job_id, record.status().message());
    } else if (record->run_id == run_id && !record->handle.external_id.empty()) {
      return std::optional<ProcessHandle>(ProcessHandle{0, 0, record->handle.external_id});
    }
  }
  // Not (yet) written: the server died between sbatch and the run file.
  // Slurm knows the job by its name and comment while it remembers it.
  HR_ASSIGN_OR_RETURN(CommandOutput out, run_slurm_command(options_, "squeue",
                                                           {"--noheader", "--states=all", "--name=" + job_id,
                                                            "--format=" + std::string(kSqueueRunFormat)}));
  if (out.exit_code != 0) {
    return Status::unavailable("squeue for the runs of job " + job_id + " failed (exit " +
                               std::to_string(out.exit_code) + "): " + shown(trim(out.err)));
  }
  HR_ASSIGN_OR_RETURN(std::vector<SqueueRun> runs, parse_squeue_runs(out.out));
  const std::string comment = std::string(kRunCommentPrefix) + std::string(run_id);
  // One sbatch per run id, unless a caller reused one: then the run that
  // still holds resources, else the newest (Slurm numbers jobs upwards).
  const SqueueRun* found = nullptr;
  auto rank = [](const SqueueRun& run) {
    std::uint64_t id = 0;
    std::from_chars(run.slurm_id.data(), run.slurm_id.data() + run.slurm_id.size(), id);
    return std::make_pair(!is_finished_slurm_state(run.state), id);
  };
  for (const SqueueRun& run : runs) {
    if (run.name != job_id || run.comment != comment) continue;
    if (found != nullptr) {
      spdlog::warn("job {}: Slurm has run {} twice, as jobs {} and {}", job_id, run_id, found->slurm_id, run.slurm_id);
      if (rank(run) < rank(*found)) continue;
    }
    found = &run;
  }
  if (found == nullptr) return std::optional<ProcessHandle>();
  return std::optional<ProcessHandle>(ProcessHandle{0, 0, found->slurm_id});
}

bool SlurmExecutor::adopt(std::string_view job_id_view, const ProcessHandle& handle, Exit& ended) {
  const std::string job_id(job_id_view);
  ended = Exit{};
  ended.job_id = job_id;
  const std::string dir = job_dir(job_id);
  std::string slurm_id = handle.external_id;
  if (slurm_id.empty()) {
    if (auto text = read_small_file(dir + "/" + kSlurmIdFile)) {
      if (auto parsed = parse_sbatch_job_id(*text)) slurm_id = *parsed;
    }
  }
  if (auto it = jobs_.find(job_id); it != jobs_.end() && it->second.slurm_id == slurm_id) return true;
  // The job's last sign of life, for a job that vanished: its log's last write.
  const Timestamp last_seen =
      mtime_of(dir + "/" + kLogFile).value_or(mtime_of(dir + "/" + kSlurmIdFile).value_or(clock_.now()));
  if (!validate_job_id(job_id) || slurm_id.empty()) {
    ended = finished_exit(job_id, "", Ending::kOnItsOwn, last_seen);
    return false;
  }
  auto out =
      run_slurm_command(options_, "squeue",
                        {"--noheader", "--states=all", "--jobs=" + slurm_id, "--format=" + std::string(kSqueueFormat)});
  std::optional<SqueueJob> found;
  bool asked = false;
  if (out && out->exit_code == 0) {
    if (auto parsed = parse_squeue(out->out)) {
      asked = true;
      for (SqueueJob& job : *parsed) {
        if (job.slurm_id == slurm_id) found = std::move(job);
      }
    }
  } else if (out && says_unknown_job(out->err)) {
    asked = true;
  }
  const bool same_job = found && found->name == job_id;
  if (!asked || (same_job && !is_finished_slurm_state(found->state))) {
    // Running, or Slurm cannot tell now: watched again, poll() settles it.
    if (!asked)
      spdlog::warn("job {}: adopted without asking Slurm ({})", job_id,
                   out ? shown(trim(out->err)) : out.status().message());
    jobs_[job_id] = LiveJob{slurm_id, Ending::kOnItsOwn};
    return true;
  }
  ended = finished_exit(job_id, same_job ? slurm_id : "", Ending::kOnItsOwn, last_seen);
  return false;
}

}  // namespace headroom::exec
