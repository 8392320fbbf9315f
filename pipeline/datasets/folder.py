"""A user's own data set, in a documented folder convention:

    <data_root>/
      images/<id>.jpg        (`image_suffix` sets the extension)
      classes.txt            optional: foreground class names, one per line (background is class 0);
                             without it the class names of labels.csv, sorted
      labels.csv             header `image_id,labels`; labels = class names or indices 1..C,
                             separated by spaces, e.g. `img_001,cat dog`
      masks/<id>.png         optional GT: class-index PNGs (palette or grey; colour-coded
                             RGB in the palette's colours is converted), 0 background, 255 ignore
      splits/<name>.txt      optional image-id lists; without them every labelled image is 'train'

Images without a GT mask are fine (they are not scored); masks let every stage report mIoU.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

from pipeline.datasets.checks import Skips, check_images, check_layout, place_masks, read_list, require_data_root
from pipeline.datasets.masks import voc_palette
from pipeline.datasets.prepared import write_prepared
from pipeline.datasets.registry import DATASETS, DataSource
from pipeline.errors import ConfigError, DataError
from pipeline.log import get_logger


@dataclasses.dataclass(frozen=True)
class FolderSpec:
    type: str = "folder"
    data_root: str | None = None  # required: the folder holding images/ and labels.csv
    image_suffix: str = ".jpg"
    on_bad_item: str = "error"
    n_jobs: int = -1
    # A photo in images/ with no row in labels.csv: 'skip' leaves it out (counted and
    # reported: images_without_labels), 'error' refuses the folder.
    unlabelled: str = "skip"

    def __post_init__(self) -> None:
        if self.unlabelled not in ("skip", "error"):
            raise ConfigError(f"dataset.unlabelled must be 'skip' or 'error', got {self.unlabelled!r}")


def read_classes(path: Path) -> list[str]:
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path} lists no classes; write one foreground class name per line")
    if len(set(names)) != len(names) or "background" in names:
        raise DataError(f"{path}: class names must be unique and not 'background' (class 0 is added)")
    if len(names) > 254:
        raise DataError(f"{path}: {len(names)} classes; at most 254 fit in a PNG mask next to 0 and 255")
    return names


def classes_from_labels(path: Path) -> list[str]:
    """Without classes.txt: the class names labels.csv uses, sorted (indices need classes.txt)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    tokens = {token for row in rows if len(row) == 2 for token in row[1].split()}
    if any(token.isdigit() for token in tokens):
        raise DataError(f"{path} gives labels as class indices; add classes.txt (one class name per line) so "
                        "that the indices have names")
    if not tokens:
        raise DataError(f"{path} lists no labels")
    return sorted(tokens)


def read_labels(path: Path, classes: list[str]) -> dict[str, list[int]]:
    index = {name: k + 1 for k, name in enumerate(classes)}
    labels: dict[str, list[int]] = {}
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0][:2]] != ["image_id", "labels"]:
        raise DataError(f"{path}: the first line must be the header 'image_id,labels'")
    for line, row in enumerate(rows[1:], start=2):
        if not row or not row[0].strip():
            continue
        if len(row) != 2:
            raise DataError(f"{path}:{line}: expected 'image_id,labels', got {row}")
        image_id, tokens = row[0].strip(), row[1].split()
        if image_id in labels:
            raise DataError(f"{path}:{line}: image '{image_id}' is listed twice")
        found = set()
        for token in tokens:
            if token.isdigit():
                if not 1 <= int(token) <= len(classes):
                    raise DataError(f"{path}:{line}: label {token} is outside the class range 1..{len(classes)}")
                found.add(int(token))
            elif token in index:
                found.add(index[token])
            else:
                raise DataError(f"{path}:{line}: unknown class '{token}'; classes.txt lists {', '.join(classes)}")
        labels[image_id] = sorted(found)
    if not labels:
        raise DataError(f"{path} lists no images")
    return labels


@DATASETS.register_module(name="folder")
class Folder(DataSource):
    Spec = FolderSpec

    def check(self) -> None:
        root, classes = check_folder(self.spec)
        read_labels(root / "labels.csv", classes)
        unlabelled_images(self.spec, root, read_label_ids(root / "labels.csv"))

    def prepare(self, out_dir: Path) -> dict:
        return prepare_folder(self.spec, out_dir)

    @classmethod
    def example(cls, folder: Path, name: str) -> dict:
        from pipeline.datasets.examples import make_folder

        return dict(type=name, data_root=str(make_folder(folder)), n_jobs=1)


