"""Benchmarks. ``python -m restore_core.bench scan`` (or ``restore-core bench scan``) times the selective scan;
``bench model`` times a whole model's forward pass against a reference module and the model's floor.

Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv:2312.00752 (the scan);
mambapy (alxndrTL/mamba.py) ``pscan`` is timed as the best-known pure-PyTorch parallel scan when importable.

In ONE process and on the same inputs, every available backend (and mambapy's pscan) is timed forward and
forward+backward (median of repeats), next to the machine's floors: memory bandwidth (a large copy), the
vectorised-exp throughput, the bytes the scan must move and B·D·L·N exps at that rate. Because CPU timings on
shared machines swing 2-3x, the report is read as ratios measured side by side (speed-up vs "ref", vs pscan,
gap to the floors). The "ref" backend steps with ``unbind()``, so its backward is linear in L: speed-ups are
never quoted against a loop with a quadratic backward. Methods whose estimated memory exceeds ``--max-mem-gb``
are skipped and reported as such. ``--device cuda`` times the GPU backends the same way (CUDA-synchronised
medians; peak memory from torch's allocator instead of the process RSS; the floors from a GPU copy and
``torch.exp``). Explained in the chapter "Selective scan and scanning images".
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .fsutil import atomic_write_json
from .provenance import provenance
from .ssm import native
from .ssm.dt_init import inverse_softplus
from .ssm.scan import list_backends, selective_scan


@dataclass(frozen=True)
class ScanConfig:
    """One benchmark shape: batch, channels d, length L, state size N, groups G of B/C (G=1: shared)."""

    batch: int
    d: int
    length: int
    n: int = 16
    groups: int = 1

    @property
    def exps(self) -> int:
        """B·D·L·N: the exps a forward pass needs."""
        return self.batch * self.d * self.length * self.n

    def io_bytes(self, itemsize: int = 4) -> int:
        """Bytes the forward must move at least: read u, delta, B, C; write out."""
        return itemsize * (3 * self.batch * self.d * self.length + 2 * self.batch * self.groups * self.n * self.length)


CONFIGS: Dict[str, ScanConfig] = {
    "a": ScanConfig(batch=1, d=480, length=4096, n=16, groups=4),     # MambaIR-like, 4-direction grouped B/C
    "b": ScanConfig(batch=4, d=1440, length=4096, n=16, groups=1),
    "c": ScanConfig(batch=1, d=480, length=16384, n=16, groups=4),
    "quick": ScanConfig(batch=1, d=96, length=1024, n=16, groups=4),  # the book's live profile
}

# Estimated peak bytes per method as a multiple of one float32 (B, D, L, N) tensor (measured on config (a)).
_MEM_FACTOR = {"ref": (4, 10), "chunked": (8, 20), "pscan": (4, 9), "native": (0, 0), "triton": (0, 0),
               "cuda": (0, 0)}


def mamba_inputs(cfg: ScanConfig, dtype: torch.dtype = torch.float32, seed: int = 0) -> Dict[str, Tensor]:
    """Inputs with Mamba's initialisation: A = -(1..N) per channel, delta_bias = softplus^-1(log-uniform
    [1e-3, 0.1]), delta_softplus. u, delta: (batch, d, L); B, C: (batch, G, N, L); D: (d,)."""
    g = torch.Generator().manual_seed(seed)
    dt0 = torch.exp(torch.rand(cfg.d, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    return {
        "u": torch.randn(cfg.batch, cfg.d, cfg.length, generator=g).to(dtype),
        "delta": (0.1 * torch.randn(cfg.batch, cfg.d, cfg.length, generator=g)).to(dtype),
        "A": -torch.arange(1, cfg.n + 1, dtype=dtype).repeat(cfg.d, 1),
        "B": torch.randn(cfg.batch, cfg.groups, cfg.n, cfg.length, generator=g).to(dtype),
        "C": torch.randn(cfg.batch, cfg.groups, cfg.n, cfg.length, generator=g).to(dtype),
        "D": torch.ones(cfg.d, dtype=dtype),
        "delta_bias": inverse_softplus(dt0).to(dtype),
    }


def _pscan_fn() -> Optional[Callable]:
    # mambapy is an optional dependency (the book extra): imported where the benchmark asks for it
    try:
        from mambapy.pscan import pscan  # type: ignore
        return pscan
    except Exception:
        return None


def pscan_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, delta_bias: Tensor) -> Tensor:
    """The selective scan through mambapy's Blelloch ``pscan`` (forming exp(ΔA) and ΔBu included).

    u, delta: (Bt, D, L); A: (D, N); B, C: (Bt, G, N, L); D, delta_bias: (D,). Returns y: (Bt, D, L).
    """
    pscan = _pscan_fn()
    nb, d, length = u.shape
    g = B.shape[1]
    dt = F.softplus(delta + delta_bias[:, None]).transpose(1, 2)                  # (Bt, L, D)
    deltaA = torch.exp(dt.unsqueeze(-1) * A)                                       # (Bt, L, D, N)
    Bl = B.permute(0, 3, 1, 2).unsqueeze(3)                                        # (Bt, L, G, 1, N)
    BX = ((dt * u.transpose(1, 2)).view(nb, length, g, d // g, 1) * Bl).reshape(nb, length, d, -1)
    hs = pscan(deltaA, BX)                                                         # (Bt, L, D, N)
    Cl = C.permute(0, 3, 1, 2).unsqueeze(3)
    y = (hs.view(nb, length, g, d // g, -1) * Cl).sum(-1).reshape(nb, length, d)
    return y.transpose(1, 2) + u * D[:, None]


def _rss_reset() -> bool:
    """Reset the process's peak RSS (Linux); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _rss(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn: Callable[[], object], repeats: int, warmup: bool = True, device: Any = "cpu") -> float:
    """Median wall time of ``fn`` in ms; on CUDA each call is synchronised before the clock stops."""
    device = torch.device(device)
    if warmup:
        fn()  # the one-time build / allocation
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def measure_bandwidth(mbytes: int = 256, repeats: int = 5, device: Any = "cpu") -> float:
    """Memory bandwidth in GB/s from a large tensor copy (read + write counted)."""
    src = torch.ones(mbytes * 2 ** 20 // 4, device=device)
    dst = torch.empty_like(src)
    ms = _median_ms(lambda: dst.copy_(src), repeats, device=device)
    return 2 * src.numel() * 4 / (ms * 1e-3) / 1e9


def measure_exp_rate(repeats: int = 5, device: Any = "cpu") -> Dict[str, float]:
    """exp throughput (1e9/s): the native kernel's vectorised exp (register-resident, all threads: the floor;
    CPU only) and torch.exp (on a 4 MB array; 256 MB on a GPU)."""
    out: Dict[str, float] = {}
    gpu = torch.device(device).type == "cuda"
    x = -10 * torch.rand(1 << (26 if gpu else 20), device=device)
    y = torch.empty_like(x)
    ms = _median_ms(lambda: torch.exp(x, out=y), repeats, device=device)
    out["torch_exp"] = x.numel() / (ms * 1e-3) / 1e9
    if gpu:
        return out
    try:
        ext = native.load() if native.is_available() else None
    except Exception:
        ext = None
    if ext is not None:
        iters = 1 << 18
        count = ext.exp_throughput(iters)[0]
        ms = _median_ms(lambda: ext.exp_throughput(iters), repeats)
        out["vector_exp"] = count / (ms * 1e-3) / 1e9
    return out


def _methods(names: Optional[Sequence[str]], device: Any = "cpu") -> List[str]:
    u = torch.zeros(1, 1, 1, device=device)
    avail = [b for b in reversed(list_backends(u))]  # ref first
    if _pscan_fn() is not None:
        avail.append("pscan")
    return [m for m in avail if names is None or m in names]


def bench_config(cfg: ScanConfig, repeats: int, methods: Sequence[str], max_mem_gb: float,
                 progress: Optional[Callable[[str], None]] = None, device: Any = "cpu",
                 dtype: torch.dtype = torch.float32) -> Dict[str, object]:
    """Time each method on one config; returns {"config", "methods": {name: {...}}, "check": ...}."""
    device = torch.device(device)
    gpu = device.type == "cuda"
    # A, D and delta_bias stay float32 (mamba-ssm's convention); u, delta, B, C take ``dtype``
    inputs = {k: v.to(device, dtype if k in ("u", "delta", "B", "C") else torch.float32)
              for k, v in mamba_inputs(cfg).items()}
    full_bytes = cfg.exps * 4
    rows: Dict[str, Dict[str, object]] = {}
    outputs: Dict[str, Tensor] = {}
    for name in methods:
        fwd_factor, bwd_factor = _MEM_FACTOR.get(name, (4, 10))
        row: Dict[str, object] = {}
        for mode, factor in (("fwd", fwd_factor), ("fwd_bwd", bwd_factor)):
            est_gb = factor * full_bytes / 1e9
            if est_gb > max_mem_gb:
                row[mode + "_ms"] = None
                row[mode + "_skipped"] = f"estimated {est_gb:.1f} GB > --max-mem-gb {max_mem_gb:g}"
                continue
            if progress:
                progress(f"{name} {mode}")
            grad = mode == "fwd_bwd"
            xs = {k: v.clone().requires_grad_(grad) for k, v in inputs.items()}

            def call():
                if name == "pscan":
                    y = pscan_scan(xs["u"], xs["delta"], xs["A"], xs["B"], xs["C"], xs["D"], xs["delta_bias"])
                else:
                    y = selective_scan(xs["u"], xs["delta"], xs["A"], xs["B"], xs["C"], xs["D"], None,
                                       xs["delta_bias"], delta_softplus=True, backend=name)
                if grad:
                    y.sum().backward()
                    for v in xs.values():
                        v.grad = None
                return y

            with torch.set_grad_enabled(grad):
                if gpu:
                    _sync(device)
                    torch.cuda.reset_peak_memory_stats(device)
                    base = torch.cuda.memory_allocated(device)
                else:
                    base = _rss("VmRSS") if _rss_reset() else None
                y = call()  # warm-up, and the peak-memory probe
                if gpu:
                    _sync(device)
                    row[mode + "_peak_extra_gb"] = (torch.cuda.max_memory_allocated(device) - base) / 1e9
                elif base is not None:
                    row[mode + "_peak_extra_gb"] = max(_rss("VmHWM") - base, 0) / 1e9
                row[mode + "_ms"] = _median_ms(call, repeats, warmup=False, device=device)
            if not grad:
                outputs[name] = y.detach().float()
        rows[name] = row
    ref_name = "ref" if "ref" in outputs else ("native" if "native" in outputs else None)
    check = {}
    if ref_name is not None:
        want = outputs[ref_name]
        for name, y in outputs.items():
            check[name] = float((y - want).abs().max() / want.abs().max())
    return {"config": asdict(cfg), "methods": rows, "max_rel_diff_vs": ref_name, "max_rel_diff": check}


def add_ratios(result: Dict[str, object], exp_rate: float, bandwidth: float) -> None:
    """Floors (exp, bandwidth) and ratios: speed-up vs ref and pscan, gap to the exp floor."""
    cfg = ScanConfig(**result["config"])
    exp_floor = cfg.exps / (exp_rate * 1e9) * 1e3
    bw_floor = cfg.io_bytes() / (bandwidth * 1e9) * 1e3
    result["floors_ms"] = {"exp_fwd": exp_floor, "exp_fwd_bwd": 2 * exp_floor, "bandwidth_fwd": bw_floor}
    rows = result["methods"]
    ratios: Dict[str, Dict[str, Optional[float]]] = {}
    for name, row in rows.items():
        r: Dict[str, Optional[float]] = {}
        for mode in ("fwd", "fwd_bwd"):
            t = row.get(mode + "_ms")
            for other in ("ref", "pscan"):
                o = rows.get(other, {}).get(mode + "_ms")
                r[f"{mode}_speedup_vs_{other}"] = (o / t) if (t and o) else None
            r[f"{mode}_x_exp_floor"] = (t / result["floors_ms"]["exp_" + mode]) if t else None
        ratios[name] = r
    result["ratios"] = ratios


def run_scan_benchmark(configs: Sequence[str] = ("a", "b", "c"), repeats: int = 5, threads: Optional[int] = None,
                       methods: Optional[Sequence[str]] = None, max_mem_gb: float = 6.0,
                       show_progress: bool = True,
                       on_config: Optional[Callable[[Dict[str, object]], None]] = None,
                       device: Any = "cpu", dtype: str = "float32") -> Dict[str, object]:
    """The whole benchmark as a dict (see the module docstring); ``threads`` sets torch's (and OpenMP's).
    ``on_config(report_so_far)`` is called after each config (the CLI saves partial results with it).
    ``device``: "cpu" or a CUDA device (GPU backends, allocator peaks); ``dtype``: the inputs' dtype name."""
    for c in configs:
        if c not in CONFIGS:
            raise ValueError(f"unknown config {c!r}; known: {', '.join(CONFIGS)}")
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"--dtype must be float32, bfloat16 or float16, got {dtype!r}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda needs a CUDA device (torch.cuda.is_available() is False)")
    names = _methods(methods, device)
    if methods is not None:
        unknown = set(methods) - set(names)
        if unknown:
            raise ValueError(f"method(s) not available here: {sorted(unknown)}; "
                             f"available: {_methods(None, device)}")
    bandwidth = measure_bandwidth(repeats=repeats, device=device)
    exp_rates = measure_exp_rate(repeats=repeats, device=device)
    exp_rate = exp_rates.get("vector_exp", exp_rates["torch_exp"])
    results: Dict[str, object] = {}
    # Taken once, before anything is written: the partial reports saved after each config would otherwise make
    # the tree look "+dirty" to the final one when --json names a tracked file.
    prov = provenance(device, threads=torch.get_num_threads(), mambapy=_pscan_fn() is not None)

    def report() -> Dict[str, object]:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = None
        return {
            "benchmark": f"selective_scan_{device.type}",
            "provenance": {**prov, **({} if load is None else {"load_average_1min": load})},
            "repeats": repeats,
            "dtype": dtype,
            "inputs": "Mamba init: A=-(1..N), delta_bias=softplus^-1(log-uniform[1e-3,0.1]), delta_softplus, "
                      "D, no z",
            "max_mem_gb": max_mem_gb,
            "bandwidth_gb_s": bandwidth,
            "exp_rate_1e9_per_s": exp_rates,
            "methods": names,
            "configs": dict(results),
        }

    bar = tqdm(configs, desc="scan benchmark", disable=not show_progress)
    for c in bar:
        res = bench_config(CONFIGS[c], repeats, names, max_mem_gb,
                           progress=lambda s: bar.set_postfix_str(f"{c}: {s}"), device=device,
                           dtype=getattr(torch, dtype))
        add_ratios(res, exp_rate, bandwidth)
        results[c] = res
        if on_config is not None:
            on_config(report())
    return report()


