// The ComputeService against a real (in-memory) SQLite store, with a fake
// executor and a manual clock: the glue between scheduler, processes, store
// and usage, including restarts. Real processes are tested in tests/integration.
#include "compute/compute_service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "compute/job_spec.h"
#include "ledger/usage_log.h"

namespace headroom::compute {
namespace {

// Records what it is told; the test decides when processes end.
class FakeExecutor final : public exec::Executor {
 public:
  Result<exec::ProcessHandle> start(const exec::LaunchSpec& spec) override {
    std::lock_guard lock(mutex_);
    if (spec.argv[0] == "missing") return Status::invalid_argument("command not found: missing");
    started.push_back(spec);
    running[spec.job_id] = ++next_pid_;
    exec::ProcessHandle handle{next_pid_, 42};
    if (external_ids) handle = exec::ProcessHandle{0, 0, "slurm-" + std::to_string(next_pid_)};
    runs[spec.job_id + "/" + spec.run_id] = handle;
    return handle;
  }
  Result<std::optional<exec::ProcessHandle>> find_run(std::string_view job_id, std::string_view run_id) override {
    std::lock_guard lock(mutex_);
    auto it = runs.find(std::string(job_id) + "/" + std::string(run_id));
    if (it == runs.end()) return std::optional<exec::ProcessHandle>();
    return std::optional<exec::ProcessHandle>(it->second);
  }
  Status notify_preempt(std::string_view job_id, Timestamp) override {
    std::lock_guard lock(mutex_);
    noticed.emplace_back(job_id);
    return Status::ok();
  }
  Status kill(std::string_view job_id) override {
    std::lock_guard lock(mutex_);
    killed.emplace_back(job_id);
    running.erase(std::string(job_id));
    return Status::ok();
  }
  std::vector<exec::Exit> poll() override {
    std::lock_guard lock(mutex_);
    std::vector<exec::Exit> out;
    out.swap(exits_);
    return out;
  }
  // The tests report every exit themselves: what is not reported runs.
  Timestamp checked_until() const override { return Timestamp{std::numeric_limits<std::int64_t>::max()}; }
  bool adopt(std::string_view job_id, const exec::ProcessHandle& handle, exec::Exit& ended) override {
    std::lock_guard lock(mutex_);
    adopted[std::string(job_id)] = handle;
    auto it = adoptable.find(std::string(job_id));
    if (it == adoptable.end()) {
      ended = exec::Exit{std::string(job_id), 137, Timestamp{}, true};
      return false;
    }
    if (it->second) return true;
    ended = ended_while_away.at(std::string(job_id));
    return false;
  }
  std::string job_dir(std::string_view job_id) const override { return "/nonexistent/" + std::string(job_id); }

  // The supervisor of a killed job ends: poll() reports it, as the real executor does.
  void reap_killed(const std::string& id, Timestamp at) {
    std::lock_guard lock(mutex_);
    exits_.push_back(exec::Exit{id, 137, at, false});
  }
  void exit(const std::string& id, int code, Timestamp at) {
    std::lock_guard lock(mutex_);
    running.erase(id);
    exits_.push_back(exec::Exit{id, code, at, false});
  }
  std::size_t started_count() {
    std::lock_guard lock(mutex_);
    return started.size();
  }

  std::mutex mutex_;
  std::vector<exec::LaunchSpec> started;
  std::vector<std::string> noticed, killed;
  std::map<std::string, int> running;
  std::map<std::string, bool> adoptable;  // id -> still running
  std::map<std::string, exec::Exit> ended_while_away;
  bool external_ids = false;  // hand out handles as the Slurm executor does
  std::map<std::string, exec::ProcessHandle> adopted;
  std::map<std::string, exec::ProcessHandle> runs;  // "job/run" -> the handle start() gave

