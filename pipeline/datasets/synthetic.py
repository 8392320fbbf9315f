"""A synthetic stand-in for VOC that reproduces the problem BAS solves.

Every class has
- a small *part* (a saturated two-colour pattern in a class-specific shape) that alone
  decides the class: a classifier can settle on it, as a CAM settles on a dog's head;
- a large *body* whose hue and stripe orientation are drawn around class-specific
  means with enough spread that neighbouring classes overlap: class evidence, but
  less reliable than the part.
Backgrounds are cluttered (coloured low-frequency noise, bars, grain) and hold
*distractors*: object-shaped blobs with the bodies' low-level statistics (stripes of
the same saturation, lightness and frequency, the same outlines), labelled background,
so that neither outline nor "stripes" says "object". A distractor's (hue, stripe angle)
pair is one no class has: a hue between two neighbouring classes' hues, at the stripe
angle farthest from both. As in natural images (a dog's fur is dog evidence, and a
striped awning is not fur), the body is weaker class evidence than the part, but
evidence: the premise BAS rests on (`bench/premise.py`, the check_premise stage). An
earlier version painted distractors with the class bodies' own textures; there the
body was no class evidence at all and the premise failed by construction. Objects vary in scale, overlap each other and are
sometimes crossed by background bars (occlusion). Masks carry 255 on a thin band
along every object boundary, as VOC's void border.

Every image is a pure function of (seed, index): items can be generated in any order,
resumed, or regenerated identically.
"""

from __future__ import annotations

import colorsys
import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.atomic import save_image, write_lines
from pipeline.datasets.masks import IGNORE_INDEX, read_mask, save_mask, voc_palette
from pipeline.datasets.prepared import write_prepared
from pipeline.datasets.registry import DATASETS, DataSource
from pipeline.errors import ConfigError
from pipeline.log import get_logger, progress

PART_SHAPES = ("disc", "square", "triangle", "cross", "star", "diamond", "ring", "hexagon")


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    seed: int = 0
    num_train: int = 240
    num_val: int = 60
    num_classes: int = 5
    image_size: tuple[int, int] = (128, 160)  # each side drawn from this range
    # Each image's (height, width) drawn from this list instead (bench/gpu_check.py: sizes
    # spread like VOC's, so that batching images of one size meets realistic odds).
    image_sizes: tuple[tuple[int, int], ...] | None = None
    objects_per_image: tuple[int, int] = (1, 3)
    classes_per_image: tuple[int, int] = (1, 2)
    body_radius: tuple[float, float] = (0.16, 0.32)  # fraction of the shorter side
    part_radius: float = 0.42  # fraction of the body radius
    body_hue_spread: float = 0.07  # std of a body's hue around its class mean (hue circle = 1)
    body_angle_spread: float = 0.35  # std of the stripe angle around its class mean, radians
    distractors: tuple[int, int] = (2, 5)
    occluder_prob: float = 0.3  # chance that a background bar crosses an object
    min_visible: float = 0.5  # an object keeps at least this share of its area visible
    void_width: int = 1  # pixels of 255 on each side of an object boundary
    jpeg_quality: int = 92
    n_jobs: int = 1  # joblib workers drawing images (each image depends on its index alone: same set)

    def __post_init__(self) -> None:
        if self.num_train < 1 or self.num_val < 0:
            raise ConfigError(f"dataset.num_train must be at least 1 and dataset.num_val at least 0, got "
                              f"{self.num_train} and {self.num_val}")
        if not 16 <= self.image_size[0] <= self.image_size[1]:
            raise ConfigError(f"dataset.image_size {self.image_size} must be (min side, max side), 16 <= min <= max")
        if not 1 <= self.num_classes <= 254:
            raise ConfigError(f"dataset.num_classes must be in 1..254, got {self.num_classes}")
        lo, hi = self.classes_per_image
        if not 1 <= lo <= hi <= self.num_classes:
            raise ConfigError(f"dataset.classes_per_image {self.classes_per_image} must lie in 1..num_classes")
        if not 1 <= self.objects_per_image[0] <= self.objects_per_image[1] or self.objects_per_image[1] < hi:
            raise ConfigError(
                f"dataset.objects_per_image {self.objects_per_image} must allow one object per class "
                f"(its maximum >= classes_per_image maximum {hi})"
            )
        if self.num_train < 1 or self.num_val < 0:
            raise ConfigError("dataset.num_train must be >= 1 and dataset.num_val >= 0")

    @property
    def num_images(self) -> int:
        return self.num_train + self.num_val


@dataclasses.dataclass(frozen=True)
class ClassLook:
    name: str
    part_shape: str
    part_colors: tuple[np.ndarray, np.ndarray]
    body_hue: float
    body_angle: float
    body_frequency: float


