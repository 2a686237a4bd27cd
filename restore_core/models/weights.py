"""Loading a state dict into a model with an error a person can read.

``nn.Module.load_state_dict(strict=True)`` lists every missing and unexpected key: for a checkpoint of another
preset that is thousands of names in one line. :func:`load_weights` raises :class:`WeightsMismatchError` with
counts and a few examples of each kind of mismatch (missing keys, unexpected keys, shape differences) instead,
and says where the weights came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Mapping, Tuple

import torch
from torch import nn

__all__ = ["WeightsMismatch", "WeightsMismatchError", "compare_state_dict", "load_weights"]

EXAMPLES = 3  # names shown per kind of mismatch


class WeightsMismatchError(ValueError):
    """The weights do not fit the model; the message summarises how."""


@dataclass
class WeightsMismatch:
    """How a state dict differs from a model's: key names, and (key, checkpoint shape, model shape)."""

    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shapes: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)

    def summary(self) -> str:
        """One line: counts and the first few names of each kind, e.g. ``120 missing keys (a, b, c, ...)``."""
        def names(keys: List[str]) -> str:
            more = ", ..." if len(keys) > EXAMPLES else ""
            return ", ".join(keys[:EXAMPLES]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key{'s' * (len(self.missing) > 1)} ({names(self.missing)})")
        if self.unexpected:
            n = len(self.unexpected)
            parts.append(f"{n} unexpected key{'s' * (n > 1)} ({names(self.unexpected)})")
        if self.shapes:
            shown = "; ".join(f"{k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.shapes[:EXAMPLES])
            more = "; ..." if len(self.shapes) > EXAMPLES else ""
            parts.append(f"{len(self.shapes)} shape mismatch{'es' * (len(self.shapes) > 1)} ({shown}{more})")
        return ", ".join(parts) if parts else "no mismatch"


def compare_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> WeightsMismatch:
    """What :meth:`nn.Module.load_state_dict` (strict) would object to, in the model's key order."""
    ours = model.state_dict()
    m = WeightsMismatch()
    m.missing = [k for k in ours if k not in state]
    m.unexpected = [k for k in state if k not in ours]
    for k, v in ours.items():
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape):
            m.shapes.append((k, tuple(state[k].shape), tuple(v.shape)))
    return m


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "the weights",
                 target: str = "the model", hint: str = "") -> nn.Module:
    """Load ``state`` into ``model`` strictly; on a mismatch raise :class:`WeightsMismatchError`.

    The message reads ``"{source} does not fit {target}: <summary>. {hint}"``. Returns ``model``.
    """
    mismatch = compare_state_dict(model, state)
    if mismatch:
        message = f"{source} does not fit {target}: {mismatch.summary()}."
        raise WeightsMismatchError(f"{message} {hint}" if hint else message)
    model.load_state_dict(state, strict=True)
    return model
