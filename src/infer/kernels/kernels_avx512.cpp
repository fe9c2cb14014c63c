// The AVX-512 kernels (Isa::kAvx512): the AVX2 table plus matmuls of
// quantized weights (Q8_0, Q4_0) against quantized activations (kFast) on
// weights packed for AVX-512 VNNI (Kernels::pack).
//
// Why packed: in GGUF's order a 512-bit vpdpbusd multiplies two blocks of
// one row, and each result then needs its own scale shuffle, conversion and
// horizontal sum: most instructions are not multiplies. Packed, a register
// holds 4 values of each of 16 rows side by side, and one activation dword
// (4 values) is broadcast against it: 8 vpdpbusd give one block's sums for
// 16 rows in the 16 lanes, converted and scaled once. The weights of a tile
// are loaded once for up to 6 activation rows, so batched steps (prefill,
// continuous batching) do several multiplies per weight byte read.
//
// The layout: rows in tiles of kTileRows (the last tile padded with zero
// rows, scale 0). With B = cols / 32 blocks, tile t starts at
// t * B * (Q + 32) bytes: first its quants, Q bytes per block (Q = 512 for
// Q8_0, 256 for Q4_0), then its scales, 32 bytes per block (the 16 rows'
// f16 scales). Within a block's quants, the group g of values 4g .. 4g+3 of
// every row:
//   Q8_0: group g (0..7) at byte 64 g, row i's 4 values at 64 g + 4 i, each
//         stored as w + 128, an unsigned byte;
//   Q4_0: groups m and m + 4 (m = 0..3) at byte 64 m, row i's 4 bytes at
//         64 m + 4 i: GGUF's bytes 4m .. 4m+3 of the row's block, whose low
//         nibbles are values 4m.. (group m) and high nibbles values 16+4m..
//         (group m + 4), each the value + 8.
// vpdpbusd multiplies unsigned bytes by signed ones: the weights go in
// unsigned (w + offset) and the activations signed, so a block's sum is
// sum (w + offset) x = sum w x + offset * sum x, and each activation
// block's sum (MatmulArgs::x_sums) takes the offset back out. All integer,
// so exact: each block's sum is the same integer as on AVX2 and portable;
// the float steps (scales, accumulation order) are this table's own, held
// to the portable reference by the same tests. Each Y value is computed
// alone, in the same order whatever the batch and the thread count.
//
// Only the kernel functions are compiled for AVX-512, by the target pragma
// below (placed after every include, for the reason kernels_avx2.cpp gives:
// no inline function of a shared header may get an AVX-512 copy that the
// linker could keep for every caller). kernels.cpp only calls them after
// cpuid says the CPU has AVX-512 F, BW, VL and VNNI besides AVX2, FMA, F16C.
// Packing is plain C++.
#include "infer/kernels/kernel_table.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace headroom::infer::detail {
namespace {

constexpr std::size_t kTileRows = 16;
constexpr std::size_t kScaleBytes = kTileRows * sizeof(std::uint16_t);  // a tile's scales of one block

constexpr std::size_t quant_bytes(TensorType type) {
  return type == TensorType::kQ8_0 ? kTileRows * kQuantBlock : kTileRows * kQuantBlock / 2;
}
std::size_t tile_bytes(TensorType type, std::size_t cols) {
  return cols / kQuantBlock * (quant_bytes(type) + kScaleBytes);
}

std::size_t packed_size(const WeightMatrix& w) {
  return (w.rows + kTileRows - 1) / kTileRows * tile_bytes(w.type, w.cols);
}

void pack(const WeightMatrix& w, std::uint8_t* out) {
  const std::size_t blocks = w.cols / kQuantBlock;
  const std::size_t q_bytes = quant_bytes(w.type);
  const std::size_t tiles = (w.rows + kTileRows - 1) / kTileRows;
  std::memset(out, 0, packed_size(w));  // padding rows: zero weights, scale 0 (the buffer may be reused)
  for (std::size_t t = 0; t < tiles; ++t) {
    std::uint8_t* quants = out + t * tile_bytes(w.type, w.cols);
    std::uint8_t* scales = quants + blocks * q_bytes;
    for (std::size_t i = 0; i < kTileRows && t * kTileRows + i < w.rows; ++i) {
      const auto* row = static_cast<const std::uint8_t*>(w.data) + (t * kTileRows + i) * w.row_bytes();
      for (std::size_t k = 0; k < blocks; ++k) {
        std::uint8_t* q = quants + k * q_bytes;
        if (w.type == TensorType::kQ8_0) {
          BlockQ8_0 block;
          std::memcpy(&block, row + k * sizeof(BlockQ8_0), sizeof block);
          std::memcpy(scales + k * kScaleBytes + 2 * i, &block.d, 2);
          for (std::size_t v = 0; v < kQuantBlock; ++v) {
            q[64 * (v / 4) + 4 * i + v % 4] = static_cast<std::uint8_t>(block.qs[v] + 128);
          }
        } else {
          BlockQ4_0 block;
          std::memcpy(&block, row + k * sizeof(BlockQ4_0), sizeof block);
          std::memcpy(scales + k * kScaleBytes + 2 * i, &block.d, 2);
          for (std::size_t m = 0; m < 4; ++m) std::memcpy(q + 64 * m + 4 * i, block.qs + 4 * m, 4);
        }
      }
    }
  }
}

}  // namespace
}  // namespace headroom::infer::detail

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
// GCC 12 warns of the _mm512_undefined_* values its own intrinsics start
// from (GCC bug 105593, fixed in GCC 13): a false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "infer/kernels/float_sums_avx.h"  // here, to be compiled for this target

