"""One logger for the whole run: console plus `<run_dir>/pipeline.log`; tqdm for loops."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

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


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """A progress bar on the console; the log file gets one line when the loop ends."""
    bar = tqdm(items, desc=desc, total=total, dynamic_ncols=True, mininterval=1.0, leave=False)
    count = 0
    for item in bar:
        count += 1
        yield item
    elapsed = bar.format_dict["elapsed"]
    bar.close()
    get_logger().info("%s: %d items in %.1f s", desc, count, elapsed)
