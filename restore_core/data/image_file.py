"""Read an image file with everything its restored version must keep, and write that version back.

``restore-core restore`` hands a user's file back in the same form (what :mod:`restore_core.data.io`, made
for datasets, does not try to do):

* **bit depth**: 8-bit files come back 8-bit, 16-bit files 16-bit, read as float32 ``k / 65535`` (exact for
  every 16-bit level) and never rounded to 8 bits on the way. 16-bit colour PNGs, which Pillow cuts to 8 bits,
  go through :mod:`restore_core.data.png16`; 16-bit colour TIFFs through ``tifffile`` (a scikit-image
  dependency).
* **grey / colour**: the pixels are ``(1, H, W)`` for grey files and ``(3, H, W)`` for everything else
  (palette, CMYK and YCbCr are converted to RGB by Pillow and written as RGB).
* **alpha**: kept apart as ``(1, H, W)`` (never blended); the caller carries it through (resized for SR).
* **EXIF orientation**: applied on reading (the pixels are upright, as in
  ``PIL.ImageOps.exif_transpose``); the EXIF block is kept without its orientation tag, so no viewer rotates
  the output a second time.
* **ICC profile**: kept and written again when the output format can hold one and the profile's colour space
  (RGB or GRAY) matches the output's channels; a CMYK profile is dropped when CMYK is converted to RGB.

Formats written: PNG (8/16-bit, grey/RGB, alpha, ICC, EXIF), TIFF (8/16-bit, grey/RGB, alpha, ICC; EXIF for
8-bit), JPEG (8-bit grey/RGB, ICC, EXIF, quality 95). :func:`output_format` picks one for an input and refuses
(one-line :class:`ImageFormatError`) a format that cannot hold the data: a 16-bit image or an alpha channel is
never silently dropped on the way to JPEG.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import tifffile
import torch
from PIL import Image, UnidentifiedImageError

from ..fsutil import atomic_write_bytes
from .image_errors import ImageFormatError
from .io import LUMA_BT601, to_float_tensor
from .png16 import encode_png
from .sixteen_bit import is_png16_colour, is_tiff16_colour, read_16bit_colour, read_tiff16

PathLike = Union[str, os.PathLike]

ORIENTATION = 0x0112  # EXIF tag
FORMATS = ("png", "tiff", "jpg")
EXTENSIONS = {"png": (".png",), "tiff": (".tif", ".tiff"), "jpg": (".jpg", ".jpeg")}
PIL_FORMAT = {"PNG": "png", "TIFF": "tiff", "JPEG": "jpg", "MPO": "jpg"}  # MPO: multi-picture JPEGs of cameras

__all__ = ["ImageFile", "ImageInfo", "probe_image", "load_image", "save_image", "output_format",
           "format_of_path", "read_16bit_colour", "orient", "to_grey", "FORMATS"]


@dataclass
class ImageInfo:
    """What an output must keep, read from a file's header: ``format`` is Pillow's name ("PNG", "JPEG", ...)."""
    format: str
    bits: int          # 8 or 16
    channels: int      # 1 (grey) or 3 (colour), alpha not counted
    has_alpha: bool
    size: Tuple[int, int]  # (width, height) as stored, before the EXIF orientation


@dataclass
class ImageFile:
    """A decoded file. pixels: ``(C, H, W)`` float32 in [0, 1], C in {1, 3}; alpha: ``(1, H, W)`` or None."""
    pixels: torch.Tensor
    alpha: Optional[torch.Tensor]
    info: ImageInfo
    icc_profile: Optional[bytes] = None
    exif: Optional[bytes] = None  # EXIF block without the orientation tag (already applied to the pixels)


def _open(path: PathLike) -> Optional[Image.Image]:
    """The file opened by Pillow; None for a TIFF that only tifffile reads (16-bit grey + alpha)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.is_dir():
        raise ImageFormatError(f"{path} is a directory, not an image file")
    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError):
        with open(path, "rb") as fh:
            if fh.read(4) in (b"II*\x00", b"MM\x00*"):
                return None
        raise ImageFormatError(f"{path} is not a readable image file") from None


def _load_tiff_only(path: Path) -> Tuple[np.ndarray, ImageInfo, Optional[bytes], int]:
    """(pixels (H, W, C), info, ICC profile, EXIF orientation) of a TIFF that Pillow cannot open."""
    arr = read_tiff16(path)
    with tifffile.TiffFile(path) as tf:
        tags = tf.pages[0].tags
        icc = tags[34675].value if 34675 in tags else None
        orientation = int(tags[274].value) if 274 in tags else 1
    c = arr.shape[2]
    info = ImageInfo(format="TIFF", bits=16, channels=1 if c < 3 else 3, has_alpha=c in (2, 4),
                     size=(arr.shape[1], arr.shape[0]))
    return arr, info, (bytes(icc) if icc else None), orientation


