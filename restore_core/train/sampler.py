"""Data order for exact resume: a resumable, rank-sharded sampler and per-sample seeded augmentation.

Every epoch ``e`` draws one global permutation from ``seed + e`` (as ``DistributedSampler.set_epoch`` does);
rank ``r`` of ``W`` takes ``perm[r::W]``, so a step of W ranks x batch b sees exactly the samples a single
process with batch W*b sees. The sampler resumes from ``(epoch, position)``.

Random augmentation (crops, flips, noise) must not depend on how many workers, ranks or restarts there were.
:class:`SeededSampleDataset` therefore seeds Python, NumPy and torch from ``(seed, epoch, index)`` just for the
call of ``dataset[index]`` and restores the caller's RNG states afterwards: the same sample in the same epoch
gets the same augmentation in every run, and the training loop's own random state (dropout, ...) is untouched.
Datasets with a ``set_epoch`` method (those of :mod:`restore_core.data`) are also told the epoch.
"""
from __future__ import annotations

import random
from typing import Any, Dict, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed mixing the run seed, epoch and sample index (SplitMix64-style)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & (2**64 - 1)
    x ^= x >> 32
    return x & (2**63 - 1)


class SeededSampleDataset(Dataset):
    """Wraps a map-style dataset; item ``k = epoch * n + i`` is ``dataset[i]`` drawn under a seed fixed by
    ``(seed, epoch, i)``. The sampler below emits these ``k``. ``n = len(dataset)``."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.n = len(dataset)  # type: ignore[arg-type]
        if self.n == 0:
            raise ValueError("the training dataset is empty")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int) -> Any:
        epoch, i = divmod(int(k), self.n)
        s = sample_seed(self.seed, epoch, i)
        py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:  # restore_core.data's datasets draw crops/flips/noise from (seed, epoch, index)
            set_epoch(epoch)
        try:
            random.seed(s)
            np.random.seed(s % 2**32)
            torch.manual_seed(s)
            return self.dataset[i]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(torch_state)


class ResumableSampler(Sampler[int]):
    """Infinite-epoch sampler: per-epoch permutation (or identity without shuffle), sharded by rank.

    Each rank yields ``samples_per_rank`` indices per epoch (``n * enlarge // world_size``, the tail dropped so
    every rank has the same count). Yields ``epoch * n + i`` (see :class:`SeededSampleDataset`). Iterating
    starts at ``(epoch, position)`` and runs to the end of that epoch; call :meth:`advance` / read
    :meth:`state_dict` to move through epochs.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 enlarge_ratio: int = 1) -> None:
        if n < 1:
            raise ValueError("the training dataset is empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.seed, self.rank, self.world_size = n, int(seed), rank, world_size
        self.shuffle, self.enlarge_ratio = shuffle, max(1, int(enlarge_ratio))
        self.samples_per_rank = (n * self.enlarge_ratio) // world_size
        if self.samples_per_rank == 0:
            raise ValueError(f"{n} training samples cannot feed {world_size} ranks")
        self.epoch = 0
        self.position = 0  # samples of this epoch already consumed by this rank

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        total = self.n * self.enlarge_ratio
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + epoch)
            perm = torch.randperm(total, generator=g)
        else:
            perm = torch.arange(total)
        perm = perm[: self.samples_per_rank * self.world_size]
        return perm[self.rank::self.world_size] % self.n

    def __iter__(self) -> Iterator[int]:
        idx = self.epoch_indices(self.epoch)[self.position:]
        base = self.epoch * self.n
        return iter((base + idx).tolist())

    def __len__(self) -> int:
        return self.samples_per_rank - self.position

    def advance(self, samples: int) -> None:
        """Record that ``samples`` more samples of the current epoch were consumed."""
        self.position += samples

    def next_epoch(self) -> None:
        """Move to the start of the next epoch (the tail shorter than a batch is dropped)."""
        self.epoch += 1
        self.position = 0

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "n": self.n,
                "world_size": self.world_size}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        if state.get("n", self.n) != self.n:
            raise ValueError(f"checkpoint was written for a dataset of {state['n']} samples, this one has {self.n}")
        old_ws = int(state.get("world_size", self.world_size))
        consumed = int(state["position"]) * old_ws  # samples of the epoch consumed by all ranks together
        if consumed % self.world_size:
            raise ValueError(f"cannot resume mid-epoch on {self.world_size} ranks a run written by {old_ws} ranks "
                             f"({consumed} samples consumed)")
        self.epoch, self.position = int(state["epoch"]), consumed // self.world_size
