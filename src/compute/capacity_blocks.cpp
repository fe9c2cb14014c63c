// Capacity blocks: N GPUs of a type for a window, quoted, booked, charged
// and cancelled, on the compute thread.
//
// Quote. The window snaps to whole hours (start down, end up). What is free
// for it is the lesser of
//   - the calendar's least free count over its hours (market/calendar.h:
//     total - internal buffer - the owner's internal forecast - blocks
//     booked; the forecast is never sold), and
//   - the scheduler's (add_reservation's rule, which also counts the
//     on-demand jobs still running then).
// The price is the reserved list price in force now, for every GPU-hour of
// the block (gpus x hours x price); the quote holds for quote_ttl_s.
// Book. In one step on this thread: the calendar books the block, the
// scheduler adds it as a reservation, the store records it, the tenant's
// balance holds the total (Wallet::hold_run, 402 when it cannot), and the
// catalog takes the block's price under its own key (gpu_time, the type,
// "block:<id>"), so a later change of the list price never touches it. A
// step that fails undoes the ones before. Two tenants booking the last GPUs
// at the same instant are served one after the other: the second finds them
// gone (conflict).
// Charge. A block is charged as its hours pass, one usage event an hour
// (id "<id>:<start ms>", so a restart that emits again records nothing
// twice), at its own price, from its hold; a block that ended while no
// server ran is charged at the next start (ComputeService::start). Jobs on a priced block emit no
// usage: its GPU-hours are metered once, as the block's.
// Cancel (DELETE /v1/reservations/{id}):
//   - 24 hours or more before the start: free, the hold is released;
//   - later but before the start: a fee of a quarter of the block's price;
//   - once it started: the hours begun are charged, the rest is released.
// Either way the GPUs go back to the calendar and the scheduler at once.
#include <algorithm>

#include "common/check.h"
#include "common/log.h"
#include "compute/compute_service.h"

