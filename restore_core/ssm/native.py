"""The "native" selective-scan backend: a C++/OpenMP CPU kernel with a hand-written backward.

Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv:2312.00752, Alg. 2.
mamba-ssm has only a CUDA kernel and a sequential PyTorch reference; this CPU kernel is ours
(restore_core/ssm/csrc/selective_scan_cpu.cpp; vector math in csrc/simd_cpu.h). Explained in "Selective scan and
scanning images".

The same extension holds SS2D's fused 2-D cross-scan (:func:`cross_scan_native`): the K = 1, 2 or 4 scan orders
read from the (Bt, E, H, W) map by index arithmetic, Δ = dt_proj(dt) formed per row inside the kernel, every
direction added into the output in place (the backward is the adjoint: each direction reads the same output
gradient). See "Performance" in the README for what it changed. And SS2D's inference output gate
(csrc/ss2d_glue_cpu.cpp: :func:`layernorm_silu_gate`), one pass over a channels-last map.

Building. The extension is compiled with ``torch.utils.cpp_extension.load`` on first use, once per machine,
into ``$RESTORE_CORE_EXT_DIR`` (default ``~/.cache/restore_core/ext``), in a folder keyed by a hash of
(sources, torch version, compiler flags, the CPU's model name and instruction-set flags). A file lock keeps two
processes from building at once; later processes (and test runs) only import the cached library.

Flags: ``-O3 -ffp-contract=fast -fno-trapping-math -fopenmp -march=native --param=avoid-fma-max-bits=0
-DRC_VEC_BYTES=64``. ``-march=native`` would be unsafe in a cache shared between machines (an AVX-512 build
crashes with SIGILL on an AVX2 machine), so the cache key includes the CPU's flag set: each CPU kind gets its own
build. ``RESTORE_CORE_NATIVE_MARCH`` overrides the ``-march`` value (e.g. ``x86-64-v3``) for a portable build.
No ``-ffast-math``: the exp's rounding trick and NaN propagation rely on IEEE semantics.

The kernel's own rounding is the same on every x86-64 machine with FMA. Two things in a ``-march=native`` build
could depend on the CPU: (1) the SIMD width used to follow the ISA (64 bytes under AVX-512, 32 under AVX2) and
the horizontal sums and padded state size follow the width: it is now a build constant, ``RC_VEC_BYTES``
(:func:`vector_bytes`, default 64, ``$RESTORE_CORE_NATIVE_VEC_BYTES`` to change it: 16, 32 or 64; on AVX2 GCC
splits a 64-byte vector into two 32-byte halves). Checked on a 2-vCPU AMD EPYC with AVX-512 (2026-12-03): a
``RESTORE_CORE_NATIVE_MARCH=x86-64-v3`` build (AVX2 only, no zmm register in it) trains chapter 03's quick runs
to the same PSNR / SSIM bit for bit as the native AVX-512 build. Width 32 against 64 there, the same kernel
source otherwise (three alternating runs of ``restore-core bench model --no-reference``, MambaIR light x2,
128x128): 1.58-1.77 s against 1.21-1.37 s, so 64 is the default. (2) ``-march=native`` on AMD Zen implies
``-mtune=znver*``, whose ``avoid-fma-max-bits=256`` keeps GCC from fusing multiply-add chains of up to 256
bits (scalars, 256-bit vectors) into FMAs, where Intel tunings fuse them: ``--param=avoid-fma-max-bits=0``
fuses them everywhere (512-bit code is not affected: on that EPYC the flag left chapter 03's quick training runs
bit for bit unchanged).
What still differs between CPU vendors is torch's: MKL's sgemm takes another code path on AMD than on Intel
(``MKL_CBWR=AVX2`` moved the EPYC's numbers: MKL's AVX2 / AVX-512 reproducibility branches do not cover non-Intel
CPUs), so a model trained on an AMD and on an Intel machine agrees to ~1e-6, not bit for bit, unless MKL runs its
COMPATIBLE branch, as the quick chapters and the tests do (:func:`restore_core.book.runner.mkl_branch`).

When no C++ compiler is found the backend is unavailable (``"auto"`` falls back to "chunked"); when one is
found and the build fails, the error is raised, never hidden.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCE = CSRC / "selective_scan_cpu.cpp"             # the scan kernels and the Python bindings
SOURCES = (SOURCE, CSRC / "ss2d_glue_cpu.cpp")       # compiled into one extension
HEADERS = (CSRC / "simd_cpu.h", CSRC / "ss2d_glue_cpu.h")
CHECKPOINT_EVERY = 64  # T: the forward stores the state every T steps; the backward recomputes each chunk
_ext = None
_unavailable_reason: Optional[str] = None


def _march() -> str:
    return os.environ.get("RESTORE_CORE_NATIVE_MARCH", "native")


VEC_BYTES_ENV = "RESTORE_CORE_NATIVE_VEC_BYTES"


def vector_bytes() -> int:
    """The kernel's SIMD vector width in bytes (``$RESTORE_CORE_NATIVE_VEC_BYTES``, default 64): 16, 32 or 64."""
    raw = os.environ.get(VEC_BYTES_ENV, "64")
    if raw not in ("16", "32", "64"):
        raise ValueError(f"${VEC_BYTES_ENV} must be 16, 32 or 64, got {raw!r}")
    return int(raw)


