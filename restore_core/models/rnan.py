"""RNAN: Residual Non-local Attention Network.

Zhang, Li, Li, Zhong, Fu, "Residual Non-local Attention Networks for Image Restoration", ICLR 2019,
arXiv:1903.10082. Official code: yulunzhang/RNAN (one copy per task: DN_RGB, DN_Gray, Demosaic, CAR, SR).

Layout (paper Fig. 1; official ``model/rnan.py``)::

    head conv3x3 -> non-local group -> 8 local groups -> conv3x3 -> non-local group -> tail
    group  = residual (non-)local attention block + conv3x3          (no skip around the group)
    block  = ResBlock -> [trunk: 2 ResBlocks] * [mask: (non-local) -> RB -> conv s2 -> 2 RB -> deconv k6 s2
             -> + skip -> RB -> conv1x1 -> sigmoid] + input -> 2 ResBlocks

Restoration presets (denoising, demosaicing, compression artefacts) predict a residual, ``out = x + tail(...)``;
SR presets use the long feature skip ``head + body`` then an upsampler, with the DIV2K mean subtracted and
added back (official ``MeanShift``), as in the official SR code.

Module names differ from the official ones but keep their nesting, so an official state dict maps by a plain
rename table (official -> ours): ``head.0`` -> ``head``; ``body_nl_low.0`` -> ``group_low``;
``body.{i}`` (i < 8) -> ``groups.{i}``; ``body.8`` -> ``body_conv``; ``body_nl_high.0`` -> ``group_high``;
``tail.0`` -> ``tail`` (restoration) or ``tail.0`` -> ``upsampler``, ``tail.1`` -> ``tail`` (SR);
in a group ``body.0`` -> ``block``, ``body.1`` -> ``conv``; in a block ``RA_RB1.0`` -> ``pre``,
``RA_TB.0.body.{k}`` -> ``trunk.{k}``, ``RA_MB.0`` -> ``mask``, ``RA_tail.{k}`` -> ``post.{k}``; in a mask branch
``MB_RB1.0`` -> ``nonlocal_block`` and ``MB_RB1.1`` -> ``rb1`` (non-local variant) or ``MB_RB1.0`` -> ``rb1``,
``MB_Down.0`` -> ``down``, ``MB_RB2.{k}`` -> ``rb2.{k}``, ``MB_Up.0`` -> ``up``, ``MB_RB3.0`` -> ``rb3``,
``MB_1x1conv.0`` -> ``conv1x1``; ResBlock ``body.0`` / ``body.2`` are unchanged.
Colour denoising has 8,959,555 parameters, exactly the official module's count (the paper's text says ~7.5M).

Differences from the official code:

* The non-local softmax is over the keys, as in the paper's equation; the official ``NonLocalBlock2D`` uses
  ``softmax(dim=1)``, i.e. over the queries. ``nonlocal_softmax_dim="query"`` reproduces the official one (the
  official-weight loader sets it).
* Any input size: the mask branch's stride-2 conv / k6 s2 p2 deconvolution pair returns 2*ceil(H/2) rows, so the
  branch pads its input to even H, W (replicate) and crops the result. For even sizes nothing changes.
* The SR mean shift is a buffer (not a frozen conv with 24 parameters) and images are in [0, img_range].
* Ablation switches of the paper's Table 1: ``use_mask`` (mask branch; off: a block is its trunk only),
  ``use_nonlocal`` (non-local block at the head of the two non-local groups' mask branches),
  ``residual_attention`` (``trunk * mask + x`` vs ``trunk * mask``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Literal, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.nonlocal_block import NonLocalBlock2D
from ..layers.resblock import ResBlock
from ..layers.upsample import PixelShuffleUpsample
from .div2k import DIV2K_RGB_MEAN
from .registry import config_with, register_arch, register_preset

PAPER = "Residual Non-local Attention Networks for Image Restoration (arXiv:1903.10082)"


def _conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class MaskBranch(nn.Module):
    """RNAN's (non-)local mask branch: an attention map in (0, 1) with the input's shape.

    ``[non-local] -> RB -> conv3x3 s2 -> 2 RB -> deconv k6 s2 p2 -> (+ RB output) -> RB -> conv1x1 -> sigmoid``.
    x: (Bt, C, H, W) -> (Bt, C, H, W), any H, W (odd sizes are padded for the down/up pair, then cropped).
    """

    def __init__(self, channels: int = 64, use_nonlocal: bool = False, nonlocal_channels: int = 32,
                 nonlocal_softmax_dim: Literal["key", "query"] = "key") -> None:
        super().__init__()
        self.nonlocal_block = (NonLocalBlock2D(channels, nonlocal_channels, softmax_over=nonlocal_softmax_dim)
                               if use_nonlocal else None)
        self.rb1 = ResBlock(channels)
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.rb2 = nn.Sequential(ResBlock(channels), ResBlock(channels))
        self.up = nn.ConvTranspose2d(channels, channels, 6, stride=2, padding=2)
        self.rb3 = ResBlock(channels)
        self.conv1x1 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> mask (Bt, C, H, W) in (0, 1)."""
        if self.nonlocal_block is not None:
            x = self.nonlocal_block(x)
        skip = self.rb1(x)
        h, w = skip.shape[-2:]
        padded = F.pad(skip, (0, w % 2, 0, h % 2), mode="replicate") if (h % 2 or w % 2) else skip
        up = self.up(self.rb2(self.down(padded)))[..., :h, :w]  # (Bt, C, H, W)
        return torch.sigmoid(self.conv1x1(self.rb3(skip + up)))


