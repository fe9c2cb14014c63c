// Issue 3, Benchmark: the scheduler core on a 100,000-GPU fleet.
//
//   sched_bench [JOBS] [SEED]      (JOBS: 1,000,000 by default, as the issue asks; about 4 s on 2 cores)
//
// The fleet: 8,333 HGX nodes of 8 h100 (each its own NVLink domain; racks of
// 4 nodes, blocks of 128 nodes = 1,024 GPUs) and 463 GB200 NVL72 racks (18
// nodes of 4 gb200 in one 72-GPU NVLink domain; blocks of 8 racks = 576
// GPUs): 66,664 + 33,336 = 100,000 GPUs, a third in NVL72 racks.
//
// The stream: 12 reservations are booked for the whole run (6 of 1,024 h100,
// half packed in one block; 6 of 288 gb200 in one block: 7,872 GPUs), and the
// fleet is first filled to 80% with running jobs; then each job of the stream
// (70% of 1-8 GPUs, 25% of 16-128, 5% gangs of 256-1,024; tiers internal 10%,
// reserved 10%, on-demand 30%, spot 50%; packings mixed; 50 tenants, 10 of
// weight 2 and 10 of weight 0.5 for fair share) is submitted alone and placed
// by one Scheduler::tick(). A reserved job belongs to a reservation's tenant
// and runs on its reservation (at most its size). The options keep an
// internal buffer of 1,024 h100 and 576 gb200. Before each submit, random
// running jobs leave (finished(), or cancel() for 10% of jobs) until the new
// job would bring occupancy (GPUs held, a reservation's idle ones included)
// back to about 80%. A job that does not start in its tick (no fit now) is
// cancelled at once and counted.
//
// Fragmentation: after the stream, per GPU type, the share of the free GPUs
// that lie in NVLink domains with every GPU free (a whole HGX node, a whole
// NVL72 rack), and the largest gang that nvlink and block packing could
// place now, beside the free count. The baseline is the same share had the
// same number of busy GPUs been scattered uniformly at random (a domain of k
// GPUs is whole-free with probability C(free, k) / C(total, k)).
//
// What is timed: the decision time is the wall time of the tick() call that
// places the job (submit() is not inside it); with one queued job, that tick
// is the scheduler's whole decision for that job: the timer heap check, the
// best-fit search (placement::place), the allocation in ClusterState and the
// effects. Placements/s per class = placed jobs / total time inside those
// ticks. The end-to-end rate (submit + tick + the finishes that make room)
// is printed too.
//
// Preemption: a fresh scheduler whose fleet is 100% held by running spot jobs
// (mixed sizes), then an internal 1,024-GPU job is submitted; the tick that
// picks its victims (and sends their notices) is timed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "sched/scheduler.h"

