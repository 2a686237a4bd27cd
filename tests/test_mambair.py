"""MambaIR: exact parameter counts and checkpoint layouts of the official models, ablation switches, mean and
img_range handling, clear errors. Full presets are built on the meta device; forward passes use tiny presets."""
import json
from pathlib import Path

import pytest
import torch

from restore_core.layers import CAB, ChannelAttention
from restore_core.models import build_model, get_config, list_presets
from restore_core.models.mambair import RSSB, MambaIR

LAYOUTS = Path(__file__).resolve().parents[1] / "restore_core" / "models" / "official_layouts"


def _meta(preset, **kw):
    with torch.device("meta"):
        return build_model("mambair", preset, **kw)


def _n(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset,count", [("classic_sr_x2", 20_421_863), ("light_sr_x2", 1_363_320),
                                          ("light_sr_v2_x2", 905_016), ("color_dn", 15_777_507)])
def test_parameter_counts_match_official(preset, count):
    assert _n(_meta(preset)) == count


@pytest.mark.parametrize("preset,layout", [("classic_sr_x2", "mambair_classic_sr_x2.json"),
                                           ("light_sr_x2", "mambair_light_sr_x2_2024-03.json"),
                                           ("light_sr_v2_x2", "mambair_light_sr_x2_2024-10.json"),
                                           ("color_dn", "mambair_color_dn.json")])
def test_state_dict_layout_is_official(preset, layout):
    """Key names, order and shapes equal those of the released checkpoints."""
    path = LAYOUTS / layout
    if not path.exists():
        pytest.skip(f"{path} not shipped")
    official = json.loads(path.read_text())
    ours = {k: list(v.shape) for k, v in _meta(preset).state_dict().items()}
    assert list(ours) == list(official) and ours == official


def test_upscale_variants_counts():
    """x3 / x4 differ from x2 only in the upsampler: classic x4 has two conv(64->256)+PS(2) steps,
    x3 one conv(64->576)+PS(3); light x3 a conv(60 -> 27)."""
    x2 = _n(_meta("classic_sr_x2"))
    step2 = 64 * 256 * 9 + 256
    assert _n(_meta("classic_sr_x4")) == x2 + step2
    assert _n(_meta("classic_sr_x3")) == x2 - step2 + 64 * 576 * 9 + 576
    assert _n(_meta("light_sr_x3")) == 1_363_320 - (60 * 12 * 9 + 12) + (60 * 27 * 9 + 27)


