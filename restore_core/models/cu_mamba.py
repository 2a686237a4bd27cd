"""CU-Mamba: a 4-level U-Net whose blocks pair a spatial SSM (tokens = pixels) with a channel SSM (tokens = channels).

Deng & Gu, "CU-Mamba: Selective State Space Models with Channel Learning for Image Restoration", arXiv:2404.11778.
No official code exists: everything below the paper's description is our reading, and every number the paper does
not give is marked as an assumption.

Structure (x: (Bt, C_in, H, W), C = ``dim``; level widths C, 2C, 4C, 8C; ``num_blocks`` = (N1, N2, N3, N4))::

    xp  = pad(x) to multiples of 8 (reflect; replicate where the image is too small to reflect)
    f0  = patch_embed(xp)                             conv3x3 C_in -> C
    e1  = encoder_level1(f0)                          N1 CU-Mamba blocks at C,  H   x W
    e2  = encoder_level2(down1_2(e1))                 N2 blocks at 2C,          H/2 x W/2
    e3  = encoder_level3(down2_3(e2))                 N3 blocks at 4C,          H/4 x W/4
    l4  = latent(down3_4(e3))                         N4 blocks at 8C,          H/8 x W/8
    d3  = decoder_level3(reduce3(cat(up4_3(l4), e3)))  1x1 8C -> 4C, N3 blocks
    d2  = decoder_level2(reduce2(cat(up3_2(d3), e2)))  1x1 4C -> 2C, N2 blocks
    d1  = decoder_level1(cat(up2_1(d2), e1))           N1 blocks at 2C (no reduction at level 1, as Restormer)
    R   = output(refinement(d1))                      ``num_refinement`` blocks at 2C, conv3x3 2C -> C_in
    y   = x + crop(R)                                 global residual (the paper predicts a residual)

    down: conv3x3 C -> C/2 then PixelUnshuffle(2) (-> 2C);  up: conv3x3 C -> 2C then PixelShuffle(2) (-> C/2)

CU-Mamba block (x: (Bt, C, H, W)); LN = LayerNorm over channels (:class:`~restore_core.layers.LayerNorm2d`)::

    x = x + SpatialSSM(LN(x))       SS2D over the H*W pixel tokens (1x1 proj, dw3x3, SiLU, scan, gate)
    x = x + FFN(LN(x))
    x = x + ChannelSSM(LN(x))       selective scan over the C channel tokens (below)
    x = x + FFN(LN(x))
    FFN: 1x1 C -> hC, dw3x3, LeakyReLU(0.2), dw3x3, 1x1 hC -> C   (h = ``ffn_expansion``)

The paper's channel block ends with "two depth-wise 3x3 convolutions with LeakyReLU"; we place them inside a
feed-forward between 1x1 projections and use the same feed-forward after the spatial SSM (our assumption, the
brief's "each followed by a feed-forward").

Channel SSM: how a variable H*W is handled
------------------------------------------
With channels as tokens, token c's feature vector is the whole map u[:, c] in R^{H*W}. Mamba would project that
vector to Δ_c, B_c, C_c with weights of shape (H*W, .) and keep A, D per feature (H*W rows), which fixes the
image size at construction. We keep every weight independent of H*W:

    u, z  = split(1x1 conv C -> 2C (x))        u then dw3x3 + SiLU, as in the spatial SSM; z is the gate
    seq   = cross_scan(u, "channel")           (Bt, 1, H*W, C): H*W "Mamba channels" d, sequence over C tokens
    s_c   = AdaptiveAvgPool(u[:, c]) -> P x P  (Bt, C, P*P): a fixed-size descriptor of each channel token
    Δ_c, B_c, C_c = x_proj(s_c)                Linear P*P -> 1 + 2N (no bias); Δ_c gets a learnt bias dt_bias
    h_c(p) = exp(Δ_c A) h_{c-1}(p) + Δ_c B_c u(p, c);  y(p, c) = C_c · h_c(p) + D u(p, c)
    out   = out_proj(LN(y) * SiLU(z))          1x1 C -> C

* Selection (Δ, B, C) is computed from a pooled P x P summary (``channel_pool``, default 4) of each channel map,
  so x_proj has (P*P) x (1 + 2N) weights whatever the image size; AdaptiveAvgPool works for any H, W (maps smaller
  than P are repeated).
* Every pixel p runs the same recurrence along the channels with shared A (N values) and D (one value): the
  pixels play the role of Mamba's D channels, which in Mamba already share B_t and C_t. Only A and D, which Mamba
  keeps per channel, are tied across pixels; this is the one structural deviation. It makes the layer
  translation-equivariant in (H, W) apart from the pooling, keeps its cost linear, O(Bt * H*W * C * N), and lets
  one set of weights run on 256 x 256 training crops and full 720 x 1280 GoPro frames alike.
* Why not resize each map to a fixed size and project? Resizing back would blur the output; pooling is used only
  for the selection parameters, while the state carries the full-resolution maps.

Config switches: ``use_spatial_ssm`` / ``use_channel_ssm`` replace that SSM by a local convolutional mixer
(1x1 C -> 2C, dw3x3, GELU, 1x1 2C -> C, i.e. a plain conv block, our assumption for the paper's "U-Net" rows); with
both off the network is a plain conv/FFN U-Net of the same depth and widths. ``spatial_scan_order`` selects the
pixel order ("1d" = the paper's raster scan; "4d" = MambaIR's four directions). ``zero_init_output`` (default on,
our choice; the paper says nothing about initialisation) starts the output convolution at zero, so the untrained
network returns its input (R = 0) and training improves on the degraded image from the first step instead of
first un-learning a random residual; the other layers keep PyTorch's default initialisation (SS2D its own).

Numbers. From the paper: 4-level symmetric U-Net, conv3x3 stem, pixel-(un)shuffle resampling, skip concatenation,
global residual, Charbonnier + 0.1 FFT loss, spatial then channel SSM in every block. Assumed (not readable from the
paper; Restormer's deblurring model, which CU-Mamba follows and compares against): C = 48, blocks (4, 6, 6, 8),
4 refinement blocks; d_state N = 16, spatial expand 2 (Mamba's defaults); FFN expansion 2; channel pool P = 4.
The "denoise" preset uses the same network (the paper reports denoising; no separate size is given).
Parameter counts: :func:`restore_core.models.build_model` ("deblur": 36,757,128 with these assumptions;
"tiny": 991,264).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.norm import LayerNorm2d
from ..layers.padding import pad_to_multiple
from ..ssm.cross_scan import cross_merge, cross_scan
from ..ssm.dt_init import inverse_softplus
from ..ssm.scan import selective_scan
from ..ssm.ss2d import SS2D
from .registry import config_with, register_arch, register_preset

__all__ = ["CUMamba", "CUMambaConfig", "CUMambaBlock", "ChannelSSM", "SpatialSSM", "ConvMixer", "FeedForward",
           "PAD_MULTIPLE"]

PAD_MULTIPLE = 8  # three 2x downsamplings


@dataclass
class CUMambaConfig:
    """Every CU-Mamba constructor argument. Defaults: the "deblur" preset (assumed sizes, see the module doc)."""

    RENAMED: ClassVar[Dict[str, str]] = {"dim": "embed_dim"}  # earlier names, still accepted (deprecated)

    in_channels: int = 3
    embed_dim: int = 48                # C: level l has C * 2**l channels (the decoder's level 1 too: 2C)
    num_blocks: Tuple[int, ...] = (4, 6, 6, 8)
    num_refinement: int = 4
    d_state: int = 16
    spatial_expand: float = 2.0
    spatial_scan_order: str = "1d"
    channel_pool: int = 4
    ffn_expansion: float = 2.0
    use_spatial_ssm: bool = True
    use_channel_ssm: bool = True
    dt_rank: Optional[int] = None      # spatial SS2D's dt rank; None: ceil(C / 16)
    zero_init_output: bool = True      # output conv starts at 0: the untrained network is the identity
    scan_backend: str = "auto"

    @property
    def dim(self) -> int:
        """The earlier name of :attr:`embed_dim`."""
        return self.embed_dim


class FeedForward(nn.Module):
    """1x1 C -> hC, dw3x3, LeakyReLU(0.2), dw3x3, 1x1 hC -> C. x: (Bt, C, H, W) -> (Bt, C, H, W)."""

    def __init__(self, dim: int, expansion: float = 2.0) -> None:
        super().__init__()
        hidden = max(1, int(dim * expansion))
        self.project_in = nn.Conv2d(dim, hidden, 1, bias=False)
        self.dwconv1 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.act = nn.LeakyReLU(0.2)
        self.dwconv2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.project_out(self.dwconv2(self.act(self.dwconv1(self.project_in(x)))))


class ConvMixer(nn.Module):
    """The local stand-in for a switched-off SSM: 1x1 C -> 2C, dw3x3, GELU, 1x1 2C -> C. (Bt, C, H, W)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project_in = nn.Conv2d(dim, 2 * dim, 1, bias=False)
        self.dwconv = nn.Conv2d(2 * dim, 2 * dim, 3, padding=1, groups=2 * dim, bias=False)
        self.act = nn.GELU()
        self.project_out = nn.Conv2d(2 * dim, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.project_out(self.act(self.dwconv(self.project_in(x))))


class SpatialSSM(nn.Module):
    """Tokens = pixels: :class:`~restore_core.ssm.SS2D` on a channels-first map. (Bt, C, H, W) -> same."""

    def __init__(self, dim: int, d_state: int = 16, expand: float = 2.0, scan_order: str = "1d",
                 dt_rank: Optional[int] = None, scan_backend: str = "auto") -> None:
        super().__init__()
        self.ss2d = SS2D(dim, d_state=d_state, expand=expand, scan_order=scan_order, dt_rank=dt_rank,
                         scan_backend=scan_backend)

    def forward(self, x: Tensor) -> Tensor:
        return self.ss2d.forward_nchw(x)


class ChannelSSM(nn.Module):
    """Tokens = channels, any H*W (see the module docstring). x: (Bt, C, H, W) -> (Bt, C, H, W).

    Args:
        dim: C, also the sequence length of the scan.
        d_state: N.
        pool: P, the side of the pooled descriptor each channel token's Δ, B, C are computed from.
        dt_min, dt_max: Δ's initial value softplus(dt_bias) = sqrt(dt_min * dt_max) (Mamba's range, mid-point).
    """

    def __init__(self, dim: int, d_state: int = 16, pool: int = 4, dt_min: float = 1e-3, dt_max: float = 0.1,
                 scan_backend: str = "auto") -> None:
        super().__init__()
        if dim < 1 or d_state < 1 or pool < 1:
            raise ValueError(f"ChannelSSM needs dim, d_state, pool >= 1; got {dim}, {d_state}, {pool}")
        self.dim, self.d_state, self.pool = dim, d_state, pool
        self.scan_backend = scan_backend
        self.in_proj = nn.Conv2d(dim, 2 * dim, 1, bias=False)
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=True)
        self.x_proj = nn.Linear(pool * pool, 1 + 2 * d_state, bias=False)          # s_c -> (Δ_c, B_c, C_c)
        self.dt_bias = nn.Parameter(torch.empty(1))
        self.A_log = nn.Parameter(torch.empty(d_state))                            # shared by all pixels
        self.D = nn.Parameter(torch.empty(1))
        self.out_norm = LayerNorm2d(dim)
        self.out_proj = nn.Conv2d(dim, dim, 1, bias=False)
        self.dt_init = (dt_min, dt_max)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """A_log = log(1..N), D = 1, softplus(dt_bias) = sqrt(dt_min * dt_max) (Mamba's conventions)."""
        dt = math.sqrt(self.dt_init[0] * self.dt_init[1])
        self.dt_bias.fill_(inverse_softplus(dt))
        self.A_log.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float64)))
        self.D.fill_(1.0)

    def ssm(self, u: Tensor) -> Tensor:
        """The scan over channels. u: (Bt, C, H, W) -> y: (Bt, C, H, W)."""
        Bt, C, H, W = u.shape
        N, L = self.d_state, H * W
        seq = cross_scan(u, "channel")[:, 0]                                    # (Bt, H*W, C)
        s = F.adaptive_avg_pool2d(u, self.pool).flatten(2)                      # (Bt, C, P*P)
        x_dbl = self.x_proj(s)                                                  # (Bt, C, 1+2N)
        dt, Bs, Cs = torch.split(x_dbl, [1, N, N], dim=2)
        delta = dt.squeeze(2).unsqueeze(1).expand(Bt, L, C)                     # Δ_c, same for every pixel
        A = (-torch.exp(self.A_log)).unsqueeze(0).expand(L, N)                  # (H*W, N), tied
        y = selective_scan(seq, delta, A, Bs.transpose(1, 2).contiguous(), Cs.transpose(1, 2).contiguous(),
                           D=self.D.expand(L), delta_bias=self.dt_bias.expand(L), delta_softplus=True,
                           backend=self.scan_backend)                           # (Bt, H*W, C)
        return cross_merge(y.unsqueeze(1), "channel", H, W)                     # (Bt, C, H, W)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.dim:
            raise ValueError(f"ChannelSSM expects (Bt, C={self.dim}, H, W), got {tuple(x.shape)}")
        u, z = self.in_proj(x).chunk(2, dim=1)
        u = F.silu(self.dwconv(u))
        y = self.out_norm(self.ssm(u)) * F.silu(z)
        return self.out_proj(y)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, d_state={self.d_state}, pool={self.pool} (tokens = channels, L = C)"


