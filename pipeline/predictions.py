"""The segmenter's predictions on disk: the test-time dense CRF, the palette PNGs and
their scores, one image at a time in worker processes that import numpy, PIL and
pydensecrf only (no torch), while the GPU predicts the next images."""

from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.crf import CRFParams, dense_crf
from pipeline.datasets.masks import read_mask, save_mask
from pipeline.evaluation import MaskScore


def present_classes(probs: np.ndarray, min_prob: float) -> np.ndarray:
    """The classes that reach `min_prob` somewhere (the others cannot win a pixel under the
    CRF), at least the strongest one: the CRF's cost follows the image, not the class count."""
    peaks = probs.reshape(len(probs), -1).max(1)
    present = np.flatnonzero(peaks >= min_prob)
    return present if len(present) else np.array([int(peaks.argmax())])


@dataclasses.dataclass
class PredictionJob:
    """One image's prediction to write and score. `raw` None: the files exist (a resumed
    run): they are read back and scored."""

    image_id: str
    final_path: Path
    raw_path: Path | None  # where the prediction before the CRF goes; None: no CRF
    gt_path: Path | None
    palette: np.ndarray
    num_classes: int
    ignore_index: int
    raw: np.ndarray | None = None  # (H, W) uint8 argmax of the probabilities
    image: np.ndarray | None = None  # (H, W, 3) uint8, for the CRF
    probs: np.ndarray | None = None  # (n, H, W) probabilities of the `present` classes, for the CRF
    present: np.ndarray | None = None
    crf: CRFParams | None = None


def write_and_score(job: PredictionJob) -> tuple[MaskScore | None, MaskScore | None]:
    """Write the PNGs (or read them back, resuming); the scores of the final prediction and
    of the one before the CRF (None where there is no GT, or no CRF)."""
    if job.raw is None:
        final = read_mask(job.final_path)
        raw = read_mask(job.raw_path) if job.raw_path is not None else None
    else:
        raw, final = job.raw, job.raw
        if job.raw_path is not None:
            save_mask(job.raw_path, raw, job.palette)
            final = job.present[dense_crf(job.image, job.probs, job.crf)].astype(np.uint8)
        save_mask(job.final_path, final, job.palette)
    if job.gt_path is None:
        return None, None
    gt = read_mask(job.gt_path)
    return tuple(None if mask is None else _score(mask, gt, job) for mask in (final, raw))


def _score(mask: np.ndarray, gt: np.ndarray, job: PredictionJob) -> MaskScore:
    score = MaskScore(job.num_classes, job.ignore_index)
    score.add(mask, gt)
    return score


class PredictionWriters:
    """`write_and_score` in `workers` processes (0: in the caller), at most `pending`
    jobs in flight so that probabilities do not pile up in memory. The scores are added
    up as jobs finish: `final` and `without_crf`."""

    def __init__(self, workers: int, num_classes: int, ignore_index: int, pending: int | None = None):
        self.pool = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
                     if workers > 0 else None)
        self.pending = pending or 2 * max(workers, 1)
        self.futures: list[Future] = []
        self.final, self.without_crf = MaskScore(num_classes, ignore_index), MaskScore(num_classes, ignore_index)

    def submit(self, job: PredictionJob) -> None:
        if self.pool is None:
            self._add(write_and_score(job))
            return
        self.futures.append(self.pool.submit(write_and_score, job))
        while len(self.futures) > self.pending:
            self._add(self.futures.pop(0).result())

    def finish(self) -> None:
        """Wait for every job and add its scores."""
        for future in self.futures:
            self._add(future.result())
        self.futures = []

    def _add(self, scores: tuple[MaskScore | None, MaskScore | None]) -> None:
        for total, score in zip((self.final, self.without_crf), scores):
            if score is not None:
                total.merge(score)

    def __enter__(self) -> "PredictionWriters":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=exc[0] is None, cancel_futures=exc[0] is not None)
