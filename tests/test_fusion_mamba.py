"""FusionMamba and its layers: LDC weight formula, ECA kernel-size rule, DVSS / DFEM / CMFM switches, sizes."""
import math

import pytest
import torch
import torch.nn.functional as F

from restore_core.layers.eca import ECA, eca_kernel_size
from restore_core.layers.ldc import LearnableDifferenceConv2d


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ----------------------------------------------------------------------------------------------- LDC
def test_ldc_effective_weight_formula():
    """W' = W * (1 - θ m E_center ΣW): only the centre tap changes, by the factor (1 - θ m ΣW)."""
    torch.manual_seed(0)
    ldc = LearnableDifferenceConv2d(3, 2).double()
    with torch.no_grad():
        ldc.theta.fill_(0.3)
        ldc.mask.copy_(torch.rand(2, 3, dtype=torch.float64) + 0.5)
    w = ldc.conv.weight.detach()
    expected = w.clone()
    for o in range(2):
        for i in range(3):
            expected[o, i, 1, 1] = w[o, i, 1, 1] * (1 - 0.3 * ldc.mask[o, i].item() * w[o, i].sum().item())
    torch.testing.assert_close(ldc.effective_weight(), expected, rtol=1e-12, atol=1e-12)
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    torch.testing.assert_close(ldc(x), F.conv2d(x, expected, padding=1), rtol=1e-12, atol=1e-12)


def test_ldc_theta_zero_is_plain_conv_and_grads_reach_theta_and_mask():
    torch.manual_seed(1)
    ldc = LearnableDifferenceConv2d(4, 4)
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        ldc.theta.zero_()
    torch.testing.assert_close(ldc(x), ldc.conv(x))
    with torch.no_grad():
        ldc.theta.fill_(0.5)
    ldc(x).square().sum().backward()
    assert ldc.theta.grad.abs().item() > 0 and ldc.mask.grad.abs().sum().item() > 0
    assert n_params(ldc) == 4 * 4 * 9 + 4 * 4 + 1   # W (no bias), m, θ


# ----------------------------------------------------------------------------------------------- ECA
@pytest.mark.parametrize("channels, k", [(8, 3), (16, 3), (32, 3), (64, 3), (96, 3), (128, 5), (256, 5),
                                         (512, 5), (1024, 5), (2048, 7)])
def test_eca_kernel_size_rule(channels, k):
    """k = |log2(C)/γ + b/γ|_odd with γ=2, b=1 (ECA-Net eq. 12, rounding of the official code)."""
    assert eca_kernel_size(channels) == k
    t = int(abs((math.log2(channels) + 1) / 2))
    assert k == (t if t % 2 else t + 1)
    assert ECA(channels).conv.kernel_size == (k,)


def test_eca_equals_handwritten():
    torch.manual_seed(2)
    eca = ECA(6, kernel_size=3).double()
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    w = eca.conv.weight.view(3)
    gap = x.mean(dim=(2, 3))                         # (Bt, C)
    padded = F.pad(gap, (1, 1))
    s = torch.stack([(padded[:, c:c + 3] * w).sum(-1) for c in range(6)], dim=1)
    torch.testing.assert_close(eca(x), x * torch.sigmoid(s)[:, :, None, None], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="odd"):
        ECA(6, kernel_size=4)


# ----------------------------------------------------------------------------------------------- FusionMamba
from restore_core.models import build_model, get_config  # noqa: E402
from restore_core.models.fusion_mamba import (DVSSBlock, CrossModalSS2D, DifferenceEnhancement,  # noqa: E402
                                              FusionMamba)

# The official VSSM_Fusion() (millieXie/FusionMamba, counted by instantiating the released modules on CPU with
# stubbed CUDA imports): 225,419,541 parameters = 164,146,245 + 60,880,896 frozen all-ones LDC ``base_mask``
# tensors + 392,400 in ``Differential_enhance.lastconv`` (built, never called). Ours has neither.
IR_VIS_PARAMS = 164_146_245
OFFICIAL_TOTAL, OFFICIAL_BASE_MASK, OFFICIAL_UNUSED_LASTCONV = 225_419_541, 60_880_896, 392_400


def _tiny(**kw):
    torch.manual_seed(0)
    return build_model("fusion_mamba", "tiny", **kw)


def _pair(h=37, w=53, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 1, h, w, generator=g), torch.rand(2, 1, h, w, generator=g)


