"""How close a fit is to known truth (synthetic collections): pixels, millimetres after alignment."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..head.flame import FLAME


def to_camera(points: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """World points [T, N, 3] with c2w [4, 4] or [T, 4, 4] -> camera coordinates [T, N, 3]."""
    w2c = np.linalg.inv(c2w)
    if w2c.ndim == 2:
        w2c = np.broadcast_to(w2c, (points.shape[0], 4, 4))
    return np.einsum("tij,tnj->tni", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]


def project(cam_points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera points [T, N, 3], K [3, 3] -> pixels [T, N, 2]."""
    uvw = cam_points @ K.T
    return uvw[..., :2] / uvw[..., 2:]


def similarity_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """src [N, 3] moved by the scale, rotation and translation that best fit it to dst [N, 3]."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / (a ** 2).sum(-1).mean()
    return scale * a @ rot.T + mu_d


def mean_distance_mm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1).mean() * 1000.0)


def neutral_shape_error_mm(flame: FLAME, fitted: np.ndarray, truth: np.ndarray) -> float:
    """Mean vertex distance between the neutral heads of two shapes, after a similarity alignment."""
    with torch.no_grad():
        verts = flame(shape=torch.from_numpy(np.stack([fitted, truth])).float()).verts.numpy()
    return mean_distance_mm(similarity_align(verts[0], verts[1]), verts[1])


def posed_verts(flame: FLAME, shape: np.ndarray, expr: np.ndarray, rotations: np.ndarray,
                transl: np.ndarray) -> np.ndarray:
    """World vertices [T, V, 3] of a FLAME sequence."""
    def t(x: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(x, dtype=np.float32))

    with torch.no_grad():
        return flame(shape=t(shape), expr=t(expr), rotations=t(rotations), transl=t(transl)).verts.numpy()


def sequence_errors(fit_cam: np.ndarray, fit_K: np.ndarray, true_cam: np.ndarray,
                    true_K: np.ndarray) -> dict[str, float]:
    """Errors of a fitted sequence against the truth, both in their cameras' coordinates [T, V, 3].

    reprojection_px: mean image distance of all vertices (occluded ones too); vertex_mm: mean 3D
    distance after one similarity alignment of the whole sequence (depth and scale are ambiguous
    in one view, so they are aligned away, once, not per frame).
    """
    reproj = np.linalg.norm(project(fit_cam, fit_K) - project(true_cam, true_K), axis=-1).mean()
    aligned = similarity_align(fit_cam.reshape(-1, 3), true_cam.reshape(-1, 3)).reshape(fit_cam.shape)
    return {"reprojection_px": float(reproj), "vertex_mm": mean_distance_mm(aligned, true_cam)}


def compare_collections(tracked, truth, flame: FLAME) -> dict[str, dict[str, float]]:
    """Per appearance errors of a tracked collection against the synthetic truth (both `Collection`s)."""
    out = {}
    for app in tracked:
        true_app = truth[app.name]
        fit = app.flame
        rows = [true_app.flame.index_of(int(i)) for i in fit.frame_ids]
        fit_cam = to_camera(posed_verts(flame, tracked.shape, fit.expr, fit.rotations, fit.transl), app.cameras.c2w[0])
        tf = true_app.flame
        true_cam = to_camera(posed_verts(flame, truth.shape, tf.expr[rows], tf.rotations[rows], tf.transl[rows]),
                             true_app.cameras.c2w[0])
        out[app.name] = sequence_errors(fit_cam, app.cameras.K[0], true_cam, true_app.cameras.K[0])
        out[app.name]["focal_ratio"] = float(app.cameras.K[0][0, 0] / true_app.cameras.K[0][0, 0])
    out["shape"] = {"neutral_mm": neutral_shape_error_mm(flame, tracked.shape, truth.shape)}
    return out
