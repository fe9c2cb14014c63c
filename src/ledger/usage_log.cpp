#include "ledger/usage_log.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

namespace headroom::ledger {
namespace {

static_assert(std::endian::native == std::endian::little, "the encoding's integers are written in native order");

constexpr std::uint8_t kEncodingVersion = 1;
constexpr std::size_t kFixedBytes = 48;  // the fixed part of the table in usage_log.h
constexpr int kStrings = 6;             // id, tenant_id, item, variant, source_id, key_id
static_assert(kFixedBytes + limits::kUsageIdBytes + (kStrings - 1) * limits::kUsageTextBytes ==
              limits::kUsageEventBytesMax);

template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void store(char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// An event's fields as views into its payload.
struct EventView {
  std::uint8_t product = 0;
  std::string_view id, tenant_id, item, variant, source_id, key_id;
  std::int64_t quantity = 0, unit_price_nanos = 0, start_us = 0, end_us = 0;
};

// A short printable form of an id for messages (ids come from sources).
std::string quoted(std::string_view id) {
  constexpr std::size_t kShown = 80;
  std::string out = "\"";
  for (char c : id.substr(0, kShown)) out += (static_cast<unsigned char>(c) < 0x20 || c == '"') ? '?' : c;
  if (id.size() > kShown) out += "...";
  return out + "\"";
}

// The rules both encode and decode enforce; empty when the fields obey them.
std::string broken_rule(const EventView& e) {
  if (e.id.empty() || e.id.size() > limits::kUsageIdBytes) {
    return "an id must have 1 to " + std::to_string(limits::kUsageIdBytes) + " bytes";
  }
  if (e.tenant_id.empty() || e.tenant_id.size() > limits::kUsageTextBytes) {
    return "a tenant id must have 1 to " + std::to_string(limits::kUsageTextBytes) + " bytes";
  }
  if (e.item.size() > limits::kUsageTextBytes || e.variant.size() > limits::kUsageTextBytes ||
      e.source_id.size() > limits::kUsageTextBytes || e.key_id.size() > limits::kUsageTextBytes) {
    return "item, variant, source id and key id may have at most " + std::to_string(limits::kUsageTextBytes) + " bytes";
  }
  if (e.product > static_cast<std::uint8_t>(Product::kTokens)) return "unknown product " + std::to_string(e.product);
  if (e.quantity < 0 || e.quantity > limits::kUsageQuantityMax) {
    return "quantity " + std::to_string(e.quantity) + " is outside 0.." + std::to_string(limits::kUsageQuantityMax);
  }
  if (e.unit_price_nanos < 0) return "a negative unit price";
  if (e.end_us < e.start_us) return "an interval that ends before it starts";
  return {};
}

EventView view_of(const UsageEvent& e) {
  return {static_cast<std::uint8_t>(e.product),
          e.id,
          e.tenant_id,
          e.item,
          e.variant,
          e.source_id,
          e.key_id,
          e.quantity,
          e.unit_price.nanos(),
          e.start.unix_micros,
          e.end.unix_micros};
}

// Parses a payload into views; empty when it is a valid encoding.
std::string parse(std::string_view payload, EventView& e) {
  if (payload.size() < kFixedBytes) return "a payload of " + std::to_string(payload.size()) + " bytes";
  const char* p = payload.data();
  if (static_cast<std::uint8_t>(p[0]) != kEncodingVersion) return "encoding version " + std::to_string(p[0]);
  if (load<std::uint16_t>(p + 14) != 0) return "a nonzero reserved field";
  e.product = static_cast<std::uint8_t>(p[1]);
  std::size_t lengths[kStrings];
  std::size_t total = kFixedBytes;
  for (int i = 0; i < kStrings; ++i) total += lengths[i] = load<std::uint16_t>(p + 2 + 2 * i);
  if (total != payload.size()) return "string lengths that do not add up to the payload";
  e.quantity = load<std::int64_t>(p + 16);
  e.unit_price_nanos = load<std::int64_t>(p + 24);
  e.start_us = load<std::int64_t>(p + 32);
  e.end_us = load<std::int64_t>(p + 40);
  std::size_t at = kFixedBytes;
  std::string_view* fields[kStrings] = {&e.id, &e.tenant_id, &e.item, &e.variant, &e.source_id, &e.key_id};
  for (int i = 0; i < kStrings; ++i) {
    *fields[i] = payload.substr(at, lengths[i]);
    at += lengths[i];
  }
  return broken_rule(e);
}

std::string_view id_of(std::string_view payload) {
  ASSERT(payload.size() >= kFixedBytes);
  return payload.substr(kFixedBytes, load<std::uint16_t>(payload.data() + 2));
}

// The first field in which two events differ, for a conflict's message.
std::string first_difference(const EventView& a, const EventView& b) {
  if (a.tenant_id != b.tenant_id) return "tenant_id";
  if (a.product != b.product) return "product";
  if (a.item != b.item) return "item";
  if (a.variant != b.variant) return "variant";
  if (a.quantity != b.quantity) return "quantity";
  if (a.unit_price_nanos != b.unit_price_nanos) return "unit_price";
  if (a.start_us != b.start_us) return "start";
  if (a.end_us != b.end_us) return "end";
  if (a.source_id != b.source_id) return "source_id";
  if (a.key_id != b.key_id) return "key_id";
  return "encoding";
}

std::uint64_t hash_id(std::string_view id) { return std::hash<std::string_view>{}(id); }

}  // namespace

// The id index: open addressing with linear probing over (hash of the id,
// position of its record). Only hashes are kept, so a hash match is
// confirmed by reading the record's id back (ids that collide each keep
// their own slot). Position 0 (inside the file header) marks an empty slot.
//
// It grows without a pause. Rehashing a full table at once stalled every
// caller of record() for as long as it took, under mu_: 20 to 80 ms at 0.7M,
// 1.5M and 2.9M events, the worst latencies of usage_http_bench. So growing
// is spread over the inserts, in three steps:
//   1. From kPrepareTenths full, a table of twice the size is mapped and its
//      pages touched, one every kPrefaultEvery inserts: each page's first
//      touch is a fault that zero-fills it, and a fresh table touched at
//      random by a batch's inserts cost 2 to 3 ms a batch for its first
//      dozens of batches (touching a page every insert, 1.5 ms).
//   2. At kLoadTenths full the new table takes the inserts, and the old one
//      becomes `old_`: lookups probe both, and each insert moves the next
//      kMovesPerInsert slots of the old table into the new (static_assert
//      below: the move ends long before the new table is full).
//   3. The old table's pages are given back kReleaseBytes a time, one piece
//      every kReleaseEvery inserts (unmapping 32 MiB at once took 4.5 ms),
//      with madvise(MADV_DONTNEED), which takes the process's address space
//      lock for reading only, where munmap() takes it for writing and so
//      queues behind the other threads' use of it (one took 67 ms in the
//      server, beside the rating thread's reallocations); the range, empty
//      by then, is unmapped at the end.
class UsageLog::IdIndex {
 public:
  explicit IdIndex(std::size_t expected) {
    std::size_t capacity = 1024;
    while (capacity * kLoadTenths / 10 < expected) capacity *= 2;
    table_ = Table(capacity);
    table_.prefault(table_.pages());
  }

