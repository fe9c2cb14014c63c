#include "sched/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "sched/placement.h"
#include "sched/test_fleet.h"

namespace headroom::sched {
namespace {

using testing::make_fleet;

const Timestamp kT0 = Timestamp::from_unix_seconds(1'767'225'600);

Scheduler make(int hgx, int nvl, SchedulerOptions options = {}) {
  auto s = Scheduler::create(make_fleet(hgx, nvl), options);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return std::move(s).value();
}

Job job(JobId id, Tier tier, std::uint32_t gpus, Packing packing = Packing::kAny, std::string type = "h100") {
  Job j;
  j.id = id;
  j.tenant_id = "ten_test";
  j.tier = tier;
  j.gpus = gpus;
  j.gpu_type = std::move(type);
  j.packing = packing;
  j.requeue_on_preempt = false;
  return j;
}

std::vector<JobId> of_kind(const Effects& effects, Effect::Kind kind) {
  std::vector<JobId> ids;
  for (const Effect& e : effects) {
    if (e.kind == kind) ids.push_back(e.job);
  }
  return ids;
}

TEST(Scheduler, RejectsImpossibleJobs) {
  Scheduler s = make(2, 0);
  EXPECT_EQ(s.submit(job(1, Tier::kSpot, 17), kT0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.submit(job(1, Tier::kSpot, 9, Packing::kNvlink), kT0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.submit(job(1, Tier::kSpot, 1, Packing::kAny, "a100"), kT0).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.submit(job(0, Tier::kSpot, 1), kT0).status().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(s.submit(job(1, Tier::kSpot, 16), kT0).is_ok());
  EXPECT_EQ(s.submit(job(1, Tier::kSpot, 1), kT0).status().code(), ErrorCode::kAlreadyExists);
}

TEST(Scheduler, ASpotJobTheMarketOutbidWaitsOnFreeGpusAndPreemptionSaysWhy) {
  Scheduler s = make(2, 0);
  ASSERT_TRUE(s.submit(job(1, Tier::kSpot, 1), kT0).is_ok());
  ASSERT_TRUE(s.set_spot_types(1, 0).is_ok());
  EXPECT_TRUE(of_kind(s.tick(kT0), Effect::Kind::kStart).empty());
  EXPECT_EQ(s.wait_reason(1), WaitReason::kOutbid);
  EXPECT_EQ(wait_reason_name(WaitReason::kOutbid), "outbid");
  ASSERT_TRUE(s.set_spot_types(1, ~std::uint64_t{0}).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(1)), Effect::Kind::kStart), (std::vector<JobId>{1}));
  // Outbid while running: notice, then the kill at the spot grace.
  auto effects = s.preempt(1, Reason::kOutbid, kT0.plus_seconds(2));
  ASSERT_TRUE(effects.is_ok());
  EXPECT_EQ(of_kind(*effects, Effect::Kind::kPreemptNotice), (std::vector<JobId>{1}));
  EXPECT_EQ(reason_name(Reason::kOutbid), "outbid");
  EXPECT_EQ(s.set_spot_types(99, 0).code(), ErrorCode::kNotFound);
  // Other tiers are not the market's.
  ASSERT_TRUE(s.submit(job(2, Tier::kOnDemand, 1), kT0).is_ok());
  ASSERT_TRUE(s.set_spot_types(2, 0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(3)), Effect::Kind::kStart), (std::vector<JobId>{2}));
}

TEST(Scheduler, StartsInTierOrder) {
  Scheduler s = make(1, 0);
  ASSERT_TRUE(s.submit(job(1, Tier::kSpot, 4), kT0).is_ok());
  ASSERT_TRUE(s.submit(job(2, Tier::kOnDemand, 4), kT0).is_ok());
  ASSERT_TRUE(s.submit(job(3, Tier::kInternal, 4), kT0).is_ok());
  const Effects effects = s.tick(kT0);
  EXPECT_EQ(of_kind(effects, Effect::Kind::kStart), (std::vector<JobId>{3, 2}));
  EXPECT_EQ(s.find(1)->state, JobState::kQueued);
  EXPECT_EQ(s.find(3)->state, JobState::kStarting);
  ASSERT_TRUE(s.running(3, kT0).is_ok());
  EXPECT_EQ(s.find(3)->state, JobState::kRunning);
  ASSERT_TRUE(s.finished(3, 0, kT0.plus_seconds(5)).is_ok());
  EXPECT_EQ(s.find(3), nullptr);
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(6)), Effect::Kind::kStart), (std::vector<JobId>{1}));
}

TEST(Scheduler, InternalPreemptsSpotWithNoticeThenKillsAtTheDeadline) {
  Scheduler s = make(2, 0);
  ASSERT_TRUE(s.submit(job(1, Tier::kSpot, 8), kT0).is_ok());
  ASSERT_TRUE(s.submit(job(2, Tier::kSpot, 4), kT0).is_ok());
  ASSERT_TRUE(s.submit(job(3, Tier::kOnDemand, 4), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kStart).size(), 3u);
  // 4 GPUs needed: the 4-GPU spot job is the one that disturbs fewest.
  ASSERT_TRUE(s.submit(job(10, Tier::kInternal, 4), kT0).is_ok());
  Effects effects = s.tick(kT0.plus_seconds(1));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kPreemptNotice), (std::vector<JobId>{2}));
  EXPECT_EQ(effects[0].deadline, kT0.plus_seconds(31));
  EXPECT_EQ(s.find(2)->state, JobState::kPreempting);
  EXPECT_TRUE(of_kind(s.tick(kT0.plus_seconds(30)), Effect::Kind::kStart).empty());
  effects = s.tick(kT0.plus_seconds(31));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kKill), (std::vector<JobId>{2}));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kStart), (std::vector<JobId>{10}));
  EXPECT_EQ(s.find(2), nullptr);  // preempted, not requeued
}

TEST(Scheduler, AVictimThatExitsFreesItsGpusAtOnce) {
  Scheduler s = make(1, 0);
  Job spot = job(1, Tier::kSpot, 8);
  spot.requeue_on_preempt = true;
  ASSERT_TRUE(s.submit(spot, kT0).is_ok());
  (void)s.tick(kT0);
  ASSERT_TRUE(s.submit(job(2, Tier::kInternal, 2), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kPreemptNotice), (std::vector<JobId>{1}));
  ASSERT_TRUE(s.finished(1, 143, kT0.plus_seconds(2)).is_ok());
  EXPECT_EQ(s.find(1)->state, JobState::kQueued);  // requeued
  EXPECT_EQ(s.find(1)->preemptions, 1u);
  const Effects effects = s.tick(kT0.plus_seconds(2));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kStart), (std::vector<JobId>{2}));
}

TEST(Scheduler, OnDemandIsNeverPreempted) {
  Scheduler s = make(1, 0);
  ASSERT_TRUE(s.submit(job(1, Tier::kOnDemand, 8), kT0).is_ok());
  (void)s.tick(kT0);
  ASSERT_TRUE(s.submit(job(2, Tier::kInternal, 1), kT0).is_ok());
  const Effects effects = s.tick(kT0.plus_seconds(1));
  EXPECT_TRUE(of_kind(effects, Effect::Kind::kPreemptNotice).empty());
  EXPECT_EQ(s.find(2)->state, JobState::kQueued);
}

TEST(Scheduler, PreemptionRespectsNvlinkShape) {
  Scheduler s = make(0, 1);  // one 72-GPU domain of gb200
  for (JobId id = 1; id <= 9; ++id) ASSERT_TRUE(s.submit(job(id, Tier::kSpot, 8, Packing::kAny, "gb200"), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kStart).size(), 9u);
  ASSERT_TRUE(s.submit(job(100, Tier::kInternal, 72, Packing::kNvlink, "gb200"), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kPreemptNotice).size(), 9u);
  const Effects effects = s.tick(kT0.plus_seconds(30));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kKill).size(), 9u);
  EXPECT_EQ(of_kind(effects, Effect::Kind::kStart), (std::vector<JobId>{100}));
}

