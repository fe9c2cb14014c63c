#include "infer/gguf/tensor_types.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace headroom::infer {
namespace {

// 1 / d, or 0 when d is 0 or so small (a subnormal float) that 1 / d
// overflows to infinity: then d rounds to a zero f16 scale anyway, and every
// value of the block dequantizes to 0.
float finite_inverse(float d) {
  const float inverse = d != 0 ? 1.0f / d : 0.0f;
  return std::isfinite(inverse) ? inverse : 0.0f;
}

}  // namespace

std::optional<TensorType> tensor_type_of(std::uint32_t ggml_type) {
  switch (ggml_type) {
    case 0: return TensorType::kF32;
    case 1: return TensorType::kF16;
    case 2: return TensorType::kQ4_0;
    case 8: return TensorType::kQ8_0;
    case 30: return TensorType::kBF16;
    default: return std::nullopt;
  }
}

std::string_view tensor_type_name(TensorType type) {
  switch (type) {
    case TensorType::kF32: return "f32";
    case TensorType::kF16: return "f16";
    case TensorType::kQ4_0: return "q4_0";
    case TensorType::kQ8_0: return "q8_0";
    case TensorType::kBF16: return "bf16";
  }
  return "?";
}

float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1f;
  const std::uint32_t mantissa = h & 0x3ff;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

std::uint16_t f32_to_f16(float f) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000);
  const std::uint32_t abs = bits & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00);  // NaN, inf
  if (abs >= 0x477ff000) return sign | 0x7c00;                               // rounds past the largest half
  if (abs < 0x38800000) {
    // A subnormal half (or zero): round |f| / 2^-24 to the nearest integer, ties to even.
    const float scaled = std::bit_cast<float>(abs) * 16777216.0f;  // exact: a power of two
    return sign | static_cast<std::uint16_t>(std::nearbyint(scaled));
  }
  // Normal: drop 13 mantissa bits, rounding to nearest even (a carry moves into the exponent, as it should).
  const std::uint32_t rebased = abs - (112u << 23);
  const std::uint32_t round = 0xfff + ((rebased >> 13) & 1);
  return sign | static_cast<std::uint16_t>((rebased + round) >> 13);
}

std::uint16_t f32_to_bf16(float f) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
  if ((bits & 0x7fffffff) > 0x7f800000) return static_cast<std::uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fff + ((bits >> 16) & 1);  // to nearest even
  return static_cast<std::uint16_t>(bits >> 16);
}

void quantize_q8_0(const float* x, BlockQ8_0& out) {
  float amax = 0;
  for (std::size_t i = 0; i < kQuantBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float inverse = finite_inverse(d);
  out.d = f32_to_f16(d);
  for (std::size_t i = 0; i < kQuantBlock; ++i) {
    // |x * inverse| <= 127 but for rounding; a NaN input becomes 0 rather than an unspecified lround().
    float scaled = x[i] * inverse;
    if (std::isnan(scaled)) scaled = 0;
    out.qs[i] = static_cast<std::int8_t>(std::lround(std::clamp(scaled, -127.0f, 127.0f)));
  }
}

void quantize_q4_0(const float* x, BlockQ4_0& out) {
  float amax = 0, max = 0;
  for (std::size_t i = 0; i < kQuantBlock; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  const float d = max / -8.0f;
  const float inverse = finite_inverse(d);
  out.d = f32_to_f16(d);
  for (std::size_t j = 0; j < kQuantBlock / 2; ++j) {
    // ggml's min(15, (int)(v / d + 8.5)), with the float clamped before the
    // conversion: converting NaN or a value out of int's range is undefined.
    auto nibble = [&](float v) {
      float shifted = v * inverse + 8.5f;
      if (!(shifted > 0.0f)) shifted = 0;  // NaN too
      return static_cast<std::uint8_t>(std::min(15.0f, shifted));
    };
    out.qs[j] = static_cast<std::uint8_t>(nibble(x[j]) | (nibble(x[j + kQuantBlock / 2]) << 4));
  }
}

void dequantize_q8_0(const BlockQ8_0& block, float* out) {
  const float d = f16_to_f32(block.d);
  for (std::size_t i = 0; i < kQuantBlock; ++i) out[i] = d * static_cast<float>(block.qs[i]);
}

void dequantize_q4_0(const BlockQ4_0& block, float* out) {
  const float d = f16_to_f32(block.d);
  for (std::size_t j = 0; j < kQuantBlock / 2; ++j) {
    out[j] = d * static_cast<float>((block.qs[j] & 0x0f) - 8);
    out[j + kQuantBlock / 2] = d * static_cast<float>((block.qs[j] >> 4) - 8);
  }
}

void dequantize(TensorType type, const void* data, std::size_t n, float* out) {
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  switch (type) {
    case TensorType::kF32:
      std::memcpy(out, bytes, n * sizeof(float));
      break;
    case TensorType::kF16:
    case TensorType::kBF16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, bytes + 2 * i, 2);
        out[i] = type == TensorType::kF16 ? f16_to_f32(bits) : bf16_to_f32(bits);
      }
      break;
    case TensorType::kQ8_0:
      for (std::size_t b = 0; b < n / kQuantBlock; ++b) {
        BlockQ8_0 block;
        std::memcpy(&block, bytes + b * sizeof block, sizeof block);
        dequantize_q8_0(block, out + b * kQuantBlock);
      }
      break;
    case TensorType::kQ4_0:
      for (std::size_t b = 0; b < n / kQuantBlock; ++b) {
        BlockQ4_0 block;
        std::memcpy(&block, bytes + b * sizeof block, sizeof block);
        dequantize_q4_0(block, out + b * kQuantBlock);
      }
      break;
  }
}

}  // namespace headroom::infer