def class_looks(spec: SyntheticSpec) -> list[ClassLook]:
    """The appearance of each foreground class (index i -> class i + 1)."""
    rng = np.random.default_rng([spec.seed, 7919])
    looks = []
    for i in range(spec.num_classes):
        shape = PART_SHAPES[i % len(PART_SHAPES)]
        name = shape if spec.num_classes <= len(PART_SHAPES) else f"{shape}{i // len(PART_SHAPES)}"
        hue_a = (i / spec.num_classes + 0.5 / spec.num_classes) % 1.0
        hue_b = (hue_a + 0.5 + 0.1 * rng.standard_normal()) % 1.0
        looks.append(ClassLook(
            name=name,
            part_shape=shape,
            part_colors=(_hsv(hue_a, 1.0, 1.0), _hsv(hue_b, 0.9, 0.35)),
            body_hue=(hue_a + 0.5 / spec.num_classes) % 1.0,
            body_angle=np.pi * i / spec.num_classes,
            body_frequency=float(rng.uniform(0.12, 0.22)),
        ))
    return looks


def class_names(spec: SyntheticSpec) -> list[str]:
    return ["background"] + [look.name for look in class_looks(spec)]


def split_of(spec: SyntheticSpec, index: int) -> str:
    return "train" if index < spec.num_train else "val"


def image_id(index: int) -> str:
    return f"syn_{index:06d}"


def render_sample(spec: SyntheticSpec, index: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(RGB image uint8 HxWx3, mask uint8 HxW with 0/1..C/255, sorted class indices)."""
    looks = class_looks(spec)
    for attempt in range(100):
        sample = _render_attempt(spec, looks, np.random.default_rng([spec.seed, index, attempt]))
        if sample is not None:
            return sample
    raise RuntimeError(f"synthetic image {index}: objects too occluded in 100 draws; lower dataset.min_visible")


def _render_attempt(spec: SyntheticSpec, looks: list[ClassLook], rng: np.random.Generator):
    """One draw of an image; None when an object ends up too occluded to label fairly."""
    if spec.image_sizes:
        h, w = (int(side) for side in spec.image_sizes[int(rng.integers(len(spec.image_sizes)))])
    else:
        h, w = (int(rng.integers(spec.image_size[0], spec.image_size[1] + 1)) for _ in range(2))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    image = _clutter_background(rng, h, w, yy, xx)
    for _ in range(int(rng.integers(spec.distractors[0], spec.distractors[1] + 1))):
        blob = _blob(rng, yy, xx, h, w, radius=rng.uniform(*spec.body_radius) * min(h, w) * 0.8)
        image[blob] = _distractor_texture(rng, spec, looks, yy, xx)[blob]

    n_classes = int(rng.integers(spec.classes_per_image[0], spec.classes_per_image[1] + 1))
    present = rng.choice(spec.num_classes, size=n_classes, replace=False) + 1
    n_objects = int(rng.integers(max(spec.objects_per_image[0], n_classes), spec.objects_per_image[1] + 1))
    object_classes = list(present) + list(rng.choice(present, size=n_objects - n_classes))
    rng.shuffle(object_classes)

    label = np.zeros((h, w), dtype=np.uint8)
    owner = np.full((h, w), -1, dtype=np.int32)  # which object a pixel shows
    part_owner = np.full((h, w), -1, dtype=np.int32)  # which object's part a pixel shows
    areas, part_areas = [], []
    for k, cls in enumerate(object_classes):
        look = looks[cls - 1]
        body_r = rng.uniform(*spec.body_radius) * min(h, w)
        body = _blob(rng, yy, xx, h, w, radius=body_r)
        part = _part(rng, spec, look, yy, xx, body, body_r)
        image[body] = _body_texture(rng, spec, look, yy, xx)[body]
        image[part] = _part_texture(look, yy, xx, body_r * spec.part_radius)[part]
        shape = body | part
        label[shape] = cls
        owner[shape], part_owner[shape] = k, -1
        part_owner[part] = k
        areas.append(int(shape.sum()))
        part_areas.append(int(part.sum()))

    if rng.random() < spec.occluder_prob:
        bar = _bar(rng, yy, xx, h, w, width=rng.uniform(0.04, 0.08) * min(h, w))
        image[bar] = _clutter_background(rng, h, w, yy, xx)[bar]
        label[bar] = 0
        owner[bar] = part_owner[bar] = -1

    if not _fairly_visible(owner, part_owner, object_classes, present, (areas, part_areas), spec.min_visible):
        return None
    image = image + rng.normal(0.0, 6.0, size=image.shape)  # sensor grain
    return np.clip(image, 0, 255).astype(np.uint8), _void_edges(label, spec.void_width), sorted(int(c) for c in present)


def _fairly_visible(owner: np.ndarray, part_owner: np.ndarray, object_classes: list, present, areas: tuple,
                    min_visible: float) -> bool:
    """Occlusion is welcome, but every object stays mostly visible and every labelled
    class shows at least one of its parts: the part must stay decisive."""
    areas, part_areas = areas
    visible = np.bincount(owner[owner >= 0], minlength=len(object_classes))
    part_visible = np.bincount(part_owner[part_owner >= 0], minlength=len(object_classes))
    if any(v < min_visible * a for v, a in zip(visible, areas)):
        return False
    return all(any(part_visible[k] >= min_visible * part_areas[k] > 0 for k, c in enumerate(object_classes) if c == cls)
               for cls in present)


def _void_edges(label: np.ndarray, void_width: int) -> np.ndarray:
    """The GT mask: the label with a band of `void_width` px marked ignore along every edge, as VOC's."""
    mask = label.copy()
    if void_width > 0:
        size = 2 * void_width + 1
        from scipy import ndimage  # imported when used: the CLI plans without it

        boundary = ndimage.grey_dilation(label, size=size) != ndimage.grey_erosion(label, size=size)
        mask[boundary] = IGNORE_INDEX
    return mask


# ---- drawing helpers -------------------------------------------------------------


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int) -> np.ndarray:
    coarse = rng.integers(0, 256, size=(cells, cells, channels), dtype=np.uint8)
    smooth = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(smooth, dtype=np.float32) / 255.0


