"""Joints, joint regressor, skinning weights and pose correctives of the procedural head."""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from .fields import gauss, smoothstep
from .mesh import HeadMesh
from .sdf import HeadParams

KINTREE = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)
JOINT_TARGETS = {0: (0.0, -0.15, -0.022), 1: (0.0, -0.06, -0.025), 2: (0.0, -0.018, -0.004)}


def joint_regressor(mesh: HeadMesh) -> np.ndarray:
    """[5, V] convex weights; rows 0-2 hit their target joints exactly, rows 3-4 average the eyeballs."""
    verts = mesh.verts
    shell = np.zeros(len(verts), dtype=bool)
    shell[np.unique(mesh.faces[mesh.part == 0])] = True
    reg = np.zeros((5, len(verts)))
    for j, target in JOINT_TARGETS.items():
        cand = np.nonzero(shell & (np.abs(verts[:, 1] - target[1]) < 0.012))[0]
        n = len(cand)
        # exact position and unit sum, with a weak pull towards uniform weights
        a = np.vstack([100.0 * verts[cand].T, 100.0 * np.ones((1, n)), np.eye(n)])
        b = np.concatenate([100.0 * np.asarray(target), [100.0], np.full(n, 1.0 / n)])
        w, _ = nnls(a, b, maxiter=50 * n)
        reg[j, cand] = w / w.sum()
    for j, ids in zip((3, 4), mesh.eyeball_verts, strict=True):
        reg[j, ids] = 1.0 / len(ids)
    return reg


def jaw_weight(mesh: HeadMesh, hp: HeadParams) -> np.ndarray:
    """[V] share of each vertex that follows the jaw: lower lip, chin and lower cheeks."""
    p = mesh.verts
    y_mouth = p[mesh.mouth_corners, 1].mean()
    z_lip = hp.upper_lip_c[2]
    hinge = np.array([-0.018, -0.012])  # (y, z) of the line's back end, below the ears
    # height above the line from the lips back to the hinge, in the sagittal plane
    slope = (hinge[0] - y_mouth) / (hinge[1] - z_lip)
    height = p[:, 1] - (y_mouth + slope * (p[:, 2] - z_lip))
    width = 0.0025 + 0.35 * np.maximum(np.abs(p[:, 0]) - hp.mouth_half_width, 0.0) + 0.1 * np.maximum(z_lip - 0.02
                                                                                                      - p[:, 2], 0)
    below = smoothstep(width, -width, height)
    front = smoothstep(-0.035, -0.005, p[:, 2])
    above_neck = smoothstep(-0.125, -0.100, p[:, 1])
    w = below * front * above_neck
    w[mesh.slit_upper] = 0.0
    w[mesh.slit_lower] = 1.0
    w[mesh.mouth_corners] = 0.5
    # the mouth pocket: lower half follows the jaw, fading to half at the back
    pocket = mesh.pocket_verts
    lower = p[pocket, 1] < p[mesh.mouth_corners, 1].mean()
    w[pocket] = np.where(lower, 0.8, 0.2)
    w[pocket[-1]] = 0.5
    return w


def skinning_weights(mesh: HeadMesh, hp: HeadParams) -> np.ndarray:
    """[V, 5] linear blend skinning weights over global, neck, jaw, left eye, right eye."""
    p = mesh.verts
    head = smoothstep(-0.16, -0.085, p[:, 1])
    jaw = jaw_weight(mesh, hp)
    weights = np.stack([1.0 - head, head * (1.0 - jaw), head * jaw, np.zeros(len(p)), np.zeros(len(p))], 1)
    for j, ids in zip((3, 4), mesh.eyeball_verts, strict=True):
        weights[ids] = 0.0
        weights[ids, j] = 1.0
    return weights


def pose_correctives(mesh: HeadMesh, weights: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """[V, 3, 36] offsets per entry of (R_j - I) for joints 1-4, FLAME's pose-corrective layout."""
    p = mesh.verts
    dirs = np.zeros((len(p), 3, 36))
    jaw = weights[:, 2]
    stretch = 4.0 * jaw * (1.0 - jaw) * smoothstep(0.0, 0.03, p[:, 2])
    # opening the jaw (R[2,1] = sin) pulls the cheeks down and a little inwards
    dirs[:, 1, 9 + 7] = -0.010 * stretch
    dirs[:, :, 9 + 7] += -0.003 * stretch[:, None] * normals
    # bending the neck forward (R[2,1] of the neck) bulges the throat
    throat = gauss(p, (0.0, -0.12, 0.03), (0.04, 0.02, 0.03))
    dirs[:, :, 0 + 7] = 0.012 * throat[:, None] * normals
    return dirs
