#include "ledger/record_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ledger/test_dir.h"

namespace headroom::ledger {
namespace {

using testing::named;
using testing::TempDir;

struct Replay {
  std::vector<LogPosition> positions;
  std::vector<std::string> payloads;
};

std::unique_ptr<RecordLog> open_log(const TempDir& dir, Replay* replay = nullptr) {
  auto log = RecordLog::open({.dir = dir.path()}, [&](LogPosition position, std::string_view payload) {
    if (replay != nullptr) {
      replay->positions.push_back(position);
      replay->payloads.emplace_back(payload);
    }
    return Status::ok();
  });
  EXPECT_TRUE(log.is_ok()) << log.status().to_string();
  return log ? std::move(log).value() : nullptr;
}

std::string payload(int i) { return "record " + std::to_string(i) + std::string(i % 17, 'x'); }

// Appends records 0..n-1 one at a time; returns their positions.
std::vector<LogPosition> append_n(RecordLog& log, int n, int first = 0) {
  std::vector<LogPosition> positions;
  for (int i = first; i < first + n; ++i) {
    std::string p = payload(i);
    auto position = log.enqueue(p);
    EXPECT_TRUE(position.is_ok());
    positions.push_back(*position);
    EXPECT_TRUE(log.wait_durable(*position + RecordLog::record_bytes(p.size())).is_ok());
  }
  return positions;
}

class RecordLogTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.file("records.log"); }
  TempDir dir_;
};

TEST_F(RecordLogTest, AppendsAndReplaysInOrder) {
  std::vector<LogPosition> positions;
  {
    auto log = open_log(dir_);
    EXPECT_EQ(log->replay_report().records, 0u);
    EXPECT_EQ(log->durable_end(), RecordLog::kFirstPosition);
    positions = append_n(*log, 5);
    std::vector<std::string_view> more = {"a", "", "c"};
    ASSERT_TRUE(log->append(more).is_ok());
    EXPECT_EQ(log->durable_end(), log->end());
  }
  Replay replay;
  auto log = open_log(dir_, &replay);
  ASSERT_EQ(replay.payloads.size(), 8u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(replay.payloads[i], payload(i));
    EXPECT_EQ(replay.positions[i], positions[i]);
  }
  EXPECT_EQ(replay.payloads[5], "a");
  EXPECT_EQ(replay.payloads[6], "");
  EXPECT_EQ(replay.payloads[7], "c");
  const ReplayReport& report = log->replay_report();
  EXPECT_EQ(report.records, 8u);
  EXPECT_EQ(report.tails_cut, 0u);
  EXPECT_TRUE(report.reason.empty());
  // The zero-filled space ahead of the log is a clean end, not a tail to cut.
  EXPECT_GT(testing::file_size(path()), report.end);
}

