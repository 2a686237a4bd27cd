"""Evaluation: restore every image of a dataset, score it, report per-image and mean metrics.

Large images go through tiled inference and the x8 self-ensemble of :mod:`restore_core.inference`; metrics are
the registered ones of :mod:`restore_core.metrics` (PSNR/SSIM on the Y channel with a border crop for SR, the
fusion metrics for fusion). :func:`evaluate_checkpoint` writes a results JSON with provenance (commit, device,
torch version, config, date).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checkpoint_reader import read_training_checkpoint, training_weights
from ..inference import restore_batch as restore  # noqa: F401 -- the evaluation's model call, also under this name
from ..models.weights import load_weights
from ..provenance import provenance
from .builders import build_network
from .config_schema import config_from_dict
from .task import Task, get_task
from .val_metrics import METRIC_ALIASES, Metric, build_metrics, metric_names  # noqa: F401 -- re-exported


@dataclass
class EvalResult:
    """per_image: ``[{"name": ..., <metric>: value, ...}]``; mean: ``{<metric>: mean over images}``."""

    per_image: List[Dict[str, Any]] = field(default_factory=list)
    mean: Dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"mean": self.mean, "per_image": self.per_image}


def _name(item: Any, i: int) -> str:
    if isinstance(item, Mapping):
        for k in ("name", "lq_path", "gt_path", "path"):
            if k in item:
                v = item[k]
                return Path(v).stem if k.endswith("path") else str(v)
    return f"{i:04d}"


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Any, metrics: Mapping[str, Any], *, scale: int = 1,
             task: Union[str, Task] = "restoration", device: Optional[Union[str, torch.device]] = None,
             tile: Optional[int] = None, tile_overlap: int = 32, self_ensemble: bool = False,
             max_images: Optional[int] = None, progress: bool = True) -> EvalResult:
    """Score ``model`` on every item of ``dataset``.

    dataset items: dicts with "lq"/"hq" (restoration) or "ir"/"vis" (fusion; "a"/"b" = infrared/visible)
    tensors (C, H, W) in [0, 1], or pairs; an optional "name".
    metrics: ``{name: {type: calculate_psnr, crop_border: 2, test_y_channel: true}}``
    (or :class:`~restore_core.train.config.MetricOptions`); types are :func:`metric_names` (BasicSR's
    calculate_psnr / calculate_ssim, and the fusion metrics EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, scored
    on the visible image's Y and the infrared image).
    task: a :class:`~restore_core.train.task.Task` (a config's ``cfg.task``) or its name / ``model_type``.
    """
    task = get_task(task)
    fns = build_metrics(metrics)
    if device is not None:
        dev = torch.device(device)
    else:  # where the model lives; a parameter-free model (a fixed baseline) runs on the CPU
        dev = next(iter(model.parameters()), torch.empty(0)).device
    was_training = model.training
    model.eval()
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    rows: List[Dict[str, Any]] = []
    it = tqdm(range(n), desc="evaluate", unit="img") if progress else range(n)
    try:
        for i in it:
            item = dataset[i]
            rows.append({"name": _name(item, i), **task.score(model, item, fns, device=dev, scale=scale, tile=tile,
                                                              tile_overlap=tile_overlap, self_ensemble=self_ensemble)})
    finally:
        model.train(was_training)
    mean = {}
    for name in fns:
        vals = [r[name] for r in rows]
        finite = [v for v in vals if math.isfinite(v)]
        mean[name] = sum(finite) / len(finite) if finite else float("nan")
    return EvalResult(rows, mean)


def write_results(path: Union[str, Path], result: EvalResult, **info: Any) -> Path:
    """Write ``{"mean", "per_image", "provenance": {...}, **info}`` as JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    device = info.pop("device", None)
    payload = {**result.to_dict(), **info, "provenance": provenance(device=device)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str, allow_nan=True))
    os.replace(tmp, path)
    return path


def evaluate_checkpoint(checkpoint: Union[str, Path], dataset: Any, *, metrics: Optional[Mapping[str, Any]] = None,
                        device: Optional[str] = None, tile: Optional[int] = None, tile_overlap: int = 32,
                        self_ensemble: bool = False, use_ema: bool = True, max_images: Optional[int] = None,
                        out_json: Optional[Union[str, Path]] = None, progress: bool = True,
                        model: Optional[nn.Module] = None) -> EvalResult:
    """Evaluate a trainer checkpoint: rebuild its network from the stored config, load (EMA) weights, score.

    ``metrics`` default to the checkpoint config's ``val.metrics``. ``out_json`` also writes the results
    with provenance and the config.
    """
    state = read_training_checkpoint(checkpoint)
    cfg = config_from_dict(state["config"])
    net = model if model is not None else build_network(cfg)
    load_weights(net, training_weights(state, prefer_ema=use_ema), source=str(checkpoint),
                 target="the network" if model is not None else "the network its own config describes")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net.to(dev)
    chosen = metrics if metrics is not None else cfg.val.metrics
    if not chosen:
        raise ValueError(f"no metrics: {checkpoint} has no val.metrics; pass metrics=")
    res = evaluate(net, dataset, chosen, scale=cfg.scale, task=cfg.task, device=dev, tile=tile,
                   tile_overlap=tile_overlap, self_ensemble=self_ensemble, max_images=max_images, progress=progress)
    if out_json is not None:
        write_results(out_json, res, checkpoint=str(checkpoint), step=int(state["step"]), config=cfg.to_dict(),
                      tile=tile, self_ensemble=self_ensemble, ema=use_ema and state.get("ema") is not None,
                      device=dev)
    return res
