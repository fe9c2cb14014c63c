#include "ledger/ledger.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace headroom::ledger {
namespace {

const Timestamp kT0 = Timestamp::from_unix_seconds(1'767'225'600);  // 2026-01-01T00:00:00Z

constexpr AccountId kCash = 1;
constexpr AccountId kGrants = 2;
constexpr AccountId kGpuRevenue = 3;
constexpr AccountId kTokenRevenue = 4;
constexpr AccountId kTenantA = 10;
constexpr AccountId kTenantB = 11;
constexpr AccountId kReceivableA = 20;

Amount dollars(std::int64_t d) { return Amount::from_dollars(d); }
Amount cents(std::int64_t c) { return Amount::from_money(Money::from_nanos(c * 10'000'000)); }
TransferId tid(std::uint64_t n) { return TransferId{0, n}; }

Command at(Timestamp t, Op op, Link link = Link::kNone) { return Command{t, std::move(op), link}; }

Command account(AccountId id, AccountKind kind, std::string owner, Amount credit_limit = {}) {
  CreateAccount c;
  c.id = id;
  c.kind = kind;
  c.owner = std::move(owner);
  bool limited = kind == AccountKind::kTenant;
  c.limit = limited ? LimitRule::kDebitsWithinCredits : LimitRule::kNone;
  c.credit_limit = credit_limit;
  return at(kT0, c);
}

Command transfer(std::uint64_t id, AccountId debit, AccountId credit, Amount amount,
                 TransferCode code = TransferCode::kUsage, Timestamp t = kT0) {
  CreateTransfer c;
  c.id = tid(id);
  c.debit = debit;
  c.credit = credit;
  c.amount = amount;
  c.code = code;
  return at(t, c);
}

Command deposit(std::uint64_t id, AccountId tenant, Amount amount, Timestamp t = kT0) {
  return transfer(id, kCash, tenant, amount, TransferCode::kDeposit, t);
}

Command hold(std::uint64_t id, AccountId debit, AccountId credit, Amount amount, std::int64_t timeout_ms = 60'000,
             Timestamp t = kT0) {
  CreateHold c;
  c.id = tid(id);
  c.debit = debit;
  c.credit = credit;
  c.amount = amount;
  c.timeout_ms = timeout_ms;
  return at(t, c);
}

Command post(std::uint64_t id, std::uint64_t hold_id, std::optional<Amount> amount, Timestamp t = kT0) {
  return at(t, PostHold{tid(id), tid(hold_id), amount});
}
Command void_hold(std::uint64_t id, std::uint64_t hold_id, Timestamp t = kT0) {
  return at(t, VoidHold{tid(id), tid(hold_id)});
}
Command reverse(std::uint64_t id, std::uint64_t target, std::optional<Amount> amount = std::nullopt,
                Timestamp t = kT0) {
  return at(t, ReverseTransfer{tid(id), tid(target), amount});
}

// A ledger with funding, revenue, two tenants and a receivable account.
Ledger make_ledger() {
  Ledger ledger;
  for (const Command& c :
       {account(kCash, AccountKind::kFunding, "cash"), account(kGrants, AccountKind::kFunding, "grants"),
        account(kGpuRevenue, AccountKind::kRevenue, "gpu_time"),
        account(kTokenRevenue, AccountKind::kRevenue, "tokens"), account(kTenantA, AccountKind::kTenant, "ten_a"),
        account(kTenantB, AccountKind::kTenant, "ten_b"), account(kReceivableA, AccountKind::kReceivable, "ten_a")}) {
    EXPECT_EQ(ledger.apply(c), Outcome::kOk);
  }
  return ledger;
}

// ---- Amount, ids, months ------------------------------------------------------------

TEST(Amount, ExactUnitsAndText) {
  EXPECT_EQ(Amount::from_money(Money::from_nanos(1)).units(), 18'000'000);
  EXPECT_EQ(dollars(1).floor_money(), Money::from_dollars(1));
  EXPECT_EQ(dollars(12).to_string(), "12.000000000");
  EXPECT_EQ(Amount::from_units(18'000'007).to_string(), "0.000000001+7/18000000");
  EXPECT_EQ((-Amount::from_units(18'000'007)).to_string(), "-0.000000001+7/18000000");
  EXPECT_EQ(Amount::from_units(-1).floor_money(), Money::from_nanos(-1));  // floor, not toward zero
  EXPECT_EQ(Amount::from_units(17'999'999).floor_money(), Money());
  EXPECT_TRUE(Amount::from_units(36'000'000).is_whole_nanos());
  EXPECT_FALSE(Amount::from_units(36'000'001).is_whole_nanos());
}

TEST(TransferIdOf, StableAndDistinct) {
  // Durable: these ids are in journals, so the derivation never changes.
  EXPECT_EQ(transfer_id_of("job_1:1767225600000").to_string(), transfer_id_of("job_1:1767225600000").to_string());
  EXPECT_NE(transfer_id_of("job_1:1767225600000"), transfer_id_of("job_1:1767225660000"));
  // printf 'headroom-ledger:usage-event-1' | sha256sum | cut -c1-32
  EXPECT_EQ(transfer_id_of("usage-event-1").to_string(), "8b9195e81f36ff21d9b6f1a1adc5cfb3");
  EXPECT_FALSE(transfer_id_of("").is_zero());
}

TEST(UtcMonth, OfAndStart) {
  EXPECT_EQ(utc_month_of(kT0), 202601);
  EXPECT_EQ(utc_month_of(kT0.plus_micros(-1)), 202512);
  EXPECT_EQ(utc_month_start(202601), kT0);
  EXPECT_EQ(utc_month_start(202602), Timestamp::from_unix_seconds(1'767'225'600 + 31 * 86'400));
  EXPECT_EQ(utc_month_of(Timestamp::from_unix_seconds(951'782'400)), 200002);  // 2000-02-29
}

// ---- Accounts ---------------------------------------------------------------------

TEST(LedgerAccounts, CreateIsIdempotentByIdAndUniqueByOwner) {
  Ledger ledger = make_ledger();
  EXPECT_EQ(ledger.apply(account(kTenantA, AccountKind::kTenant, "ten_a")), Outcome::kAlreadyApplied);
  EXPECT_EQ(ledger.apply(account(kTenantA, AccountKind::kTenant, "ten_other")), Outcome::kIdConflict);
  EXPECT_EQ(ledger.apply(account(kTenantA, AccountKind::kTenant, "ten_a", dollars(5))), Outcome::kIdConflict);
  EXPECT_EQ(ledger.apply(account(99, AccountKind::kTenant, "ten_a")), Outcome::kOwnerTaken);
  // The same owner under another kind is another account.
  EXPECT_EQ(ledger.apply(account(21, AccountKind::kReceivable, "ten_b")), Outcome::kOk);
  EXPECT_EQ(ledger.find_account(AccountKind::kTenant, "ten_a"), kTenantA);
  EXPECT_EQ(ledger.find_account(AccountKind::kReceivable, "ten_a"), kReceivableA);
  EXPECT_EQ(ledger.find_account(AccountKind::kTenant, "ten_zz"), std::nullopt);
  EXPECT_EQ(ledger.owner_of(kTenantB), "ten_b");
  EXPECT_EQ(ledger.account_count(), 8u);
}

TEST(LedgerAccounts, RejectsMalformed) {
  Ledger ledger = make_ledger();
  EXPECT_EQ(ledger.apply(account(0, AccountKind::kTenant, "ten_x")), Outcome::kInvalid);
  EXPECT_EQ(ledger.apply(account(50, AccountKind::kTenant, "")), Outcome::kInvalid);
  EXPECT_EQ(ledger.apply(account(50, AccountKind::kTenant, std::string(limits::kLedgerOwnerBytes + 1, 'x'))),
            Outcome::kInvalid);
  CreateAccount unlimited_tenant{50, AccountKind::kTenant, "ten_x", LimitRule::kNone, {}};
  EXPECT_EQ(ledger.apply(at(kT0, unlimited_tenant)), Outcome::kInvalid);
  CreateAccount credit_without_limit{50, AccountKind::kRevenue, "x", LimitRule::kNone, dollars(1)};
  EXPECT_EQ(ledger.apply(at(kT0, credit_without_limit)), Outcome::kInvalid);
  CreateAccount bad_kind{50, static_cast<AccountKind>(77), "x", LimitRule::kNone, {}};
  EXPECT_EQ(ledger.apply(at(kT0, bad_kind)), Outcome::kInvalid);
  CreateAccount negative_credit{50, AccountKind::kTenant, "x", LimitRule::kDebitsWithinCredits, -dollars(1)};
  EXPECT_EQ(ledger.apply(at(kT0, negative_credit)), Outcome::kInvalid);
  EXPECT_EQ(ledger.account_count(), 7u);
}

// ---- Posted transfers ---------------------------------------------------------------

TEST(LedgerTransfers, DepositSpendAndTheLimit) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), dollars(10));
  EXPECT_EQ(ledger.account(kCash)->debits_posted, dollars(10));
  ASSERT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(4))), Outcome::kOk);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), dollars(6));
  EXPECT_EQ(ledger.account(kGpuRevenue)->credits_posted, dollars(4));
  // One unit past the balance fails and changes nothing; exactly the balance passes.
  EXPECT_EQ(ledger.apply(transfer(3, kTenantA, kGpuRevenue, dollars(6) + Amount::from_units(1))),
            Outcome::kInsufficientFunds);
  EXPECT_EQ(ledger.transfer(tid(3)), nullptr);
  EXPECT_EQ(ledger.apply(transfer(3, kTenantA, kGpuRevenue, dollars(6))), Outcome::kOk);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), Amount());
  EXPECT_EQ(ledger.spend_state(kTenantA), SpendState::kExhausted);
  EXPECT_EQ(ledger.apply(transfer(4, kTenantA, kGpuRevenue, Amount::from_units(1))), Outcome::kInsufficientFunds);
  // Unlimited accounts go as negative as they need.
  EXPECT_EQ(ledger.account(kCash)->balance(), -dollars(10));
  ledger.verify();
}

