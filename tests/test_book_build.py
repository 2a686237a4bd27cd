"""The HTML book builds with warnings as errors: the real book, and a tiny temporary book that exercises the
generated scoreboard, citations, equations, stored images and widget views without depending on the chapters.

Both builds are made once per test process (``real_book_build()`` / ``tiny_book_build()`` are memoised) and
shared with tests/test_book_browser.py, which opens their pages in chromium.
"""
from __future__ import annotations

import atexit
import base64
import functools
import io
import json
import re
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest
import yaml

from restore_core.book.results import save_results
from restore_core.book.runner import REPO_ROOT, BookBuildFailed, build_html, toc_chapters
from restore_core.book.widgets import image_slider, image_stack_widget

BUILD_ROOT = REPO_ROOT / "_build"

REQUIRED_ARXIV = {
    "guo2024mambair": "2402.15648", "deng2024cumamba": "2404.11778", "xie2024fusionmamba": "2404.09498",
    "zhang2019rnan": "1903.10082", "gu2023mamba": "2312.00752", "gu2022s4": "2111.00396",
    "liu2024vmamba": "2401.10166", "ding2022replknet": "2203.06717", "zhang2018rcan": "1807.02758",
    "liang2021swinir": "2108.10257", "zhao2023cddfuse": "2211.14461", "zamir2022restormer": "2111.09881",
    "wang2020eca": "1910.03151",
}


@dataclass
class Build:
    html: Optional[Path]
    seconds: float
    error: Optional[str]

    def require(self) -> Path:
        if self.error is not None:
            pytest.fail(self.error, pytrace=False)
        assert self.html is not None
        return self.html


def _timed_build(**kwargs) -> Build:
    t0 = time.perf_counter()
    try:
        html = build_html(**kwargs)
    except BookBuildFailed as exc:
        return Build(None, time.perf_counter() - t0, str(exc))
    return Build(html, time.perf_counter() - t0, None)


def _scratch_dir(prefix: str) -> Path:
    """A fresh folder for one build, removed when the test process ends (a fixed path would be shared with
    anyone else running these tests in the same checkout)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _build_real_book() -> Build:
    return _timed_build(root=REPO_ROOT, path_output=_scratch_dir("ssm-restore-book-"))


# ---------------------------------------------------------------- the tiny temporary book
def _png_b64(value: float) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((12, 16, 3), int(value * 255), np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _widget_notebook() -> dict:
    """A notebook with stored outputs: text, a PNG, an image_slider (HTML) and an image_stack_widget view
    with its widget state in the metadata -- what papermill stores for a chapter that displays them."""
    from ipywidgets.embed import embed_data

    frames = [np.full((10, 14), v) for v in (0.0, 0.5, 1.0)]
    stack = image_stack_widget(frames, labels=["dark", "grey", "light"], description="frame")
    state = embed_data(views=[stack])
    slider = image_slider(frames, labels=["dark", "grey", "light"], description="frame")

    def code(src, outputs):
        return {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": src, "outputs": outputs}

    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "widgets": {"application/vnd.jupyter.widget-state+json": state["manager_state"]},
        },
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# Widgets\n\nThe scan $h_t = \\bar A h_{t-1}"
             " + \\bar B u_t$ {cite}`gu2023mamba`, see {doc}`notation`."},
            code("print(1)", [{"output_type": "stream", "name": "stdout", "text": "1\n"}]),
            code("show()", [{"output_type": "display_data", "metadata": {},
                             "data": {"image/png": _png_b64(0.3), "text/plain": "<Figure>"}}]),
            code("image_slider(...)", [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                                        "data": {"text/html": slider._repr_html_(), "text/plain": repr(slider)}}]),
            code("image_stack_widget(...)", [{"output_type": "display_data", "metadata": {}, "data": {
                "application/vnd.jupyter.widget-view+json": state["view_specs"][0],
                "text/plain": "VBox(...)"}}]),
        ],
    }


def make_tiny_book(root: Path, with_results: bool) -> Path:
    """Write a small book under ``root`` that uses the real _config.yml (vendored assets, bibliography,
    scoreboard extension), the real intro/notation/references pages and its own results folder. Its API page
    is a stub (the real one, autodoc and all, is built with the real book)."""
    book = root / "book"
    book.mkdir(parents=True)
    for name in ("intro.md", "notation.md", "references.md", "references.bib"):
        shutil.copy(REPO_ROOT / "book" / name, book / name)
    (book / "api.md").write_text("# Library reference\n\nSee the real book.\n")
    (book / "07_ablation_test.ipynb").write_text(json.dumps(_widget_notebook()))
    results = root / "results"
    results.mkdir()
    if with_results:
        # a study profile with paired seeds: no_ca - full = -0.25 on both seeds, the paper's -0.09: a call
        rows = [{"variant": "full", "dataset": "Set5", "metric": "PSNR", "paper": 38.57, "ours": 30.5,
                 "ours_std": 0.03, "seeds": [30.48, 30.52], "seed_ids": [0, 1]},
                {"variant": "no_ca", "dataset": "Set5", "metric": "PSNR", "paper": 38.48, "ours": 30.25,
                 "ours_std": 0.02, "seeds": [30.23, 30.27], "seed_ids": [0, 1]}]
        save_results("ablation_test", "cpu", paper="MambaIR", table="Table 2: test table",
                     scale="tiny test run", rows=rows, reference_variant="full", out_dir=results)
    cfg = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    cfg["sphinx"]["config"]["html_static_path"] = [str(REPO_ROOT / "_vendor")]
    cfg["sphinx"]["config"]["scoreboard_results_dir"] = str(results)
    cfg["sphinx"]["config"]["scoreboard_path"] = str(book / "_generated" / "scoreboard.md")
    (root / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    toc = {"format": "jb-book", "root": "book/intro",
           "parts": [{"caption": "Test", "chapters": [{"file": "book/07_ablation_test"}, {"file": "book/notation"}, {"file": "book/api"},
                                                       {"file": "book/references"}]}]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    return root


def _build_tiny_book() -> Build:
    root = _scratch_dir("tiny-book-")
    make_tiny_book(root, with_results=True)
    return _timed_build(root=root)


@functools.lru_cache(maxsize=None)
def _builds() -> Dict[str, "Future[Build]"]:
    """Both builds start together on first use (two Sphinx processes: one per core) and run once."""
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {"real": pool.submit(_build_real_book), "tiny": pool.submit(_build_tiny_book)}
    pool.shutdown(wait=False)
    return futures


def real_book_build() -> Build:
    """The repository's book, built from scratch into a scratch folder (execution off, -W)."""
    return _builds()["real"].result()


