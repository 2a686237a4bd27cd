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

#include "simd_cpu.h"
#include "ss2d_glue_cpu.h"

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

// The backward's recomputation of one chunk of n steps from its checkpoint ck (Np values): the states hbuf[1..n]
// (hbuf[0] = the checkpoint) and the decays abuf[0..n-1], NV vectors each. Step i reads element at(i) of dt and u
// and row at(i) of B (rows bstride apart): t0 + i for a plain row, the direction's pixel for the cross-scan.
template <typename S, int NV, typename At>
static inline void recompute_chunk(const S* ck, int64_t n, At at, const S* dt, const S* u, const S* B,
                                   int64_t bstride, const typename Vec<S>::V* Av, typename Vec<S>::V* hbuf,
                                   typename Vec<S>::V* abuf) {
  using V = typename Vec<S>::V;
  constexpr int W = Vec<S>::W;
  for (int k = 0; k < NV; ++k) hbuf[k] = loadv<V>(ck + k * W);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = at(i);
    const S dtt = dt[t], x = dtt * u[t];
    const S* Bt = B + t * bstride;
    for (int k = 0; k < NV; ++k) {
      const V da = vexp<S>(Av[k] * dtt);
      abuf[i * NV + k] = da;
      hbuf[(i + 1) * NV + k] = da * hbuf[i * NV + k] + x * loadv<V>(Bt + k * W);
    }
  }
}

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
    recompute_chunk<S, NV>(ck + c * Np, n, [t0](int64_t i) { return t0 + i; }, dt, u, Bp, Np, Av, hbuf, abuf);
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

// ------------------------------------------------------------------------------- fused 2-D cross-scan
// SS2D's K (1, 2 or 4) scan orders read straight from the (Bt, E, H, W) map and merged in place. Direction k
// visits pixel pix_k(t) at step t (row-major or column-major, forwards or backwards: index arithmetic, no
// flipped or transposed copies); all inputs stay in pixel order:
//   x    (Bt, E, L)  u, the map (L = H W, row-major pixels)
//   dts  (Bt, K, R, L)  the dt_rank rows of x_proj; Wdt (K, E, R), bias (K, E): delta = Wdt dts + bias is
//        formed per row inside the kernel (R multiply-adds per element: no (Bt, K, E, L) delta tensor)
//   A    (K E, Np);  BC (Bt, L, K, 2, Np): B and C of every direction at each pixel;  Dskip (K E)
//   out  (Bt, E, L) = sum_k y_k: one thread owns a channel for all K directions, so it accumulates in place.
// The backward is the adjoint: every direction reads the same output gradient at pix_k(t) and adds into du.
template <typename S> struct XProb {
  int64_t nb, E, H, W, L, K, R, Np, T, nck;
  bool softplus;
  const S *x, *dts, *Wdt, *bias, *A, *BC, *Dskip;
  int col[4], rev[4];
};

// Walks the pixels of one direction: (i, j) = (row, column); column-major runs down a column first.
struct PathIter {
  int64_t H, W, L, i = 0, j = 0;
  bool col, rev;
  PathIter(int64_t H_, int64_t W_, bool col_, bool rev_) : H(H_), W(W_), L(H_ * W_), col(col_), rev(rev_) {}
  void seek(int64_t t) {
    const int64_t l = rev ? L - 1 - t : t;
    if (col) { i = l % H; j = l / H; } else { i = l / W; j = l % W; }
  }
  int64_t pix() const { return i * W + j; }
  void next() {
    if (!col) {
      if (!rev) { if (++j == W) { j = 0; ++i; } } else { if (--j < 0) { j = W - 1; --i; } }
    } else {
      if (!rev) { if (++i == H) { i = 0; ++j; } } else { if (--i < 0) { i = H - 1; --j; } }
    }
  }
  void fill(int64_t t0, int64_t n, int64_t* out) {
    seek(t0);
    for (int64_t q = 0; q < n; ++q) { out[q] = pix(); next(); }
  }
};

// dt row of direction k, channel d, in pixel order: softplus(sum_r Wdt[k,d,r] dts[b,k,r,:] + bias[k,d]).
template <typename S>
static void dt_row_proj(const XProb<S>& p, int64_t b, int64_t k, int64_t d, S* dt, S* sig) {
  using V = typename Vec<S>::V;
  constexpr int W = Vec<S>::W;
  const int64_t L = p.L, R = p.R;
  const S* w = p.Wdt + (k * p.E + d) * R;
  const S* base = p.dts + (b * p.K + k) * R * L;
  const S bias = p.bias ? p.bias[k * p.E + d] : (S)0;
  int64_t t = 0;
  for (; t + W <= L; t += W) {
    V acc = w[0] * loadv<V>(base + t);
    for (int64_t r = 1; r < R; ++r) acc += w[r] * loadv<V>(base + r * L + t);
    const V x = acc + bias;
    storev(dt + t, p.softplus ? vsoftplus<S>(x) : x);
    if (sig) storev(sig + t, p.softplus ? vsigmoid<S>(x) : splat<V>((S)1));
  }
  for (; t < L; ++t) {
    S acc = w[0] * base[t];
    for (int64_t r = 1; r < R; ++r) acc += w[r] * base[r * L + t];
    const S x = acc + bias;
    dt[t] = p.softplus ? ssoftplus(x) : x;
    if (sig) sig[t] = p.softplus ? ssigmoid(x) : (S)1;
  }
}

