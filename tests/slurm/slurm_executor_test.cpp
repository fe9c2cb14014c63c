// The Slurm executor against a real Slurm: munged, slurmctld and slurmd from
// Debian's packages, started by scripts/test-slurm.sh as a ctest fixture
// (tests/CMakeLists.txt), one node with 4 fake GPUs of type "h100".
//
// HEADROOM_TEST_SLURM_DIR names the fixture's directory: DIR/slurm.conf when
// Slurm is up, DIR/unavailable (the reason) when it could not be started
// here (not root, not installed). The tests then skip, except under CI=true,
// where they fail: CI must run them.
//
// The tests run one after another in one process (one ctest test): they
// share the node's 4 GPUs.
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

#include "exec/slurm_executor.h"
#include "fleet/slurm_fleet.h"

namespace headroom::exec {
namespace {

// Generous: Slurm starts a job within seconds, on a loaded 2-core box more.
// Every wait is a loop that ends as soon as its condition holds.
constexpr auto kWait = std::chrono::seconds(90);
constexpr auto kPollInterval = std::chrono::milliseconds(100);

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A Status as a gtest assertion, so that a failure shows the message.
::testing::AssertionResult ok(const Status& status) {
  if (status.is_ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status.to_string();
}

template <typename Condition>
bool eventually(Condition condition, std::chrono::seconds wait = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(kPollInterval);
  }
  return condition();
}

class SlurmExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("HEADROOM_TEST_SLURM_DIR");
    const char* ci = std::getenv("CI");
    const bool must_run = ci != nullptr && std::string(ci) == "true";
    std::string why;
    if (dir == nullptr || *dir == '\0') {
      why = "HEADROOM_TEST_SLURM_DIR is not set (run through ctest, which starts Slurm: scripts/test-slurm.sh)";
    } else if (std::filesystem::exists(std::string(dir) + "/unavailable")) {
      why = "Slurm could not be started here: " + read_file(std::string(dir) + "/unavailable");
    } else if (!std::filesystem::exists(std::string(dir) + "/slurm.conf")) {
      why =
          std::string("no Slurm is running: ") + dir + "/slurm.conf is missing (did scripts/test-slurm.sh start fail?)";
    }
    if (!why.empty()) {
      if (must_run) FAIL() << why << " (CI=true: the Slurm tests must run)";
      GTEST_SKIP() << why;
    }
    dir_ = dir;
    options_.slurm_conf = dir_ + "/slurm.conf";
    // Under the fixture's directory, so that its cleanup finds what a
    // failed test left running (scripts/test-slurm.sh stop).
    options_.jobs_root = dir_ + "/jobs";
    std::filesystem::create_directories(options_.jobs_root);
    options_.jobs_root += "/" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
    options_.poll_interval_ms = 0;
    options_.command_timeout_ms = 30'000;
    auto executor = SlurmExecutor::create(options_, clock_);
    ASSERT_TRUE(executor.is_ok()) << executor.status().to_string();
    executor_ = std::move(*executor);

    auto nodes = slurm_show_nodes(options_);
    ASSERT_TRUE(nodes.is_ok()) << nodes.status().to_string();
    fleet::SlurmFleetOptions fleet_options;
    fleet_options.gpu_types = {{"h100", "NVIDIA H100 80GB HBM3", 81559}};
    auto fleet = fleet::fleet_from_slurm_nodes(*nodes, fleet_options);
    ASSERT_TRUE(fleet.is_ok()) << fleet.status().to_string();
    ASSERT_EQ(fleet->nodes.size(), 1u);
    node_ = fleet->nodes[0].name;
  }

  void TearDown() override {
    // Whatever a failed test left: cancelled, so that the next test has the GPUs.
    if (executor_) {
      for (const std::string& id : started_) (void)executor_->kill(id);
    }
  }

