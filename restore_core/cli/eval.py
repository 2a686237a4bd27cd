"""``restore-core eval``: score a training checkpoint on a folder or on the embedded test split."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

# The library is imported inside the command's functions: `restore-core --help` builds every command's parser,
# and importing restore_core.train / data / models / book for it too measured +0.7-0.85 s on top of 1.7 s.


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "eval", help="evaluate a checkpoint (per-image and mean metrics, results JSON with provenance)",
        description="Evaluate a checkpoint written by `restore-core train`. DATASET is a folder of images (the "
                    "checkpoint's task degrades them the way its validation set does) or the name of the "
                    "embedded split ('embedded' / 'embedded:test'). Metrics default to the config's val.metrics.",
        epilog="examples:\n  restore-core eval experiments/x/checkpoints/step_00000200.pt embedded\n"
               "  restore-core eval CKPT ~/data/Set5/HR --tile 256 --self-ensemble --out results.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint file (step_*.pt) or an experiment folder (its newest one)")
    p.add_argument("dataset", help="a folder of images, or 'embedded' / 'embedded:test'")
    p.add_argument("--metric", action="append", default=[], metavar="NAME[:key=value,...]",
                   help="a metric instead of the config's, e.g. psnr:crop_border=2,test_y_channel=true (repeatable)")
    p.add_argument("--tile", type=int, default=None, help="tiled inference with this tile size (input pixels)")
    p.add_argument("--tile-overlap", type=int, default=32, help="tile overlap in input pixels (default 32)")
    p.add_argument("--self-ensemble", action="store_true", help="x8 geometric self-ensemble")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even when EMA weights exist")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"))
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--out", default=None, help="write the results JSON (with provenance) here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def parse_metric(spec: str) -> tuple:
    """``"psnr:crop_border=2,test_y_channel=true"`` -> ("psnr", {"type": "psnr", "crop_border": 2, ...})."""
    name, _, rest = spec.partition(":")
    opt = {"type": name}
    for item in filter(None, rest.split(",")):
        if "=" not in item:
            raise ValueError(f"--metric {spec!r}: expected key=value after the name")
        k, v = item.split("=", 1)
        opt[k.strip()] = yaml.safe_load(v)
    return name, opt


def run(args: argparse.Namespace) -> int:
    from ..checkpoint_reader import read_training_checkpoint
    from ..train.checkpoint import latest_checkpoint
    from ..train.config import config_from_dict
    from ..train.datasets import eval_dataset
    from ..train.evaluate import evaluate_checkpoint

    ckpt = Path(args.checkpoint)
    if ckpt.is_dir():
        found = latest_checkpoint(ckpt / "checkpoints") or latest_checkpoint(ckpt)
        if found is None:
            raise FileNotFoundError(f"no step_*.pt checkpoint in {ckpt}")
        ckpt = found
    cfg = config_from_dict(read_training_checkpoint(ckpt)["config"])
    dataset = eval_dataset(args.dataset, cfg)
    metrics = dict(parse_metric(m) for m in args.metric) or None
    res = evaluate_checkpoint(ckpt, dataset, metrics=metrics, device=args.device, tile=args.tile,
                              tile_overlap=args.tile_overlap, self_ensemble=args.self_ensemble,
                              use_ema=not args.no_ema, max_images=args.max_images, out_json=args.out,
                              progress=not args.no_progress)
    for row in res.per_image:
        print("  ".join([f"{row['name']:<24}"] + [f"{k} {v:.4f}" for k, v in row.items() if k != "name"]))
    print(json.dumps({"checkpoint": str(ckpt), "dataset": args.dataset, "images": len(res.per_image),
                      "mean": res.mean}, indent=1))
    return 0
