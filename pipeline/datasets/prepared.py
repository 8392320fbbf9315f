"""The prepared data set: the one format every stage after `prepare` reads.

`prepare` writes, whatever the source (synthetic, VOC, COCO, a user's folder):

    dataset.json   classes (background first), palette, image/mask folders, splits
    labels.json    {image_id: [class index, ...]} image-level labels, 1..C
    lists/<split>.txt

Folders in dataset.json are absolute, or relative to the prepare folder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from pipeline.atomic import write_json, write_lines
from pipeline.datasets.masks import IGNORE_INDEX, read_mask
from pipeline.errors import DataError
from pipeline.images import load_rgb

INDEX_FILE = "dataset.json"
LABELS_FILE = "labels.json"


@dataclasses.dataclass
class PreparedDataset:
    root: Path
    name: str
    classes: list[str]  # index 0 is background
    palette: np.ndarray
    image_dir: Path
    image_suffix: str
    mask_dir: Path | None
    splits: dict[str, list[str]]
    labels: dict[str, list[int]]
    ignore_index: int = IGNORE_INDEX

    @property
    def num_classes(self) -> int:
        """Foreground classes, background excluded."""
        return len(self.classes) - 1

    def image_path(self, image_id: str) -> Path:
        return self.image_dir / f"{image_id}{self.image_suffix}"

    def mask_path(self, image_id: str) -> Path | None:
        if self.mask_dir is None:
            return None
        path = self.mask_dir / f"{image_id}.png"
        return path if path.is_file() else None

    def load_image(self, image_id: str) -> np.ndarray:
        return np.array(load_rgb(self.image_path(image_id)))

    def load_mask(self, image_id: str) -> np.ndarray | None:
        path = self.mask_path(image_id)
        return None if path is None else read_mask(path)

    def split(self, name: str) -> list[str]:
        if name not in self.splits:
            raise KeyError(f"no split '{name}' in {self.root / INDEX_FILE}; splits: {', '.join(self.splits)}")
        return self.splits[name]

    @classmethod
    def load(cls, root: Path) -> "PreparedDataset":
        root = Path(root)
        index = json.loads((root / INDEX_FILE).read_text())
        labels = json.loads((root / LABELS_FILE).read_text())
        splits = {name: (root / rel).read_text().split() for name, rel in index["splits"].items()}
        mask_dir = None if index["mask_dir"] is None else root / index["mask_dir"]
        if mask_dir is not None and not mask_dir.is_dir():
            # Without this, every image would silently count as one without GT.
            raise DataError(f"the GT mask folder {mask_dir}, which prepare recorded in {root / INDEX_FILE}, is "
                            "missing (moved or deleted: a mask cache kept in the data root?). Restore it, or "
                            "re-run prepare (`--stage prepare --force`; later stages follow).")
        return cls(
            root=root,
            name=index["name"],
            classes=index["classes"],
            palette=np.asarray(index["palette"], dtype=np.uint8),
            image_dir=root / index["image_dir"],
            image_suffix=index["image_suffix"],
            mask_dir=mask_dir,
            splits=splits,
            labels={k: list(v) for k, v in labels.items()},
            ignore_index=index["ignore_index"],
        )


def write_prepared(
    root: Path,
    *,
    name: str,
    classes: list[str],
    palette: np.ndarray,
    image_dir: Path,
    image_suffix: str,
    mask_dir: Path | None,
    splits: dict[str, list[str]],
    labels: dict[str, list[int]],
) -> None:
    """Write the index files; `dataset.json` last, since loading starts from it."""
    root = Path(root)
    for split, ids in splits.items():
        write_lines(root / "lists" / f"{split}.txt", ids)
    write_json(root / LABELS_FILE, {k: sorted(int(c) for c in v) for k, v in sorted(labels.items())})

    def rel(path: Path | None) -> str | None:
        if path is None:
            return None
        path = Path(path)
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path.resolve())

    write_json(root / INDEX_FILE, {
        "name": name,
        "classes": classes,
        "palette": np.asarray(palette, dtype=np.uint8).tolist(),  # all 256 entries, 255 = ignore
        "image_dir": rel(image_dir),
        "image_suffix": image_suffix,
        "mask_dir": rel(mask_dir),
        "ignore_index": IGNORE_INDEX,
        "splits": {split: f"lists/{split}.txt" for split in splits},
    })