TEST(LedgerTransfers, CreditLimitLetsTheBalanceGoNegativeToIt) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(at(kT0, SetCreditLimit{kTenantA, dollars(5)})), Outcome::kOk);
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(2))), Outcome::kOk);
  EXPECT_EQ(ledger.account(kTenantA)->available(), dollars(7));
  EXPECT_TRUE(ledger.can_spend(kTenantA, dollars(7)));
  EXPECT_FALSE(ledger.can_spend(kTenantA, dollars(7) + Amount::from_units(1)));
  ASSERT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(6))), Outcome::kOk);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), -dollars(4));
  EXPECT_EQ(ledger.spend_state(kTenantA), SpendState::kOk);
  EXPECT_EQ(ledger.apply(transfer(3, kTenantA, kGpuRevenue, dollars(2))), Outcome::kInsufficientFunds);
  // The limit cannot be cut below what is used; down to it is fine.
  EXPECT_EQ(ledger.apply(at(kT0, SetCreditLimit{kTenantA, dollars(3)})), Outcome::kLimitBelowUse);
  EXPECT_EQ(ledger.apply(at(kT0, SetCreditLimit{kTenantA, dollars(4)})), Outcome::kOk);
  EXPECT_EQ(ledger.spend_state(kTenantA), SpendState::kExhausted);
  EXPECT_EQ(ledger.apply(at(kT0, SetCreditLimit{kCash, dollars(4)})), Outcome::kWrongAccountKind);
  EXPECT_EQ(ledger.apply(at(kT0, SetCreditLimit{999, dollars(4)})), Outcome::kAccountNotFound);
  EXPECT_EQ(ledger.apply(at(kT0, SetCreditLimit{kTenantA, -dollars(4)})), Outcome::kInvalid);
  ledger.verify();
}

TEST(LedgerTransfers, IdempotentById) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(3))), Outcome::kOk);
  // A retry, later: a no-op.
  EXPECT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(3), TransferCode::kUsage, kT0.plus_seconds(5))),
            Outcome::kAlreadyApplied);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), dollars(7));
  // The same id with other content: a conflict.
  EXPECT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(4))), Outcome::kIdConflict);
  EXPECT_EQ(ledger.apply(transfer(2, kTenantA, kTokenRevenue, dollars(3))), Outcome::kIdConflict);
  EXPECT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(3), TransferCode::kAdjustment)),
            Outcome::kIdConflict);
  EXPECT_EQ(ledger.apply(hold(2, kTenantA, kGpuRevenue, dollars(3))), Outcome::kIdConflict);
  // A failed command leaves its id free.
  EXPECT_EQ(ledger.apply(transfer(3, kTenantA, kGpuRevenue, dollars(8))), Outcome::kInsufficientFunds);
  ASSERT_EQ(ledger.apply(deposit(4, kTenantA, dollars(1))), Outcome::kOk);
  EXPECT_EQ(ledger.apply(transfer(3, kTenantA, kGpuRevenue, dollars(8))), Outcome::kOk);
  ledger.verify();
}

TEST(LedgerTransfers, RejectsMalformed) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  EXPECT_EQ(ledger.apply(transfer(0, kTenantA, kGpuRevenue, dollars(1))), Outcome::kInvalid);
  EXPECT_EQ(ledger.apply(transfer(2, kTenantA, kTenantA, dollars(1))), Outcome::kInvalid);
  EXPECT_EQ(ledger.apply(transfer(2, 0, kGpuRevenue, dollars(1))), Outcome::kInvalid);
  EXPECT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, -Amount::from_units(1))), Outcome::kInvalid);
  EXPECT_EQ(ledger.apply(transfer(2, kCash, kGpuRevenue, kTransferAmountMax + Amount::from_units(1))),
            Outcome::kInvalid);
  EXPECT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(1), static_cast<TransferCode>(0))),
            Outcome::kInvalid);
  EXPECT_EQ(ledger.apply(transfer(2, kTenantA, 999, dollars(1))), Outcome::kAccountNotFound);
  EXPECT_EQ(ledger.apply(transfer(2, 999, kTenantA, dollars(1))), Outcome::kAccountNotFound);
  // Zero is a valid amount (an internal job's GPU time at price 0 is still recorded).
  EXPECT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, Amount())), Outcome::kOk);
  EXPECT_EQ(ledger.apply(transfer(3, kCash, kGpuRevenue, kTransferAmountMax)), Outcome::kOk);
  ledger.verify();
}

TEST(LedgerTransfers, ExecuteExplainsInsufficientFunds) {
  Ledger ledger = make_ledger();
  ASSERT_TRUE(ledger.execute(deposit(1, kTenantA, dollars(3))).is_ok());
  ASSERT_TRUE(ledger.execute(hold(2, kTenantA, kGpuRevenue, cents(20))).is_ok());
  Status status = ledger.execute(transfer(3, kTenantA, kGpuRevenue, dollars(5)));
  EXPECT_EQ(status.code(), ErrorCode::kInsufficientFunds);
  EXPECT_EQ(status.message(),
            "account 10 (tenant ten_a) has $2.80 available ($0.20 held); it needs $5.00: add funds or raise the "
            "credit limit");
  EXPECT_EQ(ledger.execute(transfer(3, kTenantA, 404, dollars(1))).code(), ErrorCode::kNotFound);
  EXPECT_EQ(ledger.execute(transfer(2, kTenantA, kGpuRevenue, dollars(1))).code(), ErrorCode::kConflict);
  EXPECT_EQ(ledger.execute(transfer(0, kTenantA, kGpuRevenue, dollars(1))).code(), ErrorCode::kInvalidArgument);
}

