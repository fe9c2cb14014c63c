// Raw compute end to end: jobs that really run as processes under a real
// `headroom serve`, over HTTP. A small declared fleet (one node of 4 GPUs)
// and a 2 s spot grace keep the preemption test short.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "fleet_server.h"

namespace headroom::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr int kGraceS = 2;

class JobsTest : public FleetServerTest {
 protected:
  std::string config_toml() const override {
    std::ostringstream out;
    out << "[compute]\nspot_grace_s = " << kGraceS << "\n"
        << "[[fleet.gpu_types]]\nname = \"t4\"\nmemory_gib = 16\n"
        << "[[fleet.nodes]]\nname = \"node-1\"\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\n"
        << "gpu_type = \"t4\"\ngpus = 4\n";
    return out.str();
  }

  // A tenant of `kind` and a compute key for it.
  std::string tenant_key(std::string_view kind) {
    static int n = 0;
    Reply t = post("/v1/tenants", admin_,
                   R"({"name":"jobs-)" + std::to_string(getpid()) + "-" + std::to_string(++n) + R"(","kind":")" +
                       std::string(kind) + R"("})");
    EXPECT_EQ(t.status, 201) << t.body;
    std::string tenant(t.json().at("id").as_string());
    // Paid work needs money: every tenant starts with plenty (billing_test tests running out).
    Reply c = post("/v1/tenants/" + tenant + "/credits", admin_, R"({"amount":"1000.00"})");
    EXPECT_EQ(c.status, 201) << c.body;
    Reply k = post("/v1/tenants/" + tenant + "/keys", admin_, R"({"name":"k","scopes":["compute"]})");
    EXPECT_EQ(k.status, 201) << k.body;
    return std::string(k.json().at("key").as_string());
  }

  std::string submit(const std::string& key, const std::string& body) {
    Reply r = post("/v1/jobs", key, body);
    EXPECT_EQ(r.status, 201) << r.body;
    if (r.status != 201) return "";
    EXPECT_EQ(r.json().at("state").as_string(), "queued");
    return std::string(r.json().at("id").as_string());
  }

  // Polls the job until `state` (or any terminal state when state is ""), up to `timeout_s`.
  json::object wait_for(const std::string& id, const std::string& key, std::string_view state, double timeout_s = 20) {
    auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
    json::object last;
    while (Clock::now() < deadline) {
      Reply r = get("/v1/jobs/" + id, key);
      EXPECT_EQ(r.status, 200) << r.body;
      if (r.status != 200) break;
      last = r.json().as_object();
      std::string_view now = last.at("state").as_string();
      bool terminal =
          now == "succeeded" || now == "failed" || now == "cancelled" || now == "lost" || now == "preempted";
      if (now == state || (state.empty() && terminal)) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ADD_FAILURE() << "job " << id << " did not reach " << (state.empty() ? "an end" : state) << ": "
                  << json::serialize(last);
    return last;
  }

  std::string logs(const std::string& id, const std::string& key) { return get("/v1/jobs/" + id + "/logs", key).body; }
};

TEST_F(JobsTest, AJobRunsWithItsEnvironmentAndExitsWithItsCode) {
  std::string key = tenant_key("external");
  std::string id = submit(key, R"({"gpus":2,"command":["sh","-c",
      "echo hello; echo job=$HEADROOM_JOB_ID gpus=$HEADROOM_GPUS cuda=$CUDA_VISIBLE_DEVICES; echo $MINE >&2; exit 3"],
      "env":{"MINE":"from-env"}})");
  json::object job = wait_for(id, key, "");
  EXPECT_EQ(job.at("state").as_string(), "failed");
  EXPECT_EQ(job.at("exit_code").as_int64(), 3);
  EXPECT_EQ(job.at("assigned_gpus").as_array().size(), 2u);
  std::string out = logs(id, key);
  EXPECT_NE(out.find("hello\n"), std::string::npos) << out;
  EXPECT_NE(out.find("job=" + id + " gpus=node-1:"), std::string::npos) << out;
  EXPECT_NE(out.find("cuda=0,1"), std::string::npos) << out;
  EXPECT_NE(out.find("from-env\n"), std::string::npos) << out;
  std::vector<std::string> states;
  for (const auto& e : job.at("history").as_array()) states.emplace_back(e.at("state").as_string());
  EXPECT_EQ(states, (std::vector<std::string>{"queued", "starting", "running", "failed"}));

  std::string ok = submit(key, R"({"gpus":1,"command":["true"]})");
  EXPECT_EQ(wait_for(ok, key, "").at("state").as_string(), "succeeded");
  EXPECT_EQ(get("/v1/jobs?state=succeeded", key).json().at("data").as_array().size(), 1u);
}

