"""The class maps' inference: multi-scale + flip, batched by exact size, normalisation and
fusion. Used by the export stage, the benches and the tests (their GT-free statistics and
threshold: `pipeline.map_statistics`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from pipeline.datasets.prepared import PreparedDataset
from pipeline.images import image_size, load_rgb, to_normalized_tensor


class ImageTensors(Dataset):
    """(image id, normalised image tensor), decoded in the DataLoader's workers."""

    def __init__(self, dataset: PreparedDataset, ids: list[str]):
        self.dataset, self.ids = dataset, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor]:
        return self.ids[i], to_normalized_tensor(load_rgb(self.dataset.image_path(self.ids[i])))


def size_batches(dataset: PreparedDataset, ids: list[str], batch_size: int) -> list[list[str]]:
    """`ids` in batches of at most `batch_size` images of one exact size (read from the
    file headers), in the order of each batch's first image. One size, no padding: a
    padded canvas would reach the maps through every border convolution and every global
    op (DRS's max, a backbone's pooling), so a batched map would not be the image's own.
    The batches depend on the list alone, not on how many processes share them."""
    groups: dict[tuple[int, int], list[str]] = {}
    for image_id in ids:
        groups.setdefault(image_size(dataset.image_path(image_id)), []).append(image_id)
    batches = [group[i:i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]
    position = {image_id: k for k, image_id in enumerate(ids)}
    return sorted(batches, key=lambda batch: position[batch[0]])


class ImageBatches(Dataset):
    """(ids, (b, 3, h, w) normalised images) for the batches of `size_batches`."""

    def __init__(self, dataset: PreparedDataset, batches: list[list[str]]):
        self.dataset, self.batches = dataset, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[list[str], torch.Tensor]:
        ids = self.batches[i]
        return ids, torch.stack([to_normalized_tensor(load_rgb(self.dataset.image_path(j))) for j in ids])


@torch.inference_mode()
def class_maps(model, image: torch.Tensor, classes: list[int], scales, flip: bool) -> torch.Tensor:
    """(n, H, W) maps of one image's classes over scales (and flips): averaged where the
    model's maps are probabilities (`maps_are_probabilities`), else summed and max-normalised."""
    return batch_class_maps(model, image[None], [classes], scales, flip)[0]


@torch.inference_mode()
def batch_class_maps(model, images: torch.Tensor, classes: list[list[int]], scales, flip: bool) -> list[torch.Tensor]:
    """`class_maps` for a batch of images of one size (b, 3, h, w), one class list each:
    one forward per scale for the whole batch and its flips. Maps are summed in fp32
    whatever precision the model runs in."""
    b, size = len(images), tuple(images.shape[-2:])
    totals = [torch.zeros(len(c), *size, device=images.device) for c in classes]
    if not any(classes):
        return totals
    keeps = [torch.as_tensor([c - 1 for c in cls], dtype=torch.long, device=images.device) for cls in classes]
    for scale in scales:
        x = images if scale == 1 else F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False)
        out = model(torch.cat([x, x.flip(-1)]) if flip else x).float()
        for i, keep in enumerate(keeps):
            if not len(keep):
                continue
            maps = out[i, keep] + out[b + i, keep].flip(-1) if flip else out[i, keep]
            totals[i] += F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]
    if model.maps_are_probabilities:
        return [t / (len(scales) * (2 if flip else 1)) for t in totals]
    return [normalize_maps(t) for t in totals]


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    return maps / (maps.flatten(1).amax(1)[:, None, None] + 1e-5)


def fuse_maps(localizer_maps: torch.Tensor, cam_maps: torch.Tensor) -> torch.Tensor:
    """The reference's fusion (BAS-Extension, step/make_cam.py): each map divided by its
    maximum, the two summed, the sum divided by its maximum."""
    return normalize_maps(normalize_maps(localizer_maps) + normalize_maps(cam_maps))
