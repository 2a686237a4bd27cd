"""The "triton" selective-scan backend: forward and backward as Triton kernels, for GPUs without mamba-ssm.

Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv:2312.00752, Algorithm 2.
mamba-ssm's fused kernel needs a CUDA build (its package on the index is a source distribution); Triton
compiles at run time from a plain wheel. The kernels (restore_core/ssm/triton_kernels.py) are ours: float32
state and accumulation for float32 / bfloat16 / float16 inputs (float64 inputs are computed in float32),
grouped B and C, the z gate, D, delta_bias with softplus, the last state, and a backward that recomputes each
chunk of T steps from a checkpointed state: memory O(Bt·D·L), never a (Bt, D, L, N) tensor.

``triton`` is optional (``pip install restore-core[triton]``) and imported on first use, so ``import
restore_core`` never needs it. With ``TRITON_INTERPRET=1`` set before triton is imported, Triton runs the kernels
on CPU tensors (slowly): that is how the CPU test suite checks them against "ref" (tests/test_scan_triton.py).
Explained in the book chapter "Selective scan and scanning images".
"""
from __future__ import annotations

import importlib.util
import os
from typing import Optional

import torch
from torch import Tensor

CHECKPOINT_EVERY = 64   # T: the forward stores h every T steps; the backward recomputes one chunk at a time
MAX_BLOCK_D = 16        # channels per program (a power of two dividing the channels per B/C group)
_kernels = None
_import_error: Optional[str] = None


