"""The ablation harness the four ablation chapters share: train every variant of a paper's table, several seeds,
score it on the config's validation set, and set our numbers beside the paper's.

A variant is a set of model-config overrides (the registry's switches) on one preset::

    variants = [Variant("full"), Variant("w/o conv", {"block_kind": "ss2d_only"}, paper={"PSNR": 33.8})]
    res = run_ablation("mambair/light_sr_x2", variants, arch="mambair", preset="tiny_sr_x2", profile="quick",
                       seeds=(0, 1), paper_dataset="Urban100", metrics=("PSNR", "SSIM"), reference="full")
    res.table(); res.plot_differences("PSNR"); res.save("ablation_mambair", paper=..., table=..., scale=...)

Every run is the training config with ``network_g`` = ``arch`` / ``preset`` / the variant's overrides and
``manual_seed = seed`` (which seeds the weights, data order, crops and noise), trained by
:func:`restore_core.train.train` in memory (no checkpoints) or, with several processes, by ``torchrun`` +
``restore-core train`` (DDP), or, with ``workers`` > 1, in a pool of that many worker processes that split the CPU
threads between them (independent runs side by side: small models use two cores better as two one-thread runs
than as one two-thread run), with one validation after the last step (and, for the reference variant,
``curve_points`` validations along the way: its learning curve). Seeds are paired: every variant runs the same
seeds, so each variant's difference to the reference is taken seed by seed, and its mean gets a 95% Student-t
interval. The call ("agrees" / "disagrees" with the paper's sign, or "unresolved" when the interval contains 0)
is computed by :func:`restore_core.book.results.annotate_calls`, never typed; the quick profile makes none.
The config's trivial baselines (:mod:`restore_core.book.trivial_baselines`) are scored on the same validation
set and stored beside the runs.
"""
from __future__ import annotations

import html
import json
import math
import multiprocessing
import os
import statistics
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch

from ..profiles import CALL_PROFILES
from ..train import load_config, train
from ..train.builders import build_network
from ..train.distributed import launch_train
from .dry_run import is_dry_run
from .learning_targets import target_text
from .results import annotate_calls, beats_baselines, load_results, save_results
from .runner import train_nproc
from .trivial_baselines import score_baselines


@dataclass
class Variant:
    """One row of an ablation table.

    name: the row label (as the paper writes it); overrides: model-config fields given to ``build_model``;
    paper: the paper's numbers for this row, ``{metric: value}`` (metric names as in the paper's table; leave a
    metric out where the paper gives none).
    """

    name: str
    overrides: Dict[str, Any] = field(default_factory=dict)
    paper: Dict[str, Optional[float]] = field(default_factory=dict)


def _metric_key(name: str, available: Sequence[str]) -> str:
    """The validation metric of the config that a table's metric name refers to (case-insensitive)."""
    for key in available:
        if key.lower() == name.lower():
            return key
    raise KeyError(f"metric {name!r} is not among the config's validation metrics {sorted(available)}; "
                   f"add it to the config's val.metrics")


