"""The fused native cross-scan (restore_core/ssm/native.py ``cross_scan_native``, used by SS2D on the CPU) against
the reference path it replaces: materialised cross-scan, per-direction x_proj / dt_proj einsums (the unfused
delta projection), ``selective_scan``, merge. Outputs and every gradient, K = 1, 2, 4, odd H and W, batch > 1,
non-contiguous inputs; float64 gradcheck of the kernel on a tiny shape. Also ``bench model``'s report fields
(no timing assertions: speed goals live in the benchmark, not in tests).
"""
import json

import pytest
import torch

from restore_core.ssm import native
from restore_core.ssm.cross_scan import get_scan_order
from restore_core.ssm.ss2d import SS2D

HAS_COMPILER = native.compiler() is not None
pytestmark = pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler: the native kernels are unavailable")
TOL = {torch.float32: 2e-5, torch.float64: 1e-10}


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-3))


def _run(m, x, impl, backend, gout):
    m.cross_scan_impl, m.scan_backend = impl, backend
    xx = x.detach().clone().requires_grad_(True)
    if not x.is_contiguous():      # keep the caller's strides (non-contiguous input)
        xx = x.detach().requires_grad_(True)
    y = m.ssm(xx)
    names = ["x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds"]
    grads = torch.autograd.grad((y * gout).sum(), [xx] + [getattr(m, n) for n in names])
    return y.detach(), dict(zip(["x"] + names, grads))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("order,bt,h,w", [("4d", 2, 7, 9), ("4d", 1, 13, 5), ("2d", 2, 5, 11), ("1d", 3, 9, 7),
                                          ("4d", 1, 1, 6), ("2d", 1, 6, 1)])
def test_fused_equals_materialised_outputs_and_every_gradient(order, bt, h, w, dtype):
    torch.manual_seed(0)
    m = SS2D(12, d_state=5, expand=1.5, scan_order=order, dtype=dtype)
    with torch.no_grad():                       # not the init values only: every parameter matters
        m.dt_projs_bias.add_(0.3 * torch.randn_like(m.dt_projs_bias))
        m.Ds.add_(torch.randn_like(m.Ds))
        m.A_logs.add_(0.2 * torch.randn_like(m.A_logs))
    x = torch.randn(bt, m.d_inner, h, w, dtype=dtype)
    gout = torch.randn(bt, m.d_inner, h, w, dtype=dtype)
    assert m.fused_codes(x) is not None
    yf, gf = _run(m, x, "fused", "auto", gout)
    yr, gr = _run(m, x, "materialised", "ref", gout)
    assert _rel(yf, yr) < TOL[dtype]
    for name in gr:
        assert _rel(gf[name], gr[name]) < TOL[dtype], name


@pytest.mark.parametrize("layout", ["channels_last", "transposed_view"])
def test_fused_takes_non_contiguous_maps(layout):
    torch.manual_seed(1)
    m = SS2D(10, d_state=4, expand=2.0, scan_order="4d")
    base = torch.randn(2, m.d_inner, 9, 7)
    if layout == "channels_last":
        x = base.contiguous(memory_format=torch.channels_last)
    else:
        x = base.transpose(2, 3).contiguous().transpose(2, 3)   # same values, column-major strides
    assert not x.is_contiguous() and torch.equal(x, base)
    gout = torch.randn_like(base)
    yf, gf = _run(m, x, "fused", "auto", gout)
    yr, gr = _run(m, base, "materialised", "ref", gout)
    assert _rel(yf, yr) < TOL[torch.float32]
    for name in gr:
        assert _rel(gf[name], gr[name]) < TOL[torch.float32], name


