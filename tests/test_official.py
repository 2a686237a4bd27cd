"""Official checkpoints: key layouts, strict loading, round trips, helpful errors, same numbers as the official code.

The official codes cannot run here (MambaIR needs CUDA kernels, both need their repositories), so the numbers are
checked against independent functional forwards of the official structures over the official state dicts
(tests/official_oracles.py), on random weights with the official key names and shapes.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch

from restore_core.models import list_archs
from restore_core.models.official import (OfficialLayoutError, from_official, inspect_checkpoint,
                                          list_official_formats, official_format, official_layout,
                                          read_official_checkpoint, shipped_layout, to_official)

from official_oracles import mambair_official_forward, random_official_state_dict, rnan_official_forward

FORMATS = [f.name for f in list_official_formats()]
SHIPPED = [f.name for f in list_official_formats() if f.layout_file is not None]
# derived-only layouts exercised end to end (the others differ from these only in channel / upsampler sizes)
DERIVED = [n for n in ("rnan:gray_dn", "rnan:sr_x4", "mambair:light_sr_x3", "mambair:light_sr_v2_x4",
                       "mambair:gray_car") if n in FORMATS]


pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors (see conftest)



@functools.lru_cache(maxsize=None)
def random_sd(name: str, seed: int = 0):
    """A random state dict with ``name``'s official key names and shapes (cached: 9-20M values)."""
    arch, preset = name.split(":")
    return random_official_state_dict(official_layout(arch, preset), seed=seed)


def _fmt(name):
    arch, preset = name.split(":")
    return official_format(arch, preset)


def test_every_shipped_layout_file_is_used():
    from restore_core.models.official import LAYOUT_DIR, _FORMATS
    files = {p.name for p in LAYOUT_DIR.glob("*.json")}
    assert files == {f.layout_file for f in _FORMATS.values() if f.layout_file}


@pytest.mark.parametrize("name", SHIPPED)
def test_derived_layout_equals_released_checkpoint_layout(name):
    fmt = _fmt(name)
    shipped = shipped_layout(fmt)
    derived = official_layout(fmt.arch, fmt.preset)
    assert list(derived) == list(shipped) or derived == shipped  # names and shapes; order where we can
    assert derived == shipped


