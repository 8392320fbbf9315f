"""One logger for the whole run: console plus `<run_dir>/pipeline.log`; tqdm for loops."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

LOGGER_NAME = "pipeline"
T = TypeVar("T")


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def setup_logging(run_dir: Path | None, level: str = "INFO") -> logging.Logger:
    logger = get_logger()
    logger.setLevel(level.upper())
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(console)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(run_dir / "pipeline.log")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(to_file)
    return logger


def progress(items: Iterable[T], desc: str, total: int | None = None,
             count: Callable[[T], int] = lambda item: 1) -> Iterator[T]:
    """A progress bar on the console; the log file gets one line when the loop ends, with
    the items counted by `count` (a batch: its images), as the manifests count them."""
    bar = tqdm(items, desc=desc, total=total, dynamic_ncols=True, mininterval=1.0, leave=False)
    done = 0
    for item in bar:
        done += count(item)
        yield item
    elapsed = bar.format_dict["elapsed"]
    bar.close()
    get_logger().info("%s: %d items in %.1f s", desc, done, elapsed)


class Throughput:
    """Items per second of a loop after its warm-up (the first `warmup` calls of `add`:
    model loading, cuDNN autotuning and the first allocations are not the rate)."""

    def __init__(self, warmup: int = 2):
        self.warmup, self.calls, self.items = warmup, 0, 0
        self.start = self.end = 0.0

    def add(self, items: int = 1) -> None:
        self.calls += 1
        if self.calls == self.warmup:
            self.start = time.perf_counter()
        elif self.calls > self.warmup:
            self.items += items
            self.end = time.perf_counter()

    def summary(self) -> dict:
        """{'items_after_warmup', 'items_per_s'} (the rate None where the loop was too short)."""
        rate = self.items / (self.end - self.start) if self.items and self.end > self.start else None
        return {"items_after_warmup": self.items, "items_per_s": None if rate is None else round(rate, 3)}
