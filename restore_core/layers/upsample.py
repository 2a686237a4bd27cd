"""Upsamplers for super-resolution tails.

Sub-pixel convolution: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network", arXiv:1609.05158. The three tails of SwinIR / MambaIR (arXiv:2108.10257,
arXiv:2402.15648):

* :class:`PixelShuffleUpsample` ("pixelshuffle", classic SR): per factor 2 a conv3x3 F -> 4F + PixelShuffle(2)
  (scale 3: conv F -> 9F + PixelShuffle(3)); the model adds a conv to F=64 features before and a conv to the
  image after.
* :class:`PixelShuffleDirect` ("pixelshuffledirect", lightweight SR): one conv3x3 C -> out * s^2 +
  PixelShuffle(s), straight to the image.
* :class:`NearestConvUpsample` ("nearest+conv", real-world SR): per factor 2 nearest-neighbour x2 + conv3x3 +
  LeakyReLU(0.2) (scale 3: one x3 step).

Submodule indices follow the official ``Upsample`` / ``UpsampleOneStep`` Sequentials (weights load by name).
"""
from __future__ import annotations

import math
from typing import List

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PixelShuffleUpsample", "PixelShuffleDirect", "NearestConvUpsample", "UPSAMPLERS", "upsample_steps"]

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv")


def upsample_steps(scale: int) -> List[int]:
    """The factor-2 / factor-3 steps a scale is made of: 4 -> [2, 2], 3 -> [3], 8 -> [2, 2, 2]."""
    if scale >= 2 and scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    if scale == 3:
        return [3]
    raise ValueError(f"scale {scale} is not supported: use 2^n or 3")


class PixelShuffleUpsample(nn.Sequential):
    """Classic-SR upsampler. x: (Bt, F, H, W) -> (Bt, F, sH, sW)."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: List[nn.Module] = []
        for s in upsample_steps(scale):
            layers += [nn.Conv2d(num_feat, s * s * num_feat, 3, padding=1), nn.PixelShuffle(s)]
        super().__init__(*layers)
        self.scale = scale


class PixelShuffleDirect(nn.Sequential):
    """Lightweight-SR upsampler. x: (Bt, C, H, W) -> (Bt, out_channels, sH, sW)."""

    def __init__(self, scale: int, num_feat: int, out_channels: int) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        super().__init__(nn.Conv2d(num_feat, scale * scale * out_channels, 3, padding=1), nn.PixelShuffle(scale))
        self.scale = scale


class NearestConvUpsample(nn.Module):
    """Nearest-neighbour + conv upsampler. x: (Bt, F, H, W) -> (Bt, F, sH, sW)."""

    def __init__(self, scale: int, num_feat: int, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.steps = upsample_steps(scale)
        self.scale = scale
        self.convs = nn.ModuleList(nn.Conv2d(num_feat, num_feat, 3, padding=1) for _ in self.steps)
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, F, H, W)."""
        for s, conv in zip(self.steps, self.convs):
            x = F.leaky_relu(conv(F.interpolate(x, scale_factor=s, mode="nearest")), self.negative_slope)
        return x