TEST(Scheduler, CancelMaxRuntimeAndNodeLoss) {
  Scheduler s = make(2, 0);
  Job a = job(1, Tier::kOnDemand, 8);
  a.max_runtime_s = 10;
  ASSERT_TRUE(s.submit(a, kT0).is_ok());
  ASSERT_TRUE(s.submit(job(2, Tier::kOnDemand, 8), kT0).is_ok());
  ASSERT_TRUE(s.submit(job(3, Tier::kOnDemand, 8), kT0).is_ok());
  (void)s.tick(kT0);
  EXPECT_EQ(s.find(3)->state, JobState::kQueued);
  auto cancelled = s.cancel(3, kT0);
  ASSERT_TRUE(cancelled.is_ok());
  EXPECT_EQ(s.find(3), nullptr);
  Effects effects = s.tick(kT0.plus_seconds(10));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kKill), (std::vector<JobId>{1}));
  const NodeIndex node_of_2 = s.cluster().gpu_node(s.gpus_of(2)[0]);
  auto lost = s.set_node_state(s.cluster().node(node_of_2).name, fleet::NodeState::kDown, kT0);
  ASSERT_TRUE(lost.is_ok());
  EXPECT_EQ(of_kind(*lost, Effect::Kind::kKill), (std::vector<JobId>{2}));
  EXPECT_EQ(s.cluster().available(), 8u);
  EXPECT_EQ(s.set_node_state("nope", fleet::NodeState::kUp, kT0).status().code(), ErrorCode::kNotFound);
}

// ---- Fair share ------------------------------------------------------------

Job tenant_job(JobId id, std::string tenant, Tier tier, std::uint32_t gpus, std::int64_t max_runtime_s = 3600) {
  Job j = job(id, tier, gpus);
  j.tenant_id = std::move(tenant);
  j.max_runtime_s = max_runtime_s;
  return j;
}

TEST(FairShare, TheTenantWithLessUsageGoesFirst) {
  Scheduler s = make(1, 0);
  ASSERT_TRUE(s.submit(tenant_job(1, "a", Tier::kOnDemand, 8), kT0).is_ok());
  (void)s.tick(kT0);
  const Timestamp t1 = kT0.plus_seconds(600);
  ASSERT_TRUE(s.finished(1, 0, t1).is_ok());
  EXPECT_GT(s.usage_gpu_seconds("a", Tier::kOnDemand, t1), 4000.0);
  ASSERT_TRUE(s.submit(tenant_job(2, "a", Tier::kOnDemand, 8), t1).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(3, "b", Tier::kOnDemand, 8), t1).is_ok());  // queued after a's
  EXPECT_EQ(of_kind(s.tick(t1), Effect::Kind::kStart), (std::vector<JobId>{3}));
}

TEST(FairShare, WeightsDivideUsage) {
  // a used twice what b used; with weight 4 it still goes first.
  for (const double weight_a : {1.0, 4.0}) {
    Scheduler s = make(2, 0);
    ASSERT_TRUE(s.submit(tenant_job(1, "a", Tier::kSpot, 8), kT0).is_ok());
    ASSERT_TRUE(s.submit(tenant_job(2, "b", Tier::kSpot, 4), kT0).is_ok());
    (void)s.tick(kT0);
    const Timestamp t1 = kT0.plus_seconds(3600);
    ASSERT_TRUE(s.finished(1, 0, t1).is_ok());
    ASSERT_TRUE(s.finished(2, 0, t1).is_ok());
    ASSERT_TRUE(s.set_tenant_weight("a", weight_a).is_ok());
    ASSERT_TRUE(s.submit(tenant_job(3, "b", Tier::kSpot, 16), t1).is_ok());
    ASSERT_TRUE(s.submit(tenant_job(4, "a", Tier::kSpot, 16), t1).is_ok());
    const std::vector<JobId> started = of_kind(s.tick(t1), Effect::Kind::kStart);
    EXPECT_EQ(started, (std::vector<JobId>{weight_a == 1.0 ? JobId{3} : JobId{4}})) << "weight " << weight_a;
  }
  Scheduler s = make(1, 0);
  EXPECT_EQ(s.set_tenant_weight("a", 0).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.set_tenant_weight("a", -1).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.set_tenant_weight("a", std::nan("")).code(), ErrorCode::kInvalidArgument);
  EXPECT_DOUBLE_EQ(s.tenant_weight("nobody"), 1.0);
}

TEST(FairShare, UsageDecaysWithItsHalfLife) {
  SchedulerOptions options;
  options.fair_share_half_life_s = 3600;
  Scheduler s = make(1, 0, options);
  ASSERT_TRUE(s.submit(tenant_job(1, "a", Tier::kSpot, 8, 7200), kT0).is_ok());
  (void)s.tick(kT0);
  const Timestamp t1 = kT0.plus_seconds(3600);
  // 8 GPUs for one half-life: 8 * (1 - 1/2) / (ln 2 / 3600) GPU-seconds.
  const double expected = 8 * 0.5 * 3600 / std::log(2.0);
  EXPECT_NEAR(s.usage_gpu_seconds("a", Tier::kSpot, t1), expected, 1e-6 * expected);
  ASSERT_TRUE(s.finished(1, 0, t1).is_ok());
  EXPECT_NEAR(s.usage_gpu_seconds("a", Tier::kSpot, t1.plus_seconds(3600)), expected / 2, 1e-6 * expected);
  EXPECT_EQ(s.usage_gpu_seconds("a", Tier::kOnDemand, t1), 0.0);  // per tier
}

TEST(FairShare, EqualUsageIsFifoAcrossTenants) {
  Scheduler s = make(1, 0);
  const char* const tenants[] = {"a", "b", "a", "c", "b", "a"};
  for (JobId id = 1; id <= 6; ++id) {
    ASSERT_TRUE(s.submit(tenant_job(id, tenants[id - 1], Tier::kSpot, 1), kT0).is_ok());
  }
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kStart), (std::vector<JobId>{1, 2, 3, 4, 5, 6}));
}

// ---- Backfill --------------------------------------------------------------

TEST(Backfill, AShortJobFillsTheHoleAndTheHeadStartsByItsShadowTime) {
  Scheduler s = make(2, 0);  // 16 h100
  ASSERT_TRUE(s.submit(tenant_job(1, "t", Tier::kSpot, 8, 100), kT0).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(2, "t", Tier::kSpot, 4, 1000), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kStart).size(), 2u);
  // 16 GPUs do not fit: job 3 becomes the head. Job 1 (8 GPUs) ends by
  // kT0+100 and job 2 (4) by kT0+1000: with the 4 free ones, its shadow time
  // is kT0+1000; it claims the 4 free GPUs and is promised the other 12.
  ASSERT_TRUE(s.submit(tenant_job(3, "t", Tier::kSpot, 16, 100), kT0).is_ok());
  EXPECT_TRUE(of_kind(s.tick(kT0.plus_seconds(1)), Effect::Kind::kStart).empty());
  const TypeIndex h100 = *s.cluster().find_type("h100");
  auto head = s.backfill_head(h100);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->job, 3u);
  EXPECT_EQ(head->shadow, kT0.plus_seconds(1000));
  EXPECT_EQ(head->claimed, 4u);
  EXPECT_EQ(head->promised, 12u);
  EXPECT_EQ(s.wait_reason(3), WaitReason::kBackfillHead);
  // Job 4 ends before the shadow time: it runs on the head's claim. Job 5
  // would run past it and nothing else is free: it waits.
  ASSERT_TRUE(s.submit(tenant_job(4, "t", Tier::kSpot, 4, 500), kT0).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(5, "t", Tier::kSpot, 4, 5000), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(2)), Effect::Kind::kStart), (std::vector<JobId>{4}));
  EXPECT_EQ(s.wait_reason(5), WaitReason::kNoFit);
  EXPECT_EQ(s.backfill_head(h100)->claimed, 0u);
  EXPECT_EQ(s.backfill_head(h100)->promised, 16u);
  // Job 1 ends early: its GPUs go to the head, not to job 5.
  ASSERT_TRUE(s.finished(1, 0, kT0.plus_seconds(50)).is_ok());
  EXPECT_EQ(s.gpus_of(3).size(), 8u);
  EXPECT_TRUE(of_kind(s.tick(kT0.plus_seconds(51)), Effect::Kind::kStart).empty());
  // Job 4 is killed at its max runtime; its GPUs go back to the head.
  Effects effects = s.tick(kT0.plus_seconds(502));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kKill), (std::vector<JobId>{4}));
  EXPECT_EQ(s.gpus_of(3).size(), 12u);
  ASSERT_TRUE(s.finished(2, 0, kT0.plus_seconds(700)).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(700)), Effect::Kind::kStart), (std::vector<JobId>{3}));
  EXPECT_FALSE(s.backfill_head(h100));
  EXPECT_EQ(s.find(5)->state, JobState::kQueued);
}

