#include "billing/billing_service.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>

#include "common/check.h"
#include "common/log.h"

namespace headroom::billing {
namespace {

using ledger::AccountId;
using ledger::AccountKind;
using ledger::Amount;
using ledger::Command;
using ledger::Outcome;
using ledger::transfer_id_of;
using ledger::TransferCode;
using ledger::TransferId;

constexpr std::uint8_t kCommandsRecord = 1;
constexpr std::uint8_t kConfigPriceRecord = 2;
constexpr std::uint8_t kRuntimePriceRecord = 3;
// A journal record of commands is cut when it reaches this, so that it fits
// one RecordLog record with room for the largest chain after it.
constexpr std::size_t kJournalCutBytes = limits::kRecordLogPayloadBytes - 4 * limits::kLedgerCommandBytesMax - 64;
constexpr int kRatingNice = 10;  // the rating thread's nice value (see rate_loop)
constexpr std::int64_t kExpireEveryMs = 10'000;  // how late a hold past its time may still show

template <typename T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian hosts only (checked in record_log.cpp)
  out.append(bytes, sizeof(T));
}

template <typename T>
bool take(std::string_view& in, T& value) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(&value, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}

bool take_text(std::string_view& in, std::string& text) {
  std::uint16_t n = 0;
  if (!take(in, n) || in.size() < n) return false;
  text.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

// One record for the versions added together: the book changes whole or not
// at all, even when a crash cuts the journal between records.
std::string encode_prices(std::uint8_t type, std::span<const ledger::PriceEntry> prices) {
  std::string out;
  put(out, type);
  put(out, static_cast<std::uint32_t>(prices.size()));
  for (const ledger::PriceEntry& p : prices) {
    put(out, static_cast<std::uint8_t>(p.product));
    put(out, p.effective_from.unix_micros);
    put(out, p.unit_price.nanos());
    put(out, static_cast<std::uint16_t>(p.item.size()));
    out += p.item;
    put(out, static_cast<std::uint16_t>(p.variant.size()));
    out += p.variant;
  }
  return out;
}

// The id of a transfer the service makes: what it is for (`kind`), the
// source's key, and which part of it. The key's length is spelled out, so
// that no two (kind, key, part) give the same text whatever the key holds.
TransferId derived_id(std::string_view kind, std::string_view key, std::string_view part = "") {
  std::string text;
  text.reserve(kind.size() + key.size() + part.size() + 8);
  text.append(kind).append(":").append(std::to_string(key.size())).append(":").append(key).append(":").append(part);
  return transfer_id_of(text);
}

// The reference a job's holds and charges share.
// What a hold is found by when its usage is charged: the job's id for GPU
// time, the request's (a completion id) for tokens. The two kinds of id
// never meet (job_..., cmpl_...).
ledger::Id128 job_reference(std::string_view job_id) { return derived_id("job", job_id); }

Money floor_money(Amount a) { return a.floor_money(); }

std::string dollars(Amount a) {
  std::string out = "$";  // appended, not "$" + ...: GCC 12's -Wrestrict misfires on the latter
  out += a.floor_money().to_string();
  return out;
}

}  // namespace

BillingService::BillingService(BillingOptions options, ledger::UsageLog& usage, const Clock& clock)
    : options_(std::move(options)),
      usage_(usage),
      clock_(clock),
      ledger_(ledger::LedgerOptions{.max_transfers = options_.max_transfers}) {}

Result<std::unique_ptr<BillingService>> BillingService::open(BillingOptions options, ledger::UsageLog& usage,
                                                             const Clock& clock) {
  std::unique_ptr<BillingService> service(new BillingService(std::move(options), usage, clock));
  BillingService& s = *service;
  HR_ASSIGN_OR_RETURN(s.journal_, ledger::RecordLog::open({s.options_.dir, "journal.log"},
                                                          [&s](ledger::LogPosition, std::string_view payload) {
                                                            return s.replay(payload);
                                                          }));
  if (const auto& r = s.journal_->replay_report(); r.tails_cut > 0) {
    spdlog::warn("ledger journal: cut {} bytes of an invalid tail: {}", r.bytes_cut, r.reason);
  }
  const Timestamp now = clock.now();
  {
    std::lock_guard lock(s.mu_);
    if (s.ledger_.account_count() == 0) {
      const Accounts& a = s.accounts_;
      const std::pair<AccountId, std::pair<AccountKind, const char*>> fixed[] = {
          {a.cash, {AccountKind::kFunding, "cash"}},
          {a.grants, {AccountKind::kFunding, "grants"}},
          {a.gpu_revenue, {AccountKind::kRevenue, "gpu_time"}},
          {a.token_revenue, {AccountKind::kRevenue, "tokens"}},
          {a.rounding, {AccountKind::kRounding, "rounding"}}};
      for (const auto& [id, what] : fixed) {
        Command c{now, ledger::CreateAccount{id, what.first, what.second, ledger::LimitRule::kNone, Amount()}};
        CHECK(ledger::succeeded(s.apply_chain(std::span(&c, 1))));
      }
    }
    HR_RETURN_IF_ERROR(s.bring_prices_up_to_date(now));
    HR_RETURN_IF_ERROR(s.journal_pending(0));
    HR_RETURN_IF_ERROR(s.rebuild_statements());
  }
  if (s.options_.rating_thread) s.thread_ = std::thread([&s] { s.rate_loop(); });
  return service;
}

BillingService::~BillingService() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  wait_rated();
}

// ---- Replay and the journal ---------------------------------------------------------