def format_report(report: Dict[str, object]) -> str:
    """A plain-text table of times and ratios."""
    lines = [f"threads={report['provenance'].get('threads')}  bandwidth={report['bandwidth_gb_s']:.1f} GB/s  "
             + "  ".join(f"{k}={v:.2f}e9/s" for k, v in report["exp_rate_1e9_per_s"].items())]

    def f(x, spec=".1f", suffix=""):
        return "-" if x is None else f"{x:{spec}}{suffix}"

    for c, res in report["configs"].items():
        cfg = res["config"]
        fl = res["floors_ms"]
        lines.append(f"\nconfig {c}: batch={cfg['batch']} D={cfg['d']} L={cfg['length']} N={cfg['n']} "
                     f"G={cfg['groups']}   floors: exp {fl['exp_fwd']:.2f} ms (fwd), "
                     f"{fl['exp_fwd_bwd']:.2f} ms (fwd+bwd), bandwidth {fl['bandwidth_fwd']:.2f} ms")
        lines.append(f"  {'method':<9}{'fwd ms':>10}{'fwd+bwd ms':>12}{'x ref fwd':>11}{'x ref f+b':>11}"
                     f"{'x pscan f+b':>13}{'fwd/floor':>11}{'f+b/floor':>11}{'peak GB f+b':>13}{'rel diff':>10}")
        for name, row in res["methods"].items():
            r = res["ratios"][name]
            lines.append(
                f"  {name:<9}{f(row.get('fwd_ms')):>10}{f(row.get('fwd_bwd_ms')):>12}"
                f"{f(r['fwd_speedup_vs_ref'], '.1f', 'x'):>11}{f(r['fwd_bwd_speedup_vs_ref'], '.1f', 'x'):>11}"
                f"{f(r['fwd_bwd_speedup_vs_pscan'], '.1f', 'x'):>13}{f(r['fwd_x_exp_floor'], '.1f', 'x'):>11}"
                f"{f(r['fwd_bwd_x_exp_floor'], '.1f', 'x'):>11}{f(row.get('fwd_bwd_peak_extra_gb'), '.2f'):>13}"
                f"{f(res['max_rel_diff'].get(name), '.1e'):>10}")
            for mode in ("fwd", "fwd_bwd"):
                if row.get(mode + "_skipped"):
                    lines.append(f"    {mode} skipped: {row[mode + '_skipped']}")
    return "\n".join(lines)