def _clutter_background(rng, h, w, yy, xx) -> np.ndarray:
    base = _hsv(rng.random(), rng.uniform(0.1, 0.45), rng.uniform(0.35, 0.8))
    low = _smooth_noise(rng, h, w, int(rng.integers(3, 7)), 3) - 0.5
    image = base + 110.0 * low
    for _ in range(int(rng.integers(2, 6))):  # straight clutter: bars of other colours
        bar = _bar(rng, yy, xx, h, w, width=rng.uniform(0.02, 0.07) * min(h, w))
        image[bar] = _hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.9))
    return image


def _rotated(rng, yy, xx, cy, cx):
    angle = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    return u, v


def _blob(rng, yy, xx, h, w, radius: float) -> np.ndarray:
    """An irregular ellipse: varied aspect, rotation and a wavy outline."""
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    u, v = _rotated(rng, yy, xx, cy, cx)
    aspect = rng.uniform(0.6, 1.0)
    r = np.sqrt((u / radius) ** 2 + (v / (radius * aspect)) ** 2)
    theta = np.arctan2(v, u)
    wobble = 1.0 + sum(rng.uniform(0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    return r < wobble


def _bar(rng, yy, xx, h, w, width: float) -> np.ndarray:
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    u, v = _rotated(rng, yy, xx, cy, cx)
    return (np.abs(v) < width / 2) & (np.abs(u) < rng.uniform(0.3, 0.8) * max(h, w))


def _body_texture(rng, spec: SyntheticSpec, look: ClassLook, yy, xx) -> np.ndarray:
    """Stripes in a hue and at an angle drawn around the class mean: suggestive, not decisive."""
    hue = look.body_hue + rng.normal(0.0, spec.body_hue_spread)
    angle = look.body_angle + rng.normal(0.0, spec.body_angle_spread)
    freq = look.body_frequency * rng.uniform(0.85, 1.15)
    light, dark = _hsv(hue, rng.uniform(0.35, 0.6), 0.85), _hsv(hue, rng.uniform(0.35, 0.6), 0.45)
    phase = 2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi)
    t = (0.5 + 0.5 * np.sin(phase))[..., None]
    return light * t + dark * (1 - t)


def _distractor_texture(rng, spec: SyntheticSpec, looks: list[ClassLook], yy, xx) -> np.ndarray:
    """Stripes as a body's, at a (hue, angle) no class has: the hue halfway between two
    neighbouring classes' (the class hues are evenly spaced), the angle a right angle
    off the mean of theirs (the class angles spread over half a turn)."""
    i = int(rng.integers(len(looks)))
    a, b = looks[i], looks[(i + 1) % len(looks)]
    gap = (b.body_hue - a.body_hue) % 1.0
    mean_angle = np.angle(np.exp(2j * a.body_angle) + np.exp(2j * b.body_angle)) / 2  # angles mod pi
    between = dataclasses.replace(a, body_hue=(a.body_hue + gap / 2) % 1.0, body_angle=mean_angle + np.pi / 2)
    return _body_texture(rng, spec, between, yy, xx)


def _part(rng, spec: SyntheticSpec, look: ClassLook, yy, xx, body: np.ndarray, body_r: float) -> np.ndarray:
    """The discriminative part, placed on the body near its outline."""
    part_r = spec.part_radius * body_r
    from scipy import ndimage

    inside = ndimage.distance_transform_edt(body)
    candidates = np.argwhere((inside > part_r * 0.6) & (inside < part_r * 1.4))
    if len(candidates) == 0:
        candidates = np.argwhere(inside >= inside.max() * 0.8)
    cy, cx = candidates[int(rng.integers(len(candidates)))]
    u, v = _rotated(rng, yy, xx, float(cy), float(cx))
    return _shape_mask(look.part_shape, u / part_r, v / part_r)


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    if shape == "disc":
        return r < 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) < 0.85
    if shape == "triangle":
        return r * np.cos((theta % (2 * np.pi / 3)) - np.pi / 3) < 0.55
    if shape == "cross":
        return ((np.abs(u) < 0.35) & (np.abs(v) < 1.0)) | ((np.abs(v) < 0.35) & (np.abs(u) < 1.0))
    if shape == "star":
        return r < 0.6 + 0.45 * np.cos(5 * theta)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) < 1.1
    if shape == "ring":
        return (r < 1.0) & (r > 0.55)
    if shape == "hexagon":
        return r * np.cos((theta % (np.pi / 3)) - np.pi / 6) < 0.9
    raise ValueError(f"unknown part shape {shape!r}")


