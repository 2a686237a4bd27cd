"""Experiment configs: BasicSR layout, base composition, profiles, overrides, errors naming the key path."""
import textwrap

import pytest

from restore_core.train.config import (ConfigError, TrainConfig, config_from_dict, list_configs, load_config,
                                       read_yaml_composed)

MINIMAL = {
    "name": "t", "model_type": "SRModel", "scale": 2,
    "datasets": {"train": {"type": "PairedImageDataset", "dataroot_gt": "DIV2K/HR", "gt_size": 96,
                           "batch_size_per_gpu": 4}},
    "network_g": {"type": "mambair", "preset": "light_sr_x2", "embed_dim": 48},
    "train": {"optim_g": {"type": "Adam", "lr": "2e-4", "betas": [0.9, 0.99]},
              "scheduler": {"type": "MultiStepLR", "milestones": [250000, 400000], "gamma": 0.5},
              "total_iter": 5e5, "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}},
    "val": {"val_freq": 5e3, "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2,
                                                  "test_y_channel": True}}},
    "logger": {"print_freq": 200, "save_checkpoint_freq": 5e3, "use_tb_logger": True},
}


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_basicsr_layout_is_typed():
    cfg = config_from_dict(MINIMAL)
    assert isinstance(cfg, TrainConfig)
    assert cfg.task == "restoration" and cfg.scale == 2
    assert cfg.train.optim_g.lr == 2e-4 and cfg.train.optim_g.betas == (0.9, 0.99)
    assert cfg.train.total_iter == 500000 and isinstance(cfg.train.total_iter, int)
    assert cfg.val.val_freq == 5000 and cfg.logger.save_checkpoint_freq == 5000
    # open-ended sections keep their own keys for the dataset / model / metric
    assert cfg.datasets["train"].params == {"dataroot_gt": "DIV2K/HR", "gt_size": 96}
    assert cfg.datasets["train"].batch_size_per_gpu == 4
    assert cfg.network_g.type == "mambair" and cfg.network_g.params == {"embed_dim": 48}
    assert cfg.val.metrics["psnr"].params == {"crop_border": 2, "test_y_channel": True}
    # round trip through plain data
    again = config_from_dict(cfg.to_dict())
    assert again == cfg and again.hash() == cfg.hash()


@pytest.mark.parametrize("path, value, message", [
    (("train", "optim_g", "lrr"), 1e-4, r"train\.optim_g\.lrr: unknown key"),
    (("logger", "print_frq"), 10, r"logger\.print_frq: unknown key"),
    (("bogus",), 1, r"^bogus: unknown key"),
    (("train", "total_iter"), "many", r"train\.total_iter: expected an integer"),
    (("train", "optim_g", "betas"), [0.9], r"train\.optim_g\.betas: expected a list of 2"),
    (("network_g", "upscale"), 2, r"network_g\.upscale: set the scale once"),
    (("datasets", "train", "scale"), 2, r"datasets\.train\.scale: set the scale once"),
    (("train", "pixel_opt", "epss"), 1e-3, r"train\.pixel_opt\.epss"),
    (("train", "mixed_precision"), "fp8", r"train\.mixed_precision"),
    (("model_type",), "GANModel", r"model_type: unknown"),
    (("val", "metrics", "psnr", "better"), "up", r"val\.metrics\.psnr\.better"),
])
def test_errors_name_the_key_path(path, value, message):
    import copy

    d = copy.deepcopy(MINIMAL)
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message) if "pixel_opt" not in message else pytest.raises(ValueError,
                                                                                                 match=message):
        config_from_dict(d)


def test_metric_names_and_options_are_checked():
    from restore_core.train.evaluate import build_metrics

    ok = build_metrics(config_from_dict(MINIMAL).val.metrics)
    assert ok["psnr"].params == {"crop_border": 2, "y_channel": True}  # BasicSR's test_y_channel, renamed
    with pytest.raises(ValueError, match=r"val\.metrics\.p\.type: unknown metric 'calc_psnr'"):
        build_metrics({"p": {"type": "calc_psnr"}})
    with pytest.raises(ValueError, match=r"val\.metrics\.p: unknown option\(s\) \['crop'\]"):
        build_metrics({"p": {"type": "calculate_psnr", "crop": 2}})


