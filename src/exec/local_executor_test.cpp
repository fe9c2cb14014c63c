#include "exec/local_executor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
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

// Generous: the test machine may be a loaded 2-core box. Every wait is a
// loop that ends as soon as its condition holds.
constexpr auto kWait = std::chrono::seconds(30);
constexpr auto kPollInterval = std::chrono::milliseconds(10);

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

Timestamp mtime(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return Timestamp{static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000 + info.st_mtim.tv_nsec / 1'000};
}

std::optional<ProcStat> proc_stat(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  Result<ProcStat> parsed = parse_proc_stat(line);
  if (!parsed) return std::nullopt;
  return *parsed;
}

// True when `pid` runs (a zombie has ended; so has a pid now naming another process).
bool running(const ProcessHandle& handle) {
  std::optional<ProcStat> stat = proc_stat(handle.pid);
  return stat && stat->start_ticks == handle.start_ticks && stat->state != 'Z' && stat->state != 'X';
}

bool pid_running(int pid) {
  std::optional<ProcStat> stat = proc_stat(pid);
  return stat && stat->state != 'Z' && stat->state != 'X';
}

template <typename Condition>
bool eventually(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(kPollInterval);
  }
  return condition();
}

class LocalExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "headroom-exec-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    temp_ = std::filesystem::canonical(pattern).string();
    root_ = temp_ + "/jobs";
    executor_ = make_executor();
  }

  // Kills what a test left running, jobs of executors it destroyed included,
  // and reaps the supervisors (children of this process).
  void TearDown() override {
    executor_.reset();
    for (const ProcessHandle& handle : handles_) {
      std::optional<ProcStat> stat = proc_stat(handle.pid);
      if (!stat || stat->start_ticks != handle.start_ticks) continue;
      if (stat->state != 'Z') ::kill(-handle.pid, SIGKILL);
      if (stat->ppid == ::getpid()) {
        int status = 0;
        ::waitpid(handle.pid, &status, 0);
      }
    }
    std::error_code ignored;
    std::filesystem::remove_all(temp_, ignored);
  }

  std::unique_ptr<LocalExecutor> make_executor() {
    Result<std::unique_ptr<LocalExecutor>> created = LocalExecutor::create(root_, clock_);
    EXPECT_TRUE(created.is_ok()) << created.status().to_string();
    return created ? std::move(created).value() : nullptr;
  }

  static LaunchSpec shell(std::string job_id, std::string script) {
    LaunchSpec spec;
    spec.job_id = std::move(job_id);
    spec.argv = {"/bin/sh", "-c", std::move(script)};
    return spec;
  }

  ProcessHandle start(const LaunchSpec& spec, LocalExecutor* executor = nullptr) {
    Result<ProcessHandle> started = (executor ? executor : executor_.get())->start(spec);
    EXPECT_TRUE(started.is_ok()) << started.status().to_string();
    if (!started) return {};
    handles_.push_back(*started);
    return *started;
  }

  // Polls until `job_id` is reported; exits of other jobs are kept in others_.
  std::optional<Exit> wait_exit(const std::string& job_id, LocalExecutor* executor = nullptr) {
    LocalExecutor& e = executor ? *executor : *executor_;
    std::optional<Exit> found;
    eventually([&] {
      for (Exit& exit : e.poll()) {
        if (exit.job_id == job_id) {
          found = exit;
        } else {
          others_.push_back(exit);
        }
      }
      return found.has_value();
    });
    return found;
  }

  bool wait_for_log(const std::string& job_id, const std::string& needle) {
    return eventually([&] { return read_file(executor_->log_path(job_id)).find(needle) != std::string::npos; });
  }

  ManualClock clock_;
  std::string temp_;
  std::string root_;
  std::unique_ptr<LocalExecutor> executor_;
  std::vector<ProcessHandle> handles_;
  std::vector<Exit> others_;
};

TEST_F(LocalExecutorTest, ReportsExitCodeAndLogsOutput) {
  ProcessHandle handle = start(shell("job_exit3", "echo out; echo err >&2; exit 3"));
  EXPECT_GT(handle.pid, 0);

  std::optional<Exit> exit = wait_exit("job_exit3");
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_FALSE(exit->lost);
  const std::string dir = executor_->job_dir("job_exit3");
  EXPECT_EQ(dir, root_ + "/job_exit3");
  EXPECT_EQ(read_file(dir + "/exit"), "exit 3\n");
  EXPECT_EQ(exit->ended_at, mtime(dir + "/exit"));
  EXPECT_EQ(read_file(executor_->log_path("job_exit3")), "out\nerr\n");
  EXPECT_EQ(executor_->live_jobs(), 0u);
  EXPECT_TRUE(others_.empty());

  // Reported once; afterwards the job is unknown here.
  EXPECT_TRUE(executor_->poll().empty());
  EXPECT_EQ(executor_->kill("job_exit3").code(), ErrorCode::kNotFound);
  EXPECT_EQ(executor_->notify_preempt("job_exit3", clock_.now()).code(), ErrorCode::kNotFound);
}