def compile_flags() -> List[str]:
    """The C++ flags the extension is built with (part of the cache key); see the module docstring."""
    flags = ["-O3", "-ffp-contract=fast", "-fno-trapping-math", "-fopenmp", f"-march={_march()}"]
    if _compiler_is_gcc():
        flags.append("--param=avoid-fma-max-bits=0")   # a GCC tuning parameter (clang has no such tuning)
    return flags + [f"-DRC_VEC_BYTES={vector_bytes()}"]


@functools.lru_cache(maxsize=None)
def _compiler_version_text(cxx: Optional[str]) -> str:
    """What ``cxx --version`` prints ("" when it cannot run)."""
    if cxx is None:
        return ""
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _compiler_is_gcc() -> bool:
    """True when the C++ compiler is GCC: its ``--version`` says gcc / g++ / Free Software Foundation, not clang."""
    text = _compiler_version_text(compiler()).lower()
    return "clang" not in text and any(s in text for s in ("gcc", "g++", "free software foundation"))


def _cpu_signature() -> str:
    """CPU model name and instruction-set flags (what ``-march=native`` depends on)."""
    model, flags = platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags", "Features") and ":" in line:
                    value = line.split(":", 1)[1].strip()
                    if key == "model name":
                        model += " " + value
                    else:
                        flags = " ".join(sorted(value.split()))
                if model != platform.machine() and flags:
                    break
    except OSError:
        pass
    return f"{model}|{flags}"


def cache_key() -> str:
    """Hash of the kernel sources and headers, torch version, compiler flags and CPU: one build per distinct key."""
    h = hashlib.sha256()
    for path in SOURCES + HEADERS:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    h.update(torch.__version__.encode())
    h.update(" ".join(compile_flags()).encode())
    h.update(_cpu_signature().encode())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """The folder this machine's build lives in."""
    root = Path(os.environ.get("RESTORE_CORE_EXT_DIR", Path.home() / ".cache" / "restore_core" / "ext"))
    return root / f"selective_scan_{cache_key()}"


def compiler() -> Optional[str]:
    """Path of the C++ compiler torch would use ($CXX or c++), or None."""
    return shutil.which(os.environ.get("CXX", "c++"))


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_sources(build: Path) -> List[Path]:
    """The kernel sources as compiled: copies of every source and header in the build folder (each written when
    missing or different); returns the copied sources.

    torch's ``build.ninja`` records the sources' paths; compiling the package's own files would make every checkout
    of the same sources (clones, worktrees, a CI clone) rewrite the shared cache entry and rebuild it.
    """
    copies = []
    for path in SOURCES + HEADERS:
        copy = build / path.name
        text = path.read_bytes()
        if not copy.is_file() or copy.read_bytes() != text:
            tmp = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
            tmp.write_bytes(text)
            os.replace(tmp, copy)
        copies.append(copy)
    return copies[:len(SOURCES)]


def load():
    """The compiled extension (building it on first use on this machine). Raises if the build fails."""
    global _ext
    if _ext is not None:
        return _ext
    if compiler() is None:
        raise RuntimeError("backend 'native' needs a C++ compiler (set $CXX or install g++)")
    # deferred: torch.utils.cpp_extension costs ~0.4 s to import (python -X importtime), needed only to build
    from torch.utils.cpp_extension import load as cpp_load

    build = cache_dir()
    build.mkdir(parents=True, exist_ok=True)
    with _file_lock(build.parent / f"{build.name}.lock"):
        sources = build_sources(build)
        quiet = not log.isEnabledFor(logging.DEBUG)
        _ext = cpp_load(name=f"restore_core_scan_{cache_key()}", sources=[str(p) for p in sources],
                        extra_cflags=compile_flags(), extra_ldflags=["-fopenmp"], build_directory=str(build),
                        verbose=not quiet)
    log.info("selective_scan native extension loaded from %s", build)
    return _ext


