// BillingService: the money side of a running Headroom. It owns the ledger
// (ledger/ledger.h, a pure state machine), makes it durable in a journal,
// rates the usage log into it, and answers for balances, credits, budgets,
// usage reports and invoices. It is the Wallet raw compute asks before paid
// work.
//
// The flow of a usage event:
//   source (a job, a model request, POST /v1/usage)
//     -> UsageLog::record(): durable, duplicates recognised     (acknowledged)
//     -> the rating thread reads it, rates it by the price book, and charges
//        the tenant: from the run's hold first, then its prepaid balance and
//        credit, and what is left to its receivable account (usage that
//        happened is never dropped for lack of funds)
//     -> the commands are applied and journalled, with the usage log position
//        they rate through, in one journal record.
//
// The journal (`<dir>/journal.log`, a RecordLog) holds the ledger's commands
// and the price book's versions; the state is rebuilt at start by replaying
// it. Its records (integers little-endian):
//   +------+---------------------------------------------------------------+
//   | size | field                                                         |
//   +------+---------------------------------------------------------------+
//   |    1 | type: 1 commands, 2 the config's price versions, 3 price      |
//   |      | versions set at run time (the admin, the spot market)         |
//   |      | type 1:                                                       |
//   |    8 |   rated_to: the usage log position rated through, or 0 (no    |
//   |      |   change)                                                     |
//   |    * |   ledger.h's encode_commands() batch                          |
//   |      | types 2 and 3: price versions added together, all or none     |
//   |    4 |   count, then that many of:                                   |
//   |    1 |     product (usage.h's Product)                               |
//   |    8 |     effective_from, unix microseconds                         |
//   |    8 |     unit price, nano-dollars                                  |
//   |    2 |     item length, then the item                                |
//   |    2 |     variant length, then the variant                          |
//   +------+---------------------------------------------------------------+
// Commands are applied in memory as they are journalled, under one lock, so
// the journal's order is the order they were applied in and a replay of any
// prefix of it gives the state that prefix made. What is acknowledged to a
// caller waits until its record is durable: credits, terms. A hold made at
// a run's start does not wait (the job's start is not durable either until
// the compute service's next flush; a hold lost in a crash leaves the run
// charged from the balance, nothing lost). Rating does not wait: a rating
// lost in a crash is done again from the usage log, which is the source.
//
// Prices: the book (the catalog) is kept in the journal, so that a replay
// rates every event as it was rated. It takes versions from three places:
//   - the config: at start each configured price is compared with the last
//     one the config gave for its key (record type 2), and a difference is
//     added as a version effective from now. So a price the admin or the
//     market set since stays across restarts until the config's own price
//     for that key changes;
//   - the admin, through set_prices() (record type 3), effective from a time
//     not before now;
//   - the spot market, through set_prices() as each price clears.
// A version may not take effect at or before the start of an event already
// rated (set_prices() refuses it; earliest_price_change() says when one may),
// so a new version never reprices a charge made.

//
// Thread-safe: every public method may be called from any thread.
#pragma once

#include <condition_variable>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "billing/statements.h"
#include "common/money.h"
#include "common/status.h"
#include "common/time.h"
#include "ledger/invoice.h"
#include "ledger/ledger.h"
#include "ledger/rating.h"
#include "ledger/record_log.h"
#include "ledger/usage_log.h"
#include "ledger/wallet.h"

