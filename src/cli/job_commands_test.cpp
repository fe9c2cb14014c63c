// `headroom run` and `headroom jobs ...` end to end through CLI11, against
// a fake server; the follow loop against a fake job that moves on each time
// the command waits, so that nothing sleeps.
#include "cli/job_commands.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "cli/cli_test_util.h"
#include "cli/job_follow.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;

using test::CliTest;
using test::RunResult;
using test::SentRequest;

// A Job object of the API, job_1, with these fields added.
std::string job_json(std::string_view state, std::string_view more = "") {
  return std::string(R"({"id":"job_1","tenant_id":"ten_1","state":")") + std::string(state) + "\"" +
         (more.empty() ? "" : ",") + std::string(more) + "}";
}

// A job on the fake server that moves one step on each time the command
// waits: its state, and the bytes its log has gained by then.
struct ScriptedJob {
  struct Step {
    std::string job;
    std::string log;
  };
  std::vector<Step> steps;
  std::size_t at = 0;

  std::string log() const {
    std::string whole;
    for (std::size_t i = 0; i <= at && i < steps.size(); ++i) whole += steps[i].log;
    return whole;
  }
  std::optional<Result<net::HttpClientResponse>> answer(const SentRequest& request) {
    const std::string logs = "/v1/jobs/job_1/logs?offset=";
    if (request.method == "GET" && request.target == "/v1/jobs/job_1") {
      return net::HttpClientResponse{200, steps.at(at).job, {}};
    }
    if (request.method == "GET" && request.target.rfind(logs, 0) == 0) {
      const std::size_t offset = std::stoul(request.target.substr(logs.size()));
      const std::string whole = log();
      return net::HttpClientResponse{200, whole.substr(std::min(offset, whole.size())), {}};
    }
    return std::nullopt;
  }
};

class JobCommandsTest : public CliTest {
 protected:
  // Puts `job` on the fake server, moving a step per wait.
  void serve(ScriptedJob job) {
    job_ = std::move(job);
    server_.route = [this](const SentRequest& request) { return job_.answer(request); };
    clock_.on_wait = [this] {
      if (job_.at + 1 < job_.steps.size()) ++job_.at;
    };
  }
  std::vector<std::string> targets() const {
    std::vector<std::string> all;
    for (const auto& request : server_.requests) all.push_back(request.method + " " + request.target);
    return all;
  }
  ScriptedJob job_;
};

