"""One image's chain as a run folder holds it: maps, pseudo-mask, GT and prediction
(for the report's galleries and `run_pipeline.py --show`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.artifacts import MAPS_DIR, MASKS_SUBDIR, PREDICTIONS_DIR, PSEUDO_MASKS_DIR, product_dirs, read_maps
from pipeline.datasets.masks import read_mask
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import DataError
from pipeline.report.panels import ImageChain


def chain_folders(run_dir: Path) -> dict[str, Path | None]:
    """Where a run folder holds its per-image maps, pseudo-masks (the first set the run
    made) and segmenter predictions; None for what it does not hold."""
    first = lambda kind: next(iter(product_dirs(run_dir, kind)), None)  # noqa: E731
    maps, masks, predictions = first("maps"), first("pseudo_masks"), first("predictions")
    return {"maps": maps and maps / MAPS_DIR, "pseudo_masks": masks and masks / PSEUDO_MASKS_DIR / MASKS_SUBDIR,
            "predictions": predictions and predictions / PREDICTIONS_DIR}


def load_chain(run_dir: Path, dataset: PreparedDataset, image_id: str,
               folders: dict[str, Path | None] | None = None) -> ImageChain:
    """One image's maps, pseudo-mask, GT and prediction, as far as the run folder holds them
    (`folders`: the run's `chain_folders`, when the caller loads many images of one run)."""
    if image_id not in dataset.labels:
        raise DataError(f"image '{image_id}' is not in the prepared data set of {run_dir}")
    folders = folders or chain_folders(run_dir)
    maps = []
    npz = folders["maps"] and folders["maps"] / f"{image_id}.npz"
    if npz and npz.is_file():
        values, classes = read_maps(npz)
        maps = [(dataset.classes[int(c)], m) for c, m in zip(classes, values)]

    def mask(folder: Path | None) -> np.ndarray | None:
        path = folder and folder / f"{image_id}.png"
        return read_mask(path) if path and path.is_file() else None

    return ImageChain(image_id, dataset.load_image(image_id), maps, mask(folders["pseudo_masks"]),
                      dataset.load_mask(image_id), mask(folders["predictions"]))
