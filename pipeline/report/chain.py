"""One image's chain as a run folder holds it: maps, pseudo-mask, GT and prediction
(for the report's galleries and `run_pipeline.py --show`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.artifacts import MAPS_DIR, MASKS_SUBDIR, PREDICTIONS_DIR, PSEUDO_MASKS_DIR, read_maps
from pipeline.datasets.masks import read_mask
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import DataError
from pipeline.report.panels import ImageChain

# Where a run folder holds each stage's per-image output.
MAPS = Path("export_maps") / MAPS_DIR
PSEUDO_MASKS = Path("refine_masks") / PSEUDO_MASKS_DIR / MASKS_SUBDIR
PREDICTIONS = Path("evaluate_segmenter") / PREDICTIONS_DIR


def load_chain(run_dir: Path, dataset: PreparedDataset, image_id: str) -> ImageChain:
    """One image's maps, pseudo-mask, GT and prediction, as far as the run folder holds them."""
    if image_id not in dataset.labels:
        raise DataError(f"image '{image_id}' is not in the prepared data set of {run_dir}")
    maps = []
    npz = run_dir / MAPS / f"{image_id}.npz"
    if npz.is_file():
        values, classes = read_maps(npz)
        maps = [(dataset.classes[int(c)], m) for c, m in zip(classes, values)]

    def mask(folder: Path) -> np.ndarray | None:
        path = run_dir / folder / f"{image_id}.png"
        return read_mask(path) if path.is_file() else None

    return ImageChain(image_id, dataset.load_image(image_id), maps, mask(PSEUDO_MASKS), dataset.load_mask(image_id),
                      mask(PREDICTIONS))
