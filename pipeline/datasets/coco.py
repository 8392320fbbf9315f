"""COCO 2014 (README, 'Real data sets'): 80 classes from instance annotations.

Category ids 1..90 (with gaps) map to class indices 1..80 in id order. GT class masks
are drawn with pycocotools (polygons and RLE alike), in parallel, kept across runs:

- overlap rule: instances are painted largest area first, so where two overlap the
  smaller (usually the one in front) wins;
- crowd regions: `crowd='ignore'` paints them 255 where no instance was painted;
  `crowd='exclude'` leaves them out (background where nothing else is);
- image-level labels are the classes of the non-crowd instances.

Lists: `image_list='annotated'` keeps images with at least one annotation (82,081 train
/ 40,137 val), 'all' keeps every image (82,783 / 40,504; those without labels are
background-only). An annotated image whose annotations are all crowd has no label: it
is a bad item (an error, or a counted skip with on_bad_item='skip').
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from pipeline.datasets.checks import Skips, check_images, check_layout
from pipeline.datasets.masks import IGNORE_INDEX, save_mask, voc_palette
from pipeline.datasets.prepared import write_prepared
from pipeline.errors import ConfigError, DataError
from pipeline.log import get_logger, progress

LIST_SIZES = {("annotated", "train"): 82081, ("annotated", "val"): 40137, ("all", "train"): 82783,
              ("all", "val"): 40504}


@dataclasses.dataclass(frozen=True)
class COCOSpec:
    """The `dataset` section for type 'coco14'; folders are relative to data_root."""

    type: str = "coco14"
    data_root: str = "data/coco"
    train_images: str = "train2014"
    val_images: str = "val2014"
    annotations: str = "annotations"  # holds instances_{train,val}2014.json
    crowd: str = "ignore"  # 'ignore': crowd regions 255; 'exclude': not drawn
    image_list: str = "annotated"  # or 'all'
    masks_dir: str | None = None  # where GT masks are drawn; None: <data_root>/SegmentationClass_crowd_<crowd>
    on_bad_item: str = "error"
    n_jobs: int = -1

    def __post_init__(self) -> None:
        if self.crowd not in ("ignore", "exclude"):
            raise ConfigError(f"dataset.crowd must be 'ignore' or 'exclude', got {self.crowd!r}")
        if self.image_list not in ("annotated", "all"):
            raise ConfigError(f"dataset.image_list must be 'annotated' or 'all', got {self.image_list!r}")


def draw_mask(height: int, width: int, anns: list[dict], class_of: dict[int, int], crowd: str) -> np.ndarray:
    """The class mask of one image under the module's overlap and crowd rules."""
    from pycocotools import mask as mask_utils

    def binary(ann: dict) -> np.ndarray:
        seg = ann["segmentation"]
        if isinstance(seg, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        elif isinstance(seg["counts"], list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(seg, height, width)
        else:
            rle = seg
        return mask_utils.decode(rle).astype(bool)

    mask = np.zeros((height, width), dtype=np.uint8)
    painted = np.zeros((height, width), dtype=bool)
    for ann in sorted((a for a in anns if not a.get("iscrowd")), key=lambda a: -a["area"]):
        region = binary(ann)
        mask[region] = class_of[ann["category_id"]]
        painted |= region
    crowd_only = not painted.any() and any(a.get("iscrowd") for a in anns)
    if crowd == "ignore" or crowd_only:  # a crowd-only image is labelled by its crowd: never call it background
        for ann in (a for a in anns if a.get("iscrowd")):
            mask[binary(ann) & ~painted] = IGNORE_INDEX
    return mask


def _write_mask(path: Path, height: int, width: int, anns: list[dict], class_of: dict[int, int], crowd: str,
                palette: np.ndarray) -> str | None:
    try:
        save_mask(path, draw_mask(height, width, anns, class_of, crowd), palette)
    except (ValueError, KeyError, TypeError, OSError) as err:
        return f"{type(err).__name__}: {err}"
    return None


def prepare_coco14(spec: COCOSpec, out_dir: Path) -> dict:
    from pycocotools.coco import COCO

    log = get_logger()
    root = Path(spec.data_root).expanduser()
    ann_dir = Path(spec.annotations)
    check_layout("COCO 2014", root, {
        spec.train_images: "train images", spec.val_images: "val images",
        str(ann_dir / "instances_train2014.json"): "train instance annotations",
        str(ann_dir / "instances_val2014.json"): "val instance annotations",
    }, hint="Expected data_root holding train2014/, val2014/ and annotations/ as unpacked from cocodataset.org.")
    masks_dir = Path(spec.masks_dir).expanduser() if spec.masks_dir else root / f"SegmentationClass_crowd_{spec.crowd}"
    image_links = out_dir / "images"  # one folder for both splits' images (symlinks)
    palette = voc_palette()
    skips = Skips(spec.on_bad_item)
    classes: list[str] | None = None
    splits: dict[str, list[str]] = {}
    labels: dict[str, list[int]] = {}
    drawn = reused = crowd_only = 0
    for split, image_folder in (("train", spec.train_images), ("val", spec.val_images)):
        json_path = root / ann_dir / f"instances_{split}2014.json"
        try:
            coco = COCO(str(json_path))
        except (ValueError, KeyError) as err:
            raise DataError(f"{json_path}: not a COCO instances file ({err})") from None
        cat_ids = sorted(coco.getCatIds())
        names = ["background"] + [coco.cats[c]["name"] for c in cat_ids]
        if classes is None:
            classes = names
        elif names != classes:
            raise DataError(f"{json_path}: its categories differ from the train annotations'")
        class_of = {cat: k + 1 for k, cat in enumerate(cat_ids)}
        entries, listed = [], 0
        for img_id in sorted(coco.imgs):
            info = coco.imgs[img_id]
            anns = coco.imgToAnns.get(img_id, [])
            if spec.image_list == "annotated" and not anns:
                continue
            image_id = Path(info["file_name"]).stem
            listed += 1
            # Labels from the instances; an image with crowd annotations only is labelled by its
            # crowd categories (its mask is 255 over the crowd), as in the published lists.
            found = sorted({class_of[a["category_id"]] for a in anns if not a.get("iscrowd")}) or \
                sorted({class_of[a["category_id"]] for a in anns})
            crowd_only += bool(anns) and all(a.get("iscrowd") for a in anns)
            entries.append((image_id, info, anns))
            labels[image_id] = found
        expected = LIST_SIZES[(spec.image_list, split)]
        if len(coco.imgs) == LIST_SIZES[("all", split)] and listed != expected:
            log.warning("prepare: COCO %s list has %d images, %d expected for image_list=%r", split, listed,
                        expected, spec.image_list)
        sizes = check_images({e[0]: root / image_folder / e[1]["file_name"] for e in entries}, skips, spec.n_jobs,
                             what=f"prepare: COCO {split}")
        for image_id, info, _ in entries:
            if image_id in sizes and sizes[image_id] != (info["width"], info["height"]):
                skips.add("size differs from annotation", image_id, f"{root / image_folder / info['file_name']}: "
                          f"image is {sizes.pop(image_id)}, the annotations say {(info['width'], info['height'])}")
        entries = [e for e in entries if e[0] in sizes]
        for image_id, info, _ in entries:
            link = image_links / f"{image_id}.jpg"
            if not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink((root / image_folder / info["file_name"]).resolve(), link)
        todo = [e for e in entries if not (masks_dir / f"{e[0]}.png").is_file()]
        reused += len(entries) - len(todo)
        jobs = (delayed(_write_mask)(masks_dir / f"{i}.png", info["height"], info["width"], anns, class_of,
                                     spec.crowd, palette) for i, info, anns in todo)
        results = Parallel(n_jobs=spec.n_jobs, return_as="generator", batch_size=32)(jobs)
        for (image_id, _, _), error in zip(todo, progress(results, f"prepare: COCO {split} masks", total=len(todo))):
            if error is not None:
                raise DataError(f"{json_path}: cannot draw the mask of {image_id}: {error}")
            drawn += 1
        splits[split] = [e[0] for e in entries]
    skips.check()
    for split, ids in splits.items():
        if not ids:
            raise DataError(f"COCO split '{split}' has no usable image ({root / ann_dir})")
    kept = set(splits["train"]) | set(splits["val"])
    write_prepared(out_dir, name="coco14", classes=classes, palette=palette, image_dir=image_links,
                   image_suffix=".jpg", mask_dir=masks_dir, splits=splits,
                   labels={i: v for i, v in labels.items() if i in kept})
    return {
        "artifacts": {"train_images": len(splits["train"]), "val_images": len(splits["val"]), "masks_drawn": drawn,
                      "masks_reused": reused, "skipped": skips.total(),
                      "crowd_only_images": crowd_only},
        "info": {"classes": classes, "skipped": skips.report("prepare"), "crowd": spec.crowd,
                 "image_list": spec.image_list, "masks_dir": str(masks_dir)},
    }
