"""Reading images for the networks, with errors that name the file."""

from __future__ import annotations

import contextlib
from pathlib import Path

from typing import TYPE_CHECKING, Iterator

from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

from pipeline.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """The image file opened by PIL; a missing or corrupt file is a DataError naming it."""
    try:
        with Image.open(path) as image:
            yield image
    except FileNotFoundError:
        raise DataError(f"image not found: {path} (it is listed in the data set; restore it or re-run prepare)") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"cannot read image {path}: {err} (corrupt or truncated? replace or remove it)") from None


def load_rgb(path: Path) -> Image.Image:
    """RGB PIL image (grey and CMYK converted); a missing or corrupt file is a DataError."""
    with _opened(path) as image:
        image.load()
        return image.convert("RGB")


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file's header, without decoding the pixels."""
    with _opened(path) as image:
        return image.height, image.width


def to_normalized_tensor(image: Image.Image) -> "torch.Tensor":
    import torchvision.transforms.functional as TF  # torch only where tensors are made (the CLI stays quick)

    return TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)
