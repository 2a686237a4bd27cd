"""SS2D: shapes on odd sizes, the official parameter layout and initialisation, agreement with a hand assembly."""
import math

import pytest
import torch
import torch.nn.functional as F

from restore_core.ssm import selective_scan_ref
from restore_core.ssm.ss2d import SS2D, default_dt_rank, inner_channels


def _x(Bt=2, H=5, W=7, C=8, dtype=torch.float32, seed=0):
    return torch.randn(Bt, H, W, C, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def test_official_parameter_layout_classic():
    """Shapes of the released classic-SR checkpoint's SS2D (C=180, expand 2, N=16): built on the meta device."""
    with torch.device("meta"):
        m = SS2D(180, d_state=16, expand=2.0)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "x_proj_weight": (4, 44, 360), "dt_projs_weight": (4, 360, 12), "dt_projs_bias": (4, 360),
        "A_logs": (1440, 16), "Ds": (1440,), "in_proj.weight": (720, 180), "conv2d.weight": (360, 1, 3, 3),
        "conv2d.bias": (360,), "out_norm.weight": (360,), "out_norm.bias": (360,), "out_proj.weight": (180, 360)}


@pytest.mark.parametrize("C,expand,N,E,R", [(60, 1.2, 10, 72, 4), (60, 1.5, 16, 90, 4), (180, 1.2, 16, 216, 12)])
def test_inner_sizes_match_official(C, expand, N, E, R):
    assert inner_channels(C, expand) == E and default_dt_rank(C) == R
    with torch.device("meta"):
        m = SS2D(C, d_state=N, expand=expand)
    assert tuple(m.x_proj_weight.shape) == (4, R + 2 * N, E) and tuple(m.A_logs.shape) == (4 * E, N)


def test_initialisation():
    torch.manual_seed(0)
    m = SS2D(32, d_state=6, expand=2.0)
    E, R = 64, 2
    torch.testing.assert_close(m.A_logs, torch.log(torch.arange(1.0, 7.0)).repeat(4 * E, 1))
    torch.testing.assert_close(m.Ds, torch.ones(4 * E))
    dt = F.softplus(m.dt_projs_bias.double())
    assert dt.min() >= 1e-3 - 1e-9 and dt.max() <= 0.1 + 1e-9
    # log-uniform: the mean of log(dt) is near the midpoint of [log 1e-3, log 0.1]
    assert abs(dt.log().mean().item() - 0.5 * (math.log(1e-3) + math.log(0.1))) < 0.25
    assert m.dt_projs_weight.abs().max() <= R ** -0.5 and m.dt_projs_weight.abs().max() > 0.9 * R ** -0.5
    assert m.x_proj_weight.abs().max() <= E ** -0.5


