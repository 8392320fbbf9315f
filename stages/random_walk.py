"""IRN's random walk: the class maps spread over the boundary net's affinities
into a second pseudo-mask data set (same format as refine_masks').

Per image: the boundary map (stride 4, averaged with its flip), the exported class maps
averaged down to that grid, the walk (`pipeline.relations.random_walk`: beta, 2^exp_times
steps, pairs within `radius`), back to full size, one background threshold. Scored
against GT on the images the seeds were, next to the CRF's masks on the same images.
Runs on the GPU where there is one; under torchrun each process walks every
world_size-th image and the counts are gathered. Per-image resume.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline import distributed
from pipeline.artifacts import (CARD, MAPS_DIR, MASKS_SUBDIR, MODEL_FILE, PSEUDO_MASKS_DIR, check_image_mode, read_maps,
                                scored_ids, set_scores, write_pseudo_mask_set)
from pipeline.datasets.masks import read_mask, save_mask
from pipeline.datasets.prepared import PreparedDataset
from pipeline.evaluation import MaskScore, rank_correlation
from pipeline.log import get_logger, progress
from pipeline.per_image import PerImage
from pipeline.pseudo_masks import MaskTally, agreement
from pipeline.runner import StageContext, StageResult
from pipeline.stage import register_stage


@dataclasses.dataclass(frozen=True)
class RandomWalkSettings:
    radius: int = 5  # IRN at inference: 5 (training: boundary_net.radius)
    beta: float = 10.0  # affinity ** beta
    exp_times: int = 8  # 2 ** exp_times steps
    bg_threshold: float = 0.25  # IRN's sem_seg_bg_thres (BAS-Extension: 0.22)
    map_power: float = 1.0  # maps ** power before the walk (IRN: 1; BAS-Extension: 1.5)
    flip: bool = True  # boundary map averaged with the flipped image's
    images: str = "hardlink"  # how the images enter the pseudo-mask set: 'hardlink', 'copy' or 'symlink'

    def __post_init__(self) -> None:
        check_image_mode(self.images, "random_walk.images")


@register_stage(
    step=9, consumes=("dataset", "maps", "seed_scores", "pseudo_masks", "boundary_net"), produces="pseudo_masks",
    settings=RandomWalkSettings, on_demand=True,  # on when train_segmenter.pseudo_masks names it
    description="IRN's random walk over the boundary net's affinities: a second pseudo-mask data set",
    headline=("miou", "random-walk mIoU"),
    distributed=True)  # sharded: each process does every world_size-th image
def random_walk(ctx: StageContext) -> StageResult:
    settings = ctx.settings()
    log = get_logger()
    dataset = PreparedDataset.load(ctx.input_dir("dataset"))
    split = ctx.input_manifest("maps")["info"]["split"]
    crf_masks = ctx.input_dir("pseudo_masks") / PSEUDO_MASKS_DIR / MASKS_SUBDIR
    listed = dataset.split(split)
    ids = [i for i in listed if (crf_masks / f"{i}.png").is_file()]
    if len(ids) < len(listed):  # images refine_masks failed on (allow_failures): counted, reported
        log.warning("random_walk: %d of %d images have no CRF mask (refine_masks left them out) and are left out",
                    len(listed) - len(ids), len(listed))
    maps_dir = ctx.input_dir("maps") / MAPS_DIR
    root = ctx.out_dir / PSEUDO_MASKS_DIR
    mask_dir = root / MASKS_SUBDIR
    work = PerImage("random_walk", ids, done=lambda i: (mask_dir / f"{i}.png").is_file())
    device = distributed.device()
    if work.todo:
        walk_images(work, ctx.input_dir("boundary_net") / MODEL_FILE, dataset, maps_dir, mask_dir, settings, device)

    score_split = ctx.input_manifest("seed_scores")["info"].get("score_split")
    to_score = set(scored_ids(dataset, split, score_split))
    walk, crf_score = MaskTally(len(dataset.classes), dataset.ignore_index), MaskScore(len(dataset.classes),
                                                                                     dataset.ignore_index)
    for image_id in progress(work.mine, "random_walk: statistics and mIoU", total=len(work.mine)):
        mask, crf = read_mask(mask_dir / f"{image_id}.png"), read_mask(crf_masks / f"{image_id}.png")
        gt = dataset.load_mask(image_id) if image_id in to_score else None
        walk.add(image_id, mask, agreement(mask, crf), gt)
        if gt is not None:
            crf_score.add(crf, gt)  # the CRF's masks on the same images, to compare
    shards, reused = work.record(), work.reused()
    walk, crf_score = work.gather(walk), work.gather(crf_score)
    walk.in_order(ids)
    score, scored = walk.score, len(walk.image_miou)
    metrics = {}
    if scored:
        metrics = score.summary(dataset.classes)
        crf_summary = crf_score.summary(dataset.classes)
        metrics["crf_miou"] = crf_summary["miou"]  # its uncertain (255) pixels excluded
        metrics["crf_ignored_share"] = crf_summary["ignored_share"]
        metrics["random_walk_gain"] = metrics["miou"] - metrics["crf_miou"]
        metrics["seed_miou"] = ctx.input_manifest("seed_scores")["metrics"].get("seed_miou")
        metrics["quality_rank_correlation"] = rank_correlation(walk.quality, walk.image_miou)
        log.info("random_walk: pseudo-mask mIoU %.1f%% after the CRF (%.0f%% of pixels uncertain, left out) -> "
                 "%.1f%% after the random walk (%d images)", 100 * metrics["crf_miou"],
                 100 * metrics["crf_ignored_share"], 100 * metrics["miou"], scored)
    if distributed.is_main():
        write_pseudo_mask_set(
            root, dataset, split, ids, listed=len(listed), failed=len(listed) - len(ids), pixels=walk.pixels,
            quality=walk.quality,
            quality_meaning="agreement: mean IoU between the random walk's mask and the CRF's, over the pixels the "
                            "CRF's mask labels, computed without GT",
            images=settings.images, scores=set_scores(metrics, scored),
            recipe=dataclasses.asdict(settings), made_by=ctx.made_by(), from_stages=ctx.input_runs())
    return StageResult(
        artifacts={"pseudo_masks": len(ids), "reused": reused, "scored_against_gt": scored,
                   "left_out_without_crf_mask": len(listed) - len(ids)},
        metrics=metrics,
        info={"dataset": PSEUDO_MASKS_DIR, "card": f"{PSEUDO_MASKS_DIR}/{CARD}", "split": split,
              "device": str(device), **shards},
    )


def walk_images(work: PerImage, model_path, dataset: PreparedDataset, maps_dir, mask_dir, settings: RandomWalkSettings,
                device) -> None:
    """The walk on each image still to do: its boundary map, then its maps propagated."""
    import torch  # here, not at the top: the CLI plans runs without loading torch

    from pipeline.images import load_rgb, to_normalized_tensor
    from pipeline.models.boundary import load_boundary_net
    from pipeline.relations import random_walk_mask

    model = load_boundary_net(model_path, device)
    with torch.no_grad():
        for image_id in work.progress(work.todo, "walk"):
            x = to_normalized_tensor(load_rgb(dataset.image_path(image_id)))[None].to(device)
            boundary = model(torch.cat([x, x.flip(3)]) if settings.flip else x)
            boundary = (boundary[0] + boundary[1].flip(1)) / 2 if settings.flip else boundary[0]
            maps, classes = read_maps(maps_dir / f"{image_id}.npz")
            mask = random_walk_mask(torch.from_numpy(maps).to(device), classes, boundary, settings.radius,
                                    settings.beta, settings.exp_times, settings.bg_threshold, settings.map_power)
            save_mask(mask_dir / f"{image_id}.png", mask.cpu().numpy().astype(np.uint8), dataset.palette)
