// SIMD vector types and vector math shared by the native CPU kernels (selective_scan_cpu.cpp, ss2d_glue_cpu.cpp):
// GCC vector extensions of a build-constant width, polynomial exp / exp2 / log1p, softplus, sigmoid.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

// The vector width is a build constant (restore_core/ssm/native.py passes -DRC_VEC_BYTES, 64 by default), not the
// machine's widest ISA: the horizontal sums, reductions and padded state size follow the width, so a width chosen
// per ISA rounds differently on AVX2 and AVX-512 machines. Without AVX-512, GCC compiles a 64-byte vector as two
// 32-byte halves (the same numbers).
#ifndef RC_VEC_BYTES
#define RC_VEC_BYTES 64
#endif
constexpr int kVecBytes = RC_VEC_BYTES;
static_assert(kVecBytes == 16 || kVecBytes == 32 || kVecBytes == 64, "RC_VEC_BYTES must be 16, 32 or 64");

template <typename S> struct Vec;
template <> struct Vec<float> {
  static constexpr int W = kVecBytes / 4;
  typedef float V __attribute__((vector_size(kVecBytes)));
  typedef int32_t I __attribute__((vector_size(kVecBytes)));
  typedef uint32_t U __attribute__((vector_size(kVecBytes)));
};
template <> struct Vec<double> {
  static constexpr int W = kVecBytes / 8;
  typedef double V __attribute__((vector_size(kVecBytes)));
  typedef int64_t I __attribute__((vector_size(kVecBytes)));
  typedef uint64_t U __attribute__((vector_size(kVecBytes)));
};

template <typename V, typename S> static inline V splat(S s) { return V{} + s; }
template <typename V, typename S> static inline V loadv(const S* p) { V v; std::memcpy(&v, p, sizeof(V)); return v; }
template <typename V, typename S> static inline void storev(S* p, V v) { std::memcpy(p, &v, sizeof(V)); }

// Horizontal sum by halving (a shuffle tree, not a serial chain).
template <typename S, int BYTES> struct HSum {
  typedef S V __attribute__((vector_size(BYTES)));
  typedef S H __attribute__((vector_size(BYTES / 2)));
  static inline S run(V v) {
    H a, b;
    std::memcpy(&a, &v, BYTES / 2);
    std::memcpy(&b, reinterpret_cast<const char*>(&v) + BYTES / 2, BYTES / 2);
    return HSum<S, BYTES / 2>::run(a + b);
  }
};
template <> struct HSum<float, 8> {
  typedef float V __attribute__((vector_size(8)));
  static inline float run(V v) { return v[0] + v[1]; }
};
template <> struct HSum<double, 16> {
  typedef double V __attribute__((vector_size(16)));
  static inline double run(V v) { return v[0] + v[1]; }
};
template <typename S> static inline S hsum(typename Vec<S>::V v) { return HSum<S, kVecBytes>::run(v); }

// exp constants: round(x log2 e) by the 1.5 * 2^mantissa trick (no floor: gcc keeps it vectorised even with
// trapping math), Cody-Waite split of ln 2, Taylor polynomial on |r| <= ln2/2, 2^n built in the exponent bits.
template <typename S> struct ExpC;
template <> struct ExpC<float> {
  static constexpr float lo = -87.3f, hi = 88.3f, magic = 12582912.0f, ln2hi = 0.693359375f,
                         ln2lo = -2.12194440e-4f;
  static constexpr int degree = 7, bias = 127, mant = 23;
};
template <> struct ExpC<double> {
  static constexpr double lo = -708.3, hi = 709.0, magic = 6755399441055744.0, ln2hi = 6.93147180369123816490e-01,
                          ln2lo = 1.90821492927058770002e-10;
  static constexpr int degree = 12, bias = 1023, mant = 52;
};

// exp of xc already clamped to [K::lo, K::hi].
template <typename S> static inline typename Vec<S>::V vexp_in_range(typename Vec<S>::V xc) {
  using V = typename Vec<S>::V;
  using I = typename Vec<S>::I;
  using K = ExpC<S>;
  const V n = (xc * (S)1.44269504088896340736 + K::magic) - K::magic;
  V r = xc - n * K::ln2hi;
  r = r - n * K::ln2lo;
  // Taylor coefficients 1/k!, Horner from the top.
  S coef[K::degree + 1];
  coef[0] = 1;
  for (int k = 1; k <= K::degree; ++k) coef[k] = coef[k - 1] / (S)k;
  V p = splat<V>(coef[K::degree]);
  for (int k = K::degree - 1; k >= 0; --k) p = p * r + coef[k];
  const I e = (__builtin_convertvector(n, I) + K::bias) << K::mant;
  return p * (V)e;
}

template <typename S> static inline typename Vec<S>::V vexp(typename Vec<S>::V x) {
  using V = typename Vec<S>::V;
  using K = ExpC<S>;
  const V lo = splat<V>(K::lo), hi = splat<V>(K::hi);
  V xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  V res = vexp_in_range<S>(xc);
  res = x < lo ? splat<V>((S)0) : res;
  res = x > hi ? splat<V>(std::numeric_limits<S>::infinity()) : res;
  return res;
}

