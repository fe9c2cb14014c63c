#include "common/money.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "common/random.h"

namespace headroom {
namespace {

constexpr std::int64_t kMaxNanos = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMinNanos = std::numeric_limits<std::int64_t>::min();

std::int64_t nanos_of(std::string_view text) {
  auto parsed = Money::parse(text);
  EXPECT_TRUE(parsed.is_ok()) << text << ": " << parsed.status().to_string();
  return parsed ? parsed->nanos() : -424242;
}

TEST(MoneyParse, DecimalDollars) {
  EXPECT_EQ(nanos_of("1.50"), 1'500'000'000);
  EXPECT_EQ(nanos_of("1.5"), 1'500'000'000);
  EXPECT_EQ(nanos_of("12"), 12'000'000'000);
  EXPECT_EQ(nanos_of("0"), 0);
  EXPECT_EQ(nanos_of("0.0"), 0);
  EXPECT_EQ(nanos_of("00012.000"), 12'000'000'000);
  EXPECT_EQ(nanos_of("1234567.89"), 1'234'567'890'000'000);
}

TEST(MoneyParse, SmallAmountsAreExact) {
  // $0.05 per million tokens is 50 nano-dollars per token: exact, never a float.
  EXPECT_EQ(nanos_of("0.00000005"), 50);
  EXPECT_EQ(nanos_of("0.000000050"), 50);
  EXPECT_EQ(nanos_of("0.000000001"), 1);
  EXPECT_EQ(nanos_of("0.1"), 100'000'000);
  EXPECT_EQ(nanos_of("0.01"), 10'000'000);
  EXPECT_EQ(nanos_of("0.3"), 300'000'000);  // 0.1 + 0.2 != 0.3 in doubles; here it is plain
  EXPECT_EQ(Money::parse("0.1")->nanos() + Money::parse("0.2")->nanos(), Money::parse("0.3")->nanos());
}

TEST(MoneyParse, Signs) {
  EXPECT_EQ(nanos_of("-1.50"), -1'500'000'000);
  EXPECT_EQ(nanos_of("-0.000000050"), -50);
  EXPECT_EQ(nanos_of("+1"), 1'000'000'000);
  EXPECT_EQ(nanos_of("+0.25"), 250'000'000);
  EXPECT_EQ(nanos_of("-0"), 0);
  EXPECT_EQ(nanos_of("-0.00"), 0);
}

TEST(MoneyParse, NineDecimalsAcceptedTenRejected) {
  EXPECT_EQ(nanos_of("0.123456789"), 123'456'789);
  EXPECT_EQ(nanos_of("-7.999999999"), -7'999'999'999);
  EXPECT_EQ(nanos_of("1.000000000"), 1'000'000'000);

  for (std::string_view text : {"0.1234567891", "1.0000000000", "-0.0000000001", "0.0000000000"}) {
    auto parsed = Money::parse(text);
    ASSERT_FALSE(parsed.is_ok()) << text;
    EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("more than 9 decimals"), std::string::npos)
        << parsed.status().message();
  }
}

TEST(MoneyParse, OverflowRejected) {
  for (std::string_view text : {"9223372037", "-9223372037", "10000000000", "99999999999999999999",
                                "92233720368547758070", "18446744073709551616", "9223372036854775807"}) {
    auto parsed = Money::parse(text);
    ASSERT_FALSE(parsed.is_ok()) << text << " parsed as " << parsed->nanos();
    EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("too large"), std::string::npos) << parsed.status().message();
  }
  // A billion dollars is well inside the range.
  EXPECT_EQ(nanos_of("1000000000"), 1'000'000'000'000'000'000);
  EXPECT_EQ(nanos_of("-1000000000.5"), -1'000'000'000'500'000'000);
}

// Leading zeros add no magnitude: however many there are, the value is
// what the significant digits say (the overflow check counts those only).
TEST(MoneyParse, LeadingZerosAreNotTooLarge) {
  EXPECT_EQ(nanos_of("00000000001.50"), 1'500'000'000);
  EXPECT_EQ(nanos_of("-000000000000000000000.000000001"), -1);
  EXPECT_EQ(nanos_of(std::string(40, '0')), 0);
  EXPECT_EQ(nanos_of("0009223372036.854775807"), kMaxNanos);
  EXPECT_FALSE(Money::parse("00009223372036.854775808").is_ok());
}

TEST(MoneyParse, JunkRejectedWithAClearMessage) {
  for (std::string_view text : std::initializer_list<std::string_view>{
           "", "-", "+", ".", "-.", "1.", "-1.", "abc", "1,000", "1,5", "1e3", "1E3", "0x10", " 1", "1 ", "1\t", "--1",
        "+-1", "-+1", "1.2.3", "1..2", "1.-5", "1.+5", "NaN", "inf", "-inf", "$1", "1$", "1.5 USD",
        "\xD9\xA1",  // ARABIC-INDIC DIGIT ONE
        std::string_view("1\0", 2), "１"}) {
    auto parsed = Money::parse(text);
    ASSERT_FALSE(parsed.is_ok()) << "\"" << text << "\" parsed as " << parsed->nanos();
    EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument) << text;
    std::string message = parsed.status().message();
    EXPECT_TRUE(message.starts_with("invalid amount \"")) << message;
    EXPECT_NE(message.find("expected a decimal string of dollars such as \"1.50\""), std::string::npos) << message;
  }
}

TEST(MoneyParse, MessageSaysWhatIsWrong) {
  auto why = [](std::string_view text) { return Money::parse(text).status().message(); };
  EXPECT_NE(why("").find("empty"), std::string::npos);
  EXPECT_NE(why("-").find("empty"), std::string::npos);
  EXPECT_NE(why(".").find("no digits"), std::string::npos);
  EXPECT_NE(why("3.").find("no digits after the decimal point"), std::string::npos);
  EXPECT_NE(why("1x").find("not a number"), std::string::npos);
  EXPECT_NE(why("1.x").find("not a number"), std::string::npos);
  EXPECT_NE(why("twelve").find("\"twelve\""), std::string::npos);  // quotes the input
}

TEST(MoneyParse, MessageQuotesAtMost40CharactersOfTheInput) {
  std::string long_junk(10'000, 'x');
  auto parsed = Money::parse(long_junk);
  ASSERT_FALSE(parsed.is_ok());
  EXPECT_NE(parsed.status().message().find("\"" + std::string(40, 'x') + "\""), std::string::npos);
  EXPECT_LT(parsed.status().message().size(), 200u);
}

TEST(MoneyToString, AtLeastTwoDecimalsNoTrailingZerosPastThem) {
  EXPECT_EQ(Money().to_string(), "0.00");
  EXPECT_EQ(Money::from_nanos(1'500'000'000).to_string(), "1.50");
  EXPECT_EQ(Money::from_nanos(50).to_string(), "0.00000005");
  EXPECT_EQ(Money::from_nanos(1).to_string(), "0.000000001");
  EXPECT_EQ(Money::from_nanos(-1).to_string(), "-0.000000001");
  EXPECT_EQ(Money::from_nanos(10'000'000).to_string(), "0.01");
  EXPECT_EQ(Money::from_nanos(1'123'000'000).to_string(), "1.123");
  EXPECT_EQ(Money::from_nanos(-50).to_string(), "-0.00000005");
  EXPECT_EQ(Money::from_dollars(-3).to_string(), "-3.00");
  EXPECT_EQ(Money::from_dollars(12).to_string(), "12.00");
  EXPECT_EQ(Money::from_nanos(999'999'999).to_string(), "0.999999999");
  EXPECT_EQ(Money::from_nanos(-999'999'999).to_string(), "-0.999999999");
  EXPECT_EQ(Money::from_nanos(100'000'000'000).to_string(), "100.00");
}

TEST(MoneyToString, Int64Extremes) {
  EXPECT_EQ(Money::from_nanos(kMaxNanos).to_string(), "9223372036.854775807");
  EXPECT_EQ(Money::from_nanos(kMinNanos).to_string(), "-9223372036.854775808");
  EXPECT_EQ(Money::from_nanos(kMaxNanos - 854'775'807).to_string(), "9223372036.00");
  EXPECT_EQ(Money::from_nanos(kMinNanos + 1).to_string(), "-9223372036.854775807");
}

// parse(to_string(m)) == m over a spread of magnitudes, signs and fractions.
TEST(MoneyRoundTrip, ManyValues) {
  SeededRandom random(20261126);
  int checked = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::uint64_t bits = random.next_u64();
    // Vary the magnitude: shift right by 0..63 so small values are as common as large.
    std::int64_t nanos = static_cast<std::int64_t>(bits >> (random.next_u64() % 64));
    if (random.next_u64() & 1) nanos = -nanos;
    // Stay inside what parse promises to take today; the very top of the
    // range is ParseAcceptsEveryValueToStringWrites's business.
    if (nanos > 9'000'000'000'000'000'000 || nanos < -9'000'000'000'000'000'000) continue;
    Money m = Money::from_nanos(nanos);
    std::string text = m.to_string();
    auto back = Money::parse(text);
    ASSERT_TRUE(back.is_ok()) << text << ": " << back.status().to_string();
    ASSERT_EQ(back->nanos(), nanos) << text;
    ++checked;
  }
  EXPECT_GT(checked, 15'000);
  for (std::int64_t nanos : {std::int64_t{0}, std::int64_t{1}, std::int64_t{-1}, std::int64_t{50},
                             std::int64_t{999'999'999}, std::int64_t{1'000'000'000}, std::int64_t{-1'000'000'001},
                             std::int64_t{9'223'372'029'999'999'999}, std::int64_t{-9'223'372'029'999'999'999}}) {
    EXPECT_EQ(Money::parse(Money::from_nanos(nanos).to_string())->nanos(), nanos);
  }
}

// to_string writes every int64 of nanos; parse should take all of it back.
// Today parse's overflow guard is conservative and refuses whole-dollar parts
// above 9223372029 (so "9223372030.00" and INT64_MAX's own text are rejected).
TEST(MoneyRoundTrip, ParseAcceptsEveryValueToStringWrites) {
  for (std::int64_t nanos : {kMaxNanos, kMinNanos, kMaxNanos - 1, kMinNanos + 1,
                             std::int64_t{9'223'372'030'000'000'000}, std::int64_t{-9'223'372'036'000'000'000}}) {
    std::string text = Money::from_nanos(nanos).to_string();
    auto back = Money::parse(text);
    ASSERT_TRUE(back.is_ok()) << text << ": " << back.status().to_string();
    EXPECT_EQ(back->nanos(), nanos) << text;
  }
  // One nano past either end still overflows.
  EXPECT_FALSE(Money::parse("9223372036.854775808").is_ok());
  EXPECT_FALSE(Money::parse("-9223372036.854775809").is_ok());
}

TEST(MoneyArithmetic, AddSubtractCompare) {
  Money a = Money::parse("1.50").value();
  Money b = Money::parse("0.00000005").value();
  EXPECT_EQ((a + b).to_string(), "1.50000005");
  EXPECT_EQ((a - b).to_string(), "1.49999995");
  EXPECT_EQ((-a).to_string(), "-1.50");
  Money c = a;
  c += b;
  c -= a;
  EXPECT_EQ(c, b);
  EXPECT_LT(b, a);
  EXPECT_GT(a, -a);
  EXPECT_EQ(Money::from_dollars(2), Money::parse("2.000000000").value());
  EXPECT_EQ(Money(), Money::from_nanos(0));
  static_assert(Money::from_dollars(1).nanos() == Money::kNanosPerDollar);
}

}  // namespace
}  // namespace headroom
