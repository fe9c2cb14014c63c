// Ledger: the double-entry core of the money. Commands in, outcomes out.
//
// A pure state machine in the style of TigerBeetle: no I/O, threads, wall
// clock or randomness inside. Time comes in with each command. The same
// commands in the same order give the same state, bit for bit
// (fingerprint()), so the ledger is made durable by journalling its commands
// (encode_command below) in the durable log before applying them, and is
// rebuilt at start by applying the journal again.
//
// ---- Accounts --------------------------------------------------------------
//
// An account (AccountId, chosen by the caller, never 0) has a kind, an owner
// (a tenant id, a product name, "cash"...; (kind, owner) is unique), and four
// counters that only grow: debits_posted, credits_posted, debits_pending,
// credits_pending. A transfer of `amount` from debit account D to credit
// account C adds `amount` to D's debits and to C's credits, so the sum of all
// debits equals the sum of all credits, posted and pending separately. The
// ledger CHECKs this after every command (always on: a ledger out of balance
// is a bug that costs money).
//
// Conventions (what the commands below are used for):
//   deposit (prepaid top-up)  debit funding "cash"   -> credit tenant
//   credit grant (promotion)  debit funding "grants" -> credit tenant
//   usage charge              debit tenant           -> credit revenue <product>
//   refund to the card        debit tenant           -> credit funding "cash"
//   usage past the prepaid    debit receivable <tenant> -> credit revenue
// A tenant's balance is credits_posted - debits_posted (what it has paid in
// and not spent). A tenant account is always limited (LimitRule
// kDebitsWithinCredits): its debits, posted and pending, never exceed its
// posted credits plus its credit limit:
//   debits_posted + debits_pending <= credits_posted + credit_limit
// i.e. balance - holds >= -credit_limit. A command that would break this
// fails with kInsufficientFunds and changes nothing; the ledger CHECKs the
// rule again on every account a command touched. Other kinds may be
// unlimited (revenue, funding and receivable accounts are).
//
// ---- Transfers ---------------------------------------------------------------
//
// Every command that moves money creates one transfer, with an id chosen by
// the caller (TransferId, 128 bits, never 0; transfer_id_of() derives one
// from a source's idempotency key, e.g. a usage event's id).
//   CreateTransfer   posted at once.
//   CreateHold       pending: the amount counts against the debit account's
//                    limit (debits_pending) until it is posted, voided or
//                    expires; made when a job starts or a model request is
//                    admitted. It expires timeout_ms after it was made.
//   PostHold         settles a pending hold with the actual amount (at most
//                    the held amount; the rest is released). Once.
//   VoidHold         releases a pending hold entirely (the work failed).
//   ReverseTransfer  a correction: a new posted transfer the other way, of
//                    all or part of what a posted transfer (or a PostHold)
//                    moved and was not reversed yet. Transfers are never
//                    edited or deleted.
// A hold is past its time once now >= expires_at: it can no longer be posted
// or voided (kHoldExpired), and before any command (or chain) the ledger
// expires every hold past its time, releasing it. Expire does only that, for
// when no other command comes.
//
// Idempotency: a command whose id is taken by a transfer with the same
// content (same kind and fields; the time aside) is a no-op that succeeds
// (kAlreadyApplied): the first result stands. With other content it fails
// (kIdConflict). A command that failed recorded nothing: its id stays free.
// CreateAccount is idempotent the same way by account id.
//
// Linked chains: a command with link == kWithNext is applied together with
// the commands after it, up to and including the first with link == kNone:
// all of them or none (TigerBeetle's linked events), e.g. "post hold A and
// make hold B". If one fails, those before it are undone, it keeps its own
// outcome and the others get kLinkedEventFailed. A chain still open at the
// end of a batch fails whole: its last command gets kLinkedChainOpen, the
// others kLinkedEventFailed.
//
// Time: each command carries `at`; the ledger's clock is the largest `at`
// seen so far (a command from the past is applied at the ledger's now, never
// before a command already applied). Transfers record that time.
//
// ---- Budgets -----------------------------------------------------------------
//
// A tenant's month spend is what its usage transfers (code kUsage: posted
// transfers and posted holds) took in the current UTC calendar month, less
// reversals of usage made in that month (never below zero). With a monthly
// budget set (SetBudget), an alert is recorded the first time in a month the
// spend reaches 50%, 80% and 100% of it (kBudgetAlertPercents), with the
// time and the spend; a new budget amount clears the month's alerts and
// checks again at once. Budgets alert; the limit above is what stops
// spending. spend_state() says kExhausted once the balance and the credit
// are spent (credits_posted + credit_limit - debits_posted <= 0): the
// compute service then refuses new on-demand and spot jobs (402, by failing
// their hold), preempts the tenant's running spot jobs with notice, and the
// gateway answers model requests with 402.
//
// ---- Encoding of commands (durable: never change, only add) ----------------
//
// encode_command() writes one command; integers little-endian, no padding;
// an id (TransferId) is 16 bytes: hi u64 then lo u64; an amount is a
// signed 128-bit integer of Amount units, 16 bytes, low half first.
//
//   Header, every command
//   +--------+------+----------------------------------------------------------+
//   | offset | size | field                                                    |
//   +--------+------+----------------------------------------------------------+
//   |      0 |    1 | encoding version: 1                                      |
//   |      1 |    1 | op: 1 create_account, 2 transfer, 3 hold, 4 post,        |
//   |        |      |     5 void, 6 reverse, 7 set_credit_limit, 8 set_budget, |
//   |        |      |     9 expire                                             |
//   |      2 |    1 | flags: bit 0 linked with the next command; others 0      |
//   |      3 |    8 | at: unix microseconds, i64                               |
//   +--------+------+----------------------------------------------------------+
//
//   Body, from offset 11, by op
//   +------------------+--------------------------------------------------------+
//   | op               | fields, in order (size in bytes)                       |
//   +------------------+--------------------------------------------------------+
//   | create_account   | id u64 (8), kind u8 (1), limit u8 (1),                 |
//   |                  | credit_limit amount (16), owner length u16 (2),        |
//   |                  | owner (at most kLedgerOwnerBytes)     = 28 + owner     |
//   | transfer         | id (16), debit u64 (8), credit u64 (8), amount (16),   |
//   |                  | code u16 (2), reference (16)                  = 66     |
//   | hold             | as transfer, then timeout_ms i64 (8)          = 74     |
//   | post             | id (16), hold (16), has_amount u8 (1),                 |
//   |                  | amount (16, 0 when has_amount is 0)           = 49     |
//   | void             | id (16), hold (16)                            = 32     |
//   | reverse          | id (16), target (16), has_amount u8 (1),               |
//   |                  | amount (16, 0 when has_amount is 0)           = 49     |
//   | set_credit_limit | account u64 (8), credit_limit amount (16)     = 24     |
//   | set_budget       | account u64 (8), monthly nano-dollars i64 (8) = 16     |
//   | expire           | nothing                                       = 0      |
//   +------------------+--------------------------------------------------------+
//
// A batch (encode_commands) is a u32 count followed by that many commands.
// Decoding checks the structure (version, op, flags, enum values, lengths,
// no trailing bytes); apply() checks the meaning.
//
// Not thread-safe: one thread drives a Ledger (callers that share one wrap
// it in a mutex). Pointers it returns are valid until the next command.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"
#include "ledger/ledger_limits.h"