TEST_F(JobsTest, CancelStopsARunningJobAndAQueuedOne) {
  std::string key = tenant_key("external");
  std::string running = submit(key, R"({"gpus":4,"command":["sleep","100"]})");
  wait_for(running, key, "running");
  std::string queued = submit(key, R"({"gpus":4,"command":["sleep","100"]})");
  Reply q = post("/v1/jobs/" + queued + "/cancel", key, "");
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_EQ(q.json().at("state").as_string(), "cancelled");
  Reply r = post("/v1/jobs/" + running + "/cancel", key, "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().at("state").as_string(), "cancelled");
  EXPECT_EQ(post("/v1/jobs/" + running + "/cancel", key, "").status, 409);
  // Its GPUs are free again: a new job runs.
  std::string next = submit(key, R"({"gpus":4,"command":["true"]})");
  EXPECT_EQ(wait_for(next, key, "").at("state").as_string(), "succeeded");
}

TEST_F(JobsTest, BadRequestsAreRefusedClearly) {
  std::string key = tenant_key("external");
  struct Case {
    const char* body;
    int status;
    const char* fragment;
  } cases[] = {
      {R"({"gpus":5,"command":["true"]})", 400, "gpus"},
      {R"({"gpus":1,"gpu_type":"h100","command":["true"]})", 400, "h100"},
      {R"({"gpus":1})", 400, "command"},
      {R"({"gpus":1,"tier":"spot","command":["true"]})", 400, "max_price_per_gpu_hour"},
      {R"({"gpus":1,"tier":"spot","max_price_per_gpu_hour":"0.01","command":["true"]})", 400, "spot price"},
      {R"({"gpus":1,"tier":"internal","command":["true"]})", 403, "internal"},
      {R"({"gpus":1,"command":["true"],"colour":"blue"})", 400, "colour"},
      {R"({"gpus":1,"command":["true"],"env":{"HEADROOM_JOB_ID":"x"}})", 400, "HEADROOM_JOB_ID"},
      {R"({"gpus":1,"tier":"reserved","reservation_id":"res_nope","command":["true"]})", 400, "res_nope"},
      {"not json", 400, "JSON"},
  };
  for (const Case& c : cases) {
    Reply r = post("/v1/jobs", key, c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_NE(r.body.find(c.fragment), std::string::npos) << c.body << " -> " << r.body;
  }
  // A command that does not exist fails the job, saying why.
  std::string id = submit(key, R"({"gpus":1,"command":["no-such-command-here"]})");
  json::object job = wait_for(id, key, "");
  EXPECT_EQ(job.at("state").as_string(), "failed");
  EXPECT_NE(json::serialize(job).find("no-such-command-here"), std::string::npos) << json::serialize(job);
  // Another tenant's job is not found.
  std::string other = tenant_key("external");
  EXPECT_EQ(get("/v1/jobs/" + id, other).status, 404);
  EXPECT_EQ(post("/v1/jobs/" + id + "/cancel", other, "").status, 404);
  EXPECT_EQ(get("/v1/jobs/" + id + "/logs", other).status, 404);
}

TEST_F(JobsTest, IdempotencyKeyIsHonoured) {
  std::string key = tenant_key("external");
  net::HttpHeaders headers{{"Idempotency-Key", "submit-1"}};
  std::string body = R"({"gpus":1,"command":["true"]})";
  Reply first = post("/v1/jobs", key, body, headers);
  ASSERT_EQ(first.status, 201) << first.body;
  Reply again = post("/v1/jobs", key, body, headers);
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json().at("id"), first.json().at("id"));
  EXPECT_EQ(again.header("idempotent-replayed"), "true");
  Reply other = post("/v1/jobs", key, R"({"gpus":2,"command":["true"]})", headers);
  EXPECT_EQ(other.status, 409) << other.body;
  EXPECT_EQ(get("/v1/jobs", key).json().at("data").as_array().size(), 1u);
}

TEST_F(JobsTest, InternalWorkPreemptsSpotWithinGracePlusOneSecond) {
  std::string spot_key = tenant_key("external");
  std::string internal_key = tenant_key("internal");
  // The spot job reads its deadline on SIGTERM, then ignores the signal: it
  // must be killed when the grace runs out.
  std::string spot = submit(spot_key, R"({"gpus":4,"tier":"spot","max_price_per_gpu_hour":"5.00","command":["sh","-c",
      "trap '. \"$HEADROOM_PREEMPT_DEADLINE_FILE\"; echo TERM deadline=$HEADROOM_PREEMPT_DEADLINE' TERM; echo started; while true; do sleep 0.05; done"]})");
  wait_for(spot, spot_key, "running");
  // Let the shell set its trap.
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (logs(spot, spot_key).find("started") == std::string::npos && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  auto submitted = Clock::now();
  std::string internal = submit(internal_key, R"({"gpus":4,"tier":"internal","command":["sleep","30"]})");
  wait_for(internal, internal_key, "running", kGraceS + 5);
  double waited = std::chrono::duration<double>(Clock::now() - submitted).count();
  EXPECT_LE(waited, kGraceS + 1.0) << "the internal job waited " << waited << " s";
  EXPECT_GE(waited, kGraceS - 0.5) << "the spot job was killed before its grace ran out";

  json::object victim = wait_for(spot, spot_key, "preempted", 5);
  EXPECT_EQ(victim.at("preemptions").as_int64(), 1);
  std::string out = logs(spot, spot_key);
  EXPECT_NE(out.find("TERM deadline=20"), std::string::npos) << out;
  EXPECT_EQ(post("/v1/jobs/" + internal + "/cancel", internal_key, "").status, 200);
}

