"""What drives a rendered video: FLAME parameters per frame and the camera they go with.

A drive is one of: an appearance of the checkpoint's collection (its tracked flame.npz in order, and its own
first camera), a flame.npz file in the collection format, or a built-in animation (`turntable`, `expressions`)
posed where the reference appearance's head sits on average. File and built-in drives use the reference
appearance's first camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..data.collection import Appearance, Collection, read_flame_npz
from .cameras import SourceCamera

BUILTINS = ("turntable", "expressions")
BUILTIN_SECONDS = 4.0  # default length of a built-in animation
TURNTABLE_YAW_DEG = 60.0
JAW_OPEN_RAD = 0.3
# expression sweep after the jaw: (named components, component used when the head model names none, amplitude
# for named ones, amplitude for unnamed ones); FLAME's unnamed coefficients are about unit variance
SWEEP = ((("smile",), 0, 1.5, 2.0), (("brows_up",), 1, 1.0, 2.0), (("blink_left", "blink_right"), 2, 1.0, 2.0))


class DriveError(ValueError):
    """A drive that cannot be used: an unknown name, a missing or invalid file."""


@dataclass
class Motion:
    """FLAME parameters of the drive frames, in order."""

    expr: np.ndarray  # [T, n_expr]
    rotations: np.ndarray  # [T, 5, 3] axis-angle: global, neck, jaw, left eye, right eye
    transl: np.ndarray  # [T, 3]

    def __len__(self) -> int:
        return len(self.expr)

    def first(self, n: int) -> Motion:
        """The first n frames (all when n is 0)."""
        return self if n <= 0 else Motion(self.expr[:n], self.rotations[:n], self.transl[:n])


@dataclass
class Drive:
    name: str
    motion: Motion
    camera: SourceCamera


def appearance_camera(app: Appearance, per_frame: bool) -> SourceCamera:
    """The first camera of an appearance; its per-frame poses when asked and present, else the first frame's."""
    cams = app.cameras
    c2w = cams.c2w[:, 0] if per_frame and cams.per_frame else cams.c2w_at(0)[0]
    return SourceCamera(cams.K[0].astype(np.float64), c2w.astype(np.float64), app.image_size)


def rest_pose(app: Appearance) -> tuple[np.ndarray, np.ndarray]:
    """Mean global rotation (axis-angle [3]) and translation [3] of an appearance's tracked frames."""
    flame = app.flame
    return Rotation.from_rotvec(flame.rotations[:, 0].astype(np.float64)).mean().as_rotvec(), flame.transl.mean(0)


def turntable(n: int, n_expr: int, global_rot: np.ndarray, transl: np.ndarray) -> Motion:
    """Neutral face turning its head from the front to +60 degrees yaw, back through the front to -60, and back."""
    yaw = np.deg2rad(TURNTABLE_YAW_DEG) * np.sin(2 * np.pi * np.arange(n) / n)  # [n]
    rotations = np.zeros((n, 5, 3))
    # yaw about the head's own up axis, after its rest rotation
    rotations[:, 0] = (Rotation.from_rotvec(global_rot) * Rotation.from_euler("y", yaw[:, None])).as_rotvec()
    return Motion(np.zeros((n, n_expr)), rotations, np.repeat(transl[None], n, 0))


def expression_sweep(n: int, n_expr: int, expr_names: list[str], global_rot: np.ndarray,
                     transl: np.ndarray) -> Motion:
    """Four equal segments, each a rise and fall: jaw opening, smile, brows up, blink."""
    phase = (np.arange(n) + 0.5) / n * (1 + len(SWEEP))  # [n] segment index + position inside it
    segment = np.floor(phase).astype(int)
    envelope = np.sin(np.pi * (phase - segment)) ** 2  # 0 -> 1 -> 0 within each segment
    rotations = np.zeros((n, 5, 3))
    rotations[:, 0] = global_rot
    rotations[:, 2, 0] = np.where(segment == 0, JAW_OPEN_RAD * envelope, 0.0)  # +x opens the jaw
    expr = np.zeros((n, n_expr))
    for s, (names, fallback, named_amp, unnamed_amp) in enumerate(SWEEP, start=1):
        columns = [expr_names.index(name) for name in names if name in expr_names]
        amplitude = named_amp if columns else unnamed_amp
        for c in columns or ([fallback] if fallback < n_expr else []):
            expr[:, c] = np.where(segment == s, amplitude * envelope, 0.0)
    return Motion(expr, rotations, np.repeat(transl[None], n, 0))


def builtin_motion(name: str, n: int, n_expr: int, expr_names: list[str], reference: Appearance) -> Motion:
    global_rot, transl = rest_pose(reference)
    if name == "turntable":
        return turntable(n, n_expr, global_rot, transl)
    return expression_sweep(n, n_expr, expr_names, global_rot, transl)


def file_motion(path: Path, n_expr: int) -> Motion:
    try:
        flame = read_flame_npz(path, n_expr)
    except FileNotFoundError:
        raise DriveError(f"drive file {path}: no such file") from None
    except ValueError as err:
        raise DriveError(f"drive file {path} cannot drive this checkpoint: {err}") from None
    return Motion(flame.expr, flame.rotations, flame.transl)


def resolve_drive(spec: str, collection: Collection, reference: str, n_expr: int, expr_names: list[str],
                  fps: float, max_frames: int) -> Drive:
    """The drive named by `spec`, at most max_frames long (0: all; built-ins: BUILTIN_SECONDS at fps).

    reference: the appearance whose camera (and, for built-ins, whose mean head pose) file and built-in drives use.
    """
    ref = collection.appearance(reference)
    if spec in collection:  # an appearance: its own frames and camera
        app = collection.appearance(spec)
        motion = Motion(app.flame.expr, app.flame.rotations, app.flame.transl).first(max_frames)
        return Drive(spec, motion, appearance_camera(app, per_frame=True).first(len(motion)))
    if spec in BUILTINS:
        n = max_frames if max_frames > 0 else max(1, round(BUILTIN_SECONDS * fps))
        return Drive(spec, builtin_motion(spec, n, n_expr, expr_names, ref), appearance_camera(ref, False))
    path = Path(spec)
    if path.suffix == ".npz" or path.exists() or "/" in spec:
        return Drive(str(path), file_motion(path, n_expr).first(max_frames), appearance_camera(ref, False))
    raise DriveError(f"drive={spec!r} is none of: an appearance of {collection.root} "
                     f"({', '.join(collection.appearance_names)}), a built-in ({', '.join(BUILTINS)}), "
                     "or a flame.npz file")
