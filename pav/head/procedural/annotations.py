"""Per-face region labels and landmark embeddings (68-point and mediapipe-478-style)."""

from __future__ import annotations

import numpy as np

from .fields import hairline_y, neck_y
from .mesh import HeadMesh
from .sdf import HeadParams, ellipsoid

REGION_NAMES = ["face", "lips", "eyes", "ears", "scalp", "neck", "mouth"]

# mediapipe face-mesh index of each of the 68 classic landmarks, in 68-landmark order
MEDIAPIPE_OF_68 = [
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
]
MEDIAPIPE_IRIS = (468, 473)  # subject's right iris, then left
MEDIAPIPE_FOREHEAD = {10: 0.085, 151: 0.066, 9: 0.05}  # index -> height on the midline


def face_regions(mesh: HeadMesh, hp: HeadParams) -> np.ndarray:
    """[F] index into REGION_NAMES for each face."""
    c = mesh.verts[mesh.faces].mean(1)  # [F, 3]
    label = np.zeros(len(c), dtype=np.int64)
    label[c[:, 1] > hairline_y(c)] = REGION_NAMES.index("scalp")
    label[c[:, 1] < neck_y(c)] = REGION_NAMES.index("neck")
    ears = np.zeros(len(c), dtype=bool)
    for side in (1, -1):
        ears |= ellipsoid(c, np.array(hp.ear_c) * (side, 1, 1), np.array(hp.ear_r) * 1.5) < 0
    label[ears & (np.abs(c[:, 0]) > 0.06)] = REGION_NAMES.index("ears")
    lips = (ellipsoid(c, hp.upper_lip_c, np.array(hp.upper_lip_r) + 0.003) < 0) | (
        ellipsoid(c, hp.lower_lip_c, np.array(hp.lower_lip_r) + 0.003) < 0)
    label[lips & (c[:, 2] > 0.07)] = REGION_NAMES.index("lips")
    label[mesh.part == 1] = REGION_NAMES.index("mouth")
    label[mesh.part >= 2] = REGION_NAMES.index("eyes")
    return label


def _outermost_face_hit(verts, faces, origin, direction):
    """(face index, barycentrics [3]) of the farthest intersection of a ray with the triangles."""
    tri = verts[faces]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    pvec = np.cross(direction, e2)
    det = np.einsum("ij,ij->i", e1, pvec)
    ok = np.abs(det) > 1e-14
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    tvec = origin - tri[:, 0]
    u = np.einsum("ij,ij->i", tvec, pvec) * inv
    qvec = np.cross(tvec, e1)
    v = (qvec @ direction) * inv
    t = np.einsum("ij,ij->i", e2, qvec) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    if not hit.any():
        raise RuntimeError(f"procedural head: no surface along the landmark ray from {origin}")
    best = np.nonzero(hit)[0][np.argmax(t[hit])]
    return best, np.array([1.0 - u[best] - v[best], u[best], v[best]])


def _vertex_anchor(mesh: HeadMesh, vertex: int, faces_allowed: np.ndarray, prefer: np.ndarray | None = None):
    """A landmark exactly on a vertex: a face of `faces_allowed` containing it (one in `prefer`, a bool
    mask over faces, when there is one), with one-hot barycentrics."""
    rows = faces_allowed[np.nonzero((mesh.faces[faces_allowed] == vertex).any(1))[0]]
    if prefer is not None and prefer[rows].any():
        rows = rows[prefer[rows]]
    face = int(rows[0])
    return face, (mesh.faces[face] == vertex).astype(np.float64)


