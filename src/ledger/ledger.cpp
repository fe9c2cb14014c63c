#include "ledger/ledger.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <deque>
#include <limits>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "common/check.h"
#include "common/crypto.h"

namespace headroom::ledger {

// ---- Amount, ids, names -----------------------------------------------------------

namespace {

__extension__ typedef unsigned __int128 AmountBits;

// Floor division of a 128-bit value by a positive divisor.
AmountUnits floor_div(AmountUnits value, AmountUnits divisor) {
  AmountUnits q = value / divisor;
  if (value % divisor != 0 && value < 0) --q;
  return q;
}

std::string u128_to_string(AmountBits value) {
  if (value == 0) return "0";
  std::string digits;
  while (value > 0) {
    digits.push_back(static_cast<char>('0' + static_cast<int>(value % 10)));
    value /= 10;
  }
  std::reverse(digits.begin(), digits.end());
  return digits;
}

}  // namespace

Money Amount::floor_money() const {
  AmountUnits nanos = floor_div(units_, kUnitsPerNano);
  CHECK(nanos >= std::numeric_limits<std::int64_t>::min() && nanos <= std::numeric_limits<std::int64_t>::max())
      << "an amount past Money's range";
  return Money::from_nanos(static_cast<std::int64_t>(nanos));
}

std::string Amount::to_string() const {
  bool negative = units_ < 0;
  AmountBits magnitude = negative ? 0 - static_cast<AmountBits>(units_) : static_cast<AmountBits>(units_);
  AmountBits nanos = magnitude / kUnitsPerNano;
  auto rest = static_cast<std::uint64_t>(magnitude % kUnitsPerNano);
  std::string fraction = std::to_string(static_cast<std::uint64_t>(nanos % Money::kNanosPerDollar));
  fraction.insert(0, Money::kMaxDecimals - fraction.size(), '0');
  std::string out = negative ? "-" : "";
  out += u128_to_string(nanos / Money::kNanosPerDollar);
  out += '.';
  out += fraction;
  if (rest != 0) out += "+" + std::to_string(rest) + "/" + std::to_string(kUnitsPerNano);
  return out;
}

std::string Id128::to_string() const {
  std::uint8_t bytes[16];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<std::uint8_t>(hi >> (56 - 8 * i));
    bytes[8 + i] = static_cast<std::uint8_t>(lo >> (56 - 8 * i));
  }
  return to_hex(bytes);
}

TransferId transfer_id_of(std::string_view key) {
  std::string input = "headroom-ledger:";
  input += key;
  Sha256Digest digest = sha256(input);
  TransferId id;
  for (int i = 0; i < 8; ++i) {
    id.hi = (id.hi << 8) | digest[i];
    id.lo = (id.lo << 8) | digest[8 + i];
  }
  if (id.is_zero()) id.lo = 1;  // 2^-128: but an id is never zero
  return id;
}

std::string_view account_kind_name(AccountKind kind) {
  switch (kind) {
    case AccountKind::kTenant:
      return "tenant";
    case AccountKind::kRevenue:
      return "revenue";
    case AccountKind::kFunding:
      return "funding";
    case AccountKind::kReceivable:
      return "receivable";
    case AccountKind::kRounding:
      return "rounding";
  }
  return "?";
}

std::string_view transfer_code_name(TransferCode code) {
  switch (code) {
    case TransferCode::kDeposit:
      return "deposit";
    case TransferCode::kGrant:
      return "grant";
    case TransferCode::kUsage:
      return "usage";
    case TransferCode::kRefund:
      return "refund";
    case TransferCode::kAdjustment:
      return "adjustment";
    case TransferCode::kRounding:
      return "rounding";
  }
  return "?";
}

std::string_view transfer_kind_name(TransferKind kind) {
  switch (kind) {
    case TransferKind::kPosted:
      return "posted";
    case TransferKind::kHold:
      return "hold";
    case TransferKind::kPost:
      return "post";
    case TransferKind::kVoid:
      return "void";
    case TransferKind::kReversal:
      return "reversal";
  }
  return "?";
}

std::string_view outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kAlreadyApplied:
      return "already_applied";
    case Outcome::kLinkedEventFailed:
      return "linked_event_failed";
    case Outcome::kLinkedChainOpen:
      return "linked_chain_open";
    case Outcome::kInvalid:
      return "invalid";
    case Outcome::kIdConflict:
      return "id_conflict";
    case Outcome::kOwnerTaken:
      return "owner_taken";
    case Outcome::kAccountNotFound:
      return "account_not_found";
    case Outcome::kInsufficientFunds:
      return "insufficient_funds";
    case Outcome::kHoldNotFound:
      return "hold_not_found";
    case Outcome::kNotAHold:
      return "not_a_hold";
    case Outcome::kHoldAlreadyPosted:
      return "hold_already_posted";
    case Outcome::kHoldAlreadyVoided:
      return "hold_already_voided";
    case Outcome::kHoldExpired:
      return "hold_expired";
    case Outcome::kExceedsHold:
      return "exceeds_hold";
    case Outcome::kTransferNotFound:
      return "transfer_not_found";
    case Outcome::kNotReversible:
      return "not_reversible";
    case Outcome::kAlreadyReversed:
      return "already_reversed";
    case Outcome::kExceedsRemaining:
      return "exceeds_remaining";
    case Outcome::kLimitBelowUse:
      return "limit_below_use";
    case Outcome::kWrongAccountKind:
      return "wrong_account_kind";
    case Outcome::kFull:
      return "full";
  }
  return "?";
}

Status status_of(Outcome outcome, std::string detail) {
  switch (outcome) {
    case Outcome::kOk:
    case Outcome::kAlreadyApplied:
      return Status::ok();
    case Outcome::kInvalid:
    case Outcome::kWrongAccountKind:
    case Outcome::kExceedsHold:
    case Outcome::kExceedsRemaining:
      return Status::invalid_argument(std::move(detail));
    case Outcome::kAccountNotFound:
    case Outcome::kHoldNotFound:
    case Outcome::kTransferNotFound:
      return Status::not_found(std::move(detail));
    case Outcome::kOwnerTaken:
      return Status::already_exists(std::move(detail));
    case Outcome::kInsufficientFunds:
      return Status::insufficient_funds(std::move(detail));
    case Outcome::kFull:
      return Status::unavailable(std::move(detail) +
                                 ": the ledger holds its most transfers, and money changes are refused until an "
                                 "operator makes room");
    case Outcome::kLinkedEventFailed:
    case Outcome::kLinkedChainOpen:
    case Outcome::kIdConflict:
    case Outcome::kNotAHold:
    case Outcome::kHoldAlreadyPosted:
    case Outcome::kHoldAlreadyVoided:
    case Outcome::kHoldExpired:
    case Outcome::kNotReversible:
    case Outcome::kAlreadyReversed:
    case Outcome::kLimitBelowUse:
      return Status::conflict(std::move(detail));
  }
  return Status::internal(std::move(detail));
}

