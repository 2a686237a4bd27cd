"""``restore-core inspect WEIGHTS.pth``: which architecture / preset a checkpoint fits, and its size.

Reads the file with ``torch.load(..., weights_only=True)``, unwraps BasicSR's ``params_ema`` / ``params``, and
compares its key names and shapes with every official layout known to
:mod:`restore_core.models.official` (released MambaIR, RNAN and FusionMamba presets; for FusionMamba it
also splits the count into what our model loads + the frozen masks + the unused convolutions). Exit status 0 when some preset fits
exactly, 1 when none does (the closest one is named), 2 on an unreadable file.
"""
from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("inspect", help="name the architecture/preset an (official) checkpoint fits",
                       description="Name the architecture and preset a weights file fits (from its key layout "
                                   "and shapes) and count its parameters.")
    p.add_argument("checkpoint", help="weights file (.pth / .pt)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models.official import inspect_checkpoint

    report = inspect_checkpoint(args.checkpoint)
    print(f"{args.checkpoint}:")
    print(report.summary())
    if report.exact and report.exact[0].arch == "fusion_mamba":
        print(f"fuse with: restore-core fuse --official {report.exact[0].name} {args.checkpoint} --ir IR --vis VIS "
              f"-o OUTDIR")
    elif report.exact:
        print(f"restore with: restore-core restore --official {report.exact[0].name} {args.checkpoint} "
              f"INPUT... -o OUTDIR")
    return 0 if report.exact else 1
