"""The book runner: execute every chapter listed in ``_toc.yml`` with papermill, then regenerate the scoreboard.

``restore-core book run`` (and ``make book``) calls :func:`run_book`. Where the executed notebooks go:

* **quick** (the default): every chapter is executed *in place* (``book/NN_name.ipynb``), because the quick
  profile's outputs are what the repository commits and what nbval compares in CI. The chapters run into a
  staging folder (``_build/executed/staging-*``; their ``book/results/*.quick.json`` too, through
  ``RESTORE_CORE_RESULTS_OUT``), and the executed notebooks and results replace the committed ones only after the
  last chapter ran, so no chapter sees the files an earlier one rewrote (each records the same clean commit in its
  provenance) and a failing chapter never leaves a notebook half-executed (the failed copy is kept under
  ``_build/executed/failed/``; the chapters that succeeded before it are still put in place).
* **cpu** and **full**: every chapter is executed into a separate copy, ``_build/executed/<profile>/NN_name.ipynb``,
  and the committed notebooks keep their quick outputs; the chapters write ``book/results/<chapter>.<profile>.json``,
  which the committed chapters and the scoreboard then show. These results must come from a committed tree: the
  runner refuses a tree with uncommitted changes to tracked files unless ``allow_dirty`` is given, which the
  results' provenance then records (``dirty_tree_allowed``). (The copies live outside ``book/`` so that nbval, which
  collects every notebook under ``book/``, never compares a full-profile copy with quick-profile outputs.) The chapters themselves write their results to
  ``book/results/<chapter>.full.json`` (:func:`restore_core.book.results.save_results`), which the scoreboard
  on the landing page picks up.

Every chapter runs with kernel ``python3`` and working directory ``book/``. The kernels get
``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it: OpenMP threads that spin while waiting make a kernel
10-50x slower whenever another process uses the cores (measured on 2 cores beside a second torch process). Parameters are injected only where
they differ from a chapter's defaults (``profile="quick"``, ``seed=0``, ``device=None``, ``out_dir=None``), so an
in-place quick run adds no "injected-parameters" cell. ``BOOK_PROFILE`` is set to the profile for the
kernels, so a profile inherited from the environment (CI sets ``BOOK_PROFILE=quick``) cannot override the
requested one.

Multi-GPU: ``run_book(..., nproc=8)`` (``restore-core book run --profile full --nproc 8``) exports
``RESTORE_CORE_BOOK_NPROC=8`` to the kernels. A chapter that trains calls :func:`train_nproc` and, when it is
above 1, launches its training with ``restore_core.train.distributed.launch_train(config, nproc=...,
profile=...)`` (torchrun, one process per GPU) instead of training inside the kernel.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from tqdm.auto import tqdm

from .. import provenance
from ..fsutil import chmod_like_new_file
from ..profiles import DEFAULT_PROFILE, PROFILES
from .dry_run import is_dry_run
from .results import RESULTS_DIR, RESULTS_OUT_ENV
from .scoreboard import write_scoreboard
from .toc import toc_chapters

REPO_ROOT = Path(__file__).resolve().parents[2]
NPROC_ENV = "RESTORE_CORE_BOOK_NPROC"
ALLOW_DIRTY_ENV = "RESTORE_CORE_ALLOW_DIRTY"
_DEFAULTS: Dict[str, Any] = {"profile": DEFAULT_PROFILE, "seed": 0, "device": None, "out_dir": None}


class ChapterFailed(RuntimeError):
    """A chapter raised while executing; the message names the chapter, the cell and the error."""


@dataclass
class ChapterTiming:
    chapter: str
    seconds: float
    output: Path


def train_nproc() -> int:
    """How many processes a chapter should train with (``RESTORE_CORE_BOOK_NPROC``; 1 when unset)."""
    value = os.environ.get(NPROC_ENV, "1")
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{NPROC_ENV} must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"{NPROC_ENV} must be a positive integer, got {n}")
    return n


def select_chapters(all_chapters: Sequence[Path], wanted: Optional[Sequence[str]]) -> List[Path]:
    """Filter by name: each wanted item matches a notebook's stem, its stem without the number prefix, or
    a prefix of the stem (``01``, ``01_ssm``); raises ValueError for a name that matches nothing."""
    if not wanted:
        return list(all_chapters)
    chosen: List[Path] = []
    for w in wanted:
        w = Path(w).stem
        hits = [p for p in all_chapters
                if p.stem == w or p.stem.split("_", 1)[-1] == w or p.stem.startswith(w)]
        if not hits:
            names = ", ".join(p.stem for p in all_chapters) or "none"
            raise ValueError(f"no chapter matches {w!r} (chapters in _toc.yml: {names})")
        chosen += [h for h in hits if h not in chosen]
    return [p for p in all_chapters if p in chosen]


def chapter_parameters(profile: str, seed: int = 0, device: Optional[str] = None,
                       out_dir: Optional[os.PathLike] = None) -> Dict[str, Any]:
    """The papermill parameters to inject: only those that differ from the chapters' defaults."""
    values = {"profile": profile, "seed": seed, "device": device,
              "out_dir": None if out_dir is None else str(Path(out_dir).resolve())}
    return {k: v for k, v in values.items() if v != _DEFAULTS[k]}


