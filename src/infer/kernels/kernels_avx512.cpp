// The AVX-512 kernels (Isa::kAvx512): the AVX2 table with the matmuls of
// quantized weights against quantized activations (kFast) replaced by
// AVX-512 VNNI ones. Those are the arithmetic of batched steps (prefill,
// continuous batching), where a weight row is read from memory once and
// multiplied by many activation rows: compute, not memory, is their limit,
// and per pair of 32-value blocks one vpdpbusd on 512 bits does the work of
// AVX2's two maddubs and two madd on 256. (Measured on the 110M model's
// matrices, Zen 5, 2 threads: see the commit and bench/kernels_bench.)
//
// Only the kernel functions are compiled for AVX-512, by the target pragma
// below (placed after every include, for the reason kernels_avx2.cpp gives:
// no inline function of a shared header may get an AVX-512 copy that the
// linker could keep for every caller). kernels.cpp only calls them after
// cpuid says the CPU has AVX-512 F, BW, VL and VNNI besides AVX2, FMA, F16C.
//
// The integer sums are exact, so each block's sum is the same integer as
// on AVX2; the float steps (block scales, accumulation order) differ from
// AVX2's, so results can differ from the AVX2 table's in the last bits, and
// are held to the portable reference by the same tests. Within this table,
// each Y value is computed alone: the same bits whatever the batch.
#include "infer/kernels/kernel_table.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
// GCC 12 warns of the _mm512_undefined_* values its own intrinsics start
// from (GCC bug 105593, fixed in GCC 13): a false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace headroom::infer::detail {
namespace {

// As kernels_avx2.cpp: each weight row's bytes this far ahead are prefetched.
constexpr std::size_t kPrefetchBytes = 8192;

template <std::size_t Bytes>
inline void prefetch_ahead(const void* at) {
  for (std::size_t p = 0; p < Bytes; p += 64) {
    _mm_prefetch(static_cast<const char*>(at) + p + kPrefetchBytes, _MM_HINT_T0);
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---- Weight blocks as signed bytes ------------------------------------------

// One block's 32 values.
inline __m256i weight_bytes(const BlockQ8_0& block) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block.qs));
}
inline __m256i weight_bytes(const BlockQ4_0& block) {
  // Byte j holds value j (low nibble) and value j + 16 (high nibble); the value is nibble - 8.
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block.qs));
  const __m256i nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0f));
  return _mm256_sub_epi8(nibbles, _mm256_set1_epi8(8));
}

// Two consecutive blocks' 64 values, block k's in the low half.
inline __m512i weight_pair(const BlockQ8_0* w) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(weight_bytes(w[0])), weight_bytes(w[1]), 1);
}
inline __m512i weight_pair(const BlockQ4_0* w) {
  const __m256i packed =
      _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[0].qs))),
                              _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[1].qs)), 1);
  const __m256i mask = _mm256_set1_epi8(0x0f);
  const __m256i low = _mm256_and_si256(packed, mask);
  const __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask);
  // [low k, high k, low k+1, high k+1]: values 0..15, 16..31 of each block in turn.
  const __m512i nibbles = _mm512_permutex2var_epi64(
      _mm512_castsi256_si512(low), _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), _mm512_castsi256_si512(high));
  return _mm512_sub_epi8(nibbles, _mm512_set1_epi8(8));
}

// ---- Block dot products ------------------------------------------------------

// vpdpbusd multiplies unsigned bytes by signed ones, so the weights go in as
// |w| and each activation takes w's sign: |w| * (x * sign w) = w * x. (A
// weight may be -128 (ggml never writes one, a file may): abs gives 0x80,
// which as an unsigned byte is 128, right.) The sums are int32: exact.
struct ReadyPair {
  __m512i abs_w;
  __mmask64 negative;  // the bytes where w < 0
};
template <typename Block>
inline ReadyPair ready_pair(const Block* w) {
  const __m512i q = weight_pair(w);
  return {_mm512_abs_epi8(q), _mm512_movepi8_mask(q)};
}

// Two blocks against two activation blocks: 16 int32 lanes of 4 products
// (lanes 0-7 block k, 8-15 block k+1), as floats.
inline __m512 pair_dot(const ReadyPair& w, const BlockQ8_F32* x) {
  const __m512i q =
      _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[0].qs))),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[1].qs)), 1);
  const __m512i signed_x = _mm512_mask_sub_epi8(q, w.negative, _mm512_setzero_si512(), q);
  return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w.abs_w, signed_x));
}

// One block against one activation block (the tail of a row): 8 lanes.
struct ReadyBlock {
  __m256i w;
  __m256i abs_w;
};
template <typename Block>
inline ReadyBlock ready_block(const Block& block) {
  const __m256i q = weight_bytes(block);
  return {q, _mm256_abs_epi8(q)};
}
inline __m256 block_dot(const ReadyBlock& w, const BlockQ8_F32& x) {
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), w.abs_w, _mm256_sign_epi8(q, w.w)));
}

