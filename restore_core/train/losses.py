"""Training losses of the four papers, registered by the names their BasicSR-style configs use.

- MambaIR (arXiv:2402.15648): L1 for SR; ``CharbonnierLoss`` with ``eps: 1e-3`` for colour denoising. MambaIR
  trains with BasicSR, whose Charbonnier is ``sqrt(d^2 + eps)`` (eps *not* squared, default 1e-12), so its
  ``eps: 1e-3`` means an effective epsilon of sqrt(1e-3) ~ 0.0316 inside the root.
- CU-Mamba (arXiv:2404.11778, no public code): Charbonnier (eps 1e-3, written as ``sqrt(d^2 + eps^2)`` as in
  Restormer / MPRNet's code) + 0.1 x L1 of the FFT difference (``FFTLoss``).
- RNAN (arXiv:1903.10082): MSE (``MSELoss``, alias ``L2Loss``).
- FusionMamba (arXiv:2404.09498, millieXie/FusionMamba ``loss.py``): 10 x SSIM term + 10 x intensity (MSE to
  the element-wise max of the visible Y channel and the infrared image) + 1 x gradient (L1 between Sobel
  magnitudes of the fused image and the max of the sources' Sobel magnitudes), see :class:`FusionLoss`.

Charbonnier: both conventions are offered explicitly, ``CharbonnierLoss(eps, eps_squared=False)`` is BasicSR's
``sqrt(d^2 + eps)``; ``eps_squared=True`` is ``sqrt(d^2 + eps^2)`` (Restormer, MPRNet, CU-Mamba's paper).

Differences from the official FusionMamba code: its "SSIM" term is really the vendored ``pytorch_msssim.msssim``
(5 scales, values mapped by (s+1)/2, and a product that raises the last scale's SSIM to the 4th power); the
paper writes plain SSIM. ``FusionLoss(ssim_mode=...)`` offers "ssim" (paper, default), "msssim" (standard
MS-SSIM weights) and "msssim_official" (the code's formula, quirks included). The SSIM here is a loss
(differentiable, Gaussian window 11 / sigma 1.5, valid padding, data range 1), not the evaluation metric, which
lives in :mod:`restore_core.metrics`.

Explained in the book chapter on training ("Losses and schedules").
"""
from __future__ import annotations

import inspect
from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import Registry

