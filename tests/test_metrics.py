"""Metrics: PSNR/SSIM (BasicSR/MATLAB conventions, numpy == torch) and CDDFuse's fusion metrics on cases that
can be worked out by hand."""
import math
import warnings

import numpy as np
import pytest
import torch

from restore_core.metrics import (METRIC_KIND, METRICS, QABF_CONSTANTS, average_gradient, entropy,
                                  fusion_metrics, mutual_information, mutual_information_fusion, psnr, psnr_torch,
                                  qabf, rgb_to_y, scd, spatial_frequency, ssim, ssim_fusion, ssim_torch,
                                  standard_deviation, vif_fusion, vif_pixel)
from restore_core.registry import Registry


@pytest.fixture(scope="module")
def pair():
    from skimage import data

    ref = data.astronaut()[100:164, 150:230].astype(np.float64)
    noisy = np.clip(ref + np.random.default_rng(0).normal(0, 12, ref.shape), 0, 255).round()
    return noisy, ref


def _t(a):
    return torch.from_numpy(a / 255.0).permute(2, 0, 1)[None]


# --- PSNR / SSIM --------------------------------------------------------------------------------------------------
def test_psnr_identical_is_inf_and_known_value():
    a = np.random.default_rng(1).integers(0, 256, (8, 9, 3)).astype(np.float64)
    assert psnr(a, a) == math.inf
    assert psnr(a + 1, a) == pytest.approx(10 * math.log10(255 ** 2), abs=1e-12)  # MSE 1 -> 48.1308 dB
    b = a.copy()
    b[0, 0, 0] += 255  # MSE = 255^2 / 216 -> PSNR = 10 log10(216)
    assert psnr(b, a) == pytest.approx(10 * math.log10(216), abs=1e-12)
    assert torch.isinf(psnr_torch(_t(a), _t(a))).all()


def test_crop_border_ignores_the_border():
    a = np.full((10, 10), 100.0)
    b = a.copy()
    b[0, :] = 0
    b[:, -1] = 0
    assert psnr(b, a, crop_border=1) == math.inf and psnr(b, a) < 20
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr(a, a, crop_border=5)


def test_y_channel_is_matlab_rgb2ycbcr():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0]]], dtype=np.float64)
    np.testing.assert_allclose(rgb_to_y(px)[0], [16, 235, 16 + 65.481, 16 + 128.553], atol=1e-9)


def test_ssim_identical_and_known_degradation(pair):
    noisy, ref = pair
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)
    s = ssim(noisy, ref)
    assert 0.3 < s < 0.95
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(noisy[:-1], ref)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(ref[:10, :10], ref[:10, :10])


def test_ssim_is_basicsr_definition(pair):
    """An explicit re-derivation: 11x11 Gaussian (sigma 1.5) 'valid' windows, population statistics."""
    from scipy.signal import convolve2d

    noisy, ref = pair
    a, b = rgb_to_y(noisy), rgb_to_y(ref)
    r = np.arange(11) - 5
    g = np.exp(-r ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    f = lambda t: convolve2d(t, w, mode="valid")  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    saa, sbb, sab = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    want = np.mean((2 * mu_a * mu_b + c1) * (2 * sab + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2)))
    assert ssim(noisy, ref, y_channel=True) == pytest.approx(want, abs=1e-10)


@pytest.mark.parametrize("crop,y", [(0, False), (4, True), (3, False)])
def test_torch_metrics_agree_with_numpy(pair, crop, y):
    noisy, ref = pair
    assert float(psnr_torch(_t(noisy), _t(ref), crop, y)) == pytest.approx(psnr(noisy, ref, crop, y), abs=1e-9)
    assert float(ssim_torch(_t(noisy), _t(ref), crop, y)) == pytest.approx(ssim(noisy, ref, crop, y), abs=1e-7)


def test_torch_metrics_batched():
    x = torch.rand(3, 3, 20, 24, dtype=torch.float64)
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    p, s = psnr_torch(x, y), ssim_torch(x, y)
    assert p.shape == (3,) and s.shape == (3,)
    assert float(s[1]) == pytest.approx(float(ssim_torch(x[1:2], y[1:2])), abs=1e-12)


# --- fusion metrics -----------------------------------------------------------------------------------------------
def test_entropy_hand_cases():
    assert entropy(np.full((8, 8), 77.0)) == 0.0
    two = np.zeros((8, 8))
    two[:, 4:] = 255
    assert entropy(two) == pytest.approx(1.0, abs=1e-12)
    four = np.tile(np.array([0, 10, 20, 30.4]), (4, 2))  # four equally likely levels (30.4 rounds to 30)
    assert entropy(four) == pytest.approx(2.0, abs=1e-12)
    assert entropy(np.array([[300.0, -5.0]])) == pytest.approx(1.0)  # clipped to 255 and 0, two levels


