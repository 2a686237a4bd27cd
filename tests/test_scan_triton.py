"""The "triton" selective-scan backend against the sequential reference: outputs, last state and every gradient.

Where the kernels run: on a CUDA device these tests run in-process on CUDA tensors. On CPU, Triton's
interpreter runs them, but TRITON_INTERPRET=1 must be set before the kernels are defined, so the kernel tests
here skip in the normal pytest process and ``test_kernels_under_interpreter`` re-runs this file in a
subprocess with TRITON_INTERPRET=1 (other tests' environment is untouched). Without triton everything skips
with the install hint. Shapes stay tiny (the interpreter steps in Python: ~1 s per 10 steps of a small block);
``CHECKPOINT_EVERY`` is lowered to 8 so that L = 33 crosses four chunk boundaries and ends in a partial chunk.

Tolerances, relative to the largest reference magnitude (floored at 1e-3): float32 1e-4 (measured ~2e-6);
bfloat16 / float16 inputs against the reference on the same rounded inputs in float32: 2e-2 (the output and
gradients are rounded to 8 / 11 bits).
"""
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import restore_core.ssm
from restore_core.ssm import scan, triton_scan
from restore_core.ssm.scan import list_backends, selective_scan
from test_scan_backends import NAMES, assert_close, mamba_inputs, run

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
HINT = "triton is not installed: pip install 'restore-core[triton]' (or the test extra)"
kernel_test = pytest.mark.skipif(
    not triton_scan.installed() or not (ON_GPU or triton_scan.interpreting()),
    reason=HINT if not triton_scan.installed() else
    "kernels run on CPU only under TRITON_INTERPRET=1: see test_kernels_under_interpreter (a subprocess)")


@pytest.fixture
def short_chunks(monkeypatch):
    monkeypatch.setattr(triton_scan, "CHECKPOINT_EVERY", 8)


def on_device(args):
    return [a.to(DEVICE) for a in args]


def cpu(xs):
    return [x.cpu() if x is not None else None for x in xs]


@pytest.mark.skipif(ON_GPU or triton_scan.interpreting(), reason="the kernel tests run in-process here")
def test_kernels_under_interpreter():
    """Every kernel test below, in a subprocess with TRITON_INTERPRET=1 (CPU tensors)."""
    if not triton_scan.installed():
        pytest.skip(HINT)
    env = dict(os.environ, TRITON_INTERPRET="1")
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", __file__,
                           "-k", "not under_interpreter", "-m", "not gpu"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    summary = proc.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" not in summary and "failed" not in summary, tail


@kernel_test
@pytest.mark.parametrize("length,grouped", [(1, True), (7, False), (33, True)])
def test_float32_matches_reference(short_chunks, length, grouped):
    args = mamba_inputs(2, 6, length, 4, 3, torch.float32, grouped=grouped)
    assert_close(cpu(run("triton", on_device(args))), run("ref", args), 1e-4)


@kernel_test
def test_default_chunk_length_and_wide_blocks():
    """T = 64 (two chunks at L = 70), 8 channels per group (a block of 8 channels), N = 5 (padded to 8)."""
    args = mamba_inputs(1, 16, 70, 5, 2, torch.float32)
    assert_close(cpu(run("triton", on_device(args))), run("ref", args), 1e-4)


@kernel_test
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_compute_in_float32(short_chunks, dtype):
    args = [a.to(dtype) for a in mamba_inputs(1, 4, 20, 4, 2, torch.float32)]
    got = run("triton", on_device(args))
    want = run("ref", [a.float() for a in args])
    assert got[0].dtype == dtype and all(g.dtype == dtype for g in got[2:])
    assert_close(cpu(got), want, 2e-2)


@kernel_test
def test_mixed_dtypes_as_under_autocast(short_chunks):
    """bfloat16 u, z, B, C (autocast's Linear outputs) beside float32 delta, A, D, delta_bias: each is read in its
    own dtype, and each gradient comes back in its input's dtype."""
    args = mamba_inputs(1, 4, 20, 4, 2, torch.float32)
    for i in (0, 3, 4, 6):
        args[i] = args[i].to(torch.bfloat16)
    got = run("triton", on_device(args))
    want = run("ref", [a.float() for a in args])
    assert [g.dtype for g in got[2:]] == [a.dtype for a in args]
    assert_close(cpu(got), want, 2e-2)


@kernel_test
def test_optional_arguments_absent_and_no_softplus(short_chunks):
    u, delta, A, B, C, _, _, _ = mamba_inputs(1, 4, 19, 4, 1, torch.float32, grouped=False)
    args = [u, delta.abs(), A, B, C]
    xs = [a.detach().clone().requires_grad_() for a in on_device(args)]
    out = selective_scan(*xs, backend="triton")
    (out * out).sum().backward()
    rs = [a.detach().clone().requires_grad_() for a in args]
    want = selective_scan(*rs, backend="ref")
    (want * want).sum().backward()
    assert_close(cpu([out.detach()] + [x.grad for x in xs]), [want.detach()] + [r.grad for r in rs], 1e-4,
                 names=["out", "u", "delta", "A", "B", "C"])


