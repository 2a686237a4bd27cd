"""The notation page's one rule that code can break silently: batch is written ``Bt``, never ``B`` (the SSM's
input matrix), in the shape lines of restore_core's docstrings (book/notation.md)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import restore_core

PACKAGE = Path(restore_core.__file__).parent
# a shape that starts with B, e.g. "x: (B, C, H, W)" or "-> (B, L)"; "(Bt, ...)" and "B: (Bt, N, L)" pass
BATCH_AS_B = re.compile(r"(?<![\w.])\(\s*B\s*,")  # not a call such as corr(B, F)


def _docstrings(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield getattr(node, "lineno", 1), doc


def test_batch_is_never_written_B_in_shape_lines():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for lineno, doc in _docstrings(path):
            for i, line in enumerate(doc.splitlines()):
                if BATCH_AS_B.search(line):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{lineno + i}: {line.strip()}")
    assert not offenders, "write batch as Bt (book/notation.md):\n" + "\n".join(offenders)


def test_the_rule_catches_what_it_should():
    assert BATCH_AS_B.search("x: (B, C, H, W)") and BATCH_AS_B.search("-> ( B, L)")
    assert not BATCH_AS_B.search("x: (Bt, C, H, W)") and not BATCH_AS_B.search("B: (Bt, N, L)")
    assert not BATCH_AS_B.search("SCD = corr(A, F - B) + corr(B, F - A)")