def test_forward_backward_odd_size_every_parameter_gets_a_gradient():
    model = _tiny(decoder_depths=(2, 1))
    ir, vis = _pair()
    ir.requires_grad_(True)
    vis.requires_grad_(True)
    out = model(ir, vis)
    assert out.shape == (2, 1, 37, 53) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert ir.grad.abs().sum() > 0 and vis.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    # the multiple the input is padded to: patch 4 x 2^(levels - 1)
    assert model.size_multiple == 8


def test_dvss_d_state_reaches_only_the_dvss_blocks():
    model = _tiny(dvss_d_state=16)          # tiny: d_state 8
    assert model.encoder[0][0].ss2d.d_state == model.decoder[1][0].ss2d.d_state == 16
    assert model.fusion[0].cmfm.cross.d_state == 8


def test_ir_vis_parameter_count_matches_official():
    with torch.device("meta"):
        model = build_model("fusion_mamba", "ir_vis")
    assert sum(p.numel() for p in model.parameters()) == IR_VIS_PARAMS
    assert OFFICIAL_TOTAL - OFFICIAL_BASE_MASK - OFFICIAL_UNUSED_LASTCONV == IR_VIS_PARAMS
    assert model.dims == [96, 192, 384, 768]
    assert [len(s) for s in model.encoder] == [2, 2, 9, 2] and [len(s) for s in model.decoder] == [2, 9, 2, 2]
    # per part, against the official top-level modules without base_mask / lastconv: patch_embed1/2 1,824 each,
    # layers 69,604,596, layers_up 69,600,564, Cross_block 24,900,500, final_up 36,912, final_conv 25
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(model.patch_embed_ir) == n(model.patch_embed_vis) == 1824
    assert n(model.encoder) + n(model.merges) == 69_604_596
    assert n(model.decoder) + n(model.expands) == 69_600_564
    assert n(model.fusion) == 24_900_500
    assert n(model.final_expand) == 36912 and n(model.final_conv) == 25


def _ldc(c):
    return c * c * 9 + c * c + 1                      # W, m, θ


def _biattn(c):
    r = int(c * 0.125)
    return 2 * c + c * r + r + r * c + c              # LN, reduce, select


def _cmfm(c, n_state, expand=2.0, k=3):
    e, r = int(expand * c), math.ceil(c / 16)
    ss2d = (2 * c * 2 * e                             # in_proj (ir) + in_proj_vis
            + e * 9 + e                               # shared depthwise conv
            + 4 * (r + 2 * n_state) * e + 4 * e * r + 4 * e   # x_proj, dt_proj weight and bias (K=4)
            + 4 * e * n_state + 4 * e                 # A_log, D
            + 2 * e + e * c)                          # out_norm, out_proj
    return 4 * c + ss2d + k                           # two LayerNorms, the scan, ECA


_DVSS = r"^(encoder|decoder)\.\d+\.\d+\."   # a DVSS block's parameter prefix


@pytest.mark.parametrize("switch, removed", [
    ({"use_ldc": False}, _DVSS + r"ldc\."),
    ({"use_eca": False}, _DVSS + r"eca\."),
    ({"use_ldc": False, "use_eca": False}, _DVSS + r"(ldc|eca|biattn)\."),
    ({"use_dfem": False}, r"^fusion\.\d+\.dfem\."),
    ({"use_cmfm": False}, r"^fusion\.\d+\.cmfm\."),
])
def test_every_switch_removes_exactly_its_parameters(switch, removed):
    import re

    cfg = get_config("fusion_mamba", "tiny", decoder_depths=(2, 1))
    full = FusionMamba(**{**cfg.__dict__})
    ablated = FusionMamba(**{**cfg.__dict__, **switch})
    names_full = dict((n, p.numel()) for n, p in full.named_parameters())
    names_abl = dict((n, p.numel()) for n, p in ablated.named_parameters())
    gone = set(names_full) - set(names_abl)
    assert set(names_abl) <= set(names_full)            # nothing new appears
    assert gone == {n for n in names_full if re.match(removed, n)}
    # counted by hand: blocks per width (tiny: C=16, 32; encoder 1 + 1, decoder 2 at 32, 1 at 16)
    blocks = {16: 2, 32: 3}
    expected = 0
    for c, nb in blocks.items():
        if switch.get("use_ldc") is False:
            expected += nb * _ldc(c)
        if switch.get("use_eca") is False:
            expected += nb * 3
        if switch.get("use_ldc") is False and switch.get("use_eca") is False:
            expected += nb * _biattn(c)
        if switch.get("use_dfem") is False:
            expected += 2 * _ldc(c)
        if switch.get("use_cmfm") is False:
            expected += _cmfm(c, cfg.d_state)
    assert sum(names_full[n] for n in gone) == expected