class CUMambaBlock(nn.Module):
    """Spatial mixer + FFN, then channel mixer + FFN, each pre-LN with a residual. (Bt, C, H, W) -> same."""

    def __init__(self, dim: int, d_state: int = 16, spatial_expand: float = 2.0, spatial_scan_order: str = "1d",
                 channel_pool: int = 4, ffn_expansion: float = 2.0, use_spatial_ssm: bool = True,
                 use_channel_ssm: bool = True, dt_rank: Optional[int] = None, scan_backend: str = "auto") -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.spatial: nn.Module = (SpatialSSM(dim, d_state, spatial_expand, spatial_scan_order, dt_rank,
                                              scan_backend) if use_spatial_ssm else ConvMixer(dim))
        self.norm2 = LayerNorm2d(dim)
        self.ffn1 = FeedForward(dim, ffn_expansion)
        self.norm3 = LayerNorm2d(dim)
        self.channel: nn.Module = (ChannelSSM(dim, d_state, channel_pool, scan_backend=scan_backend)
                                   if use_channel_ssm else ConvMixer(dim))
        self.norm4 = LayerNorm2d(dim)
        self.ffn2 = FeedForward(dim, ffn_expansion)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.spatial(self.norm1(x))
        x = x + self.ffn1(self.norm2(x))
        x = x + self.channel(self.norm3(x))
        return x + self.ffn2(self.norm4(x))


