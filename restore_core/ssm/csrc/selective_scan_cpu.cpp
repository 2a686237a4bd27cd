// Selective scan (Mamba's S6 recurrence) on the CPU: forward and hand-written backward.
//
// Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv:2312.00752, Alg. 2.
// mamba-ssm ships only a CUDA kernel (csrc/selective_scan); this CPU kernel is ours. Per row (batch b,
// channel d) and step t:
//     dt_t = softplus(delta_t + bias)                         (or delta_t + bias)
//     h_t  = exp(dt_t A) * h_{t-1} + dt_t u_t B_t             h: (N,)
//     y_t  = C_t . h_t + D u_t,      out_t = y_t * silu(z_t)  (gate optional)
//
// Layout (prepared by restore_core/ssm/native.py): u, delta, z, out: (Bt, D, L); A: (D, Np); B, C: (Bt, G, L, Np)
// where Np pads N to NV whole vectors (padded lanes have A = B = C = 0, so they stay 0).
// Design (restore_core PERF notes): the N-state lives in NV registers (GCC vector extensions), exp is a
// vectorised polynomial (Cody-Waite reduction + Taylor, magic-number rounding), two rows are interleaved in the
// forward, OpenMP runs over rows. The forward stores the state every T steps; the backward recomputes each chunk
// of T steps from its checkpoint (states and decays kept in L1) and walks it in reverse.
#include <torch/extension.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