def _failure_message(nb_path: Path, exc: BaseException, kept: Optional[Path]) -> str:
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    where = f" in cell [{cell}]" if cell is not None else ""
    lines = str(evalue).strip().splitlines()
    msg = f"chapter {nb_path.stem} failed{where}: {ename}: {lines[-1] if lines else ''}".rstrip(": ")
    if kept is not None:
        msg += f" (executed copy with the traceback: {kept})"
    return msg


def local_kernel_manager() -> type:
    """A kernel manager whose kernel talks over Unix sockets (ZeroMQ ``ipc``) instead of loopback TCP.

    The kernel runs on this machine anyway; sockets in Jupyter's runtime folder (owner-only) need no free TCP
    ports and are not reachable by other users, and ipykernel then has no reason to print its "running over TCP
    without encryption" warning for every chapter. Where Unix sockets are unavailable (Windows) or their path
    would be too long for the OS, the default TCP manager is returned.
    """
    # deferred (here and for papermill / nbformat below): the book extra's optional dependencies, ~0.4-1.6 s
    # each to import (python -X importtime), needed only when chapters run
    from jupyter_client import AsyncKernelManager

    if os.name != "posix":
        return AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import CaselessStrEnum, default

    runtime = Path(jupyter_runtime_dir()).resolve()
    longest = f"{runtime}/kernel-{os.getpid()}-{'f' * 16}-ipc-99999"
    if len(os.fsencode(longest)) >= 108:  # a socket's path must fit the OS's sun_path (108 bytes on Linux)
        return AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _ip_default(self) -> str:
            # absolute: the kernel's working directory (book/) differs from ours
            runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
            return str(runtime / f"kernel-{os.getpid()}-{id(self):x}-ipc")

    return LocalKernelManager


def run_chapter(nb_path: Path, output: Path, parameters: Dict[str, Any], cwd: Path, kernel: str = "python3",
                log_output: bool = False, failed_dir: Optional[Path] = None,
                execution_timeout: Optional[int] = None, record_as: Optional[Path] = None) -> float:
    """Execute one notebook into ``output`` (atomically: a temporary file replaces it on success).

    record_as: the path the notebook's papermill metadata names as its output (default ``output``; a staged quick
    run records the chapter's own path). Returns the seconds it took; raises :class:`ChapterFailed` naming the
    chapter and cell on error.
    """
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.stem}.", suffix=".ipynb")
    os.close(fd)
    tmp = Path(tmp_name)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(nb_path), str(tmp), parameters=parameters or None, kernel_name=kernel,
                            cwd=str(cwd), progress_bar=False, log_output=log_output,
                            execution_timeout=execution_timeout, kernel_manager_class=local_kernel_manager())
    except BaseException as exc:  # noqa: BLE001 -- re-raised with the chapter named
        kept = None
        if failed_dir is not None and tmp.exists() and tmp.stat().st_size > 0:
            failed_dir.mkdir(parents=True, exist_ok=True)
            kept = failed_dir / nb_path.name
            shutil.move(str(tmp), kept)
        tmp.unlink(missing_ok=True)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ChapterFailed(_failure_message(nb_path, exc, kept)) from exc
    _record_output_path(tmp, record_as or output)
    chmod_like_new_file(tmp)
    os.replace(tmp, output)
    return time.perf_counter() - t0