TEST_F(RecordLogTest, ReopenContinuesTheSequence) {
  {
    auto log = open_log(dir_);
    append_n(*log, 3);
  }
  {
    auto log = open_log(dir_);
    append_n(*log, 3, 3);
  }
  Replay replay;
  auto log = open_log(dir_, &replay);
  ASSERT_EQ(replay.payloads.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(replay.payloads[i], payload(i));
  EXPECT_EQ(log->replay_report().tails_cut, 0u);
}

TEST_F(RecordLogTest, AnEmptyLogReopens) {
  { auto log = open_log(dir_); }
  Replay replay;
  auto log = open_log(dir_, &replay);
  EXPECT_TRUE(replay.payloads.empty());
  EXPECT_EQ(testing::file_size(path()), RecordLog::kFirstPosition);
}

TEST_F(RecordLogTest, AZeroTailIsTheEndOfTheLog) {
  {
    auto log = open_log(dir_);
    append_n(*log, 3);
  }
  testing::truncate_file(path(), testing::file_size(path()) + 12345);  // more zeros
  Replay replay;
  auto log = open_log(dir_, &replay);
  EXPECT_EQ(replay.payloads.size(), 3u);
  EXPECT_EQ(log->replay_report().tails_cut, 0u);
}

// Truncates the file inside the last record: a torn write.
TEST_F(RecordLogTest, ATornTailIsCutAndReported) {
  for (std::uint64_t into_last : {std::uint64_t{1}, std::uint64_t{10}, std::uint64_t{24}, std::uint64_t{30}}) {
    TempDir dir;
    std::vector<LogPosition> positions;
    LogPosition end;
    {
      auto log = open_log(dir);
      positions = append_n(*log, 4);
      end = log->durable_end();
    }
    std::string file = dir.file("records.log");
    ASSERT_LT(positions[3] + into_last, end);
    testing::truncate_file(file, positions[3] + into_last);
    Replay replay;
    {
      auto log = open_log(dir, &replay);
      ASSERT_EQ(replay.payloads.size(), 3u) << into_last;
      const ReplayReport& report = log->replay_report();
      EXPECT_EQ(report.tails_cut, 1u);
      EXPECT_EQ(report.end, positions[3]);
      EXPECT_EQ(report.bytes_cut, into_last);
      EXPECT_NE(report.reason.find("offset " + std::to_string(positions[3])), std::string::npos) << report.reason;
      EXPECT_EQ(testing::file_size(file), positions[3]);  // cut off, not left for later
      // Appends go where the cut was.
      append_n(*log, 1, 10);
    }
    Replay again;
    auto log = open_log(dir, &again);
    EXPECT_EQ(log->replay_report().tails_cut, 0u);
    ASSERT_EQ(again.payloads.size(), 4u);
    EXPECT_EQ(again.payloads[3], payload(10));
  }
}

TEST_F(RecordLogTest, ACorruptByteInTheLastRecordIsCut) {
  std::vector<LogPosition> positions;
  {
    auto log = open_log(dir_);
    positions = append_n(*log, 4);
  }
  testing::flip_byte(path(), positions[3] + RecordLog::kHeaderBytes + 2);
  Replay replay;
  auto log = open_log(dir_, &replay);
  EXPECT_EQ(replay.payloads.size(), 3u);
  EXPECT_EQ(log->replay_report().tails_cut, 1u);
  EXPECT_NE(log->replay_report().reason.find("checksum"), std::string::npos) << log->replay_report().reason;
}

// A bad record in the middle ends the log there: nothing after it is
// accepted, even records that look whole.
TEST_F(RecordLogTest, ACorruptMiddleRecordCutsEverythingAfterIt) {
  std::vector<LogPosition> positions;
  {
    auto log = open_log(dir_);
    positions = append_n(*log, 6);
  }
  for (std::uint64_t at : {std::uint64_t{0}, std::uint64_t{5}, std::uint64_t{8}, std::uint64_t{16}}) {
    // Each header field in turn: crc, magic, length, sequence.
    TempDir dir;
    std::filesystem::copy_file(path(), dir.file("records.log"));
    testing::flip_byte(dir.file("records.log"), positions[2] + at);
    Replay replay;
    auto log = open_log(dir, &replay);
    ASSERT_EQ(replay.payloads.size(), 2u) << at;
    EXPECT_EQ(log->replay_report().end, positions[2]);
    EXPECT_EQ(log->replay_report().tails_cut, 1u);
    // The sequence carries on from the records kept.
    append_n(*log, 1, 20);
  }
}

TEST_F(RecordLogTest, NonzeroBytesPastAZeroHeaderAreATornWrite) {
  LogPosition end;
  {
    auto log = open_log(dir_);
    append_n(*log, 3);
    end = log->durable_end();
  }
  testing::write_bytes(path(), end + 5000, "stray");
  Replay replay;
  auto log = open_log(dir_, &replay);
  EXPECT_EQ(replay.payloads.size(), 3u);
  EXPECT_EQ(log->replay_report().tails_cut, 1u);
  EXPECT_EQ(log->replay_report().end, end);
  EXPECT_NE(log->replay_report().reason.find("nonzero"), std::string::npos) << log->replay_report().reason;
}

TEST_F(RecordLogTest, AHeaderCutShortIsTorn) {
  LogPosition end;
  {
    auto log = open_log(dir_);
    append_n(*log, 2);
    end = log->durable_end();
  }
  testing::truncate_file(path(), end);
  testing::write_bytes(path(), end, std::string(7, '\x5a'));
  Replay replay;
  auto log = open_log(dir_, &replay);
  EXPECT_EQ(replay.payloads.size(), 2u);
  EXPECT_EQ(log->replay_report().bytes_cut, 7u);
  EXPECT_NE(log->replay_report().reason.find("cut short"), std::string::npos) << log->replay_report().reason;
}

TEST_F(RecordLogTest, ABadFileHeaderFailsOpen) {
  { auto log = open_log(dir_); }
  testing::flip_byte(path(), 3);
  auto log = RecordLog::open({.dir = dir_.path()}, nullptr);
  ASSERT_FALSE(log.is_ok());
  EXPECT_EQ(log.status().code(), ErrorCode::kInternal);
}

TEST_F(RecordLogTest, AReplayErrorFailsOpen) {
  {
    auto log = open_log(dir_);
    append_n(*log, 2);
  }
  auto log =
      RecordLog::open({.dir = dir_.path()}, [](LogPosition, std::string_view) { return Status::internal("not mine"); });
  ASSERT_FALSE(log.is_ok());
  EXPECT_EQ(log.status().message(), "not mine");
}

TEST_F(RecordLogTest, OneProcessAtATime) {
  auto log = open_log(dir_);
  auto second = RecordLog::open({.dir = dir_.path()}, nullptr);
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kUnavailable);
  log.reset();
  EXPECT_TRUE(RecordLog::open({.dir = dir_.path()}, nullptr).is_ok());
}