namespace headroom::billing {

struct BillingOptions {
  std::string dir;                   // holds journal.log; created if missing
  std::int64_t rate_every_ms = 20;   // the rating thread's pace when idle
  std::size_t rate_batch = 4096;     // events rated per journal record at most
  std::vector<ledger::PriceEntry> prices;  // the configured prices, effective_from ignored
  // The owner's own tenants: their usage is rated and charged like anyone's
  // (so it shows on statements and in the owner's economics), against a
  // credit limit of kTransferAmountMax: the owner's work never stops for money.
  std::function<bool(std::string_view tenant_id)> is_internal;
  // The ledger's room in transfers, at most kLedgerTransfers (tests set
  // fewer). Once it is full, rating stops with the usage kept unrated and
  // every money change is refused (unavailable).
  std::size_t max_transfers = limits::kLedgerTransfers;
  // false: no rating thread; only wait_rated() rates (tests that need to
  // order rating against other calls).
  bool rating_thread = true;
};

// A tenant's money, as GET /v1/balance shows it.
struct Balance {
  std::string tenant_id;
  Money balance, held, credit_limit, available, owed;  // floored to the nano-dollar
  ledger::SpendState state = ledger::SpendState::kExhausted;
  std::int32_t month = 0;  // yyyymm of now
  Money month_spend;
  Money monthly_budget;  // 0: none
  std::vector<ledger::BudgetAlert> alerts;
};

enum class CreditKind : std::uint8_t { kDeposit, kGrant };

struct CreditRequest {
  std::string tenant_id;
  Money amount;  // > 0
  CreditKind kind = CreditKind::kDeposit;
  std::string note;
  std::string idempotency_key;  // empty: a new credit every time
};

struct Credit {
  ledger::TransferId id;
  Timestamp at;
  bool replayed = false;  // the key was used before with the same request
};

struct BillingTotals {
  std::uint64_t rated_events = 0;
  std::uint64_t unrated_events = 0;  // no price in the book: logged, not charged
  ledger::Amount rated_amount;       // the sum of every rated charge, exact
  ledger::Amount revenue;            // the revenue accounts' posted credits (== rated_amount)
  std::uint64_t transfers = 0;       // in the ledger, every kind
};

class BillingService final : public ledger::Wallet, public ledger::PriceCatalog {
 public:
  // Replays the journal, brings the price book up to `options.prices`,
  // rebuilds the statements from the usage log and starts the rating thread.
  static Result<std::unique_ptr<BillingService>> open(BillingOptions options, ledger::UsageLog& usage,
                                                      const Clock& clock);
  // Rates what is durable in the usage log, then stops.
  ~BillingService() override;
  BillingService(const BillingService&) = delete;
  BillingService& operator=(const BillingService&) = delete;

  // ---- Prices ----
  // Prices a batch by the book without recording anything, for ingestion to
  // refuse what could not be rated and to answer each event's cost: costs[i]
  // is events[i]'s exact charge, and an event without a unit price gets the
  // book's. invalid_argument naming "events[i]" for the first event that is
  // malformed or has no price. The charge itself is made when the event is
  // rated from the usage log, by the same book.
  Status quote(std::span<ledger::UsageEvent> events, std::vector<ledger::Amount>& costs) const;

  // ---- The catalog ----
  // Adds price versions, all or none, durable when it returns. Each takes
  // effect at its effective_from, which must be after the start of every
  // event rated so far and not before now (earliest_price_change()); one
  // without (Timestamp{}) takes effect at that earliest time, decided under
  // the same lock, and it is written back. invalid_argument naming
  // "prices[i]" for a bad entry or time; conflict when a key already has
  // another price from the same time.
  Status set_prices(std::span<ledger::PriceEntry> prices) override;
  // The earliest time a new price version may take effect.
  Timestamp earliest_price_change() const override;
  // The versions in force at `at`, one per key, and those set to take
  // effect after it, by key, oldest first.
  struct PriceList {
    std::vector<ledger::PriceEntry> in_force, scheduled;
  };
  PriceList prices_at(Timestamp at) const;
  // One key's versions in force at some time of [from, to), oldest first.
  std::vector<ledger::PriceEntry> price_history(ledger::Product product, std::string_view item,
                                                std::string_view variant, Timestamp from,
                                                Timestamp to) const override;
  // PriceSource: the version in force at `at`.
  Result<Money> price_at(ledger::Product product, std::string_view item, std::string_view variant,
                         Timestamp at) const override;

  // ---- Credits and terms (durable when they return) ----
  // conflict when the idempotency key was used for another request.
  Result<Credit> add_credits(const CreditRequest& request);
  // Sets what is given; a budget of 0 clears it. invalid_argument for a
  // negative amount; conflict for a credit limit below what is in use.
  Status set_terms(std::string_view tenant_id, std::optional<Money> credit_limit, std::optional<Money> monthly_budget);

  // ---- Reading ----
  Balance balance(std::string_view tenant_id) const;
  UsageReport usage(std::string_view tenant_id, Timestamp from, Timestamp to, GroupBy group_by) const;
  // Every tenant's charges in [from, to), summed for the owner's reports
  // (statements.h's ChargeSummary).
  std::vector<ChargeSummary> summary(Timestamp from, Timestamp to, std::int64_t bucket_us) const;
  // Months with charges, oldest first (yyyymm).
  std::vector<std::int32_t> invoice_months(std::string_view tenant_id) const;
  // The month's statement, reconciled against its charges. not_found for a
  // month without charges.
  Result<ledger::Invoice> invoice(std::string_view tenant_id, std::int32_t month) const;

  // Blocks until every event durable in the usage log when it was called is
  // rated (tests, the crash harness, shutdown).
  void wait_rated();
  BillingTotals totals() const;
  // Checks every invariant (ledger.h's verify(), and that revenue equals the
  // rated charges); CHECK-fails on a broken one.
  void verify() const;
  std::uint64_t fingerprint() const;

