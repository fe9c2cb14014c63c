// The Slurm executor's pure parts: the batch script (run here by /bin/sh, as
// slurmstepd would run it), the parsers of Slurm's answers on text captured
// from Slurm 22.05, and the command runner. The executor against a real
// Slurm is tested in tests/slurm/.
#include "exec/slurm_executor.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace headroom::exec {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "slurm_executor_test.XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs a batch script with /bin/sh, as slurmstepd does, with the variables
// Slurm would set. Returns its exit code; its output is in `out`.
int run_script(const std::string& script, const std::string& dir, std::string& out) {
  const std::string path = dir + "/job.sh";
  std::ofstream(path) << script;
  SlurmOptions options;
  options.bin_dir = "/usr/bin";
  auto result = run_slurm_command(options, "env",
                                  {"CUDA_VISIBLE_DEVICES=2,3", "SLURM_JOB_ID=77", "SLURM_JOB_NODELIST=n1",
                                   "SLURM_CONF=/etc/x/slurm.conf", "SLURM_OTHER=1", "/bin/sh", path});
  EXPECT_TRUE(result.is_ok()) << result.status().to_string();
  if (!result) return -1;
  out = result->out + result->err;
  return result->exit_code;
}

LaunchSpec spec_of(std::vector<std::string> argv) {
  LaunchSpec spec;
  spec.job_id = "job_test";
  spec.argv = std::move(argv);
  spec.gpu_devices = {0, 1};
  spec.gpu_names = {"n1:0", "n1:1"};
  spec.nodes = {"n1"};
  spec.gpu_type = "h100";
  return spec;
}

TEST(ShellQuote, QuotesEverything) {
  EXPECT_EQ(shell_quote(""), "''");
  EXPECT_EQ(shell_quote("plain"), "'plain'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("$HOME `x` \"y\""), "'$HOME `x` \"y\"'");
}

TEST(BatchScript, ArgumentsReachTheCommandByteForByte) {
  TempDir dir;
  const std::vector<std::string> tricky = {"",           "it's",  "a b  c",      "$HOME",     "`id`",
                                           "$(id)",      "\"q\"", "back\\slash", "new\nline", "*",
                                           "; rm -rf /", "--",    "-n",          "\t tab",    "\xc3\xa9t\xc3\xa9"};
  std::vector<std::string> argv = {"printf", "[%s]\\n"};
  argv.insert(argv.end(), tricky.begin(), tricky.end());
  auto script = slurm_batch_script(spec_of(argv), {dir.path(), {{"PATH", "/usr/bin:/bin"}}});
  ASSERT_TRUE(script.is_ok()) << script.status().to_string();
  std::string out;
  EXPECT_EQ(run_script(*script, dir.path(), out), 0);
  std::string expected;
  for (const std::string& arg : tricky) expected += "[" + arg + "]\n";
  EXPECT_EQ(out, expected);
  EXPECT_EQ(read_file(dir.path() + "/exit"), "exit 0\n");
}

TEST(BatchScript, EnvironmentIsTheContractsAndNothingElse) {
  TempDir dir;
  LaunchSpec spec = spec_of({"env"});
  spec.env = {{"MY_VAR", "x y'z"}, {"LANG", "C.UTF-8"}};
  auto script = slurm_batch_script(spec, {dir.path(), {{"PATH", "/usr/bin:/bin"}, {"HOME", "/root"}, {"LANG", "C"}}});
  ASSERT_TRUE(script.is_ok()) << script.status().to_string();
  std::string out;
  ASSERT_EQ(run_script(*script, dir.path(), out), 0);
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  const std::vector<std::string> expected = {
      "CUDA_VISIBLE_DEVICES=2,3",  // Slurm's choice, not the spec's indexes
      "HEADROOM_GPUS=n1:0,n1:1",
      "HEADROOM_JOB_ID=job_test",
      "HEADROOM_PREEMPT_DEADLINE_FILE=" + dir.path() + "/preempt_deadline",
      "HOME=/root",
      "LANG=C.UTF-8",  // the job's own value wins over the server's
      "MY_VAR=x y'z",
      "PATH=/usr/bin:/bin",
      "SLURM_CONF=/etc/x/slurm.conf",  // for srun, in a gang over several nodes
      "SLURM_JOB_ID=77",
      "SLURM_JOB_NODELIST=n1",
  };
  EXPECT_EQ(lines, expected);
}

