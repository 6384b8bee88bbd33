"""Topology and rest geometry of the procedural head: a lat-long shell with a mouth slit
closed by an inner mouth pocket, two eyeballs, and a UV atlas without overlaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sdf import HeadParams, eye_centers, head_sdf, outermost_hit

HEAD_CENTER = np.array([0.0, -0.022, -0.022])  # on the neck axis, so the neck ends in a level cut
PHI_MAX = np.deg2rad(165.0)  # rays this far from "up" reach the neck about 0.2 m below the centre
N_COLUMNS = 88
N_RINGS = 52
UV_HEAD_RADIUS = 0.47
UV_ISLAND_RADIUS = 0.085
UV_ISLANDS = {"eye_left": (0.91, 0.09), "eye_right": (0.09, 0.09), "mouth": (0.09, 0.91)}
EYE_RINGS, EYE_COLUMNS = 10, 16
POCKET_DEPTH = (0.006, 0.016, 0.026)  # inner mouth rings, metres behind the lips
POCKET_HALF_HEIGHT = (0.004, 0.009, 0.007)
POCKET_SCALE = (1.05, 1.0, 0.6)


@dataclass
class HeadMesh:
    verts: np.ndarray  # [V, 3] float64
    faces: np.ndarray  # [F, 3] int64, outward facing
    vt: np.ndarray  # [Vt, 2]
    ft: np.ndarray  # [F, 3]
    part: np.ndarray  # [F] 0 shell, 1 mouth pocket, 2 left eyeball, 3 right eyeball
    grid: np.ndarray  # [N_RINGS, N_COLUMNS] vertex index of each shell grid node (upper lip copy on the slit)
    slit_upper: np.ndarray  # [S] upper-lip vertices of the slit, right to left (x increasing)
    slit_lower: np.ndarray  # [S] their lower-lip twins
    mouth_corners: np.ndarray  # [2] vertex ids (right, left)
    eyeball_verts: list  # two index arrays: left eye, right eye
    pocket_verts: np.ndarray  # [P] vertices inside the mouth
    eye_centers: np.ndarray  # [2, 3]
    ring_phi: np.ndarray  # [N_RINGS] polar angle of each ring from the head's up axis
    column_theta: np.ndarray  # [N_COLUMNS] azimuth of each column, 0 = front


def _directions(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit rays [..., 3]: phi from +y (up), theta around y with 0 toward +z (the face)."""
    theta, phi = np.broadcast_arrays(theta, phi)
    return np.stack([np.sin(phi) * np.sin(theta), np.cos(phi), np.sin(phi) * np.cos(theta)], axis=-1)


def _column_angles(n: int) -> np.ndarray:
    """Azimuths, dense on the face, medium at the ears, sparse at the back."""
    theta = np.linspace(-np.pi, np.pi, 4001)
    density = 0.45 + 1.7 * np.exp(-((theta / 0.8) ** 2)) + 0.6 * np.exp(-(((np.abs(theta) - 1.6) / 0.35) ** 2))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(theta))])
    cdf /= cdf[-1]
    return np.interp((np.arange(n) + 0.5) / n, cdf, theta)


