// SS2D's inference glue around the scan (restore_core/ssm/ss2d.py, without autograd): the output gate
// LayerNorm(y) * SiLU(z) in one pass over the map (torch: layer_norm, SiLU and a multiply, a temporary map each).
// Channels ride the SIMD lanes (W per vector, the last group of a pixel partial); OpenMP runs over pixels. The same
// function as the torch ops to float rounding (tests/test_ss2d_glue.py).
#include "ss2d_glue_cpu.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "simd_cpu.h"

template <typename S> static inline typename Vec<S>::V vsilu(typename Vec<S>::V x) { return x * vsigmoid<S>(x); }

// out[q, :] = ((y[q, :] - mean) / sqrt(var + eps) * weight + bias) * SiLU(z[q, :]) for each pixel q, mean and
// (biased) variance over the E channels, as torch's layer_norm (two passes over the row: mean, then the squared
// deviations). A row's last vector group reads (and writes) whole vectors past its E channels where that stays
// inside the views (into the next row) and masks the extra lanes; the last rows use partial copies.
template <typename S, bool Whole>
static inline typename Vec<S>::V load_group(const S* p, int m, typename Vec<S>::V keep) {
  using V = typename Vec<S>::V;
  if (Whole) return m == Vec<S>::W ? loadv<V>(p) : (keep != (S)0 ? loadv<V>(p) : splat<V>((S)0));
  return load_lanes<S>(p, m);
}

template <typename S, bool Whole>
static inline void gate_row(const S* yr, const S* zr, int64_t E, const S* w, const S* bias, S eps,
                            typename Vec<S>::V keep, S* orow) {
  using V = typename Vec<S>::V;
  constexpr int W = Vec<S>::W;
  const int64_t groups = (E + W - 1) / W;
  V s = splat<V>((S)0);
  for (int64_t g = 0; g < groups; ++g)
    s += load_group<S, Whole>(yr + g * W, (int)std::min<int64_t>(W, E - g * W), keep);
  const S mean = hsum<S>(s) / (S)E;
  V v = splat<V>((S)0);
  for (int64_t g = 0; g < groups; ++g) {
    const int m = (int)std::min<int64_t>(W, E - g * W);
    V d = load_group<S, Whole>(yr + g * W, m, keep) - mean;
    if (m < W) d = keep != (S)0 ? d : splat<V>((S)0);   // padded lanes add no deviation
    v += d * d;
  }
  const S rstd = (S)1 / std::sqrt(hsum<S>(v) / (S)E + eps);
  for (int64_t g = 0; g < groups; ++g) {
    const int m = (int)std::min<int64_t>(W, E - g * W);
    V n = (load_group<S, Whole>(yr + g * W, m, keep) - mean) * rstd * loadv<V>(w + g * W);
    if (bias) n += loadv<V>(bias + g * W);
    const V o = n * vsilu<S>(load_group<S, Whole>(zr + g * W, m, keep));
    if (Whole) storev(orow + g * W, o);   // past E: the next row's first channels, which it then overwrites
    else store_lanes<S>(orow + g * W, o, m);
  }
}

template <typename S>
static void layernorm_gate_impl(const S* y, int64_t sy, const S* z, int64_t sz, int64_t P, int64_t E, const S* w,
                                const S* bias, S eps, S* out) {
  using V = typename Vec<S>::V;
  constexpr int W = Vec<S>::W;
  const int64_t Ep = (E + W - 1) / W * W, tail = E - (Ep - W);   // channels in the last group
  V keep;                                                          // 1 on the last group's real lanes
  for (int l = 0; l < W; ++l) keep[l] = l < tail ? (S)1 : (S)0;
#pragma omp parallel
  {
    // a contiguous run of rows per thread, in order: a row's whole-vector stores past E land on the next row of the
    // same run, written after it; the run's last row stores partial vectors
    const int nth = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t q0 = P * tid / nth, q1 = P * (tid + 1) / nth;
    for (int64_t q = q0; q < q1; ++q) {
      // whole-vector reads of row q end at q s + Ep: inside the view while <= (P - 1) s + E, for y and z; the
      // output row's end: inside the run while q + 1 < q1 (Ep - E < W <= ... one row ahead at most when E >= W)
      const bool whole = q * sy + Ep <= (P - 1) * sy + E && q * sz + Ep <= (P - 1) * sz + E &&
                         q * E + Ep <= (q1 - 1) * E + E;
      if (whole)
        gate_row<S, true>(y + q * sy, z + q * sz, E, w, bias, eps, keep, out + q * E);
      else
        gate_row<S, false>(y + q * sy, z + q * sz, E, w, bias, eps, keep, out + q * E);
    }
  }
}

at::Tensor layernorm_silu_gate(at::Tensor y, at::Tensor z, at::Tensor weight, c10::optional<at::Tensor> bias,
                               double eps) {
  TORCH_CHECK(y.dim() == 2 && z.dim() == 2 && z.sizes() == y.sizes() && y.stride(1) == 1 && z.stride(1) == 1,
              "layernorm_silu_gate: y, z (P, E) rows with contiguous channels (any row stride)");
  const int64_t P = y.size(0), E = y.size(1);
  TORCH_CHECK(E >= 1 && weight.numel() == E, "layernorm_silu_gate: weight (E)");
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias)
    TORCH_CHECK(bias->numel() == E && bias->scalar_type() == y.scalar_type(), "layernorm_silu_gate: bias (E)");
  for (const at::Tensor* t : {&z, &weight})
    TORCH_CHECK(t->scalar_type() == y.scalar_type(), "layernorm_silu_gate: one dtype");
  TORCH_CHECK(y.scalar_type() == at::kFloat || y.scalar_type() == at::kDouble, "float32 or float64 only");
  auto out = at::empty({P, E}, y.options());
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "layernorm_silu_gate", [&] {
    constexpr int W = Vec<scalar_t>::W;
    const int64_t Ep = (E + W - 1) / W * W;
    std::vector<scalar_t> w(Ep, (scalar_t)0), b(Ep, (scalar_t)0);   // padded to whole vectors
    auto wc = weight.contiguous();
    std::copy(wc.data_ptr<scalar_t>(), wc.data_ptr<scalar_t>() + E, w.begin());
    if (has_bias) {
      auto bc = bias->contiguous();
      std::copy(bc.data_ptr<scalar_t>(), bc.data_ptr<scalar_t>() + E, b.begin());
    }
    layernorm_gate_impl<scalar_t>(y.data_ptr<scalar_t>(), y.stride(0), z.data_ptr<scalar_t>(), z.stride(0), P, E,
                                  w.data(), has_bias ? b.data() : nullptr, (scalar_t)eps, out.data_ptr<scalar_t>());
  });
  return out;
}
