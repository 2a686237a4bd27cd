"""Peak memory and time of ``restore-core restore`` on a synthetic photo (the README's numbers come from here).

    python scripts/measure_restore_memory.py --size 4000x3000 --model light   # mambair:light_sr_x2, random weights
    python scripts/measure_restore_memory.py --size 4000x3000 --model standin # same shapes, trivial network

Writes a smooth-plus-noise RGB PNG of the given size into ``--workdir`` and runs, in a child process, what the
CLI runs per file (``restore_file``: read, tiled inference with the default tile or ``--tile``, write a PNG)
with randomly initialised weights, in a process with the program's malloc settings (restore_core/allocator.py;
``RESTORE_CORE_MALLOC=default`` measures glibc's defaults); samples the child's RSS every second and
the child reports its exact peak (its own ``VmHWM``; RUSAGE_CHILDREN would also count the C++ compiler
that builds the native scan on first use) when it ends. ``--max-seconds`` stops a run that would take hours
(the full 4000x3000 x2 run is 1302 tiles) and reports the peak seen so far.
``standin`` is a 1x1 convolution + PixelShuffle(2) with MambaIR's input/output shapes: it measures everything
but the network's activations (reading, the output buffer, stitching, writing). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def make_photo(workdir: Path, width: int, height: int) -> Path:
    """A smooth-plus-noise 8-bit RGB PNG (compresses like a photo, not like noise or a flat image)."""
    from PIL import Image

    workdir.mkdir(parents=True, exist_ok=True)
    img = workdir / f"photo_{width}x{height}.png"
    if not img.exists():
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        base = 0.5 + 0.25 * (np.sin(xx / 97) * np.cos(yy / 131))[..., None] * np.array([1, 0.7, 0.4], np.float32)
        Image.fromarray(np.clip(base * 255 + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)).save(img)
    return img


# The child: restore_file, what `restore-core restore` runs for each input once the model is loaded.
CHILD = r"""
import sys, torch
from pathlib import Path
from torch import nn
from restore_core.allocator import reuse_freed_memory
from restore_core.cli.restore import restore_file
reuse_freed_memory()   # as the restore-core program does (RESTORE_CORE_MALLOC=default: glibc's defaults)
src, dst, model, tile = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
torch.manual_seed(0)
if model == "light":
    from restore_core.models import build_model
    net = build_model("mambair", "light_sr_x2")
else:
    net = nn.Sequential(nn.Conv2d(3, 12, 1), nn.PixelShuffle(2))
restore_file(net.eval(), src, dst, pixel_range=1.0, tile=None if tile == "default" else int(tile), tile_overlap=32,
             use_self_ensemble=False, device=torch.device("cpu"), progress=True)
import re
# KiB, this program's own high-water mark: not a compiler it ran (RUSAGE_CHILDREN), nor the parent's RSS at
# fork, which Linux folds into ru_maxrss
print(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT of the synthetic photo")
    ap.add_argument("--model", choices=("light", "standin"), default="light")
    ap.add_argument("--tile", type=int, default=None, help="--tile for the CLI (default: the CLI's default)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--workdir", default="/tmp/restore_memory")
    args = ap.parse_args()
    width, height = map(int, args.size.lower().split("x"))
    workdir = Path(args.workdir)
    img = make_photo(workdir, width, height)
    dst = workdir / f"out_{args.model}_{width}x{height}.png"
    cmd = [sys.executable, "-c", CHILD, str(img), str(dst), args.model, str(args.tile or "default")]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.time()
    err_path = workdir / f"stderr_{args.model}_{width}x{height}.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        samples, stopped = [], False
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as fh:
                    samples.append(int(re.search(r"VmRSS:\s+(\d+)", fh.read()).group(1)) / 1024)
            except (OSError, AttributeError):
                pass
            # stop only once a tile is done: killed while building the native scan, the child would leave the
            # build's lock file behind and block every later process
            if (args.max_seconds is not None and time.time() - t0 > args.max_seconds
                    and re.search(r"[1-9]\d*/\d+ \[", err_path.read_text(errors="replace"))):
                proc.terminate()
                stopped = True
                proc.wait()
                break
            time.sleep(1.0)
    wall = time.time() - t0
    last = (proc.stdout.read() or "").split()
    peak = int(last[-1]) / 1024 if (last and last[-1].isdigit()) else None  # None when stopped early
    bars = re.findall(r"(\d+)/(\d+) \[", err_path.read_text(errors="replace"))
    done, total = (int(bars[-1][0]), int(bars[-1][1])) if bars else (None, None)
    print(json.dumps({
        "size": f"{width}x{height}", "model": args.model, "tile": args.tile or "default", "threads": args.threads,
        "returncode": proc.returncode, "stopped_after_s": args.max_seconds if stopped else None,
        "tiles_done": done, "tiles_total": total, "wall_s": round(wall, 1),
        "peak_rss_MiB": None if peak is None else round(peak, 1),
        "peak_rss_sampled_MiB": round(max(samples, default=0), 1),
        # RSS (MiB) at each tenth of the run: flat while tiling if memory does not grow with the tiles done
        "rss_by_tenth_MiB": [round(samples[i * len(samples) // 10]) for i in range(10)] if samples else []}))
    return 0 if (proc.returncode == 0 or stopped) else 1


if __name__ == "__main__":
    sys.exit(main())