template <typename S> struct Vec;
template <> struct Vec<float> {
  static constexpr int W = kVecBytes / 4;
  typedef float V __attribute__((vector_size(kVecBytes)));
  typedef int32_t I __attribute__((vector_size(kVecBytes)));
};
template <> struct Vec<double> {
  static constexpr int W = kVecBytes / 8;
  typedef double V __attribute__((vector_size(kVecBytes)));
  typedef int64_t I __attribute__((vector_size(kVecBytes)));
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

template <typename S> static inline typename Vec<S>::V vexp(typename Vec<S>::V x) {
  using V = typename Vec<S>::V;
  using I = typename Vec<S>::I;
  using K = ExpC<S>;
  const V lo = splat<V>(K::lo), hi = splat<V>(K::hi);
  V xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
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
  V res = p * (V)e;
  res = x < lo ? splat<V>((S)0) : res;
  res = x > hi ? splat<V>(std::numeric_limits<S>::infinity()) : res;
  return res;
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

// dt row = softplus(delta + bias) (or delta + bias); sig row = d dt / d delta.
template <typename S>
static void dt_row(const S* delta, S bias, bool softplus, int64_t L, S* dt, S* sig) {
  using V = typename Vec<S>::V;
  constexpr int W = Vec<S>::W;
  int64_t t = 0;
  for (; t + W <= L; t += W) {
    V x = loadv<V>(delta + t) + bias;
    storev(dt + t, softplus ? vsoftplus<S>(x) : x);
    if (sig) storev(sig + t, softplus ? vsigmoid<S>(x) : splat<V>((S)1));
  }
  for (; t < L; ++t) {
    S x = delta[t] + bias;
    dt[t] = softplus ? ssoftplus(x) : x;
    if (sig) sig[t] = softplus ? ssigmoid(x) : (S)1;
  }
}

template <typename S> struct Problem {
  int64_t nb, d, L, G, Np, T, nck;
  bool softplus;
  const S *u, *delta, *A, *Bm, *Cm, *Dskip, *z, *bias;
};

// ---------------------------------------------------------------------------------------------- forward
template <typename S, int NV, int R>
static void fwd_rows(const Problem<S>& p, int64_t b, int64_t d0, S* out, S* last, S* ckpt, S* ysave, S* dtbuf) {
  using V = typename Vec<S>::V;
  constexpr int W = Vec<S>::W;
  const int64_t L = p.L, Np = p.Np, dg = p.d / p.G;
  const S *u[R], *Bp[R], *Cp[R], *dt[R];
  S* o[R];
  S* ck[R];
  V Av[R][NV], h[R][NV];
  for (int r = 0; r < R; ++r) {
    const int64_t d = d0 + r, row = b * p.d + d, grp = d / dg;
    u[r] = p.u + row * L;
    o[r] = out + row * L;
    Bp[r] = p.Bm + (b * p.G + grp) * L * Np;
    Cp[r] = p.Cm + (b * p.G + grp) * L * Np;
    ck[r] = ckpt + row * p.nck * Np;
    dt_row<S>(p.delta + row * L, p.bias ? p.bias[d] : (S)0, p.softplus, L, dtbuf + r * L, nullptr);
    dt[r] = dtbuf + r * L;
    for (int k = 0; k < NV; ++k) {
      Av[r][k] = loadv<V>(p.A + d * Np + k * W);
      h[r][k] = splat<V>((S)0);
    }
  }
  for (int64_t c = 0; c < p.nck; ++c) {
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < NV; ++k) storev(ck[r] + c * Np + k * W, h[r][k]);
    const int64_t t1 = std::min(L, (c + 1) * p.T);
    for (int64_t t = c * p.T; t < t1; ++t) {
      for (int r = 0; r < R; ++r) {
        const S dtt = dt[r][t], x = dtt * u[r][t];
        const S* Bt = Bp[r] + t * Np;
        const S* Ct = Cp[r] + t * Np;
        V acc = splat<V>((S)0);
        for (int k = 0; k < NV; ++k) {
          const V da = vexp<S>(Av[r][k] * dtt);
          h[r][k] = da * h[r][k] + x * loadv<V>(Bt + k * W);
          acc += h[r][k] * loadv<V>(Ct + k * W);
        }
        o[r][t] = hsum<S>(acc);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t d = d0 + r, row = b * p.d + d;
    for (int k = 0; k < NV; ++k) storev(last + row * Np + k * W, h[r][k]);
    // Post-pass (vectorised): y += D u; out = y * silu(z).
    const S Dd = p.Dskip ? p.Dskip[d] : (S)0;
    S* orow = o[r];
    const S* urow = u[r];
    if (p.Dskip)
      for (int64_t t = 0; t < L; ++t) orow[t] += Dd * urow[t];
    if (p.z) {
      const S* zrow = p.z + row * L;
      S* ys = ysave + row * L;
      std::memcpy(ys, orow, L * sizeof(S));
      int64_t t = 0;
      for (; t + W <= L; t += W) {
        const V zz = loadv<V>(zrow + t);
        storev(orow + t, loadv<V>(orow + t) * zz * vsigmoid<S>(zz));
      }
      for (; t < L; ++t) orow[t] *= zrow[t] * ssigmoid(zrow[t]);
    }
  }
}

template <typename S, int NV>
static void fwd_all(const Problem<S>& p, S* out, S* last, S* ckpt, S* ysave) {
  const int64_t pairs = (p.d + 1) / 2;
#pragma omp parallel
  {
    std::vector<S> dtbuf(2 * p.L);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.nb * pairs; ++i) {
      const int64_t b = i / pairs, d0 = 2 * (i % pairs);
      if (d0 + 1 < p.d)
        fwd_rows<S, NV, 2>(p, b, d0, out, last, ckpt, ysave, dtbuf.data());
      else
        fwd_rows<S, NV, 1>(p, b, d0, out, last, ckpt, ysave, dtbuf.data());
    }
  }
}

// --------------------------------------------------------------------------------------------- backward
template <typename S> struct Grads {
  const S *dout, *ysave, *ckpt, *dlast;
  S *du, *ddelta, *dz, *dBbuf, *dCbuf;  // dBbuf, dCbuf: (threads, Bt, G, L, Np)
  double *dA, *dD, *dbias;              // (Bt, D, Np), (Bt, D), (Bt, D)
};

template <typename S, int NV>
static void bwd_row(const Problem<S>& p, const Grads<S>& q, int64_t b, int64_t d, S* dBt, S* dCt, S* dt, S* sig,
                    S* g, S* ddt, typename Vec<S>::V* hbuf, typename Vec<S>::V* abuf) {
  using V = typename Vec<S>::V;
  constexpr int W = Vec<S>::W;
  const int64_t L = p.L, Np = p.Np, dg = p.d / p.G, grp = d / dg, row = b * p.d + d;
  const S* u = p.u + row * L;
  const S* Bp = p.Bm + (b * p.G + grp) * L * Np;
  const S* Cp = p.Cm + (b * p.G + grp) * L * Np;
  S* dBp = dBt + (b * p.G + grp) * L * Np;
  S* dCp = dCt + (b * p.G + grp) * L * Np;
  const S* dout = q.dout + row * L;
  const S Dd = p.Dskip ? p.Dskip[d] : (S)0;
  dt_row<S>(p.delta + row * L, p.bias ? p.bias[d] : (S)0, p.softplus, L, dt, sig);
  // g = d loss / d y (before the gate); dz.
  if (p.z) {
    const S* zrow = p.z + row * L;
    const S* ys = q.ysave + row * L;
    S* dz = q.dz + row * L;
    int64_t t = 0;
    for (; t + W <= L; t += W) {
      const V zz = loadv<V>(zrow + t), sg = vsigmoid<S>(zz), go = loadv<V>(dout + t);
      storev(g + t, go * zz * sg);
      storev(dz + t, go * loadv<V>(ys + t) * sg * ((S)1 + zz * ((S)1 - sg)));
    }
    for (; t < L; ++t) {
      const S zz = zrow[t], sg = ssigmoid(zz);
      g[t] = dout[t] * zz * sg;
      dz[t] = dout[t] * ys[t] * sg * ((S)1 + zz * ((S)1 - sg));
    }
  } else {
    std::memcpy(g, dout, L * sizeof(S));
  }
  V Av[NV], dh[NV], dAacc[NV];
  double dA[NV * W];
  for (int k = 0; k < NV; ++k) {
    Av[k] = loadv<V>(p.A + d * Np + k * W);
    dh[k] = q.dlast ? loadv<V>(q.dlast + row * Np + k * W) : splat<V>((S)0);
  }
  for (int j = 0; j < NV * W; ++j) dA[j] = 0;
  double dD = 0;
  const S* ck = q.ckpt + row * p.nck * Np;
  for (int64_t c = p.nck - 1; c >= 0; --c) {
    const int64_t t0 = c * p.T, t1 = std::min(L, t0 + p.T), n = t1 - t0;
    // Recompute the chunk's states and decays from its checkpoint.
    for (int k = 0; k < NV; ++k) hbuf[k] = loadv<V>(ck + c * Np + k * W);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = t0 + i;
      const S dtt = dt[t], x = dtt * u[t];
      const S* Bt = Bp + t * Np;
      for (int k = 0; k < NV; ++k) {
        const V da = vexp<S>(Av[k] * dtt);
        abuf[i * NV + k] = da;
        hbuf[(i + 1) * NV + k] = da * hbuf[i * NV + k] + x * loadv<V>(Bt + k * W);
      }
    }
    for (int k = 0; k < NV; ++k) dAacc[k] = splat<V>((S)0);
    S dDc = 0;
    for (int64_t i = n - 1; i >= 0; --i) {
      const int64_t t = t0 + i;
      const S gt = g[t], dtt = dt[t], ut = u[t], x = dtt * ut;
      const S* Bt = Bp + t * Np;
      const S* Ct = Cp + t * Np;
      S* dBrow = dBp + t * Np;
      S* dCrow = dCp + t * Np;
      V sB = splat<V>((S)0), sA = splat<V>((S)0);
      for (int k = 0; k < NV; ++k) {
        const V hk = hbuf[(i + 1) * NV + k], hp = hbuf[i * NV + k], ak = abuf[i * NV + k];
        dh[k] += gt * loadv<V>(Ct + k * W);                              // dL/dh_t
        storev(dCrow + k * W, loadv<V>(dCrow + k * W) + gt * hk);        // dC_t += g_t h_t
        storev(dBrow + k * W, loadv<V>(dBrow + k * W) + x * dh[k]);      // dB_t += dh_t dt_t u_t
        sB += dh[k] * loadv<V>(Bt + k * W);
        const V qv = dh[k] * ak * hp;                                    // dh_t exp(dt A) h_{t-1}
        sA += qv * Av[k];
        dAacc[k] += qv * dtt;
        dh[k] = ak * dh[k];                                              // carry to h_{t-1}
      }
      const S sb = hsum<S>(sB), sa = hsum<S>(sA);
      q.du[row * L + t] = sb * dtt + Dd * gt;
      ddt[t] = sa + ut * sb;
      dDc += gt * ut;
    }
    for (int k = 0; k < NV; ++k)
      for (int j = 0; j < W; ++j) dA[k * W + j] += (double)dAacc[k][j];
    dD += (double)dDc;
  }
  // ddelta = ddt * d dt / d delta (vectorised), dbias = sum over t.
  S* dd = q.ddelta + row * L;
  double db = 0;
  int64_t t = 0;
  for (; t + W <= L; t += W) {
    const V v = loadv<V>(ddt + t) * loadv<V>(sig + t);
    storev(dd + t, v);
    db += (double)hsum<S>(v);
  }
  for (; t < L; ++t) {
    dd[t] = ddt[t] * sig[t];
    db += (double)dd[t];
  }
  for (int j = 0; j < NV * W; ++j) q.dA[row * Np + j] = dA[j];
  q.dD[row] = dD;
  q.dbias[row] = db;
}

template <typename S, int NV>
static void bwd_all(const Problem<S>& p, const Grads<S>& q) {
  using V = typename Vec<S>::V;
  const int64_t per_thread = p.nb * p.G * p.L * p.Np;
#pragma omp parallel
  {
    const int tid = omp_get_thread_num();
    std::vector<S> dt(p.L), sig(p.L), g(p.L), ddt(p.L);
    std::vector<V> hbuf((p.T + 1) * NV), abuf(p.T * NV);
    S* dBt = q.dBbuf + tid * per_thread;
    S* dCt = q.dCbuf + tid * per_thread;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.nb * p.d; ++i)
      bwd_row<S, NV>(p, q, i / p.d, i % p.d, dBt, dCt, dt.data(), sig.data(), g.data(), ddt.data(), hbuf.data(),
                     abuf.data());
  }
}