 private:
  int next_pid_ = 1000;
  std::vector<exec::Exit> exits_;
};

// A wallet the test steers: which tenants may hold, and which are spent.
class FakeWallet final : public ledger::Wallet {
 public:
  Status admit(std::string_view) override { return Status::ok(); }
  Status hold_run(std::string_view tenant, std::string_view job_id, std::string_view run_key, Money per_gpu_hour,
                  std::uint32_t gpus, std::int64_t window_ms, std::int64_t, Timestamp) override {
    std::lock_guard lock(mutex_);
    holds.push_back(std::string(run_key) + " " + per_gpu_hour.to_string() + " x" + std::to_string(gpus) + " " +
                    std::to_string(window_ms) + "ms");
    if (broke.contains(std::string(tenant))) return Status::insufficient_funds("tenant cannot cover " + std::string(job_id));
    return Status::ok();
  }
  void release_run(std::string_view, std::string_view run_key) override {
    std::lock_guard lock(mutex_);
    released.emplace_back(run_key);
  }
  // Model requests are not the compute service's.
  Status hold_request(std::string_view, std::string_view, Money, std::int64_t, Money, std::int64_t, std::int64_t,
                      Timestamp) override {
    return Status::internal("the compute service holds no model request");
  }
  void release_request(std::string_view) override {}
  std::uint64_t exhausted_generation() const override {
    std::lock_guard lock(mutex_);
    return generation;
  }
  std::vector<std::string> exhausted_tenants() const override {
    std::lock_guard lock(mutex_);
    return spent;
  }
  void spend(const std::string& tenant) {
    std::lock_guard lock(mutex_);
    spent.push_back(tenant);
    ++generation;
  }

  mutable std::mutex mutex_;
  std::set<std::string> broke;
  std::vector<std::string> holds, released, spent;
  std::uint64_t generation = 1;
};

// A catalog that keeps what it is told (the spot market's clearing prices).
class FakeCatalog final : public ledger::PriceCatalog {
 public:
  Result<Money> price_at(ledger::Product, std::string_view item, std::string_view variant,
                         Timestamp at) const override {
    std::lock_guard lock(mutex_);
    std::optional<Money> found;
    for (const ledger::PriceEntry& p : versions) {
      if (p.item == item && p.variant == variant && p.effective_from <= at) found = p.unit_price;
    }
    if (!found) return Status::not_found("no price");
    return *found;
  }
  Status set_prices(std::span<ledger::PriceEntry> prices) override {
    std::lock_guard lock(mutex_);
    versions.insert(versions.end(), prices.begin(), prices.end());
    return Status::ok();
  }
  Timestamp earliest_price_change() const override { return Timestamp{}; }
  std::vector<ledger::PriceEntry> price_history(ledger::Product, std::string_view item, std::string_view variant,
                                                Timestamp, Timestamp) const override {
    std::lock_guard lock(mutex_);
    std::vector<ledger::PriceEntry> out;
    for (const ledger::PriceEntry& p : versions) {
      if (p.item == item && p.variant == variant) out.push_back(p);
    }
    return out;
  }
  std::vector<std::string> spot_prices() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const ledger::PriceEntry& p : versions) out.push_back(p.unit_price.to_string());
    return out;
  }

  mutable std::mutex mutex_;
  std::vector<ledger::PriceEntry> versions;
};

fleet::FleetSpec one_node(int gpus) {
  fleet::FleetSpec f;
  f.gpu_types.push_back({"h100", "", 81920});
  fleet::Node n;
  n.name = "n1";
  n.region = "r";
  n.site = "s";
  n.cluster = "c";
  n.nvlink_domain = "n1";
  for (int i = 0; i < gpus; ++i) n.gpus.push_back({static_cast<std::uint32_t>(i), "", "h100"});
  f.nodes.push_back(n);
  f.source = "config";
  return f;
}

class ComputeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(store::Store::open({"sqlite:" + path_}).value());
    store::Tenant t{"ten_a", "a", store::TenantKind::kExternal, Timestamp{1}};
    ASSERT_TRUE(store_->create_tenant(t, audit()).is_ok());
    auto usage = ledger::UsageLog::open({usage_dir_});
    ASSERT_TRUE(usage.is_ok()) << usage.status().to_string();
    usage_ = std::move(usage).value();
    start_service();
  }
  void TearDown() override {
    service_.reset();
    usage_.reset();
    std::filesystem::remove_all(usage_dir_);
    std::remove(path_.c_str());
    std::remove((path_ + "-wal").c_str());
    std::remove((path_ + "-shm").c_str());
  }
  void start_service(std::int64_t spot_grace_ms = 30'000, ledger::Wallet* wallet = nullptr,
                     ledger::PriceCatalog* catalog = nullptr) {
    ComputeOptions options;
    options.wallet = wallet;
    options.catalog = catalog;
    options.clearing_interval_s = 1;
    options.spot_floor = [](const std::string&, Timestamp) { return Money::parse("0.50").value(); };
    options.hold_window_s = 600;
    options.scheduler.grace_ms[static_cast<int>(sched::Tier::kSpot)] = spot_grace_ms;
    options.tick_ms = 10;
    options.usage_interval_s = 60;
    options.prices["h100"].on_demand = Money::parse("3.60").value();
    auto started = ComputeService::start(*store_, fleet_, executor_, *usage_, clock_, options);
    ASSERT_TRUE(started.is_ok()) << started.status().to_string();
    service_ = std::move(started).value();
  }
  store::AuditRecord audit() { return {0, "aud_" + std::to_string(++audits_), Timestamp{1}, "", "", "", "t", "x", "{}"}; }

  Result<Submitted> submit(const std::string& id, const std::string& json, const std::string& key = "") {
    Submission s;
    s.record.id = id;
    s.record.tenant_id = "ten_a";
    auto spec = parse_job_spec(json);
    EXPECT_TRUE(spec.is_ok()) << spec.status().to_string();
    s.spec = *spec;
    s.record.spec_json = to_json(*spec);
    s.idempotency_key = key;
    s.request_sha256 = s.record.spec_json;
    std::promise<Result<Submitted>> done;
    service_->submit(std::move(s), [&](Result<Submitted> r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  // Waits (real time) until the stored job is in `state`.
  store::JobRecord wait_state(const std::string& id, const std::string& state) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    store::JobRecord last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto job = store_->find_job(id);
      if (job.is_ok() && job->has_value()) {
        last = **job;
        if (last.state == state) return last;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ADD_FAILURE() << id << " is " << last.state << ", not " << state;
    return last;
  }

  // The usage events of one job, as the log holds them.
  std::vector<ledger::UsageEvent> usage_of(const std::string& id) {
    std::vector<ledger::UsageEvent> out;
    auto read = usage_->read(ledger::RecordLog::kFirstPosition, 1'000'000,
                             [&](ledger::LogPosition, const ledger::UsageEvent& e) {
                               if (e.source_id == id) out.push_back(e);
                             });
    EXPECT_TRUE(read.is_ok()) << read.status().to_string();
    return out;
  }

  // Waits (real time) until the catalog holds `n` spot price versions.
  static void wait_prices(const FakeCatalog& catalog, std::size_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (catalog.spot_prices().size() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_GE(catalog.spot_prices().size(), n);
  }

  std::int64_t billed_gpu_ms(const std::string& id) {
    std::int64_t total = 0;
    for (const auto& e : usage_of(id)) total += e.quantity;
    return total;
  }

  std::string path_ = ::testing::TempDir() + "/compute_service_test_" + std::to_string(getpid()) + ".db";
  fleet::FleetSpec fleet_ = one_node(4);
  std::unique_ptr<store::Store> store_;
  FakeExecutor executor_;
  std::string usage_dir_ = ::testing::TempDir() + "/compute_service_usage_" + std::to_string(getpid());
  std::unique_ptr<ledger::UsageLog> usage_;
  ManualClock clock_;
  std::unique_ptr<ComputeService> service_;
  int audits_ = 0;
};

TEST_F(ComputeServiceTest, RunsAJobAndBillsItsGpuTimeExactlyOnce) {
  auto submitted = submit("job_1", R"({"gpus":2,"command":["train"]})");
  ASSERT_TRUE(submitted.is_ok()) << submitted.status().to_string();
  EXPECT_EQ(submitted->job.state, "queued");
  store::JobRecord running = wait_state("job_1", "running");
  EXPECT_EQ(running.gpus, "n1:0,n1:1");
  ASSERT_EQ(executor_.started_count(), 1u);
  EXPECT_EQ(executor_.started[0].gpu_devices, (std::vector<int>{0, 1}));

  // 150 s of running: two whole minutes are billed while it runs...
  clock_.advance_seconds(150);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (billed_gpu_ms("job_1") < 2 * 120'000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(billed_gpu_ms("job_1"), 2 * 120'000);
  // ...and the rest when it exits, 10 s later, at the time its supervisor saw.
  Timestamp end = clock_.now().plus_seconds(10);
  clock_.advance_seconds(20);
  executor_.exit("job_1", 0, end);
  store::JobRecord done = wait_state("job_1", "succeeded");
  EXPECT_EQ(done.ended_at, end);
  EXPECT_EQ(done.usage_until, end);
  std::vector<ledger::UsageEvent> usage = usage_of("job_1");
  ASSERT_EQ(usage.size(), 3u);
  EXPECT_EQ(usage[0].start, *running.started_at);
  EXPECT_EQ(usage[2].end, end);
  EXPECT_EQ(billed_gpu_ms("job_1"), 2 * 160'000);
  for (const auto& e : usage) {
    EXPECT_EQ(e.unit_price.to_string(), "3.60");
    EXPECT_EQ(e.variant, "on-demand");
    EXPECT_EQ(e.item, "h100");
  }
}

TEST_F(ComputeServiceTest, RefusalsAndIdempotentReplays) {
  EXPECT_EQ(submit("job_1", R"({"gpus":5,"command":["x"]})").status().code(), ErrorCode::kInvalidArgument);
  auto first = submit("job_2", R"({"gpus":1,"command":["x"]})", "key-1");
  ASSERT_TRUE(first.is_ok());
  auto again = submit("job_3", R"({"gpus":1,"command":["x"]})", "key-1");
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->job.id, "job_2");
  EXPECT_EQ(submit("job_4", R"({"gpus":2,"command":["x"]})", "key-1").status().code(), ErrorCode::kConflict);
  EXPECT_FALSE(store_->find_job("job_3")->has_value());
  // A command that cannot start fails the job with the reason.
  ASSERT_TRUE(submit("job_5", R"({"gpus":1,"command":["missing"]})").is_ok());
  store::JobRecord failed = wait_state("job_5", "failed");
  EXPECT_NE(failed.message.find("command not found"), std::string::npos) << failed.message;
  EXPECT_EQ(failed.exit_code, 127);
  EXPECT_EQ(billed_gpu_ms("job_5"), 0);
}

TEST_F(ComputeServiceTest, RestartAdoptsTheLivingAndClosesTheDead) {
  ASSERT_TRUE(submit("job_alive", R"({"gpus":1,"command":["x"]})").is_ok());
  ASSERT_TRUE(submit("job_exited", R"({"gpus":1,"command":["x"]})").is_ok());
  ASSERT_TRUE(submit("job_vanished", R"({"gpus":1,"command":["x"]})").is_ok());
  ASSERT_TRUE(submit("job_queued", R"({"gpus":4,"command":["x"]})").is_ok());
  store::JobRecord exited = wait_state("job_exited", "running");
  store::JobRecord vanished = wait_state("job_vanished", "running");
  wait_state("job_alive", "running");
  service_.reset();  // the server stops; the jobs run on

  clock_.advance_seconds(90);
  executor_.adoptable["job_alive"] = true;
  executor_.adoptable["job_exited"] = false;
  Timestamp exit_time = exited.started_at->plus_seconds(30);
  executor_.ended_while_away["job_exited"] = exec::Exit{"job_exited", 5, exit_time, false};
  start_service();

  EXPECT_EQ(wait_state("job_alive", "running").gpus, "n1:0");
  store::JobRecord e = wait_state("job_exited", "failed");
  EXPECT_EQ(e.exit_code, 5);
  EXPECT_EQ(e.ended_at, exit_time);
  EXPECT_EQ(billed_gpu_ms("job_exited"), 30'000);
  // Vanished without a trace: billed up to the last time it was known to run, no further.
  store::JobRecord v = wait_state("job_vanished", "lost");
  EXPECT_LE(billed_gpu_ms("job_vanished"), 0);
  EXPECT_EQ(v.ended_at, vanished.started_at);
  // The adopted job still holds its GPU: the queued 4-GPU job waits for it.
  EXPECT_EQ(wait_state("job_queued", "queued").state, "queued");
  executor_.exit("job_alive", 0, clock_.now());
  wait_state("job_alive", "succeeded");
  wait_state("job_queued", "running");
  EXPECT_EQ(billed_gpu_ms("job_alive"), 90'000);
}

// A server that dies between writing a job's "starting" state and recording
// its launch may or may not have launched it. The next one asks the executor
// (find_run) and so starts every run once: it adopts the one that began and
// launches the one that did not.
TEST_F(ComputeServiceTest, APlacedJobIsLaunchedOnceAcrossACrash) {
  ASSERT_TRUE(submit("job_began", R"({"gpus":1,"command":["x"]})").is_ok());
  ASSERT_TRUE(submit("job_never", R"({"gpus":1,"command":["x"]})").is_ok());
  store::JobRecord began = wait_state("job_began", "running");
  store::JobRecord never = wait_state("job_never", "running");
  service_.reset();
  ASSERT_EQ(executor_.started_count(), 2u);

  // Rewind both records to what the store held before the launches were
  // recorded: "starting" since the time their run ids name, no handle.
  for (store::JobRecord* r : {&began, &never}) {
    std::string run_id;
    for (const exec::LaunchSpec& spec : executor_.started) {
      if (spec.job_id == r->id) run_id = spec.run_id;
    }
    ASSERT_EQ(run_id.substr(0, run_id.find('.')), std::to_string(r->seq)) << run_id;
    r->state = "starting";
    r->reason = "placed";
    r->state_at = Timestamp{std::stoll(run_id.substr(run_id.find('.') + 1))};
    r->pid = 0;
    r->start_ticks = 0;
    r->started_at.reset();
    r->usage_until.reset();
    store::JobUpdate update{*r, store::JobEvent{r->id, r->state_at, r->state, r->reason, ""}};
    ASSERT_TRUE(store_->update_jobs(std::span(&update, 1)).is_ok());
  }
  {
    std::lock_guard lock(executor_.mutex_);
    for (auto it = executor_.runs.begin(); it != executor_.runs.end();) {
      it = it->first.starts_with("job_never/") ? executor_.runs.erase(it) : std::next(it);
    }
    executor_.running.erase("job_never");
  }
  executor_.adoptable["job_began"] = true;
  clock_.advance_seconds(1);
  start_service();

  store::JobRecord adopted = wait_state("job_began", "running");
  EXPECT_EQ(adopted.pid, 1001) << "the run that began is adopted, not started again";
  store::JobRecord relaunched = wait_state("job_never", "running");
  std::lock_guard lock(executor_.mutex_);
  ASSERT_EQ(executor_.started.size(), 3u);
  EXPECT_EQ(executor_.started[2].job_id, "job_never");
  EXPECT_NE(executor_.started[2].run_id, executor_.started[1].run_id);
  EXPECT_TRUE(executor_.adopted.contains("job_began"));
  EXPECT_FALSE(executor_.adopted.contains("job_never"));
}

// An executor that hands jobs to another system (Slurm) identifies them by
// that system's id: it is kept with the job and given back on restart.
TEST_F(ComputeServiceTest, AnExecutorsOwnIdIsKeptAndGivenBackOnRestart) {
  executor_.external_ids = true;
  ASSERT_TRUE(submit("job_slurm", R"({"gpus":2,"command":["x"]})").is_ok());
  store::JobRecord running = wait_state("job_slurm", "running");
  EXPECT_EQ(running.pid, 0);
  EXPECT_EQ(running.external_id, "slurm-1001");
  ASSERT_EQ(executor_.started_count(), 1u);
  EXPECT_EQ(executor_.started[0].nodes, std::vector<std::string>{"n1"});
  EXPECT_EQ(executor_.started[0].gpu_type, "h100");
  service_.reset();

  executor_.adoptable["job_slurm"] = true;
  start_service();
  EXPECT_EQ(wait_state("job_slurm", "running").external_id, "slurm-1001");
  {
    std::lock_guard lock(executor_.mutex_);
    ASSERT_TRUE(executor_.adopted.contains("job_slurm"));
    EXPECT_EQ(executor_.adopted["job_slurm"].external_id, "slurm-1001");
  }
  executor_.exit("job_slurm", 0, clock_.now());
  wait_state("job_slurm", "succeeded");
}

TEST_F(ComputeServiceTest, ARequeuedJobRestartsOnlyAfterItsKilledRunIsReaped) {
  service_.reset();
  start_service(/*spot_grace_ms=*/0);
  store::Tenant internal{"ten_i", "i", store::TenantKind::kInternal, Timestamp{1}};
  ASSERT_TRUE(store_->create_tenant(internal, audit()).is_ok());
  ASSERT_TRUE(submit("job_spot", R"({"gpus":2,"tier":"spot","max_price_per_gpu_hour":"5","requeue_on_preempt":true,
      "command":["x"]})").is_ok());
  ASSERT_TRUE(submit("job_od", R"({"gpus":2,"command":["x"]})").is_ok());
  wait_state("job_spot", "running");
  wait_state("job_od", "running");

  // Internal work takes the spot job's GPUs: with no grace it is killed at once and queued again.
  Submission s;
  s.record.id = "job_internal";
  s.record.tenant_id = "ten_i";
  s.spec = *parse_job_spec(R"({"gpus":2,"tier":"internal","command":["x"]})");
  s.record.spec_json = to_json(s.spec);
  std::promise<Result<Submitted>> done;
  service_->submit(std::move(s), [&](Result<Submitted> r) { done.set_value(std::move(r)); });
  ASSERT_TRUE(done.get_future().get().is_ok());
  wait_state("job_internal", "running");
  EXPECT_EQ(wait_state("job_spot", "queued").preemptions, 1);

  // GPUs come free, so it is placed again, but its killed run has not ended yet: it waits in starting.
  executor_.exit("job_od", 0, clock_.now());
  wait_state("job_spot", "starting");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(executor_.started_count(), 3u);  // spot, on-demand, internal: no second spot run yet
  EXPECT_EQ(store_->find_job("job_spot")->value().state, "starting");

  executor_.reap_killed("job_spot", clock_.now());
  wait_state("job_spot", "running");
  EXPECT_EQ(executor_.started_count(), 4u);
}

TEST_F(ComputeServiceTest, APaidRunHoldsItsFirstWindowOrDoesNotStart) {
  FakeWallet wallet;
  service_.reset();
  start_service(30'000, &wallet);
  ASSERT_TRUE(submit("job_1", R"({"gpus":2,"command":["train"]})").is_ok());
  wait_state("job_1", "running");
  const std::string run_key = "job_1:" + std::to_string(clock_.now().unix_millis());
  {
    std::lock_guard lock(wallet.mutex_);
    ASSERT_EQ(wallet.holds.size(), 1u);
    // 2 GPUs at the on-demand price for min(max_runtime 3600 s, the 600 s window).
    EXPECT_EQ(wallet.holds[0], run_key + " 3.60 x2 600000ms");
  }
  executor_.exit("job_1", 0, clock_.now());
  wait_state("job_1", "succeeded");
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(wallet.mutex_);
      if (!wallet.released.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  {
    std::lock_guard lock(wallet.mutex_);
    EXPECT_EQ(wallet.released, std::vector<std::string>{run_key}) << "the run that was held is released";
    wallet.broke.insert("ten_a");
  }
  ASSERT_TRUE(submit("job_2", R"({"gpus":1,"command":["train"]})").is_ok());
  store::JobRecord refused = wait_state("job_2", "failed");
  EXPECT_NE(refused.message.find("cannot cover job_2"), std::string::npos) << refused.message;
  EXPECT_EQ(executor_.started_count(), 1u);  // never started
  EXPECT_EQ(billed_gpu_ms("job_2"), 0);
  // Internal work holds nothing.
  ASSERT_TRUE(submit("job_3", R"({"gpus":1,"tier":"internal","command":["train"]})").is_ok());
  wait_state("job_3", "running");
}

TEST_F(ComputeServiceTest, ARunThatCannotStartReleasesItsHold) {
  FakeWallet wallet;
  service_.reset();
  start_service(30'000, &wallet);
  ASSERT_TRUE(submit("job_1", R"({"gpus":1,"command":["missing"]})").is_ok());
  wait_state("job_1", "failed");
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(wallet.mutex_);
      if (!wallet.released.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::lock_guard lock(wallet.mutex_);
  ASSERT_EQ(wallet.holds.size(), 1u);
  const std::string held_run = wallet.holds[0].substr(0, wallet.holds[0].find(' '));
  EXPECT_EQ(wallet.released, std::vector<std::string>{held_run}) << "its hold goes back at once, not when it expires";
}

TEST_F(ComputeServiceTest, ASpentTenantsSpotJobsGetNotice) {
  FakeWallet wallet;
  service_.reset();
  start_service(30'000, &wallet);
  ASSERT_TRUE(submit("job_s", R"({"gpus":1,"tier":"spot","max_price_per_gpu_hour":"1.00","command":["train"]})").is_ok());
  ASSERT_TRUE(submit("job_o", R"({"gpus":1,"command":["train"]})").is_ok());
  wait_state("job_s", "running");
  wait_state("job_o", "running");
  wallet.spend("ten_a");
  store::JobRecord noticed = wait_state("job_s", "preempting");
  EXPECT_EQ(noticed.reason, "budget_exhausted");
  clock_.advance_seconds(31);
  wait_state("job_s", "preempted");
  // On-demand work is never preempted: it runs on, charged to what the tenant owes.
  EXPECT_EQ(store_->find_job("job_o").value()->state, "running");
}

// A block that ends while no server runs is charged at the next start, hour
// by hour, without charging twice the hours charged before the stop.
TEST_F(ComputeServiceTest, ABlockThatEndedWhileTheServerWasDownIsChargedAtTheNextStart) {
  FakeCatalog catalog;
  FakeWallet wallet;
  service_.reset();
  start_service(30'000, &wallet, &catalog);
  const Timestamp hour{(clock_.now().unix_micros / 3'600'000'000 + 1) * 3'600'000'000};  // the next whole hour
  BlockRequest request{"ten_a", "h100", 2, sched::Packing::kAny, hour, hour.plus_seconds(3 * 3600)};
  ASSERT_TRUE(service_->quote_block(request, "quo_1").is_ok());
  auto booked = service_->book_block("ten_a", "quo_1", "res_1", audit());
  ASSERT_TRUE(booked.is_ok()) << booked.status().to_string();
  // Its first hour passes with the server up, then the server stops until long after the end.
  clock_.set(hour.plus_seconds(3600 + 60));
  auto charged = [&] { return billed_gpu_ms("res_1"); };
  for (int i = 0; i < 1000 && charged() < 2 * 3'600'000; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(charged(), 2 * 3'600'000);
  service_.reset();
  clock_.set(hour.plus_seconds(10 * 3600));
  start_service(30'000, &wallet, &catalog);
  for (int i = 0; i < 1000 && charged() < 3 * 2 * 3'600'000; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(charged(), 3 * 2 * 3'600'000);  // three hours of two GPUs, each hour once
  EXPECT_EQ(usage_of("res_1").size(), 3u);
  // And once only: a further restart charges nothing more.
  service_.reset();
  start_service(30'000, &wallet, &catalog);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(charged(), 3 * 2 * 3'600'000);
}

TEST_F(ComputeServiceTest, TheSpotMarketSellsToTheHighestBidsAndPreemptsTheOutbid) {
  FakeCatalog catalog;
  service_.reset();
  start_service(1'000, nullptr, &catalog);
  ASSERT_TRUE(submit("job_a", R"({"gpus":2,"tier":"spot","max_price_per_gpu_hour":"1.00","command":["a"]})").is_ok());
  ASSERT_TRUE(submit("job_b", R"({"gpus":2,"tier":"spot","max_price_per_gpu_hour":"2.00","command":["b"]})").is_ok());
  wait_state("job_a", "running");
  wait_state("job_b", "running");
  clock_.advance_seconds(1);  // a clearing: 4 bid for 4, nobody loses, the price is the floor
  wait_prices(catalog, 1);
  EXPECT_EQ(catalog.spot_prices(), std::vector<std::string>{"0.50"});

  // A higher bid arrives: at the next clearing it and job_b win, job_a (the
  // highest loser) sets the price and gets notice.
  ASSERT_TRUE(submit("job_c", R"({"gpus":2,"tier":"spot","max_price_per_gpu_hour":"3.00","command":["c"]})").is_ok());
  EXPECT_EQ(store_->find_job("job_c").value()->state, "queued");
  clock_.advance_seconds(1);
  store::JobRecord outbid = wait_state("job_a", "preempting");
  EXPECT_EQ(outbid.reason, "outbid");
  EXPECT_EQ(catalog.spot_prices(), (std::vector<std::string>{"0.50", "1.00"}));
  EXPECT_EQ(store_->find_job("job_b").value()->state, "running");
  clock_.advance_seconds(1);  // past the grace: job_a is killed and job_c takes its GPUs
  executor_.reap_killed("job_a", clock_.now());
  wait_state("job_a", "preempted");
  wait_state("job_c", "running");
  wait_prices(catalog, 3);  // that clearing: job_a had left, nobody lost, back to the floor
  EXPECT_EQ(catalog.spot_prices(), (std::vector<std::string>{"0.50", "1.00", "0.50"}));

  // A bid below the price waits even with GPUs free, until the price falls to it.
  ASSERT_TRUE(submit("job_d", R"({"gpus":1,"tier":"spot","max_price_per_gpu_hour":"0.60","command":["d"]})").is_ok());
  clock_.advance_seconds(1);  // job_d loses to job_c and job_b and sets the price
  wait_prices(catalog, 4);
  EXPECT_EQ(catalog.spot_prices().back(), "0.60");
  executor_.exit("job_b", 0, clock_.now());
  wait_state("job_b", "succeeded");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(store_->find_job("job_d").value()->state, "queued");  // outbid, though 2 GPUs are free
  clock_.advance_seconds(1);  // job_c and job_d fit: nobody loses, the price falls to the floor
  wait_state("job_d", "running");
  wait_prices(catalog, 5);
  EXPECT_EQ(catalog.spot_prices().back(), "0.50");

  // A bid below the floor is refused at once.
  auto low = submit("job_e", R"({"gpus":1,"tier":"spot","max_price_per_gpu_hour":"0.40","command":["e"]})");
  EXPECT_EQ(low.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(low.status().message().find("0.50"), std::string::npos) << low.status().message();
}

}  // namespace
}  // namespace headroom::compute