Status BillingService::replay(std::string_view payload) {
  std::uint8_t type = 0;
  if (!take(payload, type)) return Status::invalid_argument("ledger journal: an empty record");
  if (type == kConfigPriceRecord || type == kRuntimePriceRecord) {
    std::uint32_t count = 0;
    if (!take(payload, count)) return Status::invalid_argument("ledger journal: a malformed price record");
    for (std::uint32_t i = 0; i < count; ++i) {
      ledger::PriceEntry p;
      std::uint8_t product = 0;
      std::int64_t from = 0, nanos = 0;
      if (!take(payload, product) || !take(payload, from) || !take(payload, nanos) || !take_text(payload, p.item) ||
          !take_text(payload, p.variant) || product > 1) {
        return Status::invalid_argument("ledger journal: a malformed price record");
      }
      p.product = static_cast<ledger::Product>(product);
      p.effective_from = Timestamp{from};
      p.unit_price = Money::from_nanos(nanos);
      HR_RETURN_IF_ERROR(book_.set(p));
      if (type == kConfigPriceRecord) configured_[{p.product, p.item, p.variant}] = p.unit_price;
    }
    if (!payload.empty()) return Status::invalid_argument("ledger journal: a malformed price record");
    return Status::ok();
  }
  if (type != kCommandsRecord) return Status::invalid_argument("ledger journal: unknown record type " + std::to_string(type));
  std::uint64_t rated_to = 0;
  if (!take(payload, rated_to)) return Status::invalid_argument("ledger journal: a commands record cut short");
  HR_ASSIGN_OR_RETURN(std::vector<Command> commands, ledger::decode_commands(payload));
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < commands.size();) {
    std::size_t end = i;
    while (end < commands.size() && commands[end].link == ledger::Link::kWithNext) ++end;
    if (end == commands.size()) return Status::invalid_argument("ledger journal: a chain left open");
    apply_chain(std::span(commands).subspan(i, end + 1 - i));
    i = end + 1;
  }
  pending_.clear();  // replayed: already in the journal
  pending_count_ = 0;
  if (rated_to != 0) rated_to_ = rated_to;
  return Status::ok();
}

Outcome BillingService::apply_chain(std::span<const Command> chain) {
  Outcome results[8];
  CHECK(chain.size() <= std::size(results));
  ledger_.apply(chain, std::span(results, chain.size()));
  Outcome first_failure = Outcome::kOk;
  for (std::size_t i = 0; i < chain.size(); ++i) {
    ledger::encode_command(chain[i], pending_);
    ++pending_count_;
    // The cause, not the commands a failure took with it (kLinkedEventFailed):
    // a chain that voids a run's old hold and makes its new one that the
    // tenant cannot cover answers insufficient funds, not a conflict.
    if (!ledger::succeeded(results[i]) &&
        (first_failure == Outcome::kOk || first_failure == Outcome::kLinkedEventFailed)) {
      first_failure = results[i];
    }
  }
  const bool all_applied_before = std::all_of(results, results + chain.size(),
                                              [](Outcome o) { return o == Outcome::kAlreadyApplied; });
  // Keep the live hold of each job, and who may have run out of money. A
  // hold made in the chain that posts the job's hold (rating's, for the
  // rest) belongs to the same run; any other is a new run's.
  std::optional<std::pair<ledger::Id128, TransferId>> posted_run;
  for (std::size_t i = 0; i < chain.size(); ++i) {
    if (!ledger::succeeded(results[i])) continue;
    std::visit(
        [&](const auto& op) {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, ledger::CreateHold>) {
            if (!op.reference.is_zero()) {
              const bool rest = posted_run && posted_run->first == op.reference;
              holds_[op.reference] = LiveHold{op.id, rest ? posted_run->second : op.id};
            }
            note_spend(op.debit);
          } else if constexpr (std::is_same_v<T, ledger::PostHold> || std::is_same_v<T, ledger::VoidHold>) {
            const ledger::Transfer* hold = ledger_.transfer(op.hold);
            if (hold == nullptr) return;
            auto it = holds_.find(hold->reference);
            if (it != holds_.end() && it->second.hold == op.hold) {
              if constexpr (std::is_same_v<T, ledger::PostHold>) posted_run.emplace(it->first, it->second.run);
              holds_.erase(it);
            }
            note_spend(hold->debit);
          } else if constexpr (std::is_same_v<T, ledger::CreateTransfer>) {
            note_spend(op.debit);
            note_spend(op.credit);
          } else if constexpr (std::is_same_v<T, ledger::SetCreditLimit>) {
            note_spend(op.account);
          } else if constexpr (std::is_same_v<T, ledger::CreateAccount>) {
            note_spend(op.id);
          }
        },
        chain[i].op);
  }
  return first_failure != Outcome::kOk ? first_failure : all_applied_before ? Outcome::kAlreadyApplied : Outcome::kOk;
}

// A tenant is out of money once its balance and credit are spent (the
// ledger's spend_state) or it owes usage its balance could not pay: both stop
// new paid work and preempt its spot jobs.
bool BillingService::exhausted_locked(std::string_view tenant_id) const {
  auto tenant = ledger_.find_account(AccountKind::kTenant, tenant_id);
  if (!tenant) return !(options_.is_internal && options_.is_internal(tenant_id));  // its account comes with credit
  if (ledger_.spend_state(*tenant) == ledger::SpendState::kExhausted) return true;
  auto receivable = ledger_.find_account(AccountKind::kReceivable, tenant_id);
  if (!receivable) return false;
  const ledger::Account* r = ledger_.account(*receivable);
  return r->debits_posted > r->credits_posted;
}

