// Time: timestamps, the injected Clock, and RFC 3339 text.
//
// The core never reads the wall clock: it is handed a Clock, so production
// uses SystemClock while tests and the simulator use ManualClock and replay
// exactly.
#pragma once

#include <atomic>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace headroom {

struct Timestamp {
  std::int64_t unix_micros = 0;

  static constexpr Timestamp from_unix_seconds(std::int64_t s) { return {s * 1'000'000}; }
  static constexpr Timestamp from_unix_millis(std::int64_t ms) { return {ms * 1'000}; }
  constexpr std::int64_t unix_seconds() const { return unix_micros / 1'000'000; }
  constexpr std::int64_t unix_millis() const { return unix_micros / 1'000; }
  constexpr auto operator<=>(const Timestamp&) const = default;
  constexpr Timestamp plus_micros(std::int64_t us) const { return {unix_micros + us}; }
  constexpr Timestamp plus_seconds(std::int64_t s) const { return {unix_micros + s * 1'000'000}; }
};

// "2026-11-26T06:21:42.123456Z" (UTC; microseconds only when nonzero).
std::string to_rfc3339(Timestamp t);

// Accepts RFC 3339 date-times: "2026-11-26T06:21:42Z",
// "2026-11-26T06:21:42.5+01:00", with 't'/'z' in either case.
Result<Timestamp> parse_rfc3339(std::string_view text);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp now() const = 0;
};

// The real wall clock. Thread-safe.
class SystemClock final : public Clock {
 public:
  Timestamp now() const override;
};

// A clock that moves only when told. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Timestamp start = Timestamp::from_unix_seconds(1'767'225'600)) : now_(start.unix_micros) {}
  Timestamp now() const override { return {now_.load()}; }
  void set(Timestamp t) { now_.store(t.unix_micros); }
  void advance_micros(std::int64_t us) { now_.fetch_add(us); }
  void advance_seconds(std::int64_t s) { now_.fetch_add(s * 1'000'000); }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace headroom
