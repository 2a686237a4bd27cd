"""The embedded dataset: 45 open-licence colour photo crops (192x192 PNG) shipped inside the package.

Built by ``data_scripts/build_embedded.py`` from scikit-image, scikit-learn and matplotlib sample photos and the
Debian package ``lomiri-wallpapers-16.04`` (sources, authors and licences: ``embedded/ATTRIBUTION.md``). The
split is by source photo (``embedded/manifest.json``, with each file's sha256):

* ``train``: 29 crops of 16 training photos;
* ``test``: 8 crops of the 5 test photos (the first ones of each photo): the quick profile's evaluation set;
* ``heldout``: every non-overlapping crop the texture cut finds in the same 5 test photos (16: ``test`` and 8
  more): the cpu profile's evaluation set, never seen in training;
* ``all``: train + heldout.

The gray variant is derived on load with BT.601 luma, ``round(0.299 R + 0.587 G + 0.114 B)`` (uint8).

It is the quick and cpu profiles' data: every chapter runs on it with no download.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Dict, List

import numpy as np

from .io import LUMA_BT601, read_image_uint

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
SPLITS = ("train", "test", "heldout", "all")


@lru_cache(maxsize=1)
def load_manifest() -> Dict:
    """The parsed ``embedded/manifest.json``."""
    path = EMBEDDED_DIR / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"embedded dataset manifest missing: {path} "
                                "(rebuild with `python data_scripts/build_embedded.py`)")
    return json.loads(path.read_text())


def embedded_paths(split: str = "train") -> List[Path]:
    """Sorted file paths of one split ("train", "test", "heldout" or "all")."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    m = load_manifest()
    names = m["splits"]["train"] + m["splits"]["heldout"] if split == "all" else m["splits"][split]
    return [EMBEDDED_DIR / n for n in sorted(names)]


def describe_split(split: str) -> str:
    """One phrase for scale statements, counted from the manifest, e.g. ``"30 held-out crops 192x192 of 5 test
    photos"``: a chapter never types the size of its data by hand."""
    paths = embedded_paths(split)
    by_file = {i["file"]: i for i in load_manifest()["images"]}
    photos = len({by_file[p.name]["source"] for p in paths})
    kind = {"train": "train", "test": "test", "heldout": "held-out", "all": "embedded"}[split]
    crop = load_manifest()["crop"]
    of = {"train": "training photos", "all": "photos"}.get(split, "test photos")
    return f"{len(paths)} {kind} crops {crop}x{crop} of {photos} {of}"


def rgb_to_gray_uint8(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an ``(H, W, 3)`` uint8 image, rounded to uint8 ``(H, W)``."""
    y = img.astype(np.float64) @ np.array(LUMA_BT601)
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def embedded_images(split: str = "train", gray: bool = False) -> List[np.ndarray]:
    """The images of one split as uint8 arrays: ``(192, 192, 3)``, or ``(192, 192)`` with ``gray=True``."""
    imgs = [read_image_uint(p) for p in embedded_paths(split)]
    return [rgb_to_gray_uint8(i) for i in imgs] if gray else imgs


def verify_embedded() -> List[str]:
    """Check every file against the manifest's sha256; returns a list of problems (empty if all is well)."""
    problems = []
    for item in load_manifest()["images"]:
        p = EMBEDDED_DIR / item["file"]
        if not p.exists():
            problems.append(f"missing: {p}")
        elif hashlib.sha256(p.read_bytes()).hexdigest() != item["sha256"]:
            problems.append(f"sha256 mismatch: {p}")
    return problems
