"""SS2D, the 2-D selective-scan layer (VMamba's "VSSM" mixer) as MambaIR uses it.

MambaIR: Guo et al., "MambaIR: A Simple Baseline for Image Restoration with State-Space Model", arXiv:2402.15648,
Sec. 3.3 ("2D selective scan module"); the layer comes from VMamba, Liu et al., arXiv:2401.10166.

Data flow for x: (Bt, H, W, C), E = int(expand * C) inner channels, K directions, N = d_state, R = dt_rank::

    x, z   = split(in_proj(x))                  Linear C -> 2E (no bias), each (Bt, H, W, E)
    x      = SiLU(dwconv3x3(x))                 (Bt, E, H, W)
    xs     = cross_scan(x, scan_order)          (Bt, K, E, L)
    dt, B, C = x_proj_k(xs_k)                   per direction: (R + 2N) x E weights, no bias
    Δ      = dt_proj_k(dt)                      (Bt, K, E, L), bias added inside the scan (delta_bias)
    ys     = selective_scan(xs, Δ, A=-exp(A_log), B, C, D, delta_softplus=True)   over (Bt, K*E, L), B/C grouped
    y      = cross_merge(ys)                    (Bt, E, H, W): each direction undone, K summed
    out    = out_proj(LayerNorm(y) * SiLU(z))   Linear E -> C (no bias), then dropout

Input layout: channels-last (Bt, H, W, C), like the official code (MambaIR's blocks apply LayerNorm over the last
axis); :meth:`SS2D.forward_nchw` takes (Bt, C, H, W).

Parameters are stored in the official checkpoint layout (``x_proj_weight`` (K, R+2N, E), ``dt_projs_weight``
(K, E, R), ``dt_projs_bias`` (K, E), ``A_logs`` (K*E, N), ``Ds`` (K*E), ``in_proj``, ``conv2d``, ``out_norm``,
``out_proj``), so released weights load by name. Initialisation as the official code: A_log = log(1..N), D = 1,
dt bias = inverse softplus of dt ~ log-uniform [dt_min, dt_max] floored at dt_init_floor, dt_proj weight
uniform(±dt_scale * R^-0.5), x_proj as nn.Linear's default (uniform ±E^-0.5).

On the CPU (native extension built, orders "1d" / "2d" / "4d", float32 or float64) the scan core runs fused
(:meth:`SS2D.ssm`, ``cross_scan_impl="auto"``): no (Bt, K, E, L) stack, no per-direction delta tensor, no merge
copies; without autograd (inference) its kernel puts channels on the SIMD lanes and reads / writes the map
channels-last, as the depthwise conv leaves it and the LayerNorm wants it, and :meth:`SS2D.native_gate` runs
LayerNorm(y) * SiLU(z) as one native pass (csrc/ss2d_glue_cpu.cpp) where torch takes three. The materialised path
above stays as the reference and the fallback (other orders, backends, devices).

Differences from the official code: the scan order is a named, configurable :mod:`restore_core.ssm.cross_scan`
order (K follows it; the official hard-codes K=4 with inlined flips); the scan runs through
:func:`restore_core.ssm.selective_scan` (backend chosen by name; any input dtype, float64 included, instead of a
forced float32 cast); the constructor takes no catch-all ``**kwargs``.
Explained in the book chapter "Selective scan and scanning images".
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from . import native
from .cross_scan import ChannelScanOrder, cross_merge, cross_scan, get_scan_order
from .dt_init import inverse_softplus
from .scan import selective_scan

__all__ = ["SS2D", "default_dt_rank", "inner_channels", "CROSS_SCAN_IMPLS"]

CROSS_SCAN_IMPLS = ("auto", "fused", "materialised")


def default_dt_rank(d_model: int) -> int:
    """R = ceil(C / 16), the official "auto" dt rank."""
    return math.ceil(d_model / 16)


def inner_channels(d_model: int, expand: float) -> int:
    """E = int(expand * C), as the official code computes it (e.g. 60 * 1.2 -> 72, 180 * 1.2 -> 216)."""
    return int(expand * d_model)


class SS2D(nn.Module):
    """The 2-D selective-scan layer. x: (Bt, H, W, C) -> (Bt, H, W, C).

    Args:
        d_model: C, channels in and out.
        d_state: N, the SSM state size per channel.
        expand: E = int(expand * C) inner channels (MambaIR's config calls it ``mlp_ratio``).
        d_conv: kernel of the depthwise convolution (odd).
        scan_order: a :mod:`~restore_core.ssm.cross_scan` order name ("1d", "2d", "4d", "es2d"); K follows it.
        dt_rank: R; None = ceil(C / 16).
        dt_min, dt_max, dt_init_floor, dt_scale: the Δ initialisation (see the module docstring).
        conv_bias: bias of the depthwise convolution; bias: biases of in_proj / out_proj.
        dropout: dropout after out_proj.
        scan_backend: passed to :func:`~restore_core.ssm.selective_scan` ("auto", "ref", ...).
    """

    def __init__(self, d_model: int, d_state: int = 16, expand: float = 2.0, d_conv: int = 3,
                 scan_order: str = "4d", dt_rank: Optional[int] = None, dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dt_scale: float = 1.0, conv_bias: bool = True, bias: bool = False,
                 dropout: float = 0.0, scan_backend: str = "auto",
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        if d_model < 1 or d_state < 1 or expand <= 0:
            raise ValueError(f"SS2D needs d_model >= 1, d_state >= 1, expand > 0; got {d_model}, {d_state}, {expand}")
        if d_conv < 1 or d_conv % 2 == 0:
            raise ValueError(f"d_conv must be odd (same-size padding), got {d_conv}")
        order = get_scan_order(scan_order)
        if isinstance(order, ChannelScanOrder):
            raise ValueError("SS2D scans pixels; the 'channel' order (tokens = channels) needs a channel SSM")
        fk = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.d_state = d_state
        self.expand = expand
        self.d_inner = E = inner_channels(d_model, expand)
        if E < 1:
            raise ValueError(f"expand={expand} gives {E} inner channels for d_model={d_model}")
        self.dt_rank = R = dt_rank if dt_rank is not None else default_dt_rank(d_model)
        self.scan_order = order.name
        self.directions = K = order.directions
        self.scan_backend = scan_backend
        self.dt_init = (dt_min, dt_max, dt_init_floor, dt_scale)
        self.cross_scan_impl = "auto"  # "auto" | "fused" | "materialised" (see :meth:`ssm`); not a parameter

        self.in_proj = nn.Linear(d_model, 2 * E, bias=bias, **fk)
        self.conv2d = nn.Conv2d(E, E, d_conv, padding=d_conv // 2, groups=E, bias=conv_bias, **fk)
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * d_state, E, **fk))   # (K, R+2N, E)
        self.dt_projs_weight = nn.Parameter(torch.empty(K, E, R, **fk))               # (K, E, R)
        self.dt_projs_bias = nn.Parameter(torch.empty(K, E, **fk))                    # (K, E)
        self.A_logs = nn.Parameter(torch.empty(K * E, d_state, **fk))                 # (K*E, N)
        self.Ds = nn.Parameter(torch.empty(K * E, **fk))                              # (K*E,)
        self.out_norm = nn.LayerNorm(E, **fk)
        self.out_proj = nn.Linear(E, d_model, bias=bias, **fk)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """The official initialisation of x_proj, dt_proj, A_log and D (see the module docstring)."""
        if self.A_logs.is_meta:
            return
        dt_min, dt_max, floor, dt_scale = self.dt_init
        E, R, N = self.d_inner, self.dt_rank, self.d_state
        nn.init.uniform_(self.x_proj_weight, -E ** -0.5, E ** -0.5)
        bound = dt_scale * R ** -0.5
        nn.init.uniform_(self.dt_projs_weight, -bound, bound)
        u = torch.rand(self.dt_projs_bias.shape, dtype=torch.float64)
        dt = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
        self.dt_projs_bias.copy_(inverse_softplus(dt))  # softplus(bias) = dt
        A = torch.arange(1, N + 1, dtype=torch.float64).repeat(self.directions * E, 1)
        self.A_logs.copy_(torch.log(A))
        self.Ds.fill_(1.0)

    def fused_codes(self, x: Tensor) -> Optional[list]:
        """The native kernel's direction codes when the fused cross-scan can run ``x`` (see ``cross_scan_impl``),
        else None. Raises when ``cross_scan_impl == "fused"`` and it cannot."""
        impl = self.cross_scan_impl
        if impl not in CROSS_SCAN_IMPLS:
            raise ValueError(f"cross_scan_impl must be one of {CROSS_SCAN_IMPLS}, got {impl!r}")
        if impl == "materialised":
            return None
        why = None
        codes = native.direction_codes(get_scan_order(self.scan_order))
        if codes is None:
            why = f"scan order {self.scan_order!r} (only whole-grid step-1 orders: 1d, 2d, 4d)"
        elif self.scan_backend not in ("auto", "native"):
            why = f"scan_backend={self.scan_backend!r}"
        elif x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            why = f"{x.device.type} {x.dtype} input"
        elif any(p.dtype != x.dtype for p in (self.x_proj_weight, self.dt_projs_weight, self.A_logs)):
            why = "parameters in another dtype than the input"
        elif not native.is_available():
            why = "no native extension"
        else:
            try:
                native.padded_state(self.d_state, x.dtype)
            except ValueError as exc:
                why = str(exc)
        if why is None:
            return codes
        if impl == "fused":
            raise RuntimeError(f"SS2D: the fused cross-scan cannot run here: {why}")
        return None

    def ssm(self, x: Tensor) -> Tensor:
        """The scan core. x: (Bt, E, H, W) after conv + SiLU -> y: (Bt, E, H, W), K directions merged.

        Fused (native kernel, chosen automatically on CPU for the 1d/2d/4d orders; ``cross_scan_impl``): x_proj is
        two GEMMs on the map in pixel order (the dt_rank rows as (Bt, K, R, L); B and C as (Bt, L, K, 2, Np)); the
        kernel reads each direction's pixels by index arithmetic, forms Δ = dt_proj(dt) per row (R multiply-adds
        per element), scans and adds every direction into the output in place (backward likewise). Otherwise the
        reference path below: materialised cross-scan, per-direction einsums, :func:`selective_scan`, merge.
        Both compute the same function (equal up to float rounding; tests/test_cross_scan_fused.py).
        """
        codes = self.fused_codes(x)
        if codes is not None:
            return self._ssm_fused(x, codes)
        return self._ssm_materialised(x)

    def _ssm_fused(self, x: Tensor, codes: list) -> Tensor:
        Bt, E, H, W = x.shape
        K, R, N, L = self.directions, self.dt_rank, self.d_state, H * W
        n_pad = native.padded_state(N, x.dtype)
        xcl = x.permute(0, 2, 3, 1).reshape(Bt, L, E)                            # a view when x is channels-last
        xf = x.reshape(Bt, E, L) if x.is_contiguous() else xcl.transpose(1, 2)   # u: (Bt, E, L), a view
        Wx = self.x_proj_weight                                                  # (K, R+2N, E)
        dts = torch.matmul(Wx[:, :R].reshape(K * R, E), xf).view(Bt, K, R, L)    # (Bt, K, R, L)
        Wbc = Wx[:, R:].reshape(K, 2, N, E)
        if n_pad != N:
            Wbc = F.pad(Wbc, (0, 0, 0, n_pad - N))                               # zero rows: padded states stay 0
        BC = torch.matmul(xcl, Wbc.reshape(K * 2 * n_pad, E).t()).view(Bt, L, K, 2, n_pad)
        y = native.cross_scan_native(xf, dts, self.dt_projs_weight, self.dt_projs_bias, -torch.exp(self.A_logs),
                                     BC, self.Ds, codes, H, W)                   # (Bt, E, L)
        # returned channels-last (a (Bt, E, H, W) view of (Bt, H, W, E) memory): the LayerNorm over E that follows
        # reads it without another copy (the inference kernel writes it so; the training one needs a transpose)
        ycl = y.transpose(1, 2)
        ycl = ycl if ycl.is_contiguous() else native.transpose_last2(y)
        return ycl.view(Bt, H, W, E).permute(0, 3, 1, 2)

    def _ssm_materialised(self, x: Tensor) -> Tensor:
        """The reference path: materialised cross-scan, per-direction projections, selective_scan, merge."""
        Bt, E, H, W = x.shape
        K, R, N = self.directions, self.dt_rank, self.d_state
        xs = cross_scan(x, self.scan_order)                                    # (Bt, K, E, L)
        x_dbl = torch.einsum("bkel,kce->bkcl", xs, self.x_proj_weight)          # (Bt, K, R+2N, L)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)                      # (Bt, K, R|N|N, L)
        dts = torch.einsum("bkrl,ker->bkel", dts, self.dt_projs_weight)         # (Bt, K, E, L)
        A = -torch.exp(self.A_logs)                                             # (K*E, N)
        ys = selective_scan(rearrange(xs, "b k e l -> b (k e) l"), rearrange(dts, "b k e l -> b (k e) l"),
                            A, Bs.contiguous(), Cs.contiguous(), D=self.Ds,
                            delta_bias=self.dt_projs_bias.reshape(-1), delta_softplus=True,
                            backend=self.scan_backend)                          # (Bt, K*E, L)
        ys = rearrange(ys, "b (k e) l -> b k e l", k=K)
        return cross_merge(ys, self.scan_order, H, W)                           # (Bt, E, H, W)

    def native_gate(self, x: Tensor) -> bool:
        """True when :meth:`forward` runs LayerNorm(y) * SiLU(z) as the native one-pass kernel: no gradient wanted,
        the fused cross-scan runs here, an affine LayerNorm."""
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return False
        return self.out_norm.weight is not None and self.fused_codes(x) is not None

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, H, W, C) channels-last -> (Bt, H, W, C)."""
        if x.dim() != 4 or x.shape[-1] != self.d_model:
            raise ValueError(f"SS2D expects x: (Bt, H, W, C={self.d_model}) channels-last, got {tuple(x.shape)}")
        xz = self.in_proj(x)                                                     # (Bt, H, W, 2E)
        x, z = xz.chunk(2, dim=-1)
        x = F.silu(self.conv2d(rearrange(x, "b h w e -> b e h w")))              # (Bt, E, H, W)
        y = rearrange(self.ssm(x), "b e h w -> b h w e")
        if self.native_gate(x):   # one pass, no temporaries (same function; tests/test_ss2d_glue.py)
            y = native.layernorm_silu_gate(y, z, self.out_norm.weight, self.out_norm.bias, self.out_norm.eps)
        else:
            y = self.out_norm(y) * F.silu(z)
        return self.dropout(self.out_proj(y))

    def forward_nchw(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> (Bt, C, H, W)."""
        return rearrange(self(rearrange(x, "b c h w -> b h w c")), "b h w c -> b c h w")

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
                f"scan_order={self.scan_order!r}, K={self.directions}")