def write_json(report: Dict[str, object], path: os.PathLike) -> Path:
    """Write atomically (temporary file + rename)."""
    return atomic_write_json(path, report)


def add_scan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configs", default="a,b,c", help=f"comma-separated from {', '.join(CONFIGS)} (default a,b,c)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per method (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads (default: torch's)")
    p.add_argument("--methods", default=None, help="comma-separated subset of backends and 'pscan'")
    p.add_argument("--max-mem-gb", type=float, default=6.0, help="skip methods estimated to need more")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON here")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]: time the GPU backends")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="the inputs' dtype (the GPU backends compute in float32 either way)")


def run_scan_from_args(args: argparse.Namespace) -> int:
    report = run_scan_benchmark(
        configs=[c for c in args.configs.split(",") if c], repeats=args.repeats, threads=args.threads,
        methods=None if args.methods is None else [m for m in args.methods.split(",") if m],
        max_mem_gb=args.max_mem_gb, on_config=(lambda r: write_json(r, args.json)) if args.json else None,
        device=args.device, dtype=args.dtype)
    print(format_report(report))
    if args.json:
        print(f"wrote {write_json(report, args.json)}")
    return 0


# ------------------------------------------------------------------------------------------------ bench model
MODEL_ALIASES: Dict[str, str] = {
    "mambair-light-x2": "mambair:light_sr_x2",
    "mambair-light-v2-x2": "mambair:light_sr_v2_x2",
    "mambair-classic-x2": "mambair:classic_sr_x2",
    "mambair-tiny-x2": "mambair:tiny_sr_x2",
}


