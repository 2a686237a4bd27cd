"""Stored chapter results: ``book/results/<chapter>.<profile>.json``, one schema for every table.

Schema (all keys required unless marked optional)::

    {
      "chapter": "ablation_mambair",            # notebook stem without the number prefix
      "paper": "MambaIR",
      "table": "Table 2: ablation of the RSSB",  # what the paper calls it
      "profile": "quick" | "full",
      "scale": "free text: data, iterations, patch, model width, seeds -- stated honestly",
      "reference_variant": "full",              # optional: the row others are compared with
      "rows": [                                  # one per (variant, dataset, metric)
        {"variant": "full", "dataset": "Set5", "metric": "PSNR",
         "paper": 38.57 | null, "ours": 30.12, "ours_std": 0.03 | null, "seeds": [30.1, 30.14] | null}
      ],
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
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ..provenance import provenance
from ..fsutil import atomic_write_json

RESULTS_DIR = Path(__file__).resolve().parents[2] / "book" / "results"
_REQUIRED = ("chapter", "paper", "table", "profile", "scale", "rows", "provenance")
_ROW_KEYS = ("variant", "dataset", "metric", "paper", "ours")


def results_path(chapter: str, profile: str, out_dir: Optional[os.PathLike] = None) -> Path:
    return Path(out_dir or RESULTS_DIR) / f"{chapter}.{profile}.json"


def validate_results(doc: Dict[str, Any]) -> None:
    """Raise ValueError naming the first missing key or malformed row."""
    for k in _REQUIRED:
        if k not in doc:
            raise ValueError(f"results document lacks key {k!r}")
    if doc["profile"] not in ("quick", "full"):
        raise ValueError(f"profile must be quick or full, got {doc['profile']!r}")
    for i, row in enumerate(doc["rows"]):
        for k in _ROW_KEYS:
            if k not in row:
                raise ValueError(f"row {i} lacks key {k!r}: {row}")
        if row["ours"] is not None and not math.isfinite(float(row["ours"])):
            raise ValueError(f"row {i} has a non-finite value: {row}")


def save_results(chapter: str, profile: str, *, paper: str, table: str, scale: str,
                 rows: List[Dict[str, Any]], reference_variant: Optional[str] = None,
                 extra: Optional[Dict[str, Any]] = None, device: Any = None,
                 out_dir: Optional[os.PathLike] = None) -> Path:
    """Validate and write a results document atomically; returns its path."""
    doc: Dict[str, Any] = {"chapter": chapter, "paper": paper, "table": table, "profile": profile,
                           "scale": scale, "rows": rows, "provenance": provenance(device)}
    if reference_variant is not None:
        doc["reference_variant"] = reference_variant
    if extra:
        doc["extra"] = extra
    validate_results(doc)
    path = results_path(chapter, profile, out_dir)
    return atomic_write_json(path, doc)


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
