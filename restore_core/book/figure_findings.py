"""What the stored ERF and channel-redundancy results show, in words generated from their numbers.

The companions of :mod:`restore_core.book.findings` for the two figure chapters (07, MambaIR Fig. 1; 08,
MambaIR Fig. 3b): their "What the cpu run shows" sections are :func:`describe_stored_figure` of the stored
result, so a re-run rewrites the numbers and the prose can never drift from the file. Every number and every
comparison below is read from the document; only the chapter keeps interpretation that is not a number.

    md = describe_stored_figure("erf", "cpu")   # None when book/results/erf.cpu.json is absent
    display(Markdown(md))

:func:`format_stored_rows` prints any stored document as a variant x metric table (the chapters' "stored
results" cells).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .results import load_results, paired_interval

_FAR = "ERF mass outside 23x23"
_A90 = "ERF area ratio @90% (interpolated)"
_RANK = "within-image covariance effective rank (4 SS2D layers, 3 seeds)"
_RMS5 = "inactive channel share by RMS, tau 5% (4 layers, 3 seeds)"
_GAP_RANK = "ReLU-GAP effective rank, last SS2D (3 seeds)"
_GAP1 = "ReLU-GAP inactive share 1%, last SS2D (3 seeds)"


class _Rows:
    """``(variant, metric) -> row`` lookup over a stored document's rows."""

    def __init__(self, doc: Mapping[str, Any]):
        self.doc = doc
        self.rows = {(r["variant"], r["metric"]): r for r in doc.get("rows", [])}
        self.variants = list(dict.fromkeys(r["variant"] for r in doc.get("rows", [])))

    def value(self, variant: str, metric: str) -> Optional[float]:
        row = self.rows.get((variant, metric))
        return None if row is None or row.get("ours") is None else float(row["ours"])

    def models(self, suffix: str = " (trained)") -> List[str]:
        """Model names (without the state suffix) in stored order."""
        return [v[: -len(suffix)] for v in self.variants if v.endswith(suffix)]


def _header(doc: Mapping[str, Any], what: str) -> str:
    prov = doc.get("provenance", {})
    threads = prov.get("threads")
    where = f" on {prov['device']}" if prov.get("device") else (f" on {threads} CPU threads" if threads else "")
    return (f"*Generated from the stored {doc.get('profile', '?')} result (commit "
            f"{str(prov.get('commit', '?'))[:12]}, {str(prov.get('date', ''))[:10]}{where}): {what}.*")


def _pct(x: float) -> str:
    """A share as a percentage with three significant digits (0.0197 -> "1.97%", 8.81e-05 -> "0.00881%")."""
    return "0%" if x == 0 else f"{x * 100:.3g}%"


def _span(values: Sequence[float], fmt) -> str:
    """"lo to hi" in ``fmt`` (one value when both print the same)."""
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)} to {fmt(hi)}"


# ---------------------------------------------------------------- chapter 07: effective receptive field
def _erf_learning(r: _Rows, baselines: Mapping[str, float]) -> str:
    bicubic, blurred = baselines.get("bicubic"), baselines.get("blurred input")
    sr, deblur = [], []
    for name in r.models():
        psnr = r.value(f"{name} (trained)", "PSNR")
        if psnr is None:
            continue
        deblurring = "blur" in r.rows[(f"{name} (trained)", "PSNR")].get("dataset", "")
        base = blurred if deblurring else bicubic
        if base is not None:
            (deblur if deblurring else sr).append((name, psnr - base))
    if not sr and not deblur:
        return "* No test PSNR is stored with these maps, so whether the models learned is not checked."
    learned = all(m > 0 for _, m in sr + deblur)
    verdict = ("**Here the models have learned**" if learned else
               "**Not every model has learned**: the maps of those below their baseline describe networks that "
               "do not restore yet")
    parts = []
    if sr:
        parts.append(f"the x2 SR networks' PSNR-Y over bicubic ({bicubic:.2f} dB): "
                     + ", ".join(f"{n} {m:+.2f}" for n, m in sr) + " dB")
    if deblur:
        parts.append(", ".join(f"{n} {m:+.2f} dB" for n, m in deblur)
                     + f" over its blurred input ({blurred:.2f} dB)")
    return f"* {verdict}: " + "; ".join(parts) + "."


