// RecordLog: an append-only log of opaque records in one file; each record
// checksummed, acknowledged only once it is on disk, many writers sharing
// each fdatasync (group commit); replayed when opened.
//
// The file, `<dir>/<file_name>` (integers little-endian, no padding):
//
//   File header, at offset 0
//   +--------+------+----------------------------------------------------------+
//   | offset | size | field                                                    |
//   +--------+------+----------------------------------------------------------+
//   |      0 |    8 | magic, the ASCII bytes "HRRECLOG"                        |
//   |      8 |    4 | format version: 1                                        |
//   |     12 |    4 | CRC-32C of bytes 0..11                                   |
//   +--------+------+----------------------------------------------------------+
//
//   Records, back to back from offset 16 (kFirstPosition)
//   +--------+------+----------------------------------------------------------+
//   | offset | size | field                                                    |
//   +--------+------+----------------------------------------------------------+
//   |      0 |    4 | CRC-32C of bytes 4 .. 24+length-1 (the rest of the       |
//   |        |      | header and the payload)                                  |
//   |      4 |    4 | magic 0x63655248 (the bytes "HRec")                      |
//   |      8 |    4 | payload length in bytes, at most kRecordLogPayloadBytes  |
//   |     12 |    4 | reserved, 0                                              |
//   |     16 |    8 | sequence number: the record's index in the log, from 0   |
//   |     24 |  len | payload                                                  |
//   +--------+------+----------------------------------------------------------+
//
//   Zeros, to the end of the file. The writer keeps the file zero-filled
//   up to kRecordLogZeroAheadBytes ahead of the log, adding
//   kRecordLogZeroStepBytes at a time once that much is missing (one large
//   fill would stall that write's acknowledgement), so that the fdatasync
//   after most writes overwrites allocated, written blocks and has no
//   metadata to flush. Measured when this was written, on the project's
//   ext4 disk: a 4 KiB write and fdatasync took about 95 us into
//   zero-filled blocks, 136 us into fallocate()d ones (their extents are
//   converted on the first write) and 171 us at the end of the file. The price is that every byte
//   is written twice, which shows at large batches (usage_log_bench: about
//   2.4M events/s zero-filled against 2.9M appending at batches of 100,
//   280k against 200k at batches of 1).
//
// A record's position is its offset in the file. The file is created whole:
// the header is written to `<file_name>.tmp`, synced, renamed into place, and
// the directory synced, so a file under the log's name always has a header.
//
// Replay (open): records are read in order from kFirstPosition. The log ends
// at the first place where
//   - the file ends, or only zeros follow (a clean end: preallocated space);
//   - a record is invalid: a header cut short, a bad magic, a length past
//     the limit or past the end of the file, a nonzero reserved field, a
//     sequence number out of order, or a checksum that does not match (a
//     torn write, or corruption);
//   - a zero header is followed by nonzero bytes (a later write torn).
// Nothing past that place is accepted: the file is truncated there and
// synced, the cut is logged (offset and reason) and reported in
// replay_report(). A record that was acknowledged was synced with every
// record before it, so a cut loses only unacknowledged records unless the
// disk itself corrupted a synced one. A bad file header fails open().
//
// Concurrency: one process at a time (`<file_name>.lock`, flock). Every
// method may be called from any thread. One writer thread takes whatever
// has been enqueued since its last write, writes it with one pwrite and one
// fdatasync, then wakes the waiters. After a failed write or sync the log
// refuses appends, and fails the callers still waiting (the kernel may have
// dropped the dirty pages, so what is in memory no longer says what is on
// disk): reopen it to recover.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"
#include "ledger/ledger_limits.h"

namespace headroom::ledger {

using LogPosition = std::uint64_t;

struct RecordLogOptions {
  std::string dir;  // created if missing
  std::string file_name = "records.log";
};

// What open() found. A counter a caller can export: tails_cut.
struct ReplayReport {
  std::uint64_t records = 0;    // valid records replayed
  LogPosition end = 0;          // just past the last valid record: where appends go
  std::uint64_t tails_cut = 0;  // 1 when an invalid tail was cut off at `end`
  std::uint64_t bytes_cut = 0;  // bytes from `end` to the file's former end (zeros included)
  std::string reason;           // why it was cut: "a checksum mismatch at offset 4096"
};

// Counters since open, for benchmarks and metrics.
struct RecordLogStats {
  std::uint64_t records = 0;  // appended
  std::uint64_t syncs = 0;    // group commits: one write and one fdatasync each
  std::uint64_t bytes = 0;    // of records written
};

class RecordLog {
 public:
  static constexpr LogPosition kFirstPosition = 16;
  static constexpr std::size_t kHeaderBytes = 24;
  static_assert(kHeaderBytes == limits::kRecordLogHeaderBytes);

