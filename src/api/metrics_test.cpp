#include "api/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace headroom::api {
namespace {

// One series of the exposition: its labels (as written) and value.
struct Series {
  std::string name, labels;
  double value = 0;
};

std::vector<Series> parse(const std::string& text) {
  std::vector<Series> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Series s;
    std::size_t brace = line.find('{');
    std::size_t close = line.rfind('}');
    std::size_t space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << line;
    if (brace != std::string::npos && close != std::string::npos && brace < space) {
      s.name = line.substr(0, brace);
      s.labels = line.substr(brace + 1, close - brace - 1);
    } else {
      s.name = line.substr(0, space);
    }
    s.value = std::stod(line.substr(space + 1));
    out.push_back(s);
  }
  return out;
}

double value_of(const std::vector<Series>& series, std::string_view name, std::string_view labels) {
  for (const auto& s : series) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  ADD_FAILURE() << "no series " << name << "{" << labels << "}";
  return -1;
}

// The bucket counts of one (route, status), in order, +Inf last.
std::vector<double> buckets_of(const std::vector<Series>& series, std::string_view route_status) {
  std::vector<double> out;
  for (const auto& s : series) {
    if (s.name == "headroom_http_request_duration_seconds_bucket" && s.labels.starts_with(route_status) &&
        s.labels.substr(route_status.size()).starts_with(",le=")) {
      out.push_back(s.value);
    }
  }
  return out;
}

