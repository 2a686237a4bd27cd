"""The training loop: one function, :func:`train`, for the CLI, the book chapters and torchrun.

``train(config) -> TrainResult`` builds the network and datasets named in the config (or takes an in-memory
``model`` / ``train_set`` / ``val_set``), then runs ``train.total_iter`` optimizer steps with Adam/AdamW, the
configured schedule, optional gradient clipping, gradient accumulation, EMA and AMP autocast (bf16/fp16 on
CUDA), validates every ``val.val_freq`` steps and writes checkpoints every ``logger.save_checkpoint_freq``.

Exact resume: a checkpoint holds model, EMA, optimizer, scheduler, AMP scaler, every rank's RNG states and the
sampler's (epoch, position); data augmentation is seeded per (seed, epoch, sample) (see ``sampler.py``), so a
run stopped at any checkpoint and resumed ends with bit-identical weights on CPU (tested).

A non-finite loss stops the run with :class:`NonFiniteLossError` naming the step; nothing is written after the
last good checkpoint. Under torchrun (``WORLD_SIZE`` > 1) the model is wrapped in DDP, each rank sees its shard
of every global batch, and only rank 0 logs, validates and writes (see ``distributed.py``).

Explained in the book chapter on training; the ablation chapters call :func:`train` with small configs.
"""
from __future__ import annotations

import contextlib
import json
import logging
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from ..models.weights import load_weights
from . import checkpoint as ckpt_io
from .builders import build_network, build_train_dataset, build_val_dataset, load_pretrained
from .config_files import dump_config, load_config
from .config_schema import TrainConfig
from .distributed import (DistContext, all_finite, all_gather_objects, barrier, broadcast_object,
                          check_same_config, init_distributed, mean_over_ranks, shutdown)
from .evaluate import evaluate
from .optim import ModelEMA, build_optimizer, build_scheduler, cast_params_keep_fp32
from .sampler import ResumableSampler, SeededSampleDataset
from .task import fusion_pair, luma, restoration_pair  # noqa: F401 -- their earlier home; restore_core.train.task
from .val_metrics import build_metrics

log = logging.getLogger(__name__)

