"""The built book in a real browser (Debian's chromium through Playwright, fully offline).

Every HTML page of the real book and of a tiny temporary book (stored widget views, a kernel-free image
slider, an equation, a PNG, the generated scoreboard) is served from 127.0.0.1 and opened; each page must
show no console errors, make no request that leaves 127.0.0.1, load every <img>, render every stored widget
view with its controls (and every equation, none wider than the text column), and the landing page must carry
the scoreboard. Screenshots of every page (its first 1280 x 1600 px) go to _build/screenshots/.

Needs /usr/bin/chromium (``scripts/install_browser.sh``; ``make test`` runs it). The builds are shared with
tests/test_book_build.py.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path
from typing import Iterator, List, Tuple
from urllib.parse import urlparse

import pytest

from test_book_build import BUILD_ROOT, real_book_build, tiny_book_build

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
SCREENSHOTS = BUILD_ROOT / "screenshots"
# Console noise that is not a page error: the favicon the book does not ship.
_IGNORED_CONSOLE = ("favicon.ico",)


# [scroll width, visible width, start of the text] of each display equation that does not fit its column.
_WIDE_MATH_JS = """() => Array.from(document.querySelectorAll('div.math, mjx-container[display="true"]'))
    .filter(e => e.scrollWidth > e.clientWidth + 2)
    .map(e => [e.scrollWidth, e.clientWidth, e.textContent.slice(0, 60)])"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 -- the base class's signature
        pass


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: run `bash scripts/install_browser.sh` (make test does)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def _serve(directory: Path) -> Tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _pages(html: Path) -> List[Path]:
    """Every content page: the book's pages and the index/search pages (not the viewcode source dumps)."""
    pages = sorted(p for p in html.rglob("*.html") if "_modules" not in p.parts and "_static" not in p.parts
                   and "_sources" not in p.parts)
    assert pages, f"no HTML pages under {html}"
    return pages


def check_page(browser, base: str, html: Path, page_path: Path, shot_dir: Path) -> dict:
    """Open one page; return what the test asserts on (errors, external requests, images, widgets, math)."""
    errors: List[str] = []
    external: List[str] = []
    failed: List[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 1600}, service_workers="block")
    page = context.new_page()

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}")
            if m.type == "error" and not any(s in m.text for s in _IGNORED_CONSOLE) else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})")
            if urlparse(r.url).hostname == "127.0.0.1" else None)
    page.on("response", lambda r: failed.append(f"{r.url} (HTTP {r.status})")
            if r.status >= 400 and not r.url.endswith(_IGNORED_CONSOLE) else None)
    url = f"{base}/{page_path.relative_to(html).as_posix()}"
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    n_rendered = 0
    if n_views:
        page.wait_for_selector(".jupyter-widgets", state="attached", timeout=15000)
        page.wait_for_function(
            f"document.querySelectorAll('.jupyter-widgets.widget-container, .jupyter-widgets.widget-inline-hbox,"
            f" .jupyter-widgets.widget-image, .jupyter-widgets.widget-slider').length >= {n_views}",
            timeout=15000)
        n_rendered = page.locator(".jupyter-widgets").count()
    has_math = page.locator(".math").count() > 0
    wide_math = []
    if has_math:
        page.wait_for_selector("mjx-container", state="attached", timeout=15000)
        page.evaluate("() => (window.MathJax && MathJax.startup && MathJax.startup.promise) || null")
        # display equations wider than the text column (at 1280 px the theme shows both sidebars)
        wide_math = page.evaluate(_WIDE_MATH_JS)
    page.evaluate("() => document.fonts.ready.then(() => true)")  # fonts the rendered page asked for
    page.wait_for_load_state("networkidle")
    images = page.evaluate("Array.from(document.images).map(i => [i.currentSrc.slice(0, 80), i.complete,"
                           " i.naturalWidth])")
    shot_dir.mkdir(parents=True, exist_ok=True)
    name = page_path.relative_to(html).as_posix().replace("/", "__").removesuffix(".html")
    page.screenshot(path=str(shot_dir / f"{name}.png"))  # the first 1600 px: full pages cost seconds each
    info = {"url": url, "page": page, "context": context, "errors": errors, "external": external,
            "failed": failed, "images": images, "widget_views": n_views, "widgets_rendered": n_rendered,
            "math": has_math, "wide_math": wide_math}
    return info


