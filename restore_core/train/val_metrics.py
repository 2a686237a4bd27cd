"""Validation metrics as a config names them: ``val.metrics.<name>: {type, better, <arguments>}`` -> a callable
:class:`Metric` scoring (1, C, H, W) tensors in [0, 1] with a function of :data:`restore_core.metrics.METRICS`.

BasicSR's names are accepted (``calculate_psnr``, ``calculate_ssim``, ``test_y_channel``); a misspelled type or
argument raises naming the key.
"""
from __future__ import annotations

import inspect
from typing import Any, Dict, List, Mapping

from torch import Tensor

from .config_schema import MetricOptions


def _metric_options(metrics: Mapping[str, Any]) -> Dict[str, MetricOptions]:
    """``val.metrics`` entries as :class:`MetricOptions` (plain dicts converted)."""
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


def _registry() -> Any:
    """:mod:`restore_core.metrics`, imported when a metric is first built: it imports scipy.signal, measured at
    ~2 s of ``python -X importtime -c "import restore_core.metrics"`` on two CPU cores, which every process that
    imports restore_core.train (to read a config, to start a data download) would pay otherwise."""
    from .. import metrics

    return metrics


def metric_names() -> List[str]:
    """The metric ``type`` names a config may use (the registry's and BasicSR's aliases)."""
    return sorted(set(_registry().METRICS.names()) | set(METRIC_ALIASES))


class Metric:
    """A configured metric: a function of :data:`restore_core.metrics.METRICS` and its arguments.

    ``full_reference`` metrics (psnr, ssim) get the output and the target, ``no_reference`` fusion metrics
    (EN, SD, SF, AG) the fused image, ``fusion`` metrics (MI, SCD, VIF, Qabf, SSIM) the fused image, the
    infrared and the visible image (CDDFuse's order A = IR, B = VIS), all as float arrays on 0-255.
    Outputs are rounded to 8 bits first (``quantize: true``, as BasicSR's ``tensor2img``), so the numbers are
    those of the saved PNGs, as the papers report them.
    """

    def __init__(self, name: str, opt: MetricOptions) -> None:
        registry = _registry()
        key = METRIC_ALIASES.get(opt.type, opt.type)
        if key not in registry.METRICS:
            raise ValueError(f"val.metrics.{name}.type: unknown metric {opt.type!r}; known: "
                             f"{', '.join(metric_names())}")
        self.name, self.fn, self.kind = name, registry.METRICS.get(key), registry.METRIC_KIND[key]
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