TEST_F(LocalExecutorTest, HandleNamesASupervisorLeadingItsOwnSession) {
  ProcessHandle handle = start(shell("job_handle", "echo ready; while :; do sleep 1; done"));
  ASSERT_TRUE(wait_for_log("job_handle", "ready"));
  std::optional<ProcStat> stat = proc_stat(handle.pid);
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->start_ticks, handle.start_ticks);
  EXPECT_EQ(stat->ppid, ::getpid());
  EXPECT_EQ(stat->pgrp, handle.pid);
  EXPECT_EQ(::getsid(handle.pid), handle.pid);
  ASSERT_TRUE(executor_->notify_preempt("job_handle", clock_.now()).is_ok());  // SIGTERM ends it
  ASSERT_TRUE(wait_exit("job_handle"));
}

TEST_F(LocalExecutorTest, DeathBySignalIs128PlusTheSignal) {
  start(shell("job_usr1", "kill -USR1 $$"));
  std::optional<Exit> exit = wait_exit("job_usr1");
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 128 + SIGUSR1);
  EXPECT_FALSE(exit->lost);
  EXPECT_EQ(read_file(executor_->job_dir("job_usr1") + "/exit"), "signal " + std::to_string(SIGUSR1) + "\n");
}

TEST_F(LocalExecutorTest, SetsTheJobsEnvironment) {
  ASSERT_EQ(::setenv("HEADROOM_TEST_SERVER_SECRET", "leaked", 1), 0);
  LaunchSpec spec =
      shell("job_env",
            "echo \"CVD=$CUDA_VISIBLE_DEVICES\"; echo \"ID=$HEADROOM_JOB_ID\"; echo \"GPUS=$HEADROOM_GPUS\"; "
            "echo \"FILE=$HEADROOM_PREEMPT_DEADLINE_FILE\"; echo \"MINE=$MY_VAR\"; echo \"LANG=$LANG\"; "
            "echo \"SECRET=${HEADROOM_TEST_SERVER_SECRET-unset}\"; echo \"PATHSET=${PATH+yes}\"");
  spec.gpu_devices = {2, 5};
  spec.gpu_names = {"node-a/gpu2", "node-a/gpu5"};
  spec.env = {{"MY_VAR", "hello world"}, {"LANG", "C.UTF-8"}};
  start(spec);
  std::optional<Exit> exit = wait_exit("job_env");
  ::unsetenv("HEADROOM_TEST_SERVER_SECRET");
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 0);
  const std::string expected =
      "CVD=2,5\nID=job_env\nGPUS=node-a/gpu2,node-a/gpu5\nFILE=" + executor_->job_dir("job_env") +
      "/preempt_deadline\nMINE=hello world\nLANG=C.UTF-8\nSECRET=unset\n" +
      (std::getenv("PATH") ? "PATHSET=yes\n" : "PATHSET=\n");
  EXPECT_EQ(read_file(executor_->log_path("job_env")), expected);
}

TEST_F(LocalExecutorTest, NoGpusMeansAnEmptyCudaVisibleDevices) {
  start(shell("job_nogpu", "echo \"CVD=${CUDA_VISIBLE_DEVICES-unset} GPUS=${HEADROOM_GPUS-unset}\""));
  std::optional<Exit> exit = wait_exit("job_nogpu");
  ASSERT_TRUE(exit);
  EXPECT_EQ(read_file(executor_->log_path("job_nogpu")), "CVD= GPUS=\n");
}

TEST_F(LocalExecutorTest, RejectsEnvironmentThatOverridesHeadroom) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"CUDA_VISIBLE_DEVICES", "0"},
      {"HEADROOM_JOB_ID", "job_other"},
      {"HEADROOM_ANYTHING", "x"},
      {"", "x"},
      {"A=B", "x"},
      {std::string("A\0B", 3), "x"},
      {"GOOD_NAME", std::string("a\0b", 3)},
  };
  for (const auto& [name, value] : bad) {
    LaunchSpec spec = shell("job_badenv", "exit 0");
    spec.env = {{name, value}};
    Result<ProcessHandle> started = executor_->start(spec);
    ASSERT_FALSE(started.is_ok()) << name;
    EXPECT_EQ(started.status().code(), ErrorCode::kInvalidArgument) << name;
    if (!name.empty() && name.find('\0') == std::string::npos) {
      EXPECT_NE(started.status().message().find(name), std::string::npos) << started.status().message();
    }
  }
  LaunchSpec twice = shell("job_badenv", "exit 0");
  twice.env = {{"X", "1"}, {"X", "2"}};
  EXPECT_EQ(executor_->start(twice).status().code(), ErrorCode::kInvalidArgument);
  // Rejected before anything was made.
  EXPECT_EQ(executor_->live_jobs(), 0u);
  EXPECT_FALSE(exists(executor_->job_dir("job_badenv")));
}

TEST_F(LocalExecutorTest, HonoursTheWorkdir) {
  const std::string workdir = temp_ + "/work";
  ASSERT_TRUE(std::filesystem::create_directory(workdir));
  LaunchSpec spec = shell("job_wd", "pwd");
  spec.workdir = workdir;
  start(spec);
  ASSERT_TRUE(wait_exit("job_wd"));
  EXPECT_EQ(read_file(executor_->log_path("job_wd")), workdir + "\n");

  start(shell("job_wd_default", "pwd"));  // no workdir: the job's directory
  ASSERT_TRUE(wait_exit("job_wd_default"));
  EXPECT_EQ(read_file(executor_->log_path("job_wd_default")), executor_->job_dir("job_wd_default") + "\n");
}

