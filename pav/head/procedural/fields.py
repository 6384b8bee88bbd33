"""Smooth masks over the rest head, shared by the rig, the blend shapes and the labels."""

from __future__ import annotations

import numpy as np


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below edge0, 1 above edge1 (edges may be given in decreasing order), C1 in between."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gauss(p: np.ndarray, center, sigma) -> np.ndarray:
    """Anisotropic Gaussian bump [N] around center with per-axis sigma."""
    q = (p - np.asarray(center, dtype=np.float64)) / np.asarray(sigma, dtype=np.float64)
    return np.exp(-0.5 * np.sum(q * q, axis=-1))


def both_sides(fn, p: np.ndarray, center, sigma) -> np.ndarray:
    """A bump placed symmetrically on both sides of the face (center given for x > 0)."""
    c = np.asarray(center, dtype=np.float64)
    return fn(p, c, sigma) + fn(p, c * (-1, 1, 1), sigma)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit normals [V, 3]."""
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    out = np.zeros_like(verts)
    for i in range(3):
        np.add.at(out, faces[:, i], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def hairline_y(p: np.ndarray) -> np.ndarray:
    """Height [N] of a typical hairline above point p's position: high on the forehead, low at the nape."""
    back = smoothstep(0.035, -0.09, p[:, 2])
    temple = np.exp(-0.5 * ((np.abs(p[:, 0]) - 0.07) / 0.012) ** 2) * smoothstep(0.06, 0.0, p[:, 2])
    return 0.072 - 0.135 * back - 0.03 * temple


def neck_y(p: np.ndarray) -> np.ndarray:
    """Height [N] below which a point is neck: under the jaw in front, the nape at the back."""
    return -0.104 + 0.045 * smoothstep(0.0, -0.06, p[:, 2])
