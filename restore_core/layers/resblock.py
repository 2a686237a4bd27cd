"""The plain residual block of EDSR / RCAN / RNAN: ``x + res_scale * conv(act(conv(x)))``.

Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", arXiv:1707.02921 (no batch
norm). RNAN (arXiv:1903.10082) uses it everywhere (trunk, mask branch, block head and tail).
The parameters live in ``body`` = Sequential(conv, act, conv) so that the official EDSR/RNAN keys
``body.0.weight`` / ``body.2.weight`` map one to one.
"""
from __future__ import annotations

from torch import Tensor, nn


class ResBlock(nn.Module):
    """``x + res_scale * conv3x3(ReLU(conv3x3(x)))`` with ``channels`` in and out.

    x: (Bt, C, H, W) -> (Bt, C, H, W); any H, W (the convolutions are "same"-padded).
    """

    def __init__(self, channels: int = 64, kernel_size: int = 3, bias: bool = True, res_scale: float = 1.0,
                 negative_slope: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"ResBlock needs an odd kernel_size, got {kernel_size}")
        pad = kernel_size // 2
        act: nn.Module = nn.ReLU(inplace=True) if negative_slope == 0 else nn.LeakyReLU(negative_slope, True)
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=bias),
            act,
            nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=bias),
        )
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> (Bt, C, H, W)."""
        return x + self.res_scale * self.body(x)
