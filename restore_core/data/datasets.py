"""Restoration datasets (torch ``Dataset``): paired HQ/LQ folders and HQ images degraded on the fly.

Every sample is a dict ``{"lq": (C, h, w), "hq": (C, H, W), "name": str}`` of float32 tensors in [0, 1]
(``H = scale * h`` for SR, ``h = H`` otherwise). Randomness is explicit and reproducible: crops and flips draw
from ``numpy.random.default_rng(image_seed(seed, (epoch, index)))`` and noise from
``image_seed(seed, name)`` (evaluation) or ``image_seed(seed, (name, epoch, index))`` (training), so a dataset
gives the same samples for the same ``seed`` and ``epoch`` in any process or worker order (call
:meth:`set_epoch` each epoch when training).

Training crops follow BasicSR: ``patch_size`` is the HQ patch; for SR the LQ patch is ``patch_size // scale``
cut at the aligned position of the LQ image made from the whole HQ image (as the papers' pre-made LR files).
Augmentation = the 8 flips/rotations of the square, applied identically to LQ and HQ.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .degradations import Degradation, image_seed, parse_degradation
from .embedded import describe_split, embedded_paths
from .io import ImageFormatError, convert_channels, gray_8bit, is_image_file, read_image

ImageSource = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def list_images(folder: Union[str, os.PathLike]) -> List[Path]:
    """Image files directly in ``folder`` (sorted by name); raises if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise FileNotFoundError(f"no image files (png/jpg/bmp/tif) in {folder}")
    return files


def resolve_images(source: ImageSource) -> List[Path]:
    """``"embedded:train"`` / ``"embedded:test"`` / ``"embedded:heldout"`` / ``"embedded:all"``, a folder, or a list
    of files -> paths."""
    if isinstance(source, (str, os.PathLike)):
        s = str(source)
        if s.startswith("embedded:"):
            return embedded_paths(s.split(":", 1)[1])
        return list_images(s)
    paths = [Path(p) for p in source]
    if not paths:
        raise ValueError("empty list of images")
    return paths


def describe_images(source: ImageSource) -> str:
    """A phrase naming an image source and its size, for scale statements: ``"embedded:heldout"`` -> ``"the
    embedded held-out split (30 held-out crops 192x192 of 5 test photos)"``, a folder -> ``"DIR (N images)"``."""
    if isinstance(source, (str, os.PathLike)) and str(source).startswith("embedded:"):
        split = str(source).split(":", 1)[1]
        return f"the embedded {split} split ({describe_split(split)})"
    paths = resolve_images(source)
    return f"{source} ({len(paths)} images)" if isinstance(source, (str, os.PathLike)) else f"{len(paths)} images"


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 flips/rotations of the square: ``k % 4`` quarter turns, then a horizontal flip if
    ``k >= 4``. x: ``(C, H, W)``."""
    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return y.flip(-1) if k >= 4 else y


def aligned_random_crop(lq: torch.Tensor, hq: torch.Tensor, patch_size: int, scale: int,
                        rng: np.random.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Crop an HQ patch ``patch_size`` and the aligned LQ patch ``patch_size // scale``.

    lq: ``(C, h, w)``; hq: ``(C, h * scale, w * scale)``.
    """
    if patch_size % scale:
        raise ValueError(f"patch_size {patch_size} must be a multiple of the scale {scale}")
    lp = patch_size // scale
    h, w = lq.shape[-2:]
    if hq.shape[-2:] != (h * scale, w * scale):
        raise ValueError(f"HQ {tuple(hq.shape[-2:])} is not {scale}x LQ {(h, w)}")
    if h < lp or w < lp:
        raise ImageFormatError(f"image {h * scale}x{w * scale} is smaller than the crop {patch_size}x{patch_size}")
    top, left = int(rng.integers(0, h - lp + 1)), int(rng.integers(0, w - lp + 1))
    return (lq[:, top:top + lp, left:left + lp],
            hq[:, top * scale:(top + lp) * scale, left * scale:(left + lp) * scale])


class _Seeded(Dataset):
    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops/flips/noise for a new epoch (deterministically)."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(image_seed(self.seed, (self.epoch, index)))


