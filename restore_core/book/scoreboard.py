"""The landing page's scoreboard: every stored number beside the paper's, generated from ``book/results/*.json``.

``write_scoreboard()`` renders :func:`render_scoreboard` into ``book/_generated/scoreboard.md``, which
``book/intro.md`` pulls in with a MyST ``{include}``. Nothing in it is typed by hand: it is rewritten by
``restore-core book scoreboard``, by the book runner after the chapters ran, and by Sphinx itself at the start of
every HTML build (:mod:`restore_core.book.sphinx_ext`), so the page can never be stale or missing. With no results stored yet the page says so plainly.

Layout: a summary with one line per paper table (how many numbers, how many have a paper value; per profile
that makes calls (cpu, full) how many rows are resolved and how many of those agree with the paper; the reference
model's margin over the best trivial baseline), then, in a dropdown, one row per (paper, table, variant, dataset,
metric): the paper's value, ours per profile (mean ± std over seeds where stored) and the call
(:func:`restore_core.book.results.annotate_calls`): our paired difference to the chapter's reference variant, with
its 95% interval, agrees or disagrees in sign with the paper's only when the interval excludes 0; otherwise it is
unresolved. The quick profile is a smoke run and makes no calls.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from ..fsutil import atomic_write_text
from ..profiles import CALL_PROFILES, PROFILES
from .learning_targets import learning_target, target_met, target_text
from .results import RESULTS_DIR, all_results, annotate_calls
from .toc import toc_entries

GENERATED_PATH = RESULTS_DIR.parent / "_generated" / "scoreboard.md"
TOC_PATH = RESULTS_DIR.parents[1] / "_toc.yml"
PROFILE_ORDER = PROFILES
_PAPER_ORDER = ("MambaIR", "CU-Mamba", "FusionMamba", "RNAN")

AGREES, DISAGREES, UNRESOLVED, NO_CALL = "✓", "✗", "≈", "–"
_MARKS = {"agrees": AGREES, "disagrees": DISAGREES, "unresolved": UNRESOLVED, None: NO_CALL}


def format_value(x: Optional[float], std: Optional[float] = None) -> str:
    """A number as tables print it: 4 decimals below 10 (SSIM, losses), 2 up to 1000 (PSNR), thousands
    separators above (parameter counts, FLOPs); "—" for a missing value."""
    if x is None:
        return "—"
    x = float(x)
    if abs(x) >= 1000:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:.2f}"
    else:
        s = f"{x:.4f}"
    if std is not None:
        s += " ± " + format_value(std)
    return s


def _cell(text: Any) -> str:
    """Table-safe text: no pipes or line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def chapter_pages(toc: Optional[os.PathLike] = None, srcdir: Optional[os.PathLike] = None) -> Dict[str, str]:
    """Chapter name -> docname of its notebook, for the notebooks the table of contents lists.

    A results document's ``chapter`` is the notebook stem without its number prefix, so ``ablation_mambair``
    maps to ``book/05_ablation_mambair``. Docnames are relative to ``srcdir`` (default: the toc's folder);
    pages not in the toc are left out, so every link the scoreboard makes resolves.
    """
    toc = Path(toc) if toc is not None else TOC_PATH
    if not toc.is_file():
        return {}
    src = Path(srcdir) if srcdir is not None else toc.parent
    pages: Dict[str, str] = {}
    for entry in toc_entries(yaml.safe_load(toc.read_text())):
        docname = entry[:-len(".ipynb")] if entry.endswith(".ipynb") else entry
        if (src / f"{docname}.ipynb").is_file():
            stem = Path(docname).name
            pages.setdefault(re.sub(r"^\d+[a-z]?_", "", stem), docname)
    return pages


def _call_mark(call: Optional[str]) -> str:
    return _MARKS[call]


def _paper_rank(paper: str) -> int:
    """Position of the paper in the book's order; "MambaIR (arXiv:2402.15648)" counts as "MambaIR"."""
    for i, name in enumerate(_PAPER_ORDER):
        if paper == name or paper.startswith(name + " "):
            return i
    return len(_PAPER_ORDER)


def _group_documents(docs: Sequence[Dict[str, Any]]) -> "OrderedDict[Tuple[str, str, str], Dict[str, Dict]]":
    """(paper, table, chapter) -> {profile: document}, papers in the book's order, then by chapter/table."""
    groups: Dict[Tuple[str, str, str], Dict[str, Dict[str, Any]]] = {}
    for doc in docs:
        key = (doc["paper"], doc["table"], doc["chapter"])
        if doc["profile"] in groups.setdefault(key, {}):
            raise ValueError(f"two results documents for chapter {doc['chapter']!r}, profile {doc['profile']!r}")
        groups[key][doc["profile"]] = doc
    ordered = sorted(groups, key=lambda k: (_paper_rank(k[0]), k[2], k[1], k[0]))
    return OrderedDict((k, groups[k]) for k in ordered)


