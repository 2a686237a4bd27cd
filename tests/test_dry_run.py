"""The full-profile dry run's library side: stand-in data, config overrides from the environment, result marks."""
import json
import os

import pytest

from restore_core.book.dry_run import DRY_RUN_OVERRIDES, dry_run, is_dry_run, mark_dry_run
from restore_core.train import load_config
from restore_core.train.builders import build_train_dataset
from restore_core.train.config import OVERRIDES_ENV, env_overrides

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIGS = ["mambair/sr_x2", "cu_mamba/deblur", "fusion_mamba/ir_vis", "rnan/color_dn"]


def test_env_overrides_parsing(monkeypatch):
    monkeypatch.setenv(OVERRIDES_ENV, "train.total_iter=3; val.max_images=2\nlogger.print_freq=1;")
    assert env_overrides() == ["train.total_iter=3", "val.max_images=2", "logger.print_freq=1"]
    cfg = load_config("mambair/sr_x2", profile="quick", overrides=["train.total_iter=50"])
    assert cfg.train.total_iter == 3 and cfg.val.max_images == 2   # the environment wins over explicit overrides
    monkeypatch.delenv(OVERRIDES_ENV)
    assert env_overrides() == [] and load_config("mambair/sr_x2", profile="quick").train.total_iter == 100


@pytest.mark.parametrize("config", CONFIGS)
def test_full_profile_under_dry_run_reads_stand_in_data(tmp_path, config):
    before = {k: os.environ.get(k) for k in ("RESTORE_CORE_DATA_ROOT", OVERRIDES_ENV)}
    with dry_run(tmp_path, n_images=2, size=96) as env:
        assert is_dry_run()
        cfg = load_config(config, profile="full")
        assert cfg.profile == "full" and cfg.data_root == env["RESTORE_CORE_DATA_ROOT"]
        assert cfg.train.total_iter == 2 and cfg.datasets["train"].batch_size_per_gpu == 1
        assert cfg.network_g.preset not in ("tiny", None)            # the paper preset, full size
        ds = build_train_dataset(cfg)
        sample = ds[0]
        assert len(ds) >= 2 and sample is not None
    assert not is_dry_run() and {k: os.environ.get(k) for k in before} == before
    assert len(DRY_RUN_OVERRIDES) == len(set(DRY_RUN_OVERRIDES))


def test_mark_dry_run(tmp_path):
    (tmp_path / "a.full.json").write_text(json.dumps({"rows": []}))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text(json.dumps({"dry_run": True}))
    assert [p.name for p in mark_dry_run(tmp_path)] == ["a.full.json"]
    assert json.loads((tmp_path / "a.full.json").read_text()) == {"rows": [], "dry_run": True}


def test_cli_dry_run_wires_environment_and_marks_results(tmp_path, monkeypatch):
    """`restore-core book run --profile full --dry-run`: run_book sees the dry-run environment, writes into the
    dry-run folder (no scoreboard, executed notebooks there too), and its results come back marked."""
    from restore_core.book import runner, scoreboard
    from restore_core.cli import main

    seen = {}

    def fake_run_book(**kw):
        seen.update(kw, dry=is_dry_run(), cfg=load_config("rnan/color_dn", profile="full"))
        (kw["out_dir"] / "ablation_rnan.full.json").write_text(json.dumps({"rows": [1]}))
        return []

    monkeypatch.setattr(runner, "run_book", fake_run_book)
    monkeypatch.setattr(scoreboard, "write_scoreboard", lambda *a, **k: seen.setdefault("scoreboard", True))
    assert main(["book", "run", "--dry-run", "--chapters", "04"]) == 2           # needs --profile full
    assert main(["book", "run", "--profile", "full", "--dry-run", "--chapters", "04",
                 "--out-dir", str(tmp_path)]) == 0
    assert seen["dry"] and seen["profile"] == "full" and seen["device"] == "cpu" and "scoreboard" not in seen
    assert seen["executed_dir"] == tmp_path / "executed" and seen["chapters"] == ["04"]
    assert seen["cfg"].train.total_iter == 2 and seen["cfg"].data_root == str((tmp_path / "data").resolve())
    assert json.loads((tmp_path / "results" / "ablation_rnan.full.json").read_text())["dry_run"] is True
    assert not is_dry_run()