def _pillow_pixels(path: Path, im: Image.Image) -> np.ndarray:
    """(H, W, C) uint8/uint16, C in 1..4 (grey, grey + alpha, RGB, RGBA) from Pillow's decoding."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.uint16)[:, :, None]
    if mode == "I":  # 16-bit PNGs and TIFFs may open as 32-bit ints holding 0..65535
        arr = np.asarray(im, dtype=np.int64)
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
            raise ImageFormatError(f"{path}: 32-bit integer image with values outside 0..65535")
        return arr.astype(np.uint16)[:, :, None]
    if mode == "F":
        raise ImageFormatError(f"{path}: floating-point image files are not supported")
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"))[:, :, None]
    if mode in ("LA", "La"):
        return np.asarray(im.convert("LA"))
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))  # RGB, P, CMYK, YCbCr, LAB, HSV, RGBX


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to ``(H, W, ...)``: the same result as ``PIL.ImageOps.exif_transpose``."""
    swap = (1, 0) + tuple(range(2, arr.ndim))
    ops = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(swap), 6: lambda a: np.rot90(a, -1), 7: lambda a: a.transpose(swap)[::-1, ::-1],
           8: lambda a: np.rot90(a, 1)}
    return ops.get(orientation, ops[1])(arr)


def probe_image(path: PathLike) -> ImageInfo:
    """Format, bit depth, channels and alpha of an image file, from its header (no pixel decoding)."""
    path = Path(path)
    im = _open(path)
    if im is None:
        return _load_tiff_only(path)[1]
    with im:
        return _info(path, im)


