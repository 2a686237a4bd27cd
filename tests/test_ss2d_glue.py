"""SS2D's native output gate (restore_core/ssm/native.py ``layernorm_silu_gate``, csrc/ss2d_glue_cpu.cpp):
LayerNorm(y) * SiLU(z) in one pass against torch's layer_norm, SiLU and multiply. Channel counts that fill whole
vectors, partial last groups and less than one vector; z as a channel slice of in_proj's output (row stride 2E);
no LayerNorm bias; one and two threads (the whole-vector reads and writes past a row's channels, and the partial
ones at the end of each thread's run of rows, must give the same numbers); SS2D's forward with and without it."""
import pytest
import torch
import torch.nn.functional as F

from restore_core.ssm import native
from restore_core.ssm.ss2d import SS2D

pytestmark = pytest.mark.skipif(native.compiler() is None, reason="no C++ compiler: the native kernels are unavailable")


def _case(shape, E, dtype, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    xz = torch.randn(*shape, 2 * E, generator=g, dtype=dtype)
    y = torch.randn(*shape, E, generator=g, dtype=dtype) * 3 + 1
    ln = torch.nn.LayerNorm(E, bias=bias).to(dtype)
    with torch.no_grad():
        ln.weight.normal_(generator=g)
        if bias:
            ln.bias.normal_(generator=g)
    return y, xz.chunk(2, dim=-1)[1], ln


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-6), (torch.float64, 1e-13)])
@pytest.mark.parametrize("shape,E,bias", [((1, 13, 11), 90, True), ((2, 5, 7), 16, True), ((3, 4), 7, False),
                                          ((1, 1, 1), 33, True), ((9,), 1, True), ((2, 3, 5), 250, False)])
def test_gate_equals_torch(shape, E, bias, dtype, tol):
    y, z, ln = _case(shape, E, dtype, bias)
    assert z.stride(-2) == 2 * E                          # a channel slice, not a copy
    with torch.no_grad():
        want = ln(y) * F.silu(z)
        got = native.layernorm_silu_gate(y, z, ln.weight, ln.bias, ln.eps)
    assert got.shape == want.shape and got.is_contiguous()
    assert float((got - want).abs().max() / want.abs().max()) < tol


def test_gate_same_numbers_on_one_and_two_threads():
    y, z, ln = _case((1, 37, 29), 90, torch.float32)
    before = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            outs.append(native.layernorm_silu_gate(y, z, ln.weight, ln.bias, ln.eps))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])


def test_gate_rejects_mismatched_shapes():
    y, z, ln = _case((2, 3), 8, torch.float32)
    with pytest.raises(ValueError, match="one shape"):
        native.layernorm_silu_gate(y, z[:, :2], ln.weight, ln.bias, ln.eps)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_ss2d_forward_with_the_native_gate_equals_torch_ops(dtype, tol, monkeypatch):
    torch.manual_seed(0)
    m = SS2D(60, d_state=16, expand=1.5).to(dtype).eval()
    x = torch.randn(2, 9, 13, 60, dtype=dtype)
    calls = []
    real = native.layernorm_silu_gate
    monkeypatch.setattr(native, "layernorm_silu_gate", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        got = m(x)
    assert calls == [1]                                   # inference: the native gate ran
    want = m(x)                                           # autograd wanted: torch's ops (and the row kernel)
    assert calls == [1] and want.requires_grad
    assert float((got - want.detach()).abs().max() / want.detach().abs().max()) < tol
