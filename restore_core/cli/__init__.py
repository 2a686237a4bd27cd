"""The ``restore-core`` command. Each sub-command lives in its own module with a ``register(subparsers)``
function that adds its parser and sets ``func``; the list below is explicit (no scanning).

Each command module imports the library inside its functions, not at its top: building the parser imports every
command module, and importing restore_core.train / data / models / book along with them measured +0.7-0.85 s on
top of the parser's 1.7 s (two CPU cores) for every ``restore-core`` call, ``--help`` included."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

# module name -> sub-command(s) it registers
_COMMAND_MODULES = [
    "models",
    "data",
    "train",
    "eval",
    "book",
    "bench",
    "restore",
    "fuse",
    "inspect",
    "convert",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restore-core",
        description="State-space models for image restoration: train, evaluate, restore, benchmark, data.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in _COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{mod}").register(sub)
    return parser


class CLIError(Exception):
    """An error meant for the user: printed as one line, exit status 2, no traceback."""


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (CLIError, FileNotFoundError, ValueError) as exc:
        print(f"restore-core {args.command}: error: {exc}", file=sys.stderr)
        return 2


def console_main() -> int:
    """The ``restore-core`` program: :func:`main` in a process whose malloc keeps freed tensor memory
    (:func:`restore_core.allocator.reuse_freed_memory`; process-wide, hence here and not in :func:`main`, which
    tests and notebooks call in their own process)."""
    from ..allocator import reuse_freed_memory

    reuse_freed_memory()
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
