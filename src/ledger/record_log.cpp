#include "ledger/record_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <spdlog/spdlog.h>

#include "ledger/crc32c.h"

namespace headroom::ledger {
namespace {

static_assert(std::endian::native == std::endian::little, "the log's integers are written in native order");

constexpr char kFileMagic[8] = {'H', 'R', 'R', 'E', 'C', 'L', 'O', 'G'};
constexpr std::uint32_t kFormatVersion = 1;
constexpr std::uint32_t kRecordMagic = 0x63655248;  // "HRec"

// Offsets in a record header (the table in record_log.h).
constexpr std::size_t kCrcAt = 0;
constexpr std::size_t kMagicAt = 4;
constexpr std::size_t kLengthAt = 8;
constexpr std::size_t kReservedAt = 12;
constexpr std::size_t kSequenceAt = 16;

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

std::string errno_text(int err) { return std::system_category().message(err); }

Status io_error(const std::string& what, const std::string& path, int err) {
  return Status::internal(what + " " + path + ": " + errno_text(err));
}

// Writes all of `data` at `offset`, across short writes and EINTR.
int pwrite_all(int fd, const char* data, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

// Reads exactly `size` bytes at `offset`; EIO-like errors and a short file both fail.
int pread_all(int fd, char* data, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pread(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // the file is shorter than a record we know of
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

int sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

bool all_zero(const char* p, std::size_t n) {
  for (; n >= 8; p += 8, n -= 8) {
    if (load<std::uint64_t>(p) != 0) return false;
  }
  for (; n > 0; ++p, --n) {
    if (*p != 0) return false;
  }
  return true;
}

std::array<char, RecordLog::kFirstPosition> file_header() {
  std::array<char, RecordLog::kFirstPosition> h{};
  std::memcpy(h.data(), kFileMagic, 8);
  store<std::uint32_t>(h.data() + 8, kFormatVersion);
  store<std::uint32_t>(h.data() + 12, crc32c(std::string_view(h.data(), 12)));
  return h;
}

// Creates the file with its header, atomically: a file under the log's name
// always has a whole header.
Status create_file(const std::string& dir, const std::string& path) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("creating", tmp, errno);
  auto header = file_header();
  int err = pwrite_all(fd, header.data(), header.size(), 0);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  ::close(fd);
  if (err != 0) return io_error("writing", tmp, err);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_error("renaming", tmp, errno);
  if ((err = sync_dir(dir)) != 0) return io_error("syncing", dir, err);
  return Status::ok();
}

// The checksum of a record whose header and payload lie contiguous at `record`.
std::uint32_t record_crc(const char* record, std::size_t payload_bytes) {
  return crc32c(std::string_view(record + kMagicAt, RecordLog::kHeaderBytes - kMagicAt + payload_bytes));
}

// Why the record at `p` (with `available` bytes of file from it) is not a
// valid record number `sequence`; empty when it is. Reads no further than
// `available`.
std::string invalid_record(const char* p, std::uint64_t available, std::uint64_t sequence) {
  if (available < RecordLog::kHeaderBytes) return "a record header cut short";
  if (load<std::uint32_t>(p + kMagicAt) != kRecordMagic) return "a bad record magic";
  std::uint32_t length = load<std::uint32_t>(p + kLengthAt);
  if (length > limits::kRecordLogPayloadBytes) return "a record length of " + std::to_string(length) + " bytes";
  if (RecordLog::record_bytes(length) > available) return "a record running past the end of the file";
  if (load<std::uint32_t>(p + kReservedAt) != 0) return "a nonzero reserved field";
  std::uint64_t seq = load<std::uint64_t>(p + kSequenceAt);
  if (seq != sequence)
    return "sequence number " + std::to_string(seq) + " where " + std::to_string(sequence) + " belongs";
  if (load<std::uint32_t>(p + kCrcAt) != record_crc(p, length)) return "a checksum mismatch";
  return {};
}

struct Replayed {
  ReplayReport report;
  std::uint64_t file_bytes = 0;  // after any cut
};

// Reads the whole file (mapped), validates it, calls `on_record`, and cuts
// an invalid tail.
Result<Replayed> replay(int fd, const std::string& path, const RecordLog::ReplayFn& on_record) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return io_error("reading the size of", path, errno);
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > limits::kRecordLogFileBytes + limits::kRecordLogZeroAheadBytes) {
    return Status::internal(path + " is larger than a record log may grow");
  }
  if (size < RecordLog::kFirstPosition) return Status::internal(path + " is too short for a record log's header");

  const char* base = nullptr;
  void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (mapped == MAP_FAILED) return io_error("mapping", path, errno);
  base = static_cast<const char*>(mapped);
  ::madvise(mapped, size, MADV_SEQUENTIAL);
  struct Unmap {
    void* p;
    std::size_t n;
    ~Unmap() { ::munmap(p, n); }
  } unmap{mapped, size};

  auto header = file_header();
  if (std::memcmp(base, header.data(), header.size()) != 0) {
    return Status::internal(path + " does not start with a record log header (format " +
                            std::to_string(kFormatVersion) + "); it is another file, another version, or corrupt");
  }

  Replayed out;
  ReplayReport& r = out.report;
  LogPosition pos = RecordLog::kFirstPosition;
  std::string reason;
  while (pos < size) {
    const char* p = base + pos;
    std::uint64_t available = size - pos;
    if (all_zero(p, std::min<std::uint64_t>(available, RecordLog::kHeaderBytes))) {
      // The end of the log, if nothing but zeros follows.
      const char* nonzero = nullptr;
      for (const char* q = p; q < base + size; q += 4096) {
        if (!all_zero(q, std::min<std::uint64_t>(4096, static_cast<std::uint64_t>(base + size - q)))) {
          nonzero = q;
          break;
        }
      }
      if (nonzero != nullptr) reason = "nonzero bytes after a zero record header (a torn write)";
      break;
    }
    reason = invalid_record(p, available, r.records);
    if (!reason.empty()) break;
    std::uint32_t length = load<std::uint32_t>(p + kLengthAt);
    if (on_record) HR_RETURN_IF_ERROR(on_record(pos, std::string_view(p + RecordLog::kHeaderBytes, length)));
    ++r.records;
    pos += RecordLog::record_bytes(length);
  }
  r.end = pos;
  out.file_bytes = size;
  if (!reason.empty()) {
    r.tails_cut = 1;
    r.bytes_cut = size - pos;
    r.reason = reason + " at offset " + std::to_string(pos);
    spdlog::warn("record log {}: cut {} bytes after record {}: {}; nothing after offset {} is kept", path, r.bytes_cut,
                 r.records, r.reason, pos);
    if (::ftruncate(fd, static_cast<off_t>(pos)) != 0) return io_error("truncating", path, errno);
    if (::fsync(fd) != 0) return io_error("syncing", path, errno);
    out.file_bytes = pos;
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<RecordLog>> RecordLog::open(const RecordLogOptions& options, const ReplayFn& on_record) {
  if (options.dir.empty() || options.file_name.empty() || options.file_name.find('/') != std::string::npos) {
    return Status::invalid_argument("a record log needs a directory and a plain file name");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return Status::internal("creating " + options.dir + ": " + ec.message());
  std::string path = options.dir + "/" + options.file_name;

  std::string lock_path = path + ".lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return io_error("opening", lock_path, errno);
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(lock_fd);
    if (err == EWOULDBLOCK) return Status::unavailable(path + " is open in another process");
    return io_error("locking", lock_path, err);
  }
  auto fail = [&](int fd, Status s) -> Status {
    if (fd >= 0) ::close(fd);
    ::close(lock_fd);
    return s;
  };

  if (::access(path.c_str(), F_OK) != 0) {
    if (errno != ENOENT) return fail(-1, io_error("opening", path, errno));
    Status created = create_file(options.dir, path);
    if (!created) return fail(-1, created);
  }
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(-1, io_error("opening", path, errno));
  auto replayed = replay(fd, path, on_record);
  if (!replayed) return fail(fd, replayed.status());
  return std::unique_ptr<RecordLog>(
      new RecordLog(path, fd, lock_fd, std::move(replayed->report), replayed->file_bytes));
}

RecordLog::RecordLog(std::string path, int fd, int lock_fd, ReplayReport report, std::uint64_t file_bytes)
    : path_(std::move(path)),
      fd_(fd),
      lock_fd_(lock_fd),
      report_(std::move(report)),
      zeroed_end_(file_bytes),
      pending_start_(report_.end),
      inflight_start_(report_.end),
      durable_end_(report_.end),
      next_sequence_(report_.records) {
  pending_.reserve(1 << 20);
  inflight_.reserve(1 << 20);
  writer_ = std::thread([this] { writer_loop(); });
}

RecordLog::~RecordLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_one();
  writer_.join();
  ::close(fd_);
  ::close(lock_fd_);  // releases the flock
}

// Under mu_: asks the writer for a write of what is pending; true when it
// is waiting with records to write (it is now counted as woken: the caller
// notifies it).
bool RecordLog::want_write_locked() {
  write_wanted_ = true;
  if (!writer_waiting_ || pending_.empty()) return false;
  writer_waiting_ = false;
  return true;
}

Result<LogPosition> RecordLog::enqueue(std::string_view payload, Wake wake) {
  CHECK(payload.size() <= limits::kRecordLogPayloadBytes) << "a record of " << payload.size() << " bytes";
  std::size_t bytes = record_bytes(payload.size());
  std::unique_lock lock(mu_);
  // Backpressure: wait while the queue is full (a record always fits an empty
  // one); a full queue of records enqueued with kLater wakes the writer.
  auto has_room = [&] {
    return !failed_.is_ok() || pending_.empty() || pending_.size() + bytes <= limits::kRecordLogQueueBytes;
  };
  if (!has_room() && want_write_locked()) work_cv_.notify_one();
  space_cv_.wait(lock, has_room);
  if (!failed_.is_ok()) return failed_;
  LogPosition position = pending_start_ + pending_.size();
  if (position + bytes > limits::kRecordLogFileBytes) {
    return Status::unavailable(path_ + " is full (" + std::to_string(limits::kRecordLogFileBytes) + " bytes)");
  }
  std::size_t at = pending_.size();
  pending_.resize(at + bytes);
  char* p = pending_.data() + at;
  store<std::uint32_t>(p + kMagicAt, kRecordMagic);
  store<std::uint32_t>(p + kLengthAt, static_cast<std::uint32_t>(payload.size()));
  store<std::uint32_t>(p + kReservedAt, 0);
  store<std::uint64_t>(p + kSequenceAt, next_sequence_++);
  stats_.records += 1;
  if (!payload.empty()) std::memcpy(p + kHeaderBytes, payload.data(), payload.size());
  store<std::uint32_t>(p + kCrcAt, record_crc(p, payload.size()));
  ASSERT(invalid_record(p, bytes, next_sequence_ - 1).empty());
  const bool notify = wake == Wake::kNow && want_write_locked();
  lock.unlock();
  if (notify) work_cv_.notify_one();
  return position;
}

Status RecordLog::wait_durable(LogPosition end) {
  std::uint32_t batch;
  {
    std::lock_guard lock(mu_);
    CHECK(end <= pending_start_ + pending_.size()) << "waiting for " << end << ", a position not enqueued";
    if (durable_end_.load(std::memory_order_relaxed) >= end) return Status::ok();
    // Records enqueued with Wake::kLater (not those already being written).
    if (end > pending_start_ && want_write_locked()) work_cv_.notify_one();
    if (!failed_.is_ok()) return failed_;
    // In the batch being written, or in the next one.
    batch = end <= pending_start_ ? batches_taken_ : batches_taken_ + 1;
  }
  std::atomic<std::uint32_t>& done = done_[batch % 2];
  for (std::uint32_t seen = done.load(std::memory_order_acquire); static_cast<std::int32_t>(seen - batch) < 0;
       seen = done.load(std::memory_order_acquire)) {
    done.wait(seen, std::memory_order_acquire);
  }
  if (durable_end_.load(std::memory_order_acquire) >= end) return Status::ok();
  std::lock_guard lock(mu_);
  return failed_;
}

void RecordLog::when_durable(LogPosition end, DurableFn fn) {
  Status now;
  {
    std::lock_guard lock(mu_);
    CHECK(end <= pending_start_ + pending_.size()) << "waiting for " << end << ", a position not enqueued";
    now = failed_;
    if (now.is_ok() && durable_end_.load(std::memory_order_relaxed) < end) {
      listeners_.emplace_back(end, std::move(fn));
      // Records enqueued with Wake::kLater (not those already being written).
      if (end > pending_start_ && want_write_locked()) work_cv_.notify_one();
      return;
    }
  }
  fn(now);
}

void RecordLog::run_listeners(std::unique_lock<std::mutex>& lock, Listeners which) {
  if (listeners_.empty()) return;
  const LogPosition durable = durable_end_.load(std::memory_order_relaxed);
  const Status status = failed_;
  const bool all = which == Listeners::kAll || !status.is_ok();
  std::vector<std::pair<LogPosition, DurableFn>> ready;
  std::erase_if(listeners_, [&](auto& listener) {
    if (!all && listener.first > durable) return false;
    ready.push_back(std::move(listener));
    return true;
  });
  lock.unlock();
  for (auto& [end, fn] : ready) {
    fn(status.is_ok() && end > durable
           ? Status::unavailable("record log " + path_ + " closed before the record was written")
           : status);
  }
  lock.lock();
}

Status RecordLog::append(std::span<const std::string_view> payloads) {
  LogPosition end = 0;
  for (std::string_view payload : payloads) {
    HR_ASSIGN_OR_RETURN(LogPosition position, enqueue(payload, Wake::kLater));  // one sync for them all
    end = position + record_bytes(payload.size());
  }
  return end == 0 ? Status::ok() : wait_durable(end);
}

LogPosition RecordLog::durable_end() const { return durable_end_.load(std::memory_order_acquire); }

LogPosition RecordLog::end() const {
  std::lock_guard lock(mu_);
  return pending_start_ + pending_.size();
}

RecordLogStats RecordLog::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void RecordLog::writer_loop() {
  std::unique_lock lock(mu_);
  while (true) {
    // Records enqueued with Wake::kLater wait for a wake, even when they
    // came during the last write: they share the next sync someone asks for
    // instead of costing one of their own.
    writer_waiting_ = true;
    work_cv_.wait(lock, [&] { return (write_wanted_ && !pending_.empty()) || stopping_; });
    writer_waiting_ = false;
    if (pending_.empty()) break;  // stopping, and everything is written
    write_wanted_ = false;  // this write takes everything asked for so far
    // Take the whole queue: everything enqueued since the last write shares this one.
    std::swap(pending_, inflight_);
    ++batches_taken_;
    inflight_start_ = pending_start_;
    pending_start_ += inflight_.size();
    bool failed = !failed_.is_ok();
    lock.unlock();
    space_cv_.notify_all();
    Status written = failed ? Status::ok() : write_batch(inflight_, inflight_start_);
    lock.lock();
    if (!written.is_ok() && failed_.is_ok()) {
      spdlog::error("record log {}: {}; the log refuses writes until it is reopened", path_, written.to_string());
      failed_ = written;
    }
    if (failed_.is_ok()) {
      durable_end_.store(inflight_start_ + inflight_.size(), std::memory_order_release);
      stats_.syncs += 1;
      stats_.bytes += inflight_.size();
    }
    inflight_.clear();
    inflight_start_ = pending_start_;
    // Done, written or failed: its callers read durable_end_ (or failed_) next.
    std::atomic<std::uint32_t>& done = done_[batches_taken_ % 2];
    done.store(batches_taken_, std::memory_order_release);
    done.notify_all();
    if (!failed_.is_ok()) space_cv_.notify_all();
    run_listeners(lock, Listeners::kDurable);
  }
  run_listeners(lock, Listeners::kAll);  // none should be left: everything enqueued was written
}

Status RecordLog::write_batch(const std::string& batch, LogPosition start) {
  static const std::string kZeros(1 << 20, '\0');
  LogPosition end = start + batch.size();
  // Zero-fill ahead, keeping up to kRecordLogZeroAheadBytes of zeros past
  // the log's end, a whole kRecordLogZeroStepBytes at a time, once that much
  // is missing (or the write would pass the zeros): the sync after such a
  // write also makes the new blocks and the file size durable, and the syncs
  // in between find their blocks allocated and the size unchanged, with no
  // metadata to flush. (Topping the zeros up by each write's size made every
  // sync flush a new block and the file's size.) No single write waits for
  // megabytes of zeros: a 16 MiB fill in one sync cost ~100 ms of
  // acknowledgement latency.
  const std::uint64_t target = std::min(end + limits::kRecordLogZeroAheadBytes,
                                        limits::kRecordLogFileBytes + limits::kRecordLogZeroAheadBytes);
  if (zeroed_end_ < end || zeroed_end_ + limits::kRecordLogZeroStepBytes <= target) {
    const std::uint64_t fill_to = std::min(target, std::max(end, zeroed_end_) + limits::kRecordLogZeroStepBytes);
    for (std::uint64_t at = zeroed_end_; at < fill_to; at += kZeros.size()) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kZeros.size(), fill_to - at));
      if (int err = pwrite_all(fd_, kZeros.data(), n, at); err != 0) return io_error("zero-filling", path_, err);
    }
    zeroed_end_ = fill_to;
  }
  if (int err = pwrite_all(fd_, batch.data(), batch.size(), start); err != 0) return io_error("writing", path_, err);
  if (::fdatasync(fd_) != 0) return io_error("syncing", path_, errno);
  return Status::ok();
}

