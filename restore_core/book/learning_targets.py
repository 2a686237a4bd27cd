"""What "the model has learned its task" means, per task: the margin the reference variant of an ablation must
keep over the task's trivial baselines before its differences between variants are worth a call.

A difference between two variants of a model that does no better than bicubic interpolation (or than the noisy
input, or the blurred input, or averaging the two sources) says nothing about the paper's claim: both variants
are still at the trivial solution. The targets below are the study profile's bar (issue #16):

================  ===============================  ==================================================
task              baselines the model must beat    by how much
================  ===============================  ==================================================
super-resolution  ``bicubic``                      +0.5 dB on the table's first metric (PSNR-Y)
denoising         ``noisy_input``, ``gaussian_…``  +1.0 dB over the better of the two
deblurring        ``blurred_input``                +1.0 dB (``wiener`` is shown, but not a gate)
fusion            ``mean``                         above it on at least 3 of the 6 metrics (``max`` shown)
================  ===============================  ==================================================

The task is recognised from the baselines an ablation stored (:data:`LEARNING_TARGETS` lists them); results with
other baselines fall back to "beat every stored baseline on the first metric (on half the metrics for many-metric
tables)".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple


@dataclass(frozen=True)
class LearningTarget:
    """The reference must beat each of ``gate`` by ``margin`` on the first metric, or, for many-metric tables
    (``min_metrics`` > 1), be above every one of ``gate`` on at least ``min_metrics`` metrics."""

    task: str
    gate: Tuple[str, ...]
    margin: float = 0.0
    min_metrics: int = 1

    def describe(self) -> str:
        """One line for tables and notes, e.g. ``"+1.0 dB over the better of noisy_input, gaussian_filter"``."""
        if self.min_metrics > 1:
            return f"above {' and '.join(self.gate)} on >= {self.min_metrics} metrics"
        who = self.gate[0] if len(self.gate) == 1 else "the better of " + ", ".join(self.gate)
        return f"{self.margin:+.1f} dB over {who}"

    def met(self, ours: Mapping[str, float], baselines: Mapping[str, Mapping[str, Any]]) -> bool:
        """``ours``: the reference's value per metric, in table order (higher is better for every metric)."""
        metrics = list(ours)
        if self.min_metrics > 1:
            wins = sum(all(ours[m] > float(baselines[b][m]) for b in self.gate if _number(baselines[b].get(m)))
                       for m in metrics)
            return wins >= self.min_metrics
        first = metrics[0]
        best = max(float(baselines[b][first]) for b in self.gate)
        return ours[first] - best >= self.margin - 1e-9   # decimal margins (32.16 - 31.66) round below


LEARNING_TARGETS: Tuple[LearningTarget, ...] = (
    LearningTarget("super-resolution", ("bicubic",), margin=0.5),
    LearningTarget("denoising", ("noisy_input", "gaussian_filter"), margin=1.0),
    LearningTarget("deblurring", ("blurred_input",), margin=1.0),
    LearningTarget("fusion", ("mean",), min_metrics=3),
)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float))


def learning_target(baselines: Optional[Mapping[str, Any]]) -> Optional[LearningTarget]:
    """The target whose gate baselines are all among ``baselines`` (None when none matches)."""
    if not baselines:
        return None
    for target in LEARNING_TARGETS:
        if all(name in baselines for name in target.gate):
            return target
    return None


def target_met(ours: Mapping[str, float], baselines: Optional[Mapping[str, Mapping[str, Any]]]) -> Optional[bool]:
    """Whether the reference (``ours``: metric -> value, table order) has learned its task; None without baselines.

    Without a known task the fallback is: beat every stored baseline on the first metric, or, with more than two
    metrics, on at least half of them.
    """
    if not baselines or not ours:
        return None
    target = learning_target(baselines)
    if target is not None:
        return target.met(ours, baselines)
    metrics = list(ours)

    def wins(metric: str) -> bool:
        return all(ours[metric] > float(v[metric]) for v in baselines.values() if _number(v.get(metric)))

    if len(metrics) > 2:
        return 2 * sum(wins(m) for m in metrics) >= len(metrics)
    return wins(metrics[0])


def target_text(baselines: Optional[Mapping[str, Any]]) -> str:
    """The bar in words (``"beat every baseline"`` when the task is not recognised)."""
    target = learning_target(baselines)
    return target.describe() if target is not None else "beat every baseline"


__all__: Tuple[str, ...] = ("LearningTarget", "LEARNING_TARGETS", "learning_target", "target_met", "target_text")