def _model_spec(name: str) -> "tuple[str, str]":
    spec = MODEL_ALIASES.get(name, name)
    if ":" not in spec:
        raise ValueError(f"unknown model {name!r}: give arch:preset or one of {', '.join(MODEL_ALIASES)}")
    arch, preset = spec.split(":", 1)
    return arch, preset


def measure_gemm_rate(n: int = 1024, repeats: int = 5) -> float:
    """Multiply-accumulates per second (1e9/s) of a large float32 matrix product (n x n by n x n)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    ms = _median_ms(lambda: torch.mm(a, b, out=c), repeats)
    return n ** 3 / (ms * 1e-3) / 1e9


def measure_vector_exp_rate(numel: int = 1 << 24, repeats: int = 5) -> Dict[str, float]:
    """exp throughput (1e9/s) over a large float32 array (64 MB by default): ``torch_exp`` (torch.exp) and,
    when the native extension is built, ``native_vector_exp`` (its vectorised polynomial exp on the same array);
    ``native_in_registers`` is the register-resident probe (no memory traffic) of that exp, and
    ``native_decay_in_registers`` the same probe of the inference scan's decay exp (2^(x log2 e) for x <= 0)."""
    x = -10 * torch.rand(numel)
    y = torch.empty_like(x)
    out = {"torch_exp": numel / (_median_ms(lambda: torch.exp(x, out=y), repeats) * 1e-3) / 1e9}
    try:
        from .ssm import native
        ext = native.load() if native.is_available() else None
    except Exception:
        ext = None
    if ext is not None:
        out["native_vector_exp"] = numel / (_median_ms(lambda: ext.vector_exp(x, y), repeats) * 1e-3) / 1e9
        iters = 1 << 18
        count = ext.exp_throughput(iters)[0]
        out["native_in_registers"] = count / (_median_ms(lambda: ext.exp_throughput(iters), repeats) * 1e-3) / 1e9
        # the decays of the inference scan: 2^(x log2 e) without a Cody-Waite split (valid for x <= 0)
        out["native_decay_in_registers"] = count / (
            _median_ms(lambda: ext.exp_throughput(iters, True), repeats) * 1e-3) / 1e9
    return out