Status RecordLog::read(LogPosition position, std::string& payload) const {
  {
    std::lock_guard lock(mu_);
    const std::string* buffer = nullptr;
    LogPosition start = 0;
    if (position >= pending_start_) {
      buffer = &pending_;
      start = pending_start_;
    } else if (position >= inflight_start_) {
      buffer = &inflight_;
      start = inflight_start_;
    }
    if (buffer != nullptr) {
      // Still in memory: enqueued by this process, checked when it was made.
      CHECK(position - start + kHeaderBytes <= buffer->size()) << "no record at " << position;
      const char* p = buffer->data() + (position - start);
      std::uint32_t length = load<std::uint32_t>(p + kLengthAt);
      CHECK(load<std::uint32_t>(p + kMagicAt) == kRecordMagic &&
            position - start + record_bytes(length) <= buffer->size())
          << "no record at " << position;
      payload.assign(p + kHeaderBytes, length);
      return Status::ok();
    }
  }
  // Written by an earlier batch (or an earlier process): stable in the file.
  return read_file(position, payload);
}

Status RecordLog::read_file(LogPosition position, std::string& payload) const {
  char header[kHeaderBytes];
  if (int err = pread_all(fd_, header, kHeaderBytes, position); err != 0) return io_error("reading", path_, err);
  std::uint32_t length = load<std::uint32_t>(header + kLengthAt);
  if (load<std::uint32_t>(header + kMagicAt) != kRecordMagic || length > limits::kRecordLogPayloadBytes) {
    return Status::internal(path_ + ": no record at offset " + std::to_string(position));
  }
  payload.resize(length);
  if (int err = pread_all(fd_, payload.data(), length, position + kHeaderBytes); err != 0) {
    return io_error("reading", path_, err);
  }
  // Checked again on the way back from disk.
  std::uint32_t crc = crc32c(std::string_view(header + kMagicAt, kHeaderBytes - kMagicAt));
  crc = crc32c(payload, crc);
  if (crc != load<std::uint32_t>(header + kCrcAt)) {
    return Status::internal(path_ + ": checksum mismatch in the record at offset " + std::to_string(position));
  }
  return Status::ok();
}

