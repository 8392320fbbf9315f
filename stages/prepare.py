"""Stage 1: turn a data source into the prepared data set later stages read.

`dataset.type`: 'synthetic' (generated here), 'voc12' (VOC 2012 + SBD), 'coco14'
(COCO 2014) or 'folder' (a user's own data, pipeline/datasets/folder.py). Every type
ends in the same format (pipeline/datasets/prepared.py), so later stages never ask.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.atomic import save_image, write_lines
from pipeline.config import section_to_dataclass
from pipeline.errors import ConfigError
from pipeline.datasets import synthetic
from pipeline.datasets.coco import COCOSpec, prepare_coco14
from pipeline.datasets.folder import FolderSpec, prepare_folder
from pipeline.datasets.voc import VOCSpec, prepare_voc12
from pipeline.datasets.masks import read_mask, save_mask, voc_palette
from pipeline.datasets.prepared import write_prepared
from pipeline.log import get_logger, progress
from pipeline.runner import StageContext, StageResult

# type -> (its config section as a dataclass, the loader writing the prepared data set)
REAL_DATASETS = {"voc12": (VOCSpec, prepare_voc12), "coco14": (COCOSpec, prepare_coco14),
                 "folder": (FolderSpec, prepare_folder)}
DATASET_TYPES = ("synthetic", *REAL_DATASETS)


def prepare(ctx: StageContext) -> StageResult:
    dataset_cfg = ctx.section("dataset")
    kind = dataset_cfg.get("type")
    if kind == "synthetic":
        return prepare_synthetic(ctx, dataset_cfg)
    if kind in REAL_DATASETS:
        spec_cls, loader = REAL_DATASETS[kind]
        report = loader(section_to_dataclass(spec_cls, dataset_cfg, "dataset"), ctx.out_dir)
        return StageResult(artifacts=report["artifacts"], info=report["info"])
    raise ConfigError(f"dataset.type = {kind!r} is not supported; choose one of: {', '.join(DATASET_TYPES)}")


def prepare_synthetic(ctx: StageContext, dataset_cfg: dict) -> StageResult:
    """Generate the synthetic VOC-layout tree item by item, skipping items already written."""
    spec = section_to_dataclass(synthetic.SyntheticSpec, dataset_cfg, "dataset", drop=("type",))
    tree = ctx.out_dir / "VOC"
    image_dir, mask_dir = tree / "JPEGImages", tree / "SegmentationClass"
    palette = voc_palette()
    splits: dict[str, list[str]] = {"train": [], "val": []}
    labels: dict[str, list[int]] = {}
    reused = 0
    for index in progress(range(spec.num_images), desc="prepare: synthetic images", total=spec.num_images):
        image_id = synthetic.image_id(index)
        image_path, mask_path = image_dir / f"{image_id}.jpg", mask_dir / f"{image_id}.png"
        if image_path.is_file() and mask_path.is_file():
            # Written atomically on an earlier, interrupted run: reuse; labels come from the mask.
            present = np.unique(read_mask(mask_path))
            classes = [int(c) for c in present if 0 < c < 255]
            reused += 1
        else:
            image, mask, classes = synthetic.render_sample(spec, index)
            save_image(image_path, Image.fromarray(image), format="JPEG", quality=spec.jpeg_quality)
            save_mask(mask_path, mask, palette)
        splits[synthetic.split_of(spec, index)].append(image_id)
        labels[image_id] = classes
    if reused:
        get_logger().info("prepare: reused %d of %d images written by an interrupted run", reused, spec.num_images)

    for split, ids in splits.items():  # the VOC tree's own lists, for tools that read VOC
        write_lines(tree / "ImageSets" / "Segmentation" / f"{split}.txt", ids)
    classes = synthetic.class_names(spec)
    write_prepared(
        ctx.out_dir, name="synthetic", classes=classes, palette=palette, image_dir=image_dir,
        image_suffix=".jpg", mask_dir=mask_dir, splits=splits, labels=labels,
    )
    per_class = np.bincount([c for cs in labels.values() for c in cs], minlength=len(classes))[1:]
    return StageResult(
        artifacts={"images": spec.num_images, "masks": spec.num_images, "reused": reused,
                   **{f"{split}_images": len(ids) for split, ids in splits.items()}},
        info={"classes": classes, "images_per_class": dict(zip(classes[1:], per_class.tolist()))},
    )
