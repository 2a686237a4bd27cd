"""Embedded-Gaussian non-local block (the one inside RNAN's non-local mask branch).

Wang et al., "Non-local Neural Networks", arXiv:1711.07971, eq. (1)-(3) and (6); used by Zhang et al.,
"Residual Non-local Attention Networks for Image Restoration" (RNAN), arXiv:1903.10082, Sec. 3.2::

    f(x_i, x_j) = exp(θ(x_i)ᵀ φ(x_j))                       θ, φ, g: 1x1 convs C -> C'
    y_i         = Σ_j f(x_i, x_j) g(x_j) / Σ_j f(x_i, x_j)   (a softmax over the keys j, for each query i)
    z_i         = W_z y_i + x_i                               W_z: 1x1 conv C' -> C, zero-initialised

so that the block starts as the identity.

Difference from the official RNAN code (``NonLocalBlock2D`` in yulunzhang/RNAN ``model/common.py``): it applies
``softmax(f, dim=1)`` to f of shape (batch, query i, key j), i.e. it normalises over the *queries* i for each key
j, not over the keys as in the equation above. Both are offered: ``softmax_over="key"`` (the paper, default) and
``softmax_over="query"`` (the official code; needed to reproduce its released weights).

The (HW x HW) affinity is computed in chunks of queries (paper form) or keys (official form) so that inference
on a large image never holds the whole matrix; the result equals the one-shot computation.
"""
from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import Tensor, nn

SoftmaxOver = Literal["key", "query"]
_SOFTMAX_OVER = ("key", "query")


def nonlocal_attention(theta: Tensor, phi: Tensor, g: Tensor, softmax_over: SoftmaxOver = "key",
                       max_chunk_elements: int = 2 ** 24) -> Tensor:
    """Softmax attention of the non-local block, normalised over keys (paper) or queries (official RNAN).

    theta: (Bt, L, C') queries θ(x_i); phi: (Bt, L, C') keys φ(x_j); g: (Bt, L, C') values g(x_j).
    Returns y: (Bt, L, C') with y_i = Σ_j a_ij g_j, where a = softmax_j(θ_i·φ_j) ("key") or
    a = softmax_i(θ_i·φ_j) ("query"). ``max_chunk_elements`` bounds the size of one (Bt, chunk, L) block.
    """
    if softmax_over not in _SOFTMAX_OVER:
        raise ValueError(f"softmax_over must be one of {_SOFTMAX_OVER}, got {softmax_over!r}")
    nb, length, _ = theta.shape
    chunk = max(1, min(length, max_chunk_elements // max(1, nb * length)))
    if softmax_over == "key":
        # Each query row is normalised on its own: process query chunks independently.
        outs = []
        for q0 in range(0, length, chunk):
            f = torch.einsum("bic,bjc->bij", theta[:, q0:q0 + chunk], phi)    # (Bt, chunk, L)
            outs.append(torch.einsum("bij,bjc->bic", f.softmax(dim=-1), g))  # (Bt, chunk, C')
        return torch.cat(outs, dim=1)
    # "query": each key column is normalised over all queries: process key chunks and accumulate.
    y = theta.new_zeros(g.shape)
    for k0 in range(0, length, chunk):
        f = torch.einsum("bic,bjc->bij", theta, phi[:, k0:k0 + chunk])       # (Bt, L, chunk)
        y = y + torch.einsum("bij,bjc->bic", f.softmax(dim=1), g[:, k0:k0 + chunk])
    return y


class NonLocalBlock2D(nn.Module):
    """Embedded-Gaussian non-local block ``z = W_z(attention(θ(x), φ(x), g(x))) + x``.

    Parameter names follow the paper's symbols (``theta``, ``phi``, ``g``, ``W``), which are also the official
    RNAN names. x: (Bt, C, H, W) -> (Bt, C, H, W).
    """

    def __init__(self, in_channels: int = 64, inter_channels: int = 32, softmax_over: SoftmaxOver = "key",
                 zero_init: bool = True, max_chunk_elements: int = 2 ** 24) -> None:
        super().__init__()
        if softmax_over not in _SOFTMAX_OVER:
            raise ValueError(f"softmax_over must be one of {_SOFTMAX_OVER}, got {softmax_over!r}")
        self.in_channels, self.inter_channels = in_channels, inter_channels
        self.softmax_over = softmax_over
        self.max_chunk_elements = max_chunk_elements
        self.g = nn.Conv2d(in_channels, inter_channels, 1)
        self.theta = nn.Conv2d(in_channels, inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, inter_channels, 1)
        self.W = nn.Conv2d(inter_channels, in_channels, 1)
        if zero_init:  # the block starts as the identity (Wang et al., Sec. 4.1)
            nn.init.zeros_(self.W.weight)
            nn.init.zeros_(self.W.bias)

    def extra_repr(self) -> str:
        return f"softmax_over={self.softmax_over!r}"

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> (Bt, C, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"NonLocalBlock2D expects (batch, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        theta, phi, g = (rearrange(m(x), "b c h w -> b (h w) c") for m in (self.theta, self.phi, self.g))
        y = nonlocal_attention(theta, phi, g, self.softmax_over, self.max_chunk_elements)  # (Bt, HW, C')
        return self.W(rearrange(y, "b (h w) c -> b c h w", h=h, w=w)) + x
