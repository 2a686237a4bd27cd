"""Official key names of our models' state-dict entries, per architecture: ordered regex rewrites of our key
(a key-mapping filter, STYLE rule 12, not renamed modules).

* RNAN (yulunzhang/RNAN ``rnan.py`` + ``common.py``; rename table documented in restore_core/models/rnan.py).
* MambaIR: the identity (our module names are the official keys; SS2D stores the official stacked layout).
* FusionMamba (millieXie/FusionMamba ``VSSM_Fusion``): official branch 1 is the visible image.

:data:`NAMERS` maps an architecture to ``model -> (our key -> official key)``.
"""
from __future__ import annotations

import functools
import re
from typing import Callable, Dict, List, Tuple

from torch import nn


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
    sr = model.upscale > 1
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
    return fusion_official_key


def fusion_official_key(key: str) -> str:
    m = re.match(r"^expands\.(\d+)\.(.*)$", key)   # expands[j - 1] is decoder stage j's upsample
    if m:
        return f"layers_up.{int(m.group(1)) + 1}.upsample.{m.group(2)}"
    return _sub_all(_sub_first(key, _FUSION_TOP_RULES), _FUSION_INNER_RULES)


# arch -> (model -> (our key -> official key))
NAMERS: Dict[str, Callable[[nn.Module], Callable[[str], str]]] = {
    "rnan": _rnan_namer,
    "mambair": _mambair_namer,
    "fusion_mamba": _fusion_namer,
}