def _annotated_rows(doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    ref = doc.get("reference_variant")
    if ref is None:
        return [dict(r, agrees=None, call=None) for r in doc["rows"]]
    return annotate_calls(doc["rows"], ref, doc["profile"], baselines=doc.get("baselines"))


def scoreboard_rows(docs: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One dict per table row: paper, table, chapter, variant, dataset, metric, paper_value, and per profile
    ``ours_<profile>``, ``std_<profile>``, ``call_<profile>``, ``agrees_<profile>`` (None where that profile has
    no row or makes no call)."""
    out: List[Dict[str, Any]] = []
    for (paper, table, chapter), by_profile in _group_documents(docs).items():
        merged: "OrderedDict[Tuple[str, str, str], Dict[str, Any]]" = OrderedDict()
        for profile in PROFILE_ORDER:
            doc = by_profile.get(profile)
            if doc is None:
                continue
            for r in _annotated_rows(doc):
                # the paper's number is on its dataset (``paper_dataset``); ours on the profile's own data
                dataset = r.get("paper_dataset") or r["dataset"]
                key = (r["variant"], dataset, r["metric"])
                row = merged.setdefault(key, {
                    "paper": paper, "table": table, "chapter": chapter, "variant": r["variant"],
                    "dataset": dataset, "metric": r["metric"], "paper_value": r["paper"],
                    "reference": r["variant"] == doc.get("reference_variant"),
                    **{f"{k}_{p}": None for p in PROFILE_ORDER for k in ("ours", "std", "agrees", "call")}})
                if row["paper_value"] is None:
                    row["paper_value"] = r["paper"]
                row[f"ours_{profile}"] = r["ours"]
                row[f"std_{profile}"] = r.get("ours_std")
                row[f"agrees_{profile}"] = r["agrees"]
                row[f"call_{profile}"] = r["call"]
        out.extend(merged.values())
    return out


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _calls_text(calls: Sequence[str]) -> str:
    resolved = [c for c in calls if c != "unresolved"]
    return f"{len(resolved)} of {len(calls)} resolved, {resolved.count('agrees')} of them agreeing"


def _summary(rows: Sequence[Dict[str, Any]], profile: str) -> str:
    if profile not in CALL_PROFILES:
        return f"{profile}: a smoke run, no calls"
    calls = [r[f"call_{profile}"] for r in rows if r[f"call_{profile}"] is not None]
    if not calls:
        return f"{profile}: no comparisons with a paper difference"
    return f"{profile}: {_calls_text(calls)}"


def baseline_margin(doc: Dict[str, Any]) -> Optional[str]:
    """The reference variant's margin over its trivial baselines and whether it meets its task's learning target
    (:mod:`restore_core.book.learning_targets`), e.g. ``"PSNR +1.13 over bicubic; target +0.5 dB over bicubic:
    met"`` or, for fusion, ``"above mean on 4 of 6 metrics; target ...: met"``; None without baselines."""
    baselines = doc.get("baselines") or {}
    ref = doc.get("reference_variant")
    ours = {r["metric"]: float(r["ours"]) for r in doc["rows"] if r["variant"] == ref and r["ours"] is not None}
    if not baselines or not ours:
        return None
    target = learning_target(baselines)
    gate = list(target.gate) if target is not None else list(baselines)
    metric = next(iter(ours))
    if len(ours) > 2:  # many metrics (fusion): on how many the reference is above the gate baselines
        wins = sum(all(ours[m] > float(baselines[b][m]) for b in gate if isinstance(baselines[b].get(m), (int, float)))
                   for m in ours)
        text = f"above {' and '.join(gate)} on {wins} of {len(ours)} metrics"
    else:
        values = {n: float(baselines[n][metric]) for n in gate if isinstance(baselines[n].get(metric), (int, float))}
        if not values:
            return None
        best = max(values, key=values.get)
        digits = 2 if "PSNR" in metric.upper() else 4
        text = f"{metric} {ours[metric] - values[best]:+.{digits}f} over {best}"
    met = target_met(ours, baselines)
    return f"{text}; target {target_text(baselines)}: {'met' if met else 'not met'}"


def _chapter_link(chapter: str, text: str, pages: Mapping[str, str]) -> str:
    docname = pages.get(chapter)
    if docname is None:
        return _cell(text)
    label = _cell(text).replace("<", "").replace(">", "").replace("`", "'")
    return f"{{doc}}`{label} </{docname}>`"


def _summary_table(rows: Sequence[Dict[str, Any]], profiles: Sequence[str], pages: Mapping[str, str],
                   docs_by_key: Mapping[Tuple[str, str, str], Mapping[str, Dict[str, Any]]]) -> List[str]:
    """One line per paper table: how many numbers, how many have a paper value, how many orderings agree."""
    groups: "OrderedDict[Tuple[str, str, str], List[Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        groups.setdefault((r["paper"], r["table"], r["chapter"]), []).append(r)
    header = ["Paper", "Table", "Numbers", "With a paper value"]
    for p in profiles:
        header += ([f"Calls ({p})"] if p in CALL_PROFILES else []) + [f"Reference vs baselines ({p})"]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["--:"] * (len(header) - 2)) + "|"]
    for (paper, table, chapter), group in groups.items():
        cells = [_cell(paper), _chapter_link(chapter, table, pages), str(len(group)),
                 str(sum(r["paper_value"] is not None for r in group))]
        for p in profiles:
            if p in CALL_PROFILES:
                calls = [r[f"call_{p}"] for r in group if r[f"call_{p}"] is not None]
                cells.append(_calls_text(calls) if calls else NO_CALL)
            doc = docs_by_key.get((paper, table, chapter), {}).get(p)
            margin = baseline_margin(doc) if doc is not None else None
            cells.append(_cell(margin) if margin else NO_CALL)
        out.append("| " + " | ".join(cells) + " |")
    return out


