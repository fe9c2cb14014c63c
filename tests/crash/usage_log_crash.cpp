// Issue 4's crash harness: a usage log and the billing service that rates it,
// written under load, killed with SIGKILL at random points, restarted each
// time, and checked after every kill: every acknowledged event is in the log
// exactly once and rated exactly once, the ledger balances, no balance is
// past its limit, the invoices add up to the rated events, and every
// acknowledged credit is in the ledger exactly once.
//
//   usage_log_crash [--cycles N] [--seed S] [--cycles-per-log K] [--max-kill-ms M] [--dir DIR]
//     defaults: 200 cycles (`make test`; --cycles 10000 offline), seed 1,
//     a fresh log and ledger every 25 cycles, kills within 100 ms of the fork
//     or the open.
//
// One cycle:
//   1. The parent forks a child. The child opens the usage log (DIR/usage.log,
//      replaying it) and a BillingService on it (DIR/ledger/journal.log,
//      replaying it; a real SystemClock), writes a ready message to a pipe,
//      and runs
//      - 4 producer threads, each calling UsageLog::record_each() with
//        batches of 1 to 32 events: 60% new ids, 20% retries of earlier ids
//        (ids acknowledged or lost in earlier cycles, or never sent), 20% the
//        ids another producer is sending right now (concurrent writers of
//        one id). Event k's content is a pure function of k (so every retry
//        is the same event): one of 3 tenants, one of the 8 GPU prices or
//        2 token prices of the book (kPrices; 2 of them $0.00), one of 3
//        months;
//        half the GPU events name one of the 4 jobs of their tenant that the
//        hold thread holds runs for, as their source_id. Once record_each()
//        returns ok the child writes (k, the log's durable end) for each
//        event to the pipe (one write of at most PIPE_BUF bytes per batch,
//        so a kill never tears a message);
//      - a credit thread calling BillingService::add_credits() with
//        idempotency key n: first every key the parent saw tried but never
//        acknowledged, then 70% new keys and 30% retries of earlier ones. Key
//        n's tenant (half ten_0, 3/10 ten_1, 2/10 ten_2), kind (1 in 7 a
//        grant) and amount ($1 to $10 in whole micro-dollars) are pure
//        functions of n. It writes "trying n" to the pipe before the call
//        and "acknowledged n" after it returns ok. Usage outruns ten_2's
//        credits and often ten_1's, so their usage goes to what they owe,
//        and new credits settle it;
//      - a hold thread making a run's hold (BillingService::hold_run, 1 to 8
//        GPUs for 1 to 10 minutes at $2.00 per GPU-hour, expiring after 2 to
//        32 s; a new run of a job voids its previous run's hold) for a random
//        one of the 12 jobs, or releasing one (release_run), every 0.2 to
//        1 ms, so that charges sometimes come from a hold, sometimes from a
//        hold that expired or was released, and holds are refused once a
//        tenant is out (insufficient_funds, the one error allowed).
//   2. The parent kills the child with SIGKILL at a random time between 0
//      and M ms after the fork (so some kills land in the replays, the
//      files' creation, the price book's first records, the zero-fill, a
//      write or a sync), or, half the time, after the ready message; then it
//      reads the messages left in the pipe.
//   3. One cycle in four, the parent also plays a power loss on the usage
//      log: it garbles it, when there is anything to garble, (truncated mid-record, random bytes, or a zeroed
//      range) past the largest durable end any child reported and past the
//      largest usage position the journal says it rated through (the rating
//      thread reads only durable events, so that position was durable too;
//      only what no one saw durable may go). The journal is not garbled:
//      nothing the harness sees tells where its durable end was.
//   4. The parent replays the usage log with RecordLog (counting each
//      event's copies, checking their content, and summing each tenant's
//      and month's exact charges by the book), then with UsageLog (whose
//      totals must match), and checks every acknowledged event is there
//      once and none twice.
//   5. The parent opens a BillingService on it (replaying the journal),
//      waits until the log is rated, and checks
//      - rated_events is the number of events in the log and none is
//        unrated: no event lost or charged twice;
//      - verify(): the ledger balances (debits == credits, posted and
//        pending), no limited account past its limit, revenue == the rated
//        charges, the statements agree (a CHECK: the parent prints the cycle
//        and seed before it aborts);
//      - each tenant's invoice_months() are the months of its events, each
//        invoice() reconciles, each invoice's exact total is the sum of its
//        events' charges, and all of them add up to rated_amount and revenue;
//      - each tenant's credited total, computed from the public balance
//        (balance + the tenant's charges - what it owes; a tenant account is
//        credited only by credits and debited only by its usage and the
//        settling of what it owes), is the sum of its acknowledged credits
//        plus the sum of a subset of its tried-but-unacknowledged ones (with
//        at most 16 of those, else within their sum): every acknowledged
//        credit there exactly once (the amounts differ in their
//        micro-dollars, so a credit counted twice shows).
//      Then it closes both, and the next cycle's child opens them again. At
//      a log's last cycle the parent also counts the holds' commands in the
//      journal, for the summary.
// Kills and garbling lose only what the page cache did not hold or what no
// one saw durable, so a credit acknowledged before its journal record was
// synced would not be caught here (the journal is never garbled).
// Any failure prints what differs and exits 1.
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <spdlog/spdlog.h>