// ---- Holds ----------------------------------------------------------------------------

TEST(LedgerHolds, PostWithActualUsageReleasesTheRest) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(2, kTenantA, kTokenRevenue, dollars(4))), Outcome::kOk);
  const Account* a = ledger.account(kTenantA);
  EXPECT_EQ(a->debits_pending, dollars(4));
  EXPECT_EQ(a->balance(), dollars(10));
  EXPECT_EQ(a->available(), dollars(6));
  EXPECT_EQ(ledger.account(kTokenRevenue)->credits_pending, dollars(4));
  EXPECT_EQ(ledger.pending_holds(), 1u);
  // Holds count against the limit.
  EXPECT_EQ(ledger.apply(transfer(3, kTenantA, kGpuRevenue, dollars(7))), Outcome::kInsufficientFunds);
  EXPECT_EQ(ledger.apply(post(4, 2, dollars(5))), Outcome::kExceedsHold);
  ASSERT_EQ(ledger.apply(post(4, 2, cents(130))), Outcome::kOk);
  a = ledger.account(kTenantA);
  EXPECT_EQ(a->debits_pending, Amount());
  EXPECT_EQ(a->balance(), dollars(10) - cents(130));
  EXPECT_EQ(ledger.account(kTokenRevenue)->credits_posted, cents(130));
  EXPECT_EQ(ledger.account(kTokenRevenue)->credits_pending, Amount());
  EXPECT_EQ(ledger.transfer(tid(2))->state, HoldState::kPosted);
  EXPECT_EQ(ledger.transfer(tid(2))->settled, cents(130));
  EXPECT_EQ(ledger.transfer(tid(4))->kind, TransferKind::kPost);
  EXPECT_EQ(ledger.pending_holds(), 0u);
  // Once.
  EXPECT_EQ(ledger.apply(post(4, 2, cents(130))), Outcome::kAlreadyApplied);
  EXPECT_EQ(ledger.apply(post(4, 2, cents(131))), Outcome::kIdConflict);
  EXPECT_EQ(ledger.apply(post(4, 2, std::nullopt)), Outcome::kIdConflict);
  EXPECT_EQ(ledger.apply(post(5, 2, cents(1))), Outcome::kHoldAlreadyPosted);
  EXPECT_EQ(ledger.apply(void_hold(5, 2)), Outcome::kHoldAlreadyPosted);
  EXPECT_EQ(ledger.apply(post(5, 1, cents(1))), Outcome::kNotAHold);
  EXPECT_EQ(ledger.apply(post(5, 77, cents(1))), Outcome::kHoldNotFound);
  EXPECT_EQ(ledger.apply(post(0, 2, cents(1))), Outcome::kInvalid);
  ledger.verify();
}

TEST(LedgerHolds, PostWholeAndVoid) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(2, kTenantA, kGpuRevenue, dollars(3))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(3, kTenantA, kGpuRevenue, dollars(3))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(post(4, 2, std::nullopt)), Outcome::kOk);
  EXPECT_EQ(ledger.apply(post(4, 2, std::nullopt)), Outcome::kAlreadyApplied);
  EXPECT_EQ(ledger.apply(post(4, 2, dollars(3))), Outcome::kIdConflict);  // "whole" is what was asked
  ASSERT_EQ(ledger.apply(void_hold(5, 3)), Outcome::kOk);
  EXPECT_EQ(ledger.apply(void_hold(5, 3)), Outcome::kAlreadyApplied);
  EXPECT_EQ(ledger.apply(void_hold(6, 3)), Outcome::kHoldAlreadyVoided);
  EXPECT_EQ(ledger.apply(post(6, 3, std::nullopt)), Outcome::kHoldAlreadyVoided);
  EXPECT_EQ(ledger.transfer(tid(5))->amount, dollars(3));  // what it released
  EXPECT_EQ(ledger.account(kTenantA)->balance(), dollars(7));
  EXPECT_EQ(ledger.account(kTenantA)->debits_pending, Amount());
  EXPECT_EQ(ledger.apply(hold(7, kTenantA, kGpuRevenue, dollars(1), 0)), Outcome::kInvalid);
  EXPECT_EQ(ledger.apply(hold(7, kTenantA, kGpuRevenue, dollars(1), limits::kLedgerHoldTimeoutMsMax + 1)),
            Outcome::kInvalid);
  EXPECT_EQ(ledger.apply(hold(7, kTenantA, kGpuRevenue, dollars(8))), Outcome::kInsufficientFunds);
  ledger.verify();
}

TEST(LedgerHolds, ExpireOnTheirOwn) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(2, kTenantA, kGpuRevenue, dollars(4), 60'000)), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(3, kTenantA, kGpuRevenue, dollars(4), 120'000)), Outcome::kOk);
  EXPECT_EQ(ledger.transfer(tid(2))->expires_at, kT0.plus_seconds(60));
  // Just before: still pending.
  ASSERT_EQ(ledger.apply(at(kT0.plus_micros(59'999'999), Expire{})), Outcome::kOk);
  EXPECT_EQ(ledger.transfer(tid(2))->state, HoldState::kPending);
  // At its expiry any command (here an unrelated one) expires it first.
  ASSERT_EQ(ledger.apply(deposit(4, kTenantB, dollars(1), kT0.plus_seconds(60))), Outcome::kOk);
  EXPECT_EQ(ledger.transfer(tid(2))->state, HoldState::kExpired);
  EXPECT_EQ(ledger.transfer(tid(3))->state, HoldState::kPending);
  EXPECT_EQ(ledger.account(kTenantA)->debits_pending, dollars(4));
  EXPECT_EQ(ledger.apply(post(5, 2, dollars(1), kT0.plus_seconds(61))), Outcome::kHoldExpired);
  EXPECT_EQ(ledger.apply(void_hold(5, 2, kT0.plus_seconds(61))), Outcome::kHoldExpired);
  ASSERT_EQ(ledger.apply(at(kT0.plus_seconds(500), Expire{})), Outcome::kOk);
  EXPECT_EQ(ledger.transfer(tid(3))->state, HoldState::kExpired);
  EXPECT_EQ(ledger.account(kTenantA)->debits_pending, Amount());
  EXPECT_EQ(ledger.account(kTenantA)->available(), dollars(10));
  EXPECT_EQ(ledger.pending_holds(), 0u);
  ledger.verify();
}

