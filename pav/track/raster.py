"""A differentiable rasteriser: which triangle each pixel sees, and barycentrics with gradients.

Visibility comes from the project's BVH ray caster (no gradient, like a z-buffer); the barycentrics
of each hit are recomputed in torch from the triangle's corners, so colours and normals interpolated
with them pass gradients to the vertices, as nvdiffrast's interior pixels do. With nvdiffrast
installed and the mesh on a GPU, `rasterize` uses it for the visibility instead (one context per GPU,
the render padded to a multiple of 8 pixels and cropped back, so any image size works).
"""

from __future__ import annotations

from collections import Counter
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


def _visible_faces_bvh(cam_verts: Tensor, faces: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor, str]:
    """(pixel [N] into B * P, face_idx [N], the BVH's backend) of the first hit of every pixel ray."""
    batch, n_pix = cam_verts.shape[0], dirs.shape[0]
    bvh = MeshBVH(cam_verts.detach().contiguous(), faces)
    mesh = torch.arange(batch, device=dirs.device).repeat_interleave(n_pix)
    unit = dirs / dirs.norm(dim=-1, keepdim=True)
    _, face_idx, _ = bvh.raycast(torch.zeros(batch * n_pix, 3, device=dirs.device), unit.repeat(batch, 1), mesh)
    pixel = torch.nonzero(face_idx >= 0)[:, 0]
    return pixel, face_idx[pixel], bvh.backend


NVDIFFRAST_ALIGN = 8  # older nvdiffrast refuses resolutions that are not multiples of 8
NEAR, FAR = 0.01, 10.0  # metres: the clip range of nvdiffrast's depth


def padded_size(size: tuple[int, int], align: int = NVDIFFRAST_ALIGN) -> tuple[int, int]:
    """(H, W) rounded up to multiples of `align`."""
    return tuple(-(-n // align) * align for n in size)


def clip_space(cam_verts: Tensor, focal: float, size: tuple[int, int], padded: tuple[int, int]) -> Tensor:
    """Camera-space points [B, V, 3] (OpenCV axes, principal point at the centre of `size`) -> nvdiffrast clip
    coordinates [B, V, 4] for a render of `padded` (H', W') >= size whose top-left (H, W) is the image.

    nvdiffrast: y points up and output row 0 is the bottom; pixel i's centre lies at NDC (i + 0.5) * 2 / W' - 1.
    OpenCV pixel u = f x / z + (W - 1) / 2, so NDC x = (2 (f x / z + (W - 1) / 2) + 1) / W' - 1; rows count
    down from the top of the padded image: after flipping rows, its top-left (H, W) is the image.
    """
    (h, w), (hp, wp) = size, padded
    x, y, z = cam_verts.unbind(-1)
    clip_x = (2 * focal / wp) * x + (w / wp - 1) * z  # (2 cx + 1) / W' - 1 with cx = (W - 1) / 2
    clip_y = -(2 * focal / hp) * y + (1 - h / hp) * z
    clip_z = (FAR + NEAR) / (FAR - NEAR) * z - 2 * FAR * NEAR / (FAR - NEAR)
    return torch.stack([clip_x, clip_y, clip_z, z], -1)


def unpad_triangle_ids(triangle_ids: Tensor, size: tuple[int, int]) -> Tensor:
    """nvdiffrast's triangle id + 1 [B, H', W'] (row 0 at the bottom, 0 = empty) -> face index [B * H * W] of the
    image's pixels in row-major order from the top-left, -1 where empty."""
    h, w = size
    return triangle_ids.flip(1)[:, :h, :w].long().reshape(-1) - 1


_RASTER_CONTEXTS: dict[torch.device, object] = {}  # one nvdiffrast context per GPU, made on first use


def _raster_context(device: torch.device):
    import nvdiffrast.torch as dr

    if device.index is None:
        device = torch.device(device.type, torch.cuda.current_device())
    if device not in _RASTER_CONTEXTS:
        _RASTER_CONTEXTS[device] = dr.RasterizeCudaContext(device=device)
    return _RASTER_CONTEXTS[device]


def _visible_faces_nvdiffrast(cam_verts: Tensor, faces: Tensor, focal: float,
                              size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    import nvdiffrast.torch as dr

    padded = padded_size(size)
    clip = clip_space(cam_verts.detach(), focal, size, padded).contiguous()  # [B, V, 4]
    rast, _ = dr.rasterize(_raster_context(cam_verts.device), clip, faces.int().contiguous(), padded)
    tri = unpad_triangle_ids(rast[..., 3], size)  # [B * H * W], -1 where empty
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


SERVED: Counter[str] = Counter()  # calls served per rasteriser: nvdiffrast, bvh-ext or bvh-torch (for the bench)


def rasterize(cam_verts: Tensor, faces: Tensor, focal: float, size: tuple[int, int]) -> Raster:
    """Camera-space meshes [B, V, 3] (OpenCV axes), faces [F, 3] on the same device -> the hits of every pixel."""
    if cam_verts.ndim != 3 or cam_verts.shape[-1] != 3:
        raise ValueError(f"rasterize: cam_verts must be [B, V, 3], got {tuple(cam_verts.shape)}")
    if faces.device != cam_verts.device:
        raise ValueError(f"rasterize: faces are on {faces.device} but cam_verts on {cam_verts.device}")
    dirs = pixel_dirs(focal, size, cam_verts.device)  # [P, 3]
    if _use_nvdiffrast(cam_verts):
        pixel, face_idx = _visible_faces_nvdiffrast(cam_verts, faces, focal, size)
        SERVED["nvdiffrast"] += 1
    else:
        pixel, face_idx, backend = _visible_faces_bvh(cam_verts, faces, dirs)
        SERVED[f"bvh-{backend}"] += 1
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