def _equal_dicts(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_builds_a_consistent_layout(name):
    fmt = _fmt(name)
    layout = official_layout(fmt.arch, fmt.preset)
    assert len(layout) > 10 and all(all(d > 0 for d in s) for s in layout.values())
    assert official_format(fmt.arch, fmt.preset).pixel_range == (255.0 if fmt.arch == "rnan" else 1.0)


@pytest.mark.parametrize("name", SHIPPED + DERIVED)
def test_random_official_state_dict_loads_strictly_and_round_trips(name):
    fmt = _fmt(name)
    sd = random_sd(name)
    model = from_official(fmt.arch, fmt.preset, {"params": sd})
    assert not model.training
    assert _equal_dicts(to_official(model), sd)


def test_params_ema_is_preferred_and_module_prefix_stripped():
    a = random_sd("rnan:gray_dn")
    b = {k: v + 1 for k, v in a.items()}
    sd, note = read_official_checkpoint({"params": a, "params_ema": b})
    assert note.startswith("'params_ema'") and "preferred" in note
    assert _equal_dicts(sd, b)
    sd, note = read_official_checkpoint({"module." + k: v for k, v in a.items()})
    assert note == "raw state dict" and _equal_dicts(sd, a)


def test_checkpoint_file_loads_with_weights_only(tmp_path):
    sd = random_sd("rnan:gray_dn")
    path = tmp_path / "RNAN_CAR.pt"
    torch.save(sd, path)
    assert _equal_dicts(to_official(from_official("rnan", "car", path)), sd)
    legacy = tmp_path / "RNAN_CAR_legacy.pt"  # the pre-1.6 (non-zip) format RNAN's 2019 files use
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    assert _equal_dicts(read_official_checkpoint(legacy)[0], sd)
    bad = tmp_path / "not_a_checkpoint.pth"
    bad.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        from_official("rnan", "car", bad)
    with pytest.raises(FileNotFoundError):
        from_official("rnan", "car", tmp_path / "missing.pth")


def test_wrong_preset_names_first_bad_key_and_the_fitting_preset():
    sd = random_sd("rnan:sr_x3")
    with pytest.raises(OfficialLayoutError) as err:
        from_official("rnan", "sr_x2", sd)
    msg = str(err.value)
    assert "'tail.0.0.weight'" in msg and "(576, 64, 3, 3)" in msg and "fits rnan:sr_x3" in msg
    sd = dict(random_sd("rnan:color_dn"))
    with pytest.raises(OfficialLayoutError, match=r"'head.0.weight'.*fits rnan:color_dn / rnan:demosaic"):
        from_official("rnan", "gray_dn", sd)
    del sd["tail.0.bias"]
    with pytest.raises(OfficialLayoutError, match=r"missing key 'tail.0.bias'.*closest: rnan:color_dn"):
        from_official("rnan", "color_dn", sd)


def test_inspect_names_arch_preset_and_parameter_count():
    rep = inspect_checkpoint(random_sd("rnan:color_dn"))
    assert [f.name for f in rep.exact] == ["rnan:color_dn", "rnan:demosaic"]
    assert rep.n_params == 8_959_555  # the official RNAN colour-denoising module's count
    assert "parameters: 8,959,555" in rep.summary()


# ----------------------------------------------------------------------------------------- same numbers ----
def _residual_error(ours, theirs, x):
    """Max |difference| relative to the magnitude of the predicted residual (not of the image)."""
    return ((ours - theirs).abs().max() / (theirs - x).abs().max()).item()


@pytest.mark.parametrize("preset,scale,channels", [("color_dn", 1, 3), ("sr_x4", 4, 3)])
def test_rnan_matches_official_forward(preset, scale, channels):
    sd = random_sd(f"rnan:{preset}")
    model = from_official("rnan", preset, sd)
    x = torch.rand(1, channels, 10, 12) * 255.0       # official RNAN: [0, 255], even sizes
    with torch.no_grad():
        ours, theirs = model(x), rnan_official_forward(sd, x, scale)
    if scale == 1:
        assert _residual_error(ours, theirs, x) < 1e-4
    else:
        assert (ours - theirs).abs().max().item() < 1e-4 * theirs.abs().max().item()


def test_rnan_softmax_axis_matters():
    sd = random_sd("rnan:gray_dn")
    x = torch.rand(1, 1, 10, 12) * 255.0
    paper = from_official("rnan", "gray_dn", sd)
    for m in paper.modules():
        if hasattr(m, "softmax_over"):
            m.softmax_over = "key"
    with torch.no_grad():
        err = _residual_error(paper(x), rnan_official_forward(sd, x), x)
    assert err > 1e-3  # the official dim=1 switch is what makes the test above pass


def test_rnan_sr_drifted_meanshift_is_folded_exactly():
    sd = dict(random_sd("rnan:sr_x3"))
    g = torch.Generator().manual_seed(0)
    for k in ("sub_mean.weight", "add_mean.weight"):
        sd[k] = sd[k] + 0.02 * torch.randn(sd[k].shape, generator=g)
    for k in ("sub_mean.bias", "add_mean.bias"):
        sd[k] = sd[k] + torch.randn(sd[k].shape, generator=g)
    model = from_official("rnan", "sr_x3", sd)
    x = torch.rand(1, 3, 10, 12) * 255.0
    with torch.no_grad():
        theirs = rnan_official_forward(sd, x, 3)
        assert (model(x) - theirs).abs().max().item() < 1e-4 * theirs.abs().max().item()
        back = to_official(model)  # identity MeanShift + folded convs: the same function in the official code
        assert torch.equal(back["sub_mean.weight"][..., 0, 0], torch.eye(3))
        assert (rnan_official_forward(back, x, 3) - theirs).abs().max().item() < 1e-4 * theirs.abs().max().item()


@pytest.mark.skipif("mambair" not in list_archs(), reason="restore_core.models.mambair not registered yet")
@pytest.mark.parametrize("preset,scale,channels", [("light_sr_x2", 2, 3), ("light_sr_v2_x3", 3, 3),
                                                   ("gray_car", 1, 1), ("classic_sr_x4", 4, 3),
                                                   ("color_dn", 1, 3)])
def test_mambair_matches_official_forward(preset, scale, channels):
    sd = random_sd(f"mambair:{preset}")
    model = from_official("mambair", preset, sd)
    x = torch.rand(1, channels, 5, 7)  # non-square: the column-major scans differ from the row-major ones
    with torch.no_grad():
        ours, theirs = model(x), mambair_official_forward(sd, x, scale)
    tol = 1e-4 * theirs.abs().max().item()
    assert ours.shape == theirs.shape == (1, channels, 5 * scale, 7 * scale)
    assert (ours - theirs).abs().max().item() < tol


@pytest.mark.parametrize("name,count", [("mambair:classic_sr_x2", 20_421_863), ("mambair:light_sr_x2", 1_363_320),
                                        ("mambair:light_sr_v2_x2", 905_016), ("mambair:color_dn", 15_777_507),
                                        ("rnan:color_dn", 8_959_555)])
def test_layout_parameter_counts_match_the_official_modules(name, count):
    if name not in FORMATS:
        pytest.skip(f"{name} not registered")
    arch, preset = name.split(":")
    assert sum(math.prod(s) for s in official_layout(arch, preset).values()) == count


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: .*rnan:color_dn"):
        official_format("rnan", "tiny")