TEST(Backfill, ABigGangIsNotStarvedByAStreamOfSmallJobs) {
  Scheduler s = make(2, 0);  // 16 h100
  JobId next = 1;
  std::vector<JobId> running;
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(s.submit(tenant_job(next, "t", Tier::kSpot, 1, 100 + i), kT0).is_ok());
    running.push_back(next++);
  }
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kStart).size(), 16u);
  const JobId gang = next++;
  ASSERT_TRUE(s.submit(tenant_job(gang, "t", Tier::kSpot, 16, 3600), kT0.plus_seconds(1)).is_ok());
  (void)s.tick(kT0.plus_seconds(1));
  const auto head = s.backfill_head(*s.cluster().find_type("h100"));
  ASSERT_TRUE(head);
  EXPECT_EQ(head->job, gang);
  EXPECT_EQ(head->shadow, kT0.plus_seconds(115));
  // Every second two small jobs arrive and the oldest running one finishes.
  std::optional<Timestamp> gang_started;
  for (int second = 2; second < 400 && !gang_started; ++second) {
    const Timestamp now = kT0.plus_seconds(second);
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(s.submit(tenant_job(next++, "t", Tier::kSpot, 1, 100), now).is_ok());
    if (!running.empty()) {
      if (s.find(running.front()) != nullptr) {
        ASSERT_TRUE(s.finished(running.front(), 0, now).is_ok());
      }
      running.erase(running.begin());
    }
    for (const Effect& e : s.tick(now)) {
      if (e.kind != Effect::Kind::kStart) continue;
      if (e.job == gang) {
        gang_started = now;
      } else {
        running.push_back(e.job);
      }
    }
  }
  ASSERT_TRUE(gang_started);
  EXPECT_LE(*gang_started, head->shadow.plus_seconds(1));
}

TEST(Backfill, AHigherTierTakesTheClaimOfALowerHead) {
  Scheduler s = make(1, 0);
  ASSERT_TRUE(s.submit(tenant_job(1, "t", Tier::kSpot, 6, 1000), kT0).is_ok());
  (void)s.tick(kT0);
  ASSERT_TRUE(s.submit(tenant_job(2, "t", Tier::kSpot, 8), kT0).is_ok());
  (void)s.tick(kT0.plus_seconds(1));
  EXPECT_EQ(s.gpus_of(2).size(), 2u);  // the spot head claims the 2 free GPUs
  ASSERT_TRUE(s.submit(tenant_job(3, "u", Tier::kOnDemand, 2), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(2)), Effect::Kind::kStart), (std::vector<JobId>{3}));
}

// ---- Preemption ------------------------------------------------------------

TEST(Preemption, DisturbsTheFewestGpus) {
  Scheduler s = make(2, 0);
  for (auto [id, gpus] : {std::pair<JobId, std::uint32_t>{1, 8}, {2, 4}, {3, 2}, {4, 1}, {5, 1}}) {
    ASSERT_TRUE(s.submit(job(id, Tier::kSpot, gpus), kT0).is_ok());
  }
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kStart).size(), 5u);
  // 3 GPUs: the 2-GPU job and the most recently started 1-GPU job (3 GPUs
  // disturbed), not the 4-GPU job.
  ASSERT_TRUE(s.submit(job(10, Tier::kInternal, 3), kT0).is_ok());
  std::vector<JobId> noticed = of_kind(s.tick(kT0.plus_seconds(1)), Effect::Kind::kPreemptNotice);
  std::sort(noticed.begin(), noticed.end());
  EXPECT_EQ(noticed, (std::vector<JobId>{3, 5}));
}

TEST(Preemption, InternalGetsItsGpusWithinGracePlusOneSecond) {
  Scheduler s = make(4, 1);
  JobId id = 1;
  while (s.cluster().available() > 0) {
    const std::uint32_t gpus = 1 + static_cast<std::uint32_t>(id % 3);
    ASSERT_TRUE(s.submit(job(id++, Tier::kSpot, gpus, Packing::kAny, ""), kT0).is_ok());
    (void)s.tick(kT0);
    for (JobId q = 1; q < id; ++q) {
      if (s.find(q) != nullptr && s.find(q)->state == JobState::kQueued) {
        ASSERT_TRUE(s.cancel(q, kT0).is_ok());
      }
    }
  }
  const Timestamp t1 = kT0.plus_seconds(10);
  ASSERT_TRUE(s.submit(job(1000, Tier::kInternal, 24, Packing::kRack, "h100"), t1).is_ok());
  ASSERT_TRUE(s.submit(job(1001, Tier::kInternal, 72, Packing::kNvlink, "gb200"), t1).is_ok());
  std::set<JobId> started;
  for (int ms = 0; ms <= 31'000; ms += 500) {
    for (const Effect& e : s.tick(t1.plus_micros(ms * 1000LL))) {
      if (e.kind == Effect::Kind::kStart) started.insert(e.job);
    }
  }
  EXPECT_TRUE(started.contains(1000));
  EXPECT_TRUE(started.contains(1001));
}

// ---- Reservations ----------------------------------------------------------

Reservation reservation(std::string id, std::string tenant, std::uint32_t gpus, Timestamp start, Timestamp end,
                        std::string type = "h100", Packing packing = Packing::kAny) {
  return Reservation{.id = std::move(id), .tenant_id = std::move(tenant), .gpu_type = std::move(type),
                     .gpus = gpus, .packing = packing, .start = start, .end = end};
}

Job reserved_job(JobId id, std::string tenant, std::string reservation_id, std::uint32_t gpus) {
  Job j = tenant_job(id, std::move(tenant), Tier::kReserved, gpus);
  j.gpu_type = "";  // the reservation's
  j.reservation_id = std::move(reservation_id);
  return j;
}

