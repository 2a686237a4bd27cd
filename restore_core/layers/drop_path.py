"""Stochastic depth (DropPath): Huang et al., "Deep Networks with Stochastic Depth", arXiv:1603.09382.

In training, each sample's residual branch is dropped with probability p and the kept ones scaled by 1/(1-p);
identity in eval mode. MambaIR raises p linearly from 0 to ``drop_path_rate`` over its blocks.
"""
from __future__ import annotations

from typing import List

from torch import Tensor, nn

__all__ = ["DropPath", "drop_path", "drop_path_schedule"]


def drop_path_schedule(rate: float, n: int) -> List[float]:
    """n drop-path probabilities rising linearly from 0 to ``rate``, one per block (plain Python, so it also works
    when the model is built on the meta device)."""
    return [rate * i / (n - 1) if n > 1 else 0.0 for i in range(n)]


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """x: (Bt, ...): zero whole samples with probability p, scale the rest by 1/(1-p)."""
    if p <= 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Stochastic depth on a residual branch. x: (Bt, ...) -> same shape."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