// ------------------------------------------------------------------------------------------ bindings
template <typename S>
static const S* opt_ptr(const c10::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? t->data_ptr<S>() : nullptr;
}

static void check_inputs(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bm,
                         const at::Tensor& Cm, int64_t T) {
  TORCH_CHECK(u.dim() == 3 && u.is_contiguous() && delta.sizes() == u.sizes() && delta.is_contiguous(),
              "u, delta: contiguous (Bt, D, L)");
  TORCH_CHECK(A.dim() == 2 && A.size(0) == u.size(1) && A.is_contiguous(), "A: contiguous (D, Np)");
  TORCH_CHECK(A.size(1) % (kVecBytes / A.element_size()) == 0, "A: Np must be whole vectors");
  TORCH_CHECK(Bm.dim() == 4 && Bm.sizes() == Cm.sizes() && Bm.is_contiguous() && Cm.is_contiguous(),
              "B, C: contiguous (Bt, G, L, Np)");
  TORCH_CHECK(Bm.size(0) == u.size(0) && Bm.size(2) == u.size(2) && Bm.size(3) == A.size(1) &&
                  u.size(1) % Bm.size(1) == 0,
              "B, C: shape does not match u / A");
  TORCH_CHECK(T >= 1, "checkpoint interval must be >= 1");
  TORCH_CHECK(u.scalar_type() == at::kFloat || u.scalar_type() == at::kDouble, "float32 or float64 only");
}

