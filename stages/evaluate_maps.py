"""Stage 4: seed mIoU of the exported maps against GT, over a background threshold sweep.

Seeds are argmax([t, class maps]). With `threshold=None` the best t of the sweep is
kept and used downstream: that choice looks at GT, as the WSSS literature does, and
the manifest says so. A fixed threshold is the alternative that does not.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.config import section_to_dataclass
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import ConfigError, DataError
from pipeline.evaluation import SeedSweep, iou_per_class, per_class
from pipeline.log import progress
from pipeline.runner import StageContext, StageResult
from stages.export_maps import MAPS_DIR, read_maps


@dataclasses.dataclass(frozen=True)
class MapEvalSettings:
    threshold: float | None = None
    sweep: tuple[float, float, float] = (0.05, 0.60, 0.01)  # start, stop (inclusive), step
    # Score only this split's images among the exported ones (VOC: maps of train_aug,
    # scored on train as in the literature); None: every exported image with GT.
    score_split: str | None = None


def evaluate_maps(ctx: StageContext) -> StageResult:
    settings = section_to_dataclass(MapEvalSettings, ctx.section("evaluate_maps"), "evaluate_maps")
    dataset = PreparedDataset.load(ctx.upstream_dir("prepare"))
    export = ctx.upstream_manifest("export_maps")
    ids = scored_ids(dataset, export["info"]["split"], settings.score_split)
    with_gt = [i for i in ids if dataset.mask_path(i) is not None]

    start, stop, step = settings.sweep
    grid = set(np.round(np.arange(start, stop + step / 2, step), 6).tolist())
    if settings.threshold is not None:
        grid.add(float(settings.threshold))
    thresholds = np.array(sorted(grid))
    sweep = SeedSweep(len(dataset.classes), thresholds, dataset.ignore_index)
    maps_dir = ctx.upstream_dir("export_maps") / MAPS_DIR
    for image_id in progress(with_gt, "evaluate_maps", total=len(with_gt)):
        maps, classes = read_maps(maps_dir / f"{image_id}.npz")
        gt = dataset.load_mask(image_id)
        if gt.shape != maps.shape[1:]:
            raise DataError(f"{maps_dir / (image_id + '.npz')}: maps {maps.shape[1:]} differ from GT {gt.shape}")
        sweep.add(maps, classes, gt)

    curve = sweep.miou_curve()
    if settings.threshold is None:
        chosen = int(np.nanargmax(curve))
        source = "best of the sweep, chosen on GT (as in the WSSS literature): an optimistic figure"
    else:
        chosen = int(np.flatnonzero(np.isclose(thresholds, settings.threshold))[0])
        source = "fixed in the config (evaluate_maps.threshold)"
    return StageResult(
        artifacts={"images_scored": len(with_gt), "images_without_gt": len(ids) - len(with_gt)},
        metrics={
            "seed_miou": float(curve[chosen]),
            "threshold": float(thresholds[chosen]),
            "per_class_iou": per_class(dataset.classes, iou_per_class(sweep.conf[chosen])),
            "curve": [[float(t), float(m)] for t, m in zip(thresholds, curve)],
        },
        info={"threshold_source": source, "threshold_chosen_on_gt": settings.threshold is None,
              "split": export["info"]["split"], "score_split": settings.score_split},
    )


def scored_ids(dataset: PreparedDataset, export_split: str, score_split: str | None) -> list[str]:
    """The exported images that are scored: all, or those in `score_split`."""
    ids = dataset.split(export_split)
    if score_split is None:
        return ids
    subset = set(dataset.split(score_split))
    scored = [i for i in ids if i in subset]
    if not scored:
        raise ConfigError(f"evaluate_maps.score_split={score_split!r} shares no image with the exported "
                          f"split '{export_split}'")
    return scored