def _ss2d_direct_params(C, E, N, K):
    R = -(-C // 16)
    return K * (R + 2 * N) * E + K * E * R + K * E + K * E * N + K * E


@pytest.mark.parametrize("order,K", [("1d", 1), ("2d", 2), ("4d", 4)])
def test_scan_order_switch_changes_only_the_ssm_tables(order, K):
    base = _n(_meta("light_sr_x2"))
    per_dir = _ss2d_direct_params(60, 90, 16, 1)
    assert _n(_meta("light_sr_x2", scan_order=order)) == base - 24 * (4 - K) * per_dir


def test_block_kind_switches():
    C, blocks = 60, 24
    full = _n(_meta("light_sr_x2"))
    cab_convs = (C * 10 * 9 + 10) + (10 * C * 9 + C)   # conv3x3 C->C/6, conv3x3 C/6->C
    ca = (C * 2 + 2) + (2 * C + C)                      # squeeze 30
    assert _n(_meta("light_sr_x2", block_kind="no_conv")) == full - blocks * cab_convs
    assert _n(_meta("light_sr_x2", block_kind="no_conv_ca")) == full - blocks * (cab_convs + ca + 3 * C)
    mlp = (C * 120 + 120) + (120 * C + C)
    assert _n(_meta("light_sr_x2", block_kind="mlp")) == full - blocks * (cab_convs + ca) + blocks * mlp
    m = _meta("light_sr_x2", block_kind="no_conv_ca")
    blk = m.layers[0].residual_group.blocks[0]
    assert not hasattr(blk, "conv_blk") and not hasattr(blk, "ln_2")
    assert isinstance(_meta("light_sr_x2", block_kind="no_conv").layers[0].residual_group.blocks[0].conv_blk,
                      ChannelAttention)


def test_presets_are_constructor_sets():
    names = list_presets("mambair")
    for s in (2, 3, 4):
        for fam in ("classic_sr", "light_sr", "light_sr_v2", "tiny_sr"):
            assert f"{fam}_x{s}" in names
    for n in ("color_dn", "gray_dn", "gray_car", "tiny", "tiny_dn", "tiny_gray_dn"):
        assert n in names
    v2 = get_config("mambair", "light_sr_v2_x4")
    assert (v2.d_state, v2.expand, v2.cab_kind, v2.cab_compress, v2.upscale) == (10, 1.2, "light", 2, 4)
    dn = get_config("mambair", "color_dn")
    assert (dn.embed_dim, dn.depths, dn.expand, dn.upsampler, dn.upscale) == (180, (6,) * 6, 1.2, "none", 1)
    assert get_config("mambair", "gray_car").in_channels == 1
    with pytest.raises(TypeError, match="unknown option"):
        get_config("mambair", "tiny_sr_x2", mlp_ratio=2.0)


@pytest.mark.parametrize("preset,cin,scale", [("tiny_sr_x2", 3, 2), ("tiny_sr_x3", 3, 3), ("tiny_dn", 3, 1),
                                              ("tiny_gray_dn", 1, 1)])
def test_tiny_forward_odd_sizes_backward(preset, cin, scale):
    torch.manual_seed(0)
    m = build_model("mambair", preset)
    x = torch.rand(1, cin, 5, 7, requires_grad=True)
    y = m(x)
    assert y.shape == (1, cin, 5 * scale, 7 * scale) and torch.isfinite(y).all()
    y.mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing


def test_light_cab_and_other_tails_forward():
    torch.manual_seed(0)
    for kw in ({"cab_kind": "light", "cab_compress": 2}, {"upsampler": "pixelshuffle", "num_feat": 16},
               {"upsampler": "nearest+conv", "num_feat": 16, "upscale": 4}, {"block_kind": "mlp"},
               {"scan_order": "es2d"}):
        m = build_model("mambair", "tiny_sr_x2", **kw).eval()
        s = kw.get("upscale", 2)
        with torch.no_grad():
            y = m(torch.rand(1, 3, 5, 6))
        assert y.shape == (1, 3, 5 * s, 6 * s) and torch.isfinite(y).all(), kw


@pytest.mark.parametrize("img_range", [1.0, 255.0])
def test_restoration_global_residual_and_img_range(img_range):
    """With conv_last zeroed the denoiser is the identity: (x - m) * r / r + m == x (global residual)."""
    m = build_model("mambair", "tiny_dn", img_range=img_range).eval()
    with torch.no_grad():
        m.conv_last.weight.zero_()
        m.conv_last.bias.zero_()
        x = torch.rand(1, 3, 5, 7)
        torch.testing.assert_close(m(x), x, rtol=0, atol=1e-6)


def test_sr_mean_is_added_back():
    """With the direct upsampler zeroed the SR output is the constant DIV2K mean (3 ch) or 0 (1 ch); a bias b in
    the upsampler conv gives mean + b / img_range."""
    for cin, mean in ((3, [0.4488, 0.4371, 0.4040]), (1, [0.0])):
        m = build_model("mambair", "tiny_sr_x2", in_channels=cin, img_range=255.0).eval()
        with torch.no_grad():
            conv = m.upsample[0]
            conv.weight.zero_()
            conv.bias.fill_(51.0)
            y = m(torch.rand(1, cin, 4, 5))
        expect = torch.tensor(mean).view(1, cin, 1, 1) + 51.0 / 255.0
        torch.testing.assert_close(y, expect.expand_as(y), rtol=0, atol=1e-6)
    assert "mean" not in build_model("mambair", "tiny_sr_x2").state_dict()


def test_deterministic():
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        m = build_model("mambair", "tiny_sr_x2").eval()
        with torch.no_grad():
            outs.append(m(torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(1))))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_clear_errors():
    m = build_model("mambair", "tiny_sr_x2")
    with pytest.raises(ValueError, match=r"expects \(Bt, 3, H, W\).*got shape \(1, 1, 8, 8\)"):
        m(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="squeeze_factor=30 leaves no channels for C=24"):
        build_model("mambair", "tiny_sr_x2", embed_dim=24, ca_squeeze=30)
    with pytest.raises(ValueError, match="compress_ratio"):
        CAB(4, compress_ratio=6, squeeze_factor=2)
    with pytest.raises(ValueError, match="unknown block_kind"):
        build_model("mambair", "tiny_sr_x2", block_kind="conv")
    with pytest.raises(ValueError, match="needs upscale=1"):
        build_model("mambair", "tiny_dn", upscale=2)
    with pytest.raises(ValueError, match="scale 5 is not supported"):
        build_model("mambair", "tiny_sr_x2", upsampler="pixelshuffle", upscale=5)
    with pytest.raises(TypeError):
        MambaIR(mlp_ratio=2.0)


