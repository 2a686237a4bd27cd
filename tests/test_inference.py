"""Tiled inference, padding to a size multiple, x8 self-ensemble (restore_core.inference)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from restore_core.inference import (DIHEDRAL, blend_window, dihedral, dihedral_inverse, forward_padded,
                                    restore_tensor, self_ensemble, tile_starts, tiled_forward)


pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors (see conftest)


def conv_net(scale: int = 1, layers: int = 3, seed: int = 0) -> nn.Module:
    """A zero-padded conv net: receptive-field radius = ``layers`` input pixels (3x3 kernels)."""
    torch.manual_seed(seed)
    mods: list = []
    c = 3
    for i in range(layers):
        out = 3 * scale * scale if i == layers - 1 else 8
        mods += [nn.Conv2d(c, out, 3, padding=1), nn.GELU()]
        c = out
    mods = mods[:-1]
    if scale > 1:
        mods.append(nn.PixelShuffle(scale))
    return nn.Sequential(*mods).eval()


class NeedsMultiple(nn.Module):
    """Raises unless H and W are multiples of ``m`` (like a model with a down/up pair)."""

    def __init__(self, m: int) -> None:
        super().__init__()
        self.m = m
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        assert x.shape[-2] % self.m == 0 and x.shape[-1] % self.m == 0, x.shape
        return self.conv(x)


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_tiled_equals_untiled_when_overlap_covers_receptive_field(scale):
    net = conv_net(scale, layers=3)
    x = torch.rand(2, 3, 50, 37)
    with torch.no_grad():
        full = net(x)
        tiled = tiled_forward(net, x, tile=20, overlap=12)   # window margin 12 // 4 = 3 = radius
    assert tiled.shape == full.shape == (2, 3, 50 * scale, 37 * scale)
    assert (tiled - full).abs().max().item() < 1e-5


def test_tiled_differs_when_overlap_is_too_small():
    net = conv_net(1, layers=3)
    x = torch.rand(1, 3, 50, 37)
    with torch.no_grad():
        err = (tiled_forward(net, x, tile=20, overlap=4) - net(x)).abs().max().item()
    assert err > 1e-3  # margin 1 < radius 3: the seams show, so the test above can fail


def test_tile_starts_cover_and_overlap():
    for length, tile, ov in [(50, 20, 12), (20, 20, 4), (7, 20, 4), (101, 32, 8)]:
        starts = tile_starts(length, tile, ov)
        covered = torch.zeros(length, dtype=torch.bool)
        for s in starts:
            assert 0 <= s and s + min(tile, length) <= length
            covered[s:s + tile] = True
        assert covered.all()
        assert all(b - a <= tile - ov for a, b in zip(starts, starts[1:]))
    with pytest.raises(ValueError, match="larger than tile_overlap"):
        tile_starts(50, 8, 8)


def test_blend_window_shape():
    w = blend_window(20, 12, cut_before=True, cut_after=False)
    assert w[:3].eq(0).all() and w[3] > 0 and w[-8:].eq(1).all()
    assert blend_window(10, 12, False, False).eq(1).all()


def test_forward_padded_reaches_the_multiple_and_crops():
    net = NeedsMultiple(8).eval()
    x = torch.rand(1, 3, 13, 21)
    with torch.no_grad():
        y = forward_padded(net, x, multiple=8)
        ref = net(F.pad(x, (0, 3, 0, 3), mode="reflect"))[..., :13, :21]
    assert y.shape == (1, 3, 13, 21)
    assert torch.equal(y, ref)
    with torch.no_grad():  # tiny inputs fall back to replication padding
        assert forward_padded(net, torch.rand(1, 3, 2, 3), multiple=8).shape == (1, 3, 2, 3)
        assert tiled_forward(net, torch.rand(1, 3, 30, 19), tile=16, overlap=4, multiple=8).shape == (1, 3, 30, 19)


def test_dihedral_inverse_round_trip_non_square():
    x = torch.rand(2, 3, 5, 7)
    outs = set()
    for r, f in DIHEDRAL:
        y = dihedral(x, r, f)
        assert torch.equal(dihedral_inverse(y, r, f), x)
        outs.add(tuple(y.flatten().tolist()))
    assert len(outs) == 8


def symmetric_conv(seed: int = 0) -> nn.Module:
    """A conv whose kernels are invariant under the dihedral group: it commutes with flips and rotations."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(3, 3, 3, padding=1)
    with torch.no_grad():
        w = conv.weight
        conv.weight.copy_(sum(dihedral(w, r, f) for r, f in DIHEDRAL) / 8)
    return nn.Sequential(conv, nn.Tanh(), nn.Upsample(scale_factor=2, mode="nearest")).eval()


