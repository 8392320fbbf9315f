"""The skeleton every per-image stage follows: shard, skip what is done, run, tally,
gather, merge, record throughput.

    work = PerImage("refine_masks", ids, done=lambda i: (mask_dir / f"{i}.png").is_file())
    for image_id in work.progress(work.todo, "dense CRF"):
        ...                                   # one image; work.rate counts it
    tally = work.gather(tally)                # every process's tally merged, in rank order
    info = work.record()                      # shards and throughput per rank
    reused = work.reused()                    # items earlier attempts wrote, all processes

Under torchrun each process takes every world_size-th item (`pipeline.distributed.shard`);
one process is the same code with a world of one. `gather` and `record` are collective:
every process calls them, in the same order.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, TypeVar

from pipeline import distributed
from pipeline.log import Throughput, get_logger, progress

T = TypeVar("T")


class PerImage:
    """This process's share of a stage's items, and what it did with them."""

    def __init__(self, stage: str, items: list, done: Callable[[Any], bool] | None = None):
        self.stage = stage
        self.items = items
        self.mine = distributed.shard(items)
        self.todo = [i for i in self.mine if not done(i)] if done else list(self.mine)
        self.rate = Throughput()
        if len(self.todo) < len(self.mine):
            get_logger().info("%s: %d of %d items already written, resuming", stage, len(self.mine) - len(self.todo),
                              len(self.mine))

    def progress(self, items: Iterable[T], what: str, total: int | None = None,
                 count: Callable[[T], int] = lambda item: 1) -> Iterator[T]:
        """The items with a progress bar; each one counts for throughput (`count` of them:
        a batch counts its images)."""
        for item in progress(items, f"{self.stage}: {what}", total=total, count=count):
            yield item
            self.rate.add(count(item))

    def gather(self, local: T, merge: Callable[[T, T], None] | None = None) -> T:
        """`local` of every process merged into rank 0's order: `merge(into, other)`, by default
        the value's own `merge` (tallies, scores), `update` (dicts) or `+` (numbers)."""
        first, *others = distributed.gather(local)
        for other in others:
            if merge is not None:
                merge(first, other)
            elif hasattr(first, "merge"):
                first.merge(other)
            elif isinstance(first, dict):
                first.update(other)
            else:
                first = first + other
        return first

    def record(self, items_here: int | None = None) -> dict:
        """The manifest's record of the work: this process's shard (`items_here`: its items
        counted otherwise, e.g. the images of its batches), throughput per rank."""
        shards = distributed.shard_record(len(self.mine) if items_here is None else items_here)
        shards["throughput_per_rank"] = distributed.gather(self.rate.summary())
        return shards

    def reused(self) -> int:
        """Items an earlier attempt had done, over every process."""
        return sum(distributed.gather(len(self.mine) - len(self.todo)))
