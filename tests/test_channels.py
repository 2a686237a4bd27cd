"""Channel activations read from SS2D, effective rank and inactive share on activations with known answers."""
import math

import pytest
import torch

from restore_core.analysis import (channel_activations, effective_rank, inactive_share, sorted_mean_activation,
                                   ss2d_channel_activations, ss2d_modules)
from restore_core.models import build_model


def test_effective_rank_of_known_spectra():
    q, _ = torch.linalg.qr(torch.randn(20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    for r in (1, 3, 7):
        s = torch.zeros(20, dtype=torch.float64)
        s[:r] = 2.5
        a = q[:, :20] @ torch.diag(s) @ q.T
        assert effective_rank(a[:, :20]) == pytest.approx(r, rel=1e-9)
    s = torch.tensor([3.0, 1.0], dtype=torch.float64)  # p = (0.75, 0.25)
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(torch.diag(s)) == pytest.approx(expected)
    assert effective_rank(torch.zeros(4, 5)) == 0.0
    with pytest.raises(ValueError, match="n_images, C"):
        effective_rank(torch.zeros(4))


def test_inactive_share_and_sorting():
    a = torch.tensor([[1.0, 0.0, 0.5, 0.001], [3.0, 0.0, 0.5, 0.001]])  # means 2, 0, 0.5, 0.001
    assert inactive_share(a) == pytest.approx(0.5)          # <= 0.02: channels 1 and 3
    assert inactive_share(a, rel_threshold=0.3) == pytest.approx(0.75)
    assert inactive_share(torch.zeros(2, 3)) == 1.0
    assert torch.equal(sorted_mean_activation(a), torch.tensor([2.0, 0.5, 0.001, 0.0]))


def test_channel_activations_read_the_last_ss2d_output():
    torch.manual_seed(0)
    model = build_model("mambair", "tiny_sr_x2").eval()
    found = ss2d_modules(model)
    assert len(found) == 4  # 2 groups x 2 blocks
    last = list(found.values())[-1]
    x = torch.rand(3, 3, 12, 10)
    acts = channel_activations(model, x, batch_size=2)
    assert acts.shape == (3, 32) and (acts >= 0).all()
    seen = []
    h = last.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(x)
    h.remove()
    expected = torch.relu(seen[0]).mean(dim=(1, 2)).double()
    assert torch.allclose(acts, expected, atol=1e-6)
    first = list(found.values())[0]
    assert not torch.allclose(channel_activations(model, x, module=first), acts)
    every = ss2d_channel_activations(model, x, batch_size=2)
    assert list(every) == list(found)
    for name, m in found.items():
        assert torch.allclose(every[name], channel_activations(model, x, module=m), atol=0)
    with pytest.raises(ValueError, match="no SS2D"):
        channel_activations(torch.nn.Conv2d(3, 3, 1), x)


def test_channel_statistics_match_a_direct_computation_and_ca_removal():
    from restore_core.analysis import remove_channel_attention, ss2d_channel_statistics
    from restore_core.layers.channel_attention import CAB, ChannelAttention

    torch.manual_seed(0)
    model = build_model("mambair", "tiny_sr_x2").eval()
    x = torch.rand(3, 3, 12, 10)
    stats = ss2d_channel_statistics(model, x, batch_size=2)
    acts = ss2d_channel_activations(model, x, batch_size=2)
    name = list(stats)[-1]
    seen = []
    h = ss2d_modules(model)[name].register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(x)
    h.remove()
    y = seen[0].double().flatten(1, 2)                                  # (Bt, H*W, C)
    assert torch.allclose(stats[name]["relu_gap"], acts[name], atol=1e-12)
    assert torch.allclose(stats[name]["rms"], y.square().mean(1).sqrt(), atol=1e-6)
    cov0 = torch.cov(y[0].T, correction=0)
    assert stats[name]["cov"].shape == (3, 32, 32) and torch.allclose(stats[name]["cov"][0], cov0, atol=1e-6)
    assert 1.0 <= effective_rank(stats[name]["cov"][0]) <= 32
    assert remove_channel_attention(model) == 4
    assert not any(isinstance(m, ChannelAttention) for m in model.modules())
    assert sum(isinstance(m, CAB) for m in model.modules()) == 4 and remove_channel_attention(model) == 0
