"""Camera geometry of the RenderMe-360 rig: square crop, resize, lens undistortion, projection, triangulation."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F


def square_crop(height: int, width: int) -> tuple[int, int, int]:
    """(left, top, side) of the centred square crop of an image [height, width]."""
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side


def crop_resize_intrinsics(K: np.ndarray, left: int, top: int, side: int, size: int) -> np.ndarray:
    """K [3, 3] of the square crop (left, top, side) resized to size x size; pixel centres stay aligned."""
    out = np.array(K, dtype=np.float64)
    out[0, 2] -= left
    out[1, 2] -= top
    factor = size / side
    out[0, 0] *= factor
    out[1, 1] *= factor
    out[:2, 2] = (out[:2, 2] + 0.5) * factor - 0.5
    return out


def distort(xy: np.ndarray, D: np.ndarray) -> np.ndarray:
    """OpenCV radial-tangential distortion (k1, k2, p1, p2, k3) of normalised points [N, 2]."""
    k1, k2, p1, p2, k3 = (float(d) for d in D[:5])
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    radial = 1.0 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return np.stack([xd, yd], -1)


def undistort_points(pixels: np.ndarray, K: np.ndarray, D: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Pixels [N, 2] of a distorted image -> pixels of the ideal pinhole camera with the same K."""
    if not np.any(D):
        return np.asarray(pixels, dtype=np.float64)
    f, c = np.array([K[0, 0], K[1, 1]]), np.array([K[0, 2], K[1, 2]])
    observed = (np.asarray(pixels, dtype=np.float64) - c) / f
    xy = observed.copy()
    for _ in range(iterations):  # fixed point: xy = observed - (distort(xy) - xy)
        xy = observed - (distort(xy, D) - xy)
    return xy * f + c


def undistort_grid(K: np.ndarray, D: np.ndarray, height: int, width: int) -> Tensor | None:
    """grid_sample coordinates [1, H, W, 2] that resample a captured image into the pinhole model K without
    the distortion D (where each ideal pixel lies in the captured image); None when D is zero."""
    if not np.any(D):
        return None
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    f, c = np.array([K[0, 0], K[1, 1]]), np.array([K[0, 2], K[1, 2]])
    ideal = (np.stack([cols.ravel(), rows.ravel()], -1) - c) / f
    source = distort(ideal, D) * f + c  # [H*W, 2]
    grid = torch.from_numpy(source.reshape(1, height, width, 2)).float()
    return (grid + 0.5) / torch.tensor([width, height]) * 2.0 - 1.0  # align_corners=False coordinates


def remap(image: np.ndarray, grid: Tensor | None) -> np.ndarray:
    """Bilinear resampling of a uint8 image [H, W] or [H, W, C] at grid [1, H, W, 2] (None: unchanged)."""
    if grid is None:
        return image
    h, w = image.shape[:2]
    planar = torch.from_numpy(np.ascontiguousarray(image).reshape(h, w, -1)).permute(2, 0, 1)[None].float()
    out = F.grid_sample(planar, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy().reshape(image.shape)


def undistort_image(image: np.ndarray, K: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Resample an image [H, W] or [H, W, C] (uint8) so it obeys the pinhole model K without distortion D."""
    return remap(image, undistort_grid(K, D, *image.shape[:2]))


def project(points: Tensor, K: Tensor, w2c: Tensor) -> Tensor:
    """World points [..., N, 3] -> pixels [..., C, N, 2] in cameras K [C, 3, 3], w2c [C, 4, 4]."""
    cam = torch.einsum("cij,...nj->...cni", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]
    z = cam[..., 2:].clamp_min(1e-6)
    return torch.einsum("cij,...cnj->...cni", K[:, :2, :2], cam[..., :2] / z) + K[:, None, :2, 2]


def triangulate(pixels: np.ndarray, valid: np.ndarray, P: np.ndarray, max_error_px: float) -> np.ndarray:
    """Points [N, 3] seen in C views, pixels [C, N, 2] with valid [C, N], projections P [C, 3, 4].

    Linear (DLT) least squares; while a view's reprojection error exceeds max_error_px, the worst view is
    dropped and the point solved again. NaN where fewer than two views remain.
    """
    n = pixels.shape[1]
    out = np.full((n, 3), np.nan)
    for k in range(n):
        views = np.nonzero(valid[:, k])[0]
        while len(views) >= 2:  # each pass drops the worst view, so this ends
            point = _dlt(pixels[views, k], P[views])
            error = _reprojection_error(point, pixels[views, k], P[views])
            if error.max() <= max_error_px:
                out[k] = point
                break
            views = np.delete(views, int(np.argmax(error)))
    return out


def _dlt(pixels: np.ndarray, P: np.ndarray) -> np.ndarray:  # pixels [V, 2], P [V, 3, 4] -> [3]
    rows = np.concatenate([pixels[:, :1] * P[:, 2] - P[:, 0], pixels[:, 1:] * P[:, 2] - P[:, 1]])
    _, _, vt = np.linalg.svd(rows)
    return vt[-1, :3] / vt[-1, 3]


def _reprojection_error(point: np.ndarray, pixels: np.ndarray, P: np.ndarray) -> np.ndarray:  # -> [V]
    h = P @ np.append(point, 1.0)
    return np.linalg.norm(h[:, :2] / h[:, 2:] - pixels, axis=-1)


def projection_matrices(K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """[C, 3, 4] pinhole projections of cameras K [C, 3, 3], c2w [C, 4, 4]."""
    w2c = np.linalg.inv(c2w)
    return K @ w2c[:, :3, :]