std::int32_t utc_month_of(Timestamp t) {
  using namespace std::chrono;
  auto day = floor<days>(sys_time<microseconds>(microseconds(t.unix_micros)));
  year_month_day ymd{day};
  return static_cast<std::int32_t>(static_cast<int>(ymd.year()) * 100 + static_cast<int>(unsigned(ymd.month())));
}

Timestamp utc_month_start(std::int32_t yyyymm) {
  using namespace std::chrono;
  year_month_day ymd{year(yyyymm / 100), month(static_cast<unsigned>(yyyymm % 100)), day(1)};
  auto since_epoch = sys_days(ymd).time_since_epoch();
  return Timestamp{duration_cast<microseconds>(since_epoch).count()};
}

// ---- Tables ---------------------------------------------------------------------

namespace {

std::uint64_t mix64(std::uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

struct IdHash {
  std::uint64_t operator()(const Id128& id) const { return mix64(id.hi ^ mix64(id.lo)); }
};
struct AccountIdHash {
  std::uint64_t operator()(AccountId id) const { return mix64(id); }
};

// Key -> row index, open addressing with linear probing in a power-of-two
// table at most half full: one allocation per doubling, none per insert,
// erase by backward shift (no tombstones). Erase happens only when a linked
// chain is undone.
template <typename Key, typename Hash>
class FlatIndex {
 public:
  static constexpr std::uint32_t kAbsent = std::numeric_limits<std::uint32_t>::max();

  void reserve(std::size_t count) {
    std::size_t capacity = 16;
    while (capacity < count * 2) capacity <<= 1;
    if (capacity > slots_.size()) rehash(capacity);
  }

  std::uint32_t find(const Key& key) const {
    if (slots_.empty()) return kAbsent;
    for (std::size_t i = Hash{}(key)&mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.value == kAbsent) return kAbsent;
      if (slot.key == key) return slot.value;
    }
  }

  // `key` must be absent.
  void insert(const Key& key, std::uint32_t value) {
    ASSERT(value != kAbsent);
    if ((size_ + 1) * 2 > slots_.size()) rehash(std::max<std::size_t>(16, slots_.size() * 2));
    place(key, value);
    ++size_;
  }

  void erase(const Key& key) {
    if (slots_.empty()) return;
    std::size_t i = Hash{}(key)&mask_;
    for (;; i = (i + 1) & mask_) {
      if (slots_[i].value == kAbsent) return;
      if (slots_[i].key == key) break;
    }
    // Shift back the entries after i whose home slot is not in (i, j].
    for (std::size_t j = i;;) {
      j = (j + 1) & mask_;
      if (slots_[j].value == kAbsent) break;
      std::size_t home = Hash{}(slots_[j].key) & mask_;
      bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].value = kAbsent;
    --size_;
  }

  std::size_t size() const { return size_; }

 private:
  struct Slot {
    Key key{};
    std::uint32_t value = kAbsent;
  };

  void place(const Key& key, std::uint32_t value) {
    std::size_t i = Hash{}(key)&mask_;
    while (slots_[i].value != kAbsent) {
      ASSERT(!(slots_[i].key == key));
      i = (i + 1) & mask_;
    }
    slots_[i] = Slot{key, value};
  }

  void rehash(std::size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& slot : old) {
      if (slot.value != kAbsent) place(slot.key, slot.value);
    }
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

// A FlatIndex in 256 shards by the hash's top bits (the slots take its low
// bits). Each shard doubles alone, so a doubling moves 1/256 of the index:
// one FlatIndex of millions of transfers rehashed them all at once under
// the billing lock, stalling every request behind it for up to a second.
template <typename Key, typename Hash>
class ShardedIndex {
 public:
  static constexpr std::uint32_t kAbsent = FlatIndex<Key, Hash>::kAbsent;

  void reserve(std::size_t count) {
    for (auto& shard : shards_) shard.reserve(count / kShards + 1);
  }
  std::uint32_t find(const Key& key) const { return shard(key).find(key); }
  void insert(const Key& key, std::uint32_t value) { shard(key).insert(key, value); }
  void erase(const Key& key) { shard(key).erase(key); }

 private:
  static constexpr std::size_t kShards = 256;
  static std::size_t shard_of(const Key& key) { return Hash{}(key) >> 56; }
  FlatIndex<Key, Hash>& shard(const Key& key) { return shards_[shard_of(key)]; }
  const FlatIndex<Key, Hash>& shard(const Key& key) const { return shards_[shard_of(key)]; }

  std::array<FlatIndex<Key, Hash>, kShards> shards_;
};

using TransferIndex = ShardedIndex<Id128, IdHash>;

std::string owner_key(AccountKind kind, std::string_view owner) {
  std::string key(1, static_cast<char>(kind));
  key += owner;
  return key;
}

bool valid_amount(Amount amount) { return amount >= Amount() && amount <= kTransferAmountMax; }

bool valid_kind(AccountKind kind) { return kind >= AccountKind::kTenant && kind <= AccountKind::kRounding; }
bool valid_code(TransferCode code) { return code >= TransferCode::kDeposit && code <= TransferCode::kRounding; }
bool valid_limit(LimitRule rule) { return rule == LimitRule::kNone || rule == LimitRule::kDebitsWithinCredits; }

bool within_limit(const Account& a) {
  return a.limit == LimitRule::kNone || a.debits_posted + a.debits_pending <= a.credits_posted + a.credit_limit;
}

// Whether `amount` more may be debited.
bool room_for_debit(const Account& a, Amount amount) {
  return a.limit == LimitRule::kNone ||
         a.debits_posted + a.debits_pending + amount <= a.credits_posted + a.credit_limit;
}

// The least spend at which `percent` of `budget` is reached: ceil(budget * percent / 100).
Amount budget_threshold(Money budget, int percent) {
  AmountUnits scaled = Amount::from_money(budget).units() * percent;
  return Amount::from_units(scaled / 100 + (scaled % 100 > 0 ? 1 : 0));
}

}  // namespace

// ---- The state machine ---------------------------------------------------------------

struct Ledger::Impl {
  std::vector<Account> accounts;
  std::vector<std::string> owners;  // beside accounts, so that an Account is plain data
  FlatIndex<AccountId, AccountIdHash> account_index;
  std::unordered_map<std::string, std::uint32_t> owner_index;  // owner_key -> row
  // A deque, not a vector: growing never moves the transfers already there.
  // A vector's doubling copied them all (hundreds of MB at a few million,
  // with the page faults of the new block) under the billing lock, which
  // stalled every request that took it for tens to hundreds of ms.
  std::deque<Transfer> transfers;
  TransferIndex transfer_index;
  // Pending holds by expiry: a min-heap. Entries of holds that were settled
  // (or undone) stay until they come up, and are skipped then, or until they
  // outnumber the pending ones (push_due): so it holds about twice the
  // pending holds at most, not every hold made in the last timeout.
  struct Due {
    Timestamp at;
    TransferId id;
  };
  std::vector<Due> due;
  std::vector<BudgetAlert> alerts;
  Totals totals;
  std::size_t pending = 0;
  std::size_t max_transfers = limits::kLedgerTransfers;
  Timestamp now;
  // The UTC month `now` is in, cached: [month_begin, month_end).
  std::int32_t month = 0;
  Timestamp month_begin, month_end;