template <typename S, int NV, int RR>
static void xfwd_rows(const XProb<S>& p, int64_t b, int64_t d0, S* out, S* ckpt, S* dtbuf, int64_t* pix) {
  using V = typename Vec<S>::V;
  constexpr int W = Vec<S>::W;
  const int64_t L = p.L, Np = p.Np, E = p.E, stride = p.K * 2 * Np;
  const S* u[RR];
  S* o[RR];
  for (int r = 0; r < RR; ++r) {
    const int64_t d = d0 + r;
    u[r] = p.x + (b * E + d) * L;
    o[r] = out + (b * E + d) * L;
    S Dsum = 0;  // the skip term of every direction: (sum_k D[k,d]) u
    if (p.Dskip)
      for (int64_t k = 0; k < p.K; ++k) Dsum += p.Dskip[k * E + d];
    for (int64_t t = 0; t < L; ++t) o[r][t] = Dsum * u[r][t];
  }
  for (int64_t k = 0; k < p.K; ++k) {
    PathIter it(p.H, p.W, p.col[k], p.rev[k]);
    const S* BCk = p.BC + b * L * stride + k * 2 * Np;
    const S* dt[RR];
    S* ck[RR];
    V Av[RR][NV], h[RR][NV];
    for (int r = 0; r < RR; ++r) {
      const int64_t kd = k * E + d0 + r;
      dt_row_proj<S>(p, b, k, d0 + r, dtbuf + r * L, nullptr);
      dt[r] = dtbuf + r * L;
      ck[r] = ckpt ? ckpt + ((b * p.K * E) + kd) * p.nck * Np : nullptr;
      for (int q = 0; q < NV; ++q) {
        Av[r][q] = loadv<V>(p.A + kd * Np + q * W);
        h[r][q] = splat<V>((S)0);
      }
    }
    for (int64_t c = 0; c < p.nck; ++c) {
      if (ckpt)
        for (int r = 0; r < RR; ++r)
          for (int q = 0; q < NV; ++q) storev(ck[r] + c * Np + q * W, h[r][q]);
      const int64_t t0 = c * p.T, n = std::min(L, t0 + p.T) - t0;
      it.fill(t0, n, pix);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t px = pix[i];
        const S* Bt = BCk + px * stride;
        const S* Ct = Bt + Np;
        for (int r = 0; r < RR; ++r) {
          const S dtt = dt[r][px], x = dtt * u[r][px];
          V acc = splat<V>((S)0);
          for (int q = 0; q < NV; ++q) {
            const V da = vexp<S>(Av[r][q] * dtt);
            h[r][q] = da * h[r][q] + x * loadv<V>(Bt + q * W);
            acc += h[r][q] * loadv<V>(Ct + q * W);
          }
          o[r][px] += hsum<S>(acc);
        }
      }
    }
  }
}

template <typename S, int NV>
static void xfwd_all(const XProb<S>& p, S* out, S* ckpt) {
  const int64_t pairs = (p.E + 1) / 2;
#pragma omp parallel
  {
    std::vector<S> dtbuf(2 * p.L);
    std::vector<int64_t> pix(p.T);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.nb * pairs; ++i) {
      const int64_t b = i / pairs, d0 = 2 * (i % pairs);
      if (d0 + 1 < p.E)
        xfwd_rows<S, NV, 2>(p, b, d0, out, ckpt, dtbuf.data(), pix.data());
      else
        xfwd_rows<S, NV, 1>(p, b, d0, out, ckpt, dtbuf.data(), pix.data());
    }
  }
}

template <typename S> struct XGrads {
  const S *gout, *ckpt;
  S *du, *ddelta, *dBC;          // du (Bt, E, L); ddelta (Bt, K, E, L); dBC per thread (threads, Bt, L, K, 2, Np)
  double *dA, *dD, *dbias;       // (Bt, K E, Np), (Bt, K E), (Bt, K E)
};

