"""Load the released MambaIR, RNAN and FusionMamba checkpoints into our models, write ours back in their layout.

MambaIR: Guo et al., "MambaIR: A Simple Baseline for Image Restoration with State-Space Model",
arXiv:2402.15648, code csguoh/MambaIR (``basicsr/archs/mambair_arch.py``). RNAN: Zhang et al., "Residual
Non-local Attention Networks for Image Restoration", arXiv:1903.10082, code yulunzhang/RNAN
(``<task>/code/model/rnan.py`` + ``common.py``).

How: a key-mapping filter (STYLE rule 12), not renamed modules. For each architecture a function gives the
official name of every entry of *our* state dict (ordered regex rewrites); applied to a freshly built model it
yields the complete rename table, so loading is strict in both directions: every official key must be
consumed, every parameter / persistent buffer of ours filled, every shape equal. Each table entry carries a
per-key tensor transform for both directions, for parameters whose layout differs from the official one; today
all are the identity (our SS2D stores the official stacked ``x_proj_weight`` / ``dt_projs_*`` / ``A_logs`` / ``Ds``
layout), and RNAN SR's extra MeanShift entries are folded as described below. A checkpoint that does not fit raises
:class:`OfficialLayoutError` naming the first key that does not fit and the preset(s) whose layout the
checkpoint does fit (found by comparing its key layout with every known one).

Known layouts (:func:`list_official_formats`): the key names and shapes of five released checkpoints are
shipped in ``official_layouts/*.json`` and the tests check that the layout derived from our model + the mapping
equals them exactly (``mambair`` ``classic_sr_x2``, ``color_dn``, ``light_sr_x2`` (Mar 2024, the paper's),
``light_sr_v2_x2`` (Oct 2024), ``rnan`` ``color_dn``). The other presets' layouts (x3 / x4 upsamplers, grey
CAR / denoising, RNAN grey DN, demosaicing, CAR, SR) are *derived* the same way from our model and the mapping.

Switches set to reproduce the official numbers:

* RNAN: ``nonlocal_softmax_dim="query"`` (the official ``NonLocalBlock2D`` normalises ``softmax(f, dim=1)`` over
  the queries, not over the keys as the paper's equation) and ``img_range=255``: every official RNAN model was
  trained on [0, 255] images (EDSR's ``--rgb_range 255``), so :func:`official_format` reports
  ``pixel_range=255`` and :func:`restore_core.inference.restore_tensor` scales [0, 1] images by it.
  RNAN SR checkpoints also hold the ``sub_mean`` / ``add_mean`` 1x1 convolutions of EDSR's ``MeanShift``. The
  official code marks them frozen with ``module.requires_grad = False``, which freezes nothing, so released
  weights may have drifted from the identity + DIV2K-mean values. They are folded exactly: ``add_mean`` into the
  tail conv, ``sub_mean = W x + b = W (x - m)`` with ``m = -W^-1 b`` into the head conv (zero padding commutes
  with the per-pixel linear map ``W``) and our mean buffer set to ``m``. For untouched (identity) MeanShifts
  the round trip is bit-exact; for drifted ones :func:`to_official` writes an identity MeanShift with the folded
  convolutions, a function-equal official model.
* FusionMamba (millieXie/FusionMamba ``VSSM_Fusion``; formats ``fusion_mamba:ir_vis``, ``ct_mri`` (the same
  network) and ``ct_mri_tiny`` (depths 2-2-1-2 / 2-1-2-2)): ``skip_wiring="official"``, ``cmfm_gate="official"``,
  ``input_residual="official"``, ``dvss_d_state=16`` (see restore_core/models/fusion_mamba.py). Of the 1,039
  keys of a full-size checkpoint, 993 map one to one by name (no tensor transformed; official branch 1, the
  visible image, onto our ``*_vis`` modules); the other 46 exist only there: 38 frozen all-ones LDC
  ``base_mask`` tensors (checked to be all ones, then dropped) and the 4 ``Differential_enhance.lastconv`` 1x1
  convolutions (weight + bias), built and never called (dropped). :func:`to_official` writes them back (ones,
  zeros) unless ``complete=False``. Parameters: 225,419,541 = 164,146,245 (ours) + 60,880,896 (masks) +
  392,400 (lastconv); :func:`inspect_checkpoint` prints this sum.
* MambaIR: none beyond the preset (the official model subtracts the DIV2K mean for 3-channel inputs, none for
  grey ones, and uses ``img_range = 1``; our presets do the same). Our module names equal the official keys, so
  the MambaIR table is the identity (kept explicit, with the same strict checks).

Checkpoint containers: BasicSR files ``{"params": ...}`` / ``{"params_ema": ...}`` (``params_ema`` is preferred
when present; :func:`read_official_checkpoint` says which one it took), RNAN's raw state dicts, ``module.``
prefixes (DataParallel) stripped. Files are read with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ..safe_load import load_untrusted
from .registry import build_model, list_archs, model_class

log = logging.getLogger(__name__)

LAYOUT_DIR = Path(__file__).with_name("official_layouts")
StateDict = Dict[str, Tensor]
Layout = Dict[str, Tuple[int, ...]]

__all__ = ["OfficialFormat", "OfficialLayoutError", "LayoutMatch", "list_official_formats", "official_format",
           "official_layout", "shipped_layout", "read_official_checkpoint", "from_official", "to_official",
           "match_layout", "inspect_checkpoint", "CheckpointReport", "arch_of"]


class OfficialLayoutError(ValueError):
    """A checkpoint whose keys or shapes do not fit the requested architecture / preset."""


@dataclass(frozen=True)
class OfficialFormat:
    """One released model family: our ``arch`` / ``preset`` plus what reproduces the official numbers.

    ``switches``: config overrides applied on top of the preset; ``pixel_range``: the value range the official
    model works on (inputs in [0, 1] are multiplied by it); ``source``: the official file defining it;
    ``layout_file``: shipped JSON with the key names and shapes of a released checkpoint (None: derived only).
    """

    arch: str
    preset: str
    source: str
    switches: Mapping[str, Any] = field(default_factory=dict)
    pixel_range: float = 1.0
    layout_file: Optional[str] = None

    @property
    def name(self) -> str:
        return f"{self.arch}:{self.preset}"


_MAMBAIR_OPT = "csguoh/MambaIR options/test/mambair/"
_FORMATS: Dict[Tuple[str, str], OfficialFormat] = {}


def _add(fmt: OfficialFormat) -> None:
    _FORMATS[(fmt.arch, fmt.preset)] = fmt


for _s in (2, 3, 4):
    _add(OfficialFormat("mambair", f"classic_sr_x{_s}", _MAMBAIR_OPT + f"test_MambaIR_SR_x{_s}.yml",
                        layout_file="mambair_classic_sr_x2.json" if _s == 2 else None))
    _add(OfficialFormat("mambair", f"light_sr_x{_s}",
                        f"csguoh/MambaIR@06dc6cd (2024-03-19) options/test/test_MambaIR_lightSR_x{_s}.yml",
                        layout_file="mambair_light_sr_x2_2024-03.json" if _s == 2 else None))
    _add(OfficialFormat("mambair", f"light_sr_v2_x{_s}", _MAMBAIR_OPT + f"test_MambaIR_lightSR_x{_s}.yml",
                        layout_file="mambair_light_sr_x2_2024-10.json" if _s == 2 else None))
_add(OfficialFormat("mambair", "color_dn", _MAMBAIR_OPT + "test_MambaIR_ColorDN_level{15,25,50}.yml",
                    layout_file="mambair_color_dn.json"))
_add(OfficialFormat("mambair", "gray_car", _MAMBAIR_OPT + "test_MambaIR_CAR_q{10,30,40}.yml"))
_add(OfficialFormat("mambair", "gray_dn", "MambaIR paper, grey denoising (no released config: the colour-DN "
                                          "model with one channel)"))
_RNAN_SW = {"nonlocal_softmax_dim": "query", "img_range": 255.0}
_add(OfficialFormat("rnan", "color_dn", "yulunzhang/RNAN DN_RGB/code/model/rnan.py", _RNAN_SW, 255.0,
                    layout_file="rnan_color_dn.json"))
_add(OfficialFormat("rnan", "gray_dn", "yulunzhang/RNAN DN_Gray/code/model/rnan.py", _RNAN_SW, 255.0))
_add(OfficialFormat("rnan", "demosaic", "yulunzhang/RNAN Demosaic/code/model/rnan.py", _RNAN_SW, 255.0))
_add(OfficialFormat("rnan", "car", "yulunzhang/RNAN CAR/code/model/rnan.py", _RNAN_SW, 255.0))
for _s in (2, 3, 4):
    _add(OfficialFormat("rnan", f"sr_x{_s}", "yulunzhang/RNAN SR/code/model/rnan.py", _RNAN_SW, 255.0))
# FusionMamba: the released wiring, gate, doubled input residual and DVSS state size (see fusion_mamba.py)
_FUSION_SW = {"skip_wiring": "official", "cmfm_gate": "official", "input_residual": "official", "dvss_d_state": 16}
_FUSION_SRC = "millieXie/FusionMamba models/vmamba_Fusion_efficross.py VSSM_Fusion"
_add(OfficialFormat("fusion_mamba", "ir_vis", _FUSION_SRC + "() (IR-VIS weights of its README)", _FUSION_SW))
_add(OfficialFormat("fusion_mamba", "ct_mri", _FUSION_SRC + "() (CT-MRI weights of its README)", _FUSION_SW))
_add(OfficialFormat("fusion_mamba", "ct_mri_tiny", _FUSION_SRC + "(depths=[2, 2, 1, 2], depths_decoder=[2, 1, 2, 2]) "
                    "(CT-MRI tiny weights of its README)", _FUSION_SW))


def list_official_formats(arch: Optional[str] = None) -> List[OfficialFormat]:
    """The official formats we can load (those whose architecture and preset are registered)."""
    out = []
    for (a, p), fmt in _FORMATS.items():
        if (arch is None or a == arch) and _registered(a, p):
            out.append(fmt)
    return out


def _registered(arch: str, preset: str) -> bool:
    from .registry import list_presets
    return arch in list_archs() and preset in list_presets(arch)


def official_format(arch: str, preset: str) -> OfficialFormat:
    """The :class:`OfficialFormat` of ``arch``'s ``preset``; a KeyError lists the known ones."""
    fmt = _FORMATS.get((arch, preset))
    if fmt is None or not _registered(arch, preset):
        known = ", ".join(f.name for f in list_official_formats())
        raise KeyError(f"no official checkpoint format for {arch}:{preset}; known: {known}")
    return fmt