TEST_F(JobCommandsTest, RunSendsTheFlagsAsTheBody) {
  server_.answer(201, job_json("queued"));
  const RunResult r = run({"run",
                           "--detach",
                           "--gpus",
                           "2",
                           "--gpu-type",
                           "h100",
                           "--tier",
                           "spot",
                           "--max-price",
                           "1.50",
                           "--packing",
                           "nvlink",
                           "--max-runtime",
                           "7200",
                           "--env",
                           "A=1",
                           "--env",
                           "B=x=y",
                           "--workdir",
                           "/data/run",
                           "--requeue",
                           "--queue-if-over-quota",
                           "--",
                           "python",
                           "train.py",
                           "--lr",
                           "3e-4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(server_.requests.size(), 1u);
  const SentRequest& sent = server_.requests[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1/jobs");
  EXPECT_EQ(json::parse(sent.body), json::parse(R"({"gpus":2,"gpu_type":"h100","tier":"spot",
      "max_price_per_gpu_hour":"1.50","packing":"nvlink","max_runtime_s":7200,"env":{"A":"1","B":"x=y"},
      "workdir":"/data/run","requeue_on_preempt":true,"queue_if_over_quota":true,
      "command":["python","train.py","--lr","3e-4"]})"))
      << sent.body;
  EXPECT_EQ(sent.header("Idempotency-Key"), "idem_fresh");
  EXPECT_EQ(sent.header("Authorization"), "Bearer hr_testkey");
  EXPECT_EQ(r.out, "job_1\n");
  EXPECT_EQ(r.err, "job job_1 submitted; follow it with `headroom jobs logs job_1 --follow`\n");
}

TEST_F(JobCommandsTest, RunSendsOnlyWhatIsGivenAndTheCurrentDirectory) {
  server_.answer(201, job_json("queued"));
  EXPECT_EQ(run({"run", "--detach", "--", "nvidia-smi"}).exit_code, 0);
  EXPECT_EQ(json::parse(server_.requests.at(0).body),
            json::parse(R"({"gpus":1,"command":["nvidia-smi"],"workdir":"/home/ada/project"})"));

  server_.answer(201, job_json("queued"));
  EXPECT_EQ(
      run({"run", "--detach", "--workdir", "../data/", "--tier", "reserved", "--reservation", "res_1", "ls"}).exit_code,
      0);
  EXPECT_EQ(json::parse(server_.requests.at(1).body),
            json::parse(R"({"gpus":1,"command":["ls"],"workdir":"/home/ada/data","tier":"reserved",
                            "reservation_id":"res_1"})"));
}

TEST_F(JobCommandsTest, RunPassesEverythingFromTheProgramOnToIt) {
  server_.answer(201, job_json("queued"));
  EXPECT_EQ(run({"run", "--detach", "python", "train.py", "--gpus", "8", "--", "x"}).exit_code, 0);
  const json::value body = json::parse(server_.requests.at(0).body);
  EXPECT_EQ(body.at("gpus"), 1);
  EXPECT_EQ(body.at("command"), json::parse(R"(["python","train.py","--gpus","8","--","x"])"));
}

TEST_F(JobCommandsTest, RunUsageErrorsExitTwoWithoutARequest) {
  const std::vector<std::vector<std::string>> cases = {
      {"run"},
      {"run", "--detach"},
      {"run", "--tier", "spot", "--", "x"},
      {"run", "--max-price", "1.50", "--", "x"},
      {"run", "--tier", "spot", "--max-price", "cheap", "--", "x"},
      {"run", "--tier", "spot", "--max-price", "0", "--", "x"},
      {"run", "--tier", "reserved", "--", "x"},
      {"run", "--reservation", "res_1", "--", "x"},
      {"run", "--tier", "gold", "--", "x"},
      {"run", "--packing", "tight", "--", "x"},
      {"run", "--gpus", "0", "--", "x"},
      {"run", "--max-runtime", "0", "--", "x"},
      {"run", "--env", "NOVALUE", "--", "x"},
      {"run", "--env", "=1", "--", "x"},
      {"run", "--idempotency-key", "has space", "--", "x"},
      {"run", "--", ""},
  };
  for (const auto& args : cases) {
    const RunResult r = run(args);
    EXPECT_EQ(r.exit_code, 2) << args.back() << " " << r.err;
    EXPECT_FALSE(r.err.empty());
  }
  EXPECT_TRUE(server_.requests.empty());
  EXPECT_EQ(run({"run", "--tier", "spot", "--", "x"}).err,
            "error: --tier spot needs --max-price, the most you pay per GPU-hour (such as 1.50)\n");
  EXPECT_EQ(run({"run", "--env", "NOVALUE", "--", "x"}).err, "error: --env wants NAME=VALUE, not 'NOVALUE'\n");
}

TEST_F(JobCommandsTest, RunDetachedAsJsonPrintsTheJob) {
  server_.answer(201, job_json("queued", R"("gpus":1)"));
  const RunResult r = run({"run", "--detach", "-o", "json", "--idempotency-key", "ci-build-42", "--", "x"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), json::parse(job_json("queued", R"("gpus":1)")));
  EXPECT_EQ(server_.requests.at(0).header("Idempotency-Key"), "ci-build-42");
}

TEST_F(JobCommandsTest, RunSaysWhenTheKeyWasSeenBefore) {
  server_.answer(200, job_json("running"));
  const RunResult r = run({"run", "--detach", "--idempotency-key", "k1", "--", "x"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("note: a job was submitted with Idempotency-Key k1 before: this is that job, job_1\n"),
            std::string::npos)
      << r.err;
}

TEST_F(JobCommandsTest, RunSendsOnceMoreWithTheSameKeyWhenTheServerCannotBeReached) {
  server_.fail(Status::unavailable("cannot reach http://127.0.0.1:8080: Connection reset"));
  server_.answer(201, job_json("queued"));
  const RunResult r = run({"run", "--detach", "--", "x"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_NO_FATAL_FAILURE(expect_sent_twice_with_key("idem_fresh"));
  EXPECT_NE(r.err.find("sending the job once more, with the same Idempotency-Key"), std::string::npos) << r.err;
}

TEST_F(JobCommandsTest, RunTriesTwiceAtMost) {
  server_.fail(Status::unavailable("cannot reach http://127.0.0.1:8080: Connection refused"));
  server_.fail(Status::unavailable("cannot reach http://127.0.0.1:8080: Connection refused"));
  const RunResult r = run({"run", "--", "x"});
  EXPECT_EQ(r.exit_code, 6);
  EXPECT_EQ(server_.requests.size(), 2u);
  EXPECT_NE(r.err.find("hint: is `headroom serve` running"), std::string::npos) << r.err;
}

TEST_F(JobCommandsTest, RunRefusedIsNotSentAgain) {
  server_.answer(422, R"({"error":{"code":"quota_exceeded","message":"over your GPU quota","request_id":"req_1"}})");
  const RunResult r = run({"run", "--gpus", "64", "--", "x"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(server_.requests.size(), 1u);
  EXPECT_EQ(r.err, "error: over your GPU quota (quota_exceeded, HTTP 422, request req_1)\n");
}

TEST_F(JobCommandsTest, RunFollowsTheJobToItsEnd) {
  server_.answer(201, job_json("queued", R"("reason":"submitted")"));
  serve({{{job_json("queued", R"("queue_position":2)"), ""},
          {job_json("queued", R"("queue_position":2)"), ""},
          {job_json("queued", R"("queue_position":1)"), ""},
          {job_json("running", R"("assigned_gpus":["n1:0","n1:1"])"), "epoch 1\n"},
          {job_json("running", R"("assigned_gpus":["n1:0","n1:1"])"), "epoch 2\n"},
          {job_json("succeeded", R"("exit_code":0,"ended_at":"2026-01-01T00:00:00Z")"), "done\n"}}});
  const RunResult r = run({"run", "--gpus", "2", "--", "python", "train.py"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "epoch 1\nepoch 2\ndone\n");
  EXPECT_EQ(r.err,
            "job job_1 queued (position 2)\n"
            "job job_1 queued (position 1)\n"
            "job job_1 running on n1:0,n1:1\n"
            "job job_1 succeeded\n");
  EXPECT_EQ(clock_.waits_ms, std::vector<std::int64_t>(5, kJobPollMs));
  const std::vector<std::string> sent = targets();
  ASSERT_EQ(sent.size(), 13u);
  EXPECT_EQ(sent[0], "POST /v1/jobs");
  EXPECT_EQ(sent[1], "GET /v1/jobs/job_1");
  EXPECT_EQ(sent[2], "GET /v1/jobs/job_1/logs?offset=0");
  EXPECT_EQ(sent[8], "GET /v1/jobs/job_1/logs?offset=0");
  EXPECT_EQ(sent[10], "GET /v1/jobs/job_1/logs?offset=8");
  EXPECT_EQ(sent[11], "GET /v1/jobs/job_1");
  EXPECT_EQ(sent[12], "GET /v1/jobs/job_1/logs?offset=16");
  EXPECT_EQ(server_.requests[2].header("Accept"), "text/plain");
}

TEST_F(JobCommandsTest, RunExitsWithTheJobsExitCode) {
  server_.answer(201, job_json("queued"));
  serve({{{job_json("running"), "Traceback...\n"},
          {job_json("failed", R"("reason":"exited","exit_code":3,"ended_at":"2026-01-01T00:00:00Z")"), "boom\n"}}});
  const RunResult r = run({"run", "--", "python", "train.py"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "Traceback...\nboom\n");
  EXPECT_EQ(r.err, "job job_1 running\njob job_1 failed with exit code 3\n");
}

TEST_F(JobCommandsTest, RunFollowsAPreemptedJobThatIsQueuedAgain) {
  server_.answer(201, job_json("queued"));
  serve({{{job_json("running", R"("assigned_gpus":["n1:0"])"), "a"},
          {job_json("preempting", R"("reason":"preempted_for_higher_tier")"), "b"},
          {job_json("preempted", R"("reason":"preempted_for_higher_tier","ended_at":null)"), ""},
          {job_json("queued", R"("reason":"requeued","queue_position":1)"), ""},
          {job_json("running", R"("assigned_gpus":["n2:3"])"), "c"},
          {job_json("preempted", R"("reason":"preempted_for_higher_tier","ended_at":"2026-01-01T00:00:00Z")"), "d"}}});
  const RunResult r = run({"run", "--tier", "spot", "--max-price", "0.9", "--requeue", "--", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "abcd");
  EXPECT_EQ(r.err,
            "job job_1 running on n1:0\n"
            "job job_1 preempting (preempted_for_higher_tier)\n"
            "job job_1 preempted (preempted_for_higher_tier)\n"
            "job job_1 queued again (position 1)\n"
            "job job_1 running on n2:3\n"
            "job job_1 preempted (preempted_for_higher_tier)\n");
}

TEST_F(JobCommandsTest, CtrlCStopsFollowingAndLeavesTheJobAlone) {
  server_.answer(201, job_json("queued"));
  serve({{{job_json("running"), "one\n"}, {job_json("running"), "two\n"}}});
  clock_.interrupt_at_wait = 2;
  const RunResult r = run({"run", "--", "x"});
  EXPECT_EQ(r.exit_code, kInterruptedExitCode);
  EXPECT_EQ(r.out, "one\ntwo\n");
  EXPECT_EQ(r.err, "job job_1 running\n" + stop_following_text("job_1"));
  for (const std::string& sent : targets()) EXPECT_EQ(sent.find("cancel"), std::string::npos) << sent;
}

TEST_F(JobCommandsTest, CtrlCWhileTheJobIsSentStillTellsItsId) {
  server_.answer(201, job_json("queued"));
  clock_.interrupted = true;
  const RunResult r = run({"run", "--", "x"});
  EXPECT_EQ(r.exit_code, kInterruptedExitCode);
  EXPECT_EQ(server_.requests.size(), 1u);
  EXPECT_EQ(r.err, stop_following_text("job_1"));
}

TEST_F(JobCommandsTest, FollowRidesOutAServerRestart) {
  server_.answer(201, job_json("queued"));
  serve({{{job_json("running"), "a"}, {job_json("running"), "b"}, {job_json("succeeded"), "c"}}});
  int failures_left = 3;
  server_.route = [this, &failures_left](const SentRequest& request) -> std::optional<Result<net::HttpClientResponse>> {
    if (request.target == "/v1/jobs/job_1" && job_.at == 1 && failures_left > 0) {
      --failures_left;
      if (failures_left == 1) return net::HttpClientResponse{503, "", {}};
      return Status::unavailable("cannot reach http://127.0.0.1:8080: Connection refused");
    }
    return job_.answer(request);
  };
  clock_.on_wait = [this, &failures_left] {
    if (job_.at == 0 || failures_left == 0) job_.at = std::min<std::size_t>(job_.at + 1, 2);
  };
  const RunResult r = run({"run", "--", "x"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "abc");
  EXPECT_EQ(r.err,
            "job job_1 running\n"
            "warning: cannot reach http://127.0.0.1:8080: Connection refused (trying again)\n"
            "job job_1 succeeded\n");
}

TEST_F(JobCommandsTest, FollowGivesUpAfterTooManyFailuresInARow) {
  server_.answer(201, job_json("queued"));
  server_.route = [](const SentRequest& request) -> std::optional<Result<net::HttpClientResponse>> {
    if (request.method == "GET") return Status::unavailable("cannot reach http://h: Connection refused");
    return std::nullopt;
  };
  const RunResult r = run({"run", "--", "x"});
  EXPECT_EQ(r.exit_code, 6);
  EXPECT_EQ(clock_.waits_ms.size(), static_cast<std::size_t>(kJobPollFailuresMax - 1));
  EXPECT_EQ(server_.requests.size(), static_cast<std::size_t>(kJobPollFailuresMax + 1));
  EXPECT_NE(r.err.find("hint: job job_1 goes on without you: follow it again with `headroom jobs logs job_1 "
                       "--follow` once the server answers\n"),
            std::string::npos)
      << r.err;
}

TEST_F(JobCommandsTest, FollowStopsAtOnceOnARefusal) {
  server_.answer(201, job_json("queued"));
  server_.route = [](const SentRequest& request) -> std::optional<Result<net::HttpClientResponse>> {
    if (request.method == "GET") {
      return net::HttpClientResponse{401, R"({"error":{"code":"unauthenticated","message":"key revoked"}})", {}};
    }
    return std::nullopt;
  };
  const RunResult r = run({"run", "--", "x"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(clock_.waits_ms.empty());
  EXPECT_EQ(r.err.rfind("error: key revoked (unauthenticated, HTTP 401)\n", 0), 0u) << r.err;
}

TEST_F(JobCommandsTest, JobsList) {
  server_.answer(200, R"({"data":[{"id":"job_2","state":"running","tier":"spot","gpus":8,"gpu_type":"h100",
                           "created_at":"2026-01-02T00:00:00Z","exit_code":null},
                          {"id":"job_1","state":"failed","tier":"on-demand","gpus":1,"gpu_type":"a100",
                           "created_at":"2026-01-01T00:00:00Z","exit_code":3}],"has_more":true})");
  const RunResult r = run({"jobs", "list", "--state", "running", "--limit", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).target, "/v1/jobs?state=running&limit=2");
  EXPECT_EQ(r.out,
            "ID     STATE    TIER       GPUS  GPU TYPE  CREATED               EXIT\n"
            "job_2  running  spot          8  h100      2026-01-02T00:00:00Z     -\n"
            "job_1  failed   on-demand     1  a100      2026-01-01T00:00:00Z     3\n");
  EXPECT_EQ(r.err, "more results: rerun with --after job_1\n");
  EXPECT_EQ(run({"jobs", "list", "--state", "sleeping"}).exit_code, 2);
}

TEST_F(JobCommandsTest, JobsShowHasEveryFieldAndTheHistory) {
  server_.answer(200, R"({"id":"job_1","tenant_id":"ten_1","state":"running","reason":"started","message":"",
      "exit_code":null,"gpus":2,"gpu_type":"h100","tier":"spot","assigned_gpus":["n1:0","n1:1"],
      "command":["python","train.py","--name","my run"],"created_at":"2026-01-01T00:00:00Z",
      "started_at":"2026-01-01T00:00:05Z","ended_at":null,"preemptions":0,"queue_position":null,
      "history":[{"state":"queued","at":"2026-01-01T00:00:00Z","reason":"submitted","message":""},
                 {"state":"running","at":"2026-01-01T00:00:05Z","reason":"started","message":""}]})");
  const RunResult r = run({"jobs", "show", "job_1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).target, "/v1/jobs/job_1");
  EXPECT_EQ(r.out,
            "ID              job_1\n"
            "TENANT          ten_1\n"
            "STATE           running\n"
            "REASON          started\n"
            "MESSAGE         \n"
            "EXIT CODE       -\n"
            "TIER            spot\n"
            "GPUS            2\n"
            "GPU TYPE        h100\n"
            "ASSIGNED GPUS   n1:0,n1:1\n"
            "COMMAND         python train.py --name 'my run'\n"
            "CREATED         2026-01-01T00:00:00Z\n"
            "STARTED         2026-01-01T00:00:05Z\n"
            "ENDED           -\n"
            "PREEMPTIONS     0\n"
            "QUEUE POSITION  -\n"
            "\n"
            "HISTORY\n"
            "AT                    STATE    REASON     MESSAGE\n"
            "2026-01-01T00:00:00Z  queued   submitted\n"
            "2026-01-01T00:00:05Z  running  started\n");

  server_.answer(404, R"({"error":{"code":"not_found","message":"no such job"}})");
  EXPECT_EQ(run({"jobs", "show", "job_other"}).exit_code, 4);
}

TEST_F(JobCommandsTest, JobsCancel) {
  server_.answer(200, job_json("cancelled", R"("reason":"cancelled","command":["x"])"));
  RunResult r = run({"jobs", "cancel", "job_1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.back().method, "POST");
  EXPECT_EQ(server_.requests.back().target, "/v1/jobs/job_1/cancel");
  EXPECT_NE(r.out.find("STATE           cancelled\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("HISTORY"), std::string::npos) << r.out;

  server_.answer(409, R"({"error":{"code":"conflict","message":"job job_1 has ended"}})");
  r = run({"jobs", "cancel", "job_1"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.err, "error: job job_1 has ended (conflict, HTTP 409)\n");
}

TEST_F(JobCommandsTest, JobsLogsPrintsWhatThereIs) {
  server_.answer(200, "line 1\nline 2 \x1b[1mbold\x1b[0m\n");
  RunResult r = run({"jobs", "logs", "job_1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).target, "/v1/jobs/job_1/logs?offset=0");
  EXPECT_EQ(r.out, "line 1\nline 2 \x1b[1mbold\x1b[0m\n");  // the job's own bytes, as they are
  EXPECT_TRUE(clock_.waits_ms.empty());

  server_.answer(404, R"({"error":{"code":"not_found","message":"no such job","request_id":"req_9"}})");
  r = run({"jobs", "logs", "job_x"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "error: no such job (not_found, HTTP 404, request req_9)\n");
}

TEST_F(JobCommandsTest, JobsLogsFollowEndsWithTheJob) {
  serve({{{job_json("running"), "a\n"},
          {job_json("cancelled", R"("reason":"cancelled","exit_code":143)"), "terminated\n"}}});
  const RunResult r = run({"jobs", "logs", "job_1", "--follow"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "a\nterminated\n");
  EXPECT_EQ(r.err, "job job_1 running\njob job_1 cancelled\n");
}

TEST(MakeRunBody, TakesTheWorkdirFromTheCurrentDirectory) {
  RunArgs args;
  args.command = {"x"};
  auto cwd = []() -> Result<std::string> { return std::string("/srv/work"); };
  EXPECT_EQ(make_run_body(args, cwd)->at("workdir"), "/srv/work");
  args.workdir = "sub/./dir/../data";
  EXPECT_EQ(make_run_body(args, cwd)->at("workdir"), "/srv/work/sub/data");
  args.workdir = "/abs//path/";
  EXPECT_EQ(make_run_body(args, cwd)->at("workdir"), "/abs/path");
  args.workdir = "rel";
  auto broken = []() -> Result<std::string> { return Status::invalid_argument("cannot tell the current directory"); };
  EXPECT_EQ(make_run_body(args, broken).status().code(), ErrorCode::kInvalidArgument);
  args.workdir = "/abs";
  EXPECT_TRUE(make_run_body(args, nullptr).is_ok());
}

}  // namespace
}  // namespace headroom::cli