  std::size_t size() const { return size_; }

  // Calls fn(position) for each entry whose id has this hash, until it
  // returns true.
  template <typename Fn>
  void find(std::uint64_t hash, Fn&& fn) const {
    for (std::size_t s = table_.start(hash); !table_.empty_at(s); s = table_.next(s)) {
      if (table_.at(s).hash == hash && fn(table_.at(s).position)) return;
    }
    if (moved_ == old_.capacity()) return;  // no old table, or all moved
    // Slots of the old table below moved_ are in the new one already.
    for (std::size_t s = old_.start(hash); !old_.empty_at(s); s = old_.next(s)) {
      if (s >= moved_ && old_.at(s).hash == hash && fn(old_.at(s).position)) return;
    }
  }

  // Where a lookup of `hash` first reads, for a prefetch ahead of it.
  void prefetch(std::uint64_t hash) const {
    __builtin_prefetch(&table_.at(table_.start(hash)));
    if (moved_ < old_.capacity()) __builtin_prefetch(&old_.at(old_.start(hash)));
  }

  void insert(std::uint64_t hash, LogPosition position) {
    CHECK(position >= RecordLog::kFirstPosition);
    const std::size_t after = size_ + 1;
    if (after * 10 > table_.capacity() * kPrepareTenths && next_.capacity() == 0) {
      next_ = Table(table_.capacity() * 2);
    }
    if (after * 10 > table_.capacity() * kLoadTenths) {
      // With the paces below, both are done by now; kept for safety.
      move_old(old_.capacity());
      release_old(old_.bytes_held());
      next_.prefault(next_.pages());
      old_ = std::move(table_);
      moved_ = 0;
      table_ = std::move(next_);
    }
    table_.place(hash, position);
    ++size_;
    if (size_ % kPrefaultEvery == 0) next_.prefault(1);
    move_old(kMovesPerInsert);
    if (size_ % kReleaseEvery == 0) release_old(kReleaseBytes);
  }

