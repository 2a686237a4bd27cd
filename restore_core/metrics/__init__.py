"""Image-quality metrics: PSNR/SSIM (restoration) and the fusion metrics of CDDFuse's evaluator.

``METRICS`` is the metric registry (``restore_core.registry.Registry("metric")``). Every entry is a function
on numpy images on the 0-255 scale:

* restoration metrics ``(img, ref, crop_border=0, y_channel=False) -> float``: ``psnr``, ``ssim``;
* fusion metrics of the fused image alone ``(F) -> float``: ``EN``, ``SD``, ``SF``, ``AG``;
* fusion metrics with the sources ``(F, A, B) -> float``: ``MI``, ``SCD``, ``VIF``, ``Qabf``, ``SSIM_fusion``.

``METRIC_KIND[name]`` says which of the three signatures a metric has ("full_reference", "no_reference",
"fusion"). Torch versions for validation during training: :func:`psnr_torch`, :func:`ssim_torch`.
"""
from __future__ import annotations

from typing import Dict

from ..registry import Registry
from .fusion import (QABF_CONSTANTS, average_gradient, entropy, fusion_metrics, mutual_information,
                     mutual_information_fusion, qabf, scd, spatial_frequency, ssim_fusion, standard_deviation,
                     vif_fusion, vif_pixel)
from .psnr_ssim import psnr, psnr_from_mse, psnr_torch, rgb_to_y, rgb_to_y_torch, ssim, ssim_torch

METRICS = Registry("metric")
METRIC_KIND: Dict[str, str] = {}


def _register(name: str, fn, kind: str) -> None:
    METRICS.register(name, fn)
    METRIC_KIND[name] = kind


_register("psnr", psnr, "full_reference")
_register("ssim", ssim, "full_reference")
_register("EN", entropy, "no_reference")
_register("SD", standard_deviation, "no_reference")
_register("SF", spatial_frequency, "no_reference")
_register("AG", average_gradient, "no_reference")
_register("MI", mutual_information_fusion, "fusion")
_register("SCD", scd, "fusion")
_register("VIF", vif_fusion, "fusion")
_register("Qabf", qabf, "fusion")
_register("SSIM_fusion", ssim_fusion, "fusion")


def get_metric(name: str):
    """The registered metric function ``name`` (KeyError listing the known names otherwise)."""
    return METRICS.get(name)


def list_metrics():
    return METRICS.names()


__all__ = ["METRICS", "METRIC_KIND", "get_metric", "list_metrics", "psnr", "ssim", "psnr_torch", "ssim_torch",
           "psnr_from_mse", "rgb_to_y", "rgb_to_y_torch", "entropy", "standard_deviation", "spatial_frequency",
           "average_gradient", "mutual_information", "mutual_information_fusion", "scd", "vif_pixel",
           "vif_fusion", "qabf", "ssim_fusion", "fusion_metrics", "QABF_CONSTANTS"]
