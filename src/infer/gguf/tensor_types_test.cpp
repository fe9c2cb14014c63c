#include "infer/gguf/tensor_types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace headroom::infer {
namespace {

bool is_f16_nan(std::uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0; }
bool is_bf16_nan(std::uint16_t b) { return (b & 0x7f80) == 0x7f80 && (b & 0x007f) != 0; }

TEST(TensorTypes, GgmlNumbering) {
  EXPECT_EQ(tensor_type_of(0), TensorType::kF32);
  EXPECT_EQ(tensor_type_of(1), TensorType::kF16);
  EXPECT_EQ(tensor_type_of(2), TensorType::kQ4_0);
  EXPECT_EQ(tensor_type_of(8), TensorType::kQ8_0);
  EXPECT_EQ(tensor_type_of(30), TensorType::kBF16);
  for (std::uint32_t unsupported : {3u, 6u, 7u, 9u, 10u, 14u, 28u, 29u, 31u, 39u, 0xffffffffu}) {
    EXPECT_FALSE(tensor_type_of(unsupported)) << unsupported;
  }
  EXPECT_EQ(tensor_type_name(TensorType::kQ4_0), "q4_0");
  EXPECT_EQ(block_values(TensorType::kF32), 1u);
  EXPECT_EQ(block_values(TensorType::kQ8_0), 32u);
  EXPECT_EQ(block_bytes(TensorType::kQ8_0), 34u);
  EXPECT_EQ(block_bytes(TensorType::kQ4_0), 18u);
  EXPECT_EQ(block_bytes(TensorType::kBF16), 2u);
}

TEST(F16, KnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // the smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));  // the smallest normal
  EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)) && f16_to_f32(0x8000) == 0.0f);
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-1e10f), 0xfc00);
  EXPECT_EQ(f32_to_f16(1e-10f), 0x0000);  // below half the smallest subnormal
  EXPECT_TRUE(is_f16_nan(f32_to_f16(std::numeric_limits<float>::quiet_NaN())));
}

// Every half survives f16 -> f32 -> f16 bit for bit (NaNs stay NaNs of the same sign).
TEST(F16, RoundTripsAllHalves) {
  for (std::uint32_t h = 0; h <= 0xffff; ++h) {
    const auto half = static_cast<std::uint16_t>(h);
    const float f = f16_to_f32(half);
    if (is_f16_nan(half)) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_TRUE(is_f16_nan(f32_to_f16(f))) << h;
      ASSERT_EQ(f32_to_f16(f) & 0x8000, half & 0x8000) << h;
    } else {
      ASSERT_EQ(f32_to_f16(f), half) << std::hex << h;
    }
  }
}

// Between every two neighbouring halves: the midpoint goes to the even one,
// a float just below it to the lower, just above to the upper.
TEST(F16, RoundsToNearestTiesToEven) {
  for (std::uint16_t sign : {std::uint16_t{0}, std::uint16_t{0x8000}}) {
    for (std::uint32_t h = 0; h < 0x7c00; ++h) {
      const auto lo_bits = static_cast<std::uint16_t>(sign | h);
      const auto hi_bits = static_cast<std::uint16_t>(sign | (h + 1));  // 0x7c00 is inf: 65520 rounds to it
      const float lo = f16_to_f32(lo_bits);
      const float hi = h + 1 == 0x7c00 ? (sign ? -65536.0f : 65536.0f) : f16_to_f32(hi_bits);
      const float mid = (lo + hi) / 2;  // exact: 12 significant bits
      ASSERT_EQ(f32_to_f16(mid), (h & 1) == 0 ? lo_bits : hi_bits) << std::hex << h << " sign " << sign;
      ASSERT_EQ(f32_to_f16(std::nextafter(mid, lo)), lo_bits) << std::hex << h;
      ASSERT_EQ(f32_to_f16(std::nextafter(mid, hi)), hi_bits) << std::hex << h;
    }
  }
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // a tie, down to the even 1.0
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // a tie, up to the even mantissa
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);      // half the smallest subnormal: a tie to 0
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);      // 1.5 subnormal steps: a tie to 2
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.0f, -25)), 0x0400);   // rounds up into the smallest normal
}

#ifdef __FLT16_MAX__
// The compiler's own float -> _Float16 conversion is an independent reference.
TEST(F16, AgreesWithTheCompilersHalfType) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2'000'000; ++i) {
    const float f = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));
    if (std::isnan(f)) continue;
    const auto expected = std::bit_cast<std::uint16_t>(static_cast<_Float16>(f));
    ASSERT_EQ(f32_to_f16(f), expected) << f;
  }
  for (std::uint32_t h = 0; h <= 0xffff; ++h) {
    const auto half = static_cast<std::uint16_t>(h);
    if (is_f16_nan(half)) continue;
    ASSERT_EQ(f16_to_f32(half), static_cast<float>(std::bit_cast<_Float16>(half))) << h;
  }
}
#endif

