"""Refine the class maps with a dense CRF into a pseudo-mask data set.

Output, a folder other tools read as is (`outputs/<run>/refine_masks/pseudo_masks/`):

    SegmentationClass/<id>.png   palette PNGs, class indices, 0 background, 255 ignore,
                                 at the image's full resolution
    ImageSets/Segmentation/<split>.txt
    dataset_card.json            classes, palette, image folder, counts, ignore share,
                                 per-class pixel share, the stages it came from

CPU-parallel with joblib (`n_jobs`, `backend`: loky, threading, multiprocessing, or
dask/ray when their cluster client is set up); the worker that refines an image also
measures it (histogram, GT-free quality, confusion counts), so the main process only
adds counts. Under torchrun each process takes every world_size-th image with its share
of the cores; the counts are gathered and rank 0 writes the list and card. Per-image
resume; images that fail are listed, and fail the stage unless `allow_failures`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from joblib import Parallel, delayed, parallel_config

from pipeline import distributed
from pipeline.artifacts import (CARD, MAPS_DIR, MASKS_SUBDIR, PSEUDO_MASKS_DIR, check_image_mode, scored_ids,
                                set_scores, signed, write_pseudo_mask_set)
from pipeline.config import section_to_dataclass
from pipeline.crf import CRFParams
from pipeline.evaluation import rank_correlation
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import ConfigError, DataError
from pipeline.log import get_logger
from pipeline.per_image import PerImage
from pipeline.pseudo_masks import ConfidentSplit, MaskTally, PseudoMaskRecipe, RefineJob, refine_and_score
from pipeline.runner import StageContext, StageResult
from pipeline.stage import register_stage


@dataclasses.dataclass(frozen=True)
class RefineSettings:
    background: str = "chosen"  # 'chosen': evaluate_maps' threshold; 'fixed': `threshold`; 'power': (1-max)^alpha
    threshold: float = 0.30
    alpha: float = 4.0
    crf: dict = dataclasses.field(default_factory=dict)  # CRFParams keys
    confident: dict = dataclasses.field(default_factory=dict)  # ConfidentSplit keys
    min_confidence: float = 0.0  # CRF marginal below which a pixel becomes 255 (0: off)
    n_jobs: int = -1
    backend: str = "loky"
    allow_failures: bool = False
    images: str = "hardlink"  # how the images enter the pseudo-mask set: 'hardlink', 'copy' or 'symlink'

    def __post_init__(self) -> None:
        check_image_mode(self.images, "refine_masks.images")


@register_stage(
    step=7, consumes=("dataset", "maps", "seed_scores"), produces="pseudo_masks",
    settings=RefineSettings,
    description="dense-CRF refinement into the pseudo-mask data set, scored against GT",
    execution_keys=("refine_masks.n_jobs", "refine_masks.backend"), headline=("miou", "pseudo-mask mIoU"),
    distributed=True)  # sharded: each process does every world_size-th image
def refine_masks(ctx: StageContext) -> StageResult:
    settings = ctx.settings()
    recipe = _recipe(settings, ctx)
    dataset = PreparedDataset.load(ctx.input_dir("dataset"))
    split = ctx.input_manifest("maps")["info"]["split"]
    ids = dataset.split(split)
    maps_dir = ctx.input_dir("maps") / MAPS_DIR
    root = ctx.out_dir / PSEUDO_MASKS_DIR
    mask_dir = root / MASKS_SUBDIR
    score_split = ctx.input_manifest("seed_scores")["info"].get("score_split")
    to_score = set(scored_ids(dataset, split, score_split))  # scored on the images the seeds were
    log = get_logger()

    work = PerImage("refine_masks", ids)  # written masks are read back and scored, not refined again
    jobs = (delayed(refine_and_score)(RefineJob(
        i, dataset.image_path(i), maps_dir / f"{i}.npz", mask_dir / f"{i}.png",
        dataset.mask_path(i) if i in to_score else None, recipe, dataset.palette, len(dataset.classes),
        dataset.ignore_index)) for i in work.todo)
    try:
        backend = parallel_config(backend=settings.backend, n_jobs=_jobs_per_process(settings.n_jobs))
    except (ValueError, KeyError, ImportError) as err:  # dask / ray register lazily
        raise ConfigError(f"refine_masks.backend={settings.backend!r}: {err}") from None
    tally, failures, reused = MaskTally(len(dataset.classes), dataset.ignore_index), {}, 0
    with backend:
        results = Parallel(return_as="generator_unordered")(jobs)
        for outcome in work.progress(results, "dense CRF and scores", total=len(work.todo)):
            if outcome.error is not None:
                failures[outcome.image_id] = outcome.error
            else:
                tally.merge(outcome.tally)  # counts only: what crosses processes stays small
                reused += not outcome.written
    shards = work.record()
    tally, failures, reused = work.gather(tally), work.gather(failures), work.gather(reused)
    failures = {i: failures[i] for i in ids if i in failures}
    if reused:
        log.info("refine_masks: %d of %d pseudo-masks were already written (resumed)", reused, len(ids))
    if failures:
        listing = "; ".join(f"{k}: {v}" for k, v in sorted(failures.items())[:10])
        if not settings.allow_failures:
            raise DataError(f"refine_masks: {len(failures)} image(s) failed ({listing}). Fix them and re-run (done "
                            "images are kept), or set refine_masks.allow_failures=True to leave them out.")
        log.warning("refine_masks: %d image(s) failed and are left out: %s", len(failures), listing)

    written = [i for i in ids if i not in failures]
    tally.in_order(written)
    quality, image_miou, score = tally.quality, tally.image_miou, tally.score
    scored = len(image_miou)
    metrics = score.summary(dataset.classes) if scored else {}
    if scored:
        metrics["seed_miou"] = ctx.input_manifest("seed_scores")["metrics"].get("seed_miou")
        metrics["crf_gain"] = metrics["miou"] - metrics["seed_miou"]
        metrics["quality_rank_correlation"] = rank_correlation(quality, image_miou)
        log.info("refine_masks: seed mIoU %.1f%% -> pseudo-mask mIoU %.1f%% (ignored excluded; %.1f%% ignored); "
                 "quality rank correlation %s", 100 * metrics["seed_miou"], 100 * metrics["miou"],
                 100 * metrics["ignored_share"], signed(metrics["quality_rank_correlation"]))
    if distributed.is_main():
        card = write_pseudo_mask_set(
            root, dataset, split, written, listed=len(ids), failed=len(failures), pixels=tally.pixels,
            quality=quality,
            quality_meaning="agreement: mean IoU between the seeds and the CRF-refined mask over the labels either "
                            "holds, computed without GT; low = the CRF had to move much, the maps were unsure",
            images=settings.images, scores=set_scores(metrics, scored),
            recipe=dataclasses.asdict(recipe), made_by=ctx.made_by(), from_stages=ctx.input_runs())
        metrics["quality_mean"] = card["quality"]["mean"]
    return StageResult(
        artifacts={"pseudo_masks": len(written), "failed": len(failures), "reused": reused,
                   "scored_against_gt": scored},
        metrics=metrics,
        info={"dataset": PSEUDO_MASKS_DIR, "card": f"{PSEUDO_MASKS_DIR}/{CARD}", "failed": failures,
              "background_threshold": recipe.threshold, **shards},
    )


def _jobs_per_process(n_jobs: int) -> int:
    """joblib's n_jobs for each torchrun process: -1 (every core) shares the cores out."""
    if n_jobs != -1 or distributed.world_size() == 1:
        return n_jobs
    return max(1, (os.cpu_count() or 1) // distributed.world_size())


def _recipe(settings: RefineSettings, ctx: StageContext) -> PseudoMaskRecipe:
    threshold = settings.threshold
    if settings.background == "chosen":
        threshold = ctx.input_manifest("seed_scores")["metrics"]["threshold"]
    return PseudoMaskRecipe(
        background=settings.background,
        threshold=threshold,
        alpha=settings.alpha,
        crf=section_to_dataclass(CRFParams, settings.crf, "refine_masks.crf"),
        confident=section_to_dataclass(ConfidentSplit, settings.confident, "refine_masks.confident"),
        min_confidence=settings.min_confidence,
    )
