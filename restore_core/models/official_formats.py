"""The released checkpoints we can load: one :class:`OfficialFormat` per architecture / preset, with the switches
that reproduce the official numbers, the pixel range the official model works on and the official source.

The catalogue (see :mod:`restore_core.models.official` for what the switches do): MambaIR classic / light SR
x2-x4, colour DN, grey CAR / DN; RNAN colour / grey DN, demosaicing, CAR, SR x2-x4; FusionMamba IR-VIS, CT-MRI
and CT-MRI tiny.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from .registry import build_model, list_archs, list_presets, model_class


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


def build_official_model(arch: str, preset: str, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Our model of an official format, with the switches that reproduce the official numbers."""
    switches = dict(official_format(arch, preset).switches)
    if device == "meta":
        with torch.device("meta"):
            return build_model(arch, preset, **switches)
    return build_model(arch, preset, **switches)
