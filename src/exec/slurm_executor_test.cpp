// The Slurm executor's pure parts: the batch script (run here by /bin/sh, as
// slurmstepd would run it), the parsers of Slurm's answers on text captured
// from Slurm 22.05, and the command runner; find_run() against stand-in
// sbatch and squeue scripts (what it asks, what it makes of the answers),
// and against a real Slurm when HEADROOM_TEST_SLURM_DIR names one that
// scripts/test-slurm.sh started (skipped otherwise). The rest of the
// executor against a real Slurm is tested in tests/slurm/.
#include "exec/slurm_executor.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
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

TEST(Squeue, ParsesRunsWithTheirComments) {
  auto runs = parse_squeue_runs(
      "4100|job_x|COMPLETED|headroom-run:0.50\n4242|job_x|RUNNING|headroom-run:1.100\n\n4301|job_x|PENDING|(null)\n"
      "4302|job_x|FAILED|a|b\n");
  ASSERT_TRUE(runs.is_ok()) << runs.status().to_string();
  ASSERT_EQ(runs->size(), 4u);
  EXPECT_EQ((*runs)[0].slurm_id, "4100");
  EXPECT_EQ((*runs)[0].name, "job_x");
  EXPECT_EQ((*runs)[0].state, "COMPLETED");
  EXPECT_EQ((*runs)[0].comment, "headroom-run:0.50");
  EXPECT_EQ((*runs)[1].slurm_id, "4242");
  EXPECT_EQ((*runs)[1].state, "RUNNING");
  EXPECT_EQ((*runs)[1].comment, "headroom-run:1.100");
  EXPECT_EQ((*runs)[2].comment, "(null)");
  EXPECT_EQ((*runs)[3].comment, "a|b");  // someone else's comment, whatever it holds
  EXPECT_TRUE(parse_squeue_runs("").value().empty());
  EXPECT_FALSE(parse_squeue_runs("4242 job_x RUNNING headroom-run:1\n").is_ok());
  EXPECT_FALSE(parse_squeue_runs("4242|job_x|RUNNING\n").is_ok());
  EXPECT_FALSE(parse_squeue_runs("|job_x|RUNNING|c\n").is_ok());
  EXPECT_FALSE(parse_squeue_runs("4242|job_x||c\n").is_ok());
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

// find_run() against stand-ins for sbatch and squeue that note their
// arguments (bin/<name>.args) and answer as a file says: squeue prints
// bin/squeue.out, or fails as a Slurm that is down does when bin/squeue.fail exists.
class SlurmFindRunFake : public ::testing::Test {
 protected:
  void SetUp() override {
    bin_ = dir_.path() + "/bin";
    std::filesystem::create_directory(bin_);
    write_script("sbatch", "printf '%s\\n' \"$@\" >\"$d/sbatch.args\"\necho 4242\n");
    write_script("squeue",
                 "printf '%s\\n' \"$@\" >\"$d/squeue.args\"\n"
                 "if [ -e \"$d/squeue.fail\" ]; then echo 'squeue: error: Unable to contact slurm controller' >&2; "
                 "exit 1; fi\n"
                 "cat \"$d/squeue.out\"\n");
    std::ofstream(bin_ + "/squeue.out") << "";
    SlurmOptions options;
    options.jobs_root = dir_.path() + "/jobs";
    options.bin_dir = bin_;
    auto executor = SlurmExecutor::create(options, clock_);
    ASSERT_TRUE(executor.is_ok()) << executor.status().to_string();
    executor_ = std::move(*executor);
  }

  void write_script(const std::string& name, const std::string& body) {
    const std::string path = bin_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\nd=" << shell_quote(bin_) << "\n" << body;
    ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  }

  static LaunchSpec spec(const std::string& run_id) {
    LaunchSpec s;
    s.job_id = "job_fake";
    s.argv = {"true"};
    s.run_id = run_id;
    return s;
  }

  ManualClock clock_;
  TempDir dir_;
  std::string bin_;
  std::unique_ptr<SlurmExecutor> executor_;
};

TEST_F(SlurmFindRunFake, StartGivesSbatchTheRunIdAndWritesTheRunFile) {
  auto started = executor_->start(spec("1.100"));
  ASSERT_TRUE(started.is_ok()) << started.status().to_string();
  EXPECT_EQ(started->external_id, "4242");
  const std::string args = read_file(bin_ + "/sbatch.args");
  EXPECT_NE(args.find("\n--comment=headroom-run:1.100\n"), std::string::npos) << args;
  EXPECT_EQ(read_file(executor_->job_dir("job_fake") + "/run"), "1.100 0 0 4242\n");

  // The run file answers; squeue is not asked.
  auto found = executor_->find_run("job_fake", "1.100");
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->external_id, "4242");
  EXPECT_EQ((*found)->pid, 0);
  EXPECT_FALSE(std::filesystem::exists(bin_ + "/squeue.args"));
  // Nor is it when Slurm is down.
  std::ofstream(bin_ + "/squeue.fail") << "";
  found = executor_->find_run("job_fake", "1.100");
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  EXPECT_TRUE(found->has_value());

  // A start without a run id: no comment, no run file, the earlier one removed.
  ASSERT_TRUE(executor_->poll().empty());  // squeue fails: the job stays live
  executor_.reset();
  SlurmOptions options;
  options.jobs_root = dir_.path() + "/jobs";
  options.bin_dir = bin_;
  auto next = SlurmExecutor::create(options, clock_);
  ASSERT_TRUE(next.is_ok());
  ASSERT_TRUE((*next)->start(spec("")).is_ok());
  EXPECT_EQ(read_file(bin_ + "/sbatch.args").find("--comment"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists((*next)->job_dir("job_fake") + "/run"));
}

TEST_F(SlurmFindRunFake, WithoutTheRunFileSqueueFindsTheRunByItsComment) {
  // As if the server died between sbatch and the run file: Slurm has the job.
  std::ofstream(bin_ + "/squeue.out") << "4100|job_fake|COMPLETED|headroom-run:0.50\n"
                                         "4242|job_fake|RUNNING|headroom-run:1.100\n"
                                         "4300|job_fake_other|RUNNING|headroom-run:1.100\n"
                                         "4301|job_fake|PENDING|(null)\n";
  auto found = executor_->find_run("job_fake", "1.100");
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->external_id, "4242");
  const std::string args = read_file(bin_ + "/squeue.args");
  EXPECT_EQ(args, "--noheader\n--states=all\n--name=job_fake\n--format=%i|%j|%T|%k\n");

  found = executor_->find_run("job_fake", "0.50");
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->external_id, "4100");
  found = executor_->find_run("job_fake", "2.200");
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  EXPECT_FALSE(found->has_value());

  // A run file of another run does not hide the one asked for.
  std::filesystem::create_directories(executor_->job_dir("job_fake"));
  std::ofstream(executor_->job_dir("job_fake") + "/run") << "0.50 0 0 4100\n";
  found = executor_->find_run("job_fake", "1.100");
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->external_id, "4242");

  // A run id used twice (the caller's mistake): the run still live wins, else the newest.
  std::filesystem::remove(executor_->job_dir("job_fake") + "/run");
  std::ofstream(bin_ + "/squeue.out") << "4400|job_fake|RUNNING|headroom-run:3.3\n"
                                         "4500|job_fake|COMPLETED|headroom-run:3.3\n"
                                         "4501|job_fake|FAILED|headroom-run:4.4\n"
                                         "4502|job_fake|CANCELLED|headroom-run:4.4\n"
                                         "4503|job_fake|COMPLETED|headroom-run:4.4\n";
  found = executor_->find_run("job_fake", "3.3");
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->external_id, "4400");
  found = executor_->find_run("job_fake", "4.4");
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->external_id, "4503");

  // Slurm down: unavailable, never nullopt.
  std::ofstream(bin_ + "/squeue.fail") << "";
  found = executor_->find_run("job_fake", "2.200");
  ASSERT_FALSE(found.is_ok());
  EXPECT_EQ(found.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(found.status().message().find("Unable to contact"), std::string::npos) << found.status().to_string();
  EXPECT_EQ(executor_->find_run("job_fake", "").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(executor_->find_run("../x", "1.1").status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace headroom::exec
