"""The selective scan (Mamba's S6 recurrence), one function with several backends.

Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv:2312.00752, Algorithm 2.
For every batch element b, channel d and step t (ZOH for A, Euler for B, as in Mamba)::

    Δ_t   = softplus(delta_t + delta_bias)            (if delta_softplus)
    h_t   = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t         h: (N,)   (eq. 2a with Ā = exp(ΔA), B̄ u ≈ Δ B u)
    y_t   = C_t · h_t + D u_t                                    (eq. 2b)
    out_t = y_t · SiLU(z_t)                           (if z is given)

Argument conventions follow mamba-ssm's ``selective_scan_fn``:

    u, delta : (Bt, D, L)          Bt = batch, D = channels, L = sequence length
    A        : (D, N)              N = state size (real, negative for a stable scan)
    B, C     : (Bt, N, L) or grouped (Bt, G, N, L) with D divisible by G (channels d use group d // (D/G))
    D        : (D,) or None        skip connection
    z        : (Bt, D, L) or None  gate
    delta_bias: (D,) or None

Backends (chosen with ``backend=``): ``"ref"`` is the sequential loop and the test oracle; ``"cuda"`` calls
mamba-ssm's kernel for CUDA tensors when it imports; ``"triton"`` runs Triton kernels (forward and a recomputing
backward) on CUDA tensors when triton is installed, the GPU path that needs no CUDA compilation
(restore_core/ssm/triton_scan.py; CPU tensors only under ``TRITON_INTERPRET=1``, for tests); ``"native"`` is a C++/OpenMP CPU kernel with a hand-written
backward (restore_core/ssm/native.py, built once per machine on first use); ``"chunked"`` is a pure-PyTorch
chunked scan with rescaling, the fallback where no C++ compiler exists (restore_core/ssm/chunked.py);
``"meta"`` only propagates shapes, for tensors on the meta device (a model built there runs its forward pass
without arithmetic: FLOP counting in :mod:`restore_core.analysis.complexity`). Further backends register themselves through :func:`register_backend`. ``"auto"`` picks the available backend with the
highest priority, cuda (GPU tensors, mamba-ssm importable) or meta (meta tensors) > native (CPU, compiler) >
triton (GPU tensors, triton installed) > chunked > ref: on CUDA tensors cuda > triton > chunked. It logs its
choice once per (backend, device, dtype). Speeds: ``python -m restore_core.bench scan``.
Explained in the book chapter "Selective scan and scanning images".
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)

ScanFn = Callable[..., "Tensor | Tuple[Tensor, Tensor]"]


@dataclass(frozen=True)
class ScanBackend:
    """A selective-scan implementation: ``fn`` has :func:`selective_scan`'s signature minus ``backend``.

    ``available(u)`` says whether it can run on these inputs (device, dtype, compiled code present);
    ``priority`` orders the ``"auto"`` choice (higher wins).
    """

    name: str
    fn: ScanFn
    available: Callable[[Tensor], bool]
    priority: int
    description: str = ""


_BACKENDS: Dict[str, ScanBackend] = {}
_LOGGED: set = set()


def register_backend(backend: ScanBackend) -> None:
    """Add a backend; a duplicate name raises."""
    if backend.name in _BACKENDS:
        raise KeyError(f"scan backend {backend.name!r} is already registered")
    _BACKENDS[backend.name] = backend


def list_backends(u: Optional[Tensor] = None) -> List[str]:
    """Names of registered backends, or of those available for ``u``, best first."""
    items = sorted(_BACKENDS.values(), key=lambda b: -b.priority)
    return [b.name for b in items if u is None or b.available(u)]


def backend_descriptions() -> Dict[str, str]:
    """``{name: what it is}`` for every registered backend, best first (the order "auto" tries them)."""
    return {name: _BACKENDS[name].description for name in list_backends()}


def _check_shapes(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                  z: Optional[Tensor], delta_bias: Optional[Tensor]) -> None:
    """Raise a ValueError that names the first argument whose shape does not fit."""
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, D, L), got shape {tuple(u.shape)}")
    nb, d, length = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"delta must have u's shape {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f"A must be (D={d}, N), got {tuple(A.shape)}")
    n = A.shape[1]
    for name, M in (("B", B), ("C", C)):
        if M.dim() == 3:
            if tuple(M.shape) != (nb, n, length):
                raise ValueError(f"{name} must be (batch={nb}, N={n}, L={length}) or grouped, got {tuple(M.shape)}")
        elif M.dim() == 4:
            g = M.shape[1]
            if tuple(M.shape) != (nb, g, n, length) or g == 0 or d % g:
                raise ValueError(
                    f"grouped {name} must be (batch={nb}, G, N={n}, L={length}) with D={d} divisible by G, "
                    f"got {tuple(M.shape)}")
        else:
            raise ValueError(f"{name} must be 3-D or 4-D (grouped), got shape {tuple(M.shape)}")
    if D is not None and tuple(D.shape) != (d,):
        raise ValueError(f"D must be ({d},), got {tuple(D.shape)}")
    if delta_bias is not None and tuple(delta_bias.shape) != (d,):
        raise ValueError(f"delta_bias must be ({d},), got {tuple(delta_bias.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"z must have u's shape {tuple(u.shape)}, got {tuple(z.shape)}")
    if A.is_complex():
        raise ValueError("complex A is not supported (the image models use real A)")


def expand_groups(M: Tensor, d: int) -> Tensor:
    """(Bt, N, L) -> (Bt, 1, N, L); (Bt, G, N, L) -> (Bt, D, N, L) as a view (one group per D/G channels)."""
    if M.dim() == 3:
        return M.unsqueeze(1)
    g = M.shape[1]
    return M.repeat_interleave(d // g, dim=1) if g != d else M


def selective_scan_ref(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                       z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                       delta_softplus: bool = False, return_last_state: bool = False):
    """The sequential recurrence, step by step: the truth every other backend is tested against.

    Computes in float32 (float64 inputs stay float64) and returns ``out`` in u's dtype: (Bt, D, L);
    with ``return_last_state`` also the final state h_L: (Bt, D, N).
    Steps are taken with ``unbind`` so that autograd's backward stays linear in L.
    """
    dtype_in = u.dtype
    work = torch.float64 if u.dtype == torch.float64 else torch.float32
    u, delta, A, B, C = (t.to(work) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(work)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    nb, d, length = u.shape
    Bx = expand_groups(B, d)  # (Bt, D or 1, N, L)
    Cx = expand_groups(C, d)
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))          # Ā_t = exp(Δ_t A): (Bt, D, L, N)
    dBu = torch.einsum("bdl,bdnl,bdl->bdln", delta, Bx, u)           # Δ_t B_t u_t: (Bt, D, L, N)
    h = u.new_zeros(nb, d, A.shape[1])
    ys = []
    for dA_t, dBu_t, C_t in zip(dA.unbind(2), dBu.unbind(2), Cx.unbind(3)):
        h = dA_t * h + dBu_t                                         # h_t = Ā_t h_{t-1} + B̄_t u_t
        ys.append(torch.einsum("bdn,bdn->bd", h, C_t.expand_as(h)))  # y_t = C_t h_t
    y = torch.stack(ys, dim=2)  # (Bt, D, L)
    if D is not None:
        y = y + u * D.to(work)[:, None]
    if z is not None:
        y = y * F.silu(z.to(work))
    out = y.to(dtype_in)
    return (out, h.to(dtype_in)) if return_last_state else out


def _cuda_fn():
    """mamba-ssm's fused kernel, or None when it (or its compiled extension) does not import."""
    try:  # mamba-ssm is optional (the cuda extra) and may be installed without a working extension
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # type: ignore
        return selective_scan_fn
    except Exception:  # ImportError, or a missing/ABI-broken selective_scan_cuda extension
        return None