TEST(Reservations, BookingStopsAtTheTotalMinusTheBuffer) {
  SchedulerOptions options;
  options.internal_buffer_gpus["h100"] = 4;
  Scheduler s = make(2, 0, options);  // 16 h100, 12 bookable
  const Timestamp a = kT0.plus_seconds(100), b = kT0.plus_seconds(200), c = kT0.plus_seconds(300);
  ASSERT_TRUE(s.add_reservation(reservation("r1", "acme", 8, a, b), kT0).is_ok());
  const Status full = s.add_reservation(reservation("r2", "acme", 8, kT0.plus_seconds(150), c), kT0);
  EXPECT_EQ(full.code(), ErrorCode::kConflict);
  EXPECT_NE(full.message().find("only 4 h100 GPUs are free"), std::string::npos) << full.message();
  EXPECT_TRUE(s.add_reservation(reservation("r3", "acme", 4, kT0.plus_seconds(150), c), kT0).is_ok());
  EXPECT_TRUE(s.add_reservation(reservation("r4", "acme", 8, b, c), kT0).is_ok());  // r1 is over by then
  EXPECT_EQ(s.add_reservation(reservation("r4", "acme", 1, b, c), kT0).code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(s.add_reservation(reservation("r5", "acme", 1, b, a), kT0).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.add_reservation(reservation("r5", "acme", 1, a, b, "a100"), kT0).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.add_reservation(reservation("r5", "acme", 9, a, b, "h100", Packing::kNvlink), kT0).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.add_reservation(reservation("r5", "", 1, a, b), kT0).code(), ErrorCode::kInvalidArgument);
  // On-demand GPUs running into the window cannot be taken back either.
  Scheduler busy = make(2, 0, options);
  ASSERT_TRUE(busy.submit(tenant_job(1, "t", Tier::kOnDemand, 8, 3600), kT0).is_ok());
  (void)busy.tick(kT0);
  EXPECT_EQ(busy.add_reservation(reservation("r1", "acme", 8, a, b), kT0).code(), ErrorCode::kConflict);
  EXPECT_TRUE(busy.add_reservation(reservation("r1", "acme", 8, kT0.plus_seconds(3600), kT0.plus_seconds(7200)), kT0)
                  .is_ok());
}

TEST(Reservations, ReservedJobsNeedALiveReservationOfTheirTenant) {
  Scheduler s = make(2, 0);
  ASSERT_TRUE(s.add_reservation(reservation("r1", "acme", 8, kT0, kT0.plus_seconds(100)), kT0).is_ok());
  Job no_id = tenant_job(1, "acme", Tier::kReserved, 1);
  EXPECT_EQ(s.submit(no_id, kT0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.submit(reserved_job(1, "acme", "r2", 1), kT0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.submit(reserved_job(1, "other", "r1", 1), kT0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.submit(reserved_job(1, "acme", "r1", 9), kT0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.submit(reserved_job(1, "acme", "r1", 1), kT0.plus_seconds(100)).status().code(),
            ErrorCode::kInvalidArgument);  // ended
  Job not_reserved = tenant_job(1, "acme", Tier::kOnDemand, 1);
  not_reserved.reservation_id = "r1";
  EXPECT_EQ(s.submit(not_reserved, kT0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(s.submit(reserved_job(1, "acme", "r1", 8), kT0).is_ok());
}

TEST(Reservations, AJobQueuesBeforeTheWindowAndRunsOnlyOnItsGpus) {
  Scheduler s = make(2, 0);
  const Timestamp start = kT0.plus_seconds(100);
  ASSERT_TRUE(s.add_reservation(reservation("r1", "acme", 8, start, start.plus_seconds(1000)), kT0).is_ok());
  ASSERT_TRUE(s.submit(reserved_job(1, "acme", "r1", 8), kT0).is_ok());
  EXPECT_TRUE(of_kind(s.tick(kT0), Effect::Kind::kStart).empty());
  EXPECT_EQ(s.wait_reason(1), WaitReason::kReservationNotStarted);
  // The on-demand headroom already leaves the reservation's 8 GPUs alone.
  ASSERT_TRUE(s.submit(tenant_job(2, "t", Tier::kOnDemand, 16, 100), kT0).is_ok());
  EXPECT_TRUE(of_kind(s.tick(kT0.plus_seconds(1)), Effect::Kind::kStart).empty());
  EXPECT_EQ(s.wait_reason(2), WaitReason::kOnDemandHeadroom);
  ASSERT_TRUE(s.cancel(2, kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(start), Effect::Kind::kStart), (std::vector<JobId>{1}));
  const auto view = s.find_reservation("r1");
  ASSERT_TRUE(view);
  EXPECT_TRUE(view->started);
  EXPECT_EQ(std::set<GpuIndex>(view->gpus.begin(), view->gpus.end()),
            std::set<GpuIndex>(s.gpus_of(1).begin(), s.gpus_of(1).end()));
  // Internal work does not take reserved GPUs, even idle ones.
  ASSERT_TRUE(s.finished(1, 0, start.plus_seconds(10)).is_ok());
  EXPECT_EQ(s.find_reservation("r1")->idle, 8u);
  ASSERT_TRUE(s.submit(tenant_job(3, "owner", Tier::kInternal, 16), start).is_ok());
  EXPECT_TRUE(of_kind(s.tick(start.plus_seconds(11)), Effect::Kind::kStart).empty());
}

TEST(Reservations, SpotJobsOnTheSetGetNoticeAtTheStart) {
  Scheduler s = make(1, 0);
  for (JobId id = 1; id <= 8; ++id) ASSERT_TRUE(s.submit(tenant_job(id, "t", Tier::kSpot, 1), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kStart).size(), 8u);
  const Timestamp start = kT0.plus_seconds(10);
  ASSERT_TRUE(s.add_reservation(reservation("r1", "acme", 4, start, start.plus_seconds(1000)), kT0).is_ok());
  ASSERT_TRUE(s.submit(reserved_job(20, "acme", "r1", 4), kT0).is_ok());
  Effects effects = s.tick(start);
  EXPECT_EQ(of_kind(effects, Effect::Kind::kPreemptNotice).size(), 4u);
  EXPECT_EQ(s.wait_reason(20), WaitReason::kWaitingForVictims);
  effects = s.tick(start.plus_seconds(30));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kKill).size(), 4u);
  EXPECT_EQ(of_kind(effects, Effect::Kind::kStart), (std::vector<JobId>{20}));
}

TEST(Reservations, IdleGpusAreLentToSpotAndTakenBack) {
  Scheduler s = make(1, 0);
  ASSERT_TRUE(s.add_reservation(reservation("r1", "acme", 8, kT0, kT0.plus_seconds(1000)), kT0).is_ok());
  (void)s.tick(kT0);
  EXPECT_EQ(s.find_reservation("r1")->idle, 8u);
  ASSERT_TRUE(s.submit(tenant_job(1, "t", Tier::kSpot, 4), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(1)), Effect::Kind::kStart), (std::vector<JobId>{1}));
  std::vector<TypeSurplus> surplus = s.surplus(kT0.plus_seconds(1));
  EXPECT_EQ(surplus[0].reserved, 8u);
  EXPECT_EQ(surplus[0].reserved_lent_to_spot, 4u);
  EXPECT_EQ(surplus[0].spot, 0u);
  // Internal work does not reclaim borrowed reserved GPUs.
  ASSERT_TRUE(s.submit(tenant_job(2, "owner", Tier::kInternal, 4), kT0).is_ok());
  EXPECT_TRUE(of_kind(s.tick(kT0.plus_seconds(2)), Effect::Kind::kPreemptNotice).empty());
  ASSERT_TRUE(s.cancel(2, kT0.plus_seconds(2)).is_ok());
  // The reservation's own job does.
  ASSERT_TRUE(s.submit(reserved_job(3, "acme", "r1", 8), kT0).is_ok());
  Effects effects = s.tick(kT0.plus_seconds(3));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kPreemptNotice), (std::vector<JobId>{1}));
  effects = s.tick(kT0.plus_seconds(33));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kKill), (std::vector<JobId>{1}));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kStart), (std::vector<JobId>{3}));
}

TEST(Reservations, TheEndGivesNoticeAndCancelsWhatWaits) {
  Scheduler s = make(2, 0);
  const Timestamp end = kT0.plus_seconds(100);
  ASSERT_TRUE(s.add_reservation(reservation("r1", "acme", 8, kT0, end), kT0).is_ok());
  ASSERT_TRUE(s.submit(reserved_job(1, "acme", "r1", 8), kT0).is_ok());
  ASSERT_TRUE(s.submit(reserved_job(2, "acme", "r1", 8), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kStart), (std::vector<JobId>{1}));
  EXPECT_EQ(s.wait_reason(2), WaitReason::kReservationFull);
  Effects effects = s.tick(end);
  EXPECT_EQ(of_kind(effects, Effect::Kind::kPreemptNotice), (std::vector<JobId>{1}));
  EXPECT_EQ(s.find(1)->state, JobState::kPreempting);
  EXPECT_EQ(s.find(2), nullptr);  // cancelled
  bool cancelled_for_the_end = false;
  for (const Effect& e : effects) {
    cancelled_for_the_end |= e.job == 2 && e.state == JobState::kCancelled && e.reason == Reason::kReservationEnded;
  }
  EXPECT_TRUE(cancelled_for_the_end);
  EXPECT_FALSE(s.find_reservation("r1"));
  EXPECT_EQ(s.surplus(end)[0].reserved, 8u);  // its job, in its grace
  effects = s.tick(end.plus_seconds(30));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kKill), (std::vector<JobId>{1}));
  EXPECT_EQ(s.surplus(end)[0].idle, 16u);
  // Cancelling one: not_found once it is gone.
  ASSERT_TRUE(s.add_reservation(reservation("r2", "acme", 8, end, end.plus_seconds(100)), end).is_ok());
  EXPECT_TRUE(s.cancel_reservation("r2", end).is_ok());
  EXPECT_EQ(s.cancel_reservation("r2", end).status().code(), ErrorCode::kNotFound);
}

TEST(Reservations, ASetOnANodeThatGoesDownTopsUpElsewhere) {
  Scheduler s = make(2, 0);
  ASSERT_TRUE(s.add_reservation(reservation("r1", "acme", 8, kT0, kT0.plus_seconds(1000)), kT0).is_ok());
  (void)s.tick(kT0);
  const auto view = s.find_reservation("r1");
  ASSERT_EQ(view->gpus.size(), 8u);
  const std::string node = s.cluster().node(s.cluster().gpu_node(view->gpus[0])).name;
  ASSERT_TRUE(s.set_node_state(node, fleet::NodeState::kDown, kT0).is_ok());
  EXPECT_EQ(s.find_reservation("r1")->missing, 8u);
  (void)s.tick(kT0.plus_seconds(1));
  EXPECT_EQ(s.find_reservation("r1")->missing, 0u);
  EXPECT_EQ(s.find_reservation("r1")->idle, 8u);
}

// ---- Quotas ------------------------------------------------------------------

TEST(Quotas, AGangAboveALimitIsRefused) {
  Scheduler s = make(2, 0);
  ASSERT_TRUE(s.set_quota("q", TenantQuota{.max_queued_jobs = std::nullopt,
                                           .gpu_limits = {{.tier = Tier::kOnDemand, .gpu_type = "h100",
                                                           .max_gpus = 4}}})
                  .is_ok());
  Job big = tenant_job(1, "q", Tier::kOnDemand, 8);
  const Status refused = s.submit(big, kT0).status();
  EXPECT_EQ(refused.code(), ErrorCode::kQuotaExceeded);
  EXPECT_NE(refused.message().find("limit of 4 on-demand GPUs of type h100"), std::string::npos)
      << refused.message();
  big.gpu_type = "";  // any type may land on h100
  EXPECT_EQ(s.submit(big, kT0).status().code(), ErrorCode::kQuotaExceeded);
  big.wait_for_quota = true;  // waiting cannot help a gang above the limit
  EXPECT_EQ(s.submit(big, kT0).status().code(), ErrorCode::kQuotaExceeded);
  EXPECT_TRUE(s.submit(tenant_job(2, "q", Tier::kSpot, 8), kT0).is_ok());  // other tiers are free
  EXPECT_EQ(s.set_quota("q", TenantQuota{.max_queued_jobs = std::nullopt,
                                         .gpu_limits = {{.tier = Tier::kSpot, .gpu_type = "a100", .max_gpus = 1}}})
                .code(),
            ErrorCode::kInvalidArgument);
}

