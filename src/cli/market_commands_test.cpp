// How `headroom offers` and `headroom report` print the server's answers.
#include "cli/market_commands.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace headroom::cli {
namespace {

TEST(MarketCommands, OffersShowOneTypeARowWithTheLeastReservable) {
  const auto offers = boost::json::parse(R"({"data":[{"gpu_type":"h100","gpus":16,
    "sites":[{"region":"r","site":"a","gpus":8,"available":3},{"region":"r","site":"b","gpus":8,"available":2}],
    "on_demand":{"price_per_gpu_hour":"2.50","available_now":4},
    "reserved":{"price_per_gpu_hour":"1.80","reservable_by_day":[{"date":"2026-11-27","gpus":12},{"date":"2026-11-28","gpus":7}]},
    "spot":{"price_per_gpu_hour":"0.90","floor_per_gpu_hour":"0.091","supply_now":5,"history_24h":[]}}]})");
  const std::string out = render_offers(offers);
  EXPECT_NE(out.find("GPU TYPE"), std::string::npos) << out;
  // 16 GPUs, 5 free over both sites, 7 reservable on the tightest day.
  EXPECT_NE(out.find("h100        16     5       2.50          4      1.80               7  0.90  0.091"),
            std::string::npos)
      << out;
  EXPECT_NE(render_offers(boost::json::parse(R"({"data":[]})")).find("GPU TYPE"), std::string::npos);
}

TEST(MarketCommands, AReportShowsItsRowsTotalAndReconciliation) {
  const auto report = boost::json::parse(R"({"total":"10.98","reconciliation":{"reconciled":true},
    "data":[{"group":"ten_a","product":"gpu_time","quantity":5400000,"unit":"gpu_ms","revenue":"3.78"},
            {"group":"ten_b","product":"gpu_time","quantity":7200000,"unit":"gpu_ms","revenue":"7.20"}]})");
  const std::string out = render_report(report);
  EXPECT_NE(out.find("GROUP"), std::string::npos) << out;
  EXPECT_NE(out.find("REVENUE"), std::string::npos) << out;
  EXPECT_NE(out.find("ten_b"), std::string::npos) << out;
  EXPECT_NE(out.find("Total: 10.98"), std::string::npos) << out;
  EXPECT_NE(out.find("Reconciled with the ledger."), std::string::npos) << out;
  EXPECT_EQ(render_report(boost::json::parse(R"({"data":[]})")), "No rows.\n");
}

}  // namespace
}  // namespace headroom::cli
