"""The book's Sphinx extension (listed in ``_config.yml`` ``sphinx.extra_extensions``).

* Regenerates the landing page's scoreboard include (``book/_generated/scoreboard.md``) from
  ``book/results/*.json`` before any page is read, so the HTML can never show a stale or missing scoreboard
  (see :mod:`restore_core.book.scoreboard`). Config values ``scoreboard_results_dir`` / ``scoreboard_path``
  override the two locations (the tests build a temporary book with them).
* Reads the library's docstring style: argument lines ``name: text`` whose continuation lines are indented
  (which reStructuredText would take for a block quote) are joined to their paragraph, so ``book/api.md`` can
  autodoc any module with warnings as errors. Literal blocks (after ``::``) and list items are left as they are.
* Drops repeated ``<script>`` entries from every page. Jupyter Book 1 registers sphinx-thebe's inline
  configuration script twice, and the second ``const THEBE_JS_URL`` declaration is a JavaScript error on
  every page (the browser test fails on console errors).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .scoreboard import write_scoreboard


def _regenerate_scoreboard(app: Any) -> None:
    toc = app.config["external_toc_path"] if "external_toc_path" in app.config else None
    write_scoreboard(app.config.scoreboard_results_dir, app.config.scoreboard_path,
                     toc=toc or None, srcdir=app.srcdir)


_BULLETS = ("* ", "- ", "+ ")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def join_continuation_lines(lines: List[str]) -> List[str]:
    """Dedent continuation lines (indented deeper than the line above, with no blank line or ``::`` between)
    to their paragraph's indentation; a list item's continuation goes to the item's text column."""
    out: List[str] = []
    owner: Optional[int] = None    # text column of the paragraph the next line may continue
    literal: Optional[int] = None  # indentation of the line that opened a literal block
    for line in lines:
        if not line.strip():
            out.append(line)
            owner = None
            continue
        ind = _indent(line)
        if literal is not None:
            if ind > literal:
                out.append(line)
                continue
            literal = None
        if owner is not None and ind > owner:
            line = " " * owner + line.lstrip(" ")
        else:
            text = line.lstrip(" ")
            owner = ind + (2 if text.startswith(_BULLETS) else 0)
        out.append(line)
        if line.rstrip().endswith("::"):
            literal, owner = _indent(line), None
    return out


def _process_docstring(app: Any, what: str, name: str, obj: Any, options: Any, lines: List[str]) -> None:
    lines[:] = join_continuation_lines(lines)


def _script_key(script: Any) -> Any:
    attrs = getattr(script, "attributes", {}) or {}
    return (str(getattr(script, "filename", script) or ""), tuple(sorted((k, str(v)) for k, v in attrs.items())))


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: Dict[str, Any], doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for s in scripts:
        key = _script_key(s)
        if key not in seen:
            seen.add(key)
            unique.append(s)
    scripts[:] = unique


def setup(app: Any) -> Dict[str, Any]:
    app.add_config_value("scoreboard_results_dir", None, "env")
    app.add_config_value("scoreboard_path", None, "env")
    app.connect("builder-inited", _regenerate_scoreboard)
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