  LaunchSpec spec(const std::string& job_id, std::vector<std::string> argv, int gpus = 1) {
    LaunchSpec s;
    s.job_id = job_id;
    s.argv = std::move(argv);
    s.nodes = {node_};
    s.gpu_type = "h100";
    for (int i = 0; i < gpus; ++i) {
      s.gpu_devices.push_back(i);
      s.gpu_names.push_back(node_ + ":" + std::to_string(i));
    }
    return s;
  }

  ProcessHandle start(const LaunchSpec& s) {
    auto handle = executor_->start(s);
    EXPECT_TRUE(handle.is_ok()) << handle.status().to_string();
    started_.push_back(s.job_id);
    return handle.is_ok() ? *handle : ProcessHandle{};
  }

  // Polls until the job is reported; nullopt when it is not within kWait.
  // Other jobs a poll reports meanwhile are kept for their own wait.
  std::optional<Exit> wait_exit(SlurmExecutor& executor, const std::string& job_id) {
    auto take = [&]() -> std::optional<Exit> {
      for (auto it = reported_.begin(); it != reported_.end(); ++it) {
        if (it->job_id != job_id) continue;
        Exit e = *it;
        reported_.erase(it);
        return e;
      }
      return std::nullopt;
    };
    std::optional<Exit> found = take();
    if (found) return found;
    eventually([&] {
      for (Exit& e : executor.poll()) reported_.push_back(e);
      found = take();
      return found.has_value();
    });
    return found;
  }

  // Waits until the job's log holds `text` (the job runs and got that far).
  bool log_shows(const std::string& job_id, const std::string& text) {
    return eventually([&] { return read_file(executor_->log_path(job_id)).find(text) != std::string::npos; });
  }

  std::string scontrol_job(const std::string& slurm_id) {
    auto out = run_slurm_command(options_, "scontrol", {"show", "job", "--oneliner", slurm_id});
    return out.is_ok() ? out->out : out.status().to_string();
  }

  ManualClock clock_;
  std::string dir_;
  std::string node_;
  SlurmOptions options_;
  std::unique_ptr<SlurmExecutor> executor_;
  std::vector<std::string> started_;
  std::vector<Exit> reported_;  // by poll(), not yet waited for
};

TEST_F(SlurmExecutorTest, RunsAJobAndReportsItsExitCode) {
  const ProcessHandle handle = start(spec("job_exit3", {"sh", "-c", "echo hello from slurm; exit 3"}));
  EXPECT_FALSE(handle.external_id.empty());
  EXPECT_EQ(handle.pid, 0);
  std::optional<Exit> exit = wait_exit(*executor_, "job_exit3");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_FALSE(exit->lost);
  EXPECT_GT(exit->ended_at.unix_micros, 0);
  EXPECT_NE(read_file(executor_->log_path("job_exit3")).find("hello from slurm\n"), std::string::npos);
  EXPECT_EQ(read_file(executor_->job_dir("job_exit3") + "/slurm_job_id"), handle.external_id + "\n");
  EXPECT_EQ(executor_->live_jobs(), 0u);
  EXPECT_EQ(executor_->kill("job_exit3").code(), ErrorCode::kNotFound);  // reported: no longer here

  start(spec("job_exit0", {"true"}));
  exit = wait_exit(*executor_, "job_exit0");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_FALSE(exit->lost);
}

