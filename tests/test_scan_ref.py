"""selective_scan's "ref" backend against an independent per-element Python loop, and its error messages.

The naive oracle below shares no code with restore_core: plain Python floats, one (batch, channel, state)
element at a time, math.exp / math.log1p. Tolerance: float64 1e-12 relative to the largest output.
Also checked: the scan equals the per-step discretisation of restore_core.ssm.discretize (Ā_t = exp(Δ_t A),
Euler B̄_t = Δ_t B_t), and gradcheck in float64 of every input.
"""
import math

import pytest
import torch

from restore_core.ssm import scan
from restore_core.ssm.discretize import convergence_order, selective_discretize, time_varying_recurrence
from restore_core.ssm.scan import selective_scan

f64 = torch.float64


def naive_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Per-element loop in plain Python floats. Returns (out, last_state) as nested lists."""
    nb, d, L = len(u), len(u[0]), len(u[0][0])
    n = len(A[0])
    grouped = isinstance(B[0][0][0], list)  # (Bt, G, N, L) vs (Bt, N, L)
    out = [[[0.0] * L for _ in range(d)] for _ in range(nb)]
    last = [[[0.0] * n for _ in range(d)] for _ in range(nb)]
    for b in range(nb):
        for c in range(d):
            g = c // (d // len(B[b])) if grouped else None
            h = [0.0] * n
            for t in range(L):
                dt = delta[b][c][t] + (delta_bias[c] if delta_bias is not None else 0.0)
                if delta_softplus:
                    dt = dt + math.log1p(math.exp(-dt)) if dt > 0 else math.log1p(math.exp(dt))
                y = 0.0
                for k in range(n):
                    b_tk = B[b][g][k][t] if grouped else B[b][k][t]
                    c_tk = C[b][g][k][t] if grouped else C[b][k][t]
                    h[k] = math.exp(dt * A[c][k]) * h[k] + dt * b_tk * u[b][c][t]
                    y += c_tk * h[k]
                if D is not None:
                    y += D[c] * u[b][c][t]
                if z is not None:
                    zz = z[b][c][t]
                    y *= zz / (1.0 + math.exp(-zz))
                out[b][c][t] = y
            last[b][c] = list(h)
    return out, last


def make_inputs(nb=2, d=4, L=7, n=3, groups=None, seed=0, dtype=f64):
    g = torch.Generator().manual_seed(seed)
    shape = (nb, n, L) if groups is None else (nb, groups, n, L)
    return dict(
        u=torch.randn(nb, d, L, generator=g, dtype=dtype),
        delta=torch.randn(nb, d, L, generator=g, dtype=dtype) * 0.5,
        A=-torch.rand(d, n, generator=g, dtype=dtype) * 2 - 0.1,
        B=torch.randn(*shape, generator=g, dtype=dtype),
        C=torch.randn(*shape, generator=g, dtype=dtype),
        D=torch.randn(d, generator=g, dtype=dtype),
        z=torch.randn(nb, d, L, generator=g, dtype=dtype),
        delta_bias=torch.randn(d, generator=g, dtype=dtype) * 0.3,
    )


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-3)).item()


@pytest.mark.parametrize("L", [1, 7, 33])
@pytest.mark.parametrize("groups", [None, 1, 2, 4])
@pytest.mark.parametrize("options", ["plain", "full"])
def test_ref_matches_naive_loop(L, groups, options):
    x = make_inputs(L=L, groups=groups, seed=L)
    softplus = options == "full"
    if options == "plain":  # no D, z, delta_bias; positive step sizes without softplus
        x = {k: v for k, v in x.items() if k not in ("D", "z", "delta_bias")}
        x["delta"] = x["delta"].abs() + 0.05
    out, last = selective_scan(**x, delta_softplus=softplus, return_last_state=True, backend="ref")
    want_out, want_last = naive_scan(**{k: v.tolist() for k, v in x.items()}, delta_softplus=softplus)
    want_out, want_last = torch.tensor(want_out, dtype=f64), torch.tensor(want_last, dtype=f64)
    assert out.shape == (2, 4, L) and last.shape == (2, 4, 3)
    assert _rel(out, want_out) < 1e-12
    assert _rel(last, want_last) < 1e-12


def test_ref_float32_against_float64_naive():
    x = make_inputs(L=33, groups=2, seed=5)
    x32 = {k: v.float() for k, v in x.items()}
    out = selective_scan(**x32, delta_softplus=True, backend="ref")
    assert out.dtype == torch.float32
    want = torch.tensor(naive_scan(**{k: v.tolist() for k, v in x.items()}, delta_softplus=True)[0], dtype=f64)
    assert _rel(out.double(), want) < 1e-5


def test_grouped_equals_explicitly_repeated_single_group_per_channel_block():
    """G groups: channels [i*D/G, (i+1)*D/G) use group i. Check by scanning each block with ungrouped B, C."""
    x = make_inputs(d=6, L=7, groups=3, seed=2)
    out = selective_scan(**x, delta_softplus=True, backend="ref")
    for gi in range(3):
        sl = slice(2 * gi, 2 * gi + 2)
        part = selective_scan(x["u"][:, sl], x["delta"][:, sl], x["A"][sl], x["B"][:, gi], x["C"][:, gi],
                              x["D"][sl], x["z"][:, sl], x["delta_bias"][sl], delta_softplus=True, backend="ref")
        torch.testing.assert_close(out[:, sl], part, rtol=0, atol=1e-13)


@pytest.mark.parametrize("grouped", [False, True])
def test_ref_gradcheck_all_inputs_float64(grouped):
    x = make_inputs(nb=1, d=2, L=5, n=2, groups=2 if grouped else None, seed=3)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    inputs = tuple(x[k].clone().requires_grad_() for k in names)

    def f(*args):
        out, last = selective_scan(*args, delta_softplus=True, return_last_state=True, backend="ref")
        return out, last

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)
    # every input really receives a gradient (a test that cannot fail is a defect)
    out, last = f(*inputs)
    grads = torch.autograd.grad(out.sum() + last.sum(), inputs)
    for name, gr in zip(names, grads):
        assert gr is not None and gr.abs().sum() > 0, name


def test_scan_equals_per_step_zoh_A_euler_B():
    """selective_scan == h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t (Mamba: ZOH for A, Euler for B)."""
    x = make_inputs(d=4, L=33, groups=2, seed=7)
    dt = torch.nn.functional.softplus(x["delta"] + x["delta_bias"][:, None])
    dA, dB = selective_discretize(dt, x["A"], x["B"], b_method="euler")
    y, h = time_varying_recurrence(dA, dB, x["C"], x["u"], x["D"], return_last_state=True)
    out, last = selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], None, x["delta_bias"],
                               delta_softplus=True, return_last_state=True, backend="ref")
    torch.testing.assert_close(y, out, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, last, rtol=0, atol=1e-12)


def test_euler_B_differs_from_zoh_B_at_first_order_in_delta():
    """Exact ZOH for B differs from Mamba's Euler B̄ = ΔB by a relative O(ΔA): halving Δ halves the gap (fitted order 1, relative L2 norm)."""
    x = make_inputs(d=4, L=33, groups=2, seed=7)
    scales = torch.tensor([0.08, 0.04, 0.02, 0.01, 0.005], dtype=f64)
    gaps = []
    for scale in scales:
        dt = scale * (1 + x["delta"].sigmoid())  # (Bt, E, L) in [scale, 2 scale]
        ys = [time_varying_recurrence(*selective_discretize(dt, x["A"], x["B"], b_method=m), x["C"], x["u"])
              for m in ("euler", "zoh")]
        gaps.append((torch.linalg.norm(ys[0] - ys[1]) / torch.linalg.norm(ys[1])).item())
    assert 1e-4 < gaps[-1] < gaps[0] < 0.5
    assert convergence_order(scales, torch.tensor(gaps, dtype=f64)) == pytest.approx(1.0, abs=0.15)


