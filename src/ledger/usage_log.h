// UsageLog: the durable usage log, the ledger's UsageSink. Each usage event
// is one record of a RecordLog (`<dir>/usage.log`, format in record_log.h)
// whose payload is the event's encoding below. record() returns once the
// events are on disk; many concurrent callers share each fdatasync.
//
// Idempotency: an event's id is its idempotency key. An id is recorded at
// most once: a known id with the same content is a no-op (acknowledged once
// the first copy is durable), with other content a conflict naming the id.
// The check and the append happen under one lock that also orders the
// appends, so two concurrent writers of one id, or one id twice in a batch,
// never append it twice. The id index (id -> position) is in memory,
// rebuilt by replaying the log at open; an id found twice on replay fails
// open() (it would be charged twice).
//
// Event payload (integers little-endian, no padding; strings are UTF-8 or
// any bytes, without terminators):
//   +--------+------+---------------------------------------------------------+
//   | offset | size | field                                                   |
//   +--------+------+---------------------------------------------------------+
//   |      0 |    1 | encoding version: 1                                     |
//   |      1 |    1 | product: 0 gpu_time, 1 tokens                           |
//   |      2 |    2 | id length, 1..kUsageIdBytes                             |
//   |      4 |    2 | tenant_id length, 1..kUsageTextBytes                    |
//   |      6 |    2 | item length, 0..kUsageTextBytes (GPU type or model)     |
//   |      8 |    2 | variant length, 0..kUsageTextBytes (tier, input/output) |
//   |     10 |    2 | source_id length, 0..kUsageTextBytes                    |
//   |     12 |    2 | key_id length, 0..kUsageTextBytes                       |
//   |     14 |    2 | reserved, 0                                             |
//   |     16 |    8 | quantity, 0..kUsageQuantityMax (GPU-ms or tokens)       |
//   |     24 |    8 | unit price, nano-dollars, >= 0                          |
//   |     32 |    8 | start, unix microseconds                                |
//   |     40 |    8 | end, unix microseconds, >= start                        |
//   |     48 |    * | id, tenant_id, item, variant, source_id, key_id, back   |
//   |        |      | to back                                                 |
//   +--------+------+---------------------------------------------------------+
// The key_id length was a reserved zero before key ids were metered, so
// events written then read as events without a key.
// The encoding is canonical (one byte string per event), so "the same
// content" is byte equality of encodings.
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "ledger/ledger_limits.h"
#include "ledger/record_log.h"
#include "ledger/usage.h"

namespace headroom::ledger {

// Checks an event against the limits and the encoding's rules.
Status validate_usage_event(const UsageEvent& event);

// Appends the encoding of a valid event to `out`.
void encode_usage_event(const UsageEvent& event, std::string& out);

// Decodes one payload, checking it as outside input.
Result<UsageEvent> decode_usage_event(std::string_view payload);

struct UsageLogOptions {
  std::string dir;                       // created if missing; holds usage.log
  std::size_t expected_events = 65'536;  // sizes the id index up front (it grows past it)
};

struct UsageTotals {
  std::uint64_t events = 0;
  std::int64_t quantity = 0;  // GPU-ms and tokens, summed as they come
  auto operator<=>(const UsageTotals&) const = default;
};

class UsageLog final : public UsageSink {
 public:
  // Opens (or creates) the log in options.dir and replays it. A torn or
  // corrupt tail is cut and reported (replay_report()).
  static Result<std::unique_ptr<UsageLog>> open(const UsageLogOptions& options);
  ~UsageLog() override;

  // Records each event on its own: a valid new event is appended; a known
  // id is a no-op (same content) or a conflict (other content); an invalid
  // event is refused. Returns one Status per event, once every event it
  // appended or found is durable. At most kUsageBatchEvents events.
  std::vector<Status> record_each(std::span<const UsageEvent> events);

  // The same, returning the first error (ok when every event is recorded or
  // already was). The other events of the batch are recorded regardless.
  Status record(std::span<const UsageEvent> events) override;

  // The same without waiting: `done` runs at once when nothing needs a sync
  // (every event refused, or found durable), else on the log's writer
  // thread right after the sync. The events are checked and appended (or
  // refused) before this returns.
  void record_async(std::span<const UsageEvent> events, std::function<void(const Status&)> done) override;

  // For consumers (the ledger's rating): calls `fn` for the durable events
  // from `from` (RecordLog::kFirstPosition, or a position a previous read
  // returned), at most `max_events`, and returns the position to read on from.
  using ReadFn = std::function<void(LogPosition position, const UsageEvent& event)>;
  Result<LogPosition> read(LogPosition from, std::size_t max_events, const ReadFn& fn) const;

  // Events recorded (enqueued: durable, or being made durable), all and per tenant.
  UsageTotals totals() const;
  UsageTotals tenant_totals(std::string_view tenant_id) const;

  LogPosition durable_end() const { return log_->durable_end(); }
  RecordLogStats log_stats() const { return log_->stats(); }
  const ReplayReport& replay_report() const { return log_->replay_report(); }

 private:
  class IdIndex;
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  explicit UsageLog(std::unique_ptr<IdIndex> index);
  Status record_impl(std::span<const UsageEvent> events, std::span<Status> statuses);
  // record_impl() up to its wait: returns the end to wait for (0: none), and
  // the first event's error in `first_error`.
  LogPosition append(std::span<const UsageEvent> events, std::span<Status> statuses, Status& first_error);

  std::unique_ptr<IdIndex> index_;  // under mu_
  std::unique_ptr<RecordLog> log_;
  mutable std::mutex mu_;  // orders the check-and-append of every event
  std::string stored_;     // under mu_: a known id's first payload, read back
  UsageTotals totals_;     // under mu_
  std::unordered_map<std::string, UsageTotals, StringHash, std::equal_to<>> tenant_totals_;  // under mu_
};

}  // namespace headroom::ledger