TEST(Quotas, OverQuotaIsRefusedUnlessTheJobWaits) {
  Scheduler s = make(2, 0);
  ASSERT_TRUE(s.set_quota("q", TenantQuota{.max_queued_jobs = std::nullopt,
                                           .gpu_limits = {{.tier = Tier::kOnDemand, .gpu_type = "", .max_gpus = 8}}})
                  .is_ok());
  ASSERT_TRUE(s.submit(tenant_job(1, "q", Tier::kOnDemand, 6), kT0).is_ok());
  (void)s.tick(kT0);
  const Status refused = s.submit(tenant_job(2, "q", Tier::kOnDemand, 4), kT0).status();
  EXPECT_EQ(refused.code(), ErrorCode::kQuotaExceeded);
  EXPECT_NE(refused.message().find("holds or has queued 6"), std::string::npos) << refused.message();
  Job waits = tenant_job(2, "q", Tier::kOnDemand, 4);
  waits.wait_for_quota = true;
  ASSERT_TRUE(s.submit(waits, kT0).is_ok());
  EXPECT_TRUE(of_kind(s.tick(kT0.plus_seconds(1)), Effect::Kind::kStart).empty());
  EXPECT_EQ(s.wait_reason(2), WaitReason::kQuota);
  ASSERT_TRUE(s.finished(1, 0, kT0.plus_seconds(2)).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(2)), Effect::Kind::kStart), (std::vector<JobId>{2}));
}

TEST(Quotas, QueuedJobsAreLimited) {
  Scheduler s = make(1, 0);
  ASSERT_TRUE(s.set_quota("q", TenantQuota{.max_queued_jobs = 2, .gpu_limits = {}}).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(1, "q", Tier::kSpot, 1), kT0).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(2, "q", Tier::kSpot, 1), kT0).is_ok());
  EXPECT_EQ(s.submit(tenant_job(3, "q", Tier::kSpot, 1), kT0).status().code(), ErrorCode::kQuotaExceeded);
  (void)s.tick(kT0);  // both start: the queue is empty again
  EXPECT_TRUE(s.submit(tenant_job(3, "q", Tier::kSpot, 1), kT0).is_ok());
}

// ---- Surplus and node states ---------------------------------------------------

TEST(Surplus, ThePartsAddUpAndTheBufferIsNotSoldOnDemand) {
  SchedulerOptions options;
  options.internal_buffer_gpus["h100"] = 4;
  Scheduler s = make(2, 1, options);  // 16 h100, 72 gb200
  ASSERT_TRUE(s.set_node_state("hgx-1", fleet::NodeState::kCordoned, kT0).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(1, "owner", Tier::kInternal, 2), kT0).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(2, "t", Tier::kOnDemand, 2), kT0).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(3, "t", Tier::kSpot, 1), kT0).is_ok());
  ASSERT_TRUE(s.add_reservation(reservation("r1", "acme", 8, kT0, kT0.plus_seconds(1000), "gb200"), kT0).is_ok());
  ASSERT_TRUE(s.submit(reserved_job(4, "acme", "r1", 4), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kStart).size(), 4u);
  const std::vector<TypeSurplus> surplus = s.surplus(kT0);
  const TypeSurplus& h100 = surplus[*s.cluster().find_type("h100")];
  EXPECT_EQ(h100.total, 16u);
  EXPECT_EQ(h100.down, 8u);
  EXPECT_EQ(h100.internal_in_use, 2u);
  EXPECT_EQ(h100.on_demand, 2u);
  EXPECT_EQ(h100.spot, 1u);
  EXPECT_EQ(h100.idle, 3u);
  EXPECT_EQ(h100.internal_buffer, 4u);
  EXPECT_EQ(h100.sellable_now, 0u);  // 8 up - 4 buffer - 2 internal - 2 on-demand
  const TypeSurplus& gb200 = surplus[*s.cluster().find_type("gb200")];
  EXPECT_EQ(gb200.reserved, 8u);
  EXPECT_EQ(gb200.idle, 64u);
  EXPECT_EQ(gb200.sellable_now, 64u);
  // An on-demand job waits rather than eat into the buffer; internal work may.
  ASSERT_TRUE(s.submit(tenant_job(5, "t", Tier::kOnDemand, 1), kT0).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(6, "owner", Tier::kInternal, 3), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(1)), Effect::Kind::kStart), (std::vector<JobId>{6}));
  EXPECT_EQ(s.wait_reason(5), WaitReason::kOnDemandHeadroom);
  // An on-demand gang larger than the total minus the buffer never runs.
  EXPECT_EQ(s.submit(tenant_job(7, "t", Tier::kOnDemand, 13), kT0).status().code(), ErrorCode::kInvalidArgument);
}

TEST(NodeStates, CordonKeepsJobsDrainStopsSpotUncordonReturns) {
  Scheduler s = make(1, 0);
  ASSERT_TRUE(s.submit(tenant_job(1, "t", Tier::kSpot, 4), kT0).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(2, "t", Tier::kOnDemand, 2), kT0).is_ok());
  (void)s.tick(kT0);
  auto cordoned = s.cordon("hgx-0", kT0);
  ASSERT_TRUE(cordoned.is_ok());
  EXPECT_TRUE(cordoned->empty());
  ASSERT_TRUE(s.submit(tenant_job(3, "t", Tier::kOnDemand, 1), kT0).is_ok());
  EXPECT_TRUE(of_kind(s.tick(kT0.plus_seconds(1)), Effect::Kind::kStart).empty());
  auto drained = s.drain("hgx-0", kT0.plus_seconds(2));
  ASSERT_TRUE(drained.is_ok());
  EXPECT_EQ(of_kind(*drained, Effect::Kind::kPreemptNotice), (std::vector<JobId>{1}));
  EXPECT_EQ(s.find(1)->state, JobState::kPreempting);
  Effects effects = s.tick(kT0.plus_seconds(32));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kKill), (std::vector<JobId>{1}));
  EXPECT_TRUE(of_kind(effects, Effect::Kind::kStart).empty());
  EXPECT_EQ(s.find(2)->state, JobState::kStarting);  // on-demand runs to completion
  ASSERT_TRUE(s.uncordon("hgx-0", kT0.plus_seconds(33)).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(33)), Effect::Kind::kStart), (std::vector<JobId>{3}));
}

// ---- Restart and queue position ------------------------------------------------

TEST(Restore, PutsRunningJobsBackOnTheirGpus) {
  Scheduler s = make(2, 0);
  const ClusterState& cs = s.cluster();
  EXPECT_EQ(cs.find_gpu("hgx-1", 3), std::optional<GpuIndex>(11));
  EXPECT_FALSE(cs.find_gpu("hgx-1", 8));
  EXPECT_FALSE(cs.find_gpu("nope", 0));
  ASSERT_TRUE(s.add_reservation(reservation("r1", "acme", 8, kT0, kT0.plus_seconds(1000)), kT0).is_ok());
  const std::vector<GpuIndex> spot_gpus = {0, 1, 2, 3};
  const Timestamp now = kT0.plus_seconds(5);
  auto restored = s.restore(job(1, Tier::kSpot, 4), spot_gpus, JobState::kRunning, kT0, now);
  ASSERT_TRUE(restored.is_ok()) << restored.status().to_string();
  EXPECT_TRUE(restored->empty());
  EXPECT_EQ(s.find(1)->state, JobState::kRunning);
  EXPECT_EQ(std::vector<GpuIndex>(s.gpus_of(1).begin(), s.gpus_of(1).end()), spot_gpus);
  // A reserved job's GPUs become its reservation's set.
  const std::vector<GpuIndex> reserved_gpus = {8, 9};
  ASSERT_TRUE(s.restore(reserved_job(2, "acme", "r1", 2), reserved_gpus, JobState::kRunning, kT0, now).is_ok());
  EXPECT_TRUE(s.find_reservation("r1")->started);
  EXPECT_EQ(s.find_reservation("r1")->missing, 6u);
  // Held GPUs, a wrong gang, a live id: refused.
  EXPECT_EQ(s.restore(job(3, Tier::kSpot, 1), std::vector<GpuIndex>{0}, JobState::kRunning, kT0, now).status().code(),
            ErrorCode::kConflict);
  EXPECT_EQ(s.restore(job(3, Tier::kSpot, 2), std::vector<GpuIndex>{4}, JobState::kRunning, kT0, now).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.restore(job(1, Tier::kSpot, 1), std::vector<GpuIndex>{5}, JobState::kRunning, kT0, now).status().code(),
            ErrorCode::kAlreadyExists);
  // The reservation tops up around it; both are killed at their max runtime.
  (void)s.tick(now);
  EXPECT_EQ(s.find_reservation("r1")->missing, 0u);
  EXPECT_EQ(of_kind(s.tick(kT0.plus_seconds(3600)), Effect::Kind::kKill), (std::vector<JobId>{1, 2}));
}

