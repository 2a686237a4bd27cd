"""What a training task is: how a batch unpacks, how the model is called, which loss trains it and which images
a metric compares. The trainer and the evaluation ask a :class:`Task` and never branch on the task's name.

* :data:`RESTORATION` (BasicSR's ``SRModel`` / ``ImageRestorationModel`` ...): items ``{"lq", "hq"}`` (or
  BasicSR's ``"gt"``) or ``(lq, hq)`` pairs; ``model(lq)``; the configured pixel losses (``pixel_opt``,
  ``fft_opt``); metrics compare the restored image with the target.
* :data:`FUSION` (infrared-visible fusion): items ``{"ir", "vis"}`` (or ``{"a", "b"}``, a = infrared, as
  :class:`restore_core.data.SyntheticFusionDataset` yields them) or ``(ir, vis)`` pairs; ``model(ir, vis_y)``
  with ``vis_y`` the visible image's BT.601 luma; ``fusion_opt`` (FusionLoss); metrics get the fused image, the
  visible Y and the infrared image.

:func:`get_task` maps a config's ``model_type`` (BasicSR's names included) to its task.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Dict, Mapping, Optional, Tuple

from torch import Tensor, nn

from ..data.io import convert_channels
from ..inference import restore_batch
from .config_errors import ConfigError
from .losses import CombinedLoss, build_loss

if TYPE_CHECKING:
    from .config_schema import TrainOptions

LossAndParts = Tuple[Tensor, Dict[str, Tensor]]
MetricFn = Callable[..., float]


def restoration_pair(batch: Any) -> Tuple[Tensor, Tensor]:
    """(lq, target) from a batch: a dict with "lq" and "hq" (restore_core.data's key) or "gt" (BasicSR's), or
    an (lq, target) pair. Shapes (Bt, C, H, W)."""
    if isinstance(batch, Mapping):
        target = batch.get("hq", batch.get("gt"))
        if "lq" not in batch or target is None:
            raise ValueError(f"a restoration batch needs 'lq' and 'hq' (or 'gt') entries, got {sorted(batch)}")
        return batch["lq"], target
    if isinstance(batch, (list, tuple)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise ValueError(f"a restoration batch must be a dict with lq/hq or an (lq, hq) pair, got {type(batch)}")


# (infrared key, visible key): the training datasets' names, and restore_core.data's fusion pairs' "a"/"b"
FUSION_KEYS = (("ir", "vis"), ("a", "b"))


def fusion_pair(batch: Any) -> Tuple[Tensor, Tensor]:
    """(ir, vis) from a batch: a dict with "ir"/"vis" or "a"/"b" (a = infrared, as
    :class:`restore_core.data.SyntheticFusionDataset`), or an (ir, vis) pair.
    ir: (Bt, 1, H, W); vis: (Bt, 1 or 3, H, W)."""
    if isinstance(batch, Mapping):
        for k_ir, k_vis in FUSION_KEYS:
            if k_ir in batch and k_vis in batch:
                return batch[k_ir], batch[k_vis]
        raise ValueError(f"a fusion batch needs 'ir' and 'vis' (or 'a' and 'b') entries, got {sorted(batch)}")
    if isinstance(batch, (list, tuple)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise ValueError(f"a fusion batch must be a dict with ir/vis or an (ir, vis) pair, got {type(batch)}")


def luma(x: Tensor) -> Tensor:
    """Full-range BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of (Bt, 3, H, W) -> (Bt, 1, H, W); one channel
    passes through. The fusion papers (SeAFusion's ``RGB2YCrCb``, which FusionMamba uses) fuse this Y; it is
    :func:`restore_core.data.io.convert_channels`'s gray conversion."""
    return convert_channels(x, 1)


class Task:
    """One kind of training: batch unpacking, the model call, the loss and what the metrics compare."""

    name = ""

    def unpack(self, batch: Any) -> Tuple[Tensor, Tensor]:
        """The two images of a batch (or of one dataset item): (input, target) or (ir, vis)."""
        raise NotImplementedError

    def check_losses(self, train: "TrainOptions") -> None:
        """Raise :class:`ConfigError` when ``train`` lacks the loss this task trains with."""
        raise NotImplementedError

    def build_loss(self, train: "TrainOptions") -> nn.Module:
        """The loss module :meth:`training_loss` is given."""
        raise NotImplementedError

    def training_loss(self, model: nn.Module, loss: nn.Module, batch: Any,
                      autocast: Callable[[], ContextManager[Any]] = contextlib.nullcontext) -> LossAndParts:
        """(loss, {part: value}) of ``model`` on a batch already on the model's device; the forward pass runs
        under ``autocast()``, the loss in fp32."""
        raise NotImplementedError

    def score(self, model: nn.Module, item: Any, metrics: Mapping[str, MetricFn], **restore_options: Any
              ) -> Dict[str, float]:
        """``{metric name: value}`` of ``model`` on one dataset item (tensors (C, H, W) in [0, 1]), run on the
        model's device ``restore_options["device"]``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __eq__(self, other: object) -> bool:
        """Equal to the same task, and to its name (``cfg.task == "fusion"``, as when the task was a string)."""
        if isinstance(other, str):
            return other == self.name
        return isinstance(other, Task) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class RestorationTask(Task):
    """``model(lq) -> restored``; pixel losses against the target; full-reference metrics (restored, target)."""

    name = "restoration"

    def unpack(self, batch: Any) -> Tuple[Tensor, Tensor]:
        return restoration_pair(batch)

    def check_losses(self, train: "TrainOptions") -> None:
        if train.pixel_opt is None and train.fft_opt is None:
            raise ConfigError("train.pixel_opt: a restoration model needs a pixel loss (e.g. {type: L1Loss})")

    def build_loss(self, train: "TrainOptions") -> nn.Module:
        parts = {}
        if train.pixel_opt is not None:
            parts["pixel"] = build_loss(train.pixel_opt, where="train.pixel_opt")
        if train.fft_opt is not None:
            parts["fft"] = build_loss(train.fft_opt, where="train.fft_opt")
        return CombinedLoss(parts)

    def training_loss(self, model: nn.Module, loss: nn.Module, batch: Any,
                      autocast: Callable[[], ContextManager[Any]] = contextlib.nullcontext) -> LossAndParts:
        lq, gt = self.unpack(batch)
        with autocast():
            out = model(lq)
        return loss(out.float(), gt.float())

    def score(self, model: nn.Module, item: Any, metrics: Mapping[str, MetricFn], *, device: Any,
              scale: int = 1, tile: Optional[int] = None, tile_overlap: int = 32, self_ensemble: bool = False
              ) -> Dict[str, float]:
        lq, target = (x.unsqueeze(0).to(device) for x in self.unpack(item))
        pred = restore_batch(model, lq, scale=scale, tile=tile, tile_overlap=tile_overlap,
                             self_ensemble=self_ensemble).float().clamp(0, 1)
        return {name: fn(pred, target.float()) for name, fn in metrics.items()}


class FusionTask(Task):
    """``model(ir, vis_y) -> fused``; FusionLoss(fused, vis_y, ir); metrics get (fused, vis_y, ir)."""

    name = "fusion"

    def unpack(self, batch: Any) -> Tuple[Tensor, Tensor]:
        return fusion_pair(batch)

    def check_losses(self, train: "TrainOptions") -> None:
        if train.fusion_opt is None:
            raise ConfigError("train.fusion_opt: a fusion model needs {type: FusionLoss}")

    def build_loss(self, train: "TrainOptions") -> nn.Module:
        return build_loss(train.fusion_opt or {}, where="train.fusion_opt")

    def training_loss(self, model: nn.Module, loss: nn.Module, batch: Any,
                      autocast: Callable[[], ContextManager[Any]] = contextlib.nullcontext) -> LossAndParts:
        ir, vis = self.unpack(batch)
        vis_y = luma(vis)
        with autocast():
            fused = model(ir, vis_y)  # the fusion models' signature: model(ir, vis_y)
        return loss(fused.float(), vis_y.float(), ir.float()), {}

    def score(self, model: nn.Module, item: Any, metrics: Mapping[str, MetricFn], *, device: Any,
              **_restore_options: Any) -> Dict[str, float]:
        """Tiling and the self-ensemble do not apply: the fusion models see whole image pairs."""
        ir, vis = (x.unsqueeze(0).to(device) for x in self.unpack(item))
        ir, vis_y = ir.float(), luma(vis.float())
        fused = model(ir, vis_y).float().clamp(0, 1)
        return {name: fn(fused, vis_y, ir) for name, fn in metrics.items()}


RESTORATION = RestorationTask()
FUSION = FusionTask()
TASKS: Dict[str, Task] = {t.name: t for t in (RESTORATION, FUSION)}

# BasicSR model_type names -> our task
MODEL_TYPES: Dict[str, Task] = {
    "restoration": RESTORATION, "SRModel": RESTORATION, "MambaIRModel": RESTORATION,
    "ImageRestorationModel": RESTORATION, "ImageCleanModel": RESTORATION,
    "fusion": FUSION, "FusionModel": FUSION,
}


def get_task(task: Any) -> Task:
    """A :class:`Task` from itself, its name or a BasicSR ``model_type``; ValueError names the known ones."""
    if isinstance(task, Task):
        return task
    found = MODEL_TYPES.get(task)
    if found is None:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(sorted(MODEL_TYPES))}")
    return found
