"""2-D scan orders: how an image becomes K token sequences for the selective scan, and back.

MambaIR: Guo et al., "MambaIR: A Simple Baseline for Image Restoration with State-Space Model", arXiv:2402.15648
(four-direction scan taken from VMamba, Liu et al., arXiv:2401.10166). FusionMamba: Xie et al., "FusionMamba:
Dynamic Feature Enhancement for Multimodal Image Fusion with Mamba", arXiv:2404.09498 (efficient 2-D scan, ES2D,
from EfficientVMamba, Pei et al., arXiv:2403.09977). CU-Mamba: Deng & Gu, arXiv:2404.11778 (channel scan).

Every order is a named :class:`ScanOrder` object with an explicit inverse, chosen by name (:func:`get_scan_order`,
:func:`list_scan_orders`)::

    xs = cross_scan(x, "4d")           # x: (Bt, C, H, W) -> xs: (Bt, K, C, L)
    x2 = cross_merge(xs, "4d", H, W)   # (Bt, K, C, L) -> (Bt, C, H, W), the K directions summed

Path orders ("1d", "2d", "4d", "es2d") are index tables: direction k visits the pixels ``index[k, 0..L-1]`` of the
(padded) row-major flattened grid. The merge is their exact inverse: the positions are grouped per pixel with a
stable ``argsort`` and gathered back (no scatter-add, so it is deterministic on every device), then summed.

* ``"1d"``: row-major (K=1). ``"2d"``: row-major, column-major (K=2).
* ``"4d"``: row-major, column-major, reversed row-major, reversed column-major (K=4), MambaIR / VMamba's order:
  ``cross_merge(cross_scan(x)) == K * x``.
* ``"es2d"``: skip-sampling with step 2 into four sub-grids, each a direction of its own (K=4, L = H'W'/4):
  k=0 even rows / even columns row-major, k=1 odd rows / even columns column-major, k=2 even rows / odd columns
  row-major, k=3 odd rows / odd columns column-major (EfficientVMamba's ``EfficientScan``, which FusionMamba
  uses). Every pixel lies in exactly one sub-grid, so ``cross_merge(cross_scan(x)) == x``. Odd H or W: the grid
  is zero-padded at the bottom / right to even H' = H + H % 2, W' = W + W % 2 (as the official code does); the
  padded tokens take part in the scan, and the merge drops them (crops back to H x W).
* ``"channel"``: tokens are channels (CU-Mamba's channel SSM): K=1, the *features* of each token are the H*W
  pixels and the sequence runs over the C channels: ``(Bt, C, H, W) -> (Bt, 1, H*W, C)``, i.e. in the
  ``(Bt, K, C', L)`` convention C' = H*W and L = C. Its merge is the exact inverse. How a model keeps its
  projections independent of H*W is the model's choice (see ``restore_core.models.cu_mamba``).

Differences from the official code: the official SS2D inlines ``flip`` / ``transpose`` in its forward with K=4
hard-coded; here the same orders are data (index tables, cached per size and device) and K follows the order.
Explained in the book chapter "Selective scan and scanning images".
"""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

__all__ = ["ScanOrder", "PathScanOrder", "ChannelScanOrder", "cross_scan", "cross_merge", "get_scan_order",
           "list_scan_orders", "register_scan_order", "SCAN_ORDERS"]


