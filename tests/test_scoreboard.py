"""The landing page's scoreboard, generated from results JSON files (temporary ones here)."""
from __future__ import annotations

import os

import pytest

from restore_core.book.results import save_results
from restore_core.book.scoreboard import (chapter_pages, format_value, render_scoreboard, scoreboard_rows,
                                          write_scoreboard)
from restore_core.book.results import all_results


def _row(variant, paper, ours, dataset="Set5", metric="PSNR", std=None, seeds=None):
    return {"variant": variant, "dataset": dataset, "metric": metric, "paper": paper,
            "ours": ours if seeds is None else sum(seeds) / len(seeds), "ours_std": std, "seeds": seeds,
            "seed_ids": None if seeds is None else list(range(len(seeds)))}


@pytest.fixture
def results(tmp_path):
    """MambaIR's scan ablation in three profiles: quick (a smoke run: no calls), cpu (three paired seeds: "one"
    resolved and agreeing, "two" unresolved), full (three seeds: "one" disagrees, "two" agrees), with a bicubic
    baseline; and an RNAN table without a reference variant."""
    d = tmp_path / "results"
    paper = {"four": 38.57, "one": 38.53, "two": 38.56}
    save_results("ablation_scan", "quick", paper="MambaIR", table="Table 3: scan directions",
                 scale="DIV2K 16 images | 200 iterations", reference_variant="four", out_dir=d,
                 rows=[_row("four", paper["four"], 30.0), _row("one", paper["one"], 29.5, std=0.01234),
                       _row("two", paper["two"], 29.9)])
    save_results("ablation_scan", "cpu", paper="MambaIR", table="Table 3: scan directions",
                 scale="embedded, 1200 iterations, 3 seeds", reference_variant="four", out_dir=d,
                 baselines={"bicubic": {"PSNR": 29.0}},
                 rows=[_row("four", paper["four"], None, seeds=[30.0, 30.1, 29.9]),
                       _row("one", paper["one"], None, seeds=[29.5, 29.6, 29.4]),      # -0.5 every seed
                       _row("two", paper["two"], None, seeds=[29.9, 30.3, 29.8])])     # -0.1, +0.2, -0.1
    save_results("ablation_scan", "full", paper="MambaIR", table="Table 3: scan directions",
                 scale="DF2K, 20k iterations", reference_variant="four", out_dir=d,
                 rows=[_row("four", paper["four"], None, seeds=[36.0, 36.1, 35.9]),
                       _row("one", paper["one"], None, seeds=[36.2, 36.3, 36.1]),      # +0.2: disagrees
                       _row("two", paper["two"], None, seeds=[35.9, 36.0, 35.8])])     # -0.1: agrees
    save_results("rnan_params", "quick", paper="RNAN", table="Model size", scale="counted", out_dir=d,
                 rows=[_row("rnan", 7_500_000, 8_960_000.0, dataset="-", metric="params")])
    return d


def test_empty_results_say_so(tmp_path):
    text = render_scoreboard(tmp_path / "nothing-here")
    assert "No chapter has stored results yet" in text
    assert "|" not in text


def test_rows_merge_profiles_and_make_calls_from_paired_intervals(results):
    rows = scoreboard_rows(all_results(results))
    assert [(r["paper"], r["variant"]) for r in rows] == [
        ("MambaIR", "four"), ("MambaIR", "one"), ("MambaIR", "two"), ("RNAN", "rnan")]
    four, one, two, rnan = rows
    assert four["reference"] and all(four[f"call_{p}"] is None for p in ("quick", "cpu", "full"))
    # quick is a smoke run: no calls, whatever the signs
    assert one["call_quick"] is None and one["agrees_quick"] is None
    # paper: one - four = -0.04; cpu: -0.5 on every seed (interval excludes 0): agrees
    assert one["call_cpu"] == "agrees" and one["agrees_cpu"] is True
    # cpu: two - four = -0.1, +0.2, -0.1 (interval contains 0): unresolved
    assert two["call_cpu"] == "unresolved" and two["agrees_cpu"] is None
    assert one["call_full"] == "disagrees" and one["agrees_full"] is False
    assert two["call_full"] == "agrees"
    assert one["ours_quick"] == 29.5 and one["ours_full"] == pytest.approx(36.2) and one["std_quick"] == 0.01234
    assert rnan["call_quick"] is None and rnan["ours_full"] is None