def is_available() -> bool:
    """True when the extension is built or can be built; a missing compiler makes it unavailable (logged once),
    a failed build with a compiler present is logged as an error and also makes it unavailable for "auto"."""
    global _unavailable_reason
    if _ext is not None:
        return True
    if _unavailable_reason is not None:
        return False
    if compiler() is None:
        _unavailable_reason = "no C++ compiler"
        log.info("selective_scan: backend 'native' unavailable (no C++ compiler)")
        return False
    try:
        load()
        return True
    except Exception as exc:  # a broken toolchain must not break "auto"; backend="native" re-raises via load()
        _unavailable_reason = f"build failed: {exc}"
        log.error("selective_scan: building the native extension failed: %s", exc)
        return False


def _state_vectors(n: int, fp64: bool) -> int:
    """Padded state size Np: N rounded up to a power-of-two number of SIMD vectors."""
    lanes = load().vector_lanes(fp64)
    nv = 1
    while nv * lanes < n:
        nv *= 2
    if nv > 16:
        raise ValueError(f"backend 'native' supports N <= {16 * lanes} here, got N={n}; use backend='chunked'")
    return nv * lanes


def _to_kernel_layout(M: Tensor, n_pad: int, dtype: torch.dtype) -> Tensor:
    """(Bt, N, L) or (Bt, G, N, L) -> contiguous (Bt, G, L, Np), zero-padded states."""
    M = M.unsqueeze(1) if M.dim() == 3 else M
    M = M.to(dtype).transpose(2, 3)
    return F.pad(M, (0, n_pad - M.shape[-1])).contiguous()


class _NativeScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
        ext = load()
        work = u.dtype if u.dtype in (torch.float32, torch.float64) else torch.float32
        n = A.shape[1]
        n_pad = _state_vectors(n, work == torch.float64)

        def prep(t: Optional[Tensor]) -> Optional[Tensor]:
            return None if t is None else t.to(work).contiguous()

        uk, dk, zk, Dk, bk = prep(u), prep(delta), prep(z), prep(D), prep(delta_bias)
        Ak = F.pad(A.to(work), (0, n_pad - n)).contiguous()
        Bk, Ck = _to_kernel_layout(B, n_pad, work), _to_kernel_layout(C, n_pad, work)
        out, last, ckpt, ysave = ext.scan_fwd(uk, dk, Ak, Bk, Ck, Dk, zk, bk, bool(delta_softplus),
                                              CHECKPOINT_EVERY)
        ctx.save_for_backward(uk, dk, Ak, Bk, Ck, Dk, zk, bk, ckpt, ysave)
        ctx.meta = (bool(delta_softplus), n, u.dtype, A.dtype)
        ctx.shapes = (B.shape, B.dim(), C.shape, C.dim())
        ctx.dtypes = (B.dtype, C.dtype, None if D is None else D.dtype,
                      None if delta_bias is None else delta_bias.dtype, None if z is None else z.dtype,
                      delta.dtype)
        ctx.mark_non_differentiable(ckpt)
        return out.to(u.dtype), last[..., :n].to(u.dtype)

    @staticmethod
    def backward(ctx, dout, dlast):
        ext = load()
        uk, dk, Ak, Bk, Ck, Dk, zk, bk, ckpt, ysave = ctx.saved_tensors
        softplus, n, u_dtype, A_dtype = ctx.meta
        B_shape, B_dim, C_shape, C_dim = ctx.shapes
        B_dtype, C_dtype, D_dtype, bias_dtype, z_dtype, delta_dtype = ctx.dtypes
        work = uk.dtype
        if dout is None:
            dout = torch.zeros_like(uk)
        dout = dout.to(work).contiguous()
        dlast_k = None
        if dlast is not None:
            dlast_k = F.pad(dlast.to(work), (0, Ak.shape[1] - n)).contiguous()
        du, dd, dA, dBbuf, dCbuf, dD, dbias, dz = ext.scan_bwd(
            uk, dk, Ak, Bk, Ck, Dk, zk, bk, softplus, CHECKPOINT_EVERY, ckpt, ysave, dout, dlast_k)
        dB = dBbuf.sum(0)[..., :n].transpose(2, 3)
        dC = dCbuf.sum(0)[..., :n].transpose(2, 3)
        if B_dim == 3:
            dB = dB.squeeze(1)
        if C_dim == 3:
            dC = dC.squeeze(1)
        return (du.to(u_dtype), dd.to(delta_dtype), dA.sum(0)[:, :n].to(A_dtype), dB.to(B_dtype), dC.to(C_dtype),
                None if Dk is None else dD.sum(0).to(D_dtype),
                None if zk is None else dz.to(z_dtype),
                None if bk is None else dbias.sum(0).to(bias_dtype),
                None, None)


