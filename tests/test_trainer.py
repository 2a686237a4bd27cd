"""The training loop: exact resume (also after a hard kill), NaN handling, accumulation, EMA, schedules,
AMP parameter dtypes, validation, TensorBoard output. Small in-test models and synthetic data."""
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from restore_core.train import NonFiniteLossError, config_from_dict, train
from restore_core.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from restore_core.train.config import SchedulerOptions
from restore_core.train.optim import cast_params_keep_fp32, lr_factor_fn, matches_any
from restore_core.train.sampler import ResumableSampler

REPO = Path(__file__).resolve().parents[1]

# The model and dataset live in module files (tests/toy_training.py and this config module) so that a subprocess
# (killed mid-run) and this process build exactly the same things.
TESTS = Path(__file__).resolve().parent
TOYS = textwrap.dedent('''
    from toy_training import NoisyPatches, TinyNet, make_model  # noqa: F401

    CONFIG = {
        "name": "toy", "manual_seed": 3,
        "datasets": {"train": {"type": "in_memory", "batch_size_per_gpu": 3}},
        "train": {"total_iter": 12, "optim_g": {"type": "AdamW", "lr": 1e-2, "weight_decay": 1e-3},
                  "scheduler": {"type": "MultiStepLR", "milestones": [5, 9], "gamma": 0.5},
                  "pixel_opt": {"type": "CharbonnierLoss", "eps": 1e-3}, "ema_decay": 0.9, "grad_clip_norm": 1.0},
        "logger": {"print_freq": 1, "save_checkpoint_freq": 4, "use_tb_logger": False, "keep_checkpoints": 0},
        "val": {"val_freq": 0},
    }
''')


@pytest.fixture(scope="module")
def toys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toys")
    (folder / "toys_mod.py").write_text(TOYS)
    sys.path.insert(0, str(folder))
    import importlib

    mod = importlib.import_module("toys_mod")
    yield mod
    sys.path.remove(str(folder))


def _weights_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_exact_resume_after_interruption(toys, tmp_path):
    cfg = config_from_dict(toys.CONFIG)
    full = train(cfg, model=toys.make_model(), train_set=toys.NoisyPatches(), out_dir=tmp_path / "a", progress=False)
    # stop after 5 steps (mid-epoch: 3 batches of 3 per epoch of 10 samples), then resume from the checkpoint
    part = train(cfg, model=toys.make_model(), train_set=toys.NoisyPatches(), out_dir=tmp_path / "b",
                 progress=False, max_steps=5)
    assert part.steps == 5 and part.checkpoint_path.name == "step_00000005.pt"
    rest = train(cfg, model=toys.make_model(), train_set=toys.NoisyPatches(), out_dir=tmp_path / "b",
                 progress=False, resume="auto")
    assert full.steps == rest.steps == 12
    assert _weights_equal(full.model, rest.model)  # EMA weights, bit for bit
    a, b = load_checkpoint(full.checkpoint_path), load_checkpoint(rest.checkpoint_path)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["sampler"] == b["sampler"] and a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 12
    assert [h["loss"] for h in full.history] == [h["loss"] for h in rest.history]
    # lr followed the schedule: 1e-2 until step 5, halved at 6..9, quartered after
    assert [round(h["lr"], 6) for h in full.history] == [0.01] * 5 + [0.005] * 4 + [0.0025] * 3
    # the loss went down
    assert full.history[-1]["loss"] < full.history[0]["loss"]


