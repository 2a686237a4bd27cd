"""Optimizers, learning-rate schedules (BasicSR's, as step-indexed functions), EMA and AMP helpers.

Schedules are functions of the optimizer step, wrapped in ``LambdaLR``: resuming restores the exact lr.
As in BasicSR, the lr of optimizer step ``i`` (1-based) is ``lr * factor(i - 1)``, with an optional linear
warm-up ``i / warmup_iter`` for ``i < warmup_iter``.
"""
from __future__ import annotations

import bisect
import copy
import math
from typing import Callable, Iterable, List, Sequence

import torch
from torch import nn

from .config import OptimizerOptions, SchedulerOptions


def build_optimizer(params: Iterable[nn.Parameter], opt: OptimizerOptions) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    cls = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}[opt.type]
    return cls(params, lr=opt.lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay, eps=opt.eps)


def lr_factor_fn(sched: SchedulerOptions, base_lr: float, total_iter: int,
                 warmup_iter: int = -1) -> Callable[[int], float]:
    """``factor(t)``: the lr multiplier after ``t`` scheduler steps (t = optimizer step - 1)."""
    kind = sched.type
    if kind in ("MultiStepLR", "MultiStepRestartLR"):
        milestones = sorted(sched.milestones)

        def base(t: int) -> float:
            return sched.gamma ** bisect.bisect_right(milestones, t)
    elif kind == "StepLR":
        if sched.step_size < 1:
            raise ValueError("train.scheduler.step_size: must be >= 1 for StepLR")

        def base(t: int) -> float:
            return sched.gamma ** (t // sched.step_size)
    elif kind == "CosineAnnealingRestartLR":
        periods = list(sched.periods)
        weights = list(sched.restart_weights) or [1.0] * len(periods)
        if not periods or len(weights) != len(periods):
            raise ValueError("train.scheduler: CosineAnnealingRestartLR needs periods and as many restart_weights")
        cumulative = [sum(periods[: i + 1]) for i in range(len(periods))]

        def base(t: int) -> float:
            idx = min(bisect.bisect_left(cumulative, t), len(periods) - 1)
            start = 0 if idx == 0 else cumulative[idx - 1]
            lr = sched.eta_min + weights[idx] * 0.5 * (base_lr - sched.eta_min) * (
                1 + math.cos(math.pi * (t - start) / periods[idx]))
            return lr / base_lr
    elif kind == "CosineAnnealingLR":
        def base(t: int) -> float:
            progress = min(t, total_iter) / total_iter
            lr = sched.eta_min + (base_lr - sched.eta_min) * 0.5 * (1 + math.cos(math.pi * progress))
            return lr / base_lr
    elif kind == "ConstantLR":
        def base(t: int) -> float:
            return 1.0
    else:
        raise ValueError(f"train.scheduler.type: unknown {kind!r} (MultiStepLR, StepLR, CosineAnnealingRestartLR, "
                         f"CosineAnnealingLR, ConstantLR)")

    def factor(t: int) -> float:
        f = base(t)
        if warmup_iter > 0 and t + 1 < warmup_iter:
            f *= (t + 1) / warmup_iter
        return f

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, sched: SchedulerOptions, total_iter: int,
                    warmup_iter: int = -1) -> torch.optim.lr_scheduler.LambdaLR:
    base_lr = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(sched, base_lr, total_iter, warmup_iter))


class ModelEMA:
    """Exponential moving average of the weights: ``ema = decay * ema + (1 - decay) * model`` after each
    optimizer step (BasicSR's ``model_ema``); buffers are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = dict(model.named_parameters())
        for name, p in self.module.named_parameters():
            p.mul_(self.decay).add_(src[name].detach().to(p.dtype), alpha=1 - self.decay)
        src_b = dict(model.named_buffers())
        for name, b in self.module.named_buffers():
            b.copy_(src_b[name])

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)


def matches_any(name: str, patterns: Sequence[str]) -> bool:
    """Whether parameter ``name`` contains one of ``patterns`` as whole dotted components: "A_log" matches
    "layers.0.ss2d.A_log" but not "A_logits"; "dt_proj.bias" matches "mixer.dt_proj.bias"."""
    padded = f".{name}."
    return any(f".{pat.strip('.')}." in padded for pat in patterns)


def cast_params_keep_fp32(model: nn.Module, dtype: torch.dtype, fp32_patterns: Sequence[str]) -> List[str]:
    """Cast the floating parameters and buffers to ``dtype`` except those matching ``fp32_patterns`` (the SSM
    parameters A_log, D, dt bias stay fp32: exp(A) and softplus(dt) lose too much in 8-bit mantissas).
    Returns the names kept in fp32."""
    kept = []
    for name, p in model.named_parameters():
        if not p.is_floating_point():
            continue
        if matches_any(name, fp32_patterns):
            kept.append(name)
            p.data = p.data.float()
        else:
            p.data = p.data.to(dtype)
    for name, b in model.named_buffers():
        if b.is_floating_point() and not matches_any(name, fp32_patterns):
            b.data = b.data.to(dtype)
    return kept
