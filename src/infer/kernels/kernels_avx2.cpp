// The AVX2/FMA/F16C kernels (this file is built with -mavx2 -mfma -mf16c;
// kernels.cpp only calls into it after cpuid says the CPU has all three).
//
// Everything here has internal linkage, and the file calls no inline
// function of a shared header: an out-of-line copy of such a function
// compiled with AVX2 could be the one the linker keeps for every caller,
// and crash a CPU without AVX2. Hence __builtin_memcpy and friends.
#if defined(__x86_64__)

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "infer/kernels/float_sums_avx.h"
#include "infer/kernels/kernel_table.h"

namespace headroom::infer::detail {
namespace {

// ---- Helpers ---------------------------------------------------------------

// Weights are streamed from memory: each row's bytes this far ahead are
// prefetched, as the hardware prefetcher alone does not run far enough
// ahead of a kernel that computes this much per byte. (Measured on the
// 110M model's FFN matrix from DRAM: Q8_0 and F16 10-15% faster with it,
// 8 to 16 KiB ahead; 4 KiB or less does worse than none. F32, with the
// least work per byte, streams faster without it.)
constexpr std::size_t kPrefetchBytes = 8192;

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The lanes below `count` (count < 8) set.
inline __m256i tail_mask(std::size_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline float f16_scalar(std::uint16_t h) { return _cvtsh_ss(h); }

// e^x, Cephes' single-precision polynomial (about 1 ulp; relative error
// under 2e-7 on the range softmax and silu use), 0 below -87.3 where expf
// goes subnormal, and e^88 at most.
inline __m256 exp256(__m256 x) {
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.33654f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
  const __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 result = _mm256_mul_ps(y, _mm256_castsi256_ps(exponent));
  return _mm256_andnot_ps(underflow, result);
}

// ---- Matmul: float weights -------------------------------------------------

struct LoadF32 {
  static constexpr std::size_t kBytes = 4;
  static constexpr bool kPrefetch = false;
  static __m256 vec(const std::uint8_t* row, std::size_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  }
  static float scalar(const std::uint8_t* row, std::size_t i) {
    float v;
    __builtin_memcpy(&v, row + 4 * i, 4);
    return v;
  }
};
struct LoadF16 {
  static constexpr std::size_t kBytes = 2;
  static constexpr bool kPrefetch = true;
  static __m256 vec(const std::uint8_t* row, std::size_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
  }
  static float scalar(const std::uint8_t* row, std::size_t i) {
    std::uint16_t h;
    __builtin_memcpy(&h, row + 2 * i, 2);
    return f16_scalar(h);
  }
};
struct LoadBF16 {
  static constexpr std::size_t kBytes = 2;
  static constexpr bool kPrefetch = true;
  static __m256 vec(const std::uint8_t* row, std::size_t i) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float scalar(const std::uint8_t* row, std::size_t i) {
    std::uint16_t h;
    __builtin_memcpy(&h, row + 2 * i, 2);
    const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
    float v;
    __builtin_memcpy(&v, &bits, 4);
    return v;
  }
};

// Prefetches the next `Bytes` of a weight row, kPrefetchBytes ahead.
template <std::size_t Bytes>
inline void prefetch_ahead(const void* at) {
  for (std::size_t p = 0; p < Bytes; p += 64) {
    _mm_prefetch(static_cast<const char*>(at) + p + kPrefetchBytes, _MM_HINT_T0);
  }
}

// The sums of eight vectors, each in exactly hsum()'s order, as one vector
// of the eight sums in order: hsum4's steps, with the halves of two
// vectors added in one instruction.
inline __m256 hsum8(const __m256* v) {
  // [v_i lanes 0-3 + lanes 4-7 | v_j's likewise], for the pairs the output order needs.
  const auto halves = [](__m256 a, __m256 b) {
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  };
  const __m256 p04 = halves(v[0], v[4]), p15 = halves(v[1], v[5]);
  const __m256 p26 = halves(v[2], v[6]), p37 = halves(v[3], v[7]);
  // (p0 + p2) and (p1 + p3) of each vector, as hsum's second step.
  const __m256 s01 = _mm256_add_ps(_mm256_unpacklo_ps(p04, p15), _mm256_unpackhi_ps(p04, p15));
  const __m256 s23 = _mm256_add_ps(_mm256_unpacklo_ps(p26, p37), _mm256_unpackhi_ps(p26, p37));
  return _mm256_add_ps(_mm256_shuffle_ps(s01, s23, 0x44), _mm256_shuffle_ps(s01, s23, 0xee));
}

// R weight rows (R = 1 or 4) against one activation row, into out[0 .. R). Every float
// matmul goes through here, and each row's arithmetic is the same for
// R = 1 and R = 4: two accumulators taking 8 values in turn (the last 8 of
// an odd count into the first), their sum reduced as hsum() does, then the
// last cols % 8 values one by one. So a Y value has the same bits whichever
// R computed it, and thus whatever the batch and the thread count.
// R = 4 shares each activation load between the rows and reduces the four
// sums together: for short rows (stories260K's are 64 values) the
// reduction, not the multiplies, is most of a row's work.
template <typename Load, int R>
inline void dot_float_rows(const std::uint8_t* const* rows, const float* x, std::size_t cols, float* out) {
  __m256 acc[R][2];
  for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 16 <= cols; i += 16) {
    if constexpr (Load::kPrefetch) {
      if (i % 32 == 0) {
        for (int r = 0; r < R; ++r) prefetch_ahead<32 * Load::kBytes>(rows[r] + i * Load::kBytes);
      }
    }
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
    for (int r = 0; r < R; ++r) {
      acc[r][0] = _mm256_fmadd_ps(Load::vec(rows[r], i), x0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(Load::vec(rows[r], i + 8), x1, acc[r][1]);
    }
  }
  if (i + 8 <= cols) {
    const __m256 x0 = _mm256_loadu_ps(x + i);
    for (int r = 0; r < R; ++r) acc[r][0] = _mm256_fmadd_ps(Load::vec(rows[r], i), x0, acc[r][0]);
    i += 8;
  }
  float sums[R];
  if constexpr (R == 4) {
    const __m128 four = hsum4(_mm256_add_ps(acc[0][0], acc[0][1]), _mm256_add_ps(acc[1][0], acc[1][1]),
                              _mm256_add_ps(acc[2][0], acc[2][1]), _mm256_add_ps(acc[3][0], acc[3][1]));
    // Stored whole where no value is left over: four narrow stores read
    // back as one wide load stall on store forwarding (a third of
    // stories260K's matmul time, when out was a copy on the stack).
    if (i == cols) {
      _mm_storeu_ps(out, four);
      return;
    }
    _mm_storeu_ps(sums, four);
  } else {
    for (int r = 0; r < R; ++r) sums[r] = hsum(_mm256_add_ps(acc[r][0], acc[r][1]));
  }
  // The last values: each product rounded, then added, by intrinsics: left
  // to the compiler, `sum += w * x` is fused into an FMA in some inlined
  // copies and not in others, and a value's bits would depend on which.
  for (int r = 0; r < R; ++r) {
    __m128 sum = _mm_set_ss(sums[r]);
    for (std::size_t t = i; t < cols; ++t) {
      sum = _mm_add_ss(sum, _mm_mul_ss(_mm_set_ss(Load::scalar(rows[r], t)), _mm_set_ss(x[t])));
    }
    out[r] = _mm_cvtss_f32(sum);
  }
}

// ---- Matmul: quantized weights, quantized activations (kFast) --------------

// The 32 values of a weight block as signed bytes.
inline __m256i weight_bytes(const BlockQ8_0& block) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block.qs));
}
// Q4_0's nibbles as unsigned bytes 0..15 (the value is nibble - 8).
inline __m256i weight_nibbles(const BlockQ4_0& block) {
  // Byte j holds value j (low nibble) and value j + 16 (high nibble).
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block.qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0f));
}
inline __m256i weight_bytes(const BlockQ4_0& block) {
  return _mm256_sub_epi8(weight_nibbles(block), _mm256_set1_epi8(8));
}

