"""FusionMamba: dynamic feature enhancement for infrared-visible (multimodal) image fusion with Mamba.

Xie, Cui, Ieong, Tan, Zhang, Zheng, Yu, "FusionMamba: Dynamic Feature Enhancement for Multimodal Image Fusion with
Mamba", arXiv:2404.09498. Official code: millieXie/FusionMamba (``models/vmamba_Fusion_efficross.py``,
``models/cross.py``). Not PSRben/FusionMamba (a different paper).

Signature: ``model(ir, vis)`` with ir: (Bt, in_channels, H, W) and vis: (Bt, in_channels, H, W) (the
luminance Y of the visible image for colour inputs), any H, W >= 1 -> fused (Bt, out_channels, H, W).

Layout (channel-last features (Bt, H, W, C) inside, as in VMamba)::

    ir, vis -> patch embed k4 s4 (one per modality) -> shared encoder: per level, DVSS blocks then patch merging
    per level l: fused_l = DFFM_l(enc_ir_l, enc_vis_l)           DFFM = DFEM (+) CMFM
    decoder: d = DVSS blocks(fused_{L-1}); for l = L-2 .. 0: d = DVSS blocks(patch_expand(d) + fused_l)
    output  = conv1x1(final patch expand x4 (d)) + residual of the inputs

* DVSS block (``DVSSBlock``): ``s = SS2D_ES2D(LN(x))``; ``e = s + ECA(s)``; ``r = BiAttn(s) + BiAttn(LDC(e))``;
  ``x = x + r``; ``x = x + MLP(LN(x))``. ES2D = the efficient 2D scan over the four stride-2 sub-grids
  (``restore_core.ssm.cross_scan`` order ``"es2d"``). LDC = learnable difference convolution.
* DFEM: ``F_k = LDC_k(x_k) + sigmoid(GAP(x_k - x_other)) * (x_ir + x_vis) + x_k`` (difference-perception
  weights times the sum, plus a texture branch).
* CMFM: the two enhanced features are layer-normed and get their own input projections (x_k, z_k), a shared
  depthwise conv and SiLU, then ONE selective scan over ``x_ir * x_vis + x_ir + x_vis`` (ES2D); the scan output
  is gated by both branches, ``y * SiLU(z_ir) + y * SiLU(z_vis)``, projected (c), and ``c + ECA(c)`` is added to
  the DFFM inputs ``x_ir + x_vis``. No MLP follows (the official ``VSSBlock_Cross_new`` has none).

Differences from the official code (the paper's intent is implemented; ``official`` below = the released code,
``VSSM_Fusion.forward(x1, x2)``, whose branch 1 is the *visible* image in both of its scripts: train.py calls
``model(image_vis, image_ir)``, and test.py passes its visible folder as the first argument of ``fusion``
(a parameter named ``input_folder_ir``), which feeds it to the model first). Each difference has a switch;
:func:`restore_core.models.official.from_official` sets them all (chapter 06 compares the two wirings):

* CMFM gate (``cmfm_gate``): official computes ``z1 = act(z1); z2 = act(z1)``, so the output is
  ``y * SiLU(z_vis) + y * SiLU(SiLU(z_vis))`` and the *infrared* branch's gate z_ir is never used; here
  ``y * SiLU(z_ir) + y * SiLU(z_vis)`` (``"paper"``, default) or the released form (``"official"``).
* Skips (``skip_wiring``): official (a) fuses the *inputs* of each encoder level (the patch embedding, then each
  patch merging's output), (b) adds the fused skips of levels 3, 2, 1 to the decoder just *before* each patch
  expand (at the coarser level), (c) computes the fused level-0 skip and never uses it, and (d) starts the
  decoder from the plain sum of the two encoders' last outputs. ``"paper"`` (default): each level's DVSS output
  is fused by its DFFM and every fused map enters the decoder at its own resolution (the bottleneck's DFFM
  output starts the decoder). ``"official"``: the released wiring (the unused level-0 fusion is skipped).
* Output (``input_residual``): official returns ``decoder + x_1 + x_2 + x_1 + x_2`` (each input added twice:
  2 (ir + vis), four times the intensity scale of their mean); ``"mean"`` (default: decoder + (ir + vis) / 2),
  ``"sum"`` (ir + vis), ``"official"`` (2 (ir + vis)) or ``"none"``.
* State size (``dvss_d_state``): official passes ``d_state`` only to the CMFMs; its DVSS blocks swallow the
  argument and always use N = 16. ``None`` (default): the DVSS blocks use ``d_state`` too.
* Input order: here always ``model(ir, vis)`` (what the trainer passes); the official key mapping puts
  official branch 1 (``patch_embed1``, ``texture_enhance1``, ``ln_1``, ``in_proj1``) on our ``*_vis`` modules.
* Any input size: official training and testing resize to 256x256 (users report fixed 256x256 outputs, their
  issue #16). Inputs are padded (reflect; replicate for images smaller than the padding) at the bottom / right
  to a multiple of ``patch_size * 2**(levels-1)`` and the output cropped back.
* No ``timm``: drop-path, LayerNorm and MLP are plain PyTorch; the CUDA-only LDC centre mask is a CPU/GPU buffer,
  and the frozen all-ones LDC ``base_mask`` Parameters and the never-called 1x1 ``lastconv`` of the official
  ``Differential_enhance`` are not built.

Parameters (preset ``"ir_vis"`` = ``VSSM_Fusion()``'s defaults: C=96, depths 2-2-9-2, decoder 2-9-2-2, d_state 16,
SS2D expand 2, MLP ratio 4): 164,146,245. The official module reports 225,419,541 = 164,146,245 + 60,880,896
(38 frozen ``base_mask``) + 392,400 (unused ``lastconv``); its trainable count is 164,538,645. The full 3x3
convolution inside every LDC (C x C x 9) dominates: 60.9M of the 164.1M. Presets ``"ct_mri"`` (the same network)
and ``"ct_mri_tiny"`` (depths 2-2-1-2 / 2-1-2-2, its README's tiny model: 101,894,405 here, 141,934,037 =
101,894,405 + 39,647,232 (22 masks) + 392,400 there) match the released CT-MRI weights.

Ablation switches (the paper's ablation study): ``use_ldc`` / ``use_eca`` (the DVSS blocks' LDC / ECA; both off =
the plain VSS block ``x + SS2D(LN(x))`` + MLP, without BiAttn; the CMFM keeps its ECA), ``use_dfem`` (off:
F_k = x_k), ``use_cmfm`` (off: fused = F_ir + F_vis).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..layers.drop_path import DropPath, drop_path_schedule
from ..layers.eca import ECA
from ..layers.init import init_linear_and_layernorm
from ..layers.ldc import LearnableDifferenceConv2d
from ..layers.mlp import ChannelMlp
from ..layers.padding import pad_to_multiple
from ..ssm.ss2d import SS2D
from .registry import config_with, register_arch, register_preset

PAPER = ("FusionMamba: Dynamic Feature Enhancement for Multimodal Image Fusion with Mamba "
         "(arXiv:2404.09498)")
SKIP_WIRINGS = ("paper", "official")   # which encoder features are fused and where they enter the decoder
CMFM_GATES = ("paper", "official")     # y*SiLU(z_ir) + y*SiLU(z_vis)  |  y*SiLU(z_vis) + y*SiLU(SiLU(z_vis))


def _to_channels_first(x: Tensor) -> Tensor:
    return rearrange(x, "b h w c -> b c h w")


def _to_channels_last(x: Tensor) -> Tensor:
    return rearrange(x, "b c h w -> b h w c")


class BiAttn(nn.Module):
    """The channel gate of the official DVSS block: ``x * sigmoid(W2 GELU(W1 GAP(LN(x))))``, W1: C -> C/8.

    x: (Bt, H, W, C) -> (Bt, H, W, C).
    """

    def __init__(self, dim: int = 96, ratio: float = 0.125) -> None:
        super().__init__()
        reduced = max(1, int(dim * ratio))
        self.norm = nn.LayerNorm(dim)
        self.reduce = nn.Linear(dim, reduced)
        self.act = nn.GELU()
        self.select = nn.Linear(reduced, dim)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.norm(x).mean(dim=(1, 2), keepdim=True)          # (Bt, 1, 1, C)
        return x * torch.sigmoid(self.select(self.act(self.reduce(pooled))))


class PatchEmbed(nn.Module):
    """Conv k=s=patch_size, then LayerNorm. x: (Bt, C_in, H, W) -> (Bt, H/p, W/p, C)."""

    def __init__(self, in_channels: int = 1, dim: int = 96, patch_size: int = 4) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(_to_channels_last(self.proj(x)))


class PatchMerging(nn.Module):
    """2x2 space-to-depth, LayerNorm(4C), Linear 4C -> 2C. x: (Bt, H, W, C) -> (Bt, H/2, W/2, 2C) (H, W even)."""

    def __init__(self, dim: int = 96, out_dim: int = 192) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        # Channel order (0,0), (1,0), (0,1), (1,1) as in VMamba / the official code.
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class PatchExpand(nn.Module):
    """Linear C -> s*s*C_out, depth-to-space by s, LayerNorm. x: (Bt, H, W, C) -> (Bt, sH, sW, C_out)."""

    def __init__(self, dim: int = 192, out_dim: int = 96, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = rearrange(self.expand(x), "b h w (p1 p2 c) -> b (h p1) (w p2) c", p1=self.scale, p2=self.scale)
        return self.norm(x)


class DifferenceEnhancement(nn.Module):
    """DFEM: texture (LDC) and difference-perception enhancement of the two modalities.

    ``F_k = LDC_k(x_k) + sigmoid(GAP(x_k - x_other)) * (x_ir + x_vis) + x_k``.
    x_ir, x_vis: (Bt, C, H, W) -> F_ir, F_vis: (Bt, C, H, W).
    """

    def __init__(self, dim: int = 96) -> None:
        super().__init__()
        self.texture_ir = LearnableDifferenceConv2d(dim, dim)
        self.texture_vis = LearnableDifferenceConv2d(dim, dim)

    @staticmethod
    def difference_weights(x_ir: Tensor, x_vis: Tensor) -> Tuple[Tensor, Tensor]:
        """sigmoid(GAP(x_ir - x_vis)), sigmoid(GAP(x_vis - x_ir)): each (Bt, C, 1, 1)."""
        d = (x_ir - x_vis).mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(d), torch.sigmoid(-d)

    def forward(self, x_ir: Tensor, x_vis: Tensor) -> Tuple[Tensor, Tensor]:
        w_ir, w_vis = self.difference_weights(x_ir, x_vis)
        both = x_ir + x_vis
        return (self.texture_ir(x_ir) + w_ir * both + x_ir,
                self.texture_vis(x_vis) + w_vis * both + x_vis)


# --------------------------------------------------------------------------------------------------- DVSS block
class DVSSBlock(nn.Module):
    """Dynamic visual state-space block (channel-last). x: (Bt, H, W, C) -> (Bt, H, W, C).

    ``s = SS2D_ES2D(LN(x))``; ``e = s + ECA(s)``; ``r = BiAttn(s) + BiAttn(LDC(e))`` (one BiAttn, applied
    twice, as the official ``VSSBlock_new``); ``x = x + DropPath(r)``; ``x = x + DropPath(MLP(LN(x)))``.

    Switches: ``use_eca=False`` -> ``e = s``; ``use_ldc=False`` -> ``LDC`` is the identity; both off -> the plain
    VSS block ``r = s`` (no BiAttn either: nothing is left for it to weigh).
    """

    def __init__(self, dim: int = 96, d_state: int = 16, expand: float = 2.0, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, use_ldc: bool = True, use_eca: bool = True, eca_kernel_size: int = 3,
                 scan_backend: str = "auto") -> None:
        super().__init__()
        self.use_ldc, self.use_eca = use_ldc, use_eca
        self.norm = nn.LayerNorm(dim)
        self.ss2d = SS2D(dim, d_state=d_state, expand=expand, scan_order="es2d", scan_backend=scan_backend)
        self.eca = ECA(dim, kernel_size=eca_kernel_size) if use_eca else None
        self.ldc = LearnableDifferenceConv2d(dim, dim) if use_ldc else None
        self.biattn = BiAttn(dim) if (use_ldc or use_eca) else None
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ChannelMlp(dim, int(dim * mlp_ratio))  # Linear C -> ratio*C, GELU, Linear -> C

    def mixer(self, x: Tensor) -> Tensor:
        """The token-mixing branch r (before the residual). x: (Bt, H, W, C) normalised -> (Bt, H, W, C)."""
        s = self.ss2d(x)
        if self.biattn is None:
            return s
        e = s + _to_channels_last(self.eca(_to_channels_first(s))) if self.eca is not None else s
        local = _to_channels_last(self.ldc(_to_channels_first(e))) if self.ldc is not None else e
        return self.biattn(s) + self.biattn(local)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.mixer(self.norm(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------------------------------- CMFM
class CrossModalSS2D(SS2D):
    """The CMFM's selective scan: one SS2D (ES2D order) over the cross-modal combination of two inputs.

    ``x_k, z_k = in_proj_k(F_k)`` (``in_proj`` = infrared, ``in_proj_vis`` = visible); ``u_k =
    SiLU(dwconv(x_k))`` (one shared depthwise conv); ``y = LN(scan(u_ir * u_vis + u_ir + u_vis))``;
    ``out = out_proj(y * SiLU(z_ir) + y * SiLU(z_vis))``. ``gate="official"``: the released code's
    ``y * SiLU(z_vis) + y * SiLU(SiLU(z_vis))`` (the infrared gate z_ir is computed and never used).
    f_ir, f_vis: (Bt, H, W, C) -> (Bt, H, W, C).
    """

    def __init__(self, d_model: int = 96, d_state: int = 16, expand: float = 2.0, gate: str = "paper",
                 scan_backend: str = "auto") -> None:
        super().__init__(d_model, d_state=d_state, expand=expand, scan_order="es2d", scan_backend=scan_backend)
        if gate not in CMFM_GATES:
            raise ValueError(f"cmfm_gate must be one of {CMFM_GATES}, got {gate!r}")
        self.gate = gate
        self.in_proj_vis = nn.Linear(d_model, 2 * self.d_inner, bias=False)

    def _branch(self, proj: nn.Linear, f: Tensor) -> Tuple[Tensor, Tensor]:
        x, z = proj(f).chunk(2, dim=-1)                                          # (Bt, H, W, E) each
        return F.silu(self.conv2d(_to_channels_first(x))), z                     # (Bt, E, H, W), (Bt, H, W, E)

    def forward(self, f_ir: Tensor, f_vis: Tensor) -> Tensor:  # type: ignore[override]
        u_ir, z_ir = self._branch(self.in_proj, f_ir)
        u_vis, z_vis = self._branch(self.in_proj_vis, f_vis)
        u = u_ir * u_vis + u_ir + u_vis                                           # cross-modal combination
        y = self.out_norm(_to_channels_last(self.ssm(u)))                         # (Bt, H, W, E)
        if self.gate == "official":   # released code: z1 = act(z1); z2 = act(z1) with branch 1 = visible
            g_vis = F.silu(z_vis)
            y = y * g_vis + y * F.silu(g_vis)
        else:
            y = y * F.silu(z_ir) + y * F.silu(z_vis)
        return self.dropout(self.out_proj(y))


class CrossModalFusion(nn.Module):
    """CMFM: ``c = CrossModalSS2D(LN(F_ir), LN(F_vis))``; ``out = x_ir + x_vis + c + ECA(c)``.

    f_ir, f_vis (DFEM outputs), x_ir, x_vis (DFFM inputs): (Bt, H, W, C) -> (Bt, H, W, C).
    """

    def __init__(self, dim: int = 96, d_state: int = 16, expand: float = 2.0, eca_kernel_size: int = 3,
                 gate: str = "paper", scan_backend: str = "auto") -> None:
        super().__init__()
        self.norm_ir = nn.LayerNorm(dim)
        self.norm_vis = nn.LayerNorm(dim)
        self.cross = CrossModalSS2D(dim, d_state=d_state, expand=expand, gate=gate, scan_backend=scan_backend)
        self.eca = ECA(dim, kernel_size=eca_kernel_size)

    def forward(self, f_ir: Tensor, f_vis: Tensor, x_ir: Tensor, x_vis: Tensor) -> Tensor:
        c = self.cross(self.norm_ir(f_ir), self.norm_vis(f_vis))
        return x_ir + x_vis + c + _to_channels_last(self.eca(_to_channels_first(c)))


class DFFM(nn.Module):
    """Dynamic feature fusion module of one level: DFEM, then CMFM.

    ``F_ir, F_vis = DFEM(x_ir, x_vis)`` (``use_dfem=False``: ``F_k = x_k``);
    ``fused = CMFM(F_ir, F_vis, x_ir, x_vis)`` (``use_cmfm=False``: ``fused = F_ir + F_vis``).
    x_ir, x_vis: (Bt, H, W, C) -> fused (Bt, H, W, C).
    """

    def __init__(self, dim: int = 96, d_state: int = 16, expand: float = 2.0, use_dfem: bool = True,
                 use_cmfm: bool = True, eca_kernel_size: int = 3, cmfm_gate: str = "paper",
                 scan_backend: str = "auto") -> None:
        super().__init__()
        self.dfem = DifferenceEnhancement(dim) if use_dfem else None
        self.cmfm = CrossModalFusion(dim, d_state=d_state, expand=expand, eca_kernel_size=eca_kernel_size,
                                     gate=cmfm_gate, scan_backend=scan_backend) if use_cmfm else None

    def forward(self, x_ir: Tensor, x_vis: Tensor) -> Tensor:
        if self.dfem is not None:
            f_ir, f_vis = self.dfem(_to_channels_first(x_ir), _to_channels_first(x_vis))
            f_ir, f_vis = _to_channels_last(f_ir), _to_channels_last(f_vis)
        else:
            f_ir, f_vis = x_ir, x_vis
        if self.cmfm is None:
            return f_ir + f_vis
        return self.cmfm(f_ir, f_vis, x_ir, x_vis)


# --------------------------------------------------------------------------------------------------- network
INPUT_RESIDUALS = ("mean", "sum", "official", "none")


@dataclass
class FusionMambaConfig:
    """Every FusionMamba constructor argument. Defaults: the official IR-VIS model (``VSSM_Fusion()``)."""

    in_channels: int = 1
    out_channels: int = 1
    patch_size: int = 4
    embed_dim: int = 96                                  # level l has embed_dim * 2**l channels
    depths: Tuple[int, ...] = (2, 2, 9, 2)               # DVSS blocks per encoder level
    decoder_depths: Optional[Tuple[int, ...]] = None     # per decoder level, deepest first; None: reversed depths
    d_state: int = 16
    expand: float = 2.0                                  # SS2D / CMFM inner channels E = int(expand * C)
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    eca_kernel_size: int = 3
    use_ldc: bool = True
    use_eca: bool = True
    use_dfem: bool = True
    use_cmfm: bool = True
    input_residual: str = "mean"                         # "mean" | "sum" | "official" (2 (ir + vis)) | "none"
    skip_wiring: str = "paper"                           # "paper" | "official" (released code's (a)-(d))
    cmfm_gate: str = "paper"                             # "paper" | "official" (the visible gate, twice)
    dvss_d_state: Optional[int] = None                   # DVSS blocks' N; None: d_state (released code: 16)
    scan_backend: str = "auto"


class FusionMamba(nn.Module):
    """FusionMamba. ``model(ir, vis)``: ir, vis (Bt, in_channels, H, W) -> fused (Bt, out_channels, H, W);
    see the module docstring and :class:`FusionMambaConfig` for the arguments."""

    def __init__(self, config: Optional[FusionMambaConfig] = None, **overrides: Any) -> None:
        super().__init__()
        c = config_with(config or FusionMambaConfig(), overrides, "fusion_mamba")
        depths = tuple(c.depths)
        decoder_depths = tuple(reversed(c.depths)) if c.decoder_depths is None else tuple(c.decoder_depths)
        if c.in_channels < 1 or c.out_channels < 1 or c.embed_dim < 1 or not depths or min(depths) < 1:
            raise ValueError(f"bad sizes: in_channels={c.in_channels}, out_channels={c.out_channels}, "
                             f"embed_dim={c.embed_dim}, depths={depths}")
        if len(decoder_depths) != len(depths) or min(decoder_depths) < 1:
            raise ValueError(f"decoder_depths {decoder_depths} must give >= 1 block for each of the {len(depths)} "
                             f"levels")
        if c.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {c.patch_size}")
        if c.skip_wiring not in SKIP_WIRINGS:
            raise ValueError(f"skip_wiring must be one of {SKIP_WIRINGS}, got {c.skip_wiring!r}")
        if c.cmfm_gate not in CMFM_GATES:
            raise ValueError(f"cmfm_gate must be one of {CMFM_GATES}, got {c.cmfm_gate!r}")
        if c.d_state < 1 or (c.dvss_d_state is not None and c.dvss_d_state < 1):
            raise ValueError(f"d_state / dvss_d_state must be >= 1, got {c.d_state} / {c.dvss_d_state}")
        if c.input_residual not in INPUT_RESIDUALS:
            raise ValueError(f"input_residual must be one of {INPUT_RESIDUALS}, got {c.input_residual!r}")
        if c.input_residual != "none" and c.in_channels != c.out_channels:
            raise ValueError(f"input_residual={c.input_residual!r} adds the inputs to the output: needs "
                             f"in_channels == out_channels, got {c.in_channels} and {c.out_channels}")
        self.in_channels, self.out_channels = c.in_channels, c.out_channels
        self.patch_size = c.patch_size
        self.levels = L = len(depths)
        self.dims = dims = [c.embed_dim * 2 ** i for i in range(L)]
        self.input_residual = c.input_residual
        self.skip_wiring = c.skip_wiring
        self.dvss_d_state = c.d_state if c.dvss_d_state is None else c.dvss_d_state
        block = dict(d_state=self.dvss_d_state, expand=c.expand, mlp_ratio=c.mlp_ratio, use_ldc=c.use_ldc,
                     use_eca=c.use_eca, eca_kernel_size=c.eca_kernel_size, scan_backend=c.scan_backend)

        self.patch_embed_ir = PatchEmbed(c.in_channels, dims[0], c.patch_size)
        self.patch_embed_vis = PatchEmbed(c.in_channels, dims[0], c.patch_size)
        dpr = drop_path_schedule(c.drop_path_rate, sum(depths))                         # stochastic depth, encoder
        dpr_dec = drop_path_schedule(c.drop_path_rate, sum(decoder_depths))[::-1]
        self.encoder = nn.ModuleList()   # shared by both modalities
        self.merges = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.encoder.append(nn.Sequential(*[DVSSBlock(dims[i], drop_path=dpr[start + j], **block)
                                                for j in range(depth)]))
            if i < L - 1:
                self.merges.append(PatchMerging(dims[i], dims[i + 1]))
        self.fusion = nn.ModuleList([DFFM(d, d_state=c.d_state, expand=c.expand, use_dfem=c.use_dfem,
                                          use_cmfm=c.use_cmfm, eca_kernel_size=c.eca_kernel_size, cmfm_gate=c.cmfm_gate,
                                          scan_backend=c.scan_backend)
                                     for d in dims])
        self.decoder = nn.ModuleList()   # deepest level first
        self.expands = nn.ModuleList()
        for j, depth in enumerate(decoder_depths):
            level = L - 1 - j
            start = sum(decoder_depths[:j])
            if j > 0:
                self.expands.append(PatchExpand(dims[level + 1], dims[level], scale=2))
            self.decoder.append(nn.Sequential(*[DVSSBlock(dims[level], drop_path=dpr_dec[start + k], **block)
                                                for k in range(depth)]))
        head = max(1, dims[0] // c.patch_size)   # official: C / 4 channels after the final x4 expand (96 -> 24)
        self.final_expand = PatchExpand(dims[0], head, scale=c.patch_size)
        self.final_conv = nn.Conv2d(head, c.out_channels, 1)
        self.apply(init_linear_and_layernorm)  # the official init

    @property
    def size_multiple(self) -> int:
        """Inputs are padded to a multiple of ``patch_size * 2**(levels - 1)``."""
        return self.patch_size * 2 ** (self.levels - 1)

    def _pad(self, x: Tensor) -> Tensor:
        """Pad (Bt, C, H, W) at the bottom / right to the size multiple: reflect where the image is large enough,
        else replicate."""
        return pad_to_multiple(x, self.size_multiple)

    def encode(self, ir: Tensor, vis: Tensor) -> Tuple[List[Tensor], List[Tensor], Tensor, Tensor]:
        """The shared encoder. ir, vis: (Bt, C_in, H, W) padded -> (feats_ir, feats_vis, deep_ir, deep_vis).

        feats_*: the per-level features the DFFMs fuse, each (Bt, H / (p 2^l), W / (p 2^l), C_l), l = 0 ..
        levels-1: each level's DVSS output (``skip_wiring="paper"``) or its input (``"official"``: the patch
        embedding, then each patch merging's output). deep_*: the last level's DVSS output (Bt, h, w, C_{L-1}).
        """
        Bt = ir.shape[0]
        t = torch.cat([self.patch_embed_ir(ir), self.patch_embed_vis(vis)], dim=0)   # both modalities, one pass
        feats = []
        for i, stage in enumerate(self.encoder):
            if self.skip_wiring == "official":
                feats.append(t)
            t = stage(t)
            if self.skip_wiring == "paper":
                feats.append(t)
            if i < self.levels - 1:
                t = self.merges[i](t)
        return [f[:Bt] for f in feats], [f[Bt:] for f in feats], t[:Bt], t[Bt:]

    def fuse(self, feats_ir: List[Tensor], feats_vis: List[Tensor]) -> List[Optional[Tensor]]:
        """DFFM of each level: lists of (Bt, H_l, W_l, C_l) -> list of (Bt, H_l, W_l, C_l).

        ``skip_wiring="official"``: level 0 is None (the released code computes that fused map and never uses
        it; skipping it changes no output).
        """
        first = 1 if self.skip_wiring == "official" else 0
        return [dffm(a, b) if level >= first else None
                for level, (dffm, a, b) in enumerate(zip(self.fusion, feats_ir, feats_vis))]

    def decode(self, fused: List[Optional[Tensor]], deep_ir: Tensor, deep_vis: Tensor) -> Tensor:
        """Decoder -> (Bt, out_channels, H, W) (padded size). fused: from :meth:`fuse`; deep_*: (Bt, h, w, C_{L-1}).

        ``"paper"``: the deepest fused map starts the decoder; each upsampled map is added to the fused map of its
        own level. ``"official"``: the decoder starts from ``deep_ir + deep_vis``; the fused map of level
        L-j is added *before* the j-th patch expand, at the coarser level (levels L-1 .. 1; level 0 unused).
        """
        L = self.levels
        if self.skip_wiring == "official":
            d = self.decoder[0](deep_ir + deep_vis)
            for j in range(1, L):
                d = self.decoder[j](self.expands[j - 1](d + fused[L - j]))
        else:
            d = self.decoder[0](fused[-1])
            for j in range(1, L):
                d = self.decoder[j](self.expands[j - 1](d) + fused[L - 1 - j])
        return self.final_conv(_to_channels_first(self.final_expand(d)))

    def residual(self, ir: Tensor, vis: Tensor) -> Tensor:
        """The input term added to the decoder output (``input_residual``)."""
        if self.input_residual == "mean":
            return (ir + vis) / 2
        if self.input_residual == "sum":
            return ir + vis
        if self.input_residual == "official":
            return 2 * (ir + vis)
        return torch.zeros_like(ir[:, :self.out_channels])

    def forward(self, ir: Tensor, vis: Tensor) -> Tensor:
        """ir, vis: (Bt, C_in, H, W) (vis = the visible image's Y for colour inputs) -> fused (Bt, C_out, H, W)."""
        for name, x in (("ir", ir), ("vis", vis)):
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ValueError(f"FusionMamba expects {name}: (Bt, {self.in_channels}, H, W), got "
                                 f"{tuple(x.shape)}")
        if ir.shape != vis.shape:
            raise ValueError(f"FusionMamba needs registered inputs of one shape: ir {tuple(ir.shape)} vs "
                             f"vis {tuple(vis.shape)}")
        H, W = ir.shape[-2:]
        feats_ir, feats_vis, deep_ir, deep_vis = self.encode(self._pad(ir), self._pad(vis))
        out = self.decode(self.fuse(feats_ir, feats_vis), deep_ir, deep_vis)
        return out[..., :H, :W] + self.residual(ir, vis)


register_arch("fusion_mamba", FusionMamba, FusionMambaConfig, paper=PAPER)


@register_preset("fusion_mamba", "ir_vis")
def _ir_vis() -> FusionMambaConfig:
    """official IR-VIS model (VSSM_Fusion defaults): C=96, depths 2-2-9-2 / decoder 2-9-2-2, d_state 16, 1 channel"""
    return FusionMambaConfig()


@register_preset("fusion_mamba", "tiny")
def _tiny() -> FusionMambaConfig:
    """tiny fusion model for quick CPU runs: C=16, 2 levels, 1 block each, d_state 8, no drop path"""
    return FusionMambaConfig(embed_dim=16, depths=(1, 1), d_state=8, expand=2.0, mlp_ratio=2.0,
                             drop_path_rate=0.0)


@register_preset("fusion_mamba", "ct_mri")
def _ct_mri() -> FusionMambaConfig:
    """official CT-MRI model (released weights; the same network as ir_vis): C=96, 2-2-9-2 / 2-9-2-2, 1 channel"""
    return FusionMambaConfig()


@register_preset("fusion_mamba", "ct_mri_tiny")
def _ct_mri_tiny() -> FusionMambaConfig:
    """official CT-MRI tiny model (its README: depths 2-2-1-2, decoder 2-1-2-2): C=96, d_state 16, 1 channel"""
    return FusionMambaConfig(depths=(2, 2, 1, 2))   # decoder: the reversed depths, 2-1-2-2
