"""Two small comparison networks for the analysis chapters (not registered as architectures).

* :class:`PlainCNN`: EDSR-like (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
  arXiv:1707.02921): conv -> residual blocks (conv-ReLU-conv, scaled) -> conv + long skip -> pixel-shuffle upsampler.
  No batch norm, as EDSR. Differences: no mean shift, one-conv upsampler (``PixelShuffleDirect``), tiny widths.
* :class:`WindowAttentionNet`: Swin-style (Liu et al., "Swin Transformer", arXiv:2103.14030, as used by SwinIR,
  arXiv:2108.10257): conv -> blocks of [LN -> window multi-head self-attention with a relative position bias
  (every second block shifted by half a window, with the attention mask) -> LN -> MLP] -> conv + long skip ->
  upsampler. Differences from SwinIR: no residual groups or patch-embed layers, inputs are zero-padded to a
  multiple of the window and cropped back (SwinIR pads by reflection), tiny widths.

Both take (Bt, in_channels, H, W) in [0, 1] and return (Bt, in_channels, sH, sW); with ``upscale=1`` the output
is ``x + residual``. Used by book/07_erf.ipynb as the CNN and window-attention references of the ERF figure.

For the complexity chapter (book/09_complexity.ipynb), one token-mixing block per family at equal width,
:class:`MixerBlock` ``x + mixer(LN(x))`` with mixer one of ``MIXER_KINDS``: SS2D (MambaIR's), full multi-head
self-attention over all H*W tokens (:class:`GlobalAttention`, as in IPT / ViT, written with explicit
``softmax(Q Kᵀ) V`` so its L x L attention matrix is really allocated, as in SwinIR's code, rather than a fused
kernel), Swin window attention (:class:`WindowAttention`, shifted by half a window when asked) and an EDSR
residual pair of 3x3 convolutions. Attention modules expose ``matmul_macs(x)``, the MACs of their Q·Kᵀ and A·V
products, which :func:`restore_core.analysis.count_flops` adds to the layer MACs.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..layers.resblock import ResBlock
from ..layers.upsample import PixelShuffleDirect
from ..ssm.ss2d import SS2D

__all__ = ["PlainCNN", "WindowAttentionNet", "WindowAttention", "GlobalAttention", "MixerBlock", "MIXER_KINDS"]


class _Tail(nn.Module):
    """Upsampler (``upscale`` > 1) or a conv whose output is added to the input (``upscale`` = 1)."""

    def __init__(self, num_feat: int, out_channels: int, upscale: int) -> None:
        super().__init__()
        if upscale < 1:
            raise ValueError(f"upscale must be >= 1, got {upscale}")
        self.upscale = upscale
        self.up = PixelShuffleDirect(upscale, num_feat, out_channels)

    def forward(self, f: Tensor, x: Tensor) -> Tensor:
        """f: (Bt, F, H, W) features, x: (Bt, C, H, W) input."""
        y = self.up(f)
        return x + y if self.upscale == 1 else y


def _check_input(x: Tensor, in_channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(f"expected input (Bt, {in_channels}, H, W), got shape {tuple(x.shape)}")


class PlainCNN(nn.Module):
    """EDSR-like residual CNN. x: (Bt, in_channels, H, W) -> (Bt, in_channels, upscale*H, upscale*W)."""

    def __init__(self, in_channels: int = 3, num_feat: int = 32, num_blocks: int = 4, res_scale: float = 1.0,
                 upscale: int = 2) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.head = nn.Conv2d(in_channels, num_feat, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(num_feat, res_scale=res_scale) for _ in range(num_blocks)])
        self.body_conv = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.tail = _Tail(num_feat, in_channels, upscale)

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, in_channels, H, W)."""
        _check_input(x, self.in_channels)
        f = self.head(x)
        return self.tail(self.body_conv(self.body(f)) + f, x)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping ws x ws windows, with a learned relative position bias.

    x: (Bt, H, W, C) channels-last with H, W multiples of ``window_size``; ``shift`` rolls the map by half a
    window first (and masks pairs that were not neighbours before the roll), then rolls back.
    """

    def __init__(self, dim: int, num_heads: int = 2, window_size: int = 8, shift: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.ws, self.shift = num_heads, window_size, shift
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        coords = coords.flatten(1)                                  # (2, ws*ws)
        rel = (coords[:, :, None] - coords[:, None, :]) + (window_size - 1)  # (2, L, L), entries in [0, 2ws-2]
        self.register_buffer("bias_index", rel[0] * (2 * window_size - 1) + rel[1], persistent=False)

    def _shift_mask(self, h: int, w: int, device: torch.device) -> Tensor:
        """(n_windows, L, L) additive mask: -inf-like between tokens from different regions of the rolled map."""
        ws, s = self.ws, self.ws // 2
        region = torch.zeros(h, w, device=device)
        label = 0
        for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                region[hs, wsl] = label
                label += 1
        r = rearrange(region, "(nh p) (nw q) -> (nh nw) (p q)", p=ws, q=ws)
        return (r[:, :, None] != r[:, None, :]).float() * -100.0

    def matmul_macs(self, x: Tensor) -> int:
        """MACs of Q·Kᵀ and A·V for x: (Bt, H, W, C): (Bt*H*W / M²) windows x heads x 2 x M² x M² x C/heads."""
        bt, h, w, c = x.shape
        return 2 * bt * h * w * self.ws * self.ws * c

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, H, W, C)."""
        bt, h, w, c = x.shape
        ws, s = self.ws, self.ws // 2
        if self.shift:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        t = rearrange(x, "b (nh p) (nw q) c -> (b nh nw) (p q) c", p=ws, q=ws)
        q, k, v = rearrange(self.qkv(t), "n l (three h d) -> three n h l d", three=3, h=self.num_heads)
        attn = (q * self.scale) @ k.transpose(-2, -1)               # (n, heads, L, L)
        attn = attn + rearrange(self.bias_table[self.bias_index], "l m h -> h l m")
        if self.shift:
            mask = self._shift_mask(h, w, x.device)                 # (nW, L, L)
            attn = rearrange(attn, "(b nw) h l m -> b nw h l m", b=bt) + mask[None, :, None]
            attn = rearrange(attn, "b nw h l m -> (b nw) h l m")
        y = rearrange(attn.softmax(-1) @ v, "n h l d -> n l (h d)")
        y = rearrange(self.proj(y), "(b nh nw) (p q) c -> b (nh p) (nw q) c", b=bt, nh=h // ws, p=ws, q=ws)
        if self.shift:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        return y


class _SwinBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, shift: bool, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, shift)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, H, W, C)."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class WindowAttentionNet(nn.Module):
    """Small Swin-style restoration net. x: (Bt, in_channels, H, W) -> (Bt, in_channels, upscale*H, upscale*W)."""

    def __init__(self, in_channels: int = 3, embed_dim: int = 32, depth: int = 4, num_heads: int = 2,
                 window_size: int = 8, mlp_ratio: float = 2.0, upscale: int = 2,
                 shift: Optional[bool] = True) -> None:
        super().__init__()
        self.in_channels, self.window_size = in_channels, window_size
        self.head = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.blocks = nn.ModuleList(
            _SwinBlock(embed_dim, num_heads, window_size, bool(shift) and i % 2 == 1, mlp_ratio) for i in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.body_conv = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.tail = _Tail(embed_dim, in_channels, upscale)

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, in_channels, H, W); zero-padded to a multiple of the window inside, cropped back."""
        _check_input(x, self.in_channels)
        h, w = x.shape[-2:]
        ws = self.window_size
        f = self.head(x)
        t = F.pad(f, (0, (-w) % ws, 0, (-h) % ws)).permute(0, 2, 3, 1)  # (Bt, H', W', C)
        for blk in self.blocks:
            t = blk(t)
        t = self.norm(t).permute(0, 3, 1, 2)[:, :, :h, :w]
        return self.tail(self.body_conv(t) + f, x)


class GlobalAttention(nn.Module):
    """Multi-head self-attention over all L = H*W tokens (no position bias). x: (Bt, H, W, C) -> same shape.

    Written as explicit ``softmax(Q Kᵀ / sqrt(d)) V``: the (Bt, heads, L, L) attention matrix is materialised, so
    memory grows with L² as in the classic implementations.
    """

    def __init__(self, dim: int, num_heads: int = 2) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def matmul_macs(self, x: Tensor) -> int:
        """MACs of Q·Kᵀ and A·V for x: (Bt, H, W, C): heads x 2 x L x L x C/heads per image, L = H*W."""
        bt, h, w, c = x.shape
        return 2 * bt * (h * w) ** 2 * c

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, H, W, C)."""
        bt, h, w, c = x.shape
        q, k, v = rearrange(self.qkv(x), "b h w (three n d) -> three b n (h w) d", three=3, n=self.num_heads)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)   # (Bt, heads, L, L)
        y = rearrange(attn @ v, "b n (h w) d -> b h w (n d)", h=h)
        return self.proj(y)


