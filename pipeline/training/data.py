"""Training images with the BAS/IRN augmentation: with image-level labels (localizers),
or with a label map (IRN's boundary branch)."""

from __future__ import annotations

import torch
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset

from pipeline.datasets.masks import IGNORE_INDEX, read_mask
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import DataError
from pipeline.images import load_rgb, to_normalized_tensor


def multi_hot(classes: list[int], num_classes: int) -> torch.Tensor:
    """Class indices 1..C -> a (C,) 0/1 vector (background is not a class here)."""
    label = torch.zeros(num_classes)
    label[[c - 1 for c in classes]] = 1.0
    return label


class _AugmentedImages(Dataset):
    """Items are (index, seed) pairs (`EpochBatches`): each sample's augmentation is drawn
    from its own seed, so it does not depend on the worker or on earlier samples."""

    def __init__(self, dataset: PreparedDataset, ids: list[str], resize_long: tuple[int, int], crop: int,
                 flip: bool):
        self.dataset, self.ids = dataset, ids
        self.resize_long, self.crop, self.flip = tuple(resize_long), crop, flip

    def __len__(self) -> int:
        return len(self.ids)

    def _size(self, h: int, w: int, rng: torch.Generator, square: bool = False) -> list[int]:
        """The resized (h, w): the long side drawn from `resize_long` (or a square of it)."""
        long_side = int(torch.randint(self.resize_long[0], self.resize_long[1] + 1, (), generator=rng))
        scale = long_side / max(w, h)
        return [long_side, long_side] if square else [max(1, round(h * scale)), max(1, round(w * scale))]

    def _flips(self, rng: torch.Generator) -> bool:
        return self.flip and bool(torch.rand((), generator=rng) < 0.5)


class AugmentedLabelledImages(_AugmentedImages):
    """Random long-side (or square) resize, horizontal flip, colour jitter (where asked),
    random crop (zero-padded if smaller); the target is the image-level label vector.

    `color_jitter` s: brightness, contrast and saturation each scaled by a factor drawn
    from [1 - s, 1 + s], in that order (torchvision's ColorJitter without hue; timm's
    ImageNet recipe uses 0.4). 0 draws nothing, so a run without it is unchanged."""

    def __init__(self, dataset: PreparedDataset, ids: list[str], resize_long: tuple[int, int], crop: int,
                 flip: bool = True, square: bool = False, color_jitter: float = 0.0):
        super().__init__(dataset, ids, resize_long, crop, flip)
        self.square, self.color_jitter = square, color_jitter

    def _jittered(self, image, rng: torch.Generator):
        s = self.color_jitter
        factors = (1 - s + 2 * s * torch.rand(3, generator=rng)).tolist()
        for adjust, factor in zip((TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation), factors):
            image = adjust(image, factor)
        return image

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        i, seed = item
        rng = torch.Generator().manual_seed(seed)
        image_id = self.ids[i]
        image = load_rgb(self.dataset.image_path(image_id))
        w, h = image.size
        image = TF.resize(image, self._size(h, w, rng, self.square), interpolation=TF.InterpolationMode.BILINEAR)
        if self._flips(rng):
            image = TF.hflip(image)
        if self.color_jitter:
            image = self._jittered(image, rng)
        x = _random_crop([to_normalized_tensor(image)], [0.0], self.crop, rng)[0]
        return x, multi_hot(self.dataset.labels[image_id], self.dataset.num_classes)


class AugmentedRelationCrops(_AugmentedImages):
    """IRN's boundary-branch data: image and label map resized, flipped and cropped
    together (label nearest, padded with 255), the label sampled at stride 4 (the
    boundary map's grid: a crop divisible by 4 gives crop / 4 cells)."""

    STRIDE = 4

    def __init__(self, dataset: PreparedDataset, ids: list[str], label_dir, resize_long: tuple[int, int],
                 crop: int, flip: bool = True):
        super().__init__(dataset, ids, resize_long, crop, flip)
        self.label_dir = label_dir

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        i, seed = item
        rng = torch.Generator().manual_seed(seed)
        image_id = self.ids[i]
        image = to_normalized_tensor(load_rgb(self.dataset.image_path(image_id)))
        label = torch.from_numpy(read_mask(self.label_dir / f"{image_id}.png").astype("int64"))[None]
        if label.shape[1:] != image.shape[1:]:
            raise DataError(f"{self.label_dir / f'{image_id}.png'}: label {tuple(label.shape[1:])} and image "
                            f"{tuple(image.shape[1:])} differ in size")
        size = self._size(*image.shape[1:], rng)
        image = TF.resize(image, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        label = TF.resize(label, size, interpolation=TF.InterpolationMode.NEAREST)
        if self._flips(rng):
            image, label = image.flip(2), label.flip(2)
        image, label = _random_crop([image, label], [0.0, IGNORE_INDEX], self.crop, rng)
        half = self.STRIDE // 2
        return image, label[0, half::self.STRIDE, half::self.STRIDE]


def _random_crop(tensors: list[torch.Tensor], fills: list[float], size: int,
                 rng: torch.Generator) -> list[torch.Tensor]:
    """The same random crop of each (C, H, W) tensor (padded with its fill if smaller)."""
    _, h, w = tensors[0].shape

    def offset(room: int) -> int:
        return int(torch.randint(0, room + 1, (), generator=rng))

    top, left = offset(max(h, size) - h), offset(max(w, size) - w)
    y0, x0 = offset(max(h, size) - size), offset(max(w, size) - size)
    out = []
    for x, fill in zip(tensors, fills):
        canvas = torch.full((x.shape[0], max(h, size), max(w, size)), fill, dtype=x.dtype)
        canvas[:, top:top + h, left:left + w] = x
        out.append(canvas[:, y0:y0 + size, x0:x0 + size])
    return out
