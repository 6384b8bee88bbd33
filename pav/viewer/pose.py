"""What the viewer's panel sets, turned into FLAME parameters of one frame.

Viewer space is the head's own frame (FLAME: y up, the face looking along +z, rotation about the root joint), so
the browser's camera orbits the head wherever the training data had it. The panel's jaw opening, first expression
coefficients and head yaw/pitch/roll apply on their own, or on top of a frame of an appearance's tracked sequence
(played relative to that sequence's mean head pose, so the head stays where the camera looks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from ..data.collection import Appearance

N_EXPR_SLIDERS = 8  # expression coefficients with a slider of their own
JAW_MAX_RAD = 0.5
EXPR_LIMIT = 3.0  # FLAME's coefficients are about unit variance
ANGLE_LIMIT_DEG = 90.0


@dataclass(frozen=True)
class PanelPose:
    """Slider values; hashable, so a pose already posed is not posed again."""

    jaw: float = 0.0  # radians of jaw opening
    expr: tuple[float, ...] = field(default=(0.0,) * N_EXPR_SLIDERS)  # the first expression coefficients
    yaw: float = 0.0  # degrees about the head's up axis
    pitch: float = 0.0  # degrees about its left axis (positive looks down)
    roll: float = 0.0  # degrees about its front axis

    def rotation(self) -> Rotation:
        return Rotation.from_euler("YXZ", [self.yaw, self.pitch, self.roll], degrees=True)


@dataclass
class Sequence:
    """An appearance's tracked motion, its global pose relative to its mean one."""

    name: str
    expr: np.ndarray  # [T, n_expr]
    rotations: np.ndarray  # [T, 5, 3] axis-angle; global relative to the mean head rotation
    transl: np.ndarray  # [T, 3] relative to the mean translation, in the mean head frame

    def __len__(self) -> int:
        return len(self.expr)

    @classmethod
    def of(cls, app: Appearance) -> Sequence:
        flame = app.flame
        rotations = flame.rotations.astype(np.float64).copy()
        globals_ = Rotation.from_rotvec(rotations[:, 0])
        mean = globals_.mean()
        rotations[:, 0] = (mean.inv() * globals_).as_rotvec()
        transl = mean.inv().apply(flame.transl.astype(np.float64) - flame.transl.mean(0))
        return cls(app.name, flame.expr.astype(np.float64), rotations, transl)


def frame_parameters(pose: PanelPose, n_expr: int, sequence: Sequence | None = None,
                     t: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The panel pose, alone or on frame t of a sequence -> expr [n_expr], rotations [5, 3], transl [3]."""
    if len(pose.expr) != N_EXPR_SLIDERS:
        raise ValueError(f"PanelPose.expr has {len(pose.expr)} values, expected {N_EXPR_SLIDERS}")
    if sequence is None:
        expr, rotations, transl = np.zeros(n_expr), np.zeros((5, 3)), np.zeros(3)
    else:
        t = t % len(sequence)
        expr, rotations, transl = sequence.expr[t].copy(), sequence.rotations[t].copy(), sequence.transl[t].copy()
    k = min(n_expr, N_EXPR_SLIDERS)
    expr[:k] += np.asarray(pose.expr[:k])
    turn = pose.rotation()
    rotations[0] = (turn * Rotation.from_rotvec(rotations[0])).as_rotvec()
    rotations[2, 0] += pose.jaw  # +x opens the jaw
    return expr, rotations, turn.apply(transl)
