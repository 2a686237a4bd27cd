"""Experiment configs: typed dataclasses read from YAML in the BasicSR option layout.

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
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from ..fsutil import atomic_write_text
from ..profiles import PROFILES

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

# BasicSR model_type names -> our task
_MODEL_TYPES = {
    "restoration": "restoration", "SRModel": "restoration", "MambaIRModel": "restoration",
    "ImageRestorationModel": "restoration", "ImageCleanModel": "restoration",
    "fusion": "fusion", "FusionModel": "fusion",
}


class ConfigError(ValueError):
    """A config problem; the message names the key's path (``train.optim_g.lr``)."""


# --------------------------------------------------------------------------------------------------------------
# the typed sections

@dataclass
class DatasetOptions:
    """One ``datasets.<phase>`` entry. Loader keys are typed; every other key is the dataset's own argument
    (kept in ``params``, checked against the dataset type when it is built)."""

    type: str = ""
    name: str = ""
    batch_size_per_gpu: int = 1
    num_worker_per_gpu: int = 0
    use_shuffle: bool = True
    dataset_enlarge_ratio: int = 1
    params: Dict[str, Any] = field(default_factory=dict)

    _EXTRA = "params"


@dataclass
class NetworkOptions:
    """``network_g``: the registered architecture (``type``), its preset and constructor overrides."""

    type: str = ""
    preset: Optional[str] = None
    params: Dict[str, Any] = field(default_factory=dict)

    _EXTRA = "params"


@dataclass
class PathOptions:
    pretrain_network_g: Optional[str] = None
    strict_load_g: bool = True
    param_key_g: Optional[str] = None
    resume_state: Optional[str] = None  # a checkpoint file, or "auto" (the experiment's latest one)
    experiments_root: Optional[str] = None  # default: ./experiments/<name>


@dataclass
class OptimizerOptions:
    type: str = "Adam"  # Adam | AdamW
    lr: float = 2e-4
    betas: Tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    eps: float = 1e-8


@dataclass
class SchedulerOptions:
    """MultiStepLR (milestones, gamma), StepLR (step_size, gamma), CosineAnnealingRestartLR (periods,
    restart_weights, eta_min; BasicSR's), CosineAnnealingLR (over total_iter, eta_min) or ConstantLR."""

    type: str = "MultiStepLR"
    milestones: List[int] = field(default_factory=list)
    gamma: float = 0.5
    step_size: int = 0
    periods: List[int] = field(default_factory=list)
    restart_weights: List[float] = field(default_factory=list)
    eta_min: float = 0.0


@dataclass
class TrainOptions:
    optim_g: OptimizerOptions = field(default_factory=OptimizerOptions)
    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    total_iter: int = 1000
    warmup_iter: int = -1  # linear warm-up over this many steps (-1: none)
    pixel_opt: Optional[Dict[str, Any]] = None
    fft_opt: Optional[Dict[str, Any]] = None
    fusion_opt: Optional[Dict[str, Any]] = None
    ema_decay: float = 0.0  # 0: no EMA; BasicSR uses 0.999
    grad_clip_norm: Optional[float] = None
    accumulate_grad_batches: int = 1
    mixed_precision: str = "no"  # no | bf16 | fp16 (autocast on CUDA; ignored with a warning on CPU)
    param_dtype: Optional[str] = None  # None: fp32 master weights; "bf16": cast weights except fp32_params
    # parameter names (dotted components) kept in fp32 when param_dtype casts the rest: the SSM parameters
    fp32_params: List[str] = field(default_factory=lambda: [
        "A_log", "A_logs", "D", "Ds", "dt_projs_bias", "dt_proj.bias", "dt_bias", "delta_bias"])


@dataclass
class MetricOptions:
    """One ``val.metrics.<name>`` entry: ``type`` is a registered metric; other keys are its arguments."""

    type: str = ""
    better: str = "higher"
    params: Dict[str, Any] = field(default_factory=dict)

    _EXTRA = "params"


@dataclass
class ValOptions:
    val_freq: int = 5000
    save_img: bool = False
    use_ema: bool = True  # validate the EMA weights when EMA is on (BasicSR does)
    metrics: Dict[str, MetricOptions] = field(default_factory=dict)
    tile: Optional[int] = None  # tiled inference for large images (restore_core.inference)
    tile_overlap: int = 32
    self_ensemble: bool = False
    max_images: Optional[int] = None


