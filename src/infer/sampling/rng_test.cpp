#include "infer/sampling/rng.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>

#include "infer/sampling/portable_math.h"

namespace headroom::infer {
namespace {

// The streams are part of the reproducibility contract: a seed sent today
// must replay the same tokens after an upgrade. Reference values from Vigna's
// splitmix64.c and xoshiro256starstar.c, computed independently.
TEST(SplitMix64, MatchesTheReferenceStream) {
  SplitMix64 mix(0);
  EXPECT_EQ(mix.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(mix.next(), 0x6e789e6aa1b965f4ULL);
}

TEST(Xoshiro256, MatchesTheReferenceStream) {
  Xoshiro256 zero(0);
  EXPECT_EQ(zero.next(), 0x99ec5f36cb75f2b4ULL);
  EXPECT_EQ(zero.next(), 0xbf6e1f784956452aULL);
  EXPECT_EQ(zero.next(), 0x1a5f849d4933e6e0ULL);
  EXPECT_EQ(zero.next(), 0x6aa594f1262d2d2cULL);
  Xoshiro256 answer(42);
  EXPECT_EQ(answer.next(), 0x15780b2e0c2ec716ULL);
  EXPECT_EQ(answer.next(), 0x6104d9866d113a7eULL);
  EXPECT_EQ(answer.next(), 0xae17533239e499a1ULL);
  EXPECT_EQ(answer.next(), 0xecb8ad4703b360a1ULL);
}

TEST(Xoshiro256, UnitDrawsFillZeroToOne) {
  Xoshiro256 rng(7);
  double sum = 0;
  constexpr int kDraws = 100'000;
  for (int i = 0; i < kDraws; ++i) {
    const double u = rng.next_unit();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / kDraws, 0.5, 0.01);
}

// Within two units in the last place of glibc's exp (itself within one of
// the true value), down through the subnormals.
TEST(PortableExp, AgreesWithTheCLibraryToAboutAnUlp) {
  double worst_ulps = 0;
  for (double x = -745.0; x <= 709.0; x += 0.0137) {
    const double expected = std::exp(x);
    const double ulp = std::nextafter(expected, INFINITY) - expected;
    const double ulps = std::abs(portable_exp(x) - expected) / ulp;
    worst_ulps = std::max(worst_ulps, ulps);
    ASSERT_LE(ulps, 2.0) << "x = " << x;
  }
  RecordProperty("worst_ulps", std::to_string(worst_ulps));
}

// The exact bits, pinned: every compiler, flag set and machine must give
// these (a fused multiply-add anywhere in portable_exp would not).
TEST(PortableExp, SameBitsEverywhere) {
  std::uint64_t hash = 1469598103934665603ULL;          // FNV-1a over the results' bits
  for (double x = -745.3; x <= 709.8; x += 0.000917) {  // additions only: nothing here to fuse
    hash = (hash ^ std::bit_cast<std::uint64_t>(portable_exp(x))) * 1099511628211ULL;
  }
  EXPECT_EQ(hash, 0x11baab3434e68b35ULL);
}

TEST(PortableExp, EdgeCases) {
  EXPECT_EQ(portable_exp(0.0), 1.0);
  EXPECT_EQ(portable_exp(-INFINITY), 0.0);
  EXPECT_EQ(portable_exp(-1000.0), 0.0);
  EXPECT_EQ(portable_exp(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(portable_exp(NAN)));
  EXPECT_DOUBLE_EQ(portable_exp(1.0), 2.718281828459045);
}

}  // namespace
}  // namespace headroom::infer
