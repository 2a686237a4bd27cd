"""Parameter-free baselines: bicubic upsampling equals the MATLAB-compatible numpy reference, fixed fusion rules
compute what they say, bad input is named, and ``evaluate`` scores them like any network."""
import numpy as np
import pytest
import torch

from restore_core.data import DegradedDataset, SyntheticFusionDataset
from restore_core.data.imresize import imresize_np
from restore_core.metrics import psnr
from restore_core.models import BicubicUpsampler, FixedFusion
from restore_core.train import evaluate


@pytest.mark.parametrize("scale,hw", [(2, (7, 9)), (3, (5, 4)), (4, (6, 11))])
def test_bicubic_matches_numpy_reference_on_odd_sizes(scale, hw):
    x = torch.rand(2, 3, *hw, dtype=torch.float64, generator=torch.Generator().manual_seed(scale))
    out = BicubicUpsampler(scale)(x)
    assert out.shape == (2, 3, scale * hw[0], scale * hw[1]) and out.dtype == torch.float64
    for b in range(2):
        ref = imresize_np(x[b].permute(1, 2, 0).numpy(), scale=scale)  # (sH, sW, 3) float64
        np.testing.assert_allclose(out[b].permute(1, 2, 0).numpy(), ref, rtol=0, atol=1e-12)


def test_bicubic_scale_one_is_identity_and_has_no_parameters():
    x = torch.rand(1, 1, 5, 5)
    assert torch.equal(BicubicUpsampler(1)(x), x)
    assert sum(p.numel() for p in BicubicUpsampler(4).parameters()) == 0


@pytest.mark.parametrize("scale", [0, -2, 2.5, True])
def test_bicubic_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match="scale must be a positive integer"):
        BicubicUpsampler(scale)


def test_bicubic_rejects_unbatched_input():
    with pytest.raises(ValueError, match=r"expected a \(Bt, C, H, W\) batch, got shape \(3, 8, 8\)"):
        BicubicUpsampler(2)(torch.rand(3, 8, 8))


def test_evaluate_scores_bicubic_like_the_metric_on_the_upsampled_image():
    ds = DegradedDataset("embedded:test", "sr_x2", seed=0)
    metrics = {"psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True}}
    res = evaluate(BicubicUpsampler(2), ds, metrics, scale=2, progress=False, max_images=2)  # no device given
    for i, row in enumerate(res.per_image):
        item = ds[i]
        up = imresize_np(item["lq"].permute(1, 2, 0).double().numpy(), scale=2).clip(0, 1)
        hq = item["hq"].permute(1, 2, 0).double().numpy()
        want = psnr(np.round(up * 255), np.round(hq * 255), crop_border=2, y_channel=True)
        assert row["psnr"] == pytest.approx(want, abs=1e-3)
    assert 20 < res.mean["psnr"] < 50  # bicubic x2 on photographs: a real, finite score


def test_fixed_fusion_rules():
    a = torch.tensor([[[[0.0, 0.2], [0.9, 0.5]]]])
    b = torch.tensor([[[[1.0, 0.1], [0.3, 0.5]]]])
    torch.testing.assert_close(FixedFusion("mean")(a, b), torch.tensor([[[[0.5, 0.15], [0.6, 0.5]]]]))
    torch.testing.assert_close(FixedFusion("max")(a, b), torch.tensor([[[[1.0, 0.2], [0.9, 0.5]]]]))
    assert sum(p.numel() for p in FixedFusion().parameters()) == 0


def test_fixed_fusion_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"unknown rule 'median'; choose one of \['max', 'mean'\]"):
        FixedFusion("median")
    with pytest.raises(ValueError, match=r"same shape, got \(1, 1, 4, 4\) and \(1, 1, 4, 5\)"):
        FixedFusion("max")(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))


def test_evaluate_scores_fixed_fusion():
    ds = SyntheticFusionDataset("embedded:test", kind="ir_vis", seed=0)
    metrics = {"EN": {"type": "EN"}, "MI": {"type": "MI"}}
    scores = {rule: evaluate(FixedFusion(rule), ds, metrics, task="fusion", progress=False, max_images=2).mean
              for rule in ("mean", "max")}
    for rule in scores:
        assert 0 < scores[rule]["EN"] <= 8 and scores[rule]["MI"] > 0
    assert scores["mean"] != scores["max"]


# ---- restoration baselines: the degraded input, a Gaussian filter, Wiener deconvolution ----------------------

def test_pass_through_and_gaussian_filter():
    from restore_core.data.degradations import blur, gaussian_kernel
    from restore_core.models import GaussianFilter, PassThrough

    x = torch.rand(2, 3, 17, 19)
    assert torch.equal(PassThrough()(x), x)
    assert torch.equal(GaussianFilter(0)(x), x)
    assert torch.allclose(GaussianFilter(1.5)(x), blur(x, gaussian_kernel(11, 1.5)), atol=0)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        GaussianFilter(-1)
    with pytest.raises(ValueError, match=r"expected a \(Bt, C, H, W\) batch"):
        GaussianFilter(1.0)(x[0])


def test_wiener_deconvolution_undoes_a_known_blur():
    """On an embedded test photo blurred by the deblurring chapter's kernel (9 px motion at 30 degrees), Wiener
    deconvolution with a moderate noise-to-signal ratio recovers about 3 dB; far too small a ratio amplifies the
    kernel's near-zeros of the spectrum (the padding's mismatch) and does worse than the blurred input."""
    from restore_core.data import embedded_images
    from restore_core.data.degradations import blur, motion_kernel
    from restore_core.models import WienerDeconvolution

    sharp = torch.from_numpy(embedded_images("test")[0].copy()).permute(2, 0, 1)[None].double() / 255
    k = motion_kernel(9, 30)
    blurred = blur(sharp, k)

    def db(x):
        return -10 * np.log10(((x.clamp(0, 1) - sharp) ** 2).mean().item())

    restored = WienerDeconvolution(k, nsr=1e-2)(blurred)
    assert restored.shape == sharp.shape and restored.dtype == sharp.dtype
    assert db(restored) - db(blurred) > 2.5
    assert db(WienerDeconvolution(k, nsr=1e-3)(blurred)) < db(blurred)
    with pytest.raises(ValueError, match="nsr must be positive"):
        WienerDeconvolution(k, 0.0)


def test_tuned_baselines_are_chosen_on_training_images(monkeypatch):
    import restore_core.book.trivial_baselines as tb
    from restore_core.train import load_config

    seen = []
    real = tb.build_dataset_from_options

    def spy(opts, cfg, phase):
        seen.append(opts.params["images"])
        return real(opts, cfg, phase)

    monkeypatch.setattr(tb, "build_dataset_from_options", spy)
    cfg = load_config("rnan/color_dn", profile="quick")
    found = tb.baselines_for(cfg)
    assert [b.name for b in found] == ["noisy_input", "gaussian_filter"]
    assert seen == ["embedded:train"]                        # never the test split
    fit = found[1].info
    assert fit["sigma"] in tb.GAUSSIAN_SIGMAS and fit["sigma"] == max(fit["scores"], key=fit["scores"].get)
    assert [b.name for b in tb.baselines_for(load_config("mambair/sr_x2", profile="quick"))] == ["bicubic"]
