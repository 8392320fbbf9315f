"""PASCAL VOC 2012 with the SBD augmentation (README, 'Real data sets').

Reads VOCdevkit/VOC2012 (JPEGImages, Annotations, SegmentationClass, the segmentation
lists) and optionally SBD (`dataset/cls/*.mat`, train.txt, val.txt). Image-level labels
come from the Annotations XML (any object of the class). GT masks: VOC's own
SegmentationClass where it has one (it carries the void border), otherwise SBD's mask,
converted once from .mat into SegmentationClassAug PNGs (in parallel, kept for later
runs). train_aug = (VOC train + SBD train + SBD val) - VOC val: 10,582 images.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from pipeline.datasets.checks import Skips, check_images, check_layout, place_masks, read_list, require_data_root
from pipeline.datasets.masks import VOC_CLASSES as CLASSES, save_mask, voc_palette
from pipeline.datasets.prepared import write_prepared
from pipeline.datasets.registry import DATASETS, DataSource
from pipeline.errors import DataError
from pipeline.log import get_logger, progress

TRAIN_AUG_SIZE = 10582
SPLIT_SIZES = {"train": 1464, "val": 1449, "sbd_train": 8498, "sbd_val": 2857}


@dataclasses.dataclass(frozen=True)
class VOCSpec:
    """The `dataset` section for type 'voc12'; folders are relative to data_root."""

    type: str = "voc12"
    data_root: str = "data"
    voc_dir: str = "VOCdevkit/VOC2012"
    sbd_dir: str | None = "benchmark_RELEASE/dataset"  # None: no augmentation (train_aug = VOC train)
    aug_masks_dir: str | None = None  # where SBD masks are converted to; None: <voc_dir>/SegmentationClassAug
    on_bad_item: str = "error"  # or 'skip': leave bad images out, counted and reported
    n_jobs: int = -1


def labels_from_xml(path: Path) -> list[int]:
    """Class indices (1..20) of every object in a VOC annotation."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DataError(f"{path}: not a readable VOC annotation ({err})") from None
    labels = set()
    for name in root.iterfind("object/name"):
        label = (name.text or "").strip()
        if label not in CLASSES[1:]:
            raise DataError(f"{path}: unknown class '{label}'; VOC classes are {', '.join(CLASSES[1:])}")
        labels.add(CLASSES.index(label))
    return sorted(labels)


def sbd_mask(mat_path: Path) -> np.ndarray:
    """The class-index mask in an SBD cls/*.mat (GTcls.Segmentation)."""
    import scipy.io  # imported when used: the CLI plans without it

    mat = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)
    return np.asarray(mat["GTcls"].Segmentation, dtype=np.uint8)


def convert_sbd_mask(mat_path: Path, png_path: Path, palette: np.ndarray) -> str | None:
    try:
        save_mask(png_path, sbd_mask(mat_path), palette)
    except (OSError, KeyError, AttributeError, ValueError, TypeError) as err:
        return f"{type(err).__name__}: {err}"
    return None


@DATASETS.register_module(name="voc12")
class VOC12(DataSource):
    Spec = VOCSpec

    def check(self) -> None:
        voc_layout(self.spec)

    def prepare(self, out_dir: Path) -> dict:
        return prepare_voc12(self.spec, out_dir)

    @classmethod
    def example(cls, folder: Path, name: str) -> dict:
        from pipeline.datasets.examples import make_voc

        return dict(type=name, data_root=str(make_voc(folder)), n_jobs=1)


def _train_aug(spec: VOCSpec, data_root: Path, train: list[str], val: list[str]) -> tuple[list[str], set[str]]:
    """(train_aug: VOC train + SBD less VOC val, the SBD ids); VOC train alone without SBD."""
    log = get_logger()
    if spec.sbd_dir is None:
        log.warning("prepare: no SBD (dataset.sbd_dir=None): train_aug = VOC train, %d images instead of %d",
                    len(train), TRAIN_AUG_SIZE)
        return list(train), set()
    sbd = data_root / spec.sbd_dir
    check_layout("SBD", sbd, {"cls": "class masks (.mat)", "train.txt": "SBD train list", "val.txt": "SBD val list"},
                 hint="Expected data_root/sbd_dir = .../benchmark_RELEASE/dataset, or set dataset.sbd_dir=None.")
    sbd_train, sbd_val = read_list(sbd / "train.txt"), read_list(sbd / "val.txt")
    sbd_ids = set(sbd_train) | set(sbd_val)
    train_aug = sorted((set(train) | sbd_ids) - set(val))
    if len(train_aug) != TRAIN_AUG_SIZE:
        log.warning("prepare: train_aug has %d images, not %d: VOC train %d (full set %d), val %d (%d), SBD "
                    "train %d (%d), SBD val %d (%d); a partial or different copy of VOC or SBD",
                    len(train_aug), TRAIN_AUG_SIZE, len(train), SPLIT_SIZES["train"], len(val),
                    SPLIT_SIZES["val"], len(sbd_train), SPLIT_SIZES["sbd_train"], len(sbd_val),
                    SPLIT_SIZES["sbd_val"])
    return train_aug, sbd_ids


