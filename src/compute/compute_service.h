// ComputeService: runs raw compute. It owns the Scheduler (the pure core)
// and drives it from one thread, carrying out its effects through an
// Executor, keeping every job's state in the Store and emitting GPU time to
// the ledger's UsageSink.
//
// One loop, woken by new work or every tick (100 ms):
//   1. submissions that arrived are given to the scheduler (which checks
//      them and the quotas), then inserted in one transaction: one fsync for
//      the whole batch (group commit); each is answered after that commit;
//   2. admin commands and cancellations run;
//   3. the jobs whose processes ended are reported to the scheduler;
//   4. the scheduler ticks: it places, preempts and kills; the executor
//      starts, signals and kills processes;
//   5. flush: usage events first (made deterministically from persisted
//      times, so a repeat after a crash is the same event, a no-op), then
//      every job whose state changed, in one transaction; then the answers
//      that waited for it.
// With a Wallet, a paid run (on-demand, spot) starts only once the cost of
// its first hold_window_s is held, and the spot jobs of tenants whose money
// is spent get notice (they end at the grace, like any preempted spot job).
// GPU time is billed from a run's start (the executor confirmed it) to its
// end (the exit time the job's supervisor recorded, or the kill), in
// intervals aligned to the run's start every usage_interval.
//
// Restart: the jobs the store has not settled are taken back: queued ones
// are queued again, running ones adopted from their supervisor process, or
// closed (with the exit status they left, or lost) when it is gone. A lost
// job is billed up to the last time it was known to run.
//
// Thread-safe: every public method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"
#include "compute/job_spec.h"
#include "compute/quota.h"
#include "exec/executor.h"
#include "fleet/fleet.h"
#include "ledger/usage.h"
#include "ledger/rating.h"
#include "ledger/wallet.h"
#include "market/calendar.h"
#include "market/clearing.h"
#include "sched/scheduler.h"
#include "store/store.h"

namespace headroom::compute {

// List prices per GPU-hour of one GPU type: the config's, for a service
// without a price source (unit tests, tools).
struct GpuPrices {
  Money on_demand = Money::parse("2.00").value();
  Money reserved = Money::parse("1.50").value();
  Money spot = Money::parse("0.80").value();  // the spot price; a bid below it is refused
};

struct ComputeOptions {
  std::int64_t tick_ms = 100;
  std::int64_t usage_interval_s = 60;
  // The money side: holds the first hold_window_s of each paid run as it
  // starts (a run it refuses fails to start), and names the tenants whose
  // money is spent, whose spot jobs then get notice. None: no budgets.
  ledger::Wallet* wallet = nullptr;
  std::int64_t hold_window_s = 3600;
  std::size_t max_batch = 4096;  // submissions per group commit
  // The catalog (the billing service's book): prices are read from it at
  // the start of each usage interval, and the spot market publishes its
  // clearing prices to it. None: the fixed prices below, and no publishing.
  ledger::PriceCatalog* catalog = nullptr;
  // The spot market (spot_market.cpp): every clearing_interval_s, per GPU
  // type, the spot jobs' bids are cleared (market/clearing.h); 0: no market
  // (spot jobs pay the list spot price, never more than their bid).
  std::int64_t clearing_interval_s = 60;
  // Spot's floor per GPU type at a time (the owner's economics); none, or a
  // type it does not know (nullopt): the type's list spot price.
  std::function<std::optional<Money>(const std::string& gpu_type, Timestamp at)> spot_floor;
  // Capacity blocks: the owner's declared internal demand (never sold), and
  // how long a quote holds.
  std::vector<market::ForecastEntry> internal_forecast;
  std::int64_t quote_ttl_s = 900;
  GpuPrices default_prices;
  std::unordered_map<std::string, GpuPrices> prices;  // by GPU type
  sched::SchedulerOptions scheduler;
};

// A job to queue: the record to store (id, tenant, spec_json, created_at set
// by the caller) and its parsed spec.
struct Submission {
  store::JobRecord record;
  JobSpec spec;
  std::string idempotency_key;
  std::string request_sha256;
};

// What a submission came to: the job as stored, and whether it is the first
// job of a repeated Idempotency-Key (nothing new was queued).
struct Submitted {
  store::JobRecord job;
  bool replayed = false;
};

// Who holds each GPU, for GET /v1/fleet.
struct GpuHolding {
  std::string node;
  std::uint32_t index = 0;
  std::string job_id;     // empty when free
  std::string tenant_id;  // of the job
};

// What one GPU type offers now, for GET /v1/offers.
struct SiteCapacity {
  std::string region, site;
  std::uint32_t gpus = 0;       // of the type at the site
  std::uint32_t available = 0;  // free, on nodes that are up
};
struct TypeOffer {
  sched::TypeSurplus surplus;
  std::vector<SiteCapacity> sites;               // by region, then site
  Timestamp first_day;                           // the start (UTC) of today
  std::vector<std::uint32_t> reservable_by_day;  // GPUs one more block could book, per day from first_day
  std::uint32_t spot_supply = 0;                 // GPUs spot may hold now (what the market sells)
  Money spot_floor;                              // spot never sells below it
};

// A capacity block asked for (capacity_blocks.cpp).
struct BlockRequest {
  std::string tenant_id;
  std::string gpu_type;
  std::uint32_t gpus = 0;
  sched::Packing packing = sched::Packing::kAny;
  Timestamp start, end;  // snapped to whole hours: start down, end up
};
// A quote: what the block would cost and how much of it is free. Booking
// it (book_block) before expires_at gets exactly this.
struct BlockQuote {
  std::string id;  // "quo_..."
  BlockRequest request;
  std::uint32_t available = 0;  // the most GPUs a block of this window could book now
  Money price_per_gpu_hour;     // the reserved list price now, locked for the block
  Money total;                  // gpus x hours x price, held on the tenant's balance at booking
  Timestamp expires_at;
};

// The scheduler's view of a stored reservation.
sched::Reservation to_sched_reservation(const store::ReservationRecord& r);

class ComputeService {
 public:
  static Result<std::unique_ptr<ComputeService>> start(store::Store& store, const fleet::FleetSpec& fleet,
                                                       exec::Executor& executor, ledger::UsageSink& usage,
                                                       const Clock& clock, ComputeOptions options);
  // Stops the loop after a last flush. Running jobs keep running: the next
  // start adopts them.
  ~ComputeService();
  ComputeService(const ComputeService&) = delete;
  ComputeService& operator=(const ComputeService&) = delete;