// The f16 scales of four weight blocks, as floats.
template <typename Block>
inline __m128 weight_scales(const Block* w) {
  __m128i halves = _mm_cvtsi32_si128(w[0].d);
  halves = _mm_insert_epi16(halves, w[1].d, 1);
  halves = _mm_insert_epi16(halves, w[2].d, 2);
  halves = _mm_insert_epi16(halves, w[3].d, 3);
  return _mm_cvtph_ps(halves);
}

// One weight row against N quantized activation rows (N = 1..4), four
// blocks a step: each pair of weight blocks is loaded and made ready once
// for the N rows, and each row's arithmetic is exactly that of N = 1 (two
// 16-lane accumulators, then a 256-bit one for the blocks past the last
// four), so a result has the same bits whatever else is in the batch.
// x_scales[n] holds x[n]'s block scales, contiguous (MatmulArgs::x_scales).
template <typename Block, int N>
inline void dot_quantized_rows(const Block* w, const BlockQ8_F32* const* x, const float* const* x_scales,
                               std::size_t blocks, float* out) {
  // Spreads the four blocks' scales over the lanes of their products.
  const __m512i first_pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i second_pair = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  __m512 acc[N][2];
  for (auto& a : acc) a[0] = a[1] = _mm512_setzero_ps();
  std::size_t k = 0;
  for (; k + 4 <= blocks; k += 4) {
    prefetch_ahead<4 * sizeof(Block)>(w + k);
    const __m128 dw = weight_scales(w + k);
    const ReadyPair p0 = ready_pair(w + k), p1 = ready_pair(w + k + 2);
    for (int n = 0; n < N; ++n) {
      const BlockQ8_F32* xn = x[n] + k;
      const __m512 scales = _mm512_castps128_ps512(_mm_mul_ps(dw, _mm_loadu_ps(x_scales[n] + k)));
      acc[n][0] = _mm512_fmadd_ps(_mm512_permutexvar_ps(first_pair, scales), pair_dot(p0, xn), acc[n][0]);
      acc[n][1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(second_pair, scales), pair_dot(p1, xn + 2), acc[n][1]);
    }
  }
  __m256 tail[N];
  for (auto& t : tail) t = _mm256_setzero_ps();
  for (; k < blocks; ++k) {
    const ReadyBlock block = ready_block(w[k]);
    const float dw = _cvtsh_ss(w[k].d);
    for (int n = 0; n < N; ++n) {
      tail[n] = _mm256_fmadd_ps(_mm256_set1_ps(dw * x[n][k].d), block_dot(block, x[n][k]), tail[n]);
    }
  }
  for (int n = 0; n < N; ++n) {
    const __m512 sum = _mm512_add_ps(acc[n][0], acc[n][1]);
    const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sum), 1));  // AVX-512F alone
    const __m256 halves = _mm256_add_ps(_mm512_castps512_ps256(sum), high);
    out[n] = hsum(_mm256_add_ps(halves, tail[n]));
  }
}

// A row at a time, as kernels_avx2.cpp's driver (each row one sequential
// stream from memory, reused from L1 for every batch row), four batch rows
// at a time: two accumulators each leave room in the 32 registers.
template <typename Block>
void matmul_quantized_fast(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  constexpr int kGroup = 4;
  const std::size_t blocks = a.cols / kQuantBlock;
  const auto* x = static_cast<const std::uint8_t*>(a.x);
  const auto x_row = [&](std::size_t b) { return reinterpret_cast<const BlockQ8_F32*>(x + b * a.x_row_bytes); };
  const auto x_scales = [&](std::size_t b) { return a.x_scales + b * blocks; };
  for (std::size_t r = row_begin; r < row_end; ++r) {
    const auto* row = reinterpret_cast<const Block*>(a.w + r * a.row_bytes);
    std::size_t b = 0;
    for (; b + kGroup <= a.batch; b += kGroup) {
      const BlockQ8_F32* group[kGroup] = {x_row(b), x_row(b + 1), x_row(b + 2), x_row(b + 3)};
      const float* group_scales[kGroup] = {x_scales(b), x_scales(b + 1), x_scales(b + 2), x_scales(b + 3)};
      float out[kGroup];
      dot_quantized_rows<Block, kGroup>(row, group, group_scales, blocks, out);
      for (int n = 0; n < kGroup; ++n) a.y[(b + n) * a.rows + r] = out[n];
    }
    for (; b < a.batch; ++b) {
      const BlockQ8_F32* one[1] = {x_row(b)};
      const float* one_scales[1] = {x_scales(b)};
      dot_quantized_rows<Block, 1>(row, one, one_scales, blocks, a.y + b * a.rows + r);
    }
  }
}

void matmul_q8_0_fast(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  matmul_quantized_fast<BlockQ8_0>(a, row_begin, row_end);
}
void matmul_q4_0_fast(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  matmul_quantized_fast<BlockQ4_0>(a, row_begin, row_end);
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
    t.matmul_q8_0_fast = matmul_q8_0_fast;
    t.matmul_q4_0_fast = matmul_q4_0_fast;
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