@dataclass
class AblationResult:
    """The runs of one ablation: ``runs`` holds one dict per (variant, seed)."""

    variants: List[Variant]
    metrics: List[str]
    runs: List[Dict[str, Any]]
    dataset: str
    paper_dataset: str
    reference: str
    profile: str
    config: str
    arch: str
    preset: str
    steps: int
    models: Dict[Any, Any] = field(default_factory=dict, repr=False)  # (variant, seed) -> trained model
    baselines: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # name -> {metric: value, "info": {...}}
    # how the runs shared the machine: {"workers": runs at a time, "threads_per_run": CPU threads each} (in-process)
    parallel: Dict[str, int] = field(default_factory=dict)
    wall_seconds: Optional[float] = None  # the whole study (every run and the baselines), as a clock measures it

    # ---- numbers -------------------------------------------------------------------------------------------
    def values(self, variant: str, metric: str) -> List[float]:
        """Our value of ``metric`` for each seed of ``variant`` (in seed order)."""
        return [r[metric] for r in self.runs if r["variant"] == variant]

    def seeds(self, variant: str) -> List[int]:
        return [r["seed"] for r in self.runs if r["variant"] == variant]

    @property
    def makes_calls(self) -> bool:
        """Whether calls are made: a study profile (the quick profile is a smoke run) whose reference variant beats
        the trivial baselines."""
        return self.profile in CALL_PROFILES and self.learned is not False

    @property
    def learned(self) -> Optional[bool]:
        """Whether the reference variant meets its task's learning target over the trivial baselines (None without
        baselines); see :mod:`restore_core.book.learning_targets`."""
        rows = [{"variant": s["variant"], "metric": m, "ours": s[m]} for s in self.summary() for m in self.metrics]
        return beats_baselines(rows, self.baselines, self.reference)

    def margins(self) -> Dict[str, Dict[str, float]]:
        """Per metric, the reference variant's mean minus each baseline's value (positive = the model is better
        for metrics where higher is better)."""
        out: Dict[str, Dict[str, float]] = {}
        for m in self.metrics:
            ref = self._ref_ours(m)
            out[m] = {name: ref - float(vals[m]) for name, vals in self.baselines.items() if m in vals}
        return out

    def summary(self) -> List[Dict[str, Any]]:
        """Per variant: params, mean and (sample) std over seeds of every metric, train seconds per seed."""
        out = []
        for v in self.variants:
            runs = [r for r in self.runs if r["variant"] == v.name]
            row: Dict[str, Any] = {"variant": v.name, "params": runs[0]["params"],
                                   "seconds": statistics.fmean(r["seconds"] for r in runs)}
            for m in self.metrics:
                vals = self.values(v.name, m)
                row[m] = statistics.fmean(vals)
                row[f"{m}_std"] = statistics.stdev(vals) if len(vals) > 1 else None
            out.append(row)
        return out

    def rows(self) -> List[Dict[str, Any]]:
        """Rows for :func:`save_results`, with ``paper_delta`` / ``ours_delta`` / ``agrees`` to the reference."""
        rows = []
        for s, v in zip(self.summary(), self.variants):
            for m in self.metrics:
                paper = v.paper.get(m)
                rows.append({"variant": v.name, "dataset": self.dataset, "paper_dataset": self.paper_dataset,
                             "metric": m, "paper": None if paper is None else float(paper),
                             "ours": float(s[m]), "ours_std": s[f"{m}_std"], "seeds": self.values(v.name, m),
                             "seed_ids": self.seeds(v.name), "params": s["params"]})
        return annotate_calls(rows, self.reference, self.profile, baselines=self.baselines)

    def agreement_counts(self) -> Dict[str, int]:
        """Calls over the rows with a paper difference: agree / disagree / unresolved (all 0 for a smoke run)."""
        calls = [r["call"] for r in self.rows() if r["call"] is not None]
        return {"agree": calls.count("agrees"), "disagree": calls.count("disagrees"),
                "unresolved": calls.count("unresolved")}

    # ---- display -------------------------------------------------------------------------------------------
    def table(self, digits: Optional[Mapping[str, int]] = None) -> "_HTMLTable":
        """Paper and ours side by side, one line per variant and metric, then one per trivial baseline.

        Columns: params, the paper's value, ours (mean ± std over seeds), the paper's and our difference to the
        reference (ours: mean of the paired per-seed differences with its 95% interval) and the call. A smoke
        run (quick profile) shows "smoke run" instead of calls.
        """
        digits = dict(digits or {})
        head = ["variant", "params", "metric", f"paper ({self.paper_dataset})", f"ours ({self.dataset})",
                "paper Δ", "ours Δ [95% CI]", "call"]
        body = []

        def d_of(metric: str) -> int:
            return digits.get(metric, 4 if metric.upper() in ("SSIM", "QABF", "VIF") else 2)

        for r in self.rows():
            d = d_of(r["metric"])
            fmt = (lambda x, d=d: "–" if x is None else f"{x:.{d}f}")
            sfmt = (lambda x, d=d: "–" if x is None else f"{x:+.{d}f}")
            ours = fmt(r["ours"]) + ("" if r["ours_std"] is None else f" ± {r['ours_std']:.{d}f}")
            delta = sfmt(r["ours_delta"])
            if r["ours_delta_ci95"] is not None:
                lo, hi = r["ours_delta_ci95"]
                delta += f" [{lo:+.{d}f}, {hi:+.{d}f}]"
            if r["variant"] == self.reference:
                call = "(reference)"
            elif self.profile not in CALL_PROFILES:
                call = "smoke run"
            elif not self.makes_calls:
                call = f"below target ({target_text(self.baselines)})"
            else:
                call = r["call"] or "– (no paper Δ)"
            body.append([r["variant"], f"{r['params']:,}", r["metric"], fmt(r["paper"]), ours,
                         sfmt(r["paper_delta"]), delta, call])
        for name, vals in self.baselines.items():
            for m in self.metrics:
                if m in vals:
                    d = d_of(m)
                    margin = self._ref_ours(m) - float(vals[m])
                    body.append([f"baseline: {name}", "0", m, "–", f"{float(vals[m]):.{d}f}", "–",
                                 f"reference {margin:+.{d}f} over it", ""])
        return _HTMLTable(head, body)

    def plot_differences(self, metric: Optional[str] = None, ax: Any = None) -> Any:
        """Bars of (variant - reference): the paper's, and ours (mean of the paired differences, 95% interval as
        error bars); dashed lines: each trivial baseline minus the reference. Returns the Figure."""
        # deferred: matplotlib.pyplot costs ~1.1 s to import (python -X importtime); only the figures need it
        import matplotlib.pyplot as plt

        metric = metric or self.metrics[0]
        rows = [r for r in self.rows() if r["metric"] == metric and r["variant"] != self.reference]
        if ax is None:
            fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 2), 3.0))
        else:
            fig = ax.figure
        xs = list(range(len(rows)))
        w = 0.38
        paper = [math.nan if r["paper_delta"] is None else r["paper_delta"] for r in rows]
        ours = [r["ours_delta"] for r in rows]
        lo = [0.0 if r["ours_delta_ci95"] is None else r["ours_delta"] - r["ours_delta_ci95"][0] for r in rows]
        hi = [0.0 if r["ours_delta_ci95"] is None else r["ours_delta_ci95"][1] - r["ours_delta"] for r in rows]
        ax.bar([x - w / 2 for x in xs], paper, w, label=f"paper ({self.paper_dataset})", color="tab:gray")
        ax.bar([x + w / 2 for x in xs], ours, w, yerr=[lo, hi], capsize=3,
               label=f"ours ({self.dataset}, {self.profile}; 95% CI)", color="tab:blue")
        ref = self._ref_ours(metric)
        styles = iter(["--", ":", "-."])
        for name, vals in self.baselines.items():
            if metric in vals:
                ax.axhline(float(vals[metric]) - ref, color="tab:red", lw=1, ls=next(styles, "--"),
                           label=f"baseline {name} − reference")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(xs)
        ax.set_xticklabels([r["variant"] for r in rows], rotation=20, ha="right")
        ax.set_ylabel(f"Δ{metric} vs {self.reference}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig

    def plot_learning_curves(self, metric: Optional[str] = None) -> Any:
        """The reference variant's training loss and validation ``metric`` against steps, one line per seed, with
        the trivial baselines' values as horizontal lines. Returns the Figure."""
        import matplotlib.pyplot as plt

        metric = metric or self.metrics[0]
        fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(7.0, 2.8))
        for r in self.runs:
            if r["variant"] != self.reference or not r.get("curve"):
                continue
            loss = r["curve"].get("loss") or []
            val = [(step, v[metric]) for step, v in r["curve"].get("val") or [] if metric in v]
            if loss:
                ax_loss.plot([p[0] for p in loss], [p[1] for p in loss], lw=1, label=f"seed {r['seed']}")
            if val:
                ax_val.plot([p[0] for p in val], [p[1] for p in val], marker="o", ms=3, lw=1,
                            label=f"seed {r['seed']}")
        for name, vals in self.baselines.items():
            if metric in vals:
                ax_val.axhline(float(vals[metric]), color="tab:red", lw=1, ls="--", label=name)
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("training loss")
        ax_loss.set_yscale("log")
        ax_val.set_xlabel("step")
        ax_val.set_ylabel(f"{metric} ({self.dataset})")
        ax_val.legend(fontsize=7)
        ax_loss.set_title(f"{self.reference}: training loss", fontsize=9)
        ax_val.set_title(f"{self.reference}: validation {metric}", fontsize=9)
        fig.tight_layout()
        return fig

    def _ref_ours(self, metric: str) -> float:
        return statistics.fmean(self.values(self.reference, metric))

    # ---- storage -------------------------------------------------------------------------------------------
    def save(self, chapter: str, *, paper: str, table: str, scale: str, out_dir: Any = None, device: Any = None,
             extra: Optional[Dict[str, Any]] = None) -> Any:
        """Write ``book/results/<chapter>.<profile>.json`` (see :mod:`restore_core.book.results`)."""
        run_minutes = round(sum(r["seconds"] for r in self.runs) / 60, 1)
        info = {"config": self.config, "arch": self.arch, "preset": self.preset, "steps": self.steps,
                "runs": self.runs, "agreement": self.agreement_counts(), "margins": self.margins(),
                # minutes: wall clock of the whole study when measured (runs side by side overlap), else the runs'
                "minutes": run_minutes if self.wall_seconds is None else round(self.wall_seconds / 60, 1),
                "run_minutes": run_minutes}
        if self.parallel:
            info["parallel"] = dict(self.parallel)
        info.update(extra or {})
        return save_results(chapter, self.profile, paper=paper, table=table, scale=scale, rows=self.rows(),
                            reference_variant=self.reference, baselines=self.baselines, extra=info,
                            device=device, out_dir=out_dir)


