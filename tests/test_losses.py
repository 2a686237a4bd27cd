"""Losses against hand computations, skimage's SSIM, and gradcheck in float64."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from restore_core.train.losses import (LOSSES, CharbonnierLoss, CombinedLoss, FFTLoss, FusionLoss, L1Loss,
                                       MSELoss, build_loss, ms_ssim, sobel_magnitude, ssim_terms)


def test_registry_names():
    assert {"L1Loss", "MSELoss", "L2Loss", "CharbonnierLoss", "FFTLoss", "FusionLoss"} <= set(LOSSES.names())
    assert LOSSES.get("L2Loss") is MSELoss


def test_l1_mse_by_hand():
    p = torch.tensor([[0.0, 1.0], [2.0, 4.0]])[None, None]
    t = torch.tensor([[1.0, 1.0], [0.0, 1.0]])[None, None]
    assert L1Loss()(p, t).item() == pytest.approx((1 + 0 + 2 + 3) / 4)
    assert MSELoss()(p, t).item() == pytest.approx((1 + 0 + 4 + 9) / 4)
    assert L1Loss(loss_weight=2.0, reduction="sum")(p, t).item() == pytest.approx(12.0)
    assert L1Loss(reduction="none")(p, t).shape == p.shape


def test_charbonnier_both_eps_conventions():
    p = torch.tensor([0.5, -0.25, 0.0]).view(1, 1, 1, 3)
    t = torch.zeros_like(p)
    d = [0.5, -0.25, 0.0]
    basicsr = CharbonnierLoss(eps=1e-3)  # sqrt(d^2 + eps)
    squared = CharbonnierLoss(eps=1e-3, eps_squared=True)  # sqrt(d^2 + eps^2)
    assert basicsr(p, t).item() == pytest.approx(sum(math.sqrt(x * x + 1e-3) for x in d) / 3, rel=1e-6)
    assert squared(p, t).item() == pytest.approx(sum(math.sqrt(x * x + 1e-6) for x in d) / 3, rel=1e-6)
    # at d = 0 the two differ by sqrt(eps) vs eps
    z = torch.zeros(1, 1, 1, 1)
    assert basicsr(z, z).item() == pytest.approx(math.sqrt(1e-3), rel=1e-6)
    assert squared(z, z).item() == pytest.approx(1e-3, rel=1e-6)
    with pytest.raises(ValueError, match="eps"):
        CharbonnierLoss(eps=0)


def test_fft_loss_by_hand():
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    y = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    diff = np.fft.fft2((x - y).numpy())  # over the last two axes
    real_imag = (np.abs(diff.real).sum() + np.abs(diff.imag).sum()) / (2 * diff.size)
    assert FFTLoss()(x, y).item() == pytest.approx(real_imag, rel=1e-10)
    assert FFTLoss(mode="modulus")(x, y).item() == pytest.approx(np.abs(diff).mean(), rel=1e-10)
    assert FFTLoss(loss_weight=0.1)(x, y).item() == pytest.approx(0.1 * real_imag, rel=1e-10)
    assert FFTLoss()(x, x).item() == 0.0


@pytest.mark.parametrize("size", [(16, 16), (13, 19)])
def test_ssim_matches_skimage(size):
    rng = np.random.default_rng(0)
    a = rng.random(size)
    b = np.clip(a + 0.1 * rng.standard_normal(size), 0, 1)
    _, full = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=1.0, full=True)
    r = 5  # skimage's window radius: int(3.5 * 1.5 + 0.5) = 5 -> 11 taps; compare on the valid region
    ref = full[r:-r, r:-r].mean()
    ours, _ = ssim_terms(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])
    assert ours.item() == pytest.approx(ref, abs=1e-6)
    same, cs = ssim_terms(torch.from_numpy(a)[None, None], torch.from_numpy(a)[None, None])
    assert same.item() == pytest.approx(1.0, abs=1e-12) and cs.item() == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_identity_and_official_quirk():
    x = torch.rand(1, 1, 48, 48, dtype=torch.float64)
    assert ms_ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)
    y = (x + 0.2 * torch.rand_like(x)).clamp(0, 1)
    std, quirk = ms_ssim(y, x), ms_ssim(y, x, official_quirks=True)
    # the code's product raises the last scale's SSIM term to the 4th power: quirk = std * s_last^(3 w_last)
    x5, y5 = x, y
    for _ in range(4):
        x5, y5 = torch.nn.functional.avg_pool2d(x5, 2), torch.nn.functional.avg_pool2d(y5, 2)
    s_last = (ssim_terms(y5, x5)[0] + 1) / 2
    assert quirk.item() == pytest.approx(std.item() * s_last.item() ** (3 * 0.1333), rel=1e-10)


def test_sobel_by_hand():
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    x[..., 2:] = 1.0  # a vertical edge between columns 1 and 2
    g = sobel_magnitude(x)
    # interior row 2, column 1: gx = (1 + 2 + 1) * 1 = 4, gy = 0
    assert g[0, 0, 2, 1].item() == 4.0 and g[0, 0, 2, 2].item() == 4.0 and g[0, 0, 2, 0].item() == 0.0
    # far-right column 3 (interior, inside the bright region): gx = 0, gy = 0
    assert g[0, 0, 2, 3].item() == 0.0


def test_fusion_loss_by_hand():
    torch.manual_seed(1)
    f, v, ir = (torch.rand(2, 1, 16, 16, dtype=torch.float64) for _ in range(3))
    loss = FusionLoss()
    total = loss(f, v, ir)
    s = 0.5 * (1 - ssim_terms(f, v)[0]) + 0.5 * (1 - ssim_terms(f, ir)[0])
    inten = ((f - torch.maximum(v, ir)) ** 2).mean()
    grad = (sobel_magnitude(f) - torch.maximum(sobel_magnitude(v), sobel_magnitude(ir))).abs().mean()
    assert total.item() == pytest.approx((10 * s + 10 * inten + grad).item(), rel=1e-12)
    assert loss.last_terms["intensity"] == pytest.approx(inten.item())
    # the fused image max(v, ir) has zero intensity loss
    m = torch.maximum(v, ir)
    loss(m, v, ir)
    assert loss.last_terms["intensity"] == 0.0
    with pytest.raises(ValueError, match="infrared"):
        loss(f, v, ir[..., :8])


@pytest.mark.parametrize("loss", [L1Loss(), MSELoss(), CharbonnierLoss(eps=1e-3, eps_squared=True), FFTLoss(),
                                  FusionLoss(ssim_mode="msssim")], ids=lambda m: type(m).__name__)
def test_gradcheck(loss):
    torch.manual_seed(0)
    size = (1, 1, 32, 32) if isinstance(loss, FusionLoss) else (1, 2, 5, 4)
    p = torch.rand(*size, dtype=torch.float64, requires_grad=True)
    others = [torch.rand(*size, dtype=torch.float64) for _ in range(2 if isinstance(loss, FusionLoss) else 1)]
    # fast mode (a random directional derivative) keeps the 1024-input fusion case quick
    assert torch.autograd.gradcheck(lambda x: loss(x, *others), (p,), eps=1e-6, atol=1e-5,
                                    fast_mode=isinstance(loss, FusionLoss))


def test_build_loss_errors_name_the_path():
    assert isinstance(build_loss({"type": "CharbonnierLoss", "eps": 1e-3}), CharbonnierLoss)
    with pytest.raises(ValueError, match=r"train\.pixel_opt\.epss"):
        build_loss({"type": "CharbonnierLoss", "epss": 1e-3}, where="train.pixel_opt")
    with pytest.raises(ValueError, match="unknown loss 'L3Loss'"):
        build_loss({"type": "L3Loss"}, where="train.pixel_opt")
    with pytest.raises(ValueError, match="shape"):
        L1Loss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))


def test_combined_loss_cu_mamba():
    p, t = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    combo = CombinedLoss({"pixel": CharbonnierLoss(eps=1e-3, eps_squared=True), "fft": FFTLoss(loss_weight=0.1)})
    total, parts = combo(p, t)
    assert total.item() == pytest.approx(parts["pixel"].item() + parts["fft"].item())
    assert parts["fft"].item() == pytest.approx(0.1 * FFTLoss()(p, t).item(), rel=1e-6)
