#include "ledger/invoice.h"

#include <gtest/gtest.h>

#include <random>

namespace headroom::ledger {
namespace {

const Timestamp kJan = Timestamp::from_unix_seconds(1'767'225'600);  // 2026-01-01T00:00:00Z
const Timestamp kFeb = utc_month_start(202602);

Money usd(std::string_view text) { return Money::parse(text).value(); }

PriceBook book() {
  PriceBook b;
  EXPECT_TRUE(b.set({Product::kTokens, "llama-3.1-8b", "input", kJan, usd("0.05")}).is_ok());
  EXPECT_TRUE(b.set({Product::kTokens, "llama-3.1-8b", "output", kJan, usd("0.15")}).is_ok());
  EXPECT_TRUE(b.set({Product::kGpuTime, "h100", "on-demand", kJan, usd("2.00")}).is_ok());
  EXPECT_TRUE(b.set({Product::kGpuTime, "h100", "spot", kJan, usd("0.80")}).is_ok());
  return b;
}

UsageEvent event(std::string id, Product product, std::string item, std::string variant, std::int64_t quantity,
                 Timestamp start, std::string tenant = "ten_a") {
  UsageEvent e;
  e.id = std::move(id);
  e.tenant_id = std::move(tenant);
  e.product = product;
  e.item = std::move(item);
  e.variant = std::move(variant);
  e.quantity = quantity;
  e.start = start;
  e.end = start;
  return e;
}

RatedCharge rated(const PriceBook& b, const UsageEvent& e) {
  auto charge = rate(b, e);
  EXPECT_TRUE(charge.is_ok()) << charge.status().to_string();
  return std::move(charge).value();
}

// The worked example of invoice.h's rule, to the cent:
//   gpu_time h100 on-demand at $2.00/GPU-hour:
//     5,400,000 ms (1.5 h) = $3.00 and 1 ms = $0.000000555 5/9:
//     exact $3.000000555 5/9                      -> $3.00
//   tokens llama-3.1-8b input at $0.05/M:
//     20,000,000 + 100,000 tokens = 20,100,000 * 50 nano-dollars
//     exact $1.005, exactly half a cent: to even  -> $1.00
//   tokens llama-3.1-8b output at $0.15/M:
//     30,000,000 + 50,000 tokens = 30,050,000 * 150 nano-dollars
//     exact $4.5075                               -> $4.51
//   total $3.00 + $1.00 + $4.51 = $8.51; exact $8.512500555 5/9;
//   rounding -$0.002500555 5/9.
std::vector<RatedCharge> worked_example_charges() {
  PriceBook b = book();
  return {
      rated(b, event("g1", Product::kGpuTime, "h100", "on-demand", 5'400'000, kJan.plus_seconds(3600))),
      rated(b, event("g2", Product::kGpuTime, "h100", "on-demand", 1, kJan.plus_seconds(9000))),
      rated(b, event("t1", Product::kTokens, "llama-3.1-8b", "input", 20'000'000, kJan.plus_seconds(10))),
      rated(b, event("t2", Product::kTokens, "llama-3.1-8b", "input", 100'000, kJan.plus_seconds(20))),
      rated(b, event("t3", Product::kTokens, "llama-3.1-8b", "output", 30'000'000, kJan.plus_seconds(30))),
      rated(b, event("t4", Product::kTokens, "llama-3.1-8b", "output", 50'000, kJan.plus_seconds(40))),
  };
}

TEST(Invoice, WorkedExampleToTheCent) {
  std::vector<RatedCharge> charges = worked_example_charges();
  auto invoice = make_invoice("ten_a", 202601, charges);
  ASSERT_TRUE(invoice.is_ok()) << invoice.status().to_string();
  EXPECT_EQ(invoice->period_start, kJan);
  EXPECT_EQ(invoice->period_end, kFeb);
  ASSERT_EQ(invoice->lines.size(), 3u);
  const InvoiceLine& gpu = invoice->lines[0];
  EXPECT_EQ(gpu.description(), "gpu_time h100 on-demand: 1.5000002 GPU-hours at $2.00 per GPU-hour");
  EXPECT_EQ(gpu.quantity, 5'400'001);
  EXPECT_EQ(gpu.charges, 2u);
  EXPECT_EQ(gpu.exact, Amount::from_money(usd("3.000000555")) + Amount::from_units(10'000'000));
  EXPECT_EQ(gpu.amount, usd("3.00"));
  const InvoiceLine& input = invoice->lines[1];
  EXPECT_EQ(input.description(), "tokens llama-3.1-8b input: 20100000 tokens at $0.05 per million tokens");
  EXPECT_EQ(input.exact, Amount::from_money(usd("1.005")));
  EXPECT_EQ(input.amount, usd("1.00"));  // half to even
  const InvoiceLine& output = invoice->lines[2];
  EXPECT_EQ(output.exact, Amount::from_money(usd("4.5075")));
  EXPECT_EQ(output.amount, usd("4.51"));
  EXPECT_EQ(invoice->total, usd("8.51"));
  EXPECT_EQ(invoice->exact_total, Amount::from_money(usd("8.512500555")) + Amount::from_units(10'000'000));
  EXPECT_EQ(invoice->rounding(), -(Amount::from_money(usd("0.002500555")) + Amount::from_units(10'000'000)));
  EXPECT_TRUE(reconcile(*invoice, charges).is_ok());
}

TEST(Invoice, TheLedgerAgreesOnceTheRoundingIsBooked) {
  // Post every charge exactly, make the invoice, book its rounding: the
  // tenant was charged exactly the invoice's total.
  std::vector<RatedCharge> charges = worked_example_charges();
  Ledger ledger;
  auto create = [&](AccountId id, AccountKind kind, std::string owner, LimitRule limit) {
    ASSERT_EQ(ledger.apply(Command{kJan, CreateAccount{id, kind, std::move(owner), limit, {}}}), Outcome::kOk);
  };
  create(1, AccountKind::kFunding, "cash", LimitRule::kNone);
  create(2, AccountKind::kRevenue, "gpu_time", LimitRule::kNone);
  create(3, AccountKind::kRevenue, "tokens", LimitRule::kNone);
  create(4, AccountKind::kRounding, "invoices", LimitRule::kNone);
  create(10, AccountKind::kTenant, "ten_a", LimitRule::kDebitsWithinCredits);
  Amount deposit = Amount::from_dollars(20);
  ASSERT_EQ(ledger.apply(Command{kJan, CreateTransfer{transfer_id_of("dep"), 1, 10, deposit, TransferCode::kDeposit}}),
            Outcome::kOk);
  for (const RatedCharge& c : charges) {
    AccountId revenue = c.product == Product::kGpuTime ? 2 : 3;
    CreateTransfer t{transfer_id_of(c.event_id), 10, revenue, c.amount, TransferCode::kUsage, {}};
    ASSERT_EQ(ledger.apply(Command{c.start, t}), Outcome::kOk);
  }
  auto invoice = make_invoice("ten_a", 202601, charges);
  ASSERT_TRUE(invoice.is_ok());
  EXPECT_EQ(ledger.month_spend(10, kJan), invoice->exact_total);
  auto rounding = rounding_command(*invoice, 10, 4, kFeb);
  ASSERT_TRUE(rounding.has_value());
  const auto& t = std::get<CreateTransfer>(rounding->op);
  EXPECT_EQ(t.debit, 4u);  // rounding took off: the tenant gets it back
  EXPECT_EQ(t.credit, 10u);
  ASSERT_EQ(ledger.apply(*rounding), Outcome::kOk);
  EXPECT_EQ(ledger.apply(*rounding), Outcome::kAlreadyApplied);  // booked once
  EXPECT_EQ(ledger.account(10)->balance(), deposit - Amount::from_money(invoice->total));
  EXPECT_EQ(ledger.account(10)->balance(), Amount::from_money(usd("11.49")));
  EXPECT_EQ(ledger.account(2)->credits_posted + ledger.account(3)->credits_posted - ledger.account(4)->debits_posted,
            Amount::from_money(usd("8.51")));
  ledger.verify();
}

TEST(Invoice, Adjustments) {
  std::vector<RatedCharge> charges = worked_example_charges();
  std::vector<InvoiceAdjustment> adjustments = {
      {"credit for the outage of 3 January", -Amount::from_money(usd("1.234"))},
      {"support plan", Amount::from_money(usd("10"))},
  };
  auto invoice = make_invoice("ten_a", 202601, charges, adjustments);
  ASSERT_TRUE(invoice.is_ok());
  ASSERT_EQ(invoice->adjustments.size(), 2u);
  EXPECT_EQ(invoice->adjustments[0].amount, usd("-1.23"));
  EXPECT_EQ(invoice->adjustments[1].amount, usd("10.00"));
  EXPECT_EQ(invoice->total, usd("17.28"));
  EXPECT_TRUE(reconcile(*invoice, charges).is_ok());
  std::vector<InvoiceAdjustment> unlabeled = {{"", Amount()}};
  EXPECT_EQ(make_invoice("ten_a", 202601, charges, unlabeled).status().code(), ErrorCode::kInvalidArgument);
}

TEST(Invoice, RejectsChargesThatAreNotItsOwn) {
  PriceBook b = book();
  std::vector<RatedCharge> charges = worked_example_charges();
  std::vector<RatedCharge> other = charges;
  other.push_back(rated(b, event("x", Product::kTokens, "llama-3.1-8b", "input", 1, kJan, "ten_b")));
  EXPECT_EQ(make_invoice("ten_a", 202601, other).status().code(), ErrorCode::kInvalidArgument);
  other = charges;
  other.push_back(rated(b, event("x", Product::kTokens, "llama-3.1-8b", "input", 1, kFeb)));
  EXPECT_EQ(make_invoice("ten_a", 202601, other).status().code(), ErrorCode::kInvalidArgument);
  other = charges;
  other.push_back(charges[0]);
  EXPECT_EQ(make_invoice("ten_a", 202601, other).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(make_invoice("ten_a", 202613, charges).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(make_invoice("", 202601, charges).status().code(), ErrorCode::kInvalidArgument);
  // An interval that starts on the month's last second belongs to it.
  RatedCharge straddling = rated(b, event("s", Product::kGpuTime, "h100", "spot", 60'000, kFeb.plus_seconds(-1)));
  auto january = make_invoice("ten_a", 202601, std::vector<RatedCharge>{straddling});
  ASSERT_TRUE(january.is_ok());
  EXPECT_EQ(january->lines.size(), 1u);
  // An empty month is an empty invoice.
  auto empty = make_invoice("ten_a", 202512, {});
  ASSERT_TRUE(empty.is_ok());
  EXPECT_EQ(empty->total, Money());
  EXPECT_EQ(empty->period_end, kJan);
}

TEST(Invoice, ReconcileFindsTampering) {
  std::vector<RatedCharge> charges = worked_example_charges();
  Invoice invoice = make_invoice("ten_a", 202601, charges).value();
  Invoice changed = invoice;
  changed.lines[1].amount = usd("1.01");  // rounded half up instead
  EXPECT_EQ(reconcile(changed, charges).code(), ErrorCode::kConflict);
  changed = invoice;
  changed.total = usd("8.52");
  EXPECT_EQ(reconcile(changed, charges).code(), ErrorCode::kConflict);
  changed = invoice;
  changed.lines[0].quantity += 1;
  EXPECT_EQ(reconcile(changed, charges).code(), ErrorCode::kConflict);
  std::vector<RatedCharge> fewer(charges.begin(), charges.end() - 1);
  EXPECT_EQ(reconcile(invoice, fewer).code(), ErrorCode::kConflict);
}

TEST(Invoice, RandomMonthsReconcileAndMatchTheLedger) {
  std::mt19937_64 rng(42);
  PriceBook b = book();
  const char* variants[] = {"input", "output"};
  for (int month = 0; month < 20; ++month) {
    std::vector<RatedCharge> charges;
    Amount exact_sum;
    int events = 1 + static_cast<int>(rng() % 2'000);
    for (int i = 0; i < events; ++i) {
      Timestamp start = kJan.plus_micros(static_cast<std::int64_t>(rng() % (31ULL * 86'400 * 1'000'000)));
      std::string id = std::to_string(i);  // (not "e" + ...: GCC 12 warns falsely, -Wrestrict)
      UsageEvent e = rng() % 2 == 0 ? event(id, Product::kGpuTime, "h100", rng() % 2 ? "spot" : "on-demand",
                                            static_cast<std::int64_t>(rng() % 3'600'000), start)
                                    : event(id, Product::kTokens, "llama-3.1-8b", variants[rng() % 2],
                                            static_cast<std::int64_t>(rng() % 100'000), start);
      charges.push_back(rated(b, e));
      exact_sum += charges.back().amount;
    }
    auto invoice = make_invoice("ten_a", 202601, charges);
    ASSERT_TRUE(invoice.is_ok()) << invoice.status().to_string();
    EXPECT_TRUE(reconcile(*invoice, charges).is_ok());
    // The invoice's exact total is the rated events' sum; the rounded total
    // is within half a cent per line of it.
    EXPECT_EQ(invoice->exact_total, exact_sum);
    Amount half_cent = Amount::from_money(Money::from_nanos(5'000'000));
    Amount bound = half_cent * static_cast<std::int64_t>(invoice->lines.size());
    EXPECT_LE(invoice->rounding(), bound);
    EXPECT_GE(invoice->rounding(), -bound);
    Money sum;
    for (const InvoiceLine& line : invoice->lines) sum += line.amount;
    EXPECT_EQ(invoice->total, sum);
  }
}

}  // namespace
}  // namespace headroom::ledger
