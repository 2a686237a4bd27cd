"""The package's seams: no import cycles between restore_core's modules, the training loop asks a Task object
instead of branching on a task string, and every file is read through one checkpoint reader."""
import ast
import re
from pathlib import Path
from typing import Dict, List, Set

import restore_core

PACKAGE_DIR = Path(restore_core.__file__).resolve().parent
PACKAGE = "restore_core"


def _module_name(path: Path, package_dir: Path) -> str:
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(tree: ast.Module, module_level_only: bool) -> List[ast.stmt]:
    """The import statements of a module, except those under ``if TYPE_CHECKING`` (never executed).
    ``module_level_only``: only those run when the module is imported (not inside functions or classes)."""
    found: List[ast.stmt] = []

    def walk(body: List[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                walk(node.orelse)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and module_level_only:
                continue
            else:
                for name in ("body", "orelse", "finalbody", "handlers"):
                    walk([n for n in getattr(node, name, []) if isinstance(n, ast.AST)])

    walk(tree.body)
    return found


def import_graph(package_dir: Path = PACKAGE_DIR, module_level_only: bool = True) -> Dict[str, Set[str]]:
    """``{module: {restore_core modules it imports}}`` over every .py file of the package (at module level, or
    anywhere with ``module_level_only=False``: a deferred import inside a function still runs the other module,
    so a cycle through one is a cycle all the same, only hidden until the function is called)."""
    files = {_module_name(p, package_dir): p for p in package_dir.rglob("*.py")}
    graph: Dict[str, Set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8")), module_level_only):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                # "from . import checkpoint" names a submodule; "from .config import X" the module itself
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in files else stem for a in node.names]
            for t in targets:
                while t and t not in files and "." in t:
                    t = t.rpartition(".")[0]
                if t not in files or t.split(".")[0] != PACKAGE:
                    continue
                # importing a.b.c runs a/__init__ and a/b/__init__ first, unless they are already being imported
                # (the importing module's own packages)
                parts = t.split(".")
                for t2 in [".".join(parts[:i]) for i in range(1, len(parts))] + [t]:
                    if t2 != mod and t2 in files and not (mod + ".").startswith(t2 + "."):
                        graph[mod].add(t2)
    return graph


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_cycles():
    for module_level_only in (True, False):
        cycles = find_cycles(import_graph(module_level_only=module_level_only))
        assert cycles == [], ("import cycles between restore_core modules" + " (module level)" * module_level_only
                              + ": " + "; ".join(" <-> ".join(c) for c in cycles))


def test_the_cycle_check_finds_a_cycle(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from .b import x\n")
    (pkg / "sub" / "b.py").write_text("import os\n\ndef f():\n    from .a import y\n")
    assert find_cycles(import_graph(pkg)) == []  # an import inside a function is not a module-level edge
    assert find_cycles(import_graph(pkg, module_level_only=False)) == [[f"{PACKAGE}.sub.a", f"{PACKAGE}.sub.b"]]
    (pkg / "sub" / "b.py").write_text("from . import a\n")
    assert find_cycles(import_graph(pkg)) == [[f"{PACKAGE}.sub.a", f"{PACKAGE}.sub.b"]]
    (pkg / "sub" / "b.py").write_text("from ..sub.a import y\n")
    assert find_cycles(import_graph(pkg)) == [[f"{PACKAGE}.sub.a", f"{PACKAGE}.sub.b"]]
    # importing restore_core.other.c runs other/__init__, which imports sub.a back
    (pkg / "sub" / "b.py").write_text("import typing\n")
    (pkg / "other").mkdir()
    (pkg / "other" / "__init__.py").write_text("from ..sub import a\n")
    (pkg / "other" / "c.py").write_text("X = 1\n")
    (pkg / "sub" / "a.py").write_text("from ..other.c import X\n")
    assert find_cycles(import_graph(pkg)) == [[f"{PACKAGE}.other", f"{PACKAGE}.sub.a"]]


TASK_STRING_BRANCH = re.compile(r"""task\s*(==|!=|\bin\b|\bis\b)|(==|!=)\s*["'](fusion|restoration)["']""")


def test_training_asks_the_task_object_and_never_branches_on_its_name():
    train_dir = PACKAGE_DIR / "train"
    offenders = []
    for path in sorted(train_dir.glob("*.py")):
        if path.name == "task.py":  # where the tasks are defined
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if TASK_STRING_BRANCH.search(code):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == [], "branches on the task outside restore_core/train/task.py:\n" + "\n".join(offenders)
    trainer = (train_dir / "trainer.py").read_text(encoding="utf-8")
    evaluate = (train_dir / "evaluate.py").read_text(encoding="utf-8")
    assert "self.task.training_loss(" in trainer and "self.task.build_loss(" in trainer
    assert "task.score(" in evaluate


def test_the_config_names_a_task_object():
    from restore_core.train.config import config_from_dict
    from restore_core.train.task import FUSION, RESTORATION, Task

    base = {"train": {"pixel_opt": {"type": "L1Loss"}, "fusion_opt": {"type": "FusionLoss"}}}
    assert config_from_dict({**base, "model_type": "SRModel"}).task is RESTORATION
    fusion = config_from_dict({**base, "model_type": "FusionModel"}).task
    assert fusion is FUSION and isinstance(fusion, Task) and fusion == "fusion"


def _called_names(tree: ast.AST) -> Set[str]:
    """``torch.load``, ``load_untrusted`` ... for every call ``torch.load(...)`` / ``load_untrusted(...)`` in ``tree``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                out.add(f.id)
            elif isinstance(f, ast.Attribute):
                out.add(f"{ast.unparse(f.value)}.{f.attr}" if isinstance(f.value, ast.Name) else f.attr)
                out.add(f.attr)
    return out


def test_every_file_is_read_through_the_one_checkpoint_reader():
    """torch.load is called in safe_load.py alone; load_untrusted by checkpoint_reader.py alone (and load_legacy
    by the converter of the earlier checkpoint format)."""
    callers: Dict[str, List[str]] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        called = _called_names(ast.parse(path.read_text(encoding="utf-8")))
        for fn in ("torch.load", "load_untrusted", "load_legacy"):
            if fn in called:
                callers.setdefault(fn, []).append(path.relative_to(PACKAGE_DIR).as_posix())
    assert callers == {"torch.load": ["safe_load.py"], "load_untrusted": ["checkpoint_reader.py"],
                       "load_legacy": ["train/checkpoint.py"]}, callers


def test_the_book_runner_does_not_depend_on_the_scoreboard():
    """The runner executes chapters; the CLI regenerates the scoreboard after it (issue #19 item 2)."""
    graph = import_graph(module_level_only=False)
    runner = f"{PACKAGE}.book.runner"
    assert f"{PACKAGE}.book.toc" in graph[runner]             # the table of contents has its own module
    assert f"{PACKAGE}.book.scoreboard" not in graph[runner]
