"""Padding an image to a size multiple, as networks with down-sampling stages or windows need.

The models pad at the bottom and right and crop their output back, so any H, W works.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["pad_to_multiple"]


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """x: (..., H, W) -> (..., H + (-H mod m), W + (-W mod m)), padded at the bottom / right.

    Reflection where both pads are shorter than the image side (the usual choice in restoration code), else
    replication (reflection of a 1-pixel-high image is undefined). No copy when nothing needs padding.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)
