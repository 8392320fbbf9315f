"""COCO (2014 or 2017 layout) from instance annotations, in any class space.

Layout under `data_root`: one image folder per split, `<split><year>/` (train2014,
val2017, ...), and `annotations/<ann_file>` with `{split}` standing for that folder's
name (default `instances_{split}.json`). Splits whose folder is absent are left out
(logged); at least one must be there.

Class space (`classes`): 'all' (every category of the JSON, ids 1..90 with gaps ->
1..80 in id order), a list of category names, or the preset 'voc20' (COCO's names
mapped to VOC's 20, in VOC's order: airplane -> aeroplane, motorcycle -> motorbike,
couch -> sofa, dining table -> diningtable, potted plant -> pottedplant, tv ->
tvmonitor). Objects of other categories are background (COCO's WSSS practice).

GT masks, drawn with pycocotools (polygons and RLE), in parallel, cached:
- overlap rule: instances are painted largest area first, so where two overlap the
  smaller (usually the one in front) wins;
- crowd regions of a chosen class: `crowd='ignore'` paints them 255 where no instance
  was painted; `crowd='exclude'` leaves them out;
- image-level labels are the chosen classes of the non-crowd instances (an image whose
  chosen objects are all crowd is labelled by them; its mask is 255 over the crowd).

Negatives, images without any chosen class (their objects are all of other
categories, or, with `image_list='all'`, they have no annotation): `negatives='keep'`
lists them with no label (background-only images: every localizer trains on them,
see `pipeline/models/base.py`), 'drop' leaves them out; counted either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from pipeline.datasets.checks import Skips, check_images, check_layout, require_data_root
from pipeline.datasets.masks import IGNORE_INDEX, save_mask, voc_palette
from pipeline.datasets.prepared import write_prepared
from pipeline.datasets.registry import DATASETS, DataSource
from pipeline.datasets.masks import VOC_CLASSES
from pipeline.errors import ConfigError, DataError
from pipeline.log import get_logger, progress

LIST_SIZES = {("annotated", "train2014"): 82081, ("annotated", "val2014"): 40137, ("all", "train2014"): 82783,
              ("all", "val2014"): 40504}
# COCO category name -> VOC class name, where they differ (the other 14 share their names)
VOC_NAMES = {"airplane": "aeroplane", "motorcycle": "motorbike", "couch": "sofa", "dining table": "diningtable",
             "potted plant": "pottedplant", "tv": "tvmonitor"}
CLASS_PRESETS = ("all", "voc20")


@dataclasses.dataclass(frozen=True)
class COCOSpec:
    """The `dataset` section for type 'coco' (and 'coco14', the same with year 2014)."""

    type: str = "coco"
    data_root: str | None = "data/coco"  # None (the real-photo configs): must be set by the user
    year: int | None = None  # 2014 or 2017; None: the year whose train folder is there
    splits: tuple[str, ...] = ("train", "val")  # image folders <split><year>/
    annotations: str = "annotations"
    ann_file: str = "instances_{split}.json"  # {split}: the image folder's name (train2017, ...)
    classes: str | tuple[str, ...] = "all"  # 'all', 'voc20', or category names
    negatives: str = "keep"  # images without a chosen class: 'keep' (background-only) or 'drop'
    crowd: str = "ignore"  # 'ignore': crowd regions 255; 'exclude': not drawn
    image_list: str = "annotated"  # or 'all' (images without any annotation too)
    masks_dir: str | None = None  # GT mask cache; None: <data_root>/SegmentationClass_<rules>, or the run's
    on_bad_item: str = "error"
    n_jobs: int = -1

    def __post_init__(self) -> None:
        if self.crowd not in ("ignore", "exclude"):
            raise ConfigError(f"dataset.crowd must be 'ignore' or 'exclude', got {self.crowd!r}")
        if self.image_list not in ("annotated", "all"):
            raise ConfigError(f"dataset.image_list must be 'annotated' or 'all', got {self.image_list!r}")
        if self.negatives not in ("keep", "drop"):
            raise ConfigError(f"dataset.negatives must be 'keep' or 'drop', got {self.negatives!r}")
        if self.year not in (None, 2014, 2017):
            raise ConfigError(f"dataset.year must be 2014, 2017 or None (found on disk), got {self.year!r}")
        if isinstance(self.classes, str) and self.classes not in CLASS_PRESETS:
            raise ConfigError(f"dataset.classes must be one of {CLASS_PRESETS} or a list of COCO category "
                              f"names, got {self.classes!r}")
        if not isinstance(self.classes, str) and not self.classes:
            raise ConfigError("dataset.classes is an empty list; give category names, 'all' or 'voc20'")

    def class_tag(self) -> str:
        if isinstance(self.classes, str):
            return self.classes
        return "list" + hashlib.sha1("\n".join(self.classes).encode()).hexdigest()[:8]


def class_space(spec: COCOSpec, categories: dict[int, str], json_path: Path) -> tuple[list[str], dict[int, int]]:
    """(class names with background first, {COCO category id: class index}) for `spec.classes`."""
    cat_ids = sorted(categories)
    if spec.classes == "all":
        return ["background"] + [categories[c] for c in cat_ids], {c: k + 1 for k, c in enumerate(cat_ids)}
    by_name = {categories[c]: c for c in cat_ids}
    if spec.classes == "voc20":
        wanted = {VOC_NAMES.get(name, name): name for name in by_name if VOC_NAMES.get(name, name) in VOC_CLASSES}
        missing = [v for v in VOC_CLASSES[1:] if v not in wanted]
        if missing:
            raise DataError(f"{json_path}: dataset.classes='voc20' needs COCO's categories for {', '.join(missing)}")
        return list(VOC_CLASSES), {by_name[wanted[v]]: k for k, v in enumerate(VOC_CLASSES) if k > 0}
    unknown = [n for n in spec.classes if n not in by_name]
    if unknown:
        raise ConfigError(f"dataset.classes: {', '.join(map(repr, unknown))} not among the categories of "
                          f"{json_path} ({', '.join(sorted(by_name))})")
    return ["background", *spec.classes], {by_name[n]: k + 1 for k, n in enumerate(spec.classes)}


def draw_mask(height: int, width: int, anns: list[dict], class_of: dict[int, int], crowd: str) -> np.ndarray:
    """The class mask of one image under the module's overlap and crowd rules; objects
    of categories outside `class_of` are background."""
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

    chosen = [a for a in anns if a["category_id"] in class_of]
    mask = np.zeros((height, width), dtype=np.uint8)
    painted = np.zeros((height, width), dtype=bool)
    for ann in sorted((a for a in chosen if not a.get("iscrowd")), key=lambda a: -a["area"]):
        region = binary(ann)
        mask[region] = class_of[ann["category_id"]]
        painted |= region
    crowd_only = not painted.any() and any(a.get("iscrowd") for a in chosen)
    if crowd == "ignore" or crowd_only:  # a crowd-only image is labelled by its crowd: never call it background
        for ann in (a for a in chosen if a.get("iscrowd")):
            mask[binary(ann) & ~painted] = IGNORE_INDEX
    return mask


def _write_mask(path: Path, height: int, width: int, anns: list[dict], class_of: dict[int, int], crowd: str,
                palette: np.ndarray) -> str | None:
    try:
        save_mask(path, draw_mask(height, width, anns, class_of, crowd), palette)
    except (ValueError, KeyError, TypeError, OSError) as err:
        return f"{type(err).__name__}: {err}"
    return None


def _year(spec: COCOSpec, root: Path) -> int:
    if spec.year is not None:
        return spec.year
    found = [y for y in (2017, 2014) if any((root / f"{s}{y}").is_dir() for s in spec.splits)]
    if not found:
        raise DataError(f"COCO: no image folder {' or '.join(f'{s}2017/ or {s}2014/' for s in spec.splits)} "
                        f"under {root}. Set dataset.data_root to the folder holding them (and annotations/).")
    return found[0]


def _masks_dir(spec: COCOSpec, root: Path, out_dir: Path) -> Path:
    """The GT mask cache: one folder per drawing rule, kept across runs in the data root
    where it is writable, else in the run's prepare folder."""
    if spec.masks_dir:
        return Path(spec.masks_dir).expanduser()
    name = f"SegmentationClass_crowd_{spec.crowd}" + ("" if spec.classes == "all" else f"_{spec.class_tag()}")
    return root / name if os.access(root, os.W_OK) else out_dir / name


