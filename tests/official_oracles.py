"""Test oracles: minimal functional forwards of the *official* MambaIR and RNAN models over their state dicts.

Written from the structure of the official code (csguoh/MambaIR ``basicsr/archs/mambair_arch.py``,
yulunzhang/RNAN ``<task>/code/model/rnan.py`` + ``common.py``) with plain ``torch.nn.functional`` calls and
the official key names, independently of restore_core's modules, so that comparing them with our loaded
models checks the key mapping, the switches and the forward passes together. Only for the tests.
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
        if k.endswith("mean.weight"):
            t = torch.eye(shape[0]).view(shape)
        elif k == "sub_mean.bias":
            t = -255.0 * torch.tensor([0.4488, 0.4371, 0.4040])
        elif k == "add_mean.bias":
            t = 255.0 * torch.tensor([0.4488, 0.4371, 0.4040])
        sd[k] = t.contiguous()
    return sd