def _selective_scan_cuda(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False):
    fn = _cuda_fn()
    if fn is None:
        raise RuntimeError("backend 'cuda' needs mamba-ssm with its compiled kernels: "
                           "pip install mamba-ssm --no-build-isolation (on a machine with nvcc)")
    # mamba-ssm's kernel needs contiguous inputs and float32 D / delta_bias.
    args = [t.contiguous() if t is not None else None for t in (u, delta, A, B, C, D, z, delta_bias)]
    u, delta, A, B, C, D, z, delta_bias = args
    if D is not None:
        D = D.float()
    if delta_bias is not None:
        delta_bias = delta_bias.float()
    return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


register_backend(ScanBackend(
    "ref", selective_scan_ref, lambda u: True, priority=0,
    description="sequential PyTorch loop (the oracle)"))
register_backend(ScanBackend(
    "cuda", _selective_scan_cuda, lambda u: u.is_cuda and _cuda_fn() is not None, priority=100,
    description="mamba-ssm's fused CUDA kernel"))


def _selective_scan_shapes_only(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D=None, z=None,
                                delta_bias=None, delta_softplus: bool = False, return_last_state: bool = False):
    """Outputs of the right shape, nothing computed: for meta tensors (shape propagation, FLOP counting).

    Returns out ``(Bt, D, L)`` (and the last state ``(Bt, D, N)``), like every backend.
    """
    out = torch.empty_like(u)
    return (out, u.new_empty(u.shape[0], u.shape[1], A.shape[1])) if return_last_state else out


