#include "compute/compute_service.h"

#include <algorithm>
#include <map>
#include <charconv>
#include <utility>

#include "common/check.h"
#include "common/log.h"

namespace headroom::compute {

// How far back a start looks for capacity blocks that ended while no server
// ran, to charge them: a server down longer loses those charges.
constexpr std::int64_t kBlockRechargeHorizonUs = std::int64_t{31} * 24 * 3'600'000'000;
namespace {

using sched::JobState;

// A run's name for the wallet: its hold is made, and released, by it.
std::string run_key(const std::string& job_id, Timestamp started) {
  return job_id + ":" + std::to_string(started.unix_millis());
}

// "node:index,node:index" (as gpu_names() writes it); nullopt when malformed.
std::optional<std::vector<std::pair<std::string, std::uint32_t>>> parse_gpu_names(std::string_view text) {
  std::vector<std::pair<std::string, std::uint32_t>> out;
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    std::string_view one = text.substr(0, comma);
    std::size_t colon = one.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::uint32_t index = 0;
    auto [end, ec] = std::from_chars(one.data() + colon + 1, one.data() + one.size(), index);
    if (ec != std::errc() || end != one.data() + one.size()) return std::nullopt;
    out.emplace_back(std::string(one.substr(0, colon)), index);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

// Names one start of a job for the executor (LaunchSpec::run_id): its seq and
// when it entered "starting", both in the store, so a server taking over
// derives the same name.
std::string run_id_of(const store::JobRecord& record) {
  return std::to_string(record.seq) + "." + std::to_string(record.state_at.unix_micros);
}

}  // namespace

Result<std::unique_ptr<ComputeService>> ComputeService::start(store::Store& store, const fleet::FleetSpec& fleet,
                                                              exec::Executor& executor, ledger::UsageSink& usage,
                                                              const Clock& clock, ComputeOptions options) {
  HR_ASSIGN_OR_RETURN(sched::Scheduler scheduler, sched::Scheduler::create(fleet, options.scheduler));
  std::unique_ptr<ComputeService> service(
      new ComputeService(store, fleet, executor, usage, clock, std::move(options), std::move(scheduler)));
  HR_RETURN_IF_ERROR(service->recover(clock.now()));
  service->thread_ = std::thread([s = service.get()] { s->run(); });
  return service;
}

ComputeService::ComputeService(store::Store& store, const fleet::FleetSpec& fleet, exec::Executor& executor,
                               ledger::UsageSink& usage, const Clock& clock, ComputeOptions options,
                               sched::Scheduler scheduler)
    : store_(store),
      fleet_(fleet),
      executor_(executor),
      usage_(usage),
      clock_(clock),
      options_(std::move(options)),
      scheduler_(std::move(scheduler)) {}

ComputeService::~ComputeService() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

const GpuPrices& ComputeService::prices_of(const std::string& gpu_type) const {
  auto it = options_.prices.find(gpu_type);
  return it == options_.prices.end() ? options_.default_prices : it->second;
}

void ComputeService::push_change(const LiveJob& job, bool changed) {
  if (!changed) return;
  const store::JobRecord& r = job.record;
  pending_updates_.push_back(store::JobUpdate{r, store::JobEvent{r.id, r.state_at, r.state, r.reason, r.message}});
}

// ---- Restart -------------------------------------------------------------------

Status ComputeService::recover(Timestamp now) {
  HR_ASSIGN_OR_RETURN(next_seq_, store_.max_job_seq());
  ++next_seq_;
  HR_ASSIGN_OR_RETURN(auto states, store_.node_states());
  for (const auto& [node, state_name] : states) {
    auto state = fleet::parse_node_state(state_name);
    if (!state) continue;
    auto effects = scheduler_.set_node_state(node, *state, now);
    if (!effects) spdlog::warn("node {} has a saved state but is not in the fleet any more", node);
  }
  HR_ASSIGN_OR_RETURN(auto quotas, store_.all_quotas());
  for (const auto& [tenant, json] : quotas) {
    auto quota = parse_quota(json);
    if (!quota) return Status::internal("the saved quota of " + tenant + " is corrupt: " + quota.status().message());
    HR_RETURN_IF_ERROR(scheduler_.set_quota(tenant, quota->limits));
    HR_RETURN_IF_ERROR(scheduler_.set_tenant_weight(tenant, quota->fair_share_weight));
  }
  HR_RETURN_IF_ERROR(open_calendar(now));
  // Back to a horizon: a block that ended while no server ran is charged
  // now (its hourly events are idempotent: hours charged before record
  // nothing twice).
  HR_ASSIGN_OR_RETURN(auto reservations,
                      store_.live_reservations(Timestamp{now.unix_micros - kBlockRechargeHorizonUs}));
  for (const auto& r : reservations) {
    if (r.end > now) {
      Status added = scheduler_.add_reservation(to_sched_reservation(r), now);
      if (!added) spdlog::warn("reservation {} cannot be honoured any more: {}", r.id, added.message());
    }
    restore_block(r, now);
  }

  HR_ASSIGN_OR_RETURN(auto jobs, store_.unsettled_jobs());
  std::size_t adopted = 0, requeued = 0, closed = 0;
  for (store::JobRecord& record : jobs) {
    auto spec = parse_job_spec(record.spec_json);
    if (!spec) return Status::internal("the saved spec of job " + record.id + " is corrupt: " + spec.status().message());
    sched::JobId id = static_cast<sched::JobId>(record.seq);
    LiveJob& job = live_[id];
    job.record = std::move(record);
    job.spec = std::move(*spec);
    seq_of_[job.record.id] = id;
    const std::string state = job.record.state;
    bool changed = false;
    auto set = [&](std::string new_state, std::string reason, std::string message, Timestamp at) {
      job.record.state = std::move(new_state);
      job.record.reason = std::move(reason);
      job.record.message = std::move(message);
      job.record.state_at = at;
      changed = true;
    };
    // Placed and written down; the last server may or may not have launched
    // it before it stopped. The executor knows: a run that began is adopted
    // below, one that did not is queued again.
    bool never_launched = false;
    if (state == "starting" && job.record.pid <= 0 && job.record.external_id.empty()) {
      auto run = executor_.find_run(job.record.id, run_id_of(job.record));
      if (!run) {
        // Starting it again could run it twice; not starting it could lose
        // it. Neither: the server does not start until the executor answers.
        return Status::unavailable("job " + job.record.id + " was placed when the last server stopped, and whether " +
                                   "its run began cannot be told: " + run.status().message());
      }
      if (*run) {
        job.record.pid = (*run)->pid;
        job.record.start_ticks = static_cast<std::int64_t>((*run)->start_ticks);
        job.record.external_id = (*run)->external_id;
        changed = true;
      } else {
        set("queued", "requeued", "placed but not started when the last server stopped", now);
        job.record.gpus.clear();
        job.record.gpu_type.clear();
        never_launched = true;
      }
    }
    if (auto parsed = sched::parse_job_state(state); parsed && sched::is_terminal(*parsed)) {
      ++closed;  // ended, with usage still to emit: settled below
    } else if (state == "queued" || never_launched) {
      auto effects = scheduler_.submit(to_sched_job(job.record, job.spec), now);
      if (!effects) {
        set("failed", "rejected_at_restart", effects.status().message(), now);
        job.record.ended_at = now;
        job.record.usage_until = now;
      }
      ++requeued;
    } else {
      // starting, running, preempting: its supervisor may still run.
      exec::Exit ended;
      const bool had_handle = job.record.pid > 0 || !job.record.external_id.empty();
      bool alive = had_handle &&
                   executor_.adopt(job.record.id,
                                   exec::ProcessHandle{job.record.pid, static_cast<std::uint64_t>(job.record.start_ticks),
                                                       job.record.external_id},
                                   ended);
      std::vector<sched::GpuIndex> gpus;
      bool gpus_known = true;
      auto names = parse_gpu_names(job.record.gpus);
      if (!names) gpus_known = false;
      for (const auto& [node, index] : names.value_or(decltype(names)::value_type{})) {
        auto g = scheduler_.cluster().find_gpu(node, index);
        if (!g) gpus_known = false;
        else gpus.push_back(*g);
      }
      if (alive && gpus_known && !gpus.empty()) {
        sched::Job sjob = to_sched_job(job.record, job.spec);
        auto restored = scheduler_.restore(std::move(sjob), gpus,
                                           state == "preempting" ? JobState::kPreempting : JobState::kRunning,
                                           job.record.started_at.value_or(job.record.state_at), now);
        if (restored) {
          if (state == "starting") set("running", "adopted", "", now);
          if (!job.record.started_at) job.record.started_at = now;
          billing_.insert(id);
          ++adopted;
          push_change(job, changed);
          continue;
        }
        spdlog::error("job {} runs but its GPUs cannot be given back to it ({}): killing it", job.record.id,
                      restored.status().message());
        (void)executor_.kill(job.record.id);
        ended = exec::Exit{job.record.id, 137, now, true};
      } else if (alive) {
        spdlog::error("job {} runs on GPUs this fleet does not have any more: killing it", job.record.id);
        (void)executor_.kill(job.record.id);
        ended = exec::Exit{job.record.id, 137, now, true};
      } else if (!had_handle) {
        ended = exec::Exit{job.record.id, 0, job.record.state_at, true};
      }
      // Gone: closed with what it left. A lost job is billed only up to the
      // last time it was known to run (its supervisor's last heartbeat).
      Timestamp known_alive = job.record.usage_until.value_or(job.record.started_at.value_or(job.record.state_at));
      Timestamp end = std::max(ended.ended_at, known_alive);
      if (ended.lost) set("lost", "gone_at_restart", "its processes were gone when headroom restarted", end);
      else if (state == "preempting") set("preempted", "exited", "", end);
      else set(ended.exit_code == 0 ? "succeeded" : "failed", "exited", "", end);
      if (!ended.lost) job.record.exit_code = ended.exit_code;
      job.record.ended_at = end;
      if (!job.record.usage_until && !job.record.started_at) job.record.usage_until = end;
      ++closed;
    }
    push_change(job, changed);
    if (job.record.ended_at) settle(job);
  }
  if (!live_.empty()) {
    spdlog::info("compute: {} jobs adopted, {} queued again, {} closed at restart", adopted, requeued, closed);
  }
  flush();
  return Status::ok();
}

// ---- The loop ------------------------------------------------------------------

void ComputeService::run() {
  std::vector<std::pair<Submission, std::function<void(Result<Submitted>)>>> batch;
  std::vector<std::function<void()>> tasks;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms),
                     [&] { return stopping_ || !submissions_.empty() || !tasks_.empty(); });
      if (submissions_.size() <= options_.max_batch) {
        batch.swap(submissions_);
      } else {
        auto cut = submissions_.begin() + static_cast<std::ptrdiff_t>(options_.max_batch);
        std::move(submissions_.begin(), cut, std::back_inserter(batch));
        submissions_.erase(submissions_.begin(), cut);
      }
      tasks.swap(tasks_);
      if (stopping_ && batch.empty() && tasks.empty()) break;
    }
    Timestamp now = clock_.now();
    if (!batch.empty()) take_submissions(batch, now);
    batch.clear();
    for (auto& task : tasks) task();
    tasks.clear();
    reap(now);
    // Ticks keep to real time, whatever the injected clock says.
    if (auto real = std::chrono::steady_clock::now(); real >= next_tick_) {
      clear_spot(now);
      apply(scheduler_.tick(now), now);
      calendar_->advance(now);
      charge_blocks(now);
      emit_due_usage(now);
      preempt_exhausted(now);
      next_tick_ = real + std::chrono::milliseconds(options_.tick_ms);
    }
    if (flush() && !placed_.empty()) {
      launch_placed(now);
      flush();
    }
  }
  flush();
}