  // The undo log of an open linked chain.
  bool logging = false;
  struct Mark {
    std::size_t accounts = 0, transfers = 0, alerts = 0, pending = 0;
    Totals totals;
  } mark;
  std::vector<std::pair<std::uint32_t, Account>> saved_accounts;
  std::vector<std::pair<std::uint32_t, Transfer>> saved_transfers;

  static bool due_later(const Due& a, const Due& b) {
    if (a.at != b.at) return a.at > b.at;
    return a.id > b.id;
  }

  // ---- Helpers ----

  void advance(Timestamp at) {
    if (at > now) now = at;
    if (now < month_begin || now >= month_end || month == 0) {
      month = utc_month_of(now);
      month_begin = utc_month_start(month);
      std::int32_t next = month % 100 == 12 ? (month / 100 + 1) * 100 + 1 : month + 1;
      month_end = utc_month_start(next);
    }
  }

  Account& touch_account(std::uint32_t row) {
    if (logging) saved_accounts.emplace_back(row, accounts[row]);
    return accounts[row];
  }
  Transfer& touch_transfer(std::uint32_t row) {
    if (logging) saved_transfers.emplace_back(row, transfers[row]);
    return transfers[row];
  }

  void begin_chain() {
    logging = true;
    mark = Mark{accounts.size(), transfers.size(), alerts.size(), pending, totals};
    saved_accounts.clear();
    saved_transfers.clear();
  }
  void commit_chain() {
    logging = false;
    saved_accounts.clear();
    saved_transfers.clear();
  }
  void rollback_chain() {
    for (auto it = saved_transfers.rbegin(); it != saved_transfers.rend(); ++it) {
      if (it->first < mark.transfers) transfers[it->first] = it->second;
    }
    for (auto it = saved_accounts.rbegin(); it != saved_accounts.rend(); ++it) {
      if (it->first < mark.accounts) accounts[it->first] = it->second;
    }
    for (std::size_t i = mark.transfers; i < transfers.size(); ++i) transfer_index.erase(transfers[i].id);
    transfers.resize(mark.transfers);
    for (std::size_t i = mark.accounts; i < accounts.size(); ++i) {
      account_index.erase(accounts[i].id);
      owner_index.erase(owner_key(accounts[i].kind, owners[i]));
    }
    accounts.resize(mark.accounts);
    owners.resize(mark.accounts);
    alerts.resize(mark.alerts);
    totals = mark.totals;
    pending = mark.pending;
    commit_chain();
  }

  std::uint32_t new_transfer_row(const Transfer& t) {
    auto row = static_cast<std::uint32_t>(transfers.size());
    transfers.push_back(t);
    transfer_index.insert(t.id, row);
    return row;
  }

  void check_alerts(Account& a) {
    if (a.monthly_budget <= Money()) return;
    for (std::size_t i = 0; i < kBudgetAlertPercents.size(); ++i) {
      auto bit = static_cast<std::uint8_t>(1u << i);
      if ((a.alerts_sent & bit) != 0) continue;
      if (a.month_spend < budget_threshold(a.monthly_budget, kBudgetAlertPercents[i])) continue;
      a.alerts_sent |= bit;
      alerts.push_back(BudgetAlert{a.id, a.spend_month, kBudgetAlertPercents[i], now, a.month_spend, a.monthly_budget});
    }
  }

  void roll_month(Account& a) {
    if (a.spend_month == month) return;
    a.spend_month = month;
    a.month_spend = Amount();
    a.alerts_sent = 0;
  }

  // A usage amount posted (or, negative, reversed) for a tenant account.
  void add_spend(Account& a, Amount delta) {
    roll_month(a);
    a.month_spend += delta;
    if (a.month_spend < Amount()) a.month_spend = Amount();
    check_alerts(a);
  }

  // The hold a due entry is still for (pending, with that expiry), or null.
  Transfer* still_due(const Due& d) {
    const std::uint32_t row = transfer_index.find(d.id);
    if (row == TransferIndex::kAbsent) return nullptr;
    Transfer& hold = transfers[row];
    const bool due_now = hold.kind == TransferKind::kHold && hold.state == HoldState::kPending && hold.expires_at == d.at;
    return due_now ? &hold : nullptr;
  }

  void push_due(Due d) {
    // Rebuilt without the settled holds' entries once they are half: O(1)
    // a push, amortised, and the heap no larger than the holds in flight.
    if (due.size() >= 2 * pending + 64) {
      std::erase_if(due, [&](const Due& e) { return still_due(e) == nullptr; });
      std::make_heap(due.begin(), due.end(), due_later);
    }
    due.push_back(d);
    std::push_heap(due.begin(), due.end(), due_later);
  }

  void expire_due() {
    while (!due.empty() && due.front().at <= now) {
      std::pop_heap(due.begin(), due.end(), due_later);
      Due d = due.back();
      due.pop_back();
      Transfer* hold = still_due(d);
      if (hold == nullptr) continue;
      release(*hold);
      hold->state = HoldState::kExpired;
    }
  }

  // Takes a pending hold's amount off the pending counters.
  void release(const Transfer& hold) {
    Account& debit = touch_account(account_index.find(hold.debit));
    Account& credit = touch_account(account_index.find(hold.credit));
    debit.debits_pending -= hold.amount;
    credit.credits_pending -= hold.amount;
    totals.debits_pending -= hold.amount;
    totals.credits_pending -= hold.amount;
    CHECK(debit.debits_pending >= Amount() && credit.credits_pending >= Amount()) << "pending counters below zero";
    CHECK(pending > 0);
    --pending;
  }

  // Posts `amount` from debit row to credit row.
  void post(std::uint32_t debit_row, std::uint32_t credit_row, Amount amount) {
    Account& debit = touch_account(debit_row);
    debit.debits_posted += amount;
    Account& credit = touch_account(credit_row);
    credit.credits_posted += amount;
    totals.debits_posted += amount;
    totals.credits_posted += amount;
  }

  void check_after(std::uint32_t row) const {
    const Account& a = accounts[row];
    CHECK(within_limit(a)) << "account " << a.id << " past its limit: debits " << a.debits_posted.to_string() << " + "
                           << a.debits_pending.to_string() << " > credits " << a.credits_posted.to_string()
                           << " + limit " << a.credit_limit.to_string();
  }

  // ---- Commands ----

