"""Rodrigues rotations, forward kinematics and linear blend skinning of FLAME's joint tree."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_SMALL_ANGLE_SQ = 1e-3  # below this squared angle Rodrigues uses its Taylor series (no 0/0)


def _skew(vec: Tensor) -> Tensor:
    """[..., 3] -> [..., 3, 3] cross-product matrices."""
    x, y, z = vec.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).reshape(*vec.shape[:-1], 3, 3)


def axis_angle_to_matrix(rotvec: Tensor) -> Tensor:
    """Rodrigues: [..., 3] axis-angle -> [..., 3, 3]; exact gradients at zero (Taylor series near it).

    R = I + a K + b K^2 with K = skew(rotvec), a = sin(t)/t, b = (1 - cos t)/t^2, t = |rotvec|.
    """
    angle_sq = (rotvec * rotvec).sum(-1)[..., None, None]  # [..., 1, 1]
    small = angle_sq < _SMALL_ANGLE_SQ
    safe_sq = torch.where(small, torch.ones_like(angle_sq), angle_sq)  # keeps sqrt/division finite
    angle = safe_sq.sqrt()
    a_large = torch.sin(angle) / angle
    b_large = 2.0 * torch.sin(0.5 * angle) ** 2 / safe_sq  # 1 - cos t without cancellation
    a_small = 1.0 - angle_sq / 6.0 + angle_sq**2 / 120.0
    b_small = 0.5 - angle_sq / 24.0 + angle_sq**2 / 720.0
    a = torch.where(small, a_small, a_large)
    b = torch.where(small, b_small, b_large)
    k = _skew(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a * k + b * (k @ k)


def _forward_kinematics(rot: Tensor, joints: Tensor, parents: list[int]) -> tuple[Tensor, Tensor]:
    """World rotations [B, J, 3, 3] and positions [B, J, 3] from local rotations and rest joints [B, J, 3]."""
    world_rot = [rot[:, 0]]
    world_pos = [joints[:, 0]]
    for joint in range(1, len(parents)):
        parent = parents[joint]
        offset = joints[:, joint] - joints[:, parent]  # [B, 3] bone in the rest pose
        world_rot.append(world_rot[parent] @ rot[:, joint])
        world_pos.append((world_rot[parent] @ offset[..., None])[..., 0] + world_pos[parent])
    return torch.stack(world_rot, dim=1), torch.stack(world_pos, dim=1)


def _blend_skinning(points: Tensor, weights: Tensor, rot: Tensor, transl: Tensor) -> Tensor:
    """LBS: points [B, V, 3], weights [V, J], per-joint rot [B, J, 3, 3] and transl [B, J, 3] -> [B, V, 3]."""
    blended_rot = torch.einsum("vj,bjkl->bvkl", weights, rot)
    blended_transl = torch.einsum("vj,bjk->bvk", weights, transl)
    return torch.einsum("bvkl,bvl->bvk", blended_rot, points) + blended_transl


def _as_float(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _as_long(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