def _ring_angles(sdf, n: int, hp: HeadParams) -> tuple[np.ndarray, float]:
    """Polar angles of the rings, dense from brow to chin, with one ring exactly on the lip crease."""
    phi = np.linspace(1e-3, PHI_MAX, 3000)
    dirs = _directions(np.zeros_like(phi), phi)
    pts = HEAD_CENTER + dirs * outermost_hit(HEAD_CENTER, dirs, sdf)[:, None]
    y = pts[:, 1]
    face = 1.0 / (1.0 + np.exp(-(y + 0.115) / 0.006)) / (1.0 + np.exp((y - 0.055) / 0.006))
    weight = 0.75 + 2.4 * face - 0.25 * (y < -0.12)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1) * 0.5 * (weight[1:] + weight[:-1])
    cdf = np.concatenate([[0.0], np.cumsum(seg)])
    # a share of uniform spacing in phi keeps rings apart where the front surface runs along the rays
    cdf = 0.8 * cdf / cdf[-1] + 0.2 * (phi - phi[0]) / (phi[-1] - phi[0])
    rings = np.interp(np.arange(1, n + 1) / n, cdf, phi)
    # the lip crease: the innermost point between the two lip centres on the front meridian
    lips = (y < hp.upper_lip_c[1]) & (y > hp.lower_lip_c[1])
    radius = np.linalg.norm(pts - HEAD_CENTER, axis=1)
    phi_mouth = phi[lips][np.argmin(radius[lips])]
    k = int(np.argmin(np.abs(rings - phi_mouth)))
    # move ring k onto the crease, its neighbours part of the way, so the spacing stays even
    reach = np.clip(1.0 - np.abs(np.arange(n) - k) / 5.0, 0.0, 1.0)
    rings = rings + (phi_mouth - rings[k]) * reach
    return rings, phi_mouth


