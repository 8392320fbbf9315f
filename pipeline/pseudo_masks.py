"""From an image's class maps to its pseudo-mask: background score, dense CRF, and
the optional confident/uncertain split (method.md section 2)."""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.crf import CRFParams, dense_crf
from pipeline.datasets.masks import IGNORE_INDEX
from pipeline.errors import ConfigError

BACKGROUND_MODES = ("sweep", "fixed", "power")


@dataclasses.dataclass(frozen=True)
class ConfidentSplit:
    """IRN-style: foreground seeds from a high threshold, background seeds from a low
    one, each CRF-refined; pixels where the two disagree become 255."""

    enabled: bool = False
    fg_threshold: float = 0.30
    bg_threshold: float = 0.05


@dataclasses.dataclass(frozen=True)
class PseudoMaskRecipe:
    background: str  # 'sweep' | 'fixed' | 'power'
    threshold: float | None  # the constant background score ('sweep', 'fixed')
    alpha: float  # 'power': background = (1 - max)^alpha
    crf: CRFParams
    confident: ConfidentSplit

    def __post_init__(self) -> None:
        if self.background not in BACKGROUND_MODES:
            raise ConfigError(f"refine_masks.background must be one of {BACKGROUND_MODES}, got {self.background!r}")


def pseudo_mask(image: np.ndarray, maps: np.ndarray, classes: np.ndarray, recipe: PseudoMaskRecipe) -> np.ndarray:
    """(H, W) uint8 mask of class indices, 0 background, 255 uncertain."""
    class_ids = np.concatenate([[0], np.asarray(classes, dtype=np.int64)])

    def refined(background: np.ndarray) -> np.ndarray:
        return class_ids[dense_crf(image, np.concatenate([background[None], maps]), recipe.crf)]

    if recipe.confident.enabled:  # always constant thresholds, as in IRN
        fg = refined(np.full(maps.shape[1:], recipe.confident.fg_threshold, dtype=np.float32))
        bg = refined(np.full(maps.shape[1:], recipe.confident.bg_threshold, dtype=np.float32))
        return np.where(fg == bg, fg, IGNORE_INDEX).astype(np.uint8)
    if recipe.background == "power":
        peak = maps.max(0) if len(maps) else np.zeros(maps.shape[1:], np.float32)
        return refined((1.0 - peak) ** recipe.alpha).astype(np.uint8)
    return refined(np.full(maps.shape[1:], recipe.threshold, dtype=np.float32)).astype(np.uint8)
