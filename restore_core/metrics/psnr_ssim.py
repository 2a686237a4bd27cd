"""PSNR and SSIM as the restoration papers report them (BasicSR / MATLAB conventions).

* Images on the 0-255 scale (uint8 or float); ``crop_border`` pixels removed on each side (the SR scale for
  SR, 0 for denoising); ``y_channel=True`` scores the luma of MATLAB's ``rgb2ycbcr`` (BT.601 studio range,
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B on 0-255), kept as float (not rounded).
* PSNR = 10 log10(255^2 / MSE); identical images give ``inf``.
* SSIM: Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, population (not sample) covariances, the
  map's 5-pixel border dropped, colour = mean over channels. scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)``
  computes exactly this, so the numpy route calls it; :func:`ssim_torch` is the batched, differentiable
  version for validation during training and agrees with it to ~1e-7.
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

YCBCR_Y_WEIGHTS = (65.481, 128.553, 24.966)  # MATLAB rgb2ycbcr, applied to R, G, B in [0, 1]

ArrayLike = Union[np.ndarray, torch.Tensor]


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` for an RGB image on the 0-255 scale. img: ``(H, W, 3)``; returns ``(H, W)``
    float64 on the 0-255 scale (16..235 for in-range input)."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y needs an (H, W, 3) image, got shape {img.shape}")
    return img @ (np.array(YCBCR_Y_WEIGHTS) / 255.0) + 16.0


def rgb_to_y_torch(x: torch.Tensor) -> torch.Tensor:
    """Same as :func:`rgb_to_y` on [0, 1] tensors. x: ``(Bt, 3, H, W)``; returns ``(Bt, 1, H, W)`` in [0, 1]
    scale (i.e. ``Y / 255``)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"rgb_to_y_torch needs (Bt, 3, H, W), got {tuple(x.shape)}")
    w = torch.tensor(YCBCR_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255.0
    return (x * w).sum(dim=1, keepdim=True) + 16.0 / 255.0


def _prepare(img: ArrayLike, ref: ArrayLike, crop_border: int, y_channel: bool):
    a = np.asarray(img, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise ValueError(f"expected (H, W) or (H, W, 1|3) images on the 0-255 scale, got shape {a.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    if y_channel and a.shape[2] == 3:
        a, b = rgb_to_y(a)[:, :, None], rgb_to_y(b)[:, :, None]
    if crop_border:
        if min(a.shape[:2]) <= 2 * crop_border:
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def psnr(img: ArrayLike, ref: ArrayLike, crop_border: int = 0, y_channel: bool = False,
         data_range: float = 255.0) -> float:
    """PSNR in dB of ``img`` against ``ref``. img, ref: ``(H, W)`` or ``(H, W, C)`` on the 0-255 scale."""
    a, b = _prepare(img, ref, crop_border, y_channel)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range ** 2 / mse))


def ssim(img: ArrayLike, ref: ArrayLike, crop_border: int = 0, y_channel: bool = False,
         data_range: float = 255.0) -> float:
    """SSIM (BasicSR convention) of ``img`` against ``ref``. img, ref: ``(H, W)`` or ``(H, W, C)``, 0-255."""
    a, b = _prepare(img, ref, crop_border, y_channel)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 after cropping, got {a.shape[0]}x{a.shape[1]}")
    vals = [structural_similarity(a[:, :, c], b[:, :, c], gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=data_range)
            for c in range(a.shape[2])]
    return float(np.mean(vals))


def _prepare_torch(x: torch.Tensor, y: torch.Tensor, crop_border: int, y_channel: bool):
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim == 3:
        x, y = x[None], y[None]
    if x.ndim != 4:
        raise ValueError(f"expected (Bt, C, H, W) or (C, H, W) tensors, got {tuple(x.shape)}")
    x, y = x.double(), y.double()
    if y_channel and x.shape[1] == 3:
        x, y = rgb_to_y_torch(x), rgb_to_y_torch(y)
    if crop_border:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
        y = y[..., crop_border:-crop_border, crop_border:-crop_border]
    return x * 255.0, y * 255.0


def psnr_torch(x: torch.Tensor, y: torch.Tensor, crop_border: int = 0, y_channel: bool = False) -> torch.Tensor:
    """Per-image PSNR (dB) of tensors in [0, 1]. x, y: ``(Bt, C, H, W)``; returns ``(Bt,)`` float64."""
    a, b = _prepare_torch(x, y, crop_border, y_channel)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0 ** 2 / mse)  # mse == 0 -> inf


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None) -> torch.Tensor:
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_torch(x: torch.Tensor, y: torch.Tensor, crop_border: int = 0, y_channel: bool = False) -> torch.Tensor:
    """Per-image SSIM of tensors in [0, 1], same definition as :func:`ssim` (valid-window Gaussian filtering).

    x, y: ``(Bt, C, H, W)``; returns ``(Bt,)`` float64, the mean over channels and positions.
    """
    a, b = _prepare_torch(x, y, crop_border, y_channel)
    if min(a.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 after cropping, got {tuple(a.shape[-2:])}")
    c = a.shape[1]
    win = _gaussian_window(device=a.device).expand(c, 1, 11, 11)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win, groups=c)

    mu_a, mu_b = filt(a), filt(b)
    s_aa = filt(a * a) - mu_a ** 2
    s_bb = filt(b * b) - mu_b ** 2
    s_ab = filt(a * b) - mu_a * mu_b
    smap = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (s_aa + s_bb + c2))
    return smap.mean(dim=(1, 2, 3))


def psnr_from_mse(mse: float, data_range: float = 255.0) -> float:
    """PSNR (dB) for a mean squared error on the ``data_range`` scale; ``inf`` for 0."""
    return float("inf") if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)
