"""The per-task learning targets that gate calls (restore_core.book.learning_targets)."""
import pytest

from restore_core.book.learning_targets import learning_target, target_met, target_text


@pytest.mark.parametrize("ours, met", [(32.16, True), (32.15, False), (31.0, False)])
def test_sr_needs_half_a_db_over_bicubic(ours, met):
    assert target_met({"PSNR": ours, "SSIM": 0.5}, {"bicubic": {"PSNR": 31.66, "SSIM": 0.9}}) is met


def test_denoising_is_measured_against_the_better_of_its_two_baselines():
    baselines = {"noisy_input": {"PSNR": 14.2}, "gaussian_filter": {"PSNR": 24.0}}
    assert learning_target(baselines).task == "denoising"
    assert target_met({"PSNR": 24.9}, baselines) is False    # +10.7 over the noisy input is not enough
    assert target_met({"PSNR": 25.0}, baselines) is True


def test_deblurring_gates_on_the_blurred_input_and_only_shows_wiener():
    baselines = {"blurred_input": {"PSNR": 25.06}, "wiener": {"PSNR": 27.5}}
    assert learning_target(baselines).task == "deblurring"
    assert target_met({"PSNR": 26.1}, baselines) is True      # below Wiener, but +1.04 over the blurred input
    assert target_met({"PSNR": 26.0}, baselines) is False
    assert target_text(baselines) == "+1.0 dB over blurred_input"


def test_fusion_needs_three_metrics_above_mean_fusion_whatever_max_fusion_does():
    mean = dict(EN=6.85, SD=32.3, SF=8.2, MI=2.80, VIF=1.24, Qabf=0.69)
    maxf = {k: v * 2 for k, v in mean.items()}
    ours = dict(EN=7.0, SD=36.8, SF=9.4, MI=2.79, VIF=1.22, Qabf=0.68)
    assert target_met(ours, {"mean": mean, "max": maxf}) is True
    ours["SF"] = 8.0
    assert target_met(ours, {"mean": mean, "max": maxf}) is False
    assert target_text({"mean": mean, "max": maxf}) == "above mean on >= 3 metrics"


def test_unknown_baselines_fall_back_to_beating_all_of_them():
    assert learning_target({"other": {"PSNR": 1.0}}) is None
    assert target_met({"PSNR": 1.5}, {"other": {"PSNR": 1.0}, "more": {"PSNR": 1.4}}) is True
    assert target_met({"PSNR": 1.3}, {"other": {"PSNR": 1.0}, "more": {"PSNR": 1.4}}) is False
    assert target_met({"PSNR": 1.3}, None) is None and target_met({}, {"x": {}}) is None
