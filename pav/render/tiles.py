"""A labelled grid of equally sized tiles (one per appearance), as one uint8 image."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) for n tiles: one row up to 3, else the smallest near-square grid."""
    cols = n if n <= 3 else math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


@lru_cache(maxsize=8)
def _font(pixels: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=pixels)  # scalable where Pillow has FreeType
    except (ImportError, OSError, TypeError):
        return ImageFont.load_default()


def draw_label(tile: np.ndarray, text: str) -> np.ndarray:
    """tile [H, W, 3] uint8 -> a copy with text in black on a white box in its top-left corner."""
    image = Image.fromarray(tile)
    draw = ImageDraw.Draw(image)
    font = _font(max(10, tile.shape[0] // 24))
    pad = max(1, tile.shape[0] // 128)
    left, top, right, bottom = draw.textbbox((2 * pad, pad), text, font=font)
    draw.rectangle((0, 0, right + pad, bottom + pad), fill=(255, 255, 255))
    draw.text((2 * pad, pad), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def tile_grid(tiles: list[np.ndarray], labels: list[str] | None = None) -> np.ndarray:
    """tiles: n images [H, W, 3] uint8 -> [rows * H, cols * W, 3] in row-major order; empty cells white."""
    h, w = tiles[0].shape[:2]
    rows, cols = grid_shape(len(tiles))
    out = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile if labels is None else draw_label(tile, labels[i])
    return out