TEST(QueuePosition, FollowsTiersAndFairShare) {
  Scheduler s = make(1, 0);
  ASSERT_TRUE(s.submit(tenant_job(1, "a", Tier::kSpot, 8, 600), kT0).is_ok());
  (void)s.tick(kT0);  // a has usage from now on
  const Timestamp t1 = kT0.plus_seconds(60);
  ASSERT_TRUE(s.submit(tenant_job(2, "a", Tier::kSpot, 1), t1).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(3, "a", Tier::kSpot, 1), t1).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(4, "b", Tier::kSpot, 1), t1).is_ok());
  ASSERT_TRUE(s.submit(tenant_job(5, "c", Tier::kOnDemand, 1), t1).is_ok());
  (void)s.tick(t1);
  EXPECT_EQ(s.queue_position(5), 1u);  // a higher tier
  EXPECT_EQ(s.queue_position(4), 2u);  // b has no usage
  EXPECT_EQ(s.queue_position(2), 3u);
  EXPECT_EQ(s.queue_position(3), 4u);
  EXPECT_EQ(s.queue_position(1), 0u);  // running
}

// ---- The randomised test ---------------------------------------------------

struct Checker {
  const Scheduler& s;
  std::map<JobId, Tier> tier_of;
  std::map<std::string, TenantQuota> quotas;

  void check_effects(const Effects& effects) {
    for (const Effect& e : effects) {
      const Tier tier = tier_of.at(e.job);
      const bool notice = e.kind == Effect::Kind::kPreemptNotice ||
                          (e.kind == Effect::Kind::kStateChanged && e.state == JobState::kPreempting);
      if (notice) {
        // Preemption only goes downward: spot for higher tiers, draining
        // nodes and spent budgets; a reserved job only when its own
        // reservation ends.
        if (e.reason == Reason::kReservationEnded) {
          ASSERT_EQ(tier, Tier::kReserved) << "job " << e.job;
        } else {
          ASSERT_TRUE(e.reason == Reason::kPreemptedForHigherTier || e.reason == Reason::kNodeDraining ||
                      e.reason == Reason::kBudgetExhausted);
          ASSERT_EQ(tier, Tier::kSpot) << "job " << e.job << " preempted but not spot";
        }
      }
      if (e.kind == Effect::Kind::kKill) {
        ASSERT_TRUE(e.reason != Reason::kPreemptedForHigherTier);
        if (e.reason == Reason::kGraceExpired) {
          ASSERT_TRUE(tier == Tier::kSpot || tier == Tier::kReserved) << "job " << e.job;
        }
        if (tier == Tier::kOnDemand || tier == Tier::kInternal) {
          ASSERT_TRUE(e.reason == Reason::kCancelled || e.reason == Reason::kMaxRuntimeExceeded ||
                      e.reason == Reason::kNodeLost)
              << "job " << e.job << " of tier " << tier_name(tier) << " killed for " << reason_name(e.reason);
        }
      }
      if (e.kind == Effect::Kind::kStart) {
        for (GpuIndex g : e.gpus) {
          ASSERT_EQ(s.cluster().node(s.cluster().gpu_node(g)).state, fleet::NodeState::kUp);
        }
      }
    }
  }

  void check_state() {
    const ClusterState& cs = s.cluster();
    std::vector<JobId> holder(cs.gpu_count(), kNoJob);
    std::map<std::pair<std::string, std::pair<int, std::string>>, std::uint32_t> held;  // (tenant, (tier, type))
    s.for_each_job([&](const Job& job, std::span<const GpuIndex> gpus) {
      for (GpuIndex g : gpus) {
        ASSERT_EQ(holder[g], kNoJob) << "gpu " << g << " held by " << holder[g] << " and " << job.id;
        holder[g] = job.id;
      }
      if (holds_gpus(job.state)) {
        ASSERT_EQ(gpus.size(), job.gpus) << "job " << job.id << " is not whole";
        const TypeIndex type = cs.gpu_type(gpus[0]);
        if (!job.gpu_type.empty()) {
          ASSERT_EQ(cs.type_name(type), job.gpu_type);
        }
        const std::optional<Level> level = packing_level(job.packing);
        for (GpuIndex g : gpus) {
          ASSERT_EQ(cs.gpu_type(g), type) << "job " << job.id << " mixes types";
          if (level) {
            ASSERT_EQ(cs.gpu_group(g, *level), cs.gpu_group(gpus[0], *level)) << "job " << job.id;
          }
        }
        held[{job.tenant_id, {int(job.tier), cs.type_name(type)}}] += job.gpus;
      } else {
        ASSERT_EQ(job.state, JobState::kQueued);
        ASSERT_LE(gpus.size(), job.gpus) << "job " << job.id << " claims more than its gang";
      }
    });
    // Reservations: every GPU of a set is held by the reservation, one of its
    // own jobs, or a spot job (borrowing, or leaving); no GPU is in two sets.
    std::vector<std::uint32_t> in_set(cs.gpu_count(), kNoIndex);
    std::map<std::string, std::uint32_t> set_of;
    s.for_each_reservation([&](const ReservationView& r) {
      set_of[r.spec.id] = r.index;
      ASSERT_LE(r.gpus.size(), r.spec.gpus);
      ASSERT_EQ(r.gpus.size() + r.missing, r.spec.gpus);
      if (!r.started) {
        ASSERT_TRUE(r.gpus.empty());
      }
      std::uint32_t idle = 0;
      for (GpuIndex g : r.gpus) {
        ASSERT_EQ(in_set[g], kNoIndex) << "gpu " << g << " in two reservations";
        in_set[g] = r.index;
        ASSERT_EQ(cs.gpu_type(g), *cs.find_type(r.spec.gpu_type));
        const JobId h = cs.holder(g);
        if (h == Scheduler::reservation_holder(r.index)) {
          ASSERT_EQ(holder[g], kNoJob);
          ++idle;
          continue;
        }
        const Job* job = s.find(h);
        ASSERT_NE(job, nullptr) << "gpu " << g << " of reservation " << r.spec.id << " held by " << h;
        ASSERT_TRUE(job->tier == Tier::kSpot ||
                    (job->tier == Tier::kReserved && job->reservation_id == r.spec.id))
            << "gpu " << g << " of reservation " << r.spec.id << " held by job " << job->id << " of tier "
            << tier_name(job->tier);
      }
      ASSERT_EQ(idle, r.idle);
    });
    s.for_each_job([&](const Job& job, std::span<const GpuIndex> gpus) {
      if (job.tier != Tier::kReserved || job.state == JobState::kPreempting) return;
      // A reserved job runs on its own reservation's GPUs only.
      auto it = set_of.find(*job.reservation_id);
      ASSERT_NE(it, set_of.end()) << "reserved job " << job.id << " outlived its reservation without notice";
      for (GpuIndex g : gpus) {
        ASSERT_EQ(in_set[g], it->second) << "reserved job " << job.id << " on gpu " << g << " outside its reservation";
      }
    });
    // The index agrees with an independent recount.
    std::vector<std::uint32_t> type_available(cs.type_count(), 0);
    std::array<std::vector<std::uint32_t>, kLevelCount> group_available;
    for (std::size_t l = 0; l < kLevelCount; ++l) group_available[l].assign(cs.group_count(Level(l)), 0);
    for (GpuIndex g = 0; g < cs.gpu_count(); ++g) {
      if (holder[g] != kNoJob) {
        ASSERT_EQ(cs.holder(g), holder[g]) << "gpu " << g;
      } else if (in_set[g] != kNoIndex) {
        ASSERT_EQ(cs.holder(g), Scheduler::reservation_holder(in_set[g])) << "gpu " << g;
      } else {
        ASSERT_EQ(cs.holder(g), kNoJob) << "gpu " << g;
      }
      if (cs.is_available(g)) {
        ++type_available[cs.gpu_type(g)];
        for (std::size_t l = 0; l < kLevelCount; ++l) ++group_available[l][cs.gpu_group(g, Level(l))];
      }
    }
    for (std::size_t t = 0; t < cs.type_count(); ++t) ASSERT_EQ(cs.type_available(TypeIndex(t)), type_available[t]);
    for (std::size_t l = 0; l < kLevelCount; ++l) {
      for (GroupIndex g = 0; g < cs.group_count(Level(l)); ++g) {
        ASSERT_EQ(cs.group(Level(l), g).available, group_available[l][g]);
      }
    }
    // Quotas are never exceeded.
    for (const auto& [tenant, quota] : quotas) {
      for (const GpuLimit& limit : quota.gpu_limits) {
        std::uint32_t total = 0;
        for (const auto& [key, gpus] : held) {
          if (key.first == tenant && key.second.first == int(limit.tier) &&
              (limit.gpu_type.empty() || limit.gpu_type == key.second.second)) {
            total += gpus;
          }
        }
        ASSERT_LE(total, limit.max_gpus) << "tenant " << tenant << " over its quota";
      }
    }
  }

