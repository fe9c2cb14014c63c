#include "common/money.h"

#include <limits>

namespace headroom {

Result<Money> Money::parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::invalid_argument("invalid amount \"" + std::string(text.substr(0, 40)) + "\": " + std::string(why) +
                                    " (expected a decimal string of dollars such as \"1.50\")");
  };
  std::string_view rest = text;
  bool negative = false;
  if (!rest.empty() && (rest.front() == '-' || rest.front() == '+')) {
    negative = rest.front() == '-';
    rest.remove_prefix(1);
  }
  if (rest.empty()) return bad("empty");
  std::size_t dot = rest.find('.');
  std::string_view whole = rest.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  if (whole.empty() && fraction.empty()) return bad("no digits");
  if (dot != std::string_view::npos && fraction.empty()) return bad("no digits after the decimal point");
  if (fraction.size() > kMaxDecimals) return bad("more than 9 decimals");

  // Ten whole digits and nine decimals fit an unsigned 64-bit magnitude;
  // the exact bound is checked after.
  while (whole.size() > 1 && whole.front() == '0') whole.remove_prefix(1);
  if (whole.size() > 10) return bad("too large");
  std::uint64_t magnitude = 0;
  for (char c : whole) {
    if (c < '0' || c > '9') return bad("not a number");
    magnitude = magnitude * 10 + static_cast<std::uint64_t>(c - '0');
  }
  magnitude *= kNanosPerDollar;
  std::uint64_t scale = kNanosPerDollar;
  for (char c : fraction) {
    if (c < '0' || c > '9') return bad("not a number");
    scale /= 10;
    magnitude += static_cast<std::uint64_t>(c - '0') * scale;
  }
  constexpr std::uint64_t kMaxPositive = std::numeric_limits<std::int64_t>::max();
  if (magnitude > kMaxPositive + (negative ? 1 : 0)) return bad("too large");
  if (negative) return Money(static_cast<std::int64_t>(0 - magnitude));  // two's complement, also for the minimum
  return Money(static_cast<std::int64_t>(magnitude));
}

std::string Money::to_string() const {
  // Work in unsigned so that the most negative value formats too.
  bool negative = nanos_ < 0;
  std::uint64_t magnitude = negative ? 0 - static_cast<std::uint64_t>(nanos_) : static_cast<std::uint64_t>(nanos_);
  std::uint64_t dollars = magnitude / kNanosPerDollar;
  std::uint64_t fraction = magnitude % kNanosPerDollar;
  std::string digits = std::to_string(fraction);
  digits.insert(0, kMaxDecimals - digits.size(), '0');
  while (digits.size() > 2 && digits.back() == '0') digits.pop_back();
  std::string out = negative ? "-" : "";
  out += std::to_string(dollars);
  out += '.';
  out += digits;
  return out;
}

}  // namespace headroom