// A weight block made ready, once, for every activation row it meets.
// maddubs multiplies unsigned bytes by signed ones, so the weights go in
// as |w| and each activation takes w's sign: |w| * (x * sign w) = w * x.
// (|w| and x with w's sign, not |x| and w with x's: a weight may be -128
// (ggml never writes one, a file may), and -(-128) is no int8; as an
// unsigned byte, sign(-128, -128) is 128.) No int16 pair sum can
// saturate: 2 * 128 * 127 is below 32767 (|x| <= 127 as quantized).
struct ReadyBlock {
  __m256i w;      // signed
  __m256i abs_w;  // |w|, unsigned
};
template <typename Block>
inline ReadyBlock ready(const Block& block) {
  const __m256i w = weight_bytes(block);
  return {w, _mm256_sign_epi8(w, w)};
}

// The block's 32 products, summed into 8 int32 lanes of 4 (exact), as floats.
inline __m256 block_dot(const ReadyBlock& w, const BlockQ8_F32& x) {
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  const __m256i pairs = _mm256_maddubs_epi16(w.abs_w, _mm256_sign_epi8(q, w.w));
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
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

// One weight row against N quantized activation rows (N = 1 or 2), four
// blocks a step into four accumulators per activation row; the four
// blocks' scales (weight times activation) take one multiply per row. Each
// weight block is loaded and made ready once for the N rows; each row's
// arithmetic is exactly that of N = 1 (the integer sums are exact, the
// float steps the same), so a result has the same bits alone or in a pair.
// x_scales[n] holds x[n]'s block scales, contiguous (MatmulArgs::x_scales).
template <typename Block, int N>
inline void dot_quantized_rows(const Block* w, const BlockQ8_F32* const* x, const float* const* x_scales,
                               std::size_t blocks, float* out) {
  const __m256i lane[4] = {_mm256_set1_epi32(0), _mm256_set1_epi32(1), _mm256_set1_epi32(2), _mm256_set1_epi32(3)};
  __m256 acc[N][4];
  for (auto& a : acc) a[0] = a[1] = a[2] = a[3] = _mm256_setzero_ps();
  std::size_t k = 0;
  for (; k + 4 <= blocks; k += 4) {
    prefetch_ahead<4 * sizeof(Block)>(w + k);
    const __m128 dw = weight_scales(w + k);
    __m256 scales[N];
    for (int n = 0; n < N; ++n) scales[n] = _mm256_castps128_ps256(_mm_mul_ps(dw, _mm_loadu_ps(x_scales[n] + k)));
    for (int u = 0; u < 4; ++u) {
      const ReadyBlock block = ready(w[k + u]);
      for (int n = 0; n < N; ++n) {
        const __m256 sum = block_dot(block, x[n][k + u]);
        acc[n][u] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(scales[n], lane[u]), sum, acc[n][u]);
      }
    }
  }
  for (; k < blocks; ++k) {
    const ReadyBlock block = ready(w[k]);
    const float dw = f16_scalar(w[k].d);
    for (int n = 0; n < N; ++n) {
      const __m256 d = _mm256_set1_ps(dw * x[n][k].d);
      acc[n][0] = _mm256_fmadd_ps(d, block_dot(block, x[n][k]), acc[n][0]);
    }
  }
  for (int n = 0; n < N; ++n) {
    out[n] = hsum(_mm256_add_ps(_mm256_add_ps(acc[n][0], acc[n][1]), _mm256_add_ps(acc[n][2], acc[n][3])));
  }
}