class _HTMLTable:
    """A small table that renders as HTML in Jupyter and as aligned text in a terminal / nbval."""

    def __init__(self, head: List[str], body: List[List[str]]) -> None:
        self.head, self.body = head, body

    def _repr_html_(self) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in self.head)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.body)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

    def __repr__(self) -> str:
        widths = [max(len(str(x)) for x in col) for col in zip(self.head, *self.body)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [self.head, *self.body]]
        return "\n".join(lines)


def load_full(chapter: str, out_dir: Any = None) -> Optional[Dict[str, Any]]:
    """The stored full-profile results of ``chapter``, or None when the full profile has not been run."""
    return load_results(chapter, "full", out_dir)


def load_stored(chapter: str, profile: str, out_dir: Any = None) -> Optional[AblationResult]:
    """A stored ablation (``book/results/<chapter>.<profile>.json``) as an :class:`AblationResult` whose table,
    plots and learning curves render exactly as after a live run; None when that profile has not been run."""
    doc = load_results(chapter, profile, out_dir)
    return None if doc is None else result_from_document(doc)


def result_from_document(doc: Mapping[str, Any]) -> AblationResult:
    """Rebuild an :class:`AblationResult` from a results document written by :meth:`AblationResult.save`."""
    extra = doc.get("extra") or {}
    if "runs" not in extra:
        raise ValueError(f"results of {doc.get('chapter')!r} ({doc.get('profile')}) hold no per-run records")
    variants: Dict[str, Variant] = {}
    metrics: List[str] = []
    for r in doc["rows"]:
        v = variants.setdefault(r["variant"], Variant(r["variant"]))
        if r.get("paper") is not None:
            v.paper[r["metric"]] = r["paper"]
        if r["metric"] not in metrics:
            metrics.append(r["metric"])
    first = doc["rows"][0]
    return AblationResult(list(variants.values()), metrics, list(extra["runs"]), first["dataset"],
                          first.get("paper_dataset") or "", doc.get("reference_variant") or first["variant"],
                          doc["profile"], extra.get("config", ""), extra.get("arch", ""), extra.get("preset", ""),
                          int(extra.get("steps", 0)), baselines=dict(doc.get("baselines") or {}),
                          parallel=dict(extra.get("parallel") or {}),
                          wall_seconds=60.0 * extra["minutes"] if "run_minutes" in extra else None)


