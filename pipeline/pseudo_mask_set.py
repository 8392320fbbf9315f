"""The pseudo-mask data set a refinement writes: a folder a user takes home.

    <set>/SegmentationClass/<id>.png   palette PNGs of class indices, 0 background, 255 ignore
    <set>/JPEGImages/<id>.jpg          the images (hard-linked by default)
    <set>/ImageSets/Segmentation/<split>.txt
    <set>/dataset_card.json            classes, palette, counts, scores, recipe, quality
    <set>/pseudo_mask_dataset.py       its mmseg dataset class, paths relative to itself
    <set>/README.md

Everything by relative paths: the folder can be moved, archived and loaded by mmseg alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from pipeline.artifacts import CARD, LISTS_SUBDIR, MASKS_SUBDIR
from pipeline.atomic import write_json, write_lines, write_text
from pipeline.datasets.masks import IGNORE_INDEX
from pipeline.errors import ConfigError

IMAGES_SUBDIR = "JPEGImages"  # inside PSEUDO_MASKS_DIR: the images, so the set stands alone
LOADER_MODULE = "pseudo_mask_dataset.py"  # inside PSEUDO_MASKS_DIR: its mmseg dataset class
IMAGE_MODES = ("hardlink", "copy", "symlink")


def check_image_mode(mode: str, key: str) -> None:
    if mode not in IMAGE_MODES:
        raise ConfigError(f"{key}={mode!r}: choose one of {', '.join(IMAGE_MODES)}")


def place_image(source: Path, target: Path, mode: str) -> None:
    """The image at `target` inside the set. 'hardlink' (the default) costs no disk and
    survives moving or archiving the set; across file systems it falls back to a copy.
    'symlink' points at the source (the set then moves only with its images)."""
    if target.exists() or target.is_symlink():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        target.symlink_to(source.resolve())
        return
    if mode == "hardlink":
        try:
            os.link(source, target)
            return
        except OSError:  # another file system, or links not allowed: copy
            pass
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def write_pseudo_mask_set(root: Path, dataset, split: str, written: list[str], listed: int, failed: int,
                          pixels: np.ndarray, quality: dict[str, float], quality_meaning: str,
                          images: str, scores: dict, **details) -> dict:
    """The list, images, loader and card of a pseudo-mask data set whose masks are in
    root/MASKS_SUBDIR (palette PNGs, 0 background, 255 ignore): a folder that holds
    everything by relative paths, so it can be moved, archived and loaded by mmseg
    alone. `images`: how the images enter it (IMAGE_MODES); `pixels`: a 256-bin histogram
    of the masks' values; `quality`: a GT-free per-image score (NaN: none); `scores`:
    its figures against GT where GT exists. Returns the card."""
    for image_id in written:
        place_image(dataset.image_path(image_id), root / IMAGES_SUBDIR / f"{image_id}{dataset.image_suffix}", images)
    write_lines(root / LISTS_SUBDIR / f"{split}.txt", written)
    total = max(int(pixels.sum()), 1)
    values = np.array([q for q in quality.values() if q == q], dtype=np.float64)
    card = {
        "name": f"{dataset.name} pseudo-masks",
        "format": "palette PNG of class indices at full image resolution; 0 background, 255 ignore",
        "classes": dataset.classes,
        "palette": dataset.palette[: len(dataset.classes)].tolist(),
        "ignore_index": IGNORE_INDEX,
        "images_dir": IMAGES_SUBDIR,
        "images": images,
        "image_suffix": dataset.image_suffix,
        "masks_dir": MASKS_SUBDIR,
        "list": str(LISTS_SUBDIR / f"{split}.txt"),
        "split": split,
        "counts": {"images": len(written), "failed": failed, "listed": listed},
        "scores": scores,
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
    write_text(root / LOADER_MODULE, pseudo_mask_loader(card))
    write_text(root / "README.md", pseudo_mask_readme(card))
    return card


def set_scores(metrics: dict, scored: int) -> dict:
    """A pseudo-mask set's own figures against GT (None without GT), for its card and README."""
    return {"images_scored": scored, **{k: metrics.get(k) for k in ("miou", "seed_miou", "quality_rank_correlation")}}


def signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def pseudo_mask_loader(card: dict) -> str:
    """A module for the set's folder that registers it as an mmseg dataset, `PseudoMaskSet`,
    found relative to the module's own file: mmseg alone loads it, from anywhere."""
    classes = ", ".join(repr(c) for c in card["classes"])
    return f'''"""mmsegmentation dataset of the pseudo-mask set in this folder ({card['name']}).

Put this folder on PYTHONPATH (or sys.path) and name the module in a config:
    custom_imports = dict(imports=['pseudo_mask_dataset'], allow_failed_imports=False)
    train_dataloader = dict(dataset=dict(type='PseudoMaskSet', pipeline=train_pipeline))
Paths are relative to this file, so the folder can be moved or archived as it is.
"""
import importlib.util
import os
import sys
import types

if importlib.util.find_spec("mmcv") and importlib.util.find_spec("mmcv._ext") is None and "mmcv.ops" not in sys.modules:
    # mmcv-lite has no compiled ops, which mmseg imports but a dataset never calls
    def _missing(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def op(*args, **kwargs):
            raise ImportError(f"mmcv.ops.{{name}} needs the full mmcv (this environment has mmcv-lite)")
        return op
    sys.modules["mmcv.ops"] = types.ModuleType("mmcv.ops")
    sys.modules["mmcv.ops"].__getattr__ = _missing

from mmseg.datasets import BaseSegDataset  # noqa: E402
from mmseg.registry import DATASETS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


@DATASETS.register_module(force=True)
class PseudoMaskSet(BaseSegDataset):
    METAINFO = dict(classes=({classes},), palette={card['palette']})

    def __init__(self, data_root=HERE, ann_file={card['list']!r},
                 data_prefix=dict(img_path={card['images_dir']!r}, seg_map_path={card['masks_dir']!r}), **kwargs):
        kwargs.setdefault("img_suffix", {card['image_suffix']!r})
        kwargs.setdefault("seg_map_suffix", ".png")
        kwargs.setdefault("reduce_zero_label", False)
        kwargs.setdefault("ignore_index", {card['ignore_index']})
        super().__init__(data_root=data_root, ann_file=ann_file, data_prefix=data_prefix, **kwargs)
'''


def pseudo_mask_readme(card: dict) -> str:
    """The folder's README: what it is, how good it is, how it was made, how to load it."""
    classes = "\n".join(f"| {k} | {name} | {tuple(card['palette'][k])} |" for k, name in enumerate(card["classes"]))
    scores = card["scores"]
    if scores.get("miou") is not None:
        quality = signed(scores.get("quality_rank_correlation"))
        scored = (f"mIoU against the ground truth: **{100 * scores['miou']:.1f} %** on {scores['images_scored']} "
                  f"images (seeds before refinement: {100 * scores['seed_miou']:.1f} %). The GT-free quality score "
                  f"ranks the images with Spearman's rho {quality} against their true mIoU: near +1, the score "
                  f"finds the worst masks without GT.")
    else:
        scored = "No ground truth was available: no mIoU. The card's GT-free quality score ranks the masks."
    made = card.get("made_by", {})
    return f"""# {card['name']}

Pseudo-masks made from image-level labels only (weakly supervised), one PNG per image of
split '{card['split']}' ({card['counts']['images']} images, {card['counts']['failed']} failed and left out), at each
image's full resolution, with the images. They are training targets for a segmenter, not
ground truth.

{scored}

Made by `{made.get('command', '?')}` (run `{made.get('run', '?')}`, stage `{made.get('stage', '?')}`, code digest
`{made.get('code_digest', '?')}`); the recipe is `recipe` in `dataset_card.json`.

- `{card['images_dir']}/<id>{card['image_suffix']}`: the images ({card['images']} of the originals).
- `{card['masks_dir']}/<id>.png`: palette PNG of class indices; 0 background, {card['ignore_index']} ignore
  (pixels the refinement was not sure of: leave them out of the loss).
- `{card['list']}`: the ids, one per line.
- `pseudo_mask_dataset.py`: the mmseg dataset class `PseudoMaskSet` (paths relative to itself).
- `dataset_card.json`: classes, palette, counts, scores, the recipe, the share of each class's
  pixels, and a GT-free quality score per image.

| index | class | colour (RGB) |
|---|---|---|
{classes}

With numpy and Pillow (from this folder):

```python
import numpy as np
from PIL import Image
mask = np.array(Image.open('{card['masks_dir']}/<id>.png'))  # (H, W) uint8 class indices, 255 ignore
```

With mmsegmentation 1.x, from anywhere (this folder on PYTHONPATH):

```python
custom_imports = dict(imports=['pseudo_mask_dataset'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='PseudoMaskSet', pipeline=train_pipeline))
```
"""