def test_deterministic_build_and_forward():
    a, b = _tiny(), _tiny()
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb), na
    ir, vis = _pair(24, 31)
    with torch.no_grad():
        y1, y2 = a(ir, vis), a(ir, vis)
        y3 = b(ir, vis)
    assert torch.equal(y1, y2) and torch.equal(y1, y3)


def test_input_residual_modes_and_padding_crop():
    model = _tiny(input_residual="none").eval()
    ir, vis = _pair(19, 23)
    with torch.no_grad():
        base = model(ir, vis)
        for mode, extra in (("mean", (ir + vis) / 2), ("sum", ir + vis), ("official", 2 * (ir + vis))):
            model.input_residual = mode
            torch.testing.assert_close(model(ir, vis), base + extra, rtol=0, atol=1e-6)
    # padding to the multiple 8: reflect where the image is large enough (19x23 -> 24x24), else replicate
    padded = model._pad(ir)
    assert padded.shape[-2:] == (24, 24) and torch.equal(padded[..., :19, :23], ir)
    torch.testing.assert_close(padded[..., 19, :23], ir[..., 17, :])           # reflect: row 19 mirrors row 17
    small = torch.rand(1, 1, 3, 5)
    assert torch.equal(model._pad(small)[..., 7, :5], small[..., 2, :])          # replicate: the last row
    exact = torch.rand(1, 1, 16, 24)
    assert model._pad(exact) is exact
    with pytest.raises(ValueError, match="input_residual"):
        build_model("fusion_mamba", "tiny", input_residual="double")


def test_clear_errors_on_bad_inputs():
    model = _tiny()
    with pytest.raises(ValueError, match="one shape"):
        model(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 17))
    with pytest.raises(ValueError, match=r"vis: \(Bt, 1, H, W\)"):
        model(torch.rand(1, 1, 16, 16), torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="decoder_depths"):
        build_model("fusion_mamba", "tiny", decoder_depths=(1,))


def test_dvss_block_parts():
    torch.manual_seed(3)
    blk = DVSSBlock(16, d_state=4, mlp_ratio=2.0).double()
    assert blk.ss2d.scan_order == "es2d" and blk.ss2d.directions == 4
    x = torch.randn(2, 5, 7, 16, dtype=torch.float64)
    # by hand: s = SS2D(LN x); e = s + ECA(s); r = BiAttn(s) + BiAttn(LDC(e)); x + r; + MLP(LN(.))
    s = blk.ss2d(blk.norm(x))
    s_cf = s.permute(0, 3, 1, 2)
    e = s_cf + blk.eca(s_cf)
    r = blk.biattn(s) + blk.biattn(blk.ldc(e).permute(0, 2, 3, 1))
    y = x + r
    y = y + blk.mlp(blk.norm2(y))
    torch.testing.assert_close(blk(x), y, rtol=1e-12, atol=1e-12)
    # both switches off = the plain VSS block x + SS2D(LN x), then the MLP
    plain = DVSSBlock(16, d_state=4, mlp_ratio=2.0, use_ldc=False, use_eca=False).double()
    y = x + plain.ss2d(plain.norm(x))
    torch.testing.assert_close(plain(x), y + plain.mlp(plain.norm2(y)), rtol=1e-12, atol=1e-12)


def test_dfem_difference_weights_and_cmfm_gates():
    torch.manual_seed(4)
    a, b = torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6)
    w_ir, w_vis = DifferenceEnhancement.difference_weights(a, b)
    torch.testing.assert_close(w_ir + w_vis, torch.ones_like(w_ir))          # σ(d) + σ(-d) = 1
    torch.testing.assert_close(w_ir, torch.sigmoid((a - b).mean(dim=(2, 3), keepdim=True)))
    # one scan over a symmetric combination: with equal projections the module is symmetric in (ir, vis)
    cross = CrossModalSS2D(8, d_state=4).double()
    with torch.no_grad():
        cross.in_proj_vis.weight.copy_(cross.in_proj.weight)
    f1, f2 = torch.randn(1, 5, 7, 8, dtype=torch.float64), torch.randn(1, 5, 7, 8, dtype=torch.float64)
    torch.testing.assert_close(cross(f1, f2), cross(f2, f1), rtol=1e-10, atol=1e-12)
    # both gates are used: the z halves of in_proj (infrared) and in_proj_vis receive gradients
    cross(f1, f2).square().sum().backward()
    E = cross.d_inner
    assert cross.in_proj.weight.grad[E:].abs().sum() > 0 and cross.in_proj_vis.weight.grad[E:].abs().sum() > 0


