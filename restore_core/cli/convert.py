"""``restore-core convert OLD.pt [-o NEW.pt]``: rewrite a training checkpoint of restore_core's earlier format
(RNG states pickled as NumPy objects) in the current one, which loads with ``weights_only=True``.

The old file is read with ``weights_only=True`` and only the NumPy array globals such checkpoints contain
allowed (:func:`restore_core.safe_load.load_legacy`), so converting never runs code from the file either: a
file asking for anything else is refused.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("convert", help="convert an old-format training checkpoint to the safe format",
                       description="Rewrite a restore_core training checkpoint of the earlier format (pickled "
                                   "NumPy RNG states) so that it loads with weights_only=True. Reading the old "
                                   "file admits NumPy arrays and nothing else.")
    p.add_argument("checkpoint", help="old-format checkpoint (step_*.pt)")
    p.add_argument("-o", "--output", help="where to write the converted file (default: replace CHECKPOINT, "
                                          "keeping the original as CHECKPOINT.orig)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.checkpoint import convert_legacy_checkpoint, load_checkpoint

    src = Path(args.checkpoint)
    if args.output:
        dst = Path(args.output)
        convert_legacy_checkpoint(src, dst)
    else:
        dst = src
        tmp = src.with_name(f".{src.name}.converted")
        convert_legacy_checkpoint(src, tmp)
        os.replace(src, src.with_name(src.name + ".orig"))
        os.replace(tmp, dst)
    state = load_checkpoint(dst)  # the proof: it now loads with weights_only=True
    print(f"{src} -> {dst} (step {state.get('step')}, format {state['format']}); it loads with weights_only=True")
    return 0