  Outcome apply(const CreateAccount& c) {
    if (c.id == 0 || !valid_kind(c.kind) || !valid_limit(c.limit) || c.owner.empty() ||
        c.owner.size() > limits::kLedgerOwnerBytes || !valid_amount(c.credit_limit)) {
      return Outcome::kInvalid;
    }
    if (c.kind == AccountKind::kTenant && c.limit != LimitRule::kDebitsWithinCredits) return Outcome::kInvalid;
    if (c.limit == LimitRule::kNone && c.credit_limit != Amount()) return Outcome::kInvalid;
    std::uint32_t row = account_index.find(c.id);
    if (row != FlatIndex<AccountId, AccountIdHash>::kAbsent) {
      const Account& a = accounts[row];
      bool same =
          a.kind == c.kind && a.limit == c.limit && a.created_credit_limit == c.credit_limit && owners[row] == c.owner;
      return same ? Outcome::kAlreadyApplied : Outcome::kIdConflict;
    }
    std::string key = owner_key(c.kind, c.owner);
    if (owner_index.contains(key)) return Outcome::kOwnerTaken;
    if (accounts.size() >= limits::kLedgerAccounts) return Outcome::kFull;

    Account a;
    a.id = c.id;
    a.kind = c.kind;
    a.limit = c.limit;
    a.credit_limit = c.credit_limit;
    a.created_credit_limit = c.credit_limit;
    row = static_cast<std::uint32_t>(accounts.size());
    accounts.push_back(a);
    owners.push_back(c.owner);
    account_index.insert(c.id, row);
    owner_index.emplace(std::move(key), row);
    return Outcome::kOk;
  }

  // The checks CreateTransfer and CreateHold share, up to the limit.
  Outcome check_transfer(const Transfer& t, std::uint32_t& debit_row, std::uint32_t& credit_row) {
    if (t.id.is_zero() || t.debit == 0 || t.credit == 0 || t.debit == t.credit || !valid_amount(t.amount) ||
        !valid_code(t.code)) {
      return Outcome::kInvalid;
    }
    if (t.kind == TransferKind::kHold && (t.timeout_ms <= 0 || t.timeout_ms > limits::kLedgerHoldTimeoutMsMax)) {
      return Outcome::kInvalid;
    }
    std::uint32_t row = transfer_index.find(t.id);
    if (row != TransferIndex::kAbsent) {
      const Transfer& e = transfers[row];
      bool same = e.kind == t.kind && e.debit == t.debit && e.credit == t.credit && e.amount == t.amount &&
                  e.code == t.code && e.reference == t.reference && e.timeout_ms == t.timeout_ms;
      return same ? Outcome::kAlreadyApplied : Outcome::kIdConflict;
    }
    debit_row = account_index.find(t.debit);
    credit_row = account_index.find(t.credit);
    if (debit_row == FlatIndex<AccountId, AccountIdHash>::kAbsent ||
        credit_row == FlatIndex<AccountId, AccountIdHash>::kAbsent) {
      return Outcome::kAccountNotFound;
    }
    if (transfers.size() >= max_transfers) return Outcome::kFull;
    if (!room_for_debit(accounts[debit_row], t.amount)) return Outcome::kInsufficientFunds;
    return Outcome::kOk;
  }

  Outcome apply(const CreateTransfer& c) {
    Transfer t;
    t.id = c.id;
    t.reference = c.reference;
    t.debit = c.debit;
    t.credit = c.credit;
    t.amount = c.amount;
    t.at = now;
    t.kind = TransferKind::kPosted;
    t.code = c.code;
    std::uint32_t debit_row = 0, credit_row = 0;
    Outcome checked = check_transfer(t, debit_row, credit_row);
    if (checked != Outcome::kOk) return checked;

    post(debit_row, credit_row, t.amount);
    new_transfer_row(t);
    Account& debit = accounts[debit_row];  // touched by post()
    if (t.code == TransferCode::kUsage && debit.kind == AccountKind::kTenant) add_spend(debit, t.amount);
    check_after(debit_row);
    return Outcome::kOk;
  }

  Outcome apply(const CreateHold& c) {
    Transfer t;
    t.id = c.id;
    t.reference = c.reference;
    t.debit = c.debit;
    t.credit = c.credit;
    t.amount = c.amount;
    t.at = now;
    t.timeout_ms = c.timeout_ms;
    t.kind = TransferKind::kHold;
    t.code = c.code;
    t.state = HoldState::kPending;
    std::uint32_t debit_row = 0, credit_row = 0;
    Outcome checked = check_transfer(t, debit_row, credit_row);
    if (checked != Outcome::kOk) return checked;

    t.expires_at = now.plus_micros(c.timeout_ms * 1000);
    Account& debit = touch_account(debit_row);
    debit.debits_pending += t.amount;
    Account& credit = touch_account(credit_row);
    credit.credits_pending += t.amount;
    totals.debits_pending += t.amount;
    totals.credits_pending += t.amount;
    ++pending;
    new_transfer_row(t);
    push_due(Due{t.expires_at, t.id});
    check_after(debit_row);
    return Outcome::kOk;
  }

  // PostHold and VoidHold: the hold's row, or why not.
  Outcome find_pending_hold(TransferId hold_id, std::uint32_t& row) const {
    row = transfer_index.find(hold_id);
    if (row == TransferIndex::kAbsent) return Outcome::kHoldNotFound;
    const Transfer& hold = transfers[row];
    if (hold.kind != TransferKind::kHold) return Outcome::kNotAHold;
    switch (hold.state) {
      case HoldState::kPosted:
        return Outcome::kHoldAlreadyPosted;
      case HoldState::kVoided:
        return Outcome::kHoldAlreadyVoided;
      case HoldState::kExpired:
        return Outcome::kHoldExpired;
      case HoldState::kPending:
        break;
      case HoldState::kNotAHold:
        return Outcome::kNotAHold;
    }
    if (now >= hold.expires_at) return Outcome::kHoldExpired;
    return Outcome::kOk;
  }

  Outcome apply(const PostHold& c) {
    if (c.id.is_zero() || c.hold.is_zero() || (c.amount && !valid_amount(*c.amount))) return Outcome::kInvalid;
    std::uint32_t existing = transfer_index.find(c.id);
    if (existing != TransferIndex::kAbsent) {
      const Transfer& e = transfers[existing];
      bool same = e.kind == TransferKind::kPost && e.target == c.hold &&
                  (c.amount ? !e.whole && e.amount == *c.amount : e.whole);
      return same ? Outcome::kAlreadyApplied : Outcome::kIdConflict;
    }
    std::uint32_t hold_row = 0;
    Outcome found = find_pending_hold(c.hold, hold_row);
    if (found != Outcome::kOk) return found;
    if (transfers.size() >= max_transfers) return Outcome::kFull;
    const Transfer hold = transfers[hold_row];
    Amount amount = c.amount.value_or(hold.amount);
    if (amount > hold.amount) return Outcome::kExceedsHold;

    std::uint32_t debit_row = account_index.find(hold.debit);
    std::uint32_t credit_row = account_index.find(hold.credit);
    release(hold);
    post(debit_row, credit_row, amount);
    Transfer& h = touch_transfer(hold_row);
    h.state = HoldState::kPosted;
    h.settled = amount;
    Transfer t;
    t.id = c.id;
    t.target = c.hold;
    t.reference = hold.reference;
    t.debit = hold.debit;
    t.credit = hold.credit;
    t.amount = amount;
    t.at = now;
    t.kind = TransferKind::kPost;
    t.code = hold.code;
    t.whole = !c.amount.has_value();
    new_transfer_row(t);
    Account& debit = accounts[debit_row];
    if (t.code == TransferCode::kUsage && debit.kind == AccountKind::kTenant) add_spend(debit, amount);
    check_after(debit_row);
    return Outcome::kOk;
  }