TEST_F(SlurmExecutorTest, TheJobSeesItsGpusAndIdAndIsPlacedWhereHeadroomSaid) {
  const ProcessHandle handle = start(
      spec("job_env",
           {"sh", "-c", "echo \"CVD=$CUDA_VISIBLE_DEVICES ID=$HEADROOM_JOB_ID GPUS=$HEADROOM_GPUS\"; sleep 1"}, 2));
  ASSERT_TRUE(log_shows("job_env", "CVD="));
  const std::string placed = scontrol_job(handle.external_id);
  EXPECT_NE(placed.find(" NodeList=" + node_ + " "), std::string::npos) << placed;
  EXPECT_NE(placed.find("gres:gpu:h100:2"), std::string::npos) << placed;
  std::optional<Exit> exit = wait_exit(*executor_, "job_env");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 0);
  const std::string log = read_file(executor_->log_path("job_env"));
  // Slurm chose 2 of the 4 GPUs: two distinct indexes below 4.
  const std::size_t at = log.find("CVD=");
  ASSERT_NE(at, std::string::npos) << log;
  const std::string cvd = log.substr(at + 4, log.find(' ', at) - at - 4);
  ASSERT_EQ(cvd.size(), 3u) << log;
  EXPECT_EQ(cvd[1], ',') << log;
  EXPECT_NE(cvd[0], cvd[2]) << log;
  EXPECT_LE(cvd[0], '3');
  EXPECT_LE(cvd[2], '3');
  EXPECT_NE(log.find("ID=job_env GPUS=" + node_ + ":0," + node_ + ":1"), std::string::npos) << log;
}

TEST_F(SlurmExecutorTest, SlurmRefusalsAreErrorsWithItsMessage) {
  LaunchSpec wrong_type = spec("job_a100", {"true"});
  wrong_type.gpu_type = "a100";
  auto refused = executor_->start(wrong_type);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("Slurm refused job job_a100: "), std::string::npos)
      << refused.status().message();
  EXPECT_NE(read_file(executor_->log_path("job_a100")).find("headroom: Slurm refused"), std::string::npos);

  LaunchSpec too_many = spec("job_9gpus", {"true"}, 9);
  EXPECT_FALSE(executor_->start(too_many).is_ok());
  LaunchSpec no_node = spec("job_nonode", {"true"});
  no_node.nodes = {"no-such-node"};
  refused = executor_->start(no_node);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("Slurm refused"), std::string::npos) << refused.status().message();
  EXPECT_EQ(executor_->live_jobs(), 0u);

  SlurmOptions missing = options_;
  missing.bin_dir = "/nonexistent";
  auto other = SlurmExecutor::create(missing, clock_);
  ASSERT_TRUE(other.is_ok());
  refused = (*other)->start(spec("job_nosbatch", {"true"}));
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("/nonexistent/sbatch not found"), std::string::npos)
      << refused.status().message();
}

TEST_F(SlurmExecutorTest, AMissingCommandFailsOnTheNodeWith127) {
  start(spec("job_nocmd", {"no-such-command-anywhere"}));
  std::optional<Exit> exit = wait_exit(*executor_, "job_nocmd");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 127);
  EXPECT_NE(read_file(executor_->log_path("job_nocmd")).find("no-such-command-anywhere"), std::string::npos);
}

TEST_F(SlurmExecutorTest, KillEndsTheJobAndEverythingItStarted) {
  const std::string child_pid_file = dir_ + "/kill-child-" + std::to_string(::getpid());
  start(spec(
      "job_kill",
      {"sh", "-c", "trap '' TERM; sh -c 'echo $$ >" + child_pid_file + "; exec sleep 300' & echo started; sleep 300"}));
  ASSERT_TRUE(log_shows("job_kill", "started"));
  ASSERT_TRUE(eventually([&] { return !read_file(child_pid_file).empty(); }));
  const std::string child = "/proc/" + std::to_string(std::stoi(read_file(child_pid_file)));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(ok(executor_->kill("job_kill")));
  std::optional<Exit> exit = wait_exit(*executor_, "job_kill");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 137);
  EXPECT_FALSE(exit->lost);  // we killed it
  // SIGKILL at once, not TERM and Slurm's KillWait: the job ignores TERM.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
  // What the job started in the background went with it.
  EXPECT_TRUE(eventually([&] { return !std::filesystem::exists(child); }, std::chrono::seconds(10))) << child;
  std::filesystem::remove(child_pid_file);
}

