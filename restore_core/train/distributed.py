"""Distributed data-parallel training: process-group set-up from torchrun's environment, config agreement,
and the ``torchrun`` launch helper used by ``restore-core train --nproc N`` and the book runner.

The trainer runs unchanged under ``torchrun --nproc_per_node N``: it reads RANK / WORLD_SIZE / LOCAL_RANK,
joins the group (NCCL on CUDA, gloo on CPU), checks that every rank resolved the same config (sha256 hashes
gathered and compared), shards the data with :class:`restore_core.train.sampler.ResumableSampler`, and lets
only rank 0 log, validate and write checkpoints.

Full profile on one multi-GPU machine (e.g. 8 GPUs)::

    restore-core train mambair/sr_x2 --profile full --nproc 8
    # which runs: python -m torch.distributed.run --standalone --nproc_per_node 8 \\
    #     -m restore_core.cli train mambair/sr_x2 --profile full

``datasets.train.batch_size_per_gpu`` is per process, so the global batch is N x that (x
``train.accumulate_grad_batches``); the paper presets state the per-GPU batch the authors used with 8 GPUs.
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``, its ``local_rank`` and device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: Optional[str] = None
    owns_group: bool = False  # this process created the group (and destroys it at the end)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: Optional[str] = None, backend: Optional[str] = None,
                     timeout_s: float = 3600.0) -> DistContext:
    """Join the process group torchrun describes in the environment (no-op for a single process).

    ``device``: "cuda", "cpu" or None (CUDA when available). On CUDA each rank uses ``cuda:LOCAL_RANK``.
    ``backend``: None picks nccl on CUDA and gloo on CPU. ``timeout_s`` bounds every collective, including the
    barrier the other ranks wait at while rank 0 validates (hence an hour, not torch's 10 minutes for NCCL).
    """
    want_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    world = env_world_size()
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        dev = torch.device(f"cuda:{local}") if want_cuda else torch.device("cpu")
        return DistContext(rank, world, local, dev, dist.get_backend(), owns_group=False)
    if world <= 1:
        dev = torch.device(device if device and device != "cuda" else ("cuda" if want_cuda else "cpu"))
        return DistContext(0, 1, 0, dev, None, owns_group=False)
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise ValueError(f"WORLD_SIZE={world} but {var} is not set: launch with torchrun "
                             f"(restore-core train CONFIG --nproc N)")
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    backend = backend or ("nccl" if want_cuda else "gloo")
    if want_cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                            timeout=_dt.timedelta(seconds=timeout_s))
    dev = torch.device(f"cuda:{local}") if want_cuda else torch.device("cpu")
    return DistContext(rank, world, local, dev, backend, owns_group=True)


def shutdown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_gather_objects(ctx: DistContext, obj: Any) -> List[Any]:
    """Every rank's ``obj`` (a list of length world_size); ``[obj]`` for a single process."""
    if not ctx.enabled:
        return [obj]
    out: List[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(ctx: DistContext, obj: Any, src: int = 0) -> Any:
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def check_same_config(ctx: DistContext, config_hash: str) -> None:
    """Raise on every rank if the ranks resolved different configs (compares the hashes of all ranks)."""
    hashes = all_gather_objects(ctx, config_hash)
    differ = [r for r, h in enumerate(hashes) if h != hashes[0]]
    if differ:
        raise RuntimeError(f"ranks disagree on the config: rank 0 has {hashes[0][:12]}, ranks {differ} have "
                           f"{sorted({hashes[r][:12] for r in differ})}; give every rank the same file and options")


def all_finite(ctx: DistContext, finite: bool) -> bool:
    """True only if ``finite`` holds on every rank (one tiny all-reduce)."""
    if not ctx.enabled:
        return finite
    flag = torch.tensor([1.0 if finite else 0.0], device=ctx.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() > 0.5)


def mean_over_ranks(ctx: DistContext, value: float) -> float:
    if not ctx.enabled:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host`` (for MASTER_PORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def torchrun_command(nproc: int, module_args: Sequence[str], nnodes: int = 1,
                     master_addr: Optional[str] = None, master_port: Optional[int] = None) -> List[str]:
    """The command line that runs ``python -m restore_core.cli <module_args>`` on ``nproc`` processes.

    Single node: ``--standalone`` (torchrun picks a free rendezvous port). With ``master_addr`` (multi-node or
    a fixed loopback address): ``--master_addr/--master_port`` instead.
    """
    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--nnodes={nnodes}"]
    if master_addr is None and nnodes == 1:
        cmd.append("--standalone")
    else:
        cmd += [f"--master_addr={master_addr or '127.0.0.1'}", f"--master_port={master_port or free_port()}"]
    return cmd + ["-m", "restore_core.cli", *module_args]


def launch_train(config: str, nproc: int, profile: Optional[str] = None, overrides: Sequence[str] = (),
                 extra_args: Sequence[str] = (), env: Optional[dict] = None, check: bool = True) -> int:
    """Run ``restore-core train CONFIG`` under torchrun on ``nproc`` processes; returns the exit status.

    The helper the book runner (``restore-core book run --profile full``) calls for multi-GPU full runs::

        from restore_core.train.distributed import launch_train
        launch_train("mambair/sr_x2", nproc=torch.cuda.device_count(), profile="full")
    """
    args = ["train", config]
    if profile:
        args += ["--profile", profile]
    for o in overrides:
        args += ["--opt", o]
    args += list(extra_args)
    run_env = dict(os.environ, **(env or {}))
    run_env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(torchrun_command(nproc, args), env=run_env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with status {proc.returncode}")
    return proc.returncode
