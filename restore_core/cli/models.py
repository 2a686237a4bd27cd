"""``restore-core models``: list architectures, their presets and their switches (config options)."""
from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("models", help="list architectures, presets and switches",
                       description="List the registered architectures; with ARCH, its presets and switches.")
    p.add_argument("arch", nargs="?", help="architecture name (e.g. mambair)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import list_archs, list_presets, list_switches, preset_doc

    if args.arch is None:
        for a in list_archs():
            print(f"{a}: {', '.join(list_presets(a))}")
        return 0
    print(f"{args.arch} presets:")
    for p in list_presets(args.arch):
        doc = preset_doc(args.arch, p)
        print(f"  {p}" + (f"  -- {doc}" if doc else ""))
    print(f"{args.arch} switches (config options, default):")
    for k, v in list_switches(args.arch).items():
        print(f"  {k} = {v!r}")
    return 0
