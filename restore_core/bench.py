"""Benchmarks. ``python -m restore_core.bench scan`` (or ``restore-core bench scan``) times the selective scan.

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

    def report() -> Dict[str, object]:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = None
        return {
            "benchmark": f"selective_scan_{device.type}",
            "provenance": provenance(device, threads=torch.get_num_threads(), load_average_1min=load,
                                     mambapy=_pscan_fn() is not None),
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m restore_core.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    add_scan_arguments(sub.add_parser("scan", help="selective-scan backends and floors"))
    args = parser.parse_args(argv)
    try:
        return run_scan_from_args(args)
    except ValueError as exc:
        print(f"restore_core.bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