@DATASETS.register_module(name=["coco", "coco14"])
class COCO(DataSource):
    Spec = COCOSpec

    def check(self) -> None:
        coco_layout(self.spec)

    def prepare(self, out_dir: Path) -> dict:
        return prepare_coco(self.spec, out_dir)

    @classmethod
    def example(cls, folder: Path, name: str) -> dict:
        """'coco14': COCO 2014 with its 80 classes; 'coco': 2017, in VOC's 20."""
        from pipeline.datasets.examples import make_coco

        if name == "coco14":
            return dict(type=name, data_root=str(make_coco(folder)), n_jobs=1)
        return dict(type=name, data_root=str(make_coco(folder, year=2017)), classes="voc20", n_jobs=1)


COCO_KEYS = ("images", "annotations", "categories")


def _read_instances(json_path: Path, index_class):
    """pycocotools' index of an instances file, after checking its shape (pycocotools
    would end in a KeyError on a JSON without 'categories')."""
    try:
        with json_path.open() as f:
            content = json.load(f)
    except (OSError, ValueError) as err:
        raise DataError(f"{json_path}: cannot read it as JSON ({err})") from None
    missing = [k for k in COCO_KEYS if not isinstance(content, dict) or not isinstance(content.get(k), list)]
    if missing:
        raise DataError(f"{json_path}: not a COCO instances file: no list under {', '.join(map(repr, missing))} "
                        f"(an instances_<split>.json has {', '.join(COCO_KEYS)})")
    coco = index_class()
    coco.dataset = content
    try:
        coco.createIndex()
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{json_path}: not a COCO instances file ({type(err).__name__}: {err})") from None
    return coco


