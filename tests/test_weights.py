"""Loading weights: what does not fit is counted and named briefly, for plain state dicts, pretrained weights
in a training config, and checkpoints resumed by another network."""
import logging

import pytest
import torch
from torch import nn

from restore_core.models.weights import WeightsMismatchError, compare_state_dict, load_weights
from restore_core.train.builders import load_pretrained


def _net(width=4, extra=False):
    layers = [nn.Conv2d(3, width, 3), nn.Conv2d(width, 3, 1)] + ([nn.Conv2d(3, 3, 1)] if extra else [])
    return nn.Sequential(*layers)


def test_compare_counts_every_kind_in_the_models_key_order():
    ckpt = _net(width=8).state_dict()  # same names, other widths
    ckpt["stray.weight"] = torch.zeros(1)
    m = compare_state_dict(_net(width=4, extra=True), ckpt)
    assert m.missing == ["2.weight", "2.bias"] and m.unexpected == ["stray.weight"]
    assert m.shapes == [("0.weight", (8, 3, 3, 3), (4, 3, 3, 3)), ("0.bias", (8,), (4,)),
                        ("1.weight", (3, 8, 1, 1), (3, 4, 1, 1))]
    assert m.summary() == ("2 missing keys (2.weight, 2.bias), 1 unexpected key (stray.weight), 3 shape mismatches "
                           "(0.weight: checkpoint [8, 3, 3, 3] vs model [4, 3, 3, 3]; 0.bias: checkpoint [8] vs "
                           "model [4]; 1.weight: checkpoint [3, 8, 1, 1] vs model [3, 4, 1, 1])")
    assert not compare_state_dict(_net(), _net().state_dict())


def test_load_weights_loads_a_fit_and_leaves_the_model_untouched_otherwise():
    src, dst = _net(), _net()
    assert load_weights(dst, src.state_dict()) is dst
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(WeightsMismatchError, match=r"^w\.pt does not fit net: 1 missing key \(1\.bias\)\. Hint\.$"):
        load_weights(dst, {k: v for k, v in _net().state_dict().items() if k != "1.bias"}, source="w.pt",
                     target="net", hint="Hint.")
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())


def test_pretrained_strict_and_lenient(tmp_path, caplog):
    path = tmp_path / "pre.pth"
    torch.save({"params": _net().state_dict()}, path)  # BasicSR layout
    net = _net(extra=True)
    with pytest.raises(WeightsMismatchError, match=r"pre\.pth does not fit network_g: 2 missing keys .*"
                                                    r"strict_load_g: false"):
        load_pretrained(net, str(path))
    with caplog.at_level(logging.WARNING):
        load_pretrained(net, str(path), strict=False)  # the keys that fit are loaded
    assert "2 missing keys (2.weight, 2.bias)" in caplog.text
    assert torch.equal(net[0].weight, torch.load(path)["params"]["0.weight"])
    torch.save({"params": _net(width=8).state_dict()}, path)
    with pytest.raises(WeightsMismatchError, match="even with strict_load_g: false: 3 shape mismatches"):
        load_pretrained(_net(), str(path), strict=False)