def arch_of(model: nn.Module) -> str:
    """The registered architecture name of ``model`` (by class)."""
    for a in list_archs():
        if type(model) is model_class(a):
            return a
    raise ValueError(f"{type(model).__name__} is not a registered architecture ({', '.join(list_archs())})")


# --------------------------------------------------------------------------------------------------------------
# Key mapping: our key -> official key, per architecture, plus reshapes and extra official-only entries.
# --------------------------------------------------------------------------------------------------------------
@dataclass
class _Entry:
    ours: str
    official: str
    to_official: Callable[[Tensor], Tensor]
    to_ours: Callable[[Tensor], Tensor]


def _same(t: Tensor) -> Tensor:
    return t


def _sub_all(key: str, rules: List[Tuple[str, str]]) -> str:
    """Apply every rewrite rule in order."""
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def _sub_first(key: str, rules: List[Tuple[str, str]]) -> str:
    """Apply the first rule that matches (for prefixes whose results another rule would match again)."""
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


# RNAN (rename table documented in restore_core/models/rnan.py).
_RNAN_BLOCK_RULES = [
    (r"\.block\.pre\.", ".body.0.RA_RB1.0."),
    (r"\.block\.trunk\.(\d+)\.", r".body.0.RA_TB.0.body.\1."),
    (r"\.block\.mask\.", ".body.0.RA_MB.0."),
    (r"\.block\.post\.(\d+)\.", r".body.0.RA_tail.\1."),
    (r"^([^.]+(?:\.\d+)?)\.conv\.", r"\1.body.1."),
    (r"\.RA_MB\.0\.down\.", ".RA_MB.0.MB_Down.0."),
    (r"\.RA_MB\.0\.rb2\.(\d+)\.", r".RA_MB.0.MB_RB2.\1."),
    (r"\.RA_MB\.0\.up\.", ".RA_MB.0.MB_Up.0."),
    (r"\.RA_MB\.0\.rb3\.", ".RA_MB.0.MB_RB3.0."),
    (r"\.RA_MB\.0\.conv1x1\.", ".RA_MB.0.MB_1x1conv.0."),
]