def selective_scan_native(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                          z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = False, return_last_state: bool = False):
    """Selective scan with the C++ kernel (signature and shapes as :func:`selective_scan_ref`).

    u, delta, z: (Bt, D, L); A: (D, N); B, C: (Bt, N, L) or (Bt, G, N, L); D, delta_bias: (D,).
    Returns out: (Bt, D, L) in u's dtype, and with ``return_last_state`` also h_L: (Bt, D, N).
    Computes in float32 (float64 inputs in float64); memory beyond inputs and outputs: state checkpoints
    (Bt, D, L/64, N), never a (Bt, D, L, N) tensor.
    """
    if u.device.type != "cpu":
        raise RuntimeError(f"backend 'native' runs on the CPU, got {u.device.type} tensors")
    out, last = _NativeScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    return (out, last) if return_last_state else out


def native_available(u: Tensor) -> bool:
    """'native' can run u: CPU tensors and a built (or buildable) extension."""
    return u.device.type == "cpu" and is_available()


# ------------------------------------------------------------------------------------ fused 2-D cross-scan
def direction_codes(order) -> Optional[List[int]]:
    """The kernel's direction codes (bit 0: column-major, bit 1: reversed) of a scan order whose K <= 4 paths all
    cover the whole grid with step 1 ("1d", "2d", "4d"), or None when the fused kernel cannot run it."""
    paths = getattr(order, "paths", None)
    if not paths or len(paths) > 4:
        return None
    codes = []
    for r0, c0, step, column_major, backwards in paths:
        if (r0, c0, step) != (0, 0, 1):
            return None
        codes.append(int(bool(column_major)) | (int(bool(backwards)) << 1))
    return codes


def padded_state(n: int, dtype: torch.dtype) -> int:
    """Np: the state size the kernel works with (N rounded up to whole SIMD vectors) for this dtype."""
    return _state_vectors(n, dtype == torch.float64)


LANE_STATE_SIZES = (1, 2, 4, 8, 16)   # N the inference kernel (channels on SIMD lanes) is compiled for
LANE_MAX_DT_RANK = 16


def _channels_first(x: Tensor) -> Tensor:
    """(Bt, E, L) contiguous; a channels-last view ((Bt, L, E) memory) goes through the tiled transpose."""
    if x.is_contiguous():
        return x
    if x.transpose(1, 2).is_contiguous():
        return load().transpose_last2(x.transpose(1, 2))
    return x.contiguous()


def _channels_last(x: Tensor) -> Tensor:
    """(Bt, L, E) contiguous memory of a (Bt, E, L) tensor: a view when it is one, else a tiled transpose."""
    xt = x.transpose(1, 2)
    if xt.is_contiguous():
        return xt
    return load().transpose_last2(x) if x.is_contiguous() else xt.contiguous()


class _NativeCrossScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dts, Wdt, bias, A, BC, D, codes, H, W):
        ext = load()
        n_pad = BC.shape[-1]
        Ak = F.pad(A, (0, n_pad - A.shape[1])).contiguous()
        rest = (dts.contiguous(), Wdt.contiguous(), None if bias is None else bias.contiguous(), Ak,
                BC.contiguous(), None if D is None else D.contiguous())
        save = any(ctx.needs_input_grad[:7])
        args = (_channels_first(x),) + rest
        out, ckpt = ext.cross_scan_fwd(*args, list(codes), H, W, True, CHECKPOINT_EVERY, save)
        if save:
            ctx.save_for_backward(*[t if t is not None else torch.empty(0) for t in args], ckpt)
            ctx.meta = (list(codes), H, W, bias is not None, D is not None, A.shape[1])
        return out

    @staticmethod
    def backward(ctx, gout):
        ext = load()
        x, dts, Wdt, bias, Ak, BC, D, ckpt = ctx.saved_tensors
        codes, H, W, has_bias, has_D, n = ctx.meta
        du, ddelta, dBC, dA, dD, dbias = ext.cross_scan_bwd(
            x, dts, Wdt, bias if has_bias else None, Ak, BC, D if has_D else None, codes, H, W, True,
            CHECKPOINT_EVERY, ckpt, gout.contiguous())
        dts_g = torch.matmul(Wdt.transpose(1, 2), ddelta)                      # (Bt, K, R, L)
        dWdt = torch.matmul(ddelta, dts.transpose(2, 3)).sum(0)                # (K, E, R)
        dt = x.dtype
        return (du, dts_g, dWdt, dbias.sum(0).to(dt).view_as(bias) if has_bias else None,
                dA.sum(0)[:, :n].to(dt), dBC.sum(0), dD.sum(0).to(dt) if has_D else None, None, None, None)


