"""Shared layers: attention blocks, residual blocks, difference convolutions, norms, upsamplers, padding."""
from .eca import ECA, eca_kernel_size
from .ldc import LearnableDifferenceConv2d
from .nonlocal_block import NonLocalBlock2D, nonlocal_attention
from .resblock import ResBlock
from .norm import LayerNorm2d
from .channel_attention import CAB, CAB_KINDS, ChannelAttention
from .upsample import UPSAMPLERS, NearestConvUpsample, PixelShuffleDirect, PixelShuffleUpsample, upsample_steps
from .mlp import ChannelMlp
from .drop_path import DropPath, drop_path
from .padding import pad_to_multiple

__all__ = ["ECA", "eca_kernel_size", "LearnableDifferenceConv2d", "NonLocalBlock2D", "nonlocal_attention",
           "ResBlock", "LayerNorm2d", "CAB", "CAB_KINDS", "ChannelAttention", "UPSAMPLERS", "NearestConvUpsample",
           "PixelShuffleDirect", "PixelShuffleUpsample", "upsample_steps", "ChannelMlp", "DropPath", "drop_path",
           "pad_to_multiple"]
