"""The book's table of contents (``_toc.yml``): its entries and the notebook chapters it lists, in book order.

Read by the runner (which chapters to execute) and by the scoreboard (which chapter page a results file links
to); neither imports the other.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, List

import yaml


def toc_entries(node: Any) -> Iterable[str]:
    """Every ``root`` and ``file`` entry of a parsed _toc.yml, in book order."""
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                yield node[key]
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key) or []:
                yield from toc_entries(child)
    elif isinstance(node, list):
        for child in node:
            yield from toc_entries(child)


def toc_chapters(toc: os.PathLike) -> List[Path]:
    """The notebooks ``_toc.yml`` lists, in book order (Markdown pages are skipped).

    Entries are paths relative to the toc's folder, with or without the ``.ipynb`` suffix. A listed entry
    with no file at all raises FileNotFoundError naming it.
    """
    toc = Path(toc)
    if not toc.is_file():
        raise FileNotFoundError(f"table of contents not found: {toc}")
    root = toc.parent
    out: List[Path] = []
    for entry in toc_entries(yaml.safe_load(toc.read_text())):
        path = root / entry
        candidates = [path] if path.suffix else [path.with_suffix(s) for s in (".ipynb", ".md", ".rst")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"_toc.yml lists {entry!r}, but no such page exists under {root}")
        if found.suffix == ".ipynb" and found not in out:
            out.append(found)
    return out
