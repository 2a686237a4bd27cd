"""16-bit colour files that Pillow would cut to 8 bits: PNGs (through :mod:`restore_core.data.png16`) and TIFFs
(through ``tifffile``, a scikit-image dependency), read as ``(H, W, C)`` uint16 arrays."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import tifffile
from PIL import Image

from .image_errors import ImageFormatError
from .png16 import png_header, read_png16

PathLike = Union[str, os.PathLike]


def is_png16_colour(path: Path, im: Image.Image) -> bool:
    if im.format != "PNG":
        return False
    with open(path, "rb") as fh:
        _, _, depth, ctype, _ = png_header(fh.read(33))
    return depth == 16 and ctype != 0  # 16-bit grey (type 0) Pillow reads exactly as "I;16"


def is_tiff16_colour(im: Image.Image) -> bool:
    if im.format != "TIFF":
        return False
    bits = im.tag_v2.get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    return max(bits) > 8 and im.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def read_tiff16(path: Path) -> np.ndarray:
    """(H, W, C) uint16 of a 16-bit grey + alpha / RGB / RGBA TIFF's first page."""
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        if int(page.photometric) not in (1, 2):  # MINISBLACK, RGB
            raise ImageFormatError(f"{path}: 16-bit TIFF with photometric {page.photometric.name} is not supported")
        try:
            arr = page.asarray()
        except Exception as exc:  # e.g. a compression tifffile cannot decode without imagecodecs
            raise ImageFormatError(f"{path} could not be decoded: {exc}") from None
        if int(page.planarconfig) == 2:  # SEPARATE: (C, H, W)
            arr = np.moveaxis(arr, 0, -1)
    if arr.dtype != np.uint16:
        raise ImageFormatError(f"{path}: TIFF samples of type {arr.dtype} are not supported (only 8/16-bit)")
    return arr if arr.ndim == 3 else arr[:, :, None]


def read_16bit_colour(path: PathLike, im: Image.Image) -> Optional[np.ndarray]:
    """(H, W, C) uint16, C in 1..4, of a 16-bit PNG/TIFF with alpha or colour (Pillow would cut it to 8 bits).

    im: the file opened by Pillow (its header is enough). Returns None for every other file.
    """
    path = Path(path)
    if is_png16_colour(path, im):
        return read_png16(path.read_bytes())
    if is_tiff16_colour(im):
        return read_tiff16(path)
    return None
