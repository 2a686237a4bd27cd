"""Cross-field checks of a :class:`~restore_core.train.config_schema.TrainConfig` that the types alone cannot
express: known task, scale set once at the top, dataset phases, loss options the task needs, value ranges."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..profiles import PROFILES
from .config_errors import ConfigError
from .losses import build_loss
from .task import MODEL_TYPES

if TYPE_CHECKING:
    from .config_schema import TrainConfig


def validate(cfg: "TrainConfig") -> None:
    """Cross-field checks that the types alone cannot express."""
    if cfg.model_type not in MODEL_TYPES:
        raise ConfigError(f"model_type: unknown {cfg.model_type!r}; known: {', '.join(sorted(MODEL_TYPES))}")
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
    for key in ("pixel_opt", "fft_opt", "fusion_opt"):
        opt = getattr(t, key)
        if opt is not None:
            build_loss(opt, where=f"train.{key}")
    cfg.task.check_losses(t)