void ComputeService::submit(Submission submission, std::function<void(Result<Submitted>)> done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      submissions_.emplace_back(std::move(submission), std::move(done));
      done = nullptr;
    }
  }
  if (done) done(Status::unavailable("the server is shutting down"));
  wake_.notify_one();
}

void ComputeService::take_submissions(
    std::vector<std::pair<Submission, std::function<void(Result<Submitted>)>>>& batch, Timestamp now) {
  // The scheduler checks each first (fit, quota, queue room); what it takes
  // is written in one transaction, and taken back if that fails or the
  // Idempotency-Key says it was already submitted.
  std::vector<store::JobInsert> inserts;
  std::vector<std::size_t> of_insert;  // batch index of each insert
  inserts.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    Submission& s = batch[i].first;
    s.record.seq = next_seq_;
    Status checked = check_price(s.spec, now);
    if (checked) {
      auto effects = scheduler_.submit(to_sched_job(s.record, s.spec), now);
      checked = effects ? Status::ok() : effects.status();
      if (checked) admit_spot_bid(static_cast<sched::JobId>(s.record.seq), s.spec);
    }
    if (!checked) {
      batch[i].second(checked);
      batch[i].second = nullptr;
      continue;
    }
    ++next_seq_;
    s.record.state = "queued";
    s.record.reason = "submitted";
    s.record.state_at = now;
    s.record.created_at = now;
    store::JobInsert insert;
    insert.job = s.record;
    insert.idempotency_key = s.idempotency_key;
    insert.request_sha256 = s.request_sha256;
    inserts.push_back(std::move(insert));
    of_insert.push_back(i);
  }
  if (inserts.empty()) return;
  Status committed = store_.insert_jobs(inserts);
  for (std::size_t k = 0; k < inserts.size(); ++k) {
    store::JobInsert& insert = inserts[k];
    auto& [submission, done] = batch[of_insert[k]];
    sched::JobId id = static_cast<sched::JobId>(insert.job.seq);
    if (!committed || !insert.status || insert.replay) {
      (void)scheduler_.cancel(id, now);  // queued, never placed: it leaves without a trace
      if (!committed) done(Status::unavailable("the job could not be stored: " + committed.message()));
      else if (!insert.status) done(insert.status);
      else done(Submitted{std::move(*insert.replay), true});
      continue;
    }
    LiveJob& job = live_[id];
    job.record = insert.job;
    job.spec = std::move(submission.spec);
    seq_of_[job.record.id] = id;
    done(Submitted{std::move(insert.job), false});
  }
}