  Outcome apply(const VoidHold& c) {
    if (c.id.is_zero() || c.hold.is_zero()) return Outcome::kInvalid;
    std::uint32_t existing = transfer_index.find(c.id);
    if (existing != TransferIndex::kAbsent) {
      const Transfer& e = transfers[existing];
      bool same = e.kind == TransferKind::kVoid && e.target == c.hold;
      return same ? Outcome::kAlreadyApplied : Outcome::kIdConflict;
    }
    std::uint32_t hold_row = 0;
    Outcome found = find_pending_hold(c.hold, hold_row);
    if (found != Outcome::kOk) return found;
    if (transfers.size() >= max_transfers) return Outcome::kFull;
    const Transfer hold = transfers[hold_row];

    release(hold);
    touch_transfer(hold_row).state = HoldState::kVoided;
    Transfer t;
    t.id = c.id;
    t.target = c.hold;
    t.reference = hold.reference;
    t.debit = hold.debit;
    t.credit = hold.credit;
    t.amount = hold.amount;
    t.at = now;
    t.kind = TransferKind::kVoid;
    t.code = hold.code;
    new_transfer_row(t);
    return Outcome::kOk;
  }

  Outcome apply(const ReverseTransfer& c) {
    if (c.id.is_zero() || c.target.is_zero() || (c.amount && !valid_amount(*c.amount))) return Outcome::kInvalid;
    std::uint32_t existing = transfer_index.find(c.id);
    if (existing != TransferIndex::kAbsent) {
      const Transfer& e = transfers[existing];
      bool same = e.kind == TransferKind::kReversal && e.target == c.target &&
                  (c.amount ? !e.whole && e.amount == *c.amount : e.whole);
      return same ? Outcome::kAlreadyApplied : Outcome::kIdConflict;
    }
    std::uint32_t target_row = transfer_index.find(c.target);
    if (target_row == TransferIndex::kAbsent) return Outcome::kTransferNotFound;
    const Transfer target = transfers[target_row];
    if (target.kind != TransferKind::kPosted && target.kind != TransferKind::kPost) return Outcome::kNotReversible;
    Amount remaining = target.amount - target.settled;
    if (remaining <= Amount()) return Outcome::kAlreadyReversed;
    Amount amount = c.amount.value_or(remaining);
    if (amount > remaining) return Outcome::kExceedsRemaining;
    if (transfers.size() >= max_transfers) return Outcome::kFull;
    // The reversal debits what the target credited.
    std::uint32_t debit_row = account_index.find(target.credit);
    std::uint32_t credit_row = account_index.find(target.debit);
    if (!room_for_debit(accounts[debit_row], amount)) return Outcome::kInsufficientFunds;

    post(debit_row, credit_row, amount);
    touch_transfer(target_row).settled += amount;
    Transfer t;
    t.id = c.id;
    t.target = c.target;
    t.reference = target.reference;
    t.debit = target.credit;
    t.credit = target.debit;
    t.amount = amount;
    t.at = now;
    t.kind = TransferKind::kReversal;
    t.code = target.code;
    t.whole = !c.amount.has_value();
    new_transfer_row(t);
    // Usage given back in the month it was charged lowers the month's spend.
    Account& refunded = accounts[credit_row];
    if (t.code == TransferCode::kUsage && refunded.kind == AccountKind::kTenant && target.at >= month_begin &&
        target.at < month_end) {
      add_spend(refunded, -amount);
    }
    check_after(debit_row);
    return Outcome::kOk;
  }

  Outcome apply(const SetCreditLimit& c) {
    if (!valid_amount(c.credit_limit)) return Outcome::kInvalid;
    std::uint32_t row = account_index.find(c.account);
    if (row == FlatIndex<AccountId, AccountIdHash>::kAbsent) return Outcome::kAccountNotFound;
    const Account& a = accounts[row];
    if (a.limit != LimitRule::kDebitsWithinCredits) return Outcome::kWrongAccountKind;
    if (a.debits_posted + a.debits_pending > a.credits_posted + c.credit_limit) return Outcome::kLimitBelowUse;
    touch_account(row).credit_limit = c.credit_limit;
    check_after(row);
    return Outcome::kOk;
  }

  Outcome apply(const SetBudget& c) {
    if (c.monthly < Money()) return Outcome::kInvalid;
    std::uint32_t row = account_index.find(c.account);
    if (row == FlatIndex<AccountId, AccountIdHash>::kAbsent) return Outcome::kAccountNotFound;
    if (accounts[row].kind != AccountKind::kTenant) return Outcome::kWrongAccountKind;
    if (accounts[row].monthly_budget == c.monthly) return Outcome::kOk;
    Account& a = touch_account(row);
    roll_month(a);
    a.monthly_budget = c.monthly;
    a.alerts_sent = 0;
    check_alerts(a);
    return Outcome::kOk;
  }

  Outcome apply(const Expire&) { return Outcome::kOk; }  // expire_due() ran before it

  Outcome apply_one(const Command& command) {
    Outcome outcome = std::visit([this](const auto& op) { return apply(op); }, command.op);
    // Always on: a ledger out of balance is a bug that costs money.
    CHECK(totals.debits_posted == totals.credits_posted && totals.debits_pending == totals.credits_pending)
        << "ledger out of balance after a " << command.op.index() << " command: posted debits "
        << totals.debits_posted.to_string() << " credits " << totals.credits_posted.to_string() << ", pending debits "
        << totals.debits_pending.to_string() << " credits " << totals.credits_pending.to_string();
    return outcome;
  }

  void apply_batch(std::span<const Command> commands, std::span<Outcome> results) {
    CHECK(commands.size() == results.size()) << "one result per command";
    CHECK(commands.size() <= limits::kLedgerBatchCommands) << commands.size() << " commands in one batch";
    std::size_t chain_start = 0;
    bool in_chain = false, chain_failed = false;
    for (std::size_t i = 0; i < commands.size(); ++i) {
      const Command& command = commands[i];
      advance(command.at);
      if (!in_chain) {
        expire_due();
        if (command.link == Link::kWithNext) {
          in_chain = true;
          chain_failed = false;
          chain_start = i;
          begin_chain();
        }
      }
      if (chain_failed) {
        results[i] = Outcome::kLinkedEventFailed;
      } else {
        results[i] = apply_one(command);
        if (in_chain && !succeeded(results[i])) {
          rollback_chain();
          chain_failed = true;
          for (std::size_t j = chain_start; j < i; ++j) results[j] = Outcome::kLinkedEventFailed;
        }
      }
      if (in_chain && command.link == Link::kNone) {
        if (!chain_failed) commit_chain();
        in_chain = false;
        chain_failed = false;
      }
    }
    if (in_chain && !chain_failed) {  // a chain that failed keeps the outcomes it has
      rollback_chain();
      for (std::size_t j = chain_start; j < commands.size(); ++j) results[j] = Outcome::kLinkedEventFailed;
      results.back() = Outcome::kLinkedChainOpen;
    }
  }

