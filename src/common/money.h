// Money: an exact integer amount of US dollars, in nano-dollars (1e-9 USD).
//
// Why nano-dollars: per-token prices such as $0.05 per million tokens are
// 50 nano-dollars per token, exact; and an int64 still holds +-9.2 billion
// dollars, far beyond any single account. Money is never a double.
// In JSON and on the CLI money is a decimal string of dollars ("1.50").
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace headroom {

class Money {
 public:
  static constexpr std::int64_t kNanosPerDollar = 1'000'000'000;
  static constexpr int kMaxDecimals = 9;

  constexpr Money() = default;
  static constexpr Money from_nanos(std::int64_t nanos) { return Money(nanos); }
  static constexpr Money from_dollars(std::int64_t dollars) { return Money(dollars * kNanosPerDollar); }

  // Parses a decimal dollar string: "12", "1.50", "-0.000000050".
  // At most 9 decimals, no exponent, no thousands separators, no overflow.
  static Result<Money> parse(std::string_view text);

  constexpr std::int64_t nanos() const { return nanos_; }

  // Dollars with at least two decimals and no trailing zeros past them:
  // "1.50", "0.00000005", "-3.00".
  std::string to_string() const;

  constexpr auto operator<=>(const Money&) const = default;
  constexpr Money operator+(Money other) const { return Money(nanos_ + other.nanos_); }
  constexpr Money operator-(Money other) const { return Money(nanos_ - other.nanos_); }
  constexpr Money operator-() const { return Money(-nanos_); }
  Money& operator+=(Money other) { nanos_ += other.nanos_; return *this; }
  Money& operator-=(Money other) { nanos_ -= other.nanos_; return *this; }

 private:
  constexpr explicit Money(std::int64_t nanos) : nanos_(nanos) {}
  std::int64_t nanos_ = 0;
};

}  // namespace headroom
