"""Image-fusion pairs: synthetic pairs with a known reference, and an offline real two-channel pair.

Real infrared-visible benchmarks (MSRS, TNO, RoadScene) have no ground truth, so fusion is scored with the
no-reference metrics of :mod:`restore_core.metrics.fusion`. Synthetic pairs made from one photo ``R`` keep
``R`` as a reference, so full-reference scores (PSNR/SSIM against ``R``) are possible too. Each source loses
information the other keeps:

* ``multi_focus``: A is sharp where a smooth random mask M is 1 and Gaussian-blurred elsewhere, B the reverse;
  the ideal fusion is R.
* ``multi_exposure``: R is linearised (gamma 2.2), multiplied by 2^-ev and 2^+ev, clipped (saturation) and
  re-encoded to 8 bits: A loses the shadows, B the highlights.
* ``ir_vis`` (a simulation, not a thermal model): the reference is the luma of R; "visible" is it under a
  smooth random illumination field in [0.1, 1] (dark regions lose contrast after 8-bit rounding); "infrared" is
  it blurred (sigma 2) with the dark regions' intensity kept, i.e. it keeps intensity and loses texture.

All sources are gray ``(1, H, W)`` in [0, 1] except multi-exposure, which keeps the channels of R.
Pairs are deterministic given ``seed``.

Offline real pair: :func:`ihc_stain_pair` splits scikit-image's immunohistochemistry slide into its
hematoxylin and DAB stain channels (``skimage.color.rgb2hed``), two registered "modalities" of one scene.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage import data as skimage_data
from skimage.color import rgb2hed

from .datasets import ImageSource, _Seeded, aligned_random_crop, dihedral, list_images, resolve_images
from .degradations import blur, gaussian_kernel, image_seed, quantize
from .io import ImageFormatError, convert_channels, gray_8bit, read_image

FUSION_KINDS = ("multi_focus", "multi_exposure", "ir_vis")


def smooth_random_field(height: int, width: int, seed: int, sigma: float = 12.0) -> np.ndarray:
    """A smooth random field ``(H, W)`` in [0, 1] (Gaussian-filtered white noise, min-max normalised)."""
    rng = np.random.default_rng(seed)
    f = gaussian_filter(rng.standard_normal((height, width)), sigma, mode="reflect")
    lo, hi = f.min(), f.max()
    return (f - lo) / (hi - lo) if hi > lo else np.full_like(f, 0.5)


def _blur_sigma(x: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * int(math.ceil(3 * sigma)) + 1
    if min(x.shape[-2:]) <= size // 2:
        raise ImageFormatError(f"image {tuple(x.shape[-2:])} too small for a blur of sigma {sigma}")
    return blur(x, gaussian_kernel(size, sigma))


def multi_focus_pair(ref: torch.Tensor, seed: int, blur_sigma: float = 2.0
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ref: ``(C, H, W)`` in [0, 1] -> (A, B, mask ``(1, H, W)``), A sharp where mask = 1."""
    h, w = ref.shape[-2:]
    mask = torch.from_numpy((smooth_random_field(h, w, seed, sigma=max(h, w) / 8) > 0.5).astype(np.float32))[None]
    blurred = _blur_sigma(ref, blur_sigma)
    a = mask * ref + (1 - mask) * blurred
    b = (1 - mask) * ref + mask * blurred
    return quantize(a), quantize(b), mask


