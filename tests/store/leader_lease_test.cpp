// The leader lease (src/store/postgres/leader_lease.h) against a real
// PostgreSQL: one leader of many, handover on stop(), independent keys, the
// holder table, a dropped connection, the epoch fence, and a leader process
// killed with SIGKILL (leader_lease_holder.cpp) replaced within the issue's
// 5 s. Each case gets a database of its own (src/store/store_test_util.h);
// tests/CMakeLists.txt starts the server as a ctest fixture.
//
// The in-process cases use short intervals (kFastMs) so that they run fast;
// the process-kill case uses the defaults, as `headroom serve` will.
#include "store/postgres/leader_lease.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/limits.h"
#include "lease_holder_process.h"
#include "store/store_test_util.h"

namespace headroom::store {
namespace {

using namespace headroom::store::testing;  // NOLINT: the suite's vocabulary
using headroom::testing::field;
using headroom::testing::HolderProcess;
using headroom::testing::mono_us;

constexpr std::int64_t kFastMs = 50;
// Slack for two shared cores and a busy server, on top of what the design
// promises; generous, since the promise is what is checked, not the speed.
constexpr std::int64_t kSlackMs = 2'000;
constexpr std::int64_t kKey = 42;

// What one lease's callbacks saw; outlives the lease.
struct Watch {
  std::atomic<int> elected{0};
  std::atomic<int> lost{0};
  std::atomic<std::uint64_t> epoch{0};
  std::atomic<std::int64_t> elected_at_us{0};
};

// Polls `done` every few milliseconds until it holds or `timeout_ms` passes:
// waits for an event of another thread or process, not for time.
template <typename Pred>
bool eventually(Pred done, std::int64_t timeout_ms) {
  std::int64_t deadline = mono_us() + timeout_ms * 1000;
  while (!done()) {
    if (mono_us() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class LeaderLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = fresh_store_url(Backend::kPostgres, dir_, pg_);
    if (IsSkipped()) return;
    ASSERT_FALSE(HasFailure()) << "no database to test";
  }

  std::unique_ptr<LeaderLease> open_lease(std::int64_t key, const std::string& holder, Watch& watch,
                                          std::int64_t interval_ms = kFastMs) {
    LeaseOptions options;
    options.url = url_;
    options.key = key;
    options.holder = holder;
    options.retry_interval_ms = interval_ms;
    options.check_interval_ms = interval_ms;
    options.on_elected = [&watch](std::uint64_t epoch) {
      watch.epoch = epoch;
      watch.elected_at_us = mono_us();
      ++watch.elected;
    };
    options.on_lost = [&watch] { ++watch.lost; };
    auto lease = LeaderLease::open(std::move(options));
    EXPECT_TRUE(lease.is_ok()) << lease.status().to_string();
    return lease ? std::move(lease).value() : nullptr;
  }

  static int leaders(const std::vector<std::unique_ptr<LeaderLease>>& leases) {
    int n = 0;
    for (const auto& l : leases) n += l->is_leader() ? 1 : 0;
    return n;
  }
  static int leader_index(const std::vector<std::unique_ptr<LeaderLease>>& leases) {
    for (std::size_t i = 0; i < leases.size(); ++i) {
      if (leases[i]->is_leader()) return static_cast<int>(i);
    }
    return -1;
  }

  TempDir dir_;
  std::unique_ptr<PostgresTestDatabase> pg_;
  std::string url_;
};

TEST_F(LeaderLeaseTest, ExactlyOneOfThreeLeads) {
  Watch watches[3];
  std::vector<std::unique_ptr<LeaderLease>> leases;
  for (int i = 0; i < 3; ++i) {
    leases.push_back(open_lease(kKey, "server-" + std::to_string(i), watches[i]));
    ASSERT_NE(leases.back(), nullptr);
  }
  ASSERT_TRUE(eventually([&] { return leaders(leases) == 1; }, kSlackMs));
  // And it stays one: the others keep trying every 50 ms, in vain.
  std::int64_t until = mono_us() + 20 * kFastMs * 1000;
  while (mono_us() < until) {
    ASSERT_EQ(leaders(leases), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int elected = 0;
  for (const Watch& w : watches) elected += w.elected;
  EXPECT_EQ(elected, 1);
  int leader = leader_index(leases);
  EXPECT_EQ(leases[leader]->epoch(), 1u);
  EXPECT_EQ(watches[leader].epoch, 1u);
  for (int i = 0; i < 3; ++i) {
    if (i != leader) {
      EXPECT_EQ(leases[i]->epoch(), 0u);
    }
  }
  // Any of them, leader or not, names the leader.
  for (auto& lease : leases) {
    auto holder = lease->current_holder();
    ASSERT_TRUE(holder.is_ok()) << holder.status().to_string();
    ASSERT_TRUE(holder->has_value());
    EXPECT_EQ((*holder)->holder, "server-" + std::to_string(leader));
    EXPECT_EQ((*holder)->epoch, 1u);
    EXPECT_GT((*holder)->since.unix_micros, 0);
  }
  RawPg raw(url_);
  EXPECT_EQ(raw.scalar("SELECT epoch FROM headroom_leader WHERE key = 42"), 1);
}

TEST_F(LeaderLeaseTest, StopOfTheLeaderElectsAnotherWithinTheRetryInterval) {
  Watch watches[3];
  std::vector<std::unique_ptr<LeaderLease>> leases;
  for (int i = 0; i < 3; ++i) leases.push_back(open_lease(kKey, "server-" + std::to_string(i), watches[i]));
  ASSERT_TRUE(eventually([&] { return leaders(leases) == 1; }, kSlackMs));
  int first = leader_index(leases);
  std::int64_t stopped_us = mono_us();
  leases[first]->stop();
  EXPECT_EQ(watches[first].lost, 1) << "on_lost ran before stop() returned";
  EXPECT_FALSE(leases[first]->is_leader());
  ASSERT_TRUE(eventually([&] { return leaders(leases) == 1; }, kFastMs + kSlackMs));
  int second = leader_index(leases);
  ASSERT_NE(second, first);
  std::int64_t takeover_ms = (watches[second].elected_at_us - stopped_us) / 1000;
  EXPECT_LE(takeover_ms, kFastMs + kSlackMs);
  RecordProperty("takeover_ms", std::to_string(takeover_ms));
  EXPECT_EQ(leases[second]->epoch(), 2u) << "the epoch grows at each election";
  auto holder = leases[first]->current_holder();  // a stopped lease may still ask
  ASSERT_TRUE(holder.is_ok()) << holder.status().to_string();
  ASSERT_TRUE(holder->has_value());
  EXPECT_EQ((*holder)->holder, "server-" + std::to_string(second));
  EXPECT_EQ((*holder)->epoch, 2u);
  leases[first]->stop();  // idempotent
}

TEST_F(LeaderLeaseTest, TwoKeysAreIndependent) {
  Watch a_watch, b_watch;
  auto a = open_lease(1, "scheduler", a_watch);
  auto b = open_lease(2, "other", b_watch);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(eventually([&] { return a->is_leader() && b->is_leader(); }, kSlackMs));
  a->stop();
  EXPECT_TRUE(b->is_leader());
  EXPECT_EQ(b_watch.lost, 0);
  auto none = a->current_holder();
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_FALSE(none->has_value()) << "key 1's row outlives its holder, but no one holds the lock";
  auto other = b->current_holder();
  ASSERT_TRUE(other.is_ok() && other->has_value());
  EXPECT_EQ((*other)->holder, "other");
}

// The server drops the leader's session (as when its connection breaks): the
// leader notices at its next check, says so, and competes again; someone
// leads again, with a new epoch.
TEST_F(LeaderLeaseTest, ADroppedConnectionLosesLeadershipAtOnce) {
  Watch watches[2];
  std::vector<std::unique_ptr<LeaderLease>> leases;
  for (int i = 0; i < 2; ++i) leases.push_back(open_lease(kKey, "server-" + std::to_string(i), watches[i]));
  ASSERT_TRUE(eventually([&] { return leaders(leases) == 1; }, kSlackMs));
  int first = leader_index(leases);
  RawPg raw(url_);
  std::int64_t dropped_us = mono_us();
  ASSERT_EQ(raw.scalar("SELECT count(*) FROM headroom_leader WHERE pg_terminate_backend(pid)"), 1);
  ASSERT_TRUE(
      eventually([&] { return watches[first].lost == 1; }, kFastMs + limits::kLeaderStatementTimeoutMs + kSlackMs));
  RecordProperty("noticed_ms", std::to_string((mono_us() - dropped_us) / 1000));
  ASSERT_TRUE(eventually([&] { return leaders(leases) == 1; }, kFastMs + kSlackMs));
  EXPECT_EQ(leases[leader_index(leases)]->epoch(), 2u);
  EXPECT_EQ(raw.scalar("SELECT epoch FROM headroom_leader WHERE key = 42"), 2);
}

// kLeaderFenceSql serialises an old leader's write with the next election:
// while a transaction that passed the fence is open, no one can be elected;
// once it commits, the election goes on, and a fence with the old epoch fails.
TEST_F(LeaderLeaseTest, TheEpochFenceOrdersAnOldLeadersWriteBeforeTheNextElection) {
  Watch watches[2];
  std::vector<std::unique_ptr<LeaderLease>> leases;
  for (int i = 0; i < 2; ++i) leases.push_back(open_lease(kKey, "server-" + std::to_string(i), watches[i]));
  ASSERT_TRUE(eventually([&] { return leaders(leases) == 1; }, kSlackMs));
  int first = leader_index(leases);
  std::int64_t old_epoch = static_cast<std::int64_t>(leases[first]->epoch());

  // The old leader's write, on a store connection of its own: fenced.
  RawPg write(url_);
  ASSERT_EQ(write.exec("BEGIN"), "");
  ASSERT_EQ(write.scalar("SELECT epoch FROM headroom_leader WHERE key = 42 FOR SHARE"), old_epoch);
  // Its lease connection dies; the server frees the lock at once.
  RawPg admin(url_);
  ASSERT_EQ(admin.scalar("SELECT count(*) FROM headroom_leader WHERE pg_terminate_backend(pid)"), 1);
  ASSERT_TRUE(eventually([&] { return watches[first].lost == 1; }, kSlackMs));
  // The follower takes the lock but cannot record its election under the
  // fence: nobody is told it leads.
  std::this_thread::sleep_for(std::chrono::milliseconds(5 * kFastMs));
  EXPECT_EQ(leaders(leases), 0);
  ASSERT_EQ(write.exec("COMMIT"), "");
  ASSERT_TRUE(eventually([&] { return leaders(leases) == 1; }, limits::kLeaderStatementTimeoutMs + kSlackMs));
  std::int64_t new_epoch = static_cast<std::int64_t>(leases[leader_index(leases)]->epoch());
  EXPECT_GT(new_epoch, old_epoch);
  // A late write of the old leader now reads the new epoch and must abort.
  EXPECT_EQ(write.scalar("SELECT epoch FROM headroom_leader WHERE key = 42 FOR SHARE"), new_epoch);
}

TEST_F(LeaderLeaseTest, StopReleasesTheLockAndTheHolder) {
  Watch watch;
  auto lease = open_lease(kKey, "alone", watch);
  ASSERT_TRUE(eventually([&] { return lease->is_leader(); }, kSlackMs));
  lease->stop();
  EXPECT_FALSE(lease->is_leader());
  EXPECT_EQ(lease->epoch(), 0u);
  EXPECT_EQ(watch.lost, 1);
  RawPg raw(url_);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                       "(SELECT oid FROM pg_database WHERE datname = current_database())"),
            0);
  auto holder = lease->current_holder();
  ASSERT_TRUE(holder.is_ok());
  EXPECT_FALSE(holder->has_value());
}

TEST(LeaderLeaseOptionsTest, BadOptionsAreRefusedAndADownServerIsUnavailable) {
  LeaseOptions bad_url{.url = "nonsense", .holder = "h"};
  EXPECT_EQ(LeaderLease::open(bad_url).status().code(), ErrorCode::kInvalidArgument);
  LeaseOptions no_holder{.url = "postgresql://postgres@127.0.0.1:1/postgres"};
  EXPECT_EQ(LeaderLease::open(no_holder).status().code(), ErrorCode::kInvalidArgument);
  LeaseOptions long_holder{.url = no_holder.url, .holder = std::string(limits::kLeaderHolderBytes + 1, 'h')};
  EXPECT_EQ(LeaderLease::open(long_holder).status().code(), ErrorCode::kInvalidArgument);
  LeaseOptions fast{.url = no_holder.url, .holder = "h", .retry_interval_ms = 0};
  EXPECT_EQ(LeaderLease::open(fast).status().code(), ErrorCode::kInvalidArgument);
  LeaseOptions down{.url = no_holder.url, .holder = "h"};
  auto lease = LeaderLease::open(down);
  ASSERT_FALSE(lease.is_ok());
  EXPECT_EQ(lease.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(lease.status().message().find("127.0.0.1"), std::string::npos) << lease.status().message();
}

// Issue 8's failover: two processes; the leader is killed with SIGKILL; the
// other leads within 5 s (measured from the kill to its on_elected).
TEST_F(LeaderLeaseTest, AKilledLeaderProcessIsReplacedWithinFiveSeconds) {
  auto a = HolderProcess::start(HEADROOM_LEADER_HOLDER, url_, kKey, "process-a", limits::kLeaderRetryIntervalMs);
  ASSERT_NE(a, nullptr);
  auto a_led = a->wait_line("leader", limits::kLeaderTakeoverGoalMs + kSlackMs);
  ASSERT_TRUE(a_led) << "process a never led; it said:\n" << a->transcript();
  EXPECT_EQ(field(*a_led, "epoch"), 1);
  auto b = HolderProcess::start(HEADROOM_LEADER_HOLDER, url_, kKey, "process-b", limits::kLeaderRetryIntervalMs);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->wait_line("ready", limits::kLeaderTakeoverGoalMs + kSlackMs)) << b->transcript();
  // b has tried at least once (it tries at once after open), and lost.
  EXPECT_FALSE(b->wait_line("leader", 2 * static_cast<int>(limits::kLeaderRetryIntervalMs))) << "two leaders at once";

  std::int64_t killed_us = mono_us();
  a->kill_hard();
  auto b_led = b->wait_line("leader", 2 * limits::kLeaderTakeoverGoalMs);
  ASSERT_TRUE(b_led) << "process b never took over; it said:\n" << b->transcript();
  std::int64_t takeover_ms = (field(*b_led, "elected_mono_us") - killed_us) / 1000;
  RecordProperty("takeover_ms", std::to_string(takeover_ms));
  std::printf("takeover after SIGKILL: %lld ms (goal <= %lld ms)\n", static_cast<long long>(takeover_ms),
              static_cast<long long>(limits::kLeaderTakeoverGoalMs));
  EXPECT_GE(takeover_ms, 0);
  EXPECT_LE(takeover_ms, limits::kLeaderTakeoverGoalMs);
  EXPECT_EQ(field(*b_led, "epoch"), 2);
  RawPg raw(url_);
  EXPECT_EQ(raw.scalar("SELECT epoch FROM headroom_leader WHERE key = 42 AND holder = 'process-b'"), 2);
}

}  // namespace
}  // namespace headroom::store