  // ---- Words for people ----

  std::string name_of(AccountId id) const {
    std::uint32_t row = account_index.find(id);
    if (row == FlatIndex<AccountId, AccountIdHash>::kAbsent) return "account " + std::to_string(id);
    return "account " + std::to_string(id) + " (" + std::string(account_kind_name(accounts[row].kind)) + " " +
           owners[row] + ")";
  }

  std::string available_words(AccountId id, Amount needed) const {
    std::uint32_t row = account_index.find(id);
    if (row == FlatIndex<AccountId, AccountIdHash>::kAbsent) return name_of(id) + " does not exist";
    const Account& a = accounts[row];
    Amount available = std::max(a.available(), Amount());
    std::string words = name_of(id) + " has $" + available.floor_money().to_string() + " available";
    if (a.debits_pending > Amount()) words += " ($" + a.debits_pending.floor_money().to_string() + " held)";
    if (a.credit_limit > Amount()) words += " including a credit limit of $" + a.credit_limit.floor_money().to_string();
    return words + "; it needs $" + needed.floor_money().to_string() + ": add funds or raise the credit limit";
  }

  std::string describe(const Command& command, Outcome outcome) const {
    std::string what = std::visit(
        [](const auto& op) -> std::string {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, CreateAccount>)
            return "account " + std::to_string(op.id);
          else if constexpr (std::is_same_v<T, SetCreditLimit> || std::is_same_v<T, SetBudget>)
            return "account " + std::to_string(op.account);
          else if constexpr (std::is_same_v<T, Expire>)
            return "expire";
          else
            return "transfer " + op.id.to_string();
        },
        command.op);
    switch (outcome) {
      case Outcome::kInsufficientFunds:
        if (const auto* t = std::get_if<CreateTransfer>(&command.op)) return available_words(t->debit, t->amount);
        if (const auto* h = std::get_if<CreateHold>(&command.op)) return available_words(h->debit, h->amount);
        if (const auto* r = std::get_if<ReverseTransfer>(&command.op)) {
          std::uint32_t row = transfer_index.find(r->target);
          if (row != TransferIndex::kAbsent) {
            const Transfer& target = transfers[row];
            return "the reversal of " + r->target.to_string() + ": " +
                   available_words(target.credit, r->amount.value_or(target.amount - target.settled));
          }
        }
        return what + ": insufficient funds";
      case Outcome::kAccountNotFound:
        return what + ": an account it names does not exist";
      case Outcome::kInvalid:
        return what +
               ": malformed (zero id, same account twice, an amount out of range, a bad kind or code, or a timeout out "
               "of range)";
      case Outcome::kIdConflict:
        return what + ": the id is taken by one with different content";
      case Outcome::kOwnerTaken:
        return what + ": another account has that kind and owner";
      case Outcome::kLimitBelowUse:
        return what + ": the account already uses more than that credit limit";
      case Outcome::kWrongAccountKind:
        return what + ": not allowed on that kind of account";
      case Outcome::kFull:
        return what + ": the ledger is full";
      default:
        return what + ": " + std::string(outcome_name(outcome));
    }
  }
};

// ---- Ledger ------------------------------------------------------------------------

Ledger::Ledger(LedgerOptions options) : impl_(std::make_unique<Impl>()) {
  std::size_t accounts = std::min(options.expected_accounts, limits::kLedgerAccounts);
  std::size_t transfers = std::min(options.expected_transfers, limits::kLedgerTransfers);
  impl_->accounts.reserve(accounts);
  impl_->owners.reserve(accounts);
  impl_->account_index.reserve(accounts);
  impl_->transfer_index.reserve(transfers);
  impl_->max_transfers = std::min(options.max_transfers, limits::kLedgerTransfers);
}
Ledger::~Ledger() = default;
Ledger::Ledger(Ledger&&) noexcept = default;
Ledger& Ledger::operator=(Ledger&&) noexcept = default;

Outcome Ledger::apply(const Command& command) {
  Outcome outcome;
  impl_->apply_batch(std::span<const Command>(&command, 1), std::span<Outcome>(&outcome, 1));
  return outcome;
}

void Ledger::apply(std::span<const Command> commands, std::span<Outcome> results) {
  impl_->apply_batch(commands, results);
}

Status Ledger::execute(const Command& command) {
  Outcome outcome = apply(command);
  if (succeeded(outcome)) return Status::ok();
  return status_of(outcome, impl_->describe(command, outcome));
}

const Account* Ledger::account(AccountId id) const {
  std::uint32_t row = impl_->account_index.find(id);
  return row == FlatIndex<AccountId, AccountIdHash>::kAbsent ? nullptr : &impl_->accounts[row];
}

std::string_view Ledger::owner_of(AccountId id) const {
  std::uint32_t row = impl_->account_index.find(id);
  return row == FlatIndex<AccountId, AccountIdHash>::kAbsent ? std::string_view() : impl_->owners[row];
}

std::optional<AccountId> Ledger::find_account(AccountKind kind, std::string_view owner) const {
  auto it = impl_->owner_index.find(owner_key(kind, owner));
  if (it == impl_->owner_index.end()) return std::nullopt;
  return impl_->accounts[it->second].id;
}

const Transfer* Ledger::transfer(TransferId id) const {
  std::uint32_t row = impl_->transfer_index.find(id);
  return row == TransferIndex::kAbsent ? nullptr : &impl_->transfers[row];
}

bool Ledger::can_spend(AccountId id, Amount amount) const {
  const Account* a = account(id);
  return a != nullptr && amount >= Amount() && room_for_debit(*a, amount);
}

SpendState Ledger::spend_state(AccountId id) const {
  const Account* a = account(id);
  if (a == nullptr || a->limit == LimitRule::kNone) return SpendState::kOk;
  return a->credits_posted + a->credit_limit - a->debits_posted <= Amount() ? SpendState::kExhausted : SpendState::kOk;
}

Amount Ledger::month_spend(AccountId id, Timestamp now) const {
  const Account* a = account(id);
  if (a == nullptr || a->spend_month != utc_month_of(now)) return Amount();
  return a->month_spend;
}

std::vector<BudgetAlert> Ledger::alerts(AccountId id) const {
  std::vector<BudgetAlert> out;
  for (const BudgetAlert& alert : impl_->alerts) {
    if (alert.account == id) out.push_back(alert);
  }
  return out;
}

std::span<const BudgetAlert> Ledger::all_alerts() const { return impl_->alerts; }
Timestamp Ledger::now() const { return impl_->now; }
Totals Ledger::totals() const { return impl_->totals; }
std::size_t Ledger::account_count() const { return impl_->accounts.size(); }
std::size_t Ledger::transfer_count() const { return impl_->transfers.size(); }
std::size_t Ledger::pending_holds() const { return impl_->pending; }
std::size_t Ledger::expiry_entries() const { return impl_->due.size(); }
const Account& Ledger::account_at(std::size_t index) const { return impl_->accounts.at(index); }
const Transfer& Ledger::transfer_at(std::size_t index) const { return impl_->transfers.at(index); }