def test_markdown_table_lines(results):
    text = render_scoreboard(results)
    lines = text.splitlines()
    header = next(ln for ln in lines if ln.startswith("| Paper | Table | Variant"))
    assert header == ("| Paper | Table | Variant | Dataset | Metric | Paper value | Ours (quick) | Call (quick) "
                      "| Ours (cpu) | Call (cpu) | Ours (full) | Call (full) |")
    assert ("| MambaIR | Table 3: scan directions | one | Set5 | PSNR | 38.53 | 29.50 ± 0.0123 | – | 29.50 | ✓ "
            "| 36.20 | ✗ |" in lines)
    assert ("| MambaIR | Table 3: scan directions | two | Set5 | PSNR | 38.56 | 29.90 | – | 30.00 | ≈ | 35.90 | ✓ |"
            in lines)
    assert ("| MambaIR | Table 3: scan directions | four (*ref*) | Set5 | PSNR | 38.57 | 30.00 | – | 30.00 | – "
            "| 36.00 | – |" in lines)
    assert "| RNAN | Model size | rnan | - | params | 7,500,000 | 8,960,000 | – | — |  | — |  |" in lines
    assert "quick: a smoke run, no calls" in text
    assert "cpu: 1 of 2 resolved, 1 of them agreeing" in text
    assert "full: 2 of 2 resolved, 1 of them agreeing" in text
    # the scale text is quoted per chapter and profile, table pipes escaped
    assert "DIV2K 16 images \\| 200 iterations" in text and "DF2K, 20k iterations" in text


def test_summary_line_per_table_then_every_row_in_a_dropdown(results, tmp_path):
    save_results("cu_ablation", "quick", paper="CU-Mamba (arXiv:2404.11778)", table="GoPro", scale="s",
                 reference_variant="both", out_dir=results,
                 rows=[_row("both", 33.53, 20.0, dataset="GoPro"), _row("spatial", 33.31, 19.0, dataset="GoPro")])
    save_results("ablation_scan_bis", "quick", paper="MambaIR (arXiv:2402.15648)", table="Table 2", scale="s",
                 out_dir=results, rows=[_row("x", None, 1.0)])
    lines = render_scoreboard(results).splitlines()
    start = lines.index("| Paper | Table | Numbers | With a paper value | Reference vs baselines (quick) "
                        "| Calls (cpu) | Reference vs baselines (cpu) | Calls (full) | Reference vs baselines (full) |")
    assert lines[start + 1] == "|---|---|--:|--:|--:|--:|--:|--:|--:|"
    # papers in the book's order whatever their suffix: MambaIR (both spellings), CU-Mamba, RNAN
    assert lines[start + 2:start + 6] == [
        "| MambaIR | Table 3: scan directions | 3 | 3 | – | 1 of 2 resolved, 1 of them agreeing | PSNR +1.00 over "
        "bicubic; target +0.5 dB over bicubic: met | 2 of 2 resolved, 1 of them agreeing | – |",
        "| MambaIR (arXiv:2402.15648) | Table 2 | 1 | 0 | – | – | – | – | – |",
        "| CU-Mamba (arXiv:2404.11778) | GoPro | 2 | 2 | – | – | – | – | – |",
        "| RNAN | Model size | 1 | 1 | – | – | – | – | – |"]
    assert lines[start + 6] == "" and lines[start + 7] == ":::{dropdown} All 7 numbers, row by row"
    close = lines.index(":::")
    assert start + 7 < close and lines[close + 2].startswith("**Scale of each reproduction**")
    assert sum(ln.startswith("| MambaIR | Table 3") for ln in lines[start + 7:close]) == 3


def test_duplicate_chapter_profile_is_an_error(results, tmp_path):
    other = tmp_path / "other"
    save_results("copy_of_scan", "quick", paper="MambaIR", table="Table 3: scan directions", scale="x",
                 reference_variant="four", out_dir=other, rows=[_row("four", 38.57, 30.0)])
    docs = all_results(results) + all_results(other)
    docs[-1]["chapter"] = "ablation_scan"
    with pytest.raises(ValueError, match="two results documents for chapter 'ablation_scan'"):
        scoreboard_rows(docs)


def test_write_is_idempotent(results, tmp_path):
    target = tmp_path / "gen" / "scoreboard.md"
    assert write_scoreboard(results, target) == target
    first = target.read_text()
    os.utime(target, (1, 1))
    write_scoreboard(results, target)
    assert target.read_text() == first and target.stat().st_mtime == 1  # unchanged content: not rewritten
    save_results("extra", "quick", paper="CU-Mamba", table="Table 4", scale="s", out_dir=results,
                 rows=[_row("unet", 32.45, 20.1, dataset="GoPro")])
    write_scoreboard(results, target)
    assert "CU-Mamba" in target.read_text() and target.stat().st_mtime != 1
    assert not list(target.parent.glob("*.tmp"))


