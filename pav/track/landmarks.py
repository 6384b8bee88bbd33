"""The head model's landmark embedding, matched to a detector's points, posed and projected."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..head.flame import FLAME, HeadModelError
from ..head.landmarks import points_on_mesh
from .camera import project


class LandmarkProjector:
    """Embedded landmarks that the detector also reports; poses only the vertices they need."""

    def __init__(self, flame: FLAME, detector_ids: np.ndarray) -> None:
        embedding = flame.landmarks_dense
        if embedding is None or embedding.indices is None:
            raise HeadModelError(
                f"{flame.source}: no mediapipe landmark embedding; pass landmark_embedding=PATH "
                "(FLAME's mediapipe_landmark_embedding.npz) to track with it")
        column_of = {int(d): j for j, d in enumerate(np.asarray(detector_ids))}
        indices = embedding.indices.tolist()
        keep = [k for k, d in enumerate(indices) if d in column_of]
        if len(keep) < 6:
            raise HeadModelError(f"{flame.source}: only {len(keep)} embedded landmarks are among the detector's "
                                 f"{len(column_of)} points; tracking needs at least 6")
        device = flame.faces.device
        keep_t = torch.tensor(keep, device=device)
        self.flame = flame
        # [M] detector column of each point; on the CPU: it picks columns of the detections' numpy arrays
        self.columns = np.asarray([column_of[int(indices[k])] for k in keep], dtype=np.int64)
        corners = flame.faces[embedding.face_idx[keep_t]]  # [M, 3] vertex ids
        self.vertex_ids, local = torch.unique(corners, return_inverse=True)  # [K], [M, 3]
        self.local_faces = local.reshape(-1, 3)  # [M, 3] into vertex_ids
        self.bary = embedding.bary[keep_t]  # [M, 3]

    def __len__(self) -> int:
        return int(self.columns.shape[0])

    @property
    def device(self) -> torch.device:
        """Where the head model lives, and so everything the fit computes."""
        return self.flame.faces.device

    def select(self, detected: np.ndarray) -> np.ndarray:
        """Per-frame detector arrays [T, L, ...] -> the embedded points' [T, M, ...]."""
        return np.take(np.asarray(detected), self.columns, axis=1)

    def points(self, shape: Tensor, expr: Tensor, rotations: Tensor, transl: Tensor) -> Tensor:
        """World positions [B, M, 3] of the landmarks."""
        verts = self.flame(shape=shape, expr=expr, rotations=rotations, transl=transl,
                           vertex_ids=self.vertex_ids).verts  # [B, K, 3]
        face_idx = torch.arange(len(self), device=verts.device)
        return points_on_mesh(verts, self.local_faces, face_idx, self.bary)

    def pixels(self, shape: Tensor, expr: Tensor, rotations: Tensor, transl: Tensor, focal: Tensor,
               size: tuple[int, int]) -> Tensor:
        """Projected landmarks [B, M, 2]; focal [B] pixels."""
        return project(self.points(shape, expr, rotations, transl), focal, size)
