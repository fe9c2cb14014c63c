// Private to the kernels library: one table of function pointers per
// instruction set. kernels.cpp checks arguments, quantizes activations and
// splits rows over the thread pool; the tables hold the inner loops.
#pragma once

#include <cstddef>
#include <cstdint>

#include "infer/kernels/kernels.h"

namespace headroom::infer::detail {

// The rows [row_begin, row_end) of a matmul, for every batch row.
struct MatmulArgs {
  const std::uint8_t* w = nullptr;  // row r at w + r * row_bytes
  std::size_t row_bytes = 0;
  std::size_t rows = 0;
  std::size_t cols = 0;
  const void* x = nullptr;  // batch row b at x + b * x_row_bytes: floats, or BlockQ8_F32 (kFast, quantized)
  std::size_t x_row_bytes = 0;
  std::size_t batch = 0;
  float* y = nullptr;  // y[b * rows + r]
  // kFast: the activation blocks' scales again, contiguous (batch row b's
  // block k at x_scales[b * cols / 32 + k]), so that a kernel loads four
  // with one instruction instead of gathering them from the 36-byte blocks.
  const float* x_scales = nullptr;
  // kFast on packed weights: each activation block's 32 int8 values summed
  // (batch row b's block k at x_sums[b * cols / 32 + k]).
  const std::int32_t* x_sums = nullptr;
};
using MatmulRows = void (*)(const MatmulArgs& args, std::size_t row_begin, std::size_t row_end);

// A float matrix past this many bytes against a lone activation row
// (decode) is a stream from DRAM: the float kernels read it one row at a
// time (one sequential stream, which DRAM serves fastest) instead of in
// register-blocked groups of rows.
inline constexpr std::size_t kStreamedMatrixBytes = 1 << 20;

// A table's packed layout of quantized weights (Kernels::pack), or none
// (all null) where it reads them as GGUF stores them.
struct Packing {
  std::size_t tile_rows = 0;  // the matmuls take row ranges in whole tiles of this many rows
  std::size_t (*size)(const WeightMatrix& w) = nullptr;
  void (*pack)(const WeightMatrix& w, std::uint8_t* out) = nullptr;  // size(w) bytes
  MatmulRows matmul_q8_0 = nullptr;  // kFast, on packed weights: x BlockQ8_F32, x_scales and x_sums
  MatmulRows matmul_q4_0 = nullptr;
};

struct KernelTable {
  Isa isa;
  MatmulRows matmul_f32;
  MatmulRows matmul_f16;
  MatmulRows matmul_bf16;
  MatmulRows matmul_q8_0_fast;   // x: BlockQ8_F32
  MatmulRows matmul_q4_0_fast;   // x: BlockQ8_F32
  MatmulRows matmul_q8_0_exact;  // x: floats
  MatmulRows matmul_q4_0_exact;  // x: floats
  void (*quantize_activations)(const float* x, std::size_t n, BlockQ8_F32* out);
  void (*rmsnorm)(const float* x, const float* weight, std::size_t n, float eps, float* out);
  void (*softmax)(float* x, std::size_t n);
  void (*silu_mul)(const float* gate, const float* up, std::size_t n, float* out);
  void (*add)(const float* a, const float* b, std::size_t n, float* out);
  void (*to_f16)(const float* x, std::size_t n, std::uint16_t* out);
  void (*rope)(float* x, std::size_t heads, const RopeAngles& angles);
  void (*attention)(const float* q, const KvPages& kv, std::size_t head_offset, std::size_t n_kv, std::size_t head_dim,
                    float scale, float* scores, float* out);
  Packing packing;
};

const KernelTable& portable_table();
// The AVX2/FMA/F16C table, or null where the build has none (not x86-64).
// Only call its kernels on a CPU that has all three.
const KernelTable* avx2_table();
// The AVX2 table with AVX-512 VNNI matmuls of packed quantized weights, or
// null where the build has none. Only call its kernels on a CPU that has AVX-512 F, BW, VL
// and VNNI besides the AVX2 table's needs.
const KernelTable* avx512_table();

}  // namespace headroom::infer::detail
