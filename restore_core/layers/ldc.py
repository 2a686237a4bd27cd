"""Learnable difference convolution (LDC), the texture branch of FusionMamba's DVSS block and DFEM.

Xie et al., "FusionMamba: Dynamic Feature Enhancement for Multimodal Image Fusion with Mamba",
arXiv:2404.09498. A 3x3 convolution whose centre tap is rescaled by the kernel's own sum, with a learnable
scalar θ (init 0.5) and a learnable per-(out, in) mask m (init 1)::

    W'[o, i] = W[o, i] ⊙ (1 - θ · m[o, i] · E_center · Σ_{u,v} W[o, i, u, v])

E_center is 1 at the centre tap and 0 elsewhere, so only the centre weight changes:
W'_c = W_c (1 - θ m ΣW). This is the formula of the official code (``LDC`` in millieXie/FusionMamba
``models/cross.py``). For comparison, a central difference convolution (CDC) subtracts instead:
W'_c = W_c - θ ΣW, i.e. ``conv(x) - θ (ΣW) x_center``.

Differences from the official code: the constant all-ones ``base_mask`` (a frozen Parameter there, so it showed
up in state dicts) is the number 1 here, and the centre mask is a buffer on the module's device rather than a
``.cuda()`` tensor, so the layer runs on CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LearnableDifferenceConv2d(nn.Module):
    """A k x k convolution (odd k, "same" padding, no bias by default) with the LDC weight above.

    x: (Bt, C_in, H, W) -> (Bt, C_out, H, W).
    """

    def __init__(self, in_channels: int = 64, out_channels: int = 64, kernel_size: int = 3, groups: int = 1,
                 bias: bool = False, theta_init: float = 0.5) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"LDC needs an odd kernel_size, got {kernel_size}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"channels ({in_channels}, {out_channels}) must be divisible by groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.groups = groups
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups,
                              bias=bias)
        self.theta = nn.Parameter(torch.full((1,), float(theta_init)))            # θ
        self.mask = nn.Parameter(torch.ones(out_channels, in_channels // groups))  # m
        center = torch.zeros(kernel_size, kernel_size)
        center[kernel_size // 2, kernel_size // 2] = 1.0
        self.register_buffer("center", center, persistent=False)                  # E_center

    def effective_weight(self) -> Tensor:
        """W' = W ⊙ (1 - θ m E_center ΣW): (C_out, C_in / groups, k, k)."""
        w = self.conv.weight
        kernel_sum = w.sum(dim=(2, 3), keepdim=True)                               # ΣW: (C_out, C_in/g, 1, 1)
        scale = 1 - self.theta * self.mask[:, :, None, None] * self.center * kernel_sum
        return w * scale

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C_in, H, W) -> (Bt, C_out, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"LDC expects (batch, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return F.conv2d(x, self.effective_weight(), self.conv.bias, padding=self.conv.padding,
                        groups=self.groups)