// Holds settled long before they would expire leave no trace in the expiry
// heap beyond a bounded slack, and the ones still pending expire on time.
TEST(LedgerHolds, SettledHoldsDoNotAccumulateForExpiry) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(1'000'000))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(2, kTenantA, kTokenRevenue, dollars(1), 60'000)), Outcome::kOk);  // left pending
  std::uint64_t id = 10;
  for (int i = 0; i < 20'000; ++i, id += 2) {
    ASSERT_EQ(ledger.apply(hold(id, kTenantA, kTokenRevenue, dollars(1), 600'000)), Outcome::kOk);
    ASSERT_EQ(ledger.apply(post(id + 1, id, cents(50))), Outcome::kOk);
    ASSERT_LE(ledger.expiry_entries(), 2 * (ledger.pending_holds() + 1) + 64) << i;
  }
  EXPECT_EQ(ledger.pending_holds(), 1u);
  ASSERT_EQ(ledger.apply(at(kT0.plus_seconds(60), Expire{})), Outcome::kOk);
  EXPECT_EQ(ledger.transfer(tid(2))->state, HoldState::kExpired);
  EXPECT_EQ(ledger.pending_holds(), 0u);
  ledger.verify();
}

TEST(LedgerHolds, ExpiredByTimeEvenInsideAChain) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(2, kTenantA, kGpuRevenue, dollars(4), 1'000)), Outcome::kOk);
  // Expiry runs before a chain, not inside it; a hold past its time is
  // expired for post and void all the same.
  std::vector<Command> chain = {deposit(3, kTenantA, dollars(1), kT0.plus_micros(999'999)),
                                post(4, 2, dollars(1), kT0.plus_seconds(1))};
  chain[0].link = Link::kWithNext;
  std::vector<Outcome> results(chain.size());
  ledger.apply(chain, results);
  EXPECT_EQ(results[0], Outcome::kLinkedEventFailed);
  EXPECT_EQ(results[1], Outcome::kHoldExpired);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), dollars(10));
  ledger.verify();
}

TEST(LedgerHolds, ClockNeverGoesBack) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10), kT0.plus_seconds(100))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(2, kTenantA, kGpuRevenue, dollars(1), 1'000, kT0)), Outcome::kOk);
  EXPECT_EQ(ledger.now(), kT0.plus_seconds(100));
  EXPECT_EQ(ledger.transfer(tid(2))->at, kT0.plus_seconds(100));
  EXPECT_EQ(ledger.transfer(tid(2))->expires_at, kT0.plus_seconds(101));
}

// ---- Reversals --------------------------------------------------------------------------

TEST(LedgerReversals, NewTransfersTheOtherWay) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(6))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(reverse(3, 2, dollars(2))), Outcome::kOk);
  const Transfer* r = ledger.transfer(tid(3));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->kind, TransferKind::kReversal);
  EXPECT_EQ(r->debit, kGpuRevenue);
  EXPECT_EQ(r->credit, kTenantA);
  EXPECT_EQ(r->target, tid(2));
  EXPECT_EQ(r->code, TransferCode::kUsage);
  // The original is untouched but for how much of it was reversed.
  EXPECT_EQ(ledger.transfer(tid(2))->amount, dollars(6));
  EXPECT_EQ(ledger.transfer(tid(2))->settled, dollars(2));
  EXPECT_EQ(ledger.account(kTenantA)->balance(), dollars(6));
  EXPECT_EQ(ledger.apply(reverse(3, 2, dollars(2))), Outcome::kAlreadyApplied);
  EXPECT_EQ(ledger.apply(reverse(3, 2)), Outcome::kIdConflict);
  EXPECT_EQ(ledger.apply(reverse(4, 2, dollars(5))), Outcome::kExceedsRemaining);
  ASSERT_EQ(ledger.apply(reverse(4, 2)), Outcome::kOk);  // the rest
  EXPECT_EQ(ledger.transfer(tid(4))->amount, dollars(4));
  EXPECT_EQ(ledger.apply(reverse(5, 2)), Outcome::kAlreadyReversed);
  EXPECT_EQ(ledger.apply(reverse(5, 3)), Outcome::kNotReversible);  // a reversal: make a new transfer instead
  EXPECT_EQ(ledger.apply(reverse(5, 77)), Outcome::kTransferNotFound);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), dollars(10));
  ledger.verify();
}

TEST(LedgerReversals, HoldsAndVoidsAreNotReversedButPostsAre) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(2, kTenantA, kGpuRevenue, dollars(3))), Outcome::kOk);
  EXPECT_EQ(ledger.apply(reverse(3, 2)), Outcome::kNotReversible);
  ASSERT_EQ(ledger.apply(post(4, 2, dollars(2))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(reverse(5, 4)), Outcome::kOk);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), dollars(10));
  ASSERT_EQ(ledger.apply(hold(6, kTenantA, kGpuRevenue, dollars(3))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(void_hold(7, 6)), Outcome::kOk);
  EXPECT_EQ(ledger.apply(reverse(8, 7)), Outcome::kNotReversible);
  ledger.verify();
}

TEST(LedgerReversals, ReversingADepositRespectsTheLimit) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(7))), Outcome::kOk);
  // The tenant spent the deposit: it cannot be taken back whole.
  EXPECT_EQ(ledger.apply(reverse(3, 1)), Outcome::kInsufficientFunds);
  EXPECT_EQ(ledger.apply(reverse(3, 1, dollars(3))), Outcome::kOk);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), Amount());
  ledger.verify();
}

// ---- Budgets ------------------------------------------------------------------------------

TEST(LedgerBudgets, AlertsAt50And80And100PercentOncePerMonth) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(1'000))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(at(kT0, SetBudget{kTenantA, Money::from_dollars(100)})), Outcome::kOk);
  ASSERT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(49), TransferCode::kUsage, kT0.plus_seconds(1))),
            Outcome::kOk);
  EXPECT_TRUE(ledger.alerts(kTenantA).empty());
  // Deposits and non-usage transfers are not spend.
  ASSERT_EQ(ledger.apply(transfer(3, kTenantA, kCash, dollars(5), TransferCode::kRefund)), Outcome::kOk);
  EXPECT_TRUE(ledger.alerts(kTenantA).empty());
  // Exactly 50%.
  ASSERT_EQ(ledger.apply(transfer(4, kTenantA, kGpuRevenue, dollars(1), TransferCode::kUsage, kT0.plus_seconds(2))),
            Outcome::kOk);
  ASSERT_EQ(ledger.alerts(kTenantA).size(), 1u);
  EXPECT_EQ(ledger.alerts(kTenantA)[0].percent, 50);
  EXPECT_EQ(ledger.alerts(kTenantA)[0].at, kT0.plus_seconds(2));
  EXPECT_EQ(ledger.alerts(kTenantA)[0].spend, dollars(50));
  EXPECT_EQ(ledger.alerts(kTenantA)[0].month, 202601);
  // Through hold and post: the posted amount counts, when posted.
  ASSERT_EQ(ledger.apply(hold(5, kTenantA, kTokenRevenue, dollars(60))), Outcome::kOk);
  EXPECT_EQ(ledger.alerts(kTenantA).size(), 1u);
  ASSERT_EQ(ledger.apply(post(6, 5, dollars(55), kT0.plus_seconds(3))), Outcome::kOk);
  ASSERT_EQ(ledger.alerts(kTenantA).size(), 3u);  // 105%: 80 and 100 at once
  EXPECT_EQ(ledger.alerts(kTenantA)[1].percent, 80);
  EXPECT_EQ(ledger.alerts(kTenantA)[2].percent, 100);
  EXPECT_EQ(ledger.month_spend(kTenantA, kT0.plus_seconds(3)), dollars(105));
  ASSERT_EQ(ledger.apply(transfer(7, kTenantA, kGpuRevenue, dollars(10))), Outcome::kOk);
  EXPECT_EQ(ledger.alerts(kTenantA).size(), 3u);  // each once
  // A new month starts from zero.
  Timestamp feb = utc_month_start(202602);
  EXPECT_EQ(ledger.month_spend(kTenantA, feb), Amount());
  ASSERT_EQ(ledger.apply(transfer(8, kTenantA, kGpuRevenue, dollars(50), TransferCode::kUsage, feb)), Outcome::kOk);
  ASSERT_EQ(ledger.alerts(kTenantA).size(), 4u);
  EXPECT_EQ(ledger.alerts(kTenantA)[3].percent, 50);
  EXPECT_EQ(ledger.alerts(kTenantA)[3].month, 202602);
  EXPECT_TRUE(ledger.alerts(kTenantB).empty());
  EXPECT_EQ(ledger.all_alerts().size(), 4u);
}