def tiny_book_build() -> Build:
    """The tiny book (:func:`make_tiny_book`) with results; the empty-results rendering is covered by
    tests/test_scoreboard.py and, while no chapter has stored results, by the real book."""
    return _builds()["tiny"].result()


# ---------------------------------------------------------------- tests
def test_real_book_builds_with_warnings_as_errors():
    html = real_book_build().require()
    assert (html / "book" / "intro.html").is_file()
    for nb in toc_chapters(REPO_ROOT / "_toc.yml"):
        page = html / nb.relative_to(REPO_ROOT).with_suffix(".html")
        assert page.is_file(), f"chapter {nb.stem} has no HTML page"


def test_real_book_landing_page_has_scoreboard_and_links():
    html = real_book_build().require()
    intro = (html / "book" / "intro.html").read_text()
    assert 'id="scoreboard"' in intro
    assert ("No chapter has stored results yet" in intro) or ("<table" in intro and "Paper value" in intro)
    for arxiv in ("2402.15648", "2404.11778", "2404.09498", "1903.10082"):
        assert f"https://arxiv.org/abs/{arxiv}" in intro
    api = (html / "book" / "api.html").read_text()
    assert "_modules/restore_core/ssm/scan.html" in api, "viewcode [source] links missing from the API page"
    refs = (html / "book" / "references.html").read_text()
    for arxiv in REQUIRED_ARXIV.values():
        assert arxiv in refs


def test_bibliography_has_every_required_entry():
    bib = (REPO_ROOT / "book" / "references.bib").read_text()
    keys = dict(re.findall(r"@\w+\{(\w+),(.*?)\n\}", bib, flags=re.S))
    for key, arxiv in REQUIRED_ARXIV.items():
        assert key in keys, f"missing BibTeX entry {key}"
        assert f"https://arxiv.org/abs/{arxiv}" in keys[key], f"{key} lacks its arXiv link"
    assert "wang2022basicsr" in keys and "github.com/XPixelGroup/BasicSR" in keys["wang2022basicsr"]


def test_tiny_book_with_results_shows_the_numbers():
    html = tiny_book_build().require()
    intro = (html / "book" / "intro.html").read_text()
    assert "Table 2: test table" in intro and "38.57" in intro and "30.25 ± 0.0200" in intro
    assert "✓" in intro  # paper: no_ca < full, ours: no_ca < full on every seed -> agrees
    assert 'href="07_ablation_test.html"' in intro  # the table's name links to its chapter
    page = (html / "book" / "07_ablation_test.html").read_text()
    assert "_static/widgets/embed-amd.js" in page and "_static/widgets/require.js" in page
    assert "cdn.jsdelivr" not in page and "cdnjs" not in page
    assert (html / "_static" / "widgets" / "embed-amd.js").is_file()
    assert (html / "_static" / "mathjax" / "tex-chtml-full.js").is_file()


HEADER = re.compile(r"chapter \S+ · profile (quick|cpu|full) · restore_core \S+ \(commit [0-9a-f]+(\+dirty)?\) · "
                    r"torch \S+ · device .+")
FOOTER = re.compile(r"chapter \S+ ran in \d+ s \((quick|cpu|full) profile\)")


def _stream_text(nb: dict) -> str:
    out = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            t = o.get("text", "") if o.get("output_type") == "stream" else o.get("data", {}).get("text/plain", "")
            out.append(t if isinstance(t, str) else "".join(t))
    return "\n".join(out)


def _listed_chapters():
    try:
        return toc_chapters(REPO_ROOT / "_toc.yml")
    except FileNotFoundError:  # reported by test_real_book_builds_with_warnings_as_errors
        return []


@pytest.mark.parametrize("nb_path", _listed_chapters(), ids=lambda p: p.stem)
def test_chapter_prints_provenance_header_and_footer(nb_path):
    """Every committed chapter shows what produced it: restore_core version and commit, profile, device
    (``run.header()``) and its run time (``run.footer()``), as stored quick-profile outputs."""
    text = _stream_text(json.loads(nb_path.read_text()))
    assert HEADER.search(text), f"{nb_path.name}: no stored `print(run.header())` output"
    assert FOOTER.search(text), f"{nb_path.name}: no stored `print(run.footer())` output"
