"""The one reader of checkpoint and weights files: restore, eval, resume, pretrained weights, official weights and
``inspect`` all read through it, and it reads through :func:`restore_core.safe_load.load_untrusted`
(``torch.load(..., weights_only=True)``: no file can run code).

Two things come out of a file:

* :func:`read_training_checkpoint`: a checkpoint our trainer wrote (format :data:`FORMAT`: ``model``, ``ema``,
  optimizer, RNG states, ``config`` as YAML text, ...), with the config parsed back into a dict.
* :func:`read_state_dict`: the flat ``{name: tensor}`` weights of any file or loaded object, unwrapped from the
  first entry of :data:`WEIGHT_ENTRIES` it holds (our checkpoints' ``ema`` / ``model``, BasicSR's
  ``params_ema`` / ``params``, a ``state_dict``; the EMA copies first unless ``prefer_ema=False``) or taken as
  is (RNAN's raw state dicts), ``module.`` prefixes (DataParallel) stripped; with a note saying which entry
  was used.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import yaml
from torch import Tensor

from .safe_load import load_untrusted

FORMAT = "restore_core.checkpoint/2"
# where the weights sit in a file, in order of preference: ours (trainer checkpoints), BasicSR's, generic
WEIGHT_ENTRIES = ("ema", "model", "params_ema", "params", "state_dict")
EMA_ENTRIES = ("ema", "params_ema")

StateDict = Dict[str, Tensor]
Source = Union[str, os.PathLike, Mapping[str, Any]]


def read_training_checkpoint(path: Union[str, os.PathLike], map_location: Any = "cpu") -> Dict[str, Any]:
    """A checkpoint written by the trainer (``weights_only``: plain data only; ``config`` returned as a dict).

    A file that asks to import anything beyond tensors and plain data raises
    :class:`restore_core.safe_load.UnsafeFileError` (one line; for the earlier restore_core format it names
    ``restore-core convert``); a file that is not a checkpoint raises ValueError.
    """
    state = load_untrusted(path, what="checkpoint", map_location=map_location)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path} is not a restore_core training checkpoint (no 'model' entry)")
    if state.get("format") != FORMAT:
        raise ValueError(f"{path} is a restore_core checkpoint of an earlier format ({state.get('format')!r}, "
                         f"expected {FORMAT!r}); convert it with `restore-core convert {path}`")
    if isinstance(state.get("config"), str):
        state["config"] = yaml.safe_load(state["config"])
    return state


def _entry_order(param_key: Optional[str], prefer_ema: bool) -> Tuple[str, ...]:
    if param_key:
        return (param_key,)
    return WEIGHT_ENTRIES if prefer_ema else tuple(k for k in WEIGHT_ENTRIES if k not in EMA_ENTRIES)


def read_state_dict(source: Source, *, param_key: Optional[str] = None, prefer_ema: bool = True,
                    what: str = "checkpoint") -> Tuple[StateDict, str]:
    """``({name: tensor}, note)`` from a file path or an already loaded object.

    param_key: take exactly this entry (KeyError naming the file's entries when it is absent); otherwise the
    first of :data:`WEIGHT_ENTRIES` the object holds as a mapping (``ema`` / ``params_ema`` skipped with
    ``prefer_ema=False``), else the object itself. ``note`` says which: ``"'params_ema' entry (preferred over
    'params')"``, ``"raw state dict"``. ValueError when the result is not a non-empty mapping of tensors;
    ``what`` names the file's role in the messages.
    """
    if isinstance(source, (str, os.PathLike)):
        obj = load_untrusted(Path(source), what=what)
        where = str(source)
    else:
        obj, where = source, "state dict"
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    note = "raw state dict"
    entries = _entry_order(param_key, prefer_ema)
    for entry in entries:
        if isinstance(obj.get(entry), Mapping):
            others = [k for k in entries if k != entry and isinstance(obj.get(k), Mapping)]
            note = f"'{entry}' entry" + (f" (preferred over {', '.join(repr(o) for o in others)})" if others else "")
            obj = obj[entry]
            break
    else:
        if param_key:
            raise KeyError(f"{param_key!r} not in {where} (entries: {sorted(map(str, obj))})")
    sd: StateDict = {}
    for k, v in obj.items():
        if not isinstance(v, Tensor):
            raise ValueError(f"{where}: entry {k!r} is a {type(v).__name__}, not a tensor: not a state dict")
        sd[k[len("module."):] if k.startswith("module.") else k] = v
    if not sd:
        raise ValueError(f"{where}: the state dict is empty")
    return sd, note


def training_weights(state: Mapping[str, Any], prefer_ema: bool = True) -> StateDict:
    """The weights to evaluate from a :func:`read_training_checkpoint` state: the EMA copy when present (and
    preferred), else the model's."""
    if prefer_ema and state.get("ema") is not None:
        return state["ema"]
    return state["model"]