@pytest.mark.parametrize("order,K", [("1d", 1), ("2d", 2), ("4d", 4), ("es2d", 4)])
@pytest.mark.parametrize("H,W", [(5, 7), (1, 3), (6, 4)])
def test_shapes_odd_sizes_and_gradients(order, K, H, W):
    torch.manual_seed(0)
    m = SS2D(8, d_state=4, expand=1.5, scan_order=order)
    assert m.directions == K
    x = _x(H=H, W=W).requires_grad_(True)
    y = m(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def _hand_assembled_1d(m: SS2D, x: torch.Tensor) -> torch.Tensor:
    """The one-direction SS2D written out on the row-major sequence, calling selective_scan_ref directly."""
    Bt, H, W, C = x.shape
    E, R, N = m.d_inner, m.dt_rank, m.d_state
    xz = x @ m.in_proj.weight.t()
    u, z = xz[..., :E], xz[..., E:]
    u = F.silu(F.conv2d(u.permute(0, 3, 1, 2), m.conv2d.weight, m.conv2d.bias, padding=1, groups=E))
    seq = u.reshape(Bt, E, H * W)                                 # row-major: l = h * W + w
    proj = m.x_proj_weight[0] @ seq                              # (Bt, R+2N, L)
    dt, Bm, Cm = proj[:, :R], proj[:, R:R + N], proj[:, R + N:]
    delta = m.dt_projs_weight[0] @ dt                            # (Bt, E, L)
    out = selective_scan_ref(seq, delta, -torch.exp(m.A_logs), Bm, Cm, D=m.Ds,
                             delta_bias=m.dt_projs_bias[0], delta_softplus=True)
    y = out.reshape(Bt, E, H, W).permute(0, 2, 3, 1)
    y = F.layer_norm(y, (E,), m.out_norm.weight, m.out_norm.bias, m.out_norm.eps) * F.silu(z)
    return y @ m.out_proj.weight.t()


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.float64, 1e-12)])
def test_one_direction_equals_hand_assembly(dtype, tol):
    torch.manual_seed(1)
    m = SS2D(8, d_state=5, expand=2.0, scan_order="1d").to(dtype)
    with torch.no_grad():  # move away from the all-ones init so every term matters
        m.Ds.uniform_(-1, 1)
        m.out_norm.weight.uniform_(0.5, 1.5)
        m.out_norm.bias.uniform_(-0.5, 0.5)
    x = _x(H=3, W=5, dtype=dtype, seed=3)
    torch.testing.assert_close(m(x), _hand_assembled_1d(m, x), rtol=tol, atol=tol)


def test_four_directions_sum_of_single_direction_scans():
    """4d SS2D's core == the sum over k of the single-direction core run on the k-th path, undone."""
    torch.manual_seed(2)
    m = SS2D(8, d_state=3, expand=1.0, scan_order="4d", scan_backend="ref").double()
    x = torch.randn(1, 8, 4, 3, dtype=torch.float64)
    total = torch.zeros_like(x)
    E, R, N = m.d_inner, m.dt_rank, m.d_state
    paths = [x.flatten(2), x.transpose(2, 3).flatten(2), x.flatten(2).flip(-1), x.transpose(2, 3).flatten(2).flip(-1)]
    for k, seq in enumerate(paths):
        proj = m.x_proj_weight[k] @ seq
        delta = m.dt_projs_weight[k] @ proj[:, :R]
        sl = slice(k * E, (k + 1) * E)
        out = selective_scan_ref(seq, delta, -torch.exp(m.A_logs[sl]), proj[:, R:R + N], proj[:, R + N:],
                                 D=m.Ds[sl], delta_bias=m.dt_projs_bias[k], delta_softplus=True)
        if k >= 2:
            out = out.flip(-1)
        total += out.view(1, E, 4, 3) if k % 2 == 0 else out.view(1, E, 3, 4).transpose(2, 3)
    torch.testing.assert_close(m.ssm(x), total, rtol=1e-12, atol=1e-12)


def test_float64_and_nchw():
    torch.manual_seed(0)
    m = SS2D(6, d_state=2, expand=1.0).double()
    x = torch.randn(1, 6, 3, 4, dtype=torch.float64)
    y = m.forward_nchw(x)
    assert y.dtype == torch.float64 and y.shape == x.shape
    torch.testing.assert_close(y, m(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_gradcheck_float64():
    torch.manual_seed(0)
    m = SS2D(4, d_state=2, expand=1.0, scan_order="2d", scan_backend="ref").double()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,), eps=1e-6, atol=1e-6)


def test_clear_errors():
    m = SS2D(8, d_state=2)
    with pytest.raises(ValueError, match="channels-last"):
        m(torch.zeros(1, 8, 4, 4))
    with pytest.raises(ValueError, match="channel SSM"):
        SS2D(8, scan_order="channel")
    with pytest.raises(ValueError, match="unknown scan order"):
        SS2D(8, scan_order="3d")
    with pytest.raises(TypeError):
        SS2D(8, mlp_ratio=2.0)  # no catch-all kwargs
