"""Channel attention (RCAN) and MambaIR's channel-attention block (CAB), classic and light.

RCAN: Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention Networks",
arXiv:1807.02758, Sec. 3.3 (squeeze: global average pool, C -> C/r -> C 1x1 convs, ReLU, sigmoid gate).
MambaIR: Guo et al., arXiv:2402.15648, Sec. 3.3 (CAB after the SS2D in every RSSB).

CAB variants (submodule indices match the official ``cab`` Sequential, so released weights load by name):

* ``"classic"``: conv3x3 C -> C/compress, GELU, conv3x3 -> C, CA (squeeze 30). compress 3 for classic SR and
  restoration; 6 in the light-SR model of the paper (Mar 2024).
* ``"light"`` (Oct 2024 light SR): conv1x1 C -> C/compress, depthwise conv3x3, GELU, conv1x1 -> C, depthwise
  conv3x3 with dilation 2, CA; compress 2.

Difference from the official code: ``C // squeeze == 0`` (C < squeeze) raises a clear error instead of building
a zero-channel convolution.
"""
from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

__all__ = ["ChannelAttention", "CAB", "CAB_KINDS"]

CAB_KINDS = ("classic", "light")


def _reduced(channels: int, factor: int, what: str) -> int:
    if factor < 1:
        raise ValueError(f"{what} must be >= 1, got {factor}")
    if channels // factor < 1:
        raise ValueError(f"{what}={factor} leaves no channels for C={channels} (need C >= {factor}); "
                         f"lower the {what} or use more channels")
    return channels // factor


class ChannelAttention(nn.Module):
    """RCAN channel attention: x * sigmoid(W2 ReLU(W1 GAP(x))). x: (Bt, C, H, W) -> (Bt, C, H, W).

    ``attention`` holds [AdaptiveAvgPool2d, Conv1x1 C -> C // squeeze_factor, ReLU, Conv1x1 -> C, Sigmoid].
    """

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        mid = _reduced(num_feat, squeeze_factor, "squeeze_factor")
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, mid, 1), nn.ReLU(inplace=True), nn.Conv2d(mid, num_feat, 1),
            nn.Sigmoid())

    def weights(self, x: Tensor) -> Tensor:
        """The per-channel gate. x: (Bt, C, H, W) -> (Bt, C, 1, 1) in (0, 1)."""
        return self.attention(x)

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W)."""
        return x * self.attention(x)


class CAB(nn.Module):
    """MambaIR's channel-attention block. x: (Bt, C, H, W) -> (Bt, C, H, W); see the module docstring."""

    def __init__(self, num_feat: int, compress_ratio: int = 3, squeeze_factor: int = 30,
                 kind: Literal["classic", "light"] = "classic") -> None:
        super().__init__()
        if kind not in CAB_KINDS:
            raise ValueError(f"unknown CAB kind {kind!r}; known: {CAB_KINDS}")
        mid = _reduced(num_feat, compress_ratio, "compress_ratio")
        self.kind = kind
        if kind == "classic":
            self.cab = nn.Sequential(
                nn.Conv2d(num_feat, mid, 3, padding=1), nn.GELU(), nn.Conv2d(mid, num_feat, 3, padding=1),
                ChannelAttention(num_feat, squeeze_factor))
        else:
            self.cab = nn.Sequential(
                nn.Conv2d(num_feat, mid, 1), nn.Conv2d(mid, mid, 3, padding=1, groups=mid), nn.GELU(),
                nn.Conv2d(mid, num_feat, 1), nn.Conv2d(num_feat, num_feat, 3, padding=2, dilation=2, groups=num_feat),
                ChannelAttention(num_feat, squeeze_factor))

    @property
    def channel_attention(self) -> ChannelAttention:
        return self.cab[-1]

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W)."""
        return self.cab(x)
