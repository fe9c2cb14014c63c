#include "gateway/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace headroom::gateway {
namespace {

TEST(RateLimiter, RequestsPerMinuteRefillSteadily) {
  ManualClock clock;
  RateLimiter limiter({.requests_per_minute = 3}, {}, clock);
  RateState state;
  std::vector<std::unique_ptr<RateLimiter::Ticket>> held;
  for (int i = 0; i < 3; ++i) {
    auto ticket = limiter.admit("t", "k", 10, state);
    ASSERT_TRUE(ticket.is_ok());
    EXPECT_EQ(state.limit_requests, 3);
    EXPECT_EQ(state.remaining_requests, 2 - i);
    held.push_back(std::move(*ticket));
  }
  auto refused = limiter.admit("t", "k", 10, state);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kRateLimited);
  EXPECT_NE(refused.status().message().find("requests per minute (tenant limit 3)"), std::string::npos);
  EXPECT_NEAR(state.retry_after_s, 20.0, 1e-9);  // one request every 20 s
  clock.advance_seconds(20);
  EXPECT_TRUE(limiter.admit("t", "k", 10, state).is_ok());
  // Another tenant has its own bucket.
  EXPECT_TRUE(limiter.admit("u", "k2", 10, state).is_ok());
}

TEST(RateLimiter, TokensAreReservedThenTheUnusedRefunded) {
  ManualClock clock;
  RateLimiter limiter({}, {.tokens_per_minute = 1000}, clock);
  RateState state;
  auto a = limiter.admit("t", "k", 600, state);
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(state.remaining_tokens, 400);
  auto b = limiter.admit("t", "k", 600, state);
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.status().message().find("tokens per minute (key limit 1000): 600 requested, 400 left"),
            std::string::npos) << b.status().message();
  EXPECT_NEAR(state.retry_after_s, 12.0, 1e-9);  // 200 tokens at 1000 a minute
  (*a)->settle(100);  // used 100 of 600
  EXPECT_TRUE(limiter.admit("t", "k", 600, state).is_ok());
  EXPECT_EQ(state.remaining_tokens, 300);
}

TEST(RateLimiter, ARequestLargerThanAMinuteNeverFits) {
  ManualClock clock;
  RateLimiter limiter({.tokens_per_minute = 100}, {}, clock);
  RateState state;
  auto r = limiter.admit("t", "k", 101, state);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("Request too large"), std::string::npos);
  EXPECT_EQ(state.retry_after_s, 0);
}

TEST(RateLimiter, ConcurrencyIsHeldUntilTheTicketGoes) {
  ManualClock clock;
  RateLimiter limiter({.concurrent = 2}, {.concurrent = 1}, clock);
  RateState state;
  auto a = limiter.admit("t", "k1", 1, state);
  ASSERT_TRUE(a.is_ok());
  EXPECT_FALSE(limiter.admit("t", "k1", 1, state).is_ok()) << "the key allows one at a time";
  auto b = limiter.admit("t", "k2", 1, state);
  ASSERT_TRUE(b.is_ok());
  auto c = limiter.admit("t", "k3", 1, state);
  ASSERT_FALSE(c.is_ok()) << "the tenant allows two";
  EXPECT_NE(c.status().message().find("concurrent requests (tenant limit 2)"), std::string::npos);
  a->reset();
  EXPECT_TRUE(limiter.admit("t", "k3", 1, state).is_ok());
}

// Many threads racing for the last of a minute's tokens: never more admitted
// than the limit allows.
TEST(RateLimiter, NeverOvershootsUnderContention) {
  ManualClock clock;
  RateLimiter limiter({.tokens_per_minute = 1000}, {}, clock);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<RateLimiter::Ticket>> tickets(800);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        RateState state;
        std::string key = "k";
        key.push_back(static_cast<char>('0' + t));
        auto r = limiter.admit("t", key, 7, state);
        if (r.is_ok()) {
          tickets[t * 100 + i] = std::move(*r);
          ++admitted;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(admitted.load(), 1000 / 7);
}

TEST(RateLimiter, ResetFormat) {
  EXPECT_EQ(format_reset(1), "1s");
  EXPECT_EQ(format_reset(0.5), "0.5s");
  EXPECT_EQ(format_reset(360), "6m0s");
}

}  // namespace
}  // namespace headroom::gateway
