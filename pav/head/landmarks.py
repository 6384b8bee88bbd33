"""Landmarks embedded in a mesh: a face index and barycentric coordinates per point."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LandmarkEmbedding", "points_on_mesh"]


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Points fixed on the mesh surface.

    `indices` is set for a dense (mediapipe-style) embedding: which landmark of the detector's
    full set (e.g. mediapipe's 478) each embedded point is.
    """

    face_idx: Tensor  # [L] long
    bary: Tensor  # [L, 3]
    indices: Tensor | None = None  # [L] long

    def __len__(self) -> int:
        return int(self.face_idx.shape[0])


def points_on_mesh(verts: Tensor, faces: Tensor, face_idx: Tensor, bary: Tensor) -> Tensor:
    """Barycentric interpolation of mesh points.

    verts [B, V, 3], faces [F, 3] long, face_idx [L] long, bary [L, 3] -> [B, L, 3].
    """
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"points_on_mesh: verts must be [B, V, 3], got {tuple(verts.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"points_on_mesh: faces must be [F, 3], got {tuple(faces.shape)}")
    if face_idx.ndim != 1 or bary.shape != (face_idx.shape[0], 3):
        raise ValueError(
            f"points_on_mesh: face_idx must be [L] and bary [L, 3], got {tuple(face_idx.shape)} "
            f"and {tuple(bary.shape)}"
        )
    corners = faces.to(verts.device)[face_idx.to(verts.device)]  # [L, 3] vertex ids
    triangles = verts[:, corners]  # [B, L, 3 corners, 3 xyz]
    weights = bary.to(device=verts.device, dtype=verts.dtype)  # [L, 3]
    return torch.einsum("blcx,lc->blx", triangles, weights)