TEST(BatchScript, RecordsTheExitCode) {
  TempDir dir;
  auto script =
      slurm_batch_script(spec_of({"sh", "-c", "echo out; exit 7"}), {dir.path(), {{"PATH", "/usr/bin:/bin"}}});
  ASSERT_TRUE(script.is_ok());
  std::string out;
  EXPECT_EQ(run_script(*script, dir.path(), out), 7);
  EXPECT_EQ(out, "out\n");
  EXPECT_EQ(read_file(dir.path() + "/exit"), "exit 7\n");
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/exit.tmp"));
}

TEST(BatchScript, AMissingCommandFailsWith127) {
  TempDir dir;
  auto script = slurm_batch_script(spec_of({"no-such-command-anywhere"}), {dir.path(), {{"PATH", "/usr/bin:/bin"}}});
  ASSERT_TRUE(script.is_ok());
  std::string out;
  EXPECT_EQ(run_script(*script, dir.path(), out), 127);
  EXPECT_NE(out.find("no-such-command-anywhere"), std::string::npos) << out;
  EXPECT_EQ(read_file(dir.path() + "/exit"), "exit 127\n");
}

TEST(BatchScript, RefusesWhatNoJobMayHold) {
  const BatchScriptContext context{"/jobs/job_test", {}};
  auto refused = [&](LaunchSpec spec) { return !slurm_batch_script(spec, context).is_ok(); };
  EXPECT_TRUE(refused(spec_of({})));
  EXPECT_TRUE(refused(spec_of({""})));
  EXPECT_TRUE(refused(spec_of({"A=b", "x"})));
  EXPECT_TRUE(refused(spec_of({"echo", std::string("a\0b", 3)})));
  LaunchSpec bad_id = spec_of({"true"});
  bad_id.job_id = "../etc";
  EXPECT_TRUE(refused(bad_id));
  for (const char* name : {"CUDA_VISIBLE_DEVICES", "HEADROOM_JOB_ID", "1X", "A-B", "", "A B", "A=B"}) {
    LaunchSpec spec = spec_of({"true"});
    spec.env = {{name, "v"}};
    EXPECT_TRUE(refused(spec)) << name;
  }
  LaunchSpec repeated = spec_of({"true"});
  repeated.env = {{"A", "1"}, {"A", "2"}};
  EXPECT_TRUE(refused(repeated));
  LaunchSpec comma = spec_of({"true"});
  comma.gpu_names = {"n1:0,n1:1"};
  EXPECT_TRUE(refused(comma));
  EXPECT_FALSE(refused(spec_of({"true"})));
}

TEST(SbatchJobId, Parses) {
  EXPECT_EQ(parse_sbatch_job_id("1234\n").value(), "1234");
  EXPECT_EQ(parse_sbatch_job_id("1234;cluster\n").value(), "1234");
  EXPECT_FALSE(parse_sbatch_job_id("").is_ok());
  EXPECT_FALSE(parse_sbatch_job_id("Submitted batch job 12\n").is_ok());
  EXPECT_FALSE(parse_sbatch_job_id("12a\n").is_ok());
}

TEST(Squeue, ParsesItsLines) {
  auto jobs = parse_squeue("1|job_x|FAILED\n17|job_a|b|RUNNING\n\n20||PENDING\n");
  ASSERT_TRUE(jobs.is_ok()) << jobs.status().to_string();
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ((*jobs)[0].slurm_id, "1");
  EXPECT_EQ((*jobs)[0].name, "job_x");
  EXPECT_EQ((*jobs)[0].state, "FAILED");
  EXPECT_EQ((*jobs)[1].name, "job_a|b");
  EXPECT_EQ((*jobs)[1].state, "RUNNING");
  EXPECT_EQ((*jobs)[2].name, "");
  EXPECT_TRUE(parse_squeue("").value().empty());
  EXPECT_FALSE(parse_squeue("1 job_x RUNNING\n").is_ok());
  EXPECT_FALSE(parse_squeue("|job_x|RUNNING\n").is_ok());
}

TEST(SlurmStates, FinishedOnesAreKnown) {
  for (const char* s : {"COMPLETED", "FAILED", "CANCELLED", "CANCELLED+", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}) {
    EXPECT_TRUE(is_finished_slurm_state(s)) << s;
  }
  for (const char* s : {"PENDING", "RUNNING", "COMPLETING", "SUSPENDED", "CONFIGURING", "REQUEUED", ""}) {
    EXPECT_FALSE(is_finished_slurm_state(s)) << s;
  }
}