template <typename S, int NV>
static void xbwd_row(const XProb<S>& p, const XGrads<S>& q, int64_t b, int64_t d, S* dBCt, S* dt, S* sig, S* ddt,
                     int64_t* pix, typename Vec<S>::V* hbuf, typename Vec<S>::V* abuf) {
  using V = typename Vec<S>::V;
  constexpr int W = Vec<S>::W;
  const int64_t L = p.L, Np = p.Np, E = p.E, stride = p.K * 2 * Np;
  const S* u = p.x + (b * E + d) * L;
  const S* g = q.gout + (b * E + d) * L;
  S* du = q.du + (b * E + d) * L;
  std::memset(du, 0, L * sizeof(S));
  for (int64_t k = 0; k < p.K; ++k) {
    const int64_t kd = k * E + d;
    const S Dd = p.Dskip ? p.Dskip[kd] : (S)0;
    const S* BCk = p.BC + b * L * stride + k * 2 * Np;
    S* dBCk = dBCt + b * L * stride + k * 2 * Np;
    dt_row_proj<S>(p, b, k, d, dt, sig);
    PathIter it(p.H, p.W, p.col[k], p.rev[k]);
    V Av[NV], dh[NV], dAacc[NV];
    double dA[NV * W];
    for (int j = 0; j < NV; ++j) {
      Av[j] = loadv<V>(p.A + kd * Np + j * W);
      dh[j] = splat<V>((S)0);
    }
    for (int j = 0; j < NV * W; ++j) dA[j] = 0;
    double dD = 0;
    const S* ck = q.ckpt + ((b * p.K * E) + kd) * p.nck * Np;
    for (int64_t c = p.nck - 1; c >= 0; --c) {
      const int64_t t0 = c * p.T, n = std::min(L, t0 + p.T) - t0;
      it.fill(t0, n, pix);
      recompute_chunk<S, NV>(ck + c * Np, n, [pix](int64_t i) { return pix[i]; }, dt, u, BCk, stride, Av, hbuf,
                             abuf);
      for (int j = 0; j < NV; ++j) dAacc[j] = splat<V>((S)0);
      S dDc = 0;
      for (int64_t i = n - 1; i >= 0; --i) {
        const int64_t px = pix[i];
        const S gt = g[px], dtt = dt[px], ut = u[px], x = dtt * ut;
        const S* Bt = BCk + px * stride;
        const S* Ct = Bt + Np;
        S* dBrow = dBCk + px * stride;
        S* dCrow = dBrow + Np;
        V sB = splat<V>((S)0), sA = splat<V>((S)0);
        for (int j = 0; j < NV; ++j) {
          const V hk = hbuf[(i + 1) * NV + j], hp = hbuf[i * NV + j], ak = abuf[i * NV + j];
          dh[j] += gt * loadv<V>(Ct + j * W);
          storev(dCrow + j * W, loadv<V>(dCrow + j * W) + gt * hk);
          storev(dBrow + j * W, loadv<V>(dBrow + j * W) + x * dh[j]);
          sB += dh[j] * loadv<V>(Bt + j * W);
          const V qv = dh[j] * ak * hp;
          sA += qv * Av[j];
          dAacc[j] += qv * dtt;
          dh[j] = ak * dh[j];
        }
        const S sb = hsum<S>(sB), sa = hsum<S>(sA);
        du[px] += sb * dtt + Dd * gt;
        ddt[px] = sa + ut * sb;
        dDc += gt * ut;
      }
      for (int j = 0; j < NV; ++j)
        for (int l = 0; l < W; ++l) dA[j * W + l] += (double)dAacc[j][l];
      dD += (double)dDc;
    }
    S* dd = q.ddelta + ((b * p.K + k) * E + d) * L;
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
    for (int j = 0; j < NV * W; ++j) q.dA[(b * p.K * E + kd) * Np + j] = dA[j];
    q.dD[b * p.K * E + kd] = dD;
    q.dbias[b * p.K * E + kd] = db;
  }
}

template <typename S, int NV>
static void xbwd_all(const XProb<S>& p, const XGrads<S>& q) {
  using V = typename Vec<S>::V;
  const int64_t per_thread = p.nb * p.L * p.K * 2 * p.Np;
#pragma omp parallel
  {
    const int tid = omp_get_thread_num();
    std::vector<S> dt(p.L), sig(p.L), ddt(p.L);
    std::vector<int64_t> pix(p.T);
    std::vector<V> hbuf((p.T + 1) * NV), abuf(p.T * NV);
    S* dBCt = q.dBC + tid * per_thread;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.nb * p.E; ++i)
      xbwd_row<S, NV>(p, q, i / p.E, i % p.E, dBCt, dt.data(), sig.data(), ddt.data(), pix.data(), hbuf.data(),
                      abuf.data());
  }
}

template <typename S>
static XProb<S> make_xproblem(const at::Tensor& x, const at::Tensor& dts, const at::Tensor& Wdt,
                              const c10::optional<at::Tensor>& bias, const at::Tensor& A, const at::Tensor& BC,
                              const c10::optional<at::Tensor>& Dskip, const std::vector<int64_t>& codes, int64_t H,
                              int64_t W, bool softplus, int64_t T) {
  XProb<S> p;
  p.nb = x.size(0); p.E = x.size(1); p.L = x.size(2); p.H = H; p.W = W; p.K = (int64_t)codes.size();
  p.R = Wdt.size(2); p.Np = A.size(1); p.T = T; p.nck = (p.L + T - 1) / T; p.softplus = softplus;
  p.x = x.data_ptr<S>(); p.dts = dts.data_ptr<S>(); p.Wdt = Wdt.data_ptr<S>(); p.bias = opt_ptr<S>(bias);
  p.A = A.data_ptr<S>(); p.BC = BC.data_ptr<S>(); p.Dskip = opt_ptr<S>(Dskip);
  for (int64_t k = 0; k < p.K; ++k) { p.col[k] = (int)(codes[k] & 1); p.rev[k] = (int)((codes[k] >> 1) & 1); }
  return p;
}