def _record_output_path(tmp: Path, output: Path) -> None:
    """papermill recorded the temporary file as the output; record the real one."""
    import nbformat

    nb = nbformat.read(str(tmp), as_version=4)
    meta = nb.metadata.get("papermill")
    if meta is not None and meta.get("output_path") != str(output):
        meta["output_path"] = str(output)
        nbformat.write(nb, str(tmp))


def executed_path(nb_path: Path, profile: str, executed_dir: Path) -> Path:
    """Where a chapter's executed notebook goes: in place for quick, ``executed_dir/<profile>/`` otherwise."""
    return nb_path if profile == "quick" else executed_dir / profile / nb_path.name


class _Staging:
    """A quick run's executed notebooks and results, held outside ``book/`` until every chapter has run."""

    def __init__(self, executed_dir: Path) -> None:
        executed_dir.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="staging-", dir=executed_dir))
        self.results = self.folder / "results"
        self.results.mkdir()
        self.notebooks: List[tuple] = []

    def add(self, staged: Path, final: Path) -> None:
        self.notebooks.append((staged, final))

    def install(self, results_dir: Optional[os.PathLike] = None) -> None:
        """Move the staged notebooks over the chapters and the staged results into ``results_dir`` (default
        ``book/results``), each with an atomic rename, then remove the staging folder."""
        for staged, final in self.notebooks:
            os.replace(staged, final)
        target = Path(results_dir or RESULTS_DIR)
        for doc in sorted(self.results.glob("*.json")):
            target.mkdir(parents=True, exist_ok=True)
            shutil.move(str(doc), str(target / doc.name))
        shutil.rmtree(self.folder, ignore_errors=True)


class DirtyTreeError(ValueError):
    """Results of a study profile were asked for from a tree with uncommitted changes."""


def check_clean_tree(profile: str, allow_dirty: bool) -> None:
    """Raise :class:`DirtyTreeError` when ``profile`` stores results (cpu, full) and tracked files have
    uncommitted changes, unless ``allow_dirty``."""
    if profile == "quick" or allow_dirty:
        return
    commit = provenance.git_commit()  # looked up at call time (the tests replace it)
    if commit.endswith("+dirty"):
        raise DirtyTreeError(f"the {profile} profile stores results, which must come from a committed tree, but "
                             f"{REPO_ROOT} has uncommitted changes to tracked files: commit them first (or pass "
                             f"--allow-dirty, which the results file then records)")


