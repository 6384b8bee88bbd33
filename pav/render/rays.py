"""Camera rays of pixels (OpenCV convention: x right, y down, z forward; pixel centres at integer coordinates)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..deform.mat3 import matvec3

if TYPE_CHECKING:
    from ..deform.frames import FrameSet


def pixel_rays(K: Tensor, c2w: Tensor, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """K [R, 3, 3], c2w [R, 4, 4], pixels [R, 2] (column, row) -> world origins [R, 3], unit dirs [R, 3]."""
    x = (pixels[:, 0] - K[:, 0, 2]) / K[:, 0, 0]
    y = (pixels[:, 1] - K[:, 1, 2]) / K[:, 1, 1]
    cam_dirs = torch.stack([x, y, torch.ones_like(x)], -1)  # [R, 3]
    dirs = matvec3(c2w[:, :3, :3], cam_dirs)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    return c2w[:, :3, 3].expand_as(dirs).contiguous(), dirs


def mesh_hits(frames: FrameSet, K: Tensor, c2w: Tensor, pixels: Tensor, frame: int) -> tuple[Tensor, Tensor]:
    """Where the pixels [P, 2] of one camera (K [3, 3], c2w [4, 4]) first meet frame `frame`'s posed mesh:
    distance along the ray [P] and triangle [P] (-1: none)."""
    n = len(pixels)
    origins, dirs = pixel_rays(K[None].expand(n, 3, 3), c2w[None].expand(n, 4, 4), pixels)
    frame_idx = torch.full((n,), frame, dtype=torch.long, device=pixels.device)
    head_o, head_d = frames.world_to_head(origins, dirs, frame_idx)
    t, face, _ = frames.bvh.raycast(head_o, head_d, frame_idx)
    return t, face


def scale_intrinsics(K: Tensor, factor: float) -> Tensor:
    """K [..., 3, 3] of an image resized by `factor` (0.5 halves it), keeping pixel centres aligned."""
    out = K.clone()
    out[..., 0, 0] *= factor
    out[..., 1, 1] *= factor
    out[..., 0, 2] = (K[..., 0, 2] + 0.5) * factor - 0.5
    out[..., 1, 2] = (K[..., 1, 2] + 0.5) * factor - 0.5
    return out


def image_pixels(height: int, width: int) -> Tensor:
    """Every pixel of an image as (column, row) [H * W, 2], row-major."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([cols.reshape(-1), rows.reshape(-1)], -1).float()


def ray_box(origins: Tensor, dirs: Tensor, box_min: Tensor, box_max: Tensor) -> tuple[Tensor, Tensor]:
    """Entry and exit distances [R] of rays through an axis-aligned box; exit <= entry where they miss."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t0 = (box_min - origins) * inv
    t1 = (box_max - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(-1)
    return near, far
