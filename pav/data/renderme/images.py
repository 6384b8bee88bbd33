"""One captured view -> one collection image: centred square crop, resize, undistort, mask."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from torch import Tensor

from .geometry import remap, undistort_grid


@dataclass(frozen=True)
class ViewGeometry:
    """How a camera's full images [height, width] become square collection images."""

    height: int
    width: int
    left: int
    top: int
    side: int
    size: int
    K_out: np.ndarray  # [3, 3] of the output image
    D: np.ndarray  # [5] the lens distortion removed from it
    grid: Tensor | None = field(init=False, repr=False)  # the undistortion map, made once per camera

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", undistort_grid(self.K_out, self.D, self.size, self.size))

    @property
    def decode_size(self) -> tuple[int, int]:
        """(h, w) the full image may shrink to before the crop without losing output resolution."""
        scale = self.size / self.side
        return math.ceil(self.height * scale), math.ceil(self.width * scale)


def _square(image: np.ndarray, geo: ViewGeometry) -> np.ndarray:
    """The crop window of an image decoded at any scale of the full one, BOX-resized to size x size."""
    k = image.shape[1] / geo.width  # 1, 1/2, 1/4 or 1/8 for a reduced JPEG decode
    box = (geo.left * k, geo.top * k, (geo.left + geo.side) * k, (geo.top + geo.side) * k)
    # BOX averages every source pixel under an output pixel: no aliasing when shrinking 2048 -> 512
    return np.asarray(Image.fromarray(image).resize((geo.size, geo.size), Image.BOX, box=box))


def convert_view(rgb: np.ndarray, mask: np.ndarray, geo: ViewGeometry) -> tuple[np.ndarray, np.ndarray]:
    """rgb uint8 [h, w, 3] (the full image or a reduced decode of it) and mask uint8 [H, W] ->
    [size, size, 3] and [size, size]; pixels outside the mask are white."""
    both = remap(np.concatenate([_square(rgb, geo), _square(mask, geo)[..., None]], -1), geo.grid)
    out_rgb, out_mask = both[..., :3], both[..., 3]
    out_rgb = np.where(out_mask[..., None] == 0, np.uint8(255), out_rgb)
    return np.ascontiguousarray(out_rgb), np.ascontiguousarray(out_mask)