TEST(LedgerBudgets, ReversalsLowerTheMonthSpendAndNewBudgetsCheckAtOnce) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(1'000))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(transfer(2, kTenantA, kGpuRevenue, dollars(90))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(reverse(3, 2, dollars(30))), Outcome::kOk);
  EXPECT_EQ(ledger.month_spend(kTenantA, kT0), dollars(60));
  // Set when 60% is spent: the 50% alert at once.
  ASSERT_EQ(ledger.apply(at(kT0.plus_seconds(10), SetBudget{kTenantA, Money::from_dollars(100)})), Outcome::kOk);
  ASSERT_EQ(ledger.alerts(kTenantA).size(), 1u);
  EXPECT_EQ(ledger.alerts(kTenantA)[0].percent, 50);
  EXPECT_EQ(ledger.apply(at(kT0, SetBudget{kTenantA, Money::from_dollars(100)})), Outcome::kOk);  // the same: nothing
  EXPECT_EQ(ledger.alerts(kTenantA).size(), 1u);
  // A smaller budget: its thresholds are checked anew.
  ASSERT_EQ(ledger.apply(at(kT0, SetBudget{kTenantA, Money::from_dollars(70)})), Outcome::kOk);
  EXPECT_EQ(ledger.alerts(kTenantA).size(), 3u);  // 50 and 80 of $70
  EXPECT_EQ(ledger.apply(at(kT0, SetBudget{kGpuRevenue, Money::from_dollars(1)})), Outcome::kWrongAccountKind);
  EXPECT_EQ(ledger.apply(at(kT0, SetBudget{kTenantA, Money::from_nanos(-1)})), Outcome::kInvalid);
  // A usage reversal of last month's charge does not lower this month's spend.
  Timestamp feb = utc_month_start(202602);
  ASSERT_EQ(ledger.apply(transfer(4, kTenantA, kGpuRevenue, dollars(10), TransferCode::kUsage, feb)), Outcome::kOk);
  ASSERT_EQ(ledger.apply(reverse(5, 2, dollars(10), feb)), Outcome::kOk);
  EXPECT_EQ(ledger.month_spend(kTenantA, feb), dollars(10));
}

TEST(LedgerBudgets, SpendStateIgnoresHolds) {
  Ledger ledger = make_ledger();
  EXPECT_EQ(ledger.spend_state(kTenantA), SpendState::kExhausted);  // nothing paid in
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(5))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(2, kTenantA, kGpuRevenue, dollars(5))), Outcome::kOk);
  EXPECT_EQ(ledger.spend_state(kTenantA), SpendState::kOk);  // held, not spent
  EXPECT_FALSE(ledger.can_spend(kTenantA, Amount::from_units(1)));
  ASSERT_EQ(ledger.apply(post(3, 2, std::nullopt)), Outcome::kOk);
  EXPECT_EQ(ledger.spend_state(kTenantA), SpendState::kExhausted);
  EXPECT_EQ(ledger.spend_state(kCash), SpendState::kOk);
}

// ---- Linked chains ---------------------------------------------------------------------------

TEST(LedgerChains, AllOrNothing) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(2, kTenantA, kGpuRevenue, dollars(4))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(at(kT0, SetBudget{kTenantA, Money::from_dollars(4)})), Outcome::kOk);
  std::uint64_t before = ledger.fingerprint();
  // Settle the hold, hold again, make an account, charge: the charge fails,
  // so none of it happened; a command after the chain stands alone.
  std::vector<Command> commands = {post(3, 2, dollars(3)), hold(4, kTenantA, kGpuRevenue, dollars(5)),
                                   account(30, AccountKind::kTenant, "ten_c"),
                                   transfer(5, kTenantA, kGpuRevenue, dollars(3))};
  for (std::size_t i = 0; i + 1 < commands.size(); ++i) commands[i].link = Link::kWithNext;
  std::vector<Outcome> results(commands.size());
  ledger.apply(commands, results);
  EXPECT_EQ(results[0], Outcome::kLinkedEventFailed);
  EXPECT_EQ(results[1], Outcome::kLinkedEventFailed);
  EXPECT_EQ(results[2], Outcome::kLinkedEventFailed);
  EXPECT_EQ(results[3], Outcome::kInsufficientFunds);
  EXPECT_EQ(ledger.fingerprint(), before);
  EXPECT_EQ(ledger.transfer(tid(3)), nullptr);
  EXPECT_EQ(ledger.transfer(tid(4)), nullptr);
  EXPECT_EQ(ledger.account(30), nullptr);
  EXPECT_EQ(ledger.find_account(AccountKind::kTenant, "ten_c"), std::nullopt);
  EXPECT_EQ(ledger.transfer(tid(2))->state, HoldState::kPending);
  EXPECT_TRUE(ledger.alerts(kTenantA).empty());
  ledger.verify();

  // The same chain followed by a command of its own.
  commands.push_back(deposit(6, kTenantB, dollars(1)));
  results.assign(commands.size(), Outcome::kOk);
  ledger.apply(commands, results);
  EXPECT_EQ(results[3], Outcome::kInsufficientFunds);
  EXPECT_EQ(results[4], Outcome::kOk);
  EXPECT_EQ(ledger.account(kTenantB)->balance(), dollars(1));

  // The ids of a failed chain are free: the chain without its bad step works.
  commands.erase(commands.begin() + 3, commands.end());
  commands[2].link = Link::kNone;
  results.assign(commands.size(), Outcome::kOk);
  ledger.apply(commands, results);
  for (Outcome o : results) EXPECT_EQ(o, Outcome::kOk);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), dollars(7));
  EXPECT_EQ(ledger.account(kTenantA)->debits_pending, dollars(5));
  EXPECT_NE(ledger.account(30), nullptr);
  EXPECT_EQ(ledger.alerts(kTenantA).size(), 1u);  // $3 of $4: 50%; the new hold is not spend
  ledger.verify();
}

TEST(LedgerChains, OpenAtTheEndFails) {
  Ledger ledger = make_ledger();
  std::vector<Command> chain = {deposit(1, kTenantA, dollars(10)), deposit(2, kTenantA, dollars(10))};
  chain[0].link = Link::kWithNext;
  chain[1].link = Link::kWithNext;
  std::vector<Outcome> results(chain.size());
  ledger.apply(chain, results);
  EXPECT_EQ(results[0], Outcome::kLinkedEventFailed);
  EXPECT_EQ(results[1], Outcome::kLinkedChainOpen);
  EXPECT_EQ(ledger.transfer_count(), 0u);
  EXPECT_EQ(ledger.apply(chain[0]), Outcome::kLinkedChainOpen);
  EXPECT_EQ(ledger.account(kTenantA)->balance(), Amount());
  ledger.verify();
}