def test_sd_sf_ag_on_ramps():
    c = 3.0
    ramp = np.tile(np.arange(12) * c, (7, 1))  # F[i, j] = c * j
    assert standard_deviation(ramp) == pytest.approx(np.std(np.arange(12) * c))
    assert spatial_frequency(ramp) == pytest.approx(c)  # row differences c, column differences 0
    assert average_gradient(ramp) == pytest.approx(c / math.sqrt(2))  # Gx = c everywhere, Gy = 0
    diag = np.add.outer(np.arange(9) * 2.0, np.arange(9) * 2.0)
    assert spatial_frequency(diag) == pytest.approx(math.sqrt(8))
    assert average_gradient(diag) == pytest.approx(2.0)


def test_mutual_information_matches_sklearn_and_entropy():
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(2)
    a = rng.integers(0, 20, (30, 30)).astype(np.float64)
    f = np.where(rng.random(a.shape) < 0.7, a, rng.integers(0, 20, a.shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = mutual_info_score(f.ravel(), a.ravel())
    assert mutual_information(f, a) == pytest.approx(want, abs=1e-12)
    # I(X; X) = H(X) in nats: uniform over 4 symbols -> ln 4
    x = np.repeat(np.arange(4.0), 25).reshape(10, 10)
    assert mutual_information(x, x) == pytest.approx(math.log(4), abs=1e-12)
    assert mutual_information_fusion(x, x, np.zeros_like(x)) == pytest.approx(math.log(4), abs=1e-12)


def test_scd_definition_and_guard():
    rng = np.random.default_rng(3)
    a, b = rng.random((16, 16)) * 255, rng.random((16, 16)) * 255
    f = 0.5 * a + 0.5 * b
    d_a, d_b = f - b, f - a
    corr = lambda u, v: np.corrcoef(u.ravel(), v.ravel())[0, 1]  # noqa: E731
    assert scd(f, a, b) == pytest.approx(corr(a, d_a) + corr(b, d_b), abs=1e-12)
    # F = B + 3: F - B is constant, corr undefined -> that term counts 0; the other is corr(B, B + 3 - A)
    assert scd(b + 3, a, b) == pytest.approx(corr(b, b + 3 - a), abs=1e-12)


def test_vif_identity_and_degradation():
    from skimage import data

    a = data.camera()[:96, :96].astype(np.float64)
    assert vif_pixel(a, a) == pytest.approx(1.0, abs=1e-8)
    noisy = a + np.random.default_rng(4).normal(0, 20, a.shape)
    assert 0 < vif_pixel(a, noisy) < 0.8
    assert vif_fusion(a, a, a) == pytest.approx(2.0, abs=1e-8)
    with pytest.raises(ValueError, match="41x41"):
        vif_pixel(a[:40, :40], a[:40, :40])


def test_qabf_closed_form_when_fused_equals_sources():
    from skimage import data

    a = data.camera()[:48, :48].astype(np.float64)
    c = QABF_CONSTANTS
    # F = A = B: equal strengths and orientations -> Q = Tg/(1+e^{kg(1-Dg)}) * Ta/(1+e^{ka(1-Da)}) everywhere
    q = c["Tg"] / (1 + math.exp(c["kg"] * (1 - c["Dg"]))) * c["Ta"] / (1 + math.exp(c["ka"] * (1 - c["Da"])))
    assert qabf(a, a, a, equal_strength="one") == pytest.approx(q, abs=1e-12)
    # CDDFuse's code uses the gradient value as the ratio where strengths tie: > Dg for edges, ~Tg
    assert qabf(a, a, a) > 0.9 * q
    blurred = (a + np.roll(a, 1, 0) + np.roll(a, 1, 1) + np.roll(a, 1, (0, 1))) / 4
    assert qabf(blurred, a, a, equal_strength="one") < q
    with pytest.raises(ValueError, match="flat"):
        qabf(a, np.zeros_like(a), np.zeros_like(a))


def test_ssim_fusion_and_all_metrics():
    from skimage import data

    a = data.camera()[:64, :64].astype(np.float64)
    b = data.camera()[200:264, 200:264].astype(np.float64)
    assert ssim_fusion(a, a, a) == pytest.approx(2.0)
    m = fusion_metrics((a + b) / 2, a, b)
    assert list(m) == ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM"]
    assert all(np.isfinite(v) for v in m.values())
    with pytest.raises(ValueError, match="same shape"):
        fusion_metrics(a, a, b[:-1])
    with pytest.raises(ValueError, match="gray"):
        entropy(np.zeros((4, 4, 3)))


def test_registry():
    assert isinstance(METRICS, Registry) and METRICS.kind == "metric"
    assert set(METRICS.names()) == {"psnr", "ssim", "EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf",
                                    "SSIM_fusion"}
    assert set(METRIC_KIND) == set(METRICS.names())
    assert METRICS.get("psnr") is psnr
    with pytest.raises(KeyError, match="already registered"):
        METRICS.register("psnr", psnr)
    with pytest.raises(KeyError, match="unknown metric"):
        METRICS.get("lpips")
