"""Model complexity: parameter counts (true and thop-style), FLOPs including the selective scan, and how latency
and peak memory grow with the input size.

Why two parameter counts: MambaIR (arXiv:2402.15648, Table 4) reports 859K parameters for its light SR x2
model, while the model holds 1,363,320. The paper's number comes from ``thop.profile``, which only counts the
parameters of modules it has a rule for (Conv, Linear, norm layers, ...) and never those a layer holds directly
as ``nn.Parameter`` - SS2D's ``x_proj_weight``, ``dt_projs_*``, ``A_logs``, ``Ds`` and the blocks' skip scales.
:func:`count_parameters_thop_style` reproduces that rule (thop 0.1.1's ``register_hooks`` table and its
depth-first walk, assuming every module runs in the forward pass), :func:`count_parameters` counts everything.

FLOPs (:func:`count_flops`), by forward hooks on one real forward pass (no thop needed):

* Conv / ConvTranspose / Linear: multiply-accumulates, bias not counted (fvcore's convention):
  conv ``out.numel() * C_in/groups * k_h * k_w``; transposed conv ``in.numel() * C_out/groups * k_h * k_w``;
  linear ``out.numel() * in_features``.
* SS2D (and any module with a ``scan_dims(x) -> [(Bt, E, L, N, has_skip), ...]`` method): the per-direction
  projections done with einsum (x_proj: ``Bt*K*L*E*(R+2N)`` MACs, dt_proj: ``Bt*K*L*R*E`` MACs) and the
  selective scan counted analytically (:func:`selective_scan_ops`): per element of (Bt, E, L, N) one ``exp``
  (of Δ·A), five multiplies (Δ·A, Δ·u·B (2), Ā·h, C·h) and two adds (the state update and the accumulation of
  C·h over N); per element of (Bt, E, L) one add (delta bias) and one softplus, plus a multiply and an add for
  the D·u skip.
* Attention products done with ``@`` / ``einsum`` (Q·Kᵀ and A·V), which no module hook sees: any module with a
  ``matmul_macs(x) -> int`` method (called with its first input) adds those MACs, e.g. full self-attention over
  L = H*W tokens of C channels ``2 * Bt * L * L * C``, window attention with M x M windows ``2 * Bt * L * M² * C``
  (:mod:`restore_core.analysis.baselines`).
* Element-wise layers (activations, LayerNorm, softmax, gating, the merge of scan directions) are not counted, as
  in thop / fvcore.

Counting needs no arithmetic: build the model and the input on the ``meta`` device (:func:`flops_at_sizes`) and
the forward pass only propagates shapes; the selective scan's shape-only ``"meta"`` backend
(:mod:`restore_core.ssm.scan`) is chosen automatically for meta tensors (the real backends would loop over the
sequence for nothing).

``macs`` (= conv/linear + SS2D projection + attention-product MACs) is the quantity image-restoration papers
call "FLOPs" (thop and SwinIR's own counter report conv/linear MACs only: :attr:`FlopReport.macs_layers`);
``flops`` = 2 * macs + the scan's operations (each mul / add / exp / softplus counted as one).

Scaling (:func:`measure_scaling`): median latency over repeats and peak memory for a list of input sizes, with
log-log slopes fitted over the pixel count (slope 1 = linear in H*W, 2 = quadratic). Peak memory: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the running sum of the per-operator self memory that
``torch.profiler`` (``profile_memory=True``) records, in time order - i.e. the peak of live tensor memory
(temporaries allocated and freed inside one operator are not seen; the process RSS is not used).
Used by the book chapter on MambaIR's complexity.
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile
from tqdm.auto import tqdm

from ..ssm.cross_scan import get_scan_order
from ..ssm.ss2d import SS2D


__all__ = ["count_parameters", "count_parameters_thop_style", "parameter_summary", "THOP_COUNTED_TYPES", "selective_scan_ops",
           "thop_missed_parameters", "FlopReport", "count_flops", "flops_at_sizes", "ScalingResult",
           "measure_scaling", "loglog_slope", "peak_memory_bytes"]

# thop 0.1.1 (profile.py ``register_hooks``): module types it counts; matched by exact type like thop does.
THOP_COUNTED_TYPES: Tuple[type, ...] = (
    nn.ZeroPad2d, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
    nn.InstanceNorm3d, nn.PReLU, nn.Softmax, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d,
    nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.Linear, nn.Dropout,
    nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d, nn.RNNCell, nn.GRUCell, nn.LSTMCell, nn.RNN,
    nn.GRU, nn.LSTM, nn.PixelShuffle)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Every parameter (the true size of the model)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_parameters_thop_style(model: nn.Module) -> int:
    """What ``thop.profile`` reports: depth-first over children; a module whose exact type thop knows (and that is
    not a Sequential / ModuleList) contributes all its parameters, any other module is walked into and the
    parameters it holds directly are lost."""

    def walk(m: nn.Module) -> int:
        total = 0
        for child in m.children():
            if type(child) in THOP_COUNTED_TYPES:
                total += sum(p.numel() for p in child.parameters())
            else:
                total += walk(child)
        return total

    return walk(model)


def parameter_summary(model: nn.Module) -> Dict[str, int]:
    """Both counts and their gap: ``{"params", "params_thop_style", "params_missed_by_thop"}``."""
    total, thop = count_parameters(model), count_parameters_thop_style(model)
    return {"params": total, "params_thop_style": thop, "params_missed_by_thop": total - thop}


def thop_missed_parameters(model: nn.Module) -> Dict[str, int]:
    """The parameters a thop-style count loses, grouped by attribute name (the last part of the qualified name,
    e.g. ``"A_logs"``, ``"x_proj_weight"``, ``"skip_scale"``), largest first; the values sum to
    ``count_parameters(model) - count_parameters_thop_style(model)``."""
    counted = set()

    def walk(m: nn.Module) -> None:
        for child in m.children():
            if type(child) in THOP_COUNTED_TYPES:
                counted.update(id(p) for p in child.parameters())
            else:
                walk(child)

    walk(model)
    missed: Dict[str, int] = {}
    for name, p in model.named_parameters():
        if id(p) not in counted:
            key = name.rsplit(".", 1)[-1]
            missed[key] = missed.get(key, 0) + p.numel()
    return dict(sorted(missed.items(), key=lambda kv: (-kv[1], kv[0])))


def selective_scan_ops(Bt: int, E: int, L: int, N: int, has_skip: bool = True, delta_bias: bool = True,
                       delta_softplus: bool = True, gate: bool = False) -> Dict[str, int]:
    """Operation counts of one selective scan over u: (Bt, E, L) with state size N (see the module docstring)."""
    elems, seq = Bt * E * L * N, Bt * E * L
    ops = {"exp": elems, "mul": 5 * elems, "add": 2 * elems, "softplus": 0}
    if delta_bias:
        ops["add"] += seq
    if delta_softplus:
        ops["softplus"] += seq
    if has_skip:
        ops["mul"] += seq
        ops["add"] += seq
    if gate:  # y * SiLU(z): a SiLU and a multiply per element
        ops["mul"] += 2 * seq
        ops["exp"] += seq
    return ops


def _ss2d_scan_dims(m: SS2D, x: Tensor) -> List[Tuple[int, int, int, int, bool]]:
    Bt, H, W, _ = x.shape
    L = get_scan_order(m.scan_order).seq_len(H, W)
    return [(Bt, m.directions * m.d_inner, L, m.d_state, True)]


def _ss2d_proj_macs(m: SS2D, x: Tensor) -> int:
    Bt, H, W, _ = x.shape
    L = get_scan_order(m.scan_order).seq_len(H, W)
    K, E, R, N = m.directions, m.d_inner, m.dt_rank, m.d_state
    return Bt * K * L * E * (R + 2 * N) + Bt * K * L * R * E


@dataclass
class FlopReport:
    """FLOP counts of one forward pass; see the module docstring for the conventions."""

    input_shape: Tuple[int, ...]
    macs_layers: int = 0                 # Conv / ConvTranspose / Linear
    macs_ssm_proj: int = 0               # SS2D x_proj / dt_proj einsums
    macs_attention: int = 0              # Q·Kᵀ and A·V products of modules with ``matmul_macs``
    scan_ops: Dict[str, int] = field(default_factory=lambda: {"exp": 0, "mul": 0, "add": 0, "softplus": 0})
    by_module: Dict[str, int] = field(default_factory=dict)  # MACs per layer type; "selective_scan": its ops

    @property
    def macs(self) -> int:
        return self.macs_layers + self.macs_ssm_proj + self.macs_attention

    @property
    def scan_flops(self) -> int:
        return sum(self.scan_ops.values())

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.scan_flops

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(macs=self.macs, scan_flops=self.scan_flops, flops=self.flops)
        return d


def _conv_macs(m: nn.Module, inp: Tensor, out: Tensor) -> int:
    k = math.prod(m.weight.shape[2:])
    if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return inp.numel() * (m.out_channels // m.groups) * k
    return out.numel() * (m.in_channels // m.groups) * k


def count_flops(model: nn.Module, *inputs: Tensor) -> FlopReport:
    """Count MACs and scan operations of ``model(*inputs)`` (run once under ``torch.no_grad``)."""
    if not inputs:
        raise ValueError("count_flops needs the example input(s), e.g. torch.rand(1, 3, 64, 64)")
    report = FlopReport(input_shape=tuple(inputs[0].shape))
    handles = []

    def add(name: str, n: int) -> None:
        report.by_module[name] = report.by_module.get(name, 0) + n

    def layer_hook(m: nn.Module, args: tuple, out: Tensor) -> None:
        if isinstance(m, nn.Linear):
            n = out.numel() * m.in_features
        else:
            n = _conv_macs(m, args[0], out)
        report.macs_layers += n
        add(type(m).__name__, n)

    def scan_hook(m: nn.Module, args: tuple) -> None:
        x = args[0]
        if isinstance(m, SS2D):
            n = _ss2d_proj_macs(m, x)
            report.macs_ssm_proj += n
            add("SS2D projections", n)
            dims = _ss2d_scan_dims(m, x)
        else:
            dims = m.scan_dims(x)
        for Bt, E, L, N, skip in dims:
            for k, v in selective_scan_ops(Bt, E, L, N, has_skip=skip).items():
                report.scan_ops[k] += v
            add("selective_scan", sum(selective_scan_ops(Bt, E, L, N, has_skip=skip).values()))

    def matmul_hook(m: nn.Module, args: tuple) -> None:
        n = int(m.matmul_macs(args[0]))
        report.macs_attention += n
        add("attention products", n)

    layer_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                   nn.Linear)
    for m in model.modules():
        if isinstance(m, layer_types):
            handles.append(m.register_forward_hook(layer_hook))
        if isinstance(m, SS2D) or callable(getattr(m, "scan_dims", None)):
            handles.append(m.register_forward_pre_hook(scan_hook))
        if callable(getattr(m, "matmul_macs", None)):
            handles.append(m.register_forward_pre_hook(matmul_hook))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return report


def flops_at_sizes(build: Callable[[], nn.Module], sizes: Sequence[Union[int, Tuple[int, int]]],
                   in_channels: int = 3, batch: int = 1) -> List[FlopReport]:
    """:func:`count_flops` of ``build()`` for inputs (batch, in_channels, H, W) of each size (square if an int),
    without computing anything: the model and the inputs live on the meta device, so sizes far beyond what
    fits in memory (full attention at 1024 px) cost milliseconds.

    build: a zero-argument factory (it is called inside ``torch.device("meta")``).
    """
    if not sizes:
        raise ValueError("flops_at_sizes needs at least one size")
    with torch.device("meta"):
        model = build()
    model.eval()
    shapes = [(s, s) if isinstance(s, int) else tuple(s) for s in sizes]
    return [count_flops(model, torch.empty(batch, in_channels, H, W, device="meta")) for H, W in shapes]


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log(y) against log(x) (the exponent p in y ~ x^p)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("loglog_slope needs at least two (x, y) pairs of equal length")
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    return float(np.polyfit(lx, ly, 1)[0])


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (Python's sys.stderr is flushed first)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory_bytes(fn: Callable[[], object], device: Union[str, torch.device] = "cpu") -> int:
    """Peak tensor memory (bytes) allocated while ``fn()`` runs, above what was live before (module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _native_stderr_silenced():  # the profiler's C++ side prints "profiler_start/stop" lines to fd 2
        prof.start()
    try:
        fn()
    finally:
        with _native_stderr_silenced():
            prof.stop()
    live = peak = 0
    for e in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += e.self_cpu_memory_usage
        peak = max(peak, live)
    return int(peak)


@dataclass
class ScalingResult:
    """Latency (s, median or min over repeats) and peak memory (bytes) per input size; slopes of both against H*W
    on log-log axes."""

    sizes: List[Tuple[int, int]]
    pixels: List[int]
    latency_s: List[float]
    peak_bytes: List[int]
    latency_slope: float
    memory_slope: float
    device: str
    backward: bool

    def to_dict(self) -> dict:
        return asdict(self)


def measure_scaling(model: nn.Module, sizes: Sequence[Union[int, Tuple[int, int]]], in_channels: int = 3,
                    batch: int = 1, repeats: int = 3, warmup: int = 1, backward: bool = False,
                    device: Optional[Union[str, torch.device]] = None, progress: bool = True,
                    statistic: str = "median") -> ScalingResult:
    """Time ``model`` (and measure its peak memory) on random inputs of each size (square if an int).

    ``statistic``: how the ``repeats`` timings of one size are reduced, "median" or "min" (the better estimate
    of the intrinsic cost on a machine shared with other jobs, whose interference only ever adds time).

    ``backward``: time forward + backward of the output mean (training mode) instead of an inference forward
    (eval mode); the model's mode is restored afterwards.
    """
    if len(sizes) < 2:
        raise ValueError("measure_scaling needs at least two sizes to fit a slope")
    reduce = {"median": statistics.median, "min": min}.get(statistic)
    if reduce is None:
        raise ValueError(f"statistic must be 'median' or 'min', got {statistic!r}")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(dev)
    was_training = model.training
    model.train(backward)
    shapes = [(s, s) if isinstance(s, int) else tuple(s) for s in sizes]
    lat, mem = [], []
    for H, W in tqdm(shapes, desc="scaling", disable=not progress):
        x = torch.rand(batch, in_channels, H, W, device=dev)

        def step() -> None:
            if backward:
                xi = x.clone().requires_grad_(True)
                model(xi).mean().backward()
            else:
                with torch.no_grad():
                    model(x)

        for _ in range(warmup):
            step()
        times = []
        for _ in range(repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - t0)
        lat.append(reduce(times))
        mem.append(peak_memory_bytes(step, dev))
        if backward:
            model.zero_grad(set_to_none=True)
    model.train(was_training)
    pixels = [H * W for H, W in shapes]
    return ScalingResult(sizes=[tuple(s) for s in shapes], pixels=pixels, latency_s=lat, peak_bytes=mem,
                         latency_slope=loglog_slope(pixels, lat), memory_slope=loglog_slope(pixels, mem),
                         device=str(dev), backward=backward)
