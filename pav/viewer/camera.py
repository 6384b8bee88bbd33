"""The browser's camera as the renderer's: viser reports an OpenCV camera (x right, y down, z forward) as a
quaternion and position in viewer space, a vertical field of view and the canvas aspect."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..render.cameras import SourceCamera

START_BACK_OFF = 1.3  # times the training camera's distance: hair reaching past the training crops is in view


@dataclass(frozen=True)
class BrowserCamera:
    wxyz: tuple[float, float, float, float]  # orientation, scalar first
    position: tuple[float, float, float]
    fov: float  # vertical field of view, radians
    aspect: float  # canvas width / height

    def image_size(self, height: int) -> tuple[int, int]:
        """(H, W) of an image `height` rows high with the canvas's aspect."""
        return height, max(1, round(height * self.aspect))

    def intrinsics(self, height: int) -> np.ndarray:
        """K [3, 3] of an image `height` rows high (square pixels, principal point at the centre)."""
        h, w = self.image_size(height)
        focal = h / (2.0 * math.tan(self.fov / 2.0))
        return np.array([[focal, 0.0, (w - 1) / 2.0], [0.0, focal, (h - 1) / 2.0], [0.0, 0.0, 1.0]])

    def c2w(self) -> np.ndarray:
        """Camera-to-viewer-space [4, 4]."""
        w, x, y, z = self.wxyz
        out = np.eye(4)
        out[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
        out[:3, 3] = self.position
        return out


@dataclass(frozen=True)
class StartView:
    """Where a new browser's camera starts: in front of the face, a little farther than the training camera, with
    its field of view, looking at the head's centre."""

    position: np.ndarray  # [3] viewer space
    look_at: np.ndarray  # [3]
    fov: float  # vertical, radians


def start_view(source: SourceCamera, head_to_world: np.ndarray, centre: np.ndarray) -> StartView:
    """source: a training camera; head_to_world [4, 4] of a frame it saw; centre [3] the head centre, head space."""
    centre_world = head_to_world[:3, :3] @ centre + head_to_world[:3, 3]
    distance = float(np.linalg.norm(source.pose(0)[:3, 3] - centre_world))
    fov = 2.0 * math.atan(source.image_size[0] / (2.0 * float(source.K[1, 1])))
    return StartView(centre + np.array([0.0, 0.0, START_BACK_OFF * distance]), centre.copy(), fov)