TEST_F(JobsTest, FleetShowsHoldersAndCordonKeepsWorkOff) {
  std::string key = tenant_key("external");
  std::string id = submit(key, R"({"gpus":1,"command":["sleep","30"]})");
  wait_for(id, key, "running");
  Reply fleet = get("/v1/fleet", admin_);
  ASSERT_EQ(fleet.status, 200) << fleet.body;
  EXPECT_NE(fleet.body.find(id), std::string::npos) << fleet.body;
  Reply surplus = get("/v1/surplus", admin_);
  ASSERT_EQ(surplus.status, 200) << surplus.body;
  const json::object& t4 = surplus.json().at("data").as_array().at(0).as_object();
  EXPECT_EQ(t4.at("gpu_type").as_string(), "t4");
  EXPECT_EQ(t4.at("total").as_int64(), 4);
  EXPECT_EQ(t4.at("on_demand").as_int64(), 1);
  EXPECT_EQ(t4.at("idle").as_int64(), 3);
  EXPECT_EQ(get("/v1/surplus", key).status, 403);

  ASSERT_EQ(post("/v1/fleet/nodes/node-1/cordon", admin_, "").status, 200);
  EXPECT_EQ(post("/v1/fleet/nodes/nope/cordon", admin_, "").status, 404);
  std::string waiting = submit(key, R"({"gpus":1,"command":["true"]})");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Reply w = get("/v1/jobs/" + waiting, key);
  EXPECT_EQ(w.json().at("state").as_string(), "queued") << w.body;
  EXPECT_EQ(w.json().at("queue_position").as_int64(), 1) << w.body;
  EXPECT_EQ(wait_for(id, key, "running").at("state").as_string(), "running");  // cordon keeps what runs
  ASSERT_EQ(post("/v1/fleet/nodes/node-1/uncordon", admin_, "").status, 200);
  EXPECT_EQ(wait_for(waiting, key, "").at("state").as_string(), "succeeded");
  EXPECT_EQ(post("/v1/jobs/" + id + "/cancel", key, "").status, 200);
}

