#include "billing/billing_service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "ledger/test_dir.h"

namespace headroom::billing {
namespace {

using ledger::Amount;
using ledger::Product;
using ledger::UsageEvent;

Money dollars(std::string_view text) { return Money::parse(text).value(); }

std::vector<ledger::PriceEntry> prices(std::string_view on_demand = "2.00") {
  return {
      {Product::kGpuTime, "h100", "on-demand", {}, dollars(on_demand)},
      {Product::kGpuTime, "h100", "spot", {}, dollars("0.80")},
      {Product::kTokens, "tiny", "input", {}, dollars("0.05")},
      {Product::kTokens, "tiny", "output", {}, dollars("0.20")},
  };
}

class BillingTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }

  void open(std::vector<ledger::PriceEntry> book = prices(), std::int64_t rate_every_ms = 20,
            std::size_t max_transfers = limits::kLedgerTransfers, bool rating_thread = true) {
    billing_.reset();
    usage_.reset();
    usage_ = ledger::UsageLog::open({dir_.file("usage")}).value();
    BillingOptions options;
    options.dir = dir_.file("ledger");
    options.prices = std::move(book);
    options.rate_every_ms = rate_every_ms;
    options.max_transfers = max_transfers;
    options.rating_thread = rating_thread;
    options.is_internal = [](std::string_view tenant) { return tenant.starts_with("ten_house"); };
    auto opened = BillingService::open(options, *usage_, clock_);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    billing_ = std::move(*opened);
  }

  // One GPU-hour-based event of `ms` GPU-milliseconds for a job, starting now.
  UsageEvent gpu(std::string id, std::string tenant, std::int64_t ms, std::string job = "job_1",
                 std::string tier = "on-demand") {
    UsageEvent e;
    e.id = std::move(id);
    e.tenant_id = std::move(tenant);
    e.product = Product::kGpuTime;
    e.item = "h100";
    e.variant = std::move(tier);
    e.quantity = ms;
    e.unit_price = dollars("2.00");
    e.start = clock_.now();
    e.end = clock_.now().plus_micros(ms * 1000);
    e.source_id = std::move(job);
    return e;
  }

  // Tokens of model "tiny" for ten_a's request cmpl_1.
  UsageEvent tokens(std::string id, std::string variant, std::int64_t n) {
    UsageEvent e;
    e.id = std::move(id);
    e.tenant_id = "ten_a";
    e.product = Product::kTokens;
    e.item = "tiny";
    e.variant = std::move(variant);
    e.quantity = n;
    e.start = e.end = clock_.now();
    e.source_id = "cmpl_1";
    return e;
  }

  void record(const UsageEvent& e) {
    ASSERT_TRUE(usage_->record(std::span(&e, 1)).is_ok());
  }

  void credit(std::string tenant, std::string_view amount, std::string key) {
    auto c = billing_->add_credits({tenant, dollars(amount), CreditKind::kDeposit, "", key});
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  }