def test_return_last_state_is_state_after_final_step():
    x = make_inputs(L=7, seed=9)
    out, last = selective_scan(**x, delta_softplus=True, return_last_state=True, backend="ref")
    out_only = selective_scan(**x, delta_softplus=True, backend="ref")
    torch.testing.assert_close(out, out_only, rtol=0, atol=0)
    # continuing: the last state of L=7 equals the state entering step 8 of a longer sequence
    longer = make_inputs(L=7, seed=9)
    _, last6 = selective_scan(*(longer[k][..., :6] if k in ("u", "delta", "B", "C", "z") else longer[k]
                                for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")),
                              delta_softplus=True, return_last_state=True, backend="ref")
    dt = torch.nn.functional.softplus(x["delta"][..., 6] + x["delta_bias"])  # (Bt, D)
    step = torch.exp(dt[..., None] * x["A"]) * last6 + (dt * x["u"][..., 6])[..., None] * x["B"][:, None, :, 6]
    torch.testing.assert_close(last, step, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name, bad, pattern", [
    ("u", torch.zeros(2, 4), r"u must be \(batch, D, L\)"),
    ("delta", torch.zeros(2, 4, 6), r"delta must have u's shape"),
    ("A", torch.zeros(3, 3), r"A must be \(D=4, N\)"),
    ("B", torch.zeros(2, 3, 6), r"B must be \(batch=2, N=3, L=7\)"),
    ("C", torch.zeros(2, 3, 3, 7), r"grouped C must be .* D=4 divisible by G"),
    ("B", torch.zeros(3, 7), r"B must be 3-D or 4-D"),
    ("D", torch.zeros(5), r"D must be \(4,\)"),
    ("z", torch.zeros(2, 4, 8), r"z must have u's shape"),
    ("delta_bias", torch.zeros(4, 1), r"delta_bias must be \(4,\)"),
])
def test_mismatched_shapes_raise_value_error_naming_the_argument(name, bad, pattern):
    x = make_inputs(L=7)
    x[name] = bad.to(f64)
    with pytest.raises(ValueError, match=pattern):
        selective_scan(**x, backend="ref")


def test_unknown_backend_is_a_clear_error():
    x = make_inputs(L=3)
    with pytest.raises(ValueError, match=r"unknown scan backend 'nope'; known: \[.*'ref'.*\]"):
        selective_scan(**x, backend="nope")
    assert "ref" in scan.list_backends(x["u"])


def test_selective_discretize_shape_errors():
    x = make_inputs(L=7)
    with pytest.raises(ValueError, match=r"A must be \(E=4, N\)"):
        selective_discretize(x["delta"], x["A"][:3], x["B"])
    with pytest.raises(ValueError, match=r"B must be \(Bt=2, N=3, L=7\) or grouped"):
        selective_discretize(x["delta"], x["A"], x["B"][..., :5])
    with pytest.raises(ValueError, match="unknown b_method 'rk4'"):
        selective_discretize(x["delta"], x["A"], x["B"], b_method="rk4")