void ComputeService::cancel(std::string job_id, std::function<void(Status)> done) {
  std::lock_guard lock(mutex_);
  if (stopping_) {
    done(Status::unavailable("the server is shutting down"));
    return;
  }
  tasks_.emplace_back([this, job_id = std::move(job_id), done = std::move(done)]() mutable {
    auto it = seq_of_.find(job_id);
    if (it == seq_of_.end() || !scheduler_.find(it->second)) {
      done(Status::conflict("job " + job_id + " has already ended"));
      return;
    }
    auto effects = scheduler_.cancel(it->second, clock_.now());
    if (!effects) {
      done(effects.status());
      return;
    }
    apply(*effects, clock_.now());
    after_flush_.push_back([done = std::move(done)] { done(Status::ok()); });
  });
  wake_.notify_one();
}

// ---- Effects -------------------------------------------------------------------

// Carries out effects in order. What carrying one out sets off (the
// scheduler's answer to a start or a failed start) goes after the rest, so
// each job's states are applied in the order they happened.
void ComputeService::apply(const sched::Effects& effects, Timestamp now) {
  if (applying_) {
    follow_ups_.insert(follow_ups_.end(), effects.begin(), effects.end());
    return;
  }
  applying_ = true;
  follow_ups_.assign(effects.begin(), effects.end());
  for (std::size_t i = 0; i < follow_ups_.size(); ++i) {
    sched::Effect e = follow_ups_[i];  // a copy: carrying it out may grow follow_ups_
    auto it = live_.find(e.job);
    CHECK(it != live_.end()) << "the scheduler named job " << e.job << ", which the service does not know";
    const std::string& id = it->second.record.id;
    switch (e.kind) {
      case sched::Effect::Kind::kStart:
        start_job(e.job, e.gpus, now);
        break;
      case sched::Effect::Kind::kPreemptNotice:
        if (Status s = executor_.notify_preempt(id, e.deadline); !s) {
          spdlog::warn("notice to job {} failed: {}", id, s.message());
        }
        break;
      case sched::Effect::Kind::kKill:
        if (Status s = executor_.kill(id); !s) {
          spdlog::warn("killing job {} failed: {}", id, s.message());
        } else {
          it->second.killed_run_unreaped = true;
        }
        break;
      case sched::Effect::Kind::kStateChanged:
        on_state(e, now);
        break;
    }
  }
  follow_ups_.clear();
  applying_ = false;
}