namespace headroom::ledger {

// ---- Amount: exact money ----------------------------------------------------

__extension__ typedef __int128 AmountUnits;  // GCC and Clang's 128-bit integer (__extension__: no -Wpedantic)

// An exact amount of US dollars, in units of 1/18,000,000 of a nano-dollar.
// Why that unit: prices come per GPU-hour (usage in GPU-milliseconds, 3.6e6
// per hour) and per million tokens (1e6), in nano-dollars (Money); 18e6 is
// the least common multiple of 3.6e6 and 1e6, so every rated charge, a
// quantity times a price, is a whole number of units and nothing is rounded
// before an invoice line (rating.h). Money converts in exactly; converting
// out rounds, and only rating.h's round_line() does that for a charge.
class Amount {
 public:
  static constexpr std::int64_t kUnitsPerNano = 18'000'000;
  static constexpr AmountUnits kUnitsPerDollar = AmountUnits{kUnitsPerNano} * Money::kNanosPerDollar;

  constexpr Amount() = default;
  static constexpr Amount from_units(AmountUnits units) { return Amount(units); }
  static constexpr Amount from_money(Money money) { return Amount(AmountUnits{money.nanos()} * kUnitsPerNano); }
  static constexpr Amount from_dollars(std::int64_t dollars) { return Amount(AmountUnits{dollars} * kUnitsPerDollar); }

