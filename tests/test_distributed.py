"""DDP on CPU (gloo, loopback only): 2 ranks x batch 4 == 1 process x batch 8 == 2 ranks x batch 2 with 2
accumulated micro-batches; DDP resume == uninterrupted DDP; ranks with different configs fail clearly; the torchrun
command line."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from restore_core.train import config_from_dict, train
from restore_core.train.distributed import free_port, torchrun_command

TOYS = textwrap.dedent('''
    import toy_training

    def NoisyPatches(n=16, size=10):
        return toy_training.NoisyPatches(n, size)

    def make_model(dropout=0.0):
        return toy_training.make_model(dropout)

    def config(batch, ema=0.0):
        return {
            "name": "ddp", "manual_seed": 7,
            "datasets": {"train": {"type": "in_memory", "batch_size_per_gpu": batch}},
            "train": {"total_iter": 6, "optim_g": {"type": "Adam", "lr": 1e-2},
                      "scheduler": {"type": "MultiStepLR", "milestones": [4], "gamma": 0.5},
                      "pixel_opt": {"type": "L1Loss"}, "ema_decay": ema},
            "logger": {"print_freq": 1, "save_checkpoint_freq": 0, "use_tb_logger": False},
            "val": {"val_freq": 0},
        }
''')

WORKER = textwrap.dedent('''
    import json, os, sys
    import torch
    import torch.distributed as dist
    sys.path[:0] = [os.environ["TOYS_DIR"], os.environ["TESTS_DIR"]]
    import toys_ddp
    from restore_core.train import config_from_dict, train

    out = sys.argv[1]
    dist.init_process_group("gloo", init_method="env://")
    rank = dist.get_rank()
    data = toys_ddp.NoisyPatches()

    # 1) 2 ranks x batch 4, no dropout: compared with 1 process x batch 8 by the test
    cfg = config_from_dict(toys_ddp.config(4))
    r = train(cfg, model=toys_ddp.make_model(), train_set=data, out_dir=out + "/full", progress=False)
    if rank == 0:
        torch.save(r.model.state_dict(), out + "/ddp_full.pt")
        json.dump(r.history, open(out + "/ddp_history.json", "w"))

    # 2) with dropout and EMA: interrupted at step 3 (mid-epoch), resumed by every rank from rank 0's file
    cfg2 = config_from_dict(toys_ddp.config(4, ema=0.5))
    a = train(cfg2, model=toys_ddp.make_model(0.3), train_set=data, out_dir=out + "/a", progress=False)
    train(cfg2, model=toys_ddp.make_model(0.3), train_set=data, out_dir=out + "/b", progress=False, max_steps=3)
    b = train(cfg2, model=toys_ddp.make_model(0.3), train_set=data, out_dir=out + "/b", progress=False,
              resume="auto")
    if rank == 0:
        torch.save({"a": a.model.state_dict(), "b": b.model.state_dict(),
                    "a_raw": a.model.state_dict()}, out + "/ddp_resume.pt")

    # 4) 2 ranks x batch 2 x 2 accumulated micro-batches: the same global batch of 8 as 1)
    acc = config_from_dict(toys_ddp.config(2)).with_overrides(["train.accumulate_grad_batches=2"])
    r4 = train(acc, model=toys_ddp.make_model(), train_set=data, save_checkpoints=False, progress=False)
    if rank == 0:
        torch.save(r4.model.state_dict(), out + "/ddp_accumulated.pt")

    # 3) the ranks disagree on the config
    bad = cfg.with_overrides([f"train.optim_g.lr={0.01 * (rank + 1)}"])
    try:
        train(bad, model=toys_ddp.make_model(), train_set=data, save_checkpoints=False, progress=False)
        msg = "no error"
    except RuntimeError as exc:
        msg = str(exc)
    json.dump({"error": msg}, open(f"{out}/bad_{rank}.json", "w"))
    dist.destroy_process_group()
''')


@pytest.fixture(scope="module")
def toys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toys_ddp")
    (folder / "toys_ddp.py").write_text(TOYS)
    (folder / "worker.py").write_text(WORKER)
    sys.path.insert(0, str(folder))
    import importlib

    mod = importlib.import_module("toys_ddp")
    yield mod, folder
    sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def ddp_run(toys, tmp_path_factory):
    """Launch the 2-rank gloo worker once (loopback, a free port) and return its output folder."""
    _, folder = toys
    out = tmp_path_factory.mktemp("ddp_out")
    port = free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", TOYS_DIR=str(folder),
                   TESTS_DIR=str(Path(__file__).resolve().parent),
                   TQDM_DISABLE="1")
        procs.append(subprocess.Popen([sys.executable, str(folder / "worker.py"), str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the DDP workers did not finish in 120 s")
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    return out


def test_two_ranks_equal_one_process_with_the_global_batch(toys, ddp_run):
    mod, _ = toys
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers
    try:
        single = train(config_from_dict(mod.config(8)), model=mod.make_model(), train_set=mod.NoisyPatches(),
                       save_checkpoints=False, progress=False)
    finally:
        torch.set_num_threads(threads)
    ddp = torch.load(ddp_run / "ddp_full.pt")
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-5, atol=1e-6)
    # the logged loss is the mean over ranks = the single process's batch mean
    hist = json.loads((ddp_run / "ddp_history.json").read_text())
    assert [h["loss"] for h in hist] == pytest.approx([h["loss"] for h in single.history], rel=1e-5)
    # and the comparison can fail: 1 process with batch 4 sees other data
    half = train(config_from_dict(mod.config(4)), model=mod.make_model(), train_set=mod.NoisyPatches(),
                 save_checkpoints=False, progress=False)
    assert not torch.allclose(half.model.conv1.weight, ddp["conv1.weight"], atol=1e-4)


def test_gradient_accumulation_under_ddp_matches_the_global_batch(ddp_run):
    """2 ranks x batch 2 x 2 accumulation steps == 2 ranks x batch 4 (== 1 process x batch 8, test above)."""
    full = torch.load(ddp_run / "ddp_full.pt")
    acc = torch.load(ddp_run / "ddp_accumulated.pt")
    for k, v in full.items():
        torch.testing.assert_close(acc[k], v, rtol=1e-5, atol=1e-6)


def test_ddp_resume_matches_uninterrupted_ddp(ddp_run):
    state = torch.load(ddp_run / "ddp_resume.pt")
    for k, v in state["a"].items():
        assert torch.equal(state["b"][k], v), k
    ckpts = sorted(p.name for p in (ddp_run / "b" / "checkpoints").iterdir())
    assert ckpts == ["step_00000003.pt", "step_00000006.pt"]  # written once, by rank 0, no temporary files left
    from restore_core.train.checkpoint import load_checkpoint

    ck = load_checkpoint(ddp_run / "b" / "checkpoints" / "step_00000003.pt")
    assert len(ck["rng_per_rank"]) == 2 and ck["sampler"]["world_size"] == 2


def test_ranks_disagreeing_on_the_config_fail_clearly(ddp_run):
    for rank in range(2):
        msg = json.loads((ddp_run / f"bad_{rank}.json").read_text())["error"]
        assert "ranks disagree on the config" in msg and "ranks [1]" in msg


def test_torchrun_command_line():
    cmd = torchrun_command(4, ["train", "mambair/sr_x2", "--profile", "full"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=4" in cmd and "--standalone" in cmd
    assert cmd[-6:] == ["-m", "restore_core.cli", "train", "mambair/sr_x2", "--profile", "full"]
    fixed = torchrun_command(2, ["train", "x"], master_addr="127.0.0.1", master_port=29555)
    assert "--master_addr=127.0.0.1" in fixed and "--master_port=29555" in fixed and "--standalone" not in fixed
    with pytest.raises(ValueError, match="nproc"):
        torchrun_command(0, ["train", "x"])


@pytest.mark.gpu
def test_bf16_autocast_keeps_fp32_master_weights(toys):
    mod, _ = toys
    cfg = config_from_dict({**mod.config(4), "train": {**mod.config(4)["train"], "mixed_precision": "bf16"}})
    res = train(cfg, model=mod.make_model(), train_set=mod.NoisyPatches(), save_checkpoints=False, progress=False,
                device="cuda")
    assert all(p.dtype == torch.float32 for p in res.model.parameters())
    assert res.history[-1]["loss"] < res.history[0]["loss"]