namespace {

using headroom::Timestamp;
using namespace headroom::sched;
namespace fleet = headroom::fleet;
using Clock = std::chrono::steady_clock;

constexpr int kHgxNodes = 8'333;
constexpr int kNvlRacks = 463;
constexpr std::uint32_t kOccupancyPct = 80;

fleet::Node make_node(const std::string& name, const std::string& rack, const std::string& block,
                      const std::string& domain, std::uint32_t gpus, const std::string& type) {
  fleet::Node node;
  node.name = name;
  node.region = "us-east";
  node.site = "iad1";
  node.cluster = "iad1-a";
  node.rack = rack;
  node.block = block;
  node.nvlink_domain = domain;
  for (std::uint32_t i = 0; i < gpus; ++i) node.gpus.push_back({.index = i, .uuid = "", .type = type});
  return node;
}

fleet::FleetSpec make_fleet() {
  fleet::FleetSpec spec;
  spec.source = "bench";
  spec.is_virtual = true;
  spec.gpu_types.push_back({.name = "h100", .display_name = "", .memory_mib = 81'920});
  spec.gpu_types.push_back({.name = "gb200", .display_name = "", .memory_mib = 190'464});
  for (int i = 0; i < kHgxNodes; ++i) {
    const std::string name = "hgx-" + std::to_string(i);
    spec.nodes.push_back(make_node(name, "r" + std::to_string(i / 4), "b" + std::to_string(i / 128), name, 8, "h100"));
  }
  for (int r = 0; r < kNvlRacks; ++r) {
    for (int i = 0; i < 18; ++i) {
      spec.nodes.push_back(make_node("nvl-" + std::to_string(r) + "-" + std::to_string(i), "nr" + std::to_string(r),
                                     "bn" + std::to_string(r / 8), "nvl72-" + std::to_string(r), 4, "gb200"));
    }
  }
  return spec;
}

enum SizeClass { kSmall, kMedium, kGang, kClassCount };
const char* const kClassNames[kClassCount] = {"1-8 GPUs", "16-128 GPUs", "256-1,024 GPUs"};

struct Generator {
  std::mt19937_64 rng;
  std::vector<std::string> tenants;
  explicit Generator(std::uint64_t seed) : rng(seed) {
    for (int i = 0; i < 50; ++i) tenants.push_back("tenant-" + std::to_string(i));
  }
  std::uint32_t uniform(std::uint32_t lo, std::uint32_t hi) {  // inclusive
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  }
  bool chance(std::uint32_t pct) { return uniform(0, 99) < pct; }

  // The reservations of the run: (id, tenant, type, size); reserved jobs use them.
  std::vector<Reservation> reservations;

  // A job of the stream's mix; `cls` says which class it fell in.
  Job make(JobId id, SizeClass& cls) {
    Job job;
    job.id = id;
    job.tenant_id = tenants[uniform(0, static_cast<std::uint32_t>(tenants.size() - 1))];
    const std::uint32_t t = uniform(0, 99);
    job.tier = t < 10 ? Tier::kInternal : t < 20 ? Tier::kReserved : t < 50 ? Tier::kOnDemand : Tier::kSpot;
    job.max_runtime_s = 7 * 24 * 3600;
    const std::uint32_t c = uniform(0, 99);
    if (c < 70) {
      cls = kSmall;
      job.gpus = uniform(1, 8);
      job.packing = Packing::kAny;
    } else if (c < 95) {
      cls = kMedium;
      job.gpus = 8 * uniform(2, 16);
      const std::uint32_t p = uniform(0, 99);
      if (p < 20 && job.gpus <= 72) {
        job.packing = Packing::kNvlink;  // only an NVL72 rack holds it
        job.gpu_type = "gb200";
      } else if (p < 50) {
        job.packing = Packing::kBlock;
      } else {
        job.packing = Packing::kAny;
      }
    } else {
      cls = kGang;
      job.gpus = 64 * uniform(4, 16);
      job.packing = chance(20) ? Packing::kBlock : Packing::kAny;
    }
    if (job.packing == Packing::kAny && chance(30)) job.gpu_type = chance(67) ? "h100" : "gb200";
    if (job.tier == Tier::kReserved) {
      const Reservation& r = reservations[uniform(0, static_cast<std::uint32_t>(reservations.size() - 1))];
      job.tenant_id = r.tenant_id;
      job.reservation_id = r.id;
      job.gpu_type = r.gpu_type;
      job.packing = Packing::kAny;
      job.gpus = std::min(job.gpus, r.gpus);
    }
    return job;
  }
};

struct Stats {
  std::vector<double> ns;  // decision time of each placed job
  std::uint64_t submitted = 0, no_fit = 0;
  double total_ns() const {
    double sum = 0;
    for (double v : ns) sum += v;
    return sum;
  }
  double pct(double p) {
    if (ns.empty()) return 0;
    std::sort(ns.begin(), ns.end());
    const std::size_t i = std::min(ns.size() - 1, static_cast<std::size_t>(p * static_cast<double>(ns.size())));
    return ns[i];
  }
};

bool started(const Effects& effects, JobId id) {
  for (const Effect& e : effects) {
    if (e.kind == Effect::Kind::kStart && e.job == id) return true;
  }
  return false;
}

double since_ns(Clock::time_point t0) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
}

Scheduler make_scheduler(const fleet::FleetSpec& spec, SchedulerOptions options = {}) {
  auto created = Scheduler::create(spec, std::move(options));
  if (!created.is_ok()) {
    std::fprintf(stderr, "Scheduler::create: %s\n", created.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(created).value();
}

// Submits `job` (aborting on a refusal: the bench's jobs are all valid).
void submit_or_die(Scheduler& sched, Job job, Timestamp now) {
  const JobId id = job.id;
  auto result = sched.submit(std::move(job), now);
  if (!result.is_ok()) {
    std::fprintf(stderr, "submit %llu: %s\n", static_cast<unsigned long long>(id),
                 result.status().to_string().c_str());
    std::exit(1);
  }
}

// Fills the fleet to `target` held GPUs with jobs from `make`, in batches
// placed by one tick each; jobs that do not fit are cancelled. Returns the
// ids that started.
template <typename Make>
std::vector<JobId> fill(Scheduler& sched, std::uint32_t target, JobId& next_id, Timestamp& now, Make make) {
  std::vector<JobId> running;
  const std::uint32_t total = static_cast<std::uint32_t>(sched.cluster().gpu_count());
  int idle_rounds = 0;
  while (total - sched.cluster().available() < target && idle_rounds < 20) {
    std::vector<JobId> batch;
    std::uint32_t want = target - (total - sched.cluster().available());
    while (want > 0 && batch.size() < 2'000) {
      Job job = make(next_id++);
      if (job.gpus > want) job.gpus = want;  // the last jobs shrink to land exactly on target
      want -= job.gpus;
      batch.push_back(job.id);
      submit_or_die(sched, std::move(job), now);
    }
    const Effects effects = sched.tick(now);
    std::size_t placed = 0;
    for (JobId id : batch) {
      if (started(effects, id)) {
        running.push_back(id);
        ++placed;
      } else {
        (void)sched.cancel(id, now);
      }
    }
    idle_rounds = placed == 0 ? idle_rounds + 1 : 0;
    now = now.plus_micros(1'000);
  }
  return running;
}

// `mix`: 0 = 90% of 1-8 GPUs and 10% of 16-128; 1 = 1-8 GPUs; 2 = 1 GPU each (the most jobs to weigh).
void print_preemption(const fleet::FleetSpec& spec, std::uint64_t seed, int mix) {
  static const char* const kMixNames[] = {"90% 1-8 GPUs, 10% 16-128", "1-8 GPUs", "1 GPU each"};
  std::printf("\n-- 1,024-GPU internal preemption, fleet 100%% held by running spot jobs of %s\n", kMixNames[mix]);
  Scheduler sched = make_scheduler(spec);
  Generator gen(seed + 1);
  JobId next_id = 1;
  Timestamp now = Timestamp::from_unix_seconds(1'800'000'000);
  std::vector<JobId> spot = fill(sched, static_cast<std::uint32_t>(sched.cluster().gpu_count()), next_id, now,
                                 [&](JobId id) {
                                   Job job;
                                   job.id = id;
                                   job.tenant_id = "spot";
                                   job.tier = Tier::kSpot;
                                   job.max_runtime_s = 7 * 24 * 3600;
                                   job.gpus = mix == 2                     ? 1
                                              : mix == 1 || gen.chance(90) ? gen.uniform(1, 8)
                                                                           : 8 * gen.uniform(2, 16);
                                   return job;
                                 });
  std::printf("spot jobs running: %zu, GPUs held: %zu of %zu\n", spot.size(),
              sched.cluster().gpu_count() - sched.cluster().available(), sched.cluster().gpu_count());
  struct Case {
    const char* what;
    const char* type;
    Packing packing;
  };
  const Case cases[] = {{"any type, packing any", "", Packing::kAny},
                        {"h100, packing any", "h100", Packing::kAny},
                        {"h100, packing block", "h100", Packing::kBlock},
                        {"any type, packing any (2nd, fleet still full)", "", Packing::kAny}};
  for (const Case& c : cases) {
    Job job;
    job.id = next_id++;
    job.tenant_id = "owner";
    job.tier = Tier::kInternal;
    job.gpus = 1'024;
    job.gpu_type = c.type;
    job.packing = c.packing;
    job.max_runtime_s = 3600;
    submit_or_die(sched, job, now);
    const auto t0 = Clock::now();
    const Effects effects = sched.tick(now);
    const double ns = since_ns(t0);
    std::size_t notices = 0;
    for (const Effect& e : effects) notices += e.kind == Effect::Kind::kPreemptNotice;
    std::printf("  %-48s decision %8.3f ms, %zu victims noticed, claimed %zu GPUs   goal <= 20 ms\n", c.what,
                ns / 1e6, notices, sched.gpus_of(job.id).size());
  }
  if (mix != 2) return;
  // A surge: 64 internal 1,024-GPU jobs queued at once (64 = the preemptions one tick may start), one tick.
  std::vector<JobId> surge;
  for (int i = 0; i < 64; ++i) {
    Job job;
    job.id = next_id++;
    job.tenant_id = "owner";
    job.tier = Tier::kInternal;
    job.gpus = 1'024;
    job.packing = Packing::kAny;
    job.max_runtime_s = 3600;
    surge.push_back(job.id);
    submit_or_die(sched, std::move(job), now);
  }
  const auto t0 = Clock::now();
  const Effects effects = sched.tick(now);
  const double ns = since_ns(t0);
  std::size_t notices = 0;
  for (const Effect& e : effects) notices += e.kind == Effect::Kind::kPreemptNotice;
  std::printf("  surge: 64 internal 1,024-GPU jobs in one tick: %.1f ms (%.2f ms a job), %zu victims noticed\n",
              ns / 1e6, ns / 1e6 / 64, notices);
}

// See "Fragmentation" at the top.
void print_fragmentation(const Scheduler& sched) {
  const ClusterState& cs = sched.cluster();
  std::printf(
      "\nFragmentation after the stream (free = available: held by no job, reservation or claim, on an up node)\n");
  std::printf("%-6s %8s %8s %9s %22s %20s %18s %18s\n", "type", "GPUs", "free", "domain", "free in whole domains",
              "random scatter", "largest nvlink gang", "largest block gang");
  for (std::size_t t = 0; t < cs.type_count(); ++t) {
    const TypeIndex type = static_cast<TypeIndex>(t);
    const std::uint32_t gpus = cs.type_capacity(type);
    const std::uint32_t free = cs.type_available(type);
    std::uint64_t whole = 0;
    std::uint32_t domain = 0;
    double expected_whole = 0;  // the baseline: busy GPUs scattered at random
    for (GroupIndex g = 0; g < cs.group_count(Level::kNvlink); ++g) {
      const ClusterState::Group& group = cs.group(Level::kNvlink, g);
      if (group.type != type) continue;
      domain = std::max(domain, group.capacity);
      if (group.available == group.capacity) whole += group.capacity;
      // C(free, k) / C(gpus, k) = prod_{i<k} (free - i) / (gpus - i)
      double p = 1;
      for (std::uint32_t i = 0; i < group.capacity; ++i) {
        p *= free > i ? static_cast<double>(free - i) / static_cast<double>(gpus - i) : 0.0;
      }
      expected_whole += p * group.capacity;
    }
    const std::uint32_t nvlink = cs.group_pool(Level::kNvlink, type).buckets.max_count();
    const std::uint32_t block = cs.group_pool(Level::kBlock, type).buckets.max_count();
    std::printf("%-6s %8u %8u %9u %13llu (%5.1f%%) %11.0f (%5.1f%%) %12u of %-4u %12u of %-4u\n",
                cs.type_name(type).c_str(), gpus, free, domain, static_cast<unsigned long long>(whole),
                free ? 100.0 * static_cast<double>(whole) / free : 0.0, expected_whole,
                free ? 100.0 * expected_whole / free : 0.0, nvlink, domain, block,
                cs.max_group_capacity(Level::kBlock, type));
  }
  std::printf(
      "(free in whole domains: free GPUs in NVLink domains with every GPU free, the ones a gang of a whole\n"
      " domain can use; fragmentation = 100%% minus that share. random scatter: the same share expected\n"
      " had the busy GPUs been scattered uniformly at random, the baseline best fit is measured against.)\n");
}

void print_surplus(const Scheduler& sched, Timestamp now) {
  std::printf("\nSurplus after the stream: total = down + internal + reserved + on-demand + spot + claimed + idle\n");
  for (const TypeSurplus& s : sched.surplus(now)) {
    std::printf(
        "  %-6s total %6u = down %u + internal %u + reserved %u (lent to spot %u) + on-demand %u + spot %u "
        "+ claimed %u + idle %u; buffer %u, sellable now %u\n",
        s.gpu_type.c_str(), s.total, s.down, s.internal_in_use, s.reserved, s.reserved_lent_to_spot, s.on_demand,
        s.spot, s.claimed, s.idle, s.internal_buffer, s.sellable_now);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t jobs = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  const std::uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 42;
  if (jobs == 0) {
    std::fprintf(stderr, "usage: sched_bench [JOBS] [SEED]\n");
    return 2;
  }
  const fleet::FleetSpec spec = make_fleet();
  std::printf("fleet: %zu nodes, %zu GPUs (%d HGX nodes x 8 h100 = %d; %d NVL72 racks x 18 nodes x 4 gb200 = %d)\n",
              spec.nodes.size(), fleet::gpu_count(spec), kHgxNodes, kHgxNodes * 8, kNvlRacks, kNvlRacks * 72);
  SchedulerOptions options;
  options.internal_buffer_gpus["h100"] = 1'024;
  options.internal_buffer_gpus["gb200"] = 576;
  Scheduler sched = make_scheduler(spec, options);
  const std::uint32_t total = static_cast<std::uint32_t>(sched.cluster().gpu_count());
  const std::uint32_t target = total / 100 * kOccupancyPct;

  Generator gen(seed);
  JobId next_id = 1;
  Timestamp now = Timestamp::from_unix_seconds(1'800'000'000);
  // Fair share: weights for 20 of the 50 tenants.
  for (int i = 0; i < 20; ++i) {
    if (!sched.set_tenant_weight(gen.tenants[i], i < 10 ? 2.0 : 0.5).is_ok()) std::exit(1);
  }
  // Reservations for the whole run, set aside by the first tick.
  for (int i = 0; i < 12; ++i) {
    const bool h100 = i < 6;
    Reservation r{.id = "res-" + std::to_string(i),
                  .tenant_id = gen.tenants[30 + i],
                  .gpu_type = h100 ? "h100" : "gb200",
                  .gpus = h100 ? 1'024u : 288u,
                  .packing = (h100 && i % 2 == 0) ? Packing::kAny : Packing::kBlock,
                  .start = now,
                  .end = now.plus_seconds(30 * 24 * 3600)};
    const headroom::Status booked = sched.add_reservation(r, now);
    if (!booked.is_ok()) {
      std::fprintf(stderr, "add_reservation %s: %s\n", r.id.c_str(), booked.to_string().c_str());
      return 1;
    }
    gen.reservations.push_back(std::move(r));
  }
  (void)sched.tick(now);
  std::uint32_t reserved_gpus = 0;
  sched.for_each_reservation(
      [&](const ReservationView& r) { reserved_gpus += static_cast<std::uint32_t>(r.gpus.size()); });
  std::printf("reservations: %zu set aside %u GPUs; internal buffer 1,024 h100 + 576 gb200; 20 tenants weighted\n",
              gen.reservations.size(), reserved_gpus);
  SizeClass ignored;
  const auto fill_t0 = Clock::now();
  std::vector<JobId> running = fill(sched, target, next_id, now, [&](JobId id) {
    Job job = gen.make(id, ignored);
    if (job.tier == Tier::kInternal) job.tier = Tier::kOnDemand;  // no preemptions while filling
    return job;
  });
  std::printf("filled to %u of %u GPUs held (%.1f%%) by %zu running jobs in %.1f ms\n",
              total - sched.cluster().available(), total,
              100.0 * (total - sched.cluster().available()) / total, running.size(), since_ns(fill_t0) / 1e6);
  std::printf("stream: %llu jobs (seed %llu; the issue asks for 1,000,000: sched_bench 1000000)\n",
              static_cast<unsigned long long>(jobs), static_cast<unsigned long long>(seed));

  std::vector<bool> cancel_it;  // per JobId: leaves by cancel() rather than finished()
  cancel_it.resize(next_id + jobs + 1, false);
  Stats stats[kClassCount];
  std::uint64_t finished = 0, cancelled = 0, gone = 0, preempt_started = 0;
  double occupancy_sum = 0;
  std::uint64_t ticks = 0;                          // ticks of the stream so far (one per job)
  std::vector<std::pair<double, std::uint64_t>> slow;  // ticks over 1 ms: (ns, tick number)
  const auto stream_t0 = Clock::now();
  for (std::uint64_t n = 0; n < jobs; ++n) {
    SizeClass cls;
    Job job = gen.make(next_id++, cls);
    cancel_it[job.id] = gen.chance(10);
    // Make room: random running jobs leave until this one lands near 80%
    // (a reserved job lands on its reservation's GPUs, held already).
    const std::uint32_t room = job.tier == Tier::kReserved ? 0 : job.gpus;
    while (!running.empty() && total - sched.cluster().available() + room > target) {
      const std::size_t k = gen.uniform(0, static_cast<std::uint32_t>(running.size() - 1));
      const JobId id = running[k];
      running[k] = running.back();
      running.pop_back();
      const auto result = cancel_it[id] ? sched.cancel(id, now) : sched.finished(id, 0, now);
      if (!result.is_ok()) {
        ++gone;  // killed already (preempted past its grace)
      } else if (cancel_it[id]) {
        ++cancelled;
      } else {
        ++finished;
      }
    }
    occupancy_sum += static_cast<double>(total - sched.cluster().available()) / total;
    const JobId id = job.id;
    const bool internal = job.tier == Tier::kInternal;
    submit_or_die(sched, std::move(job), now);
    ++stats[cls].submitted;
    const auto t0 = Clock::now();
    const Effects effects = sched.tick(now);
    const double ns = since_ns(t0);
    ++ticks;
    if (ns > 1e6) slow.push_back({ns, ticks});
    if (started(effects, id)) {
      stats[cls].ns.push_back(ns);
      running.push_back(id);
    } else {
      ++stats[cls].no_fit;
      if (internal && !sched.gpus_of(id).empty()) ++preempt_started;
      (void)sched.cancel(id, now);  // keeps the queue at one job; 10% cancelled is on top of this
    }
    now = now.plus_micros(100);  // 10,000 jobs a second of scheduler time
  }
  const double stream_s = since_ns(stream_t0) / 1e9;

  std::printf("stream took %.2f s: %.0f jobs/s end to end (submit + placing tick + the finishes that made room)\n",
              stream_s, static_cast<double>(jobs) / stream_s);
  std::printf("mean occupancy before a submit: %.1f%%; jobs left by finished(): %llu, by cancel(): %llu, "
              "killed already: %llu\n",
              100.0 * occupancy_sum / static_cast<double>(jobs), static_cast<unsigned long long>(finished),
              static_cast<unsigned long long>(cancelled), static_cast<unsigned long long>(gone));
  std::printf("\nDecision time = wall time of the Scheduler::tick() that starts the job (one job queued);\n"
              "placements/s = placed jobs / total time inside those ticks.\n");
  std::printf("%-16s %9s %9s %8s %14s %10s %10s %10s   %s\n", "class", "submitted", "placed", "no fit",
              "placements/s", "p50 us", "p99 us", "max us", "goal");
  for (int c = 0; c < kClassCount; ++c) {
    Stats& s = stats[c];
    const double rate = s.ns.empty() ? 0 : static_cast<double>(s.ns.size()) / (s.total_ns() / 1e9);
    const char* goal = c == kSmall   ? ">= 100,000/s, p99 <= 1,000 us"
                       : c == kGang ? ">= 2,000/s"
                                    : "(none)";
    const double p50 = s.pct(0.50), p99 = s.pct(0.99), max = s.ns.empty() ? 0 : s.ns.back();
    std::printf("%-16s %9llu %9zu %8llu %14.0f %10.2f %10.2f %10.2f   %s\n", kClassNames[c],
                static_cast<unsigned long long>(s.submitted), s.ns.size(), static_cast<unsigned long long>(s.no_fit),
                rate, p50 / 1e3, p99 / 1e3, max / 1e3, goal);
  }
  std::printf("(no fit: did not start in its tick at ~80%% occupancy and was cancelled; %llu of them were internal "
              "jobs that had started a preemption)\n",
              static_cast<unsigned long long>(preempt_started));

  std::printf("stream ticks over 1 ms: %zu", slow.size());
  for (std::size_t i = 0; i < slow.size() && i < 8; ++i) {
    std::printf("%s #%llu (%.2f ms)", i == 0 ? ":" : ",", static_cast<unsigned long long>(slow[i].second),
                slow[i].first / 1e6);
  }
  std::printf("\n");

  print_fragmentation(sched);
  print_surplus(sched, now);

  for (int mix = 0; mix < 3; ++mix) print_preemption(spec, seed, mix);
  return 0;
}
