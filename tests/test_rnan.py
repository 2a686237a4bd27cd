"""RNAN: parameter count and key layout against the official module, non-local attention, switches, sizes."""
import json
import re
from pathlib import Path

import pytest
import torch

from restore_core.layers.nonlocal_block import NonLocalBlock2D, nonlocal_attention
from restore_core.models import build_model, list_presets
from restore_core.models.rnan import MaskBranch

# Key names and shapes of the official DN_RGB checkpoint (read from yulunzhang/RNAN's module).
_CANDIDATES = [Path(__file__).resolve().parents[1] / "shared" / "official" / "rnan_color_dn.json",
               Path("/work/shared/official/rnan_color_dn.json")]
OFFICIAL = next((p for p in _CANDIDATES if p.exists()), None)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# The official -> ours rename table documented in restore_core/models/rnan.py's header.
_RULES = [
    (r"^head\.0\.", "head."),
    (r"^body_nl_low\.0\.", "group_low."),
    (r"^body_nl_high\.0\.", "group_high."),
    (r"^body\.8\.", "body_conv."),
    (r"^body\.(\d)\.", r"groups.\1."),
    (r"^tail\.0\.", "tail."),
    (r"\.body\.0\.RA_", ".block.RA_"),
    (r"^(group_low|group_high|groups\.\d)\.body\.1\.", r"\1.conv."),
    (r"RA_RB1\.0\.", "pre."),
    (r"RA_TB\.0\.body\.", "trunk."),
    (r"RA_tail\.", "post."),
    (r"RA_MB\.0\.MB_RB1\.0\.(g|theta|phi|W)\.", r"mask.nonlocal_block.\1."),
    (r"(group_low|group_high)(.*)RA_MB\.0\.MB_RB1\.1\.", r"\1\2mask.rb1."),
    (r"RA_MB\.0\.MB_RB1\.0\.", "mask.rb1."),
    (r"RA_MB\.0\.MB_Down\.0\.", "mask.down."),
    (r"RA_MB\.0\.MB_RB2\.", "mask.rb2."),
    (r"RA_MB\.0\.MB_Up\.0\.", "mask.up."),
    (r"RA_MB\.0\.MB_RB3\.0\.", "mask.rb3."),
    (r"RA_MB\.0\.MB_1x1conv\.0\.", "mask.conv1x1."),
]


def rename(key: str) -> str:
    for pat, rep in _RULES:
        key = re.sub(pat, rep, key)
    return key


def test_color_dn_matches_official_parameter_count():
    """8,959,555 parameters = the official DN_RGB module (462 tensors)."""
    model = build_model("rnan", "color_dn")
    assert n_params(model) == 8_959_555
    assert len(model.state_dict()) == 462


@pytest.mark.skipif(OFFICIAL is None, reason="official key list rnan_color_dn.json not available")
def test_color_dn_official_keys_map_by_rename():
    """Every official key maps to one of ours by the documented rename table with the same shape."""
    model = build_model("rnan", "color_dn")
    official = json.loads(OFFICIAL.read_text())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mapped = {rename(k): tuple(v) for k, v in official.items()}
    assert mapped == ours


@pytest.mark.parametrize("softmax_over", ["key", "query"])
def test_nonlocal_block_equals_handwritten_softmax_attention(softmax_over):
    torch.manual_seed(0)
    block = NonLocalBlock2D(6, 3, softmax_over=softmax_over, zero_init=False).double()
    x = torch.randn(2, 6, 3, 5, dtype=torch.float64)
    # By hand: f[b, i, j] = θ(x_i)·φ(x_j); "key" = the paper (softmax over j), "query" = RNAN's dim=1.
    th = block.theta(x).flatten(2).transpose(1, 2)   # (Bt, L, C')
    ph = block.phi(x).flatten(2)                     # (Bt, C', L)
    g = block.g(x).flatten(2).transpose(1, 2)        # (Bt, L, C')
    f = th @ ph                                      # (Bt, L_query, L_key)
    a = torch.softmax(f, dim=2 if softmax_over == "key" else 1)
    y = (a @ g).transpose(1, 2).reshape(2, 3, 3, 5)
    expected = block.W(y) + x
    torch.testing.assert_close(block(x), expected, rtol=1e-12, atol=1e-12)
    if softmax_over == "key":   # each query's weights sum to 1
        torch.testing.assert_close(a.sum(-1), torch.ones(2, 15, dtype=torch.float64))