@dataclass
class LoggerOptions:
    print_freq: int = 100
    save_checkpoint_freq: int = 5000
    use_tb_logger: bool = True
    keep_checkpoints: int = 2
    progress_bar: bool = True


@dataclass
class DistOptions:
    backend: Optional[str] = None  # None: nccl on CUDA, gloo on CPU
    port: int = 29500


@dataclass
class TrainConfig:
    name: str = "experiment"
    model_type: str = "restoration"
    scale: int = 1
    num_gpu: Union[int, str] = "auto"
    manual_seed: int = 0
    deterministic: bool = True
    data_root: str = "data"
    datasets: Dict[str, DatasetOptions] = field(default_factory=dict)
    network_g: NetworkOptions = field(default_factory=NetworkOptions)
    path: PathOptions = field(default_factory=PathOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    val: ValOptions = field(default_factory=ValOptions)
    logger: LoggerOptions = field(default_factory=LoggerOptions)
    dist_params: DistOptions = field(default_factory=DistOptions)
    profile: Optional[str] = None
    source: Optional[str] = None  # the file it was read from (informational)

    @property
    def task(self) -> str:
        return _MODEL_TYPES[self.model_type]

    def to_dict(self) -> Dict[str, Any]:
        """The config as plain data in the YAML layout (``params`` folded back into their sections)."""
        return _to_plain(self)

    def hash(self) -> str:
        """sha256 of the settings that define the run (not ``path.resume_state`` / ``source``)."""
        d = self.to_dict()
        d.pop("source", None)
        d.get("path", {}).pop("resume_state", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()

    def with_overrides(self, overrides: Sequence[str]) -> "TrainConfig":
        """A copy with ``key.sub=value`` overrides applied (values parsed as YAML)."""
        raw = self.to_dict()
        apply_overrides(raw, overrides)
        return config_from_dict(raw)


# --------------------------------------------------------------------------------------------------------------
# dict <-> dataclass

def _is_optional(tp: Any) -> Tuple[bool, Any]:
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return True, (args[0] if len(args) == 1 else Union[tuple(args)])
    return False, tp


def _coerce(value: Any, tp: Any, path: str) -> Any:
    optional, inner = _is_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise ConfigError(f"{path}: must not be empty")
    tp = inner
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, path)
    if origin is Union:
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: {value!r} is not a {tp}")
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (arg,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, arg, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, Tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        _, vt = typing.get_args(tp) or (str, Any)
        return {str(k): _coerce(v, vt, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():  # BasicSR writes !!float 5e3 for counts
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                raise ConfigError(f"{path}: expected an integer, got {value!r}") from None
            if f.is_integer():
                return int(f)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        try:
            return float(value)  # YAML 1.1 reads "2e-4" as a string
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value


def _from_dict(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra_name = getattr(cls, "_EXTRA", None)
    kwargs: Dict[str, Any] = {}
    extra: Dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        sub = f"{path}.{key}" if path else key
        if key in fields and key != extra_name:
            kwargs[key] = _coerce(value, hints[key], sub)
        elif extra_name is not None:
            extra[key] = copy.deepcopy(value)
        else:
            raise ConfigError(f"{sub}: unknown key (valid keys here: {', '.join(sorted(fields))})")
    if extra_name is not None:
        explicit = data.get(extra_name) or {}
        kwargs[extra_name] = {**explicit, **extra} if isinstance(explicit, Mapping) else extra
    return cls(**kwargs)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out: Dict[str, Any] = {}
        extra_name = getattr(type(obj), "_EXTRA", None)
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if f.name == extra_name:
                out.update(_to_plain(v))
            else:
                out[f.name] = _to_plain(v)
        return out
    if isinstance(obj, Mapping):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from a plain dict (no ``base``/``profiles`` handling); validates it."""
    cfg = _from_dict(TrainConfig, data, "")
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Cross-field checks that the types alone cannot express."""
    if cfg.model_type not in _MODEL_TYPES:
        raise ConfigError(f"model_type: unknown {cfg.model_type!r}; known: {', '.join(sorted(_MODEL_TYPES))}")
    if cfg.scale < 1:
        raise ConfigError(f"scale: must be >= 1, got {cfg.scale}")
    for key in ("scale", "upscale"):
        if key in cfg.network_g.params:
            raise ConfigError(f"network_g.{key}: set the scale once, at the top level (scale: {cfg.scale})")
    for phase, ds in cfg.datasets.items():
        if phase not in ("train", "val", "test"):
            raise ConfigError(f"datasets.{phase}: unknown phase (use train / val / test)")
        if not ds.type:
            raise ConfigError(f"datasets.{phase}.type: missing")
        if "scale" in ds.params:
            raise ConfigError(f"datasets.{phase}.scale: set the scale once, at the top level (scale: {cfg.scale})")
        if ds.batch_size_per_gpu < 1:
            raise ConfigError(f"datasets.{phase}.batch_size_per_gpu: must be >= 1")
    t = cfg.train
    if t.total_iter < 1:
        raise ConfigError(f"train.total_iter: must be >= 1, got {t.total_iter}")
    if t.accumulate_grad_batches < 1:
        raise ConfigError("train.accumulate_grad_batches: must be >= 1")
    if t.mixed_precision not in ("no", "bf16", "fp16"):
        raise ConfigError(f"train.mixed_precision: one of no/bf16/fp16, got {t.mixed_precision!r}")
    if t.param_dtype not in (None, "bf16", "fp16"):
        raise ConfigError(f"train.param_dtype: one of ~/bf16/fp16, got {t.param_dtype!r}")
    if t.optim_g.type not in ("Adam", "AdamW"):
        raise ConfigError(f"train.optim_g.type: Adam or AdamW, got {t.optim_g.type!r}")
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay: must be in [0, 1), got {t.ema_decay}")
    if cfg.profile is not None and cfg.profile not in PROFILES:
        raise ConfigError(f"profile: one of {PROFILES}, got {cfg.profile!r}")
    # metric names and arguments are checked when the trainer starts (restore_core.train.evaluate.build_metrics):
    # importing the metrics (scipy.signal) here would slow every process that only reads a config
    for name, m in cfg.val.metrics.items():
        if not m.type:
            raise ConfigError(f"val.metrics.{name}.type: missing")
        if m.better not in ("higher", "lower"):
            raise ConfigError(f"val.metrics.{name}.better: higher or lower, got {m.better!r}")
    from .losses import build_loss

    for key in ("pixel_opt", "fft_opt", "fusion_opt"):
        opt = getattr(t, key)
        if opt is not None:
            build_loss(opt, where=f"train.{key}")
    if cfg.task == "restoration" and t.pixel_opt is None and t.fft_opt is None:
        raise ConfigError("train.pixel_opt: a restoration model needs a pixel loss (e.g. {type: L1Loss})")
    if cfg.task == "fusion" and t.fusion_opt is None:
        raise ConfigError("train.fusion_opt: a fusion model needs {type: FusionLoss}")


# --------------------------------------------------------------------------------------------------------------
# YAML files: base composition, profiles, overrides

def deep_merge(base: Dict[str, Any], over: Mapping[str, Any]) -> Dict[str, Any]:
    """``over`` merged into a copy of ``base``: dicts recursively, everything else replaced. A dict with
    ``_delete_: true`` replaces the base's dict instead of merging into it (mmcv's convention)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and v.get("_delete_") is True:
            out[k] = {kk: copy.deepcopy(vv) for kk, vv in v.items() if kk != "_delete_"}
        elif isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)  # nested _delete_ markers stay until the dict is merged onto something
    return out


def strip_delete_markers(d: Any) -> Any:
    """``d`` without the ``_delete_`` keys left over once every base and profile has been merged."""
    if isinstance(d, Mapping):
        return {k: strip_delete_markers(v) for k, v in d.items() if k != "_delete_"}
    if isinstance(d, list):
        return [strip_delete_markers(v) for v in d]
    return d


def resolve_config_path(name_or_path: Union[str, Path], relative_to: Optional[Path] = None) -> Path:
    """A config file from a path, a path relative to ``relative_to``, or a preset name (``mambair/sr_x2``)."""
    p = Path(name_or_path)
    candidates = []
    if relative_to is not None and not p.is_absolute():
        candidates.append(relative_to / p)
    candidates.append(p)
    for c in list(candidates):
        if c.suffix not in (".yml", ".yaml"):
            candidates += [c.with_name(c.name + ".yml"), c.with_name(c.name + ".yaml")]
    candidates += [CONFIG_DIR / p, CONFIG_DIR / (str(p) + ".yml")]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"config {str(name_or_path)!r} not found (neither a file nor a preset; presets: "
                            f"{', '.join(list_configs()) or 'none'})")


def list_configs() -> List[str]:
    """The shipped preset names (``arch/task``), without the ``_base`` files."""
    if not CONFIG_DIR.is_dir():
        return []
    return sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yml")
                  if not any(part.startswith("_") for part in p.relative_to(CONFIG_DIR).parts))


def read_yaml_composed(path: Path, _seen: Tuple[Path, ...] = ()) -> Dict[str, Any]:
    """The YAML at ``path`` merged over its ``base:`` / ``_base_:`` file(s)."""
    path = path.resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular base: {' -> '.join(map(str, _seen + (path,)))}")
    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    bases = data.pop("base", None)
    bases2 = data.pop("_base_", None)
    if bases is not None and bases2 is not None:
        raise ConfigError(f"{path}: use either base or _base_, not both")
    bases = bases if bases is not None else bases2
    if bases is None:
        return data
    merged: Dict[str, Any] = {}
    for b in [bases] if isinstance(bases, str) else list(bases):
        merged = deep_merge(merged, read_yaml_composed(resolve_config_path(b, path.parent), _seen + (path,)))
    return deep_merge(merged, data)


def parse_override(item: str) -> Tuple[List[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key.sub=value")
    key, raw = item.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return keys, value


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply ``a.b.c=value`` overrides in place (value parsed as YAML: numbers, lists, true/false, ~)."""
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for i, k in enumerate(keys[:-1]):
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(keys[:i + 1])} is not a section")
            node = nxt
        node[keys[-1]] = value
    return data


OVERRIDES_ENV = "RESTORE_CORE_CONFIG_OVERRIDES"


def env_overrides() -> List[str]:
    """The overrides in ``$RESTORE_CORE_CONFIG_OVERRIDES`` (lines or ";"-separated ``key.sub=value`` items)."""
    raw = os.environ.get(OVERRIDES_ENV, "")
    return [item.strip() for line in raw.splitlines() for item in line.split(";") if item.strip()]


def load_config(name_or_path: Union[str, Path, Mapping[str, Any]], profile: Optional[str] = None,
                overrides: Sequence[str] = (), data_root: Optional[str] = None) -> TrainConfig:
    """Read a config: a preset name (``"mambair/sr_x2"``), a YAML path, or a dict in the same layout.

    ``profile`` (quick / cpu / full) applies the file's ``profiles.<profile>`` section (a file with profile
    sections must have the one asked for, except full, the file itself); ``overrides`` are ``key.sub=value``
    strings applied next, then those in ``$RESTORE_CORE_CONFIG_OVERRIDES`` (one per line or separated by ";",
    applied to every config this process loads: a dry run shrinks a profile this way, see
    :mod:`restore_core.book.dry_run`); ``data_root`` (else ``$RESTORE_CORE_DATA_ROOT``) replaces the config's
    data root.
    """
    if isinstance(name_or_path, Mapping):
        raw = copy.deepcopy(dict(name_or_path))
        source = None
    else:
        path = resolve_config_path(name_or_path)
        raw = read_yaml_composed(path)
        source = str(path)
    profiles = raw.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise ConfigError("profiles: expected a mapping of profile name -> overrides")
    for p in profiles:
        if p not in PROFILES:
            raise ConfigError(f"profiles.{p}: unknown profile (use {', '.join(PROFILES)})")
    if profile is not None:
        if profile not in PROFILES:
            raise ConfigError(f"profile must be one of {PROFILES}, got {profile!r}")
        if profiles and profile != "full" and profile not in profiles:
            raise ConfigError(f"config {name_or_path!r} has no {profile!r} profile (it has: "
                              f"{', '.join(profiles) or 'none'}); add a profiles.{profile} section")
        raw = deep_merge(raw, profiles.get(profile) or {})
        raw["profile"] = profile
    raw = strip_delete_markers(raw)
    apply_overrides(raw, overrides)
    apply_overrides(raw, env_overrides())
    root = data_root or os.environ.get("RESTORE_CORE_DATA_ROOT")
    if root:
        raw["data_root"] = root
    if source is not None:
        raw["source"] = source
    return config_from_dict(raw)


def dump_config(cfg: TrainConfig, path: Union[str, Path]) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