StepCallback = Callable[["Trainer", int, Dict[str, float]], None]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    history: one entry per ``logger.print_freq`` steps: ``{"step", "loss", "lr", <loss parts>}``;
    val_history: one entry per validation: ``{"step", <metric>: mean value}``;
    final_metrics: the last validation's means (empty without a validation set);
    checkpoint_path: the last checkpoint written (None with ``save_checkpoints=False``);
    model: the trained network (the EMA copy when EMA is on), unwrapped from DDP, in eval mode.
    """

    history: List[Dict[str, float]]
    val_history: List[Dict[str, float]]
    final_metrics: Dict[str, float]
    checkpoint_path: Optional[Path]
    exp_dir: Optional[Path]
    model: nn.Module
    steps: int
    seconds: float
    config: TrainConfig
    rank: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return {"history": self.history, "val_history": self.val_history, "final_metrics": self.final_metrics,
                "checkpoint_path": str(self.checkpoint_path) if self.checkpoint_path else None,
                "steps": self.steps, "seconds": self.seconds, "config": self.config.to_dict()}


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------------------------
# batches: what the model gets and what the loss compares

def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: _to_device(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device) for v in x)
    return x


def _channels_last(x: Any) -> Any:
    """Every 4-D tensor in a batch (a tensor, a mapping or a sequence of them) in channels-last memory."""
    if isinstance(x, Tensor):
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    if isinstance(x, Mapping):
        return {k: _channels_last(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_channels_last(v) for v in x)
    return x


# --------------------------------------------------------------------------------------------------------------

class Trainer:
    """Holds the state of one run; :func:`train` is the public entry point."""

    def __init__(self, cfg: TrainConfig, model: Optional[nn.Module] = None, train_set: Optional[Dataset] = None,
                 val_set: Optional[Dataset] = None, out_dir: Optional[Union[str, Path]] = None,
                 device: Optional[str] = None, progress: Optional[bool] = None, save_checkpoints: bool = True,
                 callbacks: Sequence[StepCallback] = ()) -> None:
        self.cfg = cfg
        self.callbacks = list(callbacks)
        if device is None and cfg.num_gpu == 0:  # BasicSR's num_gpu: 0 means CPU
            device = "cpu"
        self.dist: DistContext = init_distributed(device=device, backend=cfg.dist_params.backend)
        self.device = self.dist.device
        check_same_config(self.dist, cfg.hash())
        seed_all(cfg.manual_seed)
        if self.device.type == "cuda" and cfg.deterministic:
            # CPU kernels are already deterministic for a fixed thread count (the exact-resume test checks it);
            # the switch is not set on CPU because it costs a ~6 s import of torch._inductor per process
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False

        self.save_checkpoints = save_checkpoints
        if save_checkpoints or out_dir is not None:
            self.exp_dir: Optional[Path] = Path(out_dir) if out_dir is not None else Path(
                cfg.path.experiments_root or "experiments") / cfg.name
        else:
            self.exp_dir = None
        self.ckpt_dir = self.exp_dir / "checkpoints" if self.exp_dir else None
        self.progress = cfg.logger.progress_bar if progress is None else progress

        # network (seeded identically on every rank; DDP broadcasts rank 0's weights anyway)
        net = model if model is not None else build_network(cfg)
        if cfg.path.pretrain_network_g:
            load_pretrained(net, cfg.path.pretrain_network_g, strict=cfg.path.strict_load_g,
                            param_key=cfg.path.param_key_g)
        t = cfg.train
        self.amp_dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[t.mixed_precision]
        if self.amp_dtype is not None and self.device.type != "cuda":
            warnings.warn(f"train.mixed_precision={t.mixed_precision} needs CUDA; training in fp32 on CPU")
            self.amp_dtype = None
        self.fp32_param_names: List[str] = []
        if t.param_dtype is not None:
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[t.param_dtype]
            self.fp32_param_names = cast_params_keep_fp32(net, dtype, t.fp32_params)
        self.net = net.to(self.device)
        if t.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.ema = ModelEMA(self.net, t.ema_decay) if t.ema_decay > 0 else None
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model: nn.Module = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        else:
            self.model = self.net

        self.optimizer = build_optimizer(self.net.parameters(), t.optim_g)
        self.scheduler = build_scheduler(self.optimizer, t.scheduler, t.total_iter, t.warmup_iter)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self.task = cfg.task
        self.loss_fn = self.task.build_loss(t).to(self.device)

        # data
        train_set = train_set if train_set is not None else build_train_dataset(cfg)
        self.val_set = val_set if val_set is not None else build_val_dataset(cfg)
        if self.dist.is_main and self.val_set is not None and cfg.val.metrics and cfg.val.val_freq > 0:
            build_metrics(cfg.val.metrics)  # a misspelled metric fails now, not at the first validation
        ds_opt = cfg.datasets.get("train")
        self.batch_size = ds_opt.batch_size_per_gpu if ds_opt else 1
        self.num_workers = ds_opt.num_worker_per_gpu if ds_opt else 0
        self.train_data = SeededSampleDataset(train_set, cfg.manual_seed)
        self.sampler = ResumableSampler(
            len(self.train_data), seed=cfg.manual_seed, rank=self.dist.rank, world_size=self.dist.world_size,
            shuffle=ds_opt.use_shuffle if ds_opt else True,
            enlarge_ratio=ds_opt.dataset_enlarge_ratio if ds_opt else 1)
        if self.sampler.samples_per_rank < self.batch_size:
            raise ValueError(f"datasets.train.batch_size_per_gpu={self.batch_size} exceeds the "
                             f"{self.sampler.samples_per_rank} samples per rank and epoch")

        self.step = 0
        self.history: List[Dict[str, float]] = []
        self.val_history: List[Dict[str, float]] = []
        self.last_checkpoint: Optional[Path] = None
        self._writer = None

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {
            "format": ckpt_io.FORMAT, "step": self.step, "model": self.net.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "sampler": self.sampler.state_dict(),
            "history": self.history, "val_history": self.val_history,
            "config": ckpt_io.config_to_text(self.cfg.to_dict()), "config_hash": self.cfg.hash(),
        }

    def save_checkpoint(self) -> Optional[Path]:
        """Every rank contributes its RNG state; rank 0 writes ``step_XXXXXXXX.pt`` atomically."""
        rngs = all_gather_objects(self.dist, ckpt_io.rng_state())
        path = None
        if self.dist.is_main and self.ckpt_dir is not None:
            state = self.state_dict()
            state["rng"] = rngs[0]
            state["rng_per_rank"] = rngs
            path = ckpt_io.atomic_torch_save(state, self.ckpt_dir / f"step_{self.step:08d}.pt")
            ckpt_io.prune_checkpoints(self.ckpt_dir, self.cfg.logger.keep_checkpoints)
        barrier(self.dist)
        self.last_checkpoint = path or (self.ckpt_dir / f"step_{self.step:08d}.pt" if self.ckpt_dir else None)
        return self.last_checkpoint

    def resume(self, source: Union[str, Path]) -> int:
        """Load a checkpoint (a path, or "auto" = the newest in this experiment); every rank loads the same one.
        Returns the step it resumes at (0 when "auto" finds none)."""
        if str(source) == "auto":
            found = ckpt_io.latest_checkpoint(self.ckpt_dir) if self.ckpt_dir else None
            found = broadcast_object(self.dist, found)  # every rank resumes from rank 0's choice
            if found is None:
                return 0
            source = found
        state = ckpt_io.load_checkpoint(source)
        if state.get("config_hash") not in (None, self.cfg.hash()):
            log.warning("resuming %s, written with a different config", source)
        load_weights(self.net, state["model"], source=f"checkpoint {source}", target="this run's network_g",
                     hint="Was it written by a run with another network_g?")
        if self.ema is not None:
            if state.get("ema") is None:
                raise ValueError(f"{source} has no EMA weights but train.ema_decay is set")
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        per_rank = state.get("rng_per_rank") or [state["rng"]]
        ckpt_io.set_rng_state(per_rank[self.dist.rank] if self.dist.rank < len(per_rank) else per_rank[0])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        self.val_history = list(state.get("val_history", []))
        self.last_checkpoint = Path(source)
        return self.step

    # ---- the loop ----------------------------------------------------------------------------------------
    def _batches(self) -> Iterator[Any]:
        while True:
            # a private generator: creating a loader iterator must not draw from the global torch RNG
            # (it would shift dropout etc. between an uninterrupted and a resumed run)
            gen = torch.Generator()
            gen.manual_seed(self.cfg.manual_seed * 1_000_003 + self.sampler.epoch)
            loader = DataLoader(self.train_data, batch_size=self.batch_size, sampler=self.sampler, drop_last=True,
                                num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                                persistent_workers=False, generator=gen)
            for batch in loader:
                self.sampler.advance(self.batch_size)
                yield batch
            self.sampler.next_epoch()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _loss(self, batch: Any) -> Tuple[Tensor, Dict[str, Tensor]]:
        """(loss, {part: value}) of one micro-batch, as the config's task defines them."""
        batch = _to_device(batch, self.device)
        if self.cfg.train.channels_last:
            batch = _channels_last(batch)
        return self.task.training_loss(self.model, self.loss_fn, batch, self._autocast)

    def train_step(self, batches: Iterator[Any]) -> Dict[str, float]:
        """One optimizer step over ``accumulate_grad_batches`` micro-batches; returns the logged values."""
        t = self.cfg.train
        accum = t.accumulate_grad_batches
        self.model.train()
        total = 0.0
        parts_sum: Dict[str, float] = {}
        finite = True
        for micro in range(accum):
            batch = next(batches)
            sync_off = self.dist.enabled and micro < accum - 1
            ctx = self.model.no_sync() if sync_off else contextlib.nullcontext()  # type: ignore[operator]
            with ctx:
                loss, parts = self._loss(batch)
                finite = finite and bool(torch.isfinite(loss.detach()).item())
                self.scaler.scale(loss / accum).backward()
            total += float(loss.detach()) / accum
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v.detach()) / accum
        step = self.step + 1
        if not all_finite(self.dist, finite):
            self.optimizer.zero_grad(set_to_none=True)
            where = f"; the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else \
                "; no checkpoint was written yet"
            raise NonFiniteLossError(f"the loss is not finite ({total}) at step {step}{where}. Lower the lr, "
                                     f"set train.grad_clip_norm, or check the data for NaNs")
        if t.grad_clip_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), t.grad_clip_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.net)
        self.step = step
        return {"loss": total, "lr": lr, **parts_sum}

    def eval_model(self) -> nn.Module:
        if self.ema is not None and self.cfg.val.use_ema:
            return self.ema.module
        return self.net

    def validate(self) -> Dict[str, float]:
        """Rank 0 evaluates the validation set; the others wait. Returns the mean metrics (rank 0)."""
        means: Dict[str, float] = {}
        if self.dist.is_main and self.val_set is not None and self.cfg.val.metrics:
            rng = ckpt_io.rng_state()  # validation must not shift the training run's random streams
            res = evaluate(self.eval_model(), self.val_set, self.cfg.val.metrics, scale=self.cfg.scale,
                           task=self.task, device=self.device, tile=self.cfg.val.tile,
                           tile_overlap=self.cfg.val.tile_overlap, self_ensemble=self.cfg.val.self_ensemble,
                           max_images=self.cfg.val.max_images, progress=False)
            ckpt_io.set_rng_state(rng)
            means = res.mean
            self.val_history.append({"step": self.step, **means})
            if self._writer is not None:
                for k, v in means.items():
                    self._writer.add_scalar(f"val/{k}", v, self.step)
        barrier(self.dist)
        return means

    def _open_writer(self) -> None:
        if self.dist.is_main and self.exp_dir is not None and self.cfg.logger.use_tb_logger:
            self._writer = SummaryWriter(str(self.exp_dir / "tb"))

    def fit(self, max_steps: Optional[int] = None) -> TrainResult:
        """Train up to ``train.total_iter`` (or stop after ``max_steps`` more steps, as if interrupted)."""
        cfg, t, lg = self.cfg, self.cfg.train, self.cfg.logger
        start = time.perf_counter()
        if self.dist.is_main and self.exp_dir is not None:
            self.exp_dir.mkdir(parents=True, exist_ok=True)
            dump_config(cfg, self.exp_dir / "config.yml")
        self._open_writer()
        end_step = t.total_iter if max_steps is None else min(t.total_iter, self.step + max_steps)
        bar = None
        if self.dist.is_main and self.progress:
            bar = tqdm(total=t.total_iter, initial=self.step, desc=cfg.name, unit="step", dynamic_ncols=True)
        batches = self._batches()
        final_metrics: Dict[str, float] = self.val_history[-1] if self.val_history else {}
        try:
            while self.step < end_step:
                logs = self.train_step(batches)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{logs['loss']:.4g}", lr=f"{logs['lr']:.2e}", refresh=False)
                if lg.print_freq > 0 and (self.step % lg.print_freq == 0 or self.step == t.total_iter):
                    entry = {"step": self.step, **{k: mean_over_ranks(self.dist, v) for k, v in logs.items()}}
                    self.history.append(entry)
                    if self._writer is not None:
                        for k, v in entry.items():
                            if k != "step":
                                self._writer.add_scalar(f"train/{k}", v, self.step)
                last = self.step == t.total_iter
                if cfg.val.val_freq > 0 and (self.step % cfg.val.val_freq == 0 or last):
                    final_metrics = {"step": self.step, **self.validate()}
                    if bar is not None and len(final_metrics) > 1:
                        bar.write(f"step {self.step}: " + ", ".join(
                            f"{k} {v:.4f}" for k, v in final_metrics.items() if k != "step"))
                if self.save_checkpoints and (
                        (lg.save_checkpoint_freq > 0 and self.step % lg.save_checkpoint_freq == 0) or last
                        or self.step == end_step):
                    self.save_checkpoint()
                for cb in self.callbacks:
                    cb(self, self.step, logs)
        finally:
            if bar is not None:
                bar.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        if self.dist.is_main and self.exp_dir is not None:
            _write_json(self.exp_dir / "train_log.json", {"history": self.history, "val_history": self.val_history})
        final = {k: v for k, v in final_metrics.items() if k != "step"}
        model = self.eval_model().eval()
        return TrainResult(self.history, self.val_history, final, self.last_checkpoint, self.exp_dir, model,
                           self.step, time.perf_counter() - start, cfg, self.dist.rank)

    def close(self) -> None:
        shutdown(self.dist)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    tmp.replace(path)


