"""Stored chapter results: ``book/results/<chapter>.<profile>.json``, one schema for every table.

Schema (all keys required unless marked optional)::

    {
      "chapter": "ablation_mambair",            # notebook stem without the number prefix
      "paper": "MambaIR",
      "table": "Table 2: ablation of the RSSB",  # what the paper calls it
      "profile": "quick" | "cpu" | "full",
      "scale": "free text: data, iterations, patch, model width, seeds -- stated honestly",
      "reference_variant": "full",              # optional: the row others are compared with
      "rows": [                                  # one per (variant, dataset, metric)
        {"variant": "full", "dataset": "Set5", "metric": "PSNR",
         "paper": 38.57 | null, "ours": 30.12, "ours_std": 0.03 | null, "seeds": [30.1, 30.14] | null,
         "seed_ids": [0, 1],                     # optional: which seed each value is (paired differences)
         "paper_delta", "ours_delta", "ours_delta_ci95": [lo, hi] | null,   # optional, vs the reference
         "call": "agrees" | "disagrees" | "unresolved" | null, "agrees": true | false | null}
      ],
      "baselines": {"bicubic": {"PSNR": 31.66, "SSIM": 0.896}},  # optional: trivial baselines, same data/metrics
      "provenance": {...}                        # restore_core.provenance.provenance(...)
      "extra": {...}                             # optional, chapter-specific
    }

The landing page's scoreboard is generated from these files, never typed by hand.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..profiles import CALL_PROFILES, PROFILES
from ..provenance import provenance
from ..fsutil import atomic_write_json
from .learning_targets import target_met

RESULTS_DIR = Path(__file__).resolve().parents[2] / "book" / "results"
RESULTS_OUT_ENV = "RESTORE_CORE_RESULTS_OUT"
_REQUIRED = ("chapter", "paper", "table", "profile", "scale", "rows", "provenance")
_ROW_KEYS = ("variant", "dataset", "metric", "paper", "ours")


def results_path(chapter: str, profile: str, out_dir: Optional[os.PathLike] = None) -> Path:
    return Path(out_dir or RESULTS_DIR) / f"{chapter}.{profile}.json"


def validate_results(doc: Dict[str, Any]) -> None:
    """Raise ValueError naming the first missing key or malformed row."""
    for k in _REQUIRED:
        if k not in doc:
            raise ValueError(f"results document lacks key {k!r}")
    if doc["profile"] not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {doc['profile']!r}")
    for i, row in enumerate(doc["rows"]):
        for k in _ROW_KEYS:
            if k not in row:
                raise ValueError(f"row {i} lacks key {k!r}: {row}")
        if row["ours"] is not None and not math.isfinite(float(row["ours"])):
            raise ValueError(f"row {i} has a non-finite value: {row}")
    for name, vals in (doc.get("baselines") or {}).items():
        if not isinstance(vals, dict) or not any(isinstance(v, (int, float)) for v in vals.values()):
            raise ValueError(f"baseline {name!r}: expected {{metric: value}}, got {vals!r}")


def save_results(chapter: str, profile: str, *, paper: str, table: str, scale: str,
                 rows: List[Dict[str, Any]], reference_variant: Optional[str] = None,
                 baselines: Optional[Dict[str, Dict[str, Any]]] = None,
                 extra: Optional[Dict[str, Any]] = None, device: Any = None,
                 out_dir: Optional[os.PathLike] = None) -> Path:
    """Validate and write a results document atomically; returns its path.

    out_dir: where to write (default :func:`results_out_dir`: ``$RESTORE_CORE_RESULTS_OUT`` when set, which the
    test suite points at a temporary folder, else ``book/results/``).
    """
    target = Path(out_dir) if out_dir is not None else results_out_dir()
    prov = provenance(device)
    if str(prov.get("commit", "")).endswith("+dirty") and profile != "quick" and not os.environ.get("RESTORE_CORE_DRY_RUN"):
        allowed = bool(os.environ.get("RESTORE_CORE_ALLOW_DIRTY"))
        if not allowed and target.resolve() == RESULTS_DIR.resolve():
            raise ValueError(f"{profile}-profile results go to {RESULTS_DIR} only from a committed tree (the "
                             f"tree has uncommitted changes); commit first, write them elsewhere (out_dir), or "
                             f"run `restore-core book run --allow-dirty`, which records it")
        prov["dirty_tree_allowed"] = allowed
    if os.environ.get("RESTORE_CORE_DRY_RUN"):
        if target.resolve() == RESULTS_DIR.resolve():
            raise ValueError(f"a dry run's results never go to {RESULTS_DIR}: set RESTORE_CORE_RESULTS_OUT or out_dir")
        prov["dry_run"] = True
    doc: Dict[str, Any] = {"chapter": chapter, "paper": paper, "table": table, "profile": profile,
                           "scale": scale, "rows": rows, "provenance": prov}
    if reference_variant is not None:
        doc["reference_variant"] = reference_variant
    if baselines:
        doc["baselines"] = baselines
    if extra:
        doc["extra"] = extra
    validate_results(doc)
    path = results_path(chapter, profile, target)
    return atomic_write_json(path, doc)


def results_out_dir() -> Path:
    """Where chapters write results: ``$RESTORE_CORE_RESULTS_OUT`` if set, else ``book/results/``. Reading
    always uses ``book/results/`` (the stored results a chapter shows)."""
    return Path(os.environ.get(RESULTS_OUT_ENV) or RESULTS_DIR)


def load_results(chapter: str, profile: str, out_dir: Optional[os.PathLike] = None) -> Optional[Dict[str, Any]]:
    """The stored document, or None when that chapter has not been run in that profile."""
    path = results_path(chapter, profile, out_dir)
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    validate_results(doc)
    return doc


def all_results(out_dir: Optional[os.PathLike] = None) -> List[Dict[str, Any]]:
    docs = []
    for p in sorted(Path(out_dir or RESULTS_DIR).glob("*.json")):
        try:
            doc = json.loads(p.read_text())
            validate_results(doc)
        except ValueError as exc:  # JSONDecodeError is a ValueError too: name the file
            raise ValueError(f"{p}: {exc}") from exc
        docs.append(doc)
    return docs


def _sign(x: float, tol: float) -> int:
    return 0 if abs(x) <= tol else (1 if x > 0 else -1)


def ordering_agreement(rows: Sequence[Dict[str, Any]], reference_variant: str, tol: float = 0.0) -> List[Dict[str, Any]]:
    """Per row: does our difference to the reference variant have the paper's sign?

    For every (dataset, metric) the reference row's paper and ours values are subtracted from each other row's;
    ``agrees`` is True / False, or None where the paper gives no number or the difference is within ``tol``
    on either side ("tie"). Returns new row dicts with ``paper_delta``, ``ours_delta`` and ``agrees`` added.
    """
    ref = {(r["dataset"], r["metric"]): r for r in rows if r["variant"] == reference_variant}
    out = []
    for r in rows:
        r2 = dict(r)
        base = ref.get((r["dataset"], r["metric"]))
        if base is None or r["variant"] == reference_variant or r["paper"] is None or base["paper"] is None:
            r2.update(paper_delta=None, ours_delta=None, agrees=None)
        else:
            pd_ = float(r["paper"]) - float(base["paper"])
            od = float(r["ours"]) - float(base["ours"])
            sp, so = _sign(pd_, tol), _sign(od, tol)
            r2.update(paper_delta=pd_, ours_delta=od, agrees=None if sp == 0 or so == 0 else sp == so)
        out.append(r2)
    return out


def t_quantile(level: float, dof: int) -> float:
    """The two-sided Student-t quantile: ``t`` with P(|T| <= t) = level for ``dof`` degrees of freedom."""
    # deferred: importing scipy.stats costs ~2 s (python -X importtime), and every chapter imports this module
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.5 + level / 2, dof))


def paired_interval(diffs: Sequence[float], level: float = 0.95) -> Tuple[float, Optional[List[float]]]:
    """Mean of paired differences and its Student-t interval ``[lo, hi]`` (None with fewer than 2 pairs).

    ``mean ± t_{(1+level)/2, n-1} · s / sqrt(n)``, s the sample standard deviation of the differences.
    """
    d = [float(x) for x in diffs]
    if not d:
        raise ValueError("paired_interval needs at least one difference")
    mean = sum(d) / len(d)
    if len(d) < 2:
        return mean, None
    s = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    half = t_quantile(level, len(d) - 1) * s / math.sqrt(len(d))
    return mean, [mean - half, mean + half]


def call_from_interval(ci: Optional[Sequence[float]], paper_delta: Optional[float]) -> Optional[str]:
    """"agrees" / "disagrees" (our interval excludes 0, on the paper's side or not), "unresolved" (it contains 0
    or there is no interval), None where the paper gives no difference (or a zero one)."""
    if paper_delta is None or paper_delta == 0:
        return None
    if ci is None or ci[0] <= 0 <= ci[1]:
        return "unresolved"
    ours_positive = ci[0] > 0
    return "agrees" if ours_positive == (paper_delta > 0) else "disagrees"


def beats_baselines(rows: Sequence[Dict[str, Any]], baselines: Optional[Dict[str, Dict[str, Any]]],
                    reference_variant: str) -> Optional[bool]:
    """Whether the reference variant's mean meets its task's learning target over the trivial baselines (None when
    there are no baselines): :mod:`restore_core.book.learning_targets` (SR +0.5 dB over bicubic, denoising +1 dB
    over the better of the noisy input and a Gaussian filter, deblurring +1 dB over the blurred input, fusion above
    mean fusion on at least 3 of its metrics). All the tables' metrics are higher-is-better.
    """
    ours: Dict[str, float] = {}
    for r in rows:
        if r["variant"] == reference_variant and r.get("ours") is not None:
            ours.setdefault(r["metric"], float(r["ours"]))
    return target_met(ours, baselines)


def annotate_calls(rows: Sequence[Dict[str, Any]], reference_variant: str, profile: str,
                   level: float = 0.95, baselines: Optional[Dict[str, Dict[str, Any]]] = None
                   ) -> List[Dict[str, Any]]:
    """Per row: the paired difference to the reference variant over seeds, its interval, and the call.

    Adds ``paper_delta``, ``ours_delta`` (mean of the per-seed differences), ``ours_delta_ci95`` ([lo, hi] or
    None), ``call`` and ``agrees`` (True / False for "agrees" / "disagrees", else None). Rows pair by
    ``seed_ids`` when both rows have them, else by position in ``seeds``. No calls are made (``call`` None) by the
    quick profile, a smoke run, nor when the reference variant does not beat the trivial ``baselines``
    (:func:`beats_baselines`): differences between models that have not learned the task mean nothing. Rows
    without per-seed values fall back to the difference of the means.
    """
    calls_allowed = profile in CALL_PROFILES and beats_baselines(rows, baselines, reference_variant) is not False
    ref = {(r["dataset"], r["metric"]): r for r in rows if r["variant"] == reference_variant}
    out = []
    for r in rows:
        r2 = dict(r)
        base = ref.get((r["dataset"], r["metric"]))
        r2.update(paper_delta=None, ours_delta=None, ours_delta_ci95=None, call=None, agrees=None)
        if base is not None and r["variant"] != reference_variant:
            if r.get("paper") is not None and base.get("paper") is not None:
                r2["paper_delta"] = float(r["paper"]) - float(base["paper"])
            diffs = _paired_differences(r, base)
            if diffs:
                r2["ours_delta"], r2["ours_delta_ci95"] = paired_interval(diffs, level)
            else:
                r2["ours_delta"] = float(r["ours"]) - float(base["ours"])
            if calls_allowed:
                r2["call"] = call_from_interval(r2["ours_delta_ci95"], r2["paper_delta"])
                r2["agrees"] = {"agrees": True, "disagrees": False}.get(r2["call"])
        out.append(r2)
    return out


def _paired_differences(row: Dict[str, Any], base: Dict[str, Any]) -> List[float]:
    a, b = row.get("seeds"), base.get("seeds")
    if not a or not b:
        return []
    ia, ib = row.get("seed_ids"), base.get("seed_ids")
    if ia and ib:
        by_seed = dict(zip(ib, b))
        missing = [s for s in ia if s not in by_seed]
        if missing:
            raise ValueError(f"variant {row['variant']!r} has seeds {missing} that the reference lacks: "
                             f"differences must be paired")
        return [x - by_seed[s] for s, x in zip(ia, a)]
    if len(a) != len(b):
        raise ValueError(f"variant {row['variant']!r} has {len(a)} seeds, the reference {len(b)}: "
                         f"differences must be paired")
    return [x - y for x, y in zip(a, b)]


def kendall_tau(a: Iterable[float], b: Iterable[float]) -> float:
    """Kendall's tau-a between two equally long sequences (rank agreement of the variants)."""
    a, b = list(a), list(b)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("kendall_tau needs two sequences of equal length >= 2")
    s = 0
    n = len(a)
    for i in range(n):
        for j in range(i + 1, n):
            s += _sign(a[i] - a[j], 0) * _sign(b[i] - b[j], 0)
    return s / (n * (n - 1) / 2)
