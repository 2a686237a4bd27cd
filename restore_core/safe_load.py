"""Reading ``.pt`` / ``.pth`` files that a user hands us, without ever running code from them.

A PyTorch file is a pickle: a malicious one can import and call any Python function while it is read
(``__reduce__`` returning ``os.system``, ``builtins.exec``, ...). Every file in restore_core is therefore read by
:func:`load_untrusted`, i.e. ``torch.load(..., weights_only=True)``: only tensors, numbers, strings, lists, tuples
and dicts come back, and a file that asks for anything else is refused with :class:`UnsafeFileError`, whose one-line
message names what the file asked to import.

Checkpoints written by restore_core before the safe format (``format`` entry absent) pickled their RNG states as
NumPy arrays. :func:`load_legacy` reads those with exactly the NumPy globals such a file contains allowed (still
``weights_only=True``: nothing else can be imported, nothing can run), for ``restore-core convert``.
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, List, Sequence, Union

import numpy as np
import torch

__all__ = ["UnsafeFileError", "load_untrusted", "load_legacy", "unsafe_globals", "LEGACY_GLOBALS"]

PathLike = Union[str, os.PathLike]

# What restore_core's pre-safe checkpoints (RNG states from numpy.random.get_state()) need besides tensors.
LEGACY_GLOBAL_NAMES = ("numpy.dtype", "numpy.ndarray", "numpy._core.multiarray._reconstruct",
                       "numpy.core.multiarray._reconstruct", "numpy.dtypes.UInt32DType")


def _legacy_globals() -> List[Any]:
    found = [np.dtype, np.ndarray, np.dtypes.UInt32DType]
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            found.append(__import__(mod, fromlist=["_reconstruct"])._reconstruct)
        except (ImportError, AttributeError):
            pass
    return found


LEGACY_GLOBALS = _legacy_globals()


class UnsafeFileError(ValueError):
    """A file was refused because reading it would import (and could call) Python objects beyond plain data."""


def unsafe_globals(path: PathLike) -> List[str]:
    """The importable names a torch zip file's pickle asks for beyond what ``weights_only`` allows ([] if none,
    or when the file is not a torch zip file)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip archive, no data.pkl, ...
        return []


def _unpickler_reason(exc: BaseException) -> str:
    """The reason torch's weights-only unpickler gives (the line after "WeightsUnpickler error:"), or ""."""
    text = str(exc)
    if "WeightsUnpickler error:" not in text:
        return ""
    rest = [line.strip() for line in text.split("WeightsUnpickler error:", 1)[1].splitlines() if line.strip()]
    return rest[0] if rest else ""


def _is_pickle(path: Path) -> bool:
    """A torch zip archive, or a raw pickle (protocol 2+ starts with the PROTO opcode 0x80)."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as fh:
        return fh.read(1) == b"\x80"


def _refusal(exc: pickle.UnpicklingError, path: Path, what: str) -> ValueError:
    """The error to raise for a failed weights-only load: :class:`UnsafeFileError` when the file is a pickle
    asking for more than plain data, ValueError when it is no pickle at all (an image, text)."""
    # torch reports a refused global (or pickle opcode) as "Weights only load failed ... WeightsUnpickler
    # error: <reason>"
    reason = _unpickler_reason(exc)
    names = unsafe_globals(path) or re.findall(r"GLOBAL ([\w.]+)", reason)
    if names or _is_pickle(path):
        return UnsafeFileError(_describe_refusal(path, names, what))
    return ValueError(f"{path} is not a readable PyTorch {what}: {reason or _first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _describe_refusal(path: Path, names: Sequence[str], what: str) -> str:
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    if names and all(n in LEGACY_GLOBAL_NAMES or n.startswith("numpy.dtypes.") for n in names):
        return (f"{path} was not loaded: it is a {what} in restore_core's old format, whose RNG states are pickled "
                f"NumPy objects ({shown}); convert it once with `restore-core convert {path}` (reads NumPy arrays "
                f"only, never runs code) and use the converted file")
    asked = f"it asks to import {shown} while unpickling" if names else "it holds pickled Python objects"
    return (f"{path} was not loaded: {asked}, which could run code; restore_core reads only tensors, numbers, "
            f"strings, lists and dicts from a {what}")


def load_untrusted(path: PathLike, what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors.

    Raises FileNotFoundError (no such file), :class:`UnsafeFileError` (the pickle asks for other globals: a
    malicious file, or a file from another library that pickled Python objects) or ValueError (not a readable
    PyTorch file: truncated, an image, text ...). ``what`` names the file's role in the messages.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if not _is_pickle(path):
        raise ValueError(f"{path} is not a readable PyTorch {what}: neither a torch zip archive nor a pickle")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(exc, path, what) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, AttributeError, TypeError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable PyTorch {what}: {_first_line(exc)}") from None


def load_legacy(path: PathLike, map_location: Any = "cpu") -> Any:
    """Read a pre-safe restore_core checkpoint: ``weights_only=True`` with only :data:`LEGACY_GLOBALS` allowed.

    Anything else the file asks for is refused exactly as by :func:`load_untrusted`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    names = unsafe_globals(path)
    extra = [n for n in names if not (n in LEGACY_GLOBAL_NAMES or n.startswith("numpy.dtypes."))]
    if extra:
        raise UnsafeFileError(_describe_refusal(path, extra, "checkpoint") +
                              "; it is not an old restore_core checkpoint and is not converted")
    allowed = list(LEGACY_GLOBALS)
    for n in names:  # numpy.dtypes.<X>DType classes, as pickled for the arrays' dtypes
        if n.startswith("numpy.dtypes."):
            cls = getattr(np.dtypes, n.rsplit(".", 1)[1], None)
            if isinstance(cls, type):
                allowed.append(cls)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(exc, path, "checkpoint") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, AttributeError, TypeError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint: {_first_line(exc)}") from None
