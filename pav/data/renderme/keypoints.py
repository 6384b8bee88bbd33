"""Where RenderMe-360's keypoints sit on the head model, learned from the expression parts' FLAME fits.

Hair parts have keypoints but no fit. Where both exist, each keypoint's nearest surface point on the fitted
mesh is carried to the subject's neutral mesh through its face and barycentrics; the robust centre of those
positions over frames, snapped back to the surface, is the keypoint's embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...ops import MeshBVH


@dataclass
class KeypointEmbedding:
    face_idx: np.ndarray  # [K] int64; -1: not embedded (never seen near the surface, or excluded)
    bary: np.ndarray  # [K, 3]
    spread_mm: np.ndarray  # [K] median distance of the per-frame positions from their centre (neutral mesh)
    distance_mm: np.ndarray  # [K] median distance of the keypoints from the fitted surface

    @property
    def used(self) -> np.ndarray:  # [K] bool
        return self.face_idx >= 0

    def save(self, path: Path) -> None:
        np.savez(path, face_idx=self.face_idx, bary=self.bary, spread_mm=self.spread_mm,
                 distance_mm=self.distance_mm)

    @classmethod
    def load(cls, path: Path) -> KeypointEmbedding:
        with np.load(path) as f:
            return cls(f["face_idx"], f["bary"], f["spread_mm"], f["distance_mm"])


def _geometric_median(points: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Weiszfeld's iteration: the point of least summed distance to points [N, 3] (robust to outliers)."""
    centre = np.median(points, axis=0)
    for _ in range(iterations):
        dist = np.linalg.norm(points - centre, axis=-1).clip(1e-9)
        centre = (points / dist[:, None]).sum(0) / (1.0 / dist).sum()
    return centre


def learn_embedding(neutral_verts: np.ndarray, faces: np.ndarray, posed_verts: np.ndarray, keypoints: np.ndarray,
                    max_distance: float = 0.01, exclude: np.ndarray | None = None) -> KeypointEmbedding:
    """Embed keypoints [T, K, 3] (NaN where missing) observed on fitted meshes posed_verts [T, V, 3].

    neutral_verts [V, 3] is the reference mesh the positions are averaged on; observations farther than
    max_distance (metres) from the fitted surface are outliers and ignored; `exclude` [K] bool keeps points
    out (face contours slide over the surface with the view).
    """
    T, K = keypoints.shape[:2]
    faces_t = torch.from_numpy(np.asarray(faces)).long()
    bvh = MeshBVH(torch.from_numpy(posed_verts).float(), faces_t)
    flat = keypoints.reshape(-1, 3)
    seen = np.isfinite(flat).all(-1)
    mesh_idx = np.repeat(np.arange(T), K)
    face = np.full(T * K, -1)
    bary = np.zeros((T * K, 3))
    dist = np.full(T * K, np.inf)
    if seen.any():
        f, b, d2 = bvh.nearest(torch.from_numpy(flat[seen]).float(), torch.from_numpy(mesh_idx[seen]))
        face[seen], bary[seen], dist[seen] = f.numpy(), b.double().numpy(), d2.double().sqrt().numpy()
    neutral = np.asarray(neutral_verts, dtype=np.float64)
    canon = (neutral[np.asarray(faces)[face.clip(0)]] * bary[..., None]).sum(1).reshape(T, K, 3)
    face, dist = face.reshape(T, K), dist.reshape(T, K)
    near = (face >= 0) & (dist <= max_distance)

    centres = np.zeros((K, 3))
    spread = np.full(K, np.nan)
    distance = np.full(K, np.nan)
    excluded = np.zeros(K, bool) if exclude is None else np.asarray(exclude, bool)
    used = near.any(0) & ~excluded
    for k in np.nonzero(used)[0]:
        samples = canon[near[:, k], k]
        centres[k] = _geometric_median(samples)
        spread[k] = 1e3 * np.median(np.linalg.norm(samples - centres[k], axis=-1))
        distance[k] = 1e3 * np.median(dist[near[:, k], k])
    out_face = np.full(K, -1, dtype=np.int64)
    out_bary = np.zeros((K, 3))
    if used.any():
        snap = MeshBVH(torch.from_numpy(neutral[None]).float(), faces_t)
        f, b, _ = snap.nearest(torch.from_numpy(centres[used]).float())
        out_face[used], out_bary[used] = f.numpy(), b.double().numpy()
    return KeypointEmbedding(out_face, out_bary, spread, distance)
