"""The book's Sphinx extension (listed in ``_config.yml`` ``sphinx.extra_extensions``).

* Regenerates the landing page's scoreboard include (``book/_generated/scoreboard.md``) from
  ``book/results/*.json`` before any page is read, so the HTML can never show a stale or missing scoreboard
  (see :mod:`restore_core.book.scoreboard`). Config values ``scoreboard_results_dir`` / ``scoreboard_path``
  override the two locations (the tests build a temporary book with them).
* Drops repeated ``<script>`` entries from every page. Jupyter Book 1 registers sphinx-thebe's inline
  configuration script twice, and the second ``const THEBE_JS_URL`` declaration is a JavaScript error on
  every page (the browser test fails on console errors).
"""
from __future__ import annotations

from typing import Any, Dict


def _regenerate_scoreboard(app: Any) -> None:
    from .scoreboard import write_scoreboard

    toc = app.config["external_toc_path"] if "external_toc_path" in app.config else None
    write_scoreboard(app.config.scoreboard_results_dir, app.config.scoreboard_path,
                     toc=toc or None, srcdir=app.srcdir)


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
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
