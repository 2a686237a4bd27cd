"""``restore-core bench``: benchmarks; ``bench scan`` times the selective-scan backends, ``bench model`` a model."""
from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("bench", help="benchmarks (scan: selective-scan backends against their floors)",
                       description="Benchmarks, timed in one process on the same inputs; read the ratios.")
    what = p.add_subparsers(dest="what", metavar="WHAT")
    what.required = True
    from ..bench import add_scan_arguments

    scan = what.add_parser("scan", help="time every available scan backend and mambapy's pscan",
                           description="Forward and forward+backward medians per backend, the exp and "
                                       "bandwidth floors, and speed-up ratios.")
    add_scan_arguments(scan)
    scan.set_defaults(func=run)
    from ..bench import add_model_arguments

    model = what.add_parser("model", help="a model's forward pass: ours vs the official-layout reference, and "
                                          "the floor", description="In one process: our forward pass (median), "
                            "the official-layout module with the reference scan, and the floor (MACs at the "
                            "measured GEMM rate + exps at the measured vector-exp rate).")
    add_model_arguments(model)
    model.set_defaults(func=run_model)


def run(args: argparse.Namespace) -> int:
    from ..bench import run_scan_from_args

    return run_scan_from_args(args)


def run_model(args: argparse.Namespace) -> int:
    from ..bench import run_model_from_args

    run_model_from_args(args)
    return 0
