"""Normalisation layers for (Bt, C, H, W) feature maps.

LayerNorm2d is the channels-first LayerNorm of ConvNeXt (Liu et al., "A ConvNet for the 2020s",
arXiv:2201.03545): every pixel's C-vector is normalised on its own, as ``nn.LayerNorm(C)`` does on a
channels-last tensor. MambaIR itself works channels-last with ``nn.LayerNorm``; this layer serves the models that
stay channels-first (CU-Mamba, FusionMamba).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LayerNorm2d"]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis. x: (Bt, C, H, W) -> (Bt, C, H, W).

    Equals ``nn.LayerNorm(C)`` applied to ``x.permute(0, 2, 3, 1)`` (same ``weight`` / ``bias`` names and eps).
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        if num_channels < 1:
            raise ValueError(f"LayerNorm2d needs num_channels >= 1, got {num_channels}")
        self.num_channels = num_channels
        self.eps = eps
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels, device=device, dtype=dtype))
            self.bias = nn.Parameter(torch.zeros(num_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.num_channels:
            raise ValueError(f"LayerNorm2d expects (Bt, C={self.num_channels}, H, W), got {tuple(x.shape)}")
        y = F.layer_norm(x.permute(0, 2, 3, 1), (self.num_channels,), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, affine={self.weight is not None}"
