"""What pav models of a person: the head, its hair and the neck. The rest of a matte (shoulders, chest) is unknown.

A person's matte covers the shoulders and chest, which no head model explains: trained as a target they pull
density below the neck, trained as background they carve the neck away. So those pixels are neither: they are
marked unknown (collection v2 `valid/` masks) by `pav.prepare` and by the RenderMe-360 converter alike.

The cut is drawn in each image from two face points, the chin and the point between the eyebrows, whose
distance is the face height h (about 12-14 cm on an adult). In the face's own axes (down from the brow to the
chin, across perpendicular to it), a person pixel is modelled when it lies

- less than `shoulder` h below the chin (the head and the hair around it, at any width), or
- less than `neck_end` h below the chin and within `neck_half_width` h of the face's axis (the neck, down to
  just past the end of FLAME's neck, which stops about 0.9 h below the chin).

Every other person pixel, grown by a few pixels to take the matte's soft edge, is unknown. Background pixels stay
known: they still carve the empty space around the shoulders. Hair that hangs beside the neck below the shoulder
line is unknown too: a matte cannot tell it from the shoulder behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation

MEDIAPIPE_CHIN, MEDIAPIPE_BROW = 152, 9  # mediapipe's 478-point mesh: chin tip, between the eyebrows
IBUG68_CHIN, IBUG68_BROWS = 8, (21, 22)  # the 68-point scheme: chin tip, inner eyebrow ends
PERSON_ALPHA = 5  # matte values above this are the person (for the cut only)


@dataclass(frozen=True)
class TorsoCut:
    """Where the modelled person ends, in face heights (brow-to-chin distances) below the chin."""

    shoulder: float = 0.35  # beside the neck, lower than this is shoulder
    neck_end: float = 1.0  # below this is torso everywhere
    neck_half_width: float = 0.55  # the neck band's half width
    grow: float = 0.02  # image sides: the unknown region grows by this much over the matte's soft edge

    def __post_init__(self) -> None:
        if not 0 <= self.shoulder <= self.neck_end:
            raise ValueError(f"TorsoCut: need 0 <= shoulder <= neck_end, got {self.shoulder} and {self.neck_end}")
        if self.neck_half_width <= 0 or self.grow < 0:
            raise ValueError(f"TorsoCut: neck_half_width must be > 0 and grow >= 0, got {self.neck_half_width}, "
                             f"{self.grow}")


def modelled_region(shape: tuple[int, int], chin: np.ndarray, brow: np.ndarray, cut: TorsoCut) -> np.ndarray:
    """bool [H, W]: pixels (centres at integers) inside the head-and-neck region of a face with 2D chin [2] and
    brow [2] points (x, y)."""
    chin, brow = np.asarray(chin, np.float64), np.asarray(brow, np.float64)
    axis = chin - brow
    height = float(np.hypot(*axis))
    if not np.isfinite(height) or height < 1e-6:
        raise ValueError(f"modelled_region: chin {chin.tolist()} and brow {brow.tolist()} do not span a face")
    down = axis / height
    across = np.array([-down[1], down[0]])
    v, u = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    du, dv = u - chin[0], v - chin[1]
    below = (du * down[0] + dv * down[1]) / height  # [H, W] face heights below the chin
    side = np.abs(du * across[0] + dv * across[1]) / height
    return (below < cut.shoulder) | ((below < cut.neck_end) & (side < cut.neck_half_width))


def torso_pixels(alpha: np.ndarray, chin: np.ndarray, brow: np.ndarray, cut: TorsoCut) -> np.ndarray:
    """alpha uint8 [H, W] -> bool [H, W]: the person's pixels outside the head-and-neck region (to be unknown)."""
    modelled = modelled_region(alpha.shape, chin, brow, cut)
    torso = (alpha > PERSON_ALPHA) & ~modelled
    grow = round(cut.grow * max(alpha.shape))
    if grow > 0 and torso.any():
        torso = binary_dilation(torso, iterations=grow) & ~modelled
    return torso


def face_points_mediapipe(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chin and brow [2] each from mediapipe's 478 face-mesh points [478, 2]."""
    return points[MEDIAPIPE_CHIN], points[MEDIAPIPE_BROW]


def face_points_68(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chin and brow [..., 2 or 3] from 68-point landmarks [..., 68, 2 or 3]."""
    return points[..., IBUG68_CHIN, :], points[..., list(IBUG68_BROWS), :].mean(-2)
