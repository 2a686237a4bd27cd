"""A channel MLP (two 1x1 projections with GELU), used where an ablation replaces a block with an MLP.

The MambaIR ablation "replace Conv+CA with MLP" (arXiv:2402.15648, Table 6): the paper does not give the hidden
width; ``hidden_ratio`` (default 2) is our assumption.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

__all__ = ["ChannelMlp"]


class ChannelMlp(nn.Module):
    """Per-pixel MLP on channels-last tokens. x: (..., C) -> (..., C_out): fc1, GELU, dropout, fc2, dropout."""

    def __init__(self, in_features: int, hidden_features: Optional[int] = None, out_features: Optional[int] = None,
                 drop: float = 0.0) -> None:
        super().__init__()
        hidden = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_features or in_features)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., C)."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
