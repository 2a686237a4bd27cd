"""Inference utilities: any image size, tiled ("chopped") inference with blended overlaps, x8 self-ensemble.

Used by ``restore-core restore`` and by the chapters that restore full test images. Nothing here is specific to
one architecture: a model is any ``nn.Module`` mapping ``(Bt, C_in, H, W)`` to ``(Bt, C_out, s*H, s*W)``; the
scale ``s`` is read off the first output, never assumed.

* :func:`forward_padded`: pads the input (reflection, or replication when the image is too small to reflect)
  to a multiple of the model's size multiple, runs the model and crops the output back.
* :func:`tiled_forward`: cuts a large input into ``tile x tile`` tiles overlapping by ``overlap`` pixels, runs
  them one at a time (bounded memory) and blends the outputs with a window that is zero within
  ``overlap // 4`` pixels of a cut edge and ramps linearly to one across the middle of the overlap. Tile edges
  that lie on the image border are not cut and keep full weight. Consequence (tested): for a model whose
  receptive-field radius is at most ``overlap // 4`` input pixels (a convolutional network with zero padding),
  tiled and untiled outputs agree to float rounding. Models with a global receptive field (the selective
  scans of MambaIR, RNAN's non-local blocks) see less context per tile; the blend hides the seams.
  The official codes do the same kind of thing: RNAN's EDSR-style ``chop`` (quadrants with a 10-pixel shave)
  and BasicSR/SwinIR's ``test_patch`` (uniform averaging of overlapping tiles); the window here is our choice.
* :func:`self_ensemble`: the x8 geometric self-ensemble (EDSR's "+"): the mean of the model's outputs on the
  eight flips / 90-degree rotations of the input, each mapped back.
* :func:`restore_tensor`: the three above together, with pixel-range scaling (the official RNAN weights work
  on [0, 255] images) and one tqdm progress bar over all forward passes.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .layers.padding import pad_to_multiple

ForwardFn = Callable[[Tensor], Tensor]

__all__ = ["DIHEDRAL", "dihedral", "dihedral_inverse", "forward_padded", "tile_starts", "blend_window",
           "tiled_forward", "self_ensemble", "restore_tensor"]

# The eight elements of the dihedral group of the square: (number of 90-degree rotations, horizontal flip).
DIHEDRAL: Tuple[Tuple[int, bool], ...] = tuple((k, f) for f in (False, True) for k in range(4))


def dihedral(x: Tensor, rot: int, flip: bool) -> Tensor:
    """Flip (along W) then rotate by ``rot`` * 90 degrees. x: (..., H, W)."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, rot, dims=(-2, -1)) if rot % 4 else x


def dihedral_inverse(y: Tensor, rot: int, flip: bool) -> Tensor:
    """The inverse of :func:`dihedral`: ``dihedral_inverse(dihedral(x, r, f), r, f) == x``. y: (..., H, W)."""
    if rot % 4:
        y = torch.rot90(y, -rot, dims=(-2, -1))
    return y.flip(-1) if flip else y


def forward_padded(model: ForwardFn, x: Tensor, multiple: int = 1) -> Tensor:
    """Run ``model`` on ``x`` padded at the bottom/right to a multiple of ``multiple``; crop the output back.

    x: (Bt, C, H, W) -> (Bt, C_out, s*H, s*W) where ``s`` is the model's scale (read off its output).
    Reflection padding is used when the image is large enough, replication otherwise.
    """
    h, w = x.shape[-2:]
    x = pad_to_multiple(x, multiple)
    y = model(x)
    s = _scale_of(x, y)
    return y[..., : s * h, : s * w]