def installed() -> bool:
    """triton is importable (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Triton's interpreter is on (TRITON_INTERPRET=1): kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def load():
    """The kernel module (importing triton on first use); raises with an install hint when triton is missing."""
    global _kernels, _import_error
    if _kernels is None:
        try:  # triton is optional (the triton extra): triton_kernels imports it, so only on first use
            from . import triton_kernels
        except ImportError as exc:
            _import_error = str(exc)
            raise RuntimeError("backend 'triton' needs triton: pip install 'restore-core[triton]' "
                               f"(the version matching torch; {exc})") from exc
        _kernels = triton_kernels
    return _kernels


def triton_available(u: Tensor) -> bool:
    """'triton' can run u: CUDA tensors with triton installed, or CPU tensors under TRITON_INTERPRET=1."""
    if u.is_cuda:
        return installed()
    return u.device.type == "cpu" and interpreting() and installed()


def _block_d(ch_per_group: int) -> int:
    """Largest power of two <= MAX_BLOCK_D dividing the channels per group (a program never spans two groups)."""
    bd = 1
    while bd < MAX_BLOCK_D and ch_per_group % (2 * bd) == 0:
        bd *= 2
    return bd


def _time_major(x: Tensor) -> Tensor:
    """(Bt, D, L) -> contiguous (Bt, L, D)."""
    return x.transpose(1, 2).contiguous()


def _bc_time_major(M: Tensor) -> Tensor:
    """(Bt, N, L) or (Bt, G, N, L) -> contiguous (Bt, L, G, N)."""
    M = M.unsqueeze(1) if M.dim() == 3 else M
    return M.permute(0, 3, 1, 2).contiguous()


class _TritonScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
        k = load()
        nb, d, length = u.shape
        n = A.shape[1]
        groups = B.shape[1] if B.dim() == 4 else 1
        if (C.shape[1] if C.dim() == 4 else 1) != groups:
            raise ValueError("backend 'triton' needs B and C with the same number of groups")
        io_dtype = _io_dtype(u)
        T = CHECKPOINT_EVERY
        n_chunks = max(1, -(-length // T))
        bd = _block_d(d // groups)
        block_n = max(_next_pow2(n), 2)
        # each input keeps its own dtype (autocast mixes bfloat16 activations with float32 ones); float64 -> float32
        u_t, dt_t = _time_major(u.to(io_dtype)), _time_major(delta.to(_io_dtype(delta)))
        z_t = _time_major(z.to(_io_dtype(z))) if z is not None else None
        B_t, C_t = _bc_time_major(B.to(_io_dtype(B))), _bc_time_major(C.to(_io_dtype(C)))
        A_c = A.float().contiguous()
        D_c = D.float().contiguous() if D is not None else None
        bias_c = delta_bias.float().contiguous() if delta_bias is not None else None
        save = any(ctx.needs_input_grad[:8])
        out_t = torch.empty(nb, length, d, dtype=io_dtype, device=u.device)             # (Bt, L, D)
        last = torch.empty(nb, d, n, dtype=torch.float32, device=u.device)              # (Bt, D, N)
        ckpt = torch.empty(nb, n_chunks, d, n, dtype=torch.float32, device=u.device) if save else last
        if length > 0:
            k.scan_fwd_kernel[(nb, d // bd)](
                u_t, dt_t, A_c, B_t, C_t, _or(D_c, A_c), _or(z_t, u_t), _or(bias_c, A_c), out_t, last, ckpt,
                length, d, groups, n, n_chunks, d // groups,
                T=T, BLOCK_D=bd, BLOCK_N=block_n, HAS_D=D is not None, HAS_Z=z is not None,
                HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus), SAVE=save,
                num_warps=_num_warps(bd, block_n))
        else:
            last.zero_()
            ckpt.zero_()
        if save:
            ctx.save_for_backward(u_t, dt_t, A_c, B_t, C_t, D_c, z_t, bias_c, ckpt)
        ctx.meta = (bool(delta_softplus), nb, d, length, n, groups, n_chunks, bd, block_n)
        ctx.specs = tuple(None if t is None else (t.dtype, t.dim()) for t in (u, delta, A, B, C, D, z, delta_bias))
        return out_t.transpose(1, 2).contiguous().to(u.dtype), last.to(u.dtype)

    @staticmethod
    def backward(ctx, dout, dlast):
        k = load()
        u_t, dt_t, A_c, B_t, C_t, D_c, z_t, bias_c, ckpt = ctx.saved_tensors
        softplus, nb, d, length, n, groups, n_chunks, bd, block_n = ctx.meta
        u, delta, A, B, C, D, z, delta_bias = ctx.specs  # (dtype, dim) of each input, or None
        dev = u_t.device
        f32 = dict(dtype=torch.float32, device=dev)
        if dout is None:
            dout = torch.zeros(nb, d, length, **f32)
        dout_t = _time_major(dout)
        du, dd = torch.empty(nb, length, d, **f32), torch.empty(nb, length, d, **f32)
        dz = torch.empty(nb, length, d, **f32) if z_t is not None else du
        dB = torch.zeros(nb, length, groups, n, **f32)                                  # (Bt, L, G, N)
        dC = torch.zeros(nb, length, groups, n, **f32)
        dA = torch.empty(nb, d, n, **f32)                                               # per batch element
        dD, dbias = torch.empty(nb, d, **f32), torch.empty(nb, d, **f32)
        T = CHECKPOINT_EVERY
        scratch = torch.empty(nb * (d // bd) * (T + 1) * bd * block_n, **f32)
        dlast_c = dlast.float().contiguous() if dlast is not None else None
        if length > 0:
            k.scan_bwd_kernel[(nb, d // bd)](
                u_t, dt_t, A_c, B_t, C_t, _or(D_c, A_c), _or(z_t, u_t), _or(bias_c, A_c), dout_t,
                _or(dlast_c, A_c), ckpt, scratch, du, dd, dA, dB, dC, dD, dbias, dz,
                length, d, groups, n, n_chunks, d // groups,
                T=T, BLOCK_D=bd, BLOCK_N=block_n, HAS_D=D_c is not None, HAS_Z=z_t is not None,
                HAS_BIAS=bias_c is not None, SOFTPLUS=softplus, HAS_DLAST=dlast_c is not None,
                num_warps=_num_warps(bd, block_n))
        else:
            for t in (dA, dD, dbias):
                t.zero_()

        def back(g: Tensor, spec) -> Tensor:
            return g.transpose(1, 2).to(spec[0])                                         # (Bt, D, L)

        def back_bc(g: Tensor, spec) -> Tensor:
            g = g.permute(0, 2, 3, 1)                                                    # (Bt, G, N, L)
            return (g.squeeze(1) if spec[1] == 3 else g).to(spec[0])

        return (back(du, u), back(dd, delta), dA.sum(0).to(A[0]), back_bc(dB, B), back_bc(dC, C),
                None if D is None else dD.sum(0).to(D[0]),
                None if z is None else back(dz, z),
                None if delta_bias is None else dbias.sum(0).to(delta_bias[0]),
                None, None)


def _io_dtype(t: Tensor) -> torch.dtype:
    """The dtype a tensor is read in: its own if the kernels load it (float32/bfloat16/float16), else float32."""
    return t.dtype if t.dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32


def _or(t: Optional[Tensor], fallback: Tensor) -> Tensor:
    """A placeholder pointer for an absent optional input (the kernel never reads it)."""
    return fallback if t is None else t


def _next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _num_warps(block_d: int, block_n: int) -> int:
    """One warp per 256 state elements, 1-4 warps."""
    return max(1, min(4, block_d * block_n // 256))


def selective_scan_triton(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                          z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = False, return_last_state: bool = False):
    """Selective scan with the Triton kernels (signature and shapes as :func:`selective_scan_ref`).

    u, delta, z: (Bt, D, L); A: (D, N); B, C: (Bt, N, L) or (Bt, G, N, L); D, delta_bias: (D,).
    Returns out: (Bt, D, L) in u's dtype, and with ``return_last_state`` also h_L: (Bt, D, N).
    Extra memory: state checkpoints (Bt, L/64, D, N) when a gradient is needed, and in the backward a
    (Bt, D, 65, N) scratch plus float32 gradients.
    """
    if not triton_available(u):
        if not installed():
            load()  # raises with the install hint
        raise RuntimeError(f"backend 'triton' runs on CUDA tensors (or CPU tensors under TRITON_INTERPRET=1), "
                           f"got {u.device.type} tensors")
    out, last = _TritonScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    return (out, last) if return_last_state else out