// Placed: its GPUs go into its record at once, and it is launched only once
// its "starting" state is durable (launch_placed, after the flush). So a
// server that takes over after a crash knows of every run that may have
// begun, and asks the executor (find_run) rather than start one twice.
void ComputeService::start_job(sched::JobId id, const std::vector<sched::GpuIndex>& gpus, Timestamp) {
  LiveJob& job = live_.at(id);
  const sched::ClusterState& cluster = scheduler_.cluster();
  job.record.gpus = gpu_names(gpus);
  job.record.gpu_type = gpus.empty() ? "" : cluster.type_name(cluster.gpu_type(gpus[0]));
  if (job.killed_run_unreaped) {
    job.start_when_reaped = gpus;  // its killed run still exits: starts after (reap)
    return;
  }
  placed_.push_back(id);
}

void ComputeService::launch_placed(Timestamp now) {
  std::vector<sched::JobId> placed;
  placed.swap(placed_);
  for (sched::JobId id : placed) {
    // Moved on since it was placed (cancelled, preempted, already launched),
    // or waiting for its killed run to end: not now.
    const sched::Job* placed_job = scheduler_.find(id);
    if (placed_job == nullptr || placed_job->state != sched::JobState::kStarting) continue;
    LiveJob& job = live_.at(id);
    if (job.killed_run_unreaped) continue;
    CHECK(job.record.state == "starting") << "job " << job.record.id << " is launched from " << job.record.state;
    launch(id, job, now);
  }
}

void ComputeService::launch(sched::JobId id, LiveJob& job, Timestamp now) {
  const sched::ClusterState& cluster = scheduler_.cluster();
  std::span<const sched::GpuIndex> gpus = scheduler_.gpus_of(id);
  exec::LaunchSpec launch;
  launch.job_id = job.record.id;
  launch.run_id = run_id_of(job.record);
  launch.argv = job.spec.argv;
  launch.env = job.spec.env;
  launch.workdir = job.spec.workdir;
  for (sched::GpuIndex g : gpus) {
    launch.gpu_devices.push_back(static_cast<int>(cluster.gpu_index_on_node(g)));
    launch.gpu_names.push_back(cluster.node(cluster.gpu_node(g)).name + ":" +
                               std::to_string(cluster.gpu_index_on_node(g)));
  }
  // Where it was placed, for executors that enforce it elsewhere (Slurm).
  for (sched::GpuIndex g : gpus) {
    const std::string& node = cluster.node(cluster.gpu_node(g)).name;
    if (std::find(launch.nodes.begin(), launch.nodes.end(), node) == launch.nodes.end()) launch.nodes.push_back(node);
  }
  launch.gpu_type = job.record.gpu_type;
  if (Status paid = hold_first_window(job, gpus.size(), now); !paid) {
    job.record.message = paid.message();
    auto effects = scheduler_.finished(id, 1, now);
    if (effects) apply(*effects, now);
    return;
  }
  auto started = executor_.start(launch);
  if (!started) {
    // Nothing ran: the hold just made goes back now, not when it expires.
    pending_releases_.push_back({job.record.id, run_key(job.record.id, now)});
    job.record.message = started.status().message();
    job.record.exit_code = 127;
    auto effects = scheduler_.finished(id, 127, now);
    if (effects) apply(*effects, now);
    return;
  }
  job.record.pid = started->pid;
  job.record.start_ticks = static_cast<std::int64_t>(started->start_ticks);
  job.record.external_id = started->external_id;
  auto effects = scheduler_.running(id, now);
  CHECK(effects.is_ok()) << effects.status().to_string();
  apply(*effects, now);
}

