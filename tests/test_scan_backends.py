"""Every selective-scan backend against the sequential reference: outputs and all gradients.

Tolerances: float64 1e-10 and float32 1e-5, relative to the largest reference magnitude (floored at 1e-3 so an
exactly-zero reference gradient, e.g. dA at L = 1, compares in absolute terms). The "native" backend is
built once per machine (cached); with a C++ compiler present, a failed build fails these tests.
"""
import logging
import math
import subprocess
import sys

import pytest
import torch

from restore_core.ssm import native, scan
from restore_core.ssm.scan import list_backends, selective_scan

HAS_COMPILER = native.compiler() is not None
BACKENDS = ["chunked", "native"]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
NAMES = ["out", "last", "u", "delta", "A", "B", "C", "D", "z", "delta_bias"]


def _need(backend):
    if backend == "native" and not HAS_COMPILER:
        pytest.skip("no C++ compiler on this machine: 'native' is unavailable by design")


def mamba_inputs(nb, d, length, n, groups, dtype, *, grouped=True, dt_scale=1.0, seed=0):
    """Mamba's initialisation: A = -(1..N) per channel, delta_bias = softplus^-1(log-uniform [1e-3, 0.1])."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(nb, d, length, generator=g, dtype=dtype)
    delta = torch.randn(nb, d, length, generator=g, dtype=dtype) * 0.5 * dt_scale
    A = -torch.arange(1, n + 1, dtype=dtype).repeat(d, 1)
    dt0 = torch.exp(torch.rand(d, generator=g, dtype=dtype) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    delta_bias = dt0 + torch.log(-torch.expm1(-dt0))
    shape = (nb, groups, n, length) if grouped else (nb, n, length)
    B = torch.randn(*shape, generator=g, dtype=dtype)
    C = torch.randn(*shape, generator=g, dtype=dtype)
    D = torch.randn(d, generator=g, dtype=dtype)
    z = torch.randn(nb, d, length, generator=g, dtype=dtype)
    return [u, delta, A, B, C, D, z, delta_bias]


def run(backend, args, softplus=True):
    """Output, last state and the gradients of a loss touching both."""
    xs = [a.detach().clone().requires_grad_() for a in args]
    out, last = selective_scan(*xs, delta_softplus=softplus, return_last_state=True, backend=backend)
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    loss = (out * w).sum() + (out ** 2).sum() * 0.1 + (last * last.flip(-1)).sum()
    loss.backward()
    return [out.detach(), last.detach()] + [x.grad for x in xs]


def assert_close(got, want, tol, names=NAMES):
    for name, a, r in zip(names, got, want):
        assert a is not None and r is not None, name
        assert a.shape == r.shape, (name, a.shape, r.shape)
        err = (a.double() - r.double()).abs().max().item() / max(r.abs().max().item(), 1e-3)
        assert err < tol, f"{name}: relative error {err:.2e} >= {tol:.0e}"


def test_backends_registered():
    assert {"ref", "cuda", "native", "chunked"} <= set(list_backends())
    assert list_backends().index("native") < list_backends().index("chunked") < list_backends().index("ref")
    desc = scan.backend_descriptions()
    assert list(desc) == list_backends() and all(isinstance(v, str) and v for v in desc.values())
    assert "oracle" in desc["ref"] and "meta tensors" in desc["meta"]


def test_meta_backend_propagates_shapes_for_meta_tensors_only():
    """Registered with the others (no other import needed), chosen by "auto" for meta tensors and only there."""
    code = ("import torch; from restore_core.ssm.scan import list_backends, selective_scan\n"
            "u = torch.empty(2, 6, 7, device='meta'); A = torch.empty(6, 4, device='meta')\n"
            "B = torch.empty(2, 3, 4, 7, device='meta')\n"
            "out, last = selective_scan(u, u, A, B, B, return_last_state=True)\n"
            "print(list_backends(u)[0], tuple(out.shape), tuple(last.shape), out.device.type,\n"
            "      'meta' in list_backends(torch.zeros(1, 1, 1)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["meta", "(2,", "6,", "7)", "(2,", "6,", "4)", "meta", "False"]


def test_native_builds_when_compiler_present():
    if HAS_COMPILER:
        ext = native.load()  # raises (fails the test) if the build is broken
        # the width is the build's constant (RC_VEC_BYTES), never the CPU's widest ISA
        assert ext.vector_lanes(False) == native.vector_bytes() // 4
        assert ext.vector_lanes(True) == native.vector_bytes() // 8
        assert native.is_available()
    else:
        assert not native.is_available()


def test_native_build_flags_fix_the_numbers(monkeypatch):
    """The flags that decide rounding are the same on every machine: the vector width comes from the environment
    (default 64 bytes) and enters the cache key; GCC fuses multiply-adds under every -mtune (AMD Zen tunings
    would not, see restore_core/ssm/native.py); a bad width is refused by name."""
    monkeypatch.delenv(native.VEC_BYTES_ENV, raising=False)
    assert native.vector_bytes() == 64 and "-DRC_VEC_BYTES=64" in native.compile_flags()
    key64 = native.cache_key()
    monkeypatch.setenv(native.VEC_BYTES_ENV, "32")
    assert "-DRC_VEC_BYTES=32" in native.compile_flags() and native.cache_key() != key64
    monkeypatch.setenv(native.VEC_BYTES_ENV, "48")
    with pytest.raises(ValueError, match="RESTORE_CORE_NATIVE_VEC_BYTES must be 16, 32 or 64, got '48'"):
        native.compile_flags()
    monkeypatch.delenv(native.VEC_BYTES_ENV)
    if native._compiler_is_gcc():
        assert "--param=avoid-fma-max-bits=0" in native.compile_flags()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("length,grouped", [(1, True), (7, False), (33, True), (257, True)])
def test_matches_reference(backend, dtype, length, grouped):
    _need(backend)
    args = mamba_inputs(2, 6, length, 5, 3, dtype, grouped=grouped)
    assert_close(run(backend, args), run("ref", args), TOL[dtype])


def test_native_long_sequence():
    """L = 2500: 40 checkpoint chunks (the last one partial) recomputed by the backward, an odd channel count (a
    lone last row beside the interleaved pairs), z and D; float64 against ref to 1e-10, gradients included."""
    _need("native")
    args = mamba_inputs(1, 5, 2500, 16, 1, torch.float64)
    assert_close(run("native", args), run("ref", args), TOL[torch.float64])


@pytest.mark.parametrize("backend", BACKENDS)
def test_optional_arguments_absent(backend):
    _need(backend)
    u, delta, A, B, C, _, _, _ = mamba_inputs(1, 4, 33, 16, 1, torch.float64, grouped=False)
    args = [u, delta.abs(), A, B, C, None, None, None]
    got = selective_scan(*args, backend=backend)
    want = selective_scan(*args, backend="ref")
    assert_close([got], [want], TOL[torch.float64], names=["out"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_inputs(backend):
    _need(backend)
    dtype = torch.float32
    u, delta, A, B, C, D, z, bias = mamba_inputs(2, 8, 65, 16, 2, dtype)
    u_t = u.transpose(1, 2).contiguous().transpose(1, 2)            # (Bt, D, L) view of a (Bt, L, D) tensor
    wide = torch.randn(2, 2, 16, 130, dtype=dtype)
    B_s = wide[..., ::2]                                             # strided along L
    A_t = A.t().contiguous().t()
    args_nc = [u_t, delta, A_t, B_s, C, D, z, bias]
    args_c = [a.contiguous() for a in args_nc]
    assert not u_t.is_contiguous() and not B_s.is_contiguous() and not A_t.is_contiguous()
    assert_close(run(backend, args_nc), run("ref", args_c), TOL[dtype])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("dt_shift", [3.0, 60.0])
def test_large_dt_never_overflows(backend, dtype, dt_shift):
    """Δ·A per step of ~50 and ~1000: the factorised chunk form would overflow exp(-cumsum) (PERF pitfall 2)."""
    _need(backend)
    args = mamba_inputs(1, 4, 129, 16, 2, dtype)
    args[1] = args[1] + dt_shift
    got, want = run(backend, args), run("ref", args)
    assert all(torch.isfinite(g).all() for g in got)
    assert_close(got, want, TOL[dtype])


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_float64(backend):
    _need(backend)
    args = [a.requires_grad_() for a in mamba_inputs(1, 4, 11, 3, 2, torch.float64)]

    def f(*xs):
        out, last = selective_scan(*xs, delta_softplus=True, return_last_state=True, backend=backend)
        return out, last

    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_native_is_deterministic():
    _need("native")
    args = mamba_inputs(2, 6, 100, 16, 3, torch.float32)
    a, b = run("native", args), run("native", args)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_native_half_precision_inputs_compute_in_float32():
    _need("native")
    args = mamba_inputs(1, 4, 20, 16, 1, torch.float32)
    got = selective_scan(*[a.to(torch.bfloat16) for a in args], delta_softplus=True, backend="native")
    want = selective_scan(*[a.to(torch.bfloat16).float() for a in args], delta_softplus=True, backend="ref")
    assert got.dtype == torch.bfloat16
    assert (got.float() - want).abs().max().item() <= 1e-2 * want.abs().max().item()


def test_auto_order_and_fallback(monkeypatch, caplog):
    u = torch.randn(1, 2, 5)
    expected = "native" if HAS_COMPILER else "chunked"
    assert list_backends(u)[0] == expected
    monkeypatch.setattr(scan, "_LOGGED", set())
    args = mamba_inputs(1, 2, 5, 4, 1, torch.float32, grouped=False)
    with caplog.at_level(logging.INFO, logger="restore_core.ssm.scan"):
        selective_scan(*args, backend="auto")
        selective_scan(*args, backend="auto")
    chosen = [r for r in caplog.records if "selective_scan: backend" in r.getMessage()]
    assert len(chosen) == 1 and repr(expected) in chosen[0].getMessage()
    # Without a compiler "native" is unavailable (not an error) and "auto" falls back to "chunked".
    monkeypatch.setattr(native, "_ext", None)
    monkeypatch.setattr(native, "_unavailable_reason", None)
    monkeypatch.setattr(native, "compiler", lambda: None)
    assert "native" not in list_backends(u)
    assert list_backends(u)[0] == "chunked"
    with pytest.raises(RuntimeError, match="not available"):
        selective_scan(*args, backend="native")


def test_bad_shapes_raise_clear_errors():
    args = mamba_inputs(1, 6, 8, 4, 4, torch.float32)  # 6 channels are not divisible by 4 groups
    with pytest.raises(ValueError, match="divisible"):
        selective_scan(*args, backend="chunked")


def test_bench_cli_writes_json(tmp_path):
    _need("native")
    from restore_core.cli import main

    path = tmp_path / "scan.json"
    assert main(["bench", "scan", "--configs", "quick", "--repeats", "1", "--methods", "native",
                 "--json", str(path)]) == 0
    import json

    doc = json.loads(path.read_text())
    res = doc["configs"]["quick"]
    assert doc["provenance"]["torch"] == torch.__version__
    assert res["methods"]["native"]["fwd_ms"] > 0 and res["methods"]["native"]["fwd_bwd_ms"] > 0
    assert res["floors_ms"]["exp_fwd"] > 0 and doc["exp_rate_1e9_per_s"]["vector_exp"] > 0
    assert main(["bench", "scan", "--configs", "nope"]) == 2


def test_native_build_compiles_a_copy_in_the_cache_so_every_checkout_shares_it(tmp_path):
    """torch's build.ninja records the source paths: the kernels are compiled from copies inside the build folder
    (headers too), identical for every checkout of the same sources, so a second clone does not rebuild the shared
    entry."""
    from restore_core.ssm import native

    sources = native.build_sources(tmp_path)
    assert [p.name for p in sources] == [p.name for p in native.SOURCES]
    for path in native.SOURCES + native.HEADERS:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()
    first = sources[0]
    stamp = first.stat().st_mtime_ns
    assert native.build_sources(tmp_path) == sources and first.stat().st_mtime_ns == stamp  # unchanged: not rewritten
    (tmp_path / native.HEADERS[0].name).write_text("// stale")
    native.build_sources(tmp_path)
    assert (tmp_path / native.HEADERS[0].name).read_bytes() == native.HEADERS[0].read_bytes()


def test_bench_scan_provenance_is_taken_before_its_own_partial_writes(tmp_path, monkeypatch):
    """The CLI saves the report after each config; the commit must be read before the first save, or a
    --json naming a tracked file makes a clean tree read "+dirty" at the end (the stored scan_cpu.json did)."""
    _need("native")
    import json

    from restore_core import provenance as prov_mod
    from restore_core.cli import main

    path = tmp_path / "scan.json"
    monkeypatch.setattr(prov_mod, "git_commit", lambda short=False: "abc123+dirty" if path.exists() else "abc123")
    assert main(["bench", "scan", "--configs", "quick,quick", "--repeats", "1", "--methods", "native",
                 "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    assert doc["provenance"]["commit"] == "abc123"
    assert doc["provenance"]["threads"] == torch.get_num_threads()
