"""Error maps in the style of the paper's Figure 3: prediction | truth | per-pixel error as a heat map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..render.tiles import draw_label

ERROR_FULL_SCALE = 0.25  # mean absolute error over the channels drawn at the top of the colour ramp
MIN_HEIGHT = 256  # small renders are enlarged (nearest neighbour) to at least this height
# black -> purple -> red -> orange -> pale yellow, a perceptually ordered ramp for the error
RAMP = np.array([[0, 0, 0], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], np.float32) / 255.0


def heat(error: Tensor) -> Tensor:
    """error [H, W] in [0, 1] -> colours [H, W, 3] along RAMP."""
    x = error.clamp(0, 1).numpy() * (len(RAMP) - 1)
    low = np.floor(x).astype(int).clip(0, len(RAMP) - 2)
    frac = (x - low)[..., None]
    return torch.from_numpy(RAMP[low] * (1 - frac) + RAMP[low + 1] * frac)


def error_heat(pred: Tensor, truth: Tensor) -> Tensor:
    """pred, truth [H, W, 3] -> their mean absolute error over the channels as colours [H, W, 3]."""
    return heat((pred - truth).abs().mean(-1) / ERROR_FULL_SCALE)


def error_panel(pred: Tensor, truth: Tensor) -> np.ndarray:
    """pred, truth [H, W, 3] on white -> uint8 [H', 3 W', 3] prediction | truth | error heat map."""
    tiles = [pred, truth, error_heat(pred, truth)]
    factor = max(1, -(-MIN_HEIGHT // pred.shape[0]))
    out = []
    for tile, label in zip(tiles, ("prediction", "truth", f"|error| (full scale {ERROR_FULL_SCALE})"), strict=True):
        image = (tile.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        if factor > 1:
            image = np.asarray(Image.fromarray(image).resize((image.shape[1] * factor, image.shape[0] * factor),
                                                             Image.NEAREST))
        out.append(draw_label(image, label))
    return np.concatenate(out, 1)


def write_error_map(path: Path, pred: Tensor, truth: Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(error_panel(pred, truth)).save(path)
    return path