def test_self_ensemble_of_equivariant_model_equals_plain_output():
    net = symmetric_conv()
    x = torch.rand(1, 3, 11, 16)
    with torch.no_grad():
        plain = net(x)
        ens = self_ensemble(net, x)
    assert ens.shape == (1, 3, 22, 32)
    assert (ens - plain).abs().max().item() < 1e-6
    with torch.no_grad():  # a generic model is not equivariant: the ensemble changes its output
        generic = conv_net(1)
        assert (self_ensemble(generic, x) - generic(x)).abs().max().item() > 1e-3


def test_restore_tensor_pixel_range_tiles_and_ensemble():
    class Square(nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return x * x + self.dummy

    x = torch.rand(3, 9, 14)
    y = restore_tensor(Square(), x, pixel_range=255.0, tile=8, tile_overlap=4, use_self_ensemble=True)
    assert y.shape == x.shape
    assert torch.allclose(y, x * x * 255.0, rtol=1e-5, atol=1e-4)


def test_restore_tensor_rejects_nan_and_bad_rank():
    net = conv_net(1)
    bad = torch.rand(3, 8, 8)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        restore_tensor(net, bad)
    with pytest.raises(ValueError, match="expected an image"):
        restore_tensor(net, torch.rand(8, 8))


def test_progress_bar_counts_every_tile(capsys):
    net = conv_net(2)
    calls = []
    with torch.no_grad():
        y = tiled_forward(net, torch.rand(1, 3, 20, 26), tile=8, overlap=4, progress=lambda: calls.append(1))
    assert y.shape == (1, 3, 40, 52) and len(calls) == len(tile_starts(20, 8, 4)) * len(tile_starts(26, 8, 4)) == 24
    restore_tensor(net, torch.rand(3, 20, 26), tile=8, tile_overlap=4, progress=True, desc="img")
    err = capsys.readouterr().err
    assert "img:" in err and "/24" in err and "tile" in err  # tqdm: "img: 0%| | 0/24 [00:00<?, ?tile/s]"


_PEAK_SCRIPT = r"""
import re, sys, torch
from torch import nn
from restore_core.inference import restore_tensor
torch.set_num_threads(1)
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GELU(), nn.Conv2d(16, 16, 3, padding=1), nn.GELU(),
                    nn.Conv2d(16, 12, 3, padding=1), nn.PixelShuffle(2)).eval()
side, tile = int(sys.argv[1]), (int(sys.argv[2]) or None)
x = torch.rand(3, side, side)
def peak_kib():  # VmHWM: this program's own high-water mark (ru_maxrss also counts the parent's RSS at fork)
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
restore_tensor(net, torch.rand(3, 64, 64))                       # warm-up: allocator, kernels
base = peak_kib()
y = restore_tensor(net, x, tile=tile, tile_overlap=16)
print((peak_kib() - base) * 1024, y.numel() * 4)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc/self/status")
def test_tiled_peak_memory_is_the_output_buffer_plus_one_tile():
    """Peak RSS above the baseline, minus the output buffer, stays under 20 MB from 4 to 256 tiles; untiled, the
    activations of the same 768x768 image take over 60 MB more (so the measurement can see them)."""
    def excess(side: int, tile: int) -> float:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(side), str(tile)], capture_output=True,
                             text=True, env=env, timeout=300, check=True).stdout.split()
        grew, out_bytes = int(out[0]), int(out[1])
        return (grew - out_bytes) / 2**20  # MiB beyond the output buffer

    small, big = excess(96, 64), excess(768, 64)  # 2x2 = 4 tiles vs 16x16 = 256 tiles of 64 (overlap 16)
    assert small < 20 and big < 20, (small, big)
    assert excess(768, 0) > 60  # untiled: 768^2 x 16 channels x 4 B = 36 MiB per activation, two alive
