"""From an image's class maps to its pseudo-mask: background score, dense CRF, and
the optional confident/uncertain split (docs/method.md, section 2)."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.artifacts import read_maps
from pipeline.crf import CRFParams, dense_crf_marginals
from pipeline.datasets.masks import IGNORE_INDEX, read_mask, save_mask
from pipeline.errors import ConfigError, DataError, UserError
from pipeline.evaluation import MaskScore, image_miou
from pipeline.images import load_rgb

BACKGROUND_MODES = ("chosen", "fixed", "power")


@dataclasses.dataclass(frozen=True)
class ConfidentSplit:
    """IRN's confident/uncertain split (irn step/cam_to_ir_label.py, BAS-Extension's too):
    foreground seeds from a high threshold, background seeds from a low one, each
    CRF-refined; a pixel takes the foreground pass's class where it has one, is
    background where both passes say background, and 255 (uncertain) where only the
    low threshold's pass still sees an object. IRN uses bg 0.05, BAS-Extension 0.17."""

    enabled: bool = False
    fg_threshold: float = 0.30
    bg_threshold: float = 0.05


@dataclasses.dataclass(frozen=True)
class PseudoMaskRecipe:
    background: str  # 'chosen' | 'fixed' | 'power'
    threshold: float | None  # the constant background score ('chosen', 'fixed')
    alpha: float  # 'power': background = (1 - max)^alpha
    crf: CRFParams
    confident: ConfidentSplit
    # Pixels whose label the CRF gives less than this marginal probability become 255
    # (ignored by the segmenter); 0 keeps every pixel.
    min_confidence: float = 0.0

    def __post_init__(self) -> None:
        if self.background not in BACKGROUND_MODES:
            raise ConfigError(f"refine_masks.background must be one of {BACKGROUND_MODES}, got {self.background!r}")


def pseudo_mask(image: np.ndarray, maps: np.ndarray, classes: np.ndarray, recipe: PseudoMaskRecipe) -> np.ndarray:
    """(H, W) uint8 mask of class indices, 0 background, 255 uncertain."""
    class_ids = np.concatenate([[0], np.asarray(classes, dtype=np.int64)])

    def refined(background: np.ndarray) -> np.ndarray:
        q = dense_crf_marginals(image, np.concatenate([background[None], maps]), recipe.crf)
        labels = class_ids[q.argmax(0)]
        return np.where(q.max(0) >= recipe.min_confidence, labels, IGNORE_INDEX)

    if recipe.confident.enabled:  # always constant thresholds, as in IRN
        fg = refined(np.full(maps.shape[1:], recipe.confident.fg_threshold, dtype=np.float32))
        bg = refined(np.full(maps.shape[1:], recipe.confident.bg_threshold, dtype=np.float32))
        return confident_labels(fg, bg)
    return refined(background_score(maps, recipe)).astype(np.uint8)


def crf_refine(image: np.ndarray, maps: np.ndarray, classes: np.ndarray, threshold: float,
               recipe: PseudoMaskRecipe) -> np.ndarray:
    """`pseudo_mask` as a refinement's per-image function (the recipe holds its threshold)."""
    return pseudo_mask(image, maps, classes, recipe)


