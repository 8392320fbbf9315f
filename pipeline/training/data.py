"""Image-level-labelled training images with the BAS/IRN augmentation."""

from __future__ import annotations

import torch
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset

from pipeline.datasets.prepared import PreparedDataset
from pipeline.images import load_rgb, to_normalized_tensor


def multi_hot(classes: list[int], num_classes: int) -> torch.Tensor:
    """Class indices 1..C -> a (C,) 0/1 vector (background is not a class here)."""
    label = torch.zeros(num_classes)
    label[[c - 1 for c in classes]] = 1.0
    return label


class AugmentedLabelledImages(Dataset):
    """Random long-side (or square) resize, horizontal flip, random crop (zero-padded if smaller).

    Items are (index, seed) pairs (`EpochBatches`): each sample's augmentation is drawn
    from its own seed, so it does not depend on the worker or on earlier samples.
    """

    def __init__(self, dataset: PreparedDataset, ids: list[str], resize_long: tuple[int, int], crop: int,
                 flip: bool = True, square: bool = False):
        self.dataset, self.ids = dataset, ids
        self.resize_long, self.crop, self.flip, self.square = tuple(resize_long), crop, flip, square

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        i, seed = item
        rng = torch.Generator().manual_seed(seed)
        image_id = self.ids[i]
        image = load_rgb(self.dataset.image_path(image_id))
        long_side = int(torch.randint(self.resize_long[0], self.resize_long[1] + 1, (), generator=rng))
        w, h = image.size
        scale = long_side / max(w, h)
        size = [long_side, long_side] if self.square else [max(1, round(h * scale)), max(1, round(w * scale))]
        image = TF.resize(image, size, interpolation=TF.InterpolationMode.BILINEAR)
        if self.flip and torch.rand((), generator=rng) < 0.5:
            image = TF.hflip(image)
        x = to_normalized_tensor(image)
        x = _random_crop(x, self.crop, rng)
        return x, multi_hot(self.dataset.labels[image_id], self.dataset.num_classes)


def _random_crop(x: torch.Tensor, size: int, rng: torch.Generator) -> torch.Tensor:
    _, h, w = x.shape
    canvas = torch.zeros(3, max(h, size), max(w, size))

    def offset(room: int) -> int:
        return int(torch.randint(0, room + 1, (), generator=rng))

    top, left = offset(canvas.shape[1] - h), offset(canvas.shape[2] - w)
    canvas[:, top:top + h, left:left + w] = x
    y0, x0 = offset(canvas.shape[1] - size), offset(canvas.shape[2] - size)
    return canvas[:, y0:y0 + size, x0:x0 + size]