@kernel_test
def test_non_contiguous_inputs(short_chunks):
    u, delta, A, B, C, D, z, bias = mamba_inputs(2, 4, 17, 4, 2, torch.float32)
    u_t = u.transpose(1, 2).contiguous().transpose(1, 2)            # (Bt, D, L) view of a (Bt, L, D) tensor
    B_s = torch.randn(2, 2, 4, 34)[..., ::2]                         # strided along L
    A_t = A.t().contiguous().t()
    args_nc = [u_t, delta, A_t, B_s, C, D, z, bias]
    assert not u_t.is_contiguous() and not B_s.is_contiguous() and not A_t.is_contiguous()
    got = run("triton", [a.to(DEVICE) for a in args_nc] if ON_GPU else args_nc)
    assert_close(cpu(got), run("ref", [a.contiguous() for a in args_nc]), 1e-4)


@kernel_test
def test_large_dt_stays_finite(short_chunks):
    """Δ·A per step of ~1000 (softplus in its linear branch, Ā underflowing to 0)."""
    args = mamba_inputs(1, 4, 12, 4, 2, torch.float32)
    args[1] = args[1] + 60.0
    got = cpu(run("triton", on_device(args)))
    assert all(torch.isfinite(g).all() for g in got)
    assert_close(got, run("ref", args), 1e-4)


@kernel_test
def test_memory_is_linear_in_length(short_chunks):
    """What autograd keeps: inputs and state checkpoints every T steps, never a (Bt, D, L, N) tensor; and a
    forward without gradients stores no checkpoints at all."""
    nb, d, length, n = 1, 4, 40, 4
    args = [a.requires_grad_() for a in on_device(mamba_inputs(nb, d, length, n, 2, torch.float32))]
    out = selective_scan(*args, delta_softplus=True, backend="triton")
    saved = [t for t in out.grad_fn.saved_tensors if t is not None]
    assert max(t.numel() for t in saved) <= max(a.numel() for a in args) < nb * d * length * n
    assert sum(t.numel() for t in saved if t.dim() == 4 and t.shape[2] == d) == nb * (length // 8) * d * n
    with torch.no_grad():
        y, last = selective_scan(*args, delta_softplus=True, return_last_state=True, backend="triton")
    want, want_last = selective_scan(*[a.detach() for a in args], delta_softplus=True, return_last_state=True,
                                     backend="ref")
    assert_close(cpu([y, last]), cpu([want, want_last]), 1e-4, names=["out", "last"])


def test_registered_between_native_and_chunked():
    """On CUDA tensors "auto" prefers cuda (mamba-ssm) > triton > chunked; on CPU native stays first."""
    names = list_backends()
    assert names.index("cuda") < names.index("triton") < names.index("chunked")
    assert names.index("native") < names.index("triton")
    assert "Triton" in scan.backend_descriptions()["triton"]


def test_availability_rules(monkeypatch):
    fake_cuda = SimpleNamespace(is_cuda=True, device=torch.device("cpu"))
    monkeypatch.setattr(triton_scan, "installed", lambda: True)
    assert triton_scan.triton_available(fake_cuda)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not triton_scan.triton_available(torch.zeros(1, 1, 1))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_scan.triton_available(torch.zeros(1, 1, 1))
    monkeypatch.setattr(triton_scan, "installed", lambda: False)
    assert not triton_scan.triton_available(fake_cuda)


def test_clear_errors_without_triton_or_device(monkeypatch):
    args = mamba_inputs(1, 2, 5, 4, 1, torch.float32, grouped=False)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(triton_scan, "installed", lambda: True)
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        triton_scan.selective_scan_triton(*args)
    monkeypatch.setattr(triton_scan, "installed", lambda: False)
    monkeypatch.setattr(triton_scan, "_kernels", None)
    monkeypatch.setitem(sys.modules, "restore_core.ssm.triton_kernels", None)  # import fails like a missing triton
    monkeypatch.delattr(restore_core.ssm, "triton_kernels", raising=False)
    with pytest.raises(RuntimeError, match=r"pip install 'restore-core\[triton\]'"):
        triton_scan.selective_scan_triton(*args)


def test_block_sizes():
    assert [triton_scan._block_d(c) for c in (1, 2, 3, 6, 8, 90, 360, 1024)] == [1, 2, 1, 2, 8, 2, 8, 16]


@pytest.mark.gpu
def test_auto_picks_triton_on_cuda_without_mamba_ssm(monkeypatch):
    if not triton_scan.installed():
        pytest.skip(HINT)
    monkeypatch.setattr(scan, "_cuda_fn", lambda: None)
    assert list_backends(torch.zeros(1, 1, 1, device="cuda"))[:2] == ["triton", "chunked"]