TEST_F(RecordLogTest, ReadsRecordsQueuedAndDurable) {
  auto log = open_log(dir_);
  auto positions = append_n(*log, 3);
  auto queued = log->enqueue("queued");
  ASSERT_TRUE(queued.is_ok());
  std::string out;
  ASSERT_TRUE(log->read(*queued, out).is_ok());
  EXPECT_EQ(out, "queued");
  ASSERT_TRUE(log->read(positions[1], out).is_ok());
  EXPECT_EQ(out, payload(1));
}

TEST_F(RecordLogTest, ScansInPagesAcrossChunks) {
  auto log = open_log(dir_);
  // Large records, so that scans cross the 1 MiB chunk boundaries.
  std::vector<std::string> written;
  for (int i = 0; i < 40; ++i) {
    written.push_back(std::string(60'000 + i, static_cast<char>('a' + i % 26)));
    ASSERT_TRUE(log->append(std::vector<std::string_view>{written.back()}).is_ok());
  }
  std::vector<std::string> read;
  LogPosition from = RecordLog::kFirstPosition;
  int calls = 0;
  while (from < log->durable_end()) {
    auto next = log->scan(from, 7, [&](LogPosition, std::string_view p) { read.emplace_back(p); });
    ASSERT_TRUE(next.is_ok()) << next.status().to_string();
    ASSERT_GT(*next, from);
    from = *next;
    ++calls;
  }
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(read, written);
  // Not a record's position.
  EXPECT_FALSE(log->scan(RecordLog::kFirstPosition + 3, 1, [](LogPosition, std::string_view) {}).is_ok());
  EXPECT_FALSE(log->scan(log->durable_end() + 1, 1, [](LogPosition, std::string_view) {}).is_ok());
}

// Many writers at once: every record durable, in one piece, exactly once,
// and most syncs shared.
TEST_F(RecordLogTest, ConcurrentAppendsAreGroupCommitted) {
  constexpr int kThreads = 16, kPerThread = 300;
  {
    auto log = open_log(dir_);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          std::string p = named("t", t) + named(":", i);
          std::vector<std::string_view> one = {p};
          ASSERT_TRUE(log->append(one).is_ok());
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  Replay replay;
  auto log = open_log(dir_, &replay);
  ASSERT_EQ(replay.payloads.size(), std::size_t{kThreads * kPerThread});
  std::set<std::string> unique(replay.payloads.begin(), replay.payloads.end());
  EXPECT_EQ(unique.size(), replay.payloads.size());
  // Each thread's records are in its order.
  std::map<int, int> next;
  for (const std::string& p : replay.payloads) {
    int t = std::stoi(p.substr(1));
    int i = std::stoi(p.substr(p.find(':') + 1));
    EXPECT_EQ(i, next[t]++);
  }
}

}  // namespace
}  // namespace headroom::ledger

namespace headroom::ledger {
namespace {

TEST(RecordLogWhenDurable, RunsOnceTheRecordIsOnDiskOrAtOnceIfItIs) {
  testing::TempDir dir;
  auto log = open_log(dir);
  std::promise<Status> first;
  auto end = log->enqueue("one", RecordLog::Wake::kLater);  // no wake: when_durable must wake the writer
  ASSERT_TRUE(end.is_ok());
  const LogPosition one_end = *end + RecordLog::record_bytes(3);
  log->when_durable(one_end, [&](const Status& s) {
    // Runs after the sync: the record is durable when it is told so.
    EXPECT_GE(log->durable_end(), one_end);
    first.set_value(s);
  });
  auto told = first.get_future();
  ASSERT_EQ(told.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(told.get().is_ok());
  // Already durable: at once, on this thread.
  bool at_once = false;
  log->when_durable(one_end, [&](const Status& s) { at_once = s.is_ok(); });
  EXPECT_TRUE(at_once);
}

// A record enqueued with kLater costs no sync of its own, even when it
// comes while a write is under way (the ledger's holds, beside the usage
// log's syncs on the same disk): it waits for the next sync someone asks for.
TEST(RecordLogWake, LaterRecordsWaitForAWakeEvenBehindAWrite) {
  testing::TempDir dir;
  auto log = open_log(dir);
  LogPosition last_end = 0;
  for (int round = 0; round < 20; ++round) {
    auto now = log->enqueue("now " + std::to_string(round));  // wakes the writer
    ASSERT_TRUE(now.is_ok());
    const LogPosition now_end = log->end();
    // Time for the writer to take that record and start its sync (on a disk
    // whose syncs are instant the later record may still go with it).
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    auto later = log->enqueue("later " + std::to_string(round), RecordLog::Wake::kLater);
    ASSERT_TRUE(later.is_ok());
    last_end = log->end();
    ASSERT_TRUE(log->wait_durable(now_end).is_ok());
    const std::uint64_t syncs = log->stats().syncs;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(log->stats().syncs, syncs) << "round " << round << ": a later record was written unasked";
  }
  // Every later record not taken with a "now" one is still waiting; one wait writes them all with one sync.
  const std::uint64_t before = log->stats().syncs;
  ASSERT_TRUE(log->wait_durable(last_end).is_ok());
  EXPECT_LE(log->stats().syncs, before + 1);
  EXPECT_EQ(log->durable_end(), last_end);
}

TEST(RecordLogWhenDurable, ManyListenersEachRunOnceInAnyOrderOfEnds) {
  testing::TempDir dir;
  std::atomic<int> runs{0};
  {
    auto log = open_log(dir);
    std::vector<LogPosition> ends;
    for (int i = 0; i < 100; ++i) {
      auto at = log->enqueue("record " + std::to_string(i), RecordLog::Wake::kLater);
      ASSERT_TRUE(at.is_ok());
      ends.push_back(log->end());
    }
    for (auto it = ends.rbegin(); it != ends.rend(); ++it) {
      log->when_durable(*it, [&](const Status& s) {
        EXPECT_TRUE(s.is_ok()) << s.to_string();
        ++runs;
      });
    }
  }  // closing waits for the writes, and so for every listener
  EXPECT_EQ(runs.load(), 100);
}

}  // namespace
}  // namespace headroom::ledger
