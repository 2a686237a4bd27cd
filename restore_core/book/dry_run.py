"""A dry run of the full profile on CPU: the full code path against stand-in data, in a few steps.

:func:`dry_run_environment` writes stand-in dataset folders laid out as the real ones
(:mod:`restore_core.data.fake_tree`) under ``<root>/data`` and returns the environment that makes every
:func:`restore_core.train.load_config` of that process (and of the chapters' kernels, which inherit it) read
them and train briefly: ``RESTORE_CORE_DATA_ROOT``, ``RESTORE_CORE_CONFIG_OVERRIDES`` (:data:`DRY_RUN_OVERRIDES`:
2 steps, batch 1, HR patch 64, one validation image) and ``RESTORE_CORE_DRY_RUN=1``. The models stay the paper
presets at full size; only data and schedule shrink. :func:`mark_dry_run` stamps the result files written
under a folder with ``"dry_run": true`` so that no dry-run number can pass for a result.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List

from ..data.fake_tree import write_fake_datasets
from ..envutil import patched_environ
from ..fsutil import atomic_write_json
from ..train.config import OVERRIDES_ENV

DRY_RUN_ENV = "RESTORE_CORE_DRY_RUN"
DRY_RUN_OVERRIDES = (
    "train.total_iter=2", "val.val_freq=2", "val.max_images=1",
    "datasets.train.patch_size=64", "datasets.train.batch_size_per_gpu=1", "datasets.train.num_worker_per_gpu=0",
    "datasets.train.dataset_enlarge_ratio=1",
    "logger.print_freq=1", "logger.save_checkpoint_freq=2", "logger.use_tb_logger=false",
)


def is_dry_run() -> bool:
    """This process runs under :func:`dry_run_environment`'s settings."""
    return os.environ.get(DRY_RUN_ENV) == "1"


def dry_run_environment(root, n_images: int = 3, size: int = 96) -> Dict[str, str]:
    """Write the stand-in datasets under ``<root>/data``; return the environment variables of a dry run."""
    data = Path(root) / "data"
    write_fake_datasets(data, n_images=n_images, size=size)
    return {"RESTORE_CORE_DATA_ROOT": str(data.resolve()), OVERRIDES_ENV: "\n".join(DRY_RUN_OVERRIDES),
            DRY_RUN_ENV: "1"}


@contextmanager
def dry_run(root, **kwargs) -> Iterator[Dict[str, str]]:
    """Set :func:`dry_run_environment`'s variables for the duration of the block (restored afterwards)."""
    with patched_environ(dry_run_environment(root, **kwargs)) as env:
        yield env


def mark_dry_run(results_dir) -> List[Path]:
    """Add ``"dry_run": true`` to every JSON object file under ``results_dir``; returns the files marked."""
    marked = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and doc.get("dry_run") is not True:
            doc["dry_run"] = True
            atomic_write_json(path, doc)
            marked.append(path)
    return marked
