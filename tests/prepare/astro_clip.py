"""The test clip: skimage's astronaut photo under a known pan, zoom and roll (helpers shared by the tests)."""

import numpy as np
from scipy.ndimage import affine_transform

N_FRAMES = 16
FRAME_HW = (256, 320)
FACE = np.array([226.0, 120.0])  # photo pixel near the face centre; the motion is about it
SIZE = 256  # crop size of the session's prepared collection


def similarity(t: int) -> np.ndarray:
    """[2, 3] affine map photo px -> frame px at frame t: zoom 1 -> 1.25, roll +-4 deg, pan."""
    u = t / (N_FRAMES - 1)
    s, a = 1.0 + 0.25 * u, np.deg2rad(4.0) * np.sin(2 * np.pi * u)
    A = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    shift = np.array([160.0 + 15.0 * np.sin(2 * np.pi * u), 112.0 + 8.0 * u])
    return np.concatenate([A, (shift - A @ FACE)[:, None]], axis=1)


def apply(M: np.ndarray, points: np.ndarray) -> np.ndarray:  # [2, 3], [N, 2] -> [N, 2]
    return points @ M[:, :2].T + M[:, 2]


def render(photo: np.ndarray, M: np.ndarray, hw=FRAME_HW) -> np.ndarray:
    """The photo warped by M (pixel centres at integers), uint8 [H, W, 3]."""
    inv = np.linalg.inv(M[:, :2])
    swap = np.array([[0, 1], [1, 0]])
    matrix = swap @ inv @ swap  # scipy works in (row, col)
    offset = swap @ (-inv @ M[:, 2])
    chans = [affine_transform(photo[..., c].astype(np.float32), matrix, offset, output_shape=hw, order=3,
                              mode="nearest") for c in range(3)]
    return np.clip(np.stack(chans, axis=-1), 0, 255).round().astype(np.uint8)