def _assert_clean(info: dict) -> None:
    url = info["url"]
    assert not info["external"], f"{url}: requests leaving 127.0.0.1: {info['external']}"
    assert not info["failed"], f"{url}: failed requests: {info['failed']}"
    assert not info["errors"], f"{url}: console errors: {info['errors']}"
    broken = [src for src, complete, width in info["images"] if not (complete and width > 0)]
    assert not broken, f"{url}: images that did not load: {broken}"
    if info["widget_views"]:
        assert info["widgets_rendered"] >= info["widget_views"], f"{url}: widget views not rendered"
    assert not info["wide_math"], (f"{url}: display equations wider than the text column "
                                   f"([needed px, column px, text]): {info['wide_math']}")


def _check_book(browser, html: Path, shot_dir: Path) -> Iterator[dict]:
    server, base = _serve(html)
    try:
        for p in _pages(html):
            info = check_page(browser, base, html, p, shot_dir)
            try:
                _assert_clean(info)
                yield info
            finally:
                info["context"].close()
    finally:
        server.shutdown()
        server.server_close()


def test_real_book_pages_render_offline(browser):
    html = real_book_build().require()
    shutil.rmtree(SCREENSHOTS / "book", ignore_errors=True)
    seen_intro = False
    for info in _check_book(browser, html, SCREENSHOTS / "book"):
        if info["url"].endswith("/book/intro.html"):
            seen_intro = True
            section = info["page"].locator("#scoreboard")
            assert section.count() == 1, "landing page lacks the scoreboard section"
            text = section.inner_text()
            # a summary line per paper table; every number in a dropdown below it
            assert ("No chapter has stored results yet" in text) or (
                "With a paper value" in text and section.locator("details").count() == 1)
    assert seen_intro, "the landing page book/intro.html was not checked"


def test_tiny_book_widgets_sliders_math_and_scoreboard(browser):
    html = tiny_book_build().require()
    shot_dir = SCREENSHOTS / "tiny-book"
    shutil.rmtree(shot_dir, ignore_errors=True)
    checked = set()
    for info in _check_book(browser, html, shot_dir):
        page = info["page"]
        if info["url"].endswith("/book/07_ablation_test.html"):
            checked.add("widgets")
            assert info["widget_views"] == 1 and info["math"]
            # ipywidgets: the jslink'ed IntSlider moves the Stack in the browser, no kernel involved.
            assert page.locator(".widget-slider").count() >= 1
            # A Stack view shows only its selected child: one image, replaced when the slider moves.
            shown = ".widget-vbox > .widget-box:not(.widget-hbox) img.widget-image"
            assert page.locator(shown).count() == 1
            first = page.locator(shown).get_attribute("src")
            page.locator(".widget-slider .noUi-handle").first.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function("([sel, s]) => { const v = document.querySelectorAll(sel);"
                                   " return v.length === 1 && v[0].src !== s && v[0].naturalWidth > 0; }",
                                   arg=[shown, first], timeout=5000)
            assert page.locator(".widget-readout").first.inner_text().strip() == "1"
            # The plain range input over base64 PNGs.
            rng = page.locator(".rc-image-slider input[type=range]")
            assert rng.count() == 1
            rng.fill("2")
            assert page.locator(".rc-image-slider .rc-slider-label").inner_text() == "light"
            frames = page.locator(".rc-image-slider img.rc-slider-frame")
            assert [frames.nth(i).is_visible() for i in range(3)] == [False, False, True]
        if info["url"].endswith("/book/intro.html"):
            checked.add("intro")
            board = page.locator("#scoreboard")
            assert "Table 2: test table" in board.inner_text() and "38.57" not in board.inner_text()
            board.locator("details > summary").click()  # the row-by-row table opens in the dropdown
            assert "38.57" in board.inner_text()
    assert checked == {"widgets", "intro"}
