"""The ablation harness: every (variant, seed) trained and scored, seeds reproduce, agreement is computed."""
import dataclasses
import json
import math

import pytest
import torch

from restore_core.book.ablation import Variant, load_full, load_stored, run_ablation
from restore_core.book.results import load_results

# two training steps on 24-px crops, one validation image: the plumbing, not the numbers
OVERRIDES = ["train.total_iter=2", "datasets.train.patch_size=24", "datasets.train.batch_size_per_gpu=2",
             "val.max_images=1"]
VARIANTS = [Variant("full", paper={"PSNR": 30.0, "SSIM": 0.90}),
            Variant("1 direction", {"scan_order": "1d"}, paper={"PSNR": 29.5, "SSIM": 0.91}),
            Variant("w/o conv+CA", {"block_kind": "no_conv_ca"}, paper={"PSNR": 29.0})]


@pytest.fixture(scope="module")
def result():
    return run_ablation("mambair/sr_x2", VARIANTS, arch="mambair", preset="tiny_sr_x2", profile="quick",
                        seeds=(0, 1), overrides=OVERRIDES, paper_dataset="Set5", metrics=("PSNR", "SSIM"),
                        log=None, keep_models=True)


def test_every_variant_and_seed_is_trained_and_scored(result):
    assert [(r["variant"], r["seed"]) for r in result.runs] == [
        (v.name, s) for v in VARIANTS for s in (0, 1)]
    for r in result.runs:
        assert r["steps"] == 2
        assert 5.0 < r["PSNR"] < 60.0 and 0.0 < r["SSIM"] <= 1.0
    params = {r["variant"]: r["params"] for r in result.runs}
    assert params["w/o conv+CA"] < params["full"]
    assert result.dataset == "embedded-test" and result.steps == 2


def test_seeds_differ_and_a_rerun_reproduces_them(result):
    full = result.values("full", "PSNR")
    assert full[0] != full[1]
    again = run_ablation("mambair/sr_x2", VARIANTS[:1], arch="mambair", preset="tiny_sr_x2", profile="quick",
                         seeds=(1,), overrides=OVERRIDES, metrics=("PSNR",), log=None)
    assert again.values("full", "PSNR") == [full[1]]


def test_summary_is_mean_and_sample_std(result):
    s = {row["variant"]: row for row in result.summary()}["1 direction"]
    vals = result.values("1 direction", "PSNR")
    assert s["PSNR"] == pytest.approx(sum(vals) / 2)
    assert s["PSNR_std"] == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))


def test_quick_profile_is_a_smoke_run_without_calls(result):
    rows = result.rows()
    ours_full = {m: sum(result.values("full", m)) / 2 for m in ("PSNR", "SSIM")}
    for r in rows:
        assert r["call"] is None and r["agrees"] is None
        if r["variant"] != "full":
            assert r["ours_delta"] == pytest.approx(r["ours"] - ours_full[r["metric"]])
    assert result.agreement_counts() == {"agree": 0, "disagree": 0, "unresolved": 0}
    assert "smoke run" in repr(result.table())


def test_calls_use_the_paired_95_interval(result):
    """The same runs read as a study profile: per row the per-seed differences to the reference, their mean and
    Student-t interval (t = 12.706 for 2 seeds); the call follows the interval and the paper's sign."""
    study = dataclasses.replace(result, profile="cpu", baselines={})  # no baseline to beat: calls are made
    rows = study.rows()
    for r in rows:
        if r["variant"] == "full":
            assert r["call"] is None and r["ours_delta_ci95"] is None
            continue
        d = [a - b for a, b in zip(result.values(r["variant"], r["metric"]), result.values("full", r["metric"]))]
        mean, s = sum(d) / 2, abs(d[0] - d[1]) / math.sqrt(2)
        half = 12.706204736 * s / math.sqrt(2)
        assert r["ours_delta"] == pytest.approx(mean)
        assert r["ours_delta_ci95"] == pytest.approx([mean - half, mean + half])
        if r["paper"] is None:
            assert r["call"] is None
        elif mean - half <= 0 <= mean + half:
            assert r["call"] == "unresolved" and r["agrees"] is None
        else:
            paper_delta = r["paper"] - {"PSNR": 30.0, "SSIM": 0.90}[r["metric"]]
            assert r["call"] == ("agrees" if (mean > 0) == (paper_delta > 0) else "disagrees")
            assert r["agrees"] == (r["call"] == "agrees")
    counts = study.agreement_counts()
    assert sum(counts.values()) == 3  # three rows with a paper difference
    assert "ours Δ [95% CI]" in repr(study.table())


def test_no_calls_while_the_reference_is_below_its_baseline(result):
    """Two training steps leave the tiny model far below bicubic: its differences mean nothing, so a study
    profile makes no call and the table says why."""
    study = dataclasses.replace(result, profile="cpu")
    assert study.learned is False and not study.makes_calls
    assert all(r["call"] is None for r in study.rows())
    assert "below target (+0.5 dB over bicubic)" in repr(study.table())
    ahead = dataclasses.replace(study, baselines={"bicubic": {"PSNR": 1.0, "SSIM": 0.0}})
    assert ahead.learned is True and any(r["call"] is not None for r in ahead.rows())