def multi_exposure_pair(ref: torch.Tensor, ev: float = 1.5, gamma: float = 2.2
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """ref: ``(C, H, W)`` in [0, 1] -> (under-exposed A, over-exposed B), 8-bit rounded."""
    lin = ref.clamp(0, 1) ** gamma
    under = (lin * 2.0 ** -ev).clamp(0, 1) ** (1 / gamma)
    over = (lin * 2.0 ** ev).clamp(0, 1) ** (1 / gamma)
    return quantize(under), quantize(over)


def ir_vis_pair(ref_gray: torch.Tensor, seed: int, blur_sigma: float = 2.0
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """ref_gray: ``(1, H, W)`` in [0, 1] -> (simulated infrared A, simulated visible B), 8-bit rounded."""
    h, w = ref_gray.shape[-2:]
    light = torch.from_numpy(0.1 + 0.9 * smooth_random_field(h, w, seed, sigma=max(h, w) / 6)).float()[None]
    vis = quantize(ref_gray * light)
    ir = quantize(_blur_sigma(ref_gray, blur_sigma))
    return ir, vis


class SyntheticFusionDataset(_Seeded):
    """Fusion pairs with a known reference made from photos.

    images: as :class:`restore_core.data.datasets.DegradedDataset`. kind: one of :data:`FUSION_KINDS`.
    patch_size: optional random crop of the reference before making the pair.
    Samples: ``{"a": (C, H, W), "b": (C, H, W), "ref": (C, H, W), "name": str}``; C = 1 except for
    multi-exposure on colour images.
    """

    def __init__(self, images: ImageSource, kind: str = "ir_vis", patch_size: Optional[int] = None,
                 seed: int = 0) -> None:
        super().__init__(seed)
        if kind not in FUSION_KINDS:
            raise ValueError(f"kind must be one of {FUSION_KINDS}, got {kind!r}")
        self.paths = resolve_images(images)
        self.kind, self.patch_size = kind, patch_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Dict[str, object]:
        path = self.paths[index]
        ref = read_image(path, min_size=self.patch_size or 0)
        if self.kind != "multi_exposure":
            ref = gray_8bit(ref) if ref.shape[0] == 3 else ref
        if self.patch_size is not None:
            rng = self._rng(index)
            h, w = ref.shape[-2:]
            top, left = int(rng.integers(0, h - self.patch_size + 1)), int(rng.integers(0, w - self.patch_size + 1))
            ref = ref[:, top:top + self.patch_size, left:left + self.patch_size]
        seed = image_seed(self.seed, (path.stem, self.epoch, index))
        if self.kind == "multi_focus":
            a, b, _ = multi_focus_pair(ref, seed)
        elif self.kind == "multi_exposure":
            a, b = multi_exposure_pair(ref)
        else:
            a, b = ir_vis_pair(ref, seed)
        return {"a": a.contiguous(), "b": b.contiguous(), "ref": ref.contiguous(), "name": path.stem}


class FusionFolderDataset(_Seeded):
    """Registered source pairs from two folders matched by file name (e.g. MSRS ``ir/`` and ``vi/``).

    a_dir: first source (infrared, by CDDFuse's convention A); b_dir: second (visible). channels: 1 (default;
    gray = BT.601 luma rounded to 8 bits) or None to keep the files' channels. patch_size/augment/seed: random
    aligned crops and flips for training. Samples: ``{"a": (C, H, W), "b": (C, H, W), "name": str}``.
    """

    def __init__(self, a_dir, b_dir, channels: Optional[int] = 1, patch_size: Optional[int] = None,
                 augment: bool = False, seed: int = 0) -> None:
        super().__init__(seed)
        a = {p.stem: p for p in list_images(a_dir)}
        b = {p.stem: p for p in list_images(b_dir)}
        unpaired = sorted(set(a) ^ set(b))
        if unpaired:
            raise FileNotFoundError(f"unpaired images between {a_dir} and {b_dir}: {', '.join(unpaired[:5])}")
        self.names = sorted(a)
        self.a_paths, self.b_paths = [a[n] for n in self.names], [b[n] for n in self.names]
        self.channels, self.patch_size, self.augment = channels, patch_size, augment

    def __len__(self) -> int:
        return len(self.names)

    def _read(self, path) -> torch.Tensor:
        x = read_image(path, min_size=self.patch_size or 0)
        if self.channels == 1 and x.shape[0] == 3:
            return gray_8bit(x)
        return convert_channels(x, self.channels)

    def __getitem__(self, index: int) -> Dict[str, object]:
        a, b = self._read(self.a_paths[index]), self._read(self.b_paths[index])
        if a.shape[-2:] != b.shape[-2:]:
            raise ImageFormatError(f"{self.names[index]}: sources differ in size, {tuple(a.shape[-2:])} vs "
                                   f"{tuple(b.shape[-2:])} (fusion needs registered pairs)")
        rng = self._rng(index)
        if self.patch_size is not None:
            a, b = aligned_random_crop(a, b, self.patch_size, 1, rng)
        if self.augment:
            k = int(rng.integers(0, 8))
            a, b = dihedral(a, k), dihedral(b, k)
        return {"a": a.contiguous(), "b": b.contiguous(), "name": self.names[index]}


def ihc_stain_pair() -> Tuple[torch.Tensor, torch.Tensor]:
    """Hematoxylin and DAB channels of scikit-image's IHC slide, each ``(1, 512, 512)`` min-max scaled to
    [0, 1] (no reference exists; score with the no-reference fusion metrics)."""
    hed = rgb2hed(skimage_data.immunohistochemistry())
    out = []
    for c in (0, 2):
        ch = hed[:, :, c]
        ch = (ch - ch.min()) / (ch.max() - ch.min())
        out.append(torch.from_numpy(ch.astype(np.float32))[None])
    return out[0], out[1]
