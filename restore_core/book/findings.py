"""What a stored ablation study shows, in words generated from its numbers.

A chapter's "What the cpu study shows" section is :func:`study_findings` of the stored result, so the prose can
never drift from the file: re-running the study rewrites both. Every sentence is computed: whether the reference
model met its task's learning target (:mod:`restore_core.book.learning_targets`), each variant's paired
difference to the reference with its 95% interval and the call (:func:`restore_core.book.results.annotate_calls`),
which way the means point against the paper's differences, and how the seed spread compares with the paper's
effects. Interpretation that is not a number (why a switch might behave so at this scale) stays in the chapter.

    md = describe_stored_study("ablation_cu_mamba", "cpu")   # None when the file is absent
    display(Markdown(md))
"""
from __future__ import annotations

import statistics
from typing import Any, Dict, List, Mapping, Optional

from .ablation import AblationResult, result_from_document
from .learning_targets import learning_target
from .results import load_results

_UNITS = {"PSNR": " dB"}


def _unit(metric: str) -> str:
    return _UNITS.get(metric.upper(), "")


def _digits(metric: str) -> int:
    return 2 if metric.upper() in ("PSNR", "SD", "SF", "EN", "MI") else 3


def _num(x: float, metric: str, signed: bool = False) -> str:
    d = _digits(metric)
    return f"{x:+.{d}f}" if signed else f"{x:.{d}f}"


def _interval(ci: Optional[List[float]], metric: str) -> str:
    return "(one seed)" if not ci else f"[{_num(ci[0], metric, True)}, {_num(ci[1], metric, True)}]"


def _header(result: AblationResult, doc: Mapping[str, Any]) -> str:
    prov = doc.get("provenance", {})
    seeds = result.seeds(result.reference)
    minutes = doc.get("extra", {}).get("minutes")
    took = f", {minutes:.1f} min" if isinstance(minutes, (int, float)) else ""
    threads = prov.get("threads")
    where = f" on {threads} CPU threads" if threads else (f" on {prov['device']}" if prov.get("device") else "")
    par = result.parallel
    if par.get("workers", 1) > 1:
        where += f", {par['workers']} runs side by side with {par['threads_per_run']} thread(s) each"
    return (f"*Generated from the stored {result.profile} result (commit {str(prov.get('commit', '?'))[:12]}, "
            f"{str(prov.get('date', ''))[:10]}): {len(result.variants)} variants x {len(seeds)} paired seeds "
            f"{seeds}, {result.steps} steps each, scored on {result.dataset}{took}{where}.*")


def _learning(result: AblationResult) -> str:
    ref, m0 = result.reference, result.metrics[0]
    target = learning_target(result.baselines)
    if target is None:
        return f"* No trivial baselines are stored with this result, so whether {ref} learned is not checked."
    verdict = {True: "**The reference model learns**", False: "**The reference model has not learned its task**",
               None: "**Learning not checked**"}[result.learned]
    margins = result.margins()
    if target.min_metrics > 1:
        gate = target.gate[0]
        parts = [f"{m} {_num(margins[m][gate], m, True)}" for m in result.metrics if gate in margins.get(m, {})]
        wins = sum(margins[m][gate] > 0 for m in result.metrics if gate in margins.get(m, {}))
        text = (f"{verdict}: {ref} minus {gate} fusion per metric: {', '.join(parts)}; above it on {wins} of "
                f"{len(parts)} (target: {target.describe()}: {'met' if result.learned else 'missed'}).")
    else:
        vals = result.values(ref, m0)
        best = max(target.gate, key=lambda b: float(result.baselines[b][m0]))
        text = (f"{verdict}: {ref} scores {_num(statistics.fmean(vals), m0)}{_unit(m0)} {m0} (seeds "
                f"{' / '.join(_num(v, m0) for v in vals)}), {_num(margins[m0][best], m0, True)}{_unit(m0)} over "
                f"{best} ({_num(float(result.baselines[best][m0]), m0)}{_unit(m0)}; target "
                f"{target.describe()}: {'met' if result.learned else 'missed'}).")
    others = [b for b in result.baselines if b not in target.gate and m0 in result.baselines[b]]
    if others:
        text += " Also shown: " + "; ".join(
            f"{b} {_num(float(result.baselines[b][m0]), m0)}{_unit(m0)} (reference "
            f"{_num(margins[m0][b], m0, True)} over it)" for b in others) + "."
    return "* " + text