// 2^t for t <= 0: the lane kernel's decays exp(Δ A) = 2^(Δ A log2 e), with A log2 e formed once per channel.
// n = round(t) (the 1.5 * 2^mantissa trick), f = t - n in [-1/2, 1/2], 2^f by a polynomial, and 2^n added into the
// exponent bits of 2^f with an integer add (2^f >= 2^-1/2, so the sum is a normal number for n >= -125): no
// Cody-Waite split and no multiply by 2^n: 6 multiply-adds where vexp spends 10 and a multiply. Below 2^-125
// the result is 0 (vexp: below e^-87.3). t itself carries the roundings of A log2 e and of its product with
// Δ (and log2 e's own, 0.22 2^-24): at most 2.22 |Δ A| 2^-24 relative on the decay e^(Δ A), i.e. at most
// 2.22 2^-24 / e = 5e-8 absolute on a value in [0, 1] (it multiplies the state), under the float32 spacing of
// decays near 1.
template <typename S> constexpr S kLog2e = (S)1.44269504088896340736;
template <typename S> struct Exp2C;
template <> struct Exp2C<float> {
  // minimax (relative error) fit of 2^f on [-1/2, 1/2], degree 6, coefficients rounded to float32: 1.9e-9 relative
  // in exact arithmetic, at most 2 float32 spacings below 1 evaluated by Horner with FMAs
  // (tests/test_scan_decay_exp.py)
  static constexpr int degree = 6, mant = 23;
  static constexpr float lo = -125.0f, magic = 12582912.0f;
  static constexpr float c[degree + 1] = {1.0f, 0.6931471824645996f, 0.24022646248340607f, 0.05550328642129898f,
                                          0.009618489071726799f, 0.0013399930903688073f, 0.00015345810970757157f};
};
template <> struct Exp2C<double> {
  // Taylor series of 2^f = e^(f ln 2), degree 13: (ln 2 / 2)^14 / 14! = 5e-18 relative truncation error
  static constexpr int degree = 13, mant = 52;
  static constexpr double lo = -1021.0, magic = 6755399441055744.0;
  static constexpr double coef(int k) { return k == 0 ? 1.0 : coef(k - 1) * 0.69314718055994530942 / k; }
};
template <typename S> static inline S exp2_coef(int k);
template <> inline float exp2_coef<float>(int k) { return Exp2C<float>::c[k]; }
template <> inline double exp2_coef<double>(int k) { return Exp2C<double>::coef(k); }

template <typename S> static inline typename Vec<S>::V vexp2_nonpos(typename Vec<S>::V t) {
  using V = typename Vec<S>::V;
  using U = typename Vec<S>::U;   // unsigned: the shift below wraps by definition
  using K = Exp2C<S>;
  // no clamp: where t < lo (or -inf) the bits computed are garbage and the final select replaces them by 0
  const V tm = t + K::magic;         // n in the low mantissa bits (|n| < 2^(mant-1))
  const V f = t - (tm - K::magic);   // exact: t and n are within a factor 2 of each other or f = t
  V p = splat<V>(exp2_coef<S>(K::degree));
  for (int k = K::degree - 1; k >= 0; --k) p = p * f + exp2_coef<S>(k);
  U pb, nb;
  std::memcpy(&pb, &p, sizeof(V));
  std::memcpy(&nb, &tm, sizeof(V));
  pb += nb << K::mant;               // magic's own bits shift out: this adds n to the exponent field
  V r;
  std::memcpy(&r, &pb, sizeof(V));
  return t < K::lo ? splat<V>((S)0) : r;
}

// e^x for x <= 0 as the lane kernel computes its decays: 2^(x log2 e) by vexp2_nonpos, x log2 e rounded once (the
// kernel rounds (A log2 e) Δ: also one product of a float32 pair).
template <typename S> static inline typename Vec<S>::V vdecay(typename Vec<S>::V x) {
  return vexp2_nonpos<S>(x * kLog2e<S>);
}

// log1p(e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3 (no cancellation for small e).
template <typename S> static inline typename Vec<S>::V vlog1p_unit(typename Vec<S>::V e) {
  using V = typename Vec<S>::V;
  constexpr int terms = sizeof(S) == 4 ? 9 : 18;
  const V s = e / (e + (S)2);
  const V s2 = s * s;
  V p = splat<V>((S)1 / (S)(2 * terms - 1));
  for (int k = terms - 2; k >= 0; --k) p = p * s2 + (S)1 / (S)(2 * k + 1);
  return (S)2 * s * p;
}

template <typename S> static inline typename Vec<S>::V vabs(typename Vec<S>::V x) { return x < (S)0 ? -x : x; }

// softplus with torch's threshold (x > 20 -> x); sigmoid.
template <typename S> static inline typename Vec<S>::V vsoftplus(typename Vec<S>::V x) {
  using V = typename Vec<S>::V;
  const V zero = splat<V>((S)0);
  V r = (x > zero ? x : zero) + vlog1p_unit<S>(vexp<S>(-vabs<S>(x)));
  return x > (S)20 ? x : r;
}
template <typename S> static inline typename Vec<S>::V vsigmoid(typename Vec<S>::V x) {
  return (S)1 / ((S)1 + vexp<S>(-x));
}
template <typename S> static inline S ssoftplus(S x) { return x > (S)20 ? x : std::log1p(std::exp(x)); }
template <typename S> static inline S ssigmoid(S x) { return (S)1 / ((S)1 + std::exp(-x)); }

// m <= W consecutive scalars as a vector (the rest 0), and back: a partial last group of channels.
template <typename S>
static inline typename Vec<S>::V load_lanes(const S* p, int m) {
  using V = typename Vec<S>::V;
  if (m == Vec<S>::W) return loadv<V>(p);
  V v = splat<V>((S)0);
  std::memcpy(&v, p, m * sizeof(S));
  return v;
}
template <typename S>
static inline void store_lanes(S* p, typename Vec<S>::V v, int m) {
  if (m == Vec<S>::W) storev(p, v);
  else std::memcpy(p, &v, m * sizeof(S));
}

