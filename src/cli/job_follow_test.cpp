// The lines and exit codes that tell how a followed job stands and ended,
// from the API's Job objects. (The follow loop itself runs against a fake
// server in job_commands_test.cpp.)
#include "cli/job_follow.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace headroom::cli {
namespace {

namespace json = boost::json;

json::value job(std::string_view fields) {
  return json::parse(std::string(R"({"id":"job_1",)") + std::string(fields) + "}");
}

TEST(JobFollow, ProgressLines) {
  EXPECT_EQ(progress_line(job(R"("state":"queued","reason":"submitted","queue_position":3)")),
            "job job_1 queued (position 3)");
  EXPECT_EQ(progress_line(job(R"("state":"queued","reason":"submitted","queue_position":null)")), "job job_1 queued");
  EXPECT_EQ(progress_line(job(R"("state":"queued","reason":"requeued","queue_position":1)")),
            "job job_1 queued again (position 1)");
  EXPECT_EQ(progress_line(job(R"("state":"queued","queue_position":2,"message":"over quota: waiting")")),
            "job job_1 queued (position 2): over quota: waiting");
  EXPECT_EQ(progress_line(job(R"("state":"starting","reason":"placed","assigned_gpus":["n1:0","n1:1"])")),
            "job job_1 starting on n1:0,n1:1");
  EXPECT_EQ(progress_line(job(R"("state":"running","reason":"started","assigned_gpus":["n1:0"])")),
            "job job_1 running on n1:0");
  EXPECT_EQ(progress_line(job(R"("state":"running","assigned_gpus":[])")), "job job_1 running");
  EXPECT_EQ(progress_line(job(R"("state":"preempting","reason":"preempted_for_higher_tier","message":"")")),
            "job job_1 preempting (preempted_for_higher_tier)");
  EXPECT_EQ(progress_line(job(R"("state":"preempted","reason":"preempted_for_higher_tier","ended_at":null)")),
            "job job_1 preempted (preempted_for_higher_tier)");
  EXPECT_EQ(progress_line(job(R"("other":1)")), "job job_1 in an unknown state");
}

TEST(JobFollow, TextFromTheServerCannotDriveTheTerminal) {
  EXPECT_EQ(progress_line(job("\"state\":\"queued\",\"message\":\"a\\u001b[31mb\"")), "job job_1 queued: a?[31mb");
}

TEST(JobFollow, FinalLines) {
  EXPECT_EQ(final_line(job(R"("state":"succeeded","reason":"exited","exit_code":0)")), "job job_1 succeeded");
  EXPECT_EQ(final_line(job(R"("state":"failed","reason":"exited","exit_code":3)")),
            "job job_1 failed with exit code 3");
  EXPECT_EQ(final_line(job(R"("state":"failed","reason":"max_runtime_exceeded","exit_code":137)")),
            "job job_1 failed with exit code 137 (max_runtime_exceeded)");
  EXPECT_EQ(final_line(job(R"("state":"failed","reason":"grace_expired","exit_code":null)")),
            "job job_1 failed (grace_expired)");
  EXPECT_EQ(final_line(job(R"("state":"cancelled","reason":"cancelled","exit_code":143)")), "job job_1 cancelled");
  EXPECT_EQ(final_line(job(R"("state":"preempted","reason":"preempted_for_higher_tier")")),
            "job job_1 preempted (preempted_for_higher_tier)");
  EXPECT_EQ(final_line(job(R"("state":"lost","reason":"node_lost","message":"node n1 stopped answering")")),
            "job job_1 lost (node_lost): node n1 stopped answering");
}

TEST(JobFollow, ExitCodes) {
  EXPECT_EQ(exit_code_for_job(job(R"("state":"succeeded","exit_code":0)")), 0);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"failed","exit_code":3)")), 3);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"failed","exit_code":137)")), 137);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"failed","exit_code":255)")), 255);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"failed","exit_code":256)")), 255);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"failed","exit_code":18446744073709551615)")), 255);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"failed","exit_code":0)")), 1);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"failed","exit_code":-9)")), 1);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"failed","exit_code":null)")), 1);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"failed","exit_code":"3")")), 1);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"cancelled","exit_code":143)")), 1);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"preempted","exit_code":143)")), 1);
  EXPECT_EQ(exit_code_for_job(job(R"("state":"lost","exit_code":137)")), 1);
}

TEST(JobFollow, WhichJobsHaveEnded) {
  for (const char* state : {"succeeded", "failed", "cancelled", "lost"}) {
    EXPECT_TRUE(job_has_ended(job(std::string("\"state\":\"") + state + "\""))) << state;
  }
  for (const char* state : {"queued", "starting", "running", "preempting", "mystery"}) {
    EXPECT_FALSE(job_has_ended(job(std::string("\"state\":\"") + state + "\""))) << state;
  }
  // Preempted for good, or for a moment before it is queued again.
  EXPECT_TRUE(job_has_ended(job(R"("state":"preempted","ended_at":"2026-01-01T00:00:00Z")")));
  EXPECT_FALSE(job_has_ended(job(R"("state":"preempted","ended_at":null)")));
}

TEST(JobFollow, StopFollowingSaysHowToGoOn) {
  EXPECT_EQ(stop_following_text("job_1"),
            "stopped following job job_1; it goes on\n"
            "  follow it again: headroom jobs logs job_1 --follow\n"
            "  cancel it:       headroom jobs cancel job_1\n");
}

}  // namespace
}  // namespace headroom::cli