template <typename S>
static Problem<S> make_problem(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                               const at::Tensor& Bm, const at::Tensor& Cm, const c10::optional<at::Tensor>& Dskip,
                               const c10::optional<at::Tensor>& z, const c10::optional<at::Tensor>& bias,
                               bool softplus, int64_t T) {
  Problem<S> p;
  p.nb = u.size(0); p.d = u.size(1); p.L = u.size(2); p.G = Bm.size(1); p.Np = A.size(1); p.T = T;
  p.nck = (p.L + T - 1) / T;
  p.softplus = softplus;
  p.u = u.data_ptr<S>(); p.delta = delta.data_ptr<S>(); p.A = A.data_ptr<S>();
  p.Bm = Bm.data_ptr<S>(); p.Cm = Cm.data_ptr<S>();
  p.Dskip = opt_ptr<S>(Dskip); p.z = opt_ptr<S>(z); p.bias = opt_ptr<S>(bias);
  return p;
}

#define DISPATCH_NV(NV_VALUE, ...)                                                      \
  switch (NV_VALUE) {                                                                   \
    case 1: { constexpr int NV = 1; __VA_ARGS__; break; }                               \
    case 2: { constexpr int NV = 2; __VA_ARGS__; break; }                               \
    case 4: { constexpr int NV = 4; __VA_ARGS__; break; }                               \
    case 8: { constexpr int NV = 8; __VA_ARGS__; break; }                               \
    case 16: { constexpr int NV = 16; __VA_ARGS__; break; }                             \
    default: TORCH_CHECK(false, "native scan: unsupported number of state vectors ", NV_VALUE); \
  }