class Downsample(nn.Module):
    """conv3x3 C -> C/2, PixelUnshuffle(2): (Bt, C, H, W) -> (Bt, 2C, H/2, W/2)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """conv3x3 C -> 2C, PixelShuffle(2): (Bt, C, H, W) -> (Bt, C/2, 2H, 2W)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class CUMamba(nn.Module):
    """CU-Mamba. x: (Bt, C_in, H, W), any H, W -> (Bt, C_in, H, W); see the module docstring and
    :class:`CUMambaConfig` for the arguments."""

    def __init__(self, config: Optional[CUMambaConfig] = None, **overrides: Any) -> None:
        super().__init__()
        c = config_with(config or CUMambaConfig(), overrides, "cu_mamba")
        if c.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {c.in_channels}")
        if c.embed_dim < 2 or c.embed_dim % 2:
            raise ValueError(f"embed_dim must be even and >= 2 (the downsampler halves it), got {c.embed_dim}")
        if len(c.num_blocks) != 4 or min(c.num_blocks) < 1 or c.num_refinement < 0:
            raise ValueError(f"num_blocks needs 4 levels of >= 1 block and num_refinement >= 0; got {c.num_blocks}, "
                             f"{c.num_refinement}")
        self.in_channels = c.in_channels
        self.use_spatial_ssm = c.use_spatial_ssm
        self.use_channel_ssm = c.use_channel_ssm

        def level(width: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[CUMambaBlock(width, c.d_state, c.spatial_expand, c.spatial_scan_order,
                                                c.channel_pool, c.ffn_expansion, c.use_spatial_ssm, c.use_channel_ssm,
                                                c.dt_rank, c.scan_backend) for _ in range(n)])

        n1, n2, n3, n4 = c.num_blocks
        C = c.embed_dim
        self.patch_embed = nn.Conv2d(c.in_channels, C, 3, padding=1, bias=False)
        self.encoder_level1 = level(C, n1)
        self.down1_2 = Downsample(C)
        self.encoder_level2 = level(2 * C, n2)
        self.down2_3 = Downsample(2 * C)
        self.encoder_level3 = level(4 * C, n3)
        self.down3_4 = Downsample(4 * C)
        self.latent = level(8 * C, n4)
        self.up4_3 = Upsample(8 * C)
        self.reduce_chan_level3 = nn.Conv2d(8 * C, 4 * C, 1, bias=False)
        self.decoder_level3 = level(4 * C, n3)
        self.up3_2 = Upsample(4 * C)
        self.reduce_chan_level2 = nn.Conv2d(4 * C, 2 * C, 1, bias=False)
        self.decoder_level2 = level(2 * C, n2)
        self.up2_1 = Upsample(2 * C)
        self.decoder_level1 = level(2 * C, n1)
        self.refinement = level(2 * C, c.num_refinement)
        self.output = nn.Conv2d(2 * C, c.in_channels, 3, padding=1, bias=False)
        if c.zero_init_output:
            nn.init.zeros_(self.output.weight)

    @staticmethod
    def pad(x: Tensor, multiple: int = PAD_MULTIPLE) -> Tensor:
        """Pad bottom/right to multiples of ``multiple``: reflect, or replicate where a side is too short."""
        return pad_to_multiple(x, multiple)

    def forward(self, x: Tensor) -> Tensor:
        """x: (Bt, C_in, H, W) -> (Bt, C_in, H, W) = x + R."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"CU-Mamba expects (Bt, {self.in_channels}, H, W) images, got shape {tuple(x.shape)}")
        H, W = x.shape[-2:]
        xp = self.pad(x)
        e1 = self.encoder_level1(self.patch_embed(xp))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        l4 = self.latent(self.down3_4(e3))
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(l4), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1))
        r = self.output(self.refinement(d1))
        return x + r[..., :H, :W]


register_arch("cu_mamba", CUMamba, CUMambaConfig, paper="arXiv:2404.11778")

register_preset("cu_mamba", "deblur",
                "motion deblurring (GoPro): C=48, blocks (4, 6, 6, 8), 4 refinement, N=16, spatial expand 2, raster "
                "scan (sizes assumed, Restormer's; the paper gives none)")(lambda: CUMambaConfig())
register_preset("cu_mamba", "denoise",
                "real denoising (SIDD): the deblur network (the paper gives no separate size; assumption)"
                )(lambda: CUMambaConfig())
register_preset("cu_mamba", "tiny",
                "tiny model for quick CPU runs: C=16, 1 block per level, 1 refinement block, N=8"
                )(lambda: CUMambaConfig(embed_dim=16, num_blocks=(1, 1, 1, 1), num_refinement=1, d_state=8))
