#include "gateway/upstream.h"

#include <gtest/gtest.h>

#include <vector>

namespace headroom::gateway {
namespace {

std::shared_ptr<Upstream> make_upstream(std::size_t max_in_flight,
                                        std::vector<std::string> urls = {"http://127.0.0.1:9/v1"}) {
  UpstreamOptions options;
  options.max_in_flight = max_in_flight;
  options.health_interval_ms = 60'000;
  auto upstream = Upstream::create(std::move(urls), "", options);
  EXPECT_TRUE(upstream.is_ok()) << upstream.status().to_string();
  return std::move(upstream).value();
}

TEST(Upstream, RequestsPastTheLimitWaitTheirTurnInOrder) {
  auto upstream = make_upstream(2);
  std::vector<int> started;
  for (int i = 0; i < 5; ++i) upstream->enter([&started, i](Upstream::Turn) { started.push_back(i); });
  EXPECT_EQ(started, (std::vector<int>{0, 1}));
  upstream->leave();  // 0 ends: 2 takes its place
  EXPECT_EQ(started, (std::vector<int>{0, 1, 2}));
  upstream->leave();
  upstream->leave();
  EXPECT_EQ(started, (std::vector<int>{0, 1, 2, 3, 4}));
  upstream->leave();
  upstream->leave();
  // All slots free again: the next one starts at once.
  upstream->enter([&started](Upstream::Turn) { started.push_back(5); });
  EXPECT_EQ(started.back(), 5);
  upstream->leave();
  upstream->stop();
}

TEST(Upstream, AServerStoppingIsPassedDownTheLine) {
  auto upstream = make_upstream(1);
  std::vector<Upstream::Turn> turns;
  upstream->enter([&](Upstream::Turn turn) { turns.push_back(turn); });
  for (int i = 0; i < 3; ++i) {
    // Each waiting request told the server is stopping leaves the same way.
    upstream->enter([&](Upstream::Turn turn) {
      turns.push_back(turn);
      upstream->leave(turn);
    });
  }
  upstream->leave(Upstream::Turn::kServerStopping);  // the one in flight, its I/O thread gone
  using T = Upstream::Turn;
  EXPECT_EQ(turns, (std::vector<T>{T::kGo, T::kServerStopping, T::kServerStopping, T::kServerStopping}));
  // Every slot is free again.
  upstream->enter([&](Upstream::Turn turn) { turns.push_back(turn); });
  EXPECT_EQ(turns.back(), T::kGo);
  upstream->leave();
  upstream->stop();
}

TEST(Upstream, OrderPutsUnhealthyReplicasLastThenFewestOutstandingTokens) {
  auto upstream = make_upstream(4, {"http://127.0.0.1:9/a", "http://127.0.0.1:9/b", "http://127.0.0.1:9/c"});
  const auto& r = upstream->replicas();
  r[0]->outstanding = 500;
  r[1]->healthy = false;
  r[2]->outstanding = 100;
  const std::vector<Upstream::Replica*> order = upstream->order();
  EXPECT_EQ(order, (std::vector<Upstream::Replica*>{r[2].get(), r[0].get(), r[1].get()}));
  upstream->stop();
}

TEST(Upstream, AMalformedUrlFailsTheStart) {
  auto upstream = Upstream::create({"ftp://x"}, "", {});
  EXPECT_EQ(upstream.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Upstream::create({}, "", {}).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace headroom::gateway
