"""The generated "what the study shows" text: every number read from the result, the calls and the learning
verdict as the harness computes them."""
import dataclasses

import pytest

from restore_core.book.ablation import AblationResult, Variant
from restore_core.book.findings import describe_stored_study, study_findings

PAPER = {"full": 33.5, "A": 33.0, "B": 33.6}
PSNR = {"full": (30.0, 30.2, 30.4), "A": (29.5, 29.7, 29.9), "B": (30.1, 30.0, 30.6)}
DOC = {"provenance": {"commit": "0123456789abcdef", "date": "2026-12-02T10:00:00+00:00", "threads": 2},
       "extra": {"minutes": 12.5}}


@pytest.fixture()
def study():
    runs = [{"variant": v, "seed": s, "params": 100, "seconds": 1.0, "PSNR": x}
            for v, xs in PSNR.items() for s, x in enumerate(xs)]
    return AblationResult([Variant(v, paper={"PSNR": p}) for v, p in PAPER.items()], ["PSNR"], runs,
                          "embedded-heldout", "Set5", "full", "cpu", "cfg", "arch", "tiny", 800,
                          baselines={"bicubic": {"PSNR": 29.0}})


def test_a_study_that_learned(study):
    md = study_findings(study, DOC)
    assert md.startswith("*Generated from the stored cpu result (commit 0123456789ab, 2026-12-02): 3 variants x 3 "
                         "paired seeds [0, 1, 2], 800 steps each, scored on embedded-heldout, 12.5 min on 2 CPU "
                         "threads.*")
    assert ("**The reference model learns**: full scores 30.20 dB PSNR (seeds 30.00 / 30.20 / 30.40), +1.20 dB "
            "over bicubic (29.00 dB; target +0.5 dB over bicubic: met).") in md
    # A: every seed 0.5 dB lower (interval of zero width, excludes 0, paper -0.5: agrees); B: differences +0.1,
    # -0.2, +0.2: mean +0.033, t(2) = 4.303 x sd 0.208 / sqrt 3 = 0.517: [-0.48, +0.55], unresolved
    assert "**1 of 2 of the paper's differences resolved at this scale** (1 agree, 0 disagree)" in md
    assert "A PSNR -0.50 [-0.50, -0.50] dB (paper -0.50): agrees" in md
    assert "B PSNR +0.03 [-0.48, +0.55] dB (paper +0.10): unresolved" in md
    assert "**Direction of the means**: 2 of 2 point the paper's way, 0 the other way." in md
    assert "**Seed spread**: the PSNR standard deviation over seeds is 0.20 to 0.32 dB (B); the paper's " \
           "differences are 0.10 to 0.50 dB." in md


def test_a_study_below_its_target_makes_no_calls(study):
    md = study_findings(dataclasses.replace(study, baselines={"bicubic": {"PSNR": 30.0}}), DOC)
    assert "**The reference model has not learned its task**" in md and "+0.20 dB over bicubic" in md
    assert "target +0.5 dB over bicubic: missed" in md
    assert "**No calls** (the reference has not met its learning target)" in md
    assert "resolved at this scale" not in md and "A PSNR -0.50 [-0.50, -0.50] dB (paper -0.50): no call" in md


def test_rows_without_paper_numbers_get_no_call(study):
    blind = dataclasses.replace(study, variants=[Variant(v) for v in PAPER])
    md = study_findings(blind, DOC)
    assert "the paper's numbers are not recorded here, so no calls" in md
    assert "1 of 2 differences have an interval that excludes 0: A PSNR -0.50 [-0.50, -0.50] dB" in md
    assert "Direction of the means" not in md


def test_stored_round_trip(study, tmp_path):
    assert describe_stored_study("ablation_probe", "cpu", tmp_path) is None
    study.save("ablation_probe", paper="P", table="T", scale="s", out_dir=tmp_path)
    md = describe_stored_study("ablation_probe", "cpu", tmp_path)
    assert "**1 of 2 of the paper's differences resolved at this scale**" in md
    assert "A PSNR -0.50 [-0.50, -0.50] dB (paper -0.50): agrees" in md