TEST_F(LocalExecutorTest, LooksTheCommandUpInPathAndTheWorkdir) {
  const std::string workdir = temp_ + "/work";
  ASSERT_TRUE(std::filesystem::create_directory(workdir));
  {
    std::ofstream script(workdir + "/hello.sh");
    script << "#!/bin/sh\necho \"hello from $0\"\n";
  }
  ASSERT_EQ(::chmod((workdir + "/hello.sh").c_str(), 0755), 0);

  LaunchSpec relative;
  relative.job_id = "job_relative";
  relative.argv = {"./hello.sh"};
  relative.workdir = workdir;
  start(relative);
  ASSERT_TRUE(wait_exit("job_relative"));
  EXPECT_EQ(read_file(executor_->log_path("job_relative")), "hello from ./hello.sh\n");

  LaunchSpec in_path;  // the job's own PATH is the one searched
  in_path.job_id = "job_in_path";
  in_path.argv = {"hello.sh"};
  in_path.env = {{"PATH", "/nonexistent:" + workdir}};
  start(in_path);
  ASSERT_TRUE(wait_exit("job_in_path"));
  EXPECT_EQ(read_file(executor_->log_path("job_in_path")), "hello from " + workdir + "/hello.sh\n");
}

TEST_F(LocalExecutorTest, CommandNotFoundIsAClearError) {
  LaunchSpec spec;
  spec.job_id = "job_nocmd";
  spec.argv = {"headroom-no-such-command"};
  Result<ProcessHandle> started = executor_->start(spec);
  ASSERT_FALSE(started.is_ok());
  EXPECT_EQ(started.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(started.status().message(), "command not found: headroom-no-such-command");
  EXPECT_EQ(read_file(executor_->log_path("job_nocmd")), "headroom: command not found: headroom-no-such-command\n");

  spec.argv = {"./missing.sh"};
  started = executor_->start(spec);
  ASSERT_FALSE(started.is_ok());
  EXPECT_EQ(started.status().message(), "command not found: ./missing.sh");

  spec.argv = {};
  EXPECT_EQ(executor_->start(spec).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(executor_->live_jobs(), 0u);
}

TEST_F(LocalExecutorTest, BadWorkdirIsAClearError) {
  LaunchSpec spec = shell("job_badwd", "exit 0");
  spec.workdir = "/nonexistent-headroom-dir/sub";
  Result<ProcessHandle> started = executor_->start(spec);
  ASSERT_FALSE(started.is_ok());
  EXPECT_EQ(started.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(started.status().message(), "workdir does not exist: /nonexistent-headroom-dir/sub");
  EXPECT_NE(read_file(executor_->log_path("job_badwd")).find("headroom: workdir does not exist"), std::string::npos);

  const std::string file = temp_ + "/a-file";
  std::ofstream(file) << "x";
  spec.workdir = file;
  EXPECT_EQ(executor_->start(spec).status().message(), "workdir is not a directory: " + file);

  spec.workdir = "relative/dir";
  EXPECT_EQ(executor_->start(spec).status().message(), "workdir must be an absolute path: relative/dir");
  EXPECT_EQ(executor_->live_jobs(), 0u);
}

TEST_F(LocalExecutorTest, ExecFailureIsReportedByStart) {
  const std::string garbage = temp_ + "/garbage";
  std::ofstream(garbage) << "not a program\n";  // no "#!": execve refuses it
  ASSERT_EQ(::chmod(garbage.c_str(), 0755), 0);
  LaunchSpec spec;
  spec.job_id = "job_noexec";
  spec.argv = {garbage};
  Result<ProcessHandle> started = executor_->start(spec);
  ASSERT_FALSE(started.is_ok());
  EXPECT_EQ(started.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(started.status().message(), "cannot execute " + garbage + ": Exec format error");
  EXPECT_EQ(read_file(executor_->log_path("job_noexec")),
            "headroom: cannot execute " + garbage + ": Exec format error\n");

  ASSERT_EQ(::chmod(garbage.c_str(), 0644), 0);
  started = executor_->start(spec);
  ASSERT_FALSE(started.is_ok());
  EXPECT_EQ(started.status().message(), "cannot execute " + garbage + ": Permission denied");

  // The supervisors were reaped: this process has no child left.
  int status = 0;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_EQ(executor_->live_jobs(), 0u);
}

TEST_F(LocalExecutorTest, PreemptNoticeSendsTermAndTheDeadline) {
  start(
      shell("job_preempt",
            "trap '. \"$HEADROOM_PREEMPT_DEADLINE_FILE\"; echo \"deadline=$HEADROOM_PREEMPT_DEADLINE\"; exit 0' TERM; "
            "echo ready; while :; do sleep 0.1; done"));
  ASSERT_TRUE(wait_for_log("job_preempt", "ready"));
  const Timestamp deadline = Timestamp::from_unix_seconds(1'795'674'102);
  ASSERT_TRUE(executor_->notify_preempt("job_preempt", deadline).is_ok());
  EXPECT_EQ(read_file(executor_->job_dir("job_preempt") + "/preempt_deadline"),
            "HEADROOM_PREEMPT_DEADLINE=2026-11-26T06:21:42Z\n");

  std::optional<Exit> exit = wait_exit("job_preempt");
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_FALSE(exit->lost);
  EXPECT_NE(read_file(executor_->log_path("job_preempt")).find("deadline=2026-11-26T06:21:42Z\n"), std::string::npos);
}

TEST_F(LocalExecutorTest, KillEndsAJobThatIgnoresTerm) {
  start(shell("job_ignoring_term", "trap '' TERM; echo ready; i=0; while :; do sleep 0.05; i=$((i+1)); echo tick$i; done"));
  ASSERT_TRUE(wait_for_log("job_ignoring_term", "ready"));
  ASSERT_TRUE(executor_->notify_preempt("job_ignoring_term", clock_.now().plus_seconds(30)).is_ok());
  // It lives on after the notice: its log grows by two more ticks.
  const std::string log_at_notice = read_file(executor_->log_path("job_ignoring_term"));
  const std::size_t ticks_at_notice = std::count(log_at_notice.begin(), log_at_notice.end(), '\n');
  ASSERT_TRUE(eventually([&] {
    const std::string log = read_file(executor_->log_path("job_ignoring_term"));
    return static_cast<std::size_t>(std::count(log.begin(), log.end(), '\n')) >= ticks_at_notice + 2;
  }));
  EXPECT_TRUE(executor_->poll().empty());
  ASSERT_TRUE(executor_->kill("job_ignoring_term").is_ok());
  ASSERT_TRUE(executor_->kill("job_ignoring_term").is_ok());  // again: the group is gone, still ok
  clock_.advance_seconds(5);

  std::optional<Exit> exit = wait_exit("job_ignoring_term");
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 137);
  EXPECT_FALSE(exit->lost);  // we killed it
  if (!exists(executor_->job_dir("job_ignoring_term") + "/exit")) {
    EXPECT_EQ(exit->ended_at, clock_.now());
  }
}

TEST_F(LocalExecutorTest, SupervisorOutlivesSignalsTheJobSendsItsGroup) {
  // `trap 'kill 0' EXIT` is a common idiom; here with a signal the
  // supervisor would die of, were it not ignoring it.
  start(shell("job_kill0", "trap 'kill -USR1 0' EXIT; exit 4"));
  std::optional<Exit> exit = wait_exit("job_kill0");
  ASSERT_TRUE(exit);
  EXPECT_FALSE(exit->lost);
  EXPECT_EQ(exit->exit_code, 128 + SIGUSR1);
  EXPECT_TRUE(exists(executor_->job_dir("job_kill0") + "/exit"));
}

TEST_F(LocalExecutorTest, ChildrenAreCleanedUpWhenTheJobEnds) {
  start(shell("job_bg", "sleep 1000 & echo \"bg=$!\"; exit 0"));
  std::optional<Exit> exit = wait_exit("job_bg");
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 0);
  const std::string log = read_file(executor_->log_path("job_bg"));
  ASSERT_TRUE(log.starts_with("bg=")) << log;
  const int background = std::stoi(log.substr(3));
  ASSERT_GT(background, 0);
  // Gone, reaped too, by the time the end is reported.
  EXPECT_FALSE(exists("/proc/" + std::to_string(background))) << "the background sleep survived";
}

TEST_F(LocalExecutorTest, DescendantsThatLeftTheGroupAreCleanedUpToo) {
  if (!exists("/usr/bin/setsid") && !exists("/bin/setsid")) GTEST_SKIP() << "no setsid(1) here";
  start(shell("job_escape", "setsid sleep 1000 & echo \"bg=$!\"; sleep 0.2; exit 0"));
  std::optional<Exit> exit = wait_exit("job_escape");
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 0);
  const std::string log = read_file(executor_->log_path("job_escape"));
  ASSERT_TRUE(log.starts_with("bg=")) << log;
  const int background = std::stoi(log.substr(3));
  ASSERT_GT(background, 0);
  EXPECT_FALSE(exists("/proc/" + std::to_string(background))) << "the escaped sleep survived";
}

TEST_F(LocalExecutorTest, JobsGetNoDescriptorOfTheServer) {
  // Not close-on-exec, as some libraries leave theirs; numbered above the
  // supervisor's own 0 to 4.
  const int opened = ::open(temp_.c_str(), O_RDONLY);
  ASSERT_GE(opened, 0);
  const int leaked = ::fcntl(opened, F_DUPFD, 100);
  ::close(opened);
  ASSERT_GE(leaked, 100);
  ProcessHandle handle = start(shell("job_fds", "ls /proc/$$/fd; echo ready; while :; do sleep 1; done"));
  ASSERT_TRUE(wait_for_log("job_fds", "ready"));
  EXPECT_EQ(read_file(executor_->log_path("job_fds")), "0\n1\n2\nready\n");
  EXPECT_FALSE(exists("/proc/" + std::to_string(handle.pid) + "/fd/" + std::to_string(leaked)))
      << "the supervisor holds a descriptor of the server";
  ::close(leaked);
  ASSERT_TRUE(executor_->notify_preempt("job_fds", clock_.now()).is_ok());  // SIGTERM ends it
  ASSERT_TRUE(wait_exit("job_fds"));
}

TEST_F(LocalExecutorTest, AdoptsARunningJobAfterARestart) {
  const std::string workdir = temp_ + "/adopt";
  ASSERT_TRUE(std::filesystem::create_directory(workdir));
  LaunchSpec spec = shell("job_adopt", "while [ ! -e go ]; do sleep 0.05; done; exit 7");
  spec.workdir = workdir;
  const ProcessHandle handle = start(spec);
  executor_.reset();  // the server goes away; the job must not
  ASSERT_TRUE(running(handle));

  std::unique_ptr<LocalExecutor> next = make_executor();
  Exit ended;
  EXPECT_TRUE(next->adopt("job_adopt", handle, ended));
  EXPECT_TRUE(next->adopt("job_adopt", handle, ended));  // twice: no change
  EXPECT_EQ(next->live_jobs(), 1u);
  EXPECT_TRUE(next->poll().empty());

  std::ofstream(workdir + "/go") << "";
  std::optional<Exit> exit = wait_exit("job_adopt", next.get());
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 7);
  EXPECT_FALSE(exit->lost);
  EXPECT_EQ(exit->ended_at, mtime(next->job_dir("job_adopt") + "/exit"));
  // The adopted supervisor, still this process's child, was reaped.
  int status = 0;
  EXPECT_EQ(::waitpid(handle.pid, &status, WNOHANG), -1);
}

TEST_F(LocalExecutorTest, AdoptReportsAJobThatEndedWhileNoServerRan) {
  const ProcessHandle handle = start(shell("job_ended", "exit 5"));
  executor_.reset();
  const std::string dir = root_ + "/job_ended";
  ASSERT_TRUE(eventually([&] {
    std::optional<ProcStat> stat = proc_stat(handle.pid);
    return exists(dir + "/exit") && stat && stat->state == 'Z';
  }));

  std::unique_ptr<LocalExecutor> next = make_executor();
  Exit ended;
  EXPECT_FALSE(next->adopt("job_ended", handle, ended));
  EXPECT_EQ(ended.job_id, "job_ended");
  EXPECT_EQ(ended.exit_code, 5);
  EXPECT_FALSE(ended.lost);
  EXPECT_EQ(ended.ended_at, mtime(dir + "/exit"));
  EXPECT_EQ(next->live_jobs(), 0u);
  int status = 0;
  EXPECT_EQ(::waitpid(handle.pid, &status, WNOHANG), -1) << "adopt() reaps a supervisor that is its child";
}

TEST_F(LocalExecutorTest, AdoptWithAStaleHandleIsLost) {
  std::unique_ptr<LocalExecutor> next = make_executor();
  Exit ended;

  // This very process: a live pid whose start time is not the handle's.
  std::optional<ProcStat> self = proc_stat(::getpid());
  ASSERT_TRUE(self);
  EXPECT_FALSE(next->adopt("job_stale", ProcessHandle{::getpid(), self->start_ticks + 1}, ended));
  EXPECT_TRUE(ended.lost);
  EXPECT_EQ(ended.exit_code, 137);
  EXPECT_EQ(ended.ended_at, clock_.now());  // nothing known of it: no job directory
  EXPECT_EQ(next->live_jobs(), 0u);

  // A pid no process has.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_FALSE(next->adopt("job_stale", ProcessHandle{child, 1}, ended));
  EXPECT_TRUE(ended.lost);

  // A running job's supervisor with the wrong start time: not adopted, not touched.
  const ProcessHandle handle = start(shell("job_real", "echo ready; while :; do sleep 1; done"));
  ASSERT_TRUE(wait_for_log("job_real", "ready"));
  EXPECT_FALSE(next->adopt("job_real", ProcessHandle{handle.pid, handle.start_ticks + 1}, ended));
  EXPECT_TRUE(ended.lost);
  EXPECT_TRUE(running(handle));
  ASSERT_TRUE(executor_->notify_preempt("job_real", clock_.now()).is_ok());  // SIGTERM ends it
  ASSERT_TRUE(wait_exit("job_real"));
}

TEST_F(LocalExecutorTest, ASupervisorKilledBehindOurBackIsLostAndCleanedUp) {
  const ProcessHandle handle = start(shell("job_orphan", "sleep 1000 & echo \"bg=$!\"; while :; do sleep 1; done"));
  ASSERT_TRUE(wait_for_log("job_orphan", "bg="));
  const int background = std::stoi(read_file(executor_->log_path("job_orphan")).substr(3));
  ASSERT_EQ(::kill(handle.pid, SIGKILL), 0);  // the supervisor alone, as the OOM killer would

  clock_.advance_seconds(60);
  std::optional<Exit> exit = wait_exit("job_orphan");
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->lost);
  EXPECT_EQ(exit->exit_code, 137);
  EXPECT_EQ(exit->ended_at, clock_.now());
  EXPECT_TRUE(eventually([&] { return !pid_running(background); })) << "the job's background child survived";
}

