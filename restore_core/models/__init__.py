"""The four architectures and their registry (presets + ablation switches), the parameter-free baselines, and
weight loading (official checkpoints, state dicts with readable mismatch errors).

Each model module registers itself when imported here (explicit imports, no directory scanning).
"""
from .registry import (build_model, config_class, get_config, list_archs, list_presets, list_switches,
                       model_class, preset_doc, register_arch, register_preset)
from . import rnan  # noqa: F401
from . import mambair  # noqa: F401
from . import fusion_mamba  # noqa: F401
from . import cu_mamba  # noqa: F401
from .baselines import (FUSION_RULES, BicubicUpsampler, FixedFusion, GaussianFilter, PassThrough,  # noqa: F401
                        WienerDeconvolution)
from .weights import WeightsMismatchError, compare_state_dict, load_weights  # noqa: F401
from .official import from_official, inspect_checkpoint, official_format, to_official  # noqa: F401

__all__ = ["BicubicUpsampler", "FixedFusion", "FUSION_RULES", "GaussianFilter", "PassThrough", "WienerDeconvolution", "WeightsMismatchError", "build_model",
           "compare_state_dict", "config_class", "from_official", "get_config", "inspect_checkpoint", "list_archs",
           "list_presets", "list_switches", "load_weights", "model_class", "official_format", "preset_doc",
           "register_arch", "register_preset", "to_official"]