class _TransposeLast2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return load().transpose_last2(x.contiguous())

    @staticmethod
    def backward(ctx, g):
        return load().transpose_last2(g.contiguous())


def transpose_last2(x: Tensor) -> Tensor:
    """(nb, P, Q) -> (nb, Q, P) contiguous, in cache-sized tiles (differentiable): the channels-last <->
    channels-first conversion around the fused cross-scan, several times faster than ``permute().contiguous()``,
    whose strided copy walks one side with a stride of P or Q elements. CPU, float32 / float64."""
    if x.dim() != 3 or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"transpose_last2 takes a 3-D float32/float64 CPU tensor, got {tuple(x.shape)} "
                         f"{x.dtype} on {x.device.type}")
    return _TransposeLast2.apply(x)


def cross_scan_native(x: Tensor, dts: Tensor, Wdt: Tensor, bias: Optional[Tensor], A: Tensor, BC: Tensor,
                      D: Optional[Tensor], codes: List[int], H: int, W: int) -> Tensor:
    """SS2D's scan core in one kernel: K directions read from the map, delta formed per row, merged in place.

    x: (Bt, E, H*W) the map (u), contiguous or a channels-last view; dts: (Bt, K, R, H*W) the dt_rank part of x_proj
    in pixel order; Wdt: (K, E, R) (``dt_projs_weight``); bias: (K, E) (``dt_projs_bias``, softplus applied); A:
    (K*E, N); BC: (Bt, H*W, K, 2, Np) B and C of each direction at each pixel, zero-padded to Np =
    :func:`padded_state`; D: (K*E,); codes: from :func:`direction_codes`. Returns (Bt, E, H*W): the K directions'
    outputs summed (each with its D u term). One dtype for all tensors (float32 or float64). Without autograd
    (inference, N in :data:`LANE_STATE_SIZES`) the channels-on-lanes kernel runs and the result is a channels-last
    view; otherwise the row kernel, which also stores the state checkpoints its backward needs.
    """
    if x.device.type != "cpu":
        raise RuntimeError(f"the native cross-scan runs on the CPU, got {x.device.type} tensors")
    tensors = [t for t in (x, dts, Wdt, bias, A, BC, D) if t is not None]
    if (not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
            and A.shape[1] in LANE_STATE_SIZES and Wdt.shape[2] <= LANE_MAX_DT_RANK and bool((A <= 0).all())):
        # inference: the channels-on-lanes kernel reads and writes channels-last; the result is returned as the
        # (Bt, E, L) view of its (Bt, L, E) memory. Its exp assumes Δ A <= 0 (softplus Δ >= 0, A <= 0).
        n_pad = BC.shape[-1]
        Ak = F.pad(A, (0, n_pad - A.shape[1])).contiguous()
        out = load().cross_scan_fwd_lanes(_channels_last(x), dts.contiguous(), Wdt.contiguous(),
                                          None if bias is None else bias.contiguous(), Ak, BC.contiguous(),
                                          None if D is None else D.contiguous(), list(codes), H, W, True,
                                          A.shape[1])
        return out.transpose(1, 2)
    return _NativeCrossScan.apply(x, dts, Wdt, bias, A, BC, D, tuple(codes), H, W)


# ------------------------------------------------------------------------------------ SS2D's inference glue
def layernorm_silu_gate(y: Tensor, z: Tensor, weight: Tensor, bias: Optional[Tensor], eps: float) -> Tensor:
    """LayerNorm(y) * SiLU(z) over the last axis in one pass (SS2D's output gate, inference: no autograd); the
    LayerNorm as ``nn.LayerNorm(E)`` with ``weight``, ``bias`` (or None) and ``eps``. y, z: (..., E), z may be a
    channel slice (any row stride). Returns (..., E) contiguous. CPU, float32 / float64."""
    if y.shape != z.shape or y.dim() < 1:
        raise ValueError(f"layernorm_silu_gate takes y and z of one shape (..., E), got {tuple(y.shape)} and "
                         f"{tuple(z.shape)}")
    E = y.shape[-1]

    def rows(t: Tensor) -> Tensor:
        t = t if t.stride(-1) == 1 else t.contiguous()
        return t.reshape(-1, E)     # a view for contiguous maps and for channel slices of them

    return load().layernorm_silu_gate(rows(y), rows(z), weight, bias, float(eps)).view(y.shape)