TEST_F(SlurmExecutorTest, PreemptionSendsTermAndTheJobReadsItsDeadline) {
  start(
      spec("job_preempt", {"sh", "-c",
                           "trap 'echo got TERM; cat \"$HEADROOM_PREEMPT_DEADLINE_FILE\"; exit 0' TERM; echo started; "
                           "while :; do sleep 0.2; done"}));
  ASSERT_TRUE(log_shows("job_preempt", "started"));
  const Timestamp deadline = Timestamp::from_unix_seconds(1'900'000'000);
  ASSERT_TRUE(ok(executor_->notify_preempt("job_preempt", deadline)));
  std::optional<Exit> exit = wait_exit(*executor_, "job_preempt");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 0);  // its handler's
  const std::string log = read_file(executor_->log_path("job_preempt"));
  EXPECT_NE(log.find("got TERM\nHEADROOM_PREEMPT_DEADLINE=" + to_rfc3339(deadline) + "\n"), std::string::npos) << log;
  EXPECT_EQ(executor_->notify_preempt("job_preempt", deadline).code(), ErrorCode::kNotFound);
}

TEST_F(SlurmExecutorTest, AJobThatIgnoresTheNoticeIsKilledAfterTheGrace) {
  start(
      spec("job_stubborn", {"sh", "-c", "trap 'echo ignoring TERM' TERM; echo started; while :; do sleep 0.2; done"}));
  ASSERT_TRUE(log_shows("job_stubborn", "started"));
  ASSERT_TRUE(ok(executor_->notify_preempt("job_stubborn", clock_.now().plus_seconds(2))));
  ASSERT_TRUE(log_shows("job_stubborn", "ignoring TERM"));
  // The grace (the compute service counts it): the job runs on meanwhile.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_TRUE(executor_->poll().empty());
  EXPECT_EQ(executor_->live_jobs(), 1u);
  ASSERT_TRUE(ok(executor_->kill("job_stubborn")));
  std::optional<Exit> exit = wait_exit(*executor_, "job_stubborn");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 137);
  EXPECT_FALSE(exit->lost);
}

TEST_F(SlurmExecutorTest, AJobSlurmHasNotStartedIsCancelledOnNoticeOrKill) {
  // All 4 GPUs taken: the next jobs wait in Slurm's queue.
  start(spec("job_all_gpus", {"sh", "-c", "echo started; sleep 300"}, 4));
  ASSERT_TRUE(log_shows("job_all_gpus", "started"));
  start(spec("job_waiting1", {"true"}));
  start(spec("job_waiting2", {"true"}));
  EXPECT_TRUE(executor_->poll().empty());
  ASSERT_TRUE(ok(executor_->notify_preempt("job_waiting1", clock_.now().plus_seconds(30))));
  ASSERT_TRUE(ok(executor_->kill("job_waiting2")));
  // One poll may report both: each is reported once.
  std::vector<Exit> exits;
  ASSERT_TRUE(eventually([&] {
    for (Exit& e : executor_->poll()) exits.push_back(e);
    return exits.size() == 2;
  }));
  for (const Exit& e : exits) {
    EXPECT_TRUE(e.job_id == "job_waiting1" || e.job_id == "job_waiting2") << e.job_id;
    EXPECT_FALSE(e.lost) << e.job_id;
  }
  EXPECT_TRUE(read_file(executor_->log_path("job_waiting1")).empty());  // it never ran
  ASSERT_TRUE(ok(executor_->kill("job_all_gpus")));
  ASSERT_TRUE(wait_exit(*executor_, "job_all_gpus").has_value());
}