// Captured from Slurm 22.05.8 (`scontrol show job --oneliner 1`).
constexpr const char* kScontrolFailed =
    "JobId=1 JobName=job_x UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 Nice=0 "
    "Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 "
    "BatchFlag=1 Reboot=0 ExitCode=3:0 RunTime=00:00:09 TimeLimit=UNLIMITED TimeMin=N/A "
    "SubmitTime=2026-11-27T03:31:47 EligibleTime=2026-11-27T03:31:47 AccrueTime=Unknown "
    "StartTime=2026-11-27T03:31:47 EndTime=2026-11-27T03:31:56 Deadline=N/A Comment=ExitCode=9:9 "
    "Partition=hrtest NodeList=vm TresPerNode=gres:gpu:h100:2\n";

TEST(Scontrol, ParsesStateExitCodeAndEnd) {
  auto job = parse_scontrol_job(kScontrolFailed);
  ASSERT_TRUE(job.is_ok()) << job.status().to_string();
  EXPECT_EQ(job->state, "FAILED");
  EXPECT_EQ(job->exit_code, 3);
  ASSERT_TRUE(job->end_time.has_value());
  struct tm tm {};
  tm.tm_year = 126;
  tm.tm_mon = 10;
  tm.tm_mday = 27;
  tm.tm_hour = 3;
  tm.tm_min = 31;
  tm.tm_sec = 56;
  tm.tm_isdst = -1;
  EXPECT_EQ(job->end_time->unix_seconds(), static_cast<std::int64_t>(::mktime(&tm)));
}

TEST(Scontrol, ASignalIsReportedAsAShellWould) {
  auto job = parse_scontrol_job("JobId=5 JobState=CANCELLED Reason=None ExitCode=0:9 EndTime=Unknown");
  ASSERT_TRUE(job.is_ok());
  EXPECT_EQ(job->exit_code, 137);
  EXPECT_FALSE(job->end_time.has_value());
  EXPECT_FALSE(parse_scontrol_job("JobId=5 JobState=RUNNING").is_ok());
  EXPECT_FALSE(parse_scontrol_job("JobId=5 JobState=RUNNING ExitCode=x:0").is_ok());
  EXPECT_FALSE(parse_scontrol_job("").is_ok());
}

TEST(SlurmCommand, AMissingProgramIsNamed) {
  SlurmOptions options;
  options.bin_dir = "/nonexistent/slurm/bin";
  auto out = run_slurm_command(options, "sbatch", {"--version"});
  ASSERT_FALSE(out.is_ok());
  EXPECT_EQ(out.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(out.status().message().find("/nonexistent/slurm/bin/sbatch not found"), std::string::npos)
      << out.status().message();
}

TEST(SlurmCommand, AHungCommandTimesOut) {
  SlurmOptions options;
  options.command_timeout_ms = 200;
  auto out = run_slurm_command(options, "sleep", {"30"});
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("did not answer within 200 ms"), std::string::npos) << out.status().message();
}

TEST(SlurmCommand, GetsSlurmConfAndACleanEnvironment) {
  SlurmOptions options;
  options.slurm_conf = "/etc/test/slurm.conf";
  ::setenv("HEADROOM_SECRET_FOR_TEST", "x", 1);
  auto out = run_slurm_command(options, "env", {});
  ::unsetenv("HEADROOM_SECRET_FOR_TEST");
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_NE(out->out.find("SLURM_CONF=/etc/test/slurm.conf\n"), std::string::npos) << out->out;
  EXPECT_EQ(out->out.find("HEADROOM_SECRET_FOR_TEST"), std::string::npos) << out->out;
  auto failed = run_slurm_command(options, "sh", {"-c", "echo oops >&2; exit 3"});
  ASSERT_TRUE(failed.is_ok());
  EXPECT_EQ(failed->exit_code, 3);
  EXPECT_EQ(failed->err, "oops\n");
}

TEST(SlurmExecutor, CreateWantsAnAbsoluteDirectory) {
  ManualClock clock;
  SlurmOptions options;
  options.jobs_root = "relative/jobs";
  EXPECT_FALSE(SlurmExecutor::create(options, clock).is_ok());
  TempDir dir;
  options.jobs_root = dir.path() + "/jobs/";
  auto executor = SlurmExecutor::create(options, clock);
  ASSERT_TRUE(executor.is_ok()) << executor.status().to_string();
  EXPECT_EQ((*executor)->job_dir("job_a"), dir.path() + "/jobs/job_a");
  EXPECT_EQ((*executor)->job_dir("../x"), dir.path() + "/jobs/.invalid");
  EXPECT_EQ((*executor)->kill("job_a").code(), ErrorCode::kNotFound);
  EXPECT_TRUE((*executor)->poll().empty());  // nothing live: no Slurm asked
}

}  // namespace
}  // namespace headroom::exec