// ---- Matmul: quantized weights, f32 activations (kExact) -------------------

template <typename Block>
inline float dot_exact_row(const Block* w, const float* x, std::size_t blocks) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  for (std::size_t k = 0; k < blocks; ++k) {
    prefetch_ahead<sizeof(Block)>(w + k);
    const float* xk = x + k * kQuantBlock;
    const __m256i bytes = weight_bytes(w[k]);
    const __m128i lo = _mm256_castsi256_si128(bytes), hi = _mm256_extracti128_si256(bytes, 1);
    // The dequantized weights d * q are exact in float (11 by 8 bits).
    const __m256 d = _mm256_set1_ps(f16_scalar(w[k].d));
    const __m256 w0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)));
    const __m256 w1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))));
    const __m256 w2 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)));
    const __m256 w3 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))));
    acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xk), acc0);
    acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xk + 8), acc1);
    acc2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xk + 16), acc2);
    acc3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xk + 24), acc3);
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

// ---- Matmul drivers --------------------------------------------------------

// A row at a time, each row one sequential stream from memory (four rows
// interleaved, sharing each activation load, computed faster from cache
// but streamed 20-25% slower from DRAM). With a batch, each row is read
// from memory once and reused from L1 for every batch row, two batch rows
// at a time (dot(row, x pair, out pair)): the weights are loaded and
// unpacked once per pair, which is most of the work of a quantized row.
// Pairs, not more: two rows' four accumulators each already take 8 of the
// 16 vector registers.
template <typename Dot>
inline void matmul_rows(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end, Dot dot) {
  const auto* x = static_cast<const std::uint8_t*>(a.x);
  for (std::size_t r = row_begin; r < row_end; ++r) {
    const std::uint8_t* row = a.w + r * a.row_bytes;
    std::size_t b = 0;
    for (; b + 2 <= a.batch; b += 2) {
      const std::uint8_t* pair[2] = {x + b * a.x_row_bytes, x + (b + 1) * a.x_row_bytes};
      float out[2];
      dot.template operator()<2>(row, pair, out);
      a.y[b * a.rows + r] = out[0];
      a.y[(b + 1) * a.rows + r] = out[1];
    }
    if (b < a.batch) {
      const std::uint8_t* one[1] = {x + b * a.x_row_bytes};
      dot.template operator()<1>(row, one, a.y + b * a.rows + r);
    }
  }
}