  // After a tick: no queued job of a higher tier than one started now could
  // start now (it fits, its quota allows it, and for on-demand the headroom
  // does). Reserved jobs are placed on their reservations only; the
  // reservation checks above cover them.
  void check_tiers(const Effects& effects, Timestamp now) {
    int lowest_started = -1;
    for (const Effect& e : effects) {
      if (e.kind == Effect::Kind::kStart) lowest_started = std::max(lowest_started, int(tier_of.at(e.job)));
    }
    if (lowest_started < 0) return;
    s.for_each_job([&](const Job& job, std::span<const GpuIndex>) {
      if (job.state != JobState::kQueued || int(job.tier) >= lowest_started || job.tier == Tier::kReserved) return;
      for (std::size_t t = 0; t < s.cluster().type_count(); ++t) {
        const TypeIndex type = TypeIndex(t);
        if (!job.gpu_type.empty() && s.cluster().type_name(type) != job.gpu_type) continue;
        if (!s.quota_allows(job.tenant_id, job.tier, type, job.gpus)) continue;
        if (job.tier == Tier::kOnDemand && s.on_demand_headroom(type, now, job.max_runtime_s) < job.gpus) continue;
        ASSERT_FALSE(place(s.cluster(), {.gpus = job.gpus, .type = type, .packing = job.packing}))
            << "job " << job.id << " of tier " << tier_name(job.tier) << " fits but a lower tier started (it waits: "
            << wait_reason_name(s.wait_reason(job.id)) << ", claims " << s.gpus_of(job.id).size() << " of "
            << job.gpus << " " << packing_name(job.packing) << " " << job.gpu_type << ")";
      }
    });
  }
};

TEST(SchedulerRandom, TwelveThousandOperationsKeepTheInvariants) {
  std::uint64_t seed = 20260101;
  if (const char* env = std::getenv("HEADROOM_SCHED_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("seed %llu (set HEADROOM_SCHED_SEED to replay)\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  const fleet::FleetSpec spec = make_fleet(24, 2);  // 192 h100 + 144 gb200
  SchedulerOptions options;
  options.grace_ms[static_cast<int>(Tier::kSpot)] = 5'000;
  options.grace_ms[static_cast<int>(Tier::kReserved)] = 3'000;
  options.internal_buffer_gpus["h100"] = 16;
  options.fair_share_half_life_s = 600;
  auto created = Scheduler::create(spec, options);
  ASSERT_TRUE(created.is_ok());
  Scheduler s = std::move(created).value();
  Checker checker{s, {}, {}};
  // ten_3 has quotas (some of its jobs wait for them); weights differ.
  const TenantQuota quota{.max_queued_jobs = 40,
                          .gpu_limits = {{.tier = Tier::kOnDemand, .gpu_type = "", .max_gpus = 48},
                                         {.tier = Tier::kSpot, .gpu_type = "h100", .max_gpus = 24},
                                         {.tier = Tier::kReserved, .gpu_type = "", .max_gpus = 16}}};
  ASSERT_TRUE(s.set_quota("ten_3", quota).is_ok());
  checker.quotas["ten_3"] = quota;
  ASSERT_TRUE(s.set_tenant_weight("ten_1", 2.0).is_ok());
  ASSERT_TRUE(s.set_tenant_weight("ten_2", 0.5).is_ok());
  Timestamp now = kT0;
  JobId next_id = 1;
  int next_reservation = 1;
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
  auto live_ids = [&](auto pred) {
    std::vector<JobId> ids;
    s.for_each_job([&](const Job& j, std::span<const GpuIndex>) {
      if (pred(j)) ids.push_back(j.id);
    });
    return ids;
  };
  std::size_t refused_quota = 0, reserved_submitted = 0;
  auto submit_random = [&](Tier tier) {
    Job j;
    j.id = next_id++;
    j.tenant_id = "ten_" + std::to_string(pick(5));
    j.tier = tier;
    const int size_class = pick(10);
    j.gpus = size_class < 7 ? 1 + pick(8) : size_class < 9 ? 8 + pick(40) : 64 + pick(16);
    const int type = pick(3);
    j.gpu_type = type == 0 ? "h100" : type == 1 ? "gb200" : "";
    j.packing = static_cast<Packing>(pick(4));
    j.max_runtime_s = 30 + pick(600);
    j.requeue_on_preempt = pick(2) == 0;
    j.wait_for_quota = pick(2) == 0;
    if (tier == Tier::kReserved) {
      std::vector<std::string> mine;
      s.for_each_reservation([&](const ReservationView& r) {
        if (r.spec.tenant_id == j.tenant_id) mine.push_back(r.spec.id);
      });
      if (!mine.empty() && pick(10) != 0) {  // now and then one without: refused
        j.reservation_id = mine[pick(static_cast<int>(mine.size()))];
        j.gpu_type = "";
        j.gpus = 1 + pick(16);
      }
    }
    auto result = s.submit(j, now);
    if (result.is_ok()) {
      checker.tier_of[j.id] = tier;
      reserved_submitted += tier == Tier::kReserved;
      checker.check_effects(*result);
    } else if (result.status().code() == ErrorCode::kQuotaExceeded) {
      ++refused_quota;
    } else {
      ASSERT_EQ(result.status().code(), ErrorCode::kInvalidArgument) << result.status().to_string();
    }
  };
  const int kSteps = 12'000;
  std::size_t starts = 0, preemptions = 0, kills = 0, reservations_booked = 0, reservations_refused = 0;
  std::size_t lent_seen = 0, reserved_starts = 0, head_seen = 0, budget_notices = 0;
  for (int step = 0; step < kSteps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step) + " seed " + std::to_string(seed));
    const int op = pick(100);
    if (op < 28) {
      const int t = pick(10);
      submit_random(t == 0 ? Tier::kInternal : t < 3 ? Tier::kReserved : t < 5 ? Tier::kOnDemand : Tier::kSpot);
    } else if (op < 31) {
      const int surge = 4 + pick(8);  // an internal surge
      for (int i = 0; i < surge; ++i) submit_random(Tier::kInternal);
    } else if (op < 33) {
      // A reservation for ten_0 .. ten_3, starting soon or now.
      const Timestamp start = now.plus_seconds(pick(120) - 10);
      Reservation r{.id = "res_" + std::to_string(next_reservation++), .tenant_id = "ten_" + std::to_string(pick(4)),
                    .gpu_type = pick(2) == 0 ? "h100" : "gb200", .gpus = std::uint32_t(4 + pick(40)),
                    .packing = static_cast<Packing>(pick(4)), .start = start,
                    .end = start.plus_seconds(30 + pick(300))};
      const Status booked = s.add_reservation(r, now);
      if (booked.is_ok()) {
        ++reservations_booked;
      } else {
        ++reservations_refused;
        ASSERT_TRUE(booked.code() == ErrorCode::kConflict || booked.code() == ErrorCode::kInvalidArgument)
            << booked.to_string();
      }
    } else if (op < 34) {
      std::vector<std::string> ids;
      s.for_each_reservation([&](const ReservationView& r) { ids.push_back(r.spec.id); });
      if (!ids.empty()) {
        auto r = s.cancel_reservation(ids[pick(static_cast<int>(ids.size()))], now);
        ASSERT_TRUE(r.is_ok());
        checker.check_effects(*r);
      }
    } else if (op < 40) {
      auto ids = live_ids([](const Job&) { return true; });
      if (!ids.empty()) {
        auto r = s.cancel(ids[pick(static_cast<int>(ids.size()))], now);
        ASSERT_TRUE(r.is_ok());
        checker.check_effects(*r);
      }
    } else if (op < 42) {
      // A spent budget: notice for spot jobs, refused for the others. Mostly
      // jobs that hold GPUs, since most live jobs wait in the queue.
      const bool any = pick(4) == 0;
      auto ids = live_ids([&](const Job& j) { return any || holds_gpus(j.state); });
      if (!ids.empty()) {
        const JobId id = ids[pick(static_cast<int>(ids.size()))];
        auto r = s.preempt(id, Reason::kBudgetExhausted, now);
        if (checker.tier_of.at(id) == Tier::kSpot) {
          ASSERT_TRUE(r.is_ok()) << r.status().to_string();
          checker.check_effects(*r);
          budget_notices += of_kind(*r, Effect::Kind::kPreemptNotice).size();
        } else {
          ASSERT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
        }
      }
    } else if (op < 55) {
      auto ids = live_ids([](const Job& j) { return holds_gpus(j.state); });
      if (!ids.empty()) {
        auto r = s.finished(ids[pick(static_cast<int>(ids.size()))], pick(3) == 0 ? 1 : 0, now);
        ASSERT_TRUE(r.is_ok());
        checker.check_effects(*r);
      }
    } else if (op < 60) {
      auto ids = live_ids([](const Job& j) { return j.state == JobState::kStarting; });
      if (!ids.empty()) {
        ASSERT_TRUE(s.running(ids[pick(static_cast<int>(ids.size()))], now).is_ok());
      }
    } else if (op < 65) {
      const auto& node = spec.nodes[pick(static_cast<int>(spec.nodes.size()))];
      const int st = pick(10);
      const fleet::NodeState state = st < 5 ? fleet::NodeState::kUp : st < 7 ? fleet::NodeState::kDown
                                   : st < 9 ? fleet::NodeState::kCordoned : fleet::NodeState::kDraining;
      auto r = s.set_node_state(node.name, state, now);
      ASSERT_TRUE(r.is_ok());
      checker.check_effects(*r);
    } else {
      now = now.plus_micros(static_cast<std::int64_t>(pick(4'000'000)));
      const Effects effects = s.tick(now);
      checker.check_effects(effects);
      checker.check_tiers(effects, now);
      for (const Effect& e : effects) {
        starts += e.kind == Effect::Kind::kStart;
        reserved_starts += e.kind == Effect::Kind::kStart && checker.tier_of.at(e.job) == Tier::kReserved;
        preemptions += e.kind == Effect::Kind::kPreemptNotice;
        kills += e.kind == Effect::Kind::kKill;
      }
      for (const TypeSurplus& t : s.surplus(now)) lent_seen += t.reserved_lent_to_spot > 0;  // CHECKs its sum
      for (std::size_t t = 0; t < s.cluster().type_count(); ++t) head_seen += s.backfill_head(TypeIndex(t)).has_value();
    }
    checker.check_state();
    if (::testing::Test::HasFatalFailure()) return;
  }
  std::printf("%d steps: %zu starts (%zu reserved), %zu preemption notices, %zu kills, %zu live jobs; "
              "%zu reservations booked, %zu refused; %zu quota refusals; ticks with lent GPUs %zu, heads %zu; "
              "%zu budget notices\n",
              kSteps, starts, reserved_starts, preemptions, kills, s.live_jobs(), reservations_booked,
              reservations_refused, refused_quota, lent_seen, head_seen, budget_notices);
  EXPECT_GT(starts, 1000u);
  EXPECT_GT(preemptions, 10u);
  EXPECT_GT(reservations_booked, 20u);
  EXPECT_GT(reserved_starts, 10u);
  EXPECT_GT(head_seen, 100u);
  EXPECT_GT(budget_notices, 10u);
}