 private:
  static constexpr std::size_t kPrepareTenths = 6;   // the next table is made from 60% full
  static constexpr std::size_t kLoadTenths = 7;      // and takes over at 70%
  static constexpr std::size_t kPrefaultEvery = 8;   // inserts a page
  static constexpr std::size_t kMovesPerInsert = 4;  // old slots moved per insert
  static constexpr std::size_t kReleaseBytes = 1 << 20;
  static constexpr std::size_t kReleaseEvery = 256;  // inserts
  static constexpr std::size_t kPageBytes = 4096;
  struct Slot {
    std::uint64_t hash = 0;
    LogPosition position = 0;
  };
  // Between 60% and 70% of a table of C slots come 0.1 C inserts, to touch
  // the next table's 2 C x 16 / 4096 pages. A new table of 2C slots starts
  // with 0.7 C entries and grows at 1.4 C: its C old slots must be moved,
  // and then unmapped, in the 0.7 C inserts between.
  static_assert((kLoadTenths - kPrepareTenths) * kPageBytes / kPrefaultEvery >= 10 * 2 * sizeof(Slot),
                "the next table is touched before it takes over");
  static_assert(kMovesPerInsert * (2 * kLoadTenths - kLoadTenths) >= 2 * 10, "the move ends halfway");
  static_assert(kReleaseBytes / kReleaseEvery * (2 * kLoadTenths - kLoadTenths) >= 2 * 10 * sizeof(Slot),
                "the release ends in the other half");

  // A power-of-two array of slots in an anonymous mapping (zeroed: empty).
  class Table {
   public:
    Table() = default;
    explicit Table(std::size_t capacity) : capacity_(capacity), mapped_(capacity * sizeof(Slot)), held_(mapped_) {
      void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      CHECK(p != MAP_FAILED) << "mapping " << mapped_ << " bytes for the usage log's id index";
      slots_ = static_cast<Slot*>(p);
    }
    Table(Table&& o) noexcept { *this = std::move(o); }
    Table& operator=(Table&& o) noexcept {
      std::swap(slots_, o.slots_);
      std::swap(capacity_, o.capacity_);
      std::swap(mapped_, o.mapped_);
      std::swap(held_, o.held_);
      std::swap(prefaulted_, o.prefaulted_);
      return *this;
    }
    ~Table() {
      if (mapped_ > 0) ::munmap(slots_, mapped_);
    }

    std::size_t capacity() const { return capacity_; }
    std::size_t pages() const { return (capacity_ * sizeof(Slot) + kPageBytes - 1) / kPageBytes; }
    std::size_t bytes_held() const { return held_; }
    // An empty table (capacity 0) has no slots: every probe ends at once.
    std::size_t start(std::uint64_t hash) const { return capacity_ == 0 ? 0 : hash & (capacity_ - 1); }
    std::size_t next(std::size_t slot) const { return (slot + 1) & (capacity_ - 1); }
    bool empty_at(std::size_t slot) const { return capacity_ == 0 || slots_[slot].position == 0; }
    const Slot& at(std::size_t slot) const { return slots_[slot]; }

    void place(std::uint64_t hash, LogPosition position) {
      std::size_t slot = start(hash);
      while (!empty_at(slot)) slot = next(slot);
      slots_[slot] = {hash, position};
    }