  // ---- Wallet ----
  Status admit(std::string_view tenant_id) override;
  Status hold_run(std::string_view tenant_id, std::string_view job_id, std::string_view run_key, Money per_gpu_hour,
                  std::uint32_t gpus, std::int64_t window_ms, std::int64_t timeout_ms, Timestamp now) override;
  void release_run(std::string_view job_id, std::string_view run_key) override;
  Status hold_request(std::string_view tenant_id, std::string_view request_id, Money input_price,
                      std::int64_t input_tokens, Money output_price, std::int64_t output_tokens, std::int64_t timeout_ms,
                      Timestamp now) override;
  void release_request(std::string_view request_id) override { release_run(request_id, request_id); }
  std::uint64_t exhausted_generation() const override;
  std::vector<std::string> exhausted_tenants() const override;

 private:
  struct Accounts {
    ledger::AccountId cash = 1, grants = 2, gpu_revenue = 3, token_revenue = 4, rounding = 5;
  };

  BillingService(BillingOptions options, ledger::UsageLog& usage, const Clock& clock);
  Status replay(std::string_view payload);
  Status bring_prices_up_to_date(Timestamp now);
  Status rebuild_statements();
  void rate_loop();
  // Rates what the usage log has durable, at most rate_batch events. Returns
  // how many it read.
  std::size_t rate_some();

  // Under mu_: applies commands as a chain and keeps them for the journal.
  ledger::Outcome apply_chain(std::span<const ledger::Command> chain);
  // Under mu_: enqueues the journal record of what apply_chain kept, with
  // the usage log position rated through (0: unchanged). Does not wait;
  // with Wake::kLater it does not wake the journal's writer either.
  Status journal_pending(std::uint64_t rated_to, ledger::RecordLog::Wake wake = ledger::RecordLog::Wake::kNow);
  ledger::Amount revenue_locked() const;
  ledger::AccountId tenant_account(std::string_view tenant_id, Timestamp at);    // creates it when missing
  ledger::AccountId receivable_account(std::string_view tenant_id, Timestamp at);
  bool charge(const ledger::RatedCharge& charge, Timestamp at, std::span<const ledger::Id128> ended);
  void note_spend(ledger::AccountId account);
  bool exhausted_locked(std::string_view tenant_id) const;
  Balance balance_locked(std::string_view tenant_id, Timestamp now) const;

  const BillingOptions options_;
  ledger::UsageLog& usage_;
  const Clock& clock_;
  const Accounts accounts_;
  std::unique_ptr<ledger::RecordLog> journal_;

  mutable std::mutex mu_;
  ledger::Ledger ledger_;           // under mu_
  // Changed under mu_ and book_mu_ (exclusive); read under either (shared
  // for book_mu_), so that rating (under mu_) and ingestion's quotes (under
  // book_mu_) never wait for each other.
  mutable std::shared_mutex book_mu_;
  ledger::PriceBook book_;
  std::map<std::tuple<ledger::Product, std::string, std::string>, Money> configured_;  // the config's last, by key
  Timestamp latest_rated_start_;  // under mu_: the latest start of an event rated
  Statements statements_;           // under mu_
  std::string pending_;             // under mu_: encoded commands not yet journalled
  std::uint32_t pending_count_ = 0; // under mu_
  ledger::LogPosition rated_to_ = ledger::RecordLog::kFirstPosition;  // under mu_
  // The live hold of each job, by the job's reference id, and the run it
  // belongs to: the id of the run's first hold (hold_run's), which the holds
  // that rating makes again for a hold's rest carry on.
  struct LiveHold {
    ledger::TransferId hold, run;
  };
  std::map<ledger::Id128, LiveHold> holds_;  // under mu_
  struct Release {
    ledger::Id128 reference;  // the job's
    ledger::TransferId run;   // its run's first hold
  };
  std::vector<Release> releases_;                      // under mu_: runs that ended
  std::set<std::string, std::less<>> exhausted_;       // under mu_
  std::uint64_t exhausted_generation_ = 1;             // under mu_
  BillingTotals totals_;                               // under mu_
  Status failed_;  // under mu_: the journal failed; changes are refused until a restart

  std::mutex rate_mu_;  // one rater at a time: the thread, or wait_rated()
  std::chrono::steady_clock::time_point last_rating_sync_;  // under mu_: when rating last woke the journal
  std::condition_variable wake_;
  bool stopping_ = false;  // under mu_
  std::thread thread_;
};

}  // namespace headroom::billing
