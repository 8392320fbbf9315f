"""One image's way through the pipeline as a row of labelled tiles.

image | a heat overlay per image-level class | pseudo-mask | GT | segmenter prediction,
each present when that stage produced it (the report stage's `load_chain` reads them
from a run folder). `--show IMAGE_ID` and the report's galleries draw the same panel.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw


CAPTION_HEIGHT = 16


@dataclasses.dataclass
class ImageChain:
    """What a run holds for one image (None where a stage did not produce it)."""

    image_id: str
    image: np.ndarray
    maps: list[tuple[str, np.ndarray]]  # (class name, (H, W) map in [0, 1])
    pseudo_mask: np.ndarray | None
    gt: np.ndarray | None
    prediction: np.ndarray | None


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    from matplotlib import colormaps  # imported when drawn: the CLI plans without it

    colour = colormaps["jet"](np.clip(heat, 0, 1))[..., :3] * 255
    return (image * (1 - alpha) + colour * alpha).astype(np.uint8)


def _tile(array: np.ndarray, caption: str, height: int) -> Image.Image:
    image = Image.fromarray(array)
    width = max(1, round(image.width * height / image.height))
    tile = Image.new("RGB", (width, height + CAPTION_HEIGHT), "white")
    tile.paste(image.resize((width, height), Image.NEAREST), (0, CAPTION_HEIGHT))
    ImageDraw.Draw(tile).text((2, 2), caption, fill="black")
    return tile


def chain_panel(chain: ImageChain, palette: np.ndarray, height: int = 160) -> Image.Image:
    """The tiles side by side, 4 px apart."""
    tiles = [_tile(chain.image, chain.image_id, height)]
    tiles += [_tile(heat_overlay(chain.image, m), f"map: {name}", height) for name, m in chain.maps]
    for caption, mask in (("pseudo-mask", chain.pseudo_mask), ("GT", chain.gt), ("segmenter", chain.prediction)):
        if mask is not None:
            tiles.append(_tile(palette[mask], caption, height))
    panel = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for tile in tiles:
        panel.paste(tile, (x, 0))
        x += tile.width + 4
    return panel