    // Touches the next `n` pages not yet touched (writing a zero over a zero).
    void prefault(std::size_t n) {
      auto* bytes = reinterpret_cast<volatile char*>(slots_);
      for (const std::size_t end = std::min(pages(), prefaulted_ + n); prefaulted_ < end; ++prefaulted_) {
        bytes[prefaulted_ * kPageBytes] = 0;
      }
    }

    // Gives back up to `n` more bytes of pages from the end, and unmaps
    // the table once they all are; the table is no longer read.
    void release(std::size_t n) {
      n = std::min(n, held_);
      held_ -= n;
      if (n > 0) (void)::madvise(reinterpret_cast<char*>(slots_) + held_, n, MADV_DONTNEED);
      if (held_ == 0) *this = Table();
    }

   private:
    Slot* slots_ = nullptr;
    std::size_t capacity_ = 0;
    std::size_t mapped_ = 0;      // bytes, from slots_
    std::size_t held_ = 0;        // bytes from slots_ whose pages are not given back
    std::size_t prefaulted_ = 0;  // pages
  };

  // Moves up to `n` more slots of the old table.
  void move_old(std::size_t n) {
    for (const std::size_t end = std::min(old_.capacity(), moved_ + n); moved_ < end; ++moved_) {
      if (!old_.empty_at(moved_)) table_.place(old_.at(moved_).hash, old_.at(moved_).position);
    }
  }

  // Once every slot is moved: unmaps up to `n` more bytes of the old table.
  void release_old(std::size_t n) {
    if (old_.capacity() == 0 || moved_ < old_.capacity()) return;
    old_.release(n);
    if (old_.capacity() == 0) moved_ = 0;
  }

