"""``restore-core fuse`` and restore_core.fusion_inference: the released FusionMamba pipeline (grey IR, visible Y,
clip + stretch, recolour with the visible Cr / Cb), any size, checked end to end against the oracle of the
released network (tests/official_oracles.py) on a small official-style configuration."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from restore_core.cli import main
from restore_core.data.io import read_image
from restore_core.fusion_inference import fuse_images, rgb_to_ycrcb, stretch, ycrcb_to_rgb
from restore_core.models import build_model
from restore_core.models import official as O

from official_oracles import fusion_mamba_official_forward, fusion_mamba_official_layout, random_official_state_dict

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(embed_dim=16, depths=(1, 1, 1), decoder_depths=(1, 1, 1), mlp_ratio=4.0, d_state=8, scan_backend="ref")


@pytest.fixture
def small_official(monkeypatch, tmp_path):
    """A small official-style format (``fusion_mamba:tiny`` with the released switches) and a weights file."""
    fmt = O.OfficialFormat("fusion_mamba", "tiny", "test-only small VSSM_Fusion", {**O._FUSION_SW, **SMALL})
    monkeypatch.setitem(O._FORMATS, ("fusion_mamba", "tiny"), fmt)
    O._layout_cached.cache_clear()
    sd = random_official_state_dict(fusion_mamba_official_layout((1, 1, 1), (1, 1, 1), 16, 8), seed=0)
    path = tmp_path / "fusionmamba.pth"
    torch.save(sd, path)
    yield sd, path
    O._layout_cached.cache_clear()


def _save(path, arr):
    Image.fromarray(arr).save(path)
    return path


def _images(tmp_path, h, w, seed=0):
    rng = np.random.default_rng(seed)
    ir = (rng.random((h, w)) * 255).astype(np.uint8)
    vis = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    return ir, vis


def test_ycrcb_matches_opencv_formulas_and_round_trips():
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)                # pure red
    y, cr, cb = rgb_to_ycrcb(rgb)
    assert y.item() == pytest.approx(0.299) and cr.item() == pytest.approx(0.713 * 0.701 + 128 / 255)
    assert cb.item() == pytest.approx(0.564 * -0.299 + 128 / 255)
    x = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    assert (ycrcb_to_rgb(*rgb_to_ycrcb(x)) - x).abs().max() < 2e-3   # OpenCV's 3-digit coefficients
    assert torch.equal(stretch(torch.full((1, 2, 2), 0.3)), torch.full((1, 2, 2), 0.3))


def test_fuse_images_recolours_with_the_visible_chroma():
    model = build_model("fusion_mamba", "tiny", scan_backend="ref").eval()
    g = torch.Generator().manual_seed(0)
    ir, vis = torch.rand(1, 13, 21, generator=g), torch.rand(3, 13, 21, generator=g)   # any size
    out = fuse_images(model, ir, vis, vis_8bit=False)
    y = rgb_to_ycrcb(vis)[0]
    with torch.no_grad():
        fused = stretch(model(ir[None], y[None])[0].clamp(0, 1))
    assert out.shape == (3, 13, 21)
    oy, ocr, ocb = rgb_to_ycrcb(out)
    _, cr, cb = rgb_to_ycrcb(vis)
    inside = (out > 0).all(0) & (out < 1).all(0)                     # pixels the final clip leaves alone
    assert (oy - fused)[:, inside].abs().max() < 2e-3 and (ocr - cr)[:, inside].abs().max() < 2e-3
    assert fuse_images(model, ir, y).shape == (1, 13, 21)            # grey visible: grey output
    with pytest.raises(ValueError, match="not registered"):
        fuse_images(model, ir, vis[:, :12])


def test_cli_fuse_released_weights_equal_the_released_pipeline(tmp_path, small_official, capsys):
    sd, weights = small_official
    ir, vis = _images(tmp_path, 32, 48)
    out = tmp_path / "out"
    rc = main(["fuse", "--official", "fusion_mamba:tiny", str(weights), "--ir", str(_save(tmp_path / "a.png", ir)),
               "--vis", str(_save(tmp_path / "scene.png", vis)), "-o", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    result = read_image(out / "scene.png")
    # the released pipeline, step by step, around the oracle of the released network: model(vis_Y, ir)
    vis_t = torch.from_numpy(vis).permute(2, 0, 1).double() / 255
    vis_y = (torch.round(rgb_to_ycrcb(vis_t)[0] * 255) / 255).float()
    ir_t = torch.from_numpy(ir)[None].float() / 255
    with torch.no_grad():
        f = fusion_mamba_official_forward(sd, vis_y[None], ir_t[None])[0].clamp(0, 1)
    f = (f - f.min()) / (f.max() - f.min())
    _, cr, cb = rgb_to_ycrcb(vis_t)
    expected = ycrcb_to_rgb(f.double(), cr, cb).clamp(0, 1).float()
    assert result.shape == (3, 32, 48)
    assert (result - expected).abs().max() <= 0.5 / 255 + 1e-4       # 8-bit rounding of the written file


def test_cli_fuse_folders_any_size_and_errors(tmp_path, small_official, capsys):
    _, weights = small_official
    ir_dir, vis_dir = tmp_path / "ir", tmp_path / "vis"
    ir_dir.mkdir()
    vis_dir.mkdir()
    for i, (h, w) in enumerate([(30, 45), (17, 23)]):                # not multiples of 16: padded and cropped
        ir, vis = _images(tmp_path, h, w, seed=i)
        _save(ir_dir / f"{i:02d}.png", ir)
        _save(vis_dir / f"{i:02d}.png", vis[..., 0])                  # grey visible images
    out = tmp_path / "out"
    args = ["fuse", "--official", "fusion_mamba:tiny", str(weights), "--ir", str(ir_dir), "--vis", str(vis_dir),
            "-o", str(out), "--device", "cpu"]
    assert main(args) == 0
    assert read_image(out / "00.png").shape == (1, 30, 45) and read_image(out / "01.png").shape == (1, 17, 23)
    _save(vis_dir / "02.png", vis[..., 0])
    capsys.readouterr()
    assert main(args) == 2
    assert "2 infrared images" in capsys.readouterr().err
    assert main(["restore", "--official", "fusion_mamba:tiny", str(weights), str(ir_dir), "-o", str(out)]) == 2
    assert "restore-core fuse" in capsys.readouterr().err


def test_inspect_points_to_fuse(tmp_path, small_official, capsys):
    _, weights = small_official
    assert main(["inspect", str(weights)]) == 0
    text = capsys.readouterr().out
    assert "fuse with: restore-core fuse --official fusion_mamba:tiny" in text
    assert "frozen all-ones LDC base_mask tensors" in text
