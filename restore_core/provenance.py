"""Provenance of a run: library version, git commit, device, torch version, date.

Every results JSON and every book chapter records this, so a number can always be traced to the code,
machine and settings that produced it.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict

import torch

from . import __version__

_REPO = Path(__file__).resolve().parent.parent


def git_commit(short: bool = False) -> str:
    """The repository's HEAD commit ("+dirty" when the tree has uncommitted changes), or "unknown"."""
    try:
        args = ["git", "-C", str(_REPO), "rev-parse", "--short" if short else "--verify", "HEAD"]
        sha = subprocess.run(args, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: Any = None) -> str:
    """A human-readable name of the device a run used ("cpu (N threads, <processor>)" or the GPU name)."""
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    proc = platform.processor() or platform.machine()
    return f"cpu ({torch.get_num_threads()} threads, {proc})"


def provenance(device: Any = None, **extra: Any) -> Dict[str, Any]:
    """A dict describing where and with what a result was produced; ``extra`` keys are merged in."""
    info: Dict[str, Any] = {
        "restore_core": __version__,
        "commit": git_commit(),
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node() if os.environ.get("RESTORE_CORE_RECORD_HOST") else None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    info.update(extra)
    return {k: v for k, v in info.items() if v is not None}