def _rnan_namer(model: nn.Module) -> Callable[[str], str]:
    sr = model.scale > 1
    n_local = len(model.groups)
    nonlocal_mask = getattr(model.group_low.block.mask, "nonlocal_block", None) is not None
    rules = [(r"^head\.", "head.0."), (r"^group_low\.", "body_nl_low.0."), (r"^group_high\.", "body_nl_high.0."),
             (r"^groups\.(\d+)\.", r"body.\1."), (r"^body_conv\.", f"body.{n_local}."),
             (r"^upsampler\.(\d+)\.", r"tail.0.\1."), (r"^tail\.", "tail.1." if sr else "tail.0.")]
    return functools.partial(_rnan_official_key, nonlocal_mask=nonlocal_mask, top_rules=rules)


def _rnan_official_key(key: str, nonlocal_mask: bool, top_rules: List[Tuple[str, str]]) -> str:
    key = _sub_all(key, _RNAN_BLOCK_RULES)
    # the non-local mask branch holds [NonLocalBlock2D, ResBlock] in MB_RB1; the local one only the ResBlock
    key = re.sub(r"\.RA_MB\.0\.nonlocal_block\.", ".RA_MB.0.MB_RB1.0.", key)
    if key.startswith(("group_low.", "group_high.")) and nonlocal_mask:
        key = re.sub(r"\.RA_MB\.0\.rb1\.", ".RA_MB.0.MB_RB1.1.", key)
    key = re.sub(r"\.RA_MB\.0\.rb1\.", ".RA_MB.0.MB_RB1.0.", key)
    return _sub_first(key, top_rules)


