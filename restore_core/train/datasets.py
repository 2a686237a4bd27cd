"""Config ``datasets.<phase>`` -> the datasets of :mod:`restore_core.data`; the dataset argument of ``eval``.

``type`` names a dataset class of :mod:`restore_core.data` (BasicSR's ``PairedImageDataset`` is an alias of
``PairedFolderDataset``); the section's other keys are that class's arguments, checked by name so a misspelled
key fails with its config path. The top-level ``scale`` fills ``scale`` arguments and the ``sr`` degradation
(``degradation: sr`` becomes ``sr_x<scale>``); ``manual_seed`` fills ``seed``; relative paths in ``images``,
``hq_dir``, ``lq_dir`` and ``dataroot*`` are relative to the top-level ``data_root``.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from torch.utils.data import Dataset

from ..data import DegradedDataset, PairedFolderDataset, SyntheticFusionDataset, convert_channels
from ..registry import Registry
from .config_errors import ConfigError
from .config_schema import DatasetOptions, TrainConfig

DATASET_TYPES = Registry("dataset type")
_PATH_KEYS = ("images", "hq_dir", "lq_dir", "ir_dir", "vis_dir")


class InfraredVisibleFolders(Dataset):
    """Registered infrared / visible pairs in two folders (MSRS, RoadScene layouts), matched by file name.

    A key-renaming view of :class:`restore_core.data.PairedFolderDataset` (which reads, matches, crops and
    augments both images identically): items are ``{"ir": (1, H, W), "vis": (C, H, W), "name": str}``; the
    infrared image is converted to one channel when stored as RGB.
    """

    def __init__(self, ir_dir: str, vis_dir: str, patch_size: Optional[int] = None, augment: bool = False,
                 seed: int = 0) -> None:
        self.pairs = PairedFolderDataset(hq_dir=vis_dir, lq_dir=ir_dir, scale=1, patch_size=patch_size,
                                         augment=augment, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.pairs.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        item = self.pairs[index]
        ir = item["lq"]
        return {"ir": convert_channels(ir, 1) if ir.shape[0] == 3 else ir, "vis": item["hq"], "name": item["name"]}


def _register_defaults() -> None:
    if len(DATASET_TYPES):
        return
    DATASET_TYPES.register("DegradedDataset", DegradedDataset)
    DATASET_TYPES.register("PairedFolderDataset", PairedFolderDataset)
    DATASET_TYPES.register("PairedImageDataset", PairedFolderDataset)  # BasicSR's name
    DATASET_TYPES.register("SyntheticFusionDataset", SyntheticFusionDataset)
    DATASET_TYPES.register("InfraredVisibleFolders", InfraredVisibleFolders)


def dataset_class(type_name: str, where: str = "datasets") -> Callable[..., Any]:
    _register_defaults()
    if type_name not in DATASET_TYPES:
        raise ConfigError(f"{where}.type: unknown dataset type {type_name!r}; known: {', '.join(DATASET_TYPES)}")
    return DATASET_TYPES.get(type_name)


def _resolve(value: Any, data_root: str) -> Any:
    if isinstance(value, str) and not value.startswith("embedded:") and not Path(value).is_absolute():
        return str(Path(data_root) / value)
    if isinstance(value, list):
        return [_resolve(v, data_root) for v in value]
    return value


EVAL_SEED = 0  # the seed of every non-training set's random degradation (noise, synthetic pairs)


def dataset_kwargs(opts: DatasetOptions, cfg: TrainConfig, where: str) -> Dict[str, Any]:
    """The constructor arguments of ``opts``' dataset class, with scale, seed and paths filled in."""
    cls = dataset_class(opts.type, where)
    accepted = inspect.signature(cls).parameters
    kwargs = dict(opts.params)
    bad = sorted(k for k in kwargs if k not in accepted or k in ("scale", "seed"))
    if bad:
        valid = sorted(k for k in accepted if k not in ("scale", "seed"))
        raise ConfigError(f"{', '.join(where + '.' + b for b in bad)}: unknown option(s) for {opts.type}; "
                          f"valid: {valid} (scale and seed come from the top-level scale / manual_seed)")
    for k, v in list(kwargs.items()):
        if k in _PATH_KEYS or k.startswith("dataroot"):
            kwargs[k] = _resolve(v, cfg.data_root)
    if "scale" in accepted:
        kwargs["scale"] = cfg.scale
    if "seed" in accepted:
        # training data draws crops / noise from the run's seed; every other set (validation, evaluation) is a
        # fixed test set, the same for every run and every seed, so that runs are scored on the same images
        kwargs["seed"] = cfg.manual_seed if where == "datasets.train" else EVAL_SEED
    deg = kwargs.get("degradation")
    if isinstance(deg, str):
        m = re.fullmatch(r"sr(?:_x(\d+))?", deg.strip())
        if m and m.group(1) and int(m.group(1)) != cfg.scale:
            raise ConfigError(f"{where}.degradation: {deg!r} contradicts scale {cfg.scale}; write 'sr' "
                              f"(the scale appears once, at the top level)")
        if m:
            kwargs["degradation"] = f"sr_x{cfg.scale}"
        elif cfg.scale != 1:
            raise ConfigError(f"{where}.degradation: {deg!r} with scale {cfg.scale}; only 'sr' changes the size")
    return kwargs


