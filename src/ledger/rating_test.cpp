#include "ledger/rating.h"

#include <gtest/gtest.h>

namespace headroom::ledger {
namespace {

const Timestamp kT0 = Timestamp::from_unix_seconds(1'767'225'600);  // 2026-01-01T00:00:00Z

Money usd(std::string_view text) { return Money::parse(text).value(); }
Amount nanos(std::int64_t n) { return Amount::from_money(Money::from_nanos(n)); }

UsageEvent tokens(std::string id, std::int64_t quantity, std::string variant = "input", Money price = usd("0.05"),
                  Timestamp start = kT0) {
  UsageEvent e;
  e.id = std::move(id);
  e.tenant_id = "ten_a";
  e.product = Product::kTokens;
  e.item = "llama-3.1-8b";
  e.variant = std::move(variant);
  e.quantity = quantity;
  e.unit_price = price;
  e.start = start;
  e.end = start.plus_seconds(1);
  e.source_id = "req_1";
  return e;
}

UsageEvent gpu(std::string id, std::int64_t gpu_ms, Money price = usd("2.00"), Timestamp start = kT0) {
  UsageEvent e;
  e.id = std::move(id);
  e.tenant_id = "ten_a";
  e.product = Product::kGpuTime;
  e.item = "h100";
  e.variant = "on-demand";
  e.quantity = gpu_ms;
  e.unit_price = price;
  e.start = start;
  e.end = start.plus_micros(gpu_ms * 1000);
  e.source_id = "job_1";
  return e;
}

PriceBook book() {
  PriceBook b;
  EXPECT_TRUE(b.set({Product::kTokens, "llama-3.1-8b", "input", kT0, usd("0.05")}).is_ok());
  EXPECT_TRUE(b.set({Product::kTokens, "llama-3.1-8b", "output", kT0, usd("0.15")}).is_ok());
  EXPECT_TRUE(b.set({Product::kGpuTime, "h100", "on-demand", kT0, usd("2.00")}).is_ok());
  EXPECT_TRUE(b.set({Product::kGpuTime, "h100", "spot", kT0, usd("0.80")}).is_ok());
  return b;
}

TEST(ExactCost, FiveCentsPerMillionTokensIsExact) {
  // $0.05 per million tokens: one token is 50 nano-dollars, exactly.
  Amount one = exact_cost(Product::kTokens, 1, usd("0.05"));
  EXPECT_EQ(one, nanos(50));
  EXPECT_EQ(one.units(), 900'000'000);
  EXPECT_TRUE(one.is_whole_nanos());
  EXPECT_EQ(exact_cost(Product::kTokens, 20'000'000, usd("0.05")), Amount::from_dollars(1));
  // And one token at a price that is not a whole number of nano-dollars per token.
  Amount odd = exact_cost(Product::kTokens, 1, usd("0.0375"));  // 37.5 nano-dollars
  EXPECT_FALSE(odd.is_whole_nanos());
  EXPECT_EQ(odd * 2, nanos(75));
}

TEST(ExactCost, GpuMillisecondsAtAnHourlyPrice) {
  // $2.00 per GPU-hour is 555 5/9 nano-dollars per GPU-millisecond.
  Amount one_ms = exact_cost(Product::kGpuTime, 1, usd("2.00"));
  EXPECT_FALSE(one_ms.is_whole_nanos());
  EXPECT_EQ(one_ms * 9, nanos(5'000));
  EXPECT_EQ(exact_cost(Product::kGpuTime, kMillisPerGpuHour, usd("2.00")), Amount::from_dollars(2));
  // An hour cut into 3.6 million one-millisecond charges sums to the same $2.00: nothing is lost.
  Amount sum;
  for (int i = 0; i < 3'600'000; ++i) sum += one_ms;
  EXPECT_EQ(sum, Amount::from_dollars(2));
  // A minute of 8 GPUs at $2.49.
  EXPECT_EQ(exact_cost(Product::kGpuTime, 8 * 60'000, usd("2.49")), nanos(332'000'000));
  EXPECT_EQ(exact_cost(Product::kGpuTime, 0, usd("2.49")), Amount());
  EXPECT_EQ(exact_cost(Product::kGpuTime, 1'000, Money()), Amount());
}

TEST(RoundLine, ToTheCentHalfToEven) {
  auto cents_of = [](Amount a) { return round_line(a).value().nanos() / 10'000'000; };
  Amount half_cent = nanos(5'000'000);
  EXPECT_EQ(cents_of(half_cent), 0);                                  // 0.005 -> 0.00
  EXPECT_EQ(cents_of(nanos(15'000'000)), 2);                          // 0.015 -> 0.02
  EXPECT_EQ(cents_of(nanos(25'000'000)), 2);                          // 0.025 -> 0.02
  EXPECT_EQ(cents_of(nanos(35'000'000)), 4);                          // 0.035 -> 0.04
  EXPECT_EQ(cents_of(half_cent + Amount::from_units(1)), 1);          // a hair above half: up
  EXPECT_EQ(cents_of(nanos(15'000'000) - Amount::from_units(1)), 1);  // a hair below: down
  EXPECT_EQ(cents_of(-half_cent), 0);                                 // -0.005 -> 0.00
  EXPECT_EQ(cents_of(-nanos(15'000'000)), -2);                        // -0.015 -> -0.02
  EXPECT_EQ(cents_of(-nanos(14'999'999)), -1);
  EXPECT_EQ(cents_of(-nanos(16'000'000)), -2);
  EXPECT_EQ(cents_of(Amount::from_dollars(1'234)), 123'400);
  EXPECT_EQ(cents_of(Amount()), 0);
  EXPECT_EQ(round_line(Amount::from_dollars(9'300'000'000)).status().code(), ErrorCode::kInvalidArgument);
}

TEST(PriceBook, VersionsByEffectiveTime) {
  PriceBook b = book();
  ASSERT_TRUE(b.set({Product::kGpuTime, "h100", "on-demand", kT0.plus_seconds(3600), usd("2.50")}).is_ok());
  EXPECT_EQ(b.price_at(Product::kGpuTime, "h100", "on-demand", kT0).value(), usd("2.00"));
  EXPECT_EQ(b.price_at(Product::kGpuTime, "h100", "on-demand", kT0.plus_seconds(3599)).value(), usd("2.00"));
  EXPECT_EQ(b.price_at(Product::kGpuTime, "h100", "on-demand", kT0.plus_seconds(3600)).value(), usd("2.50"));
  EXPECT_EQ(b.price_at(Product::kGpuTime, "h100", "on-demand", kT0.plus_seconds(999'999)).value(), usd("2.50"));
  EXPECT_EQ(b.price_at(Product::kGpuTime, "h100", "on-demand", kT0.plus_micros(-1)).status().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(b.price_at(Product::kGpuTime, "a100", "on-demand", kT0).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(b.price_at(Product::kTokens, "h100", "on-demand", kT0).status().code(), ErrorCode::kNotFound);
  // A version set again: a no-op; changed in place: refused, the past is not rewritten.
  EXPECT_TRUE(b.set({Product::kGpuTime, "h100", "on-demand", kT0, usd("2.00")}).is_ok());
  EXPECT_EQ(b.set({Product::kGpuTime, "h100", "on-demand", kT0, usd("1.00")}).code(), ErrorCode::kConflict);
  EXPECT_EQ(b.size(), 5u);
}

TEST(PriceBook, InForceScheduledAndHistory) {
  PriceBook b = book();
  for (int h : {1, 2, 3}) {
    ASSERT_TRUE(
        b.set({Product::kGpuTime, "h100", "spot", kT0.plus_seconds(3600 * h), usd(std::to_string(h) + ".00")}).is_ok());
  }
  std::vector<std::string> seen;
  b.for_each_at(kT0.plus_seconds(5000), [&](const PriceEntry& p, bool scheduled) {
    if (p.item == "h100" && p.variant == "spot") seen.push_back(p.unit_price.to_string() + (scheduled ? "+" : ""));
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"1.00", "2.00+", "3.00+"}));
  std::size_t in_force = 0;
  b.for_each_at(kT0, [&](const PriceEntry&, bool scheduled) { in_force += !scheduled; });
  EXPECT_EQ(in_force, 4u);  // one per key of book()
  // Before a key's first version: all of it is scheduled.
  seen.clear();
  b.for_each_at(kT0.plus_micros(-1), [&](const PriceEntry& p, bool scheduled) {
    if (p.variant == "spot") seen.push_back(p.unit_price.to_string() + (scheduled ? "+" : ""));
  });
  EXPECT_EQ(seen.front().back(), '+');
  auto history = b.history(Product::kGpuTime, "h100", "spot", kT0.plus_seconds(5000), kT0.plus_seconds(7200));
  ASSERT_EQ(history.size(), 1u);  // 1.00 in force at the start; 2.00 begins at the end, which is outside
  EXPECT_EQ(history[0].unit_price, usd("1.00"));
  history = b.history(Product::kGpuTime, "h100", "spot", kT0.plus_seconds(5000), kT0.plus_seconds(7201));
  EXPECT_EQ(history.size(), 2u);
  EXPECT_TRUE(b.history(Product::kGpuTime, "a100", "spot", kT0, kT0.plus_seconds(1)).empty());
}

TEST(PriceBook, RejectsMalformed) {
  PriceBook b;
  EXPECT_EQ(b.set({Product::kGpuTime, "", "spot", kT0, usd("1")}).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(b.set({Product::kGpuTime, "h100", "", kT0, usd("1")}).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(b.set({Product::kTokens, "m", "prompt", kT0, usd("1")}).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(b.set({Product::kTokens, "m", "input", kT0, usd("-0.01")}).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(b.set({Product::kTokens, "m", "input", kT0, usd("1000.000000001")}).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(b.set({Product::kTokens, "m", "input", kT0, usd("1000")}).is_ok());
  EXPECT_TRUE(b.set({Product::kGpuTime, "h100", "internal", kT0, Money()}).is_ok());
}

TEST(Rate, UsesTheBookAtTheEventsStart) {
  PriceBook b = book();
  auto charge = rate(b, tokens("e1", 20'000'000));
  ASSERT_TRUE(charge.is_ok()) << charge.status().to_string();
  EXPECT_EQ(charge->amount, Amount::from_dollars(1));
  EXPECT_EQ(charge->unit_price, usd("0.05"));
  EXPECT_EQ(charge->price_check, PriceCheck::kMatches);
  EXPECT_EQ(charge->event_id, "e1");
  EXPECT_EQ(charge->tenant_id, "ten_a");
  EXPECT_EQ(charge->source_id, "req_1");
  EXPECT_EQ(rate(b, tokens("e2", 1))->amount, nanos(50));
  EXPECT_EQ(rate(b, tokens("e3", 1'000'000, "output", usd("0.15")))->amount, nanos(150'000'000));

  // A price change applies to events that start after it, not to earlier ones.
  ASSERT_TRUE(b.set({Product::kGpuTime, "h100", "on-demand", kT0.plus_seconds(60), usd("3.00")}).is_ok());
  EXPECT_EQ(rate(b, gpu("g1", 60'000, usd("2.00"), kT0))->amount,
            Amount::from_money(usd("0.033333333")) + Amount::from_units(6'000'000));  // 1/30 dollar
  EXPECT_EQ(rate(b, gpu("g1", 60'000, usd("2.00"), kT0))->amount * 30, Amount::from_dollars(1));
  auto later = rate(b, gpu("g2", 60'000, usd("2.00"), kT0.plus_seconds(60)));
  EXPECT_EQ(later->amount, Amount::from_money(usd("0.05")));
  EXPECT_EQ(later->unit_price, usd("3.00"));
  // The source said $2.00: the book wins and the difference is flagged.
  EXPECT_EQ(later->price_check, PriceCheck::kSourceDiffers);
  EXPECT_EQ(later->source_unit_price, usd("2.00"));
}

TEST(Rate, RejectsWhatItCannotPrice) {
  PriceBook b = book();
  UsageEvent e = gpu("g", 1'000);
  e.item = "b200";
  EXPECT_EQ(rate(b, e).status().code(), ErrorCode::kNotFound);
  e = gpu("g", 1'000, usd("2.00"), kT0.plus_micros(-1));  // before any price
  EXPECT_EQ(rate(b, e).status().code(), ErrorCode::kNotFound);
  e = gpu("g", -1);
  EXPECT_EQ(rate(b, e).status().code(), ErrorCode::kInvalidArgument);
  e = gpu("g", limits::kRatingQuantityMax + 1);
  EXPECT_EQ(rate(b, e).status().code(), ErrorCode::kInvalidArgument);
  e = gpu("", 1);
  EXPECT_EQ(rate(b, e).status().code(), ErrorCode::kInvalidArgument);
  e = gpu("g", 1);
  e.tenant_id.clear();
  EXPECT_EQ(rate(b, e).status().code(), ErrorCode::kInvalidArgument);
  e = gpu("g", 1);
  e.end = e.start.plus_micros(-1);
  EXPECT_EQ(rate(b, e).status().code(), ErrorCode::kInvalidArgument);
  // The largest event at the largest price fits a transfer.
  PriceBook big;
  ASSERT_TRUE(big.set({Product::kTokens, "m", "output", kT0, Money::from_dollars(1'000)}).is_ok());
  UsageEvent huge = tokens("h", limits::kRatingQuantityMax, "output", Money::from_dollars(1'000));
  huge.item = "m";
  auto charge = rate(big, huge);
  ASSERT_TRUE(charge.is_ok());
  EXPECT_LE(charge->amount, kTransferAmountMax);
}

}  // namespace
}  // namespace headroom::ledger
