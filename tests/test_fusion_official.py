"""FusionMamba's released checkpoints: key layout, parameter arithmetic, strict loading, round trips, and the same
numbers as the released network (tests/official_oracles.py, written from millieXie/FusionMamba's models/).

Full-size presets are only counted (meta device / shapes); forwards use a small official-style configuration
(C=16, one block per stage, three levels) registered for the test as an extra official format.
"""
from __future__ import annotations

import math

import pytest
import torch

from restore_core.models import build_model
from restore_core.models import official as O
from restore_core.models.official import (OfficialLayoutError, from_official, inspect_checkpoint, official_layout,
                                          to_official)

from official_oracles import (fusion_mamba_official_forward, fusion_mamba_official_layout,
                              random_official_state_dict)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(embed_dim=16, depths=(1, 1, 1), decoder_depths=(1, 1, 1), mlp_ratio=4.0, d_state=8, scan_backend="ref")
SMALL_ORACLE = dict(depths=(1, 1, 1), depths_decoder=(1, 1, 1), embed_dim=16, d_state=8)
# official-only entries: one base_mask per LDC (1 per DVSS block, 2 per DFFM) + 4 x (lastconv weight, bias)
N_KEYS = {"ir_vis": (1039, 46), "ct_mri": (1039, 46), "ct_mri_tiny": (559, 30)}


@pytest.fixture
def small_format(monkeypatch):
    """``fusion_mamba:tiny`` made an official format: the released switches on a C=16, 1-1-1 network whose
    CMFM d_state (8) differs from the DVSS blocks' (always 16 in the released code)."""
    fmt = O.OfficialFormat("fusion_mamba", "tiny", "test-only small VSSM_Fusion", {**O._FUSION_SW, **SMALL})
    monkeypatch.setitem(O._FORMATS, ("fusion_mamba", "tiny"), fmt)
    O._layout_cached.cache_clear()
    yield fmt
    O._layout_cached.cache_clear()


def _small_sd(seed=0):
    return random_official_state_dict(fusion_mamba_official_layout(**SMALL_ORACLE), seed=seed)


def _pair(n=2, h=32, w=48, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, h, w, generator=g), torch.rand(n, 1, h, w, generator=g)


def _rel_error(ours, theirs, vis, ir):
    """Max |difference| relative to the decoder's part of the output (the output minus 2 (vis + ir))."""
    return ((ours - theirs).abs().max() / (theirs - 2 * (vis + ir)).abs().max()).item()


# ----------------------------------------------------------------------------------- layout and counts ----
@pytest.mark.parametrize("preset,args", [("ir_vis", {}), ("ct_mri", {}),
                                         ("ct_mri_tiny", dict(depths=(2, 2, 1, 2), depths_decoder=(2, 1, 2, 2)))])
def test_layout_equals_the_released_modules(preset, args):
    ours = official_layout("fusion_mamba", preset)
    released = fusion_mamba_official_layout(**args)
    assert ours == released                                  # names and shapes, every key
    assert (len(ours), len(O._fusion_unused_layout(O._build("fusion_mamba", preset, "meta")))) == N_KEYS[preset]


@pytest.mark.parametrize("preset,total,ours,n_masks,masks", [
    ("ir_vis", 225_419_541, 164_146_245, 38, 60_880_896),
    ("ct_mri_tiny", 141_934_037, 101_894_405, 22, 39_647_232)])
def test_parameter_arithmetic(preset, total, ours, n_masks, masks):
    layout = official_layout("fusion_mamba", preset)
    assert sum(math.prod(s) for s in layout.values()) == total
    model = O._build("fusion_mamba", preset, "meta")
    assert sum(p.numel() for p in model.parameters()) == ours
    base = {k: s for k, s in layout.items() if k.endswith("base_mask")}
    last = {k: s for k, s in layout.items() if ".lastconv." in k}
    assert len(base) == n_masks and sum(math.prod(s) for s in base.values()) == masks
    assert len(last) == 8 and sum(math.prod(s) for s in last.values()) == 392_400
    assert total == ours + masks + 392_400


def test_ir_vis_module_by_module():
    model = O._build("fusion_mamba", "ir_vis", "meta")
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(model.patch_embed_vis) == n(model.patch_embed_ir) == 1824
    assert [n(s) for s in model.encoder] == [549_152, 2_029_112, 35_016_660, 30_456_008]
    assert [n(s) for s in model.decoder] == [30_456_008, 35_016_660, 2_029_112, 549_152]
    assert [n(f) for f in model.fusion] == [326_789, 1_224_965, 4_735_493, 18_613_253]


def test_mapping_is_by_name_with_no_tensor_transformed():
    model = O._build("fusion_mamba", "ir_vis", "meta")
    entries = O._entries("fusion_mamba", model)
    assert len(entries) == 993 and all(e.to_ours is O._same and e.to_official is O._same for e in entries)
    names = {e.ours: e.official for e in entries}
    # official branch 1 is the visible image (train.py and test.py both call model(vis, ir))
    assert names["patch_embed_vis.proj.weight"] == "patch_embed1.proj.weight"
    assert names["fusion.2.cmfm.cross.in_proj_vis.weight"] == "Cross_block.2.self_attention_cross.in_proj1.weight"
    assert names["fusion.2.dfem.texture_ir.mask"] == "Cross_block.2.Cross_layer.texture_enhance2.learnable_mask"
    assert names["expands.0.expand.weight"] == "layers_up.1.upsample.expand.weight"


