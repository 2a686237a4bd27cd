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

Checkpoint containers (read by :func:`restore_core.checkpoint_reader.read_state_dict`, the one reader): BasicSR files ``{"params": ...}`` / ``{"params_ema": ...}`` (``params_ema`` is preferred
when present; :func:`read_official_checkpoint` says which one it took), RNAN's raw state dicts, ``module.``
prefixes (DataParallel) stripped. Files are read with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Tuple, Union

import torch
from torch import nn

from ..checkpoint_reader import StateDict, read_state_dict
from .official_formats import (_FORMATS, _FUSION_SW, OfficialFormat, OfficialLayoutError,  # noqa: F401
                               arch_of, build_official_model, list_official_formats, official_format)
from .official_inspect import (CheckpointReport, LayoutMatch, check_layout, inspect_checkpoint,  # noqa: F401
                               match_layout)
from .official_layout import (LAYOUT_DIR, Layout, _layout_cached, _same,  # noqa: F401 -- re-exported
                              fusion_unused_layout, has_meanshift, official_layout, rename_table, shipped_layout)

log = logging.getLogger(__name__)

# the earlier private names of this module's internals (the tests reach into _FORMATS, _FUSION_SW, _layout_cached,
# _same and these)
_build = build_official_model
_entries = rename_table
_fusion_unused_layout = fusion_unused_layout

__all__ = ["OfficialFormat", "OfficialLayoutError", "LayoutMatch", "list_official_formats", "official_format",
           "official_layout", "shipped_layout", "read_official_checkpoint", "from_official", "to_official",
           "match_layout", "inspect_checkpoint", "CheckpointReport", "arch_of"]


def read_official_checkpoint(checkpoint: Union[str, os.PathLike, Mapping[str, Any]]) -> Tuple[StateDict, str]:
    """A flat ``{name: tensor}`` from a path or a loaded object, and a note saying which entry was used
    (:func:`restore_core.checkpoint_reader.read_state_dict`: BasicSR's ``params_ema`` preferred over ``params``,
    a ``state_dict`` entry, ``module.`` stripped; files read with ``weights_only=True``)."""
    return read_state_dict(checkpoint)


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
    for k in fusion_unused_layout(model):
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
    sd, note = read_state_dict(checkpoint)
    log.info("from_official %s:%s: using the checkpoint's %s", arch, preset, note)
    check_layout(arch, preset, sd, official_layout(arch, preset))
    model = build_official_model(arch, preset)
    if has_meanshift(arch, model):
        sd = _fold_meanshift(model, sd)
    if arch == "fusion_mamba":
        sd = _drop_fusion_unused(model, sd)
    ours = {}
    for e in rename_table(arch, model):
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
    if has_meanshift(arch, model):
        c = model.in_channels
        eye = torch.eye(c).view(c, c, 1, 1)
        mean = model.mean.detach().reshape(c).float().cpu()
        out["sub_mean.weight"], out["sub_mean.bias"] = eye.clone(), -mean
    for e in rename_table(arch, model):
        out[e.official] = e.to_official(sd[e.ours].detach().cpu()).clone()
    if has_meanshift(arch, model):
        out["add_mean.weight"], out["add_mean.bias"] = eye.clone(), mean.clone()
    if arch == "fusion_mamba" and complete:
        for k, shape in fusion_unused_layout(model).items():
            out[k] = torch.ones(shape) if k.endswith("base_mask") else torch.zeros(shape)
    return out