#include "billing/billing_service.h"
#include "ledger/rating.h"
#include "ledger/record_log.h"
#include "ledger/usage_log.h"

namespace {

using namespace headroom::ledger;
using headroom::ErrorCode;
using headroom::Money;
using headroom::Result;
using headroom::Status;
using headroom::SystemClock;
using headroom::Timestamp;
using headroom::billing::BillingOptions;
using headroom::billing::BillingService;
using headroom::billing::CreditKind;
using SteadyClock = std::chrono::steady_clock;

constexpr int kProducers = 4;
constexpr std::size_t kMaxBatch = 32;
constexpr std::uint64_t kTenants = 3;
constexpr std::uint64_t kHeldJobsPerTenant = 4;
constexpr std::size_t kSubsetKeysMax = 16;  // tried-but-unacknowledged credits checked exactly, per tenant

enum Kind : std::uint64_t {
  kReady = 1,        // the child's first message: the usage log and the billing service are open
  kEventAcked = 2,   // n: an event's k; durable_end: the usage log's after it
  kCreditTried = 3,  // n: a credit's key, written before add_credits()
  kCreditAcked = 4,  // n: a credit's key, written after add_credits() returned ok
};
struct Message {
  std::uint64_t kind;
  std::uint64_t n;
  std::uint64_t durable_end;
};
static_assert(kMaxBatch * sizeof(Message) <= PIPE_BUF, "a batch's acknowledgements are one atomic pipe write");

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The price book: every event has a price in it.
struct Price {
  Product product;
  const char* item;
  const char* variant;
  std::int64_t nanos;  // per GPU-hour or per million tokens
};
constexpr Price kPrices[] = {
    {Product::kGpuTime, "h100", "internal", 0},
    {Product::kGpuTime, "h100", "reserved", 1'500'000'000},
    {Product::kGpuTime, "h100", "on-demand", 2'000'000'000},
    {Product::kGpuTime, "h100", "spot", 800'000'000},
    {Product::kGpuTime, "gb200", "internal", 0},
    {Product::kGpuTime, "gb200", "reserved", 4'000'000'000},
    {Product::kGpuTime, "gb200", "on-demand", 5'000'000'000},
    {Product::kGpuTime, "gb200", "spot", 1'900'000'000},
    {Product::kTokens, "llama-3-8b", "input", 50'000'000},
    {Product::kTokens, "llama-3-8b", "output", 200'000'000},
};

std::vector<PriceEntry> price_book() {
  std::vector<PriceEntry> book;
  for (const Price& p : kPrices) book.push_back({p.product, p.item, p.variant, {}, Money::from_nanos(p.nanos)});
  return book;
}

const Price* price_of(const UsageEvent& e) {
  for (const Price& p : kPrices) {
    if (p.product == e.product && e.item == p.item && e.variant == p.variant) return &p;
  }
  return nullptr;
}

std::string tenant_name(std::uint64_t t) { return "ten_" + std::to_string(t); }
std::string held_job(std::uint64_t tenant, std::uint64_t j) {
  return "job_" + std::to_string(tenant) + "_" + std::to_string(j);
}

constexpr std::int64_t kFirstMonthMicros = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr std::int64_t kMonthStepMicros = 31LL * 24 * 3600 * 1'000'000;

// Event number k: the same content every time it is made.
UsageEvent event_of(std::uint64_t k) {
  std::uint64_t h = mix(k);
  UsageEvent e;
  e.id = "ev-" + std::to_string(k) + "-" + std::string(h % 24, static_cast<char>('a' + h % 26));
  const std::uint64_t tenant = (h >> 5) % kTenants;
  e.tenant_id = tenant_name(tenant);
  const Price& p = kPrices[(h >> 8) % std::size(kPrices)];
  e.product = p.product;
  e.item = p.item;
  e.variant = p.variant;
  // The source's price; 1 in 256 differs from the book's, which is charged anyway.
  e.unit_price = Money::from_nanos(p.nanos + ((h >> 56) == 0 ? 1 : 0));
  e.start = Timestamp{kFirstMonthMicros + static_cast<std::int64_t>((h >> 16) % 3) * kMonthStepMicros +
                      static_cast<std::int64_t>(k) * 1000};
  if (p.product == Product::kTokens) {
    e.quantity = static_cast<std::int64_t>((h >> 20) % 5'000'001);
    e.end = e.start;
    e.source_id = "req_" + std::to_string(k);
  } else {
    e.quantity = static_cast<std::int64_t>((h >> 20) % 300'001);  // up to 5 GPU-minutes
    e.end = e.start.plus_micros(e.quantity * 1000);
    e.source_id = (h >> 40) & 1 ? held_job(tenant, (h >> 41) % kHeldJobsPerTenant)
                                : "job_" + std::to_string(tenant) + "_x" + std::to_string(k / 10);
  }
  return e;
}

bool same(const UsageEvent& a, const UsageEvent& b) {
  return a.id == b.id && a.tenant_id == b.tenant_id && a.product == b.product && a.item == b.item &&
         a.variant == b.variant && a.quantity == b.quantity && a.unit_price == b.unit_price && a.start == b.start &&
         a.end == b.end && a.source_id == b.source_id;
}

// k from an id "ev-<k>-...".
bool k_of(const std::string& id, std::uint64_t& k) {
  if (id.rfind("ev-", 0) != 0) return false;
  char* end = nullptr;
  k = std::strtoull(id.c_str() + 3, &end, 10);
  return end != nullptr && *end == '-';
}

// Credit key n: the same request every time it is made.
std::uint64_t credit_tenant(std::uint64_t n) { return n % 10 < 5 ? 0 : n % 10 < 8 ? 1 : 2; }
Money credit_amount(std::uint64_t n) {  // $1 to $10 in whole micro-dollars
  return Money::from_nanos(static_cast<std::int64_t>(1'000'000 + mix(n ^ 0xc2b2ae3d27d4eb4fULL) % 9'000'001) * 1000);
}
headroom::billing::CreditRequest credit_of(std::uint64_t n) {
  return {.tenant_id = tenant_name(credit_tenant(n)),
          .amount = credit_amount(n),
          .kind = n % 7 == 0 ? CreditKind::kGrant : CreditKind::kDeposit,
          .note = "crash harness",
          .idempotency_key = "credit-" + std::to_string(n)};
}

BillingOptions billing_options(const std::string& dir) {
  BillingOptions options;
  options.dir = dir + "/ledger";
  options.prices = price_book();
  return options;
}

[[noreturn]] void child_fail(const std::string& what) {
  std::fprintf(stderr, "child: %s\n", what.c_str());
  std::fflush(stderr);
  ::_exit(3);
}

void send(int fd, const Message* messages, std::size_t n) {
  ssize_t bytes = static_cast<ssize_t>(n * sizeof(Message));
  if (::write(fd, messages, static_cast<std::size_t>(bytes)) != bytes) child_fail("writing to the pipe");
}

struct ChildPlan {
  std::string dir;
  std::uint64_t seed = 0;
  std::uint64_t event_frontier = 0;            // every event k below it may have been sent
  std::uint64_t credit_frontier = 0;           // every credit key below it may have been tried
  std::vector<std::uint64_t> credits_unacked;  // tried, never acknowledged: retried first
};

// The child: writes until it is killed.
[[noreturn]] void run_child(const ChildPlan& plan, int fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto opened = UsageLog::open({.dir = plan.dir});
  if (!opened) child_fail("open: " + opened.status().to_string());
  UsageLog& log = **opened;
  SystemClock clock;
  auto billing_opened = BillingService::open(billing_options(plan.dir), log, clock);
  if (!billing_opened) child_fail("BillingService::open: " + billing_opened.status().to_string());
  BillingService& billing = **billing_opened;
  Message ready{kReady, 0, 0};
  send(fd, &ready, 1);
  std::atomic<std::uint64_t> next_k{plan.event_frontier};
  std::atomic<std::uint64_t> hot{plan.event_frontier};  // a k some producer sent last
  std::vector<std::thread> threads;
  for (int t = 0; t < kProducers; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(mix(plan.seed * 131 + static_cast<std::uint64_t>(t)));
      std::vector<UsageEvent> batch;
      std::vector<std::uint64_t> ks;
      Message acks[kMaxBatch];
      while (true) {
        batch.clear();
        ks.clear();
        std::size_t n = 1 + rng() % kMaxBatch;
        for (std::size_t i = 0; i < n; ++i) {
          std::uint64_t roll = rng() % 10, k;
          if (roll < 6) {
            k = next_k.fetch_add(1);
            hot.store(k);
          } else if (roll < 8) {
            std::uint64_t sent = next_k.load();
            k = sent == 0 ? next_k.fetch_add(1) : rng() % sent;  // a retry
          } else {
            k = hot.load() + rng() % 3;  // racing another producer, or about to
            if (k >= next_k.load()) k = hot.load();
          }
          ks.push_back(k);
          batch.push_back(event_of(k));
        }
        std::vector<Status> statuses = log.record_each(batch);
        LogPosition durable = log.durable_end();
        for (std::size_t i = 0; i < n; ++i) {
          if (!statuses[i].is_ok()) child_fail("record " + batch[i].id + ": " + statuses[i].to_string());
          acks[i] = {kEventAcked, ks[i], durable};
        }
        send(fd, acks, n);
      }
    });
  }
  threads.emplace_back([&] {  // credits
    std::mt19937_64 rng(mix(plan.seed * 131 + 1000));
    std::uint64_t next_n = plan.credit_frontier;
    std::size_t retried = 0;
    while (true) {
      std::uint64_t n;
      if (retried < plan.credits_unacked.size()) {
        n = plan.credits_unacked[retried++];
      } else if (next_n == 0 || rng() % 10 < 7) {
        n = next_n++;
      } else {
        n = rng() % next_n;
      }
      Message tried{kCreditTried, n, 0};
      send(fd, &tried, 1);
      auto credit = billing.add_credits(credit_of(n));
      if (!credit) child_fail("credit " + std::to_string(n) + ": " + credit.status().to_string());
      Message acked{kCreditAcked, n, 0};
      send(fd, &acked, 1);
    }
  });
  threads.emplace_back([&] {  // runs' holds
    std::mt19937_64 rng(mix(plan.seed * 131 + 2000));
    std::map<std::string, std::string> last_run;  // by job
    for (std::uint64_t run = 0;; ++run) {
      const std::uint64_t tenant = rng() % kTenants;
      const std::string job = held_job(tenant, rng() % kHeldJobsPerTenant);
      if (rng() % 4 == 0) {
        if (auto it = last_run.find(job); it != last_run.end()) billing.release_run(job, it->second);
      } else {
        const std::string run_key = "run-" + std::to_string(plan.seed) + "-" + std::to_string(run);
        last_run[job] = run_key;
        Status s = billing.hold_run(tenant_name(tenant), job, run_key, Money::from_dollars(2),
                                    static_cast<std::uint32_t>(1 + rng() % 8),
                                    static_cast<std::int64_t>(60'000 + rng() % 540'001),
                                    static_cast<std::int64_t>(2'000 + rng() % 30'000), clock.now());
        if (!s && s.code() != ErrorCode::kInsufficientFunds) child_fail("hold_run " + job + ": " + s.to_string());
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200 + rng() % 800));
    }
  });
  for (auto& th : threads) th.join();
  ::_exit(0);  // not reached
}

struct Stats {
  std::uint64_t acks = 0, kills_in_open = 0, kills_before_ack = 0, natural_cuts = 0, injected = 0, injected_cuts = 0,
                garble_floor_from_journal = 0;
  std::uint64_t max_log_bytes = 0, max_events = 0, max_journal_bytes = 0;
  std::uint64_t credit_acks = 0, credits_found_unacked = 0, credit_checks_exact = 0, credit_checks_bounded = 0;
  std::uint64_t cycles_owing[kTenants] = {};       // cycles that ended with the tenant owing
  std::uint64_t cycles_with_holds = 0;             // cycles whose check found a hold still pending
  std::uint64_t last_journal_holds[3] = {};        // the last journal scanned: CreateHold, PostHold, VoidHold commands
  std::uint64_t journal_holds[3] = {};             // summed over the logs, at each log's last cycle
  Amount rated_total, credited_total, owed_total;  // summed over the logs, at each log's last cycle
};

int fail(const std::string& what) {
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  return 1;
}

// What aborts the parent (a CHECK in verify(), say) prints first: set while
// the parent checks a cycle, empty otherwise (so a child prints nothing).
char g_abort_context[256];

extern "C" void on_abort(int) {
  std::size_t n = std::strlen(g_abort_context);
  if (n > 0 && ::write(STDERR_FILENO, g_abort_context, n) < 0) {
  }
  std::signal(SIGABRT, SIG_DFL);
  std::raise(SIGABRT);
}

// Each tenant's and month's exact charges by the book.
using Charges = std::map<std::pair<std::string, std::int32_t>, Amount>;

// Replays the log with RecordLog; fills `count` (copies per k), sums the
// quantities and the charges, and checks each event's content.
Status replay_raw(const std::string& dir, std::vector<std::uint32_t>& count, std::uint64_t& quantity,
                  ReplayReport& report, Charges* charges) {
  quantity = 0;
  std::fill(count.begin(), count.end(), 0);
  if (charges != nullptr) charges->clear();
  auto log =
      RecordLog::open({.dir = dir, .file_name = "usage.log"}, [&](LogPosition position, std::string_view payload) {
        auto e = decode_usage_event(payload);
        std::uint64_t k;
        if (!e || !k_of(e->id, k))
          return Status::internal("not an event of this harness at " + std::to_string(position));
        if (!same(*e, event_of(k))) return Status::internal("event " + e->id + " changed on disk");
        if (k >= count.size()) count.resize(k + 1, 0);
        ++count[k];
        quantity += static_cast<std::uint64_t>(e->quantity);
        if (charges != nullptr) {
          const Price* p = price_of(*e);
          if (p == nullptr) return Status::internal("event " + e->id + " has no price");
          (*charges)[{e->tenant_id, utc_month_of(e->start)}] +=
              exact_cost(e->product, e->quantity, Money::from_nanos(p->nanos));
        }
        return Status::ok();
      });
  if (!log) return log.status();
  report = (*log)->replay_report();
  return Status::ok();
}

// Reads the journal (billing_service.h draws its format): returns the
// largest usage log position its commands records say they rated through, 0
// when there is no journal, and counts the holds' commands in it (made,
// posted, voided, tried or applied: failed commands are journalled too).
Result<LogPosition> scan_journal(const std::string& dir, Stats& stats) {
  const std::string ledger_dir = dir + "/ledger";
  if (!std::filesystem::exists(ledger_dir + "/journal.log")) return LogPosition{0};
  stats.max_journal_bytes =
      std::max<std::uint64_t>(stats.max_journal_bytes, std::filesystem::file_size(ledger_dir + "/journal.log"));
  LogPosition rated_to = 0;
  std::uint64_t holds[3] = {};
  auto journal = RecordLog::open({.dir = ledger_dir, .file_name = "journal.log"},
                                 [&](LogPosition position, std::string_view payload) {
                                   if (payload.empty() || payload[0] != 1) return Status::ok();  // a price record
                                   std::uint64_t to;
                                   if (payload.size() < 1 + sizeof to)
                                     return Status::internal("a short record at " + std::to_string(position));
                                   std::memcpy(&to, payload.data() + 1, sizeof to);
                                   rated_to = std::max(rated_to, to);
                                   auto commands = decode_commands(payload.substr(1 + sizeof to));
                                   if (!commands) return commands.status();
                                   for (const Command& c : *commands) {
                                     holds[0] += std::holds_alternative<CreateHold>(c.op);
                                     holds[1] += std::holds_alternative<PostHold>(c.op);
                                     holds[2] += std::holds_alternative<VoidHold>(c.op);
                                   }
                                   return Status::ok();
                                 });
  if (!journal) return journal.status();
  stats.last_journal_holds[0] = holds[0];
  stats.last_journal_holds[1] = holds[1];
  stats.last_journal_holds[2] = holds[2];
  return rated_to;
}

// Garbles the log past `durable` (what a power loss may lose). Returns false
// when there was nothing to garble. The replay that finds the log's end
// counts a tail the kill tore.
bool power_loss(const std::string& dir, LogPosition durable, std::mt19937_64& rng, Stats& stats) {
  std::string path = dir + "/usage.log";
  std::vector<std::uint32_t> ignored;
  std::uint64_t quantity;
  ReplayReport before;
  if (!replay_raw(dir, ignored, quantity, before, nullptr).is_ok()) return false;
  stats.natural_cuts += before.tails_cut;
  if (before.end <= durable) return false;
  LogPosition at = durable + rng() % (before.end - durable);
  int fd = ::open(path.c_str(), O_WRONLY);
  if (fd < 0) return false;
  switch (rng() % 3) {
    case 0:  // a torn tail: the file ends inside a record
      if (::ftruncate(fd, static_cast<off_t>(at)) != 0) std::perror("ftruncate");
      break;
    case 1: {  // random bytes, as a sector half written
      std::string junk(1 + rng() % 64, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      if (::pwrite(fd, junk.data(), junk.size(), static_cast<off_t>(at)) < 0) std::perror("pwrite");
      break;
    }
    default: {  // a zeroed range, as a page never written
      std::string zeros(1 + rng() % 8192, '\0');
      if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(at)) < 0) std::perror("pwrite");
    }
  }
  ::close(fd);
  return true;
}

std::string dollars(Amount a) {
  std::string text = a.to_string();
  text.insert(0, 1, '$');
  return text;
}

// The credits of one log, as the children reported them.
struct Credits {
  std::vector<std::uint8_t> tried, acked;  // by key
  std::uint64_t frontier = 0;              // every key below it may have been tried
};

// Checks the billing service against the log replayed (`present` events,
// `charges`) and the credits reported.
Status check_billing(const std::string& dir, UsageLog& log, std::uint64_t present, const Charges& charges,
                     const Credits& credits, Stats& stats, bool last_of_log) {
  SystemClock clock;
  auto opened = BillingService::open(billing_options(dir), log, clock);
  if (!opened) return Status::internal("BillingService::open: " + opened.status().to_string());
  BillingService& billing = **opened;
  billing.wait_rated();
  const auto totals = billing.totals();
  if (totals.rated_events != present || totals.unrated_events != 0) {
    return Status::internal("the log holds " + std::to_string(present) + " events, the billing service rated " +
                            std::to_string(totals.rated_events) + " and left " + std::to_string(totals.unrated_events) +
                            " unrated");
  }
  billing.verify();  // CHECK-fails on a broken invariant
  Amount expected_total;
  for (const auto& [key, amount] : charges) expected_total += amount;
  if (totals.rated_amount != expected_total || totals.revenue != expected_total) {
    return Status::internal("rated " + dollars(totals.rated_amount) + ", revenue " + dollars(totals.revenue) +
                            ", the log's events cost " + dollars(expected_total));
  }
  Amount invoiced_total;
  for (std::uint64_t t = 0; t < kTenants; ++t) {
    const std::string tenant = tenant_name(t);
    std::vector<std::int32_t> expected_months;
    for (auto it = charges.lower_bound({tenant, 0}); it != charges.end() && it->first.first == tenant; ++it) {
      expected_months.push_back(it->first.second);
    }
    const std::vector<std::int32_t> months = billing.invoice_months(tenant);
    if (months != expected_months) {
      return Status::internal(tenant + " has invoices for " + std::to_string(months.size()) + " months, events in " +
                              std::to_string(expected_months.size()));
    }
    Amount tenant_charges;
    for (std::int32_t month : months) {
      auto invoice = billing.invoice(tenant, month);
      if (!invoice) {
        return Status::internal(tenant + "'s invoice for " + std::to_string(month) + ": " +
                                invoice.status().to_string());
      }
      const Amount expected = charges.at({tenant, month});
      if (invoice->exact_total != expected) {
        return Status::internal(tenant + "'s invoice for " + std::to_string(month) + " totals " +
                                dollars(invoice->exact_total) + ", its events cost " + dollars(expected));
      }
      tenant_charges += invoice->exact_total;
    }
    invoiced_total += tenant_charges;

    // Credited = balance + charges - owed, exactly: the tenant account's
    // credits are its credits; its debits are its usage paid from it (a
    // hold posted, or paid) and what it settled of what it owed; the
    // receivable's debits are its usage owed, its credits what was settled.
    // Balance floors both to the nano-dollar, so this is within 1 nano-dollar
    // of the truth, a whole number of micro-dollars.
    const auto balance = billing.balance(tenant);
    const Amount estimate = Amount::from_money(balance.balance) + tenant_charges - Amount::from_money(balance.owed);
    const AmountUnits micro = AmountUnits{Amount::kUnitsPerNano} * 1000;
    const AmountUnits rounded = (estimate.units() + micro / 2) / micro;
    const std::int64_t credited_nanos = static_cast<std::int64_t>(rounded) * 1000;
    std::int64_t acked_nanos = 0, unacked_nanos = 0;
    std::vector<std::int64_t> unacked;
    for (std::uint64_t n = 0; n < credits.tried.size(); ++n) {
      if (credit_tenant(n) != t) continue;
      if (credits.acked[n]) {
        acked_nanos += credit_amount(n).nanos();
      } else if (credits.tried[n]) {
        unacked.push_back(credit_amount(n).nanos());
        unacked_nanos += credit_amount(n).nanos();
      }
    }
    const std::int64_t extra = credited_nanos - acked_nanos;
    auto credited_text = [&] {
      return tenant + " was credited $" + Money::from_nanos(credited_nanos).to_string() + " (balance $" +
             balance.balance.to_string() + ", charges " + dollars(tenant_charges) + ", owed $" +
             balance.owed.to_string() + "); acknowledged credits $" + Money::from_nanos(acked_nanos).to_string() +
             ", tried but unacknowledged $" + Money::from_nanos(unacked_nanos).to_string() + " in " +
             std::to_string(unacked.size()) + " keys";
    };
    if (extra < 0 || extra > unacked_nanos) return Status::internal(credited_text() + ": out of bounds");
    if (unacked.size() <= kSubsetKeysMax) {
      std::unordered_set<std::int64_t> sums{0};
      for (std::int64_t a : unacked) {
        std::vector<std::int64_t> more;
        for (std::int64_t s : sums) more.push_back(s + a);
        sums.insert(more.begin(), more.end());
      }
      if (!sums.contains(extra)) {
        return Status::internal(credited_text() + ": not the acknowledged credits plus some of the others");
      }
      ++stats.credit_checks_exact;
    } else {
      ++stats.credit_checks_bounded;
    }
    if (extra > 0) ++stats.credits_found_unacked;
    if (balance.owed > Money()) ++stats.cycles_owing[t];
    if (balance.held > Money()) ++stats.cycles_with_holds;
    if (last_of_log) {
      stats.credited_total += Amount::from_money(Money::from_nanos(credited_nanos));
      stats.owed_total += Amount::from_money(balance.owed);
    }
  }
  if (invoiced_total != totals.rated_amount) {
    return Status::internal("the invoices total " + dollars(invoiced_total) + ", the rated usage " +
                            dollars(totals.rated_amount));
  }
  if (last_of_log) stats.rated_total += totals.rated_amount;
  return Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t cycles = 200, seed = 1, cycles_per_log = 25, max_kill_ms = 100;
  std::string base;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto number = [&]() -> std::uint64_t {
      if (i + 1 >= argc) std::exit(2);
      return std::strtoull(argv[++i], nullptr, 10);
    };
    if (arg == "--cycles") {
      cycles = number();
    } else if (arg == "--seed") {
      seed = number();
    } else if (arg == "--cycles-per-log") {
      cycles_per_log = std::max<std::uint64_t>(1, number());
    } else if (arg == "--max-kill-ms") {
      max_kill_ms = std::max<std::uint64_t>(1, number());
    } else if (arg == "--dir" && i + 1 < argc) {
      base = argv[++i];
    } else {
      std::fprintf(
          stderr,
          "usage: usage_log_crash [--cycles N] [--seed S] [--cycles-per-log K] [--max-kill-ms M] [--dir DIR]\n");
      return 2;
    }
  }
  bool made_base = base.empty();
  if (made_base) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/usage_log_crash_XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    base = pattern;
  }
  // A cut tail is expected here, every few cycles, and so are the billing
  // service's warnings about it.
  spdlog::set_level(spdlog::level::err);
  std::signal(SIGABRT, on_abort);

  std::mt19937_64 rng(seed);
  Stats stats;
  auto started = SteadyClock::now();
  std::string dir;
  std::vector<std::uint8_t> acked;   // acked[k]: some child acknowledged event k in this log
  std::vector<std::uint32_t> count;  // copies of event k in the log
  Credits credits;
  std::uint64_t frontier = 0;  // every k below it may have been sent
  LogPosition durable = 0;     // the largest durable end a child reported for this log
  for (std::uint64_t cycle = 0; cycle < cycles; ++cycle) {
    if (cycle % cycles_per_log == 0) {
      if (!dir.empty()) std::filesystem::remove_all(dir);
      dir = base + "/log-" + std::to_string(cycle / cycles_per_log);
      acked.clear();
      count.clear();
      credits = {};
      frontier = 0;
      durable = 0;
    }
    const bool last_of_log = cycle + 1 == cycles || (cycle + 1) % cycles_per_log == 0;
    auto failed = [&](const std::string& what) {
      return fail("cycle " + std::to_string(cycle) + " (seed " + std::to_string(seed) + "): " + what);
    };
    ChildPlan plan{.dir = dir,
                   .seed = mix(seed ^ (cycle * 0x100000001b3ULL)),
                   .event_frontier = frontier,
                   .credit_frontier = credits.frontier};
    for (std::uint64_t n = 0; n < credits.tried.size(); ++n) {
      if (credits.tried[n] && !credits.acked[n]) plan.credits_unacked.push_back(n);
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return fail("pipe");
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return fail("fork");
    if (pid == 0) {
      ::close(fds[0]);
      run_child(plan, fds[1]);
    }
    ::close(fds[1]);

    // Collect messages until the kill time, kill, then drain the pipe. Half
    // the kills count from the fork (they may land in the opens: the files'
    // creation, the replays, the cut of a tail, the price book's first
    // records), half from the ready message (they land in the writes and
    // syncs however long the replays took).
    auto delay = std::chrono::microseconds(rng() % (max_kill_ms * 1000 + 1));
    bool from_open = rng() % 2 == 0;
    auto kill_at = SteadyClock::now() + delay;
    std::vector<char> buffer;
    bool killed = false, eof = false, opened = false;
    while (!eof) {
      if (from_open && !opened && buffer.size() >= sizeof(Message)) {
        opened = true;
        kill_at = SteadyClock::now() + delay;
      }
      int timeout_ms = -1;
      if (from_open && !opened) {
        timeout_ms = 1000;  // waits for the child's first message (or its death)
      } else if (!killed) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - SteadyClock::now()).count();
        if (left <= 0) {
          ::kill(pid, SIGKILL);
          killed = true;
        } else {
          timeout_ms = static_cast<int>(left);
        }
      }
      pollfd p{fds[0], POLLIN, 0};
      int ready = ::poll(&p, 1, killed ? -1 : timeout_ms);
      if (ready < 0 && errno != EINTR) return fail("poll");
      if (ready <= 0) continue;
      char chunk[8192];
      ssize_t n = ::read(fds[0], chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof = true;
        break;
      }
      buffer.insert(buffer.end(), chunk, chunk + n);
    }
    ::close(fds[0]);
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return fail("waitpid");
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      return failed("the child ended by itself (status " + std::to_string(status) + "), not by the kill");
    }
    if (buffer.size() % sizeof(Message) != 0) return failed("a torn message in the pipe");
    std::size_t n_messages = buffer.size() / sizeof(Message);
    std::uint64_t event_acks = 0;
    for (std::size_t i = 0; i < n_messages; ++i) {
      Message m;
      std::memcpy(&m, buffer.data() + i * sizeof(Message), sizeof m);
      if ((i == 0) != (m.kind == kReady)) return failed("the ready message is not the first, or not alone");
      auto mark = [](std::vector<std::uint8_t>& v, std::uint64_t n) {
        if (n >= v.size()) v.resize(n + 1, 0);
        v[n] = 1;
      };
      switch (m.kind) {
        case kReady:
          break;
        case kEventAcked:
          mark(acked, m.n);
          durable = std::max(durable, m.durable_end);
          ++event_acks;
          ++stats.acks;
          break;
        case kCreditTried:
          mark(credits.tried, m.n);
          credits.acked.resize(credits.tried.size(), 0);
          credits.frontier = std::max(credits.frontier, m.n + 1);
          break;
        case kCreditAcked:
          if (m.n >= credits.tried.size() || !credits.tried[m.n]) return failed("a credit acknowledged, never tried");
          credits.acked[m.n] = 1;
          ++stats.credit_acks;
          break;
        default:
          return failed("an unknown message");
      }
    }
    if (n_messages == 0) ++stats.kills_in_open;
    if (event_acks == 0) ++stats.kills_before_ack;

