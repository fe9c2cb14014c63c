#include "common/time.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/random.h"

namespace headroom {
namespace {

constexpr std::int64_t kMicros = 1'000'000;

std::int64_t micros_of(std::string_view text) {
  auto parsed = parse_rfc3339(text);
  EXPECT_TRUE(parsed.is_ok()) << text << ": " << parsed.status().to_string();
  return parsed ? parsed->unix_micros : -424242;
}

void expect_rejected(std::string_view text, std::string_view why = {}) {
  auto parsed = parse_rfc3339(text);
  ASSERT_FALSE(parsed.is_ok()) << "\"" << text << "\" parsed as " << parsed->unix_micros;
  EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument) << text;
  std::string message = parsed.status().message();
  EXPECT_TRUE(message.starts_with("invalid time \"")) << message;
  EXPECT_NE(message.find("expected RFC 3339"), std::string::npos) << message;
  if (!why.empty()) {
    EXPECT_NE(message.find(why), std::string::npos) << text << ": " << message;
  }
}

TEST(ToRfc3339, Basics) {
  EXPECT_EQ(to_rfc3339(Timestamp{0}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(to_rfc3339(Timestamp::from_unix_seconds(1'767'225'600)), "2026-01-01T00:00:00Z");
  EXPECT_EQ(to_rfc3339(Timestamp::from_unix_seconds(1'795'674'102)), "2026-11-26T06:21:42Z");
  EXPECT_EQ(to_rfc3339(Timestamp{1'795'674'102'123'456}), "2026-11-26T06:21:42.123456Z");
  EXPECT_EQ(to_rfc3339(Timestamp{1'795'674'102'500'000}), "2026-11-26T06:21:42.500000Z");
  EXPECT_EQ(to_rfc3339(Timestamp{1}), "1970-01-01T00:00:00.000001Z");
  EXPECT_EQ(to_rfc3339(Timestamp::from_unix_seconds(951'782'400)), "2000-02-29T00:00:00Z");
  EXPECT_EQ(to_rfc3339(Timestamp::from_unix_seconds(253'402'300'799)), "9999-12-31T23:59:59Z");
}

TEST(ToRfc3339, BeforeTheEpoch) {
  EXPECT_EQ(to_rfc3339(Timestamp{-1}), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(to_rfc3339(Timestamp{-kMicros}), "1969-12-31T23:59:59Z");
  EXPECT_EQ(to_rfc3339(Timestamp{-kMicros - 1}), "1969-12-31T23:59:58.999999Z");
  EXPECT_EQ(to_rfc3339(Timestamp::from_unix_seconds(-86'400)), "1969-12-31T00:00:00Z");
  EXPECT_EQ(to_rfc3339(Timestamp::from_unix_seconds(-86'401)), "1969-12-30T23:59:59Z");
  EXPECT_EQ(to_rfc3339(Timestamp::from_unix_seconds(-14'182'940)), "1969-07-20T20:17:40Z");
  EXPECT_EQ(to_rfc3339(Timestamp::from_unix_seconds(-2'203'977'600)), "1900-02-28T00:00:00Z");
  EXPECT_EQ(to_rfc3339(Timestamp::from_unix_seconds(-62'135'596'800)), "0001-01-01T00:00:00Z");
}

TEST(ParseRfc3339, UtcAndOffsets) {
  EXPECT_EQ(micros_of("2026-11-26T06:21:42Z"), 1'795'674'102 * kMicros);
  EXPECT_EQ(micros_of("2026-11-26T07:21:42+01:00"), 1'795'674'102 * kMicros);
  EXPECT_EQ(micros_of("2026-11-26T00:51:42-05:30"), 1'795'674'102 * kMicros);
  EXPECT_EQ(micros_of("2026-11-26T06:21:42+00:00"), 1'795'674'102 * kMicros);
  EXPECT_EQ(micros_of("2026-11-26T06:21:42-00:00"), 1'795'674'102 * kMicros);
  EXPECT_EQ(micros_of("2026-11-27T05:21:42+23:00"), 1'795'674'102 * kMicros);
  EXPECT_EQ(micros_of("2026-11-25T07:20:42-23:01"), 1'795'674'102 * kMicros);
  // An offset moves the instant across midnight, a month and a year.
  EXPECT_EQ(micros_of("2027-01-01T00:30:00+01:00"), micros_of("2026-12-31T23:30:00Z"));
  EXPECT_EQ(micros_of("1970-01-01T00:00:00+00:01"), -60 * kMicros);
}

TEST(ParseRfc3339, LowerCaseTAndZ) {
  EXPECT_EQ(micros_of("2026-11-26t06:21:42z"), 1'795'674'102 * kMicros);
  EXPECT_EQ(micros_of("2026-11-26t06:21:42Z"), 1'795'674'102 * kMicros);
  EXPECT_EQ(micros_of("2026-11-26T06:21:42z"), 1'795'674'102 * kMicros);
  EXPECT_EQ(micros_of("2026-11-26t06:21:42.5+01:00"), 1'795'670'502 * kMicros + 500'000);
}

TEST(ParseRfc3339, Fractions) {
  std::int64_t base = 1'795'674'102 * kMicros;
  EXPECT_EQ(micros_of("2026-11-26T06:21:42.5Z"), base + 500'000);
  EXPECT_EQ(micros_of("2026-11-26T06:21:42.000001Z"), base + 1);
  EXPECT_EQ(micros_of("2026-11-26T06:21:42.123456Z"), base + 123'456);
  EXPECT_EQ(micros_of("2026-11-26T06:21:42.0Z"), base);
  // Past microseconds: truncated, up to nanoseconds.
  EXPECT_EQ(micros_of("2026-11-26T06:21:42.1234567Z"), base + 123'456);
  EXPECT_EQ(micros_of("2026-11-26T06:21:42.999999999Z"), base + 999'999);
  EXPECT_EQ(micros_of("2026-11-26T07:21:42.25+01:00"), base + 250'000);
  // A fraction before the epoch still adds: 1969-12-31T23:59:59.5Z is -0.5 s.
  EXPECT_EQ(micros_of("1969-12-31T23:59:59.5Z"), -500'000);

  expect_rejected("2026-11-26T06:21:42.Z", "bad fraction");
  expect_rejected("2026-11-26T06:21:42.1234567890Z", "bad fraction");
  expect_rejected("2026-11-26T06:21:42.+01:00", "bad fraction");
  expect_rejected("2026-11-26T06:21:42,5Z");
}

TEST(ParseRfc3339, LeapYears) {
  EXPECT_EQ(micros_of("2024-02-29T00:00:00Z"), 1'709'164'800 * kMicros);
  EXPECT_EQ(micros_of("2000-02-29T00:00:00Z"), 951'782'400 * kMicros);  // divisible by 400
  EXPECT_EQ(micros_of("1972-02-29T12:00:00Z"), (68'169'600 + 43'200) * kMicros);
  EXPECT_EQ(micros_of("1600-02-29T00:00:00Z"), micros_of("1600-03-01T00:00:00Z") - 86'400 * kMicros);
  for (std::string_view text : {"2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z",
                                "2026-02-29T00:00:00Z", "2024-02-30T00:00:00Z", "1970-02-29T00:00:00Z"}) {
    expect_rejected(text, "no such date");
  }
}

TEST(ParseRfc3339, NoSuchDateOrTime) {
  expect_rejected("2026-13-01T00:00:00Z", "no such date");
  expect_rejected("2026-00-01T00:00:00Z", "no such date");
  expect_rejected("2026-99-01T00:00:00Z", "no such date");
  expect_rejected("2026-01-00T00:00:00Z", "no such date");
  expect_rejected("2026-01-32T00:00:00Z", "no such date");
  expect_rejected("2026-04-31T00:00:00Z", "no such date");
  expect_rejected("2026-06-31T00:00:00Z", "no such date");
  expect_rejected("2026-09-31T00:00:00Z", "no such date");
  expect_rejected("2026-11-31T00:00:00Z", "no such date");
  EXPECT_EQ(micros_of("2026-12-31T23:59:59Z"), micros_of("2027-01-01T00:00:00Z") - kMicros);
  expect_rejected("2026-11-26T24:00:00Z", "no such time of day");
  expect_rejected("2026-11-26T23:60:00Z", "no such time of day");
  expect_rejected("2026-11-26T23:59:61Z", "no such time of day");
  expect_rejected("2026-11-26T99:99:99Z", "no such time of day");
}

TEST(ParseRfc3339, LeapSecondClampsToTheSecondBefore) {
  EXPECT_EQ(micros_of("2016-12-31T23:59:60Z"), micros_of("2016-12-31T23:59:59Z"));
  EXPECT_EQ(micros_of("2016-12-31T23:59:60.5Z"), micros_of("2016-12-31T23:59:59.5Z"));
}

TEST(ParseRfc3339, MalformedShapes) {
  expect_rejected("", "bad date");
  expect_rejected("2026", "bad date");
  expect_rejected("2026-11-26", "missing 'T'");
  expect_rejected("26-11-26T06:21:42Z", "bad date");
  expect_rejected("2026-1-26T06:21:42Z", "bad date");
  expect_rejected("2026/11/26T06:21:42Z", "bad date");
  expect_rejected("+2026-11-26T06:21:42Z", "bad date");
  expect_rejected("-2026-11-26T06:21:42Z", "bad date");
  expect_rejected("2026-11-26 06:21:42Z", "missing 'T'");
  expect_rejected("2026-11-26X06:21:42Z", "missing 'T'");
  expect_rejected("2026-11-26T06:21Z", "bad time");
  expect_rejected("2026-11-26T6:21:42Z", "bad time");
  expect_rejected("2026-11-26T06-21-42Z", "bad time");
  expect_rejected("2026-11-26T06:21:4xZ", "bad time");
  expect_rejected("2026-11-26T06:21:42", "missing time zone");
  expect_rejected("2026-11-26T06:21:42UTC", "missing time zone");
  expect_rejected("2026-11-26T06:21:42 Z", "missing time zone");
  expect_rejected("2026-11-26T06:21:42+01", "bad offset");
  expect_rejected("2026-11-26T06:21:42+0100", "bad offset");
  expect_rejected("2026-11-26T06:21:42+1:00", "bad offset");
  expect_rejected("2026-11-26T06:21:42+24:00", "bad offset");
  expect_rejected("2026-11-26T06:21:42+01:60", "bad offset");
  expect_rejected("2026-11-26T06:21:42+01:0", "bad offset");
  expect_rejected(" 2026-11-26T06:21:42Z");
}

TEST(ParseRfc3339, TrailingJunk) {
  expect_rejected("2026-11-26T06:21:42Zx", "trailing characters");
  expect_rejected("2026-11-26T06:21:42Z ", "trailing characters");
  expect_rejected("2026-11-26T06:21:42ZZ", "trailing characters");
  expect_rejected("2026-11-26T06:21:42+01:00:00", "trailing characters");
  expect_rejected("2026-11-26T06:21:42+01:00Z", "trailing characters");
  expect_rejected(std::string_view("2026-11-26T06:21:42Z\0", 21), "trailing characters");
  expect_rejected("2026-11-26T06:21:42Z\n", "trailing characters");
}

TEST(ParseRfc3339, MessageQuotesAtMost40Characters) {
  std::string text = "2026-11-26T06:21:42Z" + std::string(5'000, '!');
  auto parsed = parse_rfc3339(text);
  ASSERT_FALSE(parsed.is_ok());
  std::string quoted = "\"";
  quoted.append(text, 0, 40);
  quoted += '"';
  EXPECT_NE(parsed.status().message().find(quoted), std::string::npos);
  EXPECT_LT(parsed.status().message().size(), 200u);
}

TEST(ParseRfc3339, BeforeTheEpochAndFarDates) {
  EXPECT_EQ(micros_of("1969-12-31T23:59:59Z"), -kMicros);
  EXPECT_EQ(micros_of("1969-07-20T20:17:40Z"), -14'182'940 * kMicros);
  EXPECT_EQ(micros_of("1900-01-01T00:00:00Z"), -2'208'988'800 * kMicros);
  EXPECT_EQ(micros_of("0001-01-01T00:00:00Z"), -62'135'596'800 * kMicros);
  EXPECT_EQ(micros_of("0000-01-01T00:00:00Z"), -62'167'219'200 * kMicros);
  EXPECT_EQ(micros_of("9999-12-31T23:59:59.999999Z"), 253'402'300'799 * kMicros + 999'999);
  EXPECT_EQ(micros_of("0000-02-29T00:00:00Z"), micros_of("0000-03-01T00:00:00Z") - 86'400 * kMicros);
}

// Checked against the C library's timegm over random civil times.
TEST(ParseRfc3339, AgreesWithTimegm) {
  SeededRandom random(7);
  for (int i = 0; i < 5'000; ++i) {
    int year = 1 + static_cast<int>(random.next_u64() % 9999);
    int month = 1 + static_cast<int>(random.next_u64() % 12);
    int day = 1 + static_cast<int>(random.next_u64() % 28);
    int hour = static_cast<int>(random.next_u64() % 24);
    int minute = static_cast<int>(random.next_u64() % 60);
    int second = static_cast<int>(random.next_u64() % 60);
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    std::int64_t expected = timegm(&tm);
    char text[64];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02dZ", year, month, day, hour, minute, second);
    ASSERT_EQ(micros_of(text), expected * kMicros) << text;
  }
}

TEST(Rfc3339RoundTrip, RandomTimestamps) {
  SeededRandom random(1234);
  constexpr std::int64_t kFirst = -62'135'596'800 * kMicros;             // 0001-01-01
  constexpr std::int64_t kLast = 253'402'300'799 * kMicros + 999'999;  // 9999-12-31T23:59:59.999999
  constexpr std::uint64_t kSpan = static_cast<std::uint64_t>(kLast - kFirst) + 1;
  for (int i = 0; i < 20'000; ++i) {
    Timestamp t{kFirst + static_cast<std::int64_t>(random.next_u64() % kSpan)};
    if (i % 4 == 0) t.unix_micros -= t.unix_micros % kMicros;  // whole seconds too
    std::string text = to_rfc3339(t);
    auto back = parse_rfc3339(text);
    ASSERT_TRUE(back.is_ok()) << text << ": " << back.status().to_string();
    ASSERT_EQ(back->unix_micros, t.unix_micros) << text;
    ASSERT_EQ(text.size(), t.unix_micros % kMicros == 0 ? 20u : 27u) << text;
  }
  for (std::int64_t micros : {kFirst, kLast, std::int64_t{0}, std::int64_t{-1}, std::int64_t{1}}) {
    EXPECT_EQ(parse_rfc3339(to_rfc3339(Timestamp{micros}))->unix_micros, micros);
  }
}

TEST(TimestampTest, Helpers) {
  Timestamp t = Timestamp::from_unix_seconds(100);
  EXPECT_EQ(t.unix_micros, 100 * kMicros);
  EXPECT_EQ(t.unix_seconds(), 100);
  EXPECT_EQ(t.unix_millis(), 100'000);
  EXPECT_EQ(Timestamp::from_unix_millis(1'500).unix_micros, 1'500'000);
  EXPECT_EQ(t.plus_seconds(5), Timestamp::from_unix_seconds(105));
  EXPECT_EQ(t.plus_micros(-1).unix_micros, 100 * kMicros - 1);
  EXPECT_LT(t, t.plus_micros(1));
  EXPECT_GT(t, t.plus_seconds(-1));
}

TEST(ManualClockTest, StartsAtItsDefaultAndMovesOnlyWhenTold) {
  ManualClock clock;
  EXPECT_EQ(to_rfc3339(clock.now()), "2026-01-01T00:00:00Z");
  EXPECT_EQ(clock.now(), clock.now());
  clock.advance_seconds(90);
  EXPECT_EQ(to_rfc3339(clock.now()), "2026-01-01T00:01:30Z");
  clock.advance_micros(250);
  EXPECT_EQ(to_rfc3339(clock.now()), "2026-01-01T00:01:30.000250Z");
  clock.set(Timestamp{0});
  EXPECT_EQ(clock.now(), Timestamp{0});
  clock.advance_seconds(-1);  // may go backwards: it is told, not measured
  EXPECT_EQ(clock.now(), Timestamp{-kMicros});

  ManualClock at(Timestamp::from_unix_seconds(42));
  EXPECT_EQ(at.now().unix_seconds(), 42);
  const Clock& as_clock = at;
  EXPECT_EQ(as_clock.now().unix_seconds(), 42);
}

TEST(ManualClockTest, ConcurrentAdvancesAllCount) {
  ManualClock clock(Timestamp{0});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        clock.advance_micros(1);
        (void)clock.now();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(clock.now().unix_micros, 80'000);
}

TEST(SystemClockTest, IsNearTheWallClock) {
  SystemClock clock;
  std::int64_t before = std::time(nullptr);
  Timestamp now = clock.now();
  std::int64_t after = std::time(nullptr);
  EXPECT_GE(now.unix_seconds(), before);
  EXPECT_LE(now.unix_seconds(), after + 1);
  EXPECT_LE(clock.now().unix_micros - now.unix_micros, 5 * kMicros);
  EXPECT_GE(clock.now().unix_micros, now.unix_micros);
}

}  // namespace
}  // namespace headroom
