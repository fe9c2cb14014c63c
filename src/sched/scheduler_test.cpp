#include "sched/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

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

// ---- The randomised test ---------------------------------------------------

struct Checker {
  const Scheduler& s;
  std::map<JobId, Tier> tier_of;

  void check_effects(const Effects& effects) {
    for (const Effect& e : effects) {
      if (e.kind == Effect::Kind::kPreemptNotice || (e.kind == Effect::Kind::kStateChanged &&
                                                    e.state == JobState::kPreempting)) {
        ASSERT_EQ(tier_of.at(e.job), Tier::kSpot) << "job " << e.job << " preempted but not spot";
      }
      if (e.kind == Effect::Kind::kKill) {
        ASSERT_TRUE(e.reason != Reason::kPreemptedForHigherTier);
        if (e.reason == Reason::kGraceExpired) {
          ASSERT_EQ(tier_of.at(e.job), Tier::kSpot);
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
      } else {
        ASSERT_EQ(job.state, JobState::kQueued);
        ASSERT_LT(gpus.size(), job.gpus);
        if (!gpus.empty()) {
          ASSERT_EQ(job.tier, Tier::kInternal) << "only preemptors claim GPUs";
        }
      }
    });
    // The index agrees with an independent recount.
    std::vector<std::uint32_t> type_available(cs.type_count(), 0);
    std::array<std::vector<std::uint32_t>, kLevelCount> group_available;
    for (std::size_t l = 0; l < kLevelCount; ++l) group_available[l].assign(cs.group_count(Level(l)), 0);
    for (GpuIndex g = 0; g < cs.gpu_count(); ++g) {
      ASSERT_EQ(cs.holder(g), holder[g]) << "gpu " << g;
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
  }

  // After a tick: no queued job of a higher tier than one started now fits now.
  void check_tiers(const Effects& effects) {
    int lowest_started = -1;
    for (const Effect& e : effects) {
      if (e.kind == Effect::Kind::kStart) lowest_started = std::max(lowest_started, int(tier_of.at(e.job)));
    }
    if (lowest_started < 0) return;
    s.for_each_job([&](const Job& job, std::span<const GpuIndex>) {
      if (job.state != JobState::kQueued || int(job.tier) >= lowest_started) return;
      std::optional<TypeIndex> type;
      if (!job.gpu_type.empty()) type = s.cluster().find_type(job.gpu_type);
      ASSERT_FALSE(place(s.cluster(), {.gpus = job.gpus, .type = type, .packing = job.packing}))
          << "job " << job.id << " of tier " << tier_name(job.tier) << " fits but a lower tier started";
    });
  }
};

TEST(SchedulerRandom, TenThousandOperationsKeepTheInvariants) {
  std::uint64_t seed = 20260101;
  if (const char* env = std::getenv("HEADROOM_SCHED_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("seed %llu (set HEADROOM_SCHED_SEED to replay)\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  const fleet::FleetSpec spec = make_fleet(24, 2);  // 192 h100 + 144 gb200
  SchedulerOptions options;
  options.grace_ms[static_cast<int>(Tier::kSpot)] = 5'000;
  auto created = Scheduler::create(spec, options);
  ASSERT_TRUE(created.is_ok());
  Scheduler s = std::move(created).value();
  Checker checker{s, {}};
  Timestamp now = kT0;
  JobId next_id = 1;
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
  auto live_ids = [&](auto pred) {
    std::vector<JobId> ids;
    s.for_each_job([&](const Job& j, std::span<const GpuIndex>) {
      if (pred(j)) ids.push_back(j.id);
    });
    return ids;
  };
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
    auto result = s.submit(j, now);
    if (result.is_ok()) {
      checker.tier_of[j.id] = tier;
      checker.check_effects(*result);
    } else {
      ASSERT_EQ(result.status().code(), ErrorCode::kInvalidArgument) << result.status().to_string();
    }
  };
  const int kSteps = 12'000;
  std::size_t starts = 0, preemptions = 0, kills = 0;
  for (int step = 0; step < kSteps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step) + " seed " + std::to_string(seed));
    const int op = pick(100);
    if (op < 30) {
      const int t = pick(10);
      submit_random(t == 0 ? Tier::kInternal : t < 2 ? Tier::kReserved : t < 5 ? Tier::kOnDemand : Tier::kSpot);
    } else if (op < 33) {
      for (int i = 0; i < 4; ++i) submit_random(Tier::kInternal);  // internal surge
    } else if (op < 40) {
      auto ids = live_ids([](const Job&) { return true; });
      if (!ids.empty()) {
        auto r = s.cancel(ids[pick(static_cast<int>(ids.size()))], now);
        ASSERT_TRUE(r.is_ok());
        checker.check_effects(*r);
      }
    } else if (op < 55) {
      auto ids = live_ids([](const Job& j) { return holds_gpus(j.state); });
      if (!ids.empty()) {
        auto r = s.finished(ids[pick(static_cast<int>(ids.size()))], pick(3) == 0 ? 1 : 0, now);
        ASSERT_TRUE(r.is_ok());
        checker.check_effects(*r);
      }
    } else if (op < 62) {
      auto ids = live_ids([](const Job& j) { return j.state == JobState::kStarting; });
      if (!ids.empty()) {
        ASSERT_TRUE(s.running(ids[pick(static_cast<int>(ids.size()))], now).is_ok());
      }
    } else if (op < 67) {
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
      checker.check_tiers(effects);
      for (const Effect& e : effects) {
        starts += e.kind == Effect::Kind::kStart;
        preemptions += e.kind == Effect::Kind::kPreemptNotice;
        kills += e.kind == Effect::Kind::kKill;
      }
    }
    checker.check_state();
    if (::testing::Test::HasFatalFailure()) return;
  }
  std::printf("%d steps: %zu starts, %zu preemption notices, %zu kills, %zu live jobs\n", kSteps, starts,
              preemptions, kills, s.live_jobs());
  EXPECT_GT(starts, 1000u);
  EXPECT_GT(preemptions, 10u);
}

}  // namespace
}  // namespace headroom::sched