def run_book(profile: str = "quick", chapters: Optional[Sequence[str]] = None, device: Optional[str] = None,
             seed: int = 0, out_dir: Optional[os.PathLike] = None, nproc: int = 1,
             toc: os.PathLike = REPO_ROOT / "_toc.yml", kernel: str = "python3", log_output: bool = False,
             execution_timeout: Optional[int] = None, scoreboard: bool = True,
             results_dir: Optional[os.PathLike] = None, scoreboard_path: Optional[os.PathLike] = None,
             progress: bool = True, echo=print, allow_dirty: bool = False,
             executed_dir: Optional[os.PathLike] = None) -> List[ChapterTiming]:
    """Execute the book's chapters (all of ``_toc.yml``, or those named in ``chapters``) and regenerate the
    scoreboard; returns the per-chapter timings (also printed as a summary table).

    profile: "quick" (CPU smoke run, in place), "cpu" (CPU study) or "full" (GPU profile), the last two into
    _build/executed/<profile>/ next to the toc, from a committed tree (:func:`check_clean_tree`).
    device, seed, out_dir: chapter parameters (``out_dir`` is where chapters store what they write).
    nproc: processes for chapters' training under torchrun (see the module docstring).
    executed_dir: where non-quick profiles' executed notebooks go (default ``_build/executed`` next to the toc).
    allow_dirty: run a cpu / full profile although tracked files have uncommitted changes (recorded in the results'
    provenance); a dry run (:mod:`restore_core.book.dry_run`) never needs a clean tree.
    Stops at the first failing chapter with :class:`ChapterFailed` naming it.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    check_clean_tree(profile, allow_dirty or is_dry_run())
    toc = Path(toc)
    executed_dir = Path(executed_dir) if executed_dir is not None else toc.parent / "_build" / "executed"
    todo = select_chapters(toc_chapters(toc), chapters)
    if not todo:
        echo(f"no notebook chapters listed in {toc}")
    params = chapter_parameters(profile, seed=seed, device=device, out_dir=out_dir)
    env_keys = {"BOOK_PROFILE": profile, NPROC_ENV: str(nproc), ALLOW_DIRTY_ENV: "1" if allow_dirty else "",
                "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY") or "PASSIVE"}
    staging = _Staging(executed_dir) if profile == "quick" else None
    if staging is not None and out_dir is None and not os.environ.get(RESULTS_OUT_ENV):
        env_keys[RESULTS_OUT_ENV] = str(staging.results)
    saved = {k: os.environ.get(k) for k in env_keys}
    os.environ.update(env_keys)
    timings: List[ChapterTiming] = []
    try:
        bar = tqdm(todo, desc=f"book ({profile})", unit="chapter", disable=not progress or None)
        for nb in bar:
            bar.set_postfix_str(nb.stem)
            final = executed_path(nb, profile, executed_dir)
            out = staging.folder / nb.name if staging is not None else final
            secs = run_chapter(nb, out, params, cwd=nb.parent, kernel=kernel, log_output=log_output,
                               failed_dir=executed_dir / "failed",
                               execution_timeout=execution_timeout, record_as=final)
            if staging is not None:
                staging.add(out, final)
            timings.append(ChapterTiming(nb.stem, secs, final))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if staging is not None:
            staging.install(results_dir)
        if timings:
            echo(format_timings(timings, profile))
    if scoreboard:
        path = write_scoreboard(results_dir, scoreboard_path, toc=toc, srcdir=toc.parent)
        echo(f"scoreboard: {path}")
    return timings


def format_timings(timings: Sequence[ChapterTiming], profile: str) -> str:
    """A small table: chapter, seconds, where the executed notebook is; plus the total."""
    width = max([len(t.chapter) for t in timings] + [7])
    lines = [f"{'chapter':<{width}}  {'time':>8}  executed notebook ({profile} profile)"]
    for t in timings:
        lines.append(f"{t.chapter:<{width}}  {t.seconds:>7.1f}s  {t.output}")
    lines.append(f"{'total':<{width}}  {sum(t.seconds for t in timings):>7.1f}s")
    return "\n".join(lines)


class BookBuildFailed(RuntimeError):
    """``jupyter-book build`` exited non-zero; the message holds the warnings and errors it printed."""


def build_html(root: os.PathLike = REPO_ROOT, path_output: Optional[os.PathLike] = None,
               toc: Optional[os.PathLike] = None, config: Optional[os.PathLike] = None,
               warnings_as_errors: bool = True, timeout: float = 600.0) -> Path:
    """Build the HTML book with ``jupyter-book build ROOT -W --keep-going`` (no execution: the chapters'
    stored outputs are rendered); returns the ``.../_build/html`` folder.

    Raises :class:`BookBuildFailed` with every warning/error line when the build fails.
    """
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root)]
    if warnings_as_errors:
        cmd += ["-W", "--keep-going"]
    if path_output is not None:
        cmd += ["--path-output", str(path_output)]
    if toc is not None:
        cmd += ["--toc", str(toc)]
    if config is not None:
        cmd += ["--config", str(config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(root))
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        problems = [ln for ln in text.splitlines() if "WARNING" in ln or "ERROR" in ln or "Error" in ln]
        detail = "\n".join(problems[-40:]) or text[-4000:]
        raise BookBuildFailed(f"jupyter-book build failed (exit {proc.returncode}):\n{detail}")
    return Path(path_output or root) / "_build" / "html"
