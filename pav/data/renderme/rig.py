"""Reading a part's rig and keypoints: calibration, undistorted 2D keypoints, the face's vertices."""

from __future__ import annotations

import numpy as np

from ...head.flame import FLAME
from .geometry import undistort_points
from .reader import SMCReader

KEYPOINT_CAMERAS = tuple(f"{c:02d}" for c in range(18, 33))  # the frontal cameras that carry 2D keypoints
CONTOUR = 33  # the first 33 of the 106 2D keypoints trace the face outline, which slides with the view


def keypoints2d(reader: SMCReader, frames: list[int], cams: list[str]) -> np.ndarray:
    """Undistorted 2D keypoints [T, C, 106, 2] of the full images (NaN where missing)."""
    calib = [reader.calibration(c) for c in cams]
    out = np.full((len(frames), len(cams), 106, 2), np.nan)
    for t, f in enumerate(frames):
        for c, cam in enumerate(cams):
            pts = reader.keypoints2d(cam, f)
            if pts is not None and len(pts) == 106:
                out[t, c] = undistort_points(pts, calib[c]["K"], calib[c]["D"])
    return out


def rig(reader: SMCReader, cams: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K [C, 3, 3], D [C, 5], c2w [C, 4, 4] of the full images."""
    calib = [reader.calibration(c) for c in cams]
    return (np.stack([c["K"] for c in calib]), np.stack([c["D"] for c in calib]),
            np.stack([c["RT"] for c in calib]))


def face_vertices(flame: FLAME) -> np.ndarray:
    faces = flame.faces.numpy()
    if flame.face_region is None:
        return np.arange(flame.num_verts)
    keep = np.isin(flame.face_region.numpy(), [flame.region_names.index(r) for r in ("face", "lips")
                                               if r in flame.region_names])
    return np.unique(faces[keep])


def nan_if_none(value: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, np.nan) if value is None or value.shape != shape else value
