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
from torch import Tensor, nn

from .config import MetricOptions


@dataclass
class EvalResult:
    """per_image: ``[{"name": ..., <metric>: value, ...}]``; mean: ``{<metric>: mean over images}``."""

    per_image: List[Dict[str, Any]] = field(default_factory=list)
    mean: Dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"mean": self.mean, "per_image": self.per_image}


def _metric_options(metrics: Mapping[str, Any]) -> Dict[str, MetricOptions]:
    out = {}
    for name, m in metrics.items():
        if isinstance(m, MetricOptions):
            out[name] = m
        else:
            d = dict(m)
            out[name] = MetricOptions(type=d.pop("type"), better=d.pop("better", "higher"), params=d)
    return out


# BasicSR's metric names -> restore_core.metrics.METRICS names
METRIC_ALIASES: Dict[str, str] = {"calculate_psnr": "psnr", "calculate_ssim": "ssim", "SSIM": "SSIM_fusion"}
_PARAM_ALIASES = {"test_y_channel": "y_channel"}  # BasicSR's key -> restore_core.metrics' argument


def metric_names() -> List[str]:
    """The metric ``type`` names a config may use (the registry's and BasicSR's aliases)."""
    from ..metrics import METRICS

    return sorted(set(METRICS.names()) | set(METRIC_ALIASES))


class Metric:
    """A configured metric: a function of :data:`restore_core.metrics.METRICS` and its arguments.

    ``full_reference`` metrics (psnr, ssim) get the output and the target, ``no_reference`` fusion metrics
    (EN, SD, SF, AG) the fused image, ``fusion`` metrics (MI, SCD, VIF, Qabf, SSIM) the fused image, the
    infrared and the visible image (CDDFuse's order A = IR, B = VIS), all as float arrays on 0-255.
    Outputs are rounded to 8 bits first (``quantize: true``, as BasicSR's ``tensor2img``), so the numbers are
    those of the saved PNGs, as the papers report them.
    """

    def __init__(self, name: str, opt: MetricOptions) -> None:
        import inspect

        from ..metrics import METRIC_KIND, METRICS

        key = METRIC_ALIASES.get(opt.type, opt.type)
        if key not in METRICS:
            raise ValueError(f"val.metrics.{name}.type: unknown metric {opt.type!r}; known: "
                             f"{', '.join(metric_names())}")
        self.name, self.fn, self.kind = name, METRICS.get(key), METRIC_KIND[key]
        params = {_PARAM_ALIASES.get(k, k): v for k, v in opt.params.items()}
        self.quantize = bool(params.pop("quantize", True))
        accepted = list(inspect.signature(self.fn).parameters)
        n_images = {"full_reference": 2, "no_reference": 1, "fusion": 3}[self.kind]
        bad = sorted(k for k in params if k not in accepted[n_images:])
        if bad:
            raise ValueError(f"val.metrics.{name}: unknown option(s) {bad} for {opt.type}; valid: "
                             f"{accepted[n_images:] + ['quantize']}")
        self.params = params

    def _arr(self, x: Tensor) -> Any:
        """(1, C, H, W) in [0, 1] -> (H, W, C) float64 on 0-255 (rounded when quantizing)."""
        a = x[0].detach().double().clamp(0, 1).mul(255.0)
        if self.quantize:
            a = a.round()
        return a.permute(1, 2, 0).cpu().numpy()

    def __call__(self, out: Tensor, *refs: Tensor) -> float:
        """out and refs: (1, C, H, W) in [0, 1]; refs = (target,) or, for fusion, (vis_y, ir)."""
        if self.kind == "full_reference":
            return float(self.fn(self._arr(out), self._arr(refs[0]), **self.params))
        fused = self._arr(out)[:, :, 0]
        if self.kind == "no_reference":
            return float(self.fn(fused, **self.params))
        vis, ir = self._arr(refs[0])[:, :, 0], self._arr(refs[1])[:, :, 0]
        return float(self.fn(fused, ir, vis, **self.params))


def build_metrics(metrics: Mapping[str, Any]) -> Dict[str, "Metric"]:
    """``{name: Metric}`` from a ``val.metrics`` mapping; unknown types or options raise naming the key."""
    return {name: Metric(name, m) for name, m in _metric_options(metrics).items()}