TEST_F(LocalExecutorTest, AdoptOfASupervisorThatDiedUnseenIsLostAtItsLastSign) {
  const ProcessHandle handle = start(shell("job_unseen", "sleep 1000 & echo \"bg=$!\"; while :; do sleep 1; done"));
  ASSERT_TRUE(wait_for_log("job_unseen", "bg="));
  const int background = std::stoi(read_file(executor_->log_path("job_unseen")).substr(3));
  executor_.reset();
  ASSERT_EQ(::kill(handle.pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(handle.pid, &status, 0), handle.pid);  // as init would

  std::unique_ptr<LocalExecutor> next = make_executor();
  clock_.set(Timestamp::from_unix_seconds(4'000'000'000));  // the server came back much later
  Exit ended;
  EXPECT_FALSE(next->adopt("job_unseen", handle, ended));
  EXPECT_TRUE(ended.lost);
  EXPECT_EQ(ended.exit_code, 137);
  const std::string dir = root_ + "/job_unseen";
  EXPECT_EQ(ended.ended_at, std::max(mtime(dir + "/heartbeat"), mtime(dir + "/output.log")));
  EXPECT_TRUE(eventually([&] { return !pid_running(background); })) << "what the job left behind survived";
}

TEST_F(LocalExecutorTest, RejectsInvalidJobIds) {
  const std::vector<std::string> bad = {"",
                                        ".",
                                        "..",
                                        "../x",
                                        "a/b",
                                        "job x",
                                        "job.x",
                                        std::string("job\0x", 5),
                                        std::string(limits::kExecJobIdBytes + 1, 'a')};
  for (const std::string& id : bad) {
    Result<ProcessHandle> started = executor_->start(shell(id, "exit 0"));
    ASSERT_FALSE(started.is_ok()) << id;
    EXPECT_EQ(started.status().code(), ErrorCode::kInvalidArgument) << id;
    EXPECT_EQ(executor_->kill(id).code(), ErrorCode::kInvalidArgument) << id;
    EXPECT_EQ(executor_->notify_preempt(id, clock_.now()).code(), ErrorCode::kInvalidArgument) << id;
    Exit ended;
    EXPECT_FALSE(executor_->adopt(id, ProcessHandle{::getpid(), 1}, ended)) << id;
    EXPECT_TRUE(ended.lost);
    EXPECT_EQ(executor_->job_dir(id), root_ + "/.invalid") << id;
  }
  EXPECT_TRUE(validate_job_id("job_k3v9x2m1q8d7r4t6p0za").is_ok());
  EXPECT_TRUE(validate_job_id(std::string(limits::kExecJobIdBytes, 'A')).is_ok());
  EXPECT_EQ(std::filesystem::directory_iterator(root_), std::filesystem::directory_iterator());
}

TEST_F(LocalExecutorTest, ARunningIdConflictsAndAFinishedOneRunsAgain) {
  start(shell("job_again", "echo run1; echo ready; while [ ! -e go ]; do sleep 0.05; done; exit 1"));
  ASSERT_TRUE(wait_for_log("job_again", "ready"));
  EXPECT_EQ(executor_->start(shell("job_again", "exit 0")).status().code(), ErrorCode::kConflict);
  std::ofstream(executor_->job_dir("job_again") + "/go") << "";
  std::optional<Exit> first = wait_exit("job_again");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->exit_code, 1);

  ASSERT_TRUE(executor_->notify_preempt("job_other", clock_.now()).code() == ErrorCode::kNotFound);
  start(shell("job_again", "echo run2; exit 2"));
  std::optional<Exit> second = wait_exit("job_again");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->exit_code, 2);
  EXPECT_EQ(read_file(executor_->log_path("job_again")), "run1\nready\nrun2\n");
}

TEST_F(LocalExecutorTest, FindRunGivesTheHandleOfAStartedRunToAnotherServer) {
  LaunchSpec spec = shell("job_find", "cat run; echo ready; while [ ! -e go ]; do sleep 0.05; done; exit 4");
  spec.run_id = "1.1732694000000000";
  const ProcessHandle handle = start(spec);
  ASSERT_TRUE(wait_for_log("job_find", "ready"));
  // The run file was in place when the command ran (its workdir is the job's directory).
  EXPECT_EQ(read_file(executor_->log_path("job_find")), "1.1732694000000000 " + std::to_string(handle.pid) + " " +
                                                            std::to_string(handle.start_ticks) + "\nready\n");

  Result<std::optional<ProcessHandle>> found = executor_->find_run("job_find", spec.run_id);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->pid, handle.pid);
  EXPECT_EQ((*found)->start_ticks, handle.start_ticks);
  EXPECT_EQ((*found)->external_id, "");
  Result<std::optional<ProcessHandle>> other = executor_->find_run("job_find", "1.1732694000000001");
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  EXPECT_FALSE(other->has_value());
  Result<std::optional<ProcessHandle>> never = executor_->find_run("job_never", spec.run_id);
  ASSERT_TRUE(never.is_ok()) << never.status().to_string();
  EXPECT_FALSE(never->has_value());

  // The server that started it goes away before recording the handle; the next one finds and adopts it.
  executor_.reset();
  std::unique_ptr<LocalExecutor> next = make_executor();
  found = next->find_run("job_find", spec.run_id);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->pid, handle.pid);
  EXPECT_EQ((*found)->start_ticks, handle.start_ticks);
  Exit ended;
  ASSERT_TRUE(next->adopt("job_find", **found, ended));
  std::ofstream(next->job_dir("job_find") + "/go") << "";
  std::optional<Exit> exit = wait_exit("job_find", next.get());
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 4);
  EXPECT_FALSE(exit->lost);
}