def test_baselines_are_scored_on_the_same_validation_set(result):
    from restore_core.models import BicubicUpsampler
    from restore_core.train import evaluate, load_config
    from restore_core.train.builders import build_val_dataset

    assert set(result.baselines) == {"bicubic"}
    cfg = load_config("mambair/sr_x2", profile="quick", overrides=OVERRIDES)
    ref = evaluate(BicubicUpsampler(2), build_val_dataset(cfg), cfg.val.metrics, scale=2,
                   max_images=cfg.val.max_images, progress=False).mean
    assert result.baselines["bicubic"]["PSNR"] == pytest.approx(ref["psnr"], abs=1e-12)
    margin = result.margins()["PSNR"]["bicubic"]
    assert margin == pytest.approx(sum(result.values("full", "PSNR")) / 2 - ref["psnr"])
    text = repr(result.table())
    assert "baseline: bicubic" in text
    fig = result.plot_differences("PSNR")
    assert any("bicubic" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_learning_curve_of_the_reference_variant():
    res = run_ablation("mambair/sr_x2", VARIANTS[:2], arch="mambair", preset="tiny_sr_x2", profile="quick",
                       seeds=(0,), overrides=OVERRIDES, metrics=("PSNR",), log=None, curve_points=2,
                       baselines=False)
    full, one = res.runs
    assert [step for step, _ in full["curve"]["val"]] == [1, 2]       # two validations along the way
    assert [step for step, _ in one["curve"]["val"]] == [2]           # the others: only at the end
    assert full["curve"]["val"][-1][1]["PSNR"] == full["PSNR"]
    assert full["curve"]["loss"] and all(math.isfinite(x) for _, x in full["curve"]["loss"])
    fig = res.plot_learning_curves("PSNR")
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 1
    with pytest.raises(ValueError, match="equal parts"):
        run_ablation("mambair/sr_x2", VARIANTS[:1], arch="mambair", preset="tiny_sr_x2", profile="quick",
                     overrides=OVERRIDES, curve_points=3, log=None)


def test_table_and_figure_render(result):
    text = repr(result.table())
    assert "paper (Set5)" in text and "ours (embedded-test)" in text and "(reference)" in text
    assert "<table>" in result.table()._repr_html_()
    fig = result.plot_differences("PSNR")
    assert len(fig.axes[0].patches) == 4  # 2 variants x (paper, ours)


def test_save_round_trips_through_the_results_schema(result, tmp_path):
    study = dataclasses.replace(result, profile="cpu")
    path = study.save("ablation_test", paper="Test", table="T1", scale="2 steps", out_dir=tmp_path)
    doc = load_results("ablation_test", "cpu", tmp_path)
    assert doc["reference_variant"] == "full" and len(doc["rows"]) == 6
    assert doc["extra"]["steps"] == 2 and len(doc["extra"]["runs"]) == 6
    assert doc["baselines"]["bicubic"]["PSNR"] == result.baselines["bicubic"]["PSNR"]
    assert json.loads(path.read_text())["profile"] == "cpu"
    assert load_full("ablation_test", tmp_path) is None
    back = load_stored("ablation_test", "cpu", tmp_path)   # what a chapter renders from the stored file
    assert repr(back.table()) == repr(study.table())
    assert back.rows() == json.loads(json.dumps(study.rows()))
    assert load_stored("ablation_test", "full", tmp_path) is None


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="reference 'nope'"):
        run_ablation("mambair/sr_x2", VARIANTS, arch="mambair", preset="tiny_sr_x2", profile="quick",
                     reference="nope", overrides=OVERRIDES, log=None)
    with pytest.raises(ValueError, match="unique"):
        run_ablation("mambair/sr_x2", [Variant("a"), Variant("a")], arch="mambair", preset="tiny_sr_x2",
                     profile="quick", overrides=OVERRIDES, log=None)
    with pytest.raises(KeyError, match="'LPIPS' is not among"):
        run_ablation("mambair/sr_x2", VARIANTS[:1], arch="mambair", preset="tiny_sr_x2", profile="quick",
                     metrics=("LPIPS",), overrides=OVERRIDES, log=None)


def test_several_processes_train_each_run_under_torchrun(tmp_path):
    """nproc > 1: every run is `restore-core train` under torchrun (DDP, gloo on CPU) in its own folder."""
    res = run_ablation("mambair/sr_x2", [Variant("1 direction", {"scan_order": "1d"})], arch="mambair",
                       preset="tiny_sr_x2", profile="quick", seeds=(3,), overrides=OVERRIDES, metrics=("PSNR",),
                       nproc=2, runs_dir=str(tmp_path), device="cpu", log=None)
    exp = tmp_path / "mambair_sr_x2" / "1_direction_seed3"
    log = json.loads((exp / "train_log.json").read_text())
    assert log["val_history"][-1]["psnr"] == pytest.approx(res.runs[0]["PSNR"])
    cfg = (exp / "config.yml").read_text()
    assert "scan_order: 1d" in cfg and "manual_seed: 3" in cfg
    assert res.runs[0]["params"] < 200_000 and 5.0 < res.runs[0]["PSNR"] < 60.0


