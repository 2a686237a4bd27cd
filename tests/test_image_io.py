"""Image IO: defined conversions (8/16-bit, gray/RGB, alpha, palette), atomic writes, clear errors."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from restore_core.data.io import (ImageFormatError, convert_channels, read_image, read_image_uint, tensor_to_uint,
                                  write_image, write_image_uint)


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (13, 17, 3), dtype=np.uint8)


def test_rgb_png_roundtrip_exact(tmp_path, rgb):
    p = tmp_path / "a.png"
    Image.fromarray(rgb).save(p)
    x = read_image(p)
    assert x.shape == (3, 13, 17) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255))
    write_image(tmp_path / "b.png", x)
    assert np.array_equal(read_image_uint(tmp_path / "b.png"), rgb)


def test_16bit_png_scaled_by_65535(tmp_path):
    a = np.array([[0, 1, 65535], [256, 32768, 1000]], dtype=np.uint16)
    p = tmp_path / "d.png"
    Image.fromarray(a).save(p)
    x = read_image(p)
    assert x.shape == (1, 2, 3)
    np.testing.assert_allclose(x[0].numpy(), a / 65535.0, rtol=0, atol=1e-7)
    write_image(tmp_path / "e.png", x, bits=16)
    assert np.array_equal(read_image_uint(tmp_path / "e.png"), a)


def test_gray_rgb_conversions(tmp_path, rgb):
    g = rgb[:, :, 0]
    Image.fromarray(g).save(tmp_path / "g.png")
    x3 = read_image(tmp_path / "g.png", channels=3)
    assert x3.shape == (3, 13, 17) and torch.equal(x3[0], x3[2])
    Image.fromarray(rgb).save(tmp_path / "c.png")
    x1 = read_image(tmp_path / "c.png", channels=1)
    want = (rgb.astype(np.float64) / 255) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(x1[0].numpy(), want, atol=1e-6)


def test_alpha_dropped_and_palette_expanded(tmp_path, rgb):
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert np.array_equal(read_image_uint(tmp_path / "a.png"), rgb)  # alpha dropped, never blended
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (3, 13, 17)


def test_jpeg_reads_as_pillow_decodes(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "j.jpg", quality=80)
    dec = np.asarray(Image.open(tmp_path / "j.jpg"))
    assert torch.equal(read_image(tmp_path / "j.jpg"), torch.from_numpy(dec.transpose(2, 0, 1) / 255.0).float())


def test_clear_errors(tmp_path, rgb):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "text.png").write_text("this is not an image")
    with pytest.raises(ImageFormatError, match="not a readable image"):
        read_image(tmp_path / "text.png")
    with pytest.raises(ImageFormatError, match="directory"):
        read_image(tmp_path)
    Image.fromarray(rgb).save(tmp_path / "small.png")
    with pytest.raises(ImageFormatError, match="smaller than the required 32x32"):
        read_image(tmp_path / "small.png", min_size=32)
    good = tmp_path / "trunc.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFormatError):
        read_image(good)


def test_channel_count_errors():
    with pytest.raises(ImageFormatError, match="1 or 3 channels"):
        convert_channels(torch.zeros(4, 5, 5), 3)
    with pytest.raises(ImageFormatError, match="1 or 3"):
        tensor_to_uint(torch.zeros(2, 5, 5))
    with pytest.raises(ImageFormatError, match="NaN"):
        tensor_to_uint(torch.full((3, 2, 2), float("nan")))


def test_atomic_write_leaves_no_temporary(tmp_path, rgb):
    write_image_uint(tmp_path / "sub" / "x.png", rgb)
    assert os.listdir(tmp_path / "sub") == ["x.png"]
    with pytest.raises(ImageFormatError, match="unknown image extension"):
        write_image_uint(tmp_path / "x.xyz", rgb)
    assert sorted(os.listdir(tmp_path)) == ["sub"]


def test_write_clips_and_rounds(tmp_path):
    x = torch.tensor([[[-0.2, 0.4 / 255, 1.49 / 255, 1.7]]])
    assert tensor_to_uint(x).tolist() == [[0, 0, 1, 255]]
    assert tensor_to_uint(torch.tensor([[[0.6 / 255, 254.4 / 255]]])).tolist() == [[1, 254]]
