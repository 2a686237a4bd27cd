"""``restore-core book``: execute the book's chapters (``run``) and regenerate its scoreboard (``scoreboard``)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..profiles import CALL_PROFILES, PROFILES
from . import CLIError

# The library is imported inside the command's functions: `restore-core --help` builds every command's parser,
# and importing restore_core.train / data / models / book for it too measured +0.7-0.85 s on top of 1.7 s.


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("book", help="execute the book's chapters; regenerate the scoreboard",
                       description="Execute the executable book and regenerate its landing-page scoreboard.")
    bsub = p.add_subparsers(dest="book_command", metavar="ACTION")
    bsub.required = True

    r = bsub.add_parser(
        "run", help="execute every chapter in _toc.yml with papermill, then regenerate the scoreboard",
        description="Execute the chapters listed in _toc.yml (papermill, kernel python3, cwd book/). "
                    "quick: in place (the committed outputs); cpu / full: into _build/executed/<profile>/, "
                    "results to book/results/, from a committed tree. Stops at the first failing chapter.")
    r.add_argument("--profile", choices=PROFILES, default="quick",
                   help="quick: CPU smoke run, minutes, executed in place; cpu: CPU study (about an hour per "
                        "ablation chapter); full: GPU profile (default: quick)")
    r.add_argument("--chapters", nargs="+", metavar="NAME",
                   help="only these chapters (notebook stem, name without number, or prefix such as 01)")
    r.add_argument("--device", default=None, help="device parameter for the chapters (e.g. cuda, cuda:1, cpu)")
    r.add_argument("--seed", type=int, default=0, help="seed parameter for the chapters (default 0)")
    r.add_argument("--out-dir", default=None,
                   help="out_dir parameter for the chapters: where they store what they write "
                        "(default: their own default, book/results/)")
    r.add_argument("--nproc", type=int, default=1,
                   help="processes per node for chapters that train under torchrun (multi-GPU full profile); "
                        "exported to the kernels as RESTORE_CORE_BOOK_NPROC")
    r.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (default: none)")
    r.add_argument("--toc", default=None, help="table of contents (default: the repository's _toc.yml)")
    r.add_argument("--log-output", action="store_true", help="echo the notebooks' output while they run")
    r.add_argument("--dry-run", action="store_true",
                   help="with --profile cpu or full: the profile's whole path on stand-in data (generated dataset "
                        "folders laid out as the real ones, the profile's presets at full size, 2 steps on small "
                        "patches), on the CPU unless --device says otherwise; results and executed notebooks go to "
                        "--out-dir (default a new temporary folder), are marked dry_run, and the scoreboard is left "
                        "alone")
    r.add_argument("--allow-dirty", action="store_true",
                   help="cpu/full profiles: run although tracked files have uncommitted changes (the results' "
                        "provenance records it)")
    r.set_defaults(func=run)

    s = bsub.add_parser("scoreboard", help="write book/_generated/scoreboard.md from book/results/*.json",
                        description="Regenerate the landing page's scoreboard from the stored results.")
    s.add_argument("--results-dir", default=None, help="results folder (default book/results)")
    s.add_argument("--output", default=None, help="output file (default book/_generated/scoreboard.md)")
    s.set_defaults(func=scoreboard)


def run(args: argparse.Namespace) -> int:
    from ..book.runner import REPO_ROOT, ChapterFailed, run_book
    from ..book.scoreboard import write_scoreboard

    if getattr(args, "dry_run", False):
        return _dry_run(args)
    try:
        toc = Path(args.toc) if args.toc else REPO_ROOT / "_toc.yml"
        run_book(profile=args.profile, chapters=args.chapters, device=args.device, seed=args.seed,
                 out_dir=args.out_dir, nproc=args.nproc, toc=toc, log_output=args.log_output,
                 execution_timeout=args.timeout, allow_dirty=args.allow_dirty)
    except ChapterFailed as exc:
        raise CLIError(str(exc)) from None
    print(f"scoreboard: {write_scoreboard(toc=toc, srcdir=toc.parent)}")
    return 0


def _dry_run(args: argparse.Namespace) -> int:
    from ..book.dry_run import dry_run, mark_dry_run
    from ..book.runner import REPO_ROOT, ChapterFailed, run_book

    if args.profile not in CALL_PROFILES:  # the study profiles
        raise CLIError("--dry-run rehearses a study profile: add --profile cpu or --profile full")
    root = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="restore_core_dry_run_"))
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    print(f"dry run of the {args.profile} profile in {root} (stand-in data in {root / 'data'})")
    try:
        with dry_run(root):
            run_book(profile=args.profile, chapters=args.chapters, device=args.device or "cpu", seed=args.seed,
                     out_dir=results, nproc=args.nproc, toc=args.toc or REPO_ROOT / "_toc.yml",
                     log_output=args.log_output, execution_timeout=args.timeout,
                     executed_dir=root / "executed")
    except ChapterFailed as exc:
        raise CLIError(str(exc)) from None
    finally:
        marked = mark_dry_run(results)
        print(f"dry run: {len(marked)} result file(s) in {results} marked dry_run; executed notebooks in "
              f"{root / 'executed'}")
    return 0


def scoreboard(args: argparse.Namespace) -> int:
    from ..book.scoreboard import write_scoreboard

    path = write_scoreboard(args.results_dir, args.output)
    print(path)
    return 0
