#include "compute/job_spec.h"

#include <gtest/gtest.h>

#include "compute/quota.h"

namespace headroom::compute {
namespace {

TEST(JobSpec, TheIssuesExampleParsesAndRoundTrips) {
  auto spec = parse_job_spec(R"({"gpus":2,"gpu_type":"any","tier":"spot","max_price_per_gpu_hour":"1.50",
      "command":["python","train.py"],"args":["--epochs","3"],"env":{"A":"1"},"workdir":"/data","packing":"nvlink",
      "max_runtime_s":3600,"requeue_on_preempt":true,"reservation_id":null})");
  ASSERT_TRUE(spec.is_ok()) << spec.status().to_string();
  EXPECT_EQ(spec->gpus, 2u);
  EXPECT_EQ(spec->gpu_type, "");
  EXPECT_EQ(spec->tier, sched::Tier::kSpot);
  EXPECT_EQ(spec->max_price_per_gpu_hour->to_string(), "1.50");
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"python", "train.py", "--epochs", "3"}));
  EXPECT_EQ(spec->packing, sched::Packing::kNvlink);
  EXPECT_TRUE(spec->requeue_on_preempt);

  auto again = parse_job_spec(to_json(*spec));
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(to_json(*again), to_json(*spec));
  EXPECT_EQ(again->argv, spec->argv);
  EXPECT_EQ(again->env, spec->env);
}

TEST(JobSpec, MistakesNameTheField) {
  struct Case {
    const char* json;
    const char* fragment;
  } cases[] = {
      {"", "empty"},
      {"[1]", "JSON object"},
      {R"({"command":["x"]})", "gpus"},
      {R"({"gpus":0,"command":["x"]})", "gpus"},
      {R"({"gpus":1.5,"command":["x"]})", "gpus"},
      {R"({"gpus":1,"command":[]})", "command"},
      {R"({"gpus":1,"command":[""]})", "command"},
      {R"({"gpus":1,"command":[1]})", "command"},
      {R"({"gpus":1,"command":["x"],"tier":"gold"})", "tier"},
      {R"({"gpus":1,"command":["x"],"tier":"spot"})", "max_price_per_gpu_hour"},
      {R"({"gpus":1,"command":["x"],"max_price_per_gpu_hour":"1"})", "spot jobs only"},
      {R"({"gpus":1,"command":["x"],"tier":"spot","max_price_per_gpu_hour":"-1"})", "max_price_per_gpu_hour"},
      {R"({"gpus":1,"command":["x"],"tier":"reserved"})", "reservation_id"},
      {R"({"gpus":1,"command":["x"],"workdir":"rel/dir"})", "absolute"},
      {R"({"gpus":1,"command":["x"],"packing":"tight"})", "packing"},
      {R"({"gpus":1,"command":["x"],"max_runtime_s":0})", "max_runtime_s"},
      {R"({"gpus":1,"command":["x"],"env":{"CUDA_VISIBLE_DEVICES":"0"}})", "CUDA_VISIBLE_DEVICES"},
      {R"({"gpus":1,"command":["x"],"env":{"A=B":"0"}})", "env"},
      {R"({"gpus":1,"command":["x"],"env":[]})", "env"},
      {R"({"gpus":1,"command":["x"],"extra":1})", "extra"},
  };
  for (const Case& c : cases) {
    auto spec = parse_job_spec(c.json);
    ASSERT_FALSE(spec.is_ok()) << c.json;
    EXPECT_EQ(spec.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(spec.status().message().find(c.fragment), std::string::npos) << c.json << " -> " << spec.status().message();
  }
}

TEST(Quota, ParsesRoundTripsAndRefuses) {
  auto quota = parse_quota(R"({"max_queued_jobs":5,"gpu_limits":[{"tier":"spot","gpu_type":"h100","max_gpus":16},
      {"tier":"on-demand","gpu_type":"any","max_gpus":8}],"fair_share_weight":2.5})");
  ASSERT_TRUE(quota.is_ok()) << quota.status().to_string();
  EXPECT_EQ(quota->limits.max_queued_jobs, 5u);
  ASSERT_EQ(quota->limits.gpu_limits.size(), 2u);
  EXPECT_EQ(quota->limits.gpu_limits[1].gpu_type, "");
  EXPECT_EQ(quota->fair_share_weight, 2.5);
  auto again = parse_quota(to_json(*quota));
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(to_json(*again), to_json(*quota));
  for (const char* bad : {R"({"max_queued_jobs":-1})", R"({"fair_share_weight":0})", R"({"gpu_limits":[{"tier":"spot"}]})",
                          R"({"gpu_limits":[{"tier":"x","max_gpus":1}]})", R"({"limits":1})"}) {
    EXPECT_FALSE(parse_quota(bad).is_ok()) << bad;
  }
}

}  // namespace
}  // namespace headroom::compute