void Ledger::verify() const {
  const Impl& s = *impl_;
  Totals sum;
  for (const Account& a : s.accounts) {
    CHECK(a.debits_posted >= Amount() && a.credits_posted >= Amount() && a.debits_pending >= Amount() &&
          a.credits_pending >= Amount())
        << "account " << a.id << " has a negative counter";
    CHECK(within_limit(a)) << "account " << a.id << " past its limit";
    sum.debits_posted += a.debits_posted;
    sum.credits_posted += a.credits_posted;
    sum.debits_pending += a.debits_pending;
    sum.credits_pending += a.credits_pending;
  }
  CHECK(sum.debits_posted == sum.credits_posted) << "posted debits != credits";
  CHECK(sum.debits_pending == sum.credits_pending) << "pending debits != credits";
  CHECK(sum.debits_posted == s.totals.debits_posted && sum.credits_posted == s.totals.credits_posted &&
        sum.debits_pending == s.totals.debits_pending && sum.credits_pending == s.totals.credits_pending)
      << "running totals differ from the accounts";
  std::size_t pending = 0;
  Amount held;
  for (const Transfer& t : s.transfers) {
    if (t.kind == TransferKind::kHold && t.state == HoldState::kPending) {
      ++pending;
      held += t.amount;
    }
    CHECK(t.settled <= t.amount || t.kind == TransferKind::kHold)
        << "transfer " << t.id.to_string() << " over-reversed";
  }
  CHECK(pending == s.pending) << "pending holds miscounted";
  CHECK(held == s.totals.debits_pending) << "pending counters differ from the holds";
}

namespace {

// FNV-1a over explicit fields (never raw structs: padding is not state).
class Hasher {
 public:
  void add(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h_ ^= (v >> (8 * i)) & 0xff;
      h_ *= 0x100000001b3ULL;
    }
  }
  void add(Amount a) {
    auto u = static_cast<AmountBits>(a.units());
    add(static_cast<std::uint64_t>(u));
    add(static_cast<std::uint64_t>(u >> 64));
  }
  void add(Id128 id) {
    add(id.hi);
    add(id.lo);
  }
  void add(std::string_view s) {
    add(s.size());
    for (char c : s) {
      h_ ^= static_cast<std::uint8_t>(c);
      h_ *= 0x100000001b3ULL;
    }
  }
  std::uint64_t value() const { return h_; }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

}  // namespace

std::uint64_t Ledger::fingerprint() const {
  const Impl& s = *impl_;
  Hasher h;
  h.add(static_cast<std::uint64_t>(s.now.unix_micros));
  for (std::size_t i = 0; i < s.accounts.size(); ++i) {
    const Account& a = s.accounts[i];
    h.add(a.id);
    h.add(static_cast<std::uint64_t>(a.kind) << 8 | static_cast<std::uint64_t>(a.limit));
    h.add(s.owners[i]);
    for (Amount v : {a.credit_limit, a.created_credit_limit, a.debits_posted, a.credits_posted, a.debits_pending,
                     a.credits_pending, a.month_spend}) {
      h.add(v);
    }
    h.add(static_cast<std::uint64_t>(a.monthly_budget.nanos()));
    h.add(static_cast<std::uint64_t>(a.spend_month) << 8 | a.alerts_sent);
  }
  for (const Transfer& t : s.transfers) {
    h.add(t.id);
    h.add(t.target);
    h.add(t.reference);
    h.add(t.debit);
    h.add(t.credit);
    h.add(t.amount);
    h.add(t.settled);
    h.add(static_cast<std::uint64_t>(t.at.unix_micros));
    h.add(static_cast<std::uint64_t>(t.expires_at.unix_micros));
    h.add(static_cast<std::uint64_t>(t.timeout_ms));
    h.add(static_cast<std::uint64_t>(t.kind) | static_cast<std::uint64_t>(t.code) << 8 |
          static_cast<std::uint64_t>(t.state) << 24 | static_cast<std::uint64_t>(t.whole) << 32);
  }
  for (const BudgetAlert& a : s.alerts) {
    h.add(a.account);
    h.add(static_cast<std::uint64_t>(a.month) << 8 | static_cast<std::uint64_t>(a.percent));
    h.add(static_cast<std::uint64_t>(a.at.unix_micros));
    h.add(a.spend);
    h.add(static_cast<std::uint64_t>(a.budget.nanos()));
  }
  return h.value();
}

// ---- Encoding -------------------------------------------------------------------

