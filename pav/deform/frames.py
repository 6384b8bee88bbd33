"""Posed head meshes of a set of frames, in the head's own frame, with one BVH over all of them.

World = R0 (x_head - J0) + J0 + transl, where R0 is the FLAME global rotation and J0 the rest position of the
root joint. Rays are moved into the head frame with the inverse, so every frame shares one head-space box and
one occupancy grid, and the meshes only carry neck, jaw, eye and expression motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..head.flame import FLAME, axis_angle_to_matrix
from ..ops.bvh import MeshBVH
from .mat3 import matvec3


def head_transforms(flame: FLAME, shape: Tensor, expr: Tensor, rotations: Tensor,
                    transl: Tensor) -> tuple[Tensor, Tensor]:
    """Head-space posed vertices [B, V, 3] and head-to-world 4x4 transforms [B, 4, 4]."""
    local_rot = rotations.clone()
    local_rot[:, 0] = 0.0  # the global rotation moves into the transform
    with torch.no_grad():
        out = flame(shape=shape, expr=expr, rotations=local_rot, transl=torch.zeros_like(transl))
    root = out.joints[:, 0]  # [B, 3] rest root joint (no global motion applied)
    rot = axis_angle_to_matrix(rotations[:, 0])  # [B, 3, 3]
    head_to_world = torch.eye(4, dtype=rot.dtype, device=rot.device).repeat(len(rot), 1, 1)
    head_to_world[:, :3, :3] = rot
    head_to_world[:, :3, 3] = root - matvec3(rot, root) + transl
    return out.verts, head_to_world


@dataclass
class FrameSet:
    """Frames the renderer can draw: their head-space meshes, camera-independent motion and conditioning."""

    posed_verts: Tensor  # [B, V, 3] head space
    head_to_world: Tensor  # [B, 4, 4]
    expr: Tensor  # [B, n_expr]
    pose: Tensor  # [B, 6] global and neck rotations (axis-angle): what hair and shoulders follow beyond the mesh
    appearance: Tensor  # [B] int64 index into the model's appearances
    bvh: MeshBVH

    @classmethod
    def build(cls, flame: FLAME, shape: Tensor, expr: Tensor, rotations: Tensor, transl: Tensor,
              appearance: Tensor, chunk: int = 256, device: torch.device | str | None = None) -> FrameSet:
        """shape [n_shape], expr [B, n_expr], rotations [B, 5, 3], transl [B, 3], appearance [B]. Poses where the
        inputs are; device: where the frame set goes (its BVH is built once, then moved), default the inputs'."""
        for name, value in (("expr", expr), ("rotations", rotations), ("transl", transl)):
            if not bool(torch.isfinite(value).all()):
                bad = torch.nonzero(~torch.isfinite(value.reshape(len(value), -1)).all(-1))[:, 0].tolist()
                raise ValueError(f"FrameSet: {name} holds NaN or inf at frame positions {bad[:10]}")
        verts, transforms = [], []
        for i in range(0, len(expr), chunk):
            v, t = head_transforms(flame, shape[None].float(), expr[i:i + chunk].float(),
                                   rotations[i:i + chunk].float(), transl[i:i + chunk].float())
            verts.append(v)
            transforms.append(t)
        posed_verts = torch.cat(verts).contiguous()
        pose = rotations[:, :2].reshape(len(rotations), 6).float()
        frames = cls(posed_verts, torch.cat(transforms), expr.float(), pose, appearance.long(),
                     MeshBVH(posed_verts, flame.faces))
        return frames if device is None else frames.to(device)

    def __len__(self) -> int:
        return len(self.expr)

    def to(self, device: torch.device | str) -> FrameSet:
        """This frame set on `device`; the BVH moves there with it (no rebuild). Self when already there."""
        verts = self.posed_verts.to(device)
        if verts is self.posed_verts:
            return self
        return FrameSet(verts, self.head_to_world.to(device), self.expr.to(device), self.pose.to(device),
                        self.appearance.to(device), self.bvh.to(verts.device))

    def world_to_head(self, origins: Tensor, dirs: Tensor, frame_idx: Tensor) -> tuple[Tensor, Tensor]:
        """Rays origins, dirs [R, 3] of frames frame_idx [R] -> head space."""
        m = self.head_to_world[frame_idx]  # [R, 4, 4]
        rot_t = m[:, :3, :3].transpose(1, 2)
        head_origins = matvec3(rot_t, origins - m[:, :3, 3])
        head_dirs = matvec3(rot_t, dirs)
        return head_origins, head_dirs