def build_dataset_from_options(opts: DatasetOptions, cfg: TrainConfig, phase: str) -> Any:
    where = f"datasets.{phase}"
    kwargs = dataset_kwargs(opts, cfg, where)
    try:
        return dataset_class(opts.type, where)(**kwargs)
    except (TypeError, ValueError, FileNotFoundError) as exc:
        raise type(exc)(f"{where} ({opts.type}): {exc}") from None


_PAIR_DIRS = (("hq", "lq"), ("HR", "LR"), ("gt", "lq"), ("GT", "LQ"), ("target", "input"))


def eval_dataset(spec: str, cfg: TrainConfig) -> Any:
    """The dataset ``restore-core eval CKPT DATASET`` scores.

    spec: "embedded" / "embedded:test" (the embedded test split), or a folder: with ``hq/`` + ``lq/`` (or
    ``HR/LR``, ``gt/lq``, ``GT/LQ``, ``target/input``) sub-folders it is read as pre-made pairs
    (:class:`restore_core.data.PairedFolderDataset`); otherwise its images are degraded the way the
    checkpoint's validation set (else training set) does, as whole images without augmentation.
    """
    spec = "embedded:test" if spec == "embedded" else spec
    folder = Path(spec).expanduser()
    if not spec.startswith("embedded:") and not folder.is_dir():
        raise FileNotFoundError(f"dataset {spec!r} is neither a folder nor 'embedded' / 'embedded:<split>'")
    base: Optional[DatasetOptions] = cfg.datasets.get("val") or cfg.datasets.get("test") or cfg.datasets.get("train")
    if base is None:
        raise ValueError("the checkpoint's config has no dataset section to take the degradation from")
    channels = base.params.get("channels")
    if not spec.startswith("embedded:"):
        for hq, lq in _PAIR_DIRS:
            if (folder / hq).is_dir() and (folder / lq).is_dir():
                return dataset_class("PairedFolderDataset")(folder / hq, folder / lq, scale=cfg.scale,
                                                            channels=channels)
    if base.type in ("PairedFolderDataset", "PairedImageDataset"):
        raise ValueError(f"{spec}: the checkpoint was validated on pre-made pairs; give a folder with hq/ and lq/ "
                         f"sub-folders")
    params = {k: v for k, v in base.params.items() if k not in ("patch_size", "augment", "repeat", "images")}
    params["images"] = spec if spec.startswith("embedded:") else str(folder.resolve())
    opts = DatasetOptions(type=base.type, params=params)
    return build_dataset_from_options(opts, cfg, "eval")
