"""16-bit PNG files with more than one channel (grey + alpha, RGB, RGBA), which Pillow cuts to 8 bits.

Pillow decodes a 16-bit colour PNG to 8 bits per channel (it keeps the high bytes) and cannot write one. This
module reads and writes them at full precision with no extra dependency:

* :func:`encode_png` writes any ``(H, W)`` or ``(H, W, C)`` uint8/uint16 array (C = 1 grey, 2 grey + alpha,
  3 RGB, 4 RGBA), with an optional ICC profile (``iCCP`` chunk) and EXIF block (``eXIf`` chunk). Every row uses
  the "Up" filter (a vectorised difference with the row above), streamed 64 rows at a time into zlib.
* :func:`read_png16` reads a 16-bit PNG of any colour type. The expensive step is undoing the per-row
  filters (PNG spec section 9: Sub, Up, Average, Paeth), whose left neighbour is ``bpp`` bytes back
  (``bpp`` = bytes per pixel, 6 for RGB16). Byte ``k`` of a pixel only ever refers to byte ``k`` of its
  neighbours, so the ``bpp`` byte planes are ``bpp`` independent 8-bit grey images that share the row filter
  types. Each plane is wrapped in a minimal 8-bit grey PNG (same filter bytes, uncompressed zlib) and
  unfiltered by Pillow's C decoder; the planes are then interleaved back. :func:`unfilter_ref` is the plain
  loop version of the same step and the test oracle.

Interlaced (Adam7) 16-bit PNGs are refused with a clear error.
"""
from __future__ import annotations

import io
import struct
import zlib
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}  # PNG colour type -> samples per pixel (palette, type 3, is never 16-bit)
COLOUR_TYPE = {c: t for t, c in CHANNELS.items()}

__all__ = ["png_header", "read_png16", "encode_png", "unfilter_ref"]


def _chunks(data: bytes) -> List[Tuple[bytes, bytes]]:
    """(type, payload) of every chunk up to IEND; raises ValueError on a bad signature, length or CRC."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file (bad signature)")
    out, pos = [], len(SIGNATURE)
    while pos + 12 <= len(data):
        (n,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        payload, crc = data[pos + 8:pos + 8 + n], data[pos + 8 + n:pos + 12 + n]
        if len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + payload):
            raise ValueError(f"PNG chunk {kind!r} is truncated or corrupt (CRC mismatch)")
        out.append((kind, payload))
        pos += 12 + n
        if kind == b"IEND":
            return out
    raise ValueError("PNG file is truncated (no IEND chunk)")


def png_header(data: bytes) -> Tuple[int, int, int, int, int]:
    """``(width, height, bit_depth, colour_type, interlace)`` from the first 33 bytes of a PNG file."""
    if not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file (no IHDR chunk)")
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return w, h, depth, ctype, interlace


def unfilter_ref(filtered: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filters with plain loops (PNG spec 9.2-9.4). The oracle for :func:`read_png16`.

    filtered: ``(H, 1 + rowbytes)`` uint8, each row's filter type byte followed by its filtered bytes.
    Returns ``(H, rowbytes)`` uint8.
    """
    h, n = filtered.shape[0], filtered.shape[1] - 1
    out = np.zeros((h, n), dtype=np.int64)
    for r in range(h):
        ftype, f = int(filtered[r, 0]), filtered[r, 1:].astype(np.int64)
        for i in range(n):
            a = out[r, i - bpp] if i >= bpp else 0          # left
            b = out[r - 1, i] if r > 0 else 0               # up
            c = out[r - 1, i - bpp] if (r > 0 and i >= bpp) else 0  # up-left
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            else:
                raise ValueError(f"PNG row {r} has unknown filter type {ftype}")
            out[r, i] = (f[i] + pred) % 256
    return out.astype(np.uint8)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _grey8_png(filtered: np.ndarray) -> bytes:
    """A minimal 8-bit grey PNG whose (uncompressed) IDAT holds ``filtered`` ``(H, 1 + W)`` as it is."""
    h, w = filtered.shape[0], filtered.shape[1] - 1
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(np.ascontiguousarray(filtered).tobytes(), 0)
    return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def read_png16(data: bytes) -> np.ndarray:
    """Decode a non-interlaced 16-bit PNG (bytes of the file) at full precision.

    Returns ``(H, W, C)`` uint16 with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); values as stored
    (no gamma or colour management). Raises ValueError for other files, naming the problem.
    """
    w, h, depth, ctype, interlace = png_header(data)
    if depth != 16 or ctype not in CHANNELS:
        raise ValueError(f"read_png16 reads 16-bit PNGs, got bit depth {depth}, colour type {ctype}")
    if interlace:
        raise ValueError("interlaced (Adam7) 16-bit PNGs are not supported; save the image without interlacing")
    idat = b"".join(p for k, p in _chunks(data) if k == b"IDAT")
    bpp = 2 * CHANNELS[ctype]
    try:
        raw = zlib.decompress(idat)
    except zlib.error as exc:
        raise ValueError(f"PNG image data is corrupt ({exc})") from None
    if len(raw) != h * (1 + w * bpp):
        raise ValueError(f"PNG image data has {len(raw)} bytes, expected {h * (1 + w * bpp)} for {w}x{h}")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, 1 + w * bpp)
    if rows[:, 0].max(initial=0) > 4:
        raise ValueError("PNG image data is corrupt (unknown row filter type)")
    planes = rows[:, 1:].reshape(h, w, bpp)
    out = np.empty((h, w, bpp), dtype=np.uint8)
    plane_rows = np.empty((h, 1 + w), dtype=np.uint8)
    plane_rows[:, 0] = rows[:, 0]
    for k in range(bpp):  # each byte plane is an independent 8-bit grey image with the same row filters
        plane_rows[:, 1:] = planes[:, :, k]
        with Image.open(io.BytesIO(_grey8_png(plane_rows))) as im:
            out[:, :, k] = np.asarray(im)
    return out.view(">u2").astype(np.uint16)  # (H, W, C): big-endian sample pairs -> native uint16