// ---- Preemption from outside the scheduler ------------------------------------

// The effects of one job, as (kind, state, reason), in order.
std::vector<std::tuple<Effect::Kind, JobState, Reason>> effects_of(const Effects& effects, JobId id) {
  std::vector<std::tuple<Effect::Kind, JobState, Reason>> out;
  for (const Effect& e : effects) {
    if (e.job == id) out.emplace_back(e.kind, e.state, e.reason);
  }
  return out;
}

TEST(PreemptFromOutside, ASpotJobGetsNoticeAndIsKilledAtTheDeadline) {
  Scheduler s = make(1, 0);
  Checker checker{s, {{1, Tier::kSpot}, {2, Tier::kSpot}}, {}};
  Job requeued = job(1, Tier::kSpot, 4);
  requeued.requeue_on_preempt = true;
  ASSERT_TRUE(s.submit(requeued, kT0).is_ok());
  ASSERT_TRUE(s.submit(job(2, Tier::kSpot, 4), kT0).is_ok());
  EXPECT_EQ(of_kind(s.tick(kT0), Effect::Kind::kStart), (std::vector<JobId>{1, 2}));
  ASSERT_TRUE(s.running(1, kT0).is_ok());
  // Job 2 is still starting: it holds its GPUs, so it gets notice too.
  for (JobId id : {JobId{1}, JobId{2}}) {
    auto preempted = s.preempt(id, Reason::kBudgetExhausted, kT0.plus_seconds(1));
    ASSERT_TRUE(preempted.is_ok()) << preempted.status().to_string();
    checker.check_effects(*preempted);
    ASSERT_EQ(of_kind(*preempted, Effect::Kind::kPreemptNotice), (std::vector<JobId>{id}));
    EXPECT_EQ(preempted->front().deadline, kT0.plus_seconds(31));
    EXPECT_EQ(preempted->front().reason, Reason::kBudgetExhausted);
    EXPECT_EQ(s.find(id)->state, JobState::kPreempting);
    EXPECT_EQ(s.find(id)->preemptions, 1u);
  }
  checker.check_state();
  EXPECT_TRUE(of_kind(s.tick(kT0.plus_seconds(30)), Effect::Kind::kKill).empty());
  const Effects effects = s.tick(kT0.plus_seconds(31));
  checker.check_effects(effects);
  checker.check_state();
  EXPECT_EQ(of_kind(effects, Effect::Kind::kKill), (std::vector<JobId>{1, 2}));
  using K = Effect::Kind;
  // Job 1 asked to be requeued: it goes back to the queue (and, with its
  // GPUs free, starts again in the same tick; the caller keeps a job whose
  // money is spent from starting).
  const auto of_1 = effects_of(effects, 1);
  ASSERT_GE(of_1.size(), 3u);
  EXPECT_EQ(of_1[0], std::make_tuple(K::kKill, JobState::kPreempted, Reason::kGraceExpired));
  EXPECT_EQ(of_1[1], std::make_tuple(K::kStateChanged, JobState::kPreempted, Reason::kGraceExpired));
  EXPECT_EQ(of_1[2], std::make_tuple(K::kStateChanged, JobState::kQueued, Reason::kRequeued));
  EXPECT_NE(s.find(1), nullptr);
  EXPECT_EQ(effects_of(effects, 2),
            (std::vector{std::make_tuple(K::kKill, JobState::kPreempted, Reason::kGraceExpired),
                         std::make_tuple(K::kStateChanged, JobState::kPreempted, Reason::kGraceExpired)}));
  EXPECT_EQ(s.find(2), nullptr);
}

TEST(PreemptFromOutside, OnlyRunningSpotJobsAndOnlyOnce) {
  Scheduler s = make(1, 0);
  Checker checker{s, {{1, Tier::kOnDemand}, {2, Tier::kSpot}, {3, Tier::kSpot}}, {}};
  ASSERT_TRUE(s.submit(job(1, Tier::kOnDemand, 4), kT0).is_ok());
  ASSERT_TRUE(s.submit(job(2, Tier::kSpot, 4), kT0).is_ok());
  ASSERT_TRUE(s.submit(job(3, Tier::kSpot, 4), kT0).is_ok());  // no room: stays queued
  (void)s.tick(kT0);
  // Not spot: refused, and the job runs on.
  EXPECT_EQ(s.preempt(1, Reason::kBudgetExhausted, kT0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.find(1)->state, JobState::kStarting);
  EXPECT_EQ(s.find(1)->preemptions, 0u);
  EXPECT_EQ(s.preempt(99, Reason::kBudgetExhausted, kT0).status().code(), ErrorCode::kNotFound);
  // Queued: nothing to give notice for.
  auto queued = s.preempt(3, Reason::kBudgetExhausted, kT0);
  ASSERT_TRUE(queued.is_ok());
  EXPECT_TRUE(queued->empty());
  EXPECT_EQ(s.find(3)->state, JobState::kQueued);
  // A second notice changes nothing: the first deadline holds.
  ASSERT_EQ(of_kind(*s.preempt(2, Reason::kBudgetExhausted, kT0), Effect::Kind::kPreemptNotice),
            (std::vector<JobId>{2}));
  auto again = s.preempt(2, Reason::kBudgetExhausted, kT0.plus_seconds(10));
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->empty());
  EXPECT_EQ(s.find(2)->preemptions, 1u);
  checker.check_state();
  const Effects effects = s.tick(kT0.plus_seconds(30));
  checker.check_effects(effects);
  checker.check_state();
  EXPECT_EQ(of_kind(effects, Effect::Kind::kKill), (std::vector<JobId>{2}));
  EXPECT_EQ(of_kind(effects, Effect::Kind::kStart), (std::vector<JobId>{3}));
}

}  // namespace
}  // namespace headroom::sched