// Returns out (Bt, D, L), last state (Bt, D, Np), checkpoints (Bt, D, nck, Np), y before the gate (or empty).
std::vector<at::Tensor> scan_fwd(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor Bm, at::Tensor Cm,
                                 c10::optional<at::Tensor> Dskip, c10::optional<at::Tensor> z,
                                 c10::optional<at::Tensor> bias, bool softplus, int64_t T) {
  check_inputs(u, delta, A, Bm, Cm, T);
  const int64_t nb = u.size(0), d = u.size(1), L = u.size(2), Np = A.size(1), nck = (L + T - 1) / T;
  auto out = at::empty_like(u);
  auto last = at::empty({nb, d, Np}, u.options());
  auto ckpt = at::empty({nb, d, nck, Np}, u.options());
  auto ysave = (z.has_value() && z->defined()) ? at::empty_like(u) : at::empty({0}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_fwd", [&] {
    auto p = make_problem<scalar_t>(u, delta, A, Bm, Cm, Dskip, z, bias, softplus, T);
    const int nv = Np / Vec<scalar_t>::W;
    DISPATCH_NV(nv, fwd_all<scalar_t, NV>(p, out.data_ptr<scalar_t>(), last.data_ptr<scalar_t>(),
                                          ckpt.data_ptr<scalar_t>(), ysave.numel() ? ysave.data_ptr<scalar_t>() : nullptr));
  });
  return {out, last, ckpt, ysave};
}

