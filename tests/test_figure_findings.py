"""The figure chapters' generated findings (restore_core.book.figure_findings): every number in the text comes
from the stored document, the comparisons follow the numbers, and the chapters use the generator instead of
hand-typed numbers."""
import json
import re
from pathlib import Path

import nbformat
import pytest

from restore_core.book.figure_findings import (channel_redundancy_findings, describe_stored_figure, erf_findings,
                                               format_stored_rows)
from restore_core.book.results import paired_interval

ROOT = Path(__file__).resolve().parents[1]
DS = "embedded test x2 LR, 120 px"


def _erf_doc(mambair_far=(1e-4, 0.02), cnn_far=(0.0, 0.0), four_dir_far=0.03, cnn_psnr=32.9, cu_psnr=26.2):
    rows = []

    def add(variant, metric, value, dataset=DS):
        rows.append({"variant": variant, "dataset": dataset, "metric": metric, "paper": None, "ours": value})

    for name, far, a90 in (("MambaIR 1 dir", mambair_far, (0.004, 0.0023)),
                           ("MambaIR 4 dir", (mambair_far[0], four_dir_far), (0.0039, 0.0025)),
                           ("EDSR-like CNN", cnn_far, (0.0034, 0.0016)),
                           ("CU-Mamba", (None, 0.083), (None, 0.029))):
        for state, i in (("init", 0), ("trained", 1)):
            add(f"{name} ({state})", "ERF area ratio @90% (interpolated)", a90[i])
            add(f"{name} ({state})", "ERF mass outside 23x23", far[i])
    for name, value in (("MambaIR 1 dir", 32.8), ("MambaIR 4 dir", 32.7), ("EDSR-like CNN", cnn_psnr)):
        add(f"{name} (trained)", "PSNR", value, "embedded test (x2 bicubic LR 96 px, Y, border 2)")
    add("CU-Mamba (trained)", "PSNR", cu_psnr, "embedded test (motion blur 9 px / 30 deg, RGB)")
    return {"chapter": "erf", "profile": "cpu", "rows": rows,
            "provenance": {"commit": "0123456789abcdef", "date": "2026-12-02T10:00:00+00:00",
                           "device": "cpu (2 threads, x86_64)"},
            "extra": {"steps": {"sr": 800, "deblur": 1000},
                      "test_psnr_baselines": {"bicubic": 31.66, "blurred input": 25.06}}}


def test_erf_findings_numbers_and_directions():
    md = erf_findings(_erf_doc())
    assert "commit 0123456789ab" in md and "SR models trained 800 steps" in md
    assert "**Here the models have learned**" in md
    assert "MambaIR 1 dir +1.14" in md and "EDSR-like CNN +1.24" in md  # 32.8 - 31.66, 32.9 - 31.66
    assert "CU-Mamba +1.14 dB over its blurred input (25.06 dB)" in md
    assert "MambaIR 1 dir 0.01% -> 2%" in md and "(200 to 300 times)" in md
    assert "EDSR-like CNN 0% -> 0% (exactly zero" in md
    assert "3 of 3 shrink" in md and "MambaIR 1 dir 0.23%" in md
    assert "1.4 to 1.6 times the CNN's" in md  # 0.0023/0.0016, 0.0025/0.0016
    assert "every trained MambaIR reaches further than the CNN" in md
    assert "more scan orders reach further than one (1.5x" in md  # 0.03 / 0.02
    assert "no call is made" in md
    assert "CU-Mamba's residual (no map at initialisation" in md and "2.9% of the input" in md


def test_erf_findings_follow_the_numbers_when_they_turn():
    md = erf_findings(_erf_doc(mambair_far=(0.03, 0.02), four_dir_far=0.01, cnn_psnr=31.0))
    assert "**Not every model has learned**" in md and "EDSR-like CNN -0.66" in md
    assert "does not consistently move MambaIR's gradient mass outwards" in md
    assert "more scan orders do not consistently reach further than one" in md