@pytest.mark.parametrize("shape", [(1, 16384 // 64, 90), (2, 37, 53), (3, 1, 70), (1, 64, 64), (2, 9, 8)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiled_transpose_equals_permute(shape, dtype):
    """Full 8 x 8 blocks, ragged edges, one-row inputs, several images."""
    x = torch.randn(*shape, dtype=dtype)
    y = native.transpose_last2(x)
    assert y.is_contiguous() and torch.equal(y, x.permute(0, 2, 1))
    assert torch.equal(native.transpose_last2(y), x)


def test_tiled_transpose_gradient_and_errors():
    x = torch.randn(2, 11, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(native.transpose_last2, (x,))
    with pytest.raises(ValueError, match="3-D float32/float64 CPU tensor"):
        native.transpose_last2(torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="torch.int64"):
        native.transpose_last2(torch.zeros(2, 3, 4, dtype=torch.long))


@pytest.mark.parametrize("C,N,order,expand,H,W,dtype", [
    (60, 16, "4d", 1.5, 33, 17, torch.float32),    # MambaIR light's SS2D: E = 90 (5 full vector groups + a part)
    (180, 16, "4d", 1.2, 12, 10, torch.float32),   # classic: E = 216, dt_rank 12
    (12, 4, "2d", 2.0, 9, 7, torch.float64),
    (20, 8, "1d", 1.3, 5, 11, torch.float32),
    (7, 2, "4d", 1.0, 1, 9, torch.float64),        # one-row image, E = 7 < one vector
    (9, 1, "4d", 1.0, 6, 1, torch.float32),        # one-column image, N = 1
])
def test_inference_kernel_channels_on_lanes_equals_materialised(C, N, order, expand, H, W, dtype):
    """Without autograd the fused path runs the channels-on-lanes kernel (its output: a channels-last view);
    the same numbers as the materialised path, for every supported N, partial vector groups and both layouts."""
    torch.manual_seed(0)
    m = SS2D(C, d_state=N, expand=expand, scan_order=order).to(dtype)
    x = torch.randn(2, m.d_inner, H, W, dtype=dtype)
    with torch.no_grad():
        m.cross_scan_impl = "fused"
        outs = [m.ssm(x), m.ssm(x.contiguous(memory_format=torch.channels_last))]
        m.cross_scan_impl = "materialised"
        ref = m.ssm(x)
        L = H * W
        Bt, E = x.shape[:2]
        lanes = native.cross_scan_native(
            x.reshape(Bt, E, L), torch.randn(Bt, m.directions, m.dt_rank, L, dtype=dtype), m.dt_projs_weight,
            m.dt_projs_bias, -torch.exp(m.A_logs),
            torch.randn(Bt, L, m.directions, 2, native.padded_state(N, dtype), dtype=dtype), m.Ds,
            native.direction_codes(get_scan_order(order)), H, W)
    assert lanes.transpose(1, 2).is_contiguous() and (E == 1 or not lanes.is_contiguous())   # the lane kernel ran
    for y in outs:
        assert _rel(y, ref) < TOL[dtype]


def test_inference_kernel_not_used_when_gradients_are_needed_or_n_unsupported():
    torch.manual_seed(0)
    m = SS2D(10, d_state=5, expand=2.0, scan_order="4d")   # N = 5: the row kernel
    x = torch.randn(1, m.d_inner, 6, 5)
    with torch.no_grad():
        y5 = m.ssm(x)
        m.cross_scan_impl = "materialised"
        assert _rel(y5, m.ssm(x)) < TOL[torch.float32]
    m4 = SS2D(10, d_state=4, expand=2.0, scan_order="4d")
    y = m4.ssm(x)                                           # autograd on: the row kernel, with checkpoints
    assert y.requires_grad
    y.sum().backward()
    assert m4.A_logs.grad is not None and torch.isfinite(m4.A_logs.grad).all()


def test_fused_output_is_channels_last_for_the_layer_norm():
    """The fused path hands (Bt, E, H, W) back as a view of (Bt, H, W, E) memory, so SS2D's LayerNorm over E reads
    it without a copy; the values equal the materialised path's."""
    torch.manual_seed(0)
    m = SS2D(12, d_state=4, expand=1.5, scan_order="4d")
    x = torch.randn(1, 9, 7, m.d_inner).permute(0, 3, 1, 2)   # channels-last, as the depthwise conv leaves it
    with torch.no_grad():
        m.cross_scan_impl = "fused"
        yf = m.ssm(x)
        m.cross_scan_impl = "materialised"
        yr = m.ssm(x)
    assert yf.permute(0, 2, 3, 1).is_contiguous() and _rel(yf, yr) < TOL[torch.float32]


def test_kernel_gradcheck_float64():
    """Every input of the kernel, including the in-kernel delta projection (Wdt, dts, bias), N = Np."""
    g = torch.Generator().manual_seed(0)
    bt, E, H, W, K, R, N = 2, 3, 3, 5, 4, 2, 8
    L = H * W
    assert native.padded_state(N, torch.float64) == N
    f64 = dict(dtype=torch.float64)
    x = torch.randn(bt, E, L, generator=g, **f64)
    dts = 0.5 * torch.randn(bt, K, R, L, generator=g, **f64)
    Wdt = torch.randn(K, E, R, generator=g, **f64)
    bias = torch.randn(K, E, generator=g, **f64)
    A = -torch.rand(K * E, N, generator=g, **f64) - 0.5
    BC = torch.randn(bt, L, K, 2, N, generator=g, **f64)
    D = torch.randn(K * E, generator=g, **f64)
    inputs = [t.requires_grad_(True) for t in (x, dts, Wdt, bias, A, BC, D)]

    def fn(*a):
        return native.cross_scan_native(*a, [0, 1, 2, 3], H, W)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_delta_projection_in_kernel_equals_unfused_einsum():
    """The kernel forms delta = Wdt dts + bias per row; one direction (K=1, "1d") makes the scan itself the
    plain selective scan, so it must equal selective_scan on the einsum-projected delta."""
    from restore_core.ssm.scan import selective_scan

    g = torch.Generator().manual_seed(2)
    bt, E, H, W, R, N = 2, 6, 4, 5, 3, 16
    L = H * W
    n_pad = native.padded_state(N, torch.float32)
    x = torch.randn(bt, E, L, generator=g)
    dts = torch.randn(bt, 1, R, L, generator=g)
    Wdt = torch.randn(1, E, R, generator=g)
    bias = torch.randn(1, E, generator=g)
    A = -torch.rand(E, N, generator=g) - 0.5
    B, C = torch.randn(bt, N, L, generator=g), torch.randn(bt, N, L, generator=g)
    BC = torch.nn.functional.pad(torch.stack([B, C], 1).permute(0, 3, 1, 2), (0, n_pad - N)).unsqueeze(2)
    D = torch.randn(E, generator=g)
    y = native.cross_scan_native(x, dts, Wdt, bias, A, BC.contiguous(), D, [0], H, W)
    delta = torch.einsum("bkrl,ker->bkel", dts, Wdt)[:, 0]
    want = selective_scan(x, delta, A, B, C, D, delta_bias=bias[0], delta_softplus=True, backend="ref")
    assert _rel(y, want) < 1e-5


def test_automatic_choice_and_fallbacks():
    x = torch.randn(1, 18, 4, 4)
    assert SS2D(12, d_state=4, expand=1.5, scan_order="4d").fused_codes(x) == [0, 1, 2, 3]
    assert SS2D(12, d_state=4, expand=1.5, scan_order="2d").fused_codes(x) == [0, 1]
    assert SS2D(12, d_state=4, expand=1.5, scan_order="es2d").fused_codes(x) is None       # skip-sampled
    assert SS2D(12, d_state=4, expand=1.5, scan_backend="ref").fused_codes(x) is None      # asked for ref
    assert SS2D(12, d_state=4, expand=1.5, scan_backend="native").fused_codes(x) is not None
    m = SS2D(12, d_state=4, expand=1.5, scan_order="es2d")
    m.cross_scan_impl = "fused"
    with pytest.raises(RuntimeError, match="fused cross-scan cannot run"):
        m.fused_codes(x)
    m.cross_scan_impl = "bogus"
    with pytest.raises(ValueError, match="cross_scan_impl"):
        m.fused_codes(x)


def test_mambair_forward_fused_equals_materialised():
    from restore_core.models.registry import build_model

    torch.manual_seed(0)
    net = build_model("mambair", preset="tiny_sr_x2").eval()
    x = torch.rand(1, 3, 11, 9)
    with torch.no_grad():
        y = net(x)
        for mod in net.modules():
            if hasattr(mod, "cross_scan_impl"):
                mod.cross_scan_impl = "materialised"
        want = net(x)
    assert _rel(y, want) < 1e-5


def test_bench_model_report_and_cli(tmp_path, capsys):
    from restore_core.bench import run_model_benchmark
    from restore_core.cli import main

    r = run_model_benchmark(model="mambair-tiny-x2", size=10, threads=1, repeats=1)
    for key in ("ours_s", "reference_s", "speedup_vs_reference", "floor_s", "ours_x_floor", "macs", "exps",
                "gemm_rate_1e9_mac_per_s", "exp_rate_used_1e9_per_s"):
        assert r[key] is not None and r[key] > 0, key
    assert r["cross_scan"] == "fused native"
    assert "official" in r["reference"] and r["max_rel_diff_vs_reference"] < 1e-4
    assert r["floor_s"] == pytest.approx(r["floor_gemm_s"] + r["floor_exp_s"])
    # a floor takes the fastest exp measured (the in-register one when the extension is built), never a slower one
    assert r["exp_rate_used_1e9_per_s"] == max(r["exp_rate_1e9_per_s"].values())
    assert {"native_in_registers", "native_decay_in_registers"} <= set(r["exp_rate_1e9_per_s"])
    assert r["macs"] == r["macs_layers_proj"] + r["macs_scan"]
    assert r["allocator"].startswith("unchanged")    # in-process main(): malloc as it was (restore_core/allocator.py)
    path = tmp_path / "model.json"
    assert main(["bench", "model", "--model", "mambair:tiny_sr_x2", "--size", "10", "--repeats", "1",
                 "--threads", "1", "--no-reference", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "floor:" in out and "x the floor" in out and "reference:" not in out
    doc = json.loads(path.read_text())
    assert doc["reference_s"] is None and doc["ours_x_floor"] > 0
    assert main(["bench", "model", "--model", "nope"]) == 2
