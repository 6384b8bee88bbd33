"""Signed distance of the procedural head: smooth unions of ellipsoids and capsules (metres).

Axes follow FLAME: x to the subject's left, y up, z out of the face. Negative inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def ellipsoid(p: np.ndarray, center, radii) -> np.ndarray:
    """Approximate signed distance to an ellipsoid (exact on the surface, bounded off it)."""
    q = (p - np.asarray(center)) / np.asarray(radii)  # [N, 3]
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def capsule(p: np.ndarray, a, b, radius: float) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=-1) - radius


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def smooth_subtract(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """a minus b, with a fillet of size k."""
    return -smooth_union(-a, b, k)


@dataclass
class HeadParams:
    """Proportions of the neutral head; a seed jitters them to make a different person."""

    cranium_c: tuple = (0.0, 0.030, -0.012)
    cranium_r: tuple = (0.077, 0.098, 0.100)
    face_c: tuple = (0.0, -0.035, 0.018)
    face_r: tuple = (0.063, 0.072, 0.078)
    jaw_c: tuple = (0.0, -0.045, -0.005)
    jaw_r: tuple = (0.066, 0.050, 0.070)
    chin_c: tuple = (0.0, -0.088, 0.071)
    chin_r: tuple = (0.021, 0.016, 0.017)
    neck_radius: float = 0.054
    brow_c: tuple = (0.0, 0.041, 0.076)
    brow_r: tuple = (0.056, 0.013, 0.014)
    cheek_c: tuple = (0.047, 0.002, 0.066)
    cheek_r: tuple = (0.021, 0.016, 0.019)
    nose_root: tuple = (0.0, 0.028, 0.093)
    nose_tip: tuple = (0.0, -0.022, 0.113)
    nose_tip_r: float = 0.0125
    wing_c: tuple = (0.0125, -0.027, 0.100)
    wing_r: tuple = (0.008, 0.007, 0.008)
    upper_lip_c: tuple = (0.0, -0.0455, 0.094)
    upper_lip_r: tuple = (0.025, 0.0075, 0.011)
    lower_lip_c: tuple = (0.0, -0.0595, 0.091)
    lower_lip_r: tuple = (0.022, 0.0080, 0.011)
    mouth_half_width: float = 0.0215
    eye_xy: tuple = (0.032, 0.017)
    eyeball_radius: float = 0.0122
    ear_c: tuple = (0.079, 0.002, -0.012)
    ear_r: tuple = (0.011, 0.031, 0.019)
    # filled in by the mesher once the eyeball depth is known
    eye_z: float = field(default=float("nan"))

    @classmethod
    def jittered(cls, seed: int) -> HeadParams:
        """A different but plausible person for each seed (seed 0 is the reference head)."""
        params = cls()
        if seed == 0:
            return params
        rng = np.random.default_rng(seed)
        for name, value in vars(cls()).items():
            if name in ("eye_z",):
                continue
            scale = 1.0 + rng.normal(0.0, 0.035, size=np.shape(value))
            jittered = np.asarray(value, dtype=np.float64) * np.clip(scale, 0.92, 1.08)
            setattr(params, name, tuple(jittered) if isinstance(value, tuple) else float(jittered))
        return params


def mirror(c) -> tuple:
    return (-c[0], c[1], c[2])


def head_sdf(p: np.ndarray, hp: HeadParams, sockets: bool = True) -> np.ndarray:
    """Signed distance [N] of points p [N, 3] to the head-and-neck surface."""
    d = ellipsoid(p, hp.cranium_c, hp.cranium_r)
    d = smooth_union(d, ellipsoid(p, hp.face_c, hp.face_r), 0.03)
    d = smooth_union(d, ellipsoid(p, hp.jaw_c, hp.jaw_r), 0.02)
    d = smooth_union(d, ellipsoid(p, hp.chin_c, hp.chin_r), 0.015)
    d = smooth_union(d, capsule(p, (0, -0.30, -0.022), (0, -0.03, -0.022), hp.neck_radius), 0.03)
    d = smooth_union(d, ellipsoid(p, hp.brow_c, hp.brow_r), 0.02)
    for side in (1.0, -1.0):
        c = np.array(hp.cheek_c) * (side, 1, 1)
        d = smooth_union(d, ellipsoid(p, c, hp.cheek_r), 0.015)
        d = smooth_union(d, ellipsoid(p, np.array(hp.wing_c) * (side, 1, 1), hp.wing_r), 0.01)
        d = smooth_union(d, ellipsoid(p, np.array(hp.ear_c) * (side, 1, 1), hp.ear_r), 0.008)
    d = smooth_union(d, capsule(p, hp.nose_root, hp.nose_tip, 0.0085), 0.012)
    d = smooth_union(d, ellipsoid(p, hp.nose_tip, (hp.nose_tip_r,) * 3), 0.01)
    d = smooth_union(d, ellipsoid(p, hp.upper_lip_c, hp.upper_lip_r), 0.006)
    d = smooth_union(d, ellipsoid(p, hp.lower_lip_c, hp.lower_lip_r), 0.006)
    if sockets:
        for center in eye_centers(hp):
            socket_c = center + np.array([0.0, 0.0, 0.011])
            d = smooth_subtract(d, ellipsoid(p, socket_c, (0.0155, 0.0092, 0.015)), 0.004)
    return d


def eye_centers(hp: HeadParams) -> np.ndarray:
    """Eyeball centres [2, 3]: left eye (x > 0) first, as FLAME orders its eye joints."""
    x, y = hp.eye_xy
    return np.array([[x, y, hp.eye_z], [-x, y, hp.eye_z]])


def outermost_hit(origin: np.ndarray, dirs: np.ndarray, sdf, t_max: float = 0.35, step: float = 0.0012):
    """Distance along each ray [N] to the outermost surface crossing, marching inwards then bisecting."""
    n = dirs.shape[0]
    t_out = np.full(n, t_max)
    t_in = np.full(n, np.nan)
    active = np.ones(n, dtype=bool)
    t = t_max
    while active.any() and t > 0:
        t_next = t - step
        idx = np.nonzero(active)[0]
        inside = sdf(origin + dirs[idx] * t_next) < 0
        hit = idx[inside]
        t_in[hit], t_out[hit] = t_next, t
        active[hit] = False
        t = t_next
    if np.isnan(t_in).any():
        raise RuntimeError("procedural head: a ray from the head centre found no surface")
    for _ in range(30):
        mid = 0.5 * (t_in + t_out)
        inside = sdf(origin + dirs * mid[:, None]) < 0
        t_in = np.where(inside, mid, t_in)
        t_out = np.where(inside, t_out, mid)
    return 0.5 * (t_in + t_out)