def test_rssb_skip_scales_and_drop_path():
    torch.manual_seed(0)
    blk = RSSB(30, d_state=4, expand=1.0, cab_compress=3, ca_squeeze=30, drop_path=0.5).eval()
    x = torch.randn(1, 4, 5, 30)
    with torch.no_grad():
        y1 = blk(x)
        blk.train()
        torch.manual_seed(0)
        y2 = blk(x)
    assert torch.isfinite(y1).all() and not torch.equal(y1, y2)  # stochastic depth only in training


# ------------------------------------------------------------------------------------------ shared layers ----
def test_layernorm2d_equals_channels_last_layernorm():
    from restore_core.layers import LayerNorm2d
    torch.manual_seed(0)
    ln2d, ln = LayerNorm2d(6), torch.nn.LayerNorm(6)
    with torch.no_grad():
        ln2d.weight.uniform_(0.5, 1.5)
        ln2d.bias.uniform_(-1, 1)
        ln.load_state_dict(ln2d.state_dict())
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(ln2d.double()(x), ln.double()(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    with pytest.raises(ValueError, match="expects"):
        ln2d(torch.randn(1, 5, 2, 2))


def test_channel_attention_and_light_cab_by_hand():
    import torch.nn.functional as F
    torch.manual_seed(0)
    x = torch.randn(2, 60, 5, 7, dtype=torch.float64)
    ca = ChannelAttention(60, 30).double()
    a1, a3 = ca.attention[1], ca.attention[3]
    w = torch.sigmoid(F.conv2d(F.relu(F.conv2d(x.mean((2, 3), keepdim=True), a1.weight, a1.bias)), a3.weight,
                               a3.bias))
    torch.testing.assert_close(ca(x), x * w)
    cab = CAB(60, compress_ratio=2, squeeze_factor=30, kind="light").double()
    c = cab.cab
    assert [tuple(m.weight.shape) for m in (c[0], c[1], c[3], c[4])] == [(30, 60, 1, 1), (30, 1, 3, 3),
                                                                        (60, 30, 1, 1), (60, 1, 3, 3)]
    y = F.conv2d(x, c[0].weight, c[0].bias)
    y = F.gelu(F.conv2d(y, c[1].weight, c[1].bias, padding=1, groups=30))
    y = F.conv2d(y, c[3].weight, c[3].bias)
    y = F.conv2d(y, c[4].weight, c[4].bias, padding=2, dilation=2, groups=60)
    torch.testing.assert_close(cab(x), c[5](y))


def test_upsamplers():
    from restore_core.layers import NearestConvUpsample, PixelShuffleDirect, PixelShuffleUpsample, upsample_steps
    assert upsample_steps(4) == [2, 2] and upsample_steps(3) == [3] and upsample_steps(8) == [2, 2, 2]
    x = torch.randn(1, 16, 5, 7)
    assert PixelShuffleUpsample(4, 16)(x).shape == (1, 16, 20, 28)
    assert PixelShuffleUpsample(3, 16)(x).shape == (1, 16, 15, 21)
    assert PixelShuffleDirect(3, 16, 3)(x).shape == (1, 3, 15, 21)
    assert NearestConvUpsample(4, 16)(x).shape == (1, 16, 20, 28)
    with pytest.raises(ValueError, match="scale 6 is not supported"):
        PixelShuffleUpsample(6, 16)


def test_drop_path_keeps_expectation():
    from restore_core.layers import DropPath
    torch.manual_seed(0)
    dp = DropPath(0.25).train()
    y = dp(torch.ones(4000, 3))
    kept = (y[:, 0] > 0).float().mean().item()
    assert abs(kept - 0.75) < 0.03 and torch.allclose(y[y > 0], torch.full_like(y[y > 0], 1 / 0.75))
    assert torch.equal(dp.eval()(torch.ones(5, 2)), torch.ones(5, 2))


def test_tiny_auto_upsampler_serves_sr_and_restoration():
    """The trainer builds ``preset: tiny`` with ``upscale`` = the config's scale (2 for SR, 1 for denoising)."""
    sr, dn = build_model("mambair", "tiny", upscale=2), build_model("mambair", "tiny", upscale=1)
    assert sr.upsampler == "pixelshuffledirect" and dn.upsampler == "none"
    assert _n(sr) == _n(build_model("mambair", "tiny_sr_x2")) and _n(dn) == _n(build_model("mambair", "tiny_dn"))
    with torch.no_grad():
        assert dn.eval()(torch.rand(1, 3, 5, 6)).shape == (1, 3, 5, 6)
