// The tensor element types the built-in engine reads, as GGUF stores them
// (ggml's numbering and block layouts), and the scalar conversions every
// part of the engine shares: the loader checks sizes with them, the model
// generator writes them, the kernels compute on them.
//
// Block layouts (little-endian, packed, as in ggml):
//   Q8_0: 32 values in 34 bytes: f16 scale d, then 32 int8 q;
//         value[i] = d * q[i]
//   Q4_0: 32 values in 18 bytes: f16 scale d, then 16 bytes of nibbles;
//         byte j holds value j (low nibble) and value j + 16 (high nibble);
//         value = d * (nibble - 8)
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace headroom::infer {

enum class TensorType : std::uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kBF16 = 30,
};

// The type of a ggml type id, when the engine supports it.
std::optional<TensorType> tensor_type_of(std::uint32_t ggml_type);
std::string_view tensor_type_name(TensorType type);  // "f32", "f16", "q4_0", "q8_0", "bf16"

inline constexpr std::size_t kQuantBlock = 32;  // values per Q8_0 and Q4_0 block

struct BlockQ8_0 {
  std::uint16_t d;  // f16
  std::int8_t qs[kQuantBlock];
};
struct BlockQ4_0 {
  std::uint16_t d;  // f16
  std::uint8_t qs[kQuantBlock / 2];
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18, "ggml's block sizes");

// Values per block and bytes per block of a type (1 and the element size for
// the unquantized ones). A row of n values takes n / block_values * block_bytes
// bytes; n must be a multiple of block_values.
constexpr std::size_t block_values(TensorType type) {
  return type == TensorType::kQ8_0 || type == TensorType::kQ4_0 ? kQuantBlock : 1;
}
constexpr std::size_t block_bytes(TensorType type) {
  switch (type) {
    case TensorType::kF32: return 4;
    case TensorType::kF16: return 2;
    case TensorType::kBF16: return 2;
    case TensorType::kQ8_0: return sizeof(BlockQ8_0);
    case TensorType::kQ4_0: return sizeof(BlockQ4_0);
  }
  return 0;
}

// IEEE half and bfloat16 <-> float, exact for every half (round to nearest
// even on the way in).
float f16_to_f32(std::uint16_t h);
std::uint16_t f32_to_f16(float f);
inline float bf16_to_f32(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }
std::uint16_t f32_to_bf16(float f);

// Reference (de)quantization of one block of kQuantBlock values, as ggml
// does it: d = max|x| / 127 (Q8_0); d = the value of largest magnitude / -8 (Q4_0).
void quantize_q8_0(const float* x, BlockQ8_0& out);
void quantize_q4_0(const float* x, BlockQ4_0& out);
void dequantize_q8_0(const BlockQ8_0& block, float* out);
void dequantize_q4_0(const BlockQ4_0& block, float* out);

// `n` values of `type` stored at `data` (unaligned bytes, as in a mapped
// file) as floats; n is whole blocks for Q8_0 and Q4_0.
void dequantize(TensorType type, const void* data, std::size_t n, float* out);

}  // namespace headroom::infer
