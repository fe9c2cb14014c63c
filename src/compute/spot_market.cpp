// The spot market, run by the compute service on its thread.
//
// Every clearing_interval_s, per GPU type, in type order:
//   bids    the spot jobs that run on the type (starting or running; one
//           under notice has lost already), and the queued spot jobs that
//           could run on it: those that ask for the type, and those that ask
//           for none (they bid in every type's clearing while queued, and in
//           their own type's once they run). A bid is the job's
//           max_price_per_gpu_hour for its gang; ties go to the job
//           submitted first (its scheduler id).
//   supply  the GPUs spot may hold: those spot jobs hold, the idle ones
//           (the internal buffer included: spot may use it and is preempted
//           when internal work returns), and a reservation's idle GPUs spot
//           borrows.
//   floor   the owner's price floor for the type ([market.economics]:
//           marginal or full cost), else the type's list spot price.
// market/clearing.h sets the uniform price and the winners. Then:
//   - a running spot job that lost gets notice (reason "outbid") and is
//     killed after the spot grace unless it ends first; one that asked to be
//     requeued waits in the queue for a price its bid meets;
//   - a queued spot job may start only on the types where it won
//     (Scheduler::set_spot_types); one that won nowhere waits ("outbid");
//   - a price that changed is published to the catalog as the type's spot
//     price, effective now; running spot jobs pay it from their next usage
//     interval on (never more than their bid), so the catalog's versions are
//     the price history.
// A spot job submitted between clearings may start at once on the types
// whose last price its bid meets (admit_spot_bid).
//
// A queued job that asks for no type may win in several types' clearings
// while it will run on one: the GPUs it won elsewhere go unsold until the
// next clearing. That errs on the side of selling too little, never too
// much: the scheduler still places every job, so no GPU is given twice.
#include "compute/compute_service.h"
#include "common/log.h"

namespace headroom::compute {

Money ComputeService::floor_of(const std::string& gpu_type, Timestamp now) const {
  if (options_.spot_floor) {
    if (std::optional<Money> floor = options_.spot_floor(gpu_type, now)) return *floor;
  }
  return prices_of(gpu_type).spot;
}

void ComputeService::admit_spot_bid(sched::JobId id, const JobSpec& spec) {
  if (spec.tier != sched::Tier::kSpot || options_.clearing_interval_s <= 0 || spot_price_.empty()) return;
  const Money bid = spec.max_price_per_gpu_hour.value_or(Money());
  std::uint64_t types = 0;
  for (std::size_t t = 0; t < spot_price_.size(); ++t) {
    if (!spot_price_[t] || bid >= *spot_price_[t]) types |= std::uint64_t{1} << t;
  }
  (void)scheduler_.set_spot_types(id, types);
}

void ComputeService::clear_spot(Timestamp now) {
  if (options_.clearing_interval_s <= 0 || now < next_clearing_) return;
  next_clearing_ = now.plus_seconds(options_.clearing_interval_s);
  const sched::ClusterState& cluster = scheduler_.cluster();
  const std::vector<sched::TypeSurplus> surplus = scheduler_.surplus(now);
  spot_price_.resize(cluster.type_count());

  spot_types_.clear();
  scheduler_.for_each_job([&](const sched::Job& job, std::span<const sched::GpuIndex>) {
    if (job.tier == sched::Tier::kSpot && job.state == sched::JobState::kQueued) spot_types_[job.id] = 0;
  });
  std::vector<sched::JobId> outbid;
  std::vector<ledger::PriceEntry> changed;
  for (const sched::TypeSurplus& type : surplus) {
    const std::optional<sched::TypeIndex> t = cluster.find_type(type.gpu_type);
    if (!t) continue;
    bids_.clear();
    scheduler_.for_each_job([&](const sched::Job& job, std::span<const sched::GpuIndex> gpus) {
      if (job.tier != sched::Tier::kSpot) return;
      const bool bids_here =
          job.state == sched::JobState::kQueued
              ? job.gpu_type.empty() || job.gpu_type == type.gpu_type
              : (job.state == sched::JobState::kStarting || job.state == sched::JobState::kRunning) && !gpus.empty() &&
                    cluster.gpu_type(gpus.front()) == *t;
      if (bids_here) bids_.push_back({job.id, job.gpus, job.max_price_per_gpu_hour, job.id});
    });
    const market::ClearingInput input{type.spot + type.idle + type.reserved_lent_to_spot,
                                      floor_of(type.gpu_type, now), bids_};
    if (Status valid = market::validate(input, clearing_scratch_); !valid) {
      // The scheduler's jobs make these bids: a bad one is a bug, not input.
      spdlog::error("spot market: {} not cleared: {}", type.gpu_type, valid.message());
      continue;
    }
    market::clear(input, clearing_, clearing_scratch_);
    for (std::uint64_t id : clearing_.winners) {
      if (auto it = spot_types_.find(id); it != spot_types_.end()) it->second |= std::uint64_t{1} << *t;
    }
    for (std::uint64_t id : clearing_.losers) {
      if (!spot_types_.contains(id)) outbid.push_back(id);  // it runs on this type
    }
    std::optional<Money>& last = spot_price_[*t];
    if (!last && options_.catalog != nullptr) {  // the first clearing since the start: the catalog's
      auto listed = options_.catalog->price_at(ledger::Product::kGpuTime, type.gpu_type,
                                               sched::tier_name(sched::Tier::kSpot), now);
      if (listed) last = *listed;
    }
    if (last != clearing_.price_per_gpu_hour) {
      last = clearing_.price_per_gpu_hour;
      changed.push_back({ledger::Product::kGpuTime, type.gpu_type, std::string(sched::tier_name(sched::Tier::kSpot)),
                         {}, clearing_.price_per_gpu_hour});
    }
  }
  for (const auto& [id, types] : spot_types_) (void)scheduler_.set_spot_types(id, types);
  for (sched::JobId id : outbid) {
    auto effects = scheduler_.preempt(id, sched::Reason::kOutbid, now);
    if (effects) apply(*effects, now);
  }
  if (!changed.empty() && options_.catalog != nullptr) {
    // Effective as soon as a change may be (now, unless usage starting
    // later was rated already), decided by the catalog under its lock.
    if (Status published = options_.catalog->set_prices(changed); !published) {
      spdlog::error("spot market: the clearing prices could not be published: {}", published.message());
      for (const ledger::PriceEntry& p : changed) spot_price_[*cluster.find_type(p.item)].reset();  // again next time
    }
  }
}

}  // namespace headroom::compute
