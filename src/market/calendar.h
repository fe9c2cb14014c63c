// CapacityCalendar: the hourly book of capacity blocks, per GPU type.
//
// A capacity block is N GPUs of one type for a window of whole hours, quoted
// first (quote) and then booked (book). The calendar covers a rolling horizon
// of horizon_hours (90 days by default) starting at the current hour, the
// hour that contains the time last given to create() or advance(). For each
// type and hour h of the horizon:
//
//   free(h) = total - internal_buffer - internal_forecast(h) - booked(h)
//
//   internal_forecast(h)  the owner's declared internal demand: the sum of
//                         the ForecastEntry gpus of the type whose window
//                         meets hour h. It is never sold.
//   booked(h)             the sum of the gpus of the live blocks over h.
//
// Rules.
//   - Hours. Windows are snapped to whole hours, start down and end up
//     (snap_to_hours), so a tenant gets at least what it asked for, and
//     forecast entries the same way, so internal demand that meets an hour
//     holds back that whole hour. A Block is booked exactly as given: its
//     start and end must already be whole hours (quote returns them).
//   - Window. A quoted or booked window may start no earlier than the current
//     hour and end no later than the horizon's end (current hour +
//     horizon_hours); past it nothing is known yet.
//   - Quote. available is the least free(h) over the window's hours: the most
//     GPUs bookable for the whole window. tightest_hour is the first hour
//     where that least is reached; fits is available >= gpus. A quote holds
//     nothing: book() checks again.
//   - Book. Atomic check-and-book: the block is booked only when free(h) >=
//     gpus for every hour of its window, else conflict, saying how many GPUs
//     are free for the window. Ids are unique among live blocks.
//   - Release gives back the block's hours that have not passed yet.
//   - Advance moves the current hour forward to the hour containing `now`.
//     Hours that passed drop off (blocks wholly in the past are forgotten, a
//     block under way keeps its remaining hours), the new hours at the end
//     start at total - internal_buffer - internal_forecast (nothing can be
//     booked there yet). Moving backwards or to the same hour does nothing.
//   - Capacity is sacred: free(h) is never negative and never above
//     total - internal_buffer - internal_forecast(h). Both are CHECKed on every
//     change, so a GPU-hour is never sold twice. create() refuses a forecast
//     whose peak exceeds total - internal_buffer.
//
// Errors are values: invalid_argument names the field at fault ("gpus",
// "block.start", "forecast[3].to"); conflict when a block does not fit or
// the calendar holds limits::kCalendarBlocks blocks; already_exists for a
// live id; not_found for an unknown id.
//
// Thread-safe: every method may be called from any thread without external
// synchronization. Quotes and reads share a lock; book, release and advance
// hold it exclusively, so of two threads booking the same last GPUs at once
// exactly one wins. The calendar never reads the clock: time comes in.
//
// Cost. A quote is one scan of the window's hours in a contiguous array of
// int64 (at most two runs, where the window wraps around the ring): 2,160
// hours is a few microseconds, with no allocation. book and release touch
// the window's hours once more, plus O(log blocks) for the id.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "market/market_limits.h"

namespace headroom::market {

inline constexpr std::int64_t kMicrosPerHour = 3'600'000'000;

// One GPU type of the calendar.
struct CalendarType {
  std::string gpu_type;
  std::uint32_t total = 0;            // GPUs of the type in the fleet
  std::uint32_t internal_buffer = 0;  // kept back at every hour, never sold
};

// Internal demand: `gpus` GPUs of a type needed over [from, to). Entries that
// overlap add up. Never sold.
struct ForecastEntry {
  std::string gpu_type;
  Timestamp from;
  Timestamp to;
  std::uint32_t gpus = 0;
};

// A booked capacity block: `gpus` GPUs of a type over the whole hours
// [start, end).
struct Block {
  std::string id;
  std::string gpu_type;
  std::uint32_t gpus = 0;
  Timestamp start;
  Timestamp end;
};

// Snaps [start, end) to whole hours: start down, end up, so the snapped
// window holds the asked one. invalid_argument (naming start or end) when
// end <= start or either lies beyond about 290,000 years from 1970, where
// hour arithmetic could overflow.
Result<std::pair<Timestamp, Timestamp>> snap_to_hours(Timestamp start, Timestamp end);

// The answer to a quote.
struct Availability {
  Timestamp start;  // the window, snapped
  Timestamp end;
  std::uint32_t available = 0;  // least free GPUs over the window: the most bookable for it
  Timestamp tightest_hour;      // the first hour where that least is reached
  bool fits = false;            // available >= the GPUs asked
};

class CapacityCalendar {
 public:
  // A calendar starting at the hour that contains `origin`, horizon_hours
  // long (1..limits::kCalendarHorizonHoursMax). invalid_argument, naming the
  // field, for: no types or more than limits::kCalendarGpuTypes, an empty,
  // too long or repeated gpu_type, total above limits::kCalendarGpusPerType,
  // internal_buffer above total, more than limits::kCalendarForecastEntries
  // forecast entries, an entry of an unknown type or with to <= from, or
  // internal demand that at some hour exceeds total - internal_buffer.
  static Result<std::unique_ptr<CapacityCalendar>> create(
      std::vector<CalendarType> types, std::vector<ForecastEntry> forecast, Timestamp origin,
      std::int32_t horizon_hours = limits::kCalendarHorizonHoursDefault);

