"""Fuse an infrared / visible pair with a fusion model, the way the released FusionMamba pipeline does.

millieXie/FusionMamba's ``test.py`` + ``YtoRGB.py`` (read from the released code; restated, not copied):

1. both images read as 8-bit grey (OpenCV ``IMREAD_GRAYSCALE``: BT.601 luma ``0.299 R + 0.587 G + 0.114 B``,
   rounded), so the visible image enters as its luma Y;
2. both resized to 256x256 (bicubic) and scaled to [0, 1]; **not done here**: any size is fused as is (the
   model pads to its size multiple and crops back);
3. ``model(vis, ir)`` (branch 1 = visible; our models take ``model(ir, vis)`` and the official key mapping
   puts branch 1 on our visible modules);
4. output clipped to [0, 1], then stretched to the full range, ``(F - min F) / (max F - min F)`` (``stretch``);
5. written as 8-bit grey (``(d * 255).astype(uint8)``, truncation; here rounded), then recoloured: that grey
   image becomes the Y of the visible image's YCrCb (OpenCV's full-range BT.601, chroma offset 128 / 255) and
   is converted back to RGB. Here the chroma is kept in float (OpenCV rounds it to 8 bits first).

Pure functions on tensors ``(C, H, W)`` in [0, 1]; the ``restore-core fuse`` command reads and writes the files.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .data.io import LUMA_BT601

# OpenCV COLOR_RGB2YCrCb (8-bit, full range): Cr = (R - Y) * 0.713 + delta, Cb = (B - Y) * 0.564 + delta, and back
# R = Y + 1.403 (Cr - delta), G = Y - 0.714 (Cr - delta) - 0.344 (Cb - delta), B = Y + 1.773 (Cb - delta).
CR_SCALE, CB_SCALE = 0.713, 0.564
CHROMA_DELTA = 128.0 / 255.0


def rgb_to_ycrcb(rgb: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """OpenCV's full-range YCrCb of ``rgb``: (..., 3, H, W) in [0, 1] -> Y, Cr, Cb, each (..., 1, H, W)."""
    if rgb.shape[-3] != 3:
        raise ValueError(f"rgb_to_ycrcb needs 3 channels, got {rgb.shape[-3]}")
    r, g, b = rgb.split(1, dim=-3)
    y = LUMA_BT601[0] * r + LUMA_BT601[1] * g + LUMA_BT601[2] * b
    return y, (r - y) * CR_SCALE + CHROMA_DELTA, (b - y) * CB_SCALE + CHROMA_DELTA


def ycrcb_to_rgb(y: Tensor, cr: Tensor, cb: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycrcb` (OpenCV's YCrCb2RGB coefficients): (..., 1, H, W) x 3 -> (..., 3, H, W)."""
    dr, db = cr - CHROMA_DELTA, cb - CHROMA_DELTA
    return torch.cat([y + 1.403 * dr, y - 0.714 * dr - 0.344 * db, y + 1.773 * db], dim=-3)


def to_gray(x: Tensor, eight_bit: bool) -> Tensor:
    """(1 or 3, H, W) -> (1, H, W): the BT.601 luma of colour images, rounded to the 8-bit grid when the file was
    8-bit (what OpenCV's ``IMREAD_GRAYSCALE`` gives); grey images pass through."""
    if x.shape[-3] == 1:
        return x
    if x.shape[-3] != 3:
        raise ValueError(f"images must have 1 or 3 channels, got {x.shape[-3]}")
    y = rgb_to_ycrcb(x)[0]
    return torch.round(y * 255.0) / 255.0 if eight_bit else y


def stretch(x: Tensor) -> Tensor:
    """``(x - min) / (max - min)`` over the whole image (a constant image is left as it is)."""
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else x


@torch.no_grad()
def fuse_images(model: nn.Module, ir: Tensor, vis: Tensor, *, ir_8bit: bool = True, vis_8bit: bool = True,
                stretch_output: bool = True, device: Optional[torch.device] = None) -> Tensor:
    """Fuse one registered pair with the released pipeline (module docstring; no resize).

    ir, vis: (1 or 3, H, W) in [0, 1] (files' channels). ``*_8bit``: whether the file was 8-bit (grey
    conversion then rounds to 8 bits). Returns the fused image (3, H, W) when ``vis`` is colour (recoloured
    with its Cb / Cr), else (1, H, W); values in [0, 1].
    """
    if ir.dim() != 3 or vis.dim() != 3:
        raise ValueError(f"fuse_images takes single images (C, H, W), got ir {tuple(ir.shape)}, "
                         f"vis {tuple(vis.shape)}")
    if ir.shape[-2:] != vis.shape[-2:]:
        raise ValueError(f"the pair is not registered: ir is {tuple(ir.shape[-2:])}, vis {tuple(vis.shape[-2:])} "
                         "(H, W); the released pipeline resized both to 256x256, here sizes must agree")
    device = device or next(model.parameters()).device
    ir_y = to_gray(ir, ir_8bit)
    vis_y = to_gray(vis, vis_8bit)
    fused = model(ir_y[None].to(device), vis_y[None].to(device))[0].float().cpu().clamp(0, 1)  # (1, H, W)
    if stretch_output:
        fused = stretch(fused)
    if vis.shape[0] == 3:
        _, cr, cb = rgb_to_ycrcb(vis)
        return ycrcb_to_rgb(fused, cr, cb).clamp(0, 1)
    return fused
