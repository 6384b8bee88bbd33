"""Cameras of a rendered video: the drive's own (source), one in front of the head, or one circling it.

All cameras are OpenCV (x right, y down, z forward) camera-to-world matrices; the output image is a square of
`size` pixels into which the source image is fitted (longest side scaled to `size`, the short side centred).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor

from .rays import scale_intrinsics

CAMERA_MODES = ("source", "front", "orbit")


@dataclass
class SourceCamera:
    """A recorded camera: intrinsics at its image size and a static or per-frame pose."""

    K: np.ndarray  # [3, 3] pixels of an image of image_size
    c2w: np.ndarray  # [4, 4] static, or [T, 4, 4] one per drive frame
    image_size: tuple[int, int]  # (H, W)

    def pose(self, i: int) -> np.ndarray:  # [4, 4]
        return self.c2w if self.c2w.ndim == 2 else self.c2w[i]

    def first(self, n: int) -> SourceCamera:
        """The camera of the first n drive frames."""
        return self if self.c2w.ndim == 2 else SourceCamera(self.K, self.c2w[:n], self.image_size)


def square_intrinsics(K: np.ndarray, image_size: tuple[int, int], size: int) -> np.ndarray:
    """K [3, 3] of an image of image_size (H, W) -> K [3, 3] of that image fitted into a size x size square."""
    h, w = image_size
    factor = size / max(h, w)
    out = scale_intrinsics(torch.from_numpy(np.asarray(K, np.float64)), factor).numpy()
    out[0, 2] += (size - w * factor) / 2  # the short side is centred in the square
    out[1, 2] += (size - h * factor) / 2
    return out


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world [4, 4] at eye [3] looking at target [3], image up along up [3]."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(-up, forward)  # x right = y down cross z forward
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def head_centre_and_axes(head_to_world: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean world position [3] of the head-space point centre [3] over frames head_to_world [T, 4, 4], and the
    mean head rotation [3, 3] (its columns: the head's left, up and front axes in the world)."""
    points = head_to_world[:, :3, :3] @ centre + head_to_world[:, :3, 3]  # [T, 3]
    return points.mean(0), Rotation.from_matrix(head_to_world[:, :3, :3]).mean().as_matrix()


def look_target(c2w: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """The point [3] of the optical axis of camera c2w [4, 4] nearest the world point centre [3], when the axis
    passes within radius of it, else centre: the data's own framing (crops are centred on the head)."""
    origin, axis = c2w[:3, 3], c2w[:3, 2]
    nearest = origin + axis * float(np.dot(centre - origin, axis))
    return nearest if np.linalg.norm(nearest - centre) < radius else centre


def circling_cameras(source: SourceCamera, head_to_world: np.ndarray, centre: np.ndarray, radius: float,
                     size: int, turns: float) -> tuple[np.ndarray, np.ndarray]:
    """Cameras on the head's front axis at the source camera's distance, looking at the head centre, turned
    about the head's up axis by `turns` full turns over the frames (0: a static front camera).

    head_to_world [T, 4, 4], centre [3] head space, radius: the head's half size -> K [3, 3], c2w [T, 4, 4].
    """
    centre_world, rot = head_centre_and_axes(head_to_world, centre)
    target = look_target(source.pose(0), centre_world, radius)
    distance = float(np.linalg.norm(source.pose(0)[:3, 3] - target))
    angles = 2 * np.pi * turns * np.arange(len(head_to_world)) / len(head_to_world)  # [T]
    dirs = np.stack([np.sin(angles), np.zeros_like(angles), np.cos(angles)], 1) @ rot.T  # [T, 3] world
    c2w = np.stack([look_at(target + distance * d, target, rot[:, 1]) for d in dirs])
    K = square_intrinsics(source.K, source.image_size, size)
    K[0, 2] = K[1, 2] = (size - 1) / 2  # the head centre at the image centre
    return K, c2w


def video_cameras(mode: str, source: SourceCamera, head_to_world: Tensor, head_verts: Tensor,
                  size: int) -> tuple[Tensor, Tensor]:
    """One camera per drive frame for a camera mode of CAMERA_MODES.

    head_to_world [T, 4, 4] of the drive frames, head_verts [V, 3] the head-space mesh -> K [3, 3], c2w [T, 4, 4].
    """
    if mode not in CAMERA_MODES:
        raise ValueError(f"camera={mode!r} is not one of {', '.join(CAMERA_MODES)}")
    n = len(head_to_world)
    if mode == "source":
        K = square_intrinsics(source.K, source.image_size, size)
        c2w = np.stack([source.pose(i) for i in range(n)])
    else:
        verts = head_verts.double().cpu().numpy()
        radius = float((verts.max(0) - verts.min(0)).max()) / 2
        K, c2w = circling_cameras(source, head_to_world.double().cpu().numpy(), verts.mean(0), radius, size,
                                  1.0 if mode == "orbit" else 0.0)
    return torch.from_numpy(np.asarray(K)).float(), torch.from_numpy(np.asarray(c2w)).float()