namespace headroom::compute {
namespace {

constexpr std::int64_t kHourUs = 3'600'000'000;
constexpr std::int64_t kFreeCancellationUs = 24 * kHourUs;
constexpr std::int64_t kQuotes = 100'000;  // live quotes at most; expired ones are dropped first

Timestamp hour_after(Timestamp t) { return {(t.unix_micros / kHourUs + 1) * kHourUs}; }

// A block has one "run" for the wallet: its whole term, held as it is booked.
std::string block_run_key(const std::string& id) { return id + ":block"; }

ledger::UsageEvent block_event(const std::string& id, std::string_view part, const std::string& tenant_id,
                               const std::string& gpu_type, std::int64_t gpu_ms, Timestamp start, Timestamp end) {
  ledger::UsageEvent e;
  e.id = id + ":" + std::string(part);
  e.tenant_id = tenant_id;
  e.product = ledger::Product::kGpuTime;
  e.item = gpu_type;
  e.variant = ledger::block_price_variant(id);
  e.quantity = gpu_ms;
  e.start = start;
  e.end = end;
  e.source_id = id;
  return e;
}

}  // namespace

Status ComputeService::open_calendar(Timestamp now) {
  std::map<std::string, std::uint32_t> totals;
  for (const fleet::Node& node : fleet_.nodes) {
    for (const fleet::Gpu& gpu : node.gpus) ++totals[gpu.type];
  }
  std::vector<market::CalendarType> types;
  for (const fleet::GpuType& type : fleet_.gpu_types) {
    auto buffer = options_.scheduler.internal_buffer_gpus.find(type.name);
    types.push_back({type.name, totals[type.name],
                     buffer == options_.scheduler.internal_buffer_gpus.end() ? 0 : buffer->second});
  }
  HR_ASSIGN_OR_RETURN(calendar_, market::CapacityCalendar::create(std::move(types), options_.internal_forecast, now,
                                                                   limits::kCalendarHorizonHoursMax));
  return Status::ok();
}

void ComputeService::restore_block(const store::ReservationRecord& r, Timestamp now) {
  if (r.end > now) {  // still to come or under way: its GPUs stay booked
    auto window = market::snap_to_hours(std::max(r.start, now), r.end);
    Status booked = window ? calendar_->book({r.id, r.gpu_type, static_cast<std::uint32_t>(r.gpus), window->first,
                                              window->second})
                           : window.status();
    if (!booked) spdlog::warn("reservation {} is not in the capacity calendar: {}", r.id, booked.message());
  }
  if (options_.catalog == nullptr) return;
  const auto versions = options_.catalog->price_history(ledger::Product::kGpuTime, r.gpu_type,
                                                        ledger::block_price_variant(r.id),
                                                        Timestamp{}, r.end);
  if (versions.empty()) return;  // not a priced block (an admin's reservation)
  const Timestamp from = std::max(r.start, versions.front().effective_from);
  blocks_[r.id] = PricedBlock{r.tenant_id, r.gpu_type, static_cast<std::uint32_t>(r.gpus), from, r.end, from};
}

bool ComputeService::on_priced_block(const LiveJob& job) const {
  return job.spec.tier == sched::Tier::kReserved && job.spec.reservation_id &&
         blocks_.contains(*job.spec.reservation_id);
}

Result<BlockQuote> ComputeService::quote_block(BlockRequest request, std::string quote_id) {
  return call([&]() -> Result<BlockQuote> {
    const Timestamp now = clock_.now();
    HR_ASSIGN_OR_RETURN(auto window, market::snap_to_hours(request.start, request.end));
    request.start = window.first;
    request.end = window.second;
    const std::optional<sched::TypeIndex> type = scheduler_.cluster().find_type(request.gpu_type);
    if (!type) return Status::invalid_argument("gpu_type: the fleet has no " + fleet::quote_for_message(request.gpu_type));
    calendar_->advance(now);
    HR_ASSIGN_OR_RETURN(market::Availability calendar, calendar_->quote(request.gpu_type, request.gpus,
                                                                         request.start, request.end));
    BlockQuote quote;
    quote.id = std::move(quote_id);
    quote.available = std::min(calendar.available, scheduler_.reservable(*type, request.start, request.end, now));
    quote.price_per_gpu_hour = list_price(request.gpu_type, sched::Tier::kReserved, now);
    const std::int64_t gpu_ms = std::int64_t{request.gpus} * (request.end.unix_micros - request.start.unix_micros) / 1000;
    quote.total = ledger::exact_cost(ledger::Product::kGpuTime, gpu_ms, quote.price_per_gpu_hour).floor_money();
    quote.expires_at = now.plus_seconds(options_.quote_ttl_s);
    quote.request = std::move(request);
    if (quote.available < quote.request.gpus) {
      return Status::conflict("only " + std::to_string(quote.available) + " " + quote.request.gpu_type +
                              " GPUs are free from " + to_rfc3339(quote.request.start) + " to " +
                              to_rfc3339(quote.request.end) + " (" + std::to_string(quote.request.gpus) + " asked)");
    }
    if (std::ssize(quotes_) >= kQuotes) {
      std::erase_if(quotes_, [&](const auto& q) { return q.second.expires_at <= now; });
      if (std::ssize(quotes_) >= kQuotes) return Status::unavailable("too many open quotes; try again in a minute");
    }
    quotes_[quote.id] = quote;
    return quote;
  });
}

Result<store::ReservationRecord> ComputeService::book_block(const std::string& tenant_id, const std::string& quote_id,
                                                            const std::string& reservation_id,
                                                            const store::AuditRecord& audit) {
  return call([&]() -> Result<store::ReservationRecord> {
    const Timestamp now = clock_.now();
    auto it = quotes_.find(quote_id);
    if (it == quotes_.end() || it->second.request.tenant_id != tenant_id || it->second.expires_at <= now) {
      return Status::not_found("quote " + fleet::quote_for_message(quote_id) +
                               " is unknown or expired: ask POST /v1/reservations/quote again");
    }
    const BlockQuote quote = it->second;
    const BlockRequest& q = quote.request;
    if (list_price(q.gpu_type, sched::Tier::kReserved, now) != quote.price_per_gpu_hour) {
      quotes_.erase(it);
      return Status::conflict("the reserved price of " + q.gpu_type + " changed since the quote: quote again");
    }
    store::ReservationRecord r;
    r.id = reservation_id;
    r.tenant_id = tenant_id;
    r.gpu_type = q.gpu_type;
    r.gpus = q.gpus;
    r.packing = std::string(sched::packing_name(q.packing));
    r.start = q.start;
    r.end = q.end;
    r.created_at = now;
    calendar_->advance(now);
    HR_RETURN_IF_ERROR(calendar_->book({r.id, r.gpu_type, q.gpus, r.start, r.end}));
    auto undo_calendar = [&] { CHECK(calendar_->release(r.id).is_ok()); };
    if (Status added = scheduler_.add_reservation(to_sched_reservation(r), now); !added) {
      undo_calendar();
      return added;
    }
    auto undo_scheduler = [&] {
      auto effects = scheduler_.cancel_reservation(r.id, now);
      if (effects) apply(*effects, now);
      undo_calendar();
    };
    const std::int64_t duration_ms = (r.end.unix_micros - r.start.unix_micros) / 1000;
    if (options_.wallet != nullptr) {
      Status held = options_.wallet->hold_run(tenant_id, r.id, block_run_key(r.id), quote.price_per_gpu_hour, q.gpus,
                                              duration_ms, (r.end.unix_micros - now.unix_micros) / 1000 + 3'600'000,
                                              now);
      if (!held) {
        undo_scheduler();
        return held;
      }
    }
    // The block's own price, so that a later list price change never touches it.
    ledger::PriceEntry price{ledger::Product::kGpuTime, r.gpu_type, ledger::block_price_variant(r.id), {}, quote.price_per_gpu_hour};
    Status priced = options_.catalog != nullptr ? options_.catalog->set_prices(std::span(&price, 1)) : Status::ok();
    Status stored = priced ? store_.create_reservation(r, audit) : priced;
    if (!stored) {
      if (options_.wallet != nullptr) options_.wallet->release_run(r.id, block_run_key(r.id));
      undo_scheduler();
      return stored;
    }
    quotes_.erase(quote_id);
    if (options_.catalog != nullptr) {
      // Charged from when its price holds (a block that began this hour: from now).
      const Timestamp from = std::max(r.start, price.effective_from);
      blocks_[r.id] = PricedBlock{tenant_id, r.gpu_type, q.gpus, from, r.end, from};
    }
    return r;
  });
}

// Whole hours that passed, and the last part at the end; a block charged
// to its end leaves, and what is left of its hold goes once that usage is
// recorded.
bool ComputeService::charge_block(const std::string& id, PricedBlock& b, Timestamp now) {
  while (b.charged_until < b.end) {
    const Timestamp to = std::min(hour_after(b.charged_until), b.end);
    if (now < to) return false;
    pending_usage_.push_back(block_event(id, std::to_string(b.charged_until.unix_millis()), b.tenant_id, b.gpu_type,
                                         std::int64_t{b.gpus} * ((to.unix_micros - b.charged_until.unix_micros) / 1000),
                                         b.charged_until, to));
    b.charged_until = to;
  }
  pending_releases_.push_back({id, block_run_key(id)});
  return true;
}

void ComputeService::charge_blocks(Timestamp now) {
  for (auto it = blocks_.begin(); it != blocks_.end();) {
    it = charge_block(it->first, it->second, now) ? blocks_.erase(it) : std::next(it);
  }
}

// A priced block cancelled at `now` (see Cancel above).
void ComputeService::cancel_block(const std::string& id, Timestamp now) {
  auto it = blocks_.find(id);
  if (it == blocks_.end()) return;
  PricedBlock& b = it->second;
  if (now < b.start) {
    if (now.unix_micros + kFreeCancellationUs > b.start.unix_micros) {  // late: a quarter of the price
      const std::int64_t gpu_ms = std::int64_t{b.gpus} * ((b.end.unix_micros - b.start.unix_micros) / 1000) / 4;
      pending_usage_.push_back(block_event(id, "cancellation", b.tenant_id, b.gpu_type, gpu_ms, now, now));
    }
    b.end = b.charged_until;  // nothing more to charge
  } else {
    b.end = std::min(b.end, std::max(hour_after(now), b.charged_until));  // the hours begun
  }
  CHECK(charge_block(id, b, b.end));
  blocks_.erase(it);
}

}  // namespace headroom::compute
