"""Degradations that make the low-quality (LQ) inputs of the four papers' tasks from high-quality (HQ) images.

All functions take float tensors ``(C, H, W)`` (or ``(Bt, C, H, W)`` where noted) in [0, 1] and are
deterministic: random ones take an explicit ``seed`` (one per image; see :func:`image_seed`).

* SR (MambaIR, RNAN): MATLAB bicubic downscaling (:mod:`restore_core.data.imresize`) of the HQ image cropped to
  a multiple of the scale (:func:`mod_crop`); the LR image is rounded to 8 bits as the papers' saved PNGs are.
* Denoising (MambaIR, RNAN): additive white Gaussian noise, ``sigma`` on the 0-255 scale, float, *not* clipped
  and not rounded (as MambaIR's / Restormer's test scripts).
* JPEG artefact removal (MambaIR, RNAN): Pillow JPEG at quality ``q`` (4:2:0 chroma for colour, like OpenCV's
  default; Pillow and OpenCV give identical bytes for the same quality).
* Demosaicking (RNAN): Bayer GRBG mosaic kept as three zero-filled channels (RNAN's input format).
* Deblurring (CU-Mamba): Gaussian or linear-motion kernels and a per-channel convolution (the papers use real
  GoPro blur; synthetic kernels serve the quick profile).

The text form of a degradation (``"sr_x4"``, ``"awgn_25"``, ``"jpeg_10"``, ``"mosaic"``, ``"gblur_2.0"``,
``"mblur_15_30"``) is parsed by :func:`parse_degradation`; datasets use it.
"""
from __future__ import annotations

import hashlib
import io as _io
import math
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .imresize import imresize


def image_seed(base_seed: int, key: object) -> int:
    """A stable 63-bit seed for one image from a base seed and a key (index or file name).

    Independent of Python's hash randomisation, platform and process, so noisy test sets are reproducible.
    """
    digest = hashlib.sha256(f"{int(base_seed)}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _check_image(x: torch.Tensor, name: str = "image") -> None:
    if not torch.is_tensor(x) or not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a float tensor in [0, 1], got {type(x).__name__}"
                         + (f" of {x.dtype}" if torch.is_tensor(x) else ""))
    if x.ndim not in (3, 4) or x.shape[-3] not in (1, 3):
        raise ValueError(f"{name} must be (C, H, W) or (Bt, C, H, W) with C in (1, 3), got {tuple(x.shape)}")


