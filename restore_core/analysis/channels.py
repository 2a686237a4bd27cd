"""Channel redundancy of SS2D outputs: per-channel activation, effective rank, share of inactive channels.

Guo et al., "MambaIR: A Simple Baseline for Image Restoration with State-Space Model", arXiv:2402.15648, Fig. 3b:
the channel activation of the SS2D output with and without channel attention. The authors read the SS2D output
(after ``out_proj``, before the residual and the CAB); the reduction and the image set behind the figure are not
published. Our assumption: ReLU, then the global average over positions, per image and channel
(:func:`channel_activations`), then the mean over images.

Effective rank (Roy & Vetterli, "The effective rank: a measure of effective dimensionality", EUSIPCO 2007):
``exp(H(p))`` with ``p`` the singular values of the (images x channels) activation matrix divided by their sum and
``H`` the Shannon entropy in nats. Applied to the uncentred (images x channels) matrix it counts directions
including the mean activation; applied to a *centred* channel covariance (:func:`ss2d_channel_statistics`, the
C x C covariance of one image's channels over its positions) it counts the independent channel directions within
an image, which is what "redundant channels" means in MambaIR's text. Explained in the book chapter "Channel
redundancy" (book/08_channel_redundancy.ipynb).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import torch
from torch import Tensor, nn

from ..layers.channel_attention import CAB, ChannelAttention
from ..ssm.ss2d import SS2D

__all__ = ["ss2d_modules", "channel_activations", "ss2d_channel_activations", "ss2d_channel_statistics",
           "effective_rank", "inactive_share", "sorted_mean_activation", "remove_channel_attention"]


def ss2d_modules(model: nn.Module) -> Dict[str, SS2D]:
    """Every SS2D of ``model`` by qualified name, in registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SS2D)}


@contextmanager
def _capture(module: nn.Module, store: List[Tensor]) -> Iterator[None]:
    handle = module.register_forward_hook(lambda mod, inp, out: store.append(out.detach()))
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def channel_activations(model: nn.Module, images: Tensor, module: Optional[nn.Module] = None,
                        batch_size: int = 4) -> Tensor:
    """ReLU + global average pool of one SS2D's output, per image and channel.

    model: called as ``model(x)`` (eval mode is the caller's choice).
    images: (Bt, C_in, H, W) inputs.
    module: the SS2D to read (its forward output, i.e. after ``out_proj`` and its dropout, channels-last
        (Bt, H, W, C)); default the last SS2D of ``model``.
    Returns (Bt, C) float64 on the CPU.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (Bt, C, H, W), got shape {tuple(images.shape)}")
    if module is None:
        found = list(ss2d_modules(model).values())
        if not found:
            raise ValueError(f"{type(model).__name__} has no SS2D module to read")
        module = found[-1]
    rows: List[Tensor] = []
    for start in range(0, images.shape[0], batch_size):
        store: List[Tensor] = []
        with _capture(module, store):
            model(images[start:start + batch_size])
        if len(store) != 1:
            raise ValueError(f"the hooked module ran {len(store)} times in one forward; expected once")
        y = store[0]
        if y.dim() != 4:
            raise ValueError(f"expected a channels-last (Bt, H, W, C) output, got shape {tuple(y.shape)}")
        rows.append(torch.relu(y).mean(dim=(1, 2)))  # (Bt, C)
    return torch.cat(rows).to("cpu", torch.float64)


@torch.no_grad()
def ss2d_channel_activations(model: nn.Module, images: Tensor, batch_size: int = 4) -> Dict[str, Tensor]:
    """:func:`channel_activations` for every SS2D of ``model`` in one pass: {qualified name: (Bt, C) float64}.

    images: (Bt, C_in, H, W) inputs.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (Bt, C, H, W), got shape {tuple(images.shape)}")
    modules = ss2d_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no SS2D module to read")
    rows: Dict[str, List[Tensor]] = {name: [] for name in modules}
    for start in range(0, images.shape[0], batch_size):
        stores: Dict[str, List[Tensor]] = {name: [] for name in modules}
        handles = [m.register_forward_hook(lambda mod, inp, out, store=stores[name]: store.append(out.detach()))
                   for name, m in modules.items()]
        try:
            model(images[start:start + batch_size])
        finally:
            for h in handles:
                h.remove()
        for name, store in stores.items():
            if len(store) != 1:
                raise ValueError(f"{name} ran {len(store)} times in one forward; expected once")
            rows[name].append(torch.relu(store[0]).mean(dim=(1, 2)))  # (Bt, C)
    return {name: torch.cat(r).to("cpu", torch.float64) for name, r in rows.items()}