    // A power loss, one cycle in four: only what no one saw durable may go.
    bool injected = false;
    if (rng() % 4 == 0 && std::filesystem::exists(dir + "/usage.log")) {
      auto rated_to = scan_journal(dir, stats);
      if (!rated_to) return failed("reading the journal: " + rated_to.status().to_string());
      if (*rated_to > durable) ++stats.garble_floor_from_journal;
      injected = power_loss(dir, std::max({durable, *rated_to, RecordLog::kFirstPosition}), rng, stats);
    }
    stats.injected += injected;

    // Check: each acknowledged event once, content intact, nothing twice.
    if (std::filesystem::exists(dir + "/usage.log"))
      stats.max_log_bytes =
          std::max<std::uint64_t>(stats.max_log_bytes, std::filesystem::file_size(dir + "/usage.log"));
    ReplayReport report;
    Charges charges;
    std::uint64_t quantity = 0, present = 0;
    if (Status s = replay_raw(dir, count, quantity, report, &charges); !s) return failed(s.to_string());
    if (report.tails_cut) (injected ? stats.injected_cuts : stats.natural_cuts) += 1;
    for (std::uint64_t k = 0; k < count.size(); ++k) {
      if (count[k] > 1) {
        return failed("event " + std::to_string(k) + " is in the log " + std::to_string(count[k]) + " times");
      }
      present += count[k];
    }
    for (std::uint64_t k = 0; k < acked.size(); ++k) {
      if (acked[k] && (k >= count.size() || count[k] != 1)) {
        return failed("acknowledged event " + std::to_string(k) + " is not in the log");
      }
    }
    {
      auto log = UsageLog::open({.dir = dir});
      if (!log) return failed("UsageLog::open: " + log.status().to_string());
      UsageTotals totals = (*log)->totals();
      if (totals.events != present || static_cast<std::uint64_t>(totals.quantity) != quantity) {
        return failed("UsageLog counts " + std::to_string(totals.events) + " events, the replay " +
                      std::to_string(present));
      }
      std::snprintf(g_abort_context, sizeof g_abort_context,
                    "usage_log_crash: aborted checking the billing service in cycle %llu (reproduce: --seed %llu "
                    "--cycles %llu --cycles-per-log %llu --max-kill-ms %llu)\n",
                    static_cast<unsigned long long>(cycle), static_cast<unsigned long long>(seed),
                    static_cast<unsigned long long>(cycle + 1), static_cast<unsigned long long>(cycles_per_log),
                    static_cast<unsigned long long>(max_kill_ms));
      Status s = check_billing(dir, **log, present, charges, credits, stats, last_of_log);
      g_abort_context[0] = '\0';
      if (!s) return failed(s.to_string());
    }
    if (last_of_log) {
      if (auto scanned = scan_journal(dir, stats); !scanned)
        return failed("reading the journal: " + scanned.status().to_string());
      for (int i = 0; i < 3; ++i) stats.journal_holds[i] += stats.last_journal_holds[i];
    }
    frontier = std::max<std::uint64_t>(frontier, count.size());
    frontier = std::max<std::uint64_t>(frontier, acked.size());
    stats.max_events = std::max(stats.max_events, present);
  }
  double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  if (made_base) std::filesystem::remove_all(base);
  std::printf(
      "usage_log_crash: %llu cycles in %.1f s (seed %llu): after each SIGKILL every acknowledged event present and "
      "rated exactly once, the ledger balanced, invoices = rated usage, every acknowledged credit credited once\n"
      "  %llu event acknowledgements; %llu kills in the opens, %llu before an event's acknowledgement; torn tails "
      "cut: %llu after a kill, %llu after %llu injected power losses (%llu garbled past the journal's rated end, "
      "not a child's durable end); largest log %.1f MiB, %llu events; largest journal %.1f MiB\n"
      "  %llu credit acknowledgements; tried-but-unacknowledged credits found credited in %llu tenant checks; "
      "credit checks exact %llu, bounded %llu; cycles ending with ten_0/1/2 owing: %llu/%llu/%llu, with a hold "
      "pending (tenant checks): %llu\n"
      "  at each log's end, summed: rated %s, credited %s, owed %s; holds journalled: %llu made, %llu posted, %llu "
      "voided\n",
      static_cast<unsigned long long>(cycles), seconds, static_cast<unsigned long long>(seed),
      static_cast<unsigned long long>(stats.acks), static_cast<unsigned long long>(stats.kills_in_open),
      static_cast<unsigned long long>(stats.kills_before_ack), static_cast<unsigned long long>(stats.natural_cuts),
      static_cast<unsigned long long>(stats.injected_cuts), static_cast<unsigned long long>(stats.injected),
      static_cast<unsigned long long>(stats.garble_floor_from_journal),
      static_cast<double>(stats.max_log_bytes) / (1 << 20), static_cast<unsigned long long>(stats.max_events),
      static_cast<double>(stats.max_journal_bytes) / (1 << 20), static_cast<unsigned long long>(stats.credit_acks),
      static_cast<unsigned long long>(stats.credits_found_unacked),
      static_cast<unsigned long long>(stats.credit_checks_exact),
      static_cast<unsigned long long>(stats.credit_checks_bounded),
      static_cast<unsigned long long>(stats.cycles_owing[0]), static_cast<unsigned long long>(stats.cycles_owing[1]),
      static_cast<unsigned long long>(stats.cycles_owing[2]), static_cast<unsigned long long>(stats.cycles_with_holds),
      dollars(stats.rated_total).c_str(), dollars(stats.credited_total).c_str(), dollars(stats.owed_total).c_str(),
      static_cast<unsigned long long>(stats.journal_holds[0]), static_cast<unsigned long long>(stats.journal_holds[1]),
      static_cast<unsigned long long>(stats.journal_holds[2]));
  return 0;
}