def _variant_overrides(arch: str, preset: str, variant: Variant, seed: int, total_iter: int,
                       val_every: Optional[int] = None) -> List[str]:
    """Config overrides that make one (variant, seed) run: network, seed, validations (every ``val_every``
    steps, default only after the last step)."""
    out = [f"network_g.type={arch}", f"network_g.preset={preset}", f"manual_seed={int(seed)}",
           f"val.val_freq={int(val_every or total_iter)}"]
    # JSON is YAML: strings stay strings ("1d"), booleans and lists survive the round trip
    out += [f"network_g.{k}={json.dumps(v)}" for k, v in variant.overrides.items()]
    return out


def _curve(history: Sequence[Mapping[str, Any]], val_history: Sequence[Mapping[str, Any]],
           keys: Mapping[str, str]) -> Dict[str, Any]:
    """A run's learning curve: ``{"loss": [[step, loss], ...], "val": [[step, {table metric: value}], ...]}``."""
    return {"loss": [[int(h["step"]), float(h["loss"])] for h in history if "loss" in h],
            "val": [[int(v["step"]), {m: float(v[k]) for m, k in keys.items() if k in v}] for v in val_history]}


def _train_distributed(config: str, profile: str, overrides: Sequence[str], nproc: int, out_dir: Path,
                       device: Optional[str]) -> Dict[str, Any]:
    """One run under torchrun (``restore-core train``); returns its train log (``history``, ``val_history``)."""
    extra = ["--out", str(out_dir), "--no-progress"] + (["--device", device] if device else [])
    launch_train(config, nproc=nproc, profile=profile, overrides=overrides, extra_args=extra)
    log = json.loads((out_dir / "train_log.json").read_text())
    if not log["val_history"]:
        raise RuntimeError(f"{out_dir}: the distributed run wrote no validation")
    return log


