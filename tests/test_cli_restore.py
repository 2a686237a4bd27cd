"""``restore-core restore`` and ``restore-core inspect``: end to end on tiny images and random weights."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from restore_core.cli import main
from restore_core.cli.restore import restore_file
from restore_core.data.io import read_image, to_float_tensor
from restore_core.inference import restore_tensor
from restore_core.models import build_model, list_archs
from restore_core.models.official import from_official, official_layout

from official_oracles import random_official_state_dict

REPO = Path(__file__).resolve().parents[1]
# the lightest official layout available: MambaIR light SR (1.4M parameters) once registered, else RNAN (9M)
LIGHT = ("mambair", "light_sr_x2") if "mambair" in list_archs() else ("rnan", "gray_dn")


pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors (see conftest)


def _save_rgb(path: Path, h: int, w: int, seed: int = 0) -> np.ndarray:
    arr = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def _save_gray16(path: Path, h: int, w: int, seed: int = 0) -> np.ndarray:
    arr = (np.random.default_rng(seed).random((h, w)) * 65535).astype(np.uint16)
    Image.fromarray(arr).save(path)
    return arr


def test_official_weights_end_to_end_subprocess(tmp_path):
    arch, preset = LIGHT
    sd = random_official_state_dict(official_layout(arch, preset), seed=0)
    weights = tmp_path / "official.pth"
    torch.save({"params_ema": sd}, weights)
    img = tmp_path / "in.png"
    _save_rgb(img, 7, 9)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "restore_core.cli", "restore", "--official", f"{arch}:{preset}",
                           str(weights), str(img), "-o", str(out), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "'params_ema' entry" in proc.stdout
    result = out / "in.png"
    assert result.is_file() and not list(out.glob(".*tmp"))
    model = from_official(arch, preset, {"params_ema": sd})
    channels = 1 if preset.startswith("gray") else 3
    x = read_image(img, channels=channels)
    with torch.no_grad():
        ref = restore_tensor(model, x, pixel_range=255.0 if arch == "rnan" else 1.0).clamp(0, 1)
    got = read_image(result)
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() <= 0.5 / 255 + 1e-6  # equal up to the 8-bit rounding


@pytest.fixture(scope="module")
def tiny_training_checkpoint(tmp_path_factory):
    """A restore_core trainer checkpoint of RNAN's tiny preset (the layout restore_core/train writes)."""
    from restore_core.train.checkpoint import FORMAT, config_to_text
    from restore_core.train.config import load_config

    cfg = load_config("rnan/color_dn", profile="quick")
    torch.manual_seed(0)
    net = build_model("rnan", cfg.network_g.preset)
    ema = {k: v + 0.01 for k, v in net.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "step_00000003.pt"
    torch.save({"format": FORMAT, "step": 3, "model": net.state_dict(), "ema": ema,
                "config": config_to_text(cfg.to_dict())}, path)
    return path, ema


def test_training_checkpoint_uses_ema_tiles_and_self_ensemble(tmp_path, tiny_training_checkpoint, capsys):
    ckpt, ema = tiny_training_checkpoint
    jpg = tmp_path / "c.jpg"
    _save_rgb(jpg, 12, 10)
    out = tmp_path / "o"
    rc = main(["restore", str(ckpt), str(jpg), "-o", str(out), "--tile", "8", "--tile-overlap", "4",
               "--self-ensemble", "--device", "cpu", "--no-progress", "--format", "png"])
    assert rc == 0
    assert "(EMA)" in capsys.readouterr().out
    c = Image.open(out / "c.png")
    assert c.mode == "RGB" and c.size == (10, 12)                 # JPEG in -> PNG out (--format png)
    model = build_model("rnan", "tiny")
    model.load_state_dict(ema)
    x = to_float_tensor(np.asarray(Image.open(jpg).convert("RGB")))
    ref = restore_tensor(model, x, tile=8, tile_overlap=4, use_self_ensemble=True).clamp(0, 1)
    got = read_image(out / "c.png")
    assert (got - ref).abs().max().item() <= 0.5 / 255 + 1e-6


def test_restore_file_keeps_16_bit_grey_and_converts_channels(tmp_path):
    gray16 = tmp_path / "g16.png"
    arr = _save_gray16(gray16, 9, 11)
    torch.manual_seed(2)
    gray_model = build_model("rnan", "tiny", in_channels=1).eval()
    dst = restore_file(gray_model, gray16, tmp_path / "g.png", pixel_range=1.0, tile=None, tile_overlap=4,
                       use_self_ensemble=False, device=torch.device("cpu"), progress=False)
    g = Image.open(dst)
    assert g.mode.startswith("I;16") and g.size == (11, 9)          # 16-bit grey in -> 16-bit PNG out
    ref = restore_tensor(gray_model, to_float_tensor(arr)).clamp(0, 1)
    assert (read_image(dst) - ref).abs().max().item() <= 0.5 / 65535 + 1e-6
    rgb_model = build_model("rnan", "tiny").eval()                    # grey into a colour model: repeated,
    dst = restore_file(rgb_model, gray16, tmp_path / "c.png", pixel_range=1.0, tile=None, tile_overlap=4,
                       use_self_ensemble=False, device=torch.device("cpu"), progress=False)
    assert Image.open(dst).mode.startswith("I;16")                   # and the output back to 16-bit grey (luma)
    y = restore_tensor(rgb_model, to_float_tensor(arr).expand(3, -1, -1)).clamp(0, 1)
    luma = 0.299 * y[0] + 0.587 * y[1] + 0.114 * y[2]
    assert (read_image(dst)[0] - luma).abs().max().item() <= 0.5 / 65535 + 1e-6


def _linear(matrix, scale: int = 1) -> nn.Module:
    """A 1x1 conv with the given (C_out, C_in) matrix, then PixelShuffle(scale) of copies: exact known outputs."""
    m = torch.tensor(matrix, dtype=torch.float32)
    conv = nn.Conv2d(m.shape[1], m.shape[0] * scale * scale, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(m.repeat_interleave(scale * scale, 0)[:, :, None, None])
    return nn.Sequential(conv, nn.PixelShuffle(scale)).eval() if scale > 1 else nn.Sequential(conv).eval()


def _restore(model, src, dst, **kw):
    return restore_file(model, src, dst, pixel_range=1.0, tile=kw.get("tile"), tile_overlap=4,
                        use_self_ensemble=False, device=torch.device("cpu"), progress=False)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16_bit_colour_in_16_bit_out_without_8_bit_rounding(tmp_path, ext):
    import tifffile

    from restore_core.data.png16 import encode_png

    a = np.random.default_rng(0).integers(0, 65536, (10, 12, 3), dtype=np.uint16) | 1  # odd: off the 8-bit grid
    src = tmp_path / f"in{ext}"
    if ext == ".png":
        src.write_bytes(encode_png(a))
    else:
        tifffile.imwrite(src, a, photometric="rgb")
    identity = _linear(np.eye(3))
    dst = _restore(identity, src, tmp_path / f"out{ext}", tile=6)  # tiled too: the blend weights sum to 1
    got = (read_image(dst) * 65535).round().numpy().transpose(1, 2, 0).astype(np.uint16)
    assert np.abs(got.astype(int) - a).max() == 0  # every 16-bit level back


def test_alpha_carried_and_upscaled_with_matlab_bicubic_for_sr(tmp_path):
    from restore_core.data.image_file import load_image
    from restore_core.data.imresize import imresize_np

    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (9, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "in.png")
    dst = _restore(_linear(np.eye(3), scale=2), tmp_path / "in.png", tmp_path / "out.png")
    out = np.asarray(Image.open(dst))
    assert Image.open(dst).mode == "RGBA" and out.shape == (18, 14, 4)
    assert np.array_equal(out[:, :, :3], rgba[:, :, :3].repeat(2, 0).repeat(2, 1))  # nearest x2 of the colour
    want = np.round(np.clip(imresize_np(rgba[:, :, 3] / 255.0, scale=2), 0, 1) * 255)
    assert np.abs(out[:, :, 3].astype(int) - want).max() <= 1  # float32 vs float64 at .5 ties
    assert (want != rgba[:, :, 3].repeat(2, 0).repeat(2, 1)).mean() > 0.5  # (bicubic, not nearest)
    assert load_image(dst).alpha.shape == (1, 18, 14)


def test_cli_keeps_format_orientation_and_icc_and_refuses_16_bit_jpeg(tmp_path, capsys):
    from PIL import ImageCms

    from restore_core.data.png16 import encode_png

    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    torch.save(build_model("rnan", "tiny").state_dict(), weights)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "TestCam"  # stored 8x6, shown rotated: 6 wide, 8 high
    Image.fromarray(_save_rgb(tmp_path / "tmp.png", 6, 8)).save(tmp_path / "photo.jpg", exif=exif,
                                                                  icc_profile=srgb)
    (tmp_path / "deep.png").write_bytes(encode_png(np.zeros((6, 6, 3), np.uint16)))
    args = ["restore", str(weights), "--arch", "rnan", "--preset", "tiny", "--no-progress", "-o"]
    assert main(args + [str(tmp_path / "o"), str(tmp_path / "photo.jpg")]) == 0
    out = Image.open(tmp_path / "o" / "photo.jpg")                # JPEG in -> JPEG out (--format same)
    assert out.format == "JPEG" and out.size == (6, 8)            # upright, as a viewer shows the input
    assert 0x0112 not in out.getexif() and out.getexif()[0x010F] == "TestCam"
    assert out.info["icc_profile"] == srgb
    assert main(args + [str(tmp_path / "t"), str(tmp_path / "photo.jpg"), "--format", "tiff"]) == 0
    assert Image.open(tmp_path / "t" / "photo.tif").format == "TIFF"
    capsys.readouterr()
    assert main(args + [str(tmp_path / "j"), str(tmp_path / "deep.png"), "--format", "jpg"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "JPEG holds 8 bits per channel and the image is 16-bit" in err
    assert not (tmp_path / "j").exists()                          # refused before any work


def test_plain_state_dict_with_arch_and_preset(tmp_path, capsys):
    torch.manual_seed(1)
    net = build_model("rnan", "tiny")
    sd_path = tmp_path / "plain.pth"
    torch.save(net.state_dict(), sd_path)
    img = tmp_path / "a.png"
    _save_rgb(img, 8, 8)
    assert main(["restore", str(sd_path), str(img), "-o", str(tmp_path / "o"), "--arch", "rnan",
                 "--preset", "tiny", "--no-progress", "--suffix", "_x1"]) == 0
    assert (tmp_path / "o" / "a_x1.png").is_file()
    # without --arch/--preset a plain state dict is refused with a hint
    assert main(["restore", str(sd_path), str(img), "-o", str(tmp_path / "o2"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--arch and --preset" in err and len(err.strip().splitlines()) == 1


def test_unreadable_input_and_wrong_preset_are_one_line_errors(tmp_path, capsys):
    arch, preset = LIGHT
    weights = tmp_path / "w.pth"
    torch.save(random_official_state_dict(official_layout(arch, preset), seed=0), weights)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    rc = main(["restore", "--official", f"{arch}:{preset}", str(weights), str(bad), "-o", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "notes.png is not a readable image file" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()                   # nothing loaded or written before the check
    rc = main(["restore", "--official", f"{arch}:{preset}", str(weights), str(tmp_path / "missing.png"),
               "-o", str(tmp_path / "o")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    other = "rnan:color_dn" if arch == "rnan" else "mambair:light_sr_x3"
    img = tmp_path / "ok.png"
    _save_rgb(img, 6, 6)
    rc = main(["restore", "--official", other, str(weights), str(img), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and f"fits {arch}:{preset}" in err and len(err.splitlines()) == 1
    rc = main(["restore", str(weights), str(img), "-o", str(tmp_path / "o")])  # official file, no --official
    err = capsys.readouterr().err.strip()
    assert rc == 2 and f"add --official {arch}:{preset}" in err and len(err.splitlines()) == 1


def test_state_dict_of_another_preset_is_a_short_summary(tmp_path, capsys):
    """Thousands of mismatching keys become counts and three examples of each kind, on one line."""
    weights = tmp_path / "tiny.pt"
    torch.save(build_model("mambair", "tiny_sr_x2").state_dict(), weights)
    img = tmp_path / "in.png"
    _save_rgb(img, 6, 6)
    rc = main(["restore", str(weights), str(img), "--arch", "mambair", "--preset", "light_sr_x2",
               "-o", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and len(err) < 1000, err
    assert "tiny.pt does not fit mambair:light_sr_x2: " in err
    assert "504 missing keys (layers.0.residual_group.blocks.2.skip_scale, " in err
    assert "conv_first.weight: checkpoint [32, 3, 3, 3] vs model [60, 3, 3, 3]" in err


def test_inspect_cli(tmp_path, capsys):
    arch, preset = LIGHT
    sd = random_official_state_dict(official_layout(arch, preset), seed=0)
    weights = tmp_path / "w.pth"
    torch.save({"params": sd}, weights)
    assert main(["inspect", str(weights)]) == 0
    out = capsys.readouterr().out
    assert f"fits: {arch}:{preset}" in out
    assert f"parameters: {sum(t.numel() for t in sd.values()):,}" in out
    del sd[next(iter(sd))]
    torch.save(sd, weights)
    assert main(["inspect", str(weights)]) == 1
    assert f"closest: {arch}:{preset}" in capsys.readouterr().out
