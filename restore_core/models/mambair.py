"""MambaIR: shallow conv -> residual state-space groups -> reconstruction.

Guo et al., "MambaIR: A Simple Baseline for Image Restoration with State-Space Model", arXiv:2402.15648 (ECCV 2024);
official code csguoh/MambaIR ``basicsr/archs/mambair_arch.py``.

Structure (x: (Bt, C_in, H, W), C = embed_dim)::

    x0 = (x - mean) * img_range                          mean = DIV2K RGB mean for 3 channels, else 0
    f  = conv_first(x0)                                   conv3x3 C_in -> C
    t  = LN(f) as channels-last tokens                    ``patch_embed.norm``
    RSSG_i: t = conv3x3(blocks(t)) + t                    ``layers.i.residual_group.blocks.j`` + ``layers.i.conv``
      RSSB: t = s  * t + DropPath(SS2D(LN(t)))            ``skip_scale``, ``ln_1``, ``self_attention``
            t = s2 * t + CAB(LN(t))                       ``skip_scale2``, ``ln_2``, ``conv_blk``
    g  = conv_after_body(LN(t)) + f                       ``norm``, long skip
    out: "pixelshuffle"       conv_last(upsample(LeakyReLU(conv_before_upsample(g))))
         "pixelshuffledirect" upsample(g)                 one conv + PixelShuffle
         "nearest+conv"       conv_last(upsample(LeakyReLU(conv_before_upsample(g))))
         "none" (restoration) x0 + conv_last(g)           global residual
         "auto"               "pixelshuffledirect" if upscale > 1 else "none" (one preset for SR and restoration)
    y  = out / img_range + mean

Module names follow the official state-dict keys, so the key mapping in :mod:`restore_core.models.official` is the
identity for the paper presets. Ablation switches (config fields): ``block_kind`` "conv_ca" (SS2D + CAB, the
paper's), "no_conv" (CAB replaced by its channel attention alone), "no_conv_ca" (second half of the RSSB removed:
no LN/CAB/s2), "mlp" (CAB replaced by a channel MLP, hidden ``mlp_hidden_ratio`` * C, our assumption);
``scan_order`` "1d"/"2d"/"4d" (and "es2d"). Any input size works (SS2D needs no padding).

Differences from the official code: no ``**kwargs`` (a misspelled option raises); the scan order, CAB variant and
ablations are config fields instead of copied files; the mean is a non-persistent buffer; channel-count errors are
reported before the first convolution; SS2D uses :func:`restore_core.ssm.selective_scan` (backend "auto").
Explained in the book chapters on MambaIR (architecture, ablations, complexity).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
from torch import Tensor, nn

from ..layers.channel_attention import CAB, CAB_KINDS, ChannelAttention
from ..layers.drop_path import DropPath, drop_path_schedule
from ..layers.init import init_linear_and_layernorm
from ..layers.mlp import ChannelMlp
from ..layers.upsample import NearestConvUpsample, PixelShuffleDirect, PixelShuffleUpsample, upsample_steps
from ..ssm.ss2d import SS2D
from .div2k import DIV2K_RGB_MEAN
from .registry import config_with, register_arch, register_preset

__all__ = ["MambaIR", "MambaIRConfig", "RSSB", "RSSG", "BLOCK_KINDS", "MAMBAIR_UPSAMPLERS", "DIV2K_RGB_MEAN"]

BLOCK_KINDS = ("conv_ca", "no_conv", "no_conv_ca", "mlp")
MAMBAIR_UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "none", "auto")


@dataclass
class MambaIRConfig:
    """Every MambaIR constructor argument. Defaults: the classic SR x2 model (C=180, 6 RSSGs x 6 RSSBs)."""

    in_channels: int = 3
    embed_dim: int = 180
    depths: Tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    d_state: int = 16
    expand: float = 2.0               # SS2D expand (the official config's ``mlp_ratio``)
    scan_order: str = "4d"
    block_kind: str = "conv_ca"
    cab_kind: str = "classic"
    cab_compress: int = 3
    ca_squeeze: int = 30
    mlp_hidden_ratio: float = 2.0     # only for block_kind="mlp"
    upscale: int = 2
    upsampler: str = "pixelshuffle"
    num_feat: int = 64                # features of the "pixelshuffle" / "nearest+conv" tails
    img_range: float = 1.0
    rgb_mean: Tuple[float, ...] = DIV2K_RGB_MEAN  # subtracted for 3-channel inputs (else nothing)
    drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    dt_rank: Optional[int] = None     # None: ceil(embed_dim / 16)
    scan_backend: str = "auto"


class RSSB(nn.Module):
    """Residual state-space block on channels-last tokens. x: (Bt, H, W, C) -> (Bt, H, W, C)."""

    def __init__(self, dim: int, d_state: int = 16, expand: float = 2.0, scan_order: str = "4d",
                 block_kind: str = "conv_ca", cab_kind: str = "classic", cab_compress: int = 3,
                 ca_squeeze: int = 30, mlp_hidden_ratio: float = 2.0, drop_path: float = 0.0,
                 dt_rank: Optional[int] = None, scan_backend: str = "auto") -> None:
        super().__init__()
        if block_kind not in BLOCK_KINDS:
            raise ValueError(f"unknown block_kind {block_kind!r}; known: {BLOCK_KINDS}")
        self.block_kind = block_kind
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = SS2D(dim, d_state=d_state, expand=expand, scan_order=scan_order, dt_rank=dt_rank,
                                   scan_backend=scan_backend)
        self.drop_path = DropPath(drop_path)
        self.skip_scale = nn.Parameter(torch.ones(dim))
        if block_kind != "no_conv_ca":
            self.skip_scale2 = nn.Parameter(torch.ones(dim))
        if block_kind == "conv_ca":
            self.conv_blk: nn.Module = CAB(dim, compress_ratio=cab_compress, squeeze_factor=ca_squeeze, kind=cab_kind)
        elif block_kind == "no_conv":
            self.conv_blk = ChannelAttention(dim, ca_squeeze)
        elif block_kind == "mlp":
            self.conv_blk = ChannelMlp(dim, max(1, int(mlp_hidden_ratio * dim)))
        if block_kind != "no_conv_ca":
            self.ln_2 = nn.LayerNorm(dim)  # registered after conv_blk: the official state-dict order

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, H, W, C)."""
        x = x * self.skip_scale + self.drop_path(self.self_attention(self.ln_1(x)))
        if self.block_kind == "no_conv_ca":
            return x
        y = self.ln_2(x)
        if self.block_kind == "mlp":
            y = self.conv_blk(y)  # channels-last MLP
        else:
            y = self.conv_blk(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x * self.skip_scale2 + y


class _BlockStack(nn.Module):
    """The RSSBs of one group (official name ``residual_group.blocks``). x: (Bt, H, W, C)."""

    def __init__(self, blocks: "list[RSSB]") -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x


class RSSG(nn.Module):
    """Residual state-space group: RSSBs, conv3x3, residual. x: (Bt, H, W, C) -> (Bt, H, W, C)."""

    def __init__(self, dim: int, blocks: "list[RSSB]") -> None:
        super().__init__()
        self.residual_group = _BlockStack(blocks)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.residual_group(x).permute(0, 3, 1, 2)
        return self.conv(y).permute(0, 2, 3, 1) + x


class _TokenNorm(nn.Module):
    """(Bt, C, H, W) -> channels-last tokens (Bt, H, W, C) with LayerNorm (official ``patch_embed``, patch 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1))


class MambaIR(nn.Module):
    """MambaIR. x: (Bt, C_in, H, W) in [0, 1] -> (Bt, C_in, s*H, s*W); see the module docstring and
    :class:`MambaIRConfig` for the arguments."""

    def __init__(self, config: Optional[MambaIRConfig] = None, **overrides: Any) -> None:
        super().__init__()
        c = config_with(config or MambaIRConfig(), overrides, "mambair")
        upsampler = c.upsampler
        if upsampler not in MAMBAIR_UPSAMPLERS:
            raise ValueError(f"unknown upsampler {upsampler!r}; known: {MAMBAIR_UPSAMPLERS}")
        if upsampler == "auto":
            upsampler = "pixelshuffledirect" if c.upscale > 1 else "none"
        if c.cab_kind not in CAB_KINDS:
            raise ValueError(f"unknown cab_kind {c.cab_kind!r}; known: {CAB_KINDS}")
        if upsampler == "none" and c.upscale != 1:
            raise ValueError(f"upsampler='none' (restoration) needs upscale=1, got {c.upscale}")
        if upsampler != "none" and c.upscale < 2:
            raise ValueError(f"upsampler={upsampler!r} needs upscale >= 2, got {c.upscale}; use upsampler='none'")
        if upsampler in ("pixelshuffle", "nearest+conv"):
            upsample_steps(c.upscale)  # raises for unsupported scales
        if c.in_channels < 1 or c.embed_dim < 1 or not c.depths or min(c.depths) < 1:
            raise ValueError(f"bad sizes: in_channels={c.in_channels}, embed_dim={c.embed_dim}, depths={c.depths}")
        if c.in_channels == 3 and len(c.rgb_mean) != 3:
            raise ValueError(f"rgb_mean needs 3 values, got {c.rgb_mean}")
        self.in_channels = c.in_channels
        self.embed_dim = c.embed_dim
        self.upscale = c.upscale
        self.upsampler = upsampler
        self.img_range = c.img_range
        mean = torch.tensor(c.rgb_mean if c.in_channels == 3 else [0.0], dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)

        self.conv_first = nn.Conv2d(c.in_channels, c.embed_dim, 3, padding=1)
        self.patch_embed = _TokenNorm(c.embed_dim)
        self.pos_drop = nn.Dropout(c.drop_rate) if c.drop_rate > 0 else nn.Identity()
        n_blocks = sum(c.depths)
        dpr = drop_path_schedule(c.drop_path_rate, n_blocks)  # linear decay
        self.layers = nn.ModuleList()
        start = 0
        for depth in c.depths:
            blocks = [RSSB(c.embed_dim, d_state=c.d_state, expand=c.expand, scan_order=c.scan_order,
                           block_kind=c.block_kind, cab_kind=c.cab_kind, cab_compress=c.cab_compress,
                           ca_squeeze=c.ca_squeeze, mlp_hidden_ratio=c.mlp_hidden_ratio, drop_path=dpr[start + j],
                           dt_rank=c.dt_rank, scan_backend=c.scan_backend) for j in range(depth)]
            start += depth
            self.layers.append(RSSG(c.embed_dim, blocks))
        self.norm = nn.LayerNorm(c.embed_dim)
        self.conv_after_body = nn.Conv2d(c.embed_dim, c.embed_dim, 3, padding=1)

        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(c.embed_dim, c.num_feat, 3, padding=1),
                                                      nn.LeakyReLU(inplace=True))
            self.upsample: nn.Module = PixelShuffleUpsample(c.upscale, c.num_feat)
            self.conv_last = nn.Conv2d(c.num_feat, c.in_channels, 3, padding=1)
        elif upsampler == "nearest+conv":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(c.embed_dim, c.num_feat, 3, padding=1),
                                                      nn.LeakyReLU(inplace=True))
            self.upsample = NearestConvUpsample(c.upscale, c.num_feat)
            self.conv_last = nn.Conv2d(c.num_feat, c.in_channels, 3, padding=1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = PixelShuffleDirect(c.upscale, c.embed_dim, c.in_channels)
        else:
            self.conv_last = nn.Conv2d(c.embed_dim, c.in_channels, 3, padding=1)
        self.apply(init_linear_and_layernorm)  # the official init

    def forward_features(self, f: Tensor) -> Tensor:
        """The deep features. f: (Bt, C, H, W) -> (Bt, C, H, W) (before conv_after_body)."""
        t = self.pos_drop(self.patch_embed(f))  # (Bt, H, W, C)
        for layer in self.layers:
            t = layer(t)
        return self.norm(t).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C_in, H, W) -> (Bt, C_in, upscale*H, upscale*W)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MambaIR expects (Bt, {self.in_channels}, H, W) images, got shape {tuple(x.shape)}")
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        f = self.conv_first(x)
        g = self.conv_after_body(self.forward_features(f)) + f
        if self.upsampler in ("pixelshuffle", "nearest+conv"):
            out = self.conv_last(self.upsample(self.conv_before_upsample(g)))
        elif self.upsampler == "pixelshuffledirect":
            out = self.upsample(g)
        else:
            out = x + self.conv_last(g)
        return out / self.img_range + mean


register_arch("mambair", MambaIR, MambaIRConfig, paper="arXiv:2402.15648")


def _classic_sr(scale: int) -> MambaIRConfig:
    return MambaIRConfig(upscale=scale, upsampler="pixelshuffle")


def _light_sr(scale: int) -> MambaIRConfig:
    return MambaIRConfig(embed_dim=60, depths=(6, 6, 6, 6), d_state=16, expand=1.5, cab_kind="classic",
                         cab_compress=6, upscale=scale, upsampler="pixelshuffledirect")


def _light_sr_v2(scale: int) -> MambaIRConfig:
    return MambaIRConfig(embed_dim=60, depths=(6, 6, 6, 6), d_state=10, expand=1.2, cab_kind="light",
                         cab_compress=2, upscale=scale, upsampler="pixelshuffledirect")


def _restoration(channels: int) -> MambaIRConfig:
    return MambaIRConfig(in_channels=channels, expand=1.2, upscale=1, upsampler="none")


def _tiny(scale: int, channels: int = 3) -> MambaIRConfig:
    return MambaIRConfig(in_channels=channels, embed_dim=32, depths=(2, 2), d_state=8, expand=1.5, cab_compress=4,
                         ca_squeeze=8, upscale=scale, upsampler="pixelshuffledirect" if scale > 1 else "none",
                         drop_path_rate=0.0)


for _s in (2, 3, 4):
    register_preset("mambair", f"classic_sr_x{_s}",
                    f"classic SR x{_s}: C=180, 6x6 RSSB, N=16, expand 2, CAB compress 3, pixelshuffle (64 feats)"
                    )(lambda s=_s: _classic_sr(s))
    register_preset("mambair", f"light_sr_x{_s}",
                    f"lightweight SR x{_s}, the paper's (Mar 2024): C=60, 4x6, N=16, expand 1.5, CAB compress 6, "
                    "pixelshuffledirect")(lambda s=_s: _light_sr(s))
    register_preset("mambair", f"light_sr_v2_x{_s}",
                    f"lightweight SR x{_s}, current official (Oct 2024): C=60, 4x6, N=10, expand 1.2, light CAB "
                    "(compress 2)")(lambda s=_s: _light_sr_v2(s))
    register_preset("mambair", f"tiny_sr_x{_s}",
                    f"tiny SR x{_s} for quick CPU runs: C=32, 2x2, N=8, expand 1.5, pixelshuffledirect"
                    )(lambda s=_s: _tiny(s))
register_preset("mambair", "color_dn", "colour denoising: C=180, 6x6, expand 1.2, no upsampler, global residual"
                )(lambda: _restoration(3))
register_preset("mambair", "gray_dn", "grey denoising: as color_dn with 1 channel")(lambda: _restoration(1))
register_preset("mambair", "gray_car", "JPEG artifact removal (grey): C=180, 6x6, expand 1.2, 1 channel"
                )(lambda: _restoration(1))
register_preset("mambair", "tiny",
                "tiny model for quick CPU runs of any task: C=32, 2x2, N=8; upsampler 'auto' (pixelshuffledirect if "
                "upscale > 1, else restoration with global residual); the trainer sets upscale from the config's scale"
                )(lambda: dataclasses.replace(_tiny(2), upsampler="auto"))
register_preset("mambair", "tiny_dn", "tiny colour denoising for quick CPU runs: C=32, 2x2")(lambda: _tiny(1))
register_preset("mambair", "tiny_gray_dn", "tiny grey denoising / CAR for quick CPU runs: C=32, 2x2, 1 channel"
                )(lambda: _tiny(1, channels=1))