def _convert_sbd_masks(ids: list[str], sbd_cls: Path, aug_dir: Path, palette, n_jobs: int, skips: Skips,
                       sources: dict) -> None:
    """SBD's .mat masks as palette PNGs in `aug_dir`; one that fails is a counted skip."""
    get_logger().info("prepare: converting %d SBD masks to %s", len(ids), aug_dir)
    try:
        aug_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot write SBD masks to {aug_dir} ({err}); set dataset.aug_masks_dir to a "
                        "writable folder") from None
    from joblib import Parallel, delayed

    jobs = (delayed(convert_sbd_mask)(sbd_cls / f"{i}.mat", aug_dir / f"{i}.png", palette) for i in ids)
    results = Parallel(n_jobs=n_jobs, return_as="generator", batch_size=32)(jobs)
    for image_id, error in zip(ids, progress(results, "prepare: SBD .mat -> PNG", total=len(ids))):
        if error is not None:
            skips.add("bad SBD mask", image_id, f"{sbd_cls / (image_id + '.mat')}: {error}")
            del sources[image_id]


def voc_layout(spec: VOCSpec) -> Path:
    """The VOC2012 folder, its layout checked (nothing read)."""
    voc = require_data_root(spec.data_root, "a VOC config") / spec.voc_dir
    check_layout("VOC 2012", voc, {
        "JPEGImages": "images", "Annotations": "annotation XMLs (image-level labels)",
        "SegmentationClass": "GT masks", "ImageSets/Segmentation/train.txt": "the train list",
        "ImageSets/Segmentation/val.txt": "the val list",
    }, hint="Expected data_root/voc_dir = .../VOCdevkit/VOC2012 as unpacked from VOCtrainval_11-May-2012.tar.")
    return voc


def prepare_voc12(spec: VOCSpec, out_dir: Path) -> dict:
    """Write the prepared data set for VOC 2012 (+ SBD); returns the stage's report."""
    log = get_logger()
    data_root = Path(spec.data_root).expanduser()
    voc = voc_layout(spec)
    seg_lists = voc / "ImageSets" / "Segmentation"
    train, val = read_list(seg_lists / "train.txt"), read_list(seg_lists / "val.txt")
    train_aug, sbd_ids = _train_aug(spec, data_root, train, val)
    splits = {"train": train, "val": val, "train_aug": train_aug}
    ids = list(dict.fromkeys(train + val + train_aug))

    skips = Skips(spec.on_bad_item)
    labels: dict[str, list[int]] = {}
    for image_id in progress(ids, "prepare: VOC annotations", total=len(ids)):
        xml = voc / "Annotations" / f"{image_id}.xml"
        if not xml.is_file():
            skips.add("missing annotation", image_id, f"{xml}: annotation of a listed image not found")
            continue
        found = labels_from_xml(xml)
        if not found:
            skips.add("no objects", image_id, f"{xml}: annotation has no objects, so no image-level label")
            continue
        labels[image_id] = found
    sizes = check_images({i: voc / "JPEGImages" / f"{i}.jpg" for i in labels}, skips, spec.n_jobs)

    aug_dir = Path(spec.aug_masks_dir).expanduser() if spec.aug_masks_dir else voc / "SegmentationClassAug"
    palette = voc_palette()
    sources = {}
    to_convert = []
    for image_id in sizes:
        own = voc / "SegmentationClass" / f"{image_id}.png"
        if own.is_file():
            sources[image_id] = own
        elif image_id in sbd_ids:
            sources[image_id] = aug_dir / f"{image_id}.png"
            if not sources[image_id].is_file():
                to_convert.append(image_id)
    if to_convert:
        _convert_sbd_masks(to_convert, data_root / spec.sbd_dir / "cls", aug_dir, palette, spec.n_jobs, skips, sources)
    mask_dir = out_dir / "masks"
    converted = place_masks({i: (src, mask_dir / f"{i}.png") for i, src in sources.items()}, palette,
                            len(CLASSES) - 1, sizes, skips, spec.n_jobs)
    skips.check()
    bad = skips.ids()
    kept = {name: [i for i in split if i in sizes and i not in bad] for name, split in splits.items()}
    for name, split in kept.items():
        if not split:
            raise DataError(f"VOC split '{name}' has no usable image left ({len(splits[name])} listed)")
    write_prepared(out_dir, name="voc12", classes=list(CLASSES), palette=palette, image_dir=voc / "JPEGImages",
                   image_suffix=".jpg", mask_dir=mask_dir, splits=kept,
                   labels={i: labels[i] for i in sizes if i not in bad})
    return {
        "artifacts": {**{f"{n}_images": len(v) for n, v in kept.items()}, "masks": len(sources) - len(bad & set(sources)),
                      "sbd_masks_converted": len(to_convert), "rgb_masks_converted": converted,
                      "skipped": skips.total()},
        "info": {"classes": list(CLASSES), "skipped": skips.report("prepare"), "sbd": spec.sbd_dir is not None,
                 "aug_masks_dir": str(aug_dir)},
    }