// Float weights: four rows at a time against each batch row, the four
// rows (a few KiB) reused from L1 for the whole batch, except a lone
// activation row (decode) against a matrix too large for the caches: there
// each row is one sequential stream, which DRAM serves faster than four
// interleaved ones (see matmul_rows). Same bits either way (dot_float_rows).

template <typename Load>
void matmul_float(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  const auto x_row = [&](std::size_t b) {
    return reinterpret_cast<const float*>(static_cast<const std::uint8_t*>(a.x) + b * a.x_row_bytes);
  };
  std::size_t r = row_begin;
  if (a.batch > 1 || a.rows * a.row_bytes <= kStreamedMatrixBytes) {
    for (; r + 4 <= row_end; r += 4) {
      const std::uint8_t* rows[4] = {a.w + r * a.row_bytes, a.w + (r + 1) * a.row_bytes, a.w + (r + 2) * a.row_bytes,
                                     a.w + (r + 3) * a.row_bytes};
      for (std::size_t b = 0; b < a.batch; ++b) dot_float_rows<Load, 4>(rows, x_row(b), a.cols, a.y + b * a.rows + r);
    }
  }
  for (; r < row_end; ++r) {
    const std::uint8_t* row[1] = {a.w + r * a.row_bytes};
    for (std::size_t b = 0; b < a.batch; ++b) dot_float_rows<Load, 1>(row, x_row(b), a.cols, a.y + b * a.rows + r);
  }
}

template <typename Block>
void matmul_quantized_fast(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  matmul_rows(a, row_begin, row_end, [&]<int N>(const std::uint8_t* row, const std::uint8_t* const* x, float* out) {
    const std::size_t blocks = a.cols / kQuantBlock;
    const BlockQ8_F32* xs[N];
    const float* scales[N];
    for (int n = 0; n < N; ++n) {
      xs[n] = reinterpret_cast<const BlockQ8_F32*>(x[n]);
      // Batch row b's blocks are at x + b * x_row_bytes, its scales at x_scales + b * blocks.
      scales[n] = a.x_scales + (x[n] - static_cast<const std::uint8_t*>(a.x)) / a.x_row_bytes * blocks;
    }
    dot_quantized_rows<Block, N>(reinterpret_cast<const Block*>(row), xs, scales, blocks, out);
  });
}

template <typename Block>
void matmul_quantized_exact(const MatmulArgs& a, std::size_t row_begin, std::size_t row_end) {
  // The reference for kFast: simple rather than fast, a batch row at a time.
  matmul_rows(a, row_begin, row_end, [&]<int N>(const std::uint8_t* row, const std::uint8_t* const* x, float* out) {
    for (int n = 0; n < N; ++n) {
      out[n] = dot_exact_row(reinterpret_cast<const Block*>(row), reinterpret_cast<const float*>(x[n]),
                             a.cols / kQuantBlock);
    }
  });
}

// ---- Elementwise -----------------------------------------------------------

void quantize_activations(const float* x, std::size_t n, BlockQ8_F32* out) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (std::size_t k = 0; k < n / kQuantBlock; ++k) {
    const float* v = x + k * kQuantBlock;
    __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8);
    __m256 v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
    const __m256 amax8 = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                       _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    // The same scalar steps as the portable kernel, so the blocks match bit for bit.
    const float d = hmax(amax8) / 127.0f;
    const float inverse = d != 0 ? 1.0f / d : 0.0f;
    out[k].d = d;
    const __m256 scale = _mm256_set1_ps(inverse);
    // cvtps rounds to nearest, ties to even (the default MXCSR mode).
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, scale));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, scale));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, scale));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, scale));
    // The packs interleave 128-bit lanes; the permute puts the values back in order.
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[k].qs), ordered);
  }
}