class DegradedDataset(_Seeded):
    """HQ images with an LQ made on the fly by a :class:`Degradation` (e.g. ``"sr_x4"``, ``"awgn_25"``).

    images: ``"embedded:train"`` etc., a folder, or a list of files. degradation: spec string or object.
    patch_size: HQ training crop (None: whole images, for evaluation). augment: random flips/rotations.
    channels: 1 or 3 to convert (gray = BT.601 luma rounded to 8 bits, like an 8-bit gray file); None keeps.
    repeat: the dataset length is ``repeat * len(images)`` (several crops per image per epoch).
    cache: keep decoded HQ images (and the deterministic whole-image LQ of sr/jpeg/blur) in memory; None (default)
    caches when the files total less than 256 MB (the embedded set: yes; DIV2K: no). For full-size SR training
    prefer the pre-made LR files with :class:`PairedFolderDataset` (what the papers did): MATLAB bicubic of a
    2K image takes about a second on one CPU core.
    """

    def __init__(self, images: ImageSource, degradation: Union[str, Degradation], patch_size: Optional[int] = None,
                 augment: bool = False, channels: Optional[int] = None, seed: int = 0, repeat: int = 1,
                 cache: Optional[bool] = None) -> None:
        super().__init__(seed)
        self.paths = resolve_images(images)
        self.degradation = parse_degradation(degradation) if isinstance(degradation, str) else degradation
        self.patch_size, self.augment, self.channels = patch_size, augment, channels
        if cache is None:
            cache = sum(p.stat().st_size for p in self.paths) < (256 << 20)
        self.repeat, self.cache = int(repeat), bool(cache)
        if self.repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        if patch_size is not None and self.degradation.kind == "sr" and patch_size % self.degradation.scale:
            raise ValueError(f"patch_size {patch_size} must be a multiple of the SR scale {self.degradation.scale}")
        self._hq: Dict[int, torch.Tensor] = {}
        self._lq: Dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.repeat * len(self.paths)

    def _load_hq(self, i: int) -> torch.Tensor:
        if i in self._hq:
            return self._hq[i]
        hq = read_image(self.paths[i], min_size=self.patch_size or 0)
        if self.channels == 1 and hq.shape[0] == 3:
            hq = gray_8bit(hq)
        elif self.channels is not None:
            hq = convert_channels(hq, self.channels)
        if self.degradation.kind == "mosaic" and hq.shape[0] != 3:
            raise ImageFormatError(f"{self.paths[i]}: mosaicking needs RGB images (use channels=3)")
        hq = self.degradation.prepare_hq(hq)
        if self.cache:
            self._hq[i] = hq
        return hq

    def _whole_lq(self, i: int, hq: torch.Tensor) -> torch.Tensor:
        if i in self._lq:
            return self._lq[i]
        lq = self.degradation(hq)
        if self.cache:
            self._lq[i] = lq
        return lq

    def __getitem__(self, index: int) -> Dict[str, object]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        i = index % len(self.paths)
        name = self.paths[i].stem
        hq = self._load_hq(i)
        pointwise = self.degradation.kind in ("awgn", "mosaic")
        scale = self.degradation.scale if self.degradation.kind == "sr" else 1
        rng = self._rng(index)
        if pointwise:
            lq_src = hq
        else:
            lq_src = self._whole_lq(i, hq)
        if self.patch_size is not None:
            lq_src, hq = aligned_random_crop(lq_src, hq, self.patch_size, scale, rng)
        if self.augment:
            k = int(rng.integers(0, 8))
            lq_src, hq = dihedral(lq_src, k), dihedral(hq, k)
        if pointwise:
            key = name if self.patch_size is None and not self.augment else (name, self.epoch, index)
            lq = self.degradation(hq, seed=image_seed(self.seed, key))
        else:
            lq = lq_src
        return {"lq": lq.contiguous(), "hq": hq.contiguous(), "name": name}


class PairedFolderDataset(_Seeded):
    """Pre-made LQ/HQ pairs in two folders, matched by file name (``lq_suffix`` is stripped from LQ stems,
    e.g. ``"x4"`` for ``babyx4.png`` <-> ``baby.png``).

    scale: HQ/LQ size ratio (HQ is mod-cropped to ``scale * LQ`` size). patch_size, augment, channels, seed as in
    :class:`DegradedDataset`.
    """

    def __init__(self, hq_dir: Union[str, os.PathLike], lq_dir: Union[str, os.PathLike], scale: int = 1,
                 patch_size: Optional[int] = None, augment: bool = False, channels: Optional[int] = None,
                 lq_suffix: str = "", seed: int = 0) -> None:
        super().__init__(seed)
        hq = {p.stem: p for p in list_images(hq_dir)}
        lq = {}
        for p in list_images(lq_dir):
            stem = p.stem[: -len(lq_suffix)] if lq_suffix and p.stem.endswith(lq_suffix) else p.stem
            lq[stem] = p
        missing = sorted(set(hq) ^ set(lq))
        if missing:
            raise FileNotFoundError(f"unpaired images between {hq_dir} and {lq_dir}: {', '.join(missing[:5])}"
                                    + (" ..." if len(missing) > 5 else ""))
        self.names = sorted(hq)
        self.hq_paths, self.lq_paths = [hq[n] for n in self.names], [lq[n] for n in self.names]
        self.scale, self.patch_size, self.augment, self.channels = int(scale), patch_size, augment, channels

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Dict[str, object]:
        lq = read_image(self.lq_paths[index], channels=self.channels)
        hq = read_image(self.hq_paths[index], channels=self.channels)
        h, w = lq.shape[-2:]
        s = self.scale
        if hq.shape[-2] < h * s or hq.shape[-1] < w * s or hq.shape[-2] >= (h + 1) * s or hq.shape[-1] >= (w + 1) * s:
            raise ImageFormatError(f"{self.names[index]}: HQ {tuple(hq.shape[-2:])} does not match LQ {(h, w)} "
                                   f"at scale {s}")
        hq = hq[:, : h * s, : w * s]
        rng = self._rng(index)
        if self.patch_size is not None:
            lq, hq = aligned_random_crop(lq, hq, self.patch_size, s, rng)
        if self.augment:
            k = int(rng.integers(0, 8))
            lq, hq = dihedral(lq, k), dihedral(hq, k)
        return {"lq": lq.contiguous(), "hq": hq.contiguous(), "name": self.names[index]}