namespace {

constexpr std::uint8_t kEncodingVersion = 1;
constexpr std::uint8_t kFlagLinked = 1;

enum class OpCode : std::uint8_t {
  kCreateAccount = 1,
  kTransfer = 2,
  kHold = 3,
  kPost = 4,
  kVoid = 5,
  kReverse = 6,
  kSetCreditLimit = 7,
  kSetBudget = 8,
  kExpire = 9,
};

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) { le(v, 2); }
  void u64(std::uint64_t v) { le(v, 8); }
  void i64(std::int64_t v) { le(static_cast<std::uint64_t>(v), 8); }
  void id(Id128 v) {
    u64(v.hi);
    u64(v.lo);
  }
  void amount(Amount a) {
    auto u = static_cast<AmountBits>(a.units());
    u64(static_cast<std::uint64_t>(u));
    u64(static_cast<std::uint64_t>(u >> 64));
  }
  void optional_amount(const std::optional<Amount>& a) {
    u8(a ? 1 : 0);
    amount(a.value_or(Amount()));
  }
  void bytes(std::string_view s) { out_.append(s); }

 private:
  void le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string& out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  std::size_t consumed() const { return pos_; }
  std::uint8_t u8() { return static_cast<std::uint8_t>(le(1)); }
  std::uint16_t u16() { return static_cast<std::uint16_t>(le(2)); }
  std::uint64_t u64() { return le(8); }
  std::int64_t i64() { return static_cast<std::int64_t>(le(8)); }
  Id128 id() {
    Id128 v;
    v.hi = u64();
    v.lo = u64();
    return v;
  }
  Amount amount() {
    std::uint64_t low = u64();
    std::uint64_t high = u64();
    auto u = static_cast<AmountBits>(high) << 64 | low;
    return Amount::from_units(static_cast<AmountUnits>(u));
  }
  std::optional<Amount> optional_amount() {
    std::uint8_t has = u8();
    Amount a = amount();
    if (has > 1 || (has == 0 && a != Amount())) ok_ = false;
    if (has == 1) return a;
    return std::nullopt;
  }
  std::string bytes(std::size_t n) {
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return {};
    }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }

 private:
  std::uint64_t le(int n) {
    if (!ok_ || in_.size() - pos_ < static_cast<std::size_t>(n)) {
      ok_ = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += static_cast<std::size_t>(n);
    return v;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

void encode_transfer_body(Writer& w, TransferId id, AccountId debit, AccountId credit, Amount amount, TransferCode code,
                          Id128 reference) {
  w.id(id);
  w.u64(debit);
  w.u64(credit);
  w.amount(amount);
  w.u16(static_cast<std::uint16_t>(code));
  w.id(reference);
}

}  // namespace

void encode_command(const Command& command, std::string& out) {
  Writer w(out);
  w.u8(kEncodingVersion);
  std::size_t op_at = out.size();
  w.u8(0);  // the op, set below
  w.u8(command.link == Link::kWithNext ? kFlagLinked : 0);
  w.i64(command.at.unix_micros);
  OpCode op = std::visit(
      [&w](const auto& c) -> OpCode {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, CreateAccount>) {
          CHECK(valid_kind(c.kind) && valid_limit(c.limit) && c.owner.size() <= limits::kLedgerOwnerBytes)
              << "encoding a malformed CreateAccount";
          w.u64(c.id);
          w.u8(static_cast<std::uint8_t>(c.kind));
          w.u8(static_cast<std::uint8_t>(c.limit));
          w.amount(c.credit_limit);
          w.u16(static_cast<std::uint16_t>(c.owner.size()));
          w.bytes(c.owner);
          return OpCode::kCreateAccount;
        } else if constexpr (std::is_same_v<T, CreateTransfer>) {
          CHECK(valid_code(c.code)) << "encoding a transfer with a bad code";
          encode_transfer_body(w, c.id, c.debit, c.credit, c.amount, c.code, c.reference);
          return OpCode::kTransfer;
        } else if constexpr (std::is_same_v<T, CreateHold>) {
          CHECK(valid_code(c.code)) << "encoding a hold with a bad code";
          encode_transfer_body(w, c.id, c.debit, c.credit, c.amount, c.code, c.reference);
          w.i64(c.timeout_ms);
          return OpCode::kHold;
        } else if constexpr (std::is_same_v<T, PostHold>) {
          w.id(c.id);
          w.id(c.hold);
          w.optional_amount(c.amount);
          return OpCode::kPost;
        } else if constexpr (std::is_same_v<T, VoidHold>) {
          w.id(c.id);
          w.id(c.hold);
          return OpCode::kVoid;
        } else if constexpr (std::is_same_v<T, ReverseTransfer>) {
          w.id(c.id);
          w.id(c.target);
          w.optional_amount(c.amount);
          return OpCode::kReverse;
        } else if constexpr (std::is_same_v<T, SetCreditLimit>) {
          w.u64(c.account);
          w.amount(c.credit_limit);
          return OpCode::kSetCreditLimit;
        } else if constexpr (std::is_same_v<T, SetBudget>) {
          w.u64(c.account);
          w.i64(c.monthly.nanos());
          return OpCode::kSetBudget;
        } else {
          static_assert(std::is_same_v<T, Expire>);
          return OpCode::kExpire;
        }
      },
      command.op);
  out[op_at] = static_cast<char>(op);
}

Result<Command> decode_command(std::string_view& in) {
  auto bad = [](std::string_view why) {
    return Status::invalid_argument("malformed ledger command: " + std::string(why));
  };
  Reader r(in);
  std::uint8_t version = r.u8();
  auto op = static_cast<OpCode>(r.u8());
  std::uint8_t flags = r.u8();
  Command command;
  command.at = Timestamp{r.i64()};
  if (!r.ok()) return bad("cut short in its header");
  if (version != kEncodingVersion) return bad("unknown version " + std::to_string(version));
  if ((flags & ~kFlagLinked) != 0) return bad("unknown flags");
  command.link = (flags & kFlagLinked) != 0 ? Link::kWithNext : Link::kNone;
  auto transfer_body = [&r](auto& c) {
    c.id = r.id();
    c.debit = r.u64();
    c.credit = r.u64();
    c.amount = r.amount();
    c.code = static_cast<TransferCode>(r.u16());
    c.reference = r.id();
  };
  switch (op) {
    case OpCode::kCreateAccount: {
      CreateAccount c;
      c.id = r.u64();
      c.kind = static_cast<AccountKind>(r.u8());
      c.limit = static_cast<LimitRule>(r.u8());
      c.credit_limit = r.amount();
      std::uint16_t length = r.u16();
      if (length > limits::kLedgerOwnerBytes) return bad("owner too long");
      c.owner = r.bytes(length);
      if (r.ok() && (!valid_kind(c.kind) || !valid_limit(c.limit))) return bad("unknown account kind or limit");
      command.op = std::move(c);
      break;
    }
    case OpCode::kTransfer: {
      CreateTransfer c;
      transfer_body(c);
      if (r.ok() && !valid_code(c.code)) return bad("unknown transfer code");
      command.op = c;
      break;
    }
    case OpCode::kHold: {
      CreateHold c;
      transfer_body(c);
      c.timeout_ms = r.i64();
      if (r.ok() && !valid_code(c.code)) return bad("unknown transfer code");
      command.op = c;
      break;
    }
    case OpCode::kPost: {
      PostHold c;
      c.id = r.id();
      c.hold = r.id();
      c.amount = r.optional_amount();
      command.op = c;
      break;
    }
    case OpCode::kVoid: {
      VoidHold c;
      c.id = r.id();
      c.hold = r.id();
      command.op = c;
      break;
    }
    case OpCode::kReverse: {
      ReverseTransfer c;
      c.id = r.id();
      c.target = r.id();
      c.amount = r.optional_amount();
      command.op = c;
      break;
    }
    case OpCode::kSetCreditLimit: {
      SetCreditLimit c;
      c.account = r.u64();
      c.credit_limit = r.amount();
      command.op = c;
      break;
    }
    case OpCode::kSetBudget: {
      SetBudget c;
      c.account = r.u64();
      c.monthly = Money::from_nanos(r.i64());
      command.op = c;
      break;
    }
    case OpCode::kExpire:
      command.op = Expire{};
      break;
    default:
      return bad("unknown op " + std::to_string(static_cast<int>(op)));
  }
  if (!r.ok()) return bad("cut short or with an invalid field");
  in.remove_prefix(r.consumed());
  return command;
}

std::string encode_commands(std::span<const Command> commands) {
  CHECK(commands.size() <= std::numeric_limits<std::uint32_t>::max());
  std::string out;
  auto count = static_cast<std::uint32_t>(commands.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((count >> (8 * i)) & 0xff));
  for (const Command& c : commands) encode_command(c, out);
  return out;
}

Result<std::vector<Command>> decode_commands(std::string_view in) {
  if (in.size() < 4) return Status::invalid_argument("malformed ledger batch: no count");
  std::uint32_t count = 0;
  for (int i = 0; i < 4; ++i) count |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(in[i])) << (8 * i);
  in.remove_prefix(4);
  // Each command takes at least its 11-byte header: a count past that is a lie.
  if (count > in.size() / 11) return Status::invalid_argument("malformed ledger batch: count past its bytes");
  std::vector<Command> commands;
  commands.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    HR_ASSIGN_OR_RETURN(Command c, decode_command(in));
    commands.push_back(std::move(c));
  }
  if (!in.empty()) return Status::invalid_argument("malformed ledger batch: bytes after its last command");
  return commands;
}

}  // namespace headroom::ledger