def confident_labels(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """IRN's rule: the foreground pass's class where it has one; background where both
    passes are background; uncertain (255) where only the background pass sees an object."""
    return np.where(fg != 0, fg, np.where(bg == 0, 0, IGNORE_INDEX)).astype(np.uint8)


def background_score(maps: np.ndarray, recipe: PseudoMaskRecipe) -> np.ndarray:
    """(H, W): a constant threshold, or (1 - max class map) ** alpha ('power')."""
    if recipe.background == "power":
        peak = maps.max(0) if len(maps) else np.zeros(maps.shape[1:], np.float32)
        return ((1.0 - peak) ** recipe.alpha).astype(np.float32)
    return np.full(maps.shape[1:], recipe.threshold, dtype=np.float32)


def seed_mask(maps: np.ndarray, classes: np.ndarray, recipe: PseudoMaskRecipe) -> np.ndarray:
    """The seeds before the CRF: argmax over [background score, class maps]."""
    class_ids = np.concatenate([[0], np.asarray(classes, dtype=np.int64)])
    return class_ids[np.concatenate([background_score(maps, recipe)[None], maps]).argmax(0)].astype(np.uint8)


def agreement(seeds: np.ndarray, refined: np.ndarray) -> float:
    """Per-image quality without GT: the mean IoU between the seeds and the refined
    mask over the labels either holds (refined pixels at 255 left out). The CRF moves
    labels where the maps disagree with the image's colours and edges, so a mask the
    CRF had to change much is one the maps were unsure of."""
    valid = refined != IGNORE_INDEX
    a, b = seeds[valid].astype(np.int64), refined[valid].astype(np.int64)
    labels = np.union1d(np.unique(a), np.unique(b))
    if labels.size == 0:
        return float("nan")
    ious = [np.sum((a == k) & (b == k)) / np.sum((a == k) | (b == k)) for k in labels]
    return float(np.mean(ious))


class MaskTally:
    """What a pseudo-mask stage measures of its masks, added up over worker processes and
    torchrun processes alike: the 256-bin histogram of mask values, a GT-free quality
    score per image, and the confusion counts (and per-image mIoU) against GT where it
    is scored. Counts are integers, so the sum does not depend on who did which image."""

    def __init__(self, num_classes: int, ignore_index: int):
        self.pixels = np.zeros(256, dtype=np.int64)
        self.quality: dict[str, float] = {}
        self.image_miou: dict[str, float] = {}
        self.score = MaskScore(num_classes, ignore_index)

    def add(self, image_id: str, mask: np.ndarray, quality: float, gt: np.ndarray | None = None) -> None:
        self.pixels += np.bincount(mask.ravel(), minlength=256)
        self.quality[image_id] = quality
        if gt is not None:
            self.score.add(mask, gt)
            self.image_miou[image_id] = image_miou(mask, gt, self.score.k, self.score.ignore_index)

    def merge(self, other: "MaskTally") -> None:
        self.pixels += other.pixels
        self.quality.update(other.quality)
        self.image_miou.update(other.image_miou)
        self.score.merge(other.score)

    def in_order(self, ids: list[str]) -> "MaskTally":
        """Per-image records in the order of `ids` (the split's), whatever order they came in."""
        self.quality = {i: self.quality[i] for i in ids if i in self.quality}
        self.image_miou = {i: self.image_miou[i] for i in ids if i in self.image_miou}
        return self


@dataclasses.dataclass(frozen=True)
class RefineJob:
    """One image for `refine_and_score`, in this process or a worker process (the CRF's
    imports numpy, PIL and pydensecrf, never torch)."""

    image_id: str
    image_path: Path
    maps_path: Path
    out_path: Path
    gt_path: Path | None  # None: not scored
    refine: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (image, maps, classes) -> mask
    seeds: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (maps, classes) -> the seeds quality compares with
    palette: np.ndarray
    num_classes: int
    ignore_index: int


@dataclasses.dataclass
class RefineOutcome:
    image_id: str
    error: str | None = None  # why the image failed; then `tally` is None
    written: bool = False  # False: the mask was already on disk (a resumed run) and was read back
    tally: MaskTally | None = None  # this image's measures


def refine_and_score(job: RefineJob) -> RefineOutcome:
    """Write one pseudo-mask (or read it back, resuming) and measure it: pixel histogram,
    GT-free quality and, where GT is given, its confusion counts. The worker that holds
    the mask measures it, so the main process only adds counts."""
    try:
        maps, classes = read_maps(job.maps_path)
        written = not job.out_path.is_file()
        if written:
            image = np.array(load_rgb(job.image_path))  # a writable copy: pydensecrf needs one
            if maps.shape[1:] != image.shape[:2]:
                raise DataError(f"maps {maps.shape[1:]} and image {image.shape[:2]} differ in size")
            mask = job.refine(image, maps, classes)
            save_mask(job.out_path, mask, job.palette)
        else:
            mask = read_mask(job.out_path)
        tally = MaskTally(job.num_classes, job.ignore_index)
        tally.add(job.image_id, mask, agreement(job.seeds(maps, classes), mask),
                  read_mask(job.gt_path) if job.gt_path is not None else None)
        return RefineOutcome(job.image_id, written=written, tally=tally)
    except (UserError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        return RefineOutcome(job.image_id, error=f"{type(err).__name__}: {err}")