TEST(LedgerChains, UndoesExpiriesItCausedNot) {
  // Expiry happens before a chain and stays even if the chain fails.
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(hold(2, kTenantA, kGpuRevenue, dollars(10), 1'000)), Outcome::kOk);
  std::vector<Command> chain = {
      transfer(3, kTenantA, kGpuRevenue, dollars(10), TransferCode::kUsage, kT0.plus_seconds(2)),
      transfer(4, kTenantA, kGpuRevenue, dollars(1), TransferCode::kUsage, kT0.plus_seconds(2))};
  chain[0].link = Link::kWithNext;
  std::vector<Outcome> results(chain.size());
  ledger.apply(chain, results);
  EXPECT_EQ(results[0], Outcome::kLinkedEventFailed);
  EXPECT_EQ(results[1], Outcome::kInsufficientFunds);
  EXPECT_EQ(ledger.transfer(tid(2))->state, HoldState::kExpired);
  EXPECT_EQ(ledger.account(kTenantA)->available(), dollars(10));
  ledger.verify();
}

// ---- Encoding ---------------------------------------------------------------------------------

std::vector<Command> one_of_each() {
  CreateAccount ca{42, AccountKind::kTenant, "ten_k3v9x2m1q8d7r4t6p0za", LimitRule::kDebitsWithinCredits,
                   Amount::from_units(123)};
  CreateTransfer ct{TransferId{7, 8}, 1, 2, Amount::from_units(-5), TransferCode::kGrant, Id128{9, 10}};
  CreateHold ch{TransferId{~0ULL, 1}, 3, 4, kTransferAmountMax, TransferCode::kUsage, Id128{}, 60'000};
  std::vector<Command> commands = {
      Command{kT0, ca, Link::kWithNext},
      Command{kT0.plus_micros(1), ct, Link::kNone},
      Command{Timestamp{-5}, ch, Link::kNone},
      Command{kT0, PostHold{TransferId{1, 2}, TransferId{3, 4}, Amount::from_units(99)}, Link::kNone},
      Command{kT0, PostHold{TransferId{1, 2}, TransferId{3, 4}, std::nullopt}, Link::kWithNext},
      Command{kT0, VoidHold{TransferId{5, 6}, TransferId{3, 4}}, Link::kNone},
      Command{kT0, ReverseTransfer{TransferId{5, 7}, TransferId{7, 8}, std::nullopt}, Link::kNone},
      Command{kT0, ReverseTransfer{TransferId{5, 7}, TransferId{7, 8}, Amount()}, Link::kNone},
      Command{kT0, SetCreditLimit{42, dollars(100)}, Link::kNone},
      Command{kT0, SetBudget{42, Money::from_nanos(-3)}, Link::kNone},
      Command{kT0, Expire{}, Link::kNone},
  };
  return commands;
}

std::string encoded(const Command& c) {
  std::string out;
  encode_command(c, out);
  return out;
}

TEST(LedgerEncoding, RoundTripsEveryOp) {
  std::vector<Command> commands = one_of_each();
  std::vector<std::size_t> sizes = {11 + 28 + 24, 11 + 66, 11 + 74, 11 + 49, 11 + 49, 11 + 32,
                                    11 + 49,      11 + 49, 11 + 24, 11 + 16, 11};
  for (std::size_t i = 0; i < commands.size(); ++i) {
    std::string bytes = encoded(commands[i]);
    EXPECT_EQ(bytes.size(), sizes[i]) << i;
    std::string_view in = bytes;
    auto decoded = decode_command(in);
    ASSERT_TRUE(decoded.is_ok()) << i << ": " << decoded.status().to_string();
    EXPECT_TRUE(in.empty());
    EXPECT_EQ(encoded(*decoded), bytes) << i;
    EXPECT_EQ(decoded->op.index(), commands[i].op.index());
    EXPECT_EQ(decoded->at, commands[i].at);
    EXPECT_EQ(decoded->link, commands[i].link);
  }
  std::string hold_bytes = encoded(commands[2]);
  std::string_view hold_in = hold_bytes;
  auto h = decode_command(hold_in);
  ASSERT_TRUE(h.is_ok());
  const auto& ch = std::get<CreateHold>(h->op);
  EXPECT_EQ(ch.id, (TransferId{~0ULL, 1}));
  EXPECT_EQ(ch.amount, kTransferAmountMax);
  EXPECT_EQ(ch.timeout_ms, 60'000);

  std::string batch = encode_commands(commands);
  auto all = decode_commands(batch);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), commands.size());
  EXPECT_EQ(encode_commands(*all), batch);
}

TEST(LedgerEncoding, TheHeaderIsAsDrawn) {
  std::string bytes = encoded(Command{Timestamp{0x0102030405060708}, Expire{}, Link::kWithNext});
  EXPECT_EQ(bytes, std::string("\x01\x09\x01\x08\x07\x06\x05\x04\x03\x02\x01", 11));
  CreateTransfer t{TransferId{0, 1}, 2, 3, Amount::from_units(4), TransferCode::kUsage, Id128{}};
  bytes = encoded(Command{Timestamp{0}, t, Link::kNone});
  ASSERT_EQ(bytes.size(), 77u);
  EXPECT_EQ(bytes[1], '\x02');
  EXPECT_EQ(bytes[11 + 15], '\x00');  // id.hi, then id.lo = 1 from offset 19
  EXPECT_EQ(bytes[11 + 8], '\x01');
  EXPECT_EQ(bytes[11 + 16], '\x02');  // debit
  EXPECT_EQ(bytes[11 + 24], '\x03');  // credit
  EXPECT_EQ(bytes[11 + 32], '\x04');  // amount, low byte first
  EXPECT_EQ(bytes[11 + 48], '\x03');  // code
}

TEST(LedgerEncoding, RejectsWhatEncodeCannotWrite) {
  for (const Command& c : one_of_each()) {
    std::string bytes = encoded(c);
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
      std::string_view in(bytes.data(), cut);
      EXPECT_FALSE(decode_command(in).is_ok()) << "cut at " << cut;
    }
  }
  auto rejects = [](std::string bytes) {
    std::string_view in = bytes;
    return !decode_command(in).is_ok();
  };
  std::string expire = encoded(Command{kT0, Expire{}, Link::kNone});
  std::string bad = expire;
  bad[0] = 2;
  EXPECT_TRUE(rejects(bad));  // version
  bad = expire;
  bad[1] = 10;
  EXPECT_TRUE(rejects(bad));  // op
  bad[1] = 0;
  EXPECT_TRUE(rejects(bad));
  bad = expire;
  bad[2] = 2;
  EXPECT_TRUE(rejects(bad));  // flags
  std::string account_bytes = encoded(one_of_each()[0]);
  bad = account_bytes;
  bad[11 + 8] = 9;
  EXPECT_TRUE(rejects(bad));  // kind
  bad = account_bytes;
  bad[11 + 9] = 2;
  EXPECT_TRUE(rejects(bad));  // limit rule
  bad = account_bytes;
  bad[11 + 26] = static_cast<char>(limits::kLedgerOwnerBytes + 1);
  EXPECT_TRUE(rejects(bad + std::string(200, 'x')));  // owner too long
  std::string post_bytes = encoded(one_of_each()[4]);
  bad = post_bytes;
  bad[11 + 32] = 2;
  EXPECT_TRUE(rejects(bad));  // has_amount
  bad = post_bytes;
  bad[11 + 33] = 1;
  EXPECT_TRUE(rejects(bad));  // an amount without has_amount
  std::string transfer_bytes = encoded(one_of_each()[1]);
  bad = transfer_bytes;
  bad[11 + 48] = 0;
  EXPECT_TRUE(rejects(bad));  // code
  // A batch with bytes after its last command, or a count past its bytes.
  std::string batch = encode_commands(std::vector<Command>{Command{kT0, Expire{}, Link::kNone}});
  EXPECT_FALSE(decode_commands(batch + "x").is_ok());
  batch[0] = 2;
  EXPECT_FALSE(decode_commands(batch).is_ok());
  EXPECT_FALSE(decode_commands("\xff\xff\xff\xff").is_ok());
  EXPECT_FALSE(decode_commands("").is_ok());
}

TEST(LedgerEncoding, RandomBytesNeverCrashAndWhatDecodesIsCanonical) {
  std::mt19937_64 rng(7);
  std::vector<std::string> seeds;
  for (const Command& c : one_of_each()) seeds.push_back(encoded(c));
  for (int round = 0; round < 20'000; ++round) {
    std::string bytes = seeds[rng() % seeds.size()];
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      switch (rng() % 3) {
        case 0:
          bytes[rng() % bytes.size()] = static_cast<char>(rng());
          break;
        case 1:
          bytes.resize(rng() % (bytes.size() + 1));
          break;
        default:
          bytes.push_back(static_cast<char>(rng()));
          break;
      }
      if (bytes.empty()) bytes.push_back(1);
    }
    std::string_view in = bytes;
    auto decoded = decode_command(in);
    if (decoded) {
      std::string again = encoded(*decoded);
      EXPECT_EQ(again, bytes.substr(0, bytes.size() - in.size()));
    }
  }
}

// ---- Properties over random commands ---------------------------------------------------------

