"""Effective receptive field (ERF): how much each input pixel moves one central output value.

Luo et al., "Understanding the Effective Receptive Field in Deep Convolutional Neural Networks", arXiv:1701.04128;
the tooling follows Ding et al., "Scaling Up Your Kernels to 31x31: Revisiting Large Kernel Design in CNNs"
(RepLKNet), arXiv:2203.06717, which MambaIR (Guo et al., arXiv:2402.15648, Fig. 1) and VMamba
(Liu et al., arXiv:2401.10166) adapt.

For each image x_i the map is ``g_i = |d target(f(x_i)) / d x_i|`` summed over input channels; the ERF is the mean
of g_i over images. Targets:

* ``"output_sum"`` (MambaIR's way): the centre pixel of the network output, summed over its RGB channels.
* ``"feature_relu"`` (RepLKNet's way): ReLU of the centre position of a feature map (a module's output, read by a
  forward hook), summed over channels.

Residual networks (output = input + R, e.g. CU-Mamba): ``subtract_input=True`` takes the target from
``f(x) - x``, i.e. from the predicted residual R, so the identity path (a unit spike at the centre pixel) does not
swamp the map; the two differ only at the centre pixel.

Magnitude: ``"relu"`` keeps the positive part of the gradient (RepLKNet's script), ``"abs"`` its absolute value.
Display transforms (:func:`display_transform`): ``"log"`` = log10(x + 1) / max (RepLKNet), ``"pow0.25"`` = x^0.25
(MambaIR), ``"pow0.2"`` = x^0.2 (VMamba), each rescaled to [0, 1] here. Area ratio (:func:`area_ratios`): the
smallest centred square holding at least a fraction t of the map's mass, for t in (0.2, 0.3, 0.5, 0.9, 0.99).

Differences from the published scripts: images are processed as one batch (each output value depends on its own
image only: models must be in eval mode, no batch statistics), the square search starts at side 1 and uses
``>= t`` (RepLKNet starts at side 3 and uses ``> t``), an unreached t gives NaN instead of a crash, and the
input set and size are the caller's (RepLKNet: 50 ImageNet-val images at 1024 px; MambaIR: 100 Urban100 x2 LR
images resized to 120x120). Explained in the book chapter "Effective receptive fields" (book/07_erf.ipynb).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ERF_TARGETS", "ERF_MAGNITUDES", "DISPLAY_TRANSFORMS", "AREA_THRESHOLDS", "erf_map", "display_transform", "row_major_split",
           "area_ratio", "area_ratios", "mass_within", "ERFSummary", "erf_summary"]

ERF_TARGETS = ("output_sum", "feature_relu")
ERF_MAGNITUDES = ("relu", "abs")
DISPLAY_TRANSFORMS = ("none", "log", "pow0.25", "pow0.2")
AREA_THRESHOLDS = (0.2, 0.3, 0.5, 0.9, 0.99)


def _centre_target(y: Tensor, relu: bool) -> Tensor:
    """y: (Bt, C, H, W) -> scalar: the centre position summed over channels and images."""
    if y.dim() != 4:
        raise ValueError(f"the ERF target must be a (Bt, C, H, W) map, got shape {tuple(y.shape)}")
    centre = y[:, :, y.shape[-2] // 2, y.shape[-1] // 2]  # (Bt, C)
    return (torch.relu(centre) if relu else centre).sum()


def erf_map(model: nn.Module, images: Tensor, target: str = "output_sum", magnitude: str = "relu",
            feature_module: Optional[nn.Module] = None, subtract_input: bool = False,
            batch_size: Optional[int] = None) -> Tensor:
    """The ERF of ``model``: mean over images of the channel-summed input-gradient magnitude.

    model: called as ``model(x)``; put it in eval mode (a warning-free check: batch-norm in train mode raises).
    images: (Bt, C, H, W) inputs in the model's range; each is one sample of the average.
    target: "output_sum" (centre output pixel summed over channels) or "feature_relu" (ReLU of the centre of
        ``feature_module``'s output, summed over channels; the module must output (Bt, C, H, W)).
    magnitude: "relu" (positive part of the gradient) or "abs".
    subtract_input: with target "output_sum", use ``model(x) - x`` (the residual of a network whose output adds
        its input; needs output and input of the same shape).
    batch_size: images per forward/backward pass (None: all at once). The map is the same (each image's gradient
        is its own); smaller chunks bound the memory of models whose activations grow fast with the input size
        (a full-resolution non-local block stores an (HW x HW) attention matrix per image).
    Returns (H, W) float64 on the CPU.
    """
    if target not in ERF_TARGETS:
        raise ValueError(f"unknown ERF target {target!r}; known: {ERF_TARGETS}")
    if magnitude not in ERF_MAGNITUDES:
        raise ValueError(f"unknown magnitude {magnitude!r}; known: {ERF_MAGNITUDES}")
    if images.dim() != 4:
        raise ValueError(f"images must be (Bt, C, H, W), got shape {tuple(images.shape)}")
    if subtract_input and target != "output_sum":
        raise ValueError("subtract_input applies to target='output_sum' only")
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batch_size < images.shape[0]:
            total = None
            for chunk in images.split(batch_size):
                part = erf_map(model, chunk, target=target, magnitude=magnitude, feature_module=feature_module,
                               subtract_input=subtract_input) * chunk.shape[0]
                total = part if total is None else total + part
            return total / images.shape[0]
    if target == "feature_relu" and feature_module is None:
        raise ValueError("target='feature_relu' needs feature_module (the module whose output is the feature map)")
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise ValueError("batch-norm in train mode mixes images of the batch: call model.eval() first")
    x = images.detach().clone().requires_grad_(True)
    captured = {}
    handle = None
    if target == "feature_relu":
        handle = feature_module.register_forward_hook(lambda mod, inp, out: captured.__setitem__("y", out))
    try:
        with torch.enable_grad():
            out = model(x)
            if subtract_input:
                if not isinstance(out, Tensor) or out.shape != x.shape:
                    raise ValueError(f"subtract_input needs an output shaped like the input {tuple(x.shape)}, got "
                                     f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
                out = out - x
            y = captured["y"] if target == "feature_relu" else out
            if not isinstance(y, Tensor):
                raise ValueError(f"the ERF target must be a tensor, got {type(y).__name__}")
            (grad,) = torch.autograd.grad(_centre_target(y, relu=target == "feature_relu"), x)
    finally:
        if handle is not None:
            handle.remove()
    mag = torch.relu(grad) if magnitude == "relu" else grad.abs()  # (Bt, C, H, W)
    return mag.sum(1).mean(0).detach().to("cpu", torch.float64)


def display_transform(erf: Tensor, transform: str = "pow0.25") -> np.ndarray:
    """The map as the papers display it, rescaled to [0, 1] (all-zero maps stay zero).

    erf: (H, W) non-negative. transform: "none", "log" (log10(x+1), RepLKNet), "pow0.25" (MambaIR), "pow0.2" (VMamba).
    """
    if transform not in DISPLAY_TRANSFORMS:
        raise ValueError(f"unknown display transform {transform!r}; known: {DISPLAY_TRANSFORMS}")
    a = np.asarray(erf, dtype=np.float64)
    if a.ndim != 2 or (a < 0).any():
        raise ValueError("the ERF map must be a non-negative (H, W) array")
    if transform == "log":
        a = np.log10(a + 1.0)
    elif transform.startswith("pow"):
        a = a ** float(transform[3:])
    peak = a.max()
    return a / peak if peak > 0 else a


def area_ratio(erf: np.ndarray, t: float, interpolate: bool = False) -> Tuple[float, float]:
    """Smallest centred square holding at least a fraction ``t`` of the map's mass.

    erf: (H, W) non-negative; squares have odd side 2i+1 around (H // 2, W // 2) and must fit in the map.
    interpolate: False (RepLKNet's definition) returns the first odd side that reaches ``t``, so small ERFs are
    quantised to 1^2, 3^2, 5^2, ... pixels; True reads the side off the mass-radius curve (the mass inside each
    odd square, with mass 0 at side 0) by linear interpolation between the two sides around ``t``, a continuous
    measure that tells apart maps of the same quantised size.
    Returns (side, side^2 / (H * W)); (nan, nan) when no fitting square reaches ``t`` (possible for even sizes,
    where the largest centred square misses one row and column) or when the map is all zero.
    """
    if not 0.0 < t <= 1.0:
        raise ValueError(f"the mass fraction t must be in (0, 1], got {t}")
    a = np.asarray(erf, dtype=np.float64)
    if a.ndim != 2 or (a < 0).any():
        raise ValueError("the ERF map must be a non-negative (H, W) array")
    h, w = a.shape
    total = a.sum()
    if total <= 0:
        return math.nan, math.nan
    ch, cw = h // 2, w // 2
    i_max = min(ch, cw, h - 1 - ch, w - 1 - cw)
    goal = t * total * (1 - 1e-12)
    prev_side, prev_mass = 0.0, 0.0
    for i in range(i_max + 1):
        inside = a[ch - i:ch + i + 1, cw - i:cw + i + 1].sum()
        side = float(2 * i + 1)
        if inside >= goal:
            if interpolate and inside > prev_mass:
                side = prev_side + (side - prev_side) * (t * total - prev_mass) / (inside - prev_mass)
                side = min(max(side, prev_side), float(2 * i + 1))
            return side, side * side / (h * w)
        prev_side, prev_mass = side, inside
    return math.nan, math.nan


def mass_within(erf: np.ndarray, side: int) -> float:
    """Fraction of the map's mass inside the centred ``side`` x ``side`` square (odd side, clipped to the map).

    erf: (H, W) non-negative. Used to ask how much of an ERF lies beyond a CNN's theoretical receptive field.
    """
    if side < 1 or side % 2 == 0:
        raise ValueError(f"side must be a positive odd number, got {side}")
    a = np.asarray(erf, dtype=np.float64)
    if a.ndim != 2 or (a < 0).any():
        raise ValueError("the ERF map must be a non-negative (H, W) array")
    total = a.sum()
    if total <= 0:
        return math.nan
    h, w = a.shape
    r = side // 2
    ch, cw = h // 2, w // 2
    return float(a[max(0, ch - r):ch + r + 1, max(0, cw - r):cw + r + 1].sum() / total)


def row_major_split(erf: np.ndarray, margin_rows: int = 0) -> Tuple[float, float]:
    """Where a one-direction (row-major, causal) scan can and cannot draw from, as shares of the map's mass.

    erf: (H, W) non-negative, centre (H // 2, W // 2). Returns (causal, beyond): ``causal`` = the share at pixels
    up to and including the centre in row-major order (those the scan visits before it); ``beyond`` = the share in
    rows more than ``margin_rows`` below the centre row. With ``margin_rows`` = the radius that the model's local
    layers add around the scan (one per 3x3 convolution in series), ``beyond`` is mass that neither the scan nor
    the local layers can carry: it must come from a global operation (e.g. channel attention's average pool).
    (nan, nan) for an all-zero map.
    """
    a = np.asarray(erf, dtype=np.float64)
    if a.ndim != 2 or (a < 0).any():
        raise ValueError("the ERF map must be a non-negative (H, W) array")
    if margin_rows < 0:
        raise ValueError(f"margin_rows must be >= 0, got {margin_rows}")
    total = a.sum()
    if total <= 0:
        return math.nan, math.nan
    h, w = a.shape
    centre = (h // 2) * w + w // 2
    causal = a.reshape(-1)[:centre + 1].sum() / total
    beyond = a[h // 2 + margin_rows + 1:].sum() / total
    return float(causal), float(beyond)


def area_ratios(erf: np.ndarray, thresholds: Sequence[float] = AREA_THRESHOLDS,
                interpolate: bool = False) -> Dict[float, float]:
    """{t: area ratio} for each threshold (NaN where t is never reached). erf: (H, W); see :func:`area_ratio`."""
    return {t: area_ratio(erf, t, interpolate=interpolate)[1] for t in thresholds}


@dataclass
class ERFSummary:
    """One model's ERF: the raw map (H, W), its area ratios and the map the ratios were measured on."""

    erf: Tensor
    measured_on: str
    ratios: Dict[float, float]


def erf_summary(erf: Tensor, measured_on: str = "none", thresholds: Sequence[float] = AREA_THRESHOLDS,
                interpolate: bool = True) -> ERFSummary:
    """Area ratios of ``erf`` (H, W) after ``measured_on`` ("none": raw gradient mass; "log": RepLKNet's choice),
    read off the mass-radius curve (``interpolate``, the default; False: RepLKNet's odd-square quantisation)."""
    a = np.asarray(erf, dtype=np.float64)
    if measured_on == "log":
        a = np.log10(a + 1.0)
    elif measured_on != "none":
        raise ValueError(f"area ratios are measured on 'none' or 'log', got {measured_on!r}")
    return ERFSummary(erf=erf, measured_on=measured_on, ratios=area_ratios(a, thresholds, interpolate))