  constexpr AmountUnits units() const { return units_; }
  // The whole nano-dollars, rounded down (toward minus infinity): for
  // showing a balance, never for charging.
  Money floor_money() const;
  // Whether it is a whole number of nano-dollars.
  constexpr bool is_whole_nanos() const { return units_ % kUnitsPerNano == 0; }
  // "12.500000000" dollars, and "+7/18000000" nano-dollar when not whole.
  std::string to_string() const;

  constexpr auto operator<=>(const Amount&) const = default;
  constexpr Amount operator+(Amount other) const { return Amount(units_ + other.units_); }
  constexpr Amount operator-(Amount other) const { return Amount(units_ - other.units_); }
  constexpr Amount operator-() const { return Amount(-units_); }
  constexpr Amount operator*(std::int64_t factor) const { return Amount(units_ * factor); }
  Amount& operator+=(Amount other) {
    units_ += other.units_;
    return *this;
  }
  Amount& operator-=(Amount other) {
    units_ -= other.units_;
    return *this;
  }

 private:
  constexpr explicit Amount(AmountUnits units) : units_(units) {}
  AmountUnits units_ = 0;
};

inline constexpr AmountUnits kAmountUnitsMax = (AmountUnits{1} << 126) - 1 + (AmountUnits{1} << 126);  // 2^127 - 1

// The largest amount one transfer moves.
inline constexpr Amount kTransferAmountMax = Amount::from_dollars(limits::kLedgerTransferDollarsMax);
static_assert(kTransferAmountMax.units() <= kAmountUnitsMax / limits::kLedgerTransfers / 4,
              "no counter can overflow, even with every transfer of the largest amount");

// ---- Ids and enums --------------------------------------------------------------

using AccountId = std::uint64_t;

// A 128-bit id (transfers) or reference (anything the caller links a
// transfer to: a job, a request). Zero means none.
struct Id128 {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  constexpr bool is_zero() const { return hi == 0 && lo == 0; }
  constexpr auto operator<=>(const Id128&) const = default;
  std::string to_string() const;  // 32 lower-case hex digits
};
using TransferId = Id128;

// The id of a transfer made for an idempotency key (a usage event's id, a
// job's hold "job_x:hold"): the first 16 bytes of SHA-256("headroom-ledger:"
// + key). The same key always gives the same id, so a retry is recognised.
TransferId transfer_id_of(std::string_view key);

enum class AccountKind : std::uint8_t {
  kTenant = 1,      // a tenant's prepaid balance (owner: the tenant id); always limited
  kRevenue = 2,     // the platform's revenue from a product (owner: "gpu_time", "tokens", ...)
  kFunding = 3,     // where money comes from and goes back to (owner: "cash", "grants")
  kReceivable = 4,  // what a tenant owes past its prepaid balance (owner: the tenant id)
  kRounding = 5,    // invoice rounding (invoice.h)
};
std::string_view account_kind_name(AccountKind kind);

enum class LimitRule : std::uint8_t {
  kNone = 0,
  kDebitsWithinCredits = 1,  // debits_posted + debits_pending <= credits_posted + credit_limit
};

// What a transfer is for.
enum class TransferCode : std::uint16_t {
  kDeposit = 1,     // a prepaid top-up
  kGrant = 2,       // a credit grant (promotion, compensation)
  kUsage = 3,       // usage charge: counts toward the month's spend
  kRefund = 4,      // money back out
  kAdjustment = 5,  // any other correction
  kRounding = 6,    // an invoice's rounding (invoice.h)
};
std::string_view transfer_code_name(TransferCode code);

enum class TransferKind : std::uint8_t { kPosted = 1, kHold, kPost, kVoid, kReversal };
std::string_view transfer_kind_name(TransferKind kind);

enum class HoldState : std::uint8_t { kNotAHold = 0, kPending, kPosted, kVoided, kExpired };

// ---- Commands ----------------------------------------------------------------------

struct CreateAccount {
  AccountId id = 0;
  AccountKind kind = AccountKind::kTenant;
  std::string owner;
  LimitRule limit = LimitRule::kDebitsWithinCredits;
  Amount credit_limit;  // only with kDebitsWithinCredits
};
struct CreateTransfer {
  TransferId id;
  AccountId debit = 0, credit = 0;
  Amount amount;  // >= 0
  TransferCode code = TransferCode::kUsage;
  Id128 reference;
};
struct CreateHold {
  TransferId id;
  AccountId debit = 0, credit = 0;
  Amount amount;  // >= 0
  TransferCode code = TransferCode::kUsage;
  Id128 reference;
  std::int64_t timeout_ms = 0;  // 1..kLedgerHoldTimeoutMsMax
};
struct PostHold {
  TransferId id;
  TransferId hold;
  std::optional<Amount> amount;  // what to post, <= the held amount; none: all of it
};
struct VoidHold {
  TransferId id;
  TransferId hold;
};
struct ReverseTransfer {
  TransferId id;
  TransferId target;             // a kPosted or kPost transfer
  std::optional<Amount> amount;  // none: all that is not reversed yet
};
struct SetCreditLimit {
  AccountId account = 0;
  Amount credit_limit;  // >= 0; not below what the account already uses of it
};
struct SetBudget {
  AccountId account = 0;  // a tenant account
  Money monthly;          // 0: no budget
};
struct Expire {};

using Op = std::variant<CreateAccount, CreateTransfer, CreateHold, PostHold, VoidHold, ReverseTransfer, SetCreditLimit,
                        SetBudget, Expire>;

enum class Link : std::uint8_t { kNone, kWithNext };

struct Command {
  Timestamp at;
  Op op;
  Link link = Link::kNone;
};

// ---- Outcomes -----------------------------------------------------------------------

// What a command did; cheap to return in bulk. status_of() adds words.
enum class Outcome : std::uint8_t {
  kOk,
  kAlreadyApplied,     // the same command (by id) was applied before: nothing changed
  kLinkedEventFailed,  // another command of its chain failed
  kLinkedChainOpen,    // its chain did not end in the batch
  kInvalid,            // malformed: zero id, negative or too large amount, bad enum, ...
  kIdConflict,         // the id is taken by a transfer (or account) with other content
  kOwnerTaken,         // CreateAccount: (kind, owner) belongs to another account id
  kAccountNotFound,    // an account the command names does not exist
  kInsufficientFunds,  // the debit account would pass its limit
  kHoldNotFound,       // PostHold, VoidHold: no transfer with that id
  kNotAHold,           // ... it is not a hold
  kHoldAlreadyPosted,
  kHoldAlreadyVoided,
  kHoldExpired,
  kExceedsHold,       // PostHold: more than was held
  kTransferNotFound,  // ReverseTransfer: no transfer with that id
  kNotReversible,     // ... it is a hold, a void or a reversal
  kAlreadyReversed,   // ... all of it was reversed already
  kExceedsRemaining,  // ... more than what is left to reverse
  kLimitBelowUse,     // SetCreditLimit: the account already uses more
  kWrongAccountKind,  // SetBudget on a non-tenant account; a credit limit on an unlimited one
  kFull,              // kLedgerAccounts or kLedgerTransfers reached
};
std::string_view outcome_name(Outcome outcome);
constexpr bool succeeded(Outcome outcome) { return outcome == Outcome::kOk || outcome == Outcome::kAlreadyApplied; }
// The Status for an outcome: ok for success, else the ErrorCode an API
// answers with (insufficient_funds is HTTP 402), with `detail` as message.
Status status_of(Outcome outcome, std::string detail);

// ---- State --------------------------------------------------------------------------

// The budget alert thresholds, percent of the monthly budget.
inline constexpr std::array<int, 3> kBudgetAlertPercents = {50, 80, 100};

// The UTC calendar month of a time, as yyyymm (202601), and its first instant.
std::int32_t utc_month_of(Timestamp t);
Timestamp utc_month_start(std::int32_t yyyymm);

struct Account {
  AccountId id = 0;
  AccountKind kind = AccountKind::kTenant;
  LimitRule limit = LimitRule::kNone;
  Amount credit_limit;
  Amount created_credit_limit;  // as created (for idempotency)
  Amount debits_posted, credits_posted, debits_pending, credits_pending;
  // Budget (tenant accounts).
  Money monthly_budget;
  std::int32_t spend_month = 0;  // yyyymm that month_spend is of
  Amount month_spend;
  std::uint8_t alerts_sent = 0;  // bit i: kBudgetAlertPercents[i] recorded for spend_month