static void check_xinputs(const at::Tensor& x, const at::Tensor& dts, const at::Tensor& Wdt,
                          const c10::optional<at::Tensor>& bias, const at::Tensor& A, const at::Tensor& BC,
                          const c10::optional<at::Tensor>& Dskip, const std::vector<int64_t>& codes, int64_t H,
                          int64_t W, int64_t T, bool channels_last = false) {
  const int64_t K = (int64_t)codes.size();
  TORCH_CHECK(K >= 1 && K <= 4, "cross-scan: 1 to 4 directions");
  for (auto c : codes) TORCH_CHECK(c >= 0 && c <= 3, "cross-scan: direction codes are 0..3");
  const int le = channels_last ? 1 : 2;   // x: (Bt, E, L), or (Bt, L, E) channels-last
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous() && x.size(le) == H * W && H >= 1 && W >= 1,
              channels_last ? "cross-scan: x contiguous (Bt, H*W, E)" : "cross-scan: x contiguous (Bt, E, H*W)");
  const int64_t nb = x.size(0), E = x.size(3 - le), L = x.size(le);
  TORCH_CHECK(Wdt.dim() == 3 && Wdt.size(0) == K && Wdt.size(1) == E && Wdt.is_contiguous() && Wdt.size(2) >= 1,
              "cross-scan: Wdt contiguous (K, E, R)");
  const int64_t R = Wdt.size(2);
  TORCH_CHECK(dts.dim() == 4 && dts.size(0) == nb && dts.size(1) == K && dts.size(2) == R && dts.size(3) == L &&
                  dts.is_contiguous(), "cross-scan: dts contiguous (Bt, K, R, L)");
  TORCH_CHECK(A.dim() == 2 && A.size(0) == K * E && A.is_contiguous(), "cross-scan: A contiguous (K*E, Np)");
  TORCH_CHECK(A.size(1) % (kVecBytes / A.element_size()) == 0, "cross-scan: Np must be whole vectors");
  const int64_t Np = A.size(1);
  TORCH_CHECK(BC.dim() == 5 && BC.size(0) == nb && BC.size(1) == L && BC.size(2) == K && BC.size(3) == 2 &&
                  BC.size(4) == Np && BC.is_contiguous(), "cross-scan: BC contiguous (Bt, L, K, 2, Np)");
  if (bias.has_value() && bias->defined())
    TORCH_CHECK(bias->numel() == K * E && bias->is_contiguous(), "cross-scan: bias contiguous (K, E)");
  if (Dskip.has_value() && Dskip->defined())
    TORCH_CHECK(Dskip->numel() == K * E && Dskip->is_contiguous(), "cross-scan: D contiguous (K*E)");
  for (const at::Tensor* t : {&dts, &Wdt, &A, &BC})
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), "cross-scan: one dtype for every input");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "float32 or float64 only");
  TORCH_CHECK(T >= 1, "checkpoint interval must be >= 1");
}

// Returns out (Bt, E, L) and the state checkpoints (Bt, K*E, nck, Np) (empty unless save).
std::vector<at::Tensor> cross_scan_fwd(at::Tensor x, at::Tensor dts, at::Tensor Wdt, c10::optional<at::Tensor> bias,
                                       at::Tensor A, at::Tensor BC, c10::optional<at::Tensor> Dskip,
                                       std::vector<int64_t> codes, int64_t H, int64_t W, bool softplus, int64_t T,
                                       bool save) {
  check_xinputs(x, dts, Wdt, bias, A, BC, Dskip, codes, H, W, T);
  const int64_t nb = x.size(0), E = x.size(1), L = x.size(2), K = (int64_t)codes.size(), Np = A.size(1);
  auto out = at::empty_like(x);
  auto ckpt = save ? at::empty({nb, K * E, (L + T - 1) / T, Np}, x.options()) : at::empty({0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cross_scan_fwd", [&] {
    auto p = make_xproblem<scalar_t>(x, dts, Wdt, bias, A, BC, Dskip, codes, H, W, softplus, T);
    const int nv = Np / Vec<scalar_t>::W;
    DISPATCH_NV(nv, xfwd_all<scalar_t, NV>(p, out.data_ptr<scalar_t>(), save ? ckpt.data_ptr<scalar_t>() : nullptr));
  });
  return {out, ckpt};
}