void BillingService::note_spend(AccountId id) {
  const ledger::Account* a = ledger_.account(id);
  if (a == nullptr || (a->kind != AccountKind::kTenant && a->kind != AccountKind::kReceivable)) return;
  std::string_view tenant = ledger_.owner_of(id);
  const bool exhausted = exhausted_locked(tenant);
  auto it = exhausted_.find(tenant);
  if (exhausted && it == exhausted_.end()) {
    exhausted_.emplace(tenant);
    ++exhausted_generation_;
  } else if (!exhausted && it != exhausted_.end()) {
    exhausted_.erase(it);
    ++exhausted_generation_;
  }
}

Status BillingService::journal_pending(std::uint64_t rated_to, ledger::RecordLog::Wake wake) {
  if (pending_count_ == 0 && rated_to == 0) return Status::ok();
  std::string payload;
  payload.reserve(1 + 8 + 4 + pending_.size());
  put(payload, kCommandsRecord);
  put(payload, rated_to);
  put(payload, pending_count_);
  payload += pending_;
  pending_.clear();
  pending_count_ = 0;
  auto end = journal_->enqueue(payload, wake);
  if (!end) {
    // What is in memory is no longer what the journal says: refuse all
    // changes until a restart rebuilds the state from the journal.
    spdlog::error("ledger journal: {}; refusing changes until restart", end.status().message());
    failed_ = end.status();
    return end.status();
  }
  if (rated_to != 0) rated_to_ = rated_to;
  return Status::ok();
}

Status BillingService::bring_prices_up_to_date(Timestamp now) {
  // A new book takes the configured prices from the beginning of time; a
  // book with history takes a price the config changed from now on.
  const bool fresh = book_.size() == 0;
  std::vector<ledger::PriceEntry> added;
  for (ledger::PriceEntry p : options_.prices) {
    p.effective_from = fresh ? Timestamp{0} : now;
    Money& last = configured_[{p.product, p.item, p.variant}];
    if (!fresh && last == p.unit_price && book_.price_at(p.product, p.item, p.variant, now)) continue;
    HR_RETURN_IF_ERROR(book_.set(p));
    last = p.unit_price;
    added.push_back(std::move(p));
  }
  if (added.empty()) return Status::ok();
  const std::string record = encode_prices(kConfigPriceRecord, added);
  if (record.size() > limits::kRecordLogPayloadBytes) {
    return Status::invalid_argument("too many prices: " + std::to_string(added.size()) + " changed ones take " +
                                    std::to_string(record.size()) + " bytes, one journal record holds " +
                                    std::to_string(limits::kRecordLogPayloadBytes));
  }
  return journal_->enqueue(record).status();
}

Status BillingService::rebuild_statements() {
  ledger::LogPosition at = ledger::RecordLog::kFirstPosition;
  while (at < rated_to_) {
    HR_ASSIGN_OR_RETURN(ledger::LogPosition next,
                        usage_.read(at, options_.rate_batch, [&](ledger::LogPosition p, const ledger::UsageEvent& e) {
                          if (p >= rated_to_) return;
                          auto charge = ledger::rate(book_, e);
                          if (!charge) {
                            ++totals_.unrated_events;
                            return;
                          }
                          statements_.add(*charge);
                          latest_rated_start_ = std::max(latest_rated_start_, e.start);
                          ++totals_.rated_events;
                          totals_.rated_amount += charge->amount;
                        }));
    if (next == at) break;  // the usage log ends before rated_to: it lost its tail
    at = next;
  }
  const Amount revenue = revenue_locked();
  if (revenue != totals_.rated_amount) {
    spdlog::error("billing: revenue {} differs from the rated usage {} ({} events): the usage log and the ledger "
                  "journal disagree",
                  revenue.to_string(), totals_.rated_amount.to_string(), totals_.rated_events);
  }
  return Status::ok();
}

Amount BillingService::revenue_locked() const {
  return ledger_.account(accounts_.gpu_revenue)->credits_posted +
         ledger_.account(accounts_.token_revenue)->credits_posted;
}

// ---- Rating ---------------------------------------------------------------------------

void BillingService::rate_loop() {
  // Rating is catch-up work: acknowledging usage (the usage log's writers,
  // the HTTP threads) comes first when cores are scarce. Linux takes a
  // thread's nice value per thread; failing to set it only costs latency.
  pthread_setname_np(pthread_self(), "hr-rating");
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kRatingNice);
  auto next_expire = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(options_.rate_every_ms),
                     [&] { return stopping_ || !releases_.empty(); });
      if (stopping_) return;
      // Holds past their time are released by the next command; with no
      // usage coming, an Expire command is that command.
      if (ledger_.pending_holds() > 0 && std::chrono::steady_clock::now() >= next_expire && failed_.is_ok()) {
        next_expire = std::chrono::steady_clock::now() + std::chrono::milliseconds(kExpireEveryMs);
        Command expire{clock_.now(), ledger::Expire{}};
        apply_chain(std::span(&expire, 1));
        (void)journal_pending(0);
      }
    }
    std::lock_guard rater(rate_mu_);
    while (rate_some() == options_.rate_batch) {
    }
  }
}