namespace headroom::infer::detail {
namespace {

// Decode streams the weights from DRAM, and the hardware prefetcher alone
// does not run far enough ahead: each block prefetches the quants this far
// ahead, and the scales a proportional distance (the same blocks ahead).
constexpr std::size_t kPrefetchBytes = 8192;

// Broadcasts activation values 4g .. 4g+3 of a block to every lane.
inline __m512i activation_group(const BlockQ8_F32& x, int g) {
  std::int32_t four;
  __builtin_memcpy(&four, x.qs + 4 * g, 4);
  return _mm512_set1_epi32(four);
}

// One tile (16 rows) against N activation rows (N = 1..kGroupRows): acc[n] lane i =
// Y[n][row i]. A lane's arithmetic is the same for every N: per block, its
// exact integer sum, converted, times d_w * d_x, added in block order.
// `prefetch`: the first use of the tile (the later ones find it in L1).
template <TensorType Type, int N>
inline void tile_dot(const std::uint8_t* quants, const std::uint8_t* scales, std::size_t blocks,
                     const BlockQ8_F32* const* x, const std::int32_t* const* x_sums, bool prefetch, __m512 (&acc)[N]) {
  constexpr std::int32_t kOffset = Type == TensorType::kQ8_0 ? 128 : 8;
  constexpr std::size_t kQuants = quant_bytes(Type);
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (std::size_t k = 0; k < blocks; ++k) {
    if (prefetch) {
      for (std::size_t line = 0; line < kQuants; line += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(quants + k * kQuants + line + kPrefetchBytes), _MM_HINT_T0);
      }
      _mm_prefetch(reinterpret_cast<const char*>(scales + k * kScaleBytes + kPrefetchBytes / kQuants * kScaleBytes),
                   _MM_HINT_T0);
    }
    __m512i w[8];
    if constexpr (Type == TensorType::kQ8_0) {
      for (int g = 0; g < 8; ++g) w[g] = _mm512_loadu_si512(quants + k * quant_bytes(Type) + 64 * g);
    } else {
      const __m512i low = _mm512_set1_epi8(0x0f);
      for (int m = 0; m < 4; ++m) {
        const __m512i bytes = _mm512_loadu_si512(quants + k * quant_bytes(Type) + 64 * m);
        w[m] = _mm512_and_si512(bytes, low);
        w[m + 4] = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low);
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + k * kScaleBytes)));
    for (int n = 0; n < N; ++n) {
      const BlockQ8_F32& xb = x[n][k];
      // Two chains, so that a row's multiplies overlap.
      __m512i sum = _mm512_set1_epi32(-kOffset * x_sums[n][k]);
      __m512i odd = _mm512_setzero_si512();
      for (int g = 0; g < 8; g += 2) {
        sum = _mm512_dpbusd_epi32(sum, w[g], activation_group(xb, g));
        odd = _mm512_dpbusd_epi32(odd, w[g + 1], activation_group(xb, g + 1));
      }
      sum = _mm512_add_epi32(sum, odd);
      acc[n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dw, _mm512_set1_ps(xb.d)), acc[n]);
    }
  }
}