def model_costs(model: torch.nn.Module, x: Tensor) -> Dict[str, int]:
    """MACs and exponentials of one forward pass (restore_core.analysis.complexity.count_flops, on meta tensors).

    ``macs_layers_proj``: Conv / Linear (hooks) + SS2D's x_proj / dt_proj; ``macs_scan``: the scan's own
    multiply-adds, 4 per (Bt, K*E, L, N) element (Δ·A, Δu·B, Ā·h + ΔuB, C·h accumulated); ``exps``: exp(ΔA), one
    per element, plus one per softplus (Δ) and per SiLU gate inside the scan.
    """
    import copy

    from .analysis.complexity import count_flops

    meta = copy.deepcopy(model).to("meta")
    rep = count_flops(meta, torch.empty(x.shape, device="meta"))
    ops = rep.scan_ops
    elems = ops["exp"]  # one exp per (Bt, E, L, N) element (no gate in SS2D)
    return {"macs_layers_proj": int(rep.macs), "macs_scan": 4 * int(elems),
            "exps": int(ops["exp"] + ops["softplus"]), "exps_scan_state": int(elems)}


def _reference_forward(model: torch.nn.Module, arch: str) -> "tuple[Callable[[Tensor], Tensor], str]":
    """The slow baseline ``bench model`` compares against, and what it is.

    1. The official MambaIR module when importable (``basicsr.archs.mambair_arch``, csguoh/MambaIR): not used
       here because it needs mamba-ssm's CUDA extension; 2. the official-layout functional port the test suite uses
       as its oracle (tests/official_oracles.py, written from the official code: materialised four-direction stack
       with flips and transposes, per-direction einsums, the "ref" sequential scan) on ``to_official(model)``;
       3. otherwise our model with the materialised cross-scan and ``scan_backend="ref"``.
    """
    if arch == "mambair":
        tests_dir = Path(__file__).resolve().parent.parent / "tests"
        if (tests_dir / "official_oracles.py").is_file():
            sys.path.insert(0, str(tests_dir))
            try:
                from official_oracles import mambair_official_forward  # type: ignore
            except Exception:
                mambair_official_forward = None
            finally:
                sys.path.remove(str(tests_dir))
            if mambair_official_forward is not None:
                from .models.official import to_official
                sd = to_official(model)
                scale = getattr(model, "upscale", 1)
                return (lambda x: mambair_official_forward(sd, x, scale=scale),
                        "official-layout MambaIR port (tests/official_oracles.py: materialised 4-direction stack, "
                        "per-direction einsums) with the reference scan 'ref'")
    import copy

    ref = copy.deepcopy(model)
    for m in ref.modules():
        if hasattr(m, "cross_scan_impl"):
            m.cross_scan_impl = "materialised"
        if hasattr(m, "scan_backend"):
            m.scan_backend = "ref"
    return ref, "our model with the materialised cross-scan and scan_backend='ref'"