def test_official_cmfm_gate_loses_the_infrared_gate():
    """Released code (branch 1 = visible): z1 = SiLU(z_vis); z2 = SiLU(z1), so out = out_proj(y SiLU(z_vis) +
    y SiLU(SiLU(z_vis))): the infrared z never matters (no gradient), the visible one does."""
    torch.manual_seed(5)
    cross = CrossModalSS2D(8, d_state=4, gate="official", scan_backend="ref").double()
    f_ir, f_vis = torch.randn(1, 5, 7, 8, dtype=torch.float64), torch.randn(1, 5, 7, 8, dtype=torch.float64)
    out = cross(f_ir, f_vis)
    E = cross.d_inner
    _, z_vis = cross.in_proj_vis(f_vis).chunk(2, dim=-1)
    u_ir = F.silu(cross.conv2d(cross.in_proj(f_ir)[..., :E].permute(0, 3, 1, 2)))
    u_vis = F.silu(cross.conv2d(cross.in_proj_vis(f_vis)[..., :E].permute(0, 3, 1, 2)))
    y = cross.out_norm(cross.ssm(u_ir * u_vis + u_ir + u_vis).permute(0, 2, 3, 1))
    g = F.silu(z_vis)
    torch.testing.assert_close(out, cross.out_proj(y * g + y * F.silu(g)), rtol=1e-10, atol=1e-12)
    out.square().sum().backward()
    assert torch.count_nonzero(cross.in_proj.weight.grad[E:]) == 0
    assert cross.in_proj.weight.grad[:E].abs().sum() > 0 and cross.in_proj_vis.weight.grad[E:].abs().sum() > 0
    with pytest.raises(ValueError, match="cmfm_gate"):
        build_model("fusion_mamba", "tiny", cmfm_gate="visible")
    with pytest.raises(ValueError, match="skip_wiring"):
        build_model("fusion_mamba", "tiny", skip_wiring="released")


def test_official_skip_wiring_by_hand():
    """skip_wiring="official": fuse each level's *input*; decoder from enc_ir + enc_vis; fused skip of level
    L-j added before the j-th patch expand; the level-0 DFFM is never used (no gradient reaches it)."""
    model = _tiny(skip_wiring="official", input_residual="none", depths=(1, 1, 1), decoder_depths=(1, 1, 1),
                  scan_backend="ref").double().eval()
    ir, vis = (t.double() for t in _pair(32, 48))
    with torch.no_grad():
        out = model(ir, vis)
        feats = []
        for embed, x in ((model.patch_embed_ir, ir), (model.patch_embed_vis, vis)):
            t, ins = embed(x), []
            for i, stage in enumerate(model.encoder):
                ins.append(t)
                t = stage(t)
                if i < 2:
                    t = model.merges[i](t)
            feats.append((ins, t))
        (ins_ir, deep_ir), (ins_vis, deep_vis) = feats
        fused = [model.fusion[i](ins_ir[i], ins_vis[i]) for i in range(3)]
        d = model.decoder[0](deep_ir + deep_vis)
        d = model.decoder[1](model.expands[0](d + fused[2]))
        d = model.decoder[2](model.expands[1](d + fused[1]))
        ref = model.final_conv(model.final_expand(d).permute(0, 3, 1, 2))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    model.train()
    model(ir, vis).square().mean().backward()
    assert all(p.grad is None for p in model.fusion[0].parameters())
    assert all(p.grad is not None for p in model.fusion[1].parameters())


def test_quick_config_builds_and_trains_two_steps():
    from restore_core.train import load_config, train
    from restore_core.train.builders import build_network

    cfg = load_config("fusion_mamba/ir_vis", profile="quick")
    assert cfg.network_g.type == "fusion_mamba" and cfg.network_g.preset == "tiny"
    torch.manual_seed(0)
    net = build_network(cfg)
    assert isinstance(net, FusionMamba) and net.dims == [16, 32]
    losses = []
    before = [p.detach().clone() for p in net.parameters()]
    res = train(cfg, model=net, max_steps=2, save_checkpoints=False, progress=False,
                callbacks=[lambda trainer, step, logs: losses.append(logs["loss"])])
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
    assert res.final_metrics == {}                         # stopped before the quick profile's validation
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, res.model.parameters()))