def _start_worker(threads: int, deterministic: bool, warn_only: bool) -> None:
    """A pool worker's setup: its share of the CPU threads, the parent's deterministic-algorithms setting."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def _train_in_worker(cfg: Any, device: Optional[str], keep_model: bool) -> Dict[str, Any]:
    """One in-process run inside a pool worker; returns what the parent records (and the weights when kept)."""
    t0 = time.perf_counter()
    res = train(cfg, device=device, save_checkpoints=False, progress=False)
    out = {"history": res.history, "val_history": res.val_history, "steps": res.steps,
           "params": sum(p.numel() for p in res.model.parameters()), "seconds": time.perf_counter() - t0}
    if keep_model:
        out["state_dict"] = {k: v.detach().cpu() for k, v in res.model.state_dict().items()}
    return out


def _worker_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """``workers`` spawned processes with ``threads`` CPU threads each (spawn: no forked OpenMP state)."""
    from ..ssm import native

    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "ACTIVE":
        warnings.warn("OMP_WAIT_POLICY=ACTIVE: this process's idle OpenMP threads keep spinning while the workers "
                      "train and take cores from them (measured: a third of 2 cores); leave it unset (libgomp then "
                      "spins briefly and sleeps) or PASSIVE for runs side by side", RuntimeWarning, stacklevel=3)
    native.is_available()  # build the scan extension once here, not in every worker at once
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker,
                               initargs=(threads, torch.are_deterministic_algorithms_enabled(),
                                         torch.is_deterministic_algorithms_warn_only_enabled()))


def run_ablation(config: str, variants: Sequence[Variant], *, arch: str, preset: str, profile: str,
                 seeds: Sequence[int] = (0,), device: Optional[str] = None, overrides: Sequence[str] = (),
                 paper_dataset: str = "", metrics: Sequence[str] = ("PSNR", "SSIM"),
                 reference: Optional[str] = None, progress: bool = False, nproc: Optional[int] = None,
                 runs_dir: Optional[str] = None, log: Any = print, keep_models: bool = False,
                 baselines: bool = True, curve_points: int = 0, workers: int = 1) -> AblationResult:
    """Train and evaluate every (variant, seed); see the module docstring.

    config: a training config name or path (its ``profile`` section applies); overrides: dotted config overrides
    (``"train.total_iter=150"``); metrics: the table's metric names, matched case-insensitively to the config's
    validation metrics; reference: the row differences are taken against (default: the first variant).
    Each run's network is the config's ``network_g`` set to ``arch`` / ``preset`` / the variant's overrides, so
    the config's ``scale`` is injected exactly as in ``restore-core train``. Every variant runs every seed
    (paired differences).
    nproc: processes per run (default ``RESTORE_CORE_BOOK_NPROC``, i.e. ``restore-core book run --nproc``); above 1
    every run is a ``torchrun`` of ``restore-core train`` (DDP) writing its experiment folder under ``runs_dir``
    (default ``experiments/ablation``); at 1 the runs train in this process and write nothing.
    ``log`` gets one line per finished run (``None`` for silence). ``keep_models``: keep each in-process run's
    trained model (eval mode) in ``result.models[(variant, seed)]`` (e.g. to show its output); not for nproc > 1.
    baselines: score the config's trivial baselines on the validation set (``result.baselines``).
    curve_points: validate the reference variant this many times along training (its learning curve; 0: only at
    the end). Every run's training-loss curve is kept in ``runs[i]["curve"]``.
    workers: in-process runs trained side by side, each in its own spawned process with an equal share of this
    process's CPU threads (``torch.get_num_threads() // workers``). A run's numbers depend on its thread count,
    not on which worker ran it or when; the share is stored in ``result.parallel``.
    """
    if not variants:
        raise ValueError("run_ablation needs at least one variant")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    reference = reference or names[0]
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not one of the variants {names}")
    if not seeds:
        raise ValueError("run_ablation needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    nproc = train_nproc() if nproc is None else int(nproc)
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if workers > 1 and nproc > 1:
        raise ValueError("workers > 1 trains in-process runs side by side; it cannot be combined with nproc > 1 "
                         "(torchrun runs)")
    if torch.get_num_threads() < workers:
        raise ValueError(f"workers={workers} needs at least one CPU thread each; this process has "
                         f"{torch.get_num_threads()}")
    threads = torch.get_num_threads() // workers
    if keep_models and nproc > 1:
        raise ValueError("keep_models needs in-process runs (nproc 1): torchrun runs leave their weights in "
                         "their experiment folders' checkpoints")
    if is_dry_run():  # the config overrides come from the environment (restore_core.book.dry_run)
        curve_points = min(curve_points, 2)
    base = load_config(config, profile=profile, overrides=list(overrides))
    if base.train.total_iter <= 0:
        raise ValueError(f"train.total_iter must be positive, got {base.train.total_iter}")
    if "val" not in base.datasets or not base.val.metrics:
        raise ValueError(f"config {config!r} has no validation set or metrics to score the variants with")
    keys = {m: _metric_key(m, list(base.val.metrics)) for m in metrics}
    dataset = base.datasets["val"].name or "val"
    total = base.train.total_iter
    curve_every = total // curve_points if curve_points > 0 else None
    if curve_every is not None and total % curve_points:
        raise ValueError(f"curve_points={curve_points} must split train.total_iter={total} into equal parts, so "
                         f"that the last validation is at the last step")

    started = time.perf_counter()
    jobs = [(v, int(seed), _variant_overrides(arch, preset, v, seed, total,
                                              curve_every if v.name == reference else None))
            for v in variants for seed in seeds]
    runs: List[Dict[str, Any]] = []
    models: Dict[Any, Any] = {}

    def record(v: Variant, seed: int, history: Sequence[Mapping[str, Any]], val_history: Sequence[Mapping[str, Any]],
               steps: int, params: int, seconds: float) -> None:
        final = {k: val for k, val in val_history[-1].items() if k != "step"}
        run = {"variant": v.name, "seed": seed, "params": params, "steps": steps, "seconds": round(seconds, 2)}
        for m, k in keys.items():
            value = float(final[k])
            if not math.isfinite(value):
                raise FloatingPointError(f"variant {v.name!r} seed {seed}: {m} is {value}")
            run[m] = value
        run["curve"] = _curve(history, val_history, keys)
        runs.append(run)
        if log is not None:
            log(f"{v.name} (seed {seed}): " + ", ".join(f"{m} {run[m]:.4f}" for m in keys))

    if workers > 1:
        pool = _worker_pool(workers, threads)
        try:
            futures = [pool.submit(_train_in_worker, base.with_overrides(run_over), device, keep_models)
                       for _, _, run_over in jobs]
            for (v, seed, run_over), fut in zip(jobs, futures):  # recorded in table order, whatever ends first
                out = fut.result()
                record(v, seed, out["history"], out["val_history"], out["steps"], out["params"], out["seconds"])
                if keep_models:
                    model = build_network(base.with_overrides(run_over))
                    model.load_state_dict(out["state_dict"])
                    models[(v.name, seed)] = model.eval()
        finally:  # a failed run stops the study: the runs not yet started are dropped, not trained for nothing
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for v, seed, run_over in jobs:
            cfg = base.with_overrides(run_over)
            t0 = time.perf_counter()
            if nproc > 1:
                slug = "".join(c if c.isalnum() else "_" for c in v.name)
                out_dir = Path(runs_dir or "experiments/ablation") / base.name / f"{slug}_seed{seed}"
                train_log = _train_distributed(config, profile, [*overrides, *run_over], nproc, out_dir, device)
                params = sum(p.numel() for p in build_network(cfg).parameters())
                record(v, seed, train_log.get("history", []), train_log["val_history"], total, params,
                       time.perf_counter() - t0)
            else:
                res = train(cfg, device=device, save_checkpoints=False, progress=progress)
                if keep_models:
                    models[(v.name, seed)] = res.model
                record(v, seed, res.history, res.val_history, res.steps,
                       sum(p.numel() for p in res.model.parameters()), time.perf_counter() - t0)
    scored = score_baselines(base, keys) if baselines else {}
    parallel = {"workers": int(workers), "threads_per_run": threads} if nproc == 1 else {}
    return AblationResult(list(variants), list(metrics), runs, dataset, paper_dataset, reference, profile,
                          config, arch, preset, total, models, scored, parallel=parallel,
                          wall_seconds=time.perf_counter() - started)