void rmsnorm(const float* x, const float* weight, std::size_t n, float eps, float* out) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    acc0 = _mm256_fmadd_ps(a, a, acc0);
    acc1 = _mm256_fmadd_ps(b, b, acc1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_loadu_ps(x + i);
    acc0 = _mm256_fmadd_ps(a, a, acc0);
  }
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += x[i] * x[i];
  const float scale = 1.0f / __builtin_sqrtf(sum / static_cast<float>(n) + eps);
  const __m256 s = _mm256_set1_ps(scale);
  i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), s), _mm256_loadu_ps(weight + i)));
  }
  for (; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void softmax(float* x, std::size_t n) {
  const std::size_t full = n / 8 * 8;
  const __m256i mask = tail_mask(n - full);
  const __m256 minus_infinity = _mm256_set1_ps(-__builtin_inff());
  __m256 max8 = minus_infinity;
  for (std::size_t i = 0; i < full; i += 8) max8 = _mm256_max_ps(max8, _mm256_loadu_ps(x + i));
  if (full < n) {
    const __m256 tail = _mm256_blendv_ps(minus_infinity, _mm256_maskload_ps(x + full, mask), _mm256_castsi256_ps(mask));
    max8 = _mm256_max_ps(max8, tail);
  }
  const __m256 max = _mm256_set1_ps(hmax(max8));
  __m256 sum8 = _mm256_setzero_ps();
  for (std::size_t i = 0; i < full; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), max));
    _mm256_storeu_ps(x + i, e);
    sum8 = _mm256_add_ps(sum8, e);
  }
  if (full < n) {
    const __m256 e =
        _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_maskload_ps(x + full, mask), max)), _mm256_castsi256_ps(mask));
    _mm256_maskstore_ps(x + full, mask, e);
    sum8 = _mm256_add_ps(sum8, e);
  }
  const __m256 inverse = _mm256_set1_ps(1.0f / hsum(sum8));
  for (std::size_t i = 0; i < full; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inverse));
  if (full < n) _mm256_maskstore_ps(x + full, mask, _mm256_mul_ps(_mm256_maskload_ps(x + full, mask), inverse));
}

inline __m256 silu_mul8(__m256 g, __m256 u) {
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void silu_mul(const float* gate, const float* up, std::size_t n, float* out) {
  const std::size_t full = n / 8 * 8;
  for (std::size_t i = 0; i < full; i += 8) {
    _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  }
  if (full < n) {
    const __m256i mask = tail_mask(n - full);
    _mm256_maskstore_ps(out + full, mask,
                        silu_mul8(_mm256_maskload_ps(gate + full, mask), _mm256_maskload_ps(up + full, mask)));
  }
}

// F16C rounds to nearest even, as f32_to_f16 does, subnormals and
// overflow to infinity included; the tail goes one value at a time.
void to_f16(const float* x, std::size_t n, std::uint16_t* out) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) out[i] = static_cast<std::uint16_t>(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

void add(const float* a, const float* b, std::size_t n, float* out) {
  const std::size_t full = n / 8 * 8;
  for (std::size_t i = 0; i < full; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  }
  if (full < n) {
    const __m256i mask = tail_mask(n - full);
    _mm256_maskstore_ps(out + full, mask,
                        _mm256_add_ps(_mm256_maskload_ps(a + full, mask), _mm256_maskload_ps(b + full, mask)));
  }
}

void rope(float* x, std::size_t heads, const RopeAngles& angles) {
  const std::size_t pairs = angles.head_dim / 2;
  const std::size_t full = pairs / 4 * 4;
  // Each pair's cos and sin, spread over its two lanes; the sine's sign
  // alternates: (x0, x1) -> (x0 c - x1 s, x1 c + x0 s).
  const __m256i spread = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  const __m256 signs = _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1);
  for (std::size_t h = 0; h < heads; ++h) {
    float* head = x + h * angles.head_dim;
    for (std::size_t i = 0; i < full; i += 4) {
      const __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(angles.cos + i)), spread);
      const __m256 s =
          _mm256_mul_ps(_mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(angles.sin + i)), spread), signs);
      const __m256 v = _mm256_loadu_ps(head + 2 * i);
      const __m256 swapped = _mm256_permute_ps(v, 0xb1);  // (x1, x0) in each pair
      _mm256_storeu_ps(head + 2 * i, _mm256_fmadd_ps(v, c, _mm256_mul_ps(swapped, s)));
    }
    for (std::size_t i = full; i < pairs; ++i) {
      const float x0 = head[2 * i], x1 = head[2 * i + 1];
      head[2 * i] = x0 * angles.cos[i] - x1 * angles.sin[i];
      head[2 * i + 1] = x0 * angles.sin[i] + x1 * angles.cos[i];
    }
  }
}

