"""Build the network, datasets and metrics a config names, from the other packages' registries.

The network comes from :func:`restore_core.models.build_model` (``network_g.type`` = registered architecture,
``preset``, other keys = config overrides, earlier field names mapped with a warning; the top-level ``scale``
fills the arch's ``upscale`` field). Datasets: :mod:`restore_core.train.datasets`; metrics:
:mod:`restore_core.train.evaluate`.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Optional

from torch import nn

from .. import models
from ..checkpoint_reader import read_state_dict
from ..models.registry import renamed_fields
from ..models.weights import WeightsMismatchError, compare_state_dict, load_weights
from .config_errors import ConfigError
from .config_schema import DatasetOptions, TrainConfig
from .datasets import build_dataset_from_options

log = logging.getLogger(__name__)


def build_network(cfg: TrainConfig) -> nn.Module:
    """``network_g`` -> an ``nn.Module`` (scale injected from the top level)."""
    net = cfg.network_g
    if not net.type:
        raise ConfigError("network_g.type: missing (one of " + ", ".join(models.list_archs()) + ")")
    if net.type not in models.list_archs():
        raise ConfigError(f"network_g.type: unknown architecture {net.type!r}; known: "
                          f"{', '.join(models.list_archs()) or 'none registered'}")
    config_cls = models.config_class(net.type)
    params = {}
    for key, value in net.params.items():  # a config (or a checkpoint's) written with the earlier field names
        new = renamed_fields(config_cls).get(key)
        if new is not None:
            log.warning("network_g.%s: %s's option is now called %s; reading it as such (rename it in the config)",
                        key, net.type, new)
        params[new or key] = value
    if "upscale" in {f.name for f in dataclasses.fields(config_cls)}:
        params["upscale"] = cfg.scale
    elif cfg.scale != 1:
        raise ConfigError(f"scale: {cfg.scale}, but {net.type} has no upscale option")
    try:
        return models.build_model(net.type, preset=net.preset, **params)
    except KeyError as exc:
        raise ConfigError(f"network_g.preset: {exc.args[0]}") from None
    except TypeError as exc:
        raise ConfigError(f"network_g: {exc}") from None


def load_pretrained(net: nn.Module, path: str, strict: bool = True, param_key: Optional[str] = None) -> None:
    """Load weights from our checkpoints (``ema``/``model``) or BasicSR files (``params_ema``/``params``), read by
    :func:`restore_core.checkpoint_reader.read_state_dict` (``param_key`` names the entry to take)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path.pretrain_network_g: {p} does not exist")
    try:
        state, _ = read_state_dict(p, param_key=param_key, what="pretrained weights file (path.pretrain_network_g)")
    except KeyError as exc:
        raise ConfigError(f"path.param_key_g: {exc.args[0]}") from None
    if strict:
        load_weights(net, state, source=f"path.pretrain_network_g {p}", target="network_g",
                     hint="Set path.strict_load_g: false to load the keys that fit.")
        return
    mismatch = compare_state_dict(net, state)
    if mismatch.shapes:  # torch refuses these even when not strict
        raise WeightsMismatchError(f"path.pretrain_network_g {p} does not fit network_g even with "
                                   f"strict_load_g: false: {mismatch.summary()}")
    net.load_state_dict(state, strict=False)
    if mismatch:
        log.warning("pretrained %s: %s", p, mismatch.summary())


# --------------------------------------------------------------------------------------------------------------
# datasets

def build_dataset(cfg: TrainConfig, phase: str) -> Optional[Any]:
    """``datasets.<phase>`` -> a map-style dataset (None when the config has no such phase)."""
    ds: Optional[DatasetOptions] = cfg.datasets.get(phase)
    if ds is None:
        return None
    return build_dataset_from_options(ds, cfg, phase)


def build_train_dataset(cfg: TrainConfig) -> Any:
    out = build_dataset(cfg, "train")
    if out is None:
        raise ConfigError("datasets.train: missing (or pass train_set= to train())")
    return out


def build_val_dataset(cfg: TrainConfig) -> Optional[Any]:
    return build_dataset(cfg, "val")
