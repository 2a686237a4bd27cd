"""Complexity: thop-style vs true parameter counts of the official models (and what thop misses, by name), exact FLOP
counts against hand counts (attention products included), FLOPs counted on the meta device, the token-mixing
blocks, peak memory and log-log slopes."""
import pytest
import torch
from torch import nn

from restore_core.analysis import (MIXER_KINDS, GlobalAttention, MixerBlock, count_flops, count_parameters,
                                   count_parameters_thop_style, flops_at_sizes, loglog_slope, measure_scaling,
                                   parameter_summary, peak_memory_bytes, selective_scan_ops, thop_missed_parameters)
from restore_core.analysis.baselines import WindowAttention
from restore_core.models import build_model
from restore_core.ssm import SS2D
from restore_core.ssm.scan import list_backends


@pytest.mark.parametrize("preset,true_count,thop_count", [("light_sr_x2", 1_363_320, 859_320),
                                                          ("classic_sr_x2", 20_421_863, 16_572_743),
                                                          ("light_sr_v2_x2", 905_016, 625_656)])
def test_thop_style_counts_match_paper(preset, true_count, thop_count):
    with torch.device("meta"):
        m = build_model("mambair", preset)
    assert count_parameters(m) == true_count
    assert count_parameters_thop_style(m) == thop_count
    assert parameter_summary(m) == {"params": true_count, "params_thop_style": thop_count,
                                    "params_missed_by_thop": true_count - thop_count}


def test_thop_style_rules():
    """Exact-type matching and depth-first walk: a custom module's own parameter is lost, its known children
    count; a subclass of nn.Conv2d is not a type thop knows."""

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(5))
            self.fc = nn.Linear(4, 3)                    # 15
            self.seq = nn.Sequential(nn.Conv2d(2, 2, 1))  # 6

    class MyConv(nn.Conv2d):
        pass

    m = nn.Sequential(Custom(), MyConv(1, 1, 1), nn.LayerNorm(4))
    assert count_parameters(m) == 5 + 15 + 6 + 2 + 8
    assert count_parameters_thop_style(m) == 15 + 6 + 8


def test_conv_linear_macs_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.ConvTranspose2d(8, 4, 2, stride=2))
    r = count_flops(model, torch.rand(1, 3, 5, 7))
    conv = 8 * 5 * 7 * (3 * 9)          # out elements x (C_in/groups * k*k) = 280 * 27 = 7560
    dw = 8 * 5 * 7 * (1 * 9)            # 2520
    deconv = 8 * 5 * 7 * (4 * 4)        # input elements x (C_out/groups * k*k) = 4480
    assert r.macs_layers == conv + dw + deconv == 14560
    assert r.macs == 14560 and r.scan_flops == 0 and r.flops == 2 * 14560
    lin = count_flops(nn.Linear(4, 6), torch.rand(2, 5, 4))
    assert lin.macs == 2 * 5 * 6 * 4 == 240


def test_selective_scan_ops_by_hand():
    ops = selective_scan_ops(2, 3, 5, 4)
    elems, seq = 2 * 3 * 5 * 4, 2 * 3 * 5
    assert ops == {"exp": elems, "mul": 5 * elems + seq, "add": 2 * elems + 2 * seq, "softplus": seq}
    assert selective_scan_ops(1, 1, 1, 1, has_skip=False, delta_bias=False, delta_softplus=False) == \
        {"exp": 1, "mul": 5, "add": 2, "softplus": 0}


def test_ss2d_flops_by_hand():
    """SS2D(C=8, N=4, expand 1.5): E=12, R=1, K=4 on a 5x7 input (L=35)."""
    torch.manual_seed(0)
    m = SS2D(8, d_state=4, expand=1.5)
    r = count_flops(m, torch.rand(1, 5, 7, 8))
    in_proj = 5 * 7 * 24 * 8             # 6720
    dwconv = 12 * 5 * 7 * 9              # 3780
    out_proj = 5 * 7 * 8 * 12            # 3360
    assert r.macs_layers == in_proj + dwconv + out_proj == 13860
    x_proj = 4 * 35 * 12 * (1 + 2 * 4)   # 15120
    dt_proj = 4 * 35 * 1 * 12            # 1680
    assert r.macs_ssm_proj == x_proj + dt_proj == 16800
    elems, seq = 48 * 35 * 4, 48 * 35    # (Bt, K*E, L, N) and (Bt, K*E, L)
    assert r.scan_ops == {"exp": elems, "mul": 5 * elems + seq, "add": 2 * elems + 2 * seq, "softplus": seq}
    assert r.scan_flops == 6720 + 35280 + 16800 + 1680
    assert r.flops == 2 * (13860 + 16800) + 60480


def test_es2d_flops_use_padded_subgrid_length():
    m = SS2D(8, d_state=2, expand=1.0, scan_order="es2d")
    r = count_flops(m, torch.rand(1, 5, 7, 8))
    L = 6 * 8 // 4                        # padded to 6x8, four sub-grids of 12 tokens
    assert r.scan_ops["exp"] == 4 * 8 * L * 2


def test_model_flops_scale_linearly_with_pixels():
    m = build_model("mambair", "tiny_sr_x2").eval()
    a = count_flops(m, torch.rand(1, 3, 8, 8))
    b = count_flops(m, torch.rand(1, 3, 16, 16))
    ca = 4 * (32 * 4 + 4 * 32)  # the channel attention's 1x1 convs act on pooled 1x1 maps: size-independent
    assert b.macs - ca == 4 * (a.macs - ca) and b.scan_flops == 4 * a.scan_flops
    assert a.by_module["selective_scan"] == a.scan_flops