// Recomputes every account's counters from the transfers alone, independently
// of the ledger's bookkeeping, and compares.
void check_against_transfers(const Ledger& ledger) {
  struct Sums {
    Amount debits_posted, credits_posted, debits_pending, credits_pending;
  };
  std::map<AccountId, Sums> sums;
  for (std::size_t i = 0; i < ledger.transfer_count(); ++i) {
    const Transfer& t = ledger.transfer_at(i);
    switch (t.kind) {
      case TransferKind::kPosted:
      case TransferKind::kPost:
      case TransferKind::kReversal:
        sums[t.debit].debits_posted += t.amount;
        sums[t.credit].credits_posted += t.amount;
        break;
      case TransferKind::kHold:
        if (t.state == HoldState::kPending) {
          sums[t.debit].debits_pending += t.amount;
          sums[t.credit].credits_pending += t.amount;
        }
        break;
      case TransferKind::kVoid:
        break;
    }
  }
  Amount debits, credits;
  for (std::size_t i = 0; i < ledger.account_count(); ++i) {
    const Account& a = ledger.account_at(i);
    const Sums& s = sums[a.id];
    ASSERT_EQ(a.debits_posted, s.debits_posted) << "account " << a.id;
    ASSERT_EQ(a.credits_posted, s.credits_posted) << "account " << a.id;
    ASSERT_EQ(a.debits_pending, s.debits_pending) << "account " << a.id;
    ASSERT_EQ(a.credits_pending, s.credits_pending) << "account " << a.id;
    if (a.limit == LimitRule::kDebitsWithinCredits) {
      ASSERT_LE(a.debits_posted + a.debits_pending, a.credits_posted + a.credit_limit) << "account " << a.id;
    }
    debits += a.debits_posted;
    credits += a.credits_posted;
  }
  ASSERT_EQ(debits, credits);
}

// A random command over a small world of accounts and recent ids, so that
// ids collide, holds get posted twice, limits bite, and chains fail.
class RandomCommands {
 public:
  explicit RandomCommands(std::uint64_t seed) : rng_(seed) {}