def test_exact_resume_after_a_hard_kill(toys, tmp_path):
    """A subprocess is SIGKILLed right after step 7 (last checkpoint at step 4); resuming ends bit-identical."""
    script = textwrap.dedent(f'''
        import os, sys
        sys.path[:0] = [{str(Path(toys.__file__).parent)!r}, {str(TESTS)!r}]
        import toys_mod
        from restore_core.train import config_from_dict, train

        def kill_at_7(trainer, step, logs):
            if step == 7:
                os.kill(os.getpid(), 9)

        train(config_from_dict(toys_mod.CONFIG), model=toys_mod.make_model(), train_set=toys_mod.NoisyPatches(),
              out_dir={str(tmp_path / "killed")!r}, progress=False, callbacks=[kill_at_7])
    ''')
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads())))
    assert proc.returncode == -9, proc.stderr
    ckpts = list_checkpoints(tmp_path / "killed" / "checkpoints")
    assert [p.name for p in ckpts] == ["step_00000004.pt"]  # no temporary files left, no partial step 7
    assert not [p for p in (tmp_path / "killed" / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    cfg = config_from_dict(toys.CONFIG)
    resumed = train(cfg, model=toys.make_model(), train_set=toys.NoisyPatches(), out_dir=tmp_path / "killed",
                    progress=False, resume="auto")
    full = train(cfg, model=toys.make_model(), train_set=toys.NoisyPatches(), out_dir=tmp_path / "full",
                 progress=False)
    assert _weights_equal(full.model, resumed.model)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(toys, tmp_path):
    class Exploding(toys.TinyNet):
        calls = 0

        def forward(self, x):
            Exploding.calls += 1
            out = super().forward(x)
            return out * float("nan") if Exploding.calls >= 6 else out

    torch.manual_seed(0)
    cfg = config_from_dict({**toys.CONFIG, "logger": {**toys.CONFIG["logger"], "save_checkpoint_freq": 2}})
    with pytest.raises(NonFiniteLossError, match=r"at step 6; the last good checkpoint is .*step_00000004\.pt"):
        train(cfg, model=Exploding(), train_set=toys.NoisyPatches(), out_dir=tmp_path, progress=False)
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_00000004.pt"
    state = load_checkpoint(tmp_path / "checkpoints" / "step_00000004.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_gradient_accumulation_matches_the_large_batch(toys):
    base = {**toys.CONFIG, "train": {**toys.CONFIG["train"], "ema_decay": 0.0, "total_iter": 4,
                                     "optim_g": {"type": "Adam", "lr": 1e-2}}}
    big = config_from_dict({**base, "datasets": {"train": {"type": "m", "batch_size_per_gpu": 4}}})
    acc = config_from_dict({**base, "datasets": {"train": {"type": "m", "batch_size_per_gpu": 2}},
                            "train": {**base["train"], "accumulate_grad_batches": 2}})
    r_big = train(big, model=toys.make_model(0.0), train_set=toys.NoisyPatches(n=8), save_checkpoints=False,
                  progress=False)
    r_acc = train(acc, model=toys.make_model(0.0), train_set=toys.NoisyPatches(n=8), save_checkpoints=False,
                  progress=False)
    for k, v in r_big.model.state_dict().items():
        torch.testing.assert_close(r_acc.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    assert r_big.checkpoint_path is None and r_big.exp_dir is None
    # and a different batch size really is different (the comparison can fail)
    small = config_from_dict({**base, "datasets": {"train": {"type": "m", "batch_size_per_gpu": 2}}})
    r_small = train(small, model=toys.make_model(0.0), train_set=toys.NoisyPatches(n=8), save_checkpoints=False,
                    progress=False)
    assert not torch.allclose(r_small.model.conv1.weight, r_big.model.conv1.weight, atol=1e-4)


def test_channels_last_trains_the_same_weights(toys):
    """train.channels_last changes the memory layout only: the weights after 4 steps agree with channels-first
    training to float rounding, and the convolution weights really are stored NHWC."""
    base = {**toys.CONFIG, "train": {**toys.CONFIG["train"], "ema_decay": 0.0, "total_iter": 4,
                                     "optim_g": {"type": "Adam", "lr": 1e-2}}}
    results = {}
    for cl in (False, True):
        cfg = config_from_dict({**base, "train": {**base["train"], "channels_last": cl}})
        results[cl] = train(cfg, model=toys.make_model(0.0), train_set=toys.NoisyPatches(n=8),
                            save_checkpoints=False, progress=False)
    w = results[True].model.conv1.weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    assert results[False].model.conv1.weight.is_contiguous()
    moved = (results[False].model.conv1.weight - toys.make_model(0.0).conv1.weight).abs().max()
    assert moved > 1e-3  # training changed the weights, so agreeing below is not agreeing at init
    for k, v in results[False].model.state_dict().items():
        torch.testing.assert_close(results[True].model.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_ema_is_the_running_average(toys):
    cfg = config_from_dict({**toys.CONFIG, "train": {**toys.CONFIG["train"], "total_iter": 1, "ema_decay": 0.75}})
    init = toys.make_model(0.0)
    w0 = init.conv1.weight.detach().clone()
    from restore_core.train.trainer import Trainer

    trainer = Trainer(cfg, model=init, train_set=toys.NoisyPatches(), save_checkpoints=False, progress=False)
    trainer.fit()
    w1 = trainer.net.conv1.weight.detach()
    torch.testing.assert_close(trainer.ema.module.conv1.weight, 0.75 * w0 + 0.25 * w1, rtol=0, atol=1e-7)
    assert not torch.equal(w0, w1)


def test_schedules_match_torch_and_basicsr():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2e-4)
    ref = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 6], gamma=0.5)
    f = lr_factor_fn(SchedulerOptions(type="MultiStepLR", milestones=[3, 6], gamma=0.5), 2e-4, 10)
    for t in range(10):
        assert 2e-4 * f(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        ref.step()
    # BasicSR's CosineAnnealingRestartLR: periods [4, 6], restart weights [1, 0.5], eta_min 1e-7
    cos = lr_factor_fn(SchedulerOptions(type="CosineAnnealingRestartLR", periods=[4, 6], restart_weights=[1, 0.5],
                                        eta_min=1e-7), 2e-4, 10)
    for t, expect in [(0, 2e-4), (2, 1e-7 + 0.5 * (2e-4 - 1e-7)), (4, 1e-7),
                      (5, 1e-7 + 0.5 * 0.5 * (2e-4 - 1e-7) * (1 + math.cos(math.pi / 6)))]:
        assert 2e-4 * cos(t) == pytest.approx(expect, rel=1e-9)
    warm = lr_factor_fn(SchedulerOptions(type="ConstantLR"), 1.0, 10, warmup_iter=4)
    assert [warm(t) for t in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_ssm_parameters_stay_fp32():
    class SS2DLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.A_logs = nn.Parameter(torch.zeros(4, 2))
            self.Ds = nn.Parameter(torch.ones(4))
            self.dt_projs_bias = nn.Parameter(torch.zeros(4))
            self.in_proj = nn.Linear(4, 4)
            self.dt_proj = nn.Linear(2, 4)
            self.A_logits = nn.Parameter(torch.zeros(2))  # not an SSM parameter despite the prefix

    m = nn.Sequential(SS2DLike())
    kept = cast_params_keep_fp32(m, torch.bfloat16, ["A_log", "A_logs", "D", "Ds", "dt_projs_bias", "dt_proj.bias"])
    assert sorted(kept) == ["0.A_logs", "0.Ds", "0.dt_proj.bias", "0.dt_projs_bias"]
    dtypes = {n: p.dtype for n, p in m.named_parameters()}
    assert dtypes["0.in_proj.weight"] == dtypes["0.dt_proj.weight"] == dtypes["0.A_logits"] == torch.bfloat16
    assert all(dtypes[n] == torch.float32 for n in kept)
    assert matches_any("layers.0.ssm.D", ["D"]) and not matches_any("layers.0.Dense.weight", ["D"])


def test_sampler_shards_the_global_batch():
    one = ResumableSampler(10, seed=4, rank=0, world_size=1)
    two = [ResumableSampler(10, seed=4, rank=r, world_size=2) for r in range(2)]
    e1 = one.epoch_indices(3).tolist()
    e2 = [s.epoch_indices(3).tolist() for s in two]
    # step k of 2 ranks x batch 2 = samples 4k..4k+3 of the single-process order
    for k in range(2):
        assert sorted(e2[0][2 * k:2 * k + 2] + e2[1][2 * k:2 * k + 2]) == sorted(e1[4 * k:4 * k + 4])
    assert one.epoch_indices(3).tolist() != one.epoch_indices(4).tolist()  # reshuffled every epoch
    s = ResumableSampler(10, seed=4, rank=1, world_size=2)
    s.load_state_dict({"epoch": 2, "position": 2, "n": 10, "world_size": 1})  # 2 samples consumed globally
    assert s.epoch == 2 and s.position == 1


def test_validation_tensorboard_and_logs(toys, tmp_path):
    class Pairs(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(5)
            self.gt = torch.rand(2, 3, 16, 16, generator=g)

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"lq": (self.gt[i] + 0.05).clamp(0, 1), "gt": self.gt[i], "name": f"img{i}"}

    cfg = config_from_dict({**toys.CONFIG, "train": {**toys.CONFIG["train"], "total_iter": 4},
                            "logger": {**toys.CONFIG["logger"], "use_tb_logger": True, "print_freq": 2},
                            "val": {"val_freq": 2, "metrics": {
                                "psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True},
                                "ssim": {"type": "calculate_ssim", "crop_border": 2}}}})
    res = train(cfg, model=toys.make_model(), train_set=toys.NoisyPatches(), val_set=Pairs(), out_dir=tmp_path,
                progress=False)
    assert [v["step"] for v in res.val_history] == [2, 4] and [h["step"] for h in res.history] == [2, 4]
    assert set(res.final_metrics) == {"psnr", "ssim"} and 10 < res.final_metrics["psnr"] < 60
    assert 0 < res.final_metrics["ssim"] <= 1
    # the mean is the mean of what evaluate() reports per image, with the restore_core.metrics definitions
    from restore_core.metrics.psnr_ssim import psnr
    from restore_core.train import evaluate

    ev = evaluate(res.model, Pairs(), cfg.val.metrics, progress=False)
    assert [r["name"] for r in ev.per_image] == ["img0", "img1"]
    assert ev.mean["psnr"] == pytest.approx(res.final_metrics["psnr"], rel=1e-12)
    with torch.no_grad():
        out = res.model(Pairs()[0]["lq"][None]).clamp(0, 1)
    arr = (out[0].double() * 255).round().permute(1, 2, 0).numpy()
    ref = (Pairs()[0]["gt"].double() * 255).round().permute(1, 2, 0).numpy()
    assert ev.per_image[0]["psnr"] == pytest.approx(psnr(arr, ref, crop_border=2, y_channel=True), rel=1e-12)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert log["val_history"][-1]["psnr"] == pytest.approx(res.final_metrics["psnr"])
    assert (tmp_path / "config.yml").is_file()


def test_mambair_ssm_parameter_names_are_kept_fp32():
    """The default fp32 list matches the SSM parameters of the registered MambaIR (A_logs, Ds, dt_projs_bias)."""
    from restore_core.models import build_model, list_archs
    from restore_core.train.config import TrainOptions

    if "mambair" not in list_archs():
        pytest.skip("mambair not registered")
    model = build_model("mambair", "tiny")
    kept = cast_params_keep_fp32(model, torch.bfloat16, TrainOptions().fp32_params)
    blocks = sum(1 for n, _ in model.named_parameters() if n.endswith("A_logs"))
    assert blocks > 0 and sorted({k.rsplit(".", 1)[1] for k in kept}) == ["A_logs", "Ds", "dt_projs_bias"]
    assert len(kept) == 3 * blocks
    assert {p.dtype for n, p in model.named_parameters() if n not in kept} == {torch.bfloat16}


def test_restore_tiles_and_self_ensemble():
    from restore_core.train.evaluate import restore

    torch.manual_seed(0)
    pointwise = nn.Conv2d(3, 3, 1)  # commutes with flips and rotations: the x8 ensemble changes nothing
    spatial = nn.Conv2d(3, 3, 3, padding=1)  # a random 3x3 kernel does not
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(restore(pointwise, x, self_ensemble=True), pointwise(x), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(restore(spatial, x, self_ensemble=True), spatial(x), atol=1e-3)
        # tiles overlapping by more than 4x the receptive radius reproduce the whole-image output
        torch.testing.assert_close(restore(spatial, x, tile=12, tile_overlap=8), spatial(x), rtol=1e-5, atol=1e-6)


def test_fusion_task_end_to_end():
    """model(ir, vis_y) trained with FusionLoss on restore_core.data's synthetic IR/VIS pairs; validation scores
    the fusion metrics of restore_core.metrics on (fused, ir, vis)."""
    from restore_core.data import SyntheticFusionDataset
    from restore_core.metrics import METRICS
    from restore_core.train import evaluate

    class TwoInputNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 1, 3, padding=1)

        def forward(self, ir, vis):
            return torch.sigmoid(self.conv(torch.cat([ir, vis], 1)))

    cfg = config_from_dict({
        "name": "fusion", "model_type": "fusion",
        "datasets": {"train": {"type": "in_memory", "batch_size_per_gpu": 2}},
        "train": {"total_iter": 3, "optim_g": {"type": "Adam", "lr": 1e-2}, "scheduler": {"type": "ConstantLR"},
                  "fusion_opt": {"type": "FusionLoss", "ssim_mode": "ssim"}},
        "val": {"val_freq": 3, "max_images": 1, "metrics": {"EN": {"type": "EN"}, "Qabf": {"type": "Qabf"}}},
        "logger": {"print_freq": 1, "use_tb_logger": False}})
    train_set = SyntheticFusionDataset("embedded:train", kind="ir_vis", patch_size=32, seed=0)
    val_set = SyntheticFusionDataset("embedded:test", kind="ir_vis", seed=0)
    torch.manual_seed(0)
    res = train(cfg, model=TwoInputNet(), train_set=train_set, val_set=val_set, save_checkpoints=False,
                progress=False)
    assert len(res.history) == 3 and all(math.isfinite(h["loss"]) for h in res.history)
    item = val_set[0]
    with torch.no_grad():
        fused = res.model(item["a"][None], item["b"][None]).clamp(0, 1)
    f = (fused[0, 0].double() * 255).round().numpy()
    ir = (item["a"][0].double() * 255).round().numpy()
    vis = (item["b"][0].double() * 255).round().numpy()
    assert res.final_metrics["EN"] == pytest.approx(METRICS.get("EN")(f), rel=1e-12)
    assert res.final_metrics["Qabf"] == pytest.approx(METRICS.get("Qabf")(f, ir, vis), rel=1e-12)
    ev = evaluate(res.model, val_set, cfg.val.metrics, task="fusion", max_images=1, progress=False)
    assert ev.mean == res.final_metrics


def test_resuming_with_another_network_names_the_mismatch(toys, tmp_path):
    from restore_core.models.weights import WeightsMismatchError

    cfg = config_from_dict({**toys.CONFIG, "train": {**toys.CONFIG["train"], "total_iter": 4}})
    train(cfg, model=toys.make_model(), train_set=toys.NoisyPatches(), out_dir=tmp_path, progress=False)
    other = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1))
    with pytest.raises(WeightsMismatchError, match=r"step_00000004\.pt does not fit this run's network_g: 2 missing "
                                                   r"keys \(0\.weight, 0\.bias\), 4 unexpected keys \(conv1\.weight"):
        train(cfg, model=other, train_set=toys.NoisyPatches(), out_dir=tmp_path, progress=False, resume="auto")
