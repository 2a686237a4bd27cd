"""ERF maps on models whose receptive field is known exactly; area ratios on hand-made maps; baselines."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from restore_core.analysis import (PlainCNN, WindowAttentionNet, area_ratio, area_ratios, display_transform,
                                   erf_map, erf_summary, mass_within)


def _positive_conv_stack(k: int, channels: int = 2) -> nn.Sequential:
    torch.manual_seed(0)
    convs = []
    for i in range(k):
        conv = nn.Conv2d(3 if i == 0 else channels, channels if i < k - 1 else 3, 3, padding=1, bias=False)
        with torch.no_grad():
            conv.weight.uniform_(0.1, 1.0)  # strictly positive: no cancellation inside the support
        convs.append(conv)
    return nn.Sequential(*convs).eval()


@pytest.mark.parametrize("k", [1, 2, 3])
def test_stacked_3x3_convs_have_support_2k_plus_1(k):
    model = _positive_conv_stack(k)
    erf = erf_map(model, torch.rand(2, 3, 15, 15), target="output_sum", magnitude="abs")
    support = (erf > 0).numpy()
    assert support.sum() == (2 * k + 1) ** 2
    c = 15 // 2
    assert support[c - k:c + k + 1, c - k:c + k + 1].all()
    side, ratio = area_ratio(erf.numpy(), 1.0)
    assert side == 2 * k + 1 and ratio == pytest.approx((2 * k + 1) ** 2 / 225)


def test_single_conv_gradient_equals_its_weights():
    conv = nn.Conv2d(3, 3, 3, padding=1, bias=True)
    torch.manual_seed(1)
    with torch.no_grad():
        conv.weight.normal_()
    erf = erf_map(conv, torch.rand(3, 3, 9, 8), target="output_sum", magnitude="abs")
    # centre output (4, 4) summed over output channels: d/dx[c, 4+u, 4+v] = sum_o w[o, c, 1+u, 1+v]
    expected = conv.weight.detach().sum(0).abs().sum(0).double()  # (3, 3)
    assert torch.allclose(erf[3:6, 3:6], expected, atol=1e-12)
    assert erf.sum() == pytest.approx(float(expected.sum()))
    relu = erf_map(conv, torch.rand(3, 3, 9, 8), target="output_sum", magnitude="relu")
    pos = conv.weight.detach().sum(0).clamp(min=0).sum(0).double()
    assert torch.allclose(relu[3:6, 3:6], pos, atol=1e-12)


def test_feature_relu_target_reads_the_hooked_feature():
    torch.manual_seed(2)
    first = nn.Conv2d(3, 4, 3, padding=1)
    model = nn.Sequential(first, nn.Conv2d(4, 3, 3, padding=1)).eval()
    x = torch.rand(2, 3, 11, 11)
    erf = erf_map(model, x, target="feature_relu", magnitude="abs", feature_module=first)
    assert (erf > 0).sum() <= 9  # one 3x3 conv in front of the hooked feature
    y = first(x)[:, :, 5, 5]
    active = (y > 0).double()  # (Bt, 4): only channels with positive centre values pass the ReLU
    w = first.weight.detach().double()  # (4, 3, 3, 3)
    expected = torch.einsum("bo,ocuv->bcuv", active, w).abs().sum(1).mean(0)
    assert torch.allclose(erf[4:7, 4:7], expected, atol=1e-6)
    with pytest.raises(ValueError, match="feature_module"):
        erf_map(model, x, target="feature_relu")


def test_images_are_averaged_independently():
    model = PlainCNN(num_feat=8, num_blocks=1, upscale=2).eval()
    x = torch.rand(3, 3, 12, 12)
    both = erf_map(model, x)
    each = torch.stack([erf_map(model, x[i:i + 1]) for i in range(3)]).mean(0)
    assert torch.allclose(both, each, atol=1e-10)


def test_batchnorm_in_train_mode_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3))
    with pytest.raises(ValueError, match="eval"):
        erf_map(model, torch.rand(2, 3, 8, 8))


def test_area_ratio_on_hand_made_maps():
    a = np.zeros((7, 7))
    a[3, 3] = 1.0
    assert area_ratio(a, 0.99) == (1.0, 1 / 49)
    a = np.ones((5, 5))
    assert area_ratio(a, 0.2) == (3.0, 9 / 25)    # 1/25 < 0.2 <= 9/25
    assert area_ratio(a, 0.5) == (5.0, 1.0)
    r = area_ratios(a, (0.2, 0.3, 0.5))
    assert r == {0.2: 9 / 25, 0.3: 9 / 25, 0.5: 1.0}
    even = np.ones((4, 4))  # the largest centred square is 3x3 = 9/16 of the mass
    side, ratio = area_ratio(even, 0.9)
    assert math.isnan(side) and math.isnan(ratio)
    assert area_ratio(even, 0.5) == (3.0, 9 / 16)
    assert math.isnan(area_ratio(np.zeros((5, 5)), 0.5)[1])
    # read off the mass-radius curve: 0.2 lies between side 1 (1/25) and side 3 (9/25) -> side 2, ratio 4/25
    assert area_ratio(a, 0.2, interpolate=True) == pytest.approx((2.0, 4 / 25))
    assert area_ratio(a, 9 / 25, interpolate=True) == pytest.approx((3.0, 9 / 25))   # on a node: the odd side
    delta = np.zeros((7, 7))
    delta[3, 3] = 1.0
    assert area_ratio(delta, 0.5, interpolate=True) == pytest.approx((0.5, 0.25 / 49))
    assert area_ratios(a, (0.2, 0.5), interpolate=True) == pytest.approx({0.2: 4 / 25, 0.5: (3 + 7 / 16) ** 2 / 25})  # 3 + 2 * (0.5 - 0.36) / 0.64
    # two maps the quantised measure cannot tell apart (both need the 3x3 square) differ once interpolated
    wide, narrow = np.ones((5, 5)), np.ones((5, 5))
    narrow[2, 2] = 8.0
    assert area_ratio(wide, 0.3)[1] == area_ratio(narrow, 0.3)[1]
    assert area_ratio(wide, 0.3, interpolate=True)[1] > area_ratio(narrow, 0.3, interpolate=True)[1]
    with pytest.raises(ValueError):
        area_ratio(a, 0.0)
    with pytest.raises(ValueError):
        area_ratio(-a, 0.5)


def test_display_transforms_and_summary():
    a = np.array([[0.0, 16.0], [1.0, 81.0]])
    assert np.allclose(display_transform(a, "pow0.25"), np.array([[0, 2], [1, 3]]) / 3)
    assert np.allclose(display_transform(a, "log"), np.log10(a + 1) / np.log10(82))
    assert np.allclose(display_transform(a, "pow0.2"), a ** 0.2 / 81 ** 0.2)
    assert np.allclose(display_transform(a, "none"), a / 81)
    with pytest.raises(ValueError, match="transform"):
        display_transform(a, "sqrt")
    m = np.zeros((5, 5))
    m[2, 2], m[0, 0] = 9.0, 1.0
    raw = erf_summary(torch.from_numpy(m), interpolate=False)
    assert raw.ratios[0.5] == pytest.approx(1 / 25) and raw.ratios[0.99] == pytest.approx(1.0)
    assert erf_summary(torch.from_numpy(m)).ratios[0.5] == pytest.approx((0.5 / 0.9) ** 2 / 25)  # interpolated
    logged = erf_summary(torch.from_numpy(m), measured_on="log", interpolate=False)  # log10(10) = 1 vs log10(2)
    assert logged.ratios[0.9] == pytest.approx(1.0) and logged.ratios[0.5] == pytest.approx(1 / 25)


@pytest.mark.parametrize("cls", [PlainCNN, WindowAttentionNet])
def test_baselines_shapes_and_odd_sizes(cls):
    torch.manual_seed(0)
    for upscale in (1, 2):
        model = cls(upscale=upscale)
        x = torch.rand(2, 3, 13, 19)
        y = model(x)
        assert y.shape == (2, 3, 13 * upscale, 19 * upscale) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="expected input"):
        model(torch.rand(1, 1, 8, 8))


def test_window_attention_stays_inside_windows_without_shift():
    torch.manual_seed(0)
    net = WindowAttentionNet(embed_dim=8, depth=1, window_size=4, shift=False, upscale=1).eval()
    # centre (8, 8): the tail and body 3x3 convs reach features 6..10, whose windows span 4..11; the head conv
    # adds one more pixel: the support is exactly rows/columns 3..12
    erf = erf_map(net, torch.rand(1, 3, 16, 16), magnitude="abs")
    support = erf > 0
    assert support[3:13, 3:13].all() and support.sum() == 100
    shifted = WindowAttentionNet(embed_dim=8, depth=2, window_size=4, shift=True, upscale=1).eval()
    assert (erf_map(shifted, torch.rand(1, 3, 16, 16), magnitude="abs") > 0).sum() > support.sum()


def test_mass_within_centred_squares():
    a = np.ones((6, 5))  # centre (3, 2)
    assert mass_within(a, 1) == pytest.approx(1 / 30)
    assert mass_within(a, 3) == pytest.approx(9 / 30)
    assert mass_within(a, 5) == pytest.approx(25 / 30)  # rows 1..5 of 0..5, all 5 columns
    assert mass_within(a, 99) == pytest.approx(1.0)
    assert math.isnan(mass_within(np.zeros((3, 3)), 1))
    with pytest.raises(ValueError, match="odd"):
        mass_within(a, 4)


def test_subtract_input_removes_only_the_identity_spike():
    torch.manual_seed(3)
    body = PlainCNN(num_feat=8, num_blocks=1, upscale=1).eval()  # output = x + conv(...): a residual network
    x = torch.rand(2, 3, 11, 11)
    full = erf_map(body, x, magnitude="abs")
    resid = erf_map(body, x, magnitude="abs", subtract_input=True)
    differs = (full - resid).abs() > 1e-9
    assert differs.sum() == 1 and differs[5, 5]  # the identity adds d x_c / d x_c = 1 per channel at the centre
    ident = nn.Identity()
    assert erf_map(ident, x, magnitude="abs", subtract_input=True).abs().max() == 0
    assert erf_map(ident, x, magnitude="abs")[5, 5] == 3.0
    with pytest.raises(ValueError, match="shaped like the input"):
        erf_map(PlainCNN(num_feat=8, num_blocks=1, upscale=2).eval(), x, subtract_input=True)
    with pytest.raises(ValueError, match="output_sum"):
        erf_map(body, x, target="feature_relu", feature_module=body.head, subtract_input=True)


def test_row_major_split_by_hand():
    from restore_core.analysis import row_major_split

    a = np.zeros((5, 5))
    a[0, 0], a[2, 2], a[2, 3], a[4, 1] = 1.0, 1.0, 1.0, 1.0            # centre (2, 2)
    causal, beyond = row_major_split(a)
    assert causal == pytest.approx(0.5) and beyond == pytest.approx(0.25)  # (4, 1) lies 2 rows below
    assert row_major_split(a, margin_rows=2)[1] == 0.0
    assert all(math.isnan(v) for v in row_major_split(np.zeros((3, 3))))


def test_batch_size_chunks_give_the_same_map():
    """Chunked passes average the per-image maps exactly as one pass (3 images in chunks of 2 and 1)."""
    torch.manual_seed(3)
    conv = nn.Conv2d(3, 3, 3, padding=1)
    x = torch.rand(3, 3, 9, 9)
    one = erf_map(conv.eval(), x, magnitude="abs")
    # by hand: each image's gradient of the centre output summed over channels is the same kernel, so the map is
    # |sum over output channels of the weights| summed over input channels, whatever the image
    expected = conv.weight.detach().sum(0).abs().sum(0).double()
    assert torch.allclose(one[3:6, 3:6], expected, atol=1e-12)
    model = PlainCNN(num_feat=8, num_blocks=1, upscale=2).eval()
    full = erf_map(model, x)
    chunked = erf_map(model, x, batch_size=2)
    per_image = torch.stack([erf_map(model, x[i:i + 1]) for i in range(3)]).mean(0)
    assert torch.allclose(chunked, full, atol=1e-12) and torch.allclose(chunked, per_image, atol=1e-12)
    assert torch.equal(erf_map(model, x, batch_size=5), full)  # larger than the batch: one pass
    with pytest.raises(ValueError, match="batch_size"):
        erf_map(model, x, batch_size=0)