TEST_F(JobsTest, QuotasRefuseOrQueue) {
  std::string key = tenant_key("external");
  Reply me = get("/v1/me", key);
  std::string tenant(me.json().at("tenant").at("id").as_string());
  Reply q = call(server_->url(), "PUT", "/v1/tenants/" + tenant + "/quota", admin_,
                 R"({"gpu_limits":[{"tier":"on-demand","gpu_type":"any","max_gpus":2}],"max_queued_jobs":5})");
  ASSERT_EQ(q.status, 200) << q.body;
  Reply over = post("/v1/jobs", key, R"({"gpus":3,"command":["true"]})");
  EXPECT_EQ(over.status, 429) << over.body;
  EXPECT_EQ(over.error_code(), "quota_exceeded");
  std::string first = submit(key, R"({"gpus":2,"command":["sleep","30"]})");
  wait_for(first, key, "running");
  Reply refused = post("/v1/jobs", key, R"({"gpus":1,"command":["true"]})");
  EXPECT_EQ(refused.status, 429) << refused.body;
  std::string waits = submit(key, R"({"gpus":1,"command":["true"],"queue_if_over_quota":true})");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(get("/v1/jobs/" + waits, key).json().at("state").as_string(), "queued");
  EXPECT_EQ(post("/v1/jobs/" + first + "/cancel", key, "").status, 200);
  EXPECT_EQ(wait_for(waits, key, "").at("state").as_string(), "succeeded");
}

TEST_F(JobsTest, RestartAdoptsRunningJobs) {
  std::string key = tenant_key("external");
  std::string id = submit(key, R"({"gpus":1,"command":["sh","-c","sleep 3; echo done; exit 7"]})");
  std::string queued = submit(key, R"({"gpus":4,"command":["true"]})");
  wait_for(id, key, "running");
  std::string data_dir = server_->data_dir();
  ASSERT_EQ(server_->stop(SIGTERM), 0);
  server_.reset();
  start(data_dir);
  // The job went on while no server ran; the new one adopts it and records its end.
  json::object job = wait_for(id, key, "", 20);
  EXPECT_EQ(job.at("state").as_string(), "failed");
  EXPECT_EQ(job.at("exit_code").as_int64(), 7);
  EXPECT_NE(logs(id, key).find("done"), std::string::npos);
  // The queued one was queued again and runs once the GPUs are free.
  EXPECT_EQ(wait_for(queued, key, "").at("state").as_string(), "succeeded");
}

TEST_F(JobsTest, MaxRuntimeIsEnforced) {
  std::string key = tenant_key("external");
  std::string id = submit(key, R"({"gpus":1,"max_runtime_s":1,"command":["sleep","60"]})");
  auto started = Clock::now();
  json::object job = wait_for(id, key, "", 10);
  EXPECT_EQ(job.at("state").as_string(), "failed");
  EXPECT_EQ(job.at("reason").as_string(), "max_runtime_exceeded");
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - started).count(), 5.0);
}

TEST_F(JobsTest, ReservationsHoldGpusForTheirTenant) {
  std::string holder = tenant_key("external");
  std::string other = tenant_key("external");
  std::string holder_tenant(get("/v1/me", holder).json().at("tenant").at("id").as_string());
  auto now = std::chrono::system_clock::now();
  auto rfc3339 = [](std::chrono::system_clock::time_point t) {
    std::time_t secs = std::chrono::system_clock::to_time_t(t);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&secs));
    return std::string(text);
  };
  Reply r = post("/v1/reservations", admin_,
                 R"({"tenant_id":")" + holder_tenant + R"(","gpu_type":"t4","gpus":3,"start":")" +
                     rfc3339(now - std::chrono::seconds(1)) + R"(","end":")" + rfc3339(now + std::chrono::hours(1)) +
                     R"("})");
  ASSERT_EQ(r.status, 201) << r.body;
  std::string reservation(r.json().at("id").as_string());
  // Another booking of the same GPUs is refused: only 1 is left beside it.
  Reply full = post("/v1/reservations", admin_,
                    R"({"tenant_id":")" + holder_tenant + R"(","gpu_type":"t4","gpus":2,"start":")" + rfc3339(now) +
                        R"(","end":")" + rfc3339(now + std::chrono::hours(2)) + R"("})");
  EXPECT_EQ(full.status, 409) << full.body;

  // Only one GPU is left for the others: a 2-GPU job waits, a 1-GPU one runs.
  std::string too_big = submit(other, R"({"gpus":2,"command":["true"]})");
  std::string small = submit(other, R"({"gpus":1,"command":["true"]})");
  EXPECT_EQ(wait_for(small, other, "").at("state").as_string(), "succeeded");
  EXPECT_EQ(get("/v1/jobs/" + too_big, other).json().at("state").as_string(), "queued");
  EXPECT_EQ(post("/v1/jobs/" + too_big + "/cancel", other, "").status, 200);
  // The holder's reserved job runs on the reserved GPUs; the other tenant may not name the reservation.
  std::string reserved =
      submit(holder, R"({"gpus":3,"tier":"reserved","reservation_id":")" + reservation + R"(","command":["true"]})");
  EXPECT_EQ(wait_for(reserved, holder, "").at("state").as_string(), "succeeded");
  Reply foreign = post("/v1/jobs", other,
                       R"({"gpus":1,"tier":"reserved","reservation_id":")" + reservation + R"(","command":["true"]})");
  EXPECT_EQ(foreign.status, 400) << foreign.body;
  EXPECT_EQ(get("/v1/reservations/" + reservation, other).status, 404);
  EXPECT_EQ(get("/v1/reservations", holder).json().at("data").as_array().size(), 1u);
  EXPECT_EQ(call(server_->url(), "DELETE", "/v1/reservations/" + reservation, admin_).status, 200);
}