TEST_F(SlurmExecutorTest, ANewExecutorAdoptsARunningJobByItsSlurmId) {
  const std::string gate = dir_ + "/gate-" + std::to_string(::getpid());
  const ProcessHandle handle =
      start(spec("job_adopt", {"sh", "-c", "echo started; while [ ! -e " + gate + " ]; do sleep 0.2; done; exit 5"}));
  ASSERT_TRUE(log_shows("job_adopt", "started"));
  executor_.reset();  // the server stops; the job runs on

  auto next = SlurmExecutor::create(options_, clock_);
  ASSERT_TRUE(next.is_ok());
  Exit ended;
  EXPECT_TRUE((*next)->adopt("job_adopt", handle, ended));
  EXPECT_TRUE((*next)->adopt("job_adopt", handle, ended));  // again: no change
  EXPECT_EQ((*next)->live_jobs(), 1u);
  EXPECT_TRUE((*next)->poll().empty());
  std::ofstream(gate) << "go";
  std::optional<Exit> exit = wait_exit(**next, "job_adopt");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 5);
  EXPECT_FALSE(exit->lost);
  std::filesystem::remove(gate);
  executor_ = std::move(*next);
}

TEST_F(SlurmExecutorTest, AJobThatEndedWhileNoServerWatchedIsReportedOnAdopt) {
  const ProcessHandle handle = start(spec("job_gone", {"sh", "-c", "exit 4"}));
  executor_.reset();
  // Slurm finishes it meanwhile.
  ASSERT_TRUE(eventually([&] {
    auto out = run_slurm_command(options_, "squeue",
                                 {"--noheader", "--states=all", "--jobs=" + handle.external_id, "--format=%T"});
    return out.is_ok() && is_finished_slurm_state(std::string_view(out->out).substr(0, out->out.find('\n')));
  }));
  auto next = SlurmExecutor::create(options_, clock_);
  ASSERT_TRUE(next.is_ok());
  Exit ended;
  // By the Slurm id kept in the job's directory, the handle having lost it.
  EXPECT_FALSE((*next)->adopt("job_gone", ProcessHandle{}, ended));
  EXPECT_EQ(ended.job_id, "job_gone");
  EXPECT_EQ(ended.exit_code, 4);
  EXPECT_FALSE(ended.lost);
  EXPECT_EQ((*next)->live_jobs(), 0u);

  // A Slurm job id Slurm never had, and no exit record: lost.
  Exit lost;
  EXPECT_FALSE((*next)->adopt("job_never", ProcessHandle{0, 0, "99999999"}, lost));
  EXPECT_TRUE(lost.lost);
  EXPECT_EQ(lost.exit_code, 137);
  executor_ = std::move(*next);
}

TEST_F(SlurmExecutorTest, PollAsksSlurmOnceForAllJobs) {
  // Four jobs end; one poll reports them all (one squeue for all of them).
  for (int i = 0; i < 4; ++i) start(spec("job_many" + std::to_string(i), {"sh", "-c", "exit " + std::to_string(i)}));
  std::vector<Exit> exits;
  ASSERT_TRUE(eventually([&] {
    for (Exit& e : executor_->poll()) exits.push_back(e);
    return exits.size() == 4;
  }));
  for (const Exit& e : exits) EXPECT_EQ(std::to_string(e.exit_code), e.job_id.substr(8)) << e.job_id;
}

TEST_F(SlurmExecutorTest, TheFleetFollowsSlurmsNodeStates) {
  auto fleet_now = [&]() -> Result<fleet::FleetSpec> {
    HR_ASSIGN_OR_RETURN(std::string nodes, slurm_show_nodes(options_));
    fleet::SlurmFleetOptions fleet_options;
    fleet_options.gpu_types = {{"h100", "NVIDIA H100 80GB HBM3", 81559}};
    return fleet::fleet_from_slurm_nodes(nodes, fleet_options);
  };
  auto up = fleet_now();
  ASSERT_TRUE(up.is_ok()) << up.status().to_string();
  ASSERT_EQ(up->nodes[0].gpus.size(), 4u);
  EXPECT_EQ(up->nodes[0].gpus[3].type, "h100");
  EXPECT_EQ(up->nodes[0].state, fleet::NodeState::kUp);
  EXPECT_EQ(up->source, "slurm");

  auto update = [&](const std::string& state) {
    std::vector<std::string> args = {"update", "NodeName=" + node_, "State=" + state};
    if (state == "DRAIN") args.push_back("Reason=headroom-test");
    auto out = run_slurm_command(options_, "scontrol", args);
    return out.is_ok() && out->exit_code == 0;
  };
  ASSERT_TRUE(update("DRAIN"));
  auto drained = fleet_now();
  const bool resumed = update("RESUME");  // before any assertion can end the test
  ASSERT_TRUE(drained.is_ok()) << drained.status().to_string();
  EXPECT_EQ(drained->nodes[0].state, fleet::NodeState::kDraining);
  ASSERT_TRUE(resumed);
  EXPECT_TRUE(eventually([&] {
    auto again = fleet_now();
    return again.is_ok() && again->nodes[0].state == fleet::NodeState::kUp;
  }));
}