def _listed_images(spec: COCOSpec, coco, class_of: dict, labels: dict) -> tuple[list, int, int, int]:
    """(entries (id, info, annotations) kept, images listed, negatives, crowd-only images) of
    one annotation file; each kept image's classes go into `labels` (crowd regions count
    only where an image has nothing else)."""
    entries, listed, negatives, crowd_only = [], 0, 0, 0
    for img_id in sorted(coco.imgs):
        info = coco.imgs[img_id]
        anns = coco.imgToAnns.get(img_id, [])
        if spec.image_list == "annotated" and not anns:
            continue
        image_id = Path(info["file_name"]).stem
        listed += 1
        chosen = [a for a in anns if a["category_id"] in class_of]
        found = sorted({class_of[a["category_id"]] for a in chosen if not a.get("iscrowd")}) or \
            sorted({class_of[a["category_id"]] for a in chosen})
        if not found:
            negatives += 1
            if spec.negatives == "drop":
                continue
        crowd_only += bool(chosen) and all(a.get("iscrowd") for a in chosen)
        entries.append((image_id, info, anns))
        labels[image_id] = found
    return entries, listed, negatives, crowd_only


def _draw_masks(todo: list, masks_dir: Path, class_of: dict, spec: COCOSpec, palette, json_path: Path,
                split: str) -> int:
    """Draw the GT masks of `todo` in parallel; a mask that cannot be drawn names its image."""
    from joblib import Parallel, delayed  # imported when used: the CLI plans without it

    jobs = (delayed(_write_mask)(masks_dir / f"{i}.png", info["height"], info["width"], anns, class_of,
                                 spec.crowd, palette) for i, info, anns in todo)
    results = Parallel(n_jobs=spec.n_jobs, return_as="generator", batch_size=32)(jobs)
    for (image_id, _, _), error in zip(todo, progress(results, f"prepare: COCO {split} masks", total=len(todo))):
        if error is not None:
            raise DataError(f"{json_path}: cannot draw the mask of {image_id}: {error}")
    return len(todo)


def coco_layout(spec: COCOSpec) -> tuple[Path, int, dict[str, str]]:
    """(root, year, {split: image folder present}): the tree checked, nothing read."""
    log = get_logger()
    root = require_data_root(spec.data_root, "a COCO config")
    year = 2014 if spec.type == "coco14" and spec.year is None else _year(spec, root)
    folders = {s: f"{s}{year}" for s in spec.splits}
    present = {s: f for s, f in folders.items() if (root / f).is_dir()}
    if root.is_dir() and not present:
        raise DataError(f"COCO {year}: none of the image folders {', '.join(folders.values())} is under {root}")
    for split in sorted(set(folders) - set(present)):
        log.warning("prepare: COCO %s: no folder %s; split '%s' left out", year, root / folders[split], split)
    ann_dir = Path(spec.annotations)
    check_layout(f"COCO {year}", root, {
        **{f: f"{s} images" for s, f in present.items()},
        **{str(ann_dir / spec.ann_file.format(split=f)): f"{s} instance annotations" for s, f in present.items()},
    }, hint=f"Expected data_root holding {', '.join(present.values() or folders.values())} and annotations/ "
            f"(dataset.ann_file={spec.ann_file!r}) as unpacked from cocodataset.org.")
    return root, year, present