class _ConvPair(nn.Module):
    """EDSR's residual body conv3x3 -> ReLU -> conv3x3 on channels-last input. x: (Bt, H, W, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(dim, dim, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


MIXER_KINDS = ("ss2d", "full_attention", "window_attention", "conv")


class MixerBlock(nn.Module):
    """``x + mixer(LayerNorm(x))`` with one token mixer, for complexity comparisons at equal width.

    x: (Bt, dim, H, W) -> (Bt, dim, H, W), any H, W (window attention zero-pads to a multiple of the window and
    crops back).
    kind: "ss2d" (MambaIR's SS2D: ``d_state``, ``expand``, four scan directions), "full_attention"
    (:class:`GlobalAttention`, ``num_heads``), "window_attention" (:class:`WindowAttention`, ``num_heads``,
    ``window_size``, unshifted) or "conv" (two 3x3 convolutions with a ReLU, EDSR's residual body).
    """

    def __init__(self, kind: str, dim: int = 32, d_state: int = 16, expand: float = 2.0, num_heads: int = 2,
                 window_size: int = 8) -> None:
        super().__init__()
        if kind not in MIXER_KINDS:
            raise ValueError(f"unknown mixer kind {kind!r}; known: {MIXER_KINDS}")
        self.kind, self.dim = kind, dim
        self.norm = nn.LayerNorm(dim)
        if kind == "ss2d":
            self.mixer = SS2D(dim, d_state=d_state, expand=expand)
        elif kind == "full_attention":
            self.mixer = GlobalAttention(dim, num_heads)
        elif kind == "window_attention":
            self.mixer = WindowAttention(dim, num_heads, window_size)
        else:
            self.mixer = _ConvPair(dim)

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, dim, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.dim:
            raise ValueError(f"expected input (Bt, {self.dim}, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        t = x.permute(0, 2, 3, 1)                                    # (Bt, H, W, C)
        y = self.norm(t)
        if self.kind == "window_attention":
            ws = self.mixer.ws
            y = self.mixer(F.pad(y, (0, 0, 0, (-w) % ws, 0, (-h) % ws)))[:, :h, :w]
        else:
            y = self.mixer(y)
        return (t + y).permute(0, 3, 1, 2)