std::size_t BillingService::rate_some() {
  std::vector<Release> releases;
  ledger::LogPosition from;
  {
    std::lock_guard lock(mu_);
    if (!failed_.is_ok()) return 0;
    releases.swap(releases_);
    from = rated_to_;
  }
  // Read outside the lock: the usage log is the slow part.
  std::vector<std::pair<ledger::LogPosition, ledger::UsageEvent>> events;
  auto next = usage_.read(from, options_.rate_batch, [&](ledger::LogPosition p, const ledger::UsageEvent& e) {
    events.emplace_back(p, e);
  });
  if (!next) {
    spdlog::error("billing: cannot read the usage log: {}", next.status().message());
    return 0;
  }
  if (events.empty() && releases.empty()) return 0;

  std::lock_guard lock(mu_);
  // The releases of runs whose hold is still the job's live one: a release
  // that a later run's hold_run overtook finds that run's hold, and leaves it.
  const auto live = [&](const Release& r) {
    auto it = holds_.find(r.reference);
    return it != holds_.end() && it->second.run == r.run;
  };
  std::erase_if(releases, [&](const Release& r) { return !live(r); });
  // The runs that ended before this pass: their holds are posted without
  // holding the rest again, since the release below would void it at once.
  // (A model request, two usage events, then takes three transfers, not six.)
  std::vector<ledger::Id128> ended;
  ended.reserve(releases.size());
  for (const Release& r : releases) ended.push_back(r.reference);
  std::sort(ended.begin(), ended.end());

  const Timestamp at = clock_.now();
  for (std::size_t i = 0; i < events.size(); ++i) {
    const ledger::UsageEvent& e = events[i].second;
    auto charge = ledger::rate(book_, e);
    if (!charge) {
      ++totals_.unrated_events;
      spdlog::error("billing: usage event {} is not charged: {}", e.id.substr(0, 64), charge.status().message());
    } else if (!this->charge(*charge, at, ended)) {
      // The ledger is full: this event and those after it stay unrated in
      // the usage log (nothing is lost), and money stops moving until an
      // operator makes room. A crash here would repeat at every restart.
      failed_ = Status::unavailable("the ledger holds its most transfers (" +
                                           std::to_string(ledger_.transfer_count()) +
                                           "); usage is kept in the usage log, unrated, and money changes are refused");
      spdlog::error("billing: {}", failed_.message());
      (void)journal_pending(events[i].first);
      return 0;
    } else {
      latest_rated_start_ = std::max(latest_rated_start_, e.start);
    }
    if (pending_.size() >= kJournalCutBytes) {
      const ledger::LogPosition after = i + 1 < events.size() ? events[i + 1].first : *next;
      if (!journal_pending(after)) return 0;
    }
  }
  // The runs that ended: their usage up to now is charged; release the rest.
  for (const Release& r : releases) {
    auto it = holds_.find(r.reference);
    if (it == holds_.end() || it->second.run != r.run) continue;  // posted in full above
    const TransferId live_hold = it->second.hold;
    const ledger::Transfer* hold = ledger_.transfer(live_hold);
    if (hold == nullptr || hold->state != ledger::HoldState::kPending || !(at < hold->expires_at)) continue;
    Command release{at, ledger::VoidHold{derived_id("void", live_hold.to_string()), live_hold}};
    apply_chain(std::span(&release, 1));
    if (pending_.size() >= kJournalCutBytes && !journal_pending(0)) return 0;
  }
  // Rating needs no sync of its own: should the tail of the journal be lost,
  // a restart rates those events again from the usage log. So the journal's
  // writer is woken for it at most every rate_every_ms, not once a pass
  // (a pass per request would cost a disk sync per request).
  const auto now = std::chrono::steady_clock::now();
  ledger::RecordLog::Wake wake = ledger::RecordLog::Wake::kLater;
  if (now - last_rating_sync_ >= std::chrono::milliseconds(options_.rate_every_ms)) {
    wake = ledger::RecordLog::Wake::kNow;
    last_rating_sync_ = now;
  }
  if (!journal_pending(*next, wake)) return 0;
  return events.size();
}

