"""Which official format a state dict fits (key names and shapes compared with every known layout), the strict
check :func:`~restore_core.models.official.from_official` makes, and the ``restore-core inspect`` report."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Tuple, Union

from torch import Tensor

from ..checkpoint_reader import StateDict, read_state_dict
from .official_formats import OfficialFormat, OfficialLayoutError, build_official_model, list_official_formats
from .official_layout import Layout, fusion_unused_layout, official_layout


@dataclass(frozen=True)
class LayoutMatch:
    """How well a checkpoint fits one official format: ``exact`` or the counts of fitting / missing / extra keys."""

    fmt: OfficialFormat
    exact: bool
    fitting: int       # keys present in both with equal shapes
    missing: int       # keys of the format absent from the checkpoint
    unexpected: int    # checkpoint keys the format does not have
    wrong_shape: int

    @property
    def score(self) -> float:
        total = self.fitting + self.missing + self.unexpected + self.wrong_shape
        return self.fitting / max(1, total)


def _compare(sd_layout: Layout, layout: Layout) -> Tuple[int, int, int, int]:
    fitting = sum(1 for k, s in sd_layout.items() if layout.get(k) == s)
    wrong = sum(1 for k, s in sd_layout.items() if k in layout and layout[k] != s)
    missing = sum(1 for k in layout if k not in sd_layout)
    unexpected = sum(1 for k in sd_layout if k not in layout)
    return fitting, missing, unexpected, wrong


def match_layout(state_dict: Mapping[str, Tensor]) -> List[LayoutMatch]:
    """Every known official format scored against ``state_dict`` (names + shapes), best first."""
    sd_layout = {k: tuple(v.shape) for k, v in state_dict.items()}
    out = []
    for fmt in list_official_formats():
        f, m, u, w = _compare(sd_layout, official_layout(fmt.arch, fmt.preset))
        out.append(LayoutMatch(fmt, m == u == w == 0, f, m, u, w))
    return sorted(out, key=lambda r: (not r.exact, -r.score))


def fits_instead(state_dict: Mapping[str, Tensor]) -> str:
    matches = match_layout(state_dict)
    exact = [m.fmt.name for m in matches if m.exact]
    if exact:
        return "it fits " + " / ".join(exact) + (" (identical layouts)" if len(exact) > 1 else "")
    best = matches[0] if matches else None
    if best is None or best.score < 0.5:
        return "it fits no known official preset"
    return (f"it fits no known official preset exactly; closest: {best.fmt.name} ({best.fitting} keys fit, "
            f"{best.missing} missing, {best.unexpected} unexpected, {best.wrong_shape} with other shapes)")


def check_layout(arch: str, preset: str, sd: StateDict, layout: Layout) -> None:
    problem = None
    for k, t in sd.items():
        if k not in layout:
            problem = f"unexpected key {k!r} (shape {tuple(t.shape)})"
            break
        if tuple(t.shape) != layout[k]:
            problem = f"key {k!r} has shape {tuple(t.shape)}, {arch}:{preset} expects {layout[k]}"
            break
    if problem is None:
        missing = [k for k in layout if k not in sd]
        if missing:
            problem = f"missing key {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    if problem is not None:
        raise OfficialLayoutError(f"checkpoint does not fit {arch}:{preset}: {problem}; {fits_instead(sd)}")


@dataclass(frozen=True)
class CheckpointReport:
    """What :func:`inspect_checkpoint` found: entry used, tensor / parameter counts and the fitting formats."""

    note: str
    n_tensors: int
    n_params: int
    matches: Tuple[LayoutMatch, ...]
    unused: Tuple[Tuple[str, int, int], ...] = ()   # (what, tensors, values) not loaded, for the first exact fit

    @property
    def exact(self) -> List[OfficialFormat]:
        return [m.fmt for m in self.matches if m.exact]

    def summary(self) -> str:
        lines = [f"entry used: {self.note}", f"tensors: {self.n_tensors}", f"parameters: {self.n_params:,}"]
        if self.exact and self.unused:
            kept = self.n_params - sum(n for _, _, n in self.unused)
            lines.append(f"  = {kept:,} loaded into {self.exact[0].name}"
                         + "".join(f" + {n:,} in {t} {what}" for what, t, n in self.unused))
            lines.append("  (the latter are not loaded: " + "; ".join(_UNUSED_WHY[w] for w, _, _ in self.unused) + ")")
        if self.exact:
            for fmt in self.exact:
                lines.append(f"fits: {fmt.name}  (official: {fmt.source}; pixel range [0, {fmt.pixel_range:g}])")
        else:
            best = self.matches[0] if self.matches else None
            lines.append("fits: no known official preset exactly")
            if best is not None:
                lines.append(f"closest: {best.fmt.name} ({best.fitting} keys fit, {best.missing} missing, "
                             f"{best.unexpected} unexpected, {best.wrong_shape} with other shapes)")
        return "\n".join(lines)


_UNUSED_WHY = {
    "frozen all-ones LDC base_mask tensors": "each base_mask is a frozen Parameter of ones that multiplies its LDC "
                                             "weight, checked to be all ones and dropped",
    "Differential_enhance.lastconv tensors": "the 1x1 lastconv of each DFFM's Differential_enhance is built and never "
                                             "called",
}


def _unused_breakdown(sd: Mapping[str, Tensor], fmt: OfficialFormat) -> Tuple[Tuple[str, int, int], ...]:
    """Official-only entries of ``sd`` our model does not hold (FusionMamba), grouped: (what, tensors, values)."""
    if fmt.arch != "fusion_mamba":
        return ()
    groups: Dict[str, List[int]] = {}
    for k in fusion_unused_layout(build_official_model(fmt.arch, fmt.preset, device="meta")):
        what = ("frozen all-ones LDC base_mask tensors" if k.endswith("base_mask")
                else "Differential_enhance.lastconv tensors")
        g = groups.setdefault(what, [0, 0])
        g[0] += 1
        g[1] += sd[k].numel()
    return tuple((w, t, n) for w, (t, n) in groups.items())


def inspect_checkpoint(checkpoint: Union[str, os.PathLike, Mapping[str, Any]]) -> CheckpointReport:
    """Name the architecture / preset(s) an official checkpoint fits (by key layout) and count its parameters.

    The parameter count is over all stored tensors (RNAN SR's 24 MeanShift values included).
    """
    sd, note = read_state_dict(checkpoint)
    matches = tuple(match_layout(sd))
    unused = _unused_breakdown(sd, matches[0].fmt) if matches and matches[0].exact else ()
    return CheckpointReport(note, len(sd), sum(t.numel() for t in sd.values()), matches, unused)
