"""restore_core.gpu_check's CPU-side logic: arguments, the JSON it writes, skipping what is unavailable, and its
measurement functions on tiny CPU inputs (the real run is scripts/gpu_check.sh on a GPU machine)."""
import json

import pytest
import torch

from restore_core import gpu_check

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_without_cuda_gpu_steps_are_skipped_and_json_written(tmp_path):
    assert gpu_check.main([str(tmp_path / "out"), "--steps", "env,scan,train"]) == 3
    doc = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert doc["provenance"]["torch"] == torch.__version__ and doc["argv"][0] == str(tmp_path / "out")
    steps = doc["steps"]
    assert list(steps) == ["env", "scan", "train"]
    assert steps["env"]["status"] == "ok" and steps["env"]["result"]["cuda_available"] is False
    assert steps["scan"]["status"] == "skipped" and "CUDA" in steps["scan"]["reason"]
    assert steps["train"]["status"] == "skipped"


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert gpu_check.main([str(tmp_path), "--steps", "env,nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert gpu_check.main([str(tmp_path), "--bench-configs", "zz"]) == 2
    assert gpu_check.main([str(tmp_path), "--train-steps", "1"]) == 2


def test_run_steps_records_failures_skips_and_budget(tmp_path):
    def boom():
        raise RuntimeError("kaput")

    def missing():
        raise gpu_check.Skip("no such package")

    lines = []
    path = tmp_path / "r.json"
    rep = gpu_check.run_steps({"a": lambda: {"x": 1}, "b": boom, "c": missing}, path, {"check": "t"},
                              echo=lines.append)
    assert [rep["steps"][k]["status"] for k in "abc"] == ["ok", "failed", "skipped"]
    assert rep["steps"]["a"]["result"] == {"x": 1} and "kaput" in rep["steps"]["b"]["error"]
    assert json.loads(path.read_text()) == rep and len(lines) == 3
    rep = gpu_check.run_steps({"a": lambda: 1, "b": lambda: 2}, path, {}, budget_s=-1.0, echo=lines.append)
    assert all(e["status"] == "skipped" and "budget" in e["reason"] for e in rep["steps"].values())


def test_scan_equivalence_on_cpu():
    res = gpu_check.scan_equivalence("cpu", backends=["chunked"], dtypes=("float32", "bfloat16"),
                                     shapes=((1, 4, 9, 4, 2),))
    assert set(res["chunked"]["float32"]["max_rel_err"]) == {"out", "last", "u", "delta", "A", "B", "C", "D", "z",
                                                              "delta_bias"}
    assert res["chunked"]["float32"]["worst"] < 1e-4
    assert "worst" in res["chunked"]["bfloat16"] or "error" in res["chunked"]["bfloat16"]


@pytest.mark.parametrize("arch,preset,scale", [("mambair", "tiny_sr_x2", 2), ("fusion_mamba", "tiny", 1)])
def test_train_steps_on_cpu(arch, preset, scale, monkeypatch):
    from restore_core.ssm import native
    monkeypatch.setattr(native, "_ext", None)   # "auto" -> chunked: no wait on a native build shared with others
    monkeypatch.setattr(native, "_unavailable_reason", "disabled in this test")
    row = gpu_check.train_steps(arch, preset, batch=1, patch=16, scale=scale, steps=3, device="cpu",
                                amp_dtype=None, warmup=1)
    assert row["finite"] and row["steps_per_s"] > 0 and row["params"] > 0 and row["peak_mem_gb"] is None
    assert row["scan_backend"] == "chunked"


def test_paper_models_match_registered_presets():
    from restore_core.models.registry import list_presets
    from restore_core.train import load_config

    for arch, preset, config in gpu_check.PAPER_MODELS:
        assert preset in list_presets(arch)
        assert load_config(config, profile="full").network_g.preset == preset
