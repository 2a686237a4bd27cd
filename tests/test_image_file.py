"""Files handed back in their own form: 16-bit colour PNG codec, alpha, grey, EXIF orientation, ICC, formats."""
from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms, ImageOps

from restore_core.data.image_file import (ImageFormatError, load_image, output_format, probe_image, save_image,
                                          to_grey)
from restore_core.data.io import read_image
from restore_core.data.png16 import SIGNATURE, _chunk, encode_png, read_png16, unfilter_ref


def _filter_ref(raw: np.ndarray, types: np.ndarray, bpp: int) -> np.ndarray:
    """PNG row filtering with plain loops (the encoder side of spec 9.2); raw (H, rowbytes) -> (H, 1 + rowbytes)."""
    h, n = raw.shape
    r = raw.astype(np.int64)
    out = np.zeros((h, n + 1), dtype=np.uint8)
    for y in range(h):
        out[y, 0] = types[y]
        for i in range(n):
            a = r[y, i - bpp] if i >= bpp else 0
            b = r[y - 1, i] if y > 0 else 0
            c = r[y - 1, i - bpp] if (y > 0 and i >= bpp) else 0
            p = a + b - c
            paeth = a if (abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c)) else (b if abs(p - b) <= abs(p - c)
                                                                                       else c)
            pred = [0, a, b, (a + b) // 2, paeth][types[y]]
            out[y, i + 1] = (r[y, i] - pred) % 256
    return out


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png16_decoder_undoes_every_filter_like_the_loop_reference(channels):
    rng = np.random.default_rng(channels)
    h, w = 9, 7
    pix = rng.integers(0, 65536, (h, w, channels), dtype=np.uint16)
    pix[:3] = pix[:3] // 64 * 64 + 5  # smooth-ish rows too, so predictions are not all noise
    raw = pix.astype(">u2").view(np.uint8).reshape(h, -1)
    types = np.array([0, 1, 2, 3, 4, 4, 3, 2, 1])
    filtered = _filter_ref(raw, types, 2 * channels)
    assert np.array_equal(unfilter_ref(filtered, 2 * channels), raw)
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    ihdr = np.array([w, h], ">u4").tobytes() + bytes([16, ctype, 0, 0, 0])
    data = SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(filtered.tobytes())) + _chunk(b"IEND", b"")
    assert np.array_equal(read_png16(data), pix)
    assert np.array_equal(read_png16(encode_png(pix)), pix)  # our encoder ("Up" rows) round-trips
    tall = rng.integers(0, 65536, (150, 3, channels), dtype=np.uint16)  # several 64-row bands of the encoder
    assert np.array_equal(read_png16(encode_png(tall)), tall)
    with pytest.raises(ValueError, match="CRC"):
        read_png16(data[:40] + bytes([data[40] ^ 1]) + data[41:])


def test_encoder_output_reads_the_same_in_pillow():
    rng = np.random.default_rng(0)
    for c, mode in [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")]:
        a = rng.integers(0, 256, (5, 6, c), dtype=np.uint8)
        im = Image.open(io.BytesIO(encode_png(a)))
        assert im.mode == mode and np.array_equal(np.asarray(im).reshape(5, 6, c), a)
    g16 = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    im = Image.open(io.BytesIO(encode_png(g16, icc_profile=b"x" * 200)))
    assert im.mode == "I;16" and np.array_equal(np.asarray(im), g16) and im.info["icc_profile"] == b"x" * 200


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_files_keep_every_level(tmp_path, ext, channels):
    """Levels off the 8-bit grid (odd values) survive read -> float32 -> write in PNG and TIFF."""
    a = np.random.default_rng(channels).integers(0, 65536, (7, 5, channels), dtype=np.uint16) | 1
    src = tmp_path / f"a{ext}"
    if ext == ".png":
        src.write_bytes(encode_png(a))
    else:
        tifffile.imwrite(src, a if channels > 1 else a[:, :, 0], photometric="rgb" if channels > 2 else "minisblack",
                         extrasamples=["unassalpha"] if channels in (2, 4) else None)
    f = load_image(src)
    assert (f.info.bits, f.info.channels, f.info.has_alpha) == (16, 1 if channels < 3 else 3, channels in (2, 4))
    x = torch.cat([f.pixels, f.alpha]) if f.alpha is not None else f.pixels
    assert torch.equal(x, torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32) / 65535))
    for out_ext in (".png", ".tif"):
        dst = save_image(tmp_path / f"b{out_ext}", f.pixels, f.alpha, bits=16)
        g = load_image(dst)
        assert g.info.bits == 16 and torch.equal(g.pixels, f.pixels)
        assert (g.alpha is None) == (f.alpha is None) and (g.alpha is None or torch.equal(g.alpha, f.alpha))
    # the dataset reader sees the full 16 bits too (alpha dropped, as it documents)
    assert torch.equal(read_image(src), f.pixels)


