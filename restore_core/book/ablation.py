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
``restore-core train`` (DDP), with one validation after the last step. Whether a reproduced difference has the paper's sign is computed by
:func:`restore_core.book.results.ordering_agreement`, never typed.
"""
from __future__ import annotations

import html
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .results import load_results, ordering_agreement, save_results


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

    # ---- numbers -------------------------------------------------------------------------------------------
    def values(self, variant: str, metric: str) -> List[float]:
        """Our value of ``metric`` for each seed of ``variant`` (in seed order)."""
        return [r[metric] for r in self.runs if r["variant"] == variant]

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
                             "params": s["params"]})
        return ordering_agreement(rows, self.reference)

    def agreement_counts(self) -> Dict[str, int]:
        """How many comparable rows agree / disagree in sign with the paper (ties and missing numbers excluded)."""
        agrees = [r["agrees"] for r in self.rows() if r["agrees"] is not None]
        return {"agree": sum(agrees), "disagree": len(agrees) - sum(agrees)}

    # ---- display -------------------------------------------------------------------------------------------
    def table(self, digits: Optional[Mapping[str, int]] = None) -> "_HTMLTable":
        """Paper and ours side by side, one line per variant and metric, as an HTML table (also plain text)."""
        digits = dict(digits or {})
        head = ["variant", "params", "metric", f"paper ({self.paper_dataset})", f"ours ({self.dataset})",
                "paper Δ", "ours Δ", "same sign?"]
        body = []
        for r in self.rows():
            d = digits.get(r["metric"], 4 if r["metric"].upper() == "SSIM" else 2)
            fmt = (lambda x, d=d: "–" if x is None else f"{x:.{d}f}")
            sfmt = (lambda x, d=d: "–" if x is None else f"{x:+.{d}f}")
            ours = fmt(r["ours"]) + ("" if r["ours_std"] is None else f" ± {r['ours_std']:.{d}f}")
            same = {True: "yes", False: "no", None: "–"}[r["agrees"]]
            if r["variant"] == self.reference:
                same = "(reference)"
            body.append([r["variant"], f"{r['params']:,}", r["metric"], fmt(r["paper"]), ours,
                         sfmt(r["paper_delta"]), sfmt(r["ours_delta"]), same])
        return _HTMLTable(head, body)

    def plot_differences(self, metric: Optional[str] = None, ax: Any = None) -> Any:
        """Bars of (variant - reference) for the paper and for us (mean ± std over seeds); returns the Figure."""
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
        ours = [r["ours_delta"] if r["ours_delta"] is not None else r["ours"] - self._ref_ours(metric) for r in rows]
        err = [r["ours_std"] or 0.0 for r in rows]
        ax.bar([x - w / 2 for x in xs], paper, w, label=f"paper ({self.paper_dataset})", color="tab:gray")
        ax.bar([x + w / 2 for x in xs], ours, w, yerr=err, capsize=3, label=f"ours ({self.dataset}, {self.profile})",
               color="tab:blue")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(xs)
        ax.set_xticklabels([r["variant"] for r in rows], rotation=20, ha="right")
        ax.set_ylabel(f"Δ{metric} vs {self.reference}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def _ref_ours(self, metric: str) -> float:
        return statistics.fmean(self.values(self.reference, metric))

    # ---- storage -------------------------------------------------------------------------------------------
    def save(self, chapter: str, *, paper: str, table: str, scale: str, out_dir: Any = None, device: Any = None,
             extra: Optional[Dict[str, Any]] = None) -> Any:
        """Write ``book/results/<chapter>.<profile>.json`` (see :mod:`restore_core.book.results`)."""
        info = {"config": self.config, "arch": self.arch, "preset": self.preset, "steps": self.steps,
                "runs": self.runs, "agreement": self.agreement_counts()}
        info.update(extra or {})
        return save_results(chapter, self.profile, paper=paper, table=table, scale=scale, rows=self.rows(),
                            reference_variant=self.reference, extra=info, device=device, out_dir=out_dir)


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


def _variant_overrides(arch: str, preset: str, variant: Variant, seed: int, total_iter: int) -> List[str]:
    """Config overrides that make one (variant, seed) run: network, seed, one validation after the last step."""
    out = [f"network_g.type={arch}", f"network_g.preset={preset}", f"manual_seed={int(seed)}",
           f"val.val_freq={int(total_iter)}"]
    # JSON is YAML: strings stay strings ("1d"), booleans and lists survive the round trip
    out += [f"network_g.{k}={json.dumps(v)}" for k, v in variant.overrides.items()]
    return out


def _train_distributed(config: str, profile: str, overrides: Sequence[str], nproc: int, out_dir: Path,
                       device: Optional[str]) -> Dict[str, Any]:
    """One run under torchrun (``restore-core train``); returns the last validation's metrics."""
    from ..train.distributed import launch_train

    extra = ["--out", str(out_dir), "--no-progress"] + (["--device", device] if device else [])
    launch_train(config, nproc=nproc, profile=profile, overrides=overrides, extra_args=extra)
    log = json.loads((out_dir / "train_log.json").read_text())
    if not log["val_history"]:
        raise RuntimeError(f"{out_dir}: the distributed run wrote no validation")
    return {k: v for k, v in log["val_history"][-1].items() if k != "step"}


