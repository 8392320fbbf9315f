"""mIoU from confusion matrices (numpy bincount), for every stage that scores masks.

Rows are ground truth, columns predictions; GT pixels equal to `ignore_index` are left
out. A class absent from both GT and prediction has no IoU (NaN) and is left out of
the mean, as in VOC's and mmsegmentation's evaluation.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import DataError


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    valid = gt != ignore_index
    g, p = gt[valid].astype(np.int64), pred[valid].astype(np.int64)
    if g.size and (g.max() >= num_classes or p.max() >= num_classes):
        raise DataError(f"class index {max(g.max(), p.max())} outside 0..{num_classes - 1} (or {ignore_index})")
    return np.bincount(g * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(conf: np.ndarray) -> float:
    iou = iou_per_class(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


class SeedSweep:
    """Confusion matrices of the seeds argmax([t, maps]) for many thresholds t at once.

    A pixel whose best class map value is v shows that class for every t < v and
    background otherwise, so one bincount over (gt, class, bin of v) per image gives
    every threshold's confusion matrix.
    """

    def __init__(self, num_classes: int, thresholds: np.ndarray, ignore_index: int = 255):
        self.k, self.ignore_index = num_classes, ignore_index
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.conf = np.zeros((len(self.thresholds), num_classes, num_classes), dtype=np.int64)

    def add(self, maps: np.ndarray, classes: np.ndarray, gt: np.ndarray) -> None:
        """maps (n, H, W) in [0, 1] for the image's classes `classes` (n,); gt (H, W)."""
        valid = gt != self.ignore_index
        g = gt[valid].astype(np.int64)
        if g.size and g.max() >= self.k:
            raise DataError(f"GT class index {g.max()} outside 0..{self.k - 1}")
        if len(classes) == 0:
            self.conf[:, :, 0] += np.bincount(g, minlength=self.k)
            return
        best = maps.argmax(0)[valid]
        value = maps.max(0)[valid].astype(np.float64)
        cls = np.asarray(classes, dtype=np.int64)[best]
        n_bins = len(self.thresholds) + 1
        bins = np.searchsorted(self.thresholds, value, side="left")  # thresholds below v
        hist = np.bincount((g * self.k + cls) * n_bins + bins, minlength=self.k * self.k * n_bins)
        hist = hist.reshape(self.k, self.k, n_bins)
        # foreground at threshold i: pixels with more than i thresholds below their value
        fg = np.cumsum(hist[:, :, ::-1], axis=-1)[:, :, ::-1][:, :, 1:]  # (K, K, T)
        fg = fg.transpose(2, 0, 1)
        self.conf += fg
        self.conf[:, :, 0] += hist.sum((1, 2))[None, :] - fg.sum(2)

    def miou_curve(self) -> np.ndarray:
        return np.array([mean_iou(c) for c in self.conf])


def image_miou(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = 255) -> float:
    """mIoU of one image over the classes in its GT or prediction (ignored pixels left out)."""
    valid = pred != ignore_index
    conf = confusion_matrix(np.where(valid, gt, ignore_index), np.where(valid, pred, 0), num_classes, ignore_index)
    return float(np.nanmean(iou_per_class(conf))) if conf.sum() else float("nan")


def per_class(class_names: list[str], values: np.ndarray) -> dict[str, float | None]:
    """{class name: value}, NaN (undefined) as None so that it survives JSON."""
    return {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, values)}


def precision_recall(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class: precision = TP / predicted, recall = TP / GT (NaN where undefined)."""
    tp = np.diag(conf).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(conf.sum(0) > 0, tp / conf.sum(0), np.nan)
        recall = np.where(conf.sum(1) > 0, tp / conf.sum(1), np.nan)
    return precision, recall


class MaskScore:
    """Accumulates predicted masks that may hold `ignore_index` themselves (pseudo-masks).

    Pixels ignored in GT are left out. Pixels the prediction ignores are counted apart
    (`ignored_share`) and left out of the confusion matrix: mIoU "ignored excluded".
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.k, self.ignore_index = num_classes, ignore_index
        self.conf = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.labelled_pixels = 0
        self.ignored_pixels = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        if pred.shape != gt.shape:
            raise DataError(f"prediction {pred.shape} and GT {gt.shape} differ in size")
        labelled = gt != self.ignore_index
        ignored = labelled & (pred == self.ignore_index)
        self.labelled_pixels += int(labelled.sum())
        self.ignored_pixels += int(ignored.sum())
        gt = np.where(ignored, self.ignore_index, gt)
        self.conf += confusion_matrix(gt, np.where(ignored, 0, pred), self.k, self.ignore_index)

    def merge(self, other: "MaskScore") -> None:
        """Add another score's counts (another worker's or process's images)."""
        self.conf += other.conf
        self.labelled_pixels += other.labelled_pixels
        self.ignored_pixels += other.ignored_pixels

    def summary(self, class_names: list[str]) -> dict:
        precision, recall = precision_recall(self.conf)
        return {
            "miou": mean_iou(self.conf),
            "ignored_share": self.ignored_pixels / max(self.labelled_pixels, 1),
            "per_class_iou": per_class(class_names, iou_per_class(self.conf)),
            "precision": per_class(class_names, precision),
            "recall": per_class(class_names, recall),
        }


def rank_correlation(quality: dict[str, float], image_miou: dict[str, float]) -> float | None:
    """Spearman's rho between the GT-free quality score and the true per-image mIoU."""
    pairs = [(quality[i], m) for i, m in image_miou.items() if not (np.isnan(m) or np.isnan(quality[i]))]
    if len(pairs) < 3:
        return None
    from scipy.stats import spearmanr

    rho = spearmanr(*zip(*pairs)).statistic
    return None if np.isnan(rho) else float(rho)