// The commands that charge one rated event: from the run's hold first, then
// the tenant's balance and credit, and the rest to its receivable account.
// A run in `ended` (sorted) has its hold's rest released rather than held
// again: any later event of it is charged from the balance, which that rest
// went back to, so the charges are the same. False, with nothing charged,
// when the ledger is full.
bool BillingService::charge(const ledger::RatedCharge& c, Timestamp at, std::span<const ledger::Id128> ended) {
  const AccountId revenue = c.product == ledger::Product::kGpuTime ? accounts_.gpu_revenue : accounts_.token_revenue;
  const AccountId tenant = tenant_account(c.tenant_id, at);
  if (tenant == 0) {
    ++totals_.unrated_events;
    spdlog::error("billing: usage event {} is not charged: its tenant id cannot own an account", c.event_id.substr(0, 64));
    return true;
  }
  const ledger::Id128 reference = c.source_id.empty() ? ledger::Id128{} : job_reference(c.source_id);
  std::vector<Command> chain;
  chain.reserve(4);
  Amount remaining = c.amount;
  auto next_id = [&](std::string_view part) { return derived_id("usage", c.event_id, chain.empty() ? "" : part); };

  if (auto it = holds_.find(reference); !reference.is_zero() && it != holds_.end()) {
    const ledger::Transfer* hold = ledger_.transfer(it->second.hold);
    const Timestamp now = std::max(at, ledger_.now());
    if (hold != nullptr && hold->state == ledger::HoldState::kPending && now < hold->expires_at) {
      const Amount posted = std::min(remaining, hold->amount);
      chain.push_back(Command{at, ledger::PostHold{next_id(""), hold->id, posted}, ledger::Link::kWithNext});
      const Amount rest = hold->amount - posted;
      if (rest > Amount() && !std::binary_search(ended.begin(), ended.end(), reference)) {
        const std::int64_t left_ms = std::max<std::int64_t>(1, (hold->expires_at.unix_micros - now.unix_micros) / 1000);
        chain.push_back(Command{at,
                                ledger::CreateHold{derived_id("usage", c.event_id, "hold"), tenant, revenue, rest, TransferCode::kUsage,
                                                   reference, left_ms},
                                ledger::Link::kWithNext});
      }
      remaining -= posted;
    }
  }
  if (remaining > Amount() || chain.empty()) {
    // What the tenant can still pay: a hold posted and made again for the
    // rest leaves its available amount as it was.
    const Amount available = std::max(Amount(), ledger_.account(tenant)->available());
    const Amount paid = std::min(remaining, available);
    if (paid > Amount() || remaining == Amount()) {
      chain.push_back(Command{at, ledger::CreateTransfer{next_id("paid"), tenant, revenue, paid, TransferCode::kUsage,
                                                         reference},
                              ledger::Link::kWithNext});
    }
    if (const Amount owed = remaining - paid; owed > Amount()) {
      chain.push_back(Command{at,
                              ledger::CreateTransfer{next_id("owed"), receivable_account(c.tenant_id, at), revenue,
                                                     owed, TransferCode::kUsage, reference},
                              ledger::Link::kWithNext});
    }
  }
  chain.back().link = ledger::Link::kNone;
  Outcome outcome = apply_chain(chain);
  if (outcome == Outcome::kFull) return false;
  if (!ledger::succeeded(outcome)) {
    // A bug in the arithmetic above, or a hold that changed under us: the
    // usage is still charged, all of it to what the tenant owes.
    spdlog::error("billing: charging usage event {} failed ({}); charged to its receivable account instead",
                  c.event_id.substr(0, 64), ledger::outcome_name(outcome));
    Command fallback{at, ledger::CreateTransfer{derived_id("usage", c.event_id, "fallback"),
                                                receivable_account(c.tenant_id, at), revenue, c.amount,
                                                TransferCode::kUsage, reference}};
    outcome = apply_chain(std::span(&fallback, 1));
    if (outcome == Outcome::kFull) return false;
    CHECK(ledger::succeeded(outcome)) << "usage event " << c.event_id << ": " << ledger::outcome_name(outcome);
  }
  statements_.add(c);
  ++totals_.rated_events;
  totals_.rated_amount += c.amount;
  return true;
}

AccountId BillingService::tenant_account(std::string_view tenant_id, Timestamp at) {
  if (auto id = ledger_.find_account(AccountKind::kTenant, tenant_id)) return *id;
  if (tenant_id.empty() || tenant_id.size() > limits::kLedgerOwnerBytes) return 0;
  const AccountId id = ledger_.account_count() + 1;
  const bool internal = options_.is_internal && options_.is_internal(tenant_id);
  Command c{at, ledger::CreateAccount{id, AccountKind::kTenant, std::string(tenant_id),
                                      ledger::LimitRule::kDebitsWithinCredits,
                                      internal ? ledger::kTransferAmountMax : Amount()}};
  CHECK(ledger::succeeded(apply_chain(std::span(&c, 1))));
  return id;
}

AccountId BillingService::receivable_account(std::string_view tenant_id, Timestamp at) {
  if (auto id = ledger_.find_account(AccountKind::kReceivable, tenant_id)) return *id;
  const AccountId id = ledger_.account_count() + 1;
  Command c{at, ledger::CreateAccount{id, AccountKind::kReceivable, std::string(tenant_id), ledger::LimitRule::kNone,
                                      Amount()}};
  CHECK(ledger::succeeded(apply_chain(std::span(&c, 1))));
  return id;
}

void BillingService::wait_rated() {
  const ledger::LogPosition target = usage_.durable_end();
  std::lock_guard rater(rate_mu_);
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (rated_to_ >= target || !failed_.is_ok()) return;
    }
    if (rate_some() == 0) {
      std::lock_guard lock(mu_);
      if (rated_to_ < target) spdlog::error("billing: cannot rate the usage log past {}", rated_to_);
      return;
    }
  }
}

// ---- Prices ---------------------------------------------------------------------------

Status BillingService::quote(std::span<ledger::UsageEvent> events, std::vector<Amount>& costs) const {
  costs.clear();
  costs.reserve(events.size());
  // Not under mu_ (see book_mu_): ingestion never waits for the rating thread.
  std::shared_lock book_lock(book_mu_);
  for (std::size_t i = 0; i < events.size(); ++i) {
    ledger::UsageEvent& e = events[i];
    auto bad = [&](std::string why) {
      return Status::invalid_argument("events[" + std::to_string(i) + "]: " + std::move(why));
    };
    if (Status valid = ledger::validate_usage_event(e); !valid) return bad(valid.message());
    if (e.tenant_id.size() > limits::kLedgerOwnerBytes) {
      return bad("a tenant id is at most " + std::to_string(limits::kLedgerOwnerBytes) + " bytes");
    }
    auto price = book_.price_at(e.product, e.item, e.variant, e.start);
    if (!price) {
      return bad("no price for " + std::string(ledger::product_name(e.product)) + " " + e.item.substr(0, 64) + " " +
                 e.variant.substr(0, 64));
    }
    if (e.unit_price == Money()) e.unit_price = *price;  // none given: the book's
    costs.push_back(ledger::exact_cost(e.product, e.quantity, *price));
  }
  return Status::ok();
}

// ---- The catalog -------------------------------------------------------------------

Timestamp BillingService::earliest_price_change() const {
  std::lock_guard lock(mu_);
  return std::max(clock_.now(), latest_rated_start_.plus_micros(1));
}