def _mambair_namer(model: nn.Module) -> Callable[[str], str]:
    """restore_core/models/mambair.py names its modules after the official keys (and SS2D stores the official
    stacked ``x_proj_weight`` / ``dt_projs_*`` / ``A_logs`` / ``Ds`` layout), so the table is the identity;
    its strictness (every key, every shape) still applies."""
    return _same_name


def _same_name(key: str) -> str:
    return key


# FusionMamba (millieXie/FusionMamba VSSM_Fusion). Official branch 1 is the visible image (its train.py and test.py
# both call model(vis, ir)), so patch_embed1 / texture_enhance1 / ln_1 / in_proj1 are our *_vis modules.
_FUSION_TOP_RULES = [
    (r"^patch_embed_vis\.", "patch_embed1."), (r"^patch_embed_ir\.", "patch_embed2."),
    (r"^encoder\.(\d+)\.(\d+)\.", r"layers.\1.blocks.\2."), (r"^merges\.(\d+)\.", r"layers.\1.downsample."),
    (r"^decoder\.(\d+)\.(\d+)\.", r"layers_up.\1.blocks.\2."), (r"^fusion\.(\d+)\.", r"Cross_block.\1."),
    (r"^final_expand\.", "final_up."),
]
_FUSION_INNER_RULES = [
    # DVSS block (VSSBlock_new)
    (r"\.ss2d\.", ".op."), (r"\.ldc\.", ".conv_branch."),
    (r"(\.blocks\.\d+)\.eca\.", r"\1.self_attention_cross_channel."),
    (r"\.biattn\.norm\.", ".se.norm."), (r"\.biattn\.reduce\.", ".se.global_reduce."),
    (r"\.biattn\.select\.", ".se.channel_select."),
    # DFFM (VSSBlock_Cross_new): DFEM = Cross_layer, CMFM = ln_1 / ln_2 + SS2D_cross_new + eca_layer
    (r"\.dfem\.texture_vis\.", ".Cross_layer.texture_enhance1."),
    (r"\.dfem\.texture_ir\.", ".Cross_layer.texture_enhance2."),
    (r"\.cmfm\.norm_vis\.", ".ln_1."), (r"\.cmfm\.norm_ir\.", ".ln_2."),
    (r"\.cmfm\.cross\.in_proj_vis\.", ".self_attention_cross.in_proj1."),
    (r"\.cmfm\.cross\.in_proj\.", ".self_attention_cross.in_proj2."),
    (r"\.cmfm\.cross\.", ".self_attention_cross."), (r"\.cmfm\.eca\.", ".self_attention_cross_spatial."),
    # LDC (LDC / Enhancement_texture_LDC)
    (r"\.theta$", ".learnable_theta"), (r"\.mask$", ".learnable_mask"),
]


def _fusion_namer(model: nn.Module) -> Callable[[str], str]:
    return _fusion_official_key


def _fusion_official_key(key: str) -> str:
    m = re.match(r"^expands\.(\d+)\.(.*)$", key)   # expands[j - 1] is decoder stage j's upsample
    if m:
        return f"layers_up.{int(m.group(1)) + 1}.upsample.{m.group(2)}"
    return _sub_all(_sub_first(key, _FUSION_TOP_RULES), _FUSION_INNER_RULES)