TEST(BF16, RoundTripsAllValues) {
  for (std::uint32_t b = 0; b <= 0xffff; ++b) {
    const auto bf = static_cast<std::uint16_t>(b);
    const float f = bf16_to_f32(bf);
    if (is_bf16_nan(bf)) {
      ASSERT_TRUE(std::isnan(f));
      ASSERT_TRUE(is_bf16_nan(f32_to_bf16(f))) << b;
    } else {
      ASSERT_EQ(f32_to_bf16(f), bf) << std::hex << b;
    }
  }
}

TEST(BF16, RoundsToNearestTiesToEven) {
  for (std::uint32_t b = 0; b < 0x7f7f; ++b) {
    const auto lo_bits = static_cast<std::uint16_t>(b), hi_bits = static_cast<std::uint16_t>(b + 1);
    const float lo = bf16_to_f32(lo_bits), hi = bf16_to_f32(hi_bits);
    const float mid = std::bit_cast<float>((static_cast<std::uint32_t>(b) << 16) | 0x8000);  // exactly between
    ASSERT_EQ(f32_to_bf16(mid), (b & 1) == 0 ? lo_bits : hi_bits) << std::hex << b;
    ASSERT_EQ(f32_to_bf16(std::nextafter(mid, lo)), lo_bits) << std::hex << b;
    ASSERT_EQ(f32_to_bf16(std::nextafter(mid, hi)), hi_bits) << std::hex << b;
  }
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_TRUE(is_bf16_nan(f32_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  // A signalling NaN whose payload sits in the low 16 bits stays a NaN, not inf.
  EXPECT_TRUE(is_bf16_nan(f32_to_bf16(std::bit_cast<float>(0x7f800001u))));
}

// Blocks of 32 values at many scales, with the shapes quantization finds hard.
std::vector<std::vector<float>> test_blocks() {
  std::vector<std::vector<float>> blocks;
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float scale : {1e-4f, 1e-2f, 0.5f, 1.0f, 3.0f, 100.0f, 4096.0f}) {
    for (int i = 0; i < 200; ++i) {
      std::vector<float> block(kQuantBlock);
      for (float& x : block) x = scale * (i % 2 == 0 ? uniform(rng) : normal(rng));
      if (i % 7 == 0) block[i % kQuantBlock] = -block[i % kQuantBlock] * 5;  // an outlier
      blocks.push_back(block);
    }
  }
  blocks.push_back(std::vector<float>(kQuantBlock, 0.0f));
  blocks.push_back(std::vector<float>(kQuantBlock, 1.0f));
  blocks.push_back(std::vector<float>(kQuantBlock, -1.0f));
  std::vector<float> one(kQuantBlock, 0.0f);
  one[5] = 2.5f;
  blocks.push_back(one);
  std::vector<float> symmetric(kQuantBlock);
  for (std::size_t i = 0; i < kQuantBlock; ++i) symmetric[i] = (i % 2 == 0 ? 1.0f : -1.0f) * static_cast<float>(i);
  blocks.push_back(symmetric);
  return blocks;
}

float max_abs(const std::vector<float>& x) {
  float m = 0;
  for (float v : x) m = std::max(m, std::fabs(v));
  return m;
}

// Q8_0: q = round(x / d) with d = max|x| / 127, stored as f16. Each value is
// off by at most half a step, plus what rounding d to f16 moves 127 steps.
TEST(Q8_0, ErrorIsWithinHalfAStep) {
  for (const std::vector<float>& x : test_blocks()) {
    BlockQ8_0 block;
    quantize_q8_0(x.data(), block);
    float y[kQuantBlock];
    dequantize_q8_0(block, y);
    const float amax = max_abs(x);
    const float d = amax / 127.0f;
    const float d16 = f16_to_f32(block.d);
    EXPECT_EQ(block.d, f32_to_f16(d));
    const float bound = 0.5f * d + 127.0f * std::fabs(d - d16) + 1e-6f * amax;
    for (std::size_t i = 0; i < kQuantBlock; ++i) {
      ASSERT_LE(std::fabs(x[i] - y[i]), bound) << "value " << i << " of a block with max " << amax;
      ASSERT_GE(block.qs[i], -127);
    }
    // With d a normal half, that is under 0.45% of the block's largest magnitude.
    if (amax >= 1e-2f) {
      for (std::size_t i = 0; i < kQuantBlock; ++i) ASSERT_LE(std::fabs(x[i] - y[i]), amax * 0.0045f) << i;
    }
  }
}

TEST(Q8_0, ExactOnItsGridAndLaidOutAsGgml) {
  std::vector<float> x(kQuantBlock);
  for (std::size_t i = 0; i < kQuantBlock; ++i) x[i] = 0.5f * static_cast<float>(static_cast<int>(i * 8) - 127);
  x[0] = -63.5f;  // -127 steps of 0.5: d = 0.5 exactly
  BlockQ8_0 block;
  quantize_q8_0(x.data(), block);
  EXPECT_EQ(f16_to_f32(block.d), 0.5f);
  float y[kQuantBlock];
  dequantize_q8_0(block, y);
  for (std::size_t i = 0; i < kQuantBlock; ++i) {
    EXPECT_EQ(block.qs[i], static_cast<std::int8_t>(x[i] * 2)) << i;
    EXPECT_EQ(y[i], x[i]) << i;
  }
}

// Q4_0: d = (the value of largest magnitude) / -8, q = clamp(round(x / d) + 8, 0, 15).
// Values are off by at most half a step, except the opposite extreme, which
// clamps to +7 steps and is off by at most one.
TEST(Q4_0, ErrorIsWithinHalfAStepOrOneAtTheClamp) {
  for (const std::vector<float>& x : test_blocks()) {
    BlockQ4_0 block;
    quantize_q4_0(x.data(), block);
    float y[kQuantBlock];
    dequantize_q4_0(block, y);
    float max = 0;
    for (float v : x) if (std::fabs(v) > std::fabs(max)) max = v;
    const float d = max / -8.0f;
    const float d16 = f16_to_f32(block.d);
    EXPECT_EQ(block.d, f32_to_f16(d));
    const float slack = 8.0f * std::fabs(d - d16) + 1e-6f * std::fabs(max);
    for (std::size_t i = 0; i < kQuantBlock; ++i) {
      const float steps = d != 0 ? x[i] / d : 0;
      const float bound = (steps < 7.4f ? 0.5f : 1.0f) * std::fabs(d) + slack;
      ASSERT_LE(std::fabs(x[i] - y[i]), bound) << "value " << i << " of a block with max " << max;
    }
  }
}

TEST(Q4_0, ExactOnItsGridAndLaidOutAsGgml) {
  std::vector<float> x(kQuantBlock);
  for (std::size_t j = 0; j < 16; ++j) {
    x[j] = static_cast<float>(j) - 8;        // -8..7
    x[j + 16] = 7 - static_cast<float>(j);   // 7..-8
  }
  BlockQ4_0 block;
  quantize_q4_0(x.data(), block);
  EXPECT_EQ(f16_to_f32(block.d), 1.0f);  // -8 / -8
  for (std::size_t j = 0; j < 16; ++j) {
    EXPECT_EQ(block.qs[j], static_cast<std::uint8_t>(j | ((15 - j) << 4))) << j;  // value j low, j + 16 high
  }
  float y[kQuantBlock];
  dequantize_q4_0(block, y);
  for (std::size_t i = 0; i < kQuantBlock; ++i) EXPECT_EQ(y[i], x[i]) << i;
}

// Blocks so small that 1 / d overflows to infinity quantize to zeros (the
// f16 scale is 0 anyway), never through a conversion of inf or NaN to an integer.
TEST(Quantize, TinyBlocksBecomeZeros) {
  for (float tiny : {1e-39f, 1e-42f, std::numeric_limits<float>::denorm_min(), 2e-38f}) {
    std::vector<float> x(kQuantBlock, 0.0f);
    x[3] = tiny;
    x[9] = -tiny / 2;
    BlockQ8_0 q8;
    quantize_q8_0(x.data(), q8);
    BlockQ4_0 q4;
    quantize_q4_0(x.data(), q4);
    float y[kQuantBlock];
    dequantize_q8_0(q8, y);
    for (std::size_t i = 0; i < kQuantBlock; ++i) {
      EXPECT_EQ(y[i], 0.0f) << tiny;
      EXPECT_EQ(q8.qs[i], 0) << tiny << " value " << i;
    }
    dequantize_q4_0(q4, y);
    for (std::size_t i = 0; i < kQuantBlock; ++i) EXPECT_EQ(y[i], 0.0f) << tiny;
  }
}

}  // namespace
}  // namespace headroom::infer
