"""Canonicalization of sample points and view directions through their nearest triangle.

A triangle (a, b, c) has the frame [T B N | a]: T = normalize(b - a), N = normalize((b - a) x (c - a)),
B = N x T. A point x near posed triangle t maps to x_c = Frame_canon(t) Frame_posed(t)^-1 x (INSTA's rigid
mapping); the affine option uses the deformation gradient of the edges and an area-scaled normal instead,
so the point also follows the triangle's stretch. Directions use the 3x3 part and are re-normalised.

Far from the surface a triangle's own turn is a poor guide: a thin eyelid triangle that turns 60 degrees as the
lid closes would swing a sample 4 cm in front of the eye into the face. Past rigid_reach from its triangle, a
sample's map blends (linearly, fully at twice rigid_reach) into a translation: it moves with its closest surface
point, x_c = q + (x - p), with p that point on the posed triangle and q the same barycentrics on the canonical one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..ops.bvh import MeshBVH
from .mat3 import inverse3, matmul3, matvec3

DEFORM_MODES = ("rigid", "affine")


def triangle_frames(tri: Tensor, mode: str = "rigid") -> Tensor:
    """Linear part of each triangle's frame: tri [N, 3, 3] (corners a, b, c as rows) -> [N, 3, 3].

    rigid: columns T, B, N (a rotation). affine: columns b - a, c - a, n / sqrt(|n|) with
    n = (b - a) x (c - a), so the third column scales like a length.
    """
    if mode not in DEFORM_MODES:
        raise ValueError(f"triangle_frames: mode must be one of {DEFORM_MODES}, got {mode!r}")
    e1 = tri[:, 1] - tri[:, 0]  # [N, 3]
    e2 = tri[:, 2] - tri[:, 0]
    n = torch.cross(e1, e2, dim=-1)
    if mode == "affine":
        area2 = n.norm(dim=-1, keepdim=True).clamp_min(1e-20)
        return torch.stack([e1, e2, n / area2.sqrt()], dim=-1)
    t = e1 / e1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    nn = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-20)
    b = torch.cross(nn, t, dim=-1)
    return torch.stack([t, b, nn], dim=-1)


@dataclass
class CanonicalSamples:
    """Samples in canonical space; points with no triangle within reach have valid = False."""

    points: Tensor  # [N, 3] canonical positions
    dirs: Tensor | None  # [N, 3] canonical unit directions
    face_idx: Tensor  # [N] int64, -1 where invalid
    bary: Tensor  # [N, 3] barycentrics of the closest point on the triangle
    uv: Tensor  # [N, 2] texture coordinates of that closest point
    valid: Tensor  # [N] bool

    def select(self, idx: Tensor) -> CanonicalSamples:
        """The samples idx [K]."""
        return CanonicalSamples(self.points[idx], None if self.dirs is None else self.dirs[idx], self.face_idx[idx],
                                self.bary[idx], self.uv[idx], self.valid[idx])


class Canonicalizer:
    """Maps points near posed meshes (one BVH over all frames) to the canonical mesh.

    canon_verts [V, 3], faces [F, 3], face_uv [F, 3, 2] (per-corner uv), mode rigid | affine.
    outer_dist: points farther than this from the surface are dropped; inner_dist: points deeper than this
    inside the surface are dropped too (the signed side comes from the triangle normal), so the solid interior
    of the head never costs a field evaluation. table_bytes: the most memory the per-frame-and-face table of
    frame_table may take (1 GiB: 1700 FLAME frames); past it, each call computes its samples' triangle frames.
    rigid_reach: metres from the triangle past which the map turns into the closest point's translation (inf:
    the triangle's map at any distance).
    """

    def __init__(self, canon_verts: Tensor, faces: Tensor, face_uv: Tensor, mode: str = "rigid",
                 outer_dist: float = 0.06, inner_dist: float = math.inf, table_bytes: int = 1 << 30,
                 rigid_reach: float = math.inf) -> None:
        if mode not in DEFORM_MODES:
            raise ValueError(f"Canonicalizer: mode must be one of {DEFORM_MODES}, got {mode!r}")
        if canon_verts.dim() != 2 or canon_verts.shape[1] != 3:
            raise ValueError(f"Canonicalizer: canon_verts must be [V, 3], got {tuple(canon_verts.shape)}")
        if face_uv.shape != (faces.shape[0], 3, 2):
            raise ValueError(f"Canonicalizer: face_uv must be [F, 3, 2] = [{faces.shape[0]}, 3, 2], "
                             f"got {tuple(face_uv.shape)}")
        self.mode = mode
        self.faces = faces.long()
        self.face_uv = face_uv.float()
        self.outer_dist = float(outer_dist)
        self.inner_dist = float(inner_dist)
        if not rigid_reach > 0:
            raise ValueError(f"Canonicalizer: rigid_reach must be above 0 (inf: never blend), got {rigid_reach}")
        self.rigid_reach = float(rigid_reach)
        canon_tri = canon_verts.float()[self.faces]  # [F, 3, 3]
        self.canon_tri = canon_tri.contiguous()
        self.canon_origin = canon_tri[:, 0].contiguous()  # [F, 3]
        self.canon_frame = triangle_frames(canon_tri, mode)  # [F, 3, 3]
        self.table_bytes = int(table_bytes)  # the most a frame_table may take; past it each call builds its rows
        self._tables: list[tuple[Tensor, int, Tensor]] = []  # (posed_verts, its version, frame_table), newest first

    def to(self, device: torch.device) -> Canonicalizer:
        for name in ("faces", "face_uv", "canon_tri", "canon_origin", "canon_frame"):
            setattr(self, name, getattr(self, name).to(device))
        self._tables = []
        return self

    def frame_table(self, posed_verts: Tensor) -> Tensor | None:
        """[B * F, 15] per frame and face: the 3x3 map to the canonical triangle's frame, the posed triangle's
        first corner and its (unnormalised) normal; built once per posed mesh set and kept for the next calls, so a
        sample costs one row gather instead of its triangle's frame. None when it would exceed table_bytes."""
        n_frames, n_faces = posed_verts.shape[0], self.faces.shape[0]
        if n_frames * n_faces * 15 * 4 > self.table_bytes:
            return None
        for i, (verts, version, table) in enumerate(self._tables):
            if verts is posed_verts and version == posed_verts._version:
                self._tables.insert(0, self._tables.pop(i))  # most recently used first
                return table
        rows = []
        for start in range(0, n_frames, 32):  # bounded temporaries: [32 * F, 3, 3] at a time
            tri = posed_verts[start:start + 32][:, self.faces].reshape(-1, 3, 3)  # [b * F, 3, 3]
            rows.append(self._rows(tri, torch.arange(n_faces, device=tri.device).repeat(len(tri) // n_faces)))
        table = torch.cat(rows)
        # the train and the test frames alternate during validation: keep both
        self._tables = [(posed_verts, posed_verts._version, table), *self._tables][:2]
        return table

    def _rows(self, tri: Tensor, face: Tensor) -> Tensor:
        """Posed triangles tri [N, 3, 3] of canonical faces face [N] -> [N, 15] rows of frame_table."""
        posed_frame = triangle_frames(tri, self.mode)  # [N, 3, 3]
        if self.mode == "rigid":
            to_canon = matmul3(self.canon_frame[face], posed_frame.transpose(1, 2))  # [N, 3, 3]
        else:
            to_canon = matmul3(self.canon_frame[face], inverse3(posed_frame))
        normal = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
        return torch.cat([to_canon.reshape(-1, 9), tri[:, 0], normal], -1)

    @torch.no_grad()
    def __call__(self, points: Tensor, dirs: Tensor | None, posed_verts: Tensor, bvh: MeshBVH,
                 mesh_idx: Tensor) -> CanonicalSamples:
        """points [N, 3] (and dirs [N, 3]) near the posed meshes posed_verts [B, V, 3] held by bvh; mesh_idx [N]."""
        n = points.shape[0]
        if n == 0:  # an empty query would read as "every point on mesh 0"
            empty = points.new_zeros(0)
            return CanonicalSamples(points.new_zeros(0, 3), None if dirs is None else points.new_zeros(0, 3),
                                    torch.zeros(0, dtype=torch.long, device=points.device), points.new_zeros(0, 3),
                                    points.new_zeros(0, 2), empty.bool())
        face_idx, bary, sqdist = bvh.nearest(points, mesh_idx, max_dist=self.outer_dist)
        valid = face_idx >= 0
        face = face_idx.clamp_min(0)
        table = self.frame_table(posed_verts)
        if table is not None:
            row = table[mesh_idx.long() * self.faces.shape[0] + face]  # [N, 15]
        else:
            row = self._rows(posed_verts[mesh_idx.long()[:, None], self.faces[face]], face)
        to_canon, local = row[:, :9].view(-1, 3, 3), points - row[:, 9:12]  # [N, 3, 3], [N, 3]
        if math.isfinite(self.inner_dist):  # the closest point lies in the triangle's plane: its side is local's
            inside = (local * row[:, 12:15]).sum(-1) < 0
            valid &= ~(inside & (sqdist > self.inner_dist ** 2))
        canon_points = self.canon_origin[face] + matvec3(to_canon, local)  # [N, 3]
        canon_dirs = None if dirs is None else matvec3(to_canon, dirs)
        if math.isfinite(self.rigid_reach):
            self._blend_far(canon_points, canon_dirs, points, dirs, posed_verts, mesh_idx, face, bary, sqdist, valid)
        if canon_dirs is not None:
            canon_dirs = canon_dirs / canon_dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        uv = (bary[:, :, None] * self.face_uv[face]).sum(1)  # [N, 2]
        face_idx = torch.where(valid, face_idx, torch.full_like(face_idx, -1))
        return CanonicalSamples(canon_points, canon_dirs, face_idx, bary, uv, valid)

    def _blend_far(self, canon_points: Tensor, canon_dirs: Tensor | None, points: Tensor, dirs: Tensor | None,
                   posed_verts: Tensor, mesh_idx: Tensor, face: Tensor, bary: Tensor, sqdist: Tensor,
                   valid: Tensor) -> None:
        """In place: samples past rigid_reach from their triangle move toward their closest point's translation."""
        reach = self.rigid_reach
        dist = sqdist.clamp_min(0.0).sqrt()  # [N]
        far = torch.nonzero(valid & (dist > reach))[:, 0]  # [K]
        if len(far) == 0:
            return
        f, b = face[far], bary[far][:, :, None].to(points.dtype)
        posed_tri = posed_verts[mesh_idx.long()[far][:, None], self.faces[f]]  # [K, 3, 3]
        closest_posed, closest_canon = (b * posed_tri).sum(1), (b * self.canon_tri[f]).sum(1)  # [K, 3]
        own = ((2.0 * reach - dist[far]) / reach).clamp(0.0, 1.0)[:, None]  # [K, 1] the triangle map's share
        moved = closest_canon + (points[far] - closest_posed)
        canon_points[far] = own * canon_points[far] + (1.0 - own) * moved
        if canon_dirs is not None and dirs is not None:
            unit = canon_dirs[far] / canon_dirs[far].norm(dim=-1, keepdim=True).clamp_min(1e-12)
            canon_dirs[far] = own * unit + (1.0 - own) * dirs[far]
