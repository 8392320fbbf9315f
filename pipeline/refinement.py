"""The one body of every stage that makes pseudo-masks: a refinement supplies only the
per-image function, this module does the rest.

    @register_stage(step=7.5, consumes=REFINEMENT_INPUTS, produces=PseudoMasks,
                    settings={"my_refinement": None}, headline=("miou", "my mIoU"))
    def my_refinement(ctx):
        return refine_each_image(ctx, lambda image, maps, classes, t: ..., recipe=ctx.section("my_refinement"))

From (class maps, the seeds' threshold t, image) to a written pseudo-mask data set
(`pipeline/pseudo_mask_set.py`): per-image resume (written masks are read back, not
made again), sharded under torchrun, in joblib workers where `n_jobs` asks for them,
each image measured where it is made (pixel histogram, the GT-free quality score:
agreement with the seeds, and the confusion counts against GT on the images the seeds
were scored on), failures counted and listed (they fail the stage unless
`allow_failures`), the card and the typed `PseudoMasks` artifact. The dense CRF
(`refine_masks`), the random walk and plug-in refinements all run through it;
`train_segmenter.pseudo_masks='my_refinement'` trains the segmenter on any of them.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import numpy as np

from pipeline import distributed
from pipeline.artifacts import CARD, PSEUDO_MASKS_DIR, ClassMaps, PreparedData, PseudoMasks, SeedScores
from pipeline.crf import CRFParams
from pipeline.errors import ConfigError, DataError
from pipeline.evaluation import rank_correlation
from pipeline.log import get_logger
from pipeline.per_image import PerImage
from pipeline.pseudo_mask_set import IMAGE_MODES, set_scores, signed, write_pseudo_mask_set
from pipeline.pseudo_masks import ConfidentSplit, MaskTally, PseudoMaskRecipe, RefineJob, refine_and_score, seed_mask
from pipeline.runner import StageContext, StageResult

# What a refinement reads: the data set, the class maps, and the seeds' threshold.
REFINEMENT_INPUTS = (PreparedData, ClassMaps, SeedScores)

# (image (H, W, 3) uint8, maps (n, H, W) float in [0, 1], classes (n,) indices 1..C,
#  background threshold t) -> mask (H, W) uint8: 0 background, class indices, 255 ignore
RefineFn = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]

SEED_AGREEMENT = ("agreement: mean IoU between the seeds and the refined mask over the labels either holds, "
                  "computed without GT; low = the refinement had to move much, the maps were unsure")


@dataclasses.dataclass(frozen=True)
class MaskSetOptions:
    """How a refinement stage runs and what it keeps (its settings' share of them)."""

    n_jobs: int = 1  # joblib workers (-1: every core); 1: in this process (a function that holds a model)
    backend: str = "loky"
    allow_failures: bool = False
    images: str = IMAGE_MODES[0]  # how the images enter the set (pipeline/pseudo_mask_set.py)


def refine_each_image(ctx: StageContext, refine: RefineFn, recipe: dict, options: MaskSetOptions = MaskSetOptions(),
                      seeds: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                      ids: list[str] | None = None) -> StageResult:
    """Run `refine` on every exported image (or `ids` of them) and write the set. `recipe`
    goes into the card; `seeds(maps, classes)`: the seeds the quality score compares
    with (default: argmax over [t, maps])."""
    dataset = ctx.input(PreparedData).load()
    maps, scores = ctx.input(ClassMaps), ctx.input(SeedScores)
    listed = dataset.split(maps.split)
    ids = listed if ids is None else ids
    made = PseudoMasks(ctx.out_dir, split=maps.split)
    threshold_seeds = PseudoMaskRecipe("fixed", scores.threshold, 0.0, CRFParams(), ConfidentSplit())
    to_score = set(scores.scored_ids(dataset))
    work = PerImage(ctx.stage.name, ids, done=lambda i: made.mask_path(i).is_file())
    jobs = [RefineJob(i, dataset.image_path(i), maps.path(i), made.mask_path(i),
                      dataset.mask_path(i) if i in to_score else None,
                      functools.partial(_with_threshold, refine, scores.threshold),
                      seeds or functools.partial(seed_mask, recipe=threshold_seeds),
                      dataset.palette, len(dataset.classes), dataset.ignore_index) for i in work.mine]
    tally, failures = MaskTally(len(dataset.classes), dataset.ignore_index), {}
    for outcome in work.progress(_outcomes(jobs, options), "refine and score", total=len(jobs),
                                 count=lambda outcome: outcome.written):
        if outcome.error is not None:
            failures[outcome.image_id] = outcome.error
        else:
            tally.merge(outcome.tally)  # counts only: what crosses processes stays small
    shards, reused = work.record(), work.reused()
    tally, failures = work.gather(tally), work.gather(failures)
    failures = {i: failures[i] for i in ids if i in failures}
    _report_failures(ctx.stage.name, failures, options.allow_failures)
    written = [i for i in ids if i not in failures]
    tally.in_order(written)
    metrics = _metrics(tally, dataset.classes, scores.seed_miou)
    if metrics:
        get_logger().info("%s: seed mIoU %.1f%% -> pseudo-mask mIoU %.1f%% (ignored excluded; %.1f%% ignored); "
                          "quality rank correlation %s", ctx.stage.name, 100 * (scores.seed_miou or 0),
                          100 * metrics["miou"], 100 * metrics["ignored_share"],
                          signed(metrics["quality_rank_correlation"]))
    if distributed.is_main():
        card = write_pseudo_mask_set(
            made.root, dataset, maps.split, written, listed=len(listed), failed=len(listed) - len(written),
            pixels=tally.pixels, quality=tally.quality, quality_meaning=SEED_AGREEMENT, images=options.images,
            scores=set_scores(metrics, len(tally.image_miou)), recipe=recipe, made_by=ctx.made_by(),
            from_stages=ctx.input_runs())
        metrics["quality_mean"] = card["quality"]["mean"]
    return StageResult(
        artifact=dataclasses.replace(made, miou=metrics.get("miou")),
        artifacts={"images": len(ids), "pseudo_masks": len(written), "failed": len(failures), "left_out": len(listed) - len(ids),
                   "reused": reused, "scored_against_gt": len(tally.image_miou)},
        metrics=metrics,
        info={"dataset": PSEUDO_MASKS_DIR, "card": f"{PSEUDO_MASKS_DIR}/{CARD}", "failed": failures,
              "background_threshold": scores.threshold, **shards})


def _with_threshold(refine: RefineFn, threshold: float, image, maps, classes) -> np.ndarray:
    return np.asarray(refine(image, maps, classes, threshold), dtype=np.uint8)


def _outcomes(jobs: list[RefineJob], options: MaskSetOptions):
    """Each job's outcome, in this process or in joblib workers (in whatever order they end)."""
    if options.n_jobs == 1:
        return map(refine_and_score, jobs)
    from joblib import parallel_config

    try:
        backend = parallel_config(backend=options.backend, n_jobs=_jobs_per_process(options.n_jobs))
    except (ValueError, KeyError, ImportError) as err:  # dask / ray register lazily
        raise ConfigError(f"backend={options.backend!r}: {err}") from None
    return _in_workers(jobs, backend)


def _in_workers(jobs: list[RefineJob], backend):
    from joblib import Parallel, delayed

    with backend:
        yield from Parallel(return_as="generator_unordered")(delayed(refine_and_score)(job) for job in jobs)


def _jobs_per_process(n_jobs: int) -> int:
    """joblib's n_jobs for each torchrun process: -1 (every core) shares the cores out."""
    if n_jobs != -1 or distributed.world_size() == 1:
        return n_jobs
    return max(1, (os.cpu_count() or 1) // distributed.world_size())


def _report_failures(stage: str, failures: dict[str, str], allowed: bool) -> None:
    if not failures:
        return
    listing = "; ".join(f"{k}: {v}" for k, v in sorted(failures.items())[:10])
    if not allowed:
        raise DataError(f"{stage}: {len(failures)} image(s) failed ({listing}). Fix them and re-run (done images "
                        f"are kept), or set {stage}.allow_failures=True to leave them out.")
    get_logger().warning("%s: %d image(s) failed and are left out: %s", stage, len(failures), listing)


def _metrics(tally: MaskTally, classes: list[str], seed_miou: float | None) -> dict:
    """The set's figures against GT ({} without GT): mIoU, its gain over the seeds, and how
    well the GT-free quality score ranks the images."""
    if not tally.image_miou:
        return {}
    metrics = tally.score.summary(classes)
    metrics["seed_miou"] = seed_miou
    metrics["gain_over_seeds"] = None if seed_miou is None else metrics["miou"] - seed_miou
    metrics["quality_rank_correlation"] = rank_correlation(tally.quality, tally.image_miou)
    return metrics
