"""The book runner on a tiny temporary book: in-place quick runs, full runs into a copy, parameters and
profile reaching the kernel, a failing chapter named and never half-written, and the CLI's errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from restore_core.book.runner import (ChapterFailed, chapter_parameters, run_book, select_chapters,
                                      toc_chapters, train_nproc)
from restore_core.book.scoreboard import write_scoreboard
from restore_core.cli import main

PARAMS = 'profile = "quick"\nseed = 0\ndevice = None\nout_dir = None'
REPORT = ('import os, json\n'
          'print(profile, os.environ["BOOK_PROFILE"], seed, device, os.environ["RESTORE_CORE_BOOK_NPROC"])\n'
          'if out_dir is not None:\n'
          '    open(os.path.join(out_dir, "ran.json"), "w").write(json.dumps({"profile": profile}))\n'
          'print(os.path.basename(os.getcwd()))')


def _nb(*cells: str, tags=("parameters",)) -> dict:
    def cell(i, src):
        meta = {"tags": list(tags)} if i == 0 and tags else {}
        return {"cell_type": "code", "id": f"cell-{i}", "execution_count": None, "metadata": meta, "outputs": [],
                "source": src}

    return {"nbformat": 4, "nbformat_minor": 5, "cells": [cell(i, s) for i, s in enumerate(cells)],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def _book(root: Path, chapters: dict) -> Path:
    book = root / "book"
    book.mkdir(parents=True)
    (book / "intro.md").write_text("# Intro\n")
    for name, nb in chapters.items():
        (book / f"{name}.ipynb").write_text(json.dumps(nb))
    toc = {"format": "jb-book", "root": "book/intro",
           "parts": [{"caption": "C", "chapters": [{"file": f"book/{n}"} for n in chapters]}]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))
    return root / "_toc.yml"


def _stdout(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    texts = [o.get("text", "") for c in nb["cells"] for o in c.get("outputs", []) if o.get("name") == "stdout"]
    return "".join(t if isinstance(t, str) else "".join(t) for t in texts)


def _run(toc, scoreboard=True, **kw):
    """run_book, then the scoreboard as `restore-core book run` writes it after the chapters."""
    kw.setdefault("results_dir", toc.parent / "results")
    timings = run_book(toc=toc, progress=False, echo=lambda s: None, **kw)
    if scoreboard:
        write_scoreboard(kw["results_dir"], toc.parent / "scoreboard.md", toc=toc, srcdir=toc.parent)
    return timings


def test_quick_runs_in_place_without_injected_parameters(tmp_path):
    toc = _book(tmp_path, {"01_ok": _nb(PARAMS, REPORT)})
    timings = _run(toc)
    nb_path = tmp_path / "book" / "01_ok.ipynb"
    assert [t.chapter for t in timings] == ["01_ok"] and timings[0].output == nb_path
    assert _stdout(nb_path) == "quick quick 0 None 1\nbook\n"  # cwd is book/
    nb = json.loads(nb_path.read_text())
    assert len(nb["cells"]) == 2  # no "injected-parameters" cell
    assert nb["metadata"]["papermill"]["output_path"] == str(nb_path)
    assert "No chapter has stored results yet" in (tmp_path / "scoreboard.md").read_text()
    assert not list((tmp_path / "book").glob(".*.ipynb"))  # no temporary file left


@pytest.mark.skipif(os.name != "posix", reason="Unix sockets")
def test_kernels_talk_over_unix_sockets_and_leave_none_behind(tmp_path, monkeypatch):
    """ZeroMQ ipc sockets in Jupyter's runtime folder; TCP where that folder's path is too long for a socket."""
    probe = ("import json; from ipykernel import get_connection_info\n"
             "info = json.loads(get_connection_info()); print(info['transport'], info['ip'])")
    toc = _book(tmp_path, {"01_probe": _nb(PARAMS, probe)})
    with tempfile.TemporaryDirectory(prefix="rt", dir="/tmp") as short:
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", short)
        _run(toc)
        transport, ip = _stdout(tmp_path / "book" / "01_probe.ipynb").split()
        assert transport == "ipc" and Path(ip).parent == Path(short).resolve()  # absolute: the kernel runs in book/
        assert not list(Path(short).glob("kernel-*"))  # sockets and connection file removed at shutdown
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / ("long-" * 20)))
    _run(toc)
    assert _stdout(tmp_path / "book" / "01_probe.ipynb").split()[0] == "tcp"


def test_full_runs_into_a_copy_with_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_PROFILE", "quick")  # as under CI: the runner must override it for the kernel
    toc = _book(tmp_path, {"01_ok": _nb(PARAMS, REPORT)})
    source = (tmp_path / "book" / "01_ok.ipynb").read_bytes()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # allow_dirty: this test's own checkout may have uncommitted changes (the check is tested below)
    timings = _run(toc, profile="full", seed=3, device="cpu", out_dir=out_dir, nproc=2, allow_dirty=True)
    copy = tmp_path / "_build" / "executed" / "full" / "01_ok.ipynb"
    assert timings[0].output == copy
    assert (tmp_path / "book" / "01_ok.ipynb").read_bytes() == source  # committed quick notebook untouched
    assert _stdout(copy).startswith("full full 3 cpu 2\n")
    tags = [c["metadata"].get("tags", []) for c in json.loads(copy.read_text())["cells"]]
    assert ["injected-parameters"] in tags
    assert json.loads((out_dir / "ran.json").read_text()) == {"profile": "full"}
    import os
    assert os.environ["BOOK_PROFILE"] == "quick" and "RESTORE_CORE_BOOK_NPROC" not in os.environ
    assert "RESTORE_CORE_ALLOW_DIRTY" not in os.environ


@pytest.mark.parametrize("profile", ["cpu", "full"])
def test_study_profiles_refuse_a_dirty_tree_unless_allowed(tmp_path, monkeypatch, profile):
    import restore_core.provenance as prov
    from restore_core.book.runner import DirtyTreeError, check_clean_tree

    toc = _book(tmp_path, {"01_ok": _nb(PARAMS, "print('ran')")})
    monkeypatch.setattr(prov, "git_commit", lambda short=False: "abc123+dirty")
    with pytest.raises(DirtyTreeError, match=f"the {profile} profile stores results, which must come from a "
                                             "committed tree"):
        _run(toc, profile=profile)
    assert not (tmp_path / "_build" / "executed" / profile).exists()  # refused before running anything
    check_clean_tree("quick", allow_dirty=False)        # the quick profile's outputs are the committed ones
    check_clean_tree(profile, allow_dirty=True)
    monkeypatch.setattr(prov, "git_commit", lambda short=False: "abc123")
    check_clean_tree(profile, allow_dirty=False)


def test_study_results_from_a_dirty_tree_are_refused_or_recorded(tmp_path, monkeypatch):
    import restore_core.book.results as results
    import restore_core.provenance as prov

    row = [{"variant": "a", "dataset": "d", "metric": "m", "paper": None, "ours": 1.0}]
    monkeypatch.setattr(prov, "git_commit", lambda short=False: "abc123+dirty")
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    monkeypatch.delenv("RESTORE_CORE_ALLOW_DIRTY", raising=False)
    with pytest.raises(ValueError, match="only from a committed tree"):
        results.save_results("c", "cpu", paper="p", table="t", scale="s", rows=row, out_dir=tmp_path)
    monkeypatch.setenv("RESTORE_CORE_ALLOW_DIRTY", "1")
    path = results.save_results("c", "cpu", paper="p", table="t", scale="s", rows=row, out_dir=tmp_path)
    assert json.loads(path.read_text())["provenance"]["dirty_tree_allowed"] is True
    monkeypatch.delenv("RESTORE_CORE_ALLOW_DIRTY")
    elsewhere = tmp_path / "elsewhere"            # not the stored results: written, and marked as not allowed
    doc = json.loads(results.save_results("c", "cpu", paper="p", table="t", scale="s", rows=row,
                                          out_dir=elsewhere).read_text())
    assert doc["provenance"]["dirty_tree_allowed"] is False


def test_failing_chapter_is_named_and_stops_the_run(tmp_path):
    bad = _nb(PARAMS, "x = 1", "1 / 0")
    toc = _book(tmp_path, {"01_ok": _nb(PARAMS, "print('ok')"), "02_bad": bad, "03_after": _nb(PARAMS, "print(3)")})
    before = (tmp_path / "book" / "02_bad.ipynb").read_text()
    with pytest.raises(ChapterFailed, match=r"chapter 02_bad failed in cell \[3\]: ZeroDivisionError: division by zero"):
        _run(toc, chapters=["02_bad", "03"])
    assert (tmp_path / "book" / "02_bad.ipynb").read_text() == before  # never half-written
    kept = tmp_path / "_build" / "executed" / "failed" / "02_bad.ipynb"
    assert "ZeroDivisionError" in kept.read_text()
    assert _stdout(tmp_path / "book" / "03_after.ipynb") == ""  # the run stopped
    assert _stdout(tmp_path / "book" / "01_ok.ipynb") == ""  # not selected


def test_quick_chapters_see_a_clean_tree_until_the_last_one_ran(tmp_path, monkeypatch):
    """A multi-chapter quick run stages its notebooks and results: chapter 02 still finds chapter 01 unexecuted and
    its results file absent (so both record the same clean commit), and everything lands at the end; kernels get
    OMP_WAIT_POLICY=PASSIVE and MKL_CBWR=COMPATIBLE."""
    monkeypatch.delenv("RESTORE_CORE_RESULTS_OUT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("MKL_CBWR", raising=False)
    write = ('import os\nout = os.environ["RESTORE_CORE_RESULTS_OUT"]\n'
             'open(os.path.join(out, "probe.quick.json"), "w").write("{}")\n'
             'print(os.environ["OMP_WAIT_POLICY"], os.environ["MKL_CBWR"])')
    look = ('import json, os\n'
            'print(json.load(open("01_write.ipynb"))["cells"][1]["outputs"] == [], '
            'os.path.exists(os.path.join("..", "results", "probe.quick.json")))')
    toc = _book(tmp_path, {"01_write": _nb(PARAMS, write), "02_look": _nb(PARAMS, look),
                           "03_fail": _nb(PARAMS, "1 / 0")})
    with pytest.raises(ChapterFailed, match="03_fail"):
        _run(toc, scoreboard=False)
    assert _stdout(tmp_path / "book" / "01_write.ipynb") == "PASSIVE COMPATIBLE\n"
    assert _stdout(tmp_path / "book" / "02_look.ipynb") == "True False\n"   # 01 not yet in place when 02 ran
    assert (tmp_path / "results" / "probe.quick.json").read_text() == "{}"    # installed after the failure too
    assert not list((tmp_path / "_build" / "executed").glob("staging-*"))
    assert not {"RESTORE_CORE_RESULTS_OUT", "OMP_WAIT_POLICY", "MKL_CBWR"} & set(os.environ)


def test_mkl_branch_compatible_for_quick_runs_fastest_for_studies():
    from restore_core.book.runner import mkl_branch
    assert mkl_branch("quick", None) == "COMPATIBLE" and mkl_branch("quick", "") == "COMPATIBLE"
    assert mkl_branch("cpu", None) is None and mkl_branch("full", "") is None
    assert mkl_branch("quick", "AUTO") == "AUTO" and mkl_branch("cpu", "COMPATIBLE") == "COMPATIBLE"


def test_omp_wait_policy_passive_for_quick_runs_spinning_for_studies():
    from restore_core.book.runner import omp_wait_policy
    assert omp_wait_policy("quick", None) == "PASSIVE"
    assert omp_wait_policy("cpu", None) is None and omp_wait_policy("full", "") is None
    assert omp_wait_policy("cpu", "PASSIVE") == "PASSIVE" and omp_wait_policy("quick", "ACTIVE") == "ACTIVE"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_makefile_exports_passive_waits_only_for_quick_runs():
    """`make test` / `make book` (quick) export OMP_WAIT_POLICY=PASSIVE and MKL_CBWR=COMPATIBLE; `make book
    PROFILE=cpu` must not, or the studies run with sleeping OpenMP threads (~1.5x slower) and MKL's SSE2 branch,
    unlike `restore-core book run --profile cpu`."""
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "MKL_CBWR", "MAKEFLAGS", "MAKELEVEL")}

    def exported(*args):
        out = subprocess.run(["make", "-C", str(repo), "-n", "-p", *args], capture_output=True, text=True,
                             env=env, timeout=60).stdout
        # a set: `book` re-enters make for book-html, and -n -p prints each make's variables
        return {line for line in out.splitlines() if line.startswith(("OMP_WAIT_POLICY ", "MKL_CBWR "))}

    assert exported("test") == exported("book") == {"OMP_WAIT_POLICY = PASSIVE", "MKL_CBWR = COMPATIBLE"}
    assert exported("book", "PROFILE=cpu") == exported("book", "PROFILE=full") == set()


def test_toc_and_selection(tmp_path):
    toc = _book(tmp_path, {"01_ssm_discretization": _nb(PARAMS), "02_selective_scan": _nb(PARAMS)})
    nbs = toc_chapters(toc)
    assert [p.name for p in nbs] == ["01_ssm_discretization.ipynb", "02_selective_scan.ipynb"]  # intro.md skipped
    assert [p.stem for p in select_chapters(nbs, ["selective_scan"])] == ["02_selective_scan"]
    assert [p.stem for p in select_chapters(nbs, ["02", "01_ssm"])] == ["01_ssm_discretization", "02_selective_scan"]
    with pytest.raises(ValueError, match="no chapter matches 'erf'"):
        select_chapters(nbs, ["erf"])
    data = yaml.safe_load(toc.read_text())
    data["parts"][0]["chapters"].append({"file": "book/99_missing"})
    toc.write_text(yaml.safe_dump(data))
    with pytest.raises(FileNotFoundError, match="book/99_missing"):
        toc_chapters(toc)


def test_parameters_only_where_they_differ(tmp_path):
    assert chapter_parameters("quick") == {}
    assert chapter_parameters("full", seed=1, device="cuda", out_dir=tmp_path) == {
        "profile": "full", "seed": 1, "device": "cuda", "out_dir": str(tmp_path.resolve())}


def test_train_nproc(monkeypatch):
    monkeypatch.delenv("RESTORE_CORE_BOOK_NPROC", raising=False)
    assert train_nproc() == 1
    monkeypatch.setenv("RESTORE_CORE_BOOK_NPROC", "4")
    assert train_nproc() == 4
    monkeypatch.setenv("RESTORE_CORE_BOOK_NPROC", "0")
    with pytest.raises(ValueError, match="positive integer"):
        train_nproc()


def test_cli_errors_are_one_line(tmp_path, capsys):
    toc = _book(tmp_path, {"01_ok": _nb(PARAMS)})
    assert main(["book", "run", "--toc", str(toc), "--chapters", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("restore-core book: error: no chapter matches 'nope'") and "\n" not in err
    assert main(["book", "run", "--toc", str(tmp_path / "absent.yml")]) == 2
    assert "table of contents not found" in capsys.readouterr().err


def test_cli_scoreboard(tmp_path, capsys):
    out = tmp_path / "sb.md"
    assert main(["book", "scoreboard", "--results-dir", str(tmp_path / "none"), "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "No chapter has stored results yet" in out.read_text()


def test_cli_run_regenerates_the_scoreboard_after_the_chapters(tmp_path, monkeypatch, capsys):
    from restore_core.book import scoreboard

    toc = _book(tmp_path, {"01_ok": _nb(PARAMS, "print('ok')")})
    calls = []
    monkeypatch.setattr(scoreboard, "write_scoreboard",
                        lambda *a, **k: calls.append((_stdout(tmp_path / "book" / "01_ok.ipynb"), k)) or "sb.md")
    assert main(["book", "run", "--toc", str(toc)]) == 0
    assert calls == [("ok\n", {"toc": toc, "srcdir": tmp_path})]   # once, after the chapter ran
    assert "scoreboard: sb.md" in capsys.readouterr().out