  // Bytes a record with a payload of `payload_bytes` takes in the file.
  static constexpr std::uint64_t record_bytes(std::size_t payload_bytes) { return kHeaderBytes + payload_bytes; }

  // Called for each valid record in order during open(); an error fails open().
  using ReplayFn = std::function<Status(LogPosition position, std::string_view payload)>;
  using ScanFn = std::function<void(LogPosition position, std::string_view payload)>;

  // Opens (or creates) the log and replays it through `on_record` (may be null).
  static Result<std::unique_ptr<RecordLog>> open(const RecordLogOptions& options, const ReplayFn& on_record);

  // Waits until everything enqueued is durable, then closes.
  ~RecordLog();
  RecordLog(const RecordLog&) = delete;
  RecordLog& operator=(const RecordLog&) = delete;

  // Appends the payloads in order and returns once they are durable.
  Status append(std::span<const std::string_view> payloads);

  // The two halves of append, for callers that order appends under a lock of
  // their own (UsageLog): enqueue() copies the record into the writer's queue
  // and returns its position at once (waiting only while the queue is full);
  // wait_durable(end) returns once every record before `end` is on disk.
  // Payloads longer than kRecordLogPayloadBytes are a programmer error.
  // With Wake::kLater the writer is not woken for it, and a write already
  // under way does not take it after: a caller enqueueing many records lets
  // them share one write and sync, and wakes the writer with its
  // wait_durable() (or the next enqueue that wakes it).
  enum class Wake : std::uint8_t { kNow, kLater };
  Result<LogPosition> enqueue(std::string_view payload, Wake wake = Wake::kNow);
  Status wait_durable(LogPosition end);

  // wait_durable() without the wait: runs `fn` with what it would return,
  // at once on this thread when that is known now, else on the writer's
  // thread right after the sync that makes `end` durable (or fails). `fn`
  // runs outside the log's lock but holds up the next write: keep it quick.
  using DurableFn = std::function<void(const Status&)>;
  void when_durable(LogPosition end, DurableFn fn);

  // Copies the payload of the record at `position` (any enqueued record,
  // durable or not) into `payload`. Checks its checksum.
  Status read(LogPosition position, std::string& payload) const;

  // Calls `fn` for the durable records from `from` (a record's position, or
  // kFirstPosition), at most `max_records` of them, and returns the position
  // after the last one it read (== durable_end() when it read them all).
  Result<LogPosition> scan(LogPosition from, std::size_t max_records, const ScanFn& fn) const;

  LogPosition durable_end() const;
  LogPosition end() const;  // after the last enqueued record
  RecordLogStats stats() const;
  const ReplayReport& replay_report() const { return report_; }
  const std::string& path() const { return path_; }

 private:
  RecordLog(std::string path, int fd, int lock_fd, ReplayReport report, std::uint64_t file_bytes);
  void writer_loop();
  bool want_write_locked();
  // Runs the listeners whose records are durable (all of them once the log
  // has failed, or with kAll as it closes); takes `lock` (on mu_) and gives it back.
  enum class Listeners : std::uint8_t { kDurable, kAll };
  void run_listeners(std::unique_lock<std::mutex>& lock, Listeners which);
  Status write_batch(const std::string& batch, LogPosition start);
  Status read_file(LogPosition position, std::string& payload) const;

  const std::string path_;
  const int fd_;
  const int lock_fd_;
  const ReplayReport report_;
  std::uint64_t zeroed_end_;  // writer thread only: the file is written (records or zeros) up to here

  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // the writer waits for records
  std::condition_variable space_cv_;  // producers wait for queue space
  // Batches are numbered from 1 as the writer takes them (modulo 2^32).
  // A producer waits for the batch that holds its last record, the one in
  // flight or the one queued, on done_[its number % 2] (a futex, without
  // mu_), which the writer sets to the batch's number once it is written
  // and synced (or failed): a sync wakes only the callers it served, and
  // they return without taking mu_ again.
  std::uint32_t batches_taken_ = 0;
  std::atomic<std::uint32_t> done_[2] = {0, 0};
  std::string pending_;  // enqueued records, from pending_start_
  LogPosition pending_start_;
  std::string inflight_;  // being written by the writer, from inflight_start_
  LogPosition inflight_start_;
  std::atomic<LogPosition> durable_end_;  // written under mu_
  std::uint64_t next_sequence_;
  RecordLogStats stats_;
  Status failed_;  // sticky: the first write or sync error
  std::vector<std::pair<LogPosition, DurableFn>> listeners_;  // under mu_: when_durable()'s, in no order
  bool writer_waiting_ = false;  // the writer waits on work_cv_
  bool write_wanted_ = false;    // a write was asked for (Wake::kNow, a wait, a full queue) since the last one
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace headroom::ledger
