"""One smooth square crop track per video, and cutting a crop out of a frame.

A crop is (x0, y0, side) in source pixels (pixel centres at integers): crop pixel (u, v) of a
crop resized to `size` has source position (x0 + (u + 0.5) * side / size - 0.5, same for y).
This is exactly PIL's resize with box=(x0, y0, x0 + side, y0 + side).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def _gaussian_weights(times: np.ndarray, sigma: float) -> np.ndarray:  # times [T] -> [T, T], rows sum to 1
    d = times[:, None] - times[None, :]
    w = np.exp(-0.5 * (d / sigma) ** 2)
    return w / w.sum(axis=1, keepdims=True)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:  # [T], [T, T] -> [T]
    order = np.argsort(values)
    cum = np.cumsum(weights[:, order], axis=1)  # [T, T]
    return values[order][np.argmax(cum >= 0.5 * cum[:, -1:], axis=1)]


def smooth_track(boxes: np.ndarray, times: np.ndarray | None, crop_scale: float, shift: float,
                 sigma_centre: float, sigma_size: float) -> np.ndarray:
    """Face boxes [T, 4] (x0, y0, w, h) at `times` [T] seconds -> crops [T, 3] (x0, y0, side).

    The centre is a Gaussian-weighted mean over time and the size a Gaussian-weighted median
    (robust to a single bad detection while following a zoom). `times=None` means unrelated
    photos: every crop follows its own box. The centre sits `shift` box sizes above the box
    centre, because hair above the face is taller than the neck below it.
    """
    boxes = np.asarray(boxes, np.float64)
    size = np.maximum(boxes[:, 2], boxes[:, 3])  # [T]
    centre = boxes[:, :2] + 0.5 * boxes[:, 2:]  # [T, 2] (pixel-centre convention kept by x0 + w/2)
    if times is not None and len(boxes) > 1:
        times = np.asarray(times, np.float64)
        if sigma_centre > 0:
            centre = _gaussian_weights(times, sigma_centre) @ centre
        if sigma_size > 0:
            size = _weighted_median(size, _gaussian_weights(times, sigma_size))
    side = crop_scale * size
    centre = centre - np.stack([np.zeros_like(size), shift * size], axis=1)
    # the crop's continuous extent is [x0 - 0.5, x0 - 0.5 + side] in pixel-centre coordinates
    x0 = centre[:, 0] + 0.5 - 0.5 * side
    y0 = centre[:, 1] + 0.5 - 0.5 * side
    return np.stack([x0, y0, side], axis=1).astype(np.float32)


def source_positions(crop: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:  # -> [S], [S]
    """Source x of crop columns and source y of crop rows (pixel centres at integers)."""
    x0, y0, side = (float(v) for v in crop)
    steps = (np.arange(size) + 0.5) * side / size - 0.5
    return x0 + steps, y0 + steps


def to_source(points: np.ndarray, crop: np.ndarray, size: int) -> np.ndarray:  # [..., 2] -> [..., 2]
    """Crop pixel coordinates -> source pixel coordinates."""
    x0, y0, side = (float(v) for v in crop)
    scale = side / size
    return (np.asarray(points, np.float64) + 0.5) * scale - 0.5 + np.array([x0, y0])


def to_crop(points: np.ndarray, crop: np.ndarray, size: int) -> np.ndarray:  # [..., 2] -> [..., 2]
    """Source pixel coordinates -> crop pixel coordinates (the inverse of to_source)."""
    x0, y0, side = (float(v) for v in crop)
    return (np.asarray(points, np.float64) + 0.5 - np.array([x0, y0])) * (size / side) - 0.5


def cut_crop(frame: np.ndarray, crop: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """frame uint8 [H, W, 3] -> (rgb uint8 [S, S, 3], inside bool [S, S]).

    Outside the frame the edge pixels are repeated; `inside` is False there (the matte is 0).
    Only the region under the crop (plus the filter's reach) is padded and resampled.
    """
    h, w = frame.shape[:2]
    x0, y0, side = (float(v) for v in crop)
    reach = int(np.ceil(2 * max(1.0, side / size))) + 1  # bicubic support, widened when shrinking
    ix0, iy0 = int(np.floor(x0)) - reach, int(np.floor(y0)) - reach
    ix1, iy1 = int(np.ceil(x0 + side)) + reach, int(np.ceil(y0 + side)) + reach
    cx0, cy0, cx1, cy1 = max(ix0, 0), max(iy0, 0), min(ix1, w), min(iy1, h)
    if cx0 >= cx1 or cy0 >= cy1:
        raise ValueError(f"crop {crop.tolist()} does not overlap the frame of size {(h, w)}")
    region = frame[cy0:cy1, cx0:cx1]
    pad = ((cy0 - iy0, iy1 - cy1), (cx0 - ix0, ix1 - cx1), (0, 0))
    if any(p for pair in pad for p in pair):
        region = np.pad(region, pad, mode="edge")
    box = (x0 - ix0, y0 - iy0, x0 - ix0 + side, y0 - iy0 + side)
    rgb = np.asarray(Image.fromarray(np.ascontiguousarray(region)).resize((size, size), Image.BICUBIC, box=box))
    xs, ys = source_positions(crop, size)
    inside = ((ys >= -0.5) & (ys <= h - 0.5))[:, None] & ((xs >= -0.5) & (xs <= w - 0.5))[None, :]
    return rgb, inside