def _usable_images(entries: list, folder: Path, image_links: Path, skips: Skips, n_jobs: int, split: str) -> list:
    """The entries whose image opens and has its annotated size, each linked into `image_links`."""
    sizes = check_images({e[0]: folder / e[1]["file_name"] for e in entries}, skips, n_jobs,
                         what=f"prepare: COCO {split}")
    for image_id, info, _ in entries:
        if image_id in sizes and sizes[image_id] != (info["width"], info["height"]):
            skips.add("size differs from annotation", image_id, f"{folder / info['file_name']}: "
                      f"image is {sizes.pop(image_id)}, the annotations say {(info['width'], info['height'])}")
    entries = [e for e in entries if e[0] in sizes]
    for image_id, info, _ in entries:
        link = image_links / f"{image_id}.jpg"
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink((folder / info["file_name"]).resolve(), link)
    return entries


def prepare_coco(spec: COCOSpec, out_dir: Path) -> dict:
    from pycocotools.coco import COCO as COCOIndex

    log = get_logger()
    root, year, present = coco_layout(spec)
    ann_dir = Path(spec.annotations)
    masks_dir = _masks_dir(spec, root, out_dir)
    image_links = out_dir / "images"  # one folder for every split's images (symlinks)
    palette = voc_palette()
    skips = Skips(spec.on_bad_item)
    classes: list[str] | None = None
    splits: dict[str, list[str]] = {}
    labels: dict[str, list[int]] = {}
    drawn = reused = crowd_only = 0
    negatives: dict[str, int] = {}
    for split, image_folder in present.items():
        json_path = root / ann_dir / spec.ann_file.format(split=image_folder)
        coco = _read_instances(json_path, COCOIndex)
        names, class_of = class_space(spec, {c: coco.cats[c]["name"] for c in coco.getCatIds()}, json_path)
        if classes is None:
            classes = names
        elif names != classes:
            raise DataError(f"{json_path}: its categories differ from the {next(iter(present))} annotations'")
        entries, listed, negatives[split], crowd = _listed_images(spec, coco, class_of, labels)
        crowd_only += crowd
        expected = LIST_SIZES.get((spec.image_list, image_folder))
        if expected and spec.classes == "all" and len(coco.imgs) == LIST_SIZES[("all", image_folder)] \
                and listed != expected:
            log.warning("prepare: COCO %s list has %d images, %d expected for image_list=%r", image_folder, listed,
                        expected, spec.image_list)
        log.info("prepare: COCO %s: %d images listed, %d without any of the %d chosen classes (%s)", image_folder,
                 listed, negatives[split], len(names) - 1,
                 "kept as background-only" if spec.negatives == "keep" else "dropped")
        entries = _usable_images(entries, root / image_folder, image_links, skips, spec.n_jobs, split)
        todo = [e for e in entries if not (masks_dir / f"{e[0]}.png").is_file()]
        reused += len(entries) - len(todo)
        drawn += _draw_masks(todo, masks_dir, class_of, spec, palette, json_path, split)
        splits[split] = [e[0] for e in entries]
    skips.check()
    for split, ids in splits.items():
        if not ids:
            raise DataError(f"COCO split '{split}' has no usable image ({root / ann_dir}, "
                            f"dataset.classes={spec.classes!r}, negatives={spec.negatives!r})")
    kept = {i for ids in splits.values() for i in ids}
    labels = {i: v for i, v in labels.items() if i in kept}
    per_class = np.bincount([c for cs in labels.values() for c in cs], minlength=len(classes))[1:]
    write_prepared(out_dir, name=f"coco{year}", classes=classes, palette=palette, image_dir=image_links,
                   image_suffix=".jpg", mask_dir=masks_dir, splits=splits, labels=labels)
    return {
        "artifacts": {**{f"{s}_images": len(ids) for s, ids in splits.items()}, "masks_drawn": drawn,
                      "masks_reused": reused, "skipped": skips.total(), "crowd_only_images": crowd_only,
                      **{f"{s}_negatives": n for s, n in negatives.items()}},
        "info": {"classes": classes, "year": year, "skipped": skips.report("prepare"), "crowd": spec.crowd,
                 "image_list": spec.image_list, "negatives": spec.negatives, "masks_dir": str(masks_dir),
                 "images_per_class": dict(zip(classes[1:], per_class.tolist()))},
    }
