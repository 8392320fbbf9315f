"""Checks shared by the real-data loaders: layouts, images, masks, and counted skips.

A problem with the whole source (a missing folder, an empty list, an unknown class) is
an error that says what to fix. A problem with one item (an image listed but absent,
a corrupt file, a mask of another size, an image without labels) is an error too,
raised once every item is checked and listing them all, unless
`dataset.on_bad_item='skip'`: then the item is left out and counted by reason, and the
counts go to the log and the manifest. Nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.datasets.masks import IGNORE_INDEX, save_mask
from pipeline.errors import ConfigError, DataError
from pipeline.log import get_logger, progress

BAD_ITEM_POLICIES = ("error", "skip")


@dataclasses.dataclass
class Skips:
    """Bad items, by reason. Every item is checked first; then `check()` stops the stage
    with one message listing them all (`policy='error'`), or they are left out and
    counted (`policy='skip'`), so a user fixes a data set in one pass."""

    policy: str = "error"
    items: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    details: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    hints: list[str] = dataclasses.field(default_factory=list)  # what probably went wrong, for the message

    def __post_init__(self) -> None:
        if self.policy not in BAD_ITEM_POLICIES:
            raise ConfigError(f"dataset.on_bad_item must be one of {BAD_ITEM_POLICIES}, got {self.policy!r}")

    def add(self, reason: str, item: str, detail: str) -> None:
        self.items.setdefault(reason, []).append(item)
        self.details.setdefault(reason, []).append(detail)

    def check(self, shown: int = 5) -> None:
        """Under `policy='error'`, one DataError naming every bad item's reason and the
        first `shown` of each; call it after all items are checked."""
        if self.policy != "error" or not self.items:
            return
        lines = []
        for reason, details in sorted(self.details.items()):
            lines.append(f"{len(details)} x {reason}:")
            lines += [f"    {d}" for d in details[:shown]]
            if len(details) > shown:
                lines.append(f"    ... and {len(details) - shown} more")
        hints = "".join(f"\nHint: {h}" for h in self.hints)
        raise DataError(f"{self.total()} bad item(s):\n  " + "\n  ".join(lines) + hints + "\nFix or remove them, or "
                        "set dataset.on_bad_item='skip' to leave such items out (they are counted and reported).")

    def ids(self) -> set[str]:
        return {i for group in self.items.values() for i in group}

    def total(self) -> int:
        return sum(len(group) for group in self.items.values())

    def counts(self) -> dict[str, int]:
        return {reason: len(ids) for reason, ids in sorted(self.items.items())}

    def report(self, what: str) -> dict:
        """Log and return the skips: counts and the first few ids per reason."""
        if self.items:
            get_logger().warning("%s: left out %s", what, ", ".join(f"{n} ({r})" for r, n in self.counts().items()))
        return {reason: {"count": len(ids), "examples": ids[:10]} for reason, ids in sorted(self.items.items())}


def require_data_root(data_root: str | None, config: str) -> Path:
    """The data set's folder; a config that ships without one (it is the user's) says how to set it."""
    if data_root is None:
        raise ConfigError(f"dataset.data_root is not set: {config} needs the folder of your data, e.g. "
                          "--cfg-options dataset.data_root=/path/to/data")
    return Path(data_root).expanduser()


def check_layout(name: str, root: Path, required: dict[str, str], hint: str = "") -> None:
    """One error listing everything missing under `root` ({relative path: what it is})."""
    if not root.is_dir():
        raise DataError(f"{name}: data root {root} does not exist. Set dataset.data_root to the folder "
                        f"that holds it (e.g. --cfg-options dataset.data_root=/data). {hint}".strip())
    missing = [f"{what}: {root / rel}" for rel, what in required.items() if not (root / rel).exists()]
    if missing:
        raise DataError(f"{name}: the layout under {root} is incomplete; missing:\n  - " + "\n  - ".join(missing)
                        + (f"\n{hint}" if hint else ""))


def read_list(path: Path) -> list[str]:
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path} lists no images; it should hold one image id per line")
    return ids


Problem = tuple[str, str]  # (short reason for the counts, detail for the message)


def inspect_image(path: Path) -> tuple[tuple[int, int] | None, Problem | None]:
    """((width, height), None) for a readable image (grey and CMYK included: stages
    convert to RGB), else (None, the problem)."""
    if not path.is_file():
        return None, ("missing image", f"{path}: image listed but not found")
    try:
        with Image.open(path) as image:
            image.load()  # decodes fully: a truncated JPEG fails here
            return image.size, None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return None, ("corrupt image", f"{path}: cannot decode ({err})")


def check_images(paths: dict[str, Path], skips: Skips, n_jobs: int = -1,
                 what: str = "prepare") -> dict[str, tuple[int, int]]:
    """Decode every image once (in parallel); returns {id: (width, height)} of the good ones."""
    ids = list(paths)
    from joblib import Parallel, delayed  # imported when used: the CLI plans without it

    jobs = (delayed(inspect_image)(paths[i]) for i in ids)
    results = Parallel(n_jobs=n_jobs, return_as="generator", batch_size=64)(jobs)
    sizes, missing = {}, []
    for image_id, (size, problem) in zip(ids, progress(results, f"{what}: checking images", total=len(ids))):
        if problem is None:
            sizes[image_id] = size
        else:
            skips.add(problem[0], image_id, problem[1])
            missing += [paths[image_id]] if problem[0] == "missing image" else []
    if missing:
        hint = other_suffix_hint(missing)
        skips.hints += [hint] if hint else []
    return sizes


def other_suffix_hint(missing: list[Path]) -> str | None:
    """When listed images are absent but files of the same names with another suffix are
    there: 'found 3 .png files; set dataset.image_suffix='.png''."""
    wanted: dict[Path, set[str]] = {}
    for path in missing:
        wanted.setdefault(path.parent, set()).add(path.name)
    found: dict[str, int] = {}
    for folder, names in wanted.items():  # one listing per folder, not one search per image
        stems = {Path(name).stem for name in names}
        for other in folder.iterdir() if folder.is_dir() else ():
            if other.stem in stems and other.name not in names:
                found[other.suffix] = found.get(other.suffix, 0) + 1
    if not found:
        return None
    suffix, count = max(found.items(), key=lambda item: item[1])
    return (f"found {count} {suffix} file(s) under the names of the missing images; "
            f"set dataset.image_suffix='{suffix}'")


def rgb_to_index(rgb: np.ndarray, palette: np.ndarray, path: Path) -> np.ndarray:
    """Class indices of a colour-coded mask, by exact palette colour (255 = ignore colour)."""
    codes = {tuple(palette[k].tolist()): k for k in range(len(palette) - 1, -1, -1)}
    colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    keys = [tuple(c) for c in colours.tolist()]
    unknown = [k for k in keys if k not in codes]
    if unknown:
        raise DataError(f"{path}: RGB mask holds colours outside the palette, e.g. {unknown[:3]}; give masks as "
                        "palette or grey PNGs of class indices")
    lut = np.array([codes[k] for k in keys], dtype=np.uint8)
    return lut[inverse.ravel()].reshape(rgb.shape[:2])


def load_index_mask(path: Path, palette: np.ndarray) -> tuple[np.ndarray, bool]:
    """(class indices, was colour-coded) from a palette, grey or RGB PNG."""
    with Image.open(path) as image:
        if image.mode in ("P", "L"):
            return np.asarray(image, dtype=np.uint8).copy(), False
        if image.mode in ("RGB", "RGBA"):
            return rgb_to_index(np.asarray(image.convert("RGB")), palette, path), True
        raise DataError(f"{path}: mask mode {image.mode}; expected a palette, grey or RGB PNG")


def place_mask(src: Path, dst: Path, palette: np.ndarray, num_classes: int,
               image_size: tuple[int, int] | None) -> tuple[bool, Problem | None]:
    """Make `dst` the prepared GT mask for `src`: a symlink to a valid index PNG, or a
    converted copy of a colour-coded one. Returns (converted, problem or None)."""
    try:
        mask, converted = load_index_mask(src, palette)
    except (OSError, UnidentifiedImageError) as err:
        return False, ("corrupt mask", f"{src}: cannot decode ({err})")
    except DataError as err:
        return False, ("bad mask", str(err))
    if image_size is not None and mask.shape != (image_size[1], image_size[0]):
        return False, ("mask size mismatch", f"{src}: mask {mask.shape[::-1]} vs image {image_size} (w, h)")
    bad = np.setdiff1d(np.unique(mask), [*range(num_classes + 1), IGNORE_INDEX])
    if bad.size:
        return False, ("mask label out of range",
                       f"{src}: label(s) {bad.tolist()} outside 0..{num_classes} and {IGNORE_INDEX}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    if converted:
        save_mask(dst, mask, palette)
    else:
        dst.symlink_to(src.resolve())
    return converted, None


def place_masks(pairs: dict[str, tuple[Path, Path]], palette: np.ndarray, num_classes: int,
                sizes: dict[str, tuple[int, int]], skips: Skips, n_jobs: int = -1, what: str = "prepare") -> int:
    """`place_mask` for every id (in parallel); returns how many were colour-coded and converted."""
    ids = list(pairs)
    from joblib import Parallel, delayed

    jobs = (delayed(place_mask)(*pairs[i], palette, num_classes, sizes.get(i)) for i in ids)
    results = Parallel(n_jobs=n_jobs, return_as="generator", batch_size=64)(jobs)
    converted = 0
    for image_id, (was_rgb, problem) in zip(ids, progress(results, f"{what}: GT masks", total=len(ids))):
        converted += was_rgb
        if problem is not None:
            skips.add(problem[0], image_id, problem[1])
    return converted