def run_ablation(config: str, variants: Sequence[Variant], *, arch: str, preset: str, profile: str,
                 seeds: Sequence[int] = (0,), device: Optional[str] = None, overrides: Sequence[str] = (),
                 paper_dataset: str = "", metrics: Sequence[str] = ("PSNR", "SSIM"),
                 reference: Optional[str] = None, progress: bool = False, nproc: Optional[int] = None,
                 runs_dir: Optional[str] = None, log: Any = print, keep_models: bool = False) -> AblationResult:
    """Train and evaluate every (variant, seed); see the module docstring.

    config: a training config name or path (its ``profile`` section applies); overrides: dotted config overrides
    (``"train.total_iter=150"``); metrics: the table's metric names, matched case-insensitively to the config's
    validation metrics; reference: the row differences are taken against (default: the first variant).
    Each run's network is the config's ``network_g`` set to ``arch`` / ``preset`` / the variant's overrides, so
    the config's ``scale`` is injected exactly as in ``restore-core train``.
    nproc: processes per run (default ``RESTORE_CORE_BOOK_NPROC``, i.e. ``restore-core book run --nproc``); above 1
    every run is a ``torchrun`` of ``restore-core train`` (DDP) writing its experiment folder under ``runs_dir``
    (default ``experiments/ablation``); at 1 the runs train in this process and write nothing.
    ``log`` gets one line per finished run (``None`` for silence). ``keep_models``: keep each in-process run's
    trained model (eval mode) in ``result.models[(variant, seed)]`` (e.g. to show its output); not for nproc > 1.
    """
    from ..train import load_config, train
    from ..train.builders import build_network
    from .runner import train_nproc

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
    nproc = train_nproc() if nproc is None else int(nproc)
    if keep_models and nproc > 1:
        raise ValueError("keep_models needs in-process runs (nproc 1): torchrun runs leave their weights in "
                         "their experiment folders' checkpoints")
    base = load_config(config, profile=profile, overrides=list(overrides))
    if base.train.total_iter <= 0:
        raise ValueError(f"train.total_iter must be positive, got {base.train.total_iter}")
    if "val" not in base.datasets or not base.val.metrics:
        raise ValueError(f"config {config!r} has no validation set or metrics to score the variants with")
    keys = {m: _metric_key(m, list(base.val.metrics)) for m in metrics}
    dataset = base.datasets["val"].name or "val"

    runs: List[Dict[str, Any]] = []
    models: Dict[Any, Any] = {}
    for v in variants:
        for seed in seeds:
            run_over = _variant_overrides(arch, preset, v, seed, base.train.total_iter)
            cfg = base.with_overrides(run_over)
            t0 = time.perf_counter()
            if nproc > 1:
                slug = "".join(c if c.isalnum() else "_" for c in v.name)
                out = Path(runs_dir or "experiments/ablation") / base.name / f"{slug}_seed{seed}"
                final = _train_distributed(config, profile, [*overrides, *run_over], nproc, out, device)
                params = sum(p.numel() for p in build_network(cfg).parameters())
                steps = base.train.total_iter
            else:
                res = train(cfg, device=device, save_checkpoints=False, progress=progress)
                final, steps = res.final_metrics, res.steps
                params = sum(p.numel() for p in res.model.parameters())
                if keep_models:
                    models[(v.name, int(seed))] = res.model
            run = {"variant": v.name, "seed": int(seed), "params": params, "steps": steps,
                   "seconds": round(time.perf_counter() - t0, 2)}
            for m, k in keys.items():
                value = float(final[k])
                if not math.isfinite(value):
                    raise FloatingPointError(f"variant {v.name!r} seed {seed}: {m} is {value}")
                run[m] = value
            runs.append(run)
            if log is not None:
                log(f"{v.name} (seed {seed}): " + ", ".join(f"{m} {run[m]:.4f}" for m in keys))
    return AblationResult(list(variants), list(metrics), runs, dataset, paper_dataset, reference, profile,
                          config, arch, preset, base.train.total_iter, models)