def _scale_of(x: Tensor, y: Tensor) -> int:
    """The integer upscaling factor between a model's input x (..., H, W) and output y (..., sH, sW)."""
    (h, w), (oh, ow) = x.shape[-2:], y.shape[-2:]
    if oh % h or ow % w or oh // h != ow // w:
        raise ValueError(f"the model maps {h}x{w} to {oh}x{ow}: not an integer scale")
    return oh // h


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` shared pixels.

    The last tile ends flush with the border; a length <= tile gives one tile ``[0]``.
    """
    if tile <= overlap:
        raise ValueError(f"tile ({tile}) must be larger than tile_overlap ({overlap})")
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_window(length: int, overlap: int, cut_before: bool, cut_after: bool) -> Tensor:
    """1-D blending weights for a tile of ``length`` output pixels; ``overlap`` in the same (output) units.

    At a cut edge the weight is 0 for the first ``overlap // 4`` pixels, then rises linearly over
    ``overlap - 2 * (overlap // 4)`` pixels to 1. Edges on the image border (``cut_* = False``) stay at 1.
    Returns (length,) float32.
    """
    pos = torch.arange(length, dtype=torch.float32)
    w = torch.ones(length)
    margin = overlap // 4
    ramp = max(1, overlap - 2 * margin)

    def rising(d: Tensor) -> Tensor:
        return ((d - margin + 0.5) / ramp).clamp(0.0, 1.0)

    if cut_before:
        w = torch.minimum(w, rising(pos))
    if cut_after:
        w = torch.minimum(w, rising(length - 1 - pos))
    return w


def _tiles(h: int, w: int, tile: Optional[int], overlap: int) -> List[Tuple[int, int, int, int]]:
    """(top, left, height, width) of every tile; one tile for the whole image when ``tile`` is None."""
    if tile is None or (h <= tile and w <= tile):
        return [(0, 0, h, w)]
    tops, lefts = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    return [(t, l, min(tile, h), min(tile, w)) for t in tops for l in lefts]


def _normalised_windows(starts: Sequence[int], size: int, length: int, overlap: int, s: int) -> List[Tensor]:
    """Per-tile 1-D blend weights along one axis, divided by their sum over all tiles of that axis.

    starts, size, length, overlap in input pixels; the windows are in output pixels (``s`` times longer).
    Returns one (s*size,) float32 tensor per start; at every output position the tiles covering it sum to 1.
    """
    wins = [blend_window(s * size, s * overlap, a > 0, a + size < length) for a in starts]
    total = torch.zeros(s * length)
    for a, win in zip(starts, wins):
        total[s * a:s * (a + size)] += win
    return [win / total[s * a:s * (a + size)].clamp_min(1e-12) for a, win in zip(starts, wins)]


def tiled_forward(model: ForwardFn, x: Tensor, tile: Optional[int] = None, overlap: int = 32,
                  multiple: int = 1, progress: Optional[Callable[[], None]] = None) -> Tensor:
    """Run ``model`` tile by tile and blend; see the module docstring for the window and its exactness.

    x: (Bt, C, H, W) on the model's device -> (Bt, C_out, s*H, s*W) float32 on x's device.
    tile: tile side in input pixels (None: the whole image in one pass). overlap: input pixels shared by
    neighbouring tiles. multiple: each tile is padded to this multiple (:func:`forward_padded`).
    progress: called once after each tile.

    Memory: the output buffer is allocated once and each tile is added into it in place, already divided by
    the blend weights' sum. The tiles form a grid (every top with every left), so that sum is the outer product
    of a row sum and a column sum: two 1-D vectors, no full-size weight map and no final division pass. Peak
    memory is the input, the output and one tile's activations, whatever the number of tiles.
    """
    if x.dim() != 4:
        raise ValueError(f"expected an image batch (batch, C, H, W), got shape {tuple(x.shape)}")
    if tile is not None and tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if overlap < 0:
        raise ValueError(f"tile_overlap must be >= 0, got {overlap}")
    h, w = x.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        y = forward_padded(model, x, multiple).float()
        if progress is not None:
            progress()
        return y
    th, tw = min(tile, h), min(tile, w)
    tops = tile_starts(h, tile, overlap)
    lefts = tile_starts(w, tile, overlap)
    out: Optional[Tensor] = None
    s = 1
    wy: List[Tensor] = []
    wx: List[Tensor] = []
    for i, top in enumerate(tops):
        for j, left in enumerate(lefts):
            y = forward_padded(model, x[..., top:top + th, left:left + tw], multiple).float()
            if out is None:
                s = _scale_of(x[..., :th, :tw], y)
                out = x.new_zeros((x.shape[0], y.shape[1], s * h, s * w), dtype=torch.float32)
                wy = [v.to(x.device) for v in _normalised_windows(tops, th, h, overlap, s)]
                wx = [v.to(x.device) for v in _normalised_windows(lefts, tw, w, overlap, s)]
            y.mul_(wy[i][:, None] * wx[j][None, :])  # (Bt, C_out, s*th, s*tw) weighted in place
            out[..., s * top:s * (top + th), s * left:s * (left + tw)] += y
            del y  # the next tile's activations reuse this memory
            if progress is not None:
                progress()
    assert out is not None
    return out


def self_ensemble(model: ForwardFn, x: Tensor, transforms: Sequence[Tuple[int, bool]] = DIHEDRAL) -> Tensor:
    """Mean of ``dihedral_inverse(model(dihedral(x, r, f)), r, f)`` over ``transforms`` (default: all 8).

    x: (Bt, C, H, W) -> (Bt, C_out, s*H, s*W). Equals ``model(x)`` for an equivariant model.
    """
    acc: Optional[Tensor] = None
    for rot, flip in transforms:
        y = dihedral_inverse(model(dihedral(x, rot, flip)).float(), rot, flip)
        acc = y if acc is None else acc.add_(y)  # in place: one full-size accumulator
        del y
    assert acc is not None
    return acc.div_(len(transforms)) if len(transforms) > 1 else acc


def _n_tiles(h: int, w: int, tile: Optional[int], overlap: int) -> int:
    return len(_tiles(h, w, tile, overlap))


@torch.no_grad()
def restore_tensor(model: nn.Module, x: Tensor, tile: Optional[int] = None, tile_overlap: int = 32,
                   use_self_ensemble: bool = False, multiple: int = 1, pixel_range: float = 1.0,
                   device: Optional[torch.device] = None, progress: bool = False, desc: str = "restore") -> Tensor:
    """Restore one image or a batch with tiling, optional x8 self-ensemble and pixel-range scaling.

    x: (C, H, W) or (Bt, C, H, W), values in [0, 1] -> the same rank, (C_out, s*H, s*W), float32 on the CPU,
    not clipped. ``pixel_range``: the model works on ``[0, pixel_range]`` (255 for the official RNAN weights);
    the input is multiplied by it and the output divided. ``device``: where the model runs (default: where
    its parameters are). ``progress``: show a tqdm bar over all forward passes (tiles x transforms).
    """
    single = x.dim() == 3
    if single:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected an image (C, H, W) or a batch (batch, C, H, W), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("the input image contains NaN or infinite values")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    xin = x.to(device=device, dtype=torch.float32) * pixel_range
    transforms = DIHEDRAL if use_self_ensemble else DIHEDRAL[:1]
    total = sum(_n_tiles(*dihedral(xin[:1, :1], r, f).shape[-2:], tile, tile_overlap) for r, f in transforms)
    bar = None
    if progress:
        bar = tqdm(total=total, desc=desc, unit="tile", leave=False, disable=False)  # asked for: shown (not TQDM_DISABLE)
    tick = bar.update if bar is not None else None

    def run(t: Tensor) -> Tensor:
        return tiled_forward(model, t, tile, tile_overlap, multiple, progress=tick)

    try:
        y = self_ensemble(run, xin, transforms)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    if pixel_range != 1.0:
        y.div_(pixel_range)  # in place: a full-size output is hundreds of MB for a large photo
    y = y.cpu()
    return y[0] if single else y


def restore_batch(model: nn.Module, lq: Tensor, *, scale: int = 1, tile: Optional[int] = None,
                  tile_overlap: int = 32, self_ensemble: bool = False) -> Tensor:
    """Run ``model`` on a batch of full images, tiled and/or self-ensembled when asked (as the evaluation does).

    lq: (Bt, C, H, W) -> (Bt, C', H*scale, W*scale) on ``lq``'s device. Without tiling or the ensemble this is
    ``model(lq)``; with them, :func:`restore_tensor`, whose output width is checked against ``scale``.
    """
    if tile is None and not self_ensemble:
        return model(lq)
    out = restore_tensor(model, lq, tile=tile, tile_overlap=tile_overlap, use_self_ensemble=self_ensemble,
                         device=lq.device)
    if out.shape[-1] != lq.shape[-1] * scale:
        raise ValueError(f"the model's output width {out.shape[-1]} is not scale {scale} x {lq.shape[-1]}")
    return out.to(lq.device)