def render_scoreboard(results_dir: Optional[os.PathLike] = None,
                      pages: Optional[Mapping[str, str]] = None) -> str:
    """The scoreboard as MyST Markdown (no top-level heading: the including page gives it one).

    pages: chapter name -> docname (:func:`chapter_pages`); where given, each table's name links to its
    chapter.
    """
    pages = pages or {}
    docs = all_results(results_dir)
    lines = ["<!-- Generated by `restore-core book scoreboard` from book/results/*.json: do not edit by hand. -->",
             ""]
    if not docs:
        lines += ["No chapter has stored results yet, so there is nothing to compare with the papers. Run "
                  "`make book` (or `restore-core book run --profile quick`) to execute the chapters; each "
                  "reproduction chapter writes `book/results/<chapter>.<profile>.json` and this table is "
                  "regenerated from those files.", ""]
        return "\n".join(lines)

    rows = scoreboard_rows(docs)
    profiles = [p for p in PROFILE_ORDER if any(d["profile"] == p for d in docs)]
    lines += [f"{len(rows)} numbers from {_plural(len({(d['paper'], d['table']) for d in docs}), 'paper table')} "
              f"({', '.join(_summary(rows, p) for p in profiles)}). "
              f"The summary has one line per paper table, with the reference model's margin over the best "
              f"trivial baseline (a number means something only when the model beats it); in the row-by-row "
              f"table under it, **Call** compares our difference to the chapter's reference variant (marked "
              f"*ref*; paired over seeds, with a 95% Student-t interval) with the paper's: {AGREES} agrees and "
              f"{DISAGREES} disagrees in sign with the interval excluding 0, {UNRESOLVED} unresolved (the "
              f"interval contains 0: the difference is within the seed spread), {NO_CALL} no call (reference "
              f"row, no paper number, or the quick profile, a smoke run). Our runs are far smaller than the "
              f"papers' (see *Scale* below), so absolute values are not comparable; resolved orderings are what "
              f"a small run can test.", ""]
    lines += _summary_table(rows, profiles, pages, _group_documents(docs))
    lines += ["", f":::{{dropdown}} All {len(rows)} numbers, row by row", ""]
    header = ["Paper", "Table", "Variant", "Dataset", "Metric", "Paper value"]
    for p in profiles:
        header += [f"Ours ({p})", f"Call ({p})"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 5 + ["--:"] + ["--:", ":-:"] * len(profiles)) + "|")
    for r in rows:
        variant = r["variant"] + (" (*ref*)" if r["reference"] else "")
        cells = [_cell(c) for c in (r["paper"], r["table"], variant, r["dataset"], r["metric"],
                                    format_value(r["paper_value"]))]
        cells[1] = _chapter_link(r["chapter"], r["table"], pages)
        for p in profiles:
            cells += [format_value(r[f"ours_{p}"], r[f"std_{p}"]),
                      _call_mark(r[f"call_{p}"]) if r[f"ours_{p}"] is not None else ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", ":::", "", "**Scale of each reproduction** (as the chapter states it) and where it was run:", ""]
    for (paper, table, chapter), by_profile in _group_documents(docs).items():
        for p in PROFILE_ORDER:
            doc = by_profile.get(p)
            if doc is None:
                continue
            prov = doc.get("provenance", {})
            where = ", ".join(str(prov[k]) for k in ("device", "commit", "date") if prov.get(k))
            ours_on = sorted({r["dataset"] for r in doc["rows"]
                              if r.get("paper_dataset") and r["dataset"] != r["paper_dataset"]})
            scored = f"; ours scored on {', '.join(ours_on)}" if ours_on else ""
            lines.append(f"- {_cell(paper)}, {_chapter_link(chapter, table, pages)} — chapter `{chapter}`, {p} profile: "
                         f"{_cell(doc['scale'])}{scored}" + (f" ({_cell(where)})" if where else ""))
    lines.append("")
    return "\n".join(lines)


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    atomic_write_text(path, text)
    return True


def write_scoreboard(results_dir: Optional[os.PathLike] = None, path: Optional[os.PathLike] = None,
                     toc: Optional[os.PathLike] = None, srcdir: Optional[os.PathLike] = None) -> Path:
    """Render the scoreboard and write it (atomically, only when it changed); returns the file's path.

    toc, srcdir: where to find the chapters to link (default: the repository's _toc.yml and root).
    """
    target = Path(path) if path is not None else GENERATED_PATH
    _write_if_changed(target, render_scoreboard(results_dir, chapter_pages(toc, srcdir)))
    return target
