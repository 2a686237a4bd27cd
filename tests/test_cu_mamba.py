"""CU-Mamba (restore_core.models.cu_mamba): shapes on odd sizes, switches, the size-free channel SSM, counts."""
import math

import pytest
import torch

from restore_core.models import build_model, get_config, list_presets, list_switches, preset_doc
from restore_core.models.cu_mamba import ChannelSSM, ConvMixer, CUMamba, SpatialSSM
from restore_core.ssm.ss2d import SS2D


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _tiny(**kw):
    torch.manual_seed(0)
    return build_model("cu_mamba", "tiny", **kw)


# --------------------------------------------------------------------------------------------------------------
# an independent count from the sizes (the module docstring's layout)

def _ss2d_count(c, n, expand, k=1):
    e, r = int(expand * c), math.ceil(c / 16)
    return (c * 2 * e + 9 * e + e + k * (r + 2 * n) * e + k * e * r + k * e + k * e * n + k * e + 2 * e + e * c)


def _channel_ssm_count(c, n, pool):
    return c * 2 * c + 9 * c + c + pool * pool * (1 + 2 * n) + 1 + n + 1 + 2 * c + c * c


def _conv_mixer_count(c):
    return 4 * c * c + 18 * c


def _ffn_count(c, expansion):
    h = int(c * expansion)
    return 2 * c * h + 18 * h


def _block_count(c, cfg):
    spatial = _ss2d_count(c, cfg.d_state, cfg.spatial_expand) if cfg.use_spatial_ssm else _conv_mixer_count(c)
    channel = _channel_ssm_count(c, cfg.d_state, cfg.channel_pool) if cfg.use_channel_ssm else _conv_mixer_count(c)
    return 8 * c + spatial + channel + 2 * _ffn_count(c, cfg.ffn_expansion)