// After a takeover: the run that began is found through its run file, and
// through squeue when the server died before writing it; a later run of the
// same job never answers for the first one's id.
TEST_F(SlurmExecutorTest, FindRunFindsAStartedRunThroughItsFileAndThroughSqueue) {
  LaunchSpec spec = this->spec("job_exec_find", {"sh", "-c", "while [ ! -e go ]; do sleep 0.1; done; exit 6"});
  // Unique, as the compute service's are: slurmctld remembers an earlier run of this test's for a while.
  const std::string stamp = std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  spec.run_id = "1." + stamp;
  const std::string dir = executor_->job_dir(spec.job_id);
  std::filesystem::remove_all(dir);  // what an earlier run of this test left (its "go")
  auto started = executor_->start(spec);
  ASSERT_TRUE(started.is_ok()) << started.status().to_string();
  started_.push_back(spec.job_id);

  auto found = executor_->find_run(spec.job_id, spec.run_id);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->external_id, started->external_id);
  auto other = executor_->find_run(spec.job_id, "0." + stamp);
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  EXPECT_FALSE(other->has_value());
  auto never = executor_->find_run("job_exec_never", spec.run_id);
  ASSERT_TRUE(never.is_ok()) << never.status().to_string();
  EXPECT_FALSE(never->has_value());

  // The server died between sbatch and the run file: a new one asks squeue, and adopts.
  ASSERT_TRUE(std::filesystem::remove(dir + "/run"));
  auto made = SlurmExecutor::create(options_, clock_);
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  executor_ = std::move(*made);  // a new server's executor: TearDown cancels through it
  SlurmExecutor* next = executor_.get();
  found = next->find_run(spec.job_id, spec.run_id);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->external_id, started->external_id);
  other = next->find_run(spec.job_id, "0." + stamp);
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  EXPECT_FALSE(other->has_value());
  Exit ended;
  ASSERT_TRUE(next->adopt(spec.job_id, **found, ended));
  std::ofstream(dir + "/go") << "";
  std::optional<Exit> exit = wait_exit(*next, spec.job_id);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 6);
  EXPECT_FALSE(exit->lost);

  // A second start: its run is found, and the first run id never names it.
  spec.argv = {"true"};
  spec.run_id = "2." + stamp;
  auto again = next->start(spec);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  ASSERT_NE(again->external_id, started->external_id);
  found = next->find_run(spec.job_id, "2." + stamp);
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->external_id, again->external_id);
  ASSERT_TRUE(std::filesystem::remove(dir + "/run"));
  found = next->find_run(spec.job_id, "2." + stamp);  // through squeue
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->external_id, again->external_id);
  // The first run, ended: squeue may still show it (until MinJobAge), as itself.
  found = next->find_run(spec.job_id, "1." + stamp);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  if (found->has_value()) {
    EXPECT_EQ((*found)->external_id, started->external_id);
  }
  ASSERT_TRUE(wait_exit(*next, spec.job_id));
}

}  // namespace
}  // namespace headroom::exec