  Table table_;
  Table next_;             // from kPrepareTenths full: the next table, being touched
  Table old_;              // while growing: the table before, moved into table_ from slot 0 up
  std::size_t moved_ = 0;  // old_'s slots below this are in table_
  std::size_t size_ = 0;
};

Status validate_usage_event(const UsageEvent& event) {
  std::string broken = broken_rule(view_of(event));
  if (broken.empty()) return Status::ok();
  return Status::invalid_argument("usage event " + quoted(event.id) + ": " + broken);
}

void encode_usage_event(const UsageEvent& event, std::string& out) {
  ASSERT(validate_usage_event(event).is_ok());
  std::size_t at = out.size();
  std::string_view fields[kStrings] = {event.id, event.tenant_id, event.item, event.variant, event.source_id,
                                       event.key_id};
  std::size_t total = kFixedBytes;
  for (std::string_view f : fields) total += f.size();
  out.resize(at + total);
  char* p = out.data() + at;
  p[0] = static_cast<char>(kEncodingVersion);
  p[1] = static_cast<char>(event.product);
  for (int i = 0; i < kStrings; ++i) store<std::uint16_t>(p + 2 + 2 * i, static_cast<std::uint16_t>(fields[i].size()));
  store<std::uint16_t>(p + 14, 0);
  store<std::int64_t>(p + 16, event.quantity);
  store<std::int64_t>(p + 24, event.unit_price.nanos());
  store<std::int64_t>(p + 32, event.start.unix_micros);
  store<std::int64_t>(p + 40, event.end.unix_micros);
  char* s = p + kFixedBytes;
  for (std::string_view f : fields) {
    if (!f.empty()) std::memcpy(s, f.data(), f.size());
    s += f.size();
  }
}

Result<UsageEvent> decode_usage_event(std::string_view payload) {
  EventView v;
  std::string broken = parse(payload, v);
  if (!broken.empty()) return Status::invalid_argument("not a usage event: " + broken);
  UsageEvent e;
  e.id = v.id;
  e.tenant_id = v.tenant_id;
  e.product = static_cast<Product>(v.product);
  e.item = v.item;
  e.variant = v.variant;
  e.quantity = v.quantity;
  e.unit_price = Money::from_nanos(v.unit_price_nanos);
  e.start = Timestamp{v.start_us};
  e.end = Timestamp{v.end_us};
  e.source_id = v.source_id;
  e.key_id = v.key_id;
  return e;
}

UsageLog::UsageLog(std::unique_ptr<IdIndex> index) : index_(std::move(index)) {}
UsageLog::~UsageLog() = default;

Result<std::unique_ptr<UsageLog>> UsageLog::open(const UsageLogOptions& options) {
  std::unique_ptr<UsageLog> log(
      new UsageLog(std::make_unique<IdIndex>(std::min<std::size_t>(options.expected_events, limits::kUsageLogEvents))));
  // Hash matches seen during replay, confirmed (or not) once the log is open.
  std::vector<std::pair<LogPosition, LogPosition>> suspects;
  auto opened = RecordLog::open(
      {.dir = options.dir, .file_name = "usage.log"}, [&](LogPosition position, std::string_view payload) -> Status {
        EventView v;
        std::string broken = parse(payload, v);
        if (!broken.empty()) {
          return Status::internal("the record at offset " + std::to_string(position) + " of " + options.dir +
                                  "/usage.log is not a usage event: " + broken);
        }
        if (log->index_->size() >= limits::kUsageLogEvents) {
          return Status::internal(options.dir + "/usage.log holds more events than a usage log may");
        }
        std::uint64_t h = hash_id(v.id);
        log->index_->find(h, [&](LogPosition earlier) {
          suspects.emplace_back(earlier, position);
          return false;  // every one
        });
        log->index_->insert(h, position);
        log->totals_.events += 1;
        log->totals_.quantity += v.quantity;
        auto it = log->tenant_totals_.find(v.tenant_id);
        if (it == log->tenant_totals_.end())
          it = log->tenant_totals_.emplace(std::string(v.tenant_id), UsageTotals{}).first;
        it->second.events += 1;
        it->second.quantity += v.quantity;
        return Status::ok();
      });
  if (!opened) return opened.status();
  log->log_ = std::move(opened).value();
  std::string first, second;
  for (auto [a, b] : suspects) {
    HR_RETURN_IF_ERROR(log->log_->read(a, first));
    HR_RETURN_IF_ERROR(log->log_->read(b, second));
    if (id_of(first) == id_of(second)) {
      // Never written by this code: a bug, or a log edited by hand. Charging
      // it twice would be wrong, dropping either silently too.
      return Status::internal("usage event " + quoted(id_of(first)) + " is in " + log->log_->path() +
                              " twice, at offsets " + std::to_string(a) + " and " + std::to_string(b));
    }
  }
  return log;
}

std::vector<Status> UsageLog::record_each(std::span<const UsageEvent> events) {
  std::vector<Status> statuses(events.size());
  (void)record_impl(events, statuses);
  return statuses;
}

Status UsageLog::record(std::span<const UsageEvent> events) { return record_impl(events, {}); }

void UsageLog::record_async(std::span<const UsageEvent> events, std::function<void(const Status&)> done) {
  Status first_error;
  const LogPosition wait_end = append(events, {}, first_error);
  if (wait_end == 0) {
    done(first_error);
    return;
  }
  log_->when_durable(wait_end, [first_error, done = std::move(done)](const Status& durable) {
    done(first_error.is_ok() ? durable : first_error);
  });
}

Status UsageLog::record_impl(std::span<const UsageEvent> events, std::span<Status> statuses) {
  Status first_error;
  const LogPosition wait_end = append(events, statuses, first_error);
  if (wait_end > 0) {
    Status durable = log_->wait_durable(wait_end);
    if (!durable) {
      // Every event that was appended or found waits on this; report it on
      // each that had no error of its own.
      if (first_error.is_ok()) first_error = durable;
      for (std::size_t i = 0; i < statuses.size(); ++i) {
        if (statuses[i].is_ok()) statuses[i] = durable;
      }
    }
  }
  return first_error;
}

LogPosition UsageLog::append(std::span<const UsageEvent> events, std::span<Status> statuses, Status& first_error) {
  auto fail = [&](std::size_t i, Status s) {
    if (first_error.is_ok()) first_error = s;
    if (!statuses.empty()) statuses[i] = std::move(s);
  };
  if (events.size() > limits::kUsageBatchEvents) {
    Status s = Status::invalid_argument("a batch of " + std::to_string(events.size()) + " usage events; at most " +
                                        std::to_string(limits::kUsageBatchEvents));
    for (std::size_t i = 0; i < events.size(); ++i) fail(i, s);
    return 0;
  }

  // Encoded outside the lock, into buffers each thread reuses.
  thread_local std::string encoded;
  thread_local std::vector<std::size_t> ends;  // kInvalid for an event refused
  thread_local std::vector<std::uint64_t> hashes;
  constexpr std::size_t kInvalid = ~std::size_t{0};
  constexpr std::size_t kPrefetchAhead = 8;
  encoded.clear();
  ends.clear();
  hashes.clear();
  for (std::size_t i = 0; i < events.size(); ++i) {
    Status valid = validate_usage_event(events[i]);
    if (!valid) {
      fail(i, std::move(valid));
      ends.push_back(kInvalid);
      hashes.push_back(0);
      continue;
    }
    encode_usage_event(events[i], encoded);
    ends.push_back(encoded.size());
    hashes.push_back(hash_id(events[i].id));
  }

  LogPosition wait_end = 0;  // every record this batch appended or found lies before it
  {
    std::lock_guard lock(mu_);
    std::size_t begin = 0;
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (ends[i] == kInvalid) continue;
      std::string_view payload(encoded.data() + begin, ends[i] - begin);
      begin = ends[i];
      const std::uint64_t h = hashes[i];
      // The index is far larger than the caches: each lookup's first read
      // misses. Asking for a later event's slot now overlaps those misses.
      if (i + kPrefetchAhead < events.size()) index_->prefetch(hashes[i + kPrefetchAhead]);
      bool known = false;
      index_->find(h, [&](LogPosition position) {
        if (Status r = log_->read(position, stored_); !r) {
          fail(i, std::move(r));
          known = true;
          return true;
        }
        if (id_of(stored_) != events[i].id) return false;  // another id with the same hash
        known = true;
        if (stored_ == payload) {
          // A retry: done once the first copy is durable.
          wait_end = std::max(wait_end, position + RecordLog::record_bytes(stored_.size()));
        } else {
          EventView first, again;
          (void)parse(stored_, first);
          (void)parse(payload, again);
          fail(i,
               Status::conflict("usage event " + quoted(events[i].id) + " was already recorded with other content (" +
                                first_difference(first, again) + " differs)"));
        }
        return true;
      });
      if (known) continue;
      if (index_->size() >= limits::kUsageLogEvents) {
        fail(i, Status::unavailable("the usage log holds " + std::to_string(limits::kUsageLogEvents) + " events"));
        continue;
      }
      // Woken by the wait (or when_durable) that follows: the whole batch shares one write and sync.
      Result<LogPosition> position = log_->enqueue(payload, RecordLog::Wake::kLater);
      if (!position) {
        fail(i, position.status());
        continue;
      }
      index_->insert(h, *position);
      wait_end = std::max(wait_end, *position + RecordLog::record_bytes(payload.size()));
      const UsageEvent& e = events[i];
      totals_.events += 1;
      totals_.quantity += e.quantity;
      auto it = tenant_totals_.find(std::string_view(e.tenant_id));
      if (it == tenant_totals_.end()) it = tenant_totals_.emplace(e.tenant_id, UsageTotals{}).first;
      it->second.events += 1;
      it->second.quantity += e.quantity;
    }
  }

  return wait_end;
}

Result<LogPosition> UsageLog::read(LogPosition from, std::size_t max_events, const ReadFn& fn) const {
  Status error;
  auto next = log_->scan(from, max_events, [&](LogPosition position, std::string_view payload) {
    if (!error.is_ok()) return;
    auto event = decode_usage_event(payload);
    if (!event) {
      error = Status::internal("the record at offset " + std::to_string(position) + " " + event.status().message());
      return;
    }
    fn(position, *event);
  });
  if (!error.is_ok()) return error;
  return next;
}

UsageTotals UsageLog::totals() const {
  std::lock_guard lock(mu_);
  return totals_;
}

UsageTotals UsageLog::tenant_totals(std::string_view tenant_id) const {
  std::lock_guard lock(mu_);
  auto it = tenant_totals_.find(tenant_id);
  return it == tenant_totals_.end() ? UsageTotals{} : it->second;
}

}  // namespace headroom::ledger