def landmarks68(mesh: HeadMesh, hp: HeadParams, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lmk_face_idx [68], lmk_b_coords [68, 3] in the classic 68-point order (subject's right first)."""
    shell = np.nonzero(mesh.part == 0)[0]
    faces = mesh.faces[shell]
    out = []

    def front(x, y):
        f, b = _outermost_face_hit(mesh.verts, faces, np.array([x, y, 0.0]), np.array([0.0, 0.0, 1.0]))
        out.append((shell[f], b))

    origin = np.array([0.0, -0.03, 0.0])
    for s in np.linspace(0.0, 1.0, 17):  # jaw line, ear to ear through the chin
        c, si = np.cos(np.pi * s), np.sin(np.pi * s)
        target = np.array([-0.072 * c, 0.004 - 0.1 * si, 0.02 + 0.065 * si])
        d = (target - origin) / np.linalg.norm(target - origin)
        f, b = _outermost_face_hit(mesh.verts, faces, origin, d)
        out.append((shell[f], b))
    brow_x = [0.052, 0.043, 0.033, 0.023, 0.013]
    brow_y = [0.036, 0.043, 0.046, 0.046, 0.043]
    for x, y in zip(brow_x, brow_y, strict=True):
        front(-x, y)
    for x, y in zip(brow_x[::-1], brow_y[::-1], strict=True):
        front(x, y)
    for y in (0.024, 0.009, -0.006, -0.021):
        front(0.0, y)
    for x, y in zip((-0.013, -0.007, 0.0, 0.007, 0.013), (-0.03, -0.033, -0.035, -0.033, -0.03), strict=True):
        front(x, y)
    ex, ey = hp.eye_xy
    ring = [(-0.0145, 0.0), (-0.005, 0.0085), (0.005, 0.0085), (0.0145, 0.0), (0.005, -0.0085), (-0.005, -0.0085)]
    for dx, dy in ring:  # right eye: outer corner, upper lid, inner corner, lower lid
        front(-ex + dx, ey + dy)
    for i in (3, 2, 1, 0, 5, 4):  # left eye: the mirror image, starting at the inner corner
        front(ex - ring[i][0], ey + ring[i][1])
    y_mouth = mesh.verts[mesh.mouth_corners, 1].mean()
    lips = region == REGION_NAMES.index("lips")
    corner_r, corner_l = (_vertex_anchor(mesh, int(v), shell, lips) for v in mesh.mouth_corners)
    w = hp.mouth_half_width
    upper_y, lower_y = y_mouth + 0.006, y_mouth - 0.0075
    out.append(corner_r)
    for x, y in ((-0.6 * w, upper_y - 0.001), (-0.3 * w, upper_y + 0.001), (0.0, upper_y),
                 (0.3 * w, upper_y + 0.001), (0.6 * w, upper_y - 0.001)):
        front(x, y)
    out.append(corner_l)
    for x in (0.6 * w, 0.3 * w, 0.0, -0.3 * w, -0.6 * w):
        front(x, lower_y + 0.0015 * (abs(x) > 0.01))
    out.append(corner_r)  # inner lip line: the slit vertices themselves, so the lips part with the jaw
    slit_x = mesh.verts[mesh.slit_upper, 0]
    for x in (-0.4 * w, 0.0, 0.4 * w):
        out.append(_vertex_anchor(mesh, int(mesh.slit_upper[np.argmin(np.abs(slit_x - x))]), shell))
    out.append(corner_l)
    for x in (0.4 * w, 0.0, -0.4 * w):
        out.append(_vertex_anchor(mesh, int(mesh.slit_lower[np.argmin(np.abs(slit_x - x))]), shell))
    return np.array([f for f, _ in out], dtype=np.int64), np.array([b for _, b in out])


def landmarks_mediapipe(mesh: HeadMesh, lmk_face: np.ndarray, lmk_bary: np.ndarray):
    """Dense embedding: the 68 points under their mediapipe indices, both irises and the forehead midline."""
    shell = np.nonzero(mesh.part == 0)[0]
    faces, bary = list(lmk_face), list(lmk_bary)
    indices = list(MEDIAPIPE_OF_68)
    for index, part in zip(MEDIAPIPE_IRIS, (3, 2), strict=True):  # right iris is on the right eyeball
        eye_faces = np.nonzero(mesh.part == part)[0]
        pupil = mesh.eyeball_verts[part - 2][0]  # the front pole
        f, b = _vertex_anchor(mesh, int(pupil), eye_faces)
        faces.append(f)
        bary.append(b)
        indices.append(index)
    for index, y in MEDIAPIPE_FOREHEAD.items():
        f, b = _outermost_face_hit(mesh.verts, mesh.faces[shell], np.array([0.0, y, 0.0]), np.array([0.0, 0.0, 1.0]))
        faces.append(shell[f])
        bary.append(b)
        indices.append(index)
    return np.array(faces, dtype=np.int64), np.array(bary), np.array(indices, dtype=np.int64)