TEST_F(LocalExecutorTest, ALaterStartForgetsTheEarlierRun) {
  LaunchSpec spec = shell("job_rerun", "exit 0");
  spec.run_id = "1.100";
  const ProcessHandle first = start(spec);
  ASSERT_TRUE(wait_exit("job_rerun"));
  Result<std::optional<ProcessHandle>> found = executor_->find_run("job_rerun", "1.100");
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->pid, first.pid);

  spec.run_id = "2.200";
  const ProcessHandle second = start(spec);
  ASSERT_TRUE(wait_exit("job_rerun"));
  found = executor_->find_run("job_rerun", "1.100");
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  EXPECT_FALSE(found->has_value()) << "the first run is still found after a second start";
  found = executor_->find_run("job_rerun", "2.200");
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->pid, second.pid);
  EXPECT_EQ((*found)->start_ticks, second.start_ticks);

  // A start without a run id records none, and forgets the earlier one too.
  spec.run_id.clear();
  start(spec);
  ASSERT_TRUE(wait_exit("job_rerun"));
  found = executor_->find_run("job_rerun", "2.200");
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  EXPECT_FALSE(found->has_value());
  EXPECT_FALSE(exists(executor_->job_dir("job_rerun") + "/run"));
}

TEST_F(LocalExecutorTest, AStartThatFailsLeavesNoRunToFind) {
  const std::string garbage = temp_ + "/garbage";
  std::ofstream(garbage) << "not a program\n";  // no "#!": execve refuses it
  ASSERT_EQ(::chmod(garbage.c_str(), 0755), 0);
  LaunchSpec spec;
  spec.job_id = "job_failed_run";
  spec.argv = {garbage};
  spec.run_id = "5.500";
  Result<ProcessHandle> started = executor_->start(spec);
  ASSERT_FALSE(started.is_ok());
  EXPECT_EQ(started.status().code(), ErrorCode::kInvalidArgument);
  Result<std::optional<ProcessHandle>> found = executor_->find_run("job_failed_run", "5.500");
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  EXPECT_FALSE(found->has_value());
}