  // Credit-normal balance: paid in and not spent.
  Amount balance() const { return credits_posted - debits_posted; }
  // What it may still spend: balance + credit limit - holds (limited accounts).
  Amount available() const { return credits_posted + credit_limit - debits_posted - debits_pending; }
};

struct Transfer {
  TransferId id;
  TransferId target;  // kPost, kVoid: the hold; kReversal: the reversed transfer
  Id128 reference;
  AccountId debit = 0, credit = 0;
  // kPosted, kHold, kPost, kReversal: what it moved (a hold: what it holds);
  // kVoid: what it released.
  Amount amount;
  // kHold: posted when it was posted; kPosted, kPost: reversed so far.
  Amount settled;
  Timestamp at;
  Timestamp expires_at;         // kHold
  std::int64_t timeout_ms = 0;  // kHold
  TransferKind kind = TransferKind::kPosted;
  TransferCode code = TransferCode::kUsage;
  HoldState state = HoldState::kNotAHold;
  bool whole = false;  // kPost, kReversal: the command named no amount
};

struct BudgetAlert {
  AccountId account = 0;
  std::int32_t month = 0;  // yyyymm
  int percent = 0;         // one of kBudgetAlertPercents
  Timestamp at;
  Amount spend;  // the month's spend when it was recorded
  Money budget;
};

enum class SpendState : std::uint8_t {
  kOk,
  kExhausted,  // balance and credit spent: no new jobs or requests; spot jobs preempted
};

struct Totals {
  Amount debits_posted, credits_posted, debits_pending, credits_pending;
};

struct LedgerOptions {
  // Room made up front, so that the hot path does not grow tables.
  std::size_t expected_accounts = 1'024;
  std::size_t expected_transfers = 65'536;
  // Transfers past this many fail with kFull: at most kLedgerTransfers (the
  // bound the sums are proved against); tests set fewer.
  std::size_t max_transfers = limits::kLedgerTransfers;
};

class Ledger {
 public:
  explicit Ledger(LedgerOptions options = {});
  ~Ledger();
  Ledger(Ledger&&) noexcept;
  Ledger& operator=(Ledger&&) noexcept;

