"""Datasets: the embedded photos, on-the-fly degradation (aligned SR crops, seeded noise, determinism), paired
folders, fusion pairs, and bad input."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from restore_core.data import (DegradedDataset, FusionFolderDataset, ImageFormatError, PairedFolderDataset, SyntheticFusionDataset,
                               bicubic_downsample, dihedral, embedded_images, embedded_paths, ihc_stain_pair,
                               image_seed, load_manifest, read_image, verify_embedded)
from restore_core.data.embedded import EMBEDDED_DIR


# --- embedded -----------------------------------------------------------------------------------------------------
def test_embedded_manifest_split_and_files():
    m = load_manifest()
    train, test = embedded_paths("train"), embedded_paths("test")
    assert len(train) == 29 and len(test) == 8
    assert verify_embedded() == []
    sources = {i["file"]: i["source"] for i in m["images"]}
    assert not {sources[p.name] for p in train} & {sources[p.name] for p in test}  # split by source photo
    total = sum(p.stat().st_size for p in train + test)
    assert total < 4e6
    attribution = (EMBEDDED_DIR / "ATTRIBUTION.md").read_text()
    assert all(s in attribution for s in set(sources.values()))
    with pytest.raises(ValueError, match="split"):
        embedded_paths("val")


def test_embedded_images_rgb_and_gray():
    rgb = embedded_images("test")
    gray = embedded_images("test", gray=True)
    assert all(i.shape == (192, 192, 3) and i.dtype == np.uint8 for i in rgb)
    want = np.round(rgb[0].astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    assert gray[0].shape == (192, 192) and np.array_equal(gray[0], want)


def test_verify_embedded_detects_tampering(tmp_path, monkeypatch):
    import restore_core.data.embedded as emb

    fake = tmp_path / "embedded"
    fake.mkdir()
    m = load_manifest()
    for item in m["images"][:2]:
        (fake / item["file"]).write_bytes((EMBEDDED_DIR / item["file"]).read_bytes())
    (fake / m["images"][1]["file"]).write_bytes(b"changed")
    monkeypatch.setattr(emb, "EMBEDDED_DIR", fake)
    problems = emb.verify_embedded()
    assert any("sha256 mismatch" in p for p in problems) and any("missing" in p for p in problems)


# --- degraded datasets --------------------------------------------------------------------------------------------
def test_sr_crops_are_aligned_with_whole_image_lr():
    ds = DegradedDataset("embedded:test", "sr_x4", patch_size=32, seed=3)
    s = ds[2]
    assert s["lq"].shape == (3, 8, 8) and s["hq"].shape == (3, 32, 32)
    hq_full = read_image(ds.paths[2])
    lq_full = bicubic_downsample(hq_full, 4)
    # find the crop position from the HQ patch, then check the LQ patch is the same window of the whole LR
    hits = [(t, l) for t in range(0, 192 - 31, 4) for l in range(0, 192 - 31, 4)
            if torch.equal(hq_full[:, t:t + 32, l:l + 32], s["hq"])]
    assert len(hits) == 1
    t, l = hits[0]
    assert torch.equal(s["lq"], lq_full[:, t // 4:t // 4 + 8, l // 4:l // 4 + 8])


def test_determinism_and_epochs():
    a = DegradedDataset("embedded:train", "awgn_25", patch_size=40, augment=True, seed=5)
    b = DegradedDataset("embedded:train", "awgn_25", patch_size=40, augment=True, seed=5)
    for i in (0, 7):
        sa, sb = a[i], b[i]
        assert torch.equal(sa["lq"], sb["lq"]) and torch.equal(sa["hq"], sb["hq"])
    first = a[0]["lq"].clone()
    a.set_epoch(1)
    assert not torch.equal(first, a[0]["lq"])
    c = DegradedDataset("embedded:train", "awgn_25", patch_size=40, augment=True, seed=6)
    assert not torch.equal(first, c[0]["lq"])


def test_eval_noise_is_per_image_seed_and_unclipped():
    ds = DegradedDataset("embedded:test", "awgn_50", seed=0)
    s = ds[0]
    gen = torch.Generator().manual_seed(image_seed(0, s["name"]))
    want = s["hq"] + torch.randn(s["hq"].shape, generator=gen) * (50 / 255)
    assert torch.equal(s["lq"], want)
    assert s["lq"].min() < 0 or s["lq"].max() > 1


def test_gray_mosaic_jpeg_blur_and_repeat():
    g = DegradedDataset("embedded:test", "awgn_15", channels=1)[0]
    assert g["lq"].shape == (1, 192, 192)
    gray_file = embedded_images("test", gray=True)[0]  # the same definition as the embedded gray variant
    assert torch.equal(g["hq"][0], torch.from_numpy(gray_file.astype(np.float32) / 255))
    m = DegradedDataset("embedded:test", "mosaic")[0]
    assert int((m["lq"] != 0).sum(0).max()) == 1
    with pytest.raises(ImageFormatError, match="RGB"):
        DegradedDataset("embedded:test", "mosaic", channels=1)[0]
    j = DegradedDataset("embedded:test", "jpeg_10", patch_size=64, augment=True)
    assert j[3]["lq"].shape == (3, 64, 64)
    r = DegradedDataset("embedded:test", "gblur_1.5", repeat=3)
    assert len(r) == 24 and r[8]["name"] == r[0]["name"] and r.cache
    u = DegradedDataset("embedded:test", "gblur_1.5", repeat=3, cache=False)
    assert torch.equal(u[8]["lq"], r[8]["lq"]) and not u._hq and not u._lq


def test_dihedral_group():
    x = torch.arange(12.0).view(1, 3, 4)
    outs = [dihedral(x, k) for k in range(8)]
    assert len({tuple(o.flatten().tolist()) + tuple(o.shape) for o in outs}) == 8
    assert torch.equal(dihedral(dihedral(x, 1), 3), x)


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image files"):
        DegradedDataset(tmp_path, "sr_x2")
    with pytest.raises(FileNotFoundError, match="not found"):
        DegradedDataset(tmp_path / "nope", "sr_x2")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ImageFormatError, match="smaller than the required 48x48"):
        DegradedDataset(tmp_path, "sr_x2", patch_size=48)[0]
    with pytest.raises(ValueError, match="multiple of the SR scale"):
        DegradedDataset(tmp_path, "sr_x3", patch_size=32)
    with pytest.raises(ValueError, match="unknown degradation"):
        DegradedDataset(tmp_path, "blurry")
    odd = DegradedDataset(tmp_path, "sr_x3")[0]  # 20x30 -> mod-cropped to 18x30
    assert odd["hq"].shape == (3, 18, 30) and odd["lq"].shape == (3, 6, 10)


# --- paired folders -----------------------------------------------------------------------------------------------
def _write_pairs(root, names, scale, size=(24, 30)):
    rng = np.random.default_rng(0)
    (root / "HR").mkdir()
    (root / "LR").mkdir()
    for n in names:
        hq = rng.integers(0, 256, (size[0] * scale + 1, size[1] * scale + 1, 3), dtype=np.uint8)  # odd HR size
        Image.fromarray(hq).save(root / "HR" / f"{n}.png")
        Image.fromarray(hq[::scale, ::scale][: size[0], : size[1]]).save(root / "LR" / f"{n}x{scale}.png")


def test_paired_folder(tmp_path):
    _write_pairs(tmp_path, ["baby", "bird"], 2)
    ds = PairedFolderDataset(tmp_path / "HR", tmp_path / "LR", scale=2, lq_suffix="x2")
    s = ds[1]
    assert s["name"] == "bird" and s["lq"].shape == (3, 24, 30) and s["hq"].shape == (3, 48, 60)
    assert torch.equal(s["hq"][:, ::2, ::2], s["lq"])
    t = PairedFolderDataset(tmp_path / "HR", tmp_path / "LR", scale=2, lq_suffix="x2", patch_size=16,
                            augment=True, seed=1)
    c = t[0]
    assert c["lq"].shape == (3, 8, 8)
    # alignment survives flips/rotations (which move the subsampling phase of this nearest-neighbour LR)
    assert any(torch.equal(c["hq"][:, py::2, px::2], c["lq"]) for py in (0, 1) for px in (0, 1))
    (tmp_path / "LR" / "birdx2.png").unlink()
    with pytest.raises(FileNotFoundError, match="unpaired images.*bird"):
        PairedFolderDataset(tmp_path / "HR", tmp_path / "LR", scale=2, lq_suffix="x2")


def test_paired_folder_size_mismatch(tmp_path):
    _write_pairs(tmp_path, ["a"], 2)
    with pytest.raises(ImageFormatError, match="does not match"):
        PairedFolderDataset(tmp_path / "HR", tmp_path / "LR", scale=4, lq_suffix="x2")[0]


# --- fusion -------------------------------------------------------------------------------------------------------
def test_multi_focus_pair_is_complementary():
    s = SyntheticFusionDataset("embedded:test", "multi_focus", seed=0)[1]
    a, b, ref = s["a"], s["b"], s["ref"]
    assert a.shape == b.shape == ref.shape == (1, 192, 192)
    sharp_a = (a == ref)
    sharp_b = (b == ref)
    assert float((sharp_a | sharp_b).float().mean()) > 0.99  # every pixel is sharp in one source
    assert 0.05 < float(sharp_a.float().mean()) < 0.95


def test_multi_exposure_and_ir_vis():
    e = SyntheticFusionDataset("embedded:test", "multi_exposure")[0]
    assert e["a"].shape == (3, 192, 192) and bool((e["a"] <= e["ref"] + 1e-6).all())
    assert bool((e["b"] >= e["ref"] - 1e-6).all())
    d1 = SyntheticFusionDataset("embedded:test", "ir_vis", patch_size=96, seed=2)
    d2 = SyntheticFusionDataset("embedded:test", "ir_vis", patch_size=96, seed=2)
    s1, s2 = d1[4], d2[4]
    assert s1["a"].shape == (1, 96, 96) and torch.equal(s1["a"], s2["a"]) and torch.equal(s1["b"], s2["b"])
    with pytest.raises(ValueError, match="kind"):
        SyntheticFusionDataset("embedded:test", "thermal")


def test_ihc_stain_pair():
    h, d = ihc_stain_pair()
    assert h.shape == d.shape == (1, 512, 512)
    assert float(h.min()) == 0.0 and float(h.max()) == 1.0


def test_manifest_records_sha256_of_every_file():
    m = json.loads((EMBEDDED_DIR / "manifest.json").read_text())
    assert sorted(m["splits"]["train"] + m["splits"]["heldout"]) == sorted(i["file"] for i in m["images"])
    assert all(len(i["sha256"]) == 64 for i in m["images"])


def test_embedded_splits_held_out_by_photo():
    """test (the quick profile's 8) is part of heldout (the cpu profile's 16); no held-out crop shares a photo with a
    training crop; all = train + heldout."""
    from restore_core.data import describe_images, describe_split, embedded_paths, load_manifest

    source = {i["file"]: i["source"] for i in load_manifest()["images"]}
    train, test, heldout = (embedded_paths(s) for s in ("train", "test", "heldout"))
    assert (len(train), len(test), len(heldout)) == (29, 8, 16)
    assert set(test) < set(heldout) and not set(train) & set(heldout)
    assert not {source[p.name] for p in train} & {source[p.name] for p in heldout}
    assert sorted(embedded_paths("all")) == sorted(train + heldout)
    assert describe_split("heldout") == "16 held-out crops 192x192 of 5 test photos"
    assert describe_split("train") == "29 train crops 192x192 of 16 training photos"
    assert describe_images("embedded:test") == "the embedded test split (8 test crops 192x192 of 5 test photos)"
    with pytest.raises(ValueError, match="split must be one of"):
        embedded_paths("val")


def test_fusion_folder_pairs(tmp_path):
    rng = np.random.default_rng(0)
    for d in ("ir", "vi"):
        (tmp_path / d).mkdir()
    for n in ("00001N", "00002D"):
        Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8)).save(tmp_path / "ir" / f"{n}.png")
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "vi" / f"{n}.png")
    ds = FusionFolderDataset(tmp_path / "ir", tmp_path / "vi", patch_size=32, augment=True, seed=1)
    s = ds[1]
    assert s["name"] == "00002D" and s["a"].shape == s["b"].shape == (1, 32, 32)
    full = FusionFolderDataset(tmp_path / "ir", tmp_path / "vi")[0]
    vi = np.asarray(Image.open(tmp_path / "vi" / "00001N.png")).astype(np.float64)
    assert torch.allclose(full["b"][0].double(), torch.from_numpy(np.round(vi @ [0.299, 0.587, 0.114]) / 255),
                          atol=1e-6)
    Image.fromarray(np.zeros((30, 50), np.uint8)).save(tmp_path / "ir" / "00003N.png")
    with pytest.raises(FileNotFoundError, match="unpaired.*00003N"):
        FusionFolderDataset(tmp_path / "ir", tmp_path / "vi")
    Image.fromarray(np.zeros((30, 50), np.uint8)).save(tmp_path / "vi" / "00003N.png")
    Image.fromarray(np.zeros((31, 50), np.uint8)).save(tmp_path / "ir" / "00003N.png")
    with pytest.raises(ImageFormatError, match="differ in size"):
        FusionFolderDataset(tmp_path / "ir", tmp_path / "vi")[2]


def test_validation_sets_do_not_depend_on_the_training_seed():
    """A test set is the same for every run: the noise of a denoising validation set (and the synthetic fusion
    pairs) comes from a fixed seed, while the training set's crops and noise follow ``manual_seed``."""
    from restore_core.train import load_config
    from restore_core.train.builders import build_train_dataset, build_val_dataset

    for config in ("rnan/color_dn", "fusion_mamba/ir_vis"):
        a, b = (load_config(config, profile="quick", overrides=[f"manual_seed={s}"]) for s in (1, 2))
        va, vb = build_val_dataset(a)[0], build_val_dataset(b)[0]
        assert va.keys() == vb.keys() and all(torch.equal(va[k], vb[k]) for k in va if torch.is_tensor(va[k]))
    ta, tb = build_train_dataset(a)[0], build_train_dataset(b)[0]
    assert any(not torch.equal(ta[k], tb[k]) for k in ta if torch.is_tensor(ta[k]))
