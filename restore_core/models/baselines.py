"""Parameter-free baselines every restoration and fusion table is read against.

- :class:`BicubicUpsampler`: MATLAB ``imresize(x, s, 'bicubic')`` upsampling, the "Bicubic" row of every SR
  table (and the floor a trained SR model must clear).
- :class:`FixedFusion`: a fixed pixel-wise fusion rule of two registered sources (their mean, or their
  maximum, the "choose-max" rule), the floor a learned fusion network must clear.

Both are ``nn.Module`` s with the call signature of the models they stand beside (``model(x)`` for SR,
``model(ir, vis)`` for fusion), so :func:`restore_core.train.evaluate` scores them exactly as it scores a
trained network, on the same data and metrics.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data.imresize import imresize

__all__ = ["BicubicUpsampler", "FixedFusion", "FUSION_RULES"]

#: the rules :class:`FixedFusion` knows, name -> what it computes
FUSION_RULES = {"mean": "(a + b) / 2", "max": "max(a, b), pixel-wise"}


class BicubicUpsampler(nn.Module):
    """MATLAB-bicubic upsampling by an integer ``scale`` (no parameters).

    x: ``(Bt, C, H, W)`` float -> ``(Bt, C, scale·H, scale·W)``, unclipped, same dtype (the metric code clips
    and quantises as it does for a network's output).
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"BicubicUpsampler: scale must be a positive integer, got {scale!r}")
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"BicubicUpsampler: expected a (Bt, C, H, W) batch, got shape {tuple(x.shape)}")
        if self.scale == 1:
            return x
        return imresize(x, scale=self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class FixedFusion(nn.Module):
    """A fixed pixel-wise fusion rule of two sources (no parameters).

    ir, vis: ``(Bt, C, H, W)`` of the same shape -> fused ``(Bt, C, H, W)``. ``rule`` is a key of
    :data:`FUSION_RULES`: ``"mean"`` or ``"max"``.
    """

    def __init__(self, rule: str = "mean") -> None:
        super().__init__()
        if rule not in FUSION_RULES:
            raise ValueError(f"FixedFusion: unknown rule {rule!r}; choose one of {sorted(FUSION_RULES)}")
        self.rule = rule

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        if ir.shape != vis.shape:
            raise ValueError(f"FixedFusion: the two sources must have the same shape, got {tuple(ir.shape)} "
                             f"and {tuple(vis.shape)} (register and resize them first)")
        if self.rule == "mean":
            return (ir + vis) / 2
        return torch.maximum(ir, vis)

    def extra_repr(self) -> str:
        return f"rule={self.rule!r}"