def _channel_doc(rank_seeds, per_seed=True):
    seeds = [0, 1, 2]
    rows = []
    for name, trained in rank_seeds.items():
        for state, vals in (("init", [4.7, 4.6, 4.8]), ("trained", trained)):
            row = {"variant": f"{name} ({state})", "dataset": "crops",
                   "metric": "within-image covariance effective rank (4 SS2D layers, 3 seeds)", "paper": None,
                   "ours": sum(vals) / 3}
            if per_seed:
                row.update(seeds=vals, seed_ids=seeds)
            rows.append(row)
        rows.append({"variant": f"{name} (trained)", "dataset": "embedded test x2 (8 images, Y, border 2)",
                     "metric": "PSNR", "paper": None, "ours": 32.8, "ours_std": 0.02, "seeds": [32.78, 32.8, 32.82],
                     "seed_ids": seeds})
    return {"chapter": "channel_redundancy", "profile": "cpu", "rows": rows,
            "provenance": {"commit": "abc", "date": "2026-12-02"},
            "extra": {"seeds": seeds, "steps": 800, "layers": ["a", "b", "c", "d"], "test_psnr_bicubic": 31.66}}


def test_channel_findings_pair_the_seeds():
    doc = _channel_doc({"with CA": [3.3, 3.2, 3.1], "no CAB": [3.2, 3.0, 2.8], "conv, no CA": [3.31, 3.19, 3.12]})
    md = channel_redundancy_findings(doc)
    assert "+1.12 to +1.16 dB over bicubic" in md and "**The models have learned**" in md
    assert "more redundant, not less" in md and "lower in 3 of 3 variants" in md
    assert "least redundant outputs are conv, no CA's" in md
    mean, ci = paired_interval([-0.1, -0.2, -0.3])
    assert f"no CAB {mean:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] (unresolved)" in md  # t(2) interval spans 0
    mean, ci = paired_interval([0.01, -0.01, 0.02])
    assert f"conv, no CA {mean:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] (unresolved)" in md
    # a consistent difference over the seeds is resolved
    doc = _channel_doc({"with CA": [3.3, 3.2, 3.1], "no CAB": [2.8, 2.71, 2.59]})
    assert re.search(r"no CAB -0\.50 \[-0\.\d\d, -0\.\d\d\] \(resolved\)", channel_redundancy_findings(doc))


def test_channel_findings_without_per_seed_values_make_no_comparison():
    doc = _channel_doc({"with CA": [3.3, 3.2, 3.1], "no CAB": [3.2, 3.0, 2.8]}, per_seed=False)
    md = channel_redundancy_findings(doc)
    assert "per-seed ranks are not stored" in md and "Paired differences" not in md


def test_stored_documents_and_the_chapters_use_the_generator():
    for chapter, number, nb in (("erf", "07", "07_erf"), ("channel_redundancy", "08", "08_channel_redundancy")):
        doc = json.loads((ROOT / "book" / "results" / f"{chapter}.quick.json").read_text())
        md = describe_stored_figure(chapter, "quick", out_dir=ROOT / "book" / "results")
        assert md is not None and str(doc["provenance"]["commit"])[:12] in md
        text = nbformat.read(ROOT / "book" / f"{nb}.ipynb", as_version=4)
        sources = [c.source for c in text.cells]
        i = next(k for k, s in enumerate(sources) if s.startswith("### What the cpu run shows"))
        assert f'describe_stored_figure("{chapter}", "cpu")' in sources[i + 1]
        assert not re.search(r"\d\.\d", sources[i]), "the cpu findings must be generated, not typed"
        assert "def show_stored" not in "".join(sources)
    assert describe_stored_figure("erf", "cpu", out_dir=ROOT / "tests") is None
    with pytest.raises(ValueError, match="no findings"):
        describe_stored_figure("ablation_rnan")


def test_format_stored_rows():
    doc = _erf_doc()
    text = format_stored_rows(doc, "erf", "cpu", labels=lambda m: m.replace("ERF ", ""))
    lines = text.splitlines()
    assert lines[1].startswith("run at commit 0123456789abcdef")
    assert "mass outside 23x" in lines[2]  # headings cut to the column width
    cu = next(ln for ln in lines if ln.startswith("CU-Mamba (init)"))
    assert cu.split()[2:] == ["-", "-", "-"]  # no map at initialisation, no PSNR
    numbered = format_stored_rows(doc, "erf", "cpu")
    assert "columns: [0] ERF area ratio @90% (interpolated); [1] ERF mass outside 23x23; [2] PSNR" in numbered
    assert "not yet run" in format_stored_rows(None, "erf", "full")