@pytest.mark.parametrize("softmax_over", ["key", "query"])
def test_nonlocal_chunking_is_exact(softmax_over):
    torch.manual_seed(1)
    th, ph, g = (torch.randn(2, 23, 4, dtype=torch.float64) for _ in range(3))
    full = nonlocal_attention(th, ph, g, softmax_over, max_chunk_elements=10 ** 9)
    chunked = nonlocal_attention(th, ph, g, softmax_over, max_chunk_elements=2 * 23 * 5)  # 5 rows per chunk
    torch.testing.assert_close(chunked, full, rtol=1e-12, atol=1e-12)
    # The two normalisations really differ.
    other = nonlocal_attention(th, ph, g, "query" if softmax_over == "key" else "key")
    assert (other - full).abs().max() > 1e-3


def test_nonlocal_attention_gradcheck():
    torch.manual_seed(2)
    args = [torch.randn(1, 6, 2, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    for mode in ("key", "query"):
        assert torch.autograd.gradcheck(lambda a, b, c: nonlocal_attention(a, b, c, mode, 4), args)


def test_nonlocal_block_starts_as_identity():
    x = torch.randn(1, 8, 5, 4)
    torch.testing.assert_close(NonLocalBlock2D(8, 4)(x), x)


def test_tiny_forward_backward_odd_size():
    torch.manual_seed(0)
    model = build_model("rnan", "tiny")
    x = torch.rand(2, 3, 37, 53, requires_grad=True)
    y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_output_size(scale):
    model = build_model("rnan", f"sr_x{scale}", n_feats=8, n_local_groups=0, nonlocal_channels=4)
    y = model(torch.rand(1, 3, 7, 9))
    assert y.shape == (1, 3, 7 * scale, 9 * scale) and torch.isfinite(y).all()


def test_mask_branch_pads_only_odd_sizes():
    """Even sizes take the official path unchanged; an odd size equals the padded input's result, cropped."""
    torch.manual_seed(3)
    branch = MaskBranch(4).double()
    x = torch.randn(1, 4, 6, 8, dtype=torch.float64)
    skip = branch.rb1(x)
    manual = torch.sigmoid(branch.conv1x1(branch.rb3(skip + branch.up(branch.rb2(branch.down(skip))))))
    torch.testing.assert_close(branch(x), manual)
    odd = torch.randn(1, 4, 5, 7, dtype=torch.float64)
    assert branch(odd).shape == odd.shape


def test_switches_change_structure_by_the_expected_amount():
    c, cp, groups = 16, 8, 3  # tiny: 1 local + 2 non-local groups
    full = n_params(build_model("rnan", "tiny"))
    nl_block = 3 * (c * cp + cp) + (cp * c + c)              # θ, φ, g (C -> C') and W (C' -> C), with biases
    assert full - n_params(build_model("rnan", "tiny", use_nonlocal=False)) == 2 * nl_block
    resblock = 2 * (9 * c * c + c)
    mask = resblock * 4 + (9 * c * c + c) + (36 * c * c + c) + (c * c + c)  # 4 RBs, conv s2, deconv k6, 1x1
    assert full - n_params(build_model("rnan", "tiny", use_mask=False)) == groups * mask + 2 * nl_block
    # Residual attention learning changes the function, not the parameters.
    torch.manual_seed(0)
    a = build_model("rnan", "tiny")
    b = build_model("rnan", "tiny", residual_attention=False)
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 12, 10)
    assert (a(x) - b(x)).abs().max() > 1e-4
    assert n_params(a) == n_params(b)


def test_official_softmax_switch_changes_output():
    torch.manual_seed(0)
    a = build_model("rnan", "tiny")
    b = build_model("rnan", "tiny", nonlocal_softmax_dim="query")
    b.load_state_dict(a.state_dict())
    for m in (a, b):  # make the (zero-initialised) non-local output visible
        for blk in (m.group_low.block.mask.nonlocal_block, m.group_high.block.mask.nonlocal_block):
            torch.nn.init.normal_(blk.W.weight, std=0.5)
    x = torch.rand(1, 3, 10, 12)
    assert (a(x) - b(x)).abs().max() > 1e-5


def test_deterministic():
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = build_model("rnan", "tiny")
        outs.append(model(torch.rand(1, 3, 9, 11)))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_presets_and_bad_input():
    assert {"color_dn", "gray_dn", "demosaic", "car", "sr_x2", "sr_x3", "sr_x4", "tiny"} <= set(list_presets("rnan"))
    model = build_model("rnan", "tiny")
    with pytest.raises(ValueError, match="expects"):
        model(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="global_residual"):
        build_model("rnan", "tiny", scale=2)
    with pytest.raises(TypeError, match="unknown option"):
        build_model("rnan", "tiny", n_resgroups=3)
