"""Small stand-in dataset folders laid out as the real ones: for dry runs of the full profile on CPU.

:func:`write_fake_datasets` writes, under a data root, every catalogued dataset's subset folders
(:mod:`restore_core.data.catalog` ``layout``) with a few small random-texture PNGs each, named as the real files
are (DIV2K ``0001.png`` / ``0001x2.png``, EDSR's benchmark ``img_001.png`` / ``img_001x2.png``, MSRS pairs of
the same name in ``ir`` (gray) and ``vi``), LR images being the HR ones reduced by the scale (sizes divisible by
12). GoPro gets its sequence folders (``train/<seq>/{blur,sharp}``) and the flattened ``train_flat`` /
``test_flat`` folders the deblurring config reads. Nothing here is real data: a dry run checks paths, shapes
and code, never numbers.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np

from .catalog import CATALOG
from .io import write_image_uint

_LR = re.compile(r"(?:^|_)lr_x(\d)$")


def _texture(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """A smooth random image in [0, 1]: (size, size, channels) float32 (or (size, size) for one channel)."""
    coarse = rng.random((size // 12 + 1, size // 12 + 1, channels))
    img = np.kron(coarse, np.ones((12, 12, 1)))[:size, :size]
    img = 0.8 * img + 0.2 * rng.random((size, size, channels))
    img = img.astype(np.float32)
    return img[..., 0] if channels == 1 else img


def save_image(path: Path, img: np.ndarray) -> None:
    """Write a float image in [0, 1] as an 8-bit PNG."""
    write_image_uint(path, (np.clip(img, 0, 1) * 255).round().astype(np.uint8))


def _reduce(img: np.ndarray, s: int) -> np.ndarray:
    """Box-average reduction by ``s`` (stands in for MATLAB bicubic; only the sizes matter here)."""
    h, w = img.shape[0] // s * s, img.shape[1] // s * s
    x = img[:h, :w]
    return x.reshape(h // s, s, w // s, s, *x.shape[2:]).mean(axis=(1, 3))


def write_fake_datasets(root, names: Optional[Iterable[str]] = None, n_images: int = 3, size: int = 96,
                        seed: int = 0) -> Dict[str, Path]:
    """Write stand-in folders for ``names`` (default: every catalogued dataset) under ``root``; returns
    ``{name: <root>/<name>}``. ``size`` (HR side, rounded down to a multiple of 12) keeps x2/x3/x4 LR exact."""
    size = max(24, size // 12 * 12)
    rng = np.random.default_rng(seed)
    root = Path(root)
    out: Dict[str, Path] = {}
    for name in names or list(CATALOG):
        entry = CATALOG[name]
        base = root / name
        stems = [f"{i + 1:04d}" if name == "DIV2K" else f"img_{i + 1:03d}" for i in range(n_images)]
        hr = {stem: _texture(rng, size, 3) for stem in stems}
        for subset, folder in entry.layout.items():
            d = base / folder
            d.mkdir(parents=True, exist_ok=True)
            m = _LR.search(subset)
            if name == "GoPro":
                for seq in ("GOPR0001_00", "GOPR0002_00"):
                    for kind in ("blur", "sharp"):
                        (d / seq / kind).mkdir(parents=True, exist_ok=True)
                        for stem, img in hr.items():
                            save_image(d / seq / kind / f"{stem}.png", img if kind == "sharp" else _reduce_blur(img))
                flat = base / f"{folder}_flat"
                for kind in ("blur", "sharp"):
                    (flat / kind).mkdir(parents=True, exist_ok=True)
                    for stem, img in hr.items():
                        save_image(flat / kind / f"{stem}.png", img if kind == "sharp" else _reduce_blur(img))
            elif m:
                s = int(m.group(1))
                for stem, img in hr.items():
                    save_image(d / f"{stem}x{s}.png", _reduce(img, s))
            elif entry.task == "fusion" and subset.endswith("ir"):
                for stem, img in hr.items():
                    save_image(d / f"{stem}.png", img.mean(axis=2))
            else:
                for stem, img in hr.items():
                    save_image(d / f"{stem}.png", img)
        (base / "FAKE_DATA.txt").write_text(
            "Random textures written by restore_core.data.fake_tree for a dry run; not the real dataset.\n")
        out[name] = base
    return out


def _reduce_blur(img: np.ndarray) -> np.ndarray:
    """A horizontal box blur (stands in for GoPro's motion blur)."""
    k = 5
    pad = np.pad(img, ((0, 0), (k // 2, k // 2), (0, 0)), mode="edge")
    return np.mean([pad[:, i:i + img.shape[1]] for i in range(k)], axis=0).astype(np.float32)
