#include "market/calendar.h"

#include <algorithm>
#include <limits>
#include <mutex>

namespace headroom::market {
namespace {

// Timestamps whose hour arithmetic (rounding up, adding a horizon) stays far
// inside an int64: about +-292,000 years.
constexpr std::int64_t kWindowMicrosMax =
    std::numeric_limits<std::int64_t>::max() - kMicrosPerHour * (2 * limits::kCalendarHorizonHoursMax + 2);

constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

constexpr std::int64_t hour_of(Timestamp t) { return floor_div(t.unix_micros, kMicrosPerHour); }
constexpr Timestamp start_of_hour(std::int64_t hour) { return {hour * kMicrosPerHour}; }

bool in_range(Timestamp t) { return t.unix_micros >= -kWindowMicrosMax && t.unix_micros <= kWindowMicrosMax; }

// A name from outside, quoted and cut short for an error message.
std::string quoted(std::string_view name) {
  constexpr std::size_t kShownBytes = 64;
  std::string out = "\"";
  out += name.substr(0, kShownBytes);
  if (name.size() > kShownBytes) out += "...";
  out += "\"";
  return out;
}

// Snaps in hour numbers: [start_hour, end_hour). The fields are named in errors.
Result<std::pair<std::int64_t, std::int64_t>> snap_hours(Timestamp start, Timestamp end, std::string_view start_field,
                                                         std::string_view end_field) {
  if (!in_range(start)) return Status::invalid_argument(std::string(start_field) + ": out of range");
  if (!in_range(end)) return Status::invalid_argument(std::string(end_field) + ": out of range");
  if (end <= start) {
    return Status::invalid_argument(std::string(end_field) + ": " + to_rfc3339(end) + " must be after " +
                                    std::string(start_field) + " " + to_rfc3339(start));
  }
  return std::pair{hour_of(start), -floor_div(-end.unix_micros, kMicrosPerHour)};
}

}  // namespace

Result<std::pair<Timestamp, Timestamp>> snap_to_hours(Timestamp start, Timestamp end) {
  HR_ASSIGN_OR_RETURN(auto hours, snap_hours(start, end, "start", "end"));
  return std::pair{start_of_hour(hours.first), start_of_hour(hours.second)};
}

Result<std::unique_ptr<CapacityCalendar>> CapacityCalendar::create(std::vector<CalendarType> types,
                                                                   std::vector<ForecastEntry> forecast,
                                                                   Timestamp origin, std::int32_t horizon_hours) {
  if (horizon_hours < 1 || horizon_hours > limits::kCalendarHorizonHoursMax) {
    return Status::invalid_argument("horizon_hours: expected 1.." + std::to_string(limits::kCalendarHorizonHoursMax));
  }
  if (!in_range(origin)) return Status::invalid_argument("origin: out of range");
  if (types.empty() || types.size() > limits::kCalendarGpuTypes) {
    return Status::invalid_argument("types: expected 1.." + std::to_string(limits::kCalendarGpuTypes) + " GPU types");
  }
  if (forecast.size() > limits::kCalendarForecastEntries) {
    return Status::invalid_argument("forecast: at most " + std::to_string(limits::kCalendarForecastEntries) +
                                    " entries");
  }

  std::vector<TypeState> states;
  states.reserve(types.size());
  for (std::size_t i = 0; i < types.size(); ++i) {
    const CalendarType& t = types[i];
    const std::string field = "types[" + std::to_string(i) + "].";
    if (t.gpu_type.empty() || t.gpu_type.size() > limits::kGpuTypeNameBytes) {
      return Status::invalid_argument(field + "gpu_type: expected 1.." + std::to_string(limits::kGpuTypeNameBytes) +
                                      " bytes");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (types[j].gpu_type == t.gpu_type) {
        return Status::invalid_argument(field + "gpu_type: " + quoted(t.gpu_type) + " is listed twice");
      }
    }
    if (t.total > limits::kCalendarGpusPerType) {
      return Status::invalid_argument(field + "total: at most " + std::to_string(limits::kCalendarGpusPerType));
    }
    if (t.internal_buffer > t.total) {
      return Status::invalid_argument(field + "internal_buffer: " + std::to_string(t.internal_buffer) +
                                      " is above total " + std::to_string(t.total));
    }
    TypeState state;
    state.config = t;
    states.push_back(std::move(state));
  }

  for (std::size_t i = 0; i < forecast.size(); ++i) {
    const ForecastEntry& e = forecast[i];
    const std::string field = "forecast[" + std::to_string(i) + "].";
    auto it =
        std::find_if(states.begin(), states.end(), [&](const TypeState& s) { return s.config.gpu_type == e.gpu_type; });
    if (it == states.end()) {
      return Status::invalid_argument(field + "gpu_type: no such type in types: " + quoted(e.gpu_type));
    }
    HR_ASSIGN_OR_RETURN(auto hours, snap_hours(e.from, e.to, field + "from", field + "to"));
    if (e.gpus == 0) continue;
    it->forecast_hours.push_back(hours);
    it->forecast_gpus.push_back(e.gpus);
  }

  // The peak of each type's internal demand, by a sweep over its entries'
  // edges (ends before starts at the same hour, since windows are [from, to)).
  for (const TypeState& s : states) {
    std::vector<std::pair<std::int64_t, std::int64_t>> edges;  // (hour, +gpus or -gpus)
    edges.reserve(2 * s.forecast_hours.size());
    for (std::size_t i = 0; i < s.forecast_hours.size(); ++i) {
      edges.emplace_back(s.forecast_hours[i].first, static_cast<std::int64_t>(s.forecast_gpus[i]));
      edges.emplace_back(s.forecast_hours[i].second, -static_cast<std::int64_t>(s.forecast_gpus[i]));
    }
    std::sort(edges.begin(), edges.end());
    const std::int64_t sellable = std::int64_t{s.config.total} - s.config.internal_buffer;
    std::int64_t demand = 0;
    for (const auto& [hour, delta] : edges) {
      demand += delta;
      if (demand > sellable) {
        return Status::invalid_argument("forecast: internal demand for " + quoted(s.config.gpu_type) + " reaches " +
                                        std::to_string(demand) + " GPUs at " + to_rfc3339(start_of_hour(hour)) +
                                        ", above total - internal_buffer = " + std::to_string(sellable));
      }
    }
  }

  const std::int64_t origin_hour = hour_of(origin);
  std::unique_ptr<CapacityCalendar> calendar(new CapacityCalendar(std::move(states), origin_hour, horizon_hours));
  for (TypeState& s : calendar->types_) {
    s.ceiling_gpus.assign(static_cast<std::size_t>(horizon_hours), 0);
    s.free_gpus.assign(static_cast<std::size_t>(horizon_hours), 0);
    calendar->fill_new_hours(s, origin_hour, horizon_hours);
  }
  return calendar;
}

CapacityCalendar::CapacityCalendar(std::vector<TypeState> types, std::int64_t origin_hour, std::int32_t horizon_hours)
    : horizon_hours_(horizon_hours), origin_hour_(origin_hour), types_(std::move(types)) {}

std::size_t CapacityCalendar::slot(std::int64_t hour) const {
  std::int64_t s = hour % horizon_hours_;
  return static_cast<std::size_t>(s < 0 ? s + horizon_hours_ : s);
}

std::ptrdiff_t CapacityCalendar::find_type(std::string_view gpu_type) const {
  for (std::size_t i = 0; i < types_.size(); ++i) {  // at most limits::kCalendarGpuTypes
    if (types_[i].config.gpu_type == gpu_type) return static_cast<std::ptrdiff_t>(i);
  }
  return -1;
}

Status CapacityCalendar::check_window(std::int64_t start_hour, std::int64_t end_hour, std::string_view start_field,
                                      std::string_view end_field) const {
  if (start_hour < origin_hour_) {
    return Status::invalid_argument(std::string(start_field) + ": " + to_rfc3339(start_of_hour(start_hour)) +
                                    " is before the current hour " + to_rfc3339(start_of_hour(origin_hour_)));
  }
  if (end_hour > origin_hour_ + horizon_hours_) {
    return Status::invalid_argument(std::string(end_field) + ": " + to_rfc3339(start_of_hour(end_hour)) +
                                    " is past the calendar's horizon " +
                                    to_rfc3339(start_of_hour(origin_hour_ + horizon_hours_)));
  }
  return Status::ok();
}

void CapacityCalendar::fill_new_hours(TypeState& type, std::int64_t first_hour, std::int64_t count) {
  ASSERT(count >= 0 && count <= horizon_hours_);
  // Internal demand per hour of the new range, as a difference array.
  std::vector<std::int64_t> demand(static_cast<std::size_t>(count) + 1, 0);
  for (std::size_t i = 0; i < type.forecast_hours.size(); ++i) {  // at most limits::kCalendarForecastEntries
    const std::int64_t lo = std::max(type.forecast_hours[i].first, first_hour);
    const std::int64_t hi = std::min(type.forecast_hours[i].second, first_hour + count);
    if (lo >= hi) continue;
    demand[static_cast<std::size_t>(lo - first_hour)] += type.forecast_gpus[i];
    demand[static_cast<std::size_t>(hi - first_hour)] -= type.forecast_gpus[i];
  }
  const std::int64_t sellable = std::int64_t{type.config.total} - type.config.internal_buffer;
  std::int64_t running = 0;
  for (std::int64_t k = 0; k < count; ++k) {  // at most horizon_hours_
    running += demand[static_cast<std::size_t>(k)];
    const std::int64_t ceiling = sellable - running;
    CHECK(ceiling >= 0 && ceiling <= sellable) << "internal demand of " << type.config.gpu_type << " at hour "
                                               << first_hour + k << " is " << running << ", past " << sellable;
    const std::size_t s = slot(first_hour + k);
    type.ceiling_gpus[s] = ceiling;
    type.free_gpus[s] = ceiling;  // nothing is booked past the old horizon
  }
}

std::pair<std::int64_t, std::int64_t> CapacityCalendar::min_free(const TypeState& type, std::int64_t start_hour,
                                                                 std::int64_t end_hour) const {
  ASSERT(start_hour < end_hour && end_hour - start_hour <= horizon_hours_);
  std::int64_t best = std::numeric_limits<std::int64_t>::max();
  std::int64_t best_hour = start_hour;
  std::int64_t hour = start_hour;
  // The window is at most two runs of the ring: up to its end, then from its start.
  for (int run_index = 0; run_index < 2 && hour < end_hour; ++run_index) {
    const std::size_t s = slot(hour);
    const std::size_t run = static_cast<std::size_t>(std::min<std::int64_t>(
        end_hour - hour, static_cast<std::int64_t>(horizon_hours_) - static_cast<std::int64_t>(s)));
    const std::int64_t* p = type.free_gpus.data() + s;
    std::int64_t m = p[0];
    for (std::size_t i = 1; i < run; ++i) m = std::min(m, p[i]);  // vectorizes: no branch on the position
    if (m < best) {
      best = m;
      best_hour = hour + (std::find(p, p + run, m) - p);
    }
    hour += static_cast<std::int64_t>(run);
  }
  CHECK(hour == end_hour) << "a window of " << end_hour - start_hour << " hours was not covered in two runs";
  return {best, best_hour};
}

void CapacityCalendar::add_free(TypeState& type, std::int64_t start_hour, std::int64_t end_hour, std::int64_t delta) {
  ASSERT(end_hour - start_hour <= horizon_hours_);
  for (std::int64_t h = start_hour; h < end_hour; ++h) {  // at most horizon_hours_
    const std::size_t s = slot(h);
    const std::int64_t next = type.free_gpus[s] + delta;
    CHECK(next >= 0 && next <= type.ceiling_gpus[s])
        << "capacity of " << type.config.gpu_type << " at hour " << h << " would be " << next << " free of "
        << type.ceiling_gpus[s] << ": a GPU sold twice or given back twice";
    type.free_gpus[s] = next;
  }
}

Result<Availability> CapacityCalendar::quote(std::string_view gpu_type, std::uint32_t gpus, Timestamp start,
                                             Timestamp end) const {
  HR_ASSIGN_OR_RETURN(auto hours, snap_hours(start, end, "start", "end"));
  std::shared_lock lock(mutex_);
  const std::ptrdiff_t index = find_type(gpu_type);
  if (index < 0) return Status::invalid_argument("gpu_type: the calendar has no " + quoted(gpu_type));
  const TypeState& type = types_[static_cast<std::size_t>(index)];
  const std::uint32_t sellable = type.config.total - type.config.internal_buffer;
  if (gpus == 0 || gpus > sellable) {
    return Status::invalid_argument("gpus: expected 1.." + std::to_string(sellable) + " for " +
                                    quoted(type.config.gpu_type) + " (total - internal_buffer)");
  }
  HR_RETURN_IF_ERROR(check_window(hours.first, hours.second, "start", "end"));
  const auto [least, least_hour] = min_free(type, hours.first, hours.second);
  Availability a;
  a.start = start_of_hour(hours.first);
  a.end = start_of_hour(hours.second);
  a.available = static_cast<std::uint32_t>(least);
  a.tightest_hour = start_of_hour(least_hour);
  a.fits = least >= std::int64_t{gpus};
  return a;
}

Status CapacityCalendar::book(const Block& block) {
  if (block.id.empty() || block.id.size() > limits::kCalendarBlockIdBytes) {
    return Status::invalid_argument("block.id: expected 1.." + std::to_string(limits::kCalendarBlockIdBytes) +
                                    " bytes");
  }
  HR_ASSIGN_OR_RETURN(auto hours, snap_hours(block.start, block.end, "block.start", "block.end"));
  if (start_of_hour(hours.first) != block.start) {
    return Status::invalid_argument("block.start: " + to_rfc3339(block.start) + " is not a whole hour");
  }
  if (start_of_hour(hours.second) != block.end) {
    return Status::invalid_argument("block.end: " + to_rfc3339(block.end) + " is not a whole hour");
  }

  std::unique_lock lock(mutex_);
  const std::ptrdiff_t index = find_type(block.gpu_type);
  if (index < 0) return Status::invalid_argument("block.gpu_type: the calendar has no " + quoted(block.gpu_type));
  TypeState& type = types_[static_cast<std::size_t>(index)];
  const std::uint32_t sellable = type.config.total - type.config.internal_buffer;
  if (block.gpus == 0 || block.gpus > sellable) {
    return Status::invalid_argument("block.gpus: expected 1.." + std::to_string(sellable) + " for " +
                                    quoted(type.config.gpu_type) + " (total - internal_buffer)");
  }
  HR_RETURN_IF_ERROR(check_window(hours.first, hours.second, "block.start", "block.end"));
  if (blocks_.contains(block.id)) return Status::already_exists("block.id: " + quoted(block.id) + " is booked");
  if (blocks_.size() >= limits::kCalendarBlocks) {
    return Status::conflict("the calendar holds " + std::to_string(limits::kCalendarBlocks) + " blocks, its limit");
  }
  const auto [least, least_hour] = min_free(type, hours.first, hours.second);
  if (least < std::int64_t{block.gpus}) {
    return Status::conflict(std::to_string(least) + " GPUs of " + quoted(type.config.gpu_type) + " are free for " +
                            to_rfc3339(block.start) + " to " + to_rfc3339(block.end) + " (fewest at " +
                            to_rfc3339(start_of_hour(least_hour)) + "), " + std::to_string(block.gpus) + " asked");
  }
  add_free(type, hours.first, hours.second, -std::int64_t{block.gpus});
  blocks_.emplace(block.id, LiveBlock{block, static_cast<std::size_t>(index), hours.first, hours.second});
  return Status::ok();
}

Status CapacityCalendar::release(std::string_view id) {
  std::unique_lock lock(mutex_);
  auto it = blocks_.find(id);
  if (it == blocks_.end()) return Status::not_found("id: no live block " + quoted(id));
  const LiveBlock& live = it->second;
  // Hours before the current one have dropped off the ring.
  const std::int64_t from_hour = std::max(live.start_hour, origin_hour_);
  if (from_hour < live.end_hour) {
    add_free(types_[live.type_index], from_hour, live.end_hour, std::int64_t{live.block.gpus});
  }
  blocks_.erase(it);
  return Status::ok();
}

void CapacityCalendar::advance(Timestamp now) {
  CHECK(in_range(now)) << "advance to " << now.unix_micros << " us: the clock is out of range";
  const std::int64_t now_hour = hour_of(now);
  std::unique_lock lock(mutex_);
  if (now_hour <= origin_hour_) return;
  const std::int64_t old_end_hour = origin_hour_ + horizon_hours_;
  const std::int64_t new_end_hour = now_hour + horizon_hours_;
  // The slots of the hours that passed become the new hours at the end. When
  // the jump is longer than the horizon, every slot is new.
  const std::int64_t first_new_hour = std::max(old_end_hour, now_hour);
  for (TypeState& type : types_) {  // at most limits::kCalendarGpuTypes
    fill_new_hours(type, first_new_hour, new_end_hour - first_new_hour);
  }
  origin_hour_ = now_hour;
  for (auto it = blocks_.begin(); it != blocks_.end();) {  // at most limits::kCalendarBlocks
    it = it->second.end_hour <= origin_hour_ ? blocks_.erase(it) : std::next(it);
  }
}

Status CapacityCalendar::free_by_hour(std::string_view gpu_type, Timestamp from, Timestamp to,
                                      std::vector<std::uint32_t>& out) const {
  HR_ASSIGN_OR_RETURN(auto hours, snap_hours(from, to, "from", "to"));
  std::shared_lock lock(mutex_);
  const std::ptrdiff_t index = find_type(gpu_type);
  if (index < 0) return Status::invalid_argument("gpu_type: the calendar has no " + quoted(gpu_type));
  HR_RETURN_IF_ERROR(check_window(hours.first, hours.second, "from", "to"));
  const TypeState& type = types_[static_cast<std::size_t>(index)];
  out.reserve(out.size() + static_cast<std::size_t>(hours.second - hours.first));
  for (std::int64_t h = hours.first; h < hours.second; ++h) {  // at most horizon_hours_
    out.push_back(static_cast<std::uint32_t>(type.free_gpus[slot(h)]));
  }
  return Status::ok();
}

std::vector<Block> CapacityCalendar::blocks() const {
  std::vector<Block> out;
  {
    std::shared_lock lock(mutex_);
    out.reserve(blocks_.size());
    for (const auto& [id, live] : blocks_) out.push_back(live.block);  // at most limits::kCalendarBlocks
  }
  std::stable_sort(out.begin(), out.end(), [](const Block& a, const Block& b) { return a.start < b.start; });
  return out;
}

Timestamp CapacityCalendar::current_hour() const {
  std::shared_lock lock(mutex_);
  return start_of_hour(origin_hour_);
}

Timestamp CapacityCalendar::horizon_end() const {
  std::shared_lock lock(mutex_);
  return start_of_hour(origin_hour_ + horizon_hours_);
}

}  // namespace headroom::market
