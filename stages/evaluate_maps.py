"""Stage 6 of 12: the background threshold t of the seeds argmax([t, class maps]), and the
seeds' mIoU against GT where GT exists.

`threshold='auto'` (the default) picks t without GT: Otsu's threshold of the pooled
histogram of every pixel's strongest class-map value over the exported images (the t
that best splits those values into two groups, foreground and background; see
`otsu_threshold`). `threshold='oracle'` keeps the best t of the GT sweep, as the WSSS
literature does: an optimistic figure that looks at GT, and the manifest says so. A
number fixes t. Whatever the choice, images with GT are scored over the whole sweep,
so the manifest gives the chosen t's seed mIoU next to the oracle's, and the gap.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline import distributed
from pipeline.config import section_to_dataclass
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import ConfigError, DataError
from pipeline.evaluation import COLLAPSED_ABOVE, COLLAPSED_BELOW, SeedSweep, iou_per_class, per_class
from pipeline.maps import HISTOGRAM_BINS, MapStatistics, otsu_threshold, strongest_value_histogram
from pipeline.log import get_logger, progress
from pipeline.runner import StageContext, StageResult
from pipeline.artifacts import MAPS_DIR, read_maps, scored_ids

THRESHOLD_RULES = ("auto", "oracle")


@dataclasses.dataclass(frozen=True)
class MapEvalSettings:
    threshold: float | str = "auto"  # 'auto' (no GT), 'oracle' (best on GT), or a number
    sweep: tuple[float, float, float] = (0.05, 0.95, 0.01)  # start, stop (inclusive), step
    # Score only this split's images among the exported ones (VOC: maps of train_aug,
    # scored on train as in the literature); None: every exported image with GT.
    score_split: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.threshold, str) and self.threshold not in THRESHOLD_RULES:
            raise ConfigError(f"evaluate_maps.threshold must be 'auto', 'oracle' or a number, got {self.threshold!r}")


def evaluate_maps(ctx: StageContext) -> StageResult:
    settings = section_to_dataclass(MapEvalSettings, ctx.section("evaluate_maps"), "evaluate_maps")
    dataset = PreparedDataset.load(ctx.upstream_dir("prepare"))
    export = ctx.upstream_manifest("export_maps")
    exported = dataset.split(export["info"]["split"])
    scored = set(scored_ids(dataset, export["info"]["split"], settings.score_split))
    log = get_logger()

    maps_dir = ctx.upstream_dir("export_maps") / MAPS_DIR
    # Each process reads its share of the maps; histograms and confusion matrices add
    # up, and the per-image means are gathered to be summed in one order.
    mine = distributed.shard(exported)
    histogram = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    means = {}
    for image_id in progress(mine, "evaluate_maps: map histogram", total=len(mine)):
        maps, classes = read_maps(maps_dir / f"{image_id}.npz")
        histogram += strongest_value_histogram(maps, classes)
        means[image_id] = (classes, MapStatistics.image_means(maps, classes))
    shards = distributed.shard_record(len(mine))
    histogram = sum(distributed.gather(histogram))
    means = {k: v for part in distributed.gather(means) for k, v in part.items()}
    statistics = MapStatistics(dataset.classes)
    for image_id in exported:
        statistics.add_means(*means[image_id])
    collapsed = statistics.collapsed_classes()
    if collapsed:
        log.warning("evaluate_maps: the maps of %s collapsed (mean below %.2f or above %.2f) on more than half of "
                    "their images: those classes get (almost) no seeds. See map_statistics_per_class in the "
                    "manifest and the localizer's diag_* terms", ", ".join(collapsed), COLLAPSED_BELOW,
                    COLLAPSED_ABOVE)
    auto = otsu_threshold(histogram)
    if np.count_nonzero(histogram) < 2:
        log.warning("evaluate_maps: every pixel's strongest class-map value is the same (%s): the maps are "
                    "constant, the localizer learned no localization; 'auto' falls back to t = 0.5",
                    "no maps" if not histogram.any() else f"bin {int(histogram.argmax())} of {HISTOGRAM_BINS}")

    if settings.threshold == "auto":
        threshold, source = auto, "auto: Otsu's threshold of the strongest class-map values (no GT)"
    elif settings.threshold == "oracle":
        threshold = None
        source = "oracle: best of the sweep, chosen on GT (as in the WSSS literature): an optimistic figure"
    else:
        threshold, source = float(settings.threshold), "fixed in the config (evaluate_maps.threshold)"
    start, stop, step = settings.sweep
    grid = set(np.round(np.arange(start, stop + step / 2, step), 6).tolist())
    if threshold is not None:
        grid.add(threshold)
    sweep = SeedSweep(len(dataset.classes), np.array(sorted(grid)), dataset.ignore_index)
    with_gt = 0
    for image_id in progress([i for i in mine if i in scored], "evaluate_maps: seeds against GT"):
        gt = dataset.load_mask(image_id)
        if gt is None:
            continue
        maps, classes = read_maps(maps_dir / f"{image_id}.npz")
        if gt.shape != maps.shape[1:]:
            raise DataError(f"{maps_dir / (image_id + '.npz')}: maps {maps.shape[1:]} differ from GT {gt.shape}")
        sweep.add(maps, classes, gt)
        with_gt += 1
    sweep.conf = sum(distributed.gather(sweep.conf))
    with_gt = sum(distributed.gather(with_gt))
    if threshold is None and not with_gt:
        raise ConfigError("evaluate_maps.threshold='oracle' picks t on GT, and no exported image has a GT "
                          "mask; use threshold='auto' (no GT needed) or a number")

    metrics: dict = {"auto_threshold": auto, "map_statistics_per_class": statistics.summary(),
                     "collapsed_classes": collapsed}
    if with_gt:
        curve = sweep.miou_curve()
        best = int(np.nanargmax(curve))
        chosen = best if threshold is None else int(np.flatnonzero(np.isclose(sweep.thresholds, threshold))[0])
        threshold = float(sweep.thresholds[chosen])
        grid_edges = (sweep.thresholds[0], sweep.thresholds[-1])
        if sweep.thresholds[best] in grid_edges:
            log.warning("evaluate_maps: the best threshold on GT, %.2f, lies on the edge of the sweep %s; widen "
                        "evaluate_maps.sweep", sweep.thresholds[best], settings.sweep)
        metrics.update({
            "seed_miou": float(curve[chosen]),
            "oracle_threshold": float(sweep.thresholds[best]),
            "oracle_seed_miou": float(curve[best]),
            "gap_to_oracle": float(curve[best] - curve[chosen]),
            "per_class_iou": per_class(dataset.classes, iou_per_class(sweep.conf[chosen])),
            "oracle_per_class_iou": per_class(dataset.classes, iou_per_class(sweep.conf[best])),
            "curve": [[float(t), float(m)] for t, m in zip(sweep.thresholds, curve)],
        })
        log.info("evaluate_maps: t = %.3f (%s): seed mIoU %.1f%% on %d images with GT; the oracle t = %.2f gives "
                 "%.1f%% (%.1f points above)", threshold, settings.threshold, 100 * curve[chosen], with_gt,
                 sweep.thresholds[best], 100 * curve[best], 100 * (curve[best] - curve[chosen]))
    else:
        log.info("evaluate_maps: t = %.3f (%s); no exported image has GT, so nothing is scored", threshold,
                 settings.threshold)
    metrics["threshold"] = threshold
    return StageResult(
        artifacts={"images": len(exported), "images_scored": with_gt, "images_without_gt": len(exported) - with_gt},
        metrics=metrics,
        info={"threshold_source": source, "threshold_chosen_on_gt": settings.threshold == "oracle",
              "split": export["info"]["split"], "score_split": settings.score_split, **shards},
    )