class ScanOrder(ABC):
    """A way to read an image as K sequences, with its inverse.

    ``directions`` is K; ``exact_multiplicity`` is the factor m with ``merge(scan(x)) == m * x`` (K when every
    direction visits every pixel, 1 when the directions partition the pixels).
    """

    name: str
    directions: int
    exact_multiplicity: int
    description: str

    @abstractmethod
    def seq_len(self, H: int, W: int) -> int:
        """The sequence length L for an H x W input."""

    @abstractmethod
    def scan(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> (Bt, K, C, L)."""

    @abstractmethod
    def merge(self, y: Tensor, H: int, W: int) -> Tensor:
        """y: (Bt, K, C, L) -> (Bt, C, H, W): each direction put back in place, the K directions summed."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, K={self.directions})"


# A path is (row parity, column parity, step, column_major, reversed): the sub-grid x[r0::step, c0::step] read
# row-major or column-major, forwards or backwards.
Path = Tuple[int, int, int, bool, bool]


class PathScanOrder(ScanOrder):
    """An order given by K paths over the grid (padded to a multiple of ``step``); see the module docstring."""

    def __init__(self, name: str, paths: List[Path], description: str) -> None:
        steps = {p[2] for p in paths}
        if len(steps) != 1:
            raise ValueError(f"scan order {name!r}: all paths must use the same step, got {sorted(steps)}")
        self.name = name
        self.paths = list(paths)
        self.step = steps.pop()
        self.directions = len(paths)
        self.description = description
        counts = self._tables(self.step * 2, self.step * 2, "cpu")[2]
        self.exact_multiplicity = counts

    def padded_size(self, H: int, W: int) -> Tuple[int, int]:
        s = self.step
        return H + (-H) % s, W + (-W) % s

    def seq_len(self, H: int, W: int) -> int:
        Hp, Wp = self.padded_size(H, W)
        return Hp * Wp // self.step ** 2

    def index(self, H: int, W: int, device: "torch.device | str" = "cpu") -> Tensor:
        """(K, L) long: direction k's l-th token is pixel ``index[k, l]`` of the padded, row-major grid."""
        return self._tables(H, W, str(device))[0]

    @functools.lru_cache(maxsize=256)
    def _tables(self, H: int, W: int, device: str) -> Tuple[Tensor, Tensor, int]:
        Hp, Wp = self.padded_size(H, W)
        grid = torch.arange(Hp * Wp).view(Hp, Wp)
        rows = []
        for r0, c0, s, column_major, backwards in self.paths:
            sub = grid[r0::s, c0::s]
            seq = (sub.t() if column_major else sub).reshape(-1)
            rows.append(seq.flip(0) if backwards else seq)
        index = torch.stack(rows)  # (K, L)
        flat = index.reshape(-1)
        counts = torch.bincount(flat, minlength=Hp * Wp)
        m = int(counts[0])
        if not bool((counts == m).all()) or m == 0:
            raise ValueError(f"scan order {self.name!r} does not visit every pixel equally often")
        # Inverse: for each pixel p its m positions in the flattened (K L) axis, grouped by a stable sort.
        inverse = torch.argsort(flat, stable=True).view(Hp * Wp, m).t().contiguous()  # (m, Hp*Wp)
        return index.to(device), inverse.to(device), m

    def scan(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> (Bt, K, C, L)."""
        if x.dim() != 4:
            raise ValueError(f"cross_scan expects x: (Bt, C, H, W), got shape {tuple(x.shape)}")
        H, W = x.shape[-2:]
        Hp, Wp = self.padded_size(H, W)
        if (Hp, Wp) != (H, W):
            x = F.pad(x, (0, Wp - W, 0, Hp - H))
        index = self._tables(H, W, str(x.device))[0]
        xs = x.flatten(2)[:, :, index]  # (Bt, C, K, L)
        return xs.transpose(1, 2)  # (Bt, K, C, L)

    def merge(self, y: Tensor, H: int, W: int) -> Tensor:
        """y: (Bt, K, C, L) -> (Bt, C, H, W)."""
        L = self.seq_len(H, W)
        if y.dim() != 4 or y.shape[1] != self.directions or y.shape[3] != L:
            raise ValueError(f"cross_merge({self.name!r}) expects y: (Bt, K={self.directions}, C, L={L}) for "
                             f"H={H}, W={W}, got shape {tuple(y.shape)}")
        Hp, Wp = self.padded_size(H, W)
        inverse = self._tables(H, W, str(y.device))[1]
        flat = rearrange(y, "b k c l -> b c (k l)")
        out = flat[:, :, inverse].sum(dim=2)  # (Bt, C, Hp*Wp): the m visits of each pixel summed
        out = out.view(y.shape[0], y.shape[2], Hp, Wp)
        return out[:, :, :H, :W] if (Hp, Wp) != (H, W) else out


class ChannelScanOrder(ScanOrder):
    """Tokens = channels: (Bt, C, H, W) -> (Bt, 1, H*W, C); the sequence runs over C (CU-Mamba)."""

    def __init__(self) -> None:
        self.name = "channel"
        self.directions = 1
        self.exact_multiplicity = 1
        self.description = "tokens are channels: (Bt, C, H, W) -> (Bt, 1, H*W, C), L = C"

    def seq_len(self, H: int, W: int) -> int:
        raise ValueError("the channel scan's length is the channel count C, not a function of H, W")

    def scan(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> (Bt, 1, H*W, C)."""
        if x.dim() != 4:
            raise ValueError(f"cross_scan expects x: (Bt, C, H, W), got shape {tuple(x.shape)}")
        return rearrange(x, "b c h w -> b 1 (h w) c")

    def merge(self, y: Tensor, H: int, W: int) -> Tensor:
        """y: (Bt, 1, H*W, C) -> (Bt, C, H, W)."""
        if y.dim() != 4 or y.shape[1] != 1 or y.shape[2] != H * W:
            raise ValueError(f"cross_merge('channel') expects y: (Bt, 1, H*W={H * W}, C), got {tuple(y.shape)}")
        return rearrange(y, "b 1 (h w) c -> b c h w", h=H, w=W)


SCAN_ORDERS: Dict[str, ScanOrder] = {}


def register_scan_order(order: ScanOrder) -> ScanOrder:
    """Add a scan order under ``order.name``; a duplicate name raises."""
    if order.name in SCAN_ORDERS:
        raise KeyError(f"scan order {order.name!r} is already registered")
    SCAN_ORDERS[order.name] = order
    return order


def get_scan_order(order: "str | ScanOrder") -> ScanOrder:
    """The :class:`ScanOrder` called ``order`` (an order object is returned as is)."""
    if isinstance(order, ScanOrder):
        return order
    try:
        return SCAN_ORDERS[order]
    except KeyError:
        raise ValueError(f"unknown scan order {order!r}; known: {', '.join(list_scan_orders())}") from None


def list_scan_orders() -> List[str]:
    return sorted(SCAN_ORDERS)


def cross_scan(x: Tensor, order: "str | ScanOrder") -> Tensor:
    """Read an image as K sequences. x: (Bt, C, H, W) -> (Bt, K, C, L) (``"channel"``: (Bt, 1, H*W, C))."""
    return get_scan_order(order).scan(x)


def cross_merge(y: Tensor, order: "str | ScanOrder", H: int, W: int) -> Tensor:
    """Undo each direction of ``order`` and sum them. y: (Bt, K, C, L) -> (Bt, C, H, W)."""
    return get_scan_order(order).merge(y, H, W)


_ROW, _COL = False, True
register_scan_order(PathScanOrder("1d", [(0, 0, 1, _ROW, False)], "row-major"))
register_scan_order(PathScanOrder("2d", [(0, 0, 1, _ROW, False), (0, 0, 1, _COL, False)],
                                  "row-major, column-major"))
register_scan_order(PathScanOrder(
    "4d", [(0, 0, 1, _ROW, False), (0, 0, 1, _COL, False), (0, 0, 1, _ROW, True), (0, 0, 1, _COL, True)],
    "row-major, column-major, reversed row-major, reversed column-major (MambaIR / VMamba)"))
register_scan_order(PathScanOrder(
    "es2d", [(0, 0, 2, _ROW, False), (1, 0, 2, _COL, False), (0, 1, 2, _ROW, False), (1, 1, 2, _COL, False)],
    "skip-sampled step 2: 4 sub-grids, one direction each (EfficientVMamba / FusionMamba ES2D)"))
register_scan_order(ChannelScanOrder())
