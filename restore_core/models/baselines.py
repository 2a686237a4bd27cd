"""Parameter-free baselines every restoration and fusion table is read against.

- :class:`BicubicUpsampler`: MATLAB ``imresize(x, s, 'bicubic')`` upsampling, the "Bicubic" row of every SR
  table (and the floor a trained SR model must clear).
- :class:`FixedFusion`: a fixed pixel-wise fusion rule of two registered sources (their mean, or their
  maximum, the "choose-max" rule), the floor a learned fusion network must clear.
- :class:`PassThrough`: the degraded input itself ("noisy input", "blurred input"): what a restoration network
  must improve on at all.
- :class:`GaussianFilter`: a fixed Gaussian low-pass (the classical denoiser); its ``sigma`` is chosen on training
  images, never on test images (:func:`restore_core.book.trivial_baselines.fit_on_training`).
- :class:`WienerDeconvolution`: frequency-domain Wiener deconvolution with the known blur kernel and a constant
  noise-to-signal ratio (chosen on training images), a classical deblurring baseline stronger than the input.

Both are ``nn.Module`` s with the call signature of the models they stand beside (``model(x)`` for SR,
``model(ir, vis)`` for fusion), so :func:`restore_core.train.evaluate` scores them exactly as it scores a
trained network, on the same data and metrics.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..data.degradations import blur, gaussian_kernel
from ..data.imresize import imresize

__all__ = ["BicubicUpsampler", "FixedFusion", "FUSION_RULES", "PassThrough", "GaussianFilter",
           "WienerDeconvolution"]

#: the rules :class:`FixedFusion` knows, name -> what it computes
FUSION_RULES = {"mean": "(a + b) / 2", "max": "max(a, b), pixel-wise"}


class BicubicUpsampler(nn.Module):
    """MATLAB-bicubic upsampling by an integer ``scale`` (no parameters).

    x: ``(Bt, C, H, W)`` float -> ``(Bt, C, scale·H, scale·W)``, unclipped, same dtype (the metric code clips
    and quantises as it does for a network's output).
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"BicubicUpsampler: scale must be a positive integer, got {scale!r}")
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"BicubicUpsampler: expected a (Bt, C, H, W) batch, got shape {tuple(x.shape)}")
        if self.scale == 1:
            return x
        return imresize(x, scale=self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class FixedFusion(nn.Module):
    """A fixed pixel-wise fusion rule of two sources (no parameters).

    ir, vis: ``(Bt, C, H, W)`` of the same shape -> fused ``(Bt, C, H, W)``. ``rule`` is a key of
    :data:`FUSION_RULES`: ``"mean"`` or ``"max"``.
    """

    def __init__(self, rule: str = "mean") -> None:
        super().__init__()
        if rule not in FUSION_RULES:
            raise ValueError(f"FixedFusion: unknown rule {rule!r}; choose one of {sorted(FUSION_RULES)}")
        self.rule = rule

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        if ir.shape != vis.shape:
            raise ValueError(f"FixedFusion: the two sources must have the same shape, got {tuple(ir.shape)} "
                             f"and {tuple(vis.shape)} (register and resize them first)")
        if self.rule == "mean":
            return (ir + vis) / 2
        return torch.maximum(ir, vis)

    def extra_repr(self) -> str:
        return f"rule={self.rule!r}"


def _check_batch(name: str, x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a (Bt, C, H, W) batch, got shape {tuple(x.shape)}")


class PassThrough(nn.Module):
    """The degraded input, unchanged: ``(Bt, C, H, W) -> (Bt, C, H, W)`` (the "noisy / blurred input" row)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch("PassThrough", x)
        return x


class GaussianFilter(nn.Module):
    """A per-channel Gaussian blur of standard deviation ``sigma`` px (kernel 2·ceil(3σ)+1, reflect padding).

    x: ``(Bt, C, H, W)`` -> same shape. ``sigma = 0`` is the identity.
    """

    def __init__(self, sigma: float) -> None:
        super().__init__()
        if not sigma >= 0:
            raise ValueError(f"GaussianFilter: sigma must be >= 0, got {sigma!r}")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch("GaussianFilter", x)
        if self.sigma == 0:
            return x
        size = 2 * math.ceil(3 * self.sigma) + 1
        return blur(x, gaussian_kernel(size, self.sigma))

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}"


class WienerDeconvolution(nn.Module):
    """Wiener deconvolution with a known kernel ``k`` and a constant noise-to-signal ratio ``nsr``:
    ``X = conj(K) Y / (|K|^2 + nsr)`` in the Fourier domain.

    The image is reflect-padded by the kernel size first (so the FFT's circular boundary falls in the padding) and
    cropped back. x: ``(Bt, C, H, W)`` -> same shape; kernel: ``(kh, kw)``, summing to 1, centred as
    :func:`restore_core.data.degradations.blur` applies it.
    """

    def __init__(self, kernel: torch.Tensor, nsr: float) -> None:
        super().__init__()
        if kernel.ndim != 2:
            raise ValueError(f"WienerDeconvolution: kernel must be 2-D (kh, kw), got shape {tuple(kernel.shape)}")
        if not nsr > 0:
            raise ValueError(f"WienerDeconvolution: nsr must be positive, got {nsr!r}")
        self.register_buffer("kernel", kernel.detach().to(torch.float64).clone(), persistent=False)
        self.nsr = float(nsr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch("WienerDeconvolution", x)
        kh, kw = self.kernel.shape
        ph, pw = kh, kw
        if x.shape[-2] <= ph or x.shape[-1] <= pw:
            raise ValueError(f"WienerDeconvolution: image {tuple(x.shape[-2:])} too small for a {kh}x{kw} kernel")
        y = torch.nn.functional.pad(x.to(torch.float64), (pw, pw, ph, ph), mode="reflect")
        H, W = y.shape[-2:]
        k = torch.zeros(H, W, dtype=torch.float64, device=x.device)
        k[:kh, :kw] = self.kernel.to(x.device)
        k = torch.roll(k, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))  # kernel centre at the origin
        K = torch.fft.rfft2(k)
        Y = torch.fft.rfft2(y)
        X = Y * K.conj() / (K.abs() ** 2 + self.nsr)
        out = torch.fft.irfft2(X, s=(H, W))
        return out[..., ph:H - ph, pw:W - pw].to(x.dtype)

    def extra_repr(self) -> str:
        return f"kernel={tuple(self.kernel.shape)}, nsr={self.nsr:g}"