  ledger::testing::TempDir dir_;
  ManualClock clock_{Timestamp::from_unix_seconds(1'795'000'000)};  // 2026-11-18
  std::unique_ptr<ledger::UsageLog> usage_;
  std::unique_ptr<BillingService> billing_;
};

TEST_F(BillingTest, CreditsAreIdempotentByKey) {
  credit("ten_a", "100.00", "k1");
  auto again = billing_->add_credits({"ten_a", dollars("100.00"), CreditKind::kDeposit, "", "k1"});
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->replayed);
  auto other = billing_->add_credits({"ten_a", dollars("5.00"), CreditKind::kDeposit, "", "k1"});
  EXPECT_EQ(other.status().code(), ErrorCode::kConflict);
  EXPECT_EQ(billing_->balance("ten_a").balance, dollars("100.00"));
  EXPECT_EQ(billing_->balance("ten_a").state, ledger::SpendState::kOk);
  EXPECT_EQ(billing_->add_credits({"ten_a", dollars("0"), CreditKind::kDeposit, "", "k2"}).status().code(),
            ErrorCode::kInvalidArgument);
  billing_->verify();
}

TEST_F(BillingTest, UsageIsChargedAtTheBooksPriceExactly) {
  credit("ten_a", "10.00", "k");
  record(gpu("e1", "ten_a", 3'600'000));  // one GPU-hour at $2.00
  UsageEvent tokens = gpu("e2", "ten_a", 1);
  tokens.product = Product::kTokens;
  tokens.item = "tiny";
  tokens.variant = "input";
  tokens.quantity = 1;  // $0.05 per million: 50 nano-dollars
  tokens.source_id = "req_1";
  tokens.key_id = "key_7";
  record(tokens);
  billing_->wait_rated();
  Balance b = billing_->balance("ten_a");
  EXPECT_EQ(b.balance, dollars("7.99999995"));
  EXPECT_EQ(b.month_spend, dollars("2.00000005"));
  BillingTotals t = billing_->totals();
  EXPECT_EQ(t.rated_events, 2u);
  EXPECT_EQ(t.revenue, t.rated_amount);
  billing_->verify();

  UsageReport report = billing_->usage("ten_a", Timestamp{0}, clock_.now().plus_seconds(3600), GroupBy::kProduct);
  ASSERT_EQ(report.rows.size(), 2u);
  EXPECT_EQ(report.rows[0].group, "gpu_time");
  EXPECT_EQ(report.rows[0].quantity, 3'600'000);
  EXPECT_EQ(report.rows[1].group, "tokens");
  EXPECT_EQ(report.total, Amount::from_money(dollars("2.00000005")));
  EXPECT_TRUE(billing_->usage("ten_b", Timestamp{0}, clock_.now(), GroupBy::kDay).rows.empty());
  // By key: the tokens only, under the key that spent them.
  UsageReport by_key = billing_->usage("ten_a", Timestamp{0}, clock_.now().plus_seconds(3600), GroupBy::kKey);
  ASSERT_EQ(by_key.rows.size(), 1u);
  EXPECT_EQ(by_key.rows[0].group, "key_7");
  EXPECT_EQ(by_key.rows[0].quantity, 1);

  auto months = billing_->invoice_months("ten_a");
  ASSERT_EQ(months.size(), 1u);
  EXPECT_EQ(months[0], 202611);
  auto invoice = billing_->invoice("ten_a", 202611);
  ASSERT_TRUE(invoice.is_ok()) << invoice.status().to_string();
  EXPECT_EQ(invoice->total, dollars("2.00"));  // two lines, each rounded once: $2.00 and $0.00
  EXPECT_EQ(billing_->invoice("ten_a", 202610).status().code(), ErrorCode::kNotFound);
}

TEST_F(BillingTest, UsagePastTheBalanceIsOwedNeverLost) {
  credit("ten_a", "1.00", "k");
  record(gpu("e1", "ten_a", 3'600'000));  // $2.00
  billing_->wait_rated();
  Balance b = billing_->balance("ten_a");
  EXPECT_EQ(b.balance, Money());
  EXPECT_EQ(b.owed, dollars("1.00"));
  EXPECT_EQ(b.state, ledger::SpendState::kExhausted);
  EXPECT_EQ(billing_->admit("ten_a").code(), ErrorCode::kInsufficientFunds);
  EXPECT_EQ(billing_->exhausted_tenants(), std::vector<std::string>{"ten_a"});
  const auto generation = billing_->exhausted_generation();
  credit("ten_a", "5.00", "k2");
  EXPECT_NE(billing_->exhausted_generation(), generation);
  EXPECT_TRUE(billing_->exhausted_tenants().empty());
  EXPECT_TRUE(billing_->admit("ten_a").is_ok());
  billing_->verify();
}

TEST_F(BillingTest, ATenantWithNothingIsNotAdmitted) {
  Status s = billing_->admit("ten_new");
  EXPECT_EQ(s.code(), ErrorCode::kInsufficientFunds);
  EXPECT_NE(s.message().find("POST /v1/tenants/ten_new/credits"), std::string::npos) << s.message();
  ASSERT_TRUE(billing_->set_terms("ten_new", dollars("50.00"), std::nullopt).is_ok());
  EXPECT_TRUE(billing_->admit("ten_new").is_ok());
}

TEST_F(BillingTest, TheOwnersTenantsAreChargedButNeverStopped) {
  EXPECT_TRUE(billing_->admit("ten_house").is_ok());
  ASSERT_TRUE(billing_->hold_run("ten_house", "job_1", "job_1:1", dollars("2.00"), 8, 3'600'000, 7'200'000,
                                 clock_.now())
                  .is_ok());
  record(gpu("job_1:1", "ten_house", 3'600'000));
  billing_->wait_rated();
  Balance b = billing_->balance("ten_house");
  EXPECT_EQ(b.balance, dollars("-2.00"));  // charged, so it shows on statements
  EXPECT_EQ(b.owed, Money());
  EXPECT_EQ(b.state, ledger::SpendState::kOk);
  EXPECT_TRUE(billing_->admit("ten_house").is_ok());
  billing_->verify();
}

TEST_F(BillingTest, ARunIsChargedFromItsHoldAndTheRestReleased) {
  credit("ten_a", "10.00", "k");
  // Two GPUs, a one-hour window at $2.00: a $4.00 hold.
  ASSERT_TRUE(billing_->hold_run("ten_a", "job_1", "job_1:1", dollars("2.00"), 2, 3'600'000, 7'200'000, clock_.now())
                  .is_ok());
  EXPECT_EQ(billing_->balance("ten_a").held, dollars("4.00"));
  EXPECT_EQ(billing_->balance("ten_a").available, dollars("6.00"));
  // Holding the same run again changes nothing.
  ASSERT_TRUE(billing_->hold_run("ten_a", "job_1", "job_1:1", dollars("2.00"), 2, 3'600'000, 7'200'000, clock_.now())
                  .is_ok());
  EXPECT_EQ(billing_->balance("ten_a").held, dollars("4.00"));

  record(gpu("job_1:a", "ten_a", 1'800'000));  // $1.00 from the hold
  billing_->wait_rated();
  Balance b = billing_->balance("ten_a");
  EXPECT_EQ(b.balance, dollars("9.00"));
  EXPECT_EQ(b.held, dollars("3.00"));
  EXPECT_EQ(b.available, dollars("6.00"));

  record(gpu("job_1:b", "ten_a", 9'000'000));  // $5.00: $3.00 from the hold, $2.00 from the balance
  billing_->wait_rated();
  b = billing_->balance("ten_a");
  EXPECT_EQ(b.balance, dollars("4.00"));
  EXPECT_EQ(b.held, Money());
  EXPECT_EQ(b.available, dollars("4.00"));

  ASSERT_TRUE(billing_->hold_run("ten_a", "job_1", "job_1:2", dollars("2.00"), 1, 3'600'000, 7'200'000, clock_.now())
                  .is_ok());
  EXPECT_EQ(billing_->balance("ten_a").held, dollars("2.00"));
  billing_->release_run("job_1", "job_1:2");
  billing_->wait_rated();
  for (int i = 0; i < 200 && billing_->balance("ten_a").held != Money(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(billing_->balance("ten_a").held, Money());
  EXPECT_EQ(billing_->balance("ten_a").balance, dollars("4.00"));
  billing_->verify();
}

// A run's release that reaches the rater after the job's next run made its
// hold (a requeued job starting again within the same tick) releases
// nothing: the live hold is the next run's, and stays. Run 1's last usage
// is charged from the job's live hold, as any of the job's usage is.
TEST_F(BillingTest, ARunsLateReleaseLeavesTheNextRunsHold) {
  // No rating thread: rating happens in wait_rated() only, after both calls.
  open(prices(), 20, limits::kLedgerTransfers, /*rating_thread=*/false);
  credit("ten_a", "10.00", "k");
  const auto hold = [&](std::string_view run) {
    return billing_->hold_run("ten_a", "job_1", run, dollars("2.00"), 1, 3'600'000, 7'200'000, clock_.now());
  };
  ASSERT_TRUE(hold("job_1:1").is_ok());                        // $2.00
  record(gpu("job_1:1:a", "ten_a", 1'800'000));               // run 1's last usage: $1.00
  billing_->release_run("job_1", "job_1:1");                 // run 1 ended...
  ASSERT_TRUE(hold("job_1:2").is_ok());                        // ...and run 2 began: run 1's hold is voided
  EXPECT_EQ(billing_->balance("ten_a").held, dollars("2.00"));
  billing_->wait_rated();
  Balance b = billing_->balance("ten_a");
  EXPECT_EQ(b.balance, dollars("9.00"));
  EXPECT_EQ(b.held, dollars("1.00")) << "run 2's hold, less run 1's $1.00 charged from it, stays held";

  // Run 2's usage comes from what is left of its hold; its own release frees the rest.
  record(gpu("job_1:2:a", "ten_a", 900'000));  // $0.50
  billing_->release_run("job_1", "job_1:2");
  billing_->wait_rated();
  b = billing_->balance("ten_a");
  EXPECT_EQ(b.balance, dollars("8.50"));
  EXPECT_EQ(b.held, Money());
  billing_->verify();
}

// A model request: its most cost held on admission, its token usage charged
// from the hold, the rest released; one the tenant cannot cover is refused.
TEST_F(BillingTest, AModelRequestIsChargedFromItsHoldAndTheRestReleased) {
  credit("ten_a", "1.00", "k");
  // 1,000,000 prompt tokens at $0.05 and 2,000,000 at most generated at $0.20: $0.45.
  ASSERT_TRUE(billing_->hold_request("ten_a", "cmpl_1", dollars("0.05"), 1'000'000, dollars("0.20"), 2'000'000,
                                     600'000, clock_.now())
                  .is_ok());
  EXPECT_EQ(billing_->balance("ten_a").held, dollars("0.45"));
  Status refused = billing_->hold_request("ten_a", "cmpl_2", dollars("0.05"), 1'000'000, dollars("0.20"), 3'000'000,
                                          600'000, clock_.now());
  EXPECT_EQ(refused.code(), ErrorCode::kInsufficientFunds) << refused.to_string();
  EXPECT_NE(refused.message().find("cannot cover this request's hold of $0.65"), std::string::npos)
      << refused.message();

  record(tokens("cmpl_1:input", "input", 1'000'000));   // $0.05
  record(tokens("cmpl_1:output", "output", 500'000));   // $0.10
  billing_->wait_rated();
  EXPECT_EQ(billing_->balance("ten_a").held, dollars("0.30")) << "charged from the hold";
  EXPECT_EQ(billing_->balance("ten_a").available, dollars("0.55"));
  billing_->release_request("cmpl_1");
  billing_->wait_rated();
  for (int i = 0; i < 200 && billing_->balance("ten_a").held != Money(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const Balance b = billing_->balance("ten_a");
  EXPECT_EQ(b.held, Money());
  EXPECT_EQ(b.balance, dollars("0.85"));
  billing_->verify();
}

// The usual order for a model request: its usage and its end reach the
// rater together. The hold is posted for the first event and the rest
// released with it, not held again and voided: three transfers, not six.
TEST_F(BillingTest, ARequestThatEndedBeforeRatingTakesThreeTransfers) {
  open(prices(), /*rate_every_ms=*/3'600'000);  // the rater wakes only for the release
  credit("ten_a", "1.00", "k");
  const std::uint64_t before = billing_->totals().transfers;
  ASSERT_TRUE(billing_->hold_request("ten_a", "cmpl_1", dollars("0.05"), 1'000'000, dollars("0.20"), 2'000'000,
                                     600'000, clock_.now())
                  .is_ok());
  {
    // Both events, then the release that wakes the rater.
    std::vector<UsageEvent> events = {tokens("cmpl_1:input", "input", 1'000'000),    // $0.05
                                      tokens("cmpl_1:output", "output", 500'000)};  // $0.10
    ASSERT_TRUE(usage_->record(events).is_ok());
    billing_->release_request("cmpl_1");
  }
  billing_->wait_rated();
  const Balance b = billing_->balance("ten_a");
  EXPECT_EQ(b.held, Money());
  EXPECT_EQ(b.balance, dollars("0.85"));
  EXPECT_EQ(billing_->totals().rated_amount, Amount::from_money(dollars("0.15")));
  // The hold, its post (the rest released), the second event from the balance.
  EXPECT_EQ(billing_->totals().transfers - before, 3u);
  billing_->verify();
}

// A hold that finds the ledger full, before rating has, says so.
TEST_F(BillingTest, AHoldThatFindsTheLedgerFullSaysSo) {
  open(prices(), 3'600'000, /*max_transfers=*/2);
  credit("ten_a", "100.00", "k");  // transfer 1
  ASSERT_TRUE(billing_->hold_request("ten_a", "cmpl_1", dollars("0.05"), 10, dollars("0.20"), 10, 60'000, clock_.now())
                  .is_ok());  // transfer 2
  const Status full =
      billing_->hold_request("ten_a", "cmpl_2", dollars("0.05"), 10, dollars("0.20"), 10, 60'000, clock_.now());
  EXPECT_EQ(full.code(), ErrorCode::kUnavailable);
  EXPECT_NE(full.message().find("the ledger holds its most transfers"), std::string::npos) << full.message();
  billing_->verify();
}

// A full ledger stops rating where it is, keeps the rest of the usage
// unrated in the usage log, and refuses money changes with a clear error:
// no crash, at the time or at the next start.
TEST_F(BillingTest, AFullLedgerStopsRatingAndRefusesChangesWithoutLosingUsage) {
  open(prices(), 20, /*max_transfers=*/6);
  credit("ten_a", "100.00", "k");  // transfer 1
  for (int i = 0; i < 10; ++i) {
    record(gpu("job_1:" + std::to_string(i), "ten_a", 1'800));  // a transfer each, from the balance
  }
  billing_->wait_rated();
  const BillingTotals t = billing_->totals();
  EXPECT_EQ(t.transfers, 6u);
  EXPECT_EQ(t.rated_events, 5u) << "the events that fit are charged, the rest wait";
  Result<Credit> refused = billing_->add_credits({"ten_a", dollars("1.00"), CreditKind::kDeposit, "", "k2"});
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("the ledger holds its most transfers"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(billing_->hold_request("ten_a", "cmpl_1", dollars("0.05"), 10, dollars("0.20"), 10, 60'000, clock_.now())
                .code(),
            ErrorCode::kUnavailable);
  EXPECT_EQ(usage_->totals().events, 10u) << "the usage log keeps every event";
  billing_->verify();

  open(prices(), 20, 6);  // the next start: the same state, the same refusal
  billing_->wait_rated();
  EXPECT_EQ(billing_->totals().rated_events, 5u);
  EXPECT_EQ(billing_->balance("ten_a").balance, dollars("100.00") - dollars("0.005"));
  billing_->verify();

  open(prices(), 20, limits::kLedgerTransfers);  // room again: the rest is charged, once
  billing_->wait_rated();
  EXPECT_EQ(billing_->totals().rated_events, 10u);
  EXPECT_EQ(billing_->balance("ten_a").balance, dollars("100.00") - dollars("0.01"));
  billing_->verify();
}

TEST_F(BillingTest, AHoldTheTenantCannotCoverIsRefused) {
  credit("ten_a", "1.00", "k");
  Status s = billing_->hold_run("ten_a", "job_1", "job_1:1", dollars("2.00"), 1, 3'600'000, 7'200'000, clock_.now());
  EXPECT_EQ(s.code(), ErrorCode::kInsufficientFunds);
  EXPECT_NE(s.message().find("$1.00 available"), std::string::npos) << s.message();
  EXPECT_EQ(billing_->balance("ten_a").held, Money());
  // Free work holds nothing.
  EXPECT_TRUE(billing_->hold_run("ten_a", "job_2", "job_2:1", Money(), 8, 3'600'000, 7'200'000, clock_.now()).is_ok());
}

TEST_F(BillingTest, ANewRunItsTenantCannotCoverSaysSo) {
  // The new run's hold is refused for lack of money, not for the release of
  // the previous run's hold that shares its chain.
  credit("ten_a", "1.00", "k");
  ASSERT_TRUE(billing_->hold_run("ten_a", "job_1", "job_1:1", dollars("2.00"), 1, 600'000, 7'200'000, clock_.now())
                  .is_ok());
  Status s = billing_->hold_run("ten_a", "job_1", "job_1:2", dollars("2.00"), 8, 600'000, 7'200'000, clock_.now());
  EXPECT_EQ(s.code(), ErrorCode::kInsufficientFunds) << s.to_string();
  EXPECT_EQ(billing_->balance("ten_a").held, dollars("0.333333333"));  // the first run's hold stands
}

TEST_F(BillingTest, HoldsExpireOnTheirOwn) {
  credit("ten_a", "10.00", "k");
  ASSERT_TRUE(billing_->hold_run("ten_a", "job_1", "job_1:1", dollars("2.00"), 1, 3'600'000, 60'000, clock_.now())
                  .is_ok());
  EXPECT_EQ(billing_->balance("ten_a").held, dollars("2.00"));
  clock_.advance_seconds(61);
  // The next command expires it; a credit is one.
  credit("ten_a", "1.00", "k2");
  EXPECT_EQ(billing_->balance("ten_a").held, Money());
  EXPECT_EQ(billing_->balance("ten_a").balance, dollars("11.00"));
}

TEST_F(BillingTest, ManyRunsRacingForTheLastDollarsNeverOverdraw) {
  credit("ten_a", "10.00", "k");
  std::atomic<int> held{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        std::string job = "job_" + std::to_string(t) + "_" + std::to_string(i);
        Status s = billing_->hold_run("ten_a", job, job + ":1", dollars("2.00"), 1, 1'800'000, 7'200'000, clock_.now());
        if (s.is_ok()) {
          ++held;
        } else {
          EXPECT_EQ(s.code(), ErrorCode::kInsufficientFunds);
          ++refused;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(held.load(), 10);  // $1.00 each, $10.00 in all
  EXPECT_EQ(refused.load(), 190);
  EXPECT_EQ(billing_->balance("ten_a").available, Money());
  billing_->verify();
}

TEST_F(BillingTest, BudgetAlertsAreRecorded) {
  credit("ten_a", "100.00", "k");
  ASSERT_TRUE(billing_->set_terms("ten_a", std::nullopt, dollars("10.00")).is_ok());
  record(gpu("e1", "ten_a", 9'000'000));  // $5.00: 50%
  billing_->wait_rated();
  auto alerts = billing_->balance("ten_a").alerts;
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].percent, 50);
  record(gpu("e2", "ten_a", 9'000'000));  // $10.00: 80% and 100%
  billing_->wait_rated();
  alerts = billing_->balance("ten_a").alerts;
  ASSERT_EQ(alerts.size(), 3u);
  EXPECT_EQ(alerts[2].percent, 100);
  EXPECT_EQ(billing_->set_terms("ten_a", dollars("-1"), std::nullopt).code(), ErrorCode::kInvalidArgument);
}

TEST_F(BillingTest, ARestartRebuildsTheSameState) {
  credit("ten_a", "10.00", "k");
  ASSERT_TRUE(billing_->hold_run("ten_a", "job_1", "job_1:1", dollars("2.00"), 1, 3'600'000, 7'200'000, clock_.now())
                  .is_ok());
  for (int i = 0; i < 50; ++i) record(gpu("job_1:" + std::to_string(i), "ten_a", 10'000 + i));
  billing_->wait_rated();
  ASSERT_TRUE(billing_->set_terms("ten_a", dollars("5.00"), dollars("20.00")).is_ok());
  const std::uint64_t fingerprint = billing_->fingerprint();
  const Balance before = billing_->balance("ten_a");
  const BillingTotals totals = billing_->totals();

  open();
  EXPECT_EQ(billing_->fingerprint(), fingerprint);
  const Balance after = billing_->balance("ten_a");
  EXPECT_EQ(after.balance, before.balance);
  EXPECT_EQ(after.held, before.held);
  EXPECT_EQ(after.credit_limit, dollars("5.00"));
  EXPECT_EQ(billing_->totals().rated_events, totals.rated_events);
  EXPECT_EQ(billing_->totals().rated_amount, totals.rated_amount);
  billing_->verify();

  // The hold is still the run's: the next event is charged from it.
  record(gpu("job_1:next", "ten_a", 1'000));
  billing_->wait_rated();
  EXPECT_LT(billing_->balance("ten_a").held, before.held);
  billing_->verify();
}

TEST_F(BillingTest, ANewPriceAppliesFromTheRestartOnAndNeverReprices) {
  credit("ten_a", "100.00", "k");
  record(gpu("e1", "ten_a", 3'600'000));
  billing_->wait_rated();
  clock_.advance_seconds(10);
  open(prices("3.00"));
  billing_->verify();  // e1 still rates at $2.00
  record(gpu("e2", "ten_a", 3'600'000));
  billing_->wait_rated();
  EXPECT_EQ(billing_->balance("ten_a").balance, dollars("95.00"));
  auto invoice = billing_->invoice("ten_a", 202611);
  ASSERT_TRUE(invoice.is_ok());
  EXPECT_EQ(invoice->lines.size(), 2u);  // one line per unit price
  open(prices("3.00"));
  billing_->verify();
}

TEST_F(BillingTest, ARuntimePriceTakesEffectAtItsTimeAndOutlivesARestart) {
  credit("ten_a", "100.00", "k");
  record(gpu("e1", "ten_a", 3'600'000));
  billing_->wait_rated();
  const Timestamp change = clock_.now().plus_seconds(60);
  ledger::PriceEntry p{Product::kGpuTime, "h100", "on-demand", change, dollars("2.50")};
  ASSERT_TRUE(billing_->set_prices(std::span(&p, 1)).is_ok());
  EXPECT_EQ(billing_->price_at(Product::kGpuTime, "h100", "on-demand", clock_.now()).value(), dollars("2.00"));
  EXPECT_EQ(billing_->price_at(Product::kGpuTime, "h100", "on-demand", change).value(), dollars("2.50"));
  clock_.advance_seconds(60);
  record(gpu("e2", "ten_a", 3'600'000));
  billing_->wait_rated();
  EXPECT_EQ(billing_->balance("ten_a").balance, dollars("95.50"));
  // The config did not change: the admin's price stays across a restart.
  open();
  billing_->verify();
  EXPECT_EQ(billing_->price_at(Product::kGpuTime, "h100", "on-demand", clock_.now()).value(), dollars("2.50"));
  EXPECT_EQ(billing_->balance("ten_a").balance, dollars("95.50"));
  // The config's own price changed: it takes effect from this start.
  clock_.advance_seconds(1);
  open(prices("3.00"));
  EXPECT_EQ(billing_->price_at(Product::kGpuTime, "h100", "on-demand", clock_.now()).value(), dollars("3.00"));
  billing_->verify();
}

TEST_F(BillingTest, APriceChangeNeverReachesBackOverARatedEvent) {
  record(gpu("e1", "ten_a", 1000));
  billing_->wait_rated();
  EXPECT_GT(billing_->earliest_price_change(), clock_.now());  // e1 starts now and is rated
  ledger::PriceEntry p{Product::kGpuTime, "h100", "on-demand", clock_.now(), dollars("9.00")};
  Status past = billing_->set_prices(std::span(&p, 1));
  EXPECT_EQ(past.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(past.message().find("prices[0]: effective_from"), std::string::npos) << past.message();
  p.effective_from = billing_->earliest_price_change();
  EXPECT_TRUE(billing_->set_prices(std::span(&p, 1)).is_ok());
  // Another price for the same key and time is a conflict; the same one is not.
  EXPECT_TRUE(billing_->set_prices(std::span(&p, 1)).is_ok());
  ledger::PriceEntry other = p;
  other.unit_price = dollars("8.00");
  EXPECT_EQ(billing_->set_prices(std::span(&other, 1)).code(), ErrorCode::kConflict);
  // Without an effective time: the earliest a change may take effect, written back.
  ledger::PriceEntry asap{Product::kGpuTime, "h100", "spot", {}, dollars("0.90")};
  const Timestamp earliest = billing_->earliest_price_change();
  ASSERT_TRUE(billing_->set_prices(std::span(&asap, 1)).is_ok());
  EXPECT_EQ(asap.effective_from, earliest);
  EXPECT_EQ(billing_->price_at(Product::kGpuTime, "h100", "spot", earliest).value(), dollars("0.90"));
  // All or none: a bad entry keeps the good one before it out.
  std::vector<ledger::PriceEntry> batch = {
      {Product::kGpuTime, "h100", "spot", p.effective_from.plus_seconds(5), dollars("1.10")},
      {Product::kTokens, "tiny", "sideways", p.effective_from.plus_seconds(5), dollars("1.00")}};
  Status bad = billing_->set_prices(batch);
  EXPECT_EQ(bad.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("prices[1]"), std::string::npos) << bad.message();
  EXPECT_EQ(billing_->price_at(Product::kGpuTime, "h100", "spot", p.effective_from.plus_seconds(5)).value(),
            dollars("0.90"));  // not the refused batch's 1.10
  billing_->verify();
}

TEST_F(BillingTest, QuoteRefusesWhatCannotBeRated) {
  std::vector<Amount> costs;
  std::vector<UsageEvent> batch = {gpu("e1", "ten_a", 3'600'000), gpu("e2", "ten_a", 1000)};
  batch[1].item = "a100";
  Status s = billing_->quote(batch, costs);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("events[1]: no price for gpu_time a100 on-demand"), std::string::npos) << s.message();
  batch = {gpu("", "ten_a", 1000)};
  EXPECT_EQ(billing_->quote(batch, costs).code(), ErrorCode::kInvalidArgument);
  batch = {gpu("e3", "ten_a", 3'600'000)};
  batch[0].unit_price = Money();
  ASSERT_TRUE(billing_->quote(batch, costs).is_ok());
  ASSERT_EQ(costs.size(), 1u);
  EXPECT_EQ(costs[0], Amount::from_money(dollars("2.00")));
  EXPECT_EQ(batch[0].unit_price, dollars("2.00"));  // the book's, filled in
}

}  // namespace
}  // namespace headroom::billing
