"""Shared layers: attention blocks, residual blocks, difference convolutions, norms, upsamplers."""
from .eca import ECA, eca_kernel_size
from .ldc import LearnableDifferenceConv2d
from .nonlocal_block import NonLocalBlock2D, nonlocal_attention
from .resblock import ResBlock

__all__ = ["ECA", "eca_kernel_size", "LearnableDifferenceConv2d", "NonLocalBlock2D", "nonlocal_attention",
           "ResBlock"]