def test_grey_alpha_and_palette_modes_come_back_in_their_form(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    cases = {"L": Image.fromarray(rgb[:, :, 0]), "LA": Image.fromarray(rgb[:, :, :2]),
             "RGBA": Image.fromarray(np.dstack([rgb, rgb[:, :, 0]])), "RGB": Image.fromarray(rgb)}
    for mode, im in cases.items():
        im.save(tmp_path / f"{mode}.png")
        f = load_image(tmp_path / f"{mode}.png")
        out = Image.open(save_image(tmp_path / f"{mode}_out.png", f.pixels, f.alpha, bits=f.info.bits))
        assert out.mode == mode and np.array_equal(np.asarray(out), np.asarray(im))
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    f = load_image(tmp_path / "p.png")
    assert f.info.channels == 3 and f.alpha is not None  # palette + tRNS -> RGB + alpha
    assert set(torch.unique(f.alpha).tolist()) <= {0.0, 1.0} and (f.alpha == 0).any()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_once_and_other_tags_kept(tmp_path, orientation):
    a = np.random.default_rng(orientation).integers(0, 256, (4, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = orientation, "TestCam"
    Image.fromarray(a).save(tmp_path / "o.png", exif=exif)
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    f = load_image(tmp_path / "o.png")
    assert torch.equal(f.pixels, torch.from_numpy(want.transpose(2, 0, 1).astype(np.float32) / 255))
    for ext in (".png", ".jpg", ".tif"):
        out = Image.open(save_image(tmp_path / f"b{ext}", f.pixels, bits=8, exif=f.exif))
        e = out.getexif()
        assert out.size == (want.shape[1], want.shape[0])
        assert 0x0112 not in e and e[0x010F] == "TestCam"  # no stale orientation; the rest of EXIF kept


def test_icc_profile_copied_when_the_format_and_colour_space_allow(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    a = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "in.jpg", icc_profile=srgb, quality=95)
    f = load_image(tmp_path / "in.jpg")
    assert f.icc_profile == srgb
    for ext, bits in [(".png", 8), (".jpg", 8), (".tif", 8), (".png", 16), (".tif", 16)]:
        out = Image.open(save_image(tmp_path / f"o{bits}{ext}", f.pixels, bits=bits, icc_profile=f.icc_profile))
        assert out.info.get("icc_profile") == srgb, (ext, bits)
    grey = Image.open(save_image(tmp_path / "g.png", to_grey(f.pixels), icc_profile=f.icc_profile))
    assert grey.mode == "L" and "icc_profile" not in grey.info  # an RGB profile is not attached to grey pixels


def test_to_grey_is_bt601_luma():
    x = torch.rand(3, 4, 5)
    want = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    assert torch.allclose(to_grey(x)[0], want, atol=1e-7) and to_grey(x).shape == (1, 4, 5)


def test_output_format_rules_and_errors(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg")
    Image.fromarray(rgb).save(tmp_path / "a.bmp")
    Image.fromarray(np.dstack([rgb, rgb[:, :, 0]])).save(tmp_path / "a.png")
    (tmp_path / "d.png").write_bytes(encode_png(np.zeros((4, 4, 3), np.uint16)))
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((4, 4, 3), np.uint16), photometric="rgb")
    assert output_format("same", probe_image(tmp_path / "a.jpg")) == "jpg"
    assert output_format("same", probe_image(tmp_path / "a.bmp")) == "png"
    assert output_format("same", probe_image(tmp_path / "t.tif")) == "tiff"
    assert output_format("tiff", probe_image(tmp_path / "a.jpg")) == "tiff"
    info16 = probe_image(tmp_path / "d.png")
    assert (info16.bits, info16.channels, info16.has_alpha) == (16, 3, False)
    with pytest.raises(ImageFormatError, match="JPEG holds 8 bits per channel and the image is 16-bit; use --format"):
        output_format("jpg", info16, "d.png")
    with pytest.raises(ImageFormatError, match="JPEG has no alpha channel"):
        output_format("jpg", probe_image(tmp_path / "a.png"))
    with pytest.raises(ImageFormatError, match="16-bit"):
        save_image(tmp_path / "x.jpg", torch.zeros(3, 4, 4), bits=16)
    with pytest.raises(ImageFormatError, match="extension must be one of"):
        save_image(tmp_path / "x.gif", torch.zeros(3, 4, 4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bmp", "a.jpg", "a.png", "d.png", "t.tif"]
