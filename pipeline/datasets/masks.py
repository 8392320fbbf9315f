"""Class-index masks stored as palette PNGs, as VOC and mmsegmentation expect them."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from pipeline.atomic import save_image

IGNORE_INDEX = 255
# PASCAL VOC's labels, index = the value in its masks (COCO's voc20 subset maps onto them)
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


def voc_palette(num_entries: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved), shape (num_entries, 3), uint8."""
    palette = np.zeros((num_entries, 3), dtype=np.uint8)
    for index in range(num_entries):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def save_mask(path: str | os.PathLike, mask: np.ndarray, palette: np.ndarray | None = None) -> None:
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D uint8 array of class indices, got {mask.dtype} {mask.shape}")
    image = Image.fromarray(mask, mode="P")
    image.putpalette((voc_palette() if palette is None else palette).astype(np.uint8).ravel().tolist())
    save_image(path, image, format="PNG")


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Class indices from a palette (or single-channel) PNG; RGB-coloured masks are refused."""
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise ValueError(
                f"{path}: mask is mode {image.mode}, expected a palette ('P') or grey ('L') PNG of "
                "class indices; colour-coded RGB masks must be converted to indices first"
            )
        return np.asarray(image, dtype=np.uint8).copy()
