"""Learning gates: each architecture's tiny model, trained by the real trainer for a fixed number of steps on one
fixed image pair, beats its trivial baseline on that pair.

A model stuck at identity (a zero-initialised output that never moves), a loss that does not reach the weights,
or a degradation applied to the target instead of the input all fail here in seconds, long before an ablation
chapter spends an hour on them. The pair is the most textured window of an embedded training photo (flat windows
are easy for the baselines too); the baselines are the chapters' own (:mod:`restore_core.book.trivial_baselines`).
"""
from __future__ import annotations

import pytest
import torch

from restore_core.book.trivial_baselines import baselines_for
from restore_core.data import SyntheticFusionDataset, embedded_images
from restore_core.data.degradations import parse_degradation
from restore_core.train import evaluate, load_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

FUSION_METRICS = ("EN", "SD", "SF", "MI", "VIF", "Qabf")


def textured_window(img: torch.Tensor, size: int, stride: int = 8) -> tuple:
    """(y, x) of the ``size`` x ``size`` window of ``img`` (C, H, W) with the largest mean absolute gradient."""
    g = img.float().mean(0)
    best = (-1.0, 0, 0)
    for y in range(0, g.shape[0] - size + 1, stride):
        for x in range(0, g.shape[1] - size + 1, stride):
            p = g[y:y + size, x:x + size]
            energy = float((p[1:] - p[:-1]).abs().mean() + (p[:, 1:] - p[:, :-1]).abs().mean())
            if energy > best[0]:
                best = (energy, y, x)
    return best[1], best[2]


def _config(name: str, steps: int, lr: float, extra=()):
    return load_config(name, profile="quick", overrides=[
        f"train.total_iter={steps}", f"train.optim_g.lr={lr}", "train.scheduler={type: ConstantLR}",
        "train.ema_decay=0", "val.val_freq=0", "datasets.train.batch_size_per_gpu=1", *extra])


def _restoration_pair(cfg, size: int):
    img = torch.from_numpy(embedded_images("train")[0].copy()).permute(2, 0, 1).float() / 255
    y, x = textured_window(img, size)
    name = cfg.datasets["val"].params["degradation"]
    deg = parse_degradation(f"sr_x{cfg.scale}" if name == "sr" else name)
    hq = deg.prepare_hq(img[:, y:y + size, x:x + size])
    return {"lq": deg(hq, seed=1), "hq": hq}


# config, steps, learning rate, window size, required margin in dB over the best baseline
RESTORATION_GATES = {
    "mambair": ("mambair/sr_x2", 120, 3e-3, 32, 0.5),
    "rnan": ("rnan/color_dn", 60, 2e-3, 32, 1.0),
    "cu_mamba": ("cu_mamba/deblur", 15, 2e-3, 32, 1.0),
}


@pytest.mark.parametrize("arch", sorted(RESTORATION_GATES))
def test_tiny_model_beats_its_trivial_baselines_on_a_fixed_pair(arch):
    config, steps, lr, size, margin = RESTORATION_GATES[arch]
    cfg = _config(config, steps, lr)
    pair = [_restoration_pair(cfg, size)]
    trained = train(cfg, train_set=pair, save_checkpoints=False, progress=False).model
    metrics = {"psnr": cfg.val.metrics["psnr"]}
    ours = evaluate(trained, pair, metrics, scale=cfg.scale, progress=False).mean["psnr"]
    base = {b.name: evaluate(b.model, pair, metrics, scale=cfg.scale, progress=False).mean["psnr"]
            for b in baselines_for(cfg)}
    best = max(base, key=base.get)
    assert ours > base[best] + margin, (f"{arch}: {ours:.2f} dB after {steps} steps, {best} {base[best]:.2f} dB "
                                        f"(needs +{margin} dB)")


def test_tiny_fusion_model_beats_mean_fusion_on_a_fixed_pair():
    """Above the mean of the two sources on at least 3 of the six fusion metrics (the chapters' criterion)."""
    cfg = _config("fusion_mamba/ir_vis", 40, 2e-3)
    item = SyntheticFusionDataset("embedded:train", kind="ir_vis")[0]
    img = item["b"]  # the visible image
    y, x = textured_window(img, 48)  # pixel VIF's four scales need at least 41 x 41
    pair = [{k: item[k][:, y:y + 48, x:x + 48] for k in ("a", "b")}]  # a: infrared, b: visible
    trained = train(cfg, train_set=pair, save_checkpoints=False, progress=False).model
    metrics = {m: cfg.val.metrics[m] for m in FUSION_METRICS}
    ours = evaluate(trained, pair, metrics, task="fusion", progress=False).mean
    mean_rule = {b.name: b.model for b in baselines_for(cfg)}["mean"]
    mean = evaluate(mean_rule, pair, metrics, task="fusion", progress=False).mean
    above = [m for m in metrics if ours[m] > mean[m]]
    assert len(metrics) == 6 and len(above) >= 3, (ours, mean)