class ResidualAttentionBlock(nn.Module):
    """Residual (non-)local attention block: ``post(trunk(p) * mask(p) + p)`` with ``p = pre(x)``.

    x: (Bt, C, H, W) -> (Bt, C, H, W).
    """

    def __init__(self, channels: int = 64, use_mask: bool = True, use_nonlocal: bool = False,
                 nonlocal_channels: int = 32, residual_attention: bool = True,
                 nonlocal_softmax_dim: Literal["key", "query"] = "key") -> None:
        super().__init__()
        self.residual_attention = residual_attention
        self.pre = ResBlock(channels)
        self.trunk = nn.Sequential(ResBlock(channels), ResBlock(channels))
        self.mask = (MaskBranch(channels, use_nonlocal, nonlocal_channels, nonlocal_softmax_dim)
                     if use_mask else None)
        self.post = nn.Sequential(ResBlock(channels), ResBlock(channels))

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> (Bt, C, H, W)."""
        p = self.pre(x)
        t = self.trunk(p)
        if self.mask is None:          # ablation "w/o mask branch": the block is a stack of residual blocks
            h = t
        else:
            h = t * self.mask(p)
            if self.residual_attention:
                h = h + p              # residual attention learning: H = T * M + X
        return self.post(h)


class AttentionGroup(nn.Module):
    """A residual (non-)local attention block followed by a conv3x3 (no skip, as in the official code).

    x: (Bt, C, H, W) -> (Bt, C, H, W).
    """

    def __init__(self, channels: int = 64, use_mask: bool = True, use_nonlocal: bool = False,
                 nonlocal_channels: int = 32, residual_attention: bool = True,
                 nonlocal_softmax_dim: Literal["key", "query"] = "key") -> None:
        super().__init__()
        self.block = ResidualAttentionBlock(channels, use_mask, use_nonlocal, nonlocal_channels,
                                            residual_attention, nonlocal_softmax_dim)
        self.conv = _conv3x3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C, H, W) -> (Bt, C, H, W)."""
        return self.conv(self.block(x))


@dataclass
class RNANConfig:
    """RNAN's constructor arguments. Defaults: the colour-denoising model of the official code."""

    RENAMED: ClassVar[Dict[str, str]] = {"n_feats": "embed_dim", "scale": "upscale"}  # earlier names (deprecated)

    in_channels: int = 3
    out_channels: Optional[int] = None       # None: same as in_channels
    embed_dim: int = 64                      # the features' width (the official n_feats)
    n_local_groups: int = 8                  # official n_resgroups = n_local_groups + 2 (= 10)
    nonlocal_channels: int = 32              # the non-local block's embedding width C' (embed_dim // 2)
    upscale: int = 1                         # 1: restoration (image residual); 2, 3, 4: SR with an upsampler
    global_residual: Literal["image", "feature"] = "image"  # out = x + tail(body) | tail(head + body)
    rgb_mean: Optional[Tuple[float, ...]] = None  # subtracted before the head, added after the tail (SR)
    img_range: float = 1.0
    use_mask: bool = True
    use_nonlocal: bool = True
    residual_attention: bool = True
    nonlocal_softmax_dim: Literal["key", "query"] = "key"   # "key": paper; "query": official code (dim=1)

    @property
    def n_feats(self) -> int:
        """The earlier name of :attr:`embed_dim`."""
        return self.embed_dim

    @property
    def scale(self) -> int:
        """The earlier name of :attr:`upscale`."""
        return self.upscale