void ComputeService::on_state(const sched::Effect& e, Timestamp now) {
  LiveJob& job = live_.at(e.job);
  store::JobRecord& r = job.record;
  Timestamp at = end_hint_.value_or(now);
  bool was_running = r.state == "running" || r.state == "preempting";
  if (was_running && !sched::holds_gpus(e.state)) {
    close_run(job, at);  // its GPU time, up to its end
    billing_.erase(e.job);
    pending_releases_.push_back({r.id, run_key(r.id, r.started_at.value_or(at))});
  }
  if (e.state == JobState::kRunning && !was_running) {
    r.started_at = at;
    r.usage_until = at;
    billing_.insert(e.job);
  }
  if (e.state == JobState::kQueued) {  // requeued after preemption: a new stay
    r.pid = 0;
    r.start_ticks = 0;
    r.external_id.clear();
  }
  if (e.state == JobState::kPreempting) ++r.preemptions;
  r.state = std::string(sched::job_state_name(e.state));
  r.reason = std::string(sched::reason_name(e.reason));
  r.state_at = at;
  if (sched::is_terminal(e.state) && scheduler_.find(e.job) == nullptr) {  // it left the scheduler: ended
    r.ended_at = at;
    if (!was_running) r.usage_until = at;  // nothing more to bill
  }
  // Every change is written, in order, so the history keeps each state even
  // when several happen within one flush.
  pending_updates_.push_back(store::JobUpdate{r, store::JobEvent{r.id, at, r.state, r.reason, r.message}});
}

void ComputeService::reap(Timestamp now) {
  for (exec::Exit& exit : executor_.poll()) {
    auto it = seq_of_.find(exit.job_id);
    if (it == seq_of_.end()) continue;
    LiveJob& job = live_.at(it->second);
    if (job.killed_run_unreaped) {
      // The end of a run the scheduler already closed when it killed it; a
      // requeued run placed since may start now.
      job.killed_run_unreaped = false;
      if (auto gpus = std::exchange(job.start_when_reaped, std::nullopt)) start_job(it->second, *gpus, now);
      continue;
    }
    if (!scheduler_.find(it->second)) continue;  // already ended
    int code = exit.lost ? 137 : exit.exit_code;
    job.record.exit_code = code;
    if (exit.lost) job.record.message = "its processes vanished without an exit status";
    end_hint_ = std::clamp(exit.ended_at, job.record.started_at.value_or(exit.ended_at), now);
    auto effects = scheduler_.finished(it->second, code, now);
    if (effects) apply(*effects, now);
    end_hint_.reset();
  }
}

// ---- Usage ---------------------------------------------------------------------

Money ComputeService::list_price(const std::string& gpu_type, sched::Tier tier, Timestamp at) const {
  if (tier == sched::Tier::kInternal) return Money();
  if (options_.catalog != nullptr) {
    auto price = options_.catalog->price_at(ledger::Product::kGpuTime, gpu_type, sched::tier_name(tier), at);
    if (price) return *price;
  }
  const GpuPrices& p = prices_of(gpu_type);
  switch (tier) {
    case sched::Tier::kReserved: return p.reserved;
    case sched::Tier::kSpot: return p.spot;
    default: return p.on_demand;
  }
}

// A spot job pays the clearing price, never more than its bid (the market
// preempts a job whose bid falls below the price; between that and its end
// it pays its bid).
Money ComputeService::unit_price(const LiveJob& job, Timestamp at) const {
  const Money price = list_price(job.record.gpu_type, job.spec.tier, at);
  if (job.spec.tier == sched::Tier::kSpot && job.spec.max_price_per_gpu_hour) {
    return std::min(price, *job.spec.max_price_per_gpu_hour);
  }
  return price;
}

