"""Complexity: thop-style vs true parameter counts of the official models, exact FLOP counts against hand counts,
peak memory and log-log slopes."""
import pytest
import torch
from torch import nn

from restore_core.analysis import (count_flops, count_parameters, count_parameters_thop_style, loglog_slope,
                                   measure_scaling, parameter_summary, peak_memory_bytes, selective_scan_ops)
from restore_core.models import build_model
from restore_core.ssm import SS2D


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