  // Queues a job; `done` runs on the compute thread once it is durable (or
  // refused). Errors: invalid_argument (cannot ever fit, unknown type, a bid
  // below the spot floor), quota_exceeded, conflict (Idempotency-Key reused
  // for another request), unavailable (queue full, store failing).
  void submit(Submission submission, std::function<void(Result<Submitted>)> done);
  // Cancels a job; `done` runs once the change is durable.
  void cancel(std::string job_id, std::function<void(Status)> done);

  // Admin commands: applied and durable when they return.
  Status set_node_state(const std::string& node, fleet::NodeState state, const store::AuditRecord& audit);
  Status set_quota(const std::string& tenant_id, const ComputeQuota& quota, const store::AuditRecord& audit);
  Status add_reservation(const store::ReservationRecord& reservation, const store::AuditRecord& audit);
  // Cancels a reservation; a priced block's cancellation charges by the
  // rules in capacity_blocks.cpp. not_found for one that is not live.
  Status cancel_reservation(const std::string& id, const store::AuditRecord& audit);

  // Capacity blocks (capacity_blocks.cpp). invalid_argument naming the field;
  // conflict when the window does not have the GPUs (saying how many it has).
  Result<BlockQuote> quote_block(BlockRequest request, std::string quote_id);
  // Books a quote for its tenant: the calendar and the scheduler take it
  // together, or neither does, and its total is held on the tenant's balance.
  // not_found for an unknown or expired quote (or another tenant's);
  // conflict when the GPUs went meanwhile; insufficient_funds when the
  // tenant cannot cover the hold; the block's reservation on success.
  Result<store::ReservationRecord> book_block(const std::string& tenant_id, const std::string& quote_id,
                                              const std::string& reservation_id, const store::AuditRecord& audit);

  // Snapshots, taken on the compute thread.
  std::vector<GpuHolding> holdings();
  std::vector<fleet::NodeState> node_states();  // in fleet order
  std::vector<sched::TypeSurplus> surplus();
  // Per GPU type, in fleet order; reservable over the next `days` days.
  std::vector<TypeOffer> offers(std::int32_t days);
  // Where a job stands in its tier's queue (1 = next); 0 when not queued.
  std::size_t queue_position(const std::string& job_id);

  const exec::Executor& executor() const { return executor_; }
  const GpuPrices& prices_of(const std::string& gpu_type) const;

 private:
  struct LiveJob {
    store::JobRecord record;
    JobSpec spec;
    // A run we killed whose end the executor has not reported yet. A requeued
    // job placed again meanwhile starts only once it has (start_when_reaped).
    bool killed_run_unreaped = false;
    std::optional<std::vector<sched::GpuIndex>> start_when_reaped;
  };

  ComputeService(store::Store& store, const fleet::FleetSpec& fleet, exec::Executor& executor,
                 ledger::UsageSink& usage, const Clock& clock, ComputeOptions options, sched::Scheduler scheduler);
  Status recover(Timestamp now);
  void push_change(const LiveJob& job, bool changed);
  void run();
  // Runs `f` on the compute thread and waits for its result.
  template <typename F>
  auto call(F f) -> decltype(f());