  // How many GPUs of a type are free over the whole window [start, end),
  // snapped. invalid_argument (naming gpu_type, gpus, start or end) for an
  // unknown type, 0 GPUs or more than the type's total - internal_buffer, a
  // window that is empty, starts before the current hour or ends past the
  // horizon.
  Result<Availability> quote(std::string_view gpu_type, std::uint32_t gpus, Timestamp start, Timestamp end) const;

  // Books the block if it fits every hour of its window (see Rules). Besides
  // quote's errors (naming block.gpu_type, block.gpus, block.start,
  // block.end): invalid_argument for an empty or too long id or a start or
  // end that is not a whole hour; already_exists for a live id; conflict
  // when it does not fit ("N GPUs of <type> are free for the window") or the
  // calendar is full of blocks.
  Status book(const Block& block);

  // Forgets a live block and gives back its hours from the current hour on.
  // not_found for an id that is not live.
  Status release(std::string_view id);

  // Moves the current hour forward to the hour that contains `now`. Idempotent.
  void advance(Timestamp now);

  // Appends free(h) of a type for each hour of [from, to), snapped, to `out`
  // (at most horizon_hours values). The same window errors as quote.
  Status free_by_hour(std::string_view gpu_type, Timestamp from, Timestamp to, std::vector<std::uint32_t>& out) const;

  // The live blocks, by start then id.
  std::vector<Block> blocks() const;

  // The current hour and the horizon's end: windows must lie within them.
  Timestamp current_hour() const;
  Timestamp horizon_end() const;
  std::int32_t horizon_hours() const { return horizon_hours_; }

 private:
  // Hour numbers: unix_micros / kMicrosPerHour, rounded down.
  struct TypeState {
    CalendarType config;
    std::vector<std::pair<std::int64_t, std::int64_t>> forecast_hours;  // [from, to) hour numbers
    std::vector<std::uint32_t> forecast_gpus;                           // beside forecast_hours
    // Rings of horizon_hours_ slots; hour number h lives at slot h mod horizon_hours_.
    std::vector<std::int64_t> ceiling_gpus;  // total - internal_buffer - internal_forecast(h)
    std::vector<std::int64_t> free_gpus;     // ceiling_gpus - booked(h)
  };
  struct LiveBlock {
    Block block;
    std::size_t type_index = 0;
    std::int64_t start_hour = 0;
    std::int64_t end_hour = 0;
  };

  CapacityCalendar(std::vector<TypeState> types, std::int64_t origin_hour, std::int32_t horizon_hours);

  // The index of a type, or -1.
  std::ptrdiff_t find_type(std::string_view gpu_type) const;
  // Checks a snapped window [start_hour, end_hour) against the current hour
  // and the horizon, naming the fields in errors.
  Status check_window(std::int64_t start_hour, std::int64_t end_hour, std::string_view start_field,
                      std::string_view end_field) const;
  // The least free GPUs over [start_hour, end_hour) and the first hour with it.
  std::pair<std::int64_t, std::int64_t> min_free(const TypeState& type, std::int64_t start_hour,
                                                 std::int64_t end_hour) const;
  // Adds `delta` to free over [start_hour, end_hour), CHECKing 0 <= free <= ceiling.
  void add_free(TypeState& type, std::int64_t start_hour, std::int64_t end_hour, std::int64_t delta);
  // Sets the ceiling and free of the hours [first_hour, first_hour + count),
  // where nothing is booked.
  void fill_new_hours(TypeState& type, std::int64_t first_hour, std::int64_t count);
  std::size_t slot(std::int64_t hour) const;

  const std::int32_t horizon_hours_;
  mutable std::shared_mutex mutex_;
  std::int64_t origin_hour_;                              // the current hour; guarded by mutex_
  std::vector<TypeState> types_;                          // fixed after create; the rings are guarded by mutex_
  std::map<std::string, LiveBlock, std::less<>> blocks_;  // guarded by mutex_; at most limits::kCalendarBlocks
};

}  // namespace headroom::market
