"""Identity (shape) and expression blend shapes of the procedural head.

Every component is a smooth displacement field in metres for a unit coefficient; the
leading ones carry names, the rest are seeded random symmetric fields of decreasing size,
as a PCA basis would be. Eyeballs move rigidly with their centres.
"""

from __future__ import annotations

import numpy as np

from .fields import both_sides, gauss, smoothstep
from .mesh import HeadMesh
from .sdf import HeadParams

N_SHAPE = 100
N_EXPR = 50


class _Ctx:
    """What the fields need to know about the rest head."""

    def __init__(self, mesh: HeadMesh, hp: HeadParams, normals: np.ndarray, jaw: np.ndarray):
        self.mesh, self.hp, self.jaw = mesh, hp, jaw
        self.p = mesh.verts.copy()
        # lip twins share one normal so no field can pull the closed mouth apart
        self.normals = normals.copy()
        twin = normals[mesh.slit_upper] + normals[mesh.slit_lower]
        twin /= np.linalg.norm(twin, axis=1, keepdims=True)
        self.normals[mesh.slit_upper] = self.normals[mesh.slit_lower] = twin
        self.anchor = mesh.verts.copy()
        for ids, center in zip(mesh.eyeball_verts, mesh.eye_centers, strict=True):
            self.anchor[ids] = center
        self.eyeball = np.zeros(len(self.p), dtype=bool)
        for ids in mesh.eyeball_verts:
            self.eyeball[ids] = True
        self.normals[self.eyeball] = (0.0, 0.0, 1.0)  # eyeballs move rigidly
        self.lower = jaw > 0.5
        self.corner_l = mesh.verts[mesh.mouth_corners[1]]
        self.face = (smoothstep(-0.125, -0.1, self.p[:, 1]) * smoothstep(0.085, 0.06, self.p[:, 1])
                     * smoothstep(0.0, 0.04, self.p[:, 2]))


def _shape_fields(c: _Ctx) -> list[tuple[str, np.ndarray]]:
    p, n, hp = c.anchor, c.normals, c.hp
    zeros = np.zeros_like(p)
    center = np.array([0.0, 0.0, -0.01])
    nose = gauss(p, (0, -0.01, 0.11), (0.014, 0.03, 0.02))
    chin = gauss(p, hp.chin_c, (0.025, 0.02, 0.03))
    cheeks = both_sides(gauss, p, (0.05, -0.03, 0.05), (0.02, 0.025, 0.03))
    lips = gauss(p, (0, -0.0525, 0.093), (0.025, 0.012, 0.015))
    brow = gauss(p, hp.brow_c, (0.05, 0.012, 0.02))
    forehead = gauss(p, (0, 0.07, 0.07), (0.05, 0.03, 0.04))
    ears = both_sides(gauss, p, hp.ear_c, (0.02, 0.035, 0.025))
    neck = smoothstep(-0.09, -0.13, p[:, 1])
    eyes = both_sides(gauss, p, (hp.eye_xy[0], hp.eye_xy[1], hp.eye_z), (0.015, 0.015, 0.02))
    lower_face = smoothstep(-0.02, -0.06, p[:, 1]) * smoothstep(-0.03, 0.0, p[:, 2])

    def along(axis: int, values: np.ndarray) -> np.ndarray:
        out = zeros.copy()
        out[:, axis] = values
        return out

    return [
        ("head_width", along(0, 0.06 * p[:, 0])),
        ("head_height", along(1, 0.05 * (p[:, 1] - center[1]))),
        ("head_depth", along(2, 0.05 * (p[:, 2] - center[2]))),
        ("face_length", along(1, -0.1 * np.maximum(-0.02 - p[:, 1], 0.0) * (1 - neck))),
        ("jaw_width", along(0, 0.08 * p[:, 0] * lower_face)),
        ("nose_length", along(2, 0.005 * nose)),
        ("nose_width", along(0, 0.2 * p[:, 0] * nose)),
        ("chin", along(2, 0.005 * chin) + along(1, -0.002 * chin)),
        ("cheeks", 0.004 * cheeks[:, None] * n),
        ("forehead_slope", along(2, 0.006 * forehead * (p[:, 1] - 0.04) / 0.05)),
        ("brow_ridge", 0.003 * brow[:, None] * n),
        ("lip_fullness", 0.0025 * lips[:, None] * n),
        ("ears", along(0, 0.006 * np.sign(p[:, 0]) * ears)),
        ("neck", 0.08 * neck[:, None] * (p - [0, 0, -0.022]) * [1, 0, 1]),
        ("eye_spacing", along(0, 0.0025 * np.sign(p[:, 0]) * eyes)),
        ("back_of_head", along(2, -0.008 * smoothstep(-0.03, -0.1, p[:, 2]) * smoothstep(-0.07, -0.02, p[:, 1]))),
    ]


def _random_fields(c: _Ctx, rng: np.random.Generator, count: int, scale: float, region: np.ndarray, prefix: str):
    """Symmetric sums of Gaussian blobs along the normal, shrinking with the component index."""
    p, n = c.anchor, c.normals
    surface = c.p[(~c.eyeball) & (region > 0.5)]
    out = []
    for k in range(count):
        field = np.zeros(len(p))
        for _ in range(5):
            center = surface[rng.integers(len(surface))]
            sigma = rng.uniform(0.015, 0.05)
            field += rng.normal() * both_sides(gauss, p, center * [np.sign(center[0]) or 1, 1, 1], (sigma,) * 3)
        field *= region
        field /= max(np.abs(field).max(), 1e-9)
        out.append((f"{prefix}_{k}",
                    scale / np.sqrt(1.0 + 0.25 * k) * field[:, None] * n))
    return out


