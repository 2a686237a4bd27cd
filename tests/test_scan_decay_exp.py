"""The native kernel's two float32 exps against float64 torch.exp: ``vexp`` (Cody-Waite + Taylor, used by the row
kernels and softplus) and the inference lane kernel's decay exp (2^(x log2 e), a degree-6 fit of 2^f, the exponent
added as an integer; restore_core/ssm/csrc/selective_scan_cpu.cpp ``vexp2_nonpos``). The decay exp is meant for
x = Δ A <= 0 only: its error is bounded in absolute terms (decays multiply the state, so an absolute error on a
value in [0, 1] is what reaches the output), relative error grows like 1.22 |x| 2^-24.
"""
import pytest
import torch

from restore_core.ssm import native

pytestmark = pytest.mark.skipif(native.compiler() is None, reason="no C++ compiler: the native kernels are unavailable")
SPACING_BELOW_1 = 2.0 ** -24     # float32 spacing of [0.5, 1)


def _grid():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([-120 * torch.rand(1 << 20, generator=g, dtype=torch.float64),
                   -torch.rand(1 << 18, generator=g, dtype=torch.float64),
                   -1e-6 * torch.rand(1 << 10, generator=g, dtype=torch.float64)]).float()
    return x, torch.exp(x.double())


def test_decay_exp_error_bounds():
    x, want = _grid()
    y = native.load().vector_exp(x, None, True).double()
    err = (y - want).abs()
    assert float(err.max()) < 1.4 * SPACING_BELOW_1                  # measured 1.09 spacings
    live = x > -86.6
    rel = err[live] / want[live]
    # x log2 e rounded once (2^-24) with log2 e itself rounded to float32 (0.22 2^-24): 1.22 |x| 2^-24, plus the fit
    bound = 1.25 * x[live].double().abs() * 2.0 ** -24 + 2.5 * SPACING_BELOW_1
    assert bool((rel <= bound).all())
    near0 = (x > -1)
    assert float((err[near0] / want[near0]).max()) < 2.5 * SPACING_BELOW_1    # measured 1.96


def test_decay_exp_edges_and_tail():
    ext = native.load()
    x = torch.tensor([0.0, -0.0, -1e-30, -86.6, -86.7, -100.0, -1e4, -float("inf")] + [-0.5] * 13)  # 21: a tail
    y = ext.vector_exp(x, None, True)
    assert y[0] == 1 and y[1] == 1 and y[2] == 1                    # 2^0 exactly
    assert y[3] > 0 and float(y[3]) == pytest.approx(float(torch.exp(torch.tensor(-86.6, dtype=torch.float64))),
                                                    rel=1e-5)
    assert bool((y[4:8] == 0).all())                                # below 2^-125: flushed to 0, never garbage
    assert torch.equal(y[8:], torch.full((13,), float(y[8])))       # the scalar tail gets the same arithmetic
    assert float(y[8]) == pytest.approx(0.6065306597, rel=2e-7)


def test_vexp_stays_accurate():
    x, want = _grid()
    y = native.load().vector_exp(x, None, False).double()
    live = x > -87
    assert float(((y - want).abs()[live] / want[live]).max()) < 1.5 * SPACING_BELOW_1   # measured 1.3