Status BillingService::set_prices(std::span<ledger::PriceEntry> prices) {
  if (prices.empty()) return Status::invalid_argument("prices: at least one is needed");
  if (prices.size() > limits::kCatalogVersionsPerChange) {
    return Status::invalid_argument("prices: at most " + std::to_string(limits::kCatalogVersionsPerChange) +
                                    " in one change");
  }
  {
    std::lock_guard lock(mu_);
    if (!failed_.is_ok()) return failed_;
    const Timestamp earliest = std::max(clock_.now(), latest_rated_start_.plus_micros(1));
    std::set<std::tuple<ledger::Product, std::string_view, std::string_view, Timestamp>> keys;
    for (std::size_t i = 0; i < prices.size(); ++i) {
      ledger::PriceEntry& p = prices[i];
      auto bad = [&](const Status& why) { return why.with_context("prices[" + std::to_string(i) + "]: "); };
      if (p.effective_from == Timestamp{}) p.effective_from = earliest;
      if (p.effective_from < earliest) {
        return bad(Status::invalid_argument("effective_from " + to_rfc3339(p.effective_from) +
                                            " is past: a price may change from " + to_rfc3339(earliest) + " on"));
      }
      if (Status valid = book_.check(p); !valid) return bad(valid);
      if (!keys.emplace(p.product, p.item, p.variant, p.effective_from).second) {
        return bad(Status::invalid_argument("the same price and effective_from twice in one change"));
      }
    }
    const std::string record = encode_prices(kRuntimePriceRecord, prices);
    if (record.size() > limits::kRecordLogPayloadBytes) {
      return Status::invalid_argument("prices: too many in one change for one journal record");
    }
    {
      std::unique_lock book_lock(book_mu_);
      for (const ledger::PriceEntry& p : prices) CHECK(book_.set(p).is_ok());
    }
    HR_RETURN_IF_ERROR(journal_->enqueue(record).status());
  }
  return journal_->wait_durable(journal_->end());
}

BillingService::PriceList BillingService::prices_at(Timestamp at) const {
  std::shared_lock book_lock(book_mu_);
  PriceList out;
  book_.for_each_at(at, [&](const ledger::PriceEntry& p, bool scheduled) {
    (scheduled ? out.scheduled : out.in_force).push_back(p);
  });
  return out;
}

std::vector<ledger::PriceEntry> BillingService::price_history(ledger::Product product, std::string_view item,
                                                              std::string_view variant, Timestamp from,
                                                              Timestamp to) const {
  std::shared_lock book_lock(book_mu_);
  return book_.history(product, item, variant, from, to);
}

Result<Money> BillingService::price_at(ledger::Product product, std::string_view item, std::string_view variant,
                                       Timestamp at) const {
  std::shared_lock book_lock(book_mu_);
  return book_.price_at(product, item, variant, at);
}

// ---- Credits and terms --------------------------------------------------------------

Result<Credit> BillingService::add_credits(const CreditRequest& r) {
  if (r.amount <= Money()) return Status::invalid_argument("amount must be more than 0.00");
  if (Amount::from_money(r.amount) > ledger::kTransferAmountMax) {
    return Status::invalid_argument("amount may be at most " + ledger::kTransferAmountMax.floor_money().to_string());
  }
  if (r.idempotency_key.empty()) return Status::invalid_argument("a credit needs an idempotency key");
  Credit credit;
  credit.id = derived_id("credit", r.tenant_id, r.idempotency_key);
  {
    std::lock_guard lock(mu_);
    HR_RETURN_IF_ERROR(failed_);
    const Timestamp at = clock_.now();
    const AccountId tenant = tenant_account(r.tenant_id, at);
    if (tenant == 0) return Status::invalid_argument("tenant id too long");
    const bool grant = r.kind == CreditKind::kGrant;
    Command c{at, ledger::CreateTransfer{credit.id, grant ? accounts_.grants : accounts_.cash, tenant,
                                         Amount::from_money(r.amount),
                                         grant ? TransferCode::kGrant : TransferCode::kDeposit, ledger::Id128{}}};
    const Outcome outcome = apply_chain(std::span(&c, 1));
    HR_RETURN_IF_ERROR(journal_pending(0));  // failed commands too: a replay must see what we saw
    if (outcome == Outcome::kIdConflict) {
      return Status::conflict("Idempotency-Key " + r.idempotency_key.substr(0, 64) +
                              " was used for another credit to this tenant");
    }
    if (!ledger::succeeded(outcome)) return ledger::status_of(outcome, "the credit was refused");
    credit.replayed = outcome == Outcome::kAlreadyApplied;
    credit.at = ledger_.transfer(credit.id)->at;
    if (!credit.replayed) {
      // New money pays what the tenant owes first.
      if (auto receivable = ledger_.find_account(AccountKind::kReceivable, r.tenant_id)) {
        const ledger::Account* owed = ledger_.account(*receivable);
        const Amount pay = std::min(owed->debits_posted - owed->credits_posted,
                                    std::max(Amount(), ledger_.account(tenant)->available()));
        if (pay > Amount()) {
          Command settle{at, ledger::CreateTransfer{derived_id("settle", credit.id.to_string()), tenant, *receivable,
                                                    pay, TransferCode::kUsage, ledger::Id128{}}};
          CHECK(ledger::succeeded(apply_chain(std::span(&settle, 1))));
        }
      }
      HR_RETURN_IF_ERROR(journal_pending(0));
    }
  }
  HR_RETURN_IF_ERROR(journal_->wait_durable(journal_->end()));
  return credit;
}