def test_base_composition_profiles_and_overrides(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "_base.yml", """
        name: base
        model_type: restoration
        scale: 2
        manual_seed: 10
        datasets:
          train: {type: PairedImageDataset, dataroot_gt: HR, batch_size_per_gpu: 4, gt_size: 128}
        network_g: {type: mambair, preset: classic_sr_x2}
        train:
          scheduler: {type: MultiStepLR, milestones: [1, 2, 3], gamma: 0.5}
          total_iter: 500000
          pixel_opt: {type: L1Loss}
    """)
    _write(tmp_path / "sub" / "exp.yml", """
        base: ../_base.yml
        name: exp
        datasets:
          train: {batch_size_per_gpu: 2}
        train:
          scheduler: {milestones: [10]}
        profiles:
          quick:
            network_g: {preset: tiny}
            train: {total_iter: 20}
          full: {}
    """)
    raw = read_yaml_composed(tmp_path / "sub" / "exp.yml")
    assert raw["datasets"]["train"] == {"type": "PairedImageDataset", "dataroot_gt": "HR", "batch_size_per_gpu": 2,
                                        "gt_size": 128}
    full = load_config(tmp_path / "sub" / "exp.yml", profile="full")
    assert full.name == "exp" and full.manual_seed == 10 and full.train.total_iter == 500000
    assert full.train.scheduler.milestones == [10]  # lists are replaced, not merged
    assert full.profile == "full" and full.network_g.preset == "classic_sr_x2"
    quick = load_config(tmp_path / "sub" / "exp.yml", profile="quick",
                        overrides=["train.optim_g.lr=1e-3", "datasets.train.gt_size=32",
                                   "val.metrics.psnr.type=calculate_ssim"])
    assert quick.network_g.preset == "tiny" and quick.train.total_iter == 20
    assert quick.train.optim_g.lr == 1e-3 and quick.datasets["train"].params["gt_size"] == 32
    assert quick.hash() != full.hash()
    with pytest.raises(ConfigError, match="profile must be one of"):
        load_config(tmp_path / "sub" / "exp.yml", profile="medium")
    with pytest.raises(ConfigError, match=r"train\.optim_g\.lrr: unknown key"):
        load_config(tmp_path / "sub" / "exp.yml", overrides=["train.optim_g.lrr=1"])
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        load_config(tmp_path / "sub" / "exp.yml", overrides=["train.optim_g.lr"])
    # the same settings in another order hash the same
    other = load_config(tmp_path / "sub" / "exp.yml", profile="quick",
                        overrides=["datasets.train.gt_size=32", "val.metrics.psnr.type=calculate_ssim",
                                   "train.optim_g.lr=0.001"])
    assert other.hash() == quick.hash()


def test_delete_marker_replaces_an_inherited_section(tmp_path):
    _write(tmp_path / "base.yml", """
        datasets:
          train: {type: PairedImageDataset, hq_dir: HR, lq_dir: LR, batch_size_per_gpu: 8}
        profiles:
          quick:
            datasets:
              train: {_delete_: true, type: DegradedDataset, images: "embedded:train", degradation: sr}
    """)
    _write(tmp_path / "child.yml", "base: base.yml\nname: child\ntrain: {pixel_opt: {type: L1Loss}}\n")
    quick = load_config(tmp_path / "child.yml", profile="quick")
    assert quick.datasets["train"].type == "DegradedDataset"
    assert quick.datasets["train"].params == {"images": "embedded:train", "degradation": "sr"}
    assert quick.datasets["train"].batch_size_per_gpu == 1  # replaced, not merged
    assert load_config(tmp_path / "child.yml").datasets["train"].params == {"hq_dir": "HR", "lq_dir": "LR"}


def test_underscore_base_and_cycles(tmp_path):
    _write(tmp_path / "a.yml", "_base_: b.yml\nname: a\n")
    _write(tmp_path / "b.yml", "_base_: a.yml\nscale: 3\n")
    with pytest.raises(ConfigError, match="circular base"):
        read_yaml_composed(tmp_path / "a.yml")
    _write(tmp_path / "c.yml", "_base_: [d.yml]\nname: c\n")
    _write(tmp_path / "d.yml", "scale: 3\nname: d\n")
    assert read_yaml_composed(tmp_path / "c.yml") == {"scale": 3, "name": "c"}
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(tmp_path / "missing.yml")


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTORE_CORE_DATA_ROOT", str(tmp_path))
    cfg = load_config(dict(MINIMAL))
    assert cfg.data_root == str(tmp_path)
    assert load_config(dict(MINIMAL), data_root="/srv/data").data_root == "/srv/data"


def test_shipped_presets_load_in_both_profiles():
    names = list_configs()
    for arch in ("mambair", "rnan", "cu_mamba", "fusion_mamba"):
        assert any(n.startswith(arch + "/") for n in names), f"no preset for {arch}: {names}"
    for name in names:
        quick = load_config(name, profile="quick")
        full = load_config(name, profile="full")
        assert quick.train.total_iter < full.train.total_iter, name
        # quick: the embedded photos, no download; full: real data under data_root
        assert str(quick.datasets["train"].params.get("images", "")).startswith("embedded:"), name
        assert not any(str(v).startswith("embedded:") for v in full.datasets["train"].params.values()), name
        assert quick.profile == "quick" and full.profile == "full"


def test_shipped_presets_name_registered_networks_and_datasets():
    """Every preset's network_g names a registered arch + preset, and every quick profile builds its network and
    its datasets."""
    import torch

    from restore_core.models import get_config, list_archs
    from restore_core.train.builders import build_network
    from restore_core.train.datasets import dataset_kwargs

    missing = set()
    for name in list_configs():
        for profile in ("quick", "full"):
            cfg = load_config(name, profile=profile)
            if cfg.network_g.type not in list_archs():
                missing.add(cfg.network_g.type)
                continue
            get_config(cfg.network_g.type, cfg.network_g.preset, **cfg.network_g.params)  # preset + overrides exist
            for phase, ds in cfg.datasets.items():
                dataset_kwargs(ds, cfg, f"datasets.{phase}")  # type known, arguments valid
            if profile == "quick" and cfg.task == "restoration":
                net = build_network(cfg).eval()
                with torch.no_grad():
                    out = net(torch.rand(1, getattr(net, "in_channels", 3), 16, 16))
                assert out.shape[-2:] == (16 * cfg.scale, 16 * cfg.scale), name  # the top-level scale reached it
    assert not missing, f"configs name unregistered archs: {missing}"