# --------------------------------------------------------------------------------- loading, round trips ----
def test_round_trip_and_complete_official_state_dict(small_format):
    sd = _small_sd()
    model = from_official("fusion_mamba", "tiny", {"state_dict": sd})
    unused = set(O._fusion_unused_layout(model))
    assert len(unused) == (3 + 3 + 2 * 3) + 2 * 3  # base_mask: 3 encoder + 3 decoder blocks, 2 per DFFM; lastconv
    kept = to_official(model, complete=False)
    assert set(kept) == set(sd) - unused and all(torch.equal(kept[k], sd[k]) for k in kept)
    full = to_official(model)
    assert list(full) == list(kept) + [k for k in O.official_layout("fusion_mamba", "tiny") if k in unused]
    assert all(torch.equal(full[k], sd[k]) for k in full if ".lastconv." not in k)   # base_masks: ones
    assert all(not full[k].any() for k in unused if ".lastconv." in k)                # lastconv: zeros


def test_base_mask_that_is_not_all_ones_is_named(small_format):
    sd = _small_sd()
    sd["Cross_block.1.Cross_layer.texture_enhance2.base_mask"][0, 0, 1, 1] = 0.5
    with pytest.raises(OfficialLayoutError, match=r"'Cross_block\.1\.Cross_layer\.texture_enhance2\.base_mask' "
                                                  r"is not all ones \(1 of 9216"):
        from_official("fusion_mamba", "tiny", sd)
    del sd["Cross_block.1.Cross_layer.Diff_enhance.lastconv.bias"]
    with pytest.raises(OfficialLayoutError, match="missing key 'Cross_block.1.Cross_layer.Diff_enhance.lastconv"):
        from_official("fusion_mamba", "tiny", sd)


def test_inspect_explains_the_parameter_count():
    layout = official_layout("fusion_mamba", "ir_vis")
    sd = {k: torch.empty(s, device="meta") for k, s in layout.items()}   # shapes only: 225M values, no memory
    rep = inspect_checkpoint(sd)
    assert [f.name for f in rep.exact] == ["fusion_mamba:ir_vis", "fusion_mamba:ct_mri"]
    text = rep.summary()
    assert "parameters: 225,419,541" in text
    assert ("= 164,146,245 loaded into fusion_mamba:ir_vis + 60,880,896 in 38 frozen all-ones LDC base_mask "
            "tensors + 392,400 in 8 Differential_enhance.lastconv tensors") in text
    tiny = inspect_checkpoint({k: torch.empty(s, device="meta")
                               for k, s in official_layout("fusion_mamba", "ct_mri_tiny").items()})
    assert "= 101,894,405 loaded into fusion_mamba:ct_mri_tiny + 39,647,232 in 22 frozen" in tiny.summary()


# ------------------------------------------------------------------------------------------ same numbers ----
def test_whole_network_matches_the_released_forward(small_format):
    sd = _small_sd()
    model = from_official("fusion_mamba", "tiny", sd)
    assert model.skip_wiring == "official" and model.input_residual == "official"
    vis, ir = _pair()                       # 32x48: the deepest level is 2x3 (odd: the ES2D zero padding)
    with torch.no_grad():
        ours = model(ir, vis)               # ours: model(ir, vis); released: model(vis, ir)
        theirs = fusion_mamba_official_forward(sd, vis, ir)
    assert ours.shape == theirs.shape == (2, 1, 32, 48)
    assert _rel_error(ours, theirs, vis, ir) < 1e-4


@pytest.mark.parametrize("switch", [dict(skip_wiring="paper"), dict(cmfm_gate="paper"), dict(input_residual="mean"),
                                    "swap_inputs"])
def test_each_released_switch_is_needed(small_format, switch):
    sd = _small_sd()
    model = from_official("fusion_mamba", "tiny", sd)
    vis, ir = _pair()
    with torch.no_grad():
        theirs = fusion_mamba_official_forward(sd, vis, ir)
        if switch == "swap_inputs":
            ours = model(vis, ir)
        else:
            (key, value), = switch.items()
            if key == "cmfm_gate":
                for f in model.fusion:
                    f.cmfm.cross.gate = value
            else:
                setattr(model, key, value)
            ours = model(ir, vis)
    assert _rel_error(ours, theirs, vis, ir) > 1e-3


def test_dvss_d_state_is_needed(small_format, monkeypatch):
    """Without dvss_d_state=16 the DVSS blocks would get the CMFM's d_state (8): the shapes differ."""
    sw = {k: v for k, v in small_format.switches.items() if k != "dvss_d_state"}
    monkeypatch.setitem(O._FORMATS, ("fusion_mamba", "tiny"), O.OfficialFormat("fusion_mamba", "tiny", "t", sw))
    O._layout_cached.cache_clear()
    with pytest.raises(OfficialLayoutError, match=r"layers\.0\.blocks\.0\.op\.x_proj_weight' has shape \(4, 33, 32\)"):
        from_official("fusion_mamba", "tiny", _small_sd())
