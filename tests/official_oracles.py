"""Test oracles: minimal functional forwards of the *official* MambaIR, RNAN and FusionMamba models over their
state dicts.

Written from the structure of the official code (csguoh/MambaIR ``basicsr/archs/mambair_arch.py``,
yulunzhang/RNAN ``<task>/code/model/rnan.py`` + ``common.py``, millieXie/FusionMamba ``models/``) with plain
``torch.nn.functional`` calls and the official key names, independently of restore_core's modules, so that
comparing them with our loaded models checks the key mapping, the switches and the forward passes together.
Only for the tests.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from restore_core.ssm import selective_scan_ref

SD = Dict[str, Tensor]


# ------------------------------------------------------------------------------------------------- RNAN ----
def _conv(sd: SD, p: str, x: Tensor, **kw) -> Tensor:
    w = sd[p + ".weight"]
    return F.conv2d(x, w, sd[p + ".bias"], padding=kw.pop("padding", w.shape[-1] // 2), **kw)


def _rb(sd: SD, p: str, x: Tensor) -> Tensor:
    """EDSR ResBlock: body = [conv, ReLU, conv], res_scale 1."""
    return x + _conv(sd, p + ".body.2", F.relu(_conv(sd, p + ".body.0", x)))


def _nonlocal_official(sd: SD, p: str, x: Tensor) -> Tensor:
    """NonLocalBlock2D with the official softmax over dim=1 of f = theta^T phi (batch, query i, key j)."""
    n, _, h, w = x.shape
    g = _conv(sd, p + ".g", x).flatten(2).permute(0, 2, 1)          # (n, HW, C')
    th = _conv(sd, p + ".theta", x).flatten(2).permute(0, 2, 1)     # (n, HW, C')
    ph = _conv(sd, p + ".phi", x).flatten(2)                        # (n, C', HW)
    f = torch.matmul(th, ph)
    y = torch.matmul(F.softmax(f, dim=1), g).permute(0, 2, 1).reshape(n, -1, h, w)
    return _conv(sd, p + ".W", y) + x


def _mask(sd: SD, p: str, x: Tensor, nonlocal_: bool) -> Tensor:
    if nonlocal_:
        x_rb1 = _rb(sd, p + ".MB_RB1.1", _nonlocal_official(sd, p + ".MB_RB1.0", x))
    else:
        x_rb1 = _rb(sd, p + ".MB_RB1.0", x)
    d = _conv(sd, p + ".MB_Down.0", x_rb1, stride=2, padding=1)
    d = _rb(sd, p + ".MB_RB2.1", _rb(sd, p + ".MB_RB2.0", d))
    up = F.conv_transpose2d(d, sd[p + ".MB_Up.0.weight"], sd[p + ".MB_Up.0.bias"], stride=2, padding=2)
    x3 = _rb(sd, p + ".MB_RB3.0", x_rb1 + up)
    return torch.sigmoid(_conv(sd, p + ".MB_1x1conv.0", x3))


def _group(sd: SD, p: str, x: Tensor, nonlocal_: bool) -> Tensor:
    m = p + ".body.0"
    r = _rb(sd, m + ".RA_RB1.0", x)
    t = _rb(sd, m + ".RA_TB.0.body.1", _rb(sd, m + ".RA_TB.0.body.0", r))
    h = t * _mask(sd, m + ".RA_MB.0", r, nonlocal_) + r
    h = _rb(sd, m + ".RA_tail.1", _rb(sd, m + ".RA_tail.0", h))
    return _conv(sd, p + ".body.1", h)


def rnan_official_forward(sd: SD, x: Tensor, scale: int = 1) -> Tensor:
    """The official RNAN on x in [0, 255]: (n, C, H, W) with even H, W -> (n, C, s*H, s*W)."""
    n_body = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))  # 8 groups + 1 conv
    if scale > 1:
        x = _conv(sd, "sub_mean", x)
    feats = _conv(sd, "head.0", x)
    res = _group(sd, "body_nl_low.0", feats, True)
    for i in range(n_body - 1):
        res = _group(sd, f"body.{i}", res, False)
    res = _conv(sd, f"body.{n_body - 1}", res)
    res = _group(sd, "body_nl_high.0", res, True)
    if scale == 1:
        return x + _conv(sd, "tail.0", res)
    h = res + feats
    steps = [(2, 0), (2, 2)] if scale == 4 else [(scale, 0)]
    for s, i in steps:
        h = F.pixel_shuffle(_conv(sd, f"tail.0.{i}", h), s)
    return _conv(sd, "add_mean", _conv(sd, "tail.1", h))


# ---------------------------------------------------------------------------------------------- MambaIR ----
def _ln(sd: SD, p: str, x: Tensor) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps=1e-5)


def _ss2d_official(sd: SD, p: str, x: Tensor) -> Tensor:
    """The official SS2D: x (n, H, W, C) -> (n, H, W, C); four scans hw, wh and both reversed."""
    n, h, w, _ = x.shape
    length = h * w
    xz = F.linear(x, sd[p + ".in_proj.weight"])
    xc, z = xz.chunk(2, dim=-1)
    xc = xc.permute(0, 3, 1, 2)
    wconv = sd[p + ".conv2d.weight"]
    xc = F.silu(F.conv2d(xc, wconv, sd[p + ".conv2d.bias"], padding=1, groups=wconv.shape[0]))
    d_inner = xc.shape[1]
    x_hw = xc.reshape(n, d_inner, length)
    x_wh = xc.transpose(2, 3).reshape(n, d_inner, length)
    xs = torch.stack([x_hw, x_wh, x_hw.flip(-1), x_wh.flip(-1)], dim=1)  # (n, 4, D, L)
    xpw = sd[p + ".x_proj_weight"]                                        # (4, R + 2N, D)
    dtw = sd[p + ".dt_projs_weight"]                                      # (4, D, R)
    rank = dtw.shape[-1]
    d_state = (xpw.shape[1] - rank) // 2
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, xpw)
    dts, Bs, Cs = torch.split(x_dbl, [rank, d_state, d_state], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, dtw)
    ys = selective_scan_ref(xs.reshape(n, -1, length), dts.reshape(n, -1, length),
                            -torch.exp(sd[p + ".A_logs"].float()), Bs, Cs, sd[p + ".Ds"].float(),
                            delta_bias=sd[p + ".dt_projs_bias"].reshape(-1), delta_softplus=True)
    ys = ys.reshape(n, 4, d_inner, length)
    y1 = ys[:, 0]
    y2 = ys[:, 2].flip(-1)
    y3 = ys[:, 1].reshape(n, d_inner, w, h).transpose(2, 3).reshape(n, d_inner, length)
    y4 = ys[:, 3].flip(-1).reshape(n, d_inner, w, h).transpose(2, 3).reshape(n, d_inner, length)
    y = (y1 + y2 + y3 + y4).transpose(1, 2).reshape(n, h, w, d_inner)
    y = _ln(sd, p + ".out_norm", y) * F.silu(z)
    return F.linear(y, sd[p + ".out_proj.weight"])


def _cab_official(sd: SD, p: str, x: Tensor) -> Tensor:
    """CAB: classic [conv3, GELU, conv3, CA] or the Oct-2024 light [1x1, dw3, GELU, 1x1, dw3 d2, CA]."""
    if p + ".cab.5.attention.1.weight" in sd:
        c_mid = sd[p + ".cab.1.weight"].shape[0]
        y = _conv(sd, p + ".cab.0", x)
        y = F.gelu(F.conv2d(y, sd[p + ".cab.1.weight"], sd[p + ".cab.1.bias"], padding=1, groups=c_mid))
        y = _conv(sd, p + ".cab.3", y)
        y = F.conv2d(y, sd[p + ".cab.4.weight"], sd[p + ".cab.4.bias"], padding=2, dilation=2, groups=y.shape[1])
        ca = p + ".cab.5.attention"
    else:
        y = _conv(sd, p + ".cab.2", F.gelu(_conv(sd, p + ".cab.0", x)))
        ca = p + ".cab.3.attention"
    a = y.mean(dim=(2, 3), keepdim=True)
    a = torch.sigmoid(_conv(sd, ca + ".3", F.relu(_conv(sd, ca + ".1", a))))
    return y * a


def mambair_official_forward(sd: SD, x: Tensor, scale: int = 1) -> Tensor:
    """The official MambaIR (img_range 1) on x in [0, 1]: (n, C, H, W) -> (n, C, s*H, s*W)."""
    c_in = x.shape[1]
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1) if c_in == 3 else torch.zeros(1, 1, 1, 1)
    x = x - mean
    first = _conv(sd, "conv_first", x)
    n, c, h, w = first.shape
    t = _ln(sd, "patch_embed.norm", first.flatten(2).transpose(1, 2))      # (n, HW, C)
    n_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers."))
    for i in range(n_layers):
        start = t
        depth = 1 + max(int(k.split(".")[4]) for k in sd if k.startswith(f"layers.{i}.residual_group.blocks."))
        for j in range(depth):
            p = f"layers.{i}.residual_group.blocks.{j}"
            u = t.reshape(n, h, w, c)
            u = u * sd[p + ".skip_scale"] + _ss2d_official(sd, p + ".self_attention", _ln(sd, p + ".ln_1", u))
            v = _ln(sd, p + ".ln_2", u).permute(0, 3, 1, 2)
            u = u * sd[p + ".skip_scale2"] + _cab_official(sd, p + ".conv_blk", v).permute(0, 2, 3, 1)
            t = u.reshape(n, h * w, c)
        img = t.transpose(1, 2).reshape(n, c, h, w)
        t = _conv(sd, f"layers.{i}.conv", img).flatten(2).transpose(1, 2) + start
    t = _ln(sd, "norm", t)
    feats = _conv(sd, "conv_after_body", t.transpose(1, 2).reshape(n, c, h, w)) + first
    if "conv_before_upsample.0.weight" in sd:       # classic SR: pixelshuffle
        y = F.leaky_relu(_conv(sd, "conv_before_upsample.0", feats), 0.01)
        steps = [(2, 0), (2, 2)] if scale == 4 else [(scale, 0)]
        for s, k in steps:
            y = F.pixel_shuffle(_conv(sd, f"upsample.{k}", y), s)
        out = _conv(sd, "conv_last", y)
    elif "upsample.0.weight" in sd:                 # light SR: pixelshuffledirect
        out = F.pixel_shuffle(_conv(sd, "upsample.0", feats), scale)
    else:                                           # restoration: image residual
        out = x + _conv(sd, "conv_last", feats)
    return out + mean


def random_official_state_dict(layout: Dict[str, tuple], seed: int = 0, gain: float = 0.5) -> SD:
    """Random tensors with the given names and shapes, scaled so that deep stacks stay finite.

    Weights: normal with std ``gain / sqrt(fan_in)``; vectors (biases etc.): std 0.02; A_logs near log(1..N);
    Ds, skip scales and norm weights near 1; RNAN SR MeanShift convs: identity and the DIV2K mean * 255.
    """
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in layout.items():
        if len(shape) >= 2:
            fan_in = shape[-1] if len(shape) == 3 else math.prod(shape[1:])  # SS2D's (K, out, in) stacks
            t = torch.randn(shape, generator=g) * (gain / math.sqrt(fan_in))
        else:
            t = torch.randn(shape, generator=g) * 0.02
        if k.endswith("A_logs"):
            t = torch.log(torch.arange(1, shape[-1] + 1, dtype=torch.float32)).expand(shape) + 0.1 * t
        elif k.endswith(("Ds", "skip_scale", "skip_scale2")) or (k.endswith(".weight") and len(shape) == 1):
            t = 1.0 + t
        if k.endswith("base_mask"):                    # FusionMamba's frozen all-ones LDC masks
            t = torch.ones(shape)
        if k.endswith("mean.weight"):
            t = torch.eye(shape[0]).view(shape)
        elif k == "sub_mean.bias":
            t = -255.0 * torch.tensor([0.4488, 0.4371, 0.4040])
        elif k == "add_mean.bias":
            t = 255.0 * torch.tensor([0.4488, 0.4371, 0.4040])
        sd[k] = t.contiguous()
    return sd


# ------------------------------------------------------------------------------------------ FusionMamba ----
# Written from the structure of millieXie/FusionMamba (models/vmamba_Fusion_efficross.py VSSM_Fusion,
# models/cross.py VSSBlock_new / VSSBlock_Cross_new / SS2D / SS2D_cross_new / LDC / BiAttn / eca_layer), with the
# reference selective scan standing in for its CUDA extension. Its two inputs keep the official names: x1 is
# branch 1 (the visible image in the released train.py / test.py), x2 branch 2 (infrared).
def _fm_ln(sd: SD, p: str, x: Tensor) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps=1e-5)


def _fm_lin(sd: SD, p: str, x: Tensor) -> Tensor:
    return F.linear(x, sd[p + ".weight"], sd.get(p + ".bias"))


def _fm_skip_sampled(x: Tensor) -> Tensor:
    """EfficientScan: (n, D, H, W) -> (n, 4, D, L'), odd sizes zero-padded to even; the four stride-2 sub-grids
    (even/even row-major, odd-row/even-col column-major, even/odd row-major, odd/odd column-major)."""
    x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
    grids = [x[..., 0::2, 0::2], x[..., 1::2, 0::2].transpose(-1, -2),
             x[..., 0::2, 1::2], x[..., 1::2, 1::2].transpose(-1, -2)]
    return torch.stack([g.flatten(2) for g in grids], dim=1)


def _fm_skip_merge(ys: Tensor, h: int, w: int) -> Tensor:
    """EfficientMerge: (n, 4, D, L') -> (n, D, h * w), each sub-grid put back, then cropped to h x w."""
    n, _, d, _ = ys.shape
    hh, ww = (h + 1) // 2, (w + 1) // 2
    y = ys.new_zeros(n, d, 2 * hh, 2 * ww)
    y[..., 0::2, 0::2] = ys[:, 0].reshape(n, d, hh, ww)
    y[..., 1::2, 0::2] = ys[:, 1].reshape(n, d, ww, hh).transpose(-1, -2)
    y[..., 0::2, 1::2] = ys[:, 2].reshape(n, d, hh, ww)
    y[..., 1::2, 1::2] = ys[:, 3].reshape(n, d, ww, hh).transpose(-1, -2)
    return y[..., :h, :w].reshape(n, d, h * w)


def _fm_scan_core(sd: SD, p: str, x: Tensor) -> Tensor:
    """cross_selective_scan: x (n, D, H, W) -> out_norm(merged scan) (n, H, W, D)."""
    n, d, h, w = x.shape
    xs = _fm_skip_sampled(x)                                              # (n, 4, D, L')
    length = xs.shape[-1]
    dtw = sd[p + ".dt_projs_weight"]                                      # (4, D, R)
    rank = dtw.shape[-1]
    n_state = sd[p + ".A_logs"].shape[-1]
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, sd[p + ".x_proj_weight"])
    dts, Bs, Cs = torch.split(x_dbl, [rank, n_state, n_state], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, dtw)
    ys = selective_scan_ref(xs.reshape(n, -1, length), dts.reshape(n, -1, length),
                            -torch.exp(sd[p + ".A_logs"].float()), Bs, Cs, sd[p + ".Ds"].float(),
                            delta_bias=sd[p + ".dt_projs_bias"].reshape(-1), delta_softplus=True)
    y = _fm_skip_merge(ys.reshape(n, 4, d, length), h, w)
    return _fm_ln(sd, p + ".out_norm", y.transpose(1, 2)).reshape(n, h, w, d)


def _fm_dwconv(sd: SD, p: str, x: Tensor) -> Tensor:
    wconv = sd[p + ".conv2d.weight"]
    return F.silu(F.conv2d(x.permute(0, 3, 1, 2), wconv, sd[p + ".conv2d.bias"], padding=1, groups=wconv.shape[0]))


def _fm_ss2d(sd: SD, p: str, x: Tensor) -> Tensor:
    """SS2D (v2): in_proj -> x, z; z = SiLU(z); SiLU(dwconv(x)); scan; * z; out_proj. (n, H, W, C) -> same."""
    xc, z = _fm_lin(sd, p + ".in_proj", x).chunk(2, dim=-1)
    y = _fm_scan_core(sd, p, _fm_dwconv(sd, p, xc)) * F.silu(z)
    return _fm_lin(sd, p + ".out_proj", y)


def _fm_ss2d_cross(sd: SD, p: str, x1: Tensor, x2: Tensor) -> Tensor:
    """SS2D_cross_new as released: z1 = act1(z1); z2 = act2(z1) (z2 of in_proj2 is overwritten)."""
    a1, z1 = _fm_lin(sd, p + ".in_proj1", x1).chunk(2, dim=-1)
    a2, _ = _fm_lin(sd, p + ".in_proj2", x2).chunk(2, dim=-1)
    z1 = F.silu(z1)
    z2 = F.silu(z1)
    u1, u2 = _fm_dwconv(sd, p, a1), _fm_dwconv(sd, p, a2)
    y = _fm_scan_core(sd, p, u1 * u2 + u1 + u2)
    return _fm_lin(sd, p + ".out_proj", y * z1 + y * z2)


def _fm_ldc(sd: SD, p: str, x: Tensor) -> Tensor:
    """LDC on (n, C, H, W): weight * (base_mask - theta * m * centre * sum(weight))."""
    wt = sd[p + ".conv.weight"]
    centre = torch.zeros(3, 3)
    centre[1, 1] = 1.0
    mask = sd[p + ".base_mask"] - sd[p + ".learnable_theta"] * sd[p + ".learnable_mask"][:, :, None, None] * \
        centre * wt.sum(dim=(2, 3))[:, :, None, None]
    return F.conv2d(x, wt * mask, padding=1)


def _fm_eca(sd: SD, p: str, x: Tensor) -> Tensor:
    """eca_layer on (n, C, H, W)."""
    k = sd[p + ".conv.weight"]
    y = x.mean(dim=(2, 3)).unsqueeze(1)                                   # (n, 1, C)
    y = torch.sigmoid(F.conv1d(y, k, padding=(k.shape[-1] - 1) // 2))     # (n, 1, C)
    return x * y.transpose(1, 2).unsqueeze(-1)


def _fm_biattn(sd: SD, p: str, x: Tensor) -> Tensor:
    g = _fm_ln(sd, p + ".norm", x).mean(dim=(1, 2), keepdim=True)
    return x * torch.sigmoid(_fm_lin(sd, p + ".channel_select", F.gelu(_fm_lin(sd, p + ".global_reduce", g))))


def _fm_cl(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1)


def _fm_cf(x: Tensor) -> Tensor:
    return x.permute(0, 3, 1, 2)


def _fm_vss_block(sd: SD, p: str, x: Tensor) -> Tensor:
    """VSSBlock_new on (n, H, W, C)."""
    s = _fm_ss2d(sd, p + ".op", _fm_ln(sd, p + ".norm", x))
    e = s + _fm_cl(_fm_eca(sd, p + ".self_attention_cross_channel", _fm_cf(s)))
    local = _fm_cl(_fm_ldc(sd, p + ".conv_branch", _fm_cf(e)))
    x = x + _fm_biattn(sd, p + ".se", s) + _fm_biattn(sd, p + ".se", local)
    h = _fm_ln(sd, p + ".norm2", x)
    return x + _fm_lin(sd, p + ".mlp.fc2", F.gelu(_fm_lin(sd, p + ".mlp.fc1", h)))


def _fm_cross_block(sd: SD, p: str, in1: Tensor, in2: Tensor) -> Tensor:
    """VSSBlock_Cross_new on (n, H, W, C) pairs."""
    x1, x2 = _fm_cf(in1), _fm_cf(in2)
    fuse = x1 + x2
    d12 = (x1 - x2).mean(dim=(2, 3), keepdim=True)
    f1 = _fm_ldc(sd, p + ".Cross_layer.texture_enhance1", x1) + torch.sigmoid(d12) * fuse + x1
    f2 = _fm_ldc(sd, p + ".Cross_layer.texture_enhance2", x2) + torch.sigmoid(-d12) * fuse + x2
    c = _fm_ss2d_cross(sd, p + ".self_attention_cross", _fm_ln(sd, p + ".ln_1", _fm_cl(f1)),
                       _fm_ln(sd, p + ".ln_2", _fm_cl(f2)))
    return in2 + in1 + c + _fm_cl(_fm_eca(sd, p + ".self_attention_cross_spatial", _fm_cf(c)))


def _fm_expand(sd: SD, p: str, x: Tensor, s: int) -> Tensor:
    y = _fm_lin(sd, p + ".expand", x)
    n, h, w, c = y.shape
    y = y.reshape(n, h, w, s, s, c // (s * s)).permute(0, 1, 3, 2, 4, 5).reshape(n, h * s, w * s, c // (s * s))
    return _fm_ln(sd, p + ".norm", y)


def _fm_count(sd: SD, prefix: str) -> int:
    """How many indexed children ``prefix.<i>.`` the state dict holds."""
    idx = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}
    return 1 + max(idx)


def _fm_encode(sd: SD, embed: str, x: Tensor):
    t = _fm_ln(sd, embed + ".norm", _fm_cl(F.conv2d(x, sd[embed + ".proj.weight"], sd[embed + ".proj.bias"],
                                                     stride=sd[embed + ".proj.weight"].shape[-1])))
    skips = []
    n_layers = _fm_count(sd, "layers.")
    for i in range(n_layers):
        skips.append(t)
        for j in range(_fm_count(sd, f"layers.{i}.blocks.")):
            t = _fm_vss_block(sd, f"layers.{i}.blocks.{j}", t)
        if i < n_layers - 1:
            p = f"layers.{i}.downsample"
            t = torch.cat([t[:, 0::2, 0::2], t[:, 1::2, 0::2], t[:, 0::2, 1::2], t[:, 1::2, 1::2]], dim=-1)
            t = F.linear(_fm_ln(sd, p + ".norm", t), sd[p + ".reduction.weight"])
    return t, skips


def fusion_mamba_official_forward(sd: SD, x1: Tensor, x2: Tensor) -> Tensor:
    """The released VSSM_Fusion.forward(x1, x2): (n, 1, H, W) each, H and W multiples of 4 * 2**(levels-1)."""
    t1, skips1 = _fm_encode(sd, "patch_embed1", x1)
    t2, skips2 = _fm_encode(sd, "patch_embed2", x2)
    fused = [_fm_cross_block(sd, f"Cross_block.{i}", a, b) for i, (a, b) in enumerate(zip(skips1, skips2))]
    t = t1 + t2
    for i in range(_fm_count(sd, "layers_up.")):
        if i > 0:
            t = _fm_expand(sd, f"layers_up.{i}.upsample", t + fused[-i], 2)
        for j in range(_fm_count(sd, f"layers_up.{i}.blocks.")):
            t = _fm_vss_block(sd, f"layers_up.{i}.blocks.{j}", t)
    t = _fm_expand(sd, "final_up", t, 4)
    out = F.conv2d(_fm_cf(t), sd["final_conv.weight"], sd["final_conv.bias"])
    return out + x1 + x2 + x1 + x2


def _fm_ss2d_layout(p: str, c: int, n_state: int, cross: bool) -> Dict[str, tuple]:
    e, r = 2 * c, math.ceil(c / 16)
    out = {p + ".x_proj_weight": (4, r + 2 * n_state, e), p + ".dt_projs_weight": (4, e, r),
           p + ".dt_projs_bias": (4, e), p + ".A_logs": (4 * e, n_state), p + ".Ds": (4 * e,),
           p + ".out_norm.weight": (e,), p + ".out_norm.bias": (e,)}
    for proj in ((".in_proj1", ".in_proj2") if cross else (".in_proj",)):
        out[p + proj + ".weight"] = (2 * e, c)
    out.update({p + ".conv2d.weight": (e, 1, 3, 3), p + ".conv2d.bias": (e,), p + ".out_proj.weight": (c, e)})
    return out


def _fm_ldc_layout(p: str, c: int) -> Dict[str, tuple]:
    return {p + ".base_mask": (c, c, 3, 3), p + ".learnable_mask": (c, c), p + ".learnable_theta": (1,),
            p + ".conv.weight": (c, c, 3, 3)}


def _fm_block_layout(p: str, c: int) -> Dict[str, tuple]:
    r = int(c * 0.125)
    out = {p + ".norm.weight": (c,), p + ".norm.bias": (c,)}
    out.update(_fm_ss2d_layout(p + ".op", c, 16, cross=False))         # the DVSS blocks always get N = 16
    out.update(_fm_ldc_layout(p + ".conv_branch", c))
    out[p + ".self_attention_cross_channel.conv.weight"] = (1, 1, 3)
    out.update({p + ".se.norm.weight": (c,), p + ".se.norm.bias": (c,), p + ".se.global_reduce.weight": (r, c),
                p + ".se.global_reduce.bias": (r,), p + ".se.channel_select.weight": (c, r),
                p + ".se.channel_select.bias": (c,), p + ".norm2.weight": (c,), p + ".norm2.bias": (c,),
                p + ".mlp.fc1.weight": (4 * c, c), p + ".mlp.fc1.bias": (4 * c,), p + ".mlp.fc2.weight": (c, 4 * c),
                p + ".mlp.fc2.bias": (c,)})
    return out


def fusion_mamba_official_layout(depths=(2, 2, 9, 2), depths_decoder=(2, 9, 2, 2), embed_dim: int = 96,
                                 d_state: int = 16, in_chans: int = 1) -> Dict[str, tuple]:
    """Key names and shapes of VSSM_Fusion(depths, depths_decoder, dims=embed_dim * 2**i, d_state) in its
    registration (state-dict) order."""
    dims = [embed_dim * 2 ** i for i in range(len(depths))]
    out: Dict[str, tuple] = {}
    for pe in ("patch_embed1", "patch_embed2"):
        out.update({pe + ".proj.weight": (dims[0], in_chans, 4, 4), pe + ".proj.bias": (dims[0],),
                    pe + ".norm.weight": (dims[0],), pe + ".norm.bias": (dims[0],)})
    for i, depth in enumerate(depths):
        for j in range(depth):
            out.update(_fm_block_layout(f"layers.{i}.blocks.{j}", dims[i]))
        if i < len(depths) - 1:
            p = f"layers.{i}.downsample"
            out.update({p + ".reduction.weight": (2 * dims[i], 4 * dims[i]), p + ".norm.weight": (4 * dims[i],),
                        p + ".norm.bias": (4 * dims[i],)})
    for i, depth in enumerate(depths_decoder):
        c = dims[len(dims) - 1 - i]
        for j in range(depth):
            out.update(_fm_block_layout(f"layers_up.{i}.blocks.{j}", c))
        if i > 0:
            p = f"layers_up.{i}.upsample"
            out.update({p + ".expand.weight": (4 * c, 2 * c), p + ".norm.weight": (c,), p + ".norm.bias": (c,)})
    out.update({"final_up.expand.weight": (4 * dims[0], dims[0]), "final_up.norm.weight": (dims[0] // 4,),
                "final_up.norm.bias": (dims[0] // 4,), "final_conv.weight": (1, dims[0] // 4, 1, 1),
                "final_conv.bias": (1,)})
    for i, c in enumerate(dims):
        p = f"Cross_block.{i}"
        out.update({p + ".ln_1.weight": (c,), p + ".ln_1.bias": (c,), p + ".ln_2.weight": (c,), p + ".ln_2.bias": (c,)})
        out.update(_fm_ldc_layout(p + ".Cross_layer.texture_enhance1", c))
        out.update(_fm_ldc_layout(p + ".Cross_layer.texture_enhance2", c))
        out.update({p + ".Cross_layer.Diff_enhance.lastconv.weight": (c // 2, c, 1, 1),
                    p + ".Cross_layer.Diff_enhance.lastconv.bias": (c // 2,)})
        out.update(_fm_ss2d_layout(p + ".self_attention_cross", c, d_state, cross=True))
        out[p + ".self_attention_cross_spatial.conv.weight"] = (1, 1, 3)
    return out