// ----------------------------------------------------------- fused cross-scan, inference: channels on lanes
// The forward without checkpoints (no gradient wanted), for inference. Here a SIMD vector holds W consecutive
// channels of one direction instead of the N states of one channel: the channels of a direction share B_t and
// C_t, so each state n is one vector update h_n = exp(Δ A_n) h_n + Δ u B_t[n] (B_t[n] broadcast) and the output
// y = sum_n C_t[n] h_n needs no horizontal sum. u and y are read and written channels-last, (Bt, L, E): W
// consecutive floats per pixel, the layout SS2D's LayerNorm wants next. Δ = softplus(Wdt dts + bias) is formed
// per pixel for the W channels (R broadcast multiply-adds). The same recurrence as xfwd_rows, in another order, with
// the decays by vexp2_nonpos. Steps go in blocks of kLaneBlock: pass 1 forms Δ and Δ u of the block's steps (the
// softplus's long latency overlaps across steps instead of sitting on each step's path to the recurrence); pass 2
// runs the recurrence kLaneStates states at a time (each h_n walks the block's steps in a register: independent
// chains, few live registers) and sums y_t over n in order in an L1 buffer. Measured on a 2-core AMD EPYC (Zen 5),
// MambaIR light's layer (E = 90, 128x128, K = 4, N = 16), builds side by side in one process: the former
// one-pass kernel 19 ms (GCC kept its 16 states on the stack); two passes ~13 ms; with the exp2 decays ~10.5 ms;
// with the states-in-registers pass 2 ~10.2 ms (pass 1 alone: ~3.5 ms). Keeping a block's decays in L1 (a third
// pass) was slower (16.5 ms).
constexpr int kLaneBlock = 16;   // steps per block of the lane kernel's two passes
constexpr int kLaneStates = 4;   // states interleaved in the lane kernel's recurrence pass

template <typename S, int NS>
static void xfwd_lanes_group(const XProb<S>& p, int64_t b, int64_t d0, S* out) {
  using V = typename Vec<S>::V;
  constexpr int W = Vec<S>::W;
  const int m = (int)std::min<int64_t>(W, p.E - d0);   // channels in this group (the last one may be partial)
  const int64_t L = p.L, E = p.E, R = p.R, Np = p.Np, stride = p.K * 2 * Np;
  const S* u = p.x + b * L * E + d0;                    // u(px) = u[px * E .. + m]
  S* o = out + b * L * E + d0;
  {
    S Dsum[W] = {};
    if (p.Dskip)
      for (int64_t k = 0; k < p.K; ++k)
        for (int c = 0; c < m; ++c) Dsum[c] += p.Dskip[k * E + d0 + c];
    const V Dv = load_lanes<S>(Dsum, W);
    for (int64_t t = 0; t < L; ++t) store_lanes<S>(o + t * E, Dv * load_lanes<S>(u + t * E, m), m);
  }
  for (int64_t k = 0; k < p.K; ++k) {
    S tmp[W];
    alignas(64) S Aarr[NS][W];   // A log2 e of the group's channels, per state
    V Wv[16], h[NS];
    for (int n = 0; n < NS; ++n) {
      for (int c = 0; c < W; ++c) Aarr[n][c] = c < m ? p.A[(k * E + d0 + c) * Np + n] * kLog2e<S> : (S)0;
      h[n] = splat<V>((S)0);
    }
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < W; ++c) tmp[c] = c < m ? p.Wdt[(k * E + d0 + c) * R + r] : (S)0;
      Wv[r] = loadv<V>(tmp);
    }
    for (int c = 0; c < W; ++c) tmp[c] = c < m && p.bias ? p.bias[k * E + d0 + c] : (S)0;
    const V biasv = loadv<V>(tmp);
    const S* dts = p.dts + (b * p.K + k) * R * L;
    const S* BCk = p.BC + b * L * stride + k * 2 * Np;
    PathIter it(p.H, p.W, p.col[k], p.rev[k]), ahead(p.H, p.W, p.col[k], p.rev[k]);
    it.seek(0);
    // column-major paths jump W pixels a step (a new page each time, which hardware prefetchers do not follow):
    // prefetch the rows of u, out, B and C kPrefetch steps ahead
    constexpr int64_t kPrefetch = 2 * kLaneBlock;
    ahead.seek(std::min<int64_t>(kPrefetch, L - 1));
    V dtb[kLaneBlock], xb[kLaneBlock];
    int64_t pxb[kLaneBlock];
    for (int64_t t0 = 0; t0 < L; t0 += kLaneBlock) {
      const int nt = (int)std::min<int64_t>(kLaneBlock, L - t0);
      // pass 1: Δ = softplus(Wdt dts + bias) and Δ u of the block's steps (independent of each other: their long
      // softplus latencies overlap instead of sitting on each step's path to the recurrence)
      for (int i = 0; i < nt; ++i, it.next()) {
        const int64_t px = it.pix();
        if (t0 + i + kPrefetch < L) {
          const int64_t pa = ahead.pix();
          __builtin_prefetch(u + pa * E);
          __builtin_prefetch(o + pa * E, 1);
          __builtin_prefetch(BCk + pa * stride);
          __builtin_prefetch(BCk + pa * stride + Np);
          ahead.next();
        }
        V a = biasv;
        for (int r = 0; r < R; ++r) a += Wv[r] * dts[r * L + px];
        const V dt = p.softplus ? vsoftplus<S>(a) : a;
        pxb[i] = px;
        dtb[i] = dt;
        xb[i] = dt * load_lanes<S>(u + px * E, m);
      }
      // pass 2: the recurrence, G states at a time: each h_n walks the block's steps in a register, and y_t = sum_n
      // C_t[n] h_n accumulates in L1 (in order n = 0, 1, ..., as a serial sum)
      V yb[kLaneBlock];
      for (int i = 0; i < nt; ++i) yb[i] = splat<V>((S)0);
      constexpr int G = NS < kLaneStates ? NS : kLaneStates;   // states interleaved: G independent h chains
      for (int n0 = 0; n0 < NS; n0 += G) {
        V a2[G], hn[G];
        for (int g = 0; g < G; ++g) {
          a2[g] = loadv<V>(Aarr[n0 + g]);
          hn[g] = h[n0 + g];
        }
        for (int i = 0; i < nt; ++i) {
          const S* Bt = BCk + pxb[i] * stride + n0;
          V y = yb[i];
#pragma GCC unroll 8
          for (int g = 0; g < G; ++g) {
            hn[g] = vexp2_nonpos<S>(a2[g] * dtb[i]) * hn[g] + xb[i] * Bt[g];
            y += hn[g] * Bt[Np + g];
          }
          yb[i] = y;
        }
        for (int g = 0; g < G; ++g) h[n0 + g] = hn[g];
      }
      for (int i = 0; i < nt; ++i) {
        S* op = o + pxb[i] * E;
        store_lanes<S>(op, load_lanes<S>(op, m) + yb[i], m);
      }
    }
  }
}