def check_folder(spec: FolderSpec) -> tuple[Path, list[str]]:
    """(the folder, its class names): the layout and the class list, checked."""
    root = require_data_root(spec.data_root, "configs/folder.py")
    check_layout("own data set", root, {"images": "images", "labels.csv": "image-level labels"},
                 hint="See pipeline/datasets/folder.py (or the README) for the folder convention.")
    for name in ("labels.csv", "classes.txt"):
        if (root / name).exists() and not os.access(root / name, os.R_OK):
            raise DataError(f"{root / name} is not readable; check its permissions")
    classes = read_classes(root / "classes.txt") if (root / "classes.txt").is_file() else \
        classes_from_labels(root / "labels.csv")
    return root, classes


def read_label_ids(path: Path) -> set[str]:
    with path.open(newline="") as f:
        return {row[0].strip() for row in list(csv.reader(f))[1:] if row and row[0].strip()}


def unlabelled_images(spec: FolderSpec, root: Path, labelled: set[str]) -> list[str]:
    """The photos in images/ that labels.csv has no row for: reported, or refused (`unlabelled`)."""
    found = sorted(p.name[: -len(spec.image_suffix)] for p in (root / "images").iterdir()
                   if p.name.endswith(spec.image_suffix))
    missing = [i for i in found if i not in labelled]
    if missing and spec.unlabelled == "error":
        raise DataError(f"{root / 'images'}: {len(missing)} of {len(found)} photos have no row in "
                        f"{root / 'labels.csv'} (e.g. {', '.join(missing[:3])}); label them, remove them, or set "
                        "dataset.unlabelled='skip' to leave them out")
    if missing:
        get_logger().warning("prepare: %d of %d photos in %s have no row in labels.csv and are left out (e.g. %s); "
                             "dataset.unlabelled='error' refuses them", len(missing), len(found), root / "images",
                             ", ".join(missing[:3]))
    return missing


def prepare_folder(spec: FolderSpec, out_dir: Path) -> dict:
    root, classes = check_folder(spec)
    labels = read_labels(root / "labels.csv", classes)
    without_labels = unlabelled_images(spec, root, set(labels))
    skips = Skips(spec.on_bad_item)
    for image_id in [i for i, found in labels.items() if not found]:
        skips.add("no labels", image_id, f"{root / 'labels.csv'}: image '{image_id}' has no label")
        del labels[image_id]
    sizes = check_images({i: root / "images" / f"{i}{spec.image_suffix}" for i in labels}, skips, spec.n_jobs)
    palette = voc_palette()
    mask_dir = out_dir / "masks"
    sources = {i: root / "masks" / f"{i}.png" for i in sizes if (root / "masks" / f"{i}.png").is_file()}
    converted = place_masks({i: (src, mask_dir / f"{i}.png") for i, src in sources.items()}, palette,
                            len(classes), sizes, skips, spec.n_jobs)
    skips.check()
    bad = skips.ids()
    usable = [i for i in labels if i in sizes and i not in bad]
    usable_set = set(usable)

    if (root / "splits").is_dir():
        splits = {p.stem: read_list(p) for p in sorted((root / "splits").glob("*.txt"))}
        for name, ids in splits.items():
            unknown = [i for i in ids if i not in labels and i not in bad]
            if unknown:
                raise DataError(f"{root / 'splits' / (name + '.txt')}: {len(unknown)} id(s) without a row in "
                                f"labels.csv, e.g. {unknown[:3]}")
        splits = {name: [i for i in ids if i in usable_set] for name, ids in splits.items()}
    else:
        splits = {"train": usable}
    for name, ids in splits.items():
        if not ids:
            raise DataError(f"split '{name}' of {root} has no usable image")
    write_prepared(out_dir, name=root.name, classes=["background", *classes], palette=palette,
                   image_dir=root / "images", image_suffix=spec.image_suffix,
                   mask_dir=mask_dir if sources else None, splits=splits,
                   labels={i: labels[i] for i in usable})
    return {
        "artifacts": {**{f"{n}_images": len(v) for n, v in splits.items()},
                      "masks": sum(1 for i in usable if i in sources), "rgb_masks_converted": converted,
                      "skipped": skips.total(), "images_without_labels": len(without_labels)},
        "info": {"classes": ["background", *classes], "skipped": skips.report("prepare"),
                 "images_without_labels": without_labels[:100]},
    }
