"""The trivial baselines every ablation table is read against, scored by the same evaluation code on the same
validation set as the trained models.

Which baselines a config gets follows from its task and degradation:

========================  =====================================================================================
SR (``scale`` > 1)        ``bicubic`` (MATLAB bicubic upsampling)
denoising (``awgn_*``)    ``noisy_input``; ``gaussian_filter`` (its sigma chosen on training images)
deblurring (``*blur_*``)  ``blurred_input``; ``wiener`` (the known kernel, its noise-to-signal ratio chosen on
                          training images)
JPEG (``jpeg_*``)         ``compressed_input``
fusion                    ``mean`` and ``max`` of the two sources
========================  =====================================================================================

A tuned parameter is never chosen on test images: :func:`fit_on_training` scores each candidate on whole training
images degraded as the training set degrades them (no crops, no augmentation) and keeps the best.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from torch import nn

from ..data.degradations import parse_degradation
from ..models.baselines import (BicubicUpsampler, FixedFusion, GaussianFilter, PassThrough,
                                WienerDeconvolution)
from ..train.builders import build_val_dataset
from ..train.datasets import build_dataset_from_options
from ..train.config import DatasetOptions, TrainConfig
from ..train.evaluate import evaluate
from ..train.task import FUSION

__all__ = ["Baseline", "baselines_for", "fit_on_training", "score_baselines", "GAUSSIAN_SIGMAS", "WIENER_NSRS"]

GAUSSIAN_SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
WIENER_NSRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
FIT_IMAGES = 8  # training images a baseline's parameter is chosen on


@dataclass
class Baseline:
    """A parameter-free model and what was chosen for it (``{"sigma": 1.5, "chosen_on": "..."}``)."""

    name: str
    model: nn.Module
    info: Dict[str, Any] = field(default_factory=dict)


def _degradation_name(cfg: TrainConfig) -> Optional[str]:
    for phase in ("val", "train"):
        opts = cfg.datasets.get(phase)
        if opts is not None and opts.params.get("degradation"):
            return str(opts.params["degradation"])
    return None


def fit_dataset(cfg: TrainConfig, images: int = FIT_IMAGES) -> Any:
    """Whole training images, degraded as the training set does (no crop, no augmentation): what a baseline's
    parameter is chosen on."""
    train = cfg.datasets.get("train")
    if train is None:
        raise ValueError("a baseline with a tuned parameter needs the config's training set to choose it on")
    params = {k: v for k, v in train.params.items() if k not in ("patch_size", "augment", "repeat")}
    ds = build_dataset_from_options(DatasetOptions(type=train.type, params=params), cfg, "eval")
    if len(ds) == 0:
        raise ValueError("the training set is empty")
    return _Head(ds, min(images, len(ds)))


class _Head:
    """The first ``n`` items of a dataset."""

    def __init__(self, ds: Any, n: int) -> None:
        self.ds, self.n = ds, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.ds[i]


def fit_on_training(make: Callable[[float], nn.Module], candidates: Sequence[float], cfg: TrainConfig,
                    metric: Optional[str] = None, images: int = FIT_IMAGES) -> Dict[str, Any]:
    """Pick the candidate whose model scores best (highest ``metric``) on :func:`fit_dataset`.

    Returns ``{"value": best, "scores": {candidate: score}, "metric": name, "images": n}``.
    """
    metrics = dict(cfg.val.metrics)
    if not metrics:
        raise ValueError("the config has no validation metrics to choose a baseline's parameter with")
    metric = metric or next(iter(metrics))
    ds = fit_dataset(cfg, images)
    scores = {}
    for c in candidates:
        res = evaluate(make(c), ds, {metric: metrics[metric]}, scale=cfg.scale, task=cfg.task, device="cpu",
                       progress=False)
        scores[c] = float(res.mean[metric])
    best = max(scores, key=scores.get)
    return {"value": best, "scores": scores, "metric": metric, "images": len(ds)}


def baselines_for(cfg: TrainConfig) -> List[Baseline]:
    """The trivial baselines of ``cfg``'s task (see the module docstring), parameters fitted on training images."""
    if cfg.task is FUSION:
        return [Baseline("mean", FixedFusion("mean")), Baseline("max", FixedFusion("max"))]
    if cfg.scale > 1:
        return [Baseline("bicubic", BicubicUpsampler(cfg.scale))]
    name = _degradation_name(cfg)
    if name is None:
        return []
    deg = parse_degradation(name)
    if deg.kind == "awgn":
        fit = fit_on_training(GaussianFilter, GAUSSIAN_SIGMAS, cfg)
        chosen = f"sigma chosen on {fit['images']} training images by {fit['metric']}"
        return [Baseline("noisy_input", PassThrough()),
                Baseline("gaussian_filter", GaussianFilter(fit["value"]),
                         {"sigma": fit["value"], "chosen_on": chosen, "scores": fit["scores"]})]
    if deg.kind in ("gblur", "mblur"):
        kernel = deg.kernel()
        fit = fit_on_training(lambda nsr: WienerDeconvolution(kernel, nsr), WIENER_NSRS, cfg)
        chosen = f"noise-to-signal ratio chosen on {fit['images']} training images by {fit['metric']}"
        return [Baseline("blurred_input", PassThrough()),
                Baseline("wiener", WienerDeconvolution(kernel, fit["value"]),
                         {"nsr": fit["value"], "kernel": deg.name, "chosen_on": chosen, "scores": fit["scores"]})]
    if deg.kind == "jpeg":
        return [Baseline("compressed_input", PassThrough())]
    return []


def score_baselines(cfg: TrainConfig, metrics: Mapping[str, str], val_set: Any = None
                    ) -> Dict[str, Dict[str, Any]]:
    """``{baseline: {table metric: value, ..., "info": {...}}}`` on the config's validation set.

    metrics: table metric name -> the config's validation metric key (``{"PSNR": "psnr"}``); scored exactly as
    the trained models are (same data, crop, channel, tiling options).
    """
    val_set = val_set if val_set is not None else build_val_dataset(cfg)
    if val_set is None:
        raise ValueError("the config has no validation set to score the baselines on")
    wanted = {k: cfg.val.metrics[k] for k in metrics.values()}
    out: Dict[str, Dict[str, Any]] = {}
    for b in baselines_for(cfg):
        res = evaluate(b.model, val_set, wanted, scale=cfg.scale, task=cfg.task, device="cpu",
                       tile=cfg.val.tile, tile_overlap=cfg.val.tile_overlap, max_images=cfg.val.max_images,
                       progress=False)
        out[b.name] = {name: float(res.mean[key]) for name, key in metrics.items()}
        if b.info:
            out[b.name]["info"] = {k: v for k, v in b.info.items() if k != "scores"}
    return out
