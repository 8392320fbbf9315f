"""Tiny VOC, SBD, COCO and own-folder trees in the real on-disk formats: each data set's
`example(folder, name)` writes one (the plug-in contract tests prepare every registered
data set from its own), and a user can look at the layout a data set expects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from pipeline.datasets.masks import VOC_CLASSES, save_mask, voc_palette

W, H = 40, 30


def write_jpeg(path: Path, seed: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert(mode).save(path, format="JPEG", quality=90)


def object_mask(label: int, box: tuple[int, int, int, int], void: bool = False) -> np.ndarray:
    mask = np.zeros((H, W), dtype=np.uint8)
    x0, y0, x1, y1 = box
    if void:
        mask[y0 - 1:y1 + 1, x0 - 1:x1 + 1] = 255
    mask[y0:y1, x0:x1] = label
    return mask


def write_xml(path: Path, names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    objects = "".join(f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
                      f"<xmax>5</xmax><ymax>5</ymax></bndbox></object>" for n in names)
    path.write_text(f"<annotation><filename>{path.stem}.jpg</filename><size><width>{W}</width>"
                    f"<height>{H}</height><depth>3</depth></size>{objects}</annotation>")


# VOC: train a b c, val d e; SBD: train c d f g, val h -> train_aug = a b c f g h
VOC_IMAGES = {  # id: (class names, VOC mask?)
    "2007_000001": (["cat"], True), "2007_000002": (["dog", "person"], True), "2007_000003": (["car"], True),
    "2007_000004": (["bus"], True), "2007_000005": (["sheep"], True),
    "2008_000006": (["cow"], False), "2008_000007": (["bird", "bird"], False), "2008_000008": (["boat"], False),
}
VOC_TRAIN = ["2007_000001", "2007_000002", "2007_000003"]
VOC_VAL = ["2007_000004", "2007_000005"]
SBD_TRAIN = ["2007_000003", "2007_000004", "2008_000006", "2008_000007"]
SBD_VAL = ["2008_000008"]
TRAIN_AUG = sorted(set(VOC_TRAIN + SBD_TRAIN + SBD_VAL) - set(VOC_VAL))


def voc_mask_of(image_id: str, sbd: bool = False) -> np.ndarray:
    names = VOC_IMAGES[image_id][0]
    k = int(image_id[-1])
    return object_mask(VOC_CLASSES.index(names[0]), (4 + k, 5, 20 + k, 20), void=not sbd)


def make_voc(root: Path, sbd: bool = True) -> Path:
    """data_root with VOCdevkit/VOC2012 and, if `sbd`, benchmark_RELEASE/dataset."""
    voc = root / "VOCdevkit" / "VOC2012"
    for n, (image_id, (names, has_mask)) in enumerate(VOC_IMAGES.items()):
        write_jpeg(voc / "JPEGImages" / f"{image_id}.jpg", n)
        write_xml(voc / "Annotations" / f"{image_id}.xml", names)
        if has_mask:
            save_mask(voc / "SegmentationClass" / f"{image_id}.png", voc_mask_of(image_id), voc_palette())
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("\n".join(VOC_TRAIN) + "\n")
    (lists / "val.txt").write_text("\n".join(VOC_VAL) + "\n")
    if sbd:
        sbd_root = root / "benchmark_RELEASE" / "dataset"
        (sbd_root / "cls").mkdir(parents=True)
        for image_id in SBD_TRAIN + SBD_VAL:
            seg = voc_mask_of(image_id, sbd=True)
            scipy.io.savemat(sbd_root / "cls" / f"{image_id}.mat", {"GTcls": {
                "Segmentation": seg, "Boundaries": np.zeros((1, 1)), "CategoriesPresent": np.unique(seg)[1:]}})
        (sbd_root / "train.txt").write_text("\n".join(SBD_TRAIN) + "\n")
        (sbd_root / "val.txt").write_text("\n".join(SBD_VAL) + "\n")
    return root


def rle_of(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


# COCO's names of VOC's classes other than person and car (ids made up, after 90)
OTHER_VOC_NAMES = ("airplane", "bicycle", "bird", "boat", "bottle", "bus", "cat", "chair", "cow", "dining table", "dog",
                   "horse", "motorcycle", "potted plant", "sheep", "couch", "train", "tv")


def make_coco(root: Path, year: int = 2014) -> Path:
    """COCO 2014 (file names COCO_train2014_<id>.jpg) or 2017 (<id>.jpg) layout;
    categories 1, 3, 90 (gaps) -> classes 1, 2, 3; 2017 adds the rest of VOC's 20 under
    COCO's names (ids 91..), so that the 'voc20' preset applies.

    train: img 1 two overlapping instances (a big polygon 'person', a small RLE 'car' on
    it) and a crowd region; img 2 crowd only; img 3 no annotation; img 4 an uncompressed
    RLE 'toothbrush'. val: img 5 one polygon.
    """
    categories = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 90, "name": "toothbrush"}]
    if year == 2017:
        categories += [{"id": 91 + k, "name": name} for k, name in enumerate(OTHER_VOC_NAMES)]
    name = (lambda split, i: f"COCO_{split}2014_{i:012d}.jpg") if year == 2014 else (lambda split, i: f"{i:012d}.jpg")
    small = np.zeros((H, W), dtype=np.uint8)
    small[10:16, 10:18] = 1
    crowd = np.zeros((H, W), dtype=np.uint8)
    crowd[0:30, 30:40] = 1
    uncompressed = {"size": [H, W], "counts": [5 * H, 10 * H, (W - 15) * H]}  # columns 5..14
    train = {
        "images": [{"id": i, "file_name": name("train", i), "width": W, "height": H} for i in (1, 2, 3, 4)],
        "annotations": [
            {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 500.0, "bbox": [2, 2, 30, 25],
             "segmentation": [[2, 2, 32, 2, 32, 27, 2, 27]]},
            {"id": 12, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 48.0, "bbox": [10, 10, 8, 6],
             "segmentation": rle_of(small)},
            {"id": 13, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 300.0, "bbox": [30, 0, 10, 30],
             "segmentation": rle_of(crowd)},
            {"id": 21, "image_id": 2, "category_id": 3, "iscrowd": 1, "area": 300.0, "bbox": [30, 0, 10, 30],
             "segmentation": rle_of(crowd)},
            {"id": 41, "image_id": 4, "category_id": 90, "iscrowd": 0, "area": 300.0, "bbox": [5, 0, 10, 30],
             "segmentation": uncompressed},
        ],
        "categories": categories,
    }
    val = {
        "images": [{"id": 5, "file_name": name("val", 5), "width": W, "height": H}],
        "annotations": [{"id": 51, "image_id": 5, "category_id": 90, "iscrowd": 0, "area": 100.0,
                         "bbox": [0, 0, 10, 10], "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}],
        "categories": categories,
    }
    (root / "annotations").mkdir(parents=True)
    for split, data in (("train", train), ("val", val)):
        (root / "annotations" / f"instances_{split}{year}.json").write_text(json.dumps(data))
        for n, image in enumerate(data["images"]):
            write_jpeg(root / f"{split}{year}" / image["file_name"], 100 + image["id"])
    return root


def make_folder(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "classes.txt").write_text("apple\nbanana\n")
    rows = ["image_id,labels", "p1,apple", "p2,apple banana", "p3,2", "p4,banana"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    for n, image_id in enumerate(["p1", "p2", "p3", "p4"]):
        write_jpeg(root / "images" / f"{image_id}.jpg", 200 + n)
    save_mask(root / "masks" / "p1.png", object_mask(1, (5, 5, 15, 15)), voc_palette())
    return root
