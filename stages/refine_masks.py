"""Refine the class maps with a dense CRF into a pseudo-mask data set.

Output, a folder other tools read as is (`outputs/<run>/refine_masks/pseudo_masks/`):

    SegmentationClass/<id>.png   palette PNGs, class indices, 0 background, 255 ignore,
                                 at the image's full resolution
    ImageSets/Segmentation/<split>.txt
    dataset_card.json            classes, palette, image folder, counts, ignore share,
                                 per-class pixel share, the stages it came from

The per-image function is the CRF (`pipeline.pseudo_masks.pseudo_mask`); the rest is the
one pseudo-mask body every refinement shares (`pipeline/refinement.py`): CPU-parallel
with joblib (`n_jobs`, `backend`: loky, threading, multiprocessing, or dask/ray when
their cluster client is set up), each image measured in the worker that refines it,
sharded under torchrun, per-image resume, failures listed (they fail the stage unless
`allow_failures`).
"""

from __future__ import annotations

import dataclasses
import functools

from pipeline.artifacts import PseudoMasks, SeedScores
from pipeline.crf import CRFParams
from pipeline.pseudo_mask_set import check_image_mode
from pipeline.pseudo_masks import ConfidentSplit, PseudoMaskRecipe, crf_refine, seed_mask
from pipeline.refinement import REFINEMENT_INPUTS, MaskSetOptions, refine_each_image
from pipeline.runner import StageContext, StageResult
from pipeline.stage import register_stage


@dataclasses.dataclass(frozen=True)
class RefineSettings:
    background: str = "chosen"  # 'chosen': evaluate_maps' threshold; 'fixed': `threshold`; 'power': (1-max)^alpha
    threshold: float = 0.30
    alpha: float = 4.0
    crf: CRFParams = dataclasses.field(default_factory=CRFParams)
    confident: ConfidentSplit = dataclasses.field(default_factory=ConfidentSplit)
    min_confidence: float = 0.0  # CRF marginal below which a pixel becomes 255 (0: off)
    n_jobs: int = -1
    backend: str = "loky"
    allow_failures: bool = False
    images: str = "hardlink"  # how the images enter the pseudo-mask set: 'hardlink', 'copy' or 'symlink'

    def __post_init__(self) -> None:
        check_image_mode(self.images, "refine_masks.images")


@register_stage(
    step=7, consumes=REFINEMENT_INPUTS, produces=PseudoMasks,
    settings=RefineSettings,
    description="dense CRF into the pseudo-mask data set, with a GT-free quality score per photo",
    execution_keys=("refine_masks.n_jobs", "refine_masks.backend"), headline=("miou", "pseudo-mask mIoU"),
    distributed=True)  # sharded: each process does every world_size-th image
def refine_masks(ctx: StageContext) -> StageResult:
    settings = ctx.settings()
    threshold = ctx.input(SeedScores).threshold if settings.background == "chosen" else settings.threshold
    recipe = PseudoMaskRecipe(background=settings.background, threshold=threshold, alpha=settings.alpha,
                              crf=settings.crf, confident=settings.confident, min_confidence=settings.min_confidence)
    options = MaskSetOptions(n_jobs=settings.n_jobs, backend=settings.backend,
                             allow_failures=settings.allow_failures, images=settings.images)
    return refine_each_image(ctx, functools.partial(crf_refine, recipe=recipe), dataclasses.asdict(recipe), options,
                             seeds=functools.partial(seed_mask, recipe=recipe))
