"""Training checkpoints: written atomically, holding everything an exact resume needs.

A checkpoint is one ``torch.save`` dict: ``step``, ``model``, ``ema`` (or None), ``optimizer``, ``scheduler``,
``scaler`` (fp16 AMP), ``sampler`` (epoch and position in it), ``rng`` (Python, NumPy, torch CPU and every
CUDA device), ``config`` (the resolved config as plain data) and ``config_hash``. It is written to a temporary
file in the same folder and moved into place with ``os.replace``, so a crash never leaves a truncated file.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch

CKPT_PATTERN = re.compile(r"^step_(\d+)\.pt$")


def rng_state() -> Dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU + all CUDA devices) generators."""
    state: Dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Union[str, Path]) -> Path:
    """``torch.save`` to ``path`` via a temporary file and ``os.replace`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def list_checkpoints(folder: Union[str, Path]) -> List[Path]:
    """``step_*.pt`` files in ``folder``, oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: Union[str, Path]) -> Optional[Path]:
    ckpts = list_checkpoints(folder)
    return ckpts[-1] if ckpts else None


def prune_checkpoints(folder: Union[str, Path], keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (keep <= 0 keeps all)."""
    if keep <= 0:
        return
    for p in list_checkpoints(folder)[:-keep]:
        p.unlink(missing_ok=True)


def load_checkpoint(path: Union[str, Path], map_location: Any = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by the trainer (RNG states and optimizer state included)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path} is not a restore_core training checkpoint (no 'model' entry)")
    return state


def model_weights(state: Dict[str, Any], prefer_ema: bool = True) -> Dict[str, torch.Tensor]:
    """The weights to evaluate from a checkpoint: the EMA copy when present (and preferred), else the model's."""
    if prefer_ema and state.get("ema") is not None:
        return state["ema"]
    return state["model"]
