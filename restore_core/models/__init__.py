"""The four architectures and their registry (presets + ablation switches), and the parameter-free baselines.

Each model module registers itself when imported here (explicit imports, no directory scanning).
"""
from .registry import (build_model, config_class, get_config, list_archs, list_presets, list_switches,
                       model_class, preset_doc, register_arch, register_preset)
from . import rnan  # noqa: F401
from . import mambair  # noqa: F401
from . import fusion_mamba  # noqa: F401
from . import cu_mamba  # noqa: F401
from .baselines import FUSION_RULES, BicubicUpsampler, FixedFusion  # noqa: F401
from .official import from_official, inspect_checkpoint, official_format, to_official  # noqa: F401

__all__ = ["BicubicUpsampler", "FixedFusion", "build_model", "config_class", "get_config", "list_archs", "list_presets", "list_switches",
           "model_class", "preset_doc", "register_arch", "register_preset"]
