// `headroom fleet` and `headroom surplus` end to end, against a fake server.
#include "cli/fleet_commands.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "cli/cli_test_util.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;

using test::CliTest;
using test::RunResult;

class FleetCommandsTest : public CliTest {};

const char* kFleet = R"({"source":"fleet.toml","virtual":true,"gpus":6,
  "gpu_types":[{"name":"h100","display_name":"H100 80GB","memory_mib":81559}],
  "nodes":[
    {"name":"n1","region":"eu","site":"ams","cluster":"c1","rack":"r1","block":"b1","nvlink_domain":"n1","state":"up",
     "gpus":[{"index":0,"type":"h100","uuid":"GPU-0","job_id":"job_1","tenant_id":"ten_1"},
             {"index":1,"type":"h100","uuid":"GPU-1","job_id":null,"tenant_id":null}]},
    {"name":"n2","region":"eu","site":"ams","cluster":"c1","rack":"r2","block":"b1","nvlink_domain":"n2",
     "state":"cordoned",
     "gpus":[{"index":0,"type":"a100","uuid":"GPU-2","job_id":"job_2","tenant_id":"ten_1"},
             {"index":1,"type":"h100","uuid":"GPU-3","job_id":"job_2","tenant_id":"ten_1"}]},
    {"name":"n3","region":"us","site":"iad","cluster":"c2","rack":"r1","block":"b2","nvlink_domain":"n3",
     "state":"up","gpus":[{"index":0,"type":"h100","uuid":"GPU-4","job_id":null,"tenant_id":null},
                          {"index":1,"type":"h100","uuid":"GPU-5","job_id":null,"tenant_id":null}]}]})";

TEST_F(FleetCommandsTest, FleetShowsNodesAndASummary) {
  server_.answer(200, kFleet);
  const RunResult r = run({"fleet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).target, "/v1/fleet");
  EXPECT_EQ(r.out,
            "NAME  STATE     TYPE       GPUS  USED  REGION  CLUSTER  RACK\n"
            "n1    up        h100          2     1  eu      c1       r1\n"
            "n2    cordoned  a100,h100     2     2  eu      c1       r2\n"
            "n3    up        h100          2     0  us      c2       r1\n"
            "6 GPUs on 3 nodes (2 up, 1 cordoned), 3 in use; source fleet.toml (virtual)\n");
}

TEST_F(FleetCommandsTest, FleetAsJsonIsTheServersAnswer) {
  expect_prints_answer_as_json({"fleet", "-o", "json"}, kFleet);
}

TEST_F(FleetCommandsTest, EmptyFleet) {
  EXPECT_EQ(render_fleet(json::parse(R"({"nodes":[]})")),
            "NAME  STATE  TYPE  GPUS  USED  REGION  CLUSTER  RACK\n"
            "0 GPUs on 0 nodes, 0 in use\n");
}

TEST_F(FleetCommandsTest, CordonDrainUncordon) {
  for (const std::string action : {"cordon", "drain", "uncordon"}) {
    server_.answer(200, R"({"node":"n 1","state":"x"})");
    const RunResult r = run({"fleet", action, "n 1"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(server_.requests.back().method, "POST");
    EXPECT_EQ(server_.requests.back().target, "/v1/fleet/nodes/n%201/" + action);
    EXPECT_EQ(r.out, "NODE   n 1\nSTATE  x\n");
  }
  // `fleet` itself did not run as well.
  EXPECT_EQ(server_.requests.size(), 3u);

  server_.answer(404, R"({"error":{"code":"not_found","message":"no node n9"}})");
  EXPECT_EQ(run({"fleet", "drain", "n9"}).exit_code, 4);
  server_.answer(403, R"({"error":{"code":"permission_denied","message":"admin only"}})");
  EXPECT_EQ(run({"fleet", "cordon", "n1"}).exit_code, 3);
  EXPECT_EQ(run({"fleet", "cordon"}).exit_code, 2);
  EXPECT_EQ(run({"fleet", "reboot", "n1"}).exit_code, 2);
}

TEST_F(FleetCommandsTest, Surplus) {
  server_.answer(200, R"({"data":[
      {"gpu_type":"h100","total":8,"down":0,"internal_in_use":2,"internal_buffer":1,"reserved":0,"on_demand":2,
       "spot":1,"idle":2,"sellable_now":2},
      {"gpu_type":"a100","total":16,"down":1,"internal_in_use":0,"internal_buffer":0,"reserved":4,"on_demand":0,
       "spot":0,"idle":11,"sellable_now":11}]})");
  const RunResult r = run({"surplus"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.at(0).target, "/v1/surplus");
  EXPECT_EQ(r.out,
            "GPU TYPE  TOTAL  DOWN  INTERNAL  BUFFER  RESERVED  ON-DEMAND  SPOT  IDLE  SELLABLE NOW\n"
            "h100          8     0         2       1         0          2     1     2             2\n"
            "a100         16     1         0       0         4          0     0    11            11\n");
}

}  // namespace
}  // namespace headroom::cli