class RNAN(nn.Module):
    """Residual non-local attention network.

    forward(x): x (Bt, in_channels, H, W), any H, W >= 1 -> (Bt, out_channels, scale*H, scale*W).
    """

    def __init__(self, config: Optional[RNANConfig] = None, **overrides: Any) -> None:
        super().__init__()
        c = config_with(config or RNANConfig(), overrides, "rnan")
        out_channels = c.in_channels if c.out_channels is None else c.out_channels
        if c.global_residual not in ("image", "feature"):
            raise ValueError(f"global_residual must be 'image' or 'feature', got {c.global_residual!r}")
        if c.global_residual == "image" and (c.upscale != 1 or out_channels != c.in_channels):
            raise ValueError("global_residual='image' adds the input to the output: it needs upscale=1 and "
                             f"out_channels == in_channels (got upscale={c.upscale}, {c.in_channels} -> "
                             f"{out_channels})")
        if c.upscale < 1:
            raise ValueError(f"upscale must be >= 1, got {c.upscale}")
        if c.rgb_mean is not None and len(c.rgb_mean) != c.in_channels:
            raise ValueError(f"rgb_mean has {len(c.rgb_mean)} values for {c.in_channels} input channels")
        self.in_channels, self.out_channels, self.upscale = c.in_channels, out_channels, c.upscale
        self.global_residual = c.global_residual
        self.img_range = c.img_range
        mean = torch.tensor(c.rgb_mean if c.rgb_mean is not None else [0.0] * c.in_channels).view(1, -1, 1, 1)
        self.register_buffer("mean", mean * c.img_range, persistent=False)
        self._shift = c.rgb_mean is not None

        def group(nonlocal_: bool) -> AttentionGroup:
            return AttentionGroup(c.embed_dim, c.use_mask, nonlocal_ and c.use_nonlocal, c.nonlocal_channels,
                                  c.residual_attention, c.nonlocal_softmax_dim)

        self.head = _conv3x3(c.in_channels, c.embed_dim)
        self.group_low = group(True)
        self.groups = nn.Sequential(*[group(False) for _ in range(c.n_local_groups)])
        self.body_conv = _conv3x3(c.embed_dim, c.embed_dim)
        self.group_high = group(True)
        # EDSR/RCAN/RNAN's upsampler: (conv3x3 C -> 4C, PixelShuffle(2)) per factor 2, or conv C -> 9C + shuffle(3)
        self.upsampler = PixelShuffleUpsample(c.upscale, c.embed_dim) if c.upscale > 1 else nn.Identity()
        self.tail = _conv3x3(c.embed_dim, out_channels)

    @property
    def scale(self) -> int:
        """The earlier name of :attr:`upscale`."""
        return self.upscale

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, in_channels, H, W) -> (Bt, out_channels, upscale*H, upscale*W)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"RNAN expects (batch, {self.in_channels}, H, W), got {tuple(x.shape)}")
        inp = x - self.mean if self._shift else x
        feats = self.head(inp)
        res = self.group_high(self.body_conv(self.groups(self.group_low(feats))))
        if self.global_residual == "feature":
            out = self.tail(self.upsampler(res + feats))
        else:
            out = inp + self.tail(res)
        return out + self.mean if self._shift else out


register_arch("rnan", RNAN, RNANConfig, paper=PAPER)


@register_preset("rnan", "color_dn")
def _color_dn() -> RNANConfig:
    """Colour denoising (official DN_RGB): 64 feats, 10 groups, image residual; 8,959,555 params."""
    return RNANConfig(in_channels=3)


@register_preset("rnan", "gray_dn")
def _gray_dn() -> RNANConfig:
    """Grey denoising (official DN_Gray): 1 channel, image residual."""
    return RNANConfig(in_channels=1)


@register_preset("rnan", "demosaic")
def _demosaic() -> RNANConfig:
    """Demosaicing (official Demosaic): the 3-channel Bayer-masked image in, RGB out, image residual."""
    return RNANConfig(in_channels=3)


@register_preset("rnan", "car")
def _car() -> RNANConfig:
    """Compression artefact reduction (official CAR): grey JPEG in, image residual."""
    return RNANConfig(in_channels=1)


def _sr(scale: int) -> RNANConfig:
    return RNANConfig(in_channels=3, upscale=scale, global_residual="feature", rgb_mean=DIV2K_RGB_MEAN)


@register_preset("rnan", "sr_x2")
def _sr_x2() -> RNANConfig:
    """Super-resolution x2 (official SR): long feature skip, pixel-shuffle upsampler, DIV2K mean shift."""
    return _sr(2)


@register_preset("rnan", "sr_x3")
def _sr_x3() -> RNANConfig:
    """Super-resolution x3 (official SR)."""
    return _sr(3)


@register_preset("rnan", "sr_x4")
def _sr_x4() -> RNANConfig:
    """Super-resolution x4 (official SR)."""
    return _sr(4)


@register_preset("rnan", "tiny")
def _tiny() -> RNANConfig:
    """Quick CPU training: 16 feats, 1 local group (+ the 2 non-local ones), colour denoising layout."""
    return RNANConfig(in_channels=3, embed_dim=16, n_local_groups=1, nonlocal_channels=8)