TEST_F(LocalExecutorTest, RejectsBadRunIds) {
  for (const std::string& bad : {std::string("a b"), std::string("x/y"), std::string("..\n"), std::string("r\0id", 4),
                                 std::string(limits::kExecRunIdBytes + 1, '1')}) {
    LaunchSpec spec = shell("job_bad_run", "exit 0");
    spec.run_id = bad;
    Result<ProcessHandle> started = executor_->start(spec);
    ASSERT_FALSE(started.is_ok()) << bad;
    EXPECT_EQ(started.status().code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_EQ(executor_->find_run("job_bad_run", bad).status().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(executor_->find_run("job_bad_run", "").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(executor_->find_run("../x", "1.1").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(validate_run_id(std::string(limits::kExecRunIdBytes, 'a')).is_ok());
  EXPECT_TRUE(validate_run_id("12.1732694000000000").is_ok());
  EXPECT_TRUE(validate_run_id("A-z_0.9").is_ok());
}

// The server dies after recording the run but before the go-ahead: the
// supervisor must exit without running the command. The "server" is a forked
// child of this test that starts the job and is SIGKILLed at that point.
TEST_F(LocalExecutorTest, NoCommandRunsWithoutTheGoAhead) {
  const std::string marker = temp_ + "/ran";
  LaunchSpec spec = shell("job_no_go", "echo ran > " + marker + "; exit 3");
  spec.run_id = "3.300";
  const pid_t server = ::fork();
  ASSERT_GE(server, 0);
  if (server == 0) {
    Result<std::unique_ptr<LocalExecutor>> executor = LocalExecutor::create(root_, clock_);
    if (!executor) ::_exit(1);
    (*executor)->set_before_go_ahead_for_testing([] { ::kill(::getpid(), SIGKILL); });
    (void)(*executor)->start(spec);
    ::_exit(2);  // not reached: the hook kills this process
  }
  int status = 0;
  ASSERT_EQ(::waitpid(server, &status, 0), server);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the server did not reach the hook: " << status;

  // The run was recorded before the go-ahead, so it is found.
  Result<std::optional<ProcessHandle>> found = executor_->find_run("job_no_go", "3.300");
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_TRUE(found->has_value());
  const ProcessHandle handle = **found;
  handles_.push_back(handle);
  // Its supervisor read end of file and ended: had it run the command, it
  // would have waited for it, and the marker and the exit record would be there.
  EXPECT_TRUE(eventually([&] { return !running(handle); })) << "the supervisor waits on without a server";
  const std::string dir = executor_->job_dir("job_no_go");
  EXPECT_FALSE(exists(marker)) << "the command ran without the go-ahead";
  EXPECT_FALSE(exists(dir + "/exit"));
  EXPECT_EQ(read_file(executor_->log_path("job_no_go")), "");
  Exit ended;
  EXPECT_FALSE(executor_->adopt("job_no_go", handle, ended));
  EXPECT_TRUE(ended.lost);
  EXPECT_EQ(ended.exit_code, 137);
}

TEST_F(LocalExecutorTest, PollStaysCheapWithManyLiveJobs) {
  constexpr int kJobs = 200;
  for (int i = 0; i < kJobs; ++i) {
    LaunchSpec spec;
    spec.job_id = "job_many_" + std::to_string(i);
    spec.argv = {"sleep", "1000"};
    start(spec);
  }
  ASSERT_EQ(executor_->live_jobs(), static_cast<std::size_t>(kJobs));
  auto fastest = std::chrono::nanoseconds::max();
  for (int round = 0; round < 20; ++round) {
    const auto begin = std::chrono::steady_clock::now();
    EXPECT_TRUE(executor_->poll().empty());
    fastest = std::min(fastest, std::chrono::steady_clock::now() - begin);
  }
  RecordProperty("poll_us_200_jobs", std::to_string(fastest.count() / 1000));
  EXPECT_LT(fastest, std::chrono::milliseconds(20));

  // Ended by SIGTERM, not kill(): the supervisors then reap their jobs
  // themselves, which leaves no zombie to an init that does not reap (as in
  // some containers).
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_TRUE(executor_->notify_preempt("job_many_" + std::to_string(i), clock_.now()).is_ok());
  }
  std::size_t reported = 0;
  ASSERT_TRUE(eventually([&] {
    for (const Exit& exit : executor_->poll()) {
      EXPECT_EQ(exit.exit_code, 128 + SIGTERM);
      EXPECT_FALSE(exit.lost);
      ++reported;
    }
    return reported == kJobs;
  }));
}

TEST(ParseProcStat, CountsFieldsFromTheLastParenthesis) {
  const std::string line =
      "4242 (we ird) (name)) S 17 4242 4242 0 -1 4194560 310 0 0 0 1 2 0 0 20 0 1 0 987654321 12345 "
      "678 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
  Result<ProcStat> stat = parse_proc_stat(line);
  ASSERT_TRUE(stat.is_ok()) << stat.status().to_string();
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->ppid, 17);
  EXPECT_EQ(stat->pgrp, 4242);
  EXPECT_EQ(stat->start_ticks, 987654321u);

  for (const char* bad : {"", "4242 no parens S 1 2 3", "4242 (x) S 1 2",
                          "4242 (x) S x 4242 4242 0 -1 4194560 310 0 0 0 1 2 0 0 20 0 1 0 99",
                          "4242 (x) S 1 4242 4242 0 -1 4194560 310 0 0 0 1 2 0 0 20 0 1 0 -5",
                          "4242 (x) SS 1 4242 4242 0 -1 4194560 310 0 0 0 1 2 0 0 20 0 1 0 99"}) {
    EXPECT_FALSE(parse_proc_stat(bad).is_ok()) << bad;
  }
  EXPECT_TRUE(parse_proc_stat("4242 (x) S 1 4242 4242 0 -1 4194560 310 0 0 0 1 2 0 0 20 0 1 0 99").is_ok());
}

TEST(ParseExitRecord, ExitCodesAndSignals) {
  EXPECT_EQ(*parse_exit_record("exit 0\n"), 0);
  EXPECT_EQ(*parse_exit_record("exit 3\n"), 3);
  EXPECT_EQ(*parse_exit_record("exit 255\n"), 255);
  EXPECT_EQ(*parse_exit_record("signal 9\n"), 137);
  EXPECT_EQ(*parse_exit_record("signal 15\n"), 143);
  for (const char* bad : {"", "exit 3", "exit 256\n", "exit -1\n", "exit \n", "exit 3\nx", "signal 0\n", "signal 65\n",
                          "signal 9 \n", "exit 0003\n", "quit 1\n", "EXIT 1\n"}) {
    EXPECT_FALSE(parse_exit_record(bad).is_ok()) << bad;
  }
}

TEST(RunRecord, FormatsAndParsesBack) {
  const RunRecord local{"1.1732694000000000", ProcessHandle{4242, 98765}};
  EXPECT_EQ(format_run_record(local), "1.1732694000000000 4242 98765\n");
  const RunRecord slurm{"7.1", ProcessHandle{0, 0, "1234"}};
  EXPECT_EQ(format_run_record(slurm), "7.1 0 0 1234\n");
  for (const RunRecord& record : {local, slurm}) {
    Result<RunRecord> parsed = parse_run_record(format_run_record(record));
    ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
    EXPECT_EQ(parsed->run_id, record.run_id);
    EXPECT_EQ(parsed->handle.pid, record.handle.pid);
    EXPECT_EQ(parsed->handle.start_ticks, record.handle.start_ticks);
    EXPECT_EQ(parsed->handle.external_id, record.handle.external_id);
  }
  for (const char* bad : {"", "\n", "1.1 4242 98765", "1.1 4242\n", "1.1 4242 98765 \n", "1.1  4242 98765\n",
                          "1.1 0 0\n", "1.1 -1 5\n", "1.1 x 5\n", "1.1 4242 98765 12 34\n", "a/b 4242 98765\n",
                          " 4242 98765\n", "1.1 4242 98765 12|x\n", "1.1 4242 98765\nmore\n"}) {
    EXPECT_FALSE(parse_run_record(bad).is_ok()) << bad;
  }
}

TEST(LocalExecutorCreate, RejectsARootThatIsNoDirectory) {
  ManualClock clock;
  EXPECT_FALSE(LocalExecutor::create("", clock).is_ok());
  EXPECT_FALSE(LocalExecutor::create("/nonexistent-headroom-parent/jobs", clock).is_ok());
  Result<std::unique_ptr<LocalExecutor>> on_a_file = LocalExecutor::create("/dev/null", clock);
  ASSERT_FALSE(on_a_file.is_ok());
  EXPECT_EQ(on_a_file.status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace headroom::exec
