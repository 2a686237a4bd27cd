"""MATLAB-compatible bicubic ``imresize`` (numpy reference and torch version).

The SR papers (MambaIR, RNAN and their baselines) make low-resolution inputs with MATLAB's
``imresize(HR, 1/s, 'bicubic')``. Reproducing their numbers needs the same operator:

* Keys cubic kernel with a = -0.5, support 4 (``cubic`` below);
* antialiasing when shrinking: the kernel is stretched by 1/scale, ``h(x) = scale * cubic(scale * x)``, and its
  support becomes ``4 / scale``;
* output pixel ``x`` (1-based) maps to input coordinate ``u = x / scale + 0.5 * (1 - 1 / scale)``; taps are the
  ``ceil(width) + 2`` integers from ``floor(u - width / 2)``; weights are normalised to sum 1;
* borders: out-of-range indices are mirrored symmetrically (``..., 2, 1 | 1, 2, ..., n | n, n-1, ...``);
* dimensions are processed one at a time, the one with the smallest scale factor first (rows on ties);
* uint8 input gives uint8 output (clipped, halves rounded away from zero as MATLAB), float input gives
  unclipped float output.

Checked against MATLAB's own outputs (xinntao/matlab_functions_verification: ``imresize(im2double(baboon),
s, 'bicubic')`` written with ``imwrite``, s in 1/2, 1/3, 1/4, 2, 3): after 8-bit rounding every one of the
9.5 million values is identical. Summing tap by tap (as here) matters: a dense matrix product gave the same
result except at exact .5 ties (46 values off by one level).

Pillow's BICUBIC (a = -0.5 too, but different support/normalisation at borders) lands ~56 dB from MATLAB;
OpenCV's INTER_CUBIC (a = -0.75) and ``torch.nn.functional.interpolate(mode="bicubic")`` without antialias
differ more. Chapter 02 (data) shows the gap.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


@lru_cache(maxsize=256)
def contributions(in_length: int, out_length: int, scale: float, antialias: bool = True
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Weights and (0-based, mirrored) input indices of every output sample along one dimension.

    Returns ``weights (out_length, P)`` float64 and ``indices (out_length, P)`` int64 with
    ``out[i] = sum_p weights[i, p] * in[indices[i, p]]``; taps whose weight is zero for every output are dropped.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"imresize: lengths must be positive, got in={in_length}, out={out_length}")
    width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        width = width / scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based positions
    dist = u[:, None] - idx
    w = scale * cubic(scale * dist) if shrink else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # symmetric mirroring of 1-based positions into 1..in_length (period 2 * in_length)
    period = 2 * in_length
    aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    idx0 = aux[np.mod(idx.astype(np.int64) - 1, period)]
    keep = np.any(w != 0, axis=0)
    w, idx0 = w[:, keep], idx0[:, keep]
    w.setflags(write=False)
    idx0.setflags(write=False)
    return w, idx0


def resize_matrix(in_length: int, out_length: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The same operator as a dense ``(out_length, in_length)`` matrix (mirrored taps accumulated)."""
    w, idx = contributions(in_length, out_length, scale, antialias)
    m = np.zeros((out_length, in_length))
    rows = np.broadcast_to(np.arange(out_length)[:, None], idx.shape)
    np.add.at(m, (rows, idx), w)
    return m


def output_size(in_hw: Sequence[int], scale: Optional[float], size: Optional[Sequence[int]]
                ) -> Tuple[Tuple[int, int], Tuple[float, float]]:
    """MATLAB's rule: from a scale, ``ceil(in * scale)``; from a size, per-dimension scale ``out / in``."""
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of scale or size")
    h, w = int(in_hw[0]), int(in_hw[1])
    if scale is not None:
        if not scale > 0:
            raise ValueError(f"imresize: scale must be positive, got {scale}")
        return (int(math.ceil(h * scale)), int(math.ceil(w * scale))), (float(scale), float(scale))
    oh, ow = int(size[0]), int(size[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"imresize: output size must be positive, got {tuple(size)}")
    return (oh, ow), (oh / h, ow / w)


def _order(scales: Tuple[float, float]) -> Tuple[int, int]:
    return (0, 1) if scales[0] <= scales[1] else (1, 0)


def imresize_np(img: np.ndarray, scale: Optional[float] = None, size: Optional[Sequence[int]] = None,
                antialias: bool = True) -> np.ndarray:
    """MATLAB ``imresize(img, scale | [h w], 'bicubic')`` on a numpy image (the reference implementation).

    img: ``(H, W)`` or ``(H, W, C)``, uint8 (result rounded and clipped to uint8, as MATLAB) or float (float64
    result, not clipped).
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize: expected an (H, W) or (H, W, C) array, got shape {img.shape}")
    is_uint8 = img.dtype == np.uint8
    if not (is_uint8 or np.issubdtype(img.dtype, np.floating)):
        raise ValueError(f"imresize: expected uint8 or float input, got {img.dtype}")
    out_hw, scales = output_size(img.shape[:2], scale, size)
    x = img.astype(np.float64)
    for dim in _order(scales):
        w, idx = contributions(x.shape[dim], out_hw[dim], scales[dim], antialias)
        xm = np.moveaxis(x, dim, 0)  # (in, ...)
        bshape = (-1,) + (1,) * (xm.ndim - 1)
        out = w[:, 0].reshape(bshape) * xm[idx[:, 0]]
        for p in range(1, w.shape[1]):  # out[i] = sum_p w[i, p] * x[idx[i, p]], tap by tap (low memory)
            out += w[:, p].reshape(bshape) * xm[idx[:, p]]
        x = np.moveaxis(out, 0, dim)
    if is_uint8:  # MATLAB rounds halves away from zero (numpy's round would go to even)
        return np.floor(np.clip(x, 0, 255) + 0.5).astype(np.uint8)
    return x


def imresize(x: torch.Tensor, scale: Optional[float] = None, size: Optional[Sequence[int]] = None,
             antialias: bool = True) -> torch.Tensor:
    """MATLAB-compatible bicubic resize of a float tensor (differentiable; any device).

    x: ``(..., H, W)`` float tensor, e.g. ``(C, H, W)`` or ``(Bt, C, H, W)``; returns ``(..., H', W')`` with the
    same dtype, unclipped. Same weights and border rule as :func:`imresize_np`; agrees with it to float rounding.
    """
    if not torch.is_floating_point(x):
        raise ValueError(f"imresize: expected a float tensor, got {x.dtype} (convert uint8 with .float() / 255)")
    if x.ndim < 2:
        raise ValueError(f"imresize: expected (..., H, W), got shape {tuple(x.shape)}")
    out_hw, scales = output_size(x.shape[-2:], scale, size)
    for dim in _order(scales):
        axis = x.ndim - 2 + dim
        w_np, idx_np = contributions(x.shape[axis], out_hw[dim], scales[dim], antialias)
        w = torch.tensor(w_np, dtype=x.dtype, device=x.device)  # (out, P)
        idx = torch.tensor(idx_np, device=x.device)  # (out, P)
        xt = x.movedim(axis, 0).contiguous()  # (in, ...): each tap gathers whole contiguous slabs
        bshape = (-1,) + (1,) * (xt.ndim - 1)
        out = xt.index_select(0, idx[:, 0]) * w[:, 0].view(bshape)
        for p in range(1, w.shape[1]):  # tap by tap (MATLAB's summation order): O(out * P) work
            out = out + xt.index_select(0, idx[:, p]) * w[:, p].view(bshape)
        x = out.movedim(0, axis)  # (out, ...) moved back
    return x