// One event per interval [usage_until, end), cut at the run's interval
// boundaries (started_at + k * usage_interval), so that the same run always
// yields the same events.
void ComputeService::close_run(LiveJob& job, Timestamp end) {
  store::JobRecord& r = job.record;
  if (!r.started_at) return;
  if (on_priced_block(job)) {  // its GPU-hours are the block's, charged as the block's
    r.usage_until = std::max(end, r.usage_until.value_or(end));
    return;
  }
  Timestamp from = std::max(r.usage_until.value_or(*r.started_at), *r.started_at);
  std::int64_t interval_us = options_.usage_interval_s * 1'000'000;
  while (from < end) {
    std::int64_t k = (from.unix_micros - r.started_at->unix_micros) / interval_us + 1;
    Timestamp boundary{r.started_at->unix_micros + k * interval_us};
    Timestamp to = std::min(boundary, end);
    std::int64_t gpus = static_cast<std::int64_t>(job.spec.gpus);
    ledger::UsageEvent e;
    e.id = r.id + ":" + std::to_string(from.unix_micros / 1000);
    e.tenant_id = r.tenant_id;
    e.product = ledger::Product::kGpuTime;
    e.item = r.gpu_type;
    e.variant = std::string(sched::tier_name(job.spec.tier));
    e.quantity = gpus * ((to.unix_micros - from.unix_micros) / 1000);
    e.unit_price = unit_price(job, from);
    e.start = from;
    e.end = to;
    e.source_id = r.id;
    pending_usage_.push_back(std::move(e));
    from = to;
  }
  r.usage_until = std::max(from, r.usage_until.value_or(from));
}

// Whole intervals of the jobs that run, up to the executor's last look at
// them: a job that ended since is billed to its end when poll() reports it,
// never past it.
void ComputeService::emit_due_usage(Timestamp now) {
  std::int64_t interval_us = options_.usage_interval_s * 1'000'000;
  const Timestamp known_alive = std::min(now, executor_.checked_until());
  for (sched::JobId id : billing_) {
    LiveJob& job = live_.at(id);
    store::JobRecord& r = job.record;
    std::int64_t elapsed = known_alive.unix_micros - r.started_at->unix_micros;
    if (elapsed < 0) continue;
    Timestamp last_boundary{r.started_at->unix_micros + (elapsed / interval_us) * interval_us};
    if (last_boundary > r.usage_until.value_or(*r.started_at)) {
      close_run(job, last_boundary);
      pending_updates_.push_back(store::JobUpdate{r, {}});
    }
  }
}

Status ComputeService::hold_first_window(const LiveJob& job, std::size_t gpus, Timestamp now) {
  const sched::Tier tier = job.spec.tier;
  if (options_.wallet == nullptr || (tier != sched::Tier::kOnDemand && tier != sched::Tier::kSpot)) return Status::ok();
  const std::int64_t window_s = std::min(job.spec.max_runtime_s, options_.hold_window_s);
  return options_.wallet->hold_run(job.record.tenant_id, job.record.id, run_key(job.record.id, now), unit_price(job, now),
                                   static_cast<std::uint32_t>(gpus), window_s * 1000,
                                   (job.spec.max_runtime_s + 3600) * 1000, now);
}

// The spot jobs of tenants whose money is spent get notice. Acted on when
// the set changes; a job of such a tenant that starts later cannot, as its
// hold fails.
void ComputeService::preempt_exhausted(Timestamp now) {
  if (options_.wallet == nullptr) return;
  const std::uint64_t generation = options_.wallet->exhausted_generation();
  if (generation == exhausted_seen_) return;
  exhausted_seen_ = generation;
  const std::vector<std::string> tenants = options_.wallet->exhausted_tenants();
  if (tenants.empty()) return;
  const std::unordered_set<std::string_view> spent(tenants.begin(), tenants.end());
  std::vector<sched::JobId> victims;
  for (const auto& [id, job] : live_) {
    if (job.spec.tier == sched::Tier::kSpot && spent.contains(job.record.tenant_id)) victims.push_back(id);
  }
  for (sched::JobId id : victims) {
    auto effects = scheduler_.preempt(id, sched::Reason::kBudgetExhausted, now);
    if (effects) apply(*effects, now);  // queued or already under notice: no effects
  }
}

// An ended job's GPU time not emitted yet (found at a restart).
void ComputeService::settle(LiveJob& job) {
  store::JobRecord& r = job.record;
  if (r.started_at && r.usage_until.value_or(*r.started_at) < *r.ended_at) close_run(job, *r.ended_at);
  pending_releases_.push_back({r.id, run_key(r.id, r.started_at.value_or(*r.ended_at))});
  if (!r.usage_until || *r.usage_until < *r.ended_at) r.usage_until = *r.ended_at;
  pending_updates_.push_back(store::JobUpdate{r, {}});
}

