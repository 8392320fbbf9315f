"""The run folder's contract: which file each stage writes, and how a reader opens it.

Stages import these names and readers, never each other; the report and the benches
read run folders through them too. A stage's folder is `<run>/<stage name>/`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.atomic import write_json, write_lines, write_text
from pipeline.datasets.masks import IGNORE_INDEX
from pipeline.errors import ConfigError

MODEL_FILE = "model.pth"  # every training stage's final weights
MAPS_DIR = "maps"  # export_maps: maps/<id>.npz (`read_maps`)
PREMISE_CURVES = "premise.json"  # check_premise: offsets, per-class curves and verdict
PREMISE_FIGURE = "premise.png"  # check_premise: those curves drawn
PSEUDO_MASKS_DIR = "pseudo_masks"  # refine_masks, random_walk: a pseudo-mask data set (below)
MASKS_SUBDIR = "SegmentationClass"  # inside PSEUDO_MASKS_DIR, as in a VOC tree
LISTS_SUBDIR = Path("ImageSets") / "Segmentation"  # inside PSEUDO_MASKS_DIR: <split>.txt
CARD = "dataset_card.json"  # inside PSEUDO_MASKS_DIR
MMSEG_CONFIG = "segmenter_config.py"  # train_segmenter: the mmseg config it trained with
PREDICTIONS_DIR = "predictions"  # evaluate_segmenter: palette PNGs
RAW_PREDICTIONS_DIR = "predictions_without_crf"  # evaluate_segmenter, when its CRF is on


def read_maps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(maps (n, H, W) float32 in [0, 1], classes (n,) indices 1..C) from one file
    `export_maps` wrote."""
    with np.load(path) as saved:
        return saved["maps"].astype(np.float32), saved["classes"]


def scored_ids(dataset, export_split: str, score_split: str | None) -> list[str]:
    """The exported images that are scored against GT: all, or those also in
    `score_split` (evaluate_maps.score_split; later stages score the same images)."""
    ids = dataset.split(export_split)
    if score_split is None:
        return ids
    subset = set(dataset.split(score_split))
    scored = [i for i in ids if i in subset]
    if not scored:
        raise ConfigError(f"evaluate_maps.score_split={score_split!r} shares no image with the exported "
                          f"split '{export_split}'")
    return scored


def write_pseudo_mask_set(root: Path, dataset, split: str, written: list[str], listed: int, failed: int,
                          pixels: np.ndarray, quality: dict[str, float], quality_meaning: str, **details) -> dict:
    """The list and card of a pseudo-mask data set whose masks are in root/MASKS_SUBDIR
    (palette PNGs, 0 background, 255 ignore): what train_segmenter and other tools read.
    `pixels`: a 256-bin histogram of the masks' values; `quality`: a GT-free per-image
    score (NaN: none). Returns the card."""
    write_lines(root / LISTS_SUBDIR / f"{split}.txt", written)
    total = max(int(pixels.sum()), 1)
    values = np.array([q for q in quality.values() if q == q], dtype=np.float64)
    card = {
        "name": f"{dataset.name} pseudo-masks",
        "format": "palette PNG of class indices at full image resolution; 0 background, 255 ignore",
        "classes": dataset.classes,
        "palette": dataset.palette[: len(dataset.classes)].tolist(),
        "ignore_index": IGNORE_INDEX,
        "images_dir": str(dataset.image_dir.resolve()),
        "image_suffix": dataset.image_suffix,
        "masks_dir": MASKS_SUBDIR,
        "split": split,
        "counts": {"images": len(written), "failed": failed, "listed": listed},
        "ignore_fraction": float(pixels[IGNORE_INDEX] / total),
        "class_pixel_share": {name: float(pixels[k] / total) for k, name in enumerate(dataset.classes)},
        **details,
        "quality": {
            "score": quality_meaning,
            "mean": float(values.mean()) if values.size else None,
            "per_image": {i: None if np.isnan(q) else round(q, 4) for i, q in quality.items()},
        },
    }
    write_json(root / CARD, card)
    write_text(root / "README.md", pseudo_mask_readme(card))
    return card


def pseudo_mask_readme(card: dict) -> str:
    """A short README for the folder: what it is, its classes and colours, how to load it."""
    classes = "\n".join(f"| {k} | {name} | {tuple(card['palette'][k])} |" for k, name in enumerate(card["classes"]))
    names = ", ".join(repr(c) for c in card["classes"])
    return f"""# {card['name']}

Pseudo-masks made from image-level labels only (weakly supervised), one PNG per image of
split '{card['split']}' ({card['counts']['images']} images), at each image's full resolution. They
are training targets for a segmenter, not ground truth. The images themselves stay where they
were: `{card['images_dir']}` (`<id>{card['image_suffix']}`).

- `{card['masks_dir']}/<id>.png`: palette PNG of class indices; 0 background, {card['ignore_index']} ignore
  (pixels the refinement was not sure of: leave them out of the loss).
- `ImageSets/Segmentation/{card['split']}.txt`: the ids, one per line.
- `dataset_card.json`: classes, palette, counts, the share of each class's pixels, and a
  GT-free quality score per image.

| index | class | colour (RGB) |
|---|---|---|
{classes}

With numpy and Pillow:

```python
import numpy as np
from PIL import Image
mask = np.array(Image.open('{card['masks_dir']}/<id>.png'))  # (H, W) uint8 class indices, 255 ignore
```

With mmsegmentation (1.x), as a dataset of a config:

```python
train_dataloader = dict(dataset=dict(
    type='BaseSegDataset', data_root='.', ann_file='ImageSets/Segmentation/{card['split']}.txt',
    data_prefix=dict(img_path='{card['images_dir']}', seg_map_path='{card['masks_dir']}'),
    img_suffix='{card['image_suffix']}', seg_map_suffix='.png', reduce_zero_label=False, ignore_index={card['ignore_index']},
    metainfo=dict(classes=({names},), palette={card['palette']})))
```
"""
