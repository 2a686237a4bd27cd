"""The weight initialisation MambaIR and FusionMamba share (their official code's ``_init_weights``, as in
Swin / VMamba): Linear weights truncated normal (std 0.02) with zero biases; LayerNorm weight 1, bias 0.
Applied with ``model.apply(init_linear_and_layernorm)``; tensors held directly by a module (SS2D's) and
convolutions keep their own initialisation, and meta tensors are skipped.
"""
from __future__ import annotations

from torch import nn

__all__ = ["init_linear_and_layernorm"]


def init_linear_and_layernorm(m: nn.Module) -> None:
    """Initialise ``m`` if it is an ``nn.Linear`` or an affine ``nn.LayerNorm`` (see the module docstring)."""
    if isinstance(m, nn.Linear) and not m.weight.is_meta:
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm) and m.weight is not None and not m.weight.is_meta:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
