"""The tracked camera: static, at `CAMERA_DISTANCE` on +z looking at the origin; one focal length per video."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

CAMERA_DISTANCE = 1.0  # metres; the head's translation absorbs the real distance
# OpenCV camera (x right, y down, z forward) at (0, 0, d) looking down -z: FLAME's face looks at it.
_FLIP = np.diag([1.0, -1.0, -1.0])


def camera_to_world() -> np.ndarray:
    """[4, 4] c2w of the tracked camera."""
    c2w = np.eye(4)
    c2w[:3, :3] = _FLIP
    c2w[2, 3] = CAMERA_DISTANCE
    return c2w


def intrinsics(focal: float, size: tuple[int, int]) -> np.ndarray:
    """[3, 3] K with the principal point at the image centre (pixel centres at integer coordinates)."""
    h, w = size
    return np.array([[focal, 0.0, (w - 1) / 2], [0.0, focal, (h - 1) / 2], [0.0, 0.0, 1.0]])


def to_camera(points: Tensor) -> Tensor:
    """World points [..., 3] -> camera coordinates [..., 3] of the tracked camera."""
    x, y, z = points.unbind(-1)
    return torch.stack([x, -y, CAMERA_DISTANCE - z], -1)


def project(points: Tensor, focal: Tensor, size: tuple[int, int]) -> Tensor:
    """World points [B, N, 3], focal [B] (pixels) -> pixels [B, N, 2]."""
    cam = to_camera(points)
    h, w = size
    z = cam[..., 2:].clamp_min(1e-4)
    centre = cam.new_tensor([(w - 1) / 2, (h - 1) / 2])
    return cam[..., :2] / z * focal[:, None, None] + centre
