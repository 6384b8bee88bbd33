"""An independent z-buffer triangle rasteriser in torch, used only to make ground truth.

It shares nothing with the project's BVH: triangles are binned by screen size, every
candidate pixel is tested with edge functions, and the nearest hit per pixel wins through
one `scatter_reduce(amin)` over keys that pack (depth, face id).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_FACE_BITS = 24
_DEPTH_SCALE = 1e7  # depth quantum of 0.1 micrometre; 10 m fits in 27 bits
_EMPTY = torch.iinfo(torch.int64).max


@dataclass
class Fragments:
    face_idx: torch.Tensor  # [H, W] long, -1 where empty
    bary: torch.Tensor  # [H, W, 3] perspective-correct barycentrics
    depth: torch.Tensor  # [H, W] camera z, inf where empty


def project(verts_cam: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates [V, 2] (pixel centres at integers) of camera-space points [V, 3]."""
    z = verts_cam[:, 2:3].clamp_min(1e-6)
    uv = verts_cam[:, :2] / z
    return torch.stack([uv[:, 0] * K[0, 0] + K[0, 1] * uv[:, 1] + K[0, 2], uv[:, 1] * K[1, 1] + K[1, 2]], -1)


def rasterize(verts_cam: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, height: int, width: int,
              near: float = 0.01) -> Fragments:
    """Visible triangle, barycentrics and depth per pixel, for camera-space verts [V, 3], faces [F, 3]."""
    verts_cam = verts_cam.to(torch.float64)
    K = K.to(torch.float64)
    pix = project(verts_cam, K)  # [V, 2]
    tri = pix[faces]  # [F, 3, 2]
    tri_z = verts_cam[faces, 2]  # [F, 3]
    lo = tri.amin(1).ceil()
    hi = tri.amax(1).floor()
    lo[:, 0].clamp_(min=0)
    lo[:, 1].clamp_(min=0)
    hi[:, 0].clamp_(max=width - 1)
    hi[:, 1].clamp_(max=height - 1)
    area = _cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    keep = (tri_z > near).all(1) & (hi >= lo).all(1) & (area.abs() > 1e-12)
    face_ids = torch.nonzero(keep).squeeze(1)
    extent = (hi - lo)[face_ids].amax(1).long() + 1
    zbuf = torch.full((height * width,), _EMPTY, dtype=torch.int64)
    size = 1
    while len(face_ids):
        in_bin = extent <= size
        if in_bin.any():
            _splat(zbuf, face_ids[in_bin], size, tri, tri_z, area, lo, hi, width)
            face_ids, extent = face_ids[~in_bin], extent[~in_bin]
        size *= 2
    covered = zbuf != _EMPTY
    face_idx = torch.where(covered, zbuf & ((1 << _FACE_BITS) - 1), torch.full_like(zbuf, -1))
    bary = torch.zeros(height * width, 3, dtype=torch.float64)
    depth = torch.full((height * width,), float("inf"), dtype=torch.float64)
    idx = torch.nonzero(covered).squeeze(1)
    if len(idx):
        f = face_idx[idx]
        p = torch.stack([idx % width, idx // width], -1).to(torch.float64)
        b = _screen_bary(tri[f], area[f], p)
        persp = b / tri_z[f]
        inv_z = persp.sum(1)
        bary[idx] = persp / inv_z[:, None]
        depth[idx] = 1.0 / inv_z
    return Fragments(face_idx.view(height, width), bary.view(height, width, 3).float(),
                     depth.view(height, width).float())


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _screen_bary(tri: torch.Tensor, area: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Screen-space barycentrics [..., 3] of points p [..., 2] in triangles tri [..., 3, 2]."""
    w0 = _cross(tri[..., 1, :] - p, tri[..., 2, :] - p)
    w1 = _cross(tri[..., 2, :] - p, tri[..., 0, :] - p)
    w2 = _cross(tri[..., 0, :] - p, tri[..., 1, :] - p)
    return torch.stack([w0, w1, w2], -1) / area[..., None]


def _splat(zbuf, face_ids, size, tri, tri_z, area, lo, hi, width, chunk_pixels: int = 1 << 22):
    """Depth-test every pixel of the size x size box of each face into zbuf (in place)."""
    offs = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="xy"), -1).view(-1, 2)
    per_chunk = max(1, chunk_pixels // (size * size))
    for start in range(0, len(face_ids), per_chunk):
        f = face_ids[start:start + per_chunk]
        p = lo[f][:, None, :] + offs[None].to(torch.float64)  # [n, S*S, 2]
        valid = (p <= hi[f][:, None, :]).all(-1)
        b = _screen_bary(tri[f][:, None], area[f][:, None], p)  # [n, S*S, 3]
        valid &= (b >= 0).all(-1)
        inv_z = (b / tri_z[f][:, None, :]).sum(-1)
        valid &= inv_z > 0
        n_idx, s_idx = torch.nonzero(valid, as_tuple=True)
        if not len(n_idx):
            continue
        pix = p[n_idx, s_idx].long()
        key = ((1.0 / inv_z[n_idx, s_idx]) * _DEPTH_SCALE).long() << _FACE_BITS | f[n_idx]
        zbuf.scatter_reduce_(0, pix[:, 1] * width + pix[:, 0], key, reduce="amin")