LOSSES = Registry("loss")

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(x: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def _check(pred: Tensor, target: Tensor, name: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"{name}: prediction shape {tuple(pred.shape)} differs from target shape "
                         f"{tuple(target.shape)}")


class _PixelLoss(nn.Module):
    """Base for ``loss_weight * reduce(f(pred - target))``."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.loss_weight = float(loss_weight)
        self.reduction = reduction

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """pred, target: (Bt, C, H, W) (any equal shapes). Returns a scalar (or the map for reduction="none")."""
        _check(pred, target, type(self).__name__)
        return self.loss_weight * _reduce(self.elementwise(pred, target), self.reduction)


@LOSSES.register("L1Loss")
class L1Loss(_PixelLoss):
    """Mean absolute error ``|pred - target|``."""

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs()


@LOSSES.register("MSELoss")
class MSELoss(_PixelLoss):
    """Mean squared error ``(pred - target)^2`` (RNAN's loss)."""

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).square()


LOSSES.register("L2Loss", obj=MSELoss)


@LOSSES.register("CharbonnierLoss")
class CharbonnierLoss(_PixelLoss):
    """Charbonnier (smooth L1): ``sqrt(d^2 + eps)`` or, with ``eps_squared=True``, ``sqrt(d^2 + eps^2)``.

    The default (``eps_squared=False``, ``eps=1e-12``) is BasicSR's, which MambaIR's denoising configs use with
    ``eps: 1e-3``. Restormer / MPRNet / CU-Mamba write ``sqrt(d^2 + eps^2)`` with eps 1e-3.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean", eps: float = 1e-12,
                 eps_squared: bool = False) -> None:
        super().__init__(loss_weight, reduction)
        if eps <= 0:
            raise ValueError(f"CharbonnierLoss: eps must be > 0, got {eps}")
        self.eps = float(eps)
        self.eps_squared = bool(eps_squared)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        offset = self.eps * self.eps if self.eps_squared else self.eps
        return torch.sqrt((pred - target).square() + offset)


@LOSSES.register("FFTLoss")
class FFTLoss(_PixelLoss):
    """L1 distance of the 2D FFTs (CU-Mamba's frequency loss, weight 0.1 in the paper).

    ``mode="real_imag"`` (default, MIMO-UNet / NAFNet style): mean of ``|Re(D)|`` and ``|Im(D)|`` over the
    stacked real and imaginary parts, where ``D = F(pred) - F(target)``; ``mode="modulus"``: mean of ``|D|``
    (what ``nn.L1Loss`` on complex tensors computes). ``norm`` is ``torch.fft.fft2``'s normalisation
    ("backward" = unnormalised, as in those codes). CU-Mamba publishes no code, so which one it used is unknown.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean", norm: str = "backward",
                 mode: str = "real_imag") -> None:
        super().__init__(loss_weight, reduction)
        if norm not in ("backward", "ortho", "forward"):
            raise ValueError(f"FFTLoss: norm must be backward/ortho/forward, got {norm!r}")
        if mode not in ("real_imag", "modulus"):
            raise ValueError(f"FFTLoss: mode must be real_imag/modulus, got {mode!r}")
        self.norm = norm
        self.mode = mode

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        # the FFT is linear: F(p) - F(t) = F(p - t); computed in float32 at least (no half-precision FFT on CPU)
        work = torch.promote_types(pred.dtype, torch.float32)
        diff = torch.fft.fft2((pred - target).to(work), norm=self.norm)  # (..., H, W) complex
        if self.mode == "modulus":
            return diff.abs()
        return torch.view_as_real(diff).abs()  # (..., H, W, 2)


# ---------------------------------------------------------------------------------------------------------------
# SSIM as a differentiable loss term (used by FusionLoss)

def _gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - size // 2
    g = torch.exp(-coords.square() / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()  # (C, 1, k, k)


def ssim_terms(x: Tensor, y: Tensor, window_size: int = 11, sigma: float = 1.5,
               data_range: float = 1.0) -> "tuple[Tensor, Tensor]":
    """Mean SSIM and mean contrast-structure term of two images, Gaussian window, valid padding.

    x, y: (Bt, C, H, W) in [0, data_range]. The window shrinks to min(window_size, H, W) for small images.
    Returns (ssim, cs) as scalars. Matches skimage's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)`` on the valid region (tested).
    """
    _check(x, y, "ssim")
    channels = x.shape[1]
    k = min(window_size, x.shape[-2], x.shape[-1])
    win = _gaussian_window(k, sigma, channels, x)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, win, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x.square() + mu_y.square() + c1) * cs_map
    return ssim_map.mean(), cs_map.mean()


_MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(x: Tensor, y: Tensor, official_quirks: bool = False) -> Tensor:
    """Multi-scale SSIM (Wang et al. 2003 weights, 5 scales, 2x2 average pooling between scales).

    x, y: (Bt, C, H, W) in [0, 1]. Values are mapped by (s + 1) / 2 before the powers (keeps them positive,
    as the FusionMamba code does). ``official_quirks=True`` reproduces FusionMamba's product
    ``prod(cs[:-1]^w[:-1] * ssim[-1]^w[-1])``, which raises the last scale's SSIM term to the 4th power.
    """
    sims, css = [], []
    for level in range(len(_MSSSIM_WEIGHTS)):
        s, cs = ssim_terms(x, y)
        sims.append(s)
        css.append(cs)
        if level + 1 < len(_MSSSIM_WEIGHTS):
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    w = torch.tensor(_MSSSIM_WEIGHTS, dtype=x.dtype, device=x.device)
    sim = (torch.stack(sims) + 1) / 2
    cs = (torch.stack(css) + 1) / 2
    if official_quirks:
        return torch.prod(cs[:-1] ** w[:-1] * sim[-1] ** w[-1])
    return torch.prod(cs[:-1] ** w[:-1]) * sim[-1] ** w[-1]


def sobel_magnitude(x: Tensor) -> Tensor:
    """``|G_x * x| + |G_y * x|`` with 3x3 Sobel kernels, zero padding 1 (FusionMamba's gradient operator).

    x: (Bt, C, H, W). Returns (Bt, C, H, W).
    """
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    kernels = torch.stack([gx, gx.t().flip(0)])  # (2, 3, 3): d/dx and d/dy (rows 1,2,1 / 0 / -1,-2,-1)
    c = x.shape[1]
    weight = kernels[:, None].repeat(c, 1, 1, 1)  # (2C, 1, 3, 3)
    g = F.conv2d(x, weight, padding=1, groups=c)  # (Bt, 2C, H, W)
    return g[:, 0::2].abs() + g[:, 1::2].abs()


@LOSSES.register("FusionLoss")
class FusionLoss(nn.Module):
    """Infrared-visible fusion loss (FusionMamba):

    ``w_ssim * (0.5 (1 - S(F, Y)) + 0.5 (1 - S(F, IR))) + w_int * MSE(F, max(Y, IR))
    + w_grad * L1(sobel(F), max(sobel(Y), sobel(IR)))``

    with weights 10 / 10 / 1 (the official code's values for IR-VIS and CT-MRI). ``S`` is chosen by
    ``ssim_mode``: "ssim" (paper text), "msssim", or "msssim_official" (the code's formula).
    """

    def __init__(self, loss_weight: float = 1.0, ssim_weight: float = 10.0, intensity_weight: float = 10.0,
                 gradient_weight: float = 1.0, ssim_mode: str = "ssim") -> None:
        super().__init__()
        if ssim_mode not in ("ssim", "msssim", "msssim_official"):
            raise ValueError(f"FusionLoss: ssim_mode must be ssim/msssim/msssim_official, got {ssim_mode!r}")
        self.loss_weight = float(loss_weight)
        self.ssim_weight = float(ssim_weight)
        self.intensity_weight = float(intensity_weight)
        self.gradient_weight = float(gradient_weight)
        self.ssim_mode = ssim_mode
        self.last_terms: Dict[str, float] = {}

    def _similarity(self, a: Tensor, b: Tensor) -> Tensor:
        if self.ssim_mode == "ssim":
            return ssim_terms(a, b)[0]
        return ms_ssim(a, b, official_quirks=self.ssim_mode == "msssim_official")

    def forward(self, fused: Tensor, vis_y: Tensor, ir: Tensor) -> Tensor:
        """fused, vis_y, ir: (Bt, 1, H, W) in [0, 1] (vis_y = the visible image's Y channel)."""
        _check(fused, vis_y, "FusionLoss (fused vs visible Y)")
        _check(fused, ir, "FusionLoss (fused vs infrared)")
        ssim_term = 0.5 * (1 - self._similarity(fused, vis_y)) + 0.5 * (1 - self._similarity(fused, ir))
        intensity = F.mse_loss(fused, torch.maximum(vis_y, ir))
        gradient = F.l1_loss(sobel_magnitude(fused), torch.maximum(sobel_magnitude(vis_y), sobel_magnitude(ir)))
        self.last_terms = {"ssim": float(ssim_term.detach()), "intensity": float(intensity.detach()),
                           "gradient": float(gradient.detach())}
        total = self.ssim_weight * ssim_term + self.intensity_weight * intensity + self.gradient_weight * gradient
        return self.loss_weight * total


def build_loss(opt: Dict[str, Any], where: str = "loss") -> nn.Module:
    """A loss from a BasicSR-style dict ``{type: CharbonnierLoss, loss_weight: 1.0, eps: 1e-3, ...}``.

    Unknown keys raise naming ``where`` (the config path), e.g. ``train.pixel_opt.epss``.
    """
    opt = dict(opt)
    if "type" not in opt:
        raise ValueError(f"{where}: missing 'type' (one of {', '.join(LOSSES.names())})")
    name = opt.pop("type")
    if name not in LOSSES:
        raise ValueError(f"{where}.type: unknown loss {name!r}; known: {', '.join(LOSSES.names())}")
    cls = LOSSES.get(name)
    params = inspect.signature(cls.__init__).parameters
    bad = sorted(k for k in opt if k not in params or k == "self")
    if bad:
        valid = sorted(k for k in params if k != "self")
        raise ValueError(f"{where}: unknown option(s) {', '.join(where + '.' + b for b in bad)} for {name}; "
                         f"valid: {valid}")
    return cls(**opt)


class CombinedLoss(nn.Module):
    """The sum of the configured pixel-space losses (``pixel_opt`` + ``fft_opt`` + ...), each weighted.

    ``forward(pred, target)`` returns (total, {name: value}) with pred, target: (Bt, C, H, W).
    """

    def __init__(self, losses: Dict[str, nn.Module]) -> None:
        super().__init__()
        if not losses:
            raise ValueError("no loss configured: set train.pixel_opt (or fft_opt / fusion_opt)")
        self.losses = nn.ModuleDict(losses)

    def forward(self, pred: Tensor, target: Tensor) -> "tuple[Tensor, Dict[str, Tensor]]":
        parts = {name: loss(pred, target) for name, loss in self.losses.items()}
        total = sum(parts.values())  # type: ignore[arg-type]
        return total, parts  # type: ignore[return-value]
