"""Efficient channel attention (ECA).

Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", arXiv:1910.03151,
eq. (12): a 1-D convolution of size k across the channel descriptor (global average pool), then a sigmoid::

    k = ψ(C) = | log2(C) / γ + b / γ |_odd        (γ = 2, b = 1; |t|_odd = nearest odd number to t)

FusionMamba (millieXie/FusionMamba ``models/cross.py``) uses ECA with a fixed k = 3 in its DVSS and CMFM blocks;
pass ``kernel_size=3`` for that, or leave ``kernel_size=None`` for the adaptive rule above.
"""
from __future__ import annotations

import math
from typing import Optional

from torch import Tensor, nn


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """ECA's adaptive kernel size ψ(C) (eq. 12): ``t = int(|log2(C) + b| / γ)``, bumped to the next odd number.

    This is the rounding of the official ECA code (t = int(abs((log2 C + b) / γ)); k = t if t odd else t + 1),
    e.g. C = 64 -> 3, 256 -> 5, 512 -> 5, 1024 -> 5, 2048 -> 7.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """``x * sigmoid(conv1d_k(GAP(x)))`` with a 1-D convolution (no bias) across channels.

    x: (Bt, C, H, W) -> (Bt, C, H, W).
    """

    def __init__(self, channels: int = 64, kernel_size: Optional[int] = None, gamma: float = 2.0,
                 b: float = 1.0) -> None:
        super().__init__()
        k = eca_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        if k < 1 or k % 2 != 1:
            raise ValueError(f"ECA kernel_size must be a positive odd number, got {k}")
        self.channels, self.kernel_size = channels, k
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def attention(self, x: Tensor) -> Tensor:
        """The channel weights. x: (Bt, C, H, W) -> (Bt, C, 1, 1) in (0, 1)."""
        y = x.mean(dim=(2, 3))                      # (Bt, C)
        y = self.conv(y.unsqueeze(1)).squeeze(1)    # (Bt, C): 1-D conv over the channel axis
        return y.sigmoid()[:, :, None, None]

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> (Bt, C, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"ECA expects (batch, {self.channels}, H, W), got {tuple(x.shape)}")
        return x * self.attention(x)
