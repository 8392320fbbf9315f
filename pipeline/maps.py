"""The class maps' library: multi-scale inference, normalisation, GT-free statistics and
the GT-free threshold. Used by the export and evaluation stages, the benches and the tests."""

from __future__ import annotations

import weakref

import numpy as np
import torch
import torch.nn.functional as F
from skimage.filters import threshold_otsu
from torch.utils.data import Dataset

from pipeline.datasets.prepared import PreparedDataset
from pipeline.losses import COLLAPSED_ABOVE, COLLAPSED_BELOW
from pipeline.images import image_size, load_rgb, to_normalized_tensor

HISTOGRAM_BINS = 1000


class ImageTensors(Dataset):
    """(image id, normalised image tensor), decoded in the DataLoader's workers."""

    def __init__(self, dataset: PreparedDataset, ids: list[str]):
        self.dataset, self.ids = dataset, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor]:
        return self.ids[i], to_normalized_tensor(load_rgb(self.dataset.image_path(self.ids[i])))


MERGE_GRID = 32  # sizes that round up to the same multiple start in one bucket
PAD_MULTIPLE = 16  # a bucket's scaled sides: multiples of the usual output stride (16), so cells align


def size_buckets(sizes: list[tuple[int, int]], max_buckets: int) -> list[tuple[int, int]]:
    """At most `max_buckets` (H, W) sizes that cover every size in `sizes` with as little
    padding as a greedy merge finds: the sizes that round up to the same multiple of
    MERGE_GRID start as one bucket, and the pair whose union (the larger side of each)
    adds the fewest padded pixels over their images is merged until few enough remain.
    A bucket is the largest height and width of its images. A network then sees a few
    input shapes per scale, so per-shape costs (cuDNN plans, allocations) are paid a few
    times instead of once per batch of real photos."""
    if max_buckets < 1:
        raise ValueError(f"max_buckets must be at least 1, got {max_buckets}")
    groups: dict[tuple[int, int], list[int]] = {}  # grid cell -> [images, pixels, max h, max w]
    for h, w in sizes:
        group = groups.setdefault((-(-h // MERGE_GRID), -(-w // MERGE_GRID)), [0, 0, 0, 0])
        group[0] += 1
        group[1] += h * w
        group[2], group[3] = max(group[2], h), max(group[3], w)
    rows = np.array([groups[key] for key in sorted(groups)], dtype=np.int64).reshape(-1, 4)
    counts, shapes = rows[:, 0], rows[:, 2:]
    while len(shapes) > max_buckets:
        union = np.maximum(shapes[:, None], shapes[None])  # (k, k, 2)
        padded = counts * shapes[:, 0] * shapes[:, 1]
        cost = (counts[:, None] + counts[None]) * union[..., 0] * union[..., 1] - padded[:, None] - padded[None]
        np.fill_diagonal(cost, np.iinfo(np.int64).max)
        a, b = np.unravel_index(np.argmin(cost), cost.shape)  # the first minimum: deterministic
        shapes[a], counts[a] = union[a, b], counts[a] + counts[b]
        shapes, counts = np.delete(shapes, b, axis=0), np.delete(counts, b)
    return sorted((int(h), int(w)) for h, w in shapes)


def smallest_bucket(size: tuple[int, int], buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket of least area that holds `size` (ties: the first in order)."""
    fits = [b for b in buckets if b[0] >= size[0] and b[1] >= size[1]]
    if not fits:
        raise ValueError(f"no bucket of {buckets} holds an image of {size[0]}x{size[1]}")
    return min(fits, key=lambda b: b[0] * b[1])


def scaled_bucket(bucket: tuple[int, int], scale: float, same_levels: int = 0) -> tuple[int, int]:
    """The network's input size for a bucket at one export scale: the bucket's scaled size
    (F.interpolate's floor), plus room for the grid offset of a TF-'same' network
    (`same_levels`, see `grid_offset`), rounded up to PAD_MULTIPLE, so every image fits."""
    room = (1 << same_levels) - 1
    return tuple(-(-(int(side * scale) + room) // PAD_MULTIPLE) * PAD_MULTIPLE for side in bucket)


def grid_offset(size: int, same_levels: int) -> int:
    """Where an image of `size` px must start in a larger canvas so that a network with
    TF-'same' padding samples it on the grid it would alone. Such a stride-2 layer pads
    one more pixel at the start of an odd-sized input than of an even one; the canvas is
    even at every level, so the image moves by that pixel at each level, 2^k input pixels
    at the k-th: the sum. Networks with fixed (symmetric) padding need no offset."""
    offset = 0
    for level in range(same_levels):
        offset += (size % 2) << level
        size = (size + 1) // 2
    return offset


def same_padding_levels(model) -> int:
    """How many stride-2 levels of TF-'same' padding (timm's Conv2dSame) lie before the
    model's maps: log2 of its output stride if it has such layers, else 0."""
    if model not in _SAME_LEVELS:
        same = any(type(m).__name__ == "Conv2dSame" for m in model.modules())
        stride = 256 // feature_size(model, (256, 256), (256, 256))[0]
        _SAME_LEVELS[model] = stride.bit_length() - 1 if same else 0
    return _SAME_LEVELS[model]


def bucket_batches(dataset: PreparedDataset, ids: list[str], batch_size: int,
                   max_buckets: int | None) -> list[tuple[tuple[int, int], list[str]]]:
    """`ids` as (size, batch) pairs, each batch at most `batch_size` images of one size
    bucket (`size_buckets` of the split's sizes, read from the file headers; `size` is the
    bucket), in the order of each batch's first image. `max_buckets=None`: batches of one
    exact size (`size` is that size), to be run without padding. The batches depend on the
    list alone, not on how many processes share them, so every image is computed in the
    same company."""
    sizes = {image_id: image_size(dataset.image_path(image_id)) for image_id in ids}
    buckets = None if max_buckets is None else size_buckets(list(sizes.values()), max_buckets)
    groups: dict[tuple[int, int], list[str]] = {}
    for image_id in ids:
        key = sizes[image_id] if buckets is None else smallest_bucket(sizes[image_id], buckets)
        groups.setdefault(key, []).append(image_id)
    batches = [(key, group[i:i + batch_size]) for key, group in groups.items()
               for i in range(0, len(group), batch_size)]
    position = {image_id: k for k, image_id in enumerate(ids)}
    return sorted(batches, key=lambda pair: position[pair[1][0]])


class ImageBatches(Dataset):
    """(ids, [(3, h, w) normalised image per id]) for the batches of `bucket_batches`."""

    def __init__(self, dataset: PreparedDataset, batches: list[list[str]]):
        self.dataset, self.batches = dataset, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[list[str], list[torch.Tensor]]:
        ids = self.batches[i]
        return ids, [to_normalized_tensor(load_rgb(self.dataset.image_path(j))) for j in ids]


@torch.inference_mode()
def class_maps(model, image: torch.Tensor, classes: list[int], scales, flip: bool) -> torch.Tensor:
    """(n, H, W) maps of one image's classes over scales (and flips): averaged where the
    model's maps are probabilities (`maps_are_probabilities`), else summed and max-normalised."""
    return batch_class_maps(model, [image], [classes], scales, flip)[0]


@torch.inference_mode()
def batch_class_maps(model, images: list[torch.Tensor], classes: list[list[int]], scales, flip: bool,
                     bucket: tuple[int, int] | None = None) -> list[torch.Tensor]:
    """`class_maps` for a batch of images (3, h, w), one class list each: one forward per
    scale for the whole batch and its flips. With a `bucket`, each scaled image (and its
    flip) is zero-padded to the bucket's scaled size (zero: the normalised mean colour,
    what the first convolution pads with), at the bottom and right, and for a TF-'same'
    network also by `grid_offset` at the top and left so that it is sampled on its own
    grid; its maps are cropped back to the feature cells the image alone would give
    (`feature_size`) before they are resized to the image. Without one, the images must
    share one size. Maps are summed in fp32 whatever precision the model runs in."""
    b = len(images)
    sizes = [tuple(image.shape[-2:]) for image in images]
    totals = [torch.zeros(len(c), h, w, device=images[0].device) for c, (h, w) in zip(classes, sizes)]
    if not any(classes):
        return totals
    keeps = [torch.as_tensor([c - 1 for c in cls], dtype=torch.long, device=images[0].device) for cls in classes]
    for scale in scales:
        scaled = [image[None] if scale == 1 else
                  F.interpolate(image[None], scale_factor=scale, mode="bilinear", align_corners=False)
                  for image in images]
        views = scaled + [x.flip(-1) for x in scaled] if flip else scaled
        if bucket is None:
            x = torch.cat(views)
        else:
            levels = same_padding_levels(model)
            height, width = scaled_bucket(bucket, scale, levels)
            x = torch.empty(len(views), 3, height, width, dtype=views[0].dtype, device=views[0].device,
                            memory_format=_memory_format(images[0])).zero_()
            for k, view in enumerate(views):
                h, w = view.shape[-2:]
                top, left = grid_offset(h, levels), grid_offset(w, levels)
                x[k, :, top:top + h, left:left + w] = view[0]
        out = model(x).float()
        for i, keep in enumerate(keeps):
            if not len(keep):
                continue
            fh, fw = feature_size(model, scaled[i].shape[-2:], out.shape[-2:]) if bucket else out.shape[-2:]
            maps = out[i, keep, :fh, :fw]
            if flip:
                maps = maps + out[b + i, keep, :fh, :fw].flip(-1)
            totals[i] += F.interpolate(maps[None], size=sizes[i], mode="bilinear", align_corners=False)[0]
    if model.maps_are_probabilities:
        return [t / (len(scales) * (2 if flip else 1)) for t in totals]
    return [normalize_maps(t) for t in totals]


def _memory_format(image: torch.Tensor):
    return torch.channels_last if image.is_cuda else torch.contiguous_format


# Per model, remembered while it lives: {input size: map size}, and its TF-'same' levels.
_FEATURE_SIZES: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()
_SAME_LEVELS: "weakref.WeakKeyDictionary[torch.nn.Module, int]" = weakref.WeakKeyDictionary()


def feature_size(model, size: tuple[int, int], padded_features: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) of the maps the model gives for an input of `size` alone, found by running
    an empty batch of that size (shapes only: no arithmetic) and remembered per model."""
    known = _FEATURE_SIZES.setdefault(model, {})
    size = tuple(int(s) for s in size)
    if size not in known:
        probe = torch.zeros(0, 3, *size, device=next(model.parameters()).device)
        known[size] = tuple(model(probe).shape[-2:])
    h, w = known[size]
    return min(h, padded_features[0]), min(w, padded_features[1])


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    return maps / (maps.flatten(1).amax(1)[:, None, None] + 1e-5)


class MapStatistics:
    """GT-free statistics of the exported maps, per class: how many images carry the
    class, the mean of its maps, and the share of them that collapsed. A class whose
    maps mostly collapsed gets no seeds, whatever the threshold: said, not hidden."""

    def __init__(self, classes: list[str]):
        self.classes = classes
        self.images = np.zeros(len(classes), dtype=np.int64)
        self.mean_sum = np.zeros(len(classes))
        self.collapsed = np.zeros(len(classes), dtype=np.int64)

    def add(self, maps: np.ndarray, classes: np.ndarray) -> None:
        self.add_means(classes, self.image_means(maps, classes))

    @staticmethod
    def image_means(maps: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """The mean of each of an image's maps: all `add` needs of the image."""
        return maps.reshape(len(classes), -1).mean(1) if len(classes) else np.zeros(0)

    def add_means(self, classes: np.ndarray, means: np.ndarray) -> None:
        for c, m in zip(classes, means):
            self.images[c] += 1
            self.mean_sum[c] += m
            self.collapsed[c] += bool(m < COLLAPSED_BELOW or m > COLLAPSED_ABOVE)

    def summary(self) -> dict[str, dict]:
        return {self.classes[c]: {"images": int(self.images[c]), "mean": float(self.mean_sum[c] / self.images[c]),
                                  "collapsed_share": float(self.collapsed[c] / self.images[c])}
                for c in range(1, len(self.classes)) if self.images[c]}

    def collapsed_classes(self, share: float = 0.5) -> list[str]:
        return [name for name, s in self.summary().items() if s["collapsed_share"] > share]


def strongest_value_histogram(maps: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Counts of each pixel's strongest class-map value, in HISTOGRAM_BINS bins over [0, 1]."""
    if not len(classes):
        return np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    bins = np.minimum((maps.max(0) * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
    return np.bincount(bins.ravel(), minlength=HISTOGRAM_BINS)


def otsu_threshold(histogram: np.ndarray) -> float:
    """Otsu's threshold (scikit-image) of a histogram over [0, 1]: the cut that
    maximises the variance between the two groups it makes. scikit-image returns the
    centre of the last bin of the lower group; the cut is that bin's upper edge."""
    if np.count_nonzero(histogram) < 2:  # no values, or all alike (constant maps): no cut makes two groups
        return 0.5
    centres = (np.arange(len(histogram)) + 0.5) / len(histogram)
    return round(float(threshold_otsu(hist=(histogram, centres))) + 0.5 / len(histogram), 6)
