// exp() that gives the same bits on every machine.
//
// The C library's exp is not required to be correctly rounded, and glibc,
// musl, macOS and MSVC differ in the last bit for some inputs; a sampled token
// that hangs on such a bit would then differ between machines for the same
// seed. This one uses only IEEE-754 double additions and multiplications, a
// conversion to int, a table of constants and exact scalings by powers of
// two, each exactly specified, so its result depends on nothing but x. It
// calls no library function (a non-SSE4.1 x86-64 build would call libm even
// for floor), and is inline so that a loop over a vocabulary pipelines it.
// Within about an ulp of e^x; sampling asks no more.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace headroom::infer {

namespace detail {

// 2^(j/64), j = 0..63, each the double nearest the true value.
inline constexpr double kExp2Sixtyfourths[64] = {
    0x1.0000000000000p+0, 0x1.02c9a3e778061p+0, 0x1.059b0d3158574p+0, 0x1.0874518759bc8p+0, 0x1.0b5586cf9890fp+0,
    0x1.0e3ec32d3d1a2p+0, 0x1.11301d0125b51p+0, 0x1.1429aaea92de0p+0, 0x1.172b83c7d517bp+0, 0x1.1a35beb6fcb75p+0,
    0x1.1d4873168b9aap+0, 0x1.2063b88628cd6p+0, 0x1.2387a6e756238p+0, 0x1.26b4565e27cddp+0, 0x1.29e9df51fdee1p+0,
    0x1.2d285a6e4030bp+0, 0x1.306fe0a31b715p+0, 0x1.33c08b26416ffp+0, 0x1.371a7373aa9cbp+0, 0x1.3a7db34e59ff7p+0,
    0x1.3dea64c123422p+0, 0x1.4160a21f72e2ap+0, 0x1.44e086061892dp+0, 0x1.486a2b5c13cd0p+0, 0x1.4bfdad5362a27p+0,
    0x1.4f9b2769d2ca7p+0, 0x1.5342b569d4f82p+0, 0x1.56f4736b527dap+0, 0x1.5ab07dd485429p+0, 0x1.5e76f15ad2148p+0,
    0x1.6247eb03a5585p+0, 0x1.6623882552225p+0, 0x1.6a09e667f3bcdp+0, 0x1.6dfb23c651a2fp+0, 0x1.71f75e8ec5f74p+0,
    0x1.75feb564267c9p+0, 0x1.7a11473eb0187p+0, 0x1.7e2f336cf4e62p+0, 0x1.82589994cce13p+0, 0x1.868d99b4492edp+0,
    0x1.8ace5422aa0dbp+0, 0x1.8f1ae99157736p+0, 0x1.93737b0cdc5e5p+0, 0x1.97d829fde4e50p+0, 0x1.9c49182a3f090p+0,
    0x1.a0c667b5de565p+0, 0x1.a5503b23e255dp+0, 0x1.a9e6b5579fdbfp+0, 0x1.ae89f995ad3adp+0, 0x1.b33a2b84f15fbp+0,
    0x1.b7f76f2fb5e47p+0, 0x1.bcc1e904bc1d2p+0, 0x1.c199bdd85529cp+0, 0x1.c67f12e57d14bp+0, 0x1.cb720dcef9069p+0,
    0x1.d072d4a07897cp+0, 0x1.d5818dcfba487p+0, 0x1.da9e603db3285p+0, 0x1.dfc97337b9b5fp+0, 0x1.e502ee78b3ff6p+0,
    0x1.ea4afa2a490dap+0, 0x1.efa1bee615a27p+0, 0x1.f50765b6e4540p+0, 0x1.fa7c1819e90d8p+0,
};

// 2^k for a k in the normal range [-1022, 1023], built from its bits.
inline double power_of_two(int k) { return std::bit_cast<double>(static_cast<std::uint64_t>(k + 1023) << 52); }

}  // namespace detail

// A fused a * b + c (one rounding instead of two) would change the result,
// so contraction is off here whatever the including file's flags: GCC fuses
// by default in C++ wherever the target has FMA (-march=native, aarch64);
// Clang with -ffp-contract=on. (-ffp-contract=fast on Clang overrides this;
// do not build with it.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

// e^x for any x: 0 below about -745.1, +inf above about 709.8, NaN for NaN.
inline double portable_exp(double x) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  if (!(x >= -745.2)) return std::isnan(x) ? x : 0.0;  // below half the smallest subnormal
  if (x > 709.782712893384) return HUGE_VAL;

  // x = (k / 64) ln2 + r, |r| <= ln2 / 128. ln2_hi has 32 trailing zero bits,
  // so k * ln2_hi / 64 is exact for the |k| < 2^17 here (Cody and Waite).
  constexpr double kSixtyfourOverLn2 = 92.33248261689366;
  constexpr double kLn2HiOver64 = 6.93147180369123816490e-01 / 64;
  constexpr double kLn2LoOver64 = 1.90821492927058770002e-10 / 64;
  const double scaled = x * kSixtyfourOverLn2;
  const int k = static_cast<int>(scaled < 0 ? scaled - 0.5 : scaled + 0.5);
  const double kd = k;
  const double r = (x - kd * kLn2HiOver64) - kd * kLn2LoOver64;

  // e^r - 1 by its Taylor series to r^5 / 5!: the first term left out is
  // below 2^-54 relative for |r| <= 0.0055. Horner, one rounding per step.
  double q = 1.0 / 120;
  q = q * r + 1.0 / 24;
  q = q * r + 1.0 / 6;
  q = q * r + 0.5;
  q = q * r + 1.0;
  q = q * r;

  // 2^(k/64) e^r = 2^e 2^(j/64) (1 + q), k = 64 e + j.
  const double t = detail::kExp2Sixtyfourths[k & 63];
  const double p = t + t * q;
  const int e = k >> 6;  // floor(k / 64): >> is arithmetic in C++20

  // p * 2^e, rounded once as scalbn would: exact while the result is normal;
  // below that, an exact scaling first and the one rounding last.
  if (e > 1023) return p * detail::power_of_two(e - 1) * 2.0;
  if (e >= -1022) return p * detail::power_of_two(e);
  return p * detail::power_of_two(e + 600) * detail::power_of_two(-600);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

}  // namespace headroom::infer