bool ComputeService::flush() {
  if (!pending_usage_.empty()) {
    Status recorded = usage_.record(pending_usage_);
    if (!recorded) {
      // Nothing that depends on it is written: the same events go again next time.
      spdlog::error("compute: recording {} usage events failed, will retry: {}", pending_usage_.size(),
                    recorded.message());
      return false;
    }
    pending_usage_.clear();
  }
  if (options_.wallet != nullptr) {
    for (const RunEnded& run : pending_releases_) options_.wallet->release_run(run.job_id, run.run_key);
  }
  pending_releases_.clear();
  if (!pending_updates_.empty()) {
    Status written = store_.update_jobs(pending_updates_);
    if (!written) {
      spdlog::error("compute: writing {} job changes failed, will retry: {}", pending_updates_.size(),
                    written.message());
      return false;
    }
    pending_updates_.clear();
  }
  // Settled jobs leave.
  for (auto it = live_.begin(); it != live_.end();) {
    const store::JobRecord& r = it->second.record;
    if (r.ended_at && r.usage_until && *r.usage_until >= *r.ended_at && !scheduler_.find(it->first)) {
      seq_of_.erase(r.id);
      it = live_.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<std::function<void()>> done;
  done.swap(after_flush_);
  for (auto& f : done) f();
  return true;
}

// ---- Conversions ---------------------------------------------------------------

sched::Job ComputeService::to_sched_job(const store::JobRecord& record, const JobSpec& spec) const {
  sched::Job job;
  job.id = static_cast<sched::JobId>(record.seq);
  job.tenant_id = record.tenant_id;
  job.tier = spec.tier;
  job.gpus = spec.gpus;
  job.gpu_type = spec.gpu_type;
  job.packing = spec.packing;
  job.max_runtime_s = spec.max_runtime_s;
  job.max_price_per_gpu_hour = spec.max_price_per_gpu_hour.value_or(Money());
  job.reservation_id = spec.reservation_id;
  job.requeue_on_preempt = spec.requeue_on_preempt;
  job.wait_for_quota = spec.queue_if_over_quota;
  job.submitted_at = record.created_at;
  return job;
}

sched::Reservation to_sched_reservation(const store::ReservationRecord& r) {
  sched::Reservation out;
  out.id = r.id;
  out.tenant_id = r.tenant_id;
  out.gpu_type = r.gpu_type;
  out.gpus = static_cast<std::uint32_t>(r.gpus);
  auto packing = sched::parse_packing(r.packing);
  out.packing = packing ? *packing : sched::Packing::kAny;
  out.start = r.start;
  out.end = r.end;
  return out;
}

Status ComputeService::check_price(const JobSpec& spec, Timestamp now) const {
  if (spec.tier != sched::Tier::kSpot || !spec.max_price_per_gpu_hour) return Status::ok();
  const std::string* cheapest = nullptr;
  Money lowest;
  for (const fleet::GpuType& t : fleet_.gpu_types) {
    if (!spec.gpu_type.empty() && t.name != spec.gpu_type) continue;
    Money p = options_.clearing_interval_s > 0 ? floor_of(t.name, now) : list_price(t.name, sched::Tier::kSpot, now);
    if (cheapest == nullptr || p < lowest) {
      cheapest = &t.name;
      lowest = p;
    }
  }
  if (cheapest == nullptr || *spec.max_price_per_gpu_hour >= lowest) return Status::ok();  // unknown type: the scheduler says so
  return Status::invalid_argument("max_price_per_gpu_hour " + spec.max_price_per_gpu_hour->to_string() +
                                  " is below the lowest spot price of " + *cheapest + " (" + lowest.to_string() +
                                  " per GPU-hour)");
}

std::string ComputeService::gpu_names(std::span<const sched::GpuIndex> gpus) const {
  const sched::ClusterState& cluster = scheduler_.cluster();
  std::string out;
  for (sched::GpuIndex g : gpus) {
    if (!out.empty()) out += ',';
    out += cluster.node(cluster.gpu_node(g)).name;
    out += ':';
    out += std::to_string(cluster.gpu_index_on_node(g));
  }
  return out;
}

// ---- Admin commands and snapshots ---------------------------------------------

Status ComputeService::set_node_state(const std::string& node, fleet::NodeState state,
                                      const store::AuditRecord& audit) {
  return call([&]() -> Status {
    if (!scheduler_.cluster().find_node(node)) return Status::not_found("node " + node + " not found");
    HR_RETURN_IF_ERROR(store_.set_node_state(node, std::string(fleet::node_state_name(state)), audit));
    Timestamp now = clock_.now();
    HR_ASSIGN_OR_RETURN(sched::Effects effects, scheduler_.set_node_state(node, state, now));
    apply(effects, now);
    return Status::ok();
  });
}

Status ComputeService::set_quota(const std::string& tenant_id, const ComputeQuota& quota,
                                 const store::AuditRecord& audit) {
  return call([&]() -> Status {
    HR_RETURN_IF_ERROR(store_.set_quota(tenant_id, to_json(quota), audit));
    HR_RETURN_IF_ERROR(scheduler_.set_quota(tenant_id, quota.limits));
    return scheduler_.set_tenant_weight(tenant_id, quota.fair_share_weight);
  });
}

Status ComputeService::add_reservation(const store::ReservationRecord& reservation, const store::AuditRecord& audit) {
  return call([&]() -> Status {
    const Timestamp now = clock_.now();
    // The calendar counts it too (its hours snapped outwards), so that no
    // quote sells its GPUs or the owner's forecast.
    HR_ASSIGN_OR_RETURN(auto window, market::snap_to_hours(std::max(reservation.start, now), reservation.end));
    calendar_->advance(now);
    HR_RETURN_IF_ERROR(
        calendar_->book({reservation.id, reservation.gpu_type, static_cast<std::uint32_t>(reservation.gpus),
                         window.first, window.second}));
    Status added = scheduler_.add_reservation(to_sched_reservation(reservation), now);
    Status stored = added ? store_.create_reservation(reservation, audit) : added;
    if (!stored) {
      if (added) {
        auto undone = scheduler_.cancel_reservation(reservation.id, now);
        if (undone) apply(*undone, now);
      }
      CHECK(calendar_->release(reservation.id).is_ok());
    }
    return stored;
  });
}

Status ComputeService::cancel_reservation(const std::string& id, const store::AuditRecord& audit) {
  return call([&]() -> Status {
    Timestamp now = clock_.now();
    HR_RETURN_IF_ERROR(store_.cancel_reservation(id, now, audit));
    auto effects = scheduler_.cancel_reservation(id, now);
    if (effects) apply(*effects, now);
    (void)calendar_->release(id);  // not_found: its hours are all past already
    cancel_block(id, now);
    return Status::ok();
  });
}

std::vector<GpuHolding> ComputeService::holdings() {
  return call([&] {
    const sched::ClusterState& cluster = scheduler_.cluster();
    std::vector<GpuHolding> out(cluster.gpu_count());
    for (sched::GpuIndex g = 0; g < cluster.gpu_count(); ++g) {
      out[g].node = cluster.node(cluster.gpu_node(g)).name;
      out[g].index = cluster.gpu_index_on_node(g);
      sched::JobId holder = cluster.holder(g);
      if (auto it = live_.find(holder); it != live_.end()) {
        out[g].job_id = it->second.record.id;
        out[g].tenant_id = it->second.record.tenant_id;
      }
    }
    return out;
  });
}

std::vector<fleet::NodeState> ComputeService::node_states() {
  return call([&] {
    const sched::ClusterState& cluster = scheduler_.cluster();
    std::vector<fleet::NodeState> out;
    out.reserve(fleet_.nodes.size());
    for (const fleet::Node& n : fleet_.nodes) out.push_back(cluster.node(*cluster.find_node(n.name)).state);
    return out;
  });
}

std::vector<sched::TypeSurplus> ComputeService::surplus() {
  return call([&] { return scheduler_.surplus(clock_.now()); });
}

std::vector<TypeOffer> ComputeService::offers(std::int32_t days) {
  return call([&] {
    const Timestamp now = clock_.now();
    const sched::ClusterState& cluster = scheduler_.cluster();
    constexpr std::int64_t kDayUs = 86'400'000'000;
    const Timestamp first_day{now.unix_micros - now.unix_micros % kDayUs};
    std::vector<TypeOffer> out;
    for (sched::TypeSurplus& t : scheduler_.surplus(now)) {
      const std::optional<sched::TypeIndex> type = cluster.find_type(t.gpu_type);
      if (!type) continue;
      TypeOffer offer;
      offer.first_day = first_day;
      for (std::int32_t d = 0; d < days; ++d) {
        offer.reservable_by_day.push_back(scheduler_.reservable(*type, first_day.plus_micros(d * kDayUs),
                                                                first_day.plus_micros((d + 1) * kDayUs), now));
      }
      offer.spot_supply = t.spot + t.idle + t.reserved_lent_to_spot;
      offer.spot_floor = floor_of(t.gpu_type, now);
      offer.surplus = std::move(t);
      out.push_back(std::move(offer));
    }
    // Sites: GPUs counted per type and site (the cluster's node indices are
    // the fleet's, in its order).
    std::vector<std::map<std::pair<std::string, std::string>, SiteCapacity>> by_type(out.size());
    for (std::size_t g = 0; g < cluster.gpu_count(); ++g) {
      const auto gpu = static_cast<sched::GpuIndex>(g);
      const fleet::Node& node = fleet_.nodes[cluster.gpu_node(gpu)];
      const sched::TypeIndex type = cluster.gpu_type(gpu);
      if (type >= by_type.size()) continue;
      SiteCapacity& site = by_type[type][{node.region, node.site}];
      site.region = node.region;
      site.site = node.site;
      ++site.gpus;
      site.available += cluster.is_available(gpu);
    }
    for (std::size_t t = 0; t < out.size(); ++t) {
      const std::optional<sched::TypeIndex> type = cluster.find_type(out[t].surplus.gpu_type);
      if (!type || *type >= by_type.size()) continue;
      for (auto& [key, site] : by_type[*type]) out[t].sites.push_back(std::move(site));
    }
    return out;
  });
}

std::size_t ComputeService::queue_position(const std::string& job_id) {
  return call([&]() -> std::size_t {
    auto it = seq_of_.find(job_id);
    if (it == seq_of_.end()) return 0;
    return scheduler_.queue_position(it->second);
  });
}

}  // namespace headroom::compute
