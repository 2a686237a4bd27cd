"""``restore-core fuse``: fuse infrared / visible pairs with a fusion model (FusionMamba), e.g. released weights.

    restore-core fuse --official fusion_mamba:ir_vis W.pth --ir ir.png --vis vis.png -o OUTDIR
    restore-core fuse --official fusion_mamba:ct_mri W.pth --ir FOLDER_A --vis FOLDER_B -o OUTDIR   # folders
    restore-core fuse CKPT.pt --ir ir.png --vis vis.png -o OUTDIR        # a restore_core training checkpoint
    restore-core fuse W.pth --arch fusion_mamba --preset tiny --ir ... --vis ... -o OUTDIR   # a plain state dict

The released pipeline (restore_core/fusion_inference.py): grey infrared, the visible image's luma Y, output
clipped to [0, 1] and stretched to the full range (``--no-stretch``: clipped only), recoloured with the visible
image's Cr / Cb when it is a colour image; any size (no 256x256 resize). ``--ir`` / ``--vis``: two files, or two
folders whose images are paired in sorted order (as the released test.py does; the counts must agree). Results:
``OUTDIR/<visible name><suffix>.png`` (8-bit), written atomically. For CT-MRI weights, ``--vis`` is the image the
released code took as its first input (its "visible" branch) and ``--ir`` the other.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Tuple

import torch

from .restore import collect_inputs, load_model


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("fuse", help="fuse infrared/visible image pairs (FusionMamba)",
                       description="Fuse registered infrared / visible pairs with a fusion model: released "
                                   "FusionMamba weights (--official), a plain state dict (--arch/--preset) or a "
                                   "restore_core training checkpoint.")
    p.add_argument("checkpoint", help="official weights file, state dict, or training checkpoint")
    p.add_argument("--ir", required=True, help="infrared image, or a folder of them")
    p.add_argument("--vis", required=True, help="visible image (grey or colour), or a folder of them")
    p.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    p.add_argument("--official", metavar="ARCH:PRESET",
                   help="the checkpoint is a released official file, e.g. fusion_mamba:ir_vis, fusion_mamba:ct_mri, "
                        "fusion_mamba:ct_mri_tiny (see `restore-core inspect WEIGHTS`)")
    p.add_argument("--arch", help="architecture of a plain state dict (with --preset)")
    p.add_argument("--preset", help="preset of a plain state dict (with --arch)")
    p.add_argument("--no-stretch", action="store_true",
                   help="only clip the output to [0, 1] (the released test.py also stretches it to min..max)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument("--suffix", default="", help="appended to each output file name (before .png)")
    p.set_defaults(func=run)


def collect_pairs(ir: str, vis: str) -> List[Tuple[Path, Path]]:
    """(infrared, visible) file pairs: two files, or two folders paired in sorted order."""
    ir_p, vis_p = Path(ir), Path(vis)
    if ir_p.is_dir() != vis_p.is_dir() and ir_p.exists() and vis_p.exists():
        raise ValueError(f"--ir and --vis must both be files or both be folders: {ir_p}, {vis_p}")
    irs, viss = collect_inputs([ir]), collect_inputs([vis])
    if len(irs) != len(viss):
        raise ValueError(f"{len(irs)} infrared images in {ir_p} but {len(viss)} visible images in {vis_p}: "
                         "folders are paired in sorted order and must hold the same number")
    return list(zip(irs, viss))


def _fusion_model(model: torch.nn.Module, what: str) -> None:
    from ..models.fusion_mamba import FusionMamba

    if not isinstance(model, FusionMamba):
        raise ValueError(f"{what} is a {type(model).__name__}, not a fusion model; use `restore-core restore`")


def run(args: argparse.Namespace) -> int:
    from ..data.io import read_image_uint, to_float_tensor, write_image
    from ..fusion_inference import fuse_images

    pairs = collect_pairs(args.ir, args.vis)
    targets = [Path(args.output) / f"{v.stem}{args.suffix}.png" for _, v in pairs]
    for i, dst in enumerate(targets):
        if dst in targets[:i]:
            raise ValueError(f"two pairs would both be written to {dst}; rename one or use separate runs")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
    model, _, what = load_model(args.checkpoint, args.official, args.arch, args.preset)
    _fusion_model(model, what)
    model.to(device)
    print(f"model: {what}; {sum(p.numel() for p in model.parameters()):,} parameters on {device}")
    Path(args.output).mkdir(parents=True, exist_ok=True)
    for (ir_path, vis_path), dst in zip(pairs, targets):
        ir_arr, vis_arr = read_image_uint(ir_path), read_image_uint(vis_path)
        fused = fuse_images(model, to_float_tensor(ir_arr), to_float_tensor(vis_arr),
                            ir_8bit=ir_arr.dtype.itemsize == 1, vis_8bit=vis_arr.dtype.itemsize == 1,
                            stretch_output=not args.no_stretch, device=device)
        write_image(dst, fused)
        print(f"{ir_path} + {vis_path} -> {dst}")
    return 0
