"""One captured view -> one collection image: centred square crop, resize, undistort, mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .geometry import undistort_image


@dataclass(frozen=True)
class ViewGeometry:
    """How a camera's full images become square collection images."""

    left: int
    top: int
    side: int
    size: int
    K_out: np.ndarray  # [3, 3] of the output image
    D: np.ndarray  # [5] the lens distortion removed from it


def convert_view(rgb: np.ndarray, mask: np.ndarray, geo: ViewGeometry) -> tuple[np.ndarray, np.ndarray]:
    """rgb uint8 [H, W, 3] and mask uint8 [H, W] -> [size, size, 3] and [size, size]; unmasked pixels white."""
    window = (slice(geo.top, geo.top + geo.side), slice(geo.left, geo.left + geo.side))
    # BOX averages every source pixel under an output pixel: no aliasing when shrinking 2048 -> 512
    out_rgb = np.asarray(Image.fromarray(rgb[window]).resize((geo.size, geo.size), Image.BOX))
    out_mask = np.asarray(Image.fromarray(mask[window]).resize((geo.size, geo.size), Image.BOX))
    out_rgb = undistort_image(out_rgb, geo.K_out, geo.D)
    out_mask = undistort_image(out_mask, geo.K_out, geo.D)
    out_rgb = np.where(out_mask[..., None] == 0, np.uint8(255), out_rgb)
    return np.ascontiguousarray(out_rgb), np.ascontiguousarray(out_mask)