// Attention prefetches its pages this many ahead: one page's compute is
// shorter than the memory's latency (110M Q8_0, 16 sequences of 200
// positions: about 5% faster at 2 pages ahead than at 1, no better at 4).
constexpr std::size_t kPrefetchPages = 2;

// Heads this small (a tiny model's) live in the caches: prefetching their
// rows only costs instructions (stories260K, heads of 8, decoded about 5%
// slower with it).
constexpr std::size_t kPrefetchHeadDim = 32;

// A cache's values (KvPages::type) as floats: F32 as they are, F16 widened
// by F16C. F16 heads are whole vectors (Kernels::attention checks), so only
// F32 has masked loads.
struct KvF32 {
  using Value = float;
  static __m256 vec(const float* p) { return _mm256_loadu_ps(p); }
  static __m256 masked(const float* p, __m256i mask) { return _mm256_maskload_ps(p, mask); }
};
struct KvF16 {
  using Value = std::uint16_t;
  static __m256 vec(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
};

// Prefetches one head's rows of a page (n rows of head_dim values, `stride`
// apart): the pages of a sequence lie anywhere in the cache, so the
// prefetchers, which stop at each 4 KiB page, start cold on every one of
// them; a batch's attention otherwise waits on memory most of its time.
template <typename Value>
inline void prefetch_rows(const Value* first, std::size_t n, std::size_t stride, std::size_t head_dim) {
  if (head_dim < kPrefetchHeadDim) return;
  const std::size_t bytes = head_dim * sizeof(Value);
  for (std::size_t j = 0; j < n; ++j) {
    const char* row = reinterpret_cast<const char*>(first + j * stride);
    for (std::size_t b = 0; b < bytes; b += 64) _mm_prefetch(row + b, _MM_HINT_T0);
    _mm_prefetch(row + bytes - 1, _MM_HINT_T0);
  }
}

// Moves each slot's vectors down one slot (slot 0's are dropped).
template <int S, int V>
inline void turn(__m256 (&sets)[S][V]) {
  for (int slot = 0; slot + 1 < S; ++slot) {
    for (int u = 0; u < V; ++u) sets[slot][u] = sets[slot + 1][u];
  }
}

// out[c0 .. c0 + 8V) = sum over t of p_t v_t, V vectors of 8 columns (the
// last masked to `last` where the head ends inside it), one pass over the
// pages, prefetching the next page's rows. A narrow head (V < 4) would wait
// on one chain of additions, an FMA's latency per position: it sums
// position t into set t % S (S = 4 / V sets of V vectors), then the sets in
// a fixed order. The set is chosen by the position, never by the page, so
// paging does not change the result. The sets stay in registers by turning
// round a slot each position (an index into them would put them in memory):
// after m positions, set i is in slot (i - m) mod S. Masked loads are
// slow: a head whose width is whole vectors (Masked false) loads plainly.
template <typename Kv, int V, bool Masked>
inline void weighted_values(const float* scores, const KvPages& kv, std::size_t offset, std::size_t n_kv,
                            std::size_t head_dim, std::size_t c0, __m256i last, float* out) {
  using Value = typename Kv::Value;
  const auto page_values = [&](std::size_t page) { return static_cast<const Value*>(kv.values[page]) + offset; };
  constexpr int S = V < 4 ? 4 / V : 1;
  __m256 sets[S][V];
  for (auto& set : sets) {
    for (auto& a : set) a = _mm256_setzero_ps();
  }
  for (std::size_t page = 0, t = 0; t < n_kv; ++page) {
    const std::size_t rows = n_kv - t < kv.page_tokens ? n_kv - t : kv.page_tokens;
    if (c0 == 0) {
      const std::size_t ahead = t + kPrefetchPages * kv.page_tokens;
      if (ahead < n_kv) {
        const std::size_t n = n_kv - ahead < kv.page_tokens ? n_kv - ahead : kv.page_tokens;
        prefetch_rows(page_values(page + kPrefetchPages), n, kv.stride, head_dim);
      }
    }
    const Value* v = page_values(page) + c0;
    for (std::size_t j = 0; j < rows; ++j, ++t) {
      const __m256 p = _mm256_set1_ps(scores[t]);
      const Value* row = v + j * kv.stride;
      __m256 acc[V];
      for (int u = 0; u + 1 < V; ++u) acc[u] = _mm256_fmadd_ps(p, Kv::vec(row + 8 * u), sets[0][u]);
      __m256 tail;
      if constexpr (Masked) {
        tail = Kv::masked(row + 8 * (V - 1), last);
      } else {
        tail = Kv::vec(row + 8 * (V - 1));
      }
      acc[V - 1] = _mm256_fmadd_ps(p, tail, sets[0][V - 1]);
      turn(sets);
      for (int u = 0; u < V; ++u) sets[S - 1][u] = acc[u];
    }
  }
  // Turned on to a multiple of S, so that slot i holds set i.
  for (std::size_t m = n_kv; m % S != 0; ++m) {
    __m256 first[V];
    for (int u = 0; u < V; ++u) first[u] = sets[0][u];
    turn(sets);
    for (int u = 0; u < V; ++u) sets[S - 1][u] = first[u];
  }
  __m256* acc = sets[0];
  for (int u = 0; u < V; ++u) {
    if constexpr (S == 4) {
      acc[u] = _mm256_add_ps(_mm256_add_ps(sets[0][u], sets[1][u]), _mm256_add_ps(sets[2][u], sets[3][u]));
    } else if constexpr (S == 2) {
      acc[u] = _mm256_add_ps(sets[0][u], sets[1][u]);
    }
  }
  for (int u = 0; u + 1 < V; ++u) _mm256_storeu_ps(out + c0 + 8 * u, acc[u]);
  if constexpr (Masked) {
    _mm256_maskstore_ps(out + c0 + 8 * (V - 1), last, acc[V - 1]);
  } else {
    _mm256_storeu_ps(out + c0 + 8 * (V - 1), acc[V - 1]);
  }
}

// q . k over a head, as 8 lanes of partial sums (full = head_dim rounded
// down to 8; the rest masked).
template <typename Kv>
inline __m256 dot_head(const float* q, const typename Kv::Value* k, std::size_t full, std::size_t head_dim,
                       __m256i mask) {
  __m256 acc = _mm256_setzero_ps();
  for (std::size_t i = 0; i < full; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), Kv::vec(k + i), acc);
  if constexpr (std::is_same_v<Kv, KvF32>) {
    if (full < head_dim) {
      acc = _mm256_fmadd_ps(_mm256_maskload_ps(q + full, mask), Kv::masked(k + full, mask), acc);
    }
  }
  return acc;
}