template <TensorType Type, int N>
inline void tile_rows(const MatmulArgs& a, const std::uint8_t* tile, std::size_t row, std::size_t b, __mmask16 lanes) {
  const std::size_t blocks = a.cols / kQuantBlock;
  const BlockQ8_F32* x[N];
  const std::int32_t* sums[N];
  for (int n = 0; n < N; ++n) {
    x[n] = reinterpret_cast<const BlockQ8_F32*>(static_cast<const std::uint8_t*>(a.x) + (b + n) * a.x_row_bytes);
    sums[n] = a.x_sums + (b + n) * blocks;
  }
  __m512 acc[N];
  tile_dot<Type, N>(tile, tile + blocks * quant_bytes(Type), blocks, x, sums, b == 0, acc);
  for (int n = 0; n < N; ++n) _mm512_mask_storeu_ps(a.y + (b + n) * a.rows + row, lanes, acc[n]);
}

// Batch rows per use of a tile: 6 rows' accumulators and chains, and the
// tile's 8 weight registers, fill the 32 registers (8 rows spill and run
// slower; measured with bench/kernels_bench).
constexpr std::size_t kGroupRows = 6;

// tile_rows<Type, N> for the last 1 to kGroupRows - 1 batch rows, by N - 1.
template <TensorType Type>
constexpr void (*kRemainderRows[kGroupRows - 1])(const MatmulArgs&, const std::uint8_t*, std::size_t, std::size_t,
                                                 __mmask16) = {
    tile_rows<Type, 1>, tile_rows<Type, 2>, tile_rows<Type, 3>, tile_rows<Type, 4>, tile_rows<Type, 5>,
};

// Rows [row_begin, row_end): row_begin is a tile's first row (kernels.cpp
// splits the rows in whole tiles). Each tile (B * (Q + 32) bytes, a few to
// a few tens of KiB) stays in L1 while every group of batch rows uses it.
template <TensorType Type>
void matmul_packed(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  const std::size_t bytes = tile_bytes(Type, a.cols);
  for (std::size_t r = row_begin; r < row_end; r += kTileRows) {
    const std::uint8_t* tile = a.w + r / kTileRows * bytes;
    const std::size_t count = row_end - r < kTileRows ? row_end - r : kTileRows;
    const auto lanes = static_cast<__mmask16>((1u << count) - 1);
    std::size_t b = 0;
    for (; b + kGroupRows <= a.batch; b += kGroupRows) tile_rows<Type, kGroupRows>(a, tile, r, b, lanes);
    if (b < a.batch) kRemainderRows<Type>[a.batch - b - 1](a, tile, r, b, lanes);
  }
}

// ---- Float weights ----------------------------------------------------------
//
// The AVX2 table's float matmul (kernels_avx2.cpp, dot_float_rows) adds a
// row's products into two 8-lane accumulators taking 8 columns in turn,
// then 8 more into the first, then reduces them with hsum4. One 16-lane
// register is both accumulators side by side (lanes 0-7 the first, 8-15
// the second): a 512-bit FMA over 16 columns does exactly what the two
// 256-bit ones did, so this kernel gives the same bits, and so the same
// tokens, as the AVX2 table. What it adds is the register blocking of a
// batch: 4 weight rows by kFloatBatchRows activation rows of accumulators,
// each weight load used for every activation row and each activation load
// for the 4 weight rows (the AVX2 kernel, with 16 registers, takes one
// activation row at a time and is bound by its loads).

// Batch rows per pass over 4 weight rows: 4 x 4 accumulators, 4 weights
// and an activation take 21 of the 32 registers.
constexpr int kFloatBatchRows = 4;

// The two 8-lane accumulators in v, added as dot_float_rows adds them.
inline __m256 add_halves(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_castps512_ps256(_mm512_shuffle_f32x4(v, v, 0xee)));
}

