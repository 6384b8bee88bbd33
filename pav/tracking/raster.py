"""A differentiable rasteriser: which triangle each pixel sees, and barycentrics with gradients.

Visibility comes from the project's BVH ray caster (no gradient, like a z-buffer); the barycentrics
of each hit are recomputed in torch from the triangle's corners, so colours and normals interpolated
with them pass gradients to the vertices, as nvdiffrast's interior pixels do. With nvdiffrast
installed and the mesh on a GPU, `rasterize` uses it for the visibility instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..ops.bvh import MeshBVH


@dataclass
class Raster:
    """The hits of B images of P pixels each."""

    pixel: Tensor  # [N] long, index into B * P
    frame: Tensor  # [N] long, image of each hit
    face_idx: Tensor  # [N] long
    bary: Tensor  # [N, 3] differentiable w.r.t. the vertices


def pixel_dirs(focal: float, size: tuple[int, int], device: torch.device | None = None) -> Tensor:
    """Camera-space ray directions [H*W, 3] (z = 1) through pixel centres; principal point at the centre."""
    h, w = size
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                          torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
    x = (u - (w - 1) / 2) / focal
    y = (v - (h - 1) / 2) / focal
    return torch.stack([x, y, torch.ones_like(x)], -1).reshape(-1, 3)


def ray_barycentrics(dirs: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Barycentrics [N, 3] where rays from the origin along dirs [N, 3] cross triangles (a, b, c) [N, 3]."""
    e1, e2 = b - a, c - a
    p = torch.linalg.cross(dirs, e2)
    det = (e1 * p).sum(-1)
    det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
    to_origin = -a
    u = (to_origin * p).sum(-1) / det
    q = torch.linalg.cross(to_origin, e1)
    v = (dirs * q).sum(-1) / det
    return torch.stack([1 - u - v, u, v], -1)


def _visible_faces_bvh(cam_verts: Tensor, faces: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
    """(pixel [N] into B * P, face_idx [N]) of the first hit of every pixel ray."""
    batch, n_pix = cam_verts.shape[0], dirs.shape[0]
    bvh = MeshBVH(cam_verts.detach().contiguous(), faces)
    mesh = torch.arange(batch, device=dirs.device).repeat_interleave(n_pix)
    unit = dirs / dirs.norm(dim=-1, keepdim=True)
    _, face_idx, _ = bvh.raycast(torch.zeros(batch * n_pix, 3, device=dirs.device), unit.repeat(batch, 1), mesh)
    pixel = torch.nonzero(face_idx >= 0)[:, 0]
    return pixel, face_idx[pixel]


def _visible_faces_nvdiffrast(cam_verts: Tensor, faces: Tensor, focal: float,
                              size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    import nvdiffrast.torch as dr

    h, w = size
    x, y, z = cam_verts.detach().unbind(-1)
    near, far = 0.01, 10.0
    # OpenCV pixels -> clip space; nvdiffrast's y axis points up, row 0 is the bottom
    clip_x = (2 * focal / w) * x + ((w - 1) / 2 * 2 / w - 1 + 1 / w) * z
    clip_y = -(2 * focal / h) * y - ((h - 1) / 2 * 2 / h - 1 + 1 / h) * z
    clip_z = (far + near) / (far - near) * z - 2 * far * near / (far - near)
    clip = torch.stack([clip_x, clip_y, clip_z, z], -1).contiguous()
    rast, _ = dr.rasterize(dr.RasterizeCudaContext(device=cam_verts.device), clip, faces.int().contiguous(), (h, w))
    tri = rast[..., 3].long().flip(1).reshape(-1) - 1  # [B * H * W], -1 where empty
    pixel = torch.nonzero(tri >= 0)[:, 0]
    return pixel, tri[pixel]


def _use_nvdiffrast(cam_verts: Tensor) -> bool:
    if not cam_verts.is_cuda:
        return False
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError:
        return False
    return True


def rasterize(cam_verts: Tensor, faces: Tensor, focal: float, size: tuple[int, int]) -> Raster:
    """Camera-space meshes [B, V, 3] (OpenCV axes), faces [F, 3] -> the hits of every pixel."""
    if cam_verts.ndim != 3 or cam_verts.shape[-1] != 3:
        raise ValueError(f"rasterize: cam_verts must be [B, V, 3], got {tuple(cam_verts.shape)}")
    dirs = pixel_dirs(focal, size, cam_verts.device)  # [P, 3]
    if _use_nvdiffrast(cam_verts):
        pixel, face_idx = _visible_faces_nvdiffrast(cam_verts, faces, focal, size)
    else:
        pixel, face_idx = _visible_faces_bvh(cam_verts, faces, dirs)
    n_pix = dirs.shape[0]
    frame = pixel // n_pix
    corners = cam_verts[frame[:, None], faces[face_idx]]  # [N, 3, 3]
    bary = ray_barycentrics(dirs[pixel % n_pix], corners[:, 0], corners[:, 1], corners[:, 2])
    return Raster(pixel, frame, face_idx, bary)


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals [B, V, 3]."""
    tri = verts[:, faces]  # [B, F, 3, 3]
    face_n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])  # [B, F, 3]
    normals = torch.zeros_like(verts)
    for k in range(3):
        normals = normals.index_add(1, faces[:, k], face_n)
    return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