template <typename S, int NS>
static void xfwd_lanes_all(const XProb<S>& p, S* out) {
  constexpr int W = Vec<S>::W;
  const int64_t groups = (p.E + W - 1) / W;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.nb * groups; ++i) xfwd_lanes_group<S, NS>(p, i / groups, (i % groups) * W, out);
}

// The supported state sizes of the lane kernel (N a compile-time constant keeps the N state vectors in registers).
static bool lanes_supported(int64_t n) { return n == 1 || n == 2 || n == 4 || n == 8 || n == 16; }

// Inference forward: x channels-last (Bt, L, E); returns out (Bt, L, E). n_state: the real N (<= Np; the padded
// states of A / BC are skipped). Other arguments as cross_scan_fwd's; dt_rank R <= 16.
at::Tensor cross_scan_fwd_lanes(at::Tensor x, at::Tensor dts, at::Tensor Wdt, c10::optional<at::Tensor> bias,
                                at::Tensor A, at::Tensor BC, c10::optional<at::Tensor> Dskip,
                                std::vector<int64_t> codes, int64_t H, int64_t W, bool softplus, int64_t n_state) {
  check_xinputs(x, dts, Wdt, bias, A, BC, Dskip, codes, H, W, 1, /*channels_last=*/true);
  TORCH_CHECK(lanes_supported(n_state) && n_state <= A.size(1), "cross-scan lanes: N must be 1, 2, 4, 8 or 16");
  TORCH_CHECK(Wdt.size(2) <= 16, "cross-scan lanes: dt_rank <= 16");
  TORCH_CHECK(softplus, "cross-scan lanes: softplus delta (its exp assumes delta A <= 0)");
  auto out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cross_scan_fwd_lanes", [&] {
    // the problem in the row kernel's terms, with x / out channels-last
    XProb<scalar_t> p;
    p.nb = x.size(0); p.L = x.size(1); p.E = x.size(2); p.H = H; p.W = W; p.K = (int64_t)codes.size();
    p.R = Wdt.size(2); p.Np = A.size(1); p.T = 1; p.nck = 0; p.softplus = softplus;
    p.x = x.data_ptr<scalar_t>(); p.dts = dts.data_ptr<scalar_t>(); p.Wdt = Wdt.data_ptr<scalar_t>();
    p.bias = opt_ptr<scalar_t>(bias); p.A = A.data_ptr<scalar_t>(); p.BC = BC.data_ptr<scalar_t>();
    p.Dskip = opt_ptr<scalar_t>(Dskip);
    for (int64_t k = 0; k < p.K; ++k) { p.col[k] = (int)(codes[k] & 1); p.rev[k] = (int)((codes[k] >> 1) & 1); }
    scalar_t* o = out.data_ptr<scalar_t>();
    switch (n_state) {
      case 1: xfwd_lanes_all<scalar_t, 1>(p, o); break;
      case 2: xfwd_lanes_all<scalar_t, 2>(p, o); break;
      case 4: xfwd_lanes_all<scalar_t, 4>(p, o); break;
      case 8: xfwd_lanes_all<scalar_t, 8>(p, o); break;
      default: xfwd_lanes_all<scalar_t, 16>(p, o); break;
    }
  });
  return out;
}