def restore(model: nn.Module, lq: Tensor, *, scale: int = 1, tile: Optional[int] = None, tile_overlap: int = 32,
            self_ensemble: bool = False) -> Tensor:
    """Run ``model`` on a batch of full images, tiled and/or self-ensembled when asked.

    lq: (Bt, C, H, W) -> (Bt, C', H*scale, W*scale). Tiling and the x8 ensemble are
    :mod:`restore_core.inference`'s.
    """
    if tile is None and not self_ensemble:
        return model(lq)
    from ..inference import restore_tensor

    out = restore_tensor(model, lq, tile=tile, tile_overlap=tile_overlap, use_self_ensemble=self_ensemble,
                         device=lq.device)
    if out.shape[-1] != lq.shape[-1] * scale:
        raise ValueError(f"the model's output width {out.shape[-1]} is not scale {scale} x {lq.shape[-1]}")
    return out.to(lq.device)


def _pair(item: Any, task: str) -> tuple:
    from .trainer import fusion_pair, restoration_pair

    return fusion_pair(item) if task == "fusion" else restoration_pair(item)


def _name(item: Any, i: int) -> str:
    if isinstance(item, Mapping):
        for k in ("name", "lq_path", "gt_path", "path"):
            if k in item:
                v = item[k]
                return Path(v).stem if k.endswith("path") else str(v)
    return f"{i:04d}"


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Any, metrics: Mapping[str, Any], *, scale: int = 1,
             task: str = "restoration", device: Optional[Union[str, torch.device]] = None,
             tile: Optional[int] = None, tile_overlap: int = 32, self_ensemble: bool = False,
             max_images: Optional[int] = None, progress: bool = True) -> EvalResult:
    """Score ``model`` on every item of ``dataset``.

    dataset items: dicts with "lq"/"hq" (restoration) or "ir"/"vis" (fusion; "a"/"b" = infrared/visible)
    tensors (C, H, W) in [0, 1], or pairs; an optional "name".
    metrics: ``{name: {type: calculate_psnr, crop_border: 2, test_y_channel: true}}``
    (or :class:`~restore_core.train.config.MetricOptions`); types are :func:`metric_names` (BasicSR's
    calculate_psnr / calculate_ssim, and the fusion metrics EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, scored
    on the visible image's Y and the infrared image).
    """
    from .trainer import luma

    fns = build_metrics(metrics)
    opts = fns
    if device is not None:
        dev = torch.device(device)
    else:  # where the model lives; a parameter-free model (a fixed baseline) runs on the CPU
        dev = next(iter(model.parameters()), torch.empty(0)).device
    was_training = model.training
    model.eval()
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    rows: List[Dict[str, Any]] = []
    it = range(n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="evaluate", unit="img")
    try:
        for i in it:
            item = dataset[i]
            a, b = _pair(item, task)
            a, b = a.unsqueeze(0).to(dev), b.unsqueeze(0).to(dev)
            row: Dict[str, Any] = {"name": _name(item, i)}
            if task == "fusion":
                ir, vis_y = a.float(), luma(b.float())
                fused = model(ir, vis_y).float().clamp(0, 1)
                for name in opts:
                    row[name] = fns[name](fused, vis_y, ir)
            else:
                pred = restore(model, a, scale=scale, tile=tile, tile_overlap=tile_overlap,
                               self_ensemble=self_ensemble).float().clamp(0, 1)
                for name in opts:
                    row[name] = fns[name](pred, b.float())
            rows.append(row)
    finally:
        model.train(was_training)
    mean = {}
    for name in opts:
        vals = [r[name] for r in rows]
        finite = [v for v in vals if math.isfinite(v)]
        mean[name] = sum(finite) / len(finite) if finite else float("nan")
    return EvalResult(rows, mean)


def write_results(path: Union[str, Path], result: EvalResult, **info: Any) -> Path:
    """Write ``{"mean", "per_image", "provenance": {...}, **info}`` as JSON, atomically."""
    from ..provenance import provenance

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
    from ..models.weights import load_weights
    from .builders import build_network
    from .checkpoint import load_checkpoint, model_weights
    from .config import config_from_dict

    state = load_checkpoint(checkpoint)
    cfg = config_from_dict(state["config"])
    net = model if model is not None else build_network(cfg)
    load_weights(net, model_weights(state, prefer_ema=use_ema), source=str(checkpoint),
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