def _part_texture(look: ClassLook, yy, xx, part_r: float) -> np.ndarray:
    """A saturated checkerboard in the class's two part colours."""
    cell = max(part_r / 2.0, 1.5)
    checker = ((np.floor(yy / cell) + np.floor(xx / cell)) % 2)[..., None]
    a, b = look.part_colors
    return a * checker + b * (1 - checker)


@DATASETS.register_module(name="synthetic")
class Synthetic(DataSource):
    """Generates the VOC-layout tree under `<out_dir>/VOC` item by item, reusing items an
    interrupted run already wrote."""

    Spec = SyntheticSpec

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(image, mask, classes) of item `index`; a subclass may draw other images."""
        return render_sample(self.spec, index)

    def class_names(self) -> list[str]:
        return class_names(self.spec)

    def _draw(self, index: int, image_dir: Path, mask_dir: Path, palette) -> tuple[int, list[int]]:
        """Render item `index` and write its image and mask (atomically): (index, classes)."""
        image, mask, classes = self.render(index)
        name = image_id(index)
        save_image(image_dir / f"{name}.jpg", Image.fromarray(image), format="JPEG", quality=self.spec.jpeg_quality)
        save_mask(mask_dir / f"{name}.png", mask, palette)
        return index, classes

    @classmethod
    def example(cls, folder: Path, name: str) -> dict:
        """Drawn, not read: nothing is written into `folder`."""
        return dict(type=name, num_train=4, num_val=2, image_size=(48, 56))

    def prepare(self, out_dir: Path) -> dict:
        spec = self.spec
        tree = out_dir / "VOC"
        image_dir, mask_dir = tree / "JPEGImages", tree / "SegmentationClass"
        palette = voc_palette()
        splits: dict[str, list[str]] = {"train": [], "val": []}
        labels: dict[str, list[int]] = {}
        done = [(image_dir / f"{image_id(i)}.jpg").is_file() and (mask_dir / f"{image_id(i)}.png").is_file()
                for i in range(spec.num_images)]
        from joblib import Parallel, delayed

        jobs = (delayed(self._draw)(i, image_dir, mask_dir, palette) for i in range(spec.num_images) if not done[i])
        drawn = dict(progress(Parallel(n_jobs=spec.n_jobs, return_as="generator")(jobs),
                              desc="prepare: synthetic images", total=done.count(False)))
        reused = 0
        for index in range(spec.num_images):
            name = image_id(index)
            if done[index]:
                # Written atomically on an earlier, interrupted run: reuse; labels come from the mask.
                present = np.unique(read_mask(mask_dir / f"{name}.png"))
                classes = [int(c) for c in present if 0 < c < 255]
                reused += 1
            else:
                classes = drawn[index]
            splits[split_of(spec, index)].append(name)
            labels[name] = classes
        if reused:
            get_logger().info("prepare: reused %d of %d images written by an interrupted run", reused, spec.num_images)
        for split, ids in splits.items():  # the VOC tree's own lists, for tools that read VOC
            write_lines(tree / "ImageSets" / "Segmentation" / f"{split}.txt", ids)
        names = self.class_names()
        write_prepared(out_dir, name="synthetic", classes=names, palette=palette, image_dir=image_dir,
                       image_suffix=".jpg", mask_dir=mask_dir, splits=splits, labels=labels)
        per_class = np.bincount([c for cs in labels.values() for c in cs], minlength=len(names))[1:]
        return {
            "artifacts": {"images": spec.num_images, "masks": spec.num_images, "reused": reused,
                          **{f"{split}_images": len(ids) for split, ids in splits.items()}},
            "info": {"classes": names, "images_per_class": dict(zip(names[1:], per_class.tolist()))},
        }
