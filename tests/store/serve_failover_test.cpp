// Leader failover of `headroom serve` on a shared PostgreSQL store (issue 8):
// two real processes share the database and the data directory; the leader
// runs the jobs, the follower forwards the API to it. The leader is killed
// with SIGKILL mid-work, with jobs running and queued, and the follower takes
// over. Then: no job started twice, no GPU held by two jobs at once, every
// job's GPU time in the ledger exactly once, and the takeover within 5 s.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/time.h"
#include "server_process.h"
#include "store/store_test_util.h"

namespace headroom::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using store::testing::Backend;
using store::testing::PostgresTestDatabase;
using store::testing::TempDir;

constexpr int kJobs = 8;          // 2 GPUs each on a 4-GPU node: four waves
constexpr int kJobSeconds = 2;
constexpr std::int64_t kRoundingMs = 20;  // GPU-ms lost to rounding over a run's few intervals

struct JobRun {
  int starts = 0, ends = 0;
  std::vector<std::string> gpus;
  std::int64_t start_ns = 0, end_ns = 0;
};

// What the jobs wrote: "start JOB GPUS NS" and "end JOB NS", a line each.
std::map<std::string, JobRun> read_runs(const std::string& path) {
  std::map<std::string, JobRun> runs;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string what, job;
    words >> what >> job;
    JobRun& run = runs[job];
    if (what == "start") {
      std::string gpus;
      words >> gpus >> run.start_ns;
      ++run.starts;
      std::stringstream list(gpus);
      for (std::string g; std::getline(list, g, ',');) run.gpus.push_back(g);
    } else if (what == "end") {
      words >> run.end_ns;
      ++run.ends;
    }
  }
  return runs;
}

