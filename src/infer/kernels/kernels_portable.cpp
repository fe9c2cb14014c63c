// The portable kernels: plain loops written to be obviously right. They are
// the reference every optimised kernel is tested against, and the fallback
// on CPUs without AVX2.
#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "infer/kernels/kernel_table.h"

namespace headroom::infer::detail {
namespace {

const float* float_row(const MatmulArgs& a, std::size_t b) {
  return reinterpret_cast<const float*>(static_cast<const std::uint8_t*>(a.x) + b * a.x_row_bytes);
}
const BlockQ8_F32* quantized_row(const MatmulArgs& a, std::size_t b) {
  return reinterpret_cast<const BlockQ8_F32*>(static_cast<const std::uint8_t*>(a.x) + b * a.x_row_bytes);
}

// Element i of a weight row of a float type, widened exactly.
float load_f32(const std::uint8_t* row, std::size_t i) {
  float v;
  std::memcpy(&v, row + 4 * i, 4);
  return v;
}
float load_f16(const std::uint8_t* row, std::size_t i) {
  std::uint16_t h;
  std::memcpy(&h, row + 2 * i, 2);
  return f16_to_f32(h);
}
float load_bf16(const std::uint8_t* row, std::size_t i) {
  std::uint16_t h;
  std::memcpy(&h, row + 2 * i, 2);
  return bf16_to_f32(h);
}

template <float (*Load)(const std::uint8_t*, std::size_t)>
void matmul_float(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  for (std::size_t r = row_begin; r < row_end; ++r) {
    const std::uint8_t* row = a.w + r * a.row_bytes;
    for (std::size_t b = 0; b < a.batch; ++b) {
      const float* x = float_row(a, b);
      float sum = 0;
      for (std::size_t i = 0; i < a.cols; ++i) sum += Load(row, i) * x[i];
      a.y[b * a.rows + r] = sum;
    }
  }
}

// The integer dot product of a weight block's 32 values (as int8) with an
// activation block's.
template <typename Block>
void widen_block(const Block& block, std::int8_t* out);
template <>
void widen_block<BlockQ8_0>(const BlockQ8_0& block, std::int8_t* out) {
  std::memcpy(out, block.qs, kQuantBlock);
}
template <>
void widen_block<BlockQ4_0>(const BlockQ4_0& block, std::int8_t* out) {
  for (std::size_t j = 0; j < kQuantBlock / 2; ++j) {
    out[j] = static_cast<std::int8_t>((block.qs[j] & 0x0f) - 8);
    out[j + kQuantBlock / 2] = static_cast<std::int8_t>((block.qs[j] >> 4) - 8);
  }
}

template <typename Block>
void matmul_quantized_fast(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  const std::size_t blocks = a.cols / kQuantBlock;
  for (std::size_t r = row_begin; r < row_end; ++r) {
    const auto* row = reinterpret_cast<const Block*>(a.w + r * a.row_bytes);
    for (std::size_t b = 0; b < a.batch; ++b) {
      const BlockQ8_F32* x = quantized_row(a, b);
      float sum = 0;
      for (std::size_t k = 0; k < blocks; ++k) {
        std::int8_t w[kQuantBlock];
        widen_block(row[k], w);
        std::int32_t dot = 0;
        for (std::size_t i = 0; i < kQuantBlock; ++i) dot += w[i] * x[k].qs[i];
        sum += f16_to_f32(row[k].d) * x[k].d * static_cast<float>(dot);
      }
      a.y[b * a.rows + r] = sum;
    }
  }
}

template <typename Block, void (*Dequantize)(const Block&, float*)>
void matmul_quantized_exact(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  const std::size_t blocks = a.cols / kQuantBlock;
  for (std::size_t r = row_begin; r < row_end; ++r) {
    const auto* row = reinterpret_cast<const Block*>(a.w + r * a.row_bytes);
    for (std::size_t b = 0; b < a.batch; ++b) {
      const float* x = float_row(a, b);
      float sum = 0;
      for (std::size_t k = 0; k < blocks; ++k) {
        float w[kQuantBlock];
        Dequantize(row[k], w);
        for (std::size_t i = 0; i < kQuantBlock; ++i) sum += w[i] * x[k * kQuantBlock + i];
      }
      a.y[b * a.rows + r] = sum;
    }
  }
}

void quantize_activations(const float* x, std::size_t n, BlockQ8_F32* out) {
  for (std::size_t k = 0; k < n / kQuantBlock; ++k) {
    const float* v = x + k * kQuantBlock;
    float amax = 0;
    for (std::size_t i = 0; i < kQuantBlock; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float d = amax / 127.0f;
    const float inverse = d != 0 ? 1.0f / d : 0.0f;
    out[k].d = d;
    // nearbyint: ties to even, as the AVX2 conversion rounds.
    for (std::size_t i = 0; i < kQuantBlock; ++i)
      out[k].qs[i] = static_cast<std::int8_t>(std::nearbyint(v[i] * inverse));
  }
}

void rmsnorm(const float* x, const float* weight, std::size_t n, float eps, float* out) {
  float sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  for (std::size_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void softmax(float* x, std::size_t n) {
  float max = -std::numeric_limits<float>::infinity();
  for (std::size_t i = 0; i < n; ++i) max = std::max(max, x[i]);
  float sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inverse = 1.0f / sum;
  for (std::size_t i = 0; i < n; ++i) x[i] *= inverse;
}

void silu_mul(const float* gate, const float* up, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void add(const float* a, const float* b, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void to_f16(const float* x, std::size_t n, std::uint16_t* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = f32_to_f16(x[i]);
}

void rope(float* x, std::size_t heads, const RopeAngles& angles) {
  for (std::size_t h = 0; h < heads; ++h) {
    float* head = x + h * angles.head_dim;
    for (std::size_t i = 0; i < angles.head_dim / 2; ++i) {
      const float x0 = head[2 * i], x1 = head[2 * i + 1];
      head[2 * i] = x0 * angles.cos[i] - x1 * angles.sin[i];
      head[2 * i + 1] = x0 * angles.sin[i] + x1 * angles.cos[i];
    }
  }
}

// Value i of a cache page (KvPages::type's), widened.
template <typename Value>
float kv_value(const void* page, std::size_t i) {
  if constexpr (std::is_same_v<Value, float>) {
    return load_f32(static_cast<const std::uint8_t*>(page), i);
  } else {
    return load_f16(static_cast<const std::uint8_t*>(page), i);
  }
}

template <typename Value>
void attention_of(const float* q, const KvPages& kv, std::size_t head_offset, std::size_t n_kv, std::size_t head_dim,
                  float scale, float* scores, float* out) {
  for (std::size_t page = 0, t = 0; t < n_kv; ++page) {
    for (std::size_t j = 0; j < kv.page_tokens && t < n_kv; ++j, ++t) {
      const std::size_t row = head_offset + j * kv.stride;
      float dot = 0;
      for (std::size_t i = 0; i < head_dim; ++i) dot += q[i] * kv_value<Value>(kv.keys[page], row + i);
      scores[t] = dot * scale;
    }
  }
  softmax(scores, n_kv);
  std::fill(out, out + head_dim, 0.0f);
  for (std::size_t page = 0, t = 0; t < n_kv; ++page) {
    for (std::size_t j = 0; j < kv.page_tokens && t < n_kv; ++j, ++t) {
      const std::size_t row = head_offset + j * kv.stride;
      for (std::size_t i = 0; i < head_dim; ++i) out[i] += scores[t] * kv_value<Value>(kv.values[page], row + i);
    }
  }
}

void attention(const float* q, const KvPages& kv, std::size_t head_offset, std::size_t n_kv, std::size_t head_dim,
               float scale, float* scores, float* out) {
  if (kv.type == TensorType::kF16) {
    attention_of<std::uint16_t>(q, kv, head_offset, n_kv, head_dim, scale, scores, out);
  } else {
    attention_of<float>(q, kv, head_offset, n_kv, head_dim, scale, scores, out);
  }
}

constexpr KernelTable kPortable = {
    .isa = Isa::kPortable,
    .matmul_f32 = matmul_float<load_f32>,
    .matmul_f16 = matmul_float<load_f16>,
    .matmul_bf16 = matmul_float<load_bf16>,
    .matmul_q8_0_fast = matmul_quantized_fast<BlockQ8_0>,
    .matmul_q4_0_fast = matmul_quantized_fast<BlockQ4_0>,
    .matmul_q8_0_exact = matmul_quantized_exact<BlockQ8_0, dequantize_q8_0>,
    .matmul_q4_0_exact = matmul_quantized_exact<BlockQ4_0, dequantize_q4_0>,
    .quantize_activations = quantize_activations,
    .rmsnorm = rmsnorm,
    .softmax = softmax,
    .silu_mul = silu_mul,
    .add = add,
    .to_f16 = to_f16,
    .rope = rope,
    .attention = attention,
};

}  // namespace

const KernelTable& portable_table() { return kPortable; }

}  // namespace headroom::infer::detail