Status BillingService::set_terms(std::string_view tenant_id, std::optional<Money> credit_limit,
                                 std::optional<Money> monthly_budget) {
  if (credit_limit && *credit_limit < Money()) return Status::invalid_argument("credit_limit may not be negative");
  if (monthly_budget && *monthly_budget < Money()) return Status::invalid_argument("monthly_budget may not be negative");
  if (credit_limit && Amount::from_money(*credit_limit) > ledger::kTransferAmountMax) {
    return Status::invalid_argument("credit_limit may be at most " + ledger::kTransferAmountMax.floor_money().to_string());
  }
  {
    std::lock_guard lock(mu_);
    HR_RETURN_IF_ERROR(failed_);
    const Timestamp at = clock_.now();
    const AccountId tenant = tenant_account(tenant_id, at);
    if (tenant == 0) return Status::invalid_argument("tenant id too long");
    std::vector<Command> chain;
    if (credit_limit) chain.push_back(Command{at, ledger::SetCreditLimit{tenant, Amount::from_money(*credit_limit)}});
    if (monthly_budget) chain.push_back(Command{at, ledger::SetBudget{tenant, *monthly_budget}});
    if (!chain.empty()) {
      for (std::size_t i = 0; i + 1 < chain.size(); ++i) chain[i].link = ledger::Link::kWithNext;
      const Outcome outcome = apply_chain(chain);
      HR_RETURN_IF_ERROR(journal_pending(0));
      if (outcome == Outcome::kLimitBelowUse) {
        const ledger::Account* a = ledger_.account(tenant);
        return Status::conflict("the credit limit may not be below what the tenant already uses of it (" +
                                dollars(a->debits_posted + a->debits_pending - a->credits_posted) + ")");
      }
      HR_RETURN_IF_ERROR(ledger::status_of(outcome, "the terms were refused"));
    } else {
      HR_RETURN_IF_ERROR(journal_pending(0));
    }
  }
  return journal_->wait_durable(journal_->end());
}

// ---- Reading ----------------------------------------------------------------------------

Balance BillingService::balance(std::string_view tenant_id) const {
  std::lock_guard lock(mu_);
  return balance_locked(tenant_id, clock_.now());
}

Balance BillingService::balance_locked(std::string_view tenant_id, Timestamp now) const {
  Balance b;
  b.tenant_id = std::string(tenant_id);
  b.month = ledger::utc_month_of(now);
  if (auto r = ledger_.find_account(AccountKind::kReceivable, tenant_id)) {
    const ledger::Account* a = ledger_.account(*r);
    b.owed = floor_money(a->debits_posted - a->credits_posted);
  }
  auto id = ledger_.find_account(AccountKind::kTenant, tenant_id);
  if (!id) return b;
  const ledger::Account* a = ledger_.account(*id);
  b.balance = floor_money(a->balance());
  b.held = floor_money(a->debits_pending);
  b.credit_limit = floor_money(a->credit_limit);
  b.available = floor_money(a->available());
  b.state = exhausted_locked(tenant_id) ? ledger::SpendState::kExhausted : ledger::SpendState::kOk;
  b.month_spend = floor_money(ledger_.month_spend(*id, now));
  b.monthly_budget = a->monthly_budget;
  b.alerts = ledger_.alerts(*id);
  return b;
}

UsageReport BillingService::usage(std::string_view tenant_id, Timestamp from, Timestamp to, GroupBy group_by) const {
  std::lock_guard lock(mu_);
  return statements_.usage(tenant_id, from, to, group_by);
}

std::vector<ChargeSummary> BillingService::summary(Timestamp from, Timestamp to, std::int64_t bucket_us) const {
  std::lock_guard lock(mu_);
  return statements_.summary(from, to, bucket_us);
}

std::vector<std::int32_t> BillingService::invoice_months(std::string_view tenant_id) const {
  std::lock_guard lock(mu_);
  return statements_.months(tenant_id);
}

Result<ledger::Invoice> BillingService::invoice(std::string_view tenant_id, std::int32_t month) const {
  std::vector<ledger::RatedCharge> charges;
  {
    std::lock_guard lock(mu_);
    charges = statements_.charges(tenant_id, month);
  }
  if (charges.empty()) return Status::not_found("no invoice for " + std::to_string(month));
  HR_ASSIGN_OR_RETURN(ledger::Invoice invoice, ledger::make_invoice(tenant_id, month, charges));
  HR_RETURN_IF_ERROR(ledger::reconcile(invoice, charges));
  return invoice;
}

BillingTotals BillingService::totals() const {
  std::lock_guard lock(mu_);
  BillingTotals t = totals_;
  t.revenue = revenue_locked();
  t.transfers = ledger_.transfer_count();
  return t;
}

void BillingService::verify() const {
  std::lock_guard lock(mu_);
  ledger_.verify();
  CHECK(revenue_locked() == totals_.rated_amount)
      << "revenue " << revenue_locked().to_string() << " != rated usage " << totals_.rated_amount.to_string();
  CHECK(statements_.total() == totals_.rated_amount);
  CHECK(statements_.count() == totals_.rated_events);
}

std::uint64_t BillingService::fingerprint() const {
  std::lock_guard lock(mu_);
  return ledger_.fingerprint();
}

// ---- Wallet -----------------------------------------------------------------------------

Status BillingService::admit(std::string_view tenant_id) {
  std::lock_guard lock(mu_);
  if (!exhausted_locked(tenant_id)) return Status::ok();
  const Balance b = balance_locked(tenant_id, clock_.now());
  return Status::insufficient_funds("tenant " + std::string(tenant_id) + " has spent its balance and credit (balance $" +
                                    b.balance.to_string() + ", credit limit $" + b.credit_limit.to_string() +
                                    ", owed $" + b.owed.to_string() + "): add credits with POST /v1/tenants/" +
                                    std::string(tenant_id) + "/credits");
}