@torch.no_grad()
def ss2d_channel_statistics(model: nn.Module, images: Tensor, batch_size: int = 4) -> Dict[str, Dict[str, Tensor]]:
    """Per image and SS2D layer: ReLU-GAP activation, per-channel RMS and the centred channel covariance.

    images: (Bt, C_in, H, W) inputs. Returns {qualified SS2D name: {"relu_gap": (Bt, C), "rms": (Bt, C),
    "cov": (Bt, C, C)}}, float64 on the CPU, where for image i with SS2D output y_i: (H*W, C),
    relu_gap = mean over positions of ReLU(y_i), rms = sqrt(mean over positions of y_i^2), and
    cov = (y_i - mean)^T (y_i - mean) / (H*W), the covariance of the channels over the image's positions.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (Bt, C, H, W), got shape {tuple(images.shape)}")
    modules = ss2d_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no SS2D module to read")
    parts: Dict[str, Dict[str, List[Tensor]]] = {name: {"relu_gap": [], "rms": [], "cov": []} for name in modules}
    for start in range(0, images.shape[0], batch_size):
        stores: Dict[str, List[Tensor]] = {name: [] for name in modules}
        handles = [m.register_forward_hook(lambda mod, inp, out, store=stores[name]: store.append(out.detach()))
                   for name, m in modules.items()]
        try:
            model(images[start:start + batch_size])
        finally:
            for h in handles:
                h.remove()
        for name, store in stores.items():
            if len(store) != 1:
                raise ValueError(f"{name} ran {len(store)} times in one forward; expected once")
            y = store[0].to("cpu", torch.float64).flatten(1, 2)            # (Bt, H*W, C)
            yc = y - y.mean(1, keepdim=True)
            parts[name]["relu_gap"].append(torch.relu(y).mean(1))
            parts[name]["rms"].append(y.square().mean(1).sqrt())
            parts[name]["cov"].append(yc.transpose(1, 2) @ yc / y.shape[1])  # (Bt, C, C)
    return {name: {k: torch.cat(v) for k, v in d.items()} for name, d in parts.items()}


def remove_channel_attention(model: nn.Module) -> int:
    """Replace the channel attention inside every CAB of ``model`` by the identity (in place).

    What remains of the CAB is its convolution pair: the "conv without CA" ablation, which keeps the block's
    second LayerNorm, convolutions and skip scale. Returns the number of channel attentions removed.
    """
    removed = 0
    for module in model.modules():
        if isinstance(module, CAB) and isinstance(module.cab[-1], ChannelAttention):
            module.cab[-1] = nn.Identity()
            removed += 1
    return removed


def effective_rank(activations: Tensor) -> float:
    """exp(entropy) of the normalised singular values of a 2-D matrix; 0 for an all-zero matrix.

    activations: (n_images, C), or a (C, C) covariance, whose singular values are its eigenvalues.
    """
    if activations.dim() != 2:
        raise ValueError(f"activations must be (n_images, C), got shape {tuple(activations.shape)}")
    s = torch.linalg.svdvals(activations.to(torch.float64))
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(math.exp(float(-(p * p.log()).sum())))


def inactive_share(activations: Tensor, rel_threshold: float = 0.01) -> float:
    """Share of channels whose mean activation over images is at most ``rel_threshold`` x the largest channel's.

    activations: (n_images, C) non-negative (ReLU-GAP activations or per-channel RMS).
    """
    if activations.dim() != 2:
        raise ValueError(f"activations must be (n_images, C), got shape {tuple(activations.shape)}")
    if not 0.0 <= rel_threshold < 1.0:
        raise ValueError(f"rel_threshold must be in [0, 1), got {rel_threshold}")
    mean = activations.to(torch.float64).mean(0)
    peak = mean.max()
    if peak <= 0:
        return 1.0
    return float((mean <= rel_threshold * peak).to(torch.float64).mean())


def sorted_mean_activation(activations: Tensor) -> Tensor:
    """Mean over images, sorted high to low, as the bars of MambaIR Fig. 3b. activations: (n_images, C) -> (C,)."""
    if activations.dim() != 2:
        raise ValueError(f"activations must be (n_images, C), got shape {tuple(activations.shape)}")
    return activations.mean(0).sort(descending=True).values