using WeightedValues = void (*)(const float*, const KvPages&, std::size_t, std::size_t, std::size_t, std::size_t,
                                __m256i, float*);
// weighted_values<Kv, V, Masked>, by V - 1.
template <typename Kv, bool Masked>
constexpr WeightedValues kWeightedValues[8] = {
    weighted_values<Kv, 1, Masked>, weighted_values<Kv, 2, Masked>, weighted_values<Kv, 3, Masked>,
    weighted_values<Kv, 4, Masked>, weighted_values<Kv, 5, Masked>, weighted_values<Kv, 6, Masked>,
    weighted_values<Kv, 7, Masked>, weighted_values<Kv, 8, Masked>};

template <typename Kv>
void attention_of(const float* q, const KvPages& kv, std::size_t head_offset, std::size_t n_kv, std::size_t head_dim,
                  float scale, float* scores, float* out) {
  using Value = typename Kv::Value;
  const auto page_keys = [&](std::size_t page) { return static_cast<const Value*>(kv.keys[page]) + head_offset; };
  const auto page_values = [&](std::size_t page) { return static_cast<const Value*>(kv.values[page]) + head_offset; };
  const std::size_t full = head_dim / 8 * 8;
  const __m256i mask = tail_mask(head_dim - full);
  // Prefetches the key pages, then the value pages (p counts on past the
  // keys), kPrefetchPages ahead of the page being read.
  const std::size_t pages = (n_kv + kv.page_tokens - 1) / kv.page_tokens;
  const auto prefetch_page = [&](std::size_t p) {
    if (p >= 2 * pages) return;
    const std::size_t at = p < pages ? p : p - pages;
    const std::size_t first = at * kv.page_tokens;
    const std::size_t n = n_kv - first < kv.page_tokens ? n_kv - first : kv.page_tokens;
    prefetch_rows(p < pages ? page_keys(at) : page_values(at), n, kv.stride, head_dim);
  };
  for (std::size_t p = 1; p < kPrefetchPages; ++p) prefetch_page(p);
  for (std::size_t page = 0, t = 0; t < n_kv; ++page) {
    const std::size_t rows = n_kv - t < kv.page_tokens ? n_kv - t : kv.page_tokens;
    prefetch_page(page + kPrefetchPages);
    // Eight positions at a time, then four, reduced together (hsum8 and
    // hsum4 reduce each as hsum does: a score has the same bits in a group
    // or alone, so paging does not change it).
    const Value* k = page_keys(page);
    std::size_t j = 0;
    for (; j + 8 <= rows; j += 8, t += 8) {
      __m256 acc[8];
      for (int p = 0; p < 8; ++p) acc[p] = dot_head<Kv>(q, k + (j + p) * kv.stride, full, head_dim, mask);
      _mm256_storeu_ps(scores + t, _mm256_mul_ps(hsum8(acc), _mm256_set1_ps(scale)));
    }
    for (; j + 4 <= rows; j += 4, t += 4) {
      __m256 acc[4];
      for (int p = 0; p < 4; ++p) acc[p] = dot_head<Kv>(q, k + (j + p) * kv.stride, full, head_dim, mask);
      _mm_storeu_ps(scores + t, _mm_mul_ps(hsum4(acc[0], acc[1], acc[2], acc[3]), _mm_set1_ps(scale)));
    }
    for (; j < rows; ++j, ++t) scores[t] = hsum(dot_head<Kv>(q, k + j * kv.stride, full, head_dim, mask)) * scale;
  }
  softmax(scores, n_kv);
  // The weighted sum of the values, up to 64 columns at a time in
  // registers, each column summed over the positions in order (so paging
  // does not change the result).
  for (std::size_t c0 = 0; c0 < head_dim; c0 += 64) {
    const std::size_t width = head_dim - c0 < 64 ? head_dim - c0 : 64;
    const std::size_t vectors = (width + 7) / 8;
    const __m256i last = tail_mask(width - (vectors - 1) * 8);
    WeightedValues sum = kWeightedValues<Kv, false>[vectors - 1];
    if constexpr (std::is_same_v<Kv, KvF32>) {
      if (width % 8 != 0) sum = kWeightedValues<KvF32, true>[vectors - 1];
    }
    sum(scores, kv, head_offset, n_kv, head_dim, c0, last, out);
  }
}

