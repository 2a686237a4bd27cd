"""``restore-core train`` / ``eval`` through a subprocess (python -m restore_core.cli ...), torchrun included."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from restore_core.data import write_image
from restore_core.train.checkpoint import load_checkpoint

CONFIG = textwrap.dedent("""
    name: cli_tiny
    scale: 1
    manual_seed: 1
    data_root: {root}
    network_g: {{type: rnan, preset: tiny, n_feats: 8, n_local_groups: 0, nonlocal_channels: 4}}
    datasets:
      train: {{type: DegradedDataset, images: train, degradation: awgn_25, patch_size: 16, augment: true,
               batch_size_per_gpu: 2}}
      val: {{type: DegradedDataset, images: val, degradation: awgn_25}}
    train:
      total_iter: 4
      scheduler: {{type: ConstantLR}}
      pixel_opt: {{type: L1Loss}}
    val:
      val_freq: 4
      metrics:
        psnr: {{type: calculate_psnr}}
        ssim: {{type: calculate_ssim}}
    logger: {{print_freq: 2, save_checkpoint_freq: 2, use_tb_logger: false}}
""")


def cli(*args, env=None, timeout=240):
    run_env = dict(os.environ, TQDM_DISABLE="1", OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", **(env or {}))
    return subprocess.run([sys.executable, "-m", "restore_core.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=run_env)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 4), ("val", 2)):
        (root / split).mkdir()
        for i in range(n):
            write_image(root / split / f"{split}{i}.png", torch.rand(3, 24, 24, generator=g))
    cfg = root / "tiny.yml"
    cfg.write_text(CONFIG.format(root=root))
    return root, cfg


def run_main(capsys, *args):
    """The same entry point in-process (cheaper than a subprocess): (exit status, stdout, stderr)."""
    from restore_core.cli import main

    try:
        rc = main(list(args))
    except SystemExit as exc:  # argparse's --help
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_help_everywhere(capsys):
    r = cli("--help")
    assert r.returncode == 0 and "train" in r.stdout and "eval" in r.stdout, r.stderr
    for args, needle in ((["train", "--help"], "--nproc"), (["eval", "--help"], "--self-ensemble")):
        rc, out, _ = run_main(capsys, *args)
        assert rc == 0 and needle in out


def test_presets_listed_and_printed(capsys):
    rc, out, _ = run_main(capsys, "train", "--list")
    assert rc == 0 and "mambair/sr_x2" in out.split() and "rnan/color_dn" in out.split()
    rc, out, err = run_main(capsys, "train", "mambair/sr_x2", "--profile", "full", "--print-config", "--opt",
                            "train.total_iter=7")
    assert rc == 0, err
    import yaml

    printed = yaml.safe_load(out)
    assert printed["train"]["total_iter"] == 7 and printed["scale"] == 2 and printed["profile"] == "full"


def test_user_errors_are_one_line(setup, capsys):
    _, cfg = setup
    rc, _, err = run_main(capsys, "train", str(cfg), "--opt", "train.optim_g.lrr=1")
    assert rc == 2 and err.strip().splitlines() == [
        "restore-core train: error: train.optim_g.lrr: unknown key (valid keys here: betas, eps, lr, type, "
        "weight_decay)"]
    rc, _, err = run_main(capsys, "eval", str(cfg.parent / "missing.pt"), "embedded")
    assert rc == 2 and "does not exist" in err
    rc, _, err = run_main(capsys, "train", "rnan/color_dn", "--nproc", "0")
    assert rc == 2 and "--nproc must be >= 1" in err


def test_train_then_eval(setup, capsys):
    root, cfg = setup
    out = root / "exp"
    r = cli("train", str(cfg), "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["steps"] == 4 and summary["checkpoint"].endswith("step_00000004.pt")
    assert set(summary["final_metrics"]) == {"psnr", "ssim"}
    # evaluate the experiment folder (its newest checkpoint) on the validation folder, degraded the same way
    res_json = root / "results.json"
    rc, _, err = run_main(capsys, "eval", str(out), str(root / "val"), "--out", str(res_json), "--no-progress")
    assert rc == 0, err
    res = json.loads(res_json.read_text())
    assert [row["name"] for row in res["per_image"]] == ["val0", "val1"]
    assert res["mean"]["psnr"] == pytest.approx(sum(row["psnr"] for row in res["per_image"]) / 2)
    assert res["mean"]["psnr"] == pytest.approx(summary["final_metrics"]["psnr"], rel=1e-12)
    prov = res["provenance"]
    assert {"commit", "device", "torch", "date"} <= set(prov) and prov["torch"] == torch.__version__
    assert res["config"]["name"] == "cli_tiny" and res["step"] == 4
    # DATASET may also name the embedded test split: the checkpoint's validation degradation applied to it
    # (running the model on those 192x192 images is left to the tiling test in test_trainer.py: too slow here)
    from restore_core.data import embedded_paths
    from restore_core.train.config import config_from_dict
    from restore_core.train.datasets import eval_dataset

    ckpt_cfg = config_from_dict(load_checkpoint(summary["checkpoint"])["config"])
    embedded = eval_dataset("embedded", ckpt_cfg)
    assert [embedded[i]["name"] for i in range(len(embedded))] == [p.stem for p in embedded_paths("test")]
    item = embedded[0]
    noise = (item["lq"] - item["hq"]).std().item() * 255
    assert 20 < noise < 30  # awgn_25, as the checkpoint's val set
    with pytest.raises(FileNotFoundError, match="neither a folder nor 'embedded'"):
        eval_dataset(str(root / "nowhere"), ckpt_cfg)


def test_nproc_launches_torchrun(setup):
    root, cfg = setup
    out = root / "ddp"
    r = cli("train", str(cfg), "--out", str(out), "--no-progress", "--nproc", "2", "--opt", "train.total_iter=2",
            "--opt", "val.val_freq=2")
    assert r.returncode == 0, r.stdout + r.stderr
    # one summary (rank 0 only; it validated while rank 1 waited) and the checkpoint of the 2-process run
    assert r.stdout.count('"steps": 2') == 1 and '"psnr"' in r.stdout
    from restore_core.train.checkpoint import load_checkpoint

    state = load_checkpoint(out / "checkpoints" / "step_00000002.pt")
    assert state["sampler"]["world_size"] == 2 and len(state["rng_per_rank"]) == 2