// Returns du (Bt, E, L), ddelta (Bt, K, E, L) (d loss / d (Wdt dts + bias)), dBC per thread
// (threads, Bt, L, K, 2, Np), dA (Bt, K*E, Np), dD and dbias (Bt, K*E), the last three float64.
std::vector<at::Tensor> cross_scan_bwd(at::Tensor x, at::Tensor dts, at::Tensor Wdt, c10::optional<at::Tensor> bias,
                                       at::Tensor A, at::Tensor BC, c10::optional<at::Tensor> Dskip,
                                       std::vector<int64_t> codes, int64_t H, int64_t W, bool softplus, int64_t T,
                                       at::Tensor ckpt, at::Tensor gout) {
  check_xinputs(x, dts, Wdt, bias, A, BC, Dskip, codes, H, W, T);
  TORCH_CHECK(gout.sizes() == x.sizes() && gout.is_contiguous() && gout.scalar_type() == x.scalar_type(),
              "cross-scan: gout contiguous, x's shape and dtype");
  const int64_t nb = x.size(0), E = x.size(1), L = x.size(2), K = (int64_t)codes.size(), Np = A.size(1);
  TORCH_CHECK(ckpt.dim() == 4 && ckpt.size(0) == nb && ckpt.size(1) == K * E && ckpt.size(3) == Np &&
                  ckpt.size(2) == (L + T - 1) / T && ckpt.is_contiguous(), "cross-scan: checkpoints");
  const int threads = omp_get_max_threads();
  auto du = at::empty_like(x);
  auto ddelta = at::empty({nb, K, E, L}, x.options());
  auto dBC = at::zeros({threads, nb, L, K, 2, Np}, x.options());
  auto f64 = x.options().dtype(at::kDouble);
  auto dA = at::empty({nb, K * E, Np}, f64);
  auto dD = at::empty({nb, K * E}, f64);
  auto dbias = at::empty({nb, K * E}, f64);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cross_scan_bwd", [&] {
    auto p = make_xproblem<scalar_t>(x, dts, Wdt, bias, A, BC, Dskip, codes, H, W, softplus, T);
    XGrads<scalar_t> q;
    q.gout = gout.data_ptr<scalar_t>(); q.ckpt = ckpt.data_ptr<scalar_t>();
    q.du = du.data_ptr<scalar_t>(); q.ddelta = ddelta.data_ptr<scalar_t>(); q.dBC = dBC.data_ptr<scalar_t>();
    q.dA = dA.data_ptr<double>(); q.dD = dD.data_ptr<double>(); q.dbias = dbias.data_ptr<double>();
    const int nv = Np / Vec<scalar_t>::W;
    DISPATCH_NV(nv, xbwd_all<scalar_t, NV>(p, q));
  });
  return {du, ddelta, dBC, dA, dD, dbias};
}

// ------------------------------------------------------------------------------------ layout conversion
// (nb, P, Q) -> (nb, Q, P), both contiguous: the channels-last <-> channels-first conversion around the fused
// cross-scan (x (Bt, L, E) -> u (Bt, E, L); y (Bt, E, L) -> (Bt, L, E) for the LayerNorm over E). Tiles of TB x TB
// stay in L1 on both sides; torch's strided copy of a permuted tensor walks one side with a large stride.
template <typename S>
static void transpose_tiles(const S* src, S* dst, int64_t nb, int64_t P, int64_t Q) {
  constexpr int64_t TB = 64, SB = 8;  // 64 x 64 tiles (threads), walked in 8 x 8 blocks through registers
  const int64_t tp = (P + TB - 1) / TB, tq = (Q + TB - 1) / TB;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < nb * tp * tq; ++i) {
    const int64_t b = i / (tp * tq), p0 = (i / tq % tp) * TB, q0 = (i % tq) * TB;
    const int64_t p1 = std::min(P, p0 + TB), q1 = std::min(Q, q0 + TB);
    const S* s = src + b * P * Q;
    S* d = dst + b * P * Q;
    for (int64_t pb = p0; pb < p1; pb += SB)
      for (int64_t qb = q0; qb < q1; qb += SB) {
        const int64_t pe = std::min(p1, pb + SB), qe = std::min(q1, qb + SB);
        if (pe - pb == SB && qe - qb == SB) {
          S blk[SB][SB];
          for (int a = 0; a < SB; ++a)
            for (int c = 0; c < SB; ++c) blk[c][a] = s[(pb + a) * Q + qb + c];
          for (int c = 0; c < SB; ++c)
            for (int a = 0; a < SB; ++a) d[(qb + c) * P + pb + a] = blk[c][a];
        } else {
          for (int64_t p = pb; p < pe; ++p)
            for (int64_t q = qb; q < qe; ++q) d[q * P + p] = s[p * Q + q];
        }
      }
  }
}

