"""No-reference and source-referenced image-fusion metrics, as CDDFuse's evaluator defines them.

FusionMamba (Xie et al., "FusionMamba: Dynamic Feature Enhancement for Multimodal Image Fusion with Mamba",
arXiv:2404.09498) scores infrared-visible fusion with the evaluator of CDDFuse (Zhao et al., CVPR 2023).
Inputs are gray images as float arrays on the 0-255 scale, all of one shape ``(H, W)``: the fused image ``F``
and the sources ``A`` (e.g. infrared) and ``B`` (e.g. visible). Definitions:

* EN  = -sum_k p_k log2 p_k over the 256 gray levels of ``round(F)`` (bits). We clip to 0..255 before rounding
  (CDDFuse casts with ``np.uint8``, which wraps out-of-range values).
* SD  = population standard deviation of F.
* SF  = sqrt(mean((F[:, 1:] - F[:, :-1])^2) + mean((F[1:] - F[:-1])^2)).
* AG  = mean(sqrt((Gx^2 + Gy^2) / 2)) with central differences inside and one-sided ones at the borders
  (``numpy.gradient``).
* MI  = I(F; A) + I(F; B) in **nats**, every distinct pixel value a symbol (scikit-learn's
  ``mutual_info_score`` semantics; MATLAB toolboxes usually use 256-bin histograms and bits).
* SCD = corr(A, F - B) + corr(B, F - A) (Aslantas & Bendes 2015). A difference image with zero variance
  (F equal to a source up to a constant, judged with a relative tolerance of 1e-9 so float rounding does not
  count as signal) has no defined correlation; that term counts as 0 here (CDDFuse's code returns NaN or a
  correlation with rounding noise).
* VIF = VIF(A, F) + VIF(B, F), pixel-domain VIF (Sheikh & Bovik 2006): 4 scales, Gaussian windows of size
  2^(5-s)+1 and sigma = size/5 (MATLAB ``fspecial``), 'valid' filtering, dyadic subsampling, sigma_n^2 = 2.
* Qabf = Xydeas-Petrovic edge-preservation with Sobel gradients (zero-padded 'same' convolution) and
  Tg = 0.9994, kg = -15, Dg = 0.5, Ta = 0.9879, ka = -22, Da = 0.8; orientation ``arctan(Sy / Sx)`` (pi/2 where
  Sx = 0). Where the source and fused gradient strengths are equal, CDDFuse's code sets the strength ratio to
  the gradient value itself instead of 1; ``equal_strength="cddfuse"`` (default) reproduces that,
  ``"one"`` uses the paper's ratio of 1.
* SSIM = ssim(F, A) + ssim(F, B) with scikit-image's defaults as CDDFuse calls them (7x7 uniform window, sample
  covariance). CDDFuse passes float images without ``data_range``, and the scikit-image of its time then used
  the float dtype range 2.0; ``data_range=2.0`` (default) reproduces its numbers, 255 gives the textbook value.

Checked once against CDDFuse's ``utils/Evaluator.py`` on float64 images: all nine agree within 1e-15
(all but MI bit-identical); on the float32 arrays its reader produces, its own float32 arithmetic
moves Qabf by ~2e-4 and VIF by ~1e-5.
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np
from scipy.signal import convolve2d
from skimage.metrics import structural_similarity

QABF_CONSTANTS = dict(Tg=0.9994, kg=-15.0, Dg=0.5, Ta=0.9879, ka=-22.0, Da=0.8)


def _gray(img: np.ndarray, name: str = "image") -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"fusion metrics take gray (H, W) images on the 0-255 scale; {name} has shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _triplet(fused, a, b):
    f, a, b = _gray(fused, "F"), _gray(a, "A"), _gray(b, "B")
    if not f.shape == a.shape == b.shape:
        raise ValueError(f"F, A and B must have the same shape, got {f.shape}, {a.shape}, {b.shape}")
    return f, a, b


def entropy(img: np.ndarray) -> float:
    """EN in bits over 256 gray levels. img: ``(H, W)`` on 0-255."""
    levels = np.clip(np.round(_gray(img)), 0, 255).astype(np.int64).ravel()
    p = np.bincount(levels, minlength=256) / levels.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0


def standard_deviation(img: np.ndarray) -> float:
    """SD (population). img: ``(H, W)``."""
    return float(np.std(_gray(img)))


def spatial_frequency(img: np.ndarray) -> float:
    """SF = sqrt(RF^2 + CF^2). img: ``(H, W)`` with H, W >= 2."""
    a = _gray(img)
    if min(a.shape) < 2:
        raise ValueError(f"spatial frequency needs at least 2x2 pixels, got {a.shape}")
    return float(math.sqrt(np.mean(np.diff(a, axis=1) ** 2) + np.mean(np.diff(a, axis=0) ** 2)))


def average_gradient(img: np.ndarray) -> float:
    """AG = mean(sqrt((Gx^2 + Gy^2) / 2)). img: ``(H, W)`` with H, W >= 2."""
    a = _gray(img)
    if min(a.shape) < 2:
        raise ValueError(f"average gradient needs at least 2x2 pixels, got {a.shape}")
    gy, gx = np.gradient(a)
    return float(np.mean(np.sqrt((gx ** 2 + gy ** 2) / 2.0)))


def mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """I(X; Y) in nats with every distinct value a symbol (scikit-learn ``mutual_info_score`` semantics).

    x, y: arrays of one size (flattened).
    """
    x, y = np.asarray(x).ravel(), np.asarray(y).ravel()
    if x.size != y.size:
        raise ValueError(f"mutual information needs equal sizes, got {x.size} and {y.size}")
    _, ix = np.unique(x, return_inverse=True)
    uy, iy = np.unique(y, return_inverse=True)
    n = x.size
    pairs, nij = np.unique(ix.astype(np.int64) * len(uy) + iy, return_counts=True)
    ni = np.bincount(ix).astype(np.float64)
    nj = np.bincount(iy).astype(np.float64)
    pi, pj = pairs // len(uy), pairs % len(uy)
    nij = nij.astype(np.float64)
    mi = np.sum(nij / n * (np.log(nij) + math.log(n) - np.log(ni[pi]) - np.log(nj[pj])))
    return float(max(mi, 0.0))


def mutual_information_fusion(fused, a, b) -> float:
    """MI = I(F; A) + I(F; B) in nats."""
    f, a, b = _triplet(fused, a, b)
    return mutual_information(f, a) + mutual_information(f, b)


def _corr(u: np.ndarray, v: np.ndarray, rel_tol: float = 1e-9) -> float:
    """Pearson correlation; 0 when either array is constant up to float rounding (``std <= rel_tol * max|.|``)."""
    du, dv = u - u.mean(), v - v.mean()
    su, sv = float(np.sqrt((du * du).mean())), float(np.sqrt((dv * dv).mean()))
    if su <= rel_tol * max(float(np.abs(u).max()), 1.0) or sv <= rel_tol * max(float(np.abs(v).max()), 1.0):
        return 0.0
    return float((du * dv).mean() / (su * sv))


def scd(fused, a, b) -> float:
    """Sum of the correlations of differences: corr(A, F - B) + corr(B, F - A); undefined terms count 0."""
    f, a, b = _triplet(fused, a, b)
    return _corr(a, f - b) + _corr(b, f - a)


def _fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2.0
    h = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


def vif_pixel(ref: np.ndarray, dist: np.ndarray, sigma_nsq: float = 2.0) -> float:
    """Pixel-domain VIF of ``dist`` given ``ref`` (4 scales). ref, dist: ``(H, W)`` with H, W >= 41."""
    ref, dist = _gray(ref, "reference"), _gray(dist, "distorted")
    if ref.shape != dist.shape:
        raise ValueError(f"shapes differ: {ref.shape} vs {dist.shape}")
    if min(ref.shape) < 41:
        raise ValueError(f"pixel VIF needs at least 41x41 pixels (4 scales of 'valid' filtering), got {ref.shape}")
    eps = 1e-10
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        win = _fspecial_gaussian(n, n / 5.0)
        if scale > 1:
            ref = convolve2d(ref, win, mode="valid")[::2, ::2]
            dist = convolve2d(dist, win, mode="valid")[::2, ::2]
        mu1, mu2 = convolve2d(ref, win, mode="valid"), convolve2d(dist, win, mode="valid")
        s1 = np.maximum(convolve2d(ref * ref, win, mode="valid") - mu1 * mu1, 0)
        s2 = np.maximum(convolve2d(dist * dist, win, mode="valid") - mu2 * mu2, 0)
        s12 = convolve2d(ref * dist, win, mode="valid") - mu1 * mu2
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        flat_ref = s1 < eps
        g[flat_ref] = 0
        sv[flat_ref] = s2[flat_ref]
        s1[flat_ref] = 0
        flat_dist = s2 < eps
        g[flat_dist] = 0
        sv[flat_dist] = 0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0
        sv = np.maximum(sv, eps)
        num += float(np.sum(np.log10(1 + g * g * s1 / (sv + sigma_nsq))))
        den += float(np.sum(np.log10(1 + s1 / sigma_nsq)))
    if den == 0:  # a flat reference carries no information; CDDFuse returns 1.0 for its 0/0
        return 1.0
    return num / den


def vif_fusion(fused, a, b, sigma_nsq: float = 2.0) -> float:
    """VIF(A, F) + VIF(B, F)."""
    f, a, b = _triplet(fused, a, b)
    return vif_pixel(a, f, sigma_nsq) + vif_pixel(b, f, sigma_nsq)


_SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64)
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)


def _strength_orientation(img: np.ndarray):
    sx = convolve2d(img, _SOBEL_X, mode="same")
    sy = convolve2d(img, _SOBEL_Y, mode="same")
    g = np.sqrt(sx * sx + sy * sy)
    alpha = np.full_like(img, math.pi / 2)
    nz = sx != 0
    alpha[nz] = np.arctan(sy[nz] / sx[nz])
    return g, alpha


def _edge_preservation(g_src, a_src, g_f, a_f, equal_strength: str) -> np.ndarray:
    c = QABF_CONSTANTS
    ratio = np.empty_like(g_src)
    gt, lt, eq = g_src > g_f, g_src < g_f, g_src == g_f
    ratio[gt] = g_f[gt] / g_src[gt]
    ratio[lt] = g_src[lt] / g_f[lt]
    ratio[eq] = g_f[eq] if equal_strength == "cddfuse" else 1.0
    orient = 1 - np.abs(a_src - a_f) / (math.pi / 2)
    qg = c["Tg"] / (1 + np.exp(c["kg"] * (ratio - c["Dg"])))
    qa = c["Ta"] / (1 + np.exp(c["ka"] * (orient - c["Da"])))
    return qg * qa


def qabf(fused, a, b, equal_strength: str = "cddfuse") -> float:
    """Xydeas-Petrovic Q^{AB/F}: edge preservation of A and B in F, weighted by the source gradient strengths."""
    if equal_strength not in ("cddfuse", "one"):
        raise ValueError(f"equal_strength must be 'cddfuse' or 'one', got {equal_strength!r}")
    f, a, b = _triplet(fused, a, b)
    ga, aa = _strength_orientation(a)
    gb, ab = _strength_orientation(b)
    gf, af = _strength_orientation(f)
    qaf = _edge_preservation(ga, aa, gf, af, equal_strength)
    qbf = _edge_preservation(gb, ab, gf, af, equal_strength)
    den = float(np.sum(ga + gb))
    if den == 0:
        raise ValueError("Qabf is undefined: both sources are flat (zero gradient everywhere)")
    return float(np.sum(qaf * ga + qbf * gb) / den)


def ssim_fusion(fused, a, b, data_range: float = 2.0) -> float:
    """ssim(F, A) + ssim(F, B) with scikit-image defaults (7x7 uniform window); see the module docstring."""
    f, a, b = _triplet(fused, a, b)
    if min(f.shape) < 7:
        raise ValueError(f"SSIM needs at least 7x7 pixels, got {f.shape}")
    return float(structural_similarity(f, a, data_range=data_range)
                 + structural_similarity(f, b, data_range=data_range))


def fusion_metrics(fused, a, b) -> Dict[str, float]:
    """All eight metrics of FusionMamba's tables: EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM."""
    f, a, b = _triplet(fused, a, b)
    return {"EN": entropy(f), "SD": standard_deviation(f), "SF": spatial_frequency(f), "AG": average_gradient(f),
            "MI": mutual_information_fusion(f, a, b), "SCD": scd(f, a, b), "VIF": vif_fusion(f, a, b),
            "Qabf": qabf(f, a, b), "SSIM": ssim_fusion(f, a, b)}
