"""Experiment configs: typed dataclasses read from YAML in the BasicSR option layout (this module gathers the
public names of the ``config_*`` modules, one idea each: ``config_schema`` the dataclasses, ``config_convert``
dict <-> dataclass, ``config_validate`` the cross-field checks, ``config_files`` YAML bases / profiles / presets,
``config_overrides`` ``key=value`` overrides, ``config_errors`` :class:`ConfigError`).

A config file looks like BasicSR's ``options/train/*.yml`` (``name, model_type, scale, manual_seed,
datasets: {train, val}, network_g, path, train, val, logger``) with three additions:

- ``base:`` (or ``_base_:``) names one or more files this one overrides (relative path, or a preset name such
  as ``mambair/_base_sr``); dicts are merged key by key, lists and scalars replaced; a dict holding
  ``_delete_: true`` replaces the inherited one instead (e.g. a quick profile's dataset of another type).
- ``profiles: {quick: {...}, full: {...}}``: overrides applied by ``load_config(..., profile="quick")``.
- ``scale`` appears once, at the top; it is passed to the network (``upscale``/``scale`` field) and to the
  datasets that take one. Dataset keys named ``dataroot*`` are relative to the one top-level ``data_root``.

Unknown keys raise a :class:`ConfigError` naming the key's path (``train.optim_g.lrr``). Dataset, network and
metric sections are open-ended (their keys are the dataset / model / metric arguments): those are checked
against the registered dataset, model or metric when the trainer builds them, with the same path in the error.

Presets live in ``restore_core/configs/<arch>/<task>.yml``: ``load_config("mambair/sr_x2", profile="quick")``.
"""
from .config_convert import from_dict, to_plain
from .config_errors import ConfigError
from .config_files import (CONFIG_DIR, deep_merge, dump_config, list_configs, load_config, read_yaml_composed,
                           resolve_config_path, strip_delete_markers)
from .config_overrides import OVERRIDES_ENV, apply_overrides, env_overrides, parse_override
from .config_schema import (DatasetOptions, DistOptions, LoggerOptions, MetricOptions, NetworkOptions,
                            OptimizerOptions, PathOptions, SchedulerOptions, TrainConfig, TrainOptions, ValOptions,
                            config_from_dict)
from .config_validate import validate

__all__ = ["ConfigError", "CONFIG_DIR", "OVERRIDES_ENV", "DatasetOptions", "DistOptions", "LoggerOptions",
           "MetricOptions", "NetworkOptions", "OptimizerOptions", "PathOptions", "SchedulerOptions", "TrainConfig",
           "TrainOptions", "ValOptions", "apply_overrides", "config_from_dict", "deep_merge", "dump_config",
           "env_overrides", "from_dict", "list_configs", "load_config", "parse_override", "read_yaml_composed",
           "resolve_config_path", "strip_delete_markers", "to_plain", "validate"]