def erf_findings(doc: Mapping[str, Any]) -> str:
    """Markdown: what a stored ``erf`` result shows (chapter 07), every number read from ``doc``."""
    r = _Rows(doc)
    extra = doc.get("extra", {})
    steps = extra.get("steps", {})
    dataset = next((row["dataset"] for row in doc.get("rows", []) if row["metric"] == _FAR), "?")
    what = (f"{len(r.models())} trained models, one seed each, maps over {dataset}"
            + (f"; SR models trained {steps['sr']} steps" if "sr" in steps else "")
            + (f", the deblurring model {steps['deblur']}" if "deblur" in steps else ""))
    lines = [_header(doc, what), ""]
    lines.append(_erf_learning(r, extra.get("test_psnr_baselines", {})))

    mambair = [m for m in r.models() if m.startswith("MambaIR") and r.value(f"{m} (init)", _FAR) is not None]
    far = {m: (r.value(f"{m} (init)", _FAR), r.value(f"{m} (trained)", _FAR)) for m in r.models()
           if r.value(f"{m} (init)", _FAR) is not None and r.value(f"{m} (trained)", _FAR) is not None}
    if mambair:
        growth = [far[m][1] / far[m][0] for m in mambair if far[m][0] > 0]
        moves = ("moves MambaIR's gradient mass outwards" if all(far[m][1] > far[m][0] for m in mambair) else
                 "does not consistently move MambaIR's gradient mass outwards")
        text = (f"* **Training {moves}.** Its share beyond the CNN's 23x23 field, at initialisation and after "
                f"training: " + "; ".join(f"{m} {_pct(far[m][0])} -> {_pct(far[m][1])}" for m in mambair))
        if growth:
            text += f" ({_span(growth, lambda g: f'{g:.0f}')} times)"
        others = [m for m in far if m not in mambair]
        if others:
            text += ". The other networks: " + "; ".join(
                f"{m} {_pct(far[m][0])} -> {_pct(far[m][1])}" + (" (exactly zero, as its support requires)"
                                                                  if far[m] == (0.0, 0.0) else "")
                for m in others)
        lines.append(text + ".")

    a90 = {m: (r.value(f"{m} (init)", _A90), r.value(f"{m} (trained)", _A90)) for m in r.models()}
    both = {m: v for m, v in a90.items() if v[0] is not None and v[1] is not None}
    if both:
        shrink = sum(v[1] < v[0] for v in both.values())
        cnn = next((m for m in both if "CNN" in m), None)
        text = (f"* **90% areas after training** (share of the input holding 90% of the gradient mass; "
                f"{shrink} of {len(both)} shrink from initialisation): "
                + "; ".join(f"{m} {_pct(v[1])}" for m, v in both.items()))
        if cnn is not None and mambair and both[cnn][1] > 0:
            ratios = [both[m][1] / both[cnn][1] for m in mambair if m in both]
            text += (f". By this measure MambaIR's ERF is {_span(ratios, lambda x: f'{x:.1f}')} times the "
                     f"CNN's")
        lines.append(text + ".")

    if mambair and len(mambair) > 1:
        cnn = next((m for m in far if "CNN" in m), None)
        wider = cnn is not None and all(far[m][1] > far[cnn][1] for m in mambair)
        one = next((m for m in mambair if m.startswith("MambaIR 1")), mambair[0])
        more = [m for m in mambair if m != one]
        grows = all(far[m][1] > far[one][1] for m in more)
        said = []
        said.append("every trained MambaIR reaches further than the CNN (mass beyond 23x23)" if wider else
                    "not every trained MambaIR reaches further than the CNN")
        said.append(f"more scan orders reach further than one ({', '.join(f'{far[m][1] / far[one][1]:.1f}x' for m in more)} "
                    f"{one}'s far mass)" if grows and far[one][1] > 0 else
                    "more scan orders do not consistently reach further than one")
        lines.append(f"* **Against MambaIR's figure**: {'; '.join(said)}. Each map is one seed's, so no spread is "
                     f"stated and no call is made; the scale (tiny models, these steps, {dataset}) is not the "
                     f"paper's.")

    cu = next((m for m in r.models() if m.startswith("CU-Mamba")), None)
    if cu is not None and r.value(f"{cu} (trained)", _A90) is not None:
        init_empty = r.value(f"{cu} (init)", _A90) is None
        lines.append(f"* {cu}'s residual"
                     + (" (no map at initialisation: its gradient is exactly zero there)" if init_empty else "")
                     + f": 90% of its gradient mass lies in {_pct(r.value(f'{cu} (trained)', _A90))} of the "
                     f"input and {_pct(r.value(f'{cu} (trained)', _FAR))} of it beyond 23x23.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- chapter 08: channel redundancy
def _rank_comparison(r: _Rows, models: List[str], ranks: Mapping[str, Tuple[float, float]]) -> str:
    """The trained variants' effective ranks against the first (the full block), paired over seeds when the
    per-seed values are stored."""
    order = sorted(ranks, key=lambda m: ranks[m][1], reverse=True)
    text = (f"* **After training, the least redundant outputs are {order[0]}'s** (seed means: "
            + " > ".join(f"{m} {ranks[m][1]:.2f}" for m in order) + ")")
    ref = models[0]
    per_seed = {m: r.rows[(f"{m} (trained)", _RANK)] for m in ranks}
    if not all(row.get("seeds") and row.get("seed_ids") == per_seed[ref].get("seed_ids") for row in per_seed.values()):
        return text + (". The per-seed ranks are not stored in this result, so no interval is given and no "
                       "difference is called: a direction, not a resolved difference.")
    ranges = "; ".join(f"{m} {_span(row['seeds'], lambda x: f'{x:.2f}')}" for m, row in per_seed.items())
    parts = []
    for m in ranks:
        if m == ref:
            continue
        diffs = [a - b for a, b in zip(per_seed[m]["seeds"], per_seed[ref]["seeds"])]
        mean, ci = paired_interval(diffs)
        resolved = ci is not None and (ci[0] > 0 or ci[1] < 0)
        parts.append(f"{m} {mean:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else " (one seed)")
                     + (" (resolved)" if resolved else " (unresolved)"))
    return (text + f". Per-seed ranges: {ranges}. Paired differences to {ref}, mean [95% interval] over seeds "
            f"{per_seed[ref]['seed_ids']}: " + "; ".join(parts) + ".")


def channel_redundancy_findings(doc: Mapping[str, Any]) -> str:
    """Markdown: what a stored ``channel_redundancy`` result shows (chapter 08), every number read from ``doc``."""
    r = _Rows(doc)
    extra = doc.get("extra", {})
    seeds, steps = extra.get("seeds", []), extra.get("steps")
    models = r.models()
    what = (f"{len(models)} variants x {len(seeds)} seeds {seeds}"
            + (f", {steps} training steps each" if steps else "")
            + "; channel statistics are seed means over the stored layers")
    lines = [_header(doc, what), ""]

    bicubic = extra.get("test_psnr_bicubic")
    psnr_rows = [r.rows[(f"{m} (trained)", "PSNR")] for m in models if (f"{m} (trained)", "PSNR") in r.rows]
    if bicubic is not None and psnr_rows:
        margins = [v - bicubic for row in psnr_rows for v in (row.get("seeds") or [row["ours"]])]
        learned = all(m > 0 for m in margins)
        head = "**The models have learned**" if learned else "**Not every model has learned**"
        per = "; ".join(f"{row['variant'].replace(' (trained)', '')} {row['ours']:.2f}"
                        + (f" (std {row['ours_std']:.2f})" if row.get("ours_std") is not None else "")
                        for row in psnr_rows)
        lines.append(f"* {head}: the variants' seeds are {_span(margins, lambda x: f'{x:+.2f}')} dB over "
                     f"bicubic ({bicubic:.2f} dB Y) on {psnr_rows[0]['dataset']}; seed means: {per} dB.")

    ranks = {m: (r.value(f"{m} (init)", _RANK), r.value(f"{m} (trained)", _RANK)) for m in models}
    ranks = {m: v for m, v in ranks.items() if None not in v}
    if ranks:
        falls = sum(v[1] < v[0] for v in ranks.values())
        way = ("more redundant, not less" if falls == len(ranks) else
               "less redundant" if falls == 0 else "more redundant in some variants and less in others")
        lines.append(f"* **Training makes the SS2D outputs {way}**: the within-image effective rank of the channel "
                     f"covariance (mean over {len(extra.get('layers', [])) or 'the'} layers and the seeds) goes "
                     + "; ".join(f"{m} {v[0]:.2f} -> {v[1]:.2f}" for m, v in ranks.items())
                     + f" (lower in {falls} of {len(ranks)} variants).")
        lines.append(_rank_comparison(r, models, ranks))
    rms = {m: r.value(f"{m} (trained)", _RMS5) for m in models}
    gap1 = {m: (r.value(f"{m} (init)", _GAP1), r.value(f"{m} (trained)", _GAP1)) for m in models}
    if any(v is not None for v in rms.values()) or any(None not in v for v in gap1.values()):
        text = "* **Inactive channels**"
        if any(v is not None for v in rms.values()):
            text += (": by RMS, the share below 5% of the strongest channel after training is "
                     + "; ".join(f"{m} {_pct(v)}" for m, v in rms.items() if v is not None))
        known = {m: v for m, v in gap1.items() if None not in v}
        if known:
            text += ("; by our ReLU-GAP reading of Fig. 3b, the share below 1% in the last SS2D goes "
                     + "; ".join(f"{m} {_pct(v[0])} -> {_pct(v[1])}" for m, v in known.items()))
        lines.append(text + ".")
    return "\n".join(lines) + "\n"


_FINDINGS = {"erf": erf_findings, "channel_redundancy": channel_redundancy_findings}


def describe_stored_figure(chapter: str, profile: str = "cpu", out_dir: Any = None) -> Optional[str]:
    """The findings of ``book/results/<chapter>.<profile>.json`` (``chapter``: "erf" or "channel_redundancy");
    None when no such result is stored."""
    if chapter not in _FINDINGS:
        raise ValueError(f"no findings for chapter {chapter!r}; known: {', '.join(_FINDINGS)}")
    doc = load_results(chapter, profile, out_dir)
    return None if doc is None else _FINDINGS[chapter](doc)


def format_stored_rows(doc: Optional[Mapping[str, Any]], chapter: str, profile: str,
                       labels: Optional[Callable[[str], str]] = None, width: int = 16) -> str:
    """A stored results document as text: its scale, provenance and a variant x metric table. ``labels(metric)``
    gives a short column heading (cut to ``width``); without it the columns are numbered and listed above the
    table. ``doc`` None gives the line that says how to produce it."""
    if doc is None:
        return (f"{profile} profile: not yet run (book/results/{chapter}.{profile}.json is absent; "
                f"`restore-core book run --profile {profile}` writes it)")
    prov = doc.get("provenance", {})
    out = [f"{profile} profile: {doc.get('scale', '')}",
           f"run at commit {prov.get('commit', '?')} on {prov.get('device', '?')}, {str(prov.get('date', ''))[:10]}"]
    variants = list(dict.fromkeys(r["variant"] for r in doc["rows"]))
    metrics = list(dict.fromkeys(r["metric"] for r in doc["rows"]))
    cell: Dict[Tuple[str, str], Any] = {(r["variant"], r["metric"]): r["ours"] for r in doc["rows"]}
    if labels is None:
        out.append("columns: " + "; ".join(f"[{i}] {m}" for i, m in enumerate(metrics)))
        heads = [f"[{i}]" for i in range(len(metrics))]
        width = max(8, max(len(h) for h in heads))
    else:
        heads = [labels(m)[:width] for m in metrics]
    name_w = max(len(v) for v in variants)
    out.append(f"{'':{name_w}s} " + " ".join(f"{h:>{width}s}" for h in heads))
    for v in variants:
        vals = [cell.get((v, m)) for m in metrics]
        out.append(f"{v:{name_w}s} " + " ".join(f"{'-' if x is None else format(x, '.4g'):>{width}s}" for x in vals))
    return "\n".join(out)


__all__ = ["channel_redundancy_findings", "describe_stored_figure", "erf_findings", "format_stored_rows"]
