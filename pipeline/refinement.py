"""The body of a simple refinement stage: one function per image, the rest done here.

A refinement turns an image's class maps into its pseudo-mask. Written as

    @register_stage(step=7.5, consumes=REFINEMENT_INPUTS, produces="pseudo_masks",
                    settings={"my_refinement": None}, headline=("miou", "my mIoU"))
    def my_refinement(ctx):
        return refine_each_image(ctx, lambda image, maps, classes, t: ..., recipe=ctx.section("my_refinement"))

it is a stage like refine_masks: per-image resume, sharded under torchrun, a pseudo-mask
data set with its card (`pipeline/artifacts.py`), scored against GT where GT exists (on
the images the seeds were), the GT-free quality score (agreement with the seeds), and
`train_segmenter.pseudo_masks='my_refinement'` trains the segmenter on it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from pipeline import distributed
from pipeline.artifacts import (CARD, IMAGE_MODES, MAPS_DIR, MASKS_SUBDIR, PSEUDO_MASKS_DIR, read_maps, scored_ids,
                                set_scores, write_pseudo_mask_set)
from pipeline.evaluation import rank_correlation
from pipeline.datasets.masks import read_mask, save_mask
from pipeline.datasets.prepared import PreparedDataset
from pipeline.per_image import PerImage
from pipeline.crf import CRFParams
from pipeline.pseudo_masks import ConfidentSplit, MaskTally, PseudoMaskRecipe, agreement, seed_mask
from pipeline.runner import StageContext, StageResult

# What a refinement reads: the data set, the class maps, and the seeds' threshold.
REFINEMENT_INPUTS = ("dataset", "maps", "seed_scores")

# (image (H, W, 3) uint8, maps (n, H, W) float in [0, 1], classes (n,) indices 1..C,
#  background threshold t) -> mask (H, W) uint8: 0 background, class indices, 255 ignore
RefineFn = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]


def refine_each_image(ctx: StageContext, refine: RefineFn, recipe: dict) -> StageResult:
    """Run `refine` on every exported image; `recipe` goes into the data-set card."""
    dataset = PreparedDataset.load(ctx.input_dir("dataset"))
    split = ctx.input_manifest("maps")["info"]["split"]
    seeds = ctx.input_manifest("seed_scores")
    threshold = seeds["metrics"]["threshold"]
    maps_dir = ctx.input_dir("maps") / MAPS_DIR
    root = ctx.out_dir / PSEUDO_MASKS_DIR
    ids = dataset.split(split)
    work = PerImage(ctx.stage.name, ids, done=lambda i: (root / MASKS_SUBDIR / f"{i}.png").is_file())
    todo, seeds_only = set(work.todo), PseudoMaskRecipe("fixed", threshold, 0.0, CRFParams(), ConfidentSplit())
    to_score = set(scored_ids(dataset, split, seeds["info"].get("score_split")))
    tally = MaskTally(len(dataset.classes), dataset.ignore_index)
    for image_id in work.progress(work.mine, "refine and score", count=lambda i: i in todo):
        maps, classes = read_maps(maps_dir / f"{image_id}.npz")
        path = root / MASKS_SUBDIR / f"{image_id}.png"
        if image_id in todo:
            mask = np.asarray(refine(dataset.load_image(image_id), maps, classes, threshold), dtype=np.uint8)
            save_mask(path, mask, dataset.palette)
        else:  # written by an earlier attempt
            mask = read_mask(path)
        tally.add(image_id, mask, agreement(seed_mask(maps, classes, seeds_only), mask),
                  dataset.load_mask(image_id) if image_id in to_score else None)
    record, reused = work.record(), work.reused()
    tally = work.gather(tally).in_order(ids)
    metrics = tally.score.summary(dataset.classes) if tally.image_miou else {}
    if metrics:
        metrics["seed_miou"] = seeds["metrics"].get("seed_miou")
        metrics["quality_rank_correlation"] = rank_correlation(tally.quality, tally.image_miou)
    if distributed.is_main():
        write_pseudo_mask_set(root, dataset, split, ids, listed=len(ids), failed=0, pixels=tally.pixels,
                              quality=tally.quality, images=IMAGE_MODES[0],
                              scores=set_scores(metrics, len(tally.image_miou)), recipe=recipe,
                              made_by=ctx.made_by(), from_stages=ctx.input_runs(),
                              quality_meaning="agreement: mean IoU between the seeds argmax([t, maps]) and the "
                                              "refined mask over the labels either holds, computed without GT")
    return StageResult(
        artifacts={"pseudo_masks": len(ids), "reused": reused, "scored_against_gt": len(tally.image_miou)},
        metrics=metrics,
        info={"dataset": PSEUDO_MASKS_DIR, "card": f"{PSEUDO_MASKS_DIR}/{CARD}", "background_threshold": threshold,
              **record})