def _info(path: Path, im: Image.Image) -> ImageInfo:
    mode = im.mode
    try:
        deep = is_png16_colour(path, im) or is_tiff16_colour(im)
    except ValueError as exc:
        raise ImageFormatError(f"{path} could not be decoded: {exc}") from None
    bits = 16 if (deep or mode.startswith("I")) else 8
    alpha = mode in ("LA", "La", "RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info)
    channels = 1 if mode in ("1", "L", "LA", "La") or mode.startswith("I") else 3
    return ImageInfo(format=im.format or "", bits=bits, channels=channels, has_alpha=alpha, size=im.size)


def load_image(path: PathLike) -> ImageFile:
    """Decode ``path`` keeping its depth, channels and alpha; apply the EXIF orientation (module docstring)."""
    path = Path(path)
    im = _open(path)
    if im is None:
        arr, info, icc, orientation = _load_tiff_only(path)
        return _to_image_file(path, arr, info, icc, None, orientation)
    with im:
        try:
            info = _info(path, im)
            arr = read_16bit_colour(path, im)
            if arr is None:
                im.load()
                arr = _pillow_pixels(path, im)
            exif = im.getexif()
        except ImageFormatError:
            raise
        except (ValueError, OSError) as exc:  # truncated or corrupt files
            raise ImageFormatError(f"{path} could not be decoded: {exc}") from None
        icc = im.info.get("icc_profile") or None
        orientation = exif.get(ORIENTATION, 1)
        exif.pop(ORIENTATION, None)
        exif_bytes = exif.tobytes() if len(exif) else None
    return _to_image_file(path, arr, info, icc, exif_bytes, orientation)


def _to_image_file(path: Path, arr: np.ndarray, info: ImageInfo, icc: Optional[bytes], exif: Optional[bytes],
                   orientation: int) -> ImageFile:
    if arr.shape[2] not in (1, 2, 3, 4):
        raise ImageFormatError(f"{path}: images must have 1 or 3 channels (+ alpha), got {arr.shape[2]}")
    arr = np.ascontiguousarray(orient(arr, orientation))
    x = to_float_tensor(arr)  # (C, H, W)
    has_alpha = x.shape[0] in (2, 4)
    info.has_alpha, info.channels = has_alpha, x.shape[0] - int(has_alpha)
    pixels, alpha = (x[:-1], x[-1:]) if has_alpha else (x, None)
    return ImageFile(pixels=pixels, alpha=alpha, info=info, icc_profile=icc, exif=exif)


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of ``(3, H, W)`` -> ``(1, H, W)``, one plane at a time.

    Same weights as :func:`restore_core.data.io.convert_channels` (and Pillow's "L"), without its full-size
    ``(3, H, W)`` product: for an 8000x6000 output that temporary alone is 576 MB.
    """
    r, g, b = LUMA_BT601
    return (x[0:1] * r).add_(x[1:2], alpha=g).add_(x[2:3], alpha=b)


def format_of_path(path: PathLike) -> str:
    """"png", "tiff" or "jpg" from a file name's extension."""
    suffix = Path(path).suffix.lower()
    for fmt, exts in EXTENSIONS.items():
        if suffix in exts:
            return fmt
    raise ImageFormatError(f"cannot write {path}: the extension must be one of "
                           f"{', '.join(e for exts in EXTENSIONS.values() for e in exts)}")


def _why_not(fmt: str, bits: int, has_alpha: bool) -> Optional[str]:
    if fmt == "jpg" and bits == 16:
        return "JPEG holds 8 bits per channel and the image is 16-bit"
    if fmt == "jpg" and has_alpha:
        return "JPEG has no alpha channel and the image has one"
    return None


def output_format(requested: str, info: ImageInfo, name: str = "the image") -> str:
    """The output format for ``--format requested`` ("same", "png", "tiff", "jpg") and an input's header.

    "same": the input's own format when it is PNG, TIFF or JPEG (and can hold the output), else PNG.
    An explicit format that cannot hold the data raises :class:`ImageFormatError` (no silent down-conversion).
    """
    if requested == "same":
        fmt = PIL_FORMAT.get(info.format, "png")
        return fmt if _why_not(fmt, info.bits, info.has_alpha) is None else "png"
    if requested not in FORMATS:
        raise ImageFormatError(f"--format must be one of same, {', '.join(FORMATS)}; got {requested!r}")
    why = _why_not(requested, info.bits, info.has_alpha)
    if why is not None:
        raise ImageFormatError(f"--format {requested} cannot hold {name}: {why}; use --format png or tiff")
    return requested


def _icc_fits(icc: Optional[bytes], channels: int) -> bool:
    """True when an ICC profile's data colour space (header bytes 16-20) is RGB for 3 channels, GRAY for 1."""
    return bool(icc) and len(icc) >= 20 and icc[16:20] == (b"RGB " if channels == 3 else b"GRAY")


def _to_uint(pixels: torch.Tensor, alpha: Optional[torch.Tensor], bits: int, rows: int = 256) -> np.ndarray:
    """(C, H, W) [+ (1, H, W)] float in [0, 1] -> (H, W, C[+1]) uint8/uint16, clipped and rounded.

    Converted ``rows`` rows at a time, so the temporaries are a few MB whatever the image size.
    """
    peak = {8: 255.0, 16: 65535.0}.get(bits)
    if peak is None:
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    c, h, w = pixels.shape
    out = np.empty((h, w, c + (alpha is not None)), dtype=np.uint8 if bits == 8 else np.uint16)
    for top in range(0, h, rows):
        for i, src in enumerate([pixels] if alpha is None else [pixels, alpha]):
            band = src[:, top:top + rows].detach().to("cpu", torch.float32)
            if not torch.isfinite(band).all():
                raise ImageFormatError("image contains NaN or infinite values")
            band = band.clamp(0, 1).mul_(peak).round_().numpy().transpose(1, 2, 0)
            out[top:top + rows, :, i * c:i * c + band.shape[2]] = band
    return out


def save_image(path: PathLike, pixels: torch.Tensor, alpha: Optional[torch.Tensor] = None, bits: int = 8,
               icc_profile: Optional[bytes] = None, exif: Optional[bytes] = None, quality: int = 95) -> Path:
    """Write ``pixels`` ``(C, H, W)`` in [0, 1] (C in {1, 3}) and ``alpha`` ``(1, H, W)`` atomically.

    The format comes from the extension (:func:`format_of_path`); ``bits`` is 8 or 16. The ICC profile is
    written when its colour space matches C (otherwise dropped), EXIF where the format takes it (not in
    16-bit TIFF). Raises :class:`ImageFormatError` when the format cannot hold the data (16-bit or alpha JPEG).
    """
    path = Path(path)
    fmt = format_of_path(path)
    if pixels.dim() != 3 or pixels.shape[0] not in (1, 3):
        raise ImageFormatError(f"expected a (1 or 3, H, W) image, got shape {tuple(pixels.shape)}")
    if alpha is not None and (alpha.dim() != 3 or alpha.shape[0] != 1 or alpha.shape[1:] != pixels.shape[1:]):
        raise ImageFormatError(f"alpha must be (1, H, W) = (1, {pixels.shape[1]}, {pixels.shape[2]}), "
                               f"got {tuple(alpha.shape)}")
    why = _why_not(fmt, bits, alpha is not None)
    if why is not None:
        raise ImageFormatError(f"cannot write {path}: {why}")
    c = pixels.shape[0]
    icc = icc_profile if _icc_fits(icc_profile, c) else None
    arr = _to_uint(pixels, alpha, bits)
    buf = io.BytesIO()
    if fmt == "png" and bits == 16:
        buf.write(encode_png(arr, icc_profile=icc, exif=exif))
    elif fmt == "tiff" and bits == 16:
        tifffile.imwrite(buf, arr if arr.shape[2] > 1 else arr[:, :, 0],
                         photometric="rgb" if c == 3 else "minisblack",
                         extrasamples=["unassalpha"] if alpha is not None else None,
                         iccprofile=icc, compression="zlib")
    else:
        im = Image.fromarray(arr if arr.shape[2] > 1 else arr[:, :, 0])  # L, LA, RGB or RGBA
        del arr
        kwargs: dict = {}
        if icc:
            kwargs["icc_profile"] = icc
        if exif:
            kwargs["exif"] = exif
        if fmt == "jpg":
            kwargs["quality"] = quality
        elif fmt == "tiff":
            kwargs["compression"] = "tiff_deflate"
        im.save(buf, format={"png": "PNG", "tiff": "TIFF", "jpg": "JPEG"}[fmt], **kwargs)
    return atomic_write_bytes(path, buf.getbuffer())
