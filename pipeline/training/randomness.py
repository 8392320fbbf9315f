"""Random streams that are pure functions of (seed, epoch, position), for exact resume.

Nothing random in training depends on state carried from earlier steps: the epoch's
sample order, each sample's augmentation and each step's model-side draws (BAS's class
sampling) are all seeded from the run seed and where they are in training. A run
resumed from any checkpoint therefore draws exactly what an uninterrupted run draws,
whatever the number of data-loader workers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


def stream_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed derived from the run seed and integer keys (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def generator(seed: int, *keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, *keys))


# Keys that keep the streams apart.
ORDER, SAMPLE, STEP = 0, 1, 2


class EpochBatches(Sampler):
    """Per-rank batches of (dataset index, sample seed), a fresh shuffle each epoch.

    The epoch's permutation is drawn from (seed, epoch); its first `batches * world *
    batch` entries are dealt to ranks batch by batch (the rest is dropped, as with
    `drop_last`). `start(epoch, skip)` resumes an epoch after `skip` batches.
    With `factors` (one repeat factor per image, `repeat_factors`), each epoch repeats
    every image floor(r) times and once more with probability r - floor(r), as LVIS's
    repeat-factor sampling does, shuffles that pool and keeps its first `size` entries:
    rare-class images come more often, the epoch keeps its number of steps.
    """

    def __init__(self, size: int, batch: int, seed: int, rank: int = 0, world: int = 1,
                 factors: Sequence[float] | None = None):
        self.size, self.batch, self.seed, self.rank, self.world = size, batch, seed, rank, world
        self.factors = None if factors is None else torch.tensor(factors, dtype=torch.float64)
        self.epoch, self.skip = 0, 0

    def start(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.size // (self.batch * self.world)

    def _order(self) -> list[int]:
        draws = generator(self.seed, ORDER, self.epoch)
        if self.factors is None:
            return torch.randperm(self.size, generator=draws).tolist()
        whole = self.factors.floor()
        copies = whole + (torch.rand(self.size, generator=draws, dtype=torch.float64) < self.factors - whole)
        pool = torch.repeat_interleave(torch.arange(self.size), copies.long())
        return pool[torch.randperm(len(pool), generator=draws)][:self.size].tolist()

    def __iter__(self):
        order = self._order()
        span = self.batch * self.world
        for b in range(self.skip, len(self)):
            first = b * span + self.rank * self.batch
            yield [(order[p], stream_seed(self.seed, SAMPLE, self.epoch, p)) for p in range(first, first + self.batch)]


def repeat_factors(labels: Sequence[Sequence[int]], threshold: float) -> list[float]:
    """LVIS's repeat factor of each image (Gupta et al., CVPR 2019): the largest over its
    classes of max(1, sqrt(threshold / f_c)), f_c the share of the images that show class
    c; 1 for an image without a class. Classes rarer than `threshold` are drawn more often."""
    counts = Counter(c for image in labels for c in set(image))
    per_class = {c: max(1.0, math.sqrt(threshold * len(labels) / n)) for c, n in counts.items()}
    return [max((per_class[c] for c in image), default=1.0) for image in labels]


def seed_step(seed: int, rank: int, global_step: int) -> None:
    """Seed torch's CPU and CUDA generators for one optimisation step of one rank."""
    torch.manual_seed(stream_seed(seed, STEP, rank, global_step))