def quantize(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Clip to [0, 1] and round to ``bits`` bits, halves up (MATLAB's ``im2uint8`` / ``imwrite``, which made the
    papers' LR files). x: any shape."""
    peak = float(2 ** bits - 1)
    return torch.floor(x.clamp(0, 1) * peak + 0.5) / peak


def mod_crop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom/right so H and W are multiples of ``scale``. x: ``(..., H, W)``."""
    h, w = x.shape[-2:]
    if h < scale or w < scale:
        raise ValueError(f"image {h}x{w} is smaller than the scale factor {scale}")
    return x[..., : h - h % scale, : w - w % scale]


def bicubic_downsample(hq: torch.Tensor, scale: int, round_to_uint8: bool = True) -> torch.Tensor:
    """MATLAB ``imresize(hq, 1/scale, 'bicubic')``; HQ H and W must be multiples of ``scale`` (use mod_crop).

    hq: ``(C, H, W)`` or ``(Bt, C, H, W)``; returns ``(..., C, H/scale, W/scale)``.
    """
    _check_image(hq, "HQ image")
    h, w = hq.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HQ size {h}x{w} is not a multiple of the scale {scale}; apply mod_crop first")
    lq = imresize(hq.double(), scale=1.0 / scale).to(hq.dtype)
    return quantize(lq) if round_to_uint8 else lq


def add_gaussian_noise(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """AWGN with standard deviation ``sigma`` on the 0-255 scale; float, unclipped. x: any shape."""
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(device=x.device, dtype=x.dtype)
    return x + noise * (sigma / 255.0)


def jpeg_compress(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode with Pillow JPEG at ``quality`` (1-95). x: ``(C, H, W)`` in [0, 1], C in {1, 3}."""
    _check_image(x)
    if x.ndim != 3:
        raise ValueError("jpeg_compress takes one image (C, H, W)")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    arr = (quantize(x) * 255).round().to(torch.uint8).cpu().numpy().transpose(1, 2, 0)
    im = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    buf = _io.BytesIO()
    im.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    dec = np.asarray(Image.open(buf), dtype=np.uint8)
    if dec.ndim == 2:
        dec = dec[:, :, None]
    return torch.from_numpy(dec.transpose(2, 0, 1).astype(np.float32) / 255.0).to(device=x.device, dtype=x.dtype)


# Bayer GRBG: row 0 = G R G R ..., row 1 = B G B G ...
_GRBG = {"R": (0, 1), "B": (1, 0), "G": ((0, 0), (1, 1))}


def bayer_mask(height: int, width: int, pattern: str = "GRBG") -> torch.Tensor:
    """Binary sampling mask ``(3, H, W)`` of a Bayer pattern (rows of the 2x2 cell, e.g. "GRBG")."""
    pattern = pattern.upper()
    if sorted(pattern) != ["B", "G", "G", "R"]:
        raise ValueError(f"Bayer pattern must be a permutation of RGGB, got {pattern!r}")
    mask = torch.zeros(3, height, width)
    for k, ch in enumerate(pattern):
        r0, c0 = divmod(k, 2)
        mask["RGB".index(ch), r0::2, c0::2] = 1.0
    return mask


def bayer_mosaic(x: torch.Tensor, pattern: str = "GRBG") -> torch.Tensor:
    """Zero-filled 3-channel Bayer mosaic (RNAN's demosaicking input). x: ``(3, H, W)`` or ``(Bt, 3, H, W)``."""
    _check_image(x)
    if x.shape[-3] != 3:
        raise ValueError(f"mosaicking needs an RGB image, got {x.shape[-3]} channel(s)")
    return x * bayer_mask(x.shape[-2], x.shape[-1], pattern).to(x)


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """Isotropic Gaussian blur kernel ``(size, size)``, odd size, sums to 1."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).float()


def motion_kernel(length: float, angle_deg: float, size: Optional[int] = None, samples_per_px: int = 8
                  ) -> torch.Tensor:
    """Linear motion blur: a centred segment of ``length`` px at ``angle_deg`` (0 = horizontal,
    counter-clockwise), rasterised by bilinear splatting of ``samples_per_px`` points per pixel; sums to 1.

    Returns ``(size, size)``; ``size`` defaults to the smallest odd size holding the segment.
    """
    if length <= 0:
        raise ValueError(f"motion length must be positive, got {length}")
    if size is None:
        size = int(math.ceil(length)) + 2
        size += 1 - size % 2
    if size % 2 == 0:
        raise ValueError(f"kernel size must be odd, got {size}")
    n = max(2, int(math.ceil(length * samples_per_px)) + 1)
    t = np.linspace(-length / 2, length / 2, n)
    a = math.radians(angle_deg)
    c = (size - 1) / 2
    xs, ys = c + t * math.cos(a), c - t * math.sin(a)
    k = np.zeros((size, size))
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
        np.add.at(k, (yi[ok], xi[ok]), w[ok])
    return torch.from_numpy(k / k.sum()).float()


def blur(x: torch.Tensor, kernel: torch.Tensor, padding: str = "reflect") -> torch.Tensor:
    """Convolve every channel with ``kernel`` (true convolution: the kernel is flipped), same output size.

    x: ``(C, H, W)`` or ``(Bt, C, H, W)``; kernel: ``(k, k)`` with odd k; padding: "reflect" | "replicate" |
    "circular" | "zeros". The image must be larger than k // 2 on each side for "reflect".
    """
    _check_image(x)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f"kernel must be square with odd size, got {tuple(kernel.shape)}")
    squeeze = x.ndim == 3
    xb = x[None] if squeeze else x
    c, r = xb.shape[1], kernel.shape[0] // 2
    if padding == "reflect" and min(xb.shape[-2:]) <= r:
        raise ValueError(f"image {tuple(xb.shape[-2:])} too small for reflect padding of a {kernel.shape[0]}-tap kernel")
    mode = {"zeros": "constant"}.get(padding, padding)
    xp = F.pad(xb, (r, r, r, r), mode=mode)
    w = kernel.flip(0, 1).to(xb).expand(c, 1, *kernel.shape)
    y = F.conv2d(xp, w, groups=c)
    return y[0] if squeeze else y


@dataclass(frozen=True)
class Degradation:
    """A named, seeded HQ -> LQ map. ``kind`` in sr, awgn, jpeg, mosaic, gblur, mblur."""

    kind: str
    scale: int = 1
    sigma: float = 0.0
    quality: int = 0
    length: float = 0.0
    angle: float = 0.0

    @property
    def name(self) -> str:
        return {"sr": f"sr_x{self.scale}", "awgn": f"awgn_{self.sigma:g}", "jpeg": f"jpeg_{self.quality}",
                "mosaic": "mosaic", "gblur": f"gblur_{self.sigma:g}",
                "mblur": f"mblur_{self.length:g}_{self.angle:g}"}[self.kind]

    def prepare_hq(self, hq: torch.Tensor) -> torch.Tensor:
        """The HQ target that goes with this degradation (mod-cropped for SR, unchanged otherwise)."""
        return mod_crop(hq, self.scale) if self.kind == "sr" else hq

    def __call__(self, hq: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """hq: ``(C, H, W)`` in [0, 1] (already ``prepare_hq``-ed); returns the LQ image."""
        _check_image(hq, "HQ image")
        if self.kind == "sr":
            return bicubic_downsample(hq, self.scale)
        if self.kind == "awgn":
            return add_gaussian_noise(hq, self.sigma, seed)
        if self.kind == "jpeg":
            return jpeg_compress(hq, self.quality)
        if self.kind == "mosaic":
            return bayer_mosaic(hq)
        if self.kind in ("gblur", "mblur"):
            return blur(hq, self.kernel())
        raise ValueError(f"unknown degradation kind {self.kind!r}")

    def kernel(self) -> torch.Tensor:
        """The blur kernel ``(k, k)`` of a gblur / mblur degradation (ValueError for the other kinds)."""
        if self.kind == "gblur":
            return gaussian_kernel(2 * int(math.ceil(3 * self.sigma)) + 1, self.sigma)
        if self.kind == "mblur":
            return motion_kernel(self.length, self.angle)
        raise ValueError(f"degradation {self.name} has no blur kernel")


_PATTERNS: dict = {
    r"sr_x(\d+)": lambda m: Degradation("sr", scale=int(m[1])),
    r"awgn_(\d+(?:\.\d+)?)": lambda m: Degradation("awgn", sigma=float(m[1])),
    r"jpeg_(\d+)": lambda m: Degradation("jpeg", quality=int(m[1])),
    r"mosaic": lambda m: Degradation("mosaic"),
    r"gblur_(\d+(?:\.\d+)?)": lambda m: Degradation("gblur", sigma=float(m[1])),
    r"mblur_(\d+(?:\.\d+)?)_(-?\d+(?:\.\d+)?)": lambda m: Degradation("mblur", length=float(m[1]),
                                                                      angle=float(m[2])),
}


def parse_degradation(spec: str) -> Degradation:
    """``"sr_x4"``, ``"awgn_25"``, ``"jpeg_10"``, ``"mosaic"``, ``"gblur_2.0"`` (sigma), ``"mblur_15_30"``
    (length, angle in degrees) -> :class:`Degradation`."""
    for pat, make in _PATTERNS.items():
        m = re.fullmatch(pat, spec.strip())
        if m:
            d = make(m)
            if d.kind == "sr" and d.scale < 2:
                raise ValueError(f"SR scale must be >= 2, got {spec!r}")
            if d.kind == "jpeg" and not 1 <= d.quality <= 100:
                raise ValueError(f"JPEG quality must be in 1..100, got {spec!r}")
            return d
    raise ValueError(f"unknown degradation {spec!r}; expected one of sr_x<s>, awgn_<sigma>, jpeg_<q>, mosaic, "
                     "gblur_<sigma>, mblur_<length>_<angle>")