def encode_png(arr: np.ndarray, icc_profile: Optional[bytes] = None, exif: Optional[bytes] = None,
               compress_level: int = 6) -> bytes:
    """PNG file bytes for ``arr`` ``(H, W)`` or ``(H, W, C)``, C in 1..4, uint8 (8-bit) or uint16 (16-bit).

    icc_profile: raw ICC bytes (written as a zlib-compressed ``iCCP`` chunk). exif: a TIFF-structured EXIF block
    (a leading ``Exif\\0\\0`` is removed), written as ``eXIf``.
    """
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in COLOUR_TYPE:
        raise ValueError(f"encode_png needs (H, W) or (H, W, 1..4), got shape {arr.shape}")
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_png needs uint8 or uint16, got {arr.dtype}")
    h, w, c = arr.shape
    depth = 8 * arr.dtype.itemsize
    ihdr = struct.pack(">IIBBBBB", w, h, depth, COLOUR_TYPE[c], 0, 0, 0)
    comp = zlib.compressobj(compress_level)
    idat: List[bytes] = []
    prev = np.zeros(w * c * arr.dtype.itemsize, dtype=np.uint8)
    for top in range(0, h, 64):  # 64 rows at a time: the temporaries stay small for any image size
        raw = np.ascontiguousarray(arr[top:top + 64].astype(arr.dtype.newbyteorder(">"))).view(np.uint8)
        raw = raw.reshape(raw.shape[0], -1)  # (rows, W * C * bytes) in file order
        rows = np.empty((raw.shape[0], 1 + raw.shape[1]), dtype=np.uint8)
        rows[:, 0] = 2  # filter "Up": byte minus the byte above (mod 256); above the first row are zeros
        np.subtract(raw, np.concatenate([prev[None], raw[:-1]]), out=rows[:, 1:])  # uint8 wraps modulo 256
        prev = raw[-1].copy()
        idat.append(comp.compress(rows.data))
    idat.append(comp.flush())
    data = b"".join(idat)
    parts = [SIGNATURE, _chunk(b"IHDR", ihdr)]
    if icc_profile:
        parts.append(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        parts.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    step = 1 << 24
    parts += [_chunk(b"IDAT", data[i:i + step]) for i in range(0, len(data), step)]
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)