  Command next() {
    now_ = now_.plus_micros(static_cast<std::int64_t>(rng_() % 3'000'000));
    Link link = rng_() % 8 == 0 ? Link::kWithNext : Link::kNone;
    std::uint64_t kind = rng_() % 100;
    auto some_account = [&] { return static_cast<AccountId>(1 + rng_() % 9); };  // 9 never exists at first
    auto some_tenant = [&] { return static_cast<AccountId>(10 + rng_() % 4); };
    auto some_amount = [&] {
      return Amount::from_units(static_cast<AmountUnits>(rng_() % 5'000) * 18'000'000'000'000 +
                                static_cast<AmountUnits>(rng_() % 7));
    };
    auto fresh = [&] { return tid(++next_id_); };
    auto recent = [&] { return tid(next_id_ == 0 ? 1 : next_id_ - rng_() % std::min<std::uint64_t>(next_id_, 40)); };
    Command c{now_, Expire{}, link};
    if (kind < 4) {
      AccountId id = 9 + rng_() % 6;
      CreateAccount a{id, AccountKind::kTenant, "ten_" + std::to_string(id), LimitRule::kDebitsWithinCredits, {}};
      c.op = a;
    } else if (kind < 20) {
      c.op = CreateTransfer{rng_() % 10 == 0 ? recent() : fresh(),
                            rng_() % 2 ? kCash : kGrants,
                            some_tenant(),
                            some_amount(),
                            TransferCode::kDeposit,
                            {}};
    } else if (kind < 40) {
      c.op = CreateTransfer{rng_() % 10 == 0 ? recent() : fresh(),
                            some_tenant(),
                            rng_() % 2 ? kGpuRevenue : some_account(),
                            some_amount(),
                            TransferCode::kUsage,
                            {}};
    } else if (kind < 55) {
      c.op = CreateHold{fresh(),
                        some_tenant(),
                        4,
                        some_amount(),
                        TransferCode::kUsage,
                        {},
                        static_cast<std::int64_t>(1 + rng_() % 60'000)};
    } else if (kind < 70) {
      std::optional<Amount> amount;
      if (rng_() % 3 != 0) amount = some_amount();
      c.op = PostHold{rng_() % 10 == 0 ? recent() : fresh(), recent(), amount};
    } else if (kind < 78) {
      c.op = VoidHold{fresh(), recent()};
    } else if (kind < 88) {
      std::optional<Amount> amount;
      if (rng_() % 2 != 0) amount = some_amount();
      c.op = ReverseTransfer{fresh(), recent(), amount};
    } else if (kind < 93) {
      c.op = SetCreditLimit{some_tenant(), some_amount()};
    } else if (kind < 97) {
      c.op = SetBudget{some_tenant(), Money::from_dollars(static_cast<std::int64_t>(rng_() % 10'000))};
    }
    return c;
  }

 private:
  std::mt19937_64 rng_;
  Timestamp now_ = kT0;
  std::uint64_t next_id_ = 0;
};

class LedgerProperties : public testing::TestWithParam<std::uint64_t> {};

TEST_P(LedgerProperties, RandomCommandsKeepEveryInvariantAndReplayExactly) {
  Ledger ledger = make_ledger();
  Ledger replayed = make_ledger();
  for (AccountId t : {12, 13}) {
    ASSERT_EQ(ledger.apply(account(t, AccountKind::kTenant, "ten_" + std::to_string(t))), Outcome::kOk);
    ASSERT_EQ(replayed.apply(account(t, AccountKind::kTenant, "ten_" + std::to_string(t))), Outcome::kOk);
  }
  RandomCommands source(GetParam());
  std::map<Outcome, int> seen;
  for (int batch = 0; batch < 400; ++batch) {
    std::vector<Command> commands;
    for (int i = 0; i < 25; ++i) commands.push_back(source.next());
    std::vector<Outcome> results(commands.size());
    ledger.apply(commands, results);
    for (Outcome o : results) ++seen[o];
    // After every step: debits == credits, no balance past its limit, and
    // the counters agree with the transfers.
    ledger.verify();
    check_against_transfers(ledger);
    if (HasFatalFailure()) return;
    // A replica applies what it decodes from the journal's record.
    std::string record = encode_commands(commands);
    auto decoded = decode_commands(record);
    ASSERT_TRUE(decoded.is_ok());
    std::vector<Outcome> replayed_results(decoded->size());
    replayed.apply(*decoded, replayed_results);
    ASSERT_EQ(replayed_results, results) << "batch " << batch;
  }
  EXPECT_EQ(ledger.fingerprint(), replayed.fingerprint());
  EXPECT_GT(ledger.transfer_count(), 2'000u);
  // The stream reached the interesting outcomes.
  for (Outcome o :
       {Outcome::kOk, Outcome::kAlreadyApplied, Outcome::kIdConflict, Outcome::kInsufficientFunds,
        Outcome::kHoldAlreadyPosted, Outcome::kHoldExpired, Outcome::kExceedsHold, Outcome::kLinkedEventFailed,
        Outcome::kNotReversible, Outcome::kAccountNotFound, Outcome::kLimitBelowUse}) {
    EXPECT_GT(seen[o], 0) << outcome_name(o);
  }
  EXPECT_FALSE(ledger.all_alerts().empty());
}

INSTANTIATE_TEST_SUITE_P(Seeds, LedgerProperties, testing::Values(1234, 99, 20260101));

// ---- Concurrency -----------------------------------------------------------------------------

// The ledger is single-threaded; a service shares one behind a mutex. Many
// requests race for the last credit: holds of an estimate, posted with the
// actual amount or voided. Never overshoots.
TEST(LedgerConcurrency, RacingForTheLastCreditNeverOvershoots) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(1))), Outcome::kOk);
  ASSERT_EQ(ledger.apply(at(kT0, SetCreditLimit{kTenantA, cents(50)})), Outcome::kOk);
  std::mutex mu;
  std::atomic<std::uint64_t> next_id{100};
  std::atomic<int> admitted{0}, refused{0};
  constexpr int kThreads = 32;
  constexpr int kRequests = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t));
      for (int r = 0; r < kRequests; ++r) {
        std::uint64_t hold_id = next_id.fetch_add(2);
        Amount estimate = cents(3);
        Outcome held;
        {
          std::lock_guard<std::mutex> lock(mu);
          held = ledger.apply(hold(hold_id, kTenantA, kTokenRevenue, estimate));
          ASSERT_LE(Amount(), ledger.account(kTenantA)->available());
        }
        if (held != Outcome::kOk) {
          ASSERT_EQ(held, Outcome::kInsufficientFunds);
          refused.fetch_add(1);
          continue;
        }
        admitted.fetch_add(1);
        std::this_thread::yield();
        std::lock_guard<std::mutex> lock(mu);
        Outcome settled = rng() % 4 == 0 ? ledger.apply(void_hold(hold_id + 1, hold_id))
                                         : ledger.apply(post(hold_id + 1, hold_id, cents(1 + rng() % 3)));
        ASSERT_EQ(settled, Outcome::kOk);
        ASSERT_LE(Amount(), ledger.account(kTenantA)->available());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const Account* a = ledger.account(kTenantA);
  EXPECT_EQ(a->debits_pending, Amount());
  EXPECT_GE(a->balance(), -cents(50));  // never past balance + credit
  EXPECT_EQ(ledger.account(kTokenRevenue)->credits_posted, a->debits_posted);
  EXPECT_EQ(admitted.load() + refused.load(), kThreads * kRequests);
  EXPECT_GT(refused.load(), 0);
  EXPECT_GT(admitted.load(), 50);  // $1.50 of 3-cent estimates, settled for less
  ledger.verify();
}

TEST(LedgerConcurrency, DirectChargesForTheLastDollarsAdmitExactlyWhatFits) {
  Ledger ledger = make_ledger();
  ASSERT_EQ(ledger.apply(deposit(1, kTenantA, dollars(10))), Outcome::kOk);
  std::mutex mu;
  std::atomic<std::uint64_t> next_id{100};
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&] {
      for (int r = 0; r < 50; ++r) {
        std::lock_guard<std::mutex> lock(mu);
        if (ledger.apply(transfer(next_id++, kTenantA, kGpuRevenue, cents(7))) == Outcome::kOk) ok.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 142);  // floor($10 / $0.07)
  EXPECT_EQ(ledger.account(kTenantA)->balance(), cents(6));
  EXPECT_EQ(ledger.spend_state(kTenantA), SpendState::kOk);
  ledger.verify();
}

// ---- Throughput ---------------------------------------------------------------------------

#if defined(__SANITIZE_ADDRESS__) || !defined(NDEBUG)
constexpr bool kOptimizedBuild = false;
#else
constexpr bool kOptimizedBuild = true;
#endif

// The transfer index grows from nothing, shard by shard (a doubling moves
// one shard's entries): every id stays found through all those doublings.
TEST(LedgerTransfers, EveryIdFoundAfterTheIndexGrew) {
  constexpr std::uint64_t kTransfers = kOptimizedBuild ? 300'000 : 40'000;
  Ledger ledger(LedgerOptions{.expected_accounts = 4, .expected_transfers = 1});
  std::vector<Command> setup{account(kCash, AccountKind::kFunding, "cash"),
                             account(kGpuRevenue, AccountKind::kRevenue, "gpu_time"),
                             account(100, AccountKind::kTenant, "ten_0"), deposit(1, 100, dollars(1'000'000))};
  std::vector<Outcome> results(setup.size());
  ledger.apply(setup, results);
  for (Outcome o : results) ASSERT_EQ(o, Outcome::kOk);
  auto batch_of = [](std::uint64_t first, std::uint64_t count) {
    std::vector<Command> batch;
    for (std::uint64_t id = first; id < first + count; ++id) {
      batch.push_back(
          Command{kT0,
                  CreateTransfer{
                      TransferId{id * 0x9e3779b97f4a7c15ULL, id}, 100, kGpuRevenue, cents(1), TransferCode::kUsage, {}},
                  Link::kNone});
    }
    return batch;
  };
  constexpr std::uint64_t kBatch = 5'000;
  for (std::uint64_t first = 2; first < kTransfers + 2; first += kBatch) {
    std::vector<Command> batch = batch_of(first, kBatch);
    results.assign(batch.size(), Outcome::kOk);
    ledger.apply(batch, results);
    for (Outcome o : results) ASSERT_EQ(o, Outcome::kOk);
  }
  for (std::uint64_t first = 2; first < kTransfers + 2; first += kBatch) {
    std::vector<Command> batch = batch_of(first, kBatch);
    results.assign(batch.size(), Outcome::kOk);
    ledger.apply(batch, results);
    for (Outcome o : results) ASSERT_EQ(o, Outcome::kAlreadyApplied);
  }
  EXPECT_EQ(ledger.transfer_count(), kTransfers + 1);
  EXPECT_EQ(ledger.account(100)->balance(), dollars(1'000'000) - cents(static_cast<std::int64_t>(kTransfers)));
  ledger.verify();
}

TEST(LedgerThroughput, SimpleTransfersPerSecond) {
  constexpr std::size_t kTransfers = kOptimizedBuild ? 2'000'000 : 100'000;
  constexpr std::size_t kBatch = 8'000;
  Ledger ledger(LedgerOptions{.expected_accounts = 1'100, .expected_transfers = kTransfers + 1'100});
  std::vector<Command> setup;
  setup.push_back(account(kCash, AccountKind::kFunding, "cash"));
  setup.push_back(account(kGpuRevenue, AccountKind::kRevenue, "gpu_time"));
  for (AccountId t = 0; t < 1'000; ++t) {
    setup.push_back(account(100 + t, AccountKind::kTenant, "ten_" + std::to_string(t)));
    setup.push_back(deposit(1'000'000'000 + t, 100 + t, dollars(1'000'000)));
  }
  std::vector<Outcome> results(setup.size());
  ledger.apply(setup, results);
  for (Outcome o : results) ASSERT_EQ(o, Outcome::kOk);

  std::vector<Command> batch(kBatch);
  results.assign(kBatch, Outcome::kOk);
  std::uint64_t id = 1;
  double seconds = 0;
  for (std::size_t done = 0; done < kTransfers; done += kBatch) {
    for (std::size_t i = 0; i < kBatch; ++i, ++id) {
      CreateTransfer t{TransferId{id * 0x9e3779b97f4a7c15ULL, id},
                       100 + id % 1'000,
                       kGpuRevenue,
                       cents(1),
                       TransferCode::kUsage,
                       {}};
      batch[i] = Command{kT0, t, Link::kNone};
    }
    auto start = std::chrono::steady_clock::now();
    ledger.apply(batch, results);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (Outcome o : results) ASSERT_EQ(o, Outcome::kOk);
  }
  double per_second = static_cast<double>(kTransfers) / seconds;
  std::printf("ledger: %zu transfers in %.3f s: %.0f transfers/s%s\n", kTransfers, seconds, per_second,
              kOptimizedBuild ? "" : " (unoptimized or sanitized build)");
  RecordProperty("transfers_per_second", static_cast<int>(per_second));
  if (kOptimizedBuild) {
    // A floor far below the usual millions (bench/ has the figure): a CI
    // machine whose two cores other work shares measured 423,000/s.
    EXPECT_GE(per_second, 150'000.0);
  }
  ledger.verify();
}

}  // namespace
}  // namespace headroom::ledger