# arch -> (model -> (our key -> official key))
_NAMERS: Dict[str, Callable[[nn.Module], Callable[[str], str]]] = {
    "rnan": _rnan_namer,
    "mambair": _mambair_namer,
    "fusion_mamba": _fusion_namer,
}


def _entries(arch: str, model: nn.Module) -> List[_Entry]:
    """The rename table of ``model``: one entry per state-dict key of ours (parameters + persistent buffers)."""
    if arch not in _NAMERS:
        raise ValueError(f"no official layout is known for architecture {arch!r}")
    name = _NAMERS[arch](model)
    out = [_Entry(k, name(k), _same, _same) for k in model.state_dict()]
    seen: Dict[str, str] = {}
    for e in out:
        if e.official in seen:
            raise RuntimeError(f"mapping bug: {seen[e.official]!r} and {e.ours!r} both map to {e.official!r}")
        seen[e.official] = e.ours
    return out


# RNAN SR: EDSR's MeanShift convolutions exist only in the official layout.
_MEANSHIFT_KEYS = ("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias")


def _has_meanshift(arch: str, model: nn.Module) -> bool:
    return arch == "rnan" and model.scale > 1


def _fusion_unused_layout(model: nn.Module) -> Layout:
    """FusionMamba's official-only entries: the frozen all-ones ``base_mask`` of every LDC (shape of its weight)
    and ``Differential_enhance.lastconv`` (1x1 conv C -> C/2, built and never called) of every DFFM."""
    from ..layers.ldc import LearnableDifferenceConv2d

    out: Layout = {}
    for name, m in model.named_modules():
        if isinstance(m, LearnableDifferenceConv2d):
            out[_fusion_official_key(name + ".conv.weight")[:-len("conv.weight")] + "base_mask"] = \
                tuple(m.conv.weight.shape)
    for i, dffm in enumerate(model.fusion):
        if dffm.dfem is not None:
            c = model.dims[i]
            out[f"Cross_block.{i}.Cross_layer.Diff_enhance.lastconv.weight"] = (c // 2, c, 1, 1)
            out[f"Cross_block.{i}.Cross_layer.Diff_enhance.lastconv.bias"] = (c // 2,)
    return out


def _extra_layout(arch: str, model: nn.Module) -> Layout:
    if arch == "fusion_mamba":
        return _fusion_unused_layout(model)
    if _has_meanshift(arch, model):
        c = model.in_channels
        return {"sub_mean.weight": (c, c, 1, 1), "sub_mean.bias": (c,),
                "add_mean.weight": (c, c, 1, 1), "add_mean.bias": (c,)}
    return {}


def _model_layout(arch: str, model: nn.Module) -> Layout:
    sd = model.state_dict()
    layout: Layout = dict(_extra_layout(arch, model))
    sub = {k: layout.pop(k) for k in ("sub_mean.weight", "sub_mean.bias") if k in layout}
    out: Layout = dict(sub)  # official order: sub_mean first, add_mean last
    for e in _entries(arch, model):
        out[e.official] = tuple(e.to_official(torch.empty(sd[e.ours].shape, device="meta")).shape)
    out.update(layout)
    return out


def _build(arch: str, preset: str, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Our model of an official format, with the switches that reproduce the official numbers."""
    switches = dict(official_format(arch, preset).switches)
    if device == "meta":
        with torch.device("meta"):
            return build_model(arch, preset, **switches)
    return build_model(arch, preset, **switches)


@functools.lru_cache(maxsize=None)
def _layout_cached(arch: str, preset: str) -> Tuple[Tuple[str, Tuple[int, ...]], ...]:
    model = _build(arch, preset, device="meta")
    return tuple(_model_layout(arch, model).items())


def official_layout(arch: str, preset: str) -> Layout:
    """Official key names -> shapes for ``arch:preset``, derived from our model and the key mapping."""
    return dict(_layout_cached(arch, preset))


def shipped_layout(fmt: OfficialFormat) -> Optional[Layout]:
    """The key names and shapes of a released checkpoint shipped for ``fmt`` (None where none is shipped)."""
    if fmt.layout_file is None:
        return None
    data = json.loads((LAYOUT_DIR / fmt.layout_file).read_text())
    return {k: tuple(v) for k, v in data.items()}


# --------------------------------------------------------------------------------------------------------------
# Reading checkpoints, matching layouts
# --------------------------------------------------------------------------------------------------------------
def read_official_checkpoint(checkpoint: Union[str, os.PathLike, Mapping[str, Any]]) -> Tuple[StateDict, str]:
    """A flat ``{name: tensor}`` from a path or a loaded object, and a note saying which entry was used.

    Unwraps BasicSR's ``params_ema`` (preferred) / ``params`` and a ``state_dict`` entry; strips ``module.``.
    Paths are loaded with ``torch.load(..., map_location="cpu", weights_only=True)``.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = Path(checkpoint)
        obj = load_untrusted(path, what="checkpoint")
        where = str(path)
    else:
        obj, where = checkpoint, "state dict"
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    note = "raw state dict"
    for wrapper in ("params_ema", "params", "state_dict"):
        if wrapper in obj and isinstance(obj[wrapper], Mapping):
            others = [k for k in ("params_ema", "params") if k in obj and k != wrapper]
            note = f"'{wrapper}' entry" + (f" (preferred over {', '.join(repr(o) for o in others)})" if others else "")
            obj = obj[wrapper]
            break
    sd: StateDict = {}
    for k, v in obj.items():
        if not isinstance(v, Tensor):
            raise ValueError(f"{where}: entry {k!r} is a {type(v).__name__}, not a tensor: not a state dict")
        sd[k[len("module."):] if k.startswith("module.") else k] = v
    if not sd:
        raise ValueError(f"{where}: the state dict is empty")
    return sd, note


@dataclass(frozen=True)
class LayoutMatch:
    """How well a checkpoint fits one official format: ``exact`` or the counts of fitting / missing / extra keys."""

    fmt: OfficialFormat
    exact: bool
    fitting: int       # keys present in both with equal shapes
    missing: int       # keys of the format absent from the checkpoint
    unexpected: int    # checkpoint keys the format does not have
    wrong_shape: int

    @property
    def score(self) -> float:
        total = self.fitting + self.missing + self.unexpected + self.wrong_shape
        return self.fitting / max(1, total)


def _compare(sd_layout: Layout, layout: Layout) -> Tuple[int, int, int, int]:
    fitting = sum(1 for k, s in sd_layout.items() if layout.get(k) == s)
    wrong = sum(1 for k, s in sd_layout.items() if k in layout and layout[k] != s)
    missing = sum(1 for k in layout if k not in sd_layout)
    unexpected = sum(1 for k in sd_layout if k not in layout)
    return fitting, missing, unexpected, wrong


def match_layout(state_dict: Mapping[str, Tensor]) -> List[LayoutMatch]:
    """Every known official format scored against ``state_dict`` (names + shapes), best first."""
    sd_layout = {k: tuple(v.shape) for k, v in state_dict.items()}
    out = []
    for fmt in list_official_formats():
        f, m, u, w = _compare(sd_layout, official_layout(fmt.arch, fmt.preset))
        out.append(LayoutMatch(fmt, m == u == w == 0, f, m, u, w))
    return sorted(out, key=lambda r: (not r.exact, -r.score))


def _fits_instead(state_dict: Mapping[str, Tensor]) -> str:
    matches = match_layout(state_dict)
    exact = [m.fmt.name for m in matches if m.exact]
    if exact:
        return "it fits " + " / ".join(exact) + (" (identical layouts)" if len(exact) > 1 else "")
    best = matches[0] if matches else None
    if best is None or best.score < 0.5:
        return "it fits no known official preset"
    return (f"it fits no known official preset exactly; closest: {best.fmt.name} ({best.fitting} keys fit, "
            f"{best.missing} missing, {best.unexpected} unexpected, {best.wrong_shape} with other shapes)")


# --------------------------------------------------------------------------------------------------------------
# from_official / to_official
# --------------------------------------------------------------------------------------------------------------
def _check_layout(arch: str, preset: str, sd: StateDict, layout: Layout) -> None:
    problem = None
    for k, t in sd.items():
        if k not in layout:
            problem = f"unexpected key {k!r} (shape {tuple(t.shape)})"
            break
        if tuple(t.shape) != layout[k]:
            problem = f"key {k!r} has shape {tuple(t.shape)}, {arch}:{preset} expects {layout[k]}"
            break
    if problem is None:
        missing = [k for k in layout if k not in sd]
        if missing:
            problem = f"missing key {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    if problem is not None:
        raise OfficialLayoutError(f"checkpoint does not fit {arch}:{preset}: {problem}; {_fits_instead(sd)}")


def _fold_meanshift(model: nn.Module, sd: StateDict) -> StateDict:
    """Fold RNAN SR's MeanShift convs into head / tail and set the mean buffer (see the module docstring)."""
    sd = dict(sd)
    ws, bs = sd.pop("sub_mean.weight").double()[..., 0, 0], sd.pop("sub_mean.bias").double()
    wa, ba = sd.pop("add_mean.weight").double()[..., 0, 0], sd.pop("add_mean.bias").double()
    identity = torch.eye(ws.shape[0], dtype=torch.float64)
    m = bs.neg() if torch.equal(ws, identity) else -torch.linalg.solve(ws, bs)  # sub_mean(x) = W (x - m)
    mean32 = m.float()
    with torch.no_grad():
        model.mean.copy_(mean32.view_as(model.mean))
    if not torch.equal(ws, identity):
        head = sd["head.0.weight"]
        sd["head.0.weight"] = torch.einsum("ojhw,ji->oihw", head.double(), ws).to(head.dtype)
    tail_w, tail_b = sd["tail.1.weight"], sd["tail.1.bias"]
    if not (torch.equal(wa, identity) and torch.equal(ba.float(), mean32)):  # else: nothing to fold
        # add_mean(tail(h)) - m = (W_a W_t) h + (W_a b_t + b_a - m)
        sd["tail.1.weight"] = torch.einsum("ij,jchw->ichw", wa, tail_w.double()).to(tail_w.dtype)
        sd["tail.1.bias"] = (wa @ tail_b.double() + ba - mean32.double()).to(tail_b.dtype)
    return sd


def _drop_fusion_unused(model: nn.Module, sd: StateDict) -> StateDict:
    """Check FusionMamba's frozen ``base_mask`` tensors are all ones and drop them and the unused ``lastconv``."""
    sd = dict(sd)
    for k in _fusion_unused_layout(model):
        t = sd.pop(k)
        if k.endswith("base_mask") and not bool((t == 1).all()):
            bad = int((t != 1).sum())
            raise OfficialLayoutError(f"frozen LDC mask {k!r} is not all ones ({bad} of {t.numel()} values differ): "
                                      "the released code multiplies that LDC's weight by it, our model cannot hold it")
    return sd


def from_official(arch: str, preset: str, checkpoint: Union[str, os.PathLike, Mapping[str, Any]],
                  device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Our ``arch:preset`` model holding an official checkpoint (path or state dict), in eval mode.

    Strict: every official key consumed, every parameter / persistent buffer of ours filled, shapes equal;
    otherwise :class:`OfficialLayoutError` names the first key that does not fit and the preset it fits.
    The switches of :func:`official_format` are applied (RNAN: ``nonlocal_softmax_dim="query"``, the official
    softmax over dim=1, and ``img_range=255``: feed [0, 255] images, or use ``restore_tensor(...,
    pixel_range=official_format(arch, preset).pixel_range)``; FusionMamba: the released wiring, gate, input
    residual and DVSS state size). FusionMamba's frozen LDC ``base_mask`` tensors (38 in the full-size model, 22
    in the tiny one) must be all ones (an :class:`OfficialLayoutError` names the first that is not) and are
    dropped with the 4 never-called ``Differential_enhance.lastconv`` convolutions; the released
    ``model(vis, ir)`` is our ``model(ir, vis)``.
    """
    official_format(arch, preset)  # raises for unknown formats
    sd, note = read_official_checkpoint(checkpoint)
    log.info("from_official %s:%s: using the checkpoint's %s", arch, preset, note)
    _check_layout(arch, preset, sd, official_layout(arch, preset))
    model = _build(arch, preset)
    if _has_meanshift(arch, model):
        sd = _fold_meanshift(model, sd)
    if arch == "fusion_mamba":
        sd = _drop_fusion_unused(model, sd)
    ours = {}
    for e in _entries(arch, model):
        ours[e.ours] = e.to_ours(sd[e.official])
    missing, unexpected = model.load_state_dict(ours, strict=True)
    assert not missing and not unexpected
    return model.to(device).eval()


def to_official(model: nn.Module, complete: bool = True) -> StateDict:
    """``model``'s weights in the official layout (a plain state dict the official code loads strictly).

    Round trip: ``to_official(from_official(a, p, sd))`` equals ``sd`` exactly (RNAN SR: when its MeanShift
    convs are the untouched identity ones; drifted ones come back folded, see the module docstring).
    FusionMamba: ``complete=True`` adds the official-only entries the released module needs to load strictly,
    all-ones ``base_mask`` tensors (as every released file holds) and zero ``lastconv`` convolutions (never
    called, so their values, which are not kept, change nothing); ``complete=False`` leaves those 46 out.
    """
    arch = arch_of(model)
    sd = model.state_dict()
    out: StateDict = {}
    if _has_meanshift(arch, model):
        c = model.in_channels
        eye = torch.eye(c).view(c, c, 1, 1)
        mean = model.mean.detach().reshape(c).float().cpu()
        out["sub_mean.weight"], out["sub_mean.bias"] = eye.clone(), -mean
    for e in _entries(arch, model):
        out[e.official] = e.to_official(sd[e.ours].detach().cpu()).clone()
    if _has_meanshift(arch, model):
        out["add_mean.weight"], out["add_mean.bias"] = eye.clone(), mean.clone()
    if arch == "fusion_mamba" and complete:
        for k, shape in _fusion_unused_layout(model).items():
            out[k] = torch.ones(shape) if k.endswith("base_mask") else torch.zeros(shape)
    return out


# --------------------------------------------------------------------------------------------------------------
# inspect
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointReport:
    """What :func:`inspect_checkpoint` found: entry used, tensor / parameter counts and the fitting formats."""

    note: str
    n_tensors: int
    n_params: int
    matches: Tuple[LayoutMatch, ...]
    unused: Tuple[Tuple[str, int, int], ...] = ()   # (what, tensors, values) not loaded, for the first exact fit

    @property
    def exact(self) -> List[OfficialFormat]:
        return [m.fmt for m in self.matches if m.exact]

    def summary(self) -> str:
        lines = [f"entry used: {self.note}", f"tensors: {self.n_tensors}", f"parameters: {self.n_params:,}"]
        if self.exact and self.unused:
            kept = self.n_params - sum(n for _, _, n in self.unused)
            lines.append(f"  = {kept:,} loaded into {self.exact[0].name}"
                         + "".join(f" + {n:,} in {t} {what}" for what, t, n in self.unused))
            lines.append("  (the latter are not loaded: " + "; ".join(_UNUSED_WHY[w] for w, _, _ in self.unused) + ")")
        if self.exact:
            for fmt in self.exact:
                lines.append(f"fits: {fmt.name}  (official: {fmt.source}; pixel range [0, {fmt.pixel_range:g}])")
        else:
            best = self.matches[0] if self.matches else None
            lines.append("fits: no known official preset exactly")
            if best is not None:
                lines.append(f"closest: {best.fmt.name} ({best.fitting} keys fit, {best.missing} missing, "
                             f"{best.unexpected} unexpected, {best.wrong_shape} with other shapes)")
        return "\n".join(lines)


_UNUSED_WHY = {
    "frozen all-ones LDC base_mask tensors": "each base_mask is a frozen Parameter of ones that multiplies its LDC "
                                             "weight, checked to be all ones and dropped",
    "Differential_enhance.lastconv tensors": "the 1x1 lastconv of each DFFM's Differential_enhance is built and never "
                                             "called",
}


def _unused_breakdown(sd: Mapping[str, Tensor], fmt: OfficialFormat) -> Tuple[Tuple[str, int, int], ...]:
    """Official-only entries of ``sd`` our model does not hold (FusionMamba), grouped: (what, tensors, values)."""
    if fmt.arch != "fusion_mamba":
        return ()
    groups: Dict[str, List[int]] = {}
    for k in _fusion_unused_layout(_build(fmt.arch, fmt.preset, device="meta")):
        what = ("frozen all-ones LDC base_mask tensors" if k.endswith("base_mask")
                else "Differential_enhance.lastconv tensors")
        g = groups.setdefault(what, [0, 0])
        g[0] += 1
        g[1] += sd[k].numel()
    return tuple((w, t, n) for w, (t, n) in groups.items())


def inspect_checkpoint(checkpoint: Union[str, os.PathLike, Mapping[str, Any]]) -> CheckpointReport:
    """Name the architecture / preset(s) an official checkpoint fits (by key layout) and count its parameters.

    The parameter count is over all stored tensors (RNAN SR's 24 MeanShift values included).
    """
    sd, note = read_official_checkpoint(checkpoint)
    matches = tuple(match_layout(sd))
    unused = _unused_breakdown(sd, matches[0].fmt) if matches and matches[0].exact else ()
    return CheckpointReport(note, len(sd), sum(t.numel() for t in sd.values()), matches, unused)