register_backend(ScanBackend(
    "meta", _selective_scan_shapes_only, lambda u: u.device.type == "meta", priority=100,
    description="shapes only, for meta tensors (FLOP counting, shape checks)"))


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                   z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None, delta_softplus: bool = False,
                   return_last_state: bool = False, backend: str = "auto"):
    """Selective scan with mamba-ssm's conventions (see the module docstring for shapes).

    Returns ``out``: (Bt, D, L) in u's dtype, and with ``return_last_state`` also h_L: (Bt, D, N).
    ``backend``: "auto" (fastest available; the choice is logged once per device/dtype) or a name from
    :func:`list_backends`.
    """
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    if backend == "auto":
        names = list_backends(u)
        chosen = _BACKENDS[names[0]]
        key = (chosen.name, u.device.type, u.dtype)
        if key not in _LOGGED:
            _LOGGED.add(key)
            log.info("selective_scan: backend %r (%s) for %s %s", chosen.name, chosen.description,
                     u.device.type, u.dtype)
    else:
        if backend not in _BACKENDS:
            raise ValueError(f"unknown scan backend {backend!r}; known: {list_backends()}")
        chosen = _BACKENDS[backend]
        if not chosen.available(u):
            raise RuntimeError(f"scan backend {backend!r} is not available for {u.device.type} {u.dtype} "
                               f"inputs; available: {list_backends(u)}")
    return chosen.fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


# Backends in their own modules (imported last: they do not import this module).
from .chunked import selective_scan_chunked  # noqa: E402
from .native import native_available, selective_scan_native  # noqa: E402
from .triton_scan import selective_scan_triton, triton_available  # noqa: E402 (imports triton only on first use)

register_backend(ScanBackend(
    "native", selective_scan_native, native_available, priority=50,
    description="C++/OpenMP CPU kernel with a hand-written backward"))
register_backend(ScanBackend(
    "triton", selective_scan_triton, triton_available, priority=30,
    description="Triton GPU kernels with a recomputing backward (CPU only under TRITON_INTERPRET=1)"))
register_backend(ScanBackend(
    "chunked", selective_scan_chunked, lambda u: True, priority=10,
    description="chunked PyTorch scan with rescaling (fallback without a compiler)"))