def test_loglog_slope_exact():
    x = [1.0, 2.0, 4.0, 8.0]
    assert loglog_slope(x, [3 * v ** 2 for v in x]) == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(ValueError):
        loglog_slope([1.0], [1.0])


def test_peak_memory_cpu():
    # ones(1000) and its doubled copy are live together: 2 x 4000 bytes (+ the 4-byte... sum result, 8 bytes)
    assert 8000 <= peak_memory_bytes(lambda: (torch.ones(1000) * 2).sum()) <= 8016
    conv = nn.Conv2d(3, 8, 3, padding=1)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert peak_memory_bytes(lambda: conv(x)) == 8 * 16 * 16 * 4


def test_measure_scaling_conv_memory_is_linear():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    conv.train()
    res = measure_scaling(conv, [8, 16, (24, 40)], repeats=1, warmup=0, progress=False)
    assert conv.training  # mode restored
    assert res.pixels == [64, 256, 960] and res.sizes == [(8, 8), (16, 16), (24, 40)]
    assert res.memory_slope == pytest.approx(1.0, abs=0.05)
    assert all(t > 0 for t in res.latency_s) and set(res.to_dict()) >= {"latency_slope", "memory_slope"}
    fastest = measure_scaling(conv, [8, 16], repeats=2, warmup=0, progress=False, statistic="min")
    assert fastest.peak_bytes == res.peak_bytes[:2]  # memory does not depend on how times are reduced
    with pytest.raises(ValueError, match="statistic"):
        measure_scaling(conv, [8, 16], statistic="mean", progress=False)


def test_thop_missed_parameters_of_light_sr_x2():
    """The 504,000 parameters between 1,363,320 and the paper's 859K, by name: SS2D's direct parameters
    (24 layers, C=60, E=90, N=16, R=4, K=4) and the blocks' two per-channel skip scales."""
    with torch.device("meta"):
        m = build_model("mambair", "light_sr_x2")
    missed = thop_missed_parameters(m)
    n, K, E, N, R, C = 24, 4, 90, 16, 4, 60
    assert missed == {"x_proj_weight": n * K * (R + 2 * N) * E, "A_logs": n * K * E * N,
                      "dt_projs_weight": n * K * E * R, "Ds": n * K * E, "dt_projs_bias": n * K * E,
                      "skip_scale": n * C, "skip_scale2": n * C}
    assert sum(missed.values()) == 1_363_320 - 859_320 == 504_000
    assert list(missed)[0] == "x_proj_weight"  # largest first


def test_attention_matmul_macs_by_hand():
    x = torch.rand(1, 5, 7, 8)
    r = count_flops(GlobalAttention(8, num_heads=2), x)
    assert r.macs_layers == 35 * 24 * 8 + 35 * 8 * 8                  # qkv + proj = 8960
    assert r.macs_attention == 2 * 35 * 35 * 8 == 19600                 # Q·Kᵀ and A·V
    assert r.macs == 8960 + 19600 and r.by_module["attention products"] == 19600
    w = count_flops(WindowAttention(8, num_heads=2, window_size=4), torch.rand(2, 8, 8, 8))
    assert w.macs_attention == 2 * (2 * 4) * 16 * 16 * 8                # 8 windows x 2 x 16 x 16 x C


def test_global_attention_matches_scaled_dot_product_attention():
    torch.manual_seed(0)
    m = GlobalAttention(8, num_heads=2)
    x = torch.rand(2, 3, 5, 8)
    q, k, v = m.qkv(x.reshape(2, 15, 8)).reshape(2, 15, 3, 2, 4).permute(2, 0, 3, 1, 4)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 15, 8)
    assert torch.allclose(m(x), m.proj(ref).reshape(2, 3, 5, 8), atol=1e-6)


def test_meta_flops_equal_real_flops_and_meta_scan_is_meta_only():
    torch.manual_seed(0)
    real = build_model("mambair", "tiny_sr_x2").eval()
    a = count_flops(real, torch.rand(1, 3, 13, 19))
    (b,) = flops_at_sizes(lambda: build_model("mambair", "tiny_sr_x2"), [(13, 19)])
    assert a.to_dict() == b.to_dict()
    assert "meta" not in list_backends(torch.zeros(1, 1, 1)) and "meta" in list_backends(torch.empty(1, device="meta"))
    with pytest.raises(ValueError, match="at least one size"):
        flops_at_sizes(lambda: nn.Identity(), [])


@pytest.mark.parametrize("kind", MIXER_KINDS)
def test_mixer_blocks_shapes_and_flop_growth(kind):
    torch.manual_seed(0)
    block = MixerBlock(kind, dim=8, d_state=4, num_heads=2, window_size=4)
    x = torch.rand(2, 8, 13, 19)  # window attention pads to 16 x 20 and crops back
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    small, big = flops_at_sizes(lambda: MixerBlock(kind, dim=8, d_state=4, num_heads=2, window_size=4), [8, 16],
                                in_channels=8)
    if kind == "full_attention":   # Q·Kᵀ, A·V grow with L², the projections with L
        assert big.macs_attention == 16 * small.macs_attention and big.macs_layers == 4 * small.macs_layers
    else:                          # everything per pixel (windows tile 8 and 16 exactly)
        assert big.macs == 4 * small.macs and big.flops == 4 * small.flops
    with pytest.raises(ValueError, match="expected input"):
        block(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown mixer"):
        MixerBlock("mlp")