@pytest.mark.parametrize("x, std, expected", [(None, None, "—"), (38.5678, None, "38.57"),
                                              (0.96134, 0.00021, "0.9613 ± 0.0002"),
                                              (1363320, None, "1,363,320"), (-0.04, None, "-0.0400")])
def test_format_value(x, std, expected):
    assert format_value(x, std) == expected


def test_a_broken_results_file_is_named(results):
    (results / "broken.quick.json").write_text('{"chapter": "broken"}')
    with pytest.raises(ValueError, match=r"broken\.quick\.json: results document lacks key 'paper'"):
        render_scoreboard(results)


def test_tables_link_to_their_chapters(results, tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "05_ablation_scan.ipynb").write_text("{}")
    (tmp_path / "book" / "06_not_in_toc.ipynb").write_text("{}")
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/05_ablation_scan\n"
                   "- file: book/notation\n")
    pages = chapter_pages(toc)
    assert pages == {"ablation_scan": "book/05_ablation_scan"}
    text = render_scoreboard(results, pages)
    assert "| MambaIR | {doc}`Table 3: scan directions </book/05_ablation_scan>` | one |" in text
    assert "| RNAN | Model size | rnan |" in text  # no chapter page: plain text


def test_rows_with_a_paper_dataset_merge_profiles_scored_on_different_data(tmp_path):
    """The quick profile scores on embedded data, the full one on the paper's: one row per paper number."""
    d = tmp_path / "results"
    for profile, ours_ds, vals in (("quick", "embedded-test", (30.0, 29.0)), ("full", "Urban100", (32.9, 32.5))):
        rows = [dict(_row(v, p, o, dataset=ours_ds), paper_dataset="Urban100")
                for v, p, o in (("full", 33.0, vals[0]), ("w/o CA", 32.8, vals[1]))]
        save_results("ablation_x", profile, paper="MambaIR", table="T2", scale=f"{profile} scale",
                     reference_variant="full", out_dir=d, rows=rows)
    rows = scoreboard_rows(all_results(d))
    assert [(r["variant"], r["dataset"]) for r in rows] == [("full", "Urban100"), ("w/o CA", "Urban100")]
    assert rows[1]["ours_quick"] == 29.0 and rows[1]["ours_full"] == 32.5
    assert rows[1]["call_quick"] is None                    # a smoke run
    assert rows[1]["call_full"] == "unresolved"             # one number per row: no interval, no call
    text = render_scoreboard(d)
    assert "quick scale; ours scored on embedded-test (" in text
    assert "full scale (" in text and "ours scored on Urban100" not in text


def test_atomically_written_results_are_readable_like_plain_files(tmp_path):
    """mkstemp files are owner-only; results moved into place get the umask's mode like any new file."""
    from restore_core.fsutil import current_umask

    path = save_results("mode_check", "quick", paper="P", table="T", scale="s", out_dir=tmp_path,
                        rows=[_row("a", 1.0, 2.0)])
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert (path.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777) == 0o666 & ~current_umask()


def test_no_calls_when_the_reference_does_not_beat_its_baseline(tmp_path):
    from restore_core.book.results import annotate_calls, beats_baselines

    rows = [_row("four", 38.57, None, seeds=[30.0, 30.1, 29.9]), _row("one", 38.53, None, seeds=[29.5, 29.6, 29.4])]
    assert beats_baselines(rows, {"bicubic": {"PSNR": 29.0}}, "four") is True
    assert beats_baselines(rows, {"bicubic": {"PSNR": 31.0}}, "four") is False
    assert beats_baselines(rows, None, "four") is None
    assert annotate_calls(rows, "four", "cpu", baselines={"bicubic": {"PSNR": 29.0}})[1]["call"] == "agrees"
    below = annotate_calls(rows, "four", "cpu", baselines={"bicubic": {"PSNR": 31.0}})[1]
    assert below["call"] is None and below["ours_delta_ci95"] is not None  # the interval is still reported
    fusion = [dict(_row("full", None, v, metric=m)) for m, v in zip("ABCDEF", (2, 2, 2, 0, 0, 0))]
    assert beats_baselines(fusion, {"mean": dict(zip("ABCDEF", [1] * 6))}, "full") is True   # 3 of 6
    fusion[2]["ours"] = 0
    assert beats_baselines(fusion, {"mean": dict(zip("ABCDEF", [1] * 6))}, "full") is False  # 2 of 6
