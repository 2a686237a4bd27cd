"""Generated from the architecture registry: every registered arch / preset builds, and small versions run
forward (odd sizes, finite outputs, right shape) and backward. New architectures are covered automatically.

* every preset is built on the meta device (no memory) and must hold parameters;
* every arch must offer at least one ``tiny*`` preset; tiny presets run forward on a 37x53 input;
* every preset, shrunk by the overrides in ``SHRINK`` (applied to the fields its config has), runs forward and
  backward on an 11x13 input when the shrunk model has at most ``MAX_SHRUNK_PARAMS`` parameters (presets that
  shrink to the same config run once).

Inputs: as many image tensors as ``forward`` has required positional arguments (fusion models take two), with
the config's ``in_channels`` (3 when the config has none). Expected output: ``upscale`` / ``scale`` times the
input size, ``out_channels`` (or ``in_channels``) channels.
"""
import dataclasses
import inspect

import pytest
import torch

from restore_core.models import build_model, config_class, get_config, list_archs, list_presets, model_class

ALL = [(a, p) for a in list_archs() for p in list_presets(a)]
TINY = [(a, p) for a, p in ALL if p.startswith("tiny")]
# Size overrides for small, fast variants of every preset (only fields the config has are applied).
SHRINK = {"embed_dim": 30, "depths": (1,), "d_state": 4, "n_feats": 16, "n_local_groups": 1,
          "nonlocal_channels": 8, "dim": 16, "num_feat": 16, "drop_path_rate": 0.0,
          "num_blocks": (1, 1, 1, 1), "num_refinement": 1}
MAX_SHRUNK_PARAMS = 2_000_000


def _n_inputs(arch):
    sig = inspect.signature(model_class(arch).forward)
    return sum(1 for p in list(sig.parameters.values())[1:]
               if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _io(cfg):
    fields = {f.name for f in dataclasses.fields(cfg)}
    cin = getattr(cfg, "in_channels", 3) if "in_channels" in fields else 3
    cout = getattr(cfg, "out_channels", None) or cin
    scale = getattr(cfg, "upscale", None) or getattr(cfg, "scale", None) or 1
    return cin, cout, scale


def _shrunk(arch, preset):
    cfg = get_config(arch, preset)
    fields = {f.name for f in dataclasses.fields(cfg)}
    return dataclasses.replace(cfg, **{k: v for k, v in SHRINK.items() if k in fields})


def _distinct_shrunk():
    """One preset per distinct shrunk config (presets that shrink to the same model are run once)."""
    seen, out = set(), []
    for arch, preset in ALL:
        key = (arch, repr(dataclasses.asdict(_shrunk(arch, preset))))
        if key not in seen:
            seen.add(key)
            out.append((arch, preset))
    return out


SHRUNK = _distinct_shrunk()


def _build(arch, cfg):
    return model_class(arch)(**dataclasses.asdict(cfg))


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    assert isinstance(out, (tuple, list)) and isinstance(out[0], torch.Tensor), type(out)
    return out[0]


def _check_output(out, cout, H, W, scale):
    y = _first_tensor(out)
    assert y.shape == (1, cout, H * scale, W * scale)
    assert torch.isfinite(y).all()
    return y


def test_registry_is_populated():
    assert "mambair" in list_archs() and "rnan" in list_archs()
    for arch in list_archs():
        assert dataclasses.is_dataclass(config_class(arch))
        assert any(p.startswith("tiny") for p in list_presets(arch)), f"{arch} has no tiny preset"


@pytest.mark.parametrize("arch,preset", ALL, ids=[f"{a}:{p}" for a, p in ALL])
def test_every_preset_builds_on_meta(arch, preset):
    with torch.device("meta"):
        model = build_model(arch, preset)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("arch,preset", TINY, ids=[f"{a}:{p}" for a, p in TINY])
def test_tiny_forward_37x53(arch, preset):
    torch.manual_seed(0)
    cfg = get_config(arch, preset)
    cin, cout, scale = _io(cfg)
    model = _build(arch, cfg).eval()
    xs = [torch.rand(1, cin, 37, 53) for _ in range(_n_inputs(arch))]
    with torch.no_grad():
        _check_output(model(*xs), cout, 37, 53, scale)


@pytest.mark.parametrize("arch,preset", SHRUNK, ids=[f"{a}:{p}" for a, p in SHRUNK])
def test_shrunk_forward_backward_odd(arch, preset):
    torch.manual_seed(0)
    cfg = _shrunk(arch, preset)
    with torch.device("meta"):
        n_params = sum(p.numel() for p in _build(arch, cfg).parameters())
    if n_params > MAX_SHRUNK_PARAMS:
        pytest.skip(f"{arch}:{preset} shrunk still has {n_params} parameters (no SHRINK rule for its size fields)")
    cin, cout, scale = _io(cfg)
    model = _build(arch, cfg).eval()
    xs = [torch.rand(1, cin, 11, 13, requires_grad=True) for _ in range(_n_inputs(arch))]
    y = _check_output(model(*xs), cout, 11, 13, scale)
    y.square().mean().backward()
    for x in xs:
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    bad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or
                                                                         not torch.isfinite(p.grad).all())]
    assert not bad, f"parameters without finite gradients: {bad[:5]}"


def test_width_and_scale_have_one_name_and_the_earlier_names_still_build():
    """embed_dim / upscale across the architectures; RNAN's n_feats / scale and CU-Mamba's dim are read as those,
    with a DeprecationWarning (Python) or a logged warning (network_g in a config or a checkpoint's config)."""
    for arch in list_archs():
        names = {f.name for f in dataclasses.fields(config_class(arch))}
        assert "embed_dim" in names, arch
        assert not names & {"n_feats", "dim", "scale"}, arch
    with pytest.warns(DeprecationWarning, match="'n_feats' is now called 'embed_dim'"):
        old = get_config("rnan", "tiny", n_feats=8, scale=2)
    assert old == get_config("rnan", "tiny", embed_dim=8, upscale=2) and old.n_feats == 8 and old.scale == 2
    with pytest.warns(DeprecationWarning, match="'dim' is now called 'embed_dim'"):
        assert model_class("cu_mamba")(dim=16, num_blocks=(1, 1, 1, 1), num_refinement=1).in_channels == 3
    with pytest.raises(TypeError, match="name the same option"):
        get_config("rnan", "tiny", n_feats=8, embed_dim=8)

    from restore_core.train import config_from_dict
    from restore_core.train.builders import build_network

    cfg = config_from_dict({"scale": 2, "train": {"pixel_opt": {"type": "L1Loss"}},
                            "network_g": {"type": "rnan", "preset": "tiny", "n_feats": 8,
                                          "global_residual": "feature"}})
    torch.manual_seed(0)
    net = build_network(cfg)
    torch.manual_seed(0)
    new = build_model("rnan", "tiny", embed_dim=8, upscale=2, global_residual="feature")
    assert net.upscale == 2 and all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                                       new.state_dict().values()))
