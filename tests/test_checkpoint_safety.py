"""No file a user hands us can run code: a malicious pickle given to every command that reads weights runs nothing
and gives a one-line error; training checkpoints hold plain data only (config as YAML, RNG states as tensors);
checkpoints of the earlier format are refused with a pointer to ``restore-core convert``, which converts them
without running code either."""
import pickle
import random
import textwrap

import numpy as np
import pytest
import torch

from restore_core.cli import main
from restore_core.data import write_image
from restore_core.safe_load import UnsafeFileError, load_legacy, load_untrusted
from restore_core.train import checkpoint as ckpt_io
from restore_core.train import config_from_dict, train


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears iff the loader ran code from the pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def evil(tmp_path):
    """Malicious files shaped as a training checkpoint, a BasicSR file and a bare object; and the marker."""
    marker = tmp_path / "pwned"
    files = {}
    for name, obj in (("ckpt", {"model": {"w": torch.zeros(1)}, "config": _Payload(marker)}),
                      ("basicsr", {"params": {"conv.weight": _Payload(marker)}}),
                      ("bare", _Payload(marker))):
        files[name] = tmp_path / f"evil_{name}.pt"
        torch.save(obj, files[name])
    files["raw"] = tmp_path / "evil_raw.pt"  # a plain pickle, not torch's zip format
    files["raw"].write_bytes(pickle.dumps({"model": _Payload(marker)}, protocol=2))
    return files, marker


def _one_line_refusal(err: str, path) -> None:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert "was not loaded" in lines[0] and str(path) in lines[0] and "io.open" in lines[0], err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 3), ("val", 1)):
        (root / split).mkdir()
        for i in range(n):
            write_image(root / split / f"{split}{i}.png", torch.rand(3, 20, 20, generator=g))
    cfg = root / "tiny.yml"
    cfg.write_text(textwrap.dedent(f"""
        name: safety_tiny
        scale: 1
        manual_seed: 1
        data_root: {root}
        network_g: {{type: rnan, preset: tiny, n_feats: 8, n_local_groups: 0, nonlocal_channels: 4}}
        datasets:
          train: {{type: DegradedDataset, images: train, degradation: awgn_25, patch_size: 16,
                   batch_size_per_gpu: 2}}
          val: {{type: DegradedDataset, images: val, degradation: awgn_25}}
        train: {{total_iter: 2, scheduler: {{type: ConstantLR}}, pixel_opt: {{type: L1Loss}}}}
        val: {{val_freq: 0, metrics: {{psnr: {{type: calculate_psnr}}}}}}
        logger: {{print_freq: 1, save_checkpoint_freq: 2, use_tb_logger: false}}
    """))
    return root, cfg


@pytest.mark.parametrize("kind", ["ckpt", "basicsr", "bare", "raw"])
def test_every_command_refuses_a_malicious_pickle(kind, evil, tiny_setup, tmp_path, capsys):
    files, marker = evil
    path = files[kind]
    root, cfg = tiny_setup
    img = root / "val" / "val0.png"
    commands = [
        ["restore", str(path), str(img), "-o", str(tmp_path / "out"), "--no-progress"],
        ["restore", str(path), str(img), "-o", str(tmp_path / "out"), "--arch", "rnan", "--preset", "tiny"],
        ["restore", "--official", "rnan:color_dn", str(path), str(img), "-o", str(tmp_path / "out")],
        ["eval", str(path), str(root / "val"), "--no-progress"],
        ["inspect", str(path)],
        ["train", str(cfg), "--out", str(tmp_path / "exp1"), "--resume", str(path), "--no-progress"],
        ["train", str(cfg), "--out", str(tmp_path / "exp2"), "--no-progress",
         "--opt", f"path.pretrain_network_g={path}"],
        ["convert", str(path), "-o", str(tmp_path / "converted.pt")],
    ]
    for args in commands:
        rc = main(args)
        err = capsys.readouterr().err
        assert rc == 2, (args, err)
        _one_line_refusal(err, path)
        assert not marker.exists(), f"{args[0]} ran code from the file"
    assert not (tmp_path / "converted.pt").exists()