TEST(Metrics, CountsAndCumulativeBuckets) {
  Metrics m({"GET /a", "GET /b"});
  // One latency in each of several buckets, and one past the last bound.
  for (std::int64_t us : {10, 50, 75, 300, 1'000, 4'000'000, 6'000'000}) m.record(0, 200, us);
  m.record(0, 404, 20);
  std::string text = m.render("");
  auto series = parse(text);

  EXPECT_EQ(value_of(series, "headroom_http_requests_total", R"(route="GET /a",status="200")"), 7);
  EXPECT_EQ(value_of(series, "headroom_http_requests_total", R"(route="GET /a",status="404")"), 1);
  EXPECT_EQ(text.find("GET /b"), std::string::npos) << "a route never answered has no series";

  std::vector<double> b = buckets_of(series, R"(route="GET /a",status="200")");
  ASSERT_EQ(b.size(), Metrics::kBucketMicros.size() + 1);
  // Bounds: 50 100 250 500 1000 2500 5000 ... 1e6 5e6 (us).
  std::vector<double> want = {2, 3, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 6, 7};
  EXPECT_EQ(b, want);
  for (std::size_t i = 1; i < b.size(); ++i) EXPECT_LE(b[i - 1], b[i]) << "cumulative";
  EXPECT_EQ(b.back(), value_of(series, "headroom_http_request_duration_seconds_count", R"(route="GET /a",status="200")"));
  EXPECT_DOUBLE_EQ(value_of(series, "headroom_http_request_duration_seconds_sum", R"(route="GET /a",status="200")"),
                   (10 + 50 + 75 + 300 + 1'000 + 4'000'000 + 6'000'000) / 1e6);
  // The bounds are written in seconds.
  EXPECT_NE(text.find(R"(route="GET /a",status="200",le="0.25"})"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(route="GET /a",status="200",le="5"})"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(route="GET /a",status="200",le="+Inf"} 7)"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE headroom_http_requests_total counter"), std::string::npos);
  EXPECT_NE(text.find("# TYPE headroom_http_request_duration_seconds histogram"), std::string::npos);
}

TEST(Metrics, RecordFromSeveralThreads) {
  Metrics m({"r0", "r1", "r2"});
  constexpr int kThreads = 8, kEach = 5'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < kEach; ++i) {
        m.record(static_cast<std::size_t>(i % 3), i % 2 == 0 ? 200 : 500 + t % 2, (i * 37) % 20'000);
      }
    });
  }
  // Scrapes while recording must not crash or tear.
  for (int i = 0; i < 20; ++i) (void)m.render("");
  for (auto& t : threads) t.join();

  auto series = parse(m.render(""));
  double total = 0;
  for (const auto& s : series) {
    if (s.name == "headroom_http_requests_total") total += s.value;
  }
  EXPECT_EQ(total, kThreads * kEach);
  // Every (route, status): +Inf == count, buckets cumulative, sum of counts per status right.
  for (std::string route : {"r0", "r1", "r2"}) {
    for (int status : {200, 500, 501}) {
      std::string labels = "route=\"" + route + "\",status=\"" + std::to_string(status) + "\"";
      std::vector<double> b = buckets_of(series, labels);
      ASSERT_EQ(b.size(), Metrics::kBucketMicros.size() + 1) << labels;
      for (std::size_t i = 1; i < b.size(); ++i) EXPECT_LE(b[i - 1], b[i]) << labels;
      double count = value_of(series, "headroom_http_request_duration_seconds_count", labels);
      EXPECT_EQ(b.back(), count) << labels;
      EXPECT_EQ(value_of(series, "headroom_http_requests_total", labels), count) << labels;
      EXPECT_EQ(b[b.size() - 2], count) << "all latencies are under 5 s: " << labels;
    }
  }
  double ok = 0;
  for (std::string route : {"r0", "r1", "r2"}) {
    ok += value_of(series, "headroom_http_requests_total", "route=\"" + route + "\",status=\"200\"");
  }
  EXPECT_EQ(ok, kThreads * kEach / 2);
}

TEST(Metrics, SeventeenthStatusOnARouteIsDropped) {
  Metrics m({"r", "other"});
  for (int status = 200; status < 200 + static_cast<int>(Metrics::kStatusesPerRoute); ++status) m.record(0, status, 1);
  m.record(0, 599, 1);  // the 17th distinct status
  m.record(0, 599, 1);
  m.record(0, 200, 1);  // a known one still counts
  m.record(1, 599, 1);  // another route has its own room
  std::string text = m.render("");
  EXPECT_EQ(text.find(R"(route="r",status="599")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(headroom_http_requests_total{route="r",status="200"} 2)"), std::string::npos);
  EXPECT_NE(text.find(R"(headroom_http_requests_total{route="r",status="215"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(headroom_http_requests_total{route="other",status="599"} 1)"), std::string::npos);
}

TEST(Metrics, OutOfRangeRouteAndOddLatenciesAreSafe) {
  Metrics m({"r"});
  m.record(1, 200, 5);      // no such route: ignored
  m.record(99999, 200, 5);
  m.record(0, 200, -7);     // a clock step backwards: first bucket, nothing added to the sum
  auto series = parse(m.render(""));
  EXPECT_EQ(value_of(series, "headroom_http_requests_total", R"(route="r",status="200")"), 1);
  EXPECT_EQ(value_of(series, "headroom_http_request_duration_seconds_sum", R"(route="r",status="200")"), 0);
  EXPECT_EQ(buckets_of(series, R"(route="r",status="200")").front(), 1);
}

TEST(Metrics, ExtraIsAppendedAndInstancesAreSeparate) {
  Metrics a({"r"}), b({"r"});
  a.record(0, 200, 1);
  a.record(0, 200, 1);
  b.record(0, 200, 1);
  std::string text_a = a.render("headroom_build_info{version=\"x\"} 1\n");
  EXPECT_TRUE(text_a.ends_with("headroom_build_info{version=\"x\"} 1\n"));
  EXPECT_NE(text_a.find(R"(headroom_http_requests_total{route="r",status="200"} 2)"), std::string::npos);
  EXPECT_NE(b.render("").find(R"(headroom_http_requests_total{route="r",status="200"} 1)"), std::string::npos);
  Metrics empty({});
  EXPECT_NE(empty.render("").find("# TYPE"), std::string::npos);
}

}  // namespace
}  // namespace headroom::api