def run_model_benchmark(model: str = "mambair-light-x2", size: int = 128, threads: Optional[int] = 2,
                        repeats: int = 5, reference: bool = True, reference_repeats: int = 1,
                        seed: int = 0) -> Dict[str, object]:
    """Time one forward pass of ``model`` (eval, no grad) on a (1, C, size, size) input, in ONE process: ours
    (median of ``repeats``), the reference of :func:`_reference_forward` (median of ``reference_repeats``; skipped
    with ``reference=False``), and the floor = MACs / GEMM rate + exps / exp rate, both rates measured in this
    run (:func:`measure_gemm_rate`, :func:`measure_vector_exp_rate`: the fastest of torch.exp and the native exp
    over a 64 MB array and the native exp in registers). Returns a dict (see :func:`format_model_report`);
    torch's thread count is restored."""
    if size < 2 or repeats < 1 or reference_repeats < 1:
        raise ValueError("--size must be >= 2, --repeats and --reference-repeats >= 1")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    arch, preset = _model_spec(model)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_model_benchmark(arch, preset, size, repeats, reference, reference_repeats, seed)
    finally:
        torch.set_num_threads(before)


def _run_model_benchmark(arch: str, preset: str, size: int, repeats: int, reference: bool, reference_repeats: int,
                         seed: int) -> Dict[str, object]:
    from .allocator import allocator_state
    from .models.registry import build_model
    from .provenance import provenance

    torch.manual_seed(seed)
    net = build_model(arch, preset=preset).eval()
    x = torch.rand(1, getattr(net, "in_channels", 3), size, size, generator=torch.Generator().manual_seed(seed))
    costs = model_costs(net, x)
    gemm = measure_gemm_rate()
    exp_rates = measure_vector_exp_rate()
    # the fastest exp measured: the scan's decays are computed in registers (native_decay_in_registers, the exp the
    # inference scan uses), so a rate over a 64 MB array, which also moves 8 bytes an exp, is not a floor
    exp_rate = max(exp_rates.values())
    macs = costs["macs_layers_proj"] + costs["macs_scan"]
    floor_s = macs / (gemm * 1e9) + costs["exps"] / (exp_rate * 1e9)
    impls = sorted({m.fused_codes(torch.empty(1, 1, 2, 2)) is not None for m in net.modules()
                    if hasattr(m, "fused_codes")})
    with torch.no_grad():
        y = net(x)
        ours_ms = _median_ms(lambda: net(x), repeats, warmup=False)
        ref_ms, ref_desc, diff = None, None, None
        if reference:
            ref_fn, ref_desc = _reference_forward(net, arch)
            t0 = time.perf_counter()
            y_ref = ref_fn(x)
            first = (time.perf_counter() - t0) * 1e3
            ref_ms = first if reference_repeats == 1 else _median_ms(lambda: ref_fn(x), reference_repeats - 1,
                                                                      warmup=False)
            diff = float((y - y_ref).abs().max() / y_ref.abs().max().clamp_min(1e-30))
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    ours_s = ours_ms / 1e3
    return {
        "benchmark": "model_forward_cpu",
        "provenance": provenance(torch.device("cpu"), threads=torch.get_num_threads(), load_average_1min=load),
        "model": f"{arch}:{preset}", "input": list(x.shape), "repeats": repeats,
        "params": sum(p.numel() for p in net.parameters()),
        "cross_scan": "fused native" if impls == [True] else ("materialised" if impls == [False] else "mixed"),
        "ours_s": ours_s,
        "reference": ref_desc, "reference_s": None if ref_ms is None else ref_ms / 1e3,
        "speedup_vs_reference": None if ref_ms is None else ref_ms / ours_ms,
        "max_rel_diff_vs_reference": diff,
        "macs_layers_proj": costs["macs_layers_proj"], "macs_scan": costs["macs_scan"], "macs": macs,
        "exps": costs["exps"],
        "gemm_rate_1e9_mac_per_s": gemm, "exp_rate_1e9_per_s": exp_rates, "exp_rate_used_1e9_per_s": exp_rate,
        "floor_s": floor_s, "floor_gemm_s": macs / (gemm * 1e9), "floor_exp_s": costs["exps"] / (exp_rate * 1e9),
        "ours_x_floor": ours_s / floor_s,
        "allocator": allocator_state(),
    }