  void take_submissions(std::vector<std::pair<Submission, std::function<void(Result<Submitted>)>>>& batch,
                        Timestamp now);
  void apply(const sched::Effects& effects, Timestamp now);
  void start_job(sched::JobId id, const std::vector<sched::GpuIndex>& gpus, Timestamp now);
  void launch_placed(Timestamp now);
  void launch(sched::JobId id, LiveJob& job, Timestamp now);
  void on_state(const sched::Effect& effect, Timestamp now);
  void reap(Timestamp now);
  void emit_due_usage(Timestamp now);
  Status hold_first_window(const LiveJob& job, std::size_t gpus, Timestamp now);
  void preempt_exhausted(Timestamp now);
  void settle(LiveJob& job);
  void close_run(LiveJob& job, Timestamp end);
  // Writes what changed; false when the store failed (retried next time).
  bool flush();
  Status check_price(const JobSpec& spec, Timestamp now) const;
  // Capacity blocks (capacity_blocks.cpp).
  struct PricedBlock;
  Status open_calendar(Timestamp now);
  void charge_blocks(Timestamp now);
  bool charge_block(const std::string& id, PricedBlock& block, Timestamp now);
  void cancel_block(const std::string& id, Timestamp now);
  // After a restart: a live reservation back into the calendar, and a priced
  // block back into blocks_ (its hours emitted again are recorded once).
  void restore_block(const store::ReservationRecord& r, Timestamp now);
  bool on_priced_block(const LiveJob& job) const;
  // The spot market (spot_market.cpp).
  Money floor_of(const std::string& gpu_type, Timestamp now) const;
  void clear_spot(Timestamp now);
  // Lets a new spot job start only on the types whose last price its bid meets.
  void admit_spot_bid(sched::JobId id, const JobSpec& spec);
  sched::Job to_sched_job(const store::JobRecord& record, const JobSpec& spec) const;
  Money unit_price(const LiveJob& job, Timestamp at) const;
  // The list price of a tier of a GPU type at `at`.
  Money list_price(const std::string& gpu_type, sched::Tier tier, Timestamp at) const;
  std::string gpu_names(std::span<const sched::GpuIndex> gpus) const;

  store::Store& store_;
  const fleet::FleetSpec& fleet_;
  exec::Executor& executor_;
  ledger::UsageSink& usage_;
  const Clock& clock_;
  const ComputeOptions options_;
  sched::Scheduler scheduler_;

  // Compute thread only.
  std::unordered_map<sched::JobId, LiveJob> live_;
  std::unordered_map<std::string, sched::JobId> seq_of_;  // public id -> scheduler id, live jobs
  std::unordered_set<sched::JobId> billing_;              // running: GPU time accrues
  std::int64_t next_seq_ = 1;
  std::vector<ledger::UsageEvent> pending_usage_;
  struct RunEnded {
    std::string job_id, run_key;
  };
  std::vector<RunEnded> pending_releases_;  // runs that ended: their hold goes once the usage is recorded
  std::uint64_t exhausted_seen_ = 0;           // the wallet's exhausted_generation() last acted on
  // Capacity blocks: the calendar (hourly free GPUs per type, the internal
  // forecast never sold), the live quotes, and the priced blocks whose hours
  // are charged as they pass (by id: how far they are charged).
  struct PricedBlock {
    std::string tenant_id, gpu_type;
    std::uint32_t gpus = 0;
    Timestamp start, end, charged_until;
  };
  std::unique_ptr<market::CapacityCalendar> calendar_;
  std::unordered_map<std::string, BlockQuote> quotes_;
  std::map<std::string, PricedBlock> blocks_;
  // The spot market's state: the last clearing price per type (by type index,
  // empty before the first clearing), when the next clearing is due, and
  // buffers reused between clearings.
  std::vector<std::optional<Money>> spot_price_;
  Timestamp next_clearing_;
  std::vector<market::Bid> bids_;
  market::Clearing clearing_;
  market::ClearingScratch clearing_scratch_;
  std::unordered_map<sched::JobId, std::uint64_t> spot_types_;
  std::vector<store::JobUpdate> pending_updates_;
  std::vector<sched::JobId> placed_;  // placed, launched after the next flush (launch_placed)
  std::vector<std::function<void()>> after_flush_;
  std::optional<Timestamp> end_hint_;  // the exit time of the job being finished
  std::chrono::steady_clock::time_point next_tick_;
  bool applying_ = false;
  sched::Effects follow_ups_;  // apply()'s queue

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<std::pair<Submission, std::function<void(Result<Submitted>)>>> submissions_;
  std::vector<std::function<void()>> tasks_;
  std::thread thread_;
};

// Defined here so that every file of the service may use it.
template <typename F>
auto ComputeService::call(F f) -> decltype(f()) {
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto result = task.get_future();
  {
    std::lock_guard lock(mutex_);
    tasks_.emplace_back([&task] { task(); });
  }
  wake_.notify_one();
  return result.get();
}

}  // namespace headroom::compute