def test_library_readers_refuse_without_running(evil):
    files, marker = evil
    from restore_core.models.official import read_official_checkpoint
    from restore_core.train.builders import load_pretrained

    for path in files.values():
        for read in (load_untrusted, ckpt_io.load_checkpoint, read_official_checkpoint, load_legacy,
                     lambda p: load_pretrained(torch.nn.Conv2d(1, 1, 1), p)):
            with pytest.raises(UnsafeFileError, match="io.open"):
                read(path)
    assert not marker.exists()


def test_non_torch_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "photo.pt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(ValueError, match="is not a readable PyTorch checkpoint") as info:
        load_untrusted(bad)
    assert not isinstance(info.value, UnsafeFileError)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_untrusted(tmp_path / "missing.pt")


def test_rng_state_is_plain_data_and_restores_every_stream():
    random.seed(5), np.random.seed(6), torch.manual_seed(7)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.standard_normal()  # and one in NumPy's
    state = ckpt_io.rng_state()
    expected = (random.random(), random.gauss(0, 1), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    ckpt_io.set_rng_state(state)
    assert (random.random(), random.gauss(0, 1), np.random.standard_normal(3).tolist(),
            torch.rand(3).tolist()) == expected
    assert state["python"]["state"].dtype == torch.int64 and state["numpy"]["keys"].shape == (624,)


def _toy_config(tmp_path):
    return config_from_dict({
        "name": "toy", "manual_seed": 3,
        "datasets": {"train": {"type": "in_memory", "batch_size_per_gpu": 3}},
        "train": {"total_iter": 6, "optim_g": {"type": "Adam", "lr": 1e-2},
                  "scheduler": {"type": "MultiStepLR", "milestones": [3], "gamma": 0.5},
                  "pixel_opt": {"type": "L1Loss"}, "ema_decay": 0.9},
        "logger": {"print_freq": 1, "save_checkpoint_freq": 3, "use_tb_logger": False, "keep_checkpoints": 0},
        "val": {"val_freq": 0},
    })


def _legacy_copy(state, path):
    """``state`` (current format, as saved) rewritten the way restore_core saved checkpoints before: RNG states
    as Python / NumPy tuples, the config as a dict, no ``format`` entry."""
    def old_rng(r):
        py, npy = r["python"], r["numpy"]
        return {"python": (py["version"], tuple(py["state"].tolist()), py["gauss_next"]),
                "numpy": (npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                          npy["cached_gaussian"]),
                "torch": r["torch"]}

    old = {k: v for k, v in state.items() if k != "format"}
    old["config"] = __import__("yaml").safe_load(state["config"])
    old["rng"] = old_rng(state["rng"])
    old["rng_per_rank"] = [old_rng(r) for r in state["rng_per_rank"]]
    torch.save(old, path)


def test_checkpoint_is_weights_only_and_legacy_files_convert_exactly(tmp_path, capsys):
    from toy_training import NoisyPatches, make_model

    cfg = _toy_config(tmp_path)
    full = train(cfg, model=make_model(), train_set=NoisyPatches(), out_dir=tmp_path / "run", progress=False,
                 max_steps=3)
    path = full.checkpoint_path
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == ckpt_io.FORMAT and isinstance(raw["config"], str)
    assert ckpt_io.load_checkpoint(path)["config"]["name"] == "toy"

    legacy = tmp_path / "legacy" / "step_00000003.pt"
    legacy.parent.mkdir()
    _legacy_copy(raw, legacy)
    with pytest.raises(UnsafeFileError, match="restore-core convert"):
        ckpt_io.load_checkpoint(legacy)
    assert main(["convert", str(legacy)]) == 0
    assert "loads with weights_only=True" in capsys.readouterr().out
    assert (legacy.parent / "step_00000003.pt.orig").exists()
    converted = torch.load(legacy, weights_only=True)
    assert converted.keys() == raw.keys()
    flat_a, flat_b = _flatten(raw), _flatten(converted)
    assert flat_a.keys() == flat_b.keys()
    for k in flat_a:
        a, b = flat_a[k], flat_b[k]
        assert (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b), k
    # the converted checkpoint resumes to exactly the weights of an uninterrupted run
    uninterrupted = train(cfg, model=make_model(), train_set=NoisyPatches(), out_dir=tmp_path / "ref",
                          progress=False)
    resumed = train(cfg, model=make_model(), train_set=NoisyPatches(), out_dir=tmp_path / "resumed",
                    progress=False, resume=str(legacy))
    for k, v in uninterrupted.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def _flatten(obj, prefix=""):
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = obj
    return out
