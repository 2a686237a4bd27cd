"""Image reading and writing with defined conversions and clear errors.

Conventions (used by every dataset and chapter):

* ``read_image(path)`` -> float32 tensor ``(C, H, W)`` in ``[0, 1]``. 8-bit files are divided by 255,
  16-bit files by 65535 (16-bit colour PNGs and TIFFs too, at full precision: see
  :mod:`restore_core.data.png16`). Palette images are expanded to RGB, alpha is dropped (never blended), CMYK -> RGB by
  Pillow.
* ``channels=3`` turns gray into RGB by repeating the one plane; ``channels=1`` turns RGB into gray with the
  BT.601 luma weights ``0.299 R + 0.587 G + 0.114 B`` (what OpenCV's ``COLOR_RGB2GRAY`` and Pillow's ``"L"``
  use; PSNR-on-Y uses the *studio-range* Y of :func:`restore_core.metrics.rgb_to_y`, which is different).
* ``write_image(path, x)`` rounds to 8 (or 16) bits and writes atomically (temporary file + ``os.replace``).

``restore-core restore`` keeps a user's file in its own form (alpha, EXIF orientation, ICC profile, format)
with :mod:`restore_core.data.image_file` instead.

Errors name the problem: a missing file (``FileNotFoundError``), a file that is not an image, an unsupported
channel count, an image smaller than a requested crop (:class:`ImageFormatError`, a ``ValueError``).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..fsutil import atomic_write_bytes  # noqa: F401 -- also part of this module's API
from .image_errors import ImageFormatError
from .png16 import encode_png
from .sixteen_bit import read_16bit_colour, read_tiff16

PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

LUMA_BT601 = (0.299, 0.587, 0.114)


def is_image_file(path: PathLike) -> bool:
    """True if ``path`` has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def read_image_uint(path: PathLike) -> np.ndarray:
    """Read an image file as an integer array without changing its bit depth.

    Returns ``(H, W)`` or ``(H, W, 3)`` of dtype uint8, or uint16 for 16-bit files.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.is_dir():
        raise ImageFormatError(f"{path} is a directory, not an image file")
    try:
        with Image.open(path) as im:
            deep = read_16bit_colour(path, im)
            if deep is not None:  # (H, W, C) uint16, C in 1..4: drop alpha as below
                return deep[:, :, 0] if deep.shape[2] <= 2 else deep[:, :, :3]
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                arr = np.asarray(im, dtype=np.uint16)
            elif mode == "I":  # 16-bit PNGs often open as 32-bit ints holding 0..65535
                arr = np.asarray(im, dtype=np.int64)
                if arr.min() < 0 or arr.max() > 65535:
                    raise ImageFormatError(f"{path}: 32-bit integer image with values outside 0..65535")
                arr = arr.astype(np.uint16)
            elif mode == "F":
                raise ImageFormatError(f"{path}: floating-point image files are not supported")
            elif mode in ("L", "1"):
                arr = np.asarray(im.convert("L"), dtype=np.uint8)
            elif mode == "LA":
                arr = np.asarray(im.convert("L"), dtype=np.uint8)
            else:  # RGB, RGBA, P, CMYK, YCbCr, ...
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        with open(path, "rb") as fh:
            tiff = fh.read(4) in (b"II*\x00", b"MM\x00*")
        if not tiff:
            raise ImageFormatError(f"{path} is not a readable image file") from None
        deep = read_tiff16(path)  # a TIFF Pillow has no mode for (16-bit grey + alpha)
        return deep[:, :, 0] if deep.shape[2] <= 2 else deep[:, :, :3]
    except ImageFormatError:
        raise
    except (OSError, ValueError) as exc:  # truncated or corrupt files
        raise ImageFormatError(f"{path} could not be decoded: {exc}") from None
    return arr


def to_float_tensor(arr: np.ndarray) -> torch.Tensor:
    """Integer or float image array -> float32 tensor ``(C, H, W)`` in [0, 1].

    arr: ``(H, W)`` or ``(H, W, C)``; uint8 is divided by 255, uint16 by 65535, floats are kept as they are.
    """
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ImageFormatError(f"expected an (H, W) or (H, W, C) image array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        x = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float32)
    else:
        raise ImageFormatError(f"unsupported image dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def convert_channels(x: torch.Tensor, channels: Optional[int]) -> torch.Tensor:
    """Convert between gray and RGB with the conventions of this module.

    x: ``(C, H, W)`` or ``(Bt, C, H, W)`` with C in {1, 3}. ``channels=None`` keeps C.
    """
    c = x.shape[-3]
    if c not in (1, 3):
        raise ImageFormatError(f"images must have 1 or 3 channels, got {c}")
    if channels is None or channels == c:
        return x
    if channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).clone()
    if channels == 1:
        w = torch.tensor(LUMA_BT601, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x * w).sum(dim=-3, keepdim=True)
    raise ImageFormatError(f"channels must be 1 or 3, got {channels}")


def gray_8bit(x: torch.Tensor) -> torch.Tensor:
    """Gray version of an 8-bit RGB image, as an 8-bit gray file would hold it.

    x: ``(3, H, W)`` or ``(Bt, 3, H, W)`` in [0, 1] with values on the 8-bit grid; returns ``(..., 1, H, W)``
    ``= round(0.299 R + 0.587 G + 0.114 B) / 255`` computed in float64 on the integer levels (so ties round the
    same way as :func:`restore_core.data.embedded.rgb_to_gray_uint8` and numpy).
    """
    if x.shape[-3] != 3:
        raise ImageFormatError(f"gray_8bit needs 3 channels, got {x.shape[-3]}")
    levels = torch.round(x.double() * 255.0)
    w = torch.tensor(LUMA_BT601, dtype=torch.float64, device=x.device).view(3, 1, 1)
    return (torch.round((levels * w).sum(dim=-3, keepdim=True)) / 255.0).to(x.dtype)


def read_image(path: PathLike, channels: Optional[int] = None, min_size: int = 0) -> torch.Tensor:
    """Read a PNG/JPEG/BMP/TIFF (8- or 16-bit, gray or colour) as a float32 tensor ``(C, H, W)`` in [0, 1].

    channels: None keeps the file's (1 or 3); 1 or 3 converts (see the module docstring).
    min_size: raise :class:`ImageFormatError` if the height or width is smaller (e.g. a training crop size).
    """
    arr = read_image_uint(path)
    h, w = arr.shape[:2]
    if min(h, w) < min_size:
        raise ImageFormatError(f"{path} is {h}x{w}, smaller than the required {min_size}x{min_size}")
    return convert_channels(to_float_tensor(arr), channels)


def tensor_to_uint(x: torch.Tensor, bits: int = 8) -> np.ndarray:
    """Float tensor ``(C, H, W)`` in [0, 1] -> ``(H, W)`` or ``(H, W, 3)`` uint8/uint16 (clipped, rounded)."""
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ImageFormatError(f"expected a (1 or 3, H, W) tensor, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ImageFormatError("image contains NaN or infinite values")
    peak = {8: 255.0, 16: 65535.0}.get(bits)
    if peak is None:
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    a = (x.detach().to("cpu", torch.float64).clamp(0, 1) * peak).round().numpy()
    a = a.astype(np.uint8 if bits == 8 else np.uint16).transpose(1, 2, 0)
    return a[:, :, 0] if a.shape[2] == 1 else a


def write_image_uint(path: PathLike, arr: np.ndarray, quality: int = 95) -> None:
    """Write a uint8/uint16 ``(H, W)`` or ``(H, W, 3)`` array atomically; format from the extension (16-bit: PNG)."""
    path = Path(path)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        path.suffix.lower())
    if fmt is None:
        raise ImageFormatError(f"cannot write {path}: unknown image extension {path.suffix!r}")
    if arr.dtype == np.uint16:
        if fmt != "PNG" or not (arr.ndim == 2 or arr.shape[2] == 3):
            raise ImageFormatError("16-bit images can be written only as grey or RGB PNG here "
                                   "(TIFF and alpha: restore_core.data.image_file.save_image)")
        atomic_write_bytes(path, encode_png(arr))
        return
    elif arr.dtype == np.uint8:
        im = Image.fromarray(arr)
    else:
        raise ImageFormatError(f"write_image_uint needs uint8 or uint16, got {arr.dtype}")
    buf = io.BytesIO()
    kwargs = {"quality": quality} if fmt == "JPEG" else {}
    im.save(buf, format=fmt, **kwargs)
    atomic_write_bytes(path, buf.getvalue())


def write_image(path: PathLike, x: torch.Tensor, bits: int = 8) -> None:
    """Write a float tensor ``(C, H, W)`` in [0, 1] (C in {1, 3}) atomically, rounded to ``bits`` (8 or 16)."""
    write_image_uint(path, tensor_to_uint(x, bits=bits))
