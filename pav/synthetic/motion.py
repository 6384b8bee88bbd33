"""Head-pose and expression trajectories of one synthetic video, its camera and its test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..render.cameras import look_at

N_EXPR = 50
# named expression components of the procedural head, by index
SMILE, BROWS_UP, BLINK_L, BLINK_R = 0, 2, 4, 5


@dataclass
class Trajectory:
    expr: np.ndarray  # [T, n_expr]
    rotations: np.ndarray  # [T, 5, 3] axis-angle: global, neck, jaw, left eye, right eye
    transl: np.ndarray  # [T, 3]


def _smooth(rng: np.random.Generator, t: np.ndarray, n_waves: int = 3, slowest: float = 0.6) -> np.ndarray:
    """A smooth signal in about [-1, 1] over normalised time t in [0, 1]."""
    out = np.zeros_like(t)
    for i in range(n_waves):
        freq = slowest * (i + 1) * rng.uniform(0.8, 1.3)
        out += np.sin(2 * np.pi * freq * t * 1.7 + rng.uniform(0, 2 * np.pi)) / (i + 1)
    return out / sum(1.0 / (i + 1) for i in range(n_waves))


def euler_to_axis_angle(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Axis-angle [T, 3] of R = Ry(yaw) Rx(pitch) Rz(roll)."""
    def rot(axis, a):
        c, s = np.cos(a), np.sin(a)
        m = np.zeros((len(a), 3, 3))
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        m[:, axis, axis] = 1
        m[:, i, i], m[:, j, j], m[:, i, j], m[:, j, i] = c, c, -s, s
        return m

    r = rot(1, yaw) @ rot(0, pitch) @ rot(2, roll)
    angle = np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1))
    axis = np.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], 1)
    sin = np.sin(angle)
    scale = np.where(sin > 1e-8, angle / (2 * np.where(sin > 1e-8, sin, 1.0)), 0.5)
    return axis * scale[:, None]


def make_trajectory(n_frames: int, rng: np.random.Generator) -> Trajectory:
    """Yaw within +-35 deg, pitch +-20, roll +-8; talking jaw, smiles, brows, blinks."""
    t = np.linspace(0.0, 1.0, n_frames)
    yaw = np.deg2rad(35.0) * _smooth(rng, t)
    pitch = np.deg2rad(20.0) * _smooth(rng, t)
    roll = np.deg2rad(8.0) * _smooth(rng, t, 2)
    rotations = np.zeros((n_frames, 5, 3))
    rotations[:, 0] = euler_to_axis_angle(yaw, pitch, roll)
    rotations[:, 2, 0] = 0.32 * np.clip(_smooth(rng, t, 3, 2.0), 0, None) ** 1.5
    gaze = np.stack([0.15 * _smooth(rng, t, 2, 1.0), 0.25 * _smooth(rng, t, 2, 1.0)], 1)
    rotations[:, 3, :2] = rotations[:, 4, :2] = gaze
    expr = np.zeros((n_frames, N_EXPR))
    expr[:, SMILE] = 1.6 * np.clip(_smooth(rng, t, 2, 0.8), 0, None)
    expr[:, BROWS_UP] = 0.9 * _smooth(rng, t, 2, 0.9)
    expr[:, 6:20] = 0.35 * np.stack([_smooth(rng, t, 2, 1.0) for _ in range(14)], 1)
    expr[:, 20:] = 0.3 * np.stack([_smooth(rng, t, 2, 1.0) for _ in range(N_EXPR - 20)], 1)
    # blinks: short closures every 25-45 frames
    blink = np.zeros(n_frames)
    frame = int(rng.integers(5, 20))
    while frame < n_frames:
        blink += np.exp(-0.5 * ((np.arange(n_frames) - frame) / 1.2) ** 2)
        frame += int(rng.integers(25, 45))
    expr[:, BLINK_L] = expr[:, BLINK_R] = np.clip(blink, 0, 1)
    transl = 0.008 * np.stack([_smooth(rng, t, 2), _smooth(rng, t, 2), _smooth(rng, t, 2)], 1)
    return Trajectory(expr, rotations, transl)


def test_frames(n_frames: int) -> list[int]:
    """Two held-out segments (10% in the middle, 10% at the end): unseen poses, not interleaved frames."""
    seg = max(1, n_frames // 10)
    mid = n_frames // 2 - seg // 2
    return sorted(set(range(mid, mid + seg)) | set(range(n_frames - seg, n_frames)))


def make_camera(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """K [3, 3] and camera-to-world [4, 4] of a static camera in front of the face (OpenCV axes)."""
    distance = rng.uniform(0.62, 0.75)
    focal = 0.68 * size * distance / 0.26  # the head (about 0.26 m with hair) fills ~2/3 of the frame
    center = (size - 1) / 2.0
    K = np.array([[focal, 0.0, center], [0.0, focal, center], [0.0, 0.0, 1.0]])
    target = np.array([0.0, 0.0, 0.0])
    eye = target + np.array([rng.uniform(-0.03, 0.03), rng.uniform(-0.01, 0.04), distance])
    return K, look_at(eye, target, np.array([0.0, 1.0, 0.0]))