def _eyeball(center: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """UV sphere looking along +z: verts [E, 3], faces [G, 3], polar angle and azimuth per vertex."""
    alpha = np.linspace(0, np.pi, EYE_RINGS + 2)[1:-1]
    beta = np.linspace(0, 2 * np.pi, EYE_COLUMNS, endpoint=False)
    a, b = np.meshgrid(alpha, beta, indexing="ij")
    ring = np.stack([np.sin(a) * np.cos(b), np.sin(a) * np.sin(b), np.cos(a)], -1).reshape(-1, 3)
    unit = np.concatenate([[[0, 0, 1.0]], ring, [[0, 0, -1.0]]])
    pol = np.concatenate([[0.0], a.ravel(), [np.pi]])
    azi = np.concatenate([[0.0], b.ravel(), [0.0]])
    idx = 1 + np.arange(EYE_RINGS * EYE_COLUMNS).reshape(EYE_RINGS, EYE_COLUMNS)
    nxt = np.roll(idx, -1, axis=1)
    back = EYE_RINGS * EYE_COLUMNS + 1
    faces = [np.stack([np.zeros(EYE_COLUMNS, int), idx[0], nxt[0]], 1)]
    for m in range(EYE_RINGS - 1):
        faces += [np.stack([idx[m], idx[m + 1], nxt[m + 1]], 1), np.stack([idx[m], nxt[m + 1], nxt[m]], 1)]
    faces.append(np.stack([idx[-1], np.full(EYE_COLUMNS, back), nxt[-1]], 1))
    faces = np.concatenate(faces)
    verts = center + radius * unit
    return verts, _outward(verts, faces, center), pol, azi


def _outward(verts: np.ndarray, faces: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Flip a closed star-shaped component so its normals point away from `center`."""
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if np.sum(normal * (tri.mean(1) - center)) < 0:
        return faces[:, ::-1].copy()
    return faces


class _Atlas:
    """Collects UV coordinates; a vertex on an island border gets one UV per island."""

    def __init__(self):
        self.uv: list[np.ndarray] = []
        self.count = 0

    def add(self, uv: np.ndarray) -> np.ndarray:
        uv = np.atleast_2d(uv)
        self.uv.append(uv)
        self.count += len(uv)
        return np.arange(self.count - len(uv), self.count)


def build_mesh(hp: HeadParams) -> HeadMesh:
    """The rest-pose head mesh; also fixes `hp.eye_z` from the surface in front of the eyes."""
    no_socket = lambda p: head_sdf(p, hp, sockets=False)  # noqa: E731
    ex, ey = hp.eye_xy
    z_front = outermost_hit(np.array([ex, ey, 0.0]), np.array([[0.0, 0.0, 1.0]]), no_socket, t_max=0.3)[0]
    hp.eye_z = float(z_front - 0.0138)
    sdf = lambda p: head_sdf(p, hp)  # noqa: E731

    theta = _column_angles(N_COLUMNS)
    phi, phi_mouth = _ring_angles(sdf, N_RINGS, hp)
    dirs = _directions(theta[None, :], phi[:, None]).reshape(-1, 3)
    grid_pts = HEAD_CENTER + dirs * outermost_hit(HEAD_CENTER, dirs, sdf)[:, None]
    top = HEAD_CENTER + np.array([0, 1.0, 0]) * outermost_hit(HEAD_CENTER, np.array([[0, 1.0, 0]]), sdf)[0]

    verts = [top[None], grid_pts]
    grid = 1 + np.arange(N_RINGS * N_COLUMNS).reshape(N_RINGS, N_COLUMNS)
    n_shell = 1 + N_RINGS * N_COLUMNS
    atlas = _Atlas()
    ring_r = UV_HEAD_RADIUS * np.arange(1, N_RINGS + 1) / N_RINGS
    grid_uv = np.stack([0.5 + ring_r[:, None] * np.sin(theta), 0.5 - ring_r[:, None] * np.cos(theta)], -1)
    atlas.add(np.array([0.5, 0.5]))
    atlas.add(grid_uv.reshape(-1, 2))

    # mouth slit: the crease ring's front vertices are split into an upper and a lower lip copy
    k_m = int(np.argmin(np.abs(phi - phi_mouth)))
    x_ring = grid_pts.reshape(N_RINGS, N_COLUMNS, 3)[k_m, :, 0]
    frontal = np.abs(theta) < np.pi / 2
    slit_cols = np.nonzero(frontal & (np.abs(x_ring) < hp.mouth_half_width))[0]
    corners = np.array([slit_cols[0] - 1, slit_cols[-1] + 1])
    slit_upper = grid[k_m, slit_cols]
    slit_lower = n_shell + np.arange(len(slit_cols))
    verts.append(grid_pts[slit_upper - 1])
    atlas.add(grid_uv[k_m, slit_cols])
    lower_of = dict(zip(slit_upper.tolist(), slit_lower.tolist(), strict=True))

    nxt = np.roll(grid, -1, axis=1)
    faces = [np.stack([np.zeros(N_COLUMNS, int), grid[0], nxt[0]], 1)]
    for k in range(N_RINGS - 1):
        upper_row = grid[k] if k != k_m else np.array([lower_of.get(v, v) for v in grid[k]])
        upper_next = np.roll(upper_row, -1)
        faces += [np.stack([upper_row, grid[k + 1], nxt[k + 1]], 1), np.stack([upper_row, nxt[k + 1], upper_next], 1)]
    shell_faces = np.concatenate(faces)
    shell_ft = shell_faces.copy()  # shell UVs are stored in vertex order

    # inner mouth pocket closing the slit; its loop follows the shell's boundary backwards
    loop = np.concatenate([[grid[k_m, corners[0]]], slit_upper, [grid[k_m, corners[1]]], slit_lower[::-1]])
    n_loop = len(loop)
    all_verts = np.concatenate(verts)
    loop_pts = all_verts[loop]
    side = np.concatenate([[0.0], np.ones(len(slit_cols)), [0.0], -np.ones(len(slit_cols))])
    loop_center = loop_pts.mean(0)
    base = len(all_verts)
    pocket_pts, rings = [], [loop]
    for m, (depth, half_h, scale) in enumerate(zip(POCKET_DEPTH, POCKET_HALF_HEIGHT, POCKET_SCALE, strict=True)):
        taper = np.sqrt(np.clip(1.0 - (np.abs(loop_pts[:, 0] - loop_center[0]) / (hp.mouth_half_width * 1.15)) ** 2,
                                0.05, 1.0))
        pts = loop_center + (loop_pts - loop_center) * scale
        pts[:, 1] += side * half_h * taper
        pts[:, 2] = loop_center[2] - depth
        pocket_pts.append(pts)
        rings.append(base + m * n_loop + np.arange(n_loop))
    pocket_center = loop_center - np.array([0.0, 0.0, POCKET_DEPTH[-1] + 0.006])
    pocket_pts.append(pocket_center[None])
    center_id = base + len(POCKET_DEPTH) * n_loop
    pocket_faces = []
    for outer, inner in zip(rings[:-1], rings[1:], strict=True):
        o1, i1 = np.roll(outer, -1), np.roll(inner, -1)
        pocket_faces += [np.stack([o1, outer, inner], 1), np.stack([o1, inner, i1], 1)]
    pocket_faces.append(np.stack([np.roll(rings[-1], -1), rings[-1], np.full(n_loop, center_id)], 1))
    pocket_faces = np.concatenate(pocket_faces)
    # pocket UVs: a disk island, loop on the rim, centre in the middle
    cu, cv = UV_ISLANDS["mouth"]
    ang = 2 * np.pi * np.arange(n_loop) / n_loop
    pocket_vt = {}
    for m, ring_ids in enumerate(rings):
        r = UV_ISLAND_RADIUS * (1.0 - m / (len(rings)))
        ids = atlas.add(np.stack([cu + r * np.cos(ang), cv + r * np.sin(ang)], -1))
        pocket_vt.update(zip(ring_ids.tolist(), ids.tolist(), strict=True))
    pocket_vt[center_id] = int(atlas.add(np.array([cu, cv]))[0])
    pocket_ft = np.vectorize(pocket_vt.__getitem__)(pocket_faces)
    all_verts = np.concatenate([all_verts] + pocket_pts)

    # eyeballs on the eye joints: left (x > 0) first
    centers = eye_centers(hp)
    eye_faces, eye_ft, eye_ids = [], [], []
    for name, center in zip(("eye_left", "eye_right"), centers, strict=True):
        ev, ef, pol, azi = _eyeball(center, hp.eyeball_radius)
        offset = len(all_verts)
        all_verts = np.concatenate([all_verts, ev])
        cu, cv = UV_ISLANDS[name]
        r = UV_ISLAND_RADIUS * pol / np.pi * 0.98
        ids = atlas.add(np.stack([cu + r * np.cos(azi), cv + r * np.sin(azi)], -1))
        ft = ids[ef]
        # the back pole has one UV per fan triangle, on the island rim between its two neighbours
        back = len(ev) - 1
        for row in np.nonzero((ef == back).any(1))[0]:
            others = ef[row][ef[row] != back]
            mid = np.angle(np.exp(1j * azi[others]).sum())
            apex = atlas.add(np.array([cu + UV_ISLAND_RADIUS * np.cos(mid), cv + UV_ISLAND_RADIUS * np.sin(mid)]))
            ft[row][ef[row] == back] = apex[0]
        eye_faces.append(ef + offset)
        eye_ft.append(ft)
        eye_ids.append(offset + np.arange(len(ev)))

    faces = np.concatenate([shell_faces, pocket_faces] + eye_faces)
    ft = np.concatenate([shell_ft, pocket_ft] + eye_ft)
    part = np.concatenate([np.zeros(len(shell_faces), int), np.ones(len(pocket_faces), int),
                           np.full(len(eye_faces[0]), 2), np.full(len(eye_faces[1]), 3)])
    return HeadMesh(
        verts=all_verts, faces=faces.astype(np.int64), vt=np.concatenate(atlas.uv), ft=ft.astype(np.int64),
        part=part, grid=grid, slit_upper=slit_upper, slit_lower=slit_lower,
        mouth_corners=grid[k_m, corners], eyeball_verts=eye_ids,
        pocket_verts=np.arange(base, center_id + 1), eye_centers=centers, ring_phi=phi, column_theta=theta,
    )
