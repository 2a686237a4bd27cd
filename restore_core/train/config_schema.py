"""The typed config: one dataclass per section of a BasicSR-style option file, and :class:`TrainConfig`.

Sections: ``datasets.<phase>`` (:class:`DatasetOptions`), ``network_g`` (:class:`NetworkOptions`), ``path``,
``train`` (with ``optim_g`` and ``scheduler``), ``val`` (with ``metrics``), ``logger`` and ``dist_params``. Open
sections (a dataset's, network's or metric's own arguments) keep their other keys in ``params``, checked when the
trainer builds them. :func:`config_from_dict` reads and validates one from plain data.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .config_convert import from_dict, to_plain
from .config_overrides import apply_overrides
from .config_validate import validate
from .task import Task, get_task


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
    # convolution weights and 4-D inputs in channels-last (NHWC) memory: the same model and numbers up to float
    # rounding; faster where a network is mostly convolutions and per-pixel channel ops (CU-Mamba on CPU: ~1.2x)
    channels_last: bool = False
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
    def task(self) -> Task:
        """The :class:`~restore_core.train.task.Task` that ``model_type`` names."""
        return get_task(self.model_type)

    def to_dict(self) -> Dict[str, Any]:
        """The config as plain data in the YAML layout (``params`` folded back into their sections)."""
        return to_plain(self)

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



def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from a plain dict (no ``base``/``profiles`` handling); validates it."""
    cfg = from_dict(TrainConfig, data, "")
    validate(cfg)
    return cfg