TEST(ServeFailover, KillingTheLeaderMidWorkStartsNoJobTwiceGivesNoGpuTwiceAndLosesNoUsage) {
  TempDir dir;
  std::unique_ptr<PostgresTestDatabase> pg;
  const std::string url = store::testing::fresh_store_url(Backend::kPostgres, dir, pg);
  if (IsSkipped()) return;
  ASSERT_FALSE(HasFailure());
  const std::string data = dir.file("data");
  std::filesystem::create_directories(data);
  const std::string config = dir.file("fleet.toml");
  std::ofstream(config) << "[compute]\nusage_interval_s = 1\n"
                           "[[fleet.gpu_types]]\nname = \"h100\"\nmemory_gib = 80\n"
                           "[[fleet.nodes]]\nname = \"n1\"\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\n"
                           "gpu_type = \"h100\"\ngpus = 4\n";
  const std::vector<std::string> args = {"--store", url, "--config", config};

  auto leader = ServerProcess::start({.data_dir = data, .extra_args = args});
  ASSERT_NE(leader, nullptr);
  EXPECT_NE(leader->stdout_text().find("role:    leader"), std::string::npos) << leader->stdout_text();
  const std::string admin = leader->printed_admin_key();
  ASSERT_FALSE(admin.empty()) << leader->stdout_text();
  auto follower = ServerProcess::start({.data_dir = data, .extra_args = args});
  ASSERT_NE(follower, nullptr);
  EXPECT_NE(follower->stdout_text().find("role:    follower"), std::string::npos) << follower->stdout_text();
  const std::string& api = follower->url();  // every call goes through the follower

  Reply ready = call(api, "GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_NE(ready.body.find(leader->url()), std::string::npos) << "the follower names its leader: " << ready.body;
  Reply t = call(api, "POST", "/v1/tenants", admin, R"({"name":"failover","kind":"external"})");
  ASSERT_EQ(t.status, 201) << t.body;
  const std::string tenant(t.json().at("id").as_string());
  ASSERT_EQ(call(api, "POST", "/v1/tenants/" + tenant + "/credits", admin, R"({"amount":"1000.00"})").status, 201);
  Reply k = call(api, "POST", "/v1/tenants/" + tenant + "/keys", admin, R"({"name":"k","scopes":["compute","billing"]})");
  ASSERT_EQ(k.status, 201) << k.body;
  const std::string key(k.json().at("key").as_string());

  const std::string runs_path = data + "/runs.log";
  const std::string script = "echo \\\"start $HEADROOM_JOB_ID $HEADROOM_GPUS $(date +%s%N)\\\" >> " + runs_path +
                             "; sleep " + std::to_string(kJobSeconds) + "; echo \\\"end $HEADROOM_JOB_ID $(date +%s%N)\\\" >> " +
                             runs_path;
  std::vector<std::string> jobs;
  for (int i = 0; i < kJobs; ++i) {
    Reply j = call(api, "POST", "/v1/jobs", key, R"({"gpus":2,"command":["sh","-c",")" + script + R"("]})",
                   {{"Idempotency-Key", "failover-" + std::to_string(i)}});
    ASSERT_EQ(j.status, 201) << j.body;
    jobs.emplace_back(j.json().at("id").as_string());
  }

  // Mid-work: the first wave runs, the rest wait.
  const auto wave_deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    Reply running = call(api, "GET", "/v1/jobs?state=running", key);
    ASSERT_EQ(running.status, 200) << running.body;
    if (running.json().at("data").as_array().size() == 2) break;
    ASSERT_LT(Clock::now(), wave_deadline) << "the first jobs never ran: " << running.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  ASSERT_TRUE(leader->stop(SIGKILL).has_value());
  const auto killed = Clock::now();

  // The follower takes over: it answers the API itself once it leads.
  std::int64_t takeover_ms = -1;
  while (Clock::now() - killed < std::chrono::seconds(20)) {
    if (call(api, "GET", "/v1/jobs?limit=1", key).status == 200) {
      takeover_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(takeover_ms, 0) << "no takeover within 20 s";
  EXPECT_LE(takeover_ms, 5'000);
  std::printf("takeover: the follower served the API %lld ms after the leader was killed\n",
              static_cast<long long>(takeover_ms));

  // Every job runs to its end under the new leader.
  std::map<std::string, json::object> ended;
  const auto end_deadline = Clock::now() + std::chrono::seconds(90);
  while (ended.size() < jobs.size() && Clock::now() < end_deadline) {
    for (const std::string& job : jobs) {
      if (ended.contains(job)) continue;
      Reply r = call(api, "GET", "/v1/jobs/" + job, key);
      if (r.status == 200 && !r.json().as_object().at("ended_at").is_null()) ended[job] = r.json().as_object();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(ended.size(), jobs.size()) << "not every job ended within 90 s of the takeover";

  // No job started twice, and each ran its whole course.
  const std::map<std::string, JobRun> runs = read_runs(runs_path);
  for (const std::string& job : jobs) {
    EXPECT_EQ(ended[job].at("state").as_string(), "succeeded") << json::serialize(ended[job]);
    ASSERT_TRUE(runs.contains(job)) << job << " never ran";
    EXPECT_EQ(runs.at(job).starts, 1) << job << " was started " << runs.at(job).starts << " times";
    EXPECT_EQ(runs.at(job).ends, 1) << job;
    EXPECT_EQ(runs.at(job).gpus.size(), 2u) << job;
  }
  // No GPU given twice: the runs on each GPU never overlap.
  std::map<std::string, std::vector<std::pair<std::int64_t, std::int64_t>>> by_gpu;
  for (const auto& [job, run] : runs) {
    for (const std::string& gpu : run.gpus) by_gpu[gpu].emplace_back(run.start_ns, run.end_ns);
  }
  for (auto& [gpu, spans] : by_gpu) {
    std::sort(spans.begin(), spans.end());
    for (std::size_t i = 1; i < spans.size(); ++i) {
      EXPECT_GE(spans[i].first, spans[i - 1].second) << "GPU " << gpu << " ran two jobs at once";
    }
  }

  // Each job's GPU time, exactly once: 2 GPUs for its run, as the API states
  // it, and no more later (the old leader's events are not counted again).
  auto billed = [&]() {
    std::map<std::string, std::int64_t> ms;
    Reply usage = call(api, "GET", "/v1/usage?group_by=job", key);
    EXPECT_EQ(usage.status, 200) << usage.body;
    if (usage.status != 200) return ms;
    for (const auto& row : usage.json().at("data").as_array()) {
      ms[std::string(row.at("group").as_string())] += row.at("quantity").as_int64();
    }
    return ms;
  };
  auto run_ms = [&](const std::string& job) {
    auto t0 = parse_rfc3339(std::string(ended[job].at("started_at").as_string()));
    auto t1 = parse_rfc3339(std::string(ended[job].at("ended_at").as_string()));
    return (t1->unix_micros - t0->unix_micros) / 1000;
  };
  std::map<std::string, std::int64_t> first;
  for (int i = 0; i < 100; ++i) {
    first = billed();
    bool all = true;
    for (const std::string& job : jobs) all = all && first[job] >= 2 * run_ms(job) - kRoundingMs;
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const std::string& job : jobs) {
    EXPECT_GE(first[job], 2 * run_ms(job) - kRoundingMs) << job << ": GPU time lost";
    EXPECT_LE(first[job], 2 * run_ms(job) + kRoundingMs) << job << ": GPU time counted twice";
    EXPECT_GE(run_ms(job), kJobSeconds * 1000) << job;
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(billed(), first) << "GPU time was counted again";
}

}  // namespace
}  // namespace headroom::testing