  // Applies one command (a chain needs apply(span)).
  Outcome apply(const Command& command);
  // Applies commands in order (at most kLedgerBatchCommands), with linked
  // chains all or nothing; results[i] is commands[i]'s outcome.
  void apply(std::span<const Command> commands, std::span<Outcome> results);
  // apply() with a message for people on failure: "account 7 (tenant
  // ten_x) has 3.20 available, the transfer needs 5.00".
  Status execute(const Command& command);

  // Queries. Null or nullopt when absent.
  const Account* account(AccountId id) const;
  std::string_view owner_of(AccountId id) const;  // empty when absent
  std::optional<AccountId> find_account(AccountKind kind, std::string_view owner) const;
  const Transfer* transfer(TransferId id) const;
  // Whether `amount` more could be debited from the account now.
  bool can_spend(AccountId id, Amount amount) const;
  SpendState spend_state(AccountId id) const;
  // The account's spend in the month of `now` (zero for a month without any).
  Amount month_spend(AccountId id, Timestamp now) const;
  // Alerts recorded, oldest first; of one account, or all.
  std::vector<BudgetAlert> alerts(AccountId id) const;
  std::span<const BudgetAlert> all_alerts() const;

  Timestamp now() const;
  Totals totals() const;
  std::size_t account_count() const;
  std::size_t transfer_count() const;
  std::size_t pending_holds() const;
  // The entries kept to expire holds by: at most 2 * (pending_holds() + 1)
  // + 64 (settled holds' entries are dropped in bulk).
  std::size_t expiry_entries() const;
  // In the order they were made.
  const Account& account_at(std::size_t index) const;
  const Transfer& transfer_at(std::size_t index) const;

  // Recomputes the totals from every account and checks every invariant
  // (CHECK): debits == credits, posted and pending; no limited account past
  // its limit; pending counters equal the holds still pending. O(accounts +
  // transfers): for tests and for verifying a replay.
  void verify() const;
  // A hash of the whole state (accounts, transfers, alerts, clock): equal
  // for two ledgers given the same commands.
  std::uint64_t fingerprint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- Encoding (the table above) -----------------------------------------------------

// Appends one command's encoding to `out`. The command must be well formed
// in structure (its enums in range, an owner within kLedgerOwnerBytes).
void encode_command(const Command& command, std::string& out);
// Decodes one command from the front of `in` and advances `in` past it.
// invalid_argument for anything that encode_command cannot have written.
Result<Command> decode_command(std::string_view& in);
// A batch: a u32 count, then the commands.
std::string encode_commands(std::span<const Command> commands);
Result<std::vector<Command>> decode_commands(std::string_view in);

}  // namespace headroom::ledger