def test_kept_models_are_the_trained_ones(result):
    assert sorted(result.models) == sorted((r["variant"], r["seed"]) for r in result.runs)
    for r in result.runs:
        model = result.models[(r["variant"], r["seed"])]
        assert not model.training and sum(p.numel() for p in model.parameters()) == r["params"]
    a, b = result.models[("full", 0)], result.models[("full", 1)]
    assert not torch.equal(a.conv_first.weight, b.conv_first.weight)  # two seeds, two networks
    with pytest.raises(ValueError, match="keep_models needs in-process runs"):
        run_ablation("mambair/sr_x2", VARIANTS[:1], arch="mambair", preset="tiny_sr_x2", profile="quick",
                     overrides=OVERRIDES, nproc=2, keep_models=True, log=None)


def test_runs_side_by_side_equal_the_same_runs_one_at_a_time():
    """workers=2: each run trains in a spawned process with half of the threads; its numbers and weights equal the
    same one-thread run trained here, and the runs are recorded in table order with the layout and wall time."""
    prev = torch.get_num_threads()
    kw = dict(arch="mambair", preset="tiny_sr_x2", profile="quick", seeds=(0, 1), overrides=OVERRIDES,
              metrics=("PSNR", "SSIM"), log=None, keep_models=True, baselines=False)
    try:
        torch.set_num_threads(2)
        pooled = run_ablation("mambair/sr_x2", VARIANTS[:2], workers=2, **kw)
        torch.set_num_threads(1)
        serial = run_ablation("mambair/sr_x2", VARIANTS[:2], workers=1, **kw)
    finally:
        torch.set_num_threads(prev)
    assert pooled.parallel == {"workers": 2, "threads_per_run": 1}
    assert serial.parallel == {"workers": 1, "threads_per_run": 1}

    def numbers(res):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in res.runs]

    assert numbers(pooled) == numbers(serial)
    assert [(r["variant"], r["seed"]) for r in pooled.runs] == [(v.name, s) for v in VARIANTS[:2] for s in (0, 1)]
    assert pooled.values("full", "PSNR")[0] != pooled.values("full", "PSNR")[1]
    for key, model in serial.models.items():
        other = pooled.models[key]
        assert not other.training
        for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
            assert torch.equal(a, b), name
    assert 0 < pooled.wall_seconds


def test_side_by_side_layout_and_wall_time_are_stored(result, tmp_path):
    study = dataclasses.replace(result, profile="cpu", parallel={"workers": 2, "threads_per_run": 1},
                                wall_seconds=90.0)
    study.save("ablation_test", paper="Test", table="T1", scale="2 steps", out_dir=tmp_path)
    doc = load_results("ablation_test", "cpu", tmp_path)
    assert doc["extra"]["parallel"] == {"workers": 2, "threads_per_run": 1}
    assert doc["extra"]["minutes"] == 1.5          # the study's wall clock, not the sum over its runs
    assert doc["extra"]["run_minutes"] == round(sum(r["seconds"] for r in result.runs) / 60, 1)
    back = load_stored("ablation_test", "cpu", tmp_path)
    assert back.parallel == study.parallel and back.wall_seconds == pytest.approx(90.0)
    from restore_core.book.findings import describe_stored_study
    text = describe_stored_study("ablation_test", "cpu", tmp_path)
    assert "1.5 min" in text and "2 runs side by side with 1 thread(s) each" in text


def test_workers_are_checked():
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        run_ablation("mambair/sr_x2", VARIANTS[:1], arch="mambair", preset="tiny_sr_x2", profile="quick",
                     overrides=OVERRIDES, workers=0, log=None)
    with pytest.raises(ValueError, match="cannot be combined with nproc > 1"):
        run_ablation("mambair/sr_x2", VARIANTS[:1], arch="mambair", preset="tiny_sr_x2", profile="quick",
                     overrides=OVERRIDES, workers=2, nproc=2, log=None)


def test_a_run_that_fails_side_by_side_raises_its_own_error():
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(ValueError, match="unknown scan order .5d."):
            run_ablation("mambair/sr_x2", [Variant("bad order", {"scan_order": "5d"}), VARIANTS[0]],
                         arch="mambair", preset="tiny_sr_x2", profile="quick", overrides=OVERRIDES, workers=2,
                         baselines=False, log=None)
    finally:
        torch.set_num_threads(prev)


def test_spinning_openmp_threads_are_warned_about_before_runs_side_by_side(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.warns(RuntimeWarning, match="OMP_WAIT_POLICY=ACTIVE"):
            res = run_ablation("mambair/sr_x2", VARIANTS[:1], arch="mambair", preset="tiny_sr_x2",
                               profile="quick", overrides=OVERRIDES, workers=2, baselines=False, log=None)
    finally:
        torch.set_num_threads(prev)
    assert len(res.runs) == 1
