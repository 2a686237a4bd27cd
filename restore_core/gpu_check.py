"""One-shot GPU check: scan equivalence on CUDA, the scan benchmark, paper-preset training steps, a quick ablation.

``python -m restore_core.gpu_check OUTDIR`` (``scripts/gpu_check.sh OUTDIR`` installs the CUDA build of torch and
the project first). Every step writes what it measured into ``OUTDIR/gpu_check.json`` as soon as it ends (with
provenance: commit, torch / CUDA / triton versions, GPU), so a run cut short still leaves its numbers. Steps:

``env``       devices, versions, which scan backend "auto" picks for CUDA tensors.
``scan``      every CUDA scan backend (triton, chunked, mamba-ssm's "cuda" when it imports) against "ref" on
              the same inputs, float32 and bfloat16: output, last state and every gradient, max relative error.
``bench``     :func:`restore_core.bench.run_scan_benchmark` on the GPU (triton against chunked and ref, with the
              allocator's peak memory of each), float32.
``train``     20 bf16-autocast training steps of each architecture's paper preset at its config's patch and
              per-GPU batch (synthetic tensors): peak memory, steps/s after two warm-up steps, the loss.
``ablation``  chapter 03's quick MambaIR ablation (6 variants x 2 seeds, 60 steps, patch 32) on the GPU, timed.

A step whose requirement is missing (no CUDA device, an optional package) is recorded as skipped with the
reason; a step that raises is recorded as failed with its traceback's tail, and the next step still runs. Steps
that would start after ``--budget-s`` seconds are skipped. Exit status: 0 all ran, 1 a step failed, 3 no CUDA.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from .bench import CONFIGS, ScanConfig, mamba_inputs, run_scan_benchmark
from .book.ablation import Variant, run_ablation
from .fsutil import atomic_write_json
from .models.registry import build_model
from .provenance import provenance
from .ssm import triton_scan
from .ssm.scan import _cuda_fn, list_backends, selective_scan
from .train import load_config

STEPS = ("env", "scan", "bench", "train", "ablation")
# (arch, paper preset, training config): the config gives the patch, per-GPU batch and scale
PAPER_MODELS = (("mambair", "classic_sr_x2", "mambair/sr_x2"),
                ("cu_mamba", "deblur", "cu_mamba/deblur"),
                ("fusion_mamba", "ir_vis", "fusion_mamba/ir_vis"),
                ("rnan", "color_dn", "rnan/color_dn"))


class Skip(Exception):
    """Raised by a step whose requirement is missing; the message is the reason."""


def _need_cuda(device: torch.device) -> None:
    if device.type != "cuda":
        raise Skip(f"needs a CUDA device, got {device}")
    if not torch.cuda.is_available():
        raise Skip("no CUDA device (torch.cuda.is_available() is False; torch "
                   f"{torch.__version__}, built for CUDA {torch.version.cuda})")


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want.double()).abs().max() / max(want.double().abs().max().item(), 1e-3))


def scan_equivalence(device: Any = "cuda", backends: Optional[Sequence[str]] = None,
                     dtypes: Sequence[str] = ("float32", "bfloat16"),
                     shapes: Sequence[tuple] = ((2, 16, 1, 4, 4), (2, 16, 129, 16, 4), (1, 24, 1000, 16, 3))
                     ) -> Dict[str, Any]:
    """Every backend available for ``device`` (but "ref") against "ref" on the same inputs: output, last state and
    the gradients of u, delta, A, B, C, D, z, delta_bias. shapes: (batch, D, L, N, groups). The reference runs
    in float32 on the dtype-rounded inputs, so a bfloat16 error measures the backend, not the rounding of inputs.
    Returns ``{backend: {dtype: {"max_rel_err": {name: err}, "worst": err}}}``."""
    device = torch.device(device)
    names = [b for b in (backends or list_backends(torch.zeros(1, 1, 1, device=device))) if b not in ("ref", "meta")]
    out: Dict[str, Any] = {}
    for name in names:
        for dtype_name in dtypes:
            try:
                out.setdefault(name, {})[dtype_name] = _compare(name, getattr(torch, dtype_name), device, shapes)
            except Exception as exc:  # one backend's failure must not hide the others' numbers
                out.setdefault(name, {})[dtype_name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    return out


def _compare(name: str, dtype: torch.dtype, device: torch.device, shapes: Sequence[tuple]) -> Dict[str, Any]:
    """Max relative error per output / gradient of backend ``name`` against "ref" over ``shapes``."""
    errs: Dict[str, float] = {}
    for nb, d, length, n, groups in shapes:
        inp = mamba_inputs(ScanConfig(nb, d, length, n, groups))
        inp["delta"] = inp["delta"] * 5                     # Mamba's init: dt small; exercise larger ones
        inp["z"] = torch.randn(nb, d, length, generator=torch.Generator().manual_seed(1))
        order = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
        lowp = {k: (v.to(dtype) if k in ("u", "delta", "B", "C", "z") else v) for k, v in inp.items()}
        results = []
        for backend, cast in ((name, None), ("ref", torch.float32)):
            xs = {k: (v if cast is None else v.to(cast)).to(device).detach().requires_grad_()
                  for k, v in lowp.items()}
            y, last = selective_scan(*(xs[k] for k in order), delta_softplus=True, return_last_state=True,
                                     backend=backend)
            w = torch.linspace(-1, 1, y.numel(), device=device).reshape(y.shape)
            ((y.float() * w).sum() + (last.float() ** 2).sum()).backward()
            results.append([y.detach(), last.detach()] + [xs[k].grad for k in order])
        for label, a, r in zip(("out", "last") + order, *results):
            errs[label] = max(errs.get(label, 0.0), _rel_err(a, r))
    return {"max_rel_err": errs, "worst": max(errs.values())}


def _model_inputs(arch: str, batch: int, patch: int, scale: int, device: torch.device):
    """Synthetic (inputs, target) for one training step: SR takes the LR patch (patch / scale), fusion two
    one-channel images."""
    g = torch.Generator().manual_seed(0)
    if arch == "fusion_mamba":
        ir, vis = (torch.rand(batch, 1, patch, patch, generator=g).to(device) for _ in range(2))
        return (ir, vis), torch.maximum(ir, vis)
    hq = torch.rand(batch, 3, patch, patch, generator=g).to(device)
    lq = torch.rand(batch, 3, patch // scale, patch // scale, generator=g).to(device)
    return (lq,), hq


def train_steps(arch: str, preset: str, *, batch: int, patch: int, scale: int = 1, steps: int = 20,
                device: Any = "cuda", amp_dtype: Optional[torch.dtype] = torch.bfloat16,
                warmup: int = 2) -> Dict[str, Any]:
    """``steps`` Adam steps of ``arch``/``preset`` under autocast (``amp_dtype``; None: full precision) on synthetic
    tensors; returns params, peak memory (CUDA allocator), steps/s over the steps after ``warmup``, the losses."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = build_model(arch, preset=preset).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    inputs, target = _model_inputs(arch, batch, patch, scale, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    losses: List[float] = []
    t_start = None
    for i in range(steps):
        if i == min(warmup, steps - 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t_start = time.perf_counter()
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = torch.nn.functional.l1_loss(model(*inputs).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timed = steps - min(warmup, steps - 1)
    row = {"arch": arch, "preset": preset, "batch": batch, "patch": patch, "scale": scale, "steps": steps,
           "amp": str(amp_dtype).replace("torch.", "") if amp_dtype is not None else "no",
           "params": sum(p.numel() for p in model.parameters()),
           "scan_backend": list_backends(torch.zeros(1, 1, 1, device=device))[0],
           "steps_per_s": timed / (time.perf_counter() - t_start),
           "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
           "first_loss": losses[0], "last_loss": losses[-1], "finite": all(math.isfinite(x) for x in losses)}
    if not row["finite"]:
        raise FloatingPointError(f"{arch}/{preset}: non-finite loss {losses}")
    return row


def paper_preset_training(device: Any = "cuda", steps: int = 20, models=PAPER_MODELS) -> Dict[str, Any]:
    """:func:`train_steps` for each (arch, preset, config); a model that fails (e.g. out of memory) is recorded
    with its error and the others still run."""
    out: Dict[str, Any] = {}
    for arch, preset, config in models:
        cfg = load_config(config, profile="full")
        tr = cfg.datasets["train"]
        key = f"{arch}/{preset}"
        try:
            out[key] = train_steps(arch, preset, batch=tr.batch_size_per_gpu, patch=int(tr.params["patch_size"]),
                                   scale=int(cfg.scale), steps=steps, device=device)
        except Exception as exc:  # one model's OOM must not hide the others' numbers
            out[key] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        finally:
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
    return out


def quick_ablation(device: Any = "cuda") -> Dict[str, Any]:
    """Chapter 03's quick-profile MambaIR ablation (same variants, seeds, steps and patch), timed on ``device``."""
    variants = [Variant("full model"), Variant("remove Conv", {"block_kind": "no_conv"}),
                Variant("remove Conv+CA", {"block_kind": "no_conv_ca"}), Variant("replace with MLP", {"block_kind": "mlp"}),
                Variant("1 direction", {"scan_order": "1d"}), Variant("2 directions", {"scan_order": "2d"})]
    total_iter, patch = 60, 32
    overrides = [f"train.total_iter={total_iter}", f"train.scheduler.milestones=[{int(total_iter * 0.75)}]",
                 f"datasets.train.patch_size={patch}"]
    t0 = time.perf_counter()
    res = run_ablation("mambair/sr_x2", variants, arch="mambair", preset="tiny_sr_x2", profile="quick", seeds=(0, 1),
                       device=str(device), overrides=overrides, metrics=("PSNR", "SSIM"), reference="full model",
                       nproc=1, log=None)
    return {"seconds": time.perf_counter() - t0, "runs": res.runs, "total_iter": total_iter, "patch": patch}


def environment(device: Any = "cuda") -> Dict[str, Any]:
    info: Dict[str, Any] = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
                            "cuda_available": torch.cuda.is_available(),
                            "triton": None, "mamba_ssm_importable": _cuda_fn() is not None}
    if triton_scan.installed():
        import triton  # optional (the triton extra): installed, as checked above
        info["triton"] = triton.__version__
    if torch.cuda.is_available():
        dev = torch.device(device)
        props = torch.cuda.get_device_properties(dev)
        info.update(gpu=props.name, gpu_memory_gb=props.total_memory / 1e9, capability=f"{props.major}.{props.minor}",
                    auto_backend_cuda=list_backends(torch.zeros(1, 1, 1, device=dev))[0],
                    cuda_backends=list_backends(torch.zeros(1, 1, 1, device=dev)))
    return info


def run_steps(steps: Dict[str, Callable[[], Any]], json_path: Path, header: Dict[str, Any],
              budget_s: Optional[float] = None, echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run ``steps`` in order, recording each as ``{"status": ok|failed|skipped, "seconds", "result"|"reason"|
    "error"}`` and rewriting ``json_path`` after each; returns the whole report."""
    report = dict(header, steps={})
    t_begin = time.perf_counter()
    for name, fn in steps.items():
        t0 = time.perf_counter()
        if budget_s is not None and t0 - t_begin > budget_s:
            entry: Dict[str, Any] = {"status": "skipped", "reason": f"time budget of {budget_s:g} s spent"}
        else:
            try:
                entry = {"status": "ok", "result": fn()}
            except Skip as exc:
                entry = {"status": "skipped", "reason": str(exc)}
            except Exception as exc:
                entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000],
                         "traceback": traceback.format_exc()[-4000:]}
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        report["steps"][name] = entry
        echo(f"gpu_check: {name}: {entry['status']} ({entry['seconds']:.1f} s)"
             + (f": {entry.get('reason') or entry.get('error')}" if entry["status"] != "ok" else ""))
        atomic_write_json(json_path, report)
    return report


def build_steps(selected: Sequence[str], device: torch.device, train_steps_n: int,
                bench_configs: Sequence[str], bench_repeats: int) -> Dict[str, Callable[[], Any]]:
    def scan():
        _need_cuda(device)
        return scan_equivalence(device)

    def bench():
        _need_cuda(device)
        methods = [m for m in ("ref", "chunked", "triton", "cuda") if m in list_backends(torch.zeros(1, 1, 1, device=device))]
        return run_scan_benchmark(configs=bench_configs, repeats=bench_repeats, methods=methods, max_mem_gb=60.0,
                                  show_progress=False, device=device, dtype="float32")

    def train():
        _need_cuda(device)
        return paper_preset_training(device, steps=train_steps_n)

    def ablation():
        _need_cuda(device)
        return quick_ablation(device)

    def env():
        return environment(device)

    table = {"env": env, "scan": scan, "bench": bench, "train": train, "ablation": ablation}
    return {name: table[name] for name in selected}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m restore_core.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("outdir", help="folder for gpu_check.json (created)")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    p.add_argument("--device", default="cuda", help="CUDA device (default cuda)")
    p.add_argument("--train-steps", type=int, default=20, help="training steps per paper preset (default 20)")
    p.add_argument("--bench-configs", default="a,b", help="scan benchmark configs (default a,b)")
    p.add_argument("--bench-repeats", type=int, default=3, help="timed repeats per benchmark method (default 3)")
    p.add_argument("--budget-s", type=float, default=None, help="skip steps that would start after this many s")
    args = p.parse_args(argv)
    selected = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(selected) - set(STEPS))
    if unknown or args.train_steps < 3 or args.bench_repeats < 1:
        p.print_usage(sys.stderr)
        print(f"gpu_check: error: unknown step(s) {unknown}" if unknown else
              "gpu_check: error: --train-steps must be >= 3 and --bench-repeats >= 1", file=sys.stderr)
        return 2
    configs = [c for c in args.bench_configs.split(",") if c]
    if any(c not in CONFIGS for c in configs):
        print(f"gpu_check: error: unknown bench config in {configs}; known: {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    header = {"check": "gpu_check", "argv": list(argv if argv is not None else sys.argv[1:]),
              "provenance": provenance(device if torch.cuda.is_available() else "cpu")}
    steps = build_steps(selected, device, args.train_steps, configs, args.bench_repeats)
    report = run_steps(steps, out / "gpu_check.json", header, budget_s=args.budget_s)
    status = [e["status"] for e in report["steps"].values()]
    if "failed" in status:
        return 1
    return 0 if torch.cuda.is_available() else 3


if __name__ == "__main__":
    sys.exit(main())
