"""The background threshold t of the seeds argmax([t, class maps]), and the
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

from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import ConfigError, DataError
from pipeline.evaluation import SeedSweep, iou_per_class, per_class
from pipeline.map_statistics import (COLLAPSED_ABOVE, COLLAPSED_BELOW, HISTOGRAM_BINS, MapStatistics, otsu_threshold,
                                     strongest_value_histogram)
from pipeline.log import get_logger, progress
from pipeline.per_image import PerImage
from pipeline.runner import StageContext, StageResult
from pipeline.stage import register_stage
from pipeline.artifacts import ClassMaps, PreparedData, SeedScores, scored_ids

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


@register_stage(
    step=6, consumes=(PreparedData, ClassMaps), produces=SeedScores, settings=MapEvalSettings,
    description="the background threshold t (without GT by default) and seed mIoU where GT exists",
    headline=("seed_miou", "seed mIoU"),
    distributed=True)  # sharded: each process does every world_size-th image
def evaluate_maps(ctx: StageContext) -> StageResult:
    settings = ctx.settings()
    dataset = ctx.input(PreparedData).load()
    class_maps = ctx.input(ClassMaps)
    split = class_maps.split
    exported = dataset.split(split)
    # Each process reads its share of the maps; histograms and confusion matrices add
    # up, and the per-image means are gathered to be summed in one order.
    work = PerImage("evaluate_maps", exported)
    histogram, statistics = _map_statistics(work, class_maps, dataset)
    collapsed = statistics.collapsed_classes()
    log = get_logger()
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
    threshold, source = _threshold_rule(settings, auto)
    scored = set(scored_ids(dataset, split, settings.score_split))
    sweep, with_gt = _sweep(work, [i for i in work.mine if i in scored], class_maps, dataset, settings, threshold)
    if threshold is None and not with_gt:
        raise ConfigError("evaluate_maps.threshold='oracle' picks t on GT, and no exported image has a GT "
                          "mask; use threshold='auto' (no GT needed) or a number")
    metrics: dict = {"auto_threshold": auto, "map_statistics_per_class": statistics.summary(),
                     "collapsed_classes": collapsed}
    if with_gt:
        metrics.update(_sweep_metrics(sweep, threshold, dataset.classes, settings))
        threshold = metrics["threshold"]
        log.info("evaluate_maps: t = %.3f (%s): seed mIoU %.1f%% on %d images with GT; the oracle t = %.2f gives "
                 "%.1f%% (%.1f points above)", threshold, settings.threshold, 100 * metrics["seed_miou"], with_gt,
                 metrics["oracle_threshold"], 100 * metrics["oracle_seed_miou"], 100 * metrics["gap_to_oracle"])
    else:
        log.info("evaluate_maps: t = %.3f (%s); no exported image has GT, so nothing is scored", threshold,
                 settings.threshold)
    metrics["threshold"] = threshold
    return StageResult(
        artifact=SeedScores(ctx.out_dir, threshold=threshold, split=split, score_split=settings.score_split,
                            rule=settings.threshold if isinstance(settings.threshold, str) else "fixed",
                            seed_miou=metrics.get("seed_miou")),
        artifacts={"images": len(exported), "images_scored": with_gt, "images_without_gt": len(exported) - with_gt},
        metrics=metrics,
        info={"threshold_source": source, "threshold_chosen_on_gt": settings.threshold == "oracle",
              "split": split, "score_split": settings.score_split, **work.record()},
    )


def _map_statistics(work: PerImage, class_maps: ClassMaps, dataset: PreparedDataset) -> tuple[np.ndarray, MapStatistics]:
    """The pooled histogram of every pixel's strongest class-map value, and per-class map
    statistics, over every process's images (means summed in the split's order)."""
    histogram = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    means = {}
    for image_id in work.progress(work.mine, "map histogram"):
        maps, classes = class_maps.read_image(image_id)
        histogram += strongest_value_histogram(maps, classes)
        means[image_id] = (classes, MapStatistics.image_means(maps, classes))
    histogram, means = work.gather(histogram), work.gather(means)
    statistics = MapStatistics(dataset.classes)
    for image_id in work.items:
        statistics.add_means(*means[image_id])
    return histogram, statistics


def _threshold_rule(settings: MapEvalSettings, auto: float) -> tuple[float | None, str]:
    """(t, how it was chosen); t None: the oracle, chosen after the sweep."""
    if settings.threshold == "auto":
        return auto, "auto: Otsu's threshold of the strongest class-map values (no GT)"
    if settings.threshold == "oracle":
        return None, "oracle: best of the sweep, chosen on GT (as in the WSSS literature): an optimistic figure"
    return float(settings.threshold), "fixed in the config (evaluate_maps.threshold)"


def _sweep(work: PerImage, ids: list[str], class_maps: ClassMaps, dataset: PreparedDataset, settings: MapEvalSettings,
           threshold: float | None) -> tuple[SeedSweep, int]:
    """The seeds' confusion counts at every threshold of the sweep (and t), over every process."""
    start, stop, step = settings.sweep
    grid = set(np.round(np.arange(start, stop + step / 2, step), 6).tolist())
    if threshold is not None:
        grid.add(threshold)
    sweep = SeedSweep(len(dataset.classes), np.array(sorted(grid)), dataset.ignore_index)
    with_gt = 0
    for image_id in progress(ids, "evaluate_maps: seeds against GT"):
        gt = dataset.load_mask(image_id)
        if gt is None:
            continue
        maps, classes = class_maps.read_image(image_id)
        if gt.shape != maps.shape[1:]:
            raise DataError(f"{class_maps.path(image_id)}: maps {maps.shape[1:]} differ from GT {gt.shape}")
        sweep.add(maps, classes, gt)
        with_gt += 1
    sweep.conf = work.gather(sweep.conf)
    return sweep, work.gather(with_gt)


def _sweep_metrics(sweep: SeedSweep, threshold: float | None, classes: list[str],
                   settings: MapEvalSettings) -> dict:
    curve = sweep.miou_curve()
    best = int(np.nanargmax(curve))
    chosen = best if threshold is None else int(np.flatnonzero(np.isclose(sweep.thresholds, threshold))[0])
    if sweep.thresholds[best] in (sweep.thresholds[0], sweep.thresholds[-1]):
        get_logger().warning("evaluate_maps: the best threshold on GT, %.2f, lies on the edge of the sweep %s; "
                             "widen evaluate_maps.sweep", sweep.thresholds[best], settings.sweep)
    return {
        "threshold": float(sweep.thresholds[chosen]),
        "seed_miou": float(curve[chosen]),
        "oracle_threshold": float(sweep.thresholds[best]),
        "oracle_seed_miou": float(curve[best]),
        "gap_to_oracle": float(curve[best] - curve[chosen]),
        "per_class_iou": per_class(classes, iou_per_class(sweep.conf[chosen])),
        "oracle_per_class_iou": per_class(classes, iou_per_class(sweep.conf[best])),
        "curve": [[float(t), float(m)] for t, m in zip(sweep.thresholds, curve)],
    }
