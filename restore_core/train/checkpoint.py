"""Training checkpoints: written atomically, holding everything an exact resume needs, readable without trust.

A checkpoint is one ``torch.save`` dict of plain data only (tensors, numbers, strings, lists, dicts), so it is read
back with ``torch.load(..., weights_only=True)`` (:func:`restore_core.safe_load.load_untrusted`) and no file can
run code: ``format`` (:data:`FORMAT`), ``step``, ``model``, ``ema`` (or None), ``optimizer``, ``scheduler``,
``scaler`` (fp16 AMP), ``sampler`` (epoch and position in it), ``rng`` / ``rng_per_rank`` (Python's, NumPy's and
torch's generator states, encoded as tensors and numbers by :func:`rng_state`), ``history``, ``val_history``,
``config`` (the resolved config as YAML text) and ``config_hash``. :func:`load_checkpoint`
(:func:`restore_core.checkpoint_reader.read_training_checkpoint`, the one reader) returns the config parsed back
into a dict. It is written to a temporary file in the same folder and moved into place with
``os.replace``, so a crash never leaves a truncated file.

Checkpoints of the earlier format (no ``format`` entry; NumPy RNG state pickled as NumPy objects) are refused with
a message naming ``restore-core convert``; :func:`convert_legacy_checkpoint` rewrites one in this format.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
import yaml

from ..checkpoint_reader import FORMAT
from ..checkpoint_reader import read_training_checkpoint as load_checkpoint  # noqa: F401 -- this module's API
from ..checkpoint_reader import training_weights as model_weights  # noqa: F401 -- this module's API
from ..safe_load import load_legacy

CKPT_PATTERN = re.compile(r"^step_(\d+)\.pt$")


def rng_state() -> Dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU + all CUDA devices) generators, as tensors and numbers.

    ``python``: ``{"version", "state" (int64 tensor of 625 words), "gauss_next"}``; ``numpy``: ``{"name", "keys"
    (int64 tensor of 624 words), "pos", "has_gauss", "cached_gaussian"}``; ``torch`` / ``cuda``: uint8 tensors.
    """
    version, words, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(words, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore the generators from :func:`rng_state`'s encoding."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(w) for w in py["state"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _encode_legacy_rng(state: Dict[str, Any]) -> Dict[str, Any]:
    """An RNG entry of the earlier format (Python tuple, NumPy tuple with an array) in :func:`rng_state`'s form."""
    version, words, gauss_next = state["python"]
    name, keys, pos, has_gauss, cached = state["numpy"]
    out = {"python": {"version": int(version), "state": torch.tensor(list(words), dtype=torch.int64),
                      "gauss_next": gauss_next},
           "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                     "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
           "torch": state["torch"]}
    if "cuda" in state:
        out["cuda"] = state["cuda"]
    return out


def config_to_text(config: Dict[str, Any]) -> str:
    """The resolved config as YAML text (how checkpoints store it)."""
    return yaml.safe_dump(config, sort_keys=False)


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


def convert_legacy_checkpoint(src: Union[str, Path], dst: Union[str, Path]) -> Path:
    """Rewrite a checkpoint of the earlier format (pickled NumPy RNG states) in :data:`FORMAT`, atomically.

    The source is read with ``weights_only=True`` and only the NumPy array globals such files contain allowed
    (:func:`restore_core.safe_load.load_legacy`): a file asking for anything else is refused, never run.
    Returns ``dst``. Model, optimizer and all other entries are kept bit for bit.
    """
    state = load_legacy(src)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{src} is not a restore_core training checkpoint (no 'model' entry)")
    if state.get("format") == FORMAT:
        raise ValueError(f"{src} is already in the current format ({FORMAT}); nothing to convert")
    out = dict(state)
    if isinstance(out.get("config"), dict):
        out["config"] = config_to_text(out["config"])
    for key in ("rng",):
        if isinstance(out.get(key), dict) and isinstance(out[key].get("python"), tuple):
            out[key] = _encode_legacy_rng(out[key])
    if isinstance(out.get("rng_per_rank"), list):
        out["rng_per_rank"] = [_encode_legacy_rng(r) if isinstance(r.get("python"), tuple) else r
                               for r in out["rng_per_rank"]]
    out["format"] = FORMAT
    return atomic_torch_save(out, dst)
