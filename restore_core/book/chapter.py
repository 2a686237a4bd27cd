"""What every chapter does first: settle its profile, seed everything, and say what it runs with.

A chapter's papermill ``parameters`` cell sets ``profile = "quick"``; the environment variable
``BOOK_PROFILE`` overrides it (nbval takes no parameters, so CI forces the quick profile this way).
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np
import torch

from ..profiles import PROFILES
from ..provenance import device_name, git_commit
from .. import __version__



def resolve_profile(profile: str) -> str:
    """``BOOK_PROFILE`` if set, else ``profile``; raises on anything but a name of :data:`PROFILES`."""
    chosen = os.environ.get("BOOK_PROFILE", profile)
    if chosen not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {chosen!r}")
    return chosen


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class ChapterRun:
    """A chapter's run settings; ``elapsed()`` gives seconds since the chapter started."""

    name: str
    profile: str
    device: str
    seed: int
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def header(self) -> str:
        return (f"chapter {self.name} · profile {self.profile} · restore_core {__version__} "
                f"(commit {git_commit(short=True)}) · torch {torch.__version__} · device {device_name(self.device)}")

    def footer(self) -> str:
        return f"chapter {self.name} ran in {self.elapsed():.0f} s ({self.profile} profile)"

    def info(self) -> Dict[str, Any]:
        return {"chapter": self.name, "profile": self.profile, "device": device_name(self.device),
                "seed": self.seed}


def start_chapter(name: str, profile: str = "quick", device: Optional[str] = None, seed: int = 0,
                  threads: Optional[int] = None) -> ChapterRun:
    """Resolve the profile, seed Python/NumPy/torch, fix CPU threads, and return the run descriptor.

    Print ``run.header()`` in the chapter (it is volatile: tag that cell ``nbval-ignore-output``).
    """
    prof = resolve_profile(profile)
    dev = device or ("cuda" if (prof == "full" and torch.cuda.is_available()) else "cpu")
    seed_everything(seed)
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(dev == "cpu", warn_only=True)
    return ChapterRun(name=name, profile=prof, device=dev, seed=seed)
