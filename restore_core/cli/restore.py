"""``restore-core restore``: restore image files with a trained checkpoint or released official weights.

    restore-core restore CKPT INPUT... -o OUTDIR                          # a restore_core training checkpoint
    restore-core restore WEIGHTS.pth INPUT... -o OUTDIR --arch rnan --preset color_dn   # a plain state dict
    restore-core restore --official mambair:light_sr_x2 WEIGHTS.pth INPUT... -o OUTDIR  # released weights

Fusion models (FusionMamba) take two images: ``restore-core fuse`` (restore_core/cli/fuse.py).

INPUT: image files (PNG / JPEG / BMP / TIFF / WebP, 8- or 16-bit, grey or colour, with or without alpha) or
folders of them. Each result ``OUTDIR/<name><suffix>.<ext>`` is written atomically in the input's own form
(restore_core/data/image_file.py): 16-bit stays 16-bit (never rounded to 8 bits on the way), grey stays grey,
alpha is carried (not restored: copied, or for SR upscaled with the MATLAB bicubic of
restore_core/data/imresize.py and clipped), the EXIF orientation is applied on reading and not written again,
the ICC profile is copied. ``--format same`` (default) keeps PNG, TIFF and JPEG inputs in their format and writes
everything else as PNG; ``--format png|tiff|jpg`` chooses, and a format that cannot hold the result (16-bit or
alpha to JPEG) is an error before any work (no silent down-conversion). A grey input to a colour model is
repeated to RGB and the output turned back into one channel by BT.601 luma (0.299 R + 0.587 G + 0.114 B, as
for colour inputs to a grey model); a grey model takes it directly. Runs on the GPU when present
(``--device``), tiles large inputs (``--tile``, ``--tile-overlap``; by default 128-pixel tiles above 320x320
pixels, which keeps a 4000x3000 photo with mambair:light_sr_x2 under 4 GB: see the README) with a tqdm
progress bar and ETA over tiles, and averages the x8 geometric self-ensemble with ``--self-ensemble``. See
restore_core/inference.py.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

# The library is imported inside the command's functions: `restore-core --help` builds every command's parser,
# and importing restore_core.train / data / models / book for it too measured +0.7-0.85 s on top of 1.7 s.

log = logging.getLogger(__name__)

AUTO_TILE = 128          # tile side used when --tile is not given and the image exceeds AUTO_TILE_PIXELS
AUTO_TILE_PIXELS = 320 * 320


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "restore", help="restore images with a checkpoint or official weights",
        description="Restore images (denoise, super-resolve, ...) with a restore_core training checkpoint, a "
                    "plain state dict (--arch/--preset) or released MambaIR / RNAN weights (--official).")
    p.add_argument("checkpoint", help="training checkpoint (.pt), state dict, or official weights file")
    p.add_argument("inputs", nargs="+", help="image files or folders of images")
    p.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    p.add_argument("--official", metavar="ARCH:PRESET",
                   help="the checkpoint is a released official file of this preset, e.g. mambair:light_sr_x2, "
                        "rnan:color_dn (see `restore-core inspect WEIGHTS` to find it)")
    p.add_argument("--arch", help="architecture of a plain state dict (with --preset)")
    p.add_argument("--preset", help="preset of a plain state dict (with --arch)")
    p.add_argument("--tile", type=int, default=None,
                   help=f"tile side in input pixels (default: {AUTO_TILE} for images above "
                        f"{AUTO_TILE_PIXELS} pixels, else whole images; 0: never tile)")
    p.add_argument("--tile-overlap", type=int, default=32, help="pixels shared by neighbouring tiles (32)")
    p.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (x8 slower)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument("--suffix", default="", help="appended to each output file name (before the extension)")
    p.add_argument("--format", default="same", choices=("same", "png", "tiff", "jpg"),
                   help="output file type (default: same as the input for PNG/TIFF/JPEG, else PNG); a format that "
                        "cannot hold the image (16-bit or alpha to jpg) is an error")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def collect_inputs(items: List[str]) -> List[Path]:
    """Image files named directly or found (non-recursively, sorted) in named folders; errors name the item."""
    from ..data.io import is_image_file

    out: List[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and is_image_file(q))
            if not found:
                raise ValueError(f"folder {p} contains no image files")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"input {p} does not exist")
    for p in out:  # fail before any work on a file that is not an image (decoding errors surface later)
        _check_header(p)
    return out


def _check_header(path: Path) -> None:
    from ..data.io import ImageFormatError

    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 - the header parsed
    except (UnidentifiedImageError, OSError):
        raise ImageFormatError(f"{path} is not a readable image file") from None


def _in_channels(model: nn.Module) -> int:
    declared = getattr(model, "in_channels", None)  # MambaIR, RNAN
    if isinstance(declared, int):
        return declared
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise ValueError(f"cannot tell how many channels {type(model).__name__} expects (no Conv2d)")


def load_model(checkpoint: str, official: Optional[str], arch: Optional[str],
               preset: Optional[str]) -> Tuple[nn.Module, float, str]:
    """The model to run, its pixel range and a one-line description of what was loaded."""
    from ..checkpoint_reader import read_state_dict, read_training_checkpoint, training_weights
    from ..models import build_model
    from ..models.official import from_official, official_format
    from ..models.weights import load_weights
    from ..safe_load import UnsafeFileError
    from ..train.builders import build_network
    from ..train.config import config_from_dict

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if official is not None:
        if arch or preset:
            raise ValueError("--official ARCH:PRESET replaces --arch/--preset; give one or the other")
        if ":" not in official:
            raise ValueError(f"--official expects ARCH:PRESET (e.g. mambair:light_sr_x2), got {official!r}")
        a, pr = official.split(":", 1)
        try:
            fmt = official_format(a, pr)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        sd, note = read_state_dict(path)
        return from_official(a, pr, sd), fmt.pixel_range, f"official {fmt.name} weights ({note}) from {path}"
    if arch or preset:
        if not (arch and preset):
            raise ValueError("a plain state dict needs both --arch and --preset")
        try:
            model = build_model(arch, preset)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        sd, note = read_state_dict(path)
        load_weights(model, sd, source=str(path), target=f"{arch}:{preset}",
                     hint="For released official weights use --official (see `restore-core inspect`)")
        return model.eval(), 1.0, f"{arch}:{preset} state dict ({note}) from {path}"
    try:
        state = read_training_checkpoint(path)
    except UnsafeFileError:
        raise
    except ValueError as exc:
        raise ValueError(f"{exc}. {_official_hint(path)}") from None
    model = build_network(config_from_dict(state["config"]))
    use_ema = state.get("ema") is not None
    load_weights(model, training_weights(state, prefer_ema=True), source=str(path),
                 target="the network its own config describes")
    net = state["config"].get("network_g", {})
    what = f"{net.get('type')}:{net.get('preset')} step {state.get('step')}" + (" (EMA)" if use_ema else "")
    return model.eval(), 1.0, f"training checkpoint {what} from {path}"


def _official_hint(path: Path) -> str:
    """What to add to the command line for a file that is not a training checkpoint."""
    from ..models.official import inspect_checkpoint

    try:
        fits = inspect_checkpoint(path).exact
    except ValueError:
        fits = []
    if fits:
        return (f"It holds official weights that fit {' / '.join(f.name for f in fits)}: add "
                f"--official {fits[0].name}")
    return ("A plain state dict needs --arch and --preset; released official weights need --official "
            f"ARCH:PRESET (`restore-core inspect {path}` names it)")


def output_path(src: Path, outdir: Path, suffix: str = "", fmt: str = "same") -> Path:
    """``outdir/<stem><suffix>.<ext>`` for ``src`` with ``--format fmt``; errors when the format cannot hold it.

    With ``same`` the input's own extension is kept when its format is the output's (``.jpeg`` stays ``.jpeg``).
    """
    from ..data.image_file import EXTENSIONS, output_format, probe_image

    out_fmt = output_format(fmt, probe_image(src), name=str(src))
    ext = src.suffix.lower() if src.suffix.lower() in EXTENSIONS[out_fmt] else EXTENSIONS[out_fmt][0]
    return outdir / f"{src.stem}{suffix}{ext}"


def restore_file(model: nn.Module, src: Path, dst: Path, *, pixel_range: float, tile: Optional[int],
                 tile_overlap: int, use_self_ensemble: bool, device: torch.device, progress: bool) -> Path:
    """Read ``src``, restore it, write ``dst`` (format from its extension) atomically in the input's form.

    Bit depth, grey/colour, alpha (carried; for SR upscaled by MATLAB bicubic and clipped), EXIF and ICC
    profile are kept as the module docstring says.
    """
    from ..data.image_file import load_image, save_image, to_grey
    from ..data.imresize import imresize
    from ..data.io import convert_channels
    from ..inference import restore_tensor

    img = load_image(src)
    x = convert_channels(img.pixels, _in_channels(model))  # (C_model, H, W)
    h, w = x.shape[-2:]
    if tile is None:
        tile = AUTO_TILE if h * w > AUTO_TILE_PIXELS else None
    elif tile == 0:
        tile = None
    if tile is not None and tile <= tile_overlap:
        raise ValueError(f"--tile ({tile}) must be larger than --tile-overlap ({tile_overlap})")
    y = restore_tensor(model, x, tile=tile, tile_overlap=tile_overlap, use_self_ensemble=use_self_ensemble,
                       pixel_range=pixel_range, device=device, progress=progress, desc=src.name)
    del x
    y.clamp_(0, 1)  # (C_out, s*H, s*W)
    if img.info.channels == 1 and y.shape[0] == 3:
        y = to_grey(y)  # grey in, grey out
    alpha = img.alpha
    if alpha is not None and y.shape[-2:] != alpha.shape[-2:]:
        alpha = imresize(alpha, size=tuple(y.shape[-2:])).clamp_(0, 1)  # (1, s*H, s*W), not restored: carried
    return save_image(dst, y, alpha, bits=img.info.bits, icc_profile=img.icc_profile, exif=img.exif)


def _refuse_fusion(args: argparse.Namespace, model: Optional[nn.Module] = None) -> None:
    """Fusion models take two images: point to ``restore-core fuse`` (before loading when the names tell)."""
    named = (args.official or "").split(":")[0] == "fusion_mamba" or args.arch == "fusion_mamba"
    if named or (model is not None and type(model).__name__ == "FusionMamba"):
        raise ValueError("FusionMamba fuses two images: use `restore-core fuse [--official ARCH:PRESET] WEIGHTS "
                         "--ir IR --vis VIS -o OUTDIR`")


def run(args: argparse.Namespace) -> int:
    _refuse_fusion(args)
    inputs = collect_inputs(args.inputs)
    targets = [output_path(src, Path(args.output), args.suffix, args.format) for src in inputs]
    for i, dst in enumerate(targets):
        if dst in targets[:i]:
            raise ValueError(f"two inputs would both be written to {dst}; rename one or use separate runs")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
    model, pixel_range, what = load_model(args.checkpoint, args.official, args.arch, args.preset)
    _refuse_fusion(args, model)
    model.to(device)
    print(f"model: {what}; {sum(p.numel() for p in model.parameters()):,} parameters on {device}")
    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    for src, dst in zip(inputs, targets):
        restore_file(model, src, dst, pixel_range=pixel_range, tile=args.tile, tile_overlap=args.tile_overlap,
                     use_self_ensemble=args.self_ensemble, device=device, progress=not args.no_progress)
        print(f"{src} -> {dst}")
    return 0