TEST_F(JobsTest, DrainGivesSpotJobsNotice) {
  std::string key = tenant_key("external");
  std::string spot =
      submit(key, R"({"gpus":1,"tier":"spot","max_price_per_gpu_hour":"2.00","command":["sleep","60"]})");
  std::string on_demand = submit(key, R"({"gpus":1,"command":["sh","-c","sleep 1"]})");
  wait_for(spot, key, "running");
  wait_for(on_demand, key, "running");
  ASSERT_EQ(post("/v1/fleet/nodes/node-1/drain", admin_, "").status, 200);
  // sleep dies of the SIGTERM; the on-demand job runs to its end.
  EXPECT_EQ(wait_for(spot, key, "", 5).at("state").as_string(), "preempted");
  EXPECT_EQ(wait_for(on_demand, key, "", 5).at("state").as_string(), "succeeded");
  Reply fleet = get("/v1/fleet", admin_);
  EXPECT_NE(fleet.body.find("\"draining\""), std::string::npos) << fleet.body;
}

TEST_F(JobsTest, CliRunStreamsTheLogAndExitsWithTheJobsCode) {
  std::string key = tenant_key("external");
  std::map<std::string, std::string> env{{"HEADROOM_URL", server_->url()}, {"HEADROOM_API_KEY", key}};
  CommandResult run = run_headroom({"run", "--gpus", "2", "--", "sh", "-c", "echo from-the-job; exit 4"}, env);
  EXPECT_EQ(run.exit_code, 4) << run.out << run.err;
  EXPECT_NE(run.out.find("from-the-job"), std::string::npos) << run.out;
  EXPECT_NE(run.err.find("failed with exit code 4"), std::string::npos) << run.err;

  CommandResult detached = run_headroom({"run", "--detach", "--", "true"}, env);
  ASSERT_EQ(detached.exit_code, 0) << detached.err;
  std::string id = detached.out.substr(0, detached.out.find('\n'));
  EXPECT_EQ(wait_for(id, key, "").at("state").as_string(), "succeeded");
  CommandResult list = run_headroom({"jobs", "list"}, env);
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find(id), std::string::npos) << list.out;
  CommandResult surplus = run_headroom({"surplus"}, {{"HEADROOM_URL", server_->url()}, {"HEADROOM_API_KEY", admin_}});
  EXPECT_EQ(surplus.exit_code, 0) << surplus.err;
  EXPECT_NE(surplus.out.find("t4"), std::string::npos) << surplus.out;
  CommandResult fleet = run_headroom({"fleet"}, {{"HEADROOM_URL", server_->url()}, {"HEADROOM_API_KEY", admin_}});
  EXPECT_EQ(fleet.exit_code, 0) << fleet.err;
  EXPECT_NE(fleet.out.find("node-1"), std::string::npos) << fleet.out;
}

TEST_F(JobsTest, LogsCanBeFollowed) {
  std::string key = tenant_key("external");
  std::string id = submit(key, R"({"gpus":1,"command":["sh","-c","echo one; sleep 0.5; echo two"]})");
  Reply followed = get("/v1/jobs/" + id + "/logs?follow=true", key);  // returns when the job ends
  EXPECT_EQ(followed.status, 200);
  EXPECT_EQ(followed.body, "one\ntwo\n");
  Reply tail = get("/v1/jobs/" + id + "/logs?offset=4", key);
  EXPECT_EQ(tail.body, "two\n");
  EXPECT_EQ(tail.header("x-next-offset"), "8");
}

}  // namespace
}  // namespace headroom::testing