def _calls(result: AblationResult) -> List[str]:
    rows = [r for r in result.rows() if r["variant"] != result.reference]
    with_paper = [r for r in rows if r["paper_delta"] is not None]
    out = []
    if with_paper:
        calls = [r["call"] for r in with_paper]
        resolved = [c for c in calls if c in ("agrees", "disagrees")]
        head = (f"**{len(resolved)} of {len(with_paper)} of the paper's differences resolved at this scale**"
                + (f" ({calls.count('agrees')} agree, {calls.count('disagrees')} disagree)" if resolved else "")
                if result.makes_calls else "**No calls** (the reference has not met its learning target)")
        items = [f"{r['variant']} {r['metric']} {_num(r['ours_delta'], r['metric'], True)} "
                 f"{_interval(r['ours_delta_ci95'], r['metric'])}{_unit(r['metric'])} (paper "
                 f"{_num(r['paper_delta'], r['metric'], True)}): {r['call'] or 'no call'}" for r in with_paper]
        out.append(f"* {head}. Differences to {result.reference}, mean [95% interval] over the paired seeds: "
                   + "; ".join(items) + ".")
        same = sum((r["ours_delta"] > 0) == (r["paper_delta"] > 0) for r in with_paper
                   if r["ours_delta"] and r["paper_delta"])
        unresolved = sum(c == "unresolved" for c in calls)
        tail = (" An unresolved row's mean is within the seed spread: its sign is not evidence either way."
                if unresolved else "")
        out.append(f"* **Direction of the means**: {same} of {len(with_paper)} point the paper's way, "
                   f"{len(with_paper) - same} the other way.{tail}")
    no_paper = [r for r in rows if r["paper_delta"] is None and r["ours_delta"] is not None]
    if no_paper:
        clear = [r for r in no_paper if r["ours_delta_ci95"] and (r["ours_delta_ci95"][0] > 0
                                                                   or r["ours_delta_ci95"][1] < 0)]
        what = ("the paper's numbers are not recorded here, so no calls" if not with_paper else
                "rows without a paper number get no call")
        if clear:
            listed = "; ".join(f"{r['variant']} {r['metric']} {_num(r['ours_delta'], r['metric'], True)} "
                               f"{_interval(r['ours_delta_ci95'], r['metric'])}{_unit(r['metric'])}" for r in clear)
            out.append(f"* Without a paper number ({what}): {len(clear)} of {len(no_paper)} differences have an "
                       f"interval that excludes 0: {listed}.")
        else:
            m0 = no_paper[0]["metric"]
            first = [r for r in no_paper if r["metric"] == m0]
            listed = "; ".join(f"{r['variant']} {_num(r['ours_delta'], m0, True)} "
                               f"{_interval(r['ours_delta_ci95'], m0)}{_unit(m0)}" for r in first)
            out.append(f"* Without a paper number ({what}): none of the {len(no_paper)} differences "
                       f"({len(result.metrics)} metrics) has an interval that excludes 0. {m0}: {listed}.")
    return out


def _spread(result: AblationResult) -> str:
    m0 = result.metrics[0]
    stds = {s["variant"]: s[f"{m0}_std"] for s in result.summary() if s[f"{m0}_std"] is not None}
    if not stds:
        return ""
    worst = max(stds, key=stds.get)
    paper = [abs(r["paper_delta"]) for r in result.rows() if r["metric"] == m0 and r["paper_delta"]]
    versus = (f"; the paper's differences are {_num(min(paper), m0)} to {_num(max(paper), m0)}{_unit(m0)}"
              if paper else "")
    return (f"* **Seed spread**: the {m0} standard deviation over seeds is {_num(min(stds.values()), m0)} to "
            f"{_num(stds[worst], m0)}{_unit(m0)} ({worst}){versus}.")


def study_findings(result: AblationResult, doc: Mapping[str, Any]) -> str:
    """Markdown: what the stored study ``doc`` (its :class:`AblationResult` ``result``) shows, every number read
    from it."""
    lines = [_header(result, doc), "", _learning(result), *_calls(result)]
    spread = _spread(result)
    if spread:
        lines.append(spread)
    return "\n".join(lines) + "\n"


def describe_stored_study(chapter: str, profile: str = "cpu", out_dir: Any = None) -> Optional[str]:
    """:func:`study_findings` of ``book/results/<chapter>.<profile>.json``; None when no such result is stored."""
    doc = load_results(chapter, profile, out_dir)
    if doc is None:
        return None
    return study_findings(result_from_document(doc), doc)


__all__ = ["describe_stored_study", "study_findings"]