at::Tensor transpose_last2(at::Tensor x) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous() && x.device().is_cpu(),
              "transpose_last2: a contiguous (nb, P, Q) CPU tensor");
  auto y = at::empty({x.size(0), x.size(2), x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "transpose_last2", [&] {
    transpose_tiles<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), x.size(0), x.size(1), x.size(2));
  });
  return y;
}

// Vectorised exp over a contiguous tensor (the benchmarks' exp-throughput probe and the tests' window on the two
// exps); returns exp(x) (written into out when given: a preallocated output keeps page faults out of the timing).
// decay: the lane kernel's decay exp (vdecay, for x <= 0) instead of vexp.
at::Tensor vector_exp(at::Tensor x, c10::optional<at::Tensor> out, bool decay) {
  TORCH_CHECK(x.is_contiguous() && x.scalar_type() == at::kFloat, "vector_exp: contiguous float32");
  auto y = out.has_value() && out->defined() ? *out : at::empty_like(x);
  TORCH_CHECK(y.sizes() == x.sizes() && y.is_contiguous() && y.scalar_type() == at::kFloat,
              "vector_exp: out must be contiguous float32 of x's shape");
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  using V = Vec<float>::V;
  constexpr int W = Vec<float>::W;
  const int64_t n = x.numel(), blocks = n / W;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < blocks; ++i) {
    const V v = loadv<V>(xp + i * W);
    storev(yp + i * W, decay ? vdecay<float>(v) : vexp<float>(v));
  }
  if (blocks * W < n) {   // the tail through one zero-padded vector: the same arithmetic as the rest
    float tmp[W] = {};
    std::memcpy(tmp, xp + blocks * W, (n - blocks * W) * sizeof(float));
    const V v = loadv<V>(tmp);
    storev(tmp, decay ? vdecay<float>(v) : vexp<float>(v));
    std::memcpy(yp + blocks * W, tmp, (n - blocks * W) * sizeof(float));
  }
  return y;
}

// Compute-bound exp throughput probe: each OpenMP thread evaluates `iters` x 4 vectors of exps in registers (vexp,
// or with decay the lane kernel's vdecay on the same arguments, all <= 0). Returns the number of exps evaluated (the
// caller times the call); the checksum keeps the work alive.
template <bool Decay> static std::vector<double> exp_throughput_impl(int64_t iters) {
  using V = Vec<float>::V;
  double checksum = 0, count = 0;
#pragma omp parallel reduction(+ : checksum, count)
  {
    const float start = -1.0f - 0.01f * (float)omp_get_thread_num();
    V x0 = splat<V>(start), x1 = x0 - 0.5f, x2 = x0 - 1.0f, x3 = x0 - 1.5f;
    V a0 = splat<V>(0.f), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < iters; ++i) {
      a0 += Decay ? vdecay<float>(x0) : vexp<float>(x0);
      a1 += Decay ? vdecay<float>(x1) : vexp<float>(x1);
      a2 += Decay ? vdecay<float>(x2) : vexp<float>(x2);
      a3 += Decay ? vdecay<float>(x3) : vexp<float>(x3);
      x0 -= 1e-6f; x1 -= 1e-6f; x2 -= 1e-6f; x3 -= 1e-6f;
    }
    checksum += (double)hsum<float>(a0 + a1 + a2 + a3);
    count += 4.0 * Vec<float>::W * (double)iters;
  }
  return {count, checksum};
}
std::vector<double> exp_throughput(int64_t iters, bool decay) {
  return decay ? exp_throughput_impl<true>(iters) : exp_throughput_impl<false>(iters);
}

int64_t vector_lanes(bool fp64) { return fp64 ? Vec<double>::W : Vec<float>::W; }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_fwd", &scan_fwd, "selective scan forward (CPU)");
  m.def("scan_bwd", &scan_bwd, "selective scan backward (CPU)");
  m.def("cross_scan_fwd", &cross_scan_fwd, "fused K-direction 2-D cross-scan forward (CPU)");
  m.def("cross_scan_bwd", &cross_scan_bwd, "fused K-direction 2-D cross-scan backward (CPU)");
  m.def("cross_scan_fwd_lanes", &cross_scan_fwd_lanes,
        "fused cross-scan forward for inference, channels on SIMD lanes, channels-last x and out (CPU)");
  m.def("transpose_last2", &transpose_last2, "(nb, P, Q) -> (nb, Q, P) contiguous, in cache tiles (CPU)");
  m.def("vector_exp", &vector_exp, "vectorised polynomial exp (float32), into out when given; decay: the lane "
        "kernel's exp for x <= 0", py::arg("x"), py::arg("out") = py::none(), py::arg("decay") = false);
  m.def("exp_throughput", &exp_throughput, "exps evaluated by a register-resident exp loop (timing probe)",
        py::arg("iters"), py::arg("decay") = false);
  m.def("vector_lanes", &vector_lanes, "SIMD lanes per state vector");
  m.def("layernorm_silu_gate", &layernorm_silu_gate, "LayerNorm(y) * SiLU(z) over (P, E) rows (CPU)",
        py::arg("y"), py::arg("z"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("eps") = 1e-5);
}
