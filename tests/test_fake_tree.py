"""Stand-in dataset folders for dry runs: the layout the catalog and the full-profile configs expect."""
import pytest

from restore_core.data.catalog import CATALOG
from restore_core.data.fake_tree import write_fake_datasets
from restore_core.data.io import read_image
from restore_core.train import load_config


def test_every_catalog_subset_gets_images(tmp_path):
    roots = write_fake_datasets(tmp_path, n_images=2, size=50)
    assert set(roots) == set(CATALOG)
    for name, entry in CATALOG.items():
        for subset in entry.layout:
            files = sorted(entry.subset_dir(tmp_path, subset).rglob("*.png"))
            assert len(files) >= 2, (name, subset)
    hr = read_image(tmp_path / "DIV2K/DIV2K_train_HR/0001.png")
    lr = read_image(tmp_path / "DIV2K/DIV2K_train_LR_bicubic/X3/0001x3.png")
    assert tuple(hr.shape) == (3, 48, 48) and tuple(lr.shape) == (3, 16, 16)
    assert read_image(tmp_path / "MSRS/MSRS-main/test/ir/img_001.png").shape[0] == 1
    assert (tmp_path / "Set14/benchmark/Set14/LR_bicubic/X2/img_002x2.png").is_file()


@pytest.mark.parametrize("config", ["mambair/sr_x2", "cu_mamba/deblur", "fusion_mamba/ir_vis", "rnan/color_dn"])
def test_full_profile_configs_find_their_folders(tmp_path, config):
    write_fake_datasets(tmp_path, names=["DIV2K", "Set14", "GoPro", "CBSD68", "MSRS"], n_images=2, size=48)
    cfg = load_config(config, profile="full", data_root=str(tmp_path))
    for split in cfg.datasets.values():
        for key, rel in split.params.items():
            if key.endswith("_dir") or key == "images":
                assert any((tmp_path / rel).glob("*.png")), (config, key, rel)