Status BillingService::hold_run(std::string_view tenant_id, std::string_view job_id, std::string_view run_key,
                                Money per_gpu_hour, std::uint32_t gpus, std::int64_t window_ms,
                                std::int64_t timeout_ms, Timestamp now) {
  const std::int64_t quantity =
      std::clamp<std::int64_t>(window_ms, 0, limits::kRatingQuantityMax / std::max<std::uint32_t>(gpus, 1)) * gpus;
  const Amount amount = ledger::exact_cost(ledger::Product::kGpuTime, quantity, per_gpu_hour);
  if (amount == Amount()) return Status::ok();  // free work holds nothing
  std::lock_guard lock(mu_);
  HR_RETURN_IF_ERROR(failed_);
  const AccountId tenant = tenant_account(tenant_id, now);
  if (tenant == 0) return Status::invalid_argument("tenant id too long");
  const ledger::Id128 reference = job_reference(job_id);
  const TransferId id = derived_id("hold", run_key);
  std::vector<Command> chain;
  if (auto it = holds_.find(reference); it != holds_.end() && it->second.run != id) {  // a previous run's
    const ledger::Transfer* old = ledger_.transfer(it->second.hold);
    if (old != nullptr && old->state == ledger::HoldState::kPending && std::max(now, ledger_.now()) < old->expires_at) {
      chain.push_back(Command{now, ledger::VoidHold{derived_id("void", it->second.hold.to_string()), it->second.hold},
                              ledger::Link::kWithNext});
    }
  }
  chain.push_back(Command{now, ledger::CreateHold{id, tenant,
                                                  accounts_.gpu_revenue, amount, TransferCode::kUsage, reference,
                                                  std::clamp<std::int64_t>(timeout_ms, 1,
                                                                           limits::kLedgerHoldTimeoutMsMax)}});
  const Outcome outcome = apply_chain(chain);
  (void)journal_pending(0);  // not waited for: see the header
  if (outcome == Outcome::kInsufficientFunds) {
    const ledger::Account* a = ledger_.account(tenant);
    return Status::insufficient_funds("tenant " + std::string(tenant_id) + " cannot cover this run's hold of " +
                                      dollars(amount) + " (" + std::to_string(gpus) + " GPUs at $" +
                                      per_gpu_hour.to_string() + " per GPU-hour for " +
                                      std::to_string(window_ms / 1000) + " s); it has " + dollars(a->available()) +
                                      " available");
  }
  return ledger::status_of(outcome, "the run's hold was refused");
}

Status BillingService::hold_request(std::string_view tenant_id, std::string_view request_id, Money input_price,
                                    std::int64_t input_tokens, Money output_price, std::int64_t output_tokens,
                                    std::int64_t timeout_ms, Timestamp now) {
  const auto clamp = [](std::int64_t tokens) { return std::clamp<std::int64_t>(tokens, 0, limits::kRatingQuantityMax); };
  const Amount amount = ledger::exact_cost(ledger::Product::kTokens, clamp(input_tokens), input_price) +
                        ledger::exact_cost(ledger::Product::kTokens, clamp(output_tokens), output_price);
  if (amount == Amount()) return Status::ok();  // a free model holds nothing
  std::lock_guard lock(mu_);
  HR_RETURN_IF_ERROR(failed_);
  const AccountId tenant = tenant_account(tenant_id, now);
  if (tenant == 0) return Status::invalid_argument("tenant id too long");
  const Command hold{now, ledger::CreateHold{derived_id("hold", request_id), tenant, accounts_.token_revenue, amount,
                                             TransferCode::kUsage, job_reference(request_id),
                                             std::clamp<std::int64_t>(timeout_ms, 1, limits::kLedgerHoldTimeoutMsMax)}};
  const Outcome outcome = apply_chain(std::span(&hold, 1));
  // Not waited for, as a run's hold, nor worth a sync of its own: a hold
  // lost in a crash reserved money for a request that died with it. It
  // goes to disk with the next record that wakes the journal (rating's).
  (void)journal_pending(0, ledger::RecordLog::Wake::kLater);
  if (outcome == Outcome::kInsufficientFunds) {
    const ledger::Account* a = ledger_.account(tenant);
    return Status::insufficient_funds("tenant " + std::string(tenant_id) + " cannot cover this request's hold of " +
                                      dollars(amount) + " (its prompt and max_tokens); it has " +
                                      dollars(a->available()) + " available: add credits with POST /v1/tenants/" +
                                      std::string(tenant_id) + "/credits");
  }
  return ledger::status_of(outcome, "the request's hold was refused");
}

void BillingService::release_run(std::string_view job_id, std::string_view run_key) {
  const Release release{job_reference(job_id), derived_id("hold", run_key)};
  {
    std::lock_guard lock(mu_);
    releases_.push_back(release);
    // Only the first release since the rater last took them wakes it: the
    // rest go with that pass (a wake per request costs more than rating it).
    if (releases_.size() > 1) return;
  }
  wake_.notify_all();
}

std::uint64_t BillingService::exhausted_generation() const {
  std::lock_guard lock(mu_);
  return exhausted_generation_;
}

std::vector<std::string> BillingService::exhausted_tenants() const {
  std::lock_guard lock(mu_);
  return {exhausted_.begin(), exhausted_.end()};
}

}  // namespace headroom::billing