def format_model_report(r: Dict[str, object]) -> str:
    """The model benchmark as a few lines of text."""
    rates = "  ".join(f"{k}={v:.2f}e9/s" for k, v in r["exp_rate_1e9_per_s"].items())
    lines = [
        f"model {r['model']}  input {tuple(r['input'])}  params {r['params']:,}  threads "
        f"{r['provenance'].get('threads')}  load(1 min) {r['provenance'].get('load_average_1min')}",
        f"malloc: {r.get('allocator', 'not recorded')}",
        f"costs: {r['macs'] / 1e9:.2f} G MACs ({r['macs_layers_proj'] / 1e9:.2f} conv/linear/SS2D projections + "
        f"{r['macs_scan'] / 1e9:.2f} scan), {r['exps'] / 1e9:.2f} G exps",
        f"rates: GEMM {r['gemm_rate_1e9_mac_per_s']:.1f} GMAC/s; exp {rates} (floor uses "
        f"{r['exp_rate_used_1e9_per_s']:.2f}e9/s)",
        f"floor: {r['floor_s']:.3f} s = {r['floor_gemm_s']:.3f} s (MACs) + {r['floor_exp_s']:.3f} s (exps)",
        f"ours ({r['cross_scan']} cross-scan): {r['ours_s']:.3f} s  = {r['ours_x_floor']:.2f}x the floor",
    ]
    if r["reference_s"] is not None:
        lines.append(f"reference: {r['reference_s']:.2f} s  ({r['reference']})")
        lines.append(f"ours vs reference: {r['speedup_vs_reference']:.1f}x faster; max relative difference "
                     f"{r['max_rel_diff_vs_reference']:.1e}")
    return "\n".join(lines)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="mambair-light-x2",
                   help=f"arch:preset or one of {', '.join(MODEL_ALIASES)} (default mambair-light-x2)")
    p.add_argument("--size", type=int, default=128, help="input height = width (default 128)")
    p.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed forward passes of ours (median reported)")
    p.add_argument("--reference-repeats", type=int, default=1, help="timed passes of the reference (default 1)")
    p.add_argument("--no-reference", action="store_true", help="skip the (slow) reference module")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON here")


def run_model_from_args(args: argparse.Namespace) -> Dict[str, object]:
    report = run_model_benchmark(model=args.model, size=args.size, threads=args.threads, repeats=args.repeats,
                                 reference=not args.no_reference, reference_repeats=args.reference_repeats)
    print(format_model_report(report))
    if args.json:
        print(f"wrote {write_json(report, args.json)}")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m restore_core.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    add_scan_arguments(sub.add_parser("scan", help="selective-scan backends and floors"))
    add_model_arguments(sub.add_parser("model", help="one model's forward pass against a reference and its floor"))
    args = parser.parse_args(argv)
    try:
        if args.what == "model":
            run_model_from_args(args)
            return 0
        return run_scan_from_args(args)
    except ValueError as exc:
        print(f"restore_core.bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