def train(config: Union[TrainConfig, str, Path, Mapping[str, Any]], *, profile: Optional[str] = None,
          overrides: Sequence[str] = (), model: Optional[nn.Module] = None, train_set: Optional[Dataset] = None,
          val_set: Optional[Dataset] = None, out_dir: Optional[Union[str, Path]] = None,
          device: Optional[str] = None, resume: Optional[Union[str, Path]] = None, progress: Optional[bool] = None,
          save_checkpoints: bool = True, max_steps: Optional[int] = None,
          callbacks: Sequence[StepCallback] = ()) -> TrainResult:
    """Train a model; the one entry point for the CLI, torchrun and the book chapters.

    config: a :class:`TrainConfig`, a preset name ("mambair/sr_x2"), a YAML path or a dict in the YAML layout
        (``profile`` and ``overrides`` apply to the last three).
    model / train_set / val_set: in-memory replacements for ``network_g`` / ``datasets.train`` /
        ``datasets.val``. Items are dicts with "lq"/"hq" (restoration; "gt" also accepted) or "ir"/"vis"
        (fusion; "a"/"b" = infrared/visible also accepted) tensors (C, H, W) in [0, 1], or such pairs;
        val items are full images. A fusion model is called as ``model(ir, vis_y)``.
    out_dir: the experiment folder (checkpoints/, tb/, config.yml, train_log.json); default
        ``path.experiments_root``/``name`` (``experiments/<name>``). ``save_checkpoints=False`` writes nothing.
    resume: a checkpoint path or "auto" (the newest in out_dir, if any); default ``path.resume_state``.
    max_steps: stop after this many steps in this call (a checkpoint is written there): resuming later gives
        the same final weights as an uninterrupted run.
    callbacks: ``fn(trainer, step, logs)`` after every step.
    """
    cfg = config if isinstance(config, TrainConfig) else load_config(config, profile=profile, overrides=overrides)
    if isinstance(config, TrainConfig) and overrides:
        cfg = cfg.with_overrides(overrides)
    trainer = Trainer(cfg, model=model, train_set=train_set, val_set=val_set, out_dir=out_dir, device=device,
                      progress=progress, save_checkpoints=save_checkpoints, callbacks=callbacks)
    try:
        source = resume if resume is not None else cfg.path.resume_state
        if source:
            trainer.resume(source)
        return trainer.fit(max_steps=max_steps)
    finally:
        trainer.close()
