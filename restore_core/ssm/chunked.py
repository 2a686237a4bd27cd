"""Chunked selective scan in pure PyTorch: the fallback where no C++ compiler exists.

Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv:2312.00752, Sec. 3.3.
mamba-ssm has no CPU scan besides its sequential reference; this chunked form is ours.

Within a chunk of T steps the recurrence h_t = exp(Δ_t A) h_{t-1} + x_t (x_t = Δ_t B_t u_t) unrolls to

    h_t = exp(s_t) h_0 + Σ_{k≤t} exp(s_t - s_k) x_k,      s_t = Σ_{j≤t} Δ_j A   (cumulative log-decay, ≤ 0)

which the "factorised" form evaluates with two cumulative sums, exp(s_t) · cumsum_k(exp(-s_k) x_k). That
overflows: exp(-s_k) passes the float32 range once a chunk's decay exceeds ~88 (T=64 with Mamba's
initialisation, T=16 with larger Δ, and float64 as well for large Δ). Two rescalings make it safe:

1. the chunk's factors are centred on its mid-decay m = s_{T-1}/2: exp(s_t - m) · exp(m - s_k), so every
   exponent is at most |s_{T-1}|/2 in magnitude;
2. each step's log-decay is clamped at -CLAMP (float64: exp(-36) ≈ 2e-16, float32: exp(-20) ≈ 2e-9: the
   state is forgotten to the working precision in one such step), which bounds |s_{T-1}| by T·CLAMP, so (1)
   keeps every exponent below T·CLAMP/2: 576 for float64 with T=32 (range 709), 80 for float32 with T=8
   (range 88). See ``SETTINGS``.

Float64 inputs are computed in float64, everything else in float32. The state is carried between chunks in
linear space by a loop over the L/T chunks (``unbind`` keeps autograd linear in L). Gradients come from
autograd. Memory: a few (Bt, D, L, N) tensors, so this is a correctness fallback, not a fast path (see the
"native" backend). Explained in "Selective scan and scanning images".
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

# Working precision -> (default chunk T, per-step log-decay floor CLAMP, largest allowed exponent T*CLAMP/2).
# float64: exp(-36) ~ 2e-16 is "forgotten" at float64 precision; 32 * 36 / 2 = 576 < 709 (float64 overflow).
# float32: exp(-20) ~ 2e-9 is far below float32's 6e-8 resolution; 8 * 20 / 2 = 80 < 88 (float32 overflow).
SETTINGS = {torch.float64: (32, 36.0, 700.0), torch.float32: (8, 20.0, 80.0)}


def selective_scan_chunked(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                           z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                           delta_softplus: bool = False, return_last_state: bool = False,
                           chunk: Optional[int] = None):
    """Selective scan by chunks of ``chunk`` steps (signature and shapes as :func:`selective_scan_ref`).

    u, delta, z: (Bt, D, L); A: (D, N); B, C: (Bt, N, L) or (Bt, G, N, L); D, delta_bias: (D,).
    Returns out: (Bt, D, L) in u's dtype, and with ``return_last_state`` also h_L: (Bt, D, N).
    ``chunk``: T (default by working precision, see ``SETTINGS``).
    """
    dtype_in = u.dtype
    work = torch.float64 if u.dtype == torch.float64 else torch.float32
    default_chunk, clamp, max_exponent = SETTINGS[work]
    chunk = default_chunk if chunk is None else chunk
    if chunk < 1 or chunk * clamp / 2 > max_exponent:
        raise ValueError(f"chunk must be in [1, {int(2 * max_exponent // clamp)}] for {work}, got {chunk}")
    nb, d, length = u.shape
    n = A.shape[1]
    uw, deltaw, Aw = u.to(work), delta.to(work), A.to(work)
    if delta_bias is not None:
        deltaw = deltaw + delta_bias.to(work)[:, None]
    dt = F.softplus(deltaw) if delta_softplus else deltaw            # Δ: (Bt, D, L)

    def grouped(M: Tensor) -> Tensor:  # (Bt, N, L) | (Bt, G, N, L) -> (Bt, G, L, N)
        M = M.to(work)
        return rearrange(M.unsqueeze(1) if M.dim() == 3 else M, "b g n l -> b g l n")

    Bg, Cg = grouped(B), grouped(C)
    g = Bg.shape[1]
    pad = (-length) % chunk
    if pad:  # padded steps have Δ = 0 (no decay, no input): the state passes through unchanged
        dt_p = F.pad(dt, (0, pad))
        u_p = F.pad(uw, (0, pad))
        Bg = F.pad(Bg, (0, 0, 0, pad))
    else:
        dt_p, u_p = dt, uw
    nc = (length + pad) // chunk
    dt_c = rearrange(dt_p, "b (g c) (k t) -> b g c k t", g=g, t=chunk)     # (Bt, G, D/G, nc, T)
    u_c = rearrange(u_p, "b (g c) (k t) -> b g c k t", g=g, t=chunk)
    B_c = rearrange(Bg, "b g (k t) n -> b g k t n", t=chunk)               # (Bt, G, nc, T, N)
    A_g = rearrange(Aw, "(g c) n -> g c n", g=g)                          # (G, D/G, N)

    log_decay = torch.einsum("bgckt,gcn->bgcktn", dt_c, A_g).clamp(min=-clamp)   # Δ_t A: (Bt, G, D/G, nc, T, N)
    x = torch.einsum("bgckt,bgktn->bgcktn", dt_c * u_c, B_c)                     # Δ_t u_t B_t
    s = log_decay.cumsum(dim=4)                                                 # s_t within the chunk
    mid = s[..., -1:, :] * 0.5                                                  # m = s_{T-1} / 2
    local = torch.exp(s - mid) * torch.cumsum(torch.exp(mid - s) * x, dim=4)    # states from h_0 = 0
    chunk_decay = torch.exp(s[..., -1, :])                                      # (Bt, G, D/G, nc, N)
    chunk_end = local[..., -1, :]

    h = uw.new_zeros(nb, g, d // g, n)
    starts = []
    for decay_k, end_k in zip(chunk_decay.unbind(3), chunk_end.unbind(3)):     # carry states between chunks
        starts.append(h)
        h = decay_k * h + end_k
    h_start = torch.stack(starts, dim=3)                                        # (Bt, G, D/G, nc, N)
    states = local + torch.exp(s) * h_start.unsqueeze(4)                        # h_t: (Bt, G, D/G, nc, T, N)

    states = rearrange(states, "b g c k t n -> b g c (k t) n")[:, :, :, :length]
    y = torch.einsum("bgcln,bgln->bgcl", states, Cg)                            # y_t = C_t · h_t
    y = rearrange(y, "b g c l -> b (g c) l")
    if D is not None:
        y = y + uw * D.to(work)[:, None]
    if z is not None:
        y = y * F.silu(z.to(work))
    out = y.to(dtype_in)
    if return_last_state:
        return out, rearrange(h, "b g c n -> b (g c) n").to(dtype_in)
    return out
