"""GT-free statistics of exported class maps and the GT-free threshold (numpy only: the
evaluation stage and the benches read maps without torch)."""

from __future__ import annotations

import numpy as np

HISTOGRAM_BINS = 1000
# A map is "collapsed" where its mean is below / above these: about 0 or 1 everywhere.
# BAS's training diagnostics and evaluate_maps' per-class statistics both count it so.
COLLAPSED_BELOW, COLLAPSED_ABOVE = 0.02, 0.98


class MapStatistics:
    """GT-free statistics of the exported maps, per class: how many images carry the
    class, the mean of its maps, and the share of them that collapsed. A class whose
    maps mostly collapsed gets no seeds, whatever the threshold: said, not hidden."""

    def __init__(self, classes: list[str]):
        self.classes = classes
        self.images = np.zeros(len(classes), dtype=np.int64)
        self.mean_sum = np.zeros(len(classes))
        self.collapsed = np.zeros(len(classes), dtype=np.int64)

    def add(self, maps: np.ndarray, classes: np.ndarray) -> None:
        self.add_means(classes, self.image_means(maps, classes))

    @staticmethod
    def image_means(maps: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """The mean of each of an image's maps: all `add` needs of the image."""
        return maps.reshape(len(classes), -1).mean(1) if len(classes) else np.zeros(0)

    def add_means(self, classes: np.ndarray, means: np.ndarray) -> None:
        for c, m in zip(classes, means):
            self.images[c] += 1
            self.mean_sum[c] += m
            self.collapsed[c] += bool(m < COLLAPSED_BELOW or m > COLLAPSED_ABOVE)

    def summary(self) -> dict[str, dict]:
        return {self.classes[c]: {"images": int(self.images[c]), "mean": float(self.mean_sum[c] / self.images[c]),
                                  "collapsed_share": float(self.collapsed[c] / self.images[c])}
                for c in range(1, len(self.classes)) if self.images[c]}

    def collapsed_classes(self, share: float = 0.5) -> list[str]:
        return [name for name, s in self.summary().items() if s["collapsed_share"] > share]


def strongest_value_histogram(maps: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Counts of each pixel's strongest class-map value, in HISTOGRAM_BINS bins over [0, 1]."""
    if not len(classes):
        return np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    bins = np.minimum((maps.max(0) * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
    return np.bincount(bins.ravel(), minlength=HISTOGRAM_BINS)


def otsu_threshold(histogram: np.ndarray) -> float:
    """Otsu's threshold (scikit-image) of a histogram over [0, 1]: the cut that
    maximises the variance between the two groups it makes. scikit-image returns the
    centre of the last bin of the lower group; the cut is that bin's upper edge."""
    from skimage.filters import threshold_otsu

    if np.count_nonzero(histogram) < 2:  # no values, or all alike (constant maps): no cut makes two groups
        return 0.5
    centres = (np.arange(len(histogram)) + 0.5) / len(histogram)
    return round(float(threshold_otsu(hist=(histogram, centres))) + 0.5 / len(histogram), 6)