// Returns du, ddelta, dA (Bt, D, Np) float64, dB and dC per thread (threads, Bt, G, L, Np), dD (Bt, D) float64,
// dbias (Bt, D) float64, dz (or empty). The caller sums the float64 and per-thread parts.
std::vector<at::Tensor> scan_bwd(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor Bm, at::Tensor Cm,
                                 c10::optional<at::Tensor> Dskip, c10::optional<at::Tensor> z,
                                 c10::optional<at::Tensor> bias, bool softplus, int64_t T, at::Tensor ckpt,
                                 at::Tensor ysave, at::Tensor dout, c10::optional<at::Tensor> dlast) {
  check_inputs(u, delta, A, Bm, Cm, T);
  TORCH_CHECK(dout.sizes() == u.sizes() && dout.is_contiguous() && dout.scalar_type() == u.scalar_type(),
              "dout: contiguous, u's shape and dtype");
  const int64_t nb = u.size(0), d = u.size(1), Np = A.size(1);
  const int threads = omp_get_max_threads();
  auto du = at::empty_like(u);
  auto ddelta = at::empty_like(u);
  const bool has_z = z.has_value() && z->defined();
  auto dz = has_z ? at::empty_like(u) : at::empty({0}, u.options());
  auto dBbuf = at::zeros({threads, Bm.size(0), Bm.size(1), Bm.size(2), Bm.size(3)}, u.options());
  auto dCbuf = at::zeros_like(dBbuf);
  auto f64 = u.options().dtype(at::kDouble);
  auto dA = at::empty({nb, d, Np}, f64);
  auto dD = at::empty({nb, d}, f64);
  auto dbias = at::empty({nb, d}, f64);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_bwd", [&] {
    auto p = make_problem<scalar_t>(u, delta, A, Bm, Cm, Dskip, z, bias, softplus, T);
    Grads<scalar_t> q;
    q.dout = dout.data_ptr<scalar_t>();
    q.ysave = has_z ? ysave.data_ptr<scalar_t>() : nullptr;
    q.ckpt = ckpt.data_ptr<scalar_t>();
    q.dlast = opt_ptr<scalar_t>(dlast);
    q.du = du.data_ptr<scalar_t>(); q.ddelta = ddelta.data_ptr<scalar_t>();
    q.dz = has_z ? dz.data_ptr<scalar_t>() : nullptr;
    q.dBbuf = dBbuf.data_ptr<scalar_t>(); q.dCbuf = dCbuf.data_ptr<scalar_t>();
    q.dA = dA.data_ptr<double>(); q.dD = dD.data_ptr<double>(); q.dbias = dbias.data_ptr<double>();
    const int nv = Np / Vec<scalar_t>::W;
    DISPATCH_NV(nv, bwd_all<scalar_t, NV>(p, q));
  });
  return {du, ddelta, dA, dBbuf, dCbuf, dD, dbias, dz};
}

// Vectorised exp over a contiguous tensor (the benchmark's exp-throughput probe); returns exp(x).
at::Tensor vector_exp(at::Tensor x) {
  TORCH_CHECK(x.is_contiguous() && x.scalar_type() == at::kFloat, "vector_exp: contiguous float32");
  auto y = at::empty_like(x);
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  using V = Vec<float>::V;
  constexpr int W = Vec<float>::W;
  const int64_t n = x.numel(), blocks = n / W;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < blocks; ++i) storev(yp + i * W, vexp<float>(loadv<V>(xp + i * W)));
  for (int64_t i = blocks * W; i < n; ++i) yp[i] = std::exp(xp[i]);
  return y;
}

// Compute-bound exp throughput probe: each OpenMP thread evaluates `iters` x 4 vectors of exps in registers.
// Returns the number of exps evaluated (the caller times the call); the checksum keeps the work alive.
std::vector<double> exp_throughput(int64_t iters) {
  using V = Vec<float>::V;
  double checksum = 0, count = 0;
#pragma omp parallel reduction(+ : checksum, count)
  {
    const float start = -1.0f - 0.01f * (float)omp_get_thread_num();
    V x0 = splat<V>(start), x1 = x0 - 0.5f, x2 = x0 - 1.0f, x3 = x0 - 1.5f;
    V a0 = splat<V>(0.f), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < iters; ++i) {
      a0 += vexp<float>(x0);
      a1 += vexp<float>(x1);
      a2 += vexp<float>(x2);
      a3 += vexp<float>(x3);
      x0 -= 1e-6f; x1 -= 1e-6f; x2 -= 1e-6f; x3 -= 1e-6f;
    }
    checksum += (double)hsum<float>(a0 + a1 + a2 + a3);
    count += 4.0 * Vec<float>::W * (double)iters;
  }
  return {count, checksum};
}

int64_t vector_lanes(bool fp64) { return fp64 ? Vec<double>::W : Vec<float>::W; }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_fwd", &scan_fwd, "selective scan forward (CPU)");
  m.def("scan_bwd", &scan_bwd, "selective scan backward (CPU)");
  m.def("vector_exp", &vector_exp, "vectorised polynomial exp (float32)");
  m.def("exp_throughput", &exp_throughput, "exps evaluated by a register-resident exp loop (timing probe)");
  m.def("vector_lanes", &vector_lanes, "SIMD lanes per state vector");
}
