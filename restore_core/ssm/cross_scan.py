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
(padded) row-major flattened grid (:meth:`PathScanOrder.index`); each path is a sub-grid ``x[r0::s, c0::s]`` read
row- or column-major, forwards or backwards, so the scan is strided views (no index gathers) and the merge undoes
each path exactly (un-flip, un-transpose, write the sub-grid back) and sums. The merge is also the scan's adjoint,
so each serves as the other's backward (no scatter-add: deterministic on every device).

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
        self.exact_multiplicity = self._multiplicity(2 * self.step + 1, 2 * self.step + 3)

    def padded_size(self, H: int, W: int) -> Tuple[int, int]:
        s = self.step
        return H + (-H) % s, W + (-W) % s

    def seq_len(self, H: int, W: int) -> int:
        Hp, Wp = self.padded_size(H, W)
        return Hp * Wp // self.step ** 2

    def index(self, H: int, W: int, device: "torch.device | str" = "cpu") -> Tensor:
        """(K, L) long: direction k's l-th token is pixel ``index[k, l]`` of the padded, row-major grid."""
        return self._index(H, W).to(device)

    @functools.lru_cache(maxsize=64)
    def _index(self, H: int, W: int) -> Tensor:
        Hp, Wp = self.padded_size(H, W)
        grid = torch.arange(Hp * Wp).view(Hp, Wp)
        rows = []
        for r0, c0, s, column_major, backwards in self.paths:
            sub = grid[r0::s, c0::s]
            seq = (sub.t() if column_major else sub).reshape(-1)
            rows.append(seq.flip(0) if backwards else seq)
        return torch.stack(rows)  # (K, L)

    def _multiplicity(self, H: int, W: int) -> int:
        """m such that every pixel of the padded grid is visited m times (raises if the paths are uneven)."""
        Hp, Wp = self.padded_size(H, W)
        counts = torch.bincount(self._index(H, W).reshape(-1), minlength=Hp * Wp)
        m = int(counts[0])
        if m == 0 or not bool((counts == m).all()):
            raise ValueError(f"scan order {self.name!r} does not visit every pixel equally often")
        return m

    def scan(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> (Bt, K, C, L)."""
        if x.dim() != 4:
            raise ValueError(f"cross_scan expects x: (Bt, C, H, W), got shape {tuple(x.shape)}")
        return _PathScan.apply(x, self)

    def merge(self, y: Tensor, H: int, W: int) -> Tensor:
        """y: (Bt, K, C, L) -> (Bt, C, H, W)."""
        L = self.seq_len(H, W)
        if y.dim() != 4 or y.shape[1] != self.directions or y.shape[3] != L:
            raise ValueError(f"cross_merge({self.name!r}) expects y: (Bt, K={self.directions}, C, L={L}) for "
                             f"H={H}, W={W}, got shape {tuple(y.shape)}")
        return _PathMerge.apply(y, self, H, W)

    def _scan(self, x: Tensor) -> Tensor:
        """Zero-pad to (Hp, Wp), then read each path as a strided view. x: (Bt, C, H, W) -> (Bt, K, C, L)."""
        Bt, C, H, W = x.shape
        Hp, Wp = self.padded_size(H, W)
        if (Hp, Wp) != (H, W):
            x = F.pad(x, (0, Wp - W, 0, Hp - H))
        seqs = []
        for r0, c0, step, column_major, backwards in self.paths:
            sub = x[:, :, r0::step, c0::step]
            seq = (sub.transpose(2, 3) if column_major else sub).reshape(Bt, C, -1)  # (Bt, C, L)
            seqs.append(seq.flip(-1) if backwards else seq)
        return torch.stack(seqs, dim=1)  # (Bt, K, C, L)

    def _merge(self, y: Tensor, H: int, W: int) -> Tensor:
        """Undo each path (un-flip, un-transpose, put the sub-grid back), sum, crop.
        y: (Bt, K, C, L) -> (Bt, C, H, W)."""
        Bt, K, C, L = y.shape
        Hp, Wp = self.padded_size(H, W)
        out = y.new_zeros(Bt, C, Hp, Wp) if self.step > 1 else None
        for k, (r0, c0, step, column_major, backwards) in enumerate(self.paths):
            seq = y[:, k].flip(-1) if backwards else y[:, k]                     # (Bt, C, L)
            h, w = len(range(r0, Hp, step)), len(range(c0, Wp, step))
            grid = seq.reshape(Bt, C, w, h).transpose(2, 3) if column_major else seq.reshape(Bt, C, h, w)
            if out is None:
                out = grid
            elif step == 1:
                out = out + grid
            else:
                out[:, :, r0::step, c0::step] += grid
        return out[:, :, :H, :W] if (Hp, Wp) != (H, W) else out


class _PathScan(torch.autograd.Function):
    """scan with merge as its backward: the merge is the scan's adjoint (a gather by the inverse table, so no
    scatter-add, deterministic on every device)."""

    @staticmethod
    def forward(ctx, x: Tensor, order: PathScanOrder) -> Tensor:
        ctx.order, ctx.hw = order, tuple(x.shape[-2:])
        return order._scan(x)

    @staticmethod
    def backward(ctx, g: Tensor):
        return _PathMerge.apply(g, ctx.order, *ctx.hw), None


class _PathMerge(torch.autograd.Function):
    """merge with scan as its backward (the adjoint of gather-and-sum-then-crop is pad-then-gather)."""

    @staticmethod
    def forward(ctx, y: Tensor, order: PathScanOrder, H: int, W: int) -> Tensor:
        ctx.order = order
        return order._merge(y, H, W)

    @staticmethod
    def backward(ctx, g: Tensor):
        return _PathScan.apply(g, ctx.order), None, None, None


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