// Rows w[0..4) against activation rows x[0..N): out[n][0..4) = w . x[n].
template <int N>
inline void dot_float_4xn(const float* const* w, const float* const* x, std::size_t cols, float* const* out) {
  __m512 acc[4][N];
  for (auto& row : acc) {
    for (auto& a : row) a = _mm512_setzero_ps();
  }
  std::size_t i = 0;
  for (; i + 16 <= cols; i += 16) {
    __m512 wv[4];
    for (int r = 0; r < 4; ++r) wv[r] = _mm512_loadu_ps(w[r] + i);
    for (int n = 0; n < N; ++n) {
      const __m512 xv = _mm512_loadu_ps(x[n] + i);
      for (int r = 0; r < 4; ++r) acc[r][n] = _mm512_fmadd_ps(wv[r], xv, acc[r][n]);
    }
  }
  if (i + 8 <= cols) {  // 8 more, into the first accumulator (lanes 0-7)
    constexpr __mmask16 kLow = 0x00ff;
    __m512 wv[4];
    for (int r = 0; r < 4; ++r) wv[r] = _mm512_maskz_loadu_ps(kLow, w[r] + i);
    for (int n = 0; n < N; ++n) {
      const __m512 xv = _mm512_maskz_loadu_ps(kLow, x[n] + i);
      for (int r = 0; r < 4; ++r) acc[r][n] = _mm512_mask3_fmadd_ps(wv[r], xv, acc[r][n], kLow);
    }
    i += 8;
  }
  for (int n = 0; n < N; ++n) {
    const __m128 four = hsum4(add_halves(acc[0][n]), add_halves(acc[1][n]), add_halves(acc[2][n]), add_halves(acc[3][n]));
    if (i == cols) {
      _mm_storeu_ps(out[n], four);
      continue;
    }
    // The last cols % 8 values one by one, each product rounded, then
    // added, as dot_float_rows does.
    float sums[4];
    _mm_storeu_ps(sums, four);
    for (int r = 0; r < 4; ++r) {
      __m128 sum = _mm_set_ss(sums[r]);
      for (std::size_t t = i; t < cols; ++t) sum = _mm_add_ss(sum, _mm_mul_ss(_mm_set_ss(w[r][t]), _mm_set_ss(x[n][t])));
      out[n][r] = _mm_cvtss_f32(sum);
    }
  }
}

template <int N>
inline void float_rows_4xn(const MatmulArgs& a, const float* const* w, std::size_t r, std::size_t b) {
  const float* x[N];
  float* out[N];
  for (int n = 0; n < N; ++n) {
    x[n] = reinterpret_cast<const float*>(static_cast<const std::uint8_t*>(a.x) + (b + n) * a.x_row_bytes);
    out[n] = a.y + (b + n) * a.rows + r;
  }
  dot_float_4xn<N>(w, x, a.cols, out);
}

// float_rows_4xn<N> for the last 1 to kFloatBatchRows - 1 batch rows, by N - 1.
constexpr void (*kFloatRemainder[kFloatBatchRows - 1])(const MatmulArgs&, const float* const*, std::size_t,
                                                       std::size_t) = {float_rows_4xn<1>, float_rows_4xn<2>,
                                                                       float_rows_4xn<3>};

// A streamed matrix (kStreamedMatrixBytes) is left to the AVX2 kernel,
// which already reads it as fast as memory gives it, as are the last rows
// short of a group of 4.
void matmul_f32(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  const MatmulRows avx2_matmul_f32 = avx2_table()->matmul_f32;
  if (a.batch == 1 && a.rows * a.row_bytes > kStreamedMatrixBytes) {
    avx2_matmul_f32(a, row_begin, row_end);
    return;
  }
  std::size_t r = row_begin;
  for (; r + 4 <= row_end; r += 4) {
    const float* w[4];
    for (int k = 0; k < 4; ++k) w[k] = reinterpret_cast<const float*>(a.w + (r + k) * a.row_bytes);
    std::size_t b = 0;
    for (; b + kFloatBatchRows <= a.batch; b += kFloatBatchRows) float_rows_4xn<kFloatBatchRows>(a, w, r, b);
    if (b < a.batch) kFloatRemainder[a.batch - b - 1](a, w, r, b);
  }
  if (r < row_end) avx2_matmul_f32(a, r, row_end);
}

void matmul_q8_0_packed(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  matmul_packed<TensorType::kQ8_0>(a, row_begin, row_end);
}
void matmul_q4_0_packed(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  matmul_packed<TensorType::kQ4_0>(a, row_begin, row_end);
}

}  // namespace
}  // namespace headroom::infer::detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace headroom::infer::detail {

const KernelTable* avx512_table() {
  const KernelTable* avx2 = avx2_table();
  if (avx2 == nullptr) return nullptr;
  static const KernelTable table = [avx2] {
    KernelTable t = *avx2;
    t.isa = Isa::kAvx512;
    t.matmul_f32 = matmul_f32;
    t.packing = {.tile_rows = kTileRows,
                 .size = packed_size,
                 .pack = pack,
                 .matmul_q8_0 = matmul_q8_0_packed,
                 .matmul_q4_0 = matmul_q4_0_packed};
    return t;
  }();
  return &table;
}

}  // namespace headroom::infer::detail

#else  // not x86-64: no AVX-512 table.

namespace headroom::infer::detail {
const KernelTable* avx512_table() { return nullptr; }
}  // namespace headroom::infer::detail

#endif