void attention(const float* q, const KvPages& kv, std::size_t head_offset, std::size_t n_kv, std::size_t head_dim,
               float scale, float* scores, float* out) {
  if (kv.type == TensorType::kF16) {
    attention_of<KvF16>(q, kv, head_offset, n_kv, head_dim, scale, scores, out);
  } else {
    attention_of<KvF32>(q, kv, head_offset, n_kv, head_dim, scale, scores, out);
  }
}

constexpr KernelTable kAvx2 = {
    .isa = Isa::kAvx2,
    .matmul_f32 = matmul_float<LoadF32>,
    .matmul_f16 = matmul_float<LoadF16>,
    .matmul_bf16 = matmul_float<LoadBF16>,
    .matmul_q8_0_fast = matmul_quantized_fast<BlockQ8_0>,
    .matmul_q4_0_fast = matmul_quantized_fast<BlockQ4_0>,
    .matmul_q8_0_exact = matmul_quantized_exact<BlockQ8_0>,
    .matmul_q4_0_exact = matmul_quantized_exact<BlockQ4_0>,
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

const KernelTable* avx2_table() { return &kAvx2; }

}  // namespace headroom::infer::detail

#else  // not x86-64: no AVX2 table.

#include "infer/kernels/kernel_table.h"

namespace headroom::infer::detail {
const KernelTable* avx2_table() { return nullptr; }
}  // namespace headroom::infer::detail

#endif