def _lid_closure(c: _Ctx, eye: int) -> np.ndarray:
    """Displacement that closes one eye: the socket surface moves onto a cap over the eyeball."""
    p = c.p
    center = c.mesh.eye_centers[eye]
    r_lid = c.hp.eyeball_radius + 0.0015
    rho2 = ((p[:, 0] - center[0]) / 1.08) ** 2 + (p[:, 1] - center[1]) ** 2
    cap_z = center[2] + np.sqrt(np.maximum(r_lid**2 - rho2, 0.0))
    # only the socket in front of the eye: the back of the skull shares x and y with it
    near = (rho2 < r_lid**2) & (p[:, 2] > center[2] - r_lid) & (~c.eyeball)
    out = np.zeros_like(p)
    out[near, 2] = np.maximum(cap_z[near] - p[near, 2], 0.0)
    # the upper lid comes down: points over the eye also slide towards the lid line
    out[near, 1] = -0.25 * np.maximum(p[near, 1] - center[1], 0.0) * (out[near, 2] > 0)
    return out


def _expression_fields(c: _Ctx) -> list[tuple[str, np.ndarray]]:
    p, n, hp = c.p, c.normals, c.hp
    not_eye = (~c.eyeball)[:, None]
    corner = np.abs(c.corner_l)
    corners = both_sides(gauss, p, corner, (0.012, 0.012, 0.015))
    cheeks = both_sides(gauss, p, (0.045, -0.01, 0.07), (0.02, 0.02, 0.025))
    low_cheeks = both_sides(gauss, p, (0.045, -0.045, 0.06), (0.018, 0.02, 0.025))
    lips = gauss(p, (0, -0.0525, 0.093), (0.026, 0.013, 0.016))
    upper = lips * (~c.lower)
    lower = lips * c.lower
    brows = both_sides(gauss, p, (0.032, 0.042, 0.08), (0.022, 0.012, 0.03))
    inner_brows = both_sides(gauss, p, (0.012, 0.04, 0.085), (0.01, 0.012, 0.03))
    under_eyes = both_sides(gauss, p, (hp.eye_xy[0], hp.eye_xy[1] - 0.011, 0.08), (0.014, 0.006, 0.02))
    nose_side = both_sides(gauss, p, (0.014, -0.012, 0.1), (0.008, 0.015, 0.015))
    chin = gauss(p, hp.chin_c, (0.022, 0.018, 0.025))
    left = smoothstep(-0.04, 0.04, p[:, 0])
    sx = np.sign(p[:, 0])

    def vec(x=0.0, y=0.0, z=0.0, mask=None):
        v = np.stack(np.broadcast_arrays(x, y, z), -1).astype(np.float64) * np.ones((len(p), 1))
        return v * (mask[:, None] if mask is not None else 1.0)

    fields = [
        ("smile", vec(0.006 * sx, 0.005, -0.003, corners) + vec(0, 0.003, 0.001, cheeks)),
        ("frown", vec(0.002 * sx, -0.005, 0.0, corners)),
        ("brows_up", vec(0, 0.006, 0.0, brows + inner_brows * 0.5)),
        ("brows_down", vec(-0.003 * sx, -0.004, 0.001, brows + inner_brows)),
        ("blink_left", _lid_closure(c, 0)),
        ("blink_right", _lid_closure(c, 1)),
        ("lip_pucker", vec(-0.35 * p[:, 0], 0.0, 0.007, lips)),
        ("cheek_puff", 0.008 * low_cheeks[:, None] * n),
        ("mouth_left", vec(0.006, 0, 0, lips + 0.5 * corners)),
        ("upper_lip_raise", vec(0, 0.004, 0.001, upper) + vec(0, 0.002, 0, nose_side)),
        ("lower_lip_down", vec(0, -0.004, 0.001, lower)),
        ("lips_press", vec(0, 0, -0.003, lips)),
        ("nose_wrinkle", vec(0, 0.003, 0.001, nose_side) + vec(0, -0.002, 0, inner_brows)),
        ("squint", vec(0, 0.003, 0.001, under_eyes)),
        ("mouth_stretch", vec(0.006 * sx, -0.001, -0.002, corners)),
        ("lip_funnel", vec(0, 0.002, 0.005, upper) + vec(0, -0.002, 0.005, lower)),
        ("cheek_suck", -0.005 * low_cheeks[:, None] * n),
        ("inner_brows_up", vec(0, 0.005, 0, inner_brows)),
        ("mouth_right", vec(-0.006, 0, 0, lips + 0.5 * corners)),
        ("chin_raise", vec(0, 0.004, 0.001, chin + 0.6 * lower)),
        ("sneer_left", vec(0, 0.004, 0.001, nose_side * left + upper * left)),
    ]
    return [(name, field * not_eye) for name, field in fields]


def blend_shapes(mesh: HeadMesh, hp: HeadParams, normals: np.ndarray, jaw: np.ndarray, seed: int):
    """shapedirs [V, 3, N_SHAPE + N_EXPR], shape names, expression names."""
    c = _Ctx(mesh, hp, normals, jaw)
    rng = np.random.default_rng(10_000 + seed)
    shape = _shape_fields(c)
    shape += _random_fields(c, rng, N_SHAPE - len(shape), 0.002, np.ones(len(c.p)), "shape")
    expr = _expression_fields(c)
    expr += _random_fields(c, rng, N_EXPR - len(expr), 0.0015, c.face, "expr")
    dirs = np.stack([f for _, f in shape] + [f for _, f in expr], axis=-1)
    dirs[c.eyeball, :, len(shape):] = 0.0  # expressions never move the eyeballs
    return dirs, [s for s, _ in shape[:16]], [e for e, _ in expr[:21]]