Result<LogPosition> RecordLog::scan(LogPosition from, std::size_t max_records, const ScanFn& fn) const {
  LogPosition end = durable_end();
  if (from < kFirstPosition || from > end) {
    return Status::invalid_argument("position " + std::to_string(from) + " is outside the log");
  }
  std::string chunk(std::min<std::uint64_t>(limits::kRecordLogScanChunkBytes, end - from), '\0');
  LogPosition pos = from;
  std::size_t read = 0;
  while (pos < end && read < max_records) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), end - pos));
    if (int err = pread_all(fd_, chunk.data(), n, pos); err != 0) return io_error("reading", path_, err);
    std::size_t at = 0;
    while (at < n && read < max_records) {
      const char* p = chunk.data() + at;
      std::size_t available = n - at;
      // A record not whole in this chunk is read again at the start of the
      // next; one that does not fit a whole chunk runs past the log's end.
      bool whole = available >= kHeaderBytes;
      std::uint32_t length = whole ? load<std::uint32_t>(p + kLengthAt) : 0;
      whole = whole && length <= limits::kRecordLogPayloadBytes && record_bytes(length) <= available;
      if (!whole && at > 0) break;
      if (!whole || load<std::uint32_t>(p + kMagicAt) != kRecordMagic ||
          load<std::uint32_t>(p + kCrcAt) != record_crc(p, length)) {
        return Status::invalid_argument("no valid record at offset " + std::to_string(pos + at));
      }
      fn(pos + at, std::string_view(p + kHeaderBytes, length));
      at += record_bytes(length);
      ++read;
    }
    pos += at;
  }
  return pos;
}

}  // namespace headroom::ledger
