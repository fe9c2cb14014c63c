// Private to the x86 kernel files: the horizontal sums that fix a float
// dot product's bits. The AVX2 and the AVX-512 tables both reduce with
// these, so a float matmul has the same bits on either.
//
// Include it only where AVX2 code may be compiled: in kernels_avx2.cpp
// (built with -mavx2), and in kernels_avx512.cpp after its target pragma.
// Everything is in an unnamed namespace, so each file compiles its own
// copy for its own instruction set and the linker never picks one for
// another (kernels_avx2.cpp says why that matters).
#pragma once

#include <immintrin.h>

namespace headroom::infer::detail {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The sums of four vectors, each in exactly hsum()'s order ((v0 + v4) +
// (v2 + v6)) + ((v1 + v5) + (v3 + v7)), with a quarter of the shuffles: a
// row's sum has the same bits whether it was reduced alone or in a group.
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m128 va = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 vb = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
  const __m128 vc = _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
  const __m128 vd = _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
  const __m128 ab = _mm_add_ps(_mm_unpacklo_ps(va, vb), _mm_unpackhi_ps(va, vb));  // a0+a2 b0+b2 a1+a3 b1+b3
  const __m128 cd = _mm_add_ps(_mm_unpacklo_ps(vc, vd), _mm_unpackhi_ps(vc, vd));
  return _mm_add_ps(_mm_movelh_ps(ab, cd), _mm_movehl_ps(cd, ab));
}

}  // namespace
}  // namespace headroom::infer::detail
