"""The book's and the configs' three profiles, defined once.

* ``quick``: a CPU smoke run of minutes (tiny models, tens of steps, embedded data); it checks that everything
  runs and makes no claim about any paper (no calls).
* ``cpu``: a CPU study whose models learn: the papers' architectures sized for two CPU cores (width, depth, patch,
  schedule and steps chosen for the budget), several paired seeds, trivial baselines beside every number, and
  calls only where a 95% interval excludes zero.
* ``full``: the papers' scale (presets, datasets, schedules) on GPUs.
"""
from __future__ import annotations

PROFILES = ("quick", "cpu", "full")
DEFAULT_PROFILE = "quick"
# profiles whose numbers may be compared with a paper's (the quick profile is a smoke run)
CALL_PROFILES = ("cpu", "full")

DESCRIPTIONS = {
    "quick": "CPU smoke run (tiny models, tens of steps): checks that everything runs; no calls",
    "cpu": "CPU study: the papers' architectures sized for 2 cores, trained until they beat the trivial "
           "baselines, >= 3 paired seeds, calls with 95% intervals",
    "full": "the papers' scale on GPUs",
}


def check_profile(profile: str) -> str:
    """``profile`` if it is one of :data:`PROFILES`, else ValueError naming them."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return profile
