"""The official layout of a model: the complete rename table (our key -> official key, with per-key tensor
transforms, all the identity today), the official-only entries (RNAN SR's MeanShift convolutions, FusionMamba's
frozen LDC masks and unused convolutions), and the key names and shapes that result, derived from our model or
shipped for five released checkpoints in ``official_layouts/*.json``.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..layers.ldc import LearnableDifferenceConv2d
from .official_formats import OfficialFormat, build_official_model
from .official_names import NAMERS, fusion_official_key

LAYOUT_DIR = Path(__file__).with_name("official_layouts")
Layout = Dict[str, Tuple[int, ...]]


@dataclass
class RenameEntry:
    ours: str
    official: str
    to_official: Callable[[Tensor], Tensor]
    to_ours: Callable[[Tensor], Tensor]


def _same(t: Tensor) -> Tensor:
    return t


def rename_table(arch: str, model: nn.Module) -> List[RenameEntry]:
    """The rename table of ``model``: one entry per state-dict key of ours (parameters + persistent buffers)."""
    if arch not in NAMERS:
        raise ValueError(f"no official layout is known for architecture {arch!r}")
    name = NAMERS[arch](model)
    out = [RenameEntry(k, name(k), _same, _same) for k in model.state_dict()]
    seen: Dict[str, str] = {}
    for e in out:
        if e.official in seen:
            raise RuntimeError(f"mapping bug: {seen[e.official]!r} and {e.ours!r} both map to {e.official!r}")
        seen[e.official] = e.ours
    return out


# RNAN SR: EDSR's MeanShift convolutions exist only in the official layout.
_MEANSHIFT_KEYS = ("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias")


def has_meanshift(arch: str, model: nn.Module) -> bool:
    return arch == "rnan" and model.upscale > 1


def fusion_unused_layout(model: nn.Module) -> Layout:
    """FusionMamba's official-only entries: the frozen all-ones ``base_mask`` of every LDC (shape of its weight)
    and ``Differential_enhance.lastconv`` (1x1 conv C -> C/2, built and never called) of every DFFM."""
    out: Layout = {}
    for name, m in model.named_modules():
        if isinstance(m, LearnableDifferenceConv2d):
            out[fusion_official_key(name + ".conv.weight")[:-len("conv.weight")] + "base_mask"] = \
                tuple(m.conv.weight.shape)
    for i, dffm in enumerate(model.fusion):
        if dffm.dfem is not None:
            c = model.dims[i]
            out[f"Cross_block.{i}.Cross_layer.Diff_enhance.lastconv.weight"] = (c // 2, c, 1, 1)
            out[f"Cross_block.{i}.Cross_layer.Diff_enhance.lastconv.bias"] = (c // 2,)
    return out


def _extra_layout(arch: str, model: nn.Module) -> Layout:
    if arch == "fusion_mamba":
        return fusion_unused_layout(model)
    if has_meanshift(arch, model):
        c = model.in_channels
        return {"sub_mean.weight": (c, c, 1, 1), "sub_mean.bias": (c,),
                "add_mean.weight": (c, c, 1, 1), "add_mean.bias": (c,)}
    return {}


def model_layout(arch: str, model: nn.Module) -> Layout:
    sd = model.state_dict()
    layout: Layout = dict(_extra_layout(arch, model))
    sub = {k: layout.pop(k) for k in ("sub_mean.weight", "sub_mean.bias") if k in layout}
    out: Layout = dict(sub)  # official order: sub_mean first, add_mean last
    for e in rename_table(arch, model):
        out[e.official] = tuple(e.to_official(torch.empty(sd[e.ours].shape, device="meta")).shape)
    out.update(layout)
    return out


@functools.lru_cache(maxsize=None)
def _layout_cached(arch: str, preset: str) -> Tuple[Tuple[str, Tuple[int, ...]], ...]:
    model = build_official_model(arch, preset, device="meta")
    return tuple(model_layout(arch, model).items())


def official_layout(arch: str, preset: str) -> Layout:
    """Official key names -> shapes for ``arch:preset``, derived from our model and the key mapping."""
    return dict(_layout_cached(arch, preset))


def shipped_layout(fmt: OfficialFormat) -> Optional[Layout]:
    """The key names and shapes of a released checkpoint shipped for ``fmt`` (None where none is shipped)."""
    if fmt.layout_file is None:
        return None
    data = json.loads((LAYOUT_DIR / fmt.layout_file).read_text())
    return {k: tuple(v) for k, v in data.items()}
