#include "common/time.h"

#include <chrono>
#include <cstdio>

namespace headroom {
namespace {

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month, day;
};

constexpr Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

}  // namespace

std::string to_rfc3339(Timestamp t) {
  std::int64_t micros = t.unix_micros;
  std::int64_t seconds = micros >= 0 ? micros / 1'000'000 : (micros - 999'999) / 1'000'000;
  std::int64_t sub = micros - seconds * 1'000'000;
  std::int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  std::int64_t in_day = seconds - days * 86400;
  Civil c = civil_from_days(days);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld", static_cast<long long>(c.year), c.month,
                        c.day, static_cast<long long>(in_day / 3600), static_cast<long long>(in_day % 3600 / 60),
                        static_cast<long long>(in_day % 60));
  if (sub != 0) n += std::snprintf(buf + n, sizeof buf - n, ".%06lld", static_cast<long long>(sub));
  std::string out(buf, static_cast<std::size_t>(n));
  out += 'Z';
  return out;
}

Result<Timestamp> parse_rfc3339(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::invalid_argument("invalid time \"" + std::string(text.substr(0, 40)) + "\": " + std::string(why) +
                                    " (expected RFC 3339, such as \"2026-11-26T06:21:42Z\")");
  };
  std::size_t pos = 0;
  auto digits = [&](std::size_t count, std::int64_t& out) {
    if (pos + count > text.size()) return false;
    out = 0;
    for (std::size_t i = 0; i < count; ++i) {
      char c = text[pos + i];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    pos += count;
    return true;
  };
  auto expect = [&](char a, char b = '\0') {
    if (pos >= text.size() || (text[pos] != a && (b == '\0' || text[pos] != b))) return false;
    ++pos;
    return true;
  };
  std::int64_t year, month, day, hour, minute, second;
  if (!digits(4, year) || !expect('-') || !digits(2, month) || !expect('-') || !digits(2, day)) return bad("bad date");
  if (!expect('T', 't')) return bad("missing 'T' between date and time");
  if (!digits(2, hour) || !expect(':') || !digits(2, minute) || !expect(':') || !digits(2, second)) return bad("bad time");
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, static_cast<unsigned>(month))) {
    return bad("no such date");
  }
  if (hour > 23 || minute > 59 || second > 60) return bad("no such time of day");
  if (second == 60) second = 59;  // leap second: clamp, as most systems do
  std::int64_t micros = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    std::int64_t scale = 100'000;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      micros += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return bad("bad fraction of a second");
  }
  std::int64_t offset_seconds = 0;
  if (expect('Z', 'z')) {
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    std::int64_t oh, om;
    if (!digits(2, oh) || !expect(':') || !digits(2, om) || oh > 23 || om > 59) return bad("bad offset");
    offset_seconds = sign * (oh * 3600 + om * 60);
  } else {
    return bad("missing time zone ('Z' or an offset such as +01:00)");
  }
  if (pos != text.size()) return bad("trailing characters");
  std::int64_t seconds = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
                         hour * 3600 + minute * 60 + second - offset_seconds;
  return Timestamp{seconds * 1'000'000 + micros};
}

Timestamp SystemClock::now() const {
  auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return {std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count()};
}

}  // namespace headroom