def _model_count(cfg):
    C, i = cfg.dim, cfg.in_channels
    n1, n2, n3, n4 = cfg.num_blocks
    blocks = ((n1 * _block_count(C, cfg) + n2 * _block_count(2 * C, cfg) + n3 * _block_count(4 * C, cfg)) * 2
              - n1 * _block_count(C, cfg) + n1 * _block_count(2 * C, cfg)      # decoder level 1 runs at 2C
              + n4 * _block_count(8 * C, cfg) + cfg.num_refinement * _block_count(2 * C, cfg))
    down = sum(9 * c * (c // 2) for c in (C, 2 * C, 4 * C))
    up = sum(9 * c * 2 * c for c in (8 * C, 4 * C, 2 * C))
    return 9 * i * C + blocks + down + up + 8 * C * 4 * C + 4 * C * 2 * C + 9 * 2 * C * i


DEBLUR_PARAMS = 36_757_128  # our count (the paper states none); sizes assumed, see the module docstring


def test_deblur_parameter_count_matches_formula():
    cfg = get_config("cu_mamba", "deblur")
    model = build_model("cu_mamba", "deblur")
    n = _params(model)
    print(f"CU-Mamba deblur parameters: {n:,}")
    assert n == _model_count(cfg) == DEBLUR_PARAMS
    assert _params(build_model("cu_mamba", "denoise")) == DEBLUR_PARAMS


@pytest.mark.parametrize("switches", [dict(), dict(use_spatial_ssm=False), dict(use_channel_ssm=False),
                                      dict(use_spatial_ssm=False, use_channel_ssm=False)])
def test_tiny_counts_match_formula(switches):
    assert _params(_tiny(**switches)) == _model_count(get_config("cu_mamba", "tiny", **switches))


# --------------------------------------------------------------------------------------------------------------
# forward / backward

def test_forward_backward_odd_size():
    model = _tiny(zero_init_output=False)  # a random output conv, so that every layer receives a gradient
    x = torch.rand(2, 3, 37, 53, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 3, 37, 53)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # the SSM-specific parameters take part in the loss
    blk = model.encoder_level1[0]
    assert blk.channel.A_log.grad.abs().sum() > 0 and blk.channel.x_proj.weight.grad.abs().sum() > 0
    assert blk.spatial.ss2d.A_logs.grad.abs().sum() > 0


def test_tiny_images_and_global_residual():
    model = _tiny()
    x = torch.rand(1, 3, 5, 3)                 # smaller than the padding: replicate instead of reflect
    assert model(x).shape == (1, 3, 5, 3)
    with torch.no_grad():
        x = torch.rand(1, 3, 19, 24)
        assert torch.equal(model(x), x)        # zero-initialised output conv: R = 0, output = input exactly
        other = _tiny(zero_init_output=False)
        assert (other(x) - x).abs().amax() > 1e-3
        other.output.weight.zero_()
        assert torch.equal(other(x), x)        # the global residual: y = x + R


def test_wrong_channel_count_raises():
    model = _tiny()
    with pytest.raises(ValueError, match=r"expects \(Bt, 3, H, W\).*\(1, 1, 16, 16\)"):
        model(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="shape"):
        model(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="dim must be even"):
        CUMamba(dim=15)


def test_deterministic():
    x = torch.rand(1, 3, 24, 40)
    a = _tiny(zero_init_output=False)(x)
    b = _tiny(zero_init_output=False)(x)
    assert torch.equal(a, b)
    m = _tiny(zero_init_output=False)
    assert torch.equal(m(x), m(x))


# --------------------------------------------------------------------------------------------------------------
# switches

def _kinds(model):
    return {type(m) for m in model.modules()}


def test_switches_change_parameter_sets():
    full, spatial_only, channel_only, plain = (_tiny(), _tiny(use_channel_ssm=False), _tiny(use_spatial_ssm=False),
                                               _tiny(use_spatial_ssm=False, use_channel_ssm=False))
    assert {SS2D, ChannelSSM} <= _kinds(full) and ConvMixer not in _kinds(full)
    assert SS2D in _kinds(spatial_only) and ChannelSSM not in _kinds(spatial_only)
    assert ChannelSSM in _kinds(channel_only) and SS2D not in _kinds(channel_only)
    assert not ({SS2D, ChannelSSM, SpatialSSM} & _kinds(plain)) and ConvMixer in _kinds(plain)
    ssm_names = ("A_log", "A_logs", "dt_bias", "Ds", "x_proj", "dt_projs")
    assert not [n for n, _ in plain.named_parameters() if any(s in n for s in ssm_names)]
    # the same U-Net skeleton (every non-mixer parameter shared by name and shape)
    def skeleton(m):
        return {n: p.shape for n, p in m.named_parameters() if ".spatial." not in n and ".channel." not in n}
    assert skeleton(full) == skeleton(plain) == skeleton(spatial_only) == skeleton(channel_only)
    counts = [_params(m) for m in (full, spatial_only, channel_only, plain)]
    assert counts == [991_264, 1_020_336, 902_976, 932_048]


def test_registry_lists_presets_and_switches():
    assert {"deblur", "denoise", "tiny"} <= set(list_presets("cu_mamba"))
    sw = list_switches("cu_mamba")
    assert sw["use_spatial_ssm"] is True and sw["use_channel_ssm"] is True
    assert {"embed_dim", "num_blocks", "num_refinement", "d_state", "channel_pool", "spatial_scan_order"} <= set(sw)
    assert "C=16" in preset_doc("cu_mamba", "tiny")
    with pytest.raises(TypeError, match="unknown option"):
        build_model("cu_mamba", "tiny", use_channel_sm=False)


# --------------------------------------------------------------------------------------------------------------
# channel SSM: one set of weights for any H*W

def test_channel_ssm_any_size_same_weights():
    torch.manual_seed(0)
    layer = ChannelSSM(12, d_state=4, pool=4)
    n = _params(layer)
    for hw in ((7, 9), (32, 20), (2, 3)):
        x = torch.randn(2, 12, *hw, requires_grad=True)
        y = layer(x)
        assert y.shape == x.shape
        y.sum().backward()
        assert torch.isfinite(x.grad).all()
    assert _params(layer) == n == _channel_ssm_count(12, 4, 4)


def test_channel_ssm_mixes_channels_causally_and_matches_ref():
    torch.manual_seed(0)
    layer = ChannelSSM(8, d_state=4, pool=2, scan_backend="ref").double()
    u = torch.randn(1, 8, 5, 6, dtype=torch.float64)
    y = layer.ssm(u)
    # the scan runs over channels: changing channel 5 leaves the outputs of channels 0..4 unchanged, changes 5..7
    u2 = u.clone()
    u2[:, 5] += 1.0
    y2 = layer.ssm(u2)
    # (pooling makes Δ_c, B_c, C_c depend only on channel c's own map, so channels < 5 are exactly unchanged)
    assert torch.equal(y[:, :5], y2[:, :5])
    assert (y[:, 5:] - y2[:, 5:]).abs().amax() > 1e-3
    # the fast backend agrees with the sequential reference
    fast = ChannelSSM(8, d_state=4, pool=2).double()
    fast.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fast.ssm(u), y, rtol=1e-9, atol=1e-9)


def test_channel_ssm_one_pixel_recurrence_by_hand():
    """A single pixel: y_c = sum_{j<=c} C_c·(prod exp(Δ A)) Δ_j B_j u_j + D u_c, written out."""
    torch.manual_seed(0)
    layer = ChannelSSM(5, d_state=3, pool=1, scan_backend="ref").double()
    u = torch.randn(1, 5, 1, 1, dtype=torch.float64)
    y = layer.ssm(u)[0, :, 0, 0]
    s = u[0, :, 0, 0]                                          # pool of a 1x1 map is the value itself
    x_dbl = s[:, None] * layer.x_proj.weight[:, 0][None]       # (C, 1+2N)
    dt = torch.nn.functional.softplus(x_dbl[:, 0] + layer.dt_bias)
    B, Cm = x_dbl[:, 1:4], x_dbl[:, 4:7]
    A = -torch.exp(layer.A_log)
    h = torch.zeros(3, dtype=torch.float64)
    ref = []
    for c in range(5):
        h = torch.exp(dt[c] * A) * h + dt[c] * B[c] * s[c]
        ref.append((Cm[c] * h).sum() + layer.D[0] * s[c])
    torch.testing.assert_close(y, torch.stack(ref), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------------------------
# training through the config

def test_quick_config_builds_and_trains_two_steps():
    from restore_core.train import load_config, train

    cfg = load_config("cu_mamba/deblur", profile="quick")
    assert cfg.network_g.type == "cu_mamba" and cfg.network_g.preset == "tiny"
    cfg = cfg.with_overrides(["val.val_freq=1000"])
    torch.manual_seed(0)
    losses = []
    res = train(cfg, max_steps=2, save_checkpoints=False, progress=False,
                callbacks=[lambda trainer, step, logs: losses.append(float(logs["loss"]))])
    assert res.steps == 2 and len(losses) == 2
    assert all(math.isfinite(v) and v > 0 for v in losses)
    assert isinstance(res.model, CUMamba) and _params(res.model) == 991_264
