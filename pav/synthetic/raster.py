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
              near: float = 0.01, cull_back: torch.Tensor | None = None) -> Fragments:
    """Visible triangle, barycentrics and depth per pixel, for camera-space verts [V, 3], faces [F, 3].

    cull_back [F] bool: faces of closed surfaces that are dropped when they face away from the camera.
    """
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
    if cull_back is not None:
        keep &= ~(cull_back & (area > 0))  # with y pointing down, faces turned to the camera have area < 0
    # barycentrics and 1/z are affine in the pixel position: w = E @ (x, y, 1)
    edges = _edge_planes(tri, area)  # [F, 3, 3]
    inv_z_plane = (edges / tri_z[:, :, None]).sum(1)  # [F, 3]
    face_ids = torch.nonzero(keep).squeeze(1)
    extent = (hi - lo)[face_ids].long() + 1  # [n, 2]
    bins = (2 ** torch.ceil(torch.log2(extent.double()))).long()
    zbuf = torch.full((height * width,), _EMPTY, dtype=torch.int64)
    for bw, bh in torch.unique(bins, dim=0).tolist():
        in_bin = face_ids[(bins[:, 0] == bw) & (bins[:, 1] == bh)]
        _splat(zbuf, in_bin, bw, bh, edges.float(), inv_z_plane, lo, hi, width)
    covered = zbuf != _EMPTY
    face_idx = torch.where(covered, zbuf & ((1 << _FACE_BITS) - 1), torch.full_like(zbuf, -1))
    bary = torch.zeros(height * width, 3, dtype=torch.float64)
    depth = torch.full((height * width,), float("inf"), dtype=torch.float64)
    idx = torch.nonzero(covered).squeeze(1)
    if len(idx):
        f = face_idx[idx]
        p = torch.stack([idx % width, idx // width, torch.ones_like(idx)], -1).to(torch.float64)
        b = (edges[f] @ p[:, :, None])[..., 0]
        persp = b / tri_z[f]
        inv_z = persp.sum(1)
        bary[idx] = persp / inv_z[:, None]
        depth[idx] = 1.0 / inv_z
    return Fragments(face_idx.view(height, width), bary.view(height, width, 3).float(),
                     depth.view(height, width).float())


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _edge_planes(tri: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """[F, 3, 3]: row i holds (a, b, c) with screen barycentric w_i(x, y) = a x + b y + c."""
    rows = []
    for i in range(3):
        p1, p2 = tri[:, (i + 1) % 3], tri[:, (i + 2) % 3]
        # w_i = cross(p1 - p, p2 - p) / area, expanded into a plane in p
        a = (p1[:, 1] - p2[:, 1]) / area
        b = (p2[:, 0] - p1[:, 0]) / area
        c = (p1[:, 0] * p2[:, 1] - p1[:, 1] * p2[:, 0]) / area
        rows.append(torch.stack([a, b, c], -1))
    return torch.stack(rows, 1)


def _splat(zbuf, face_ids, bw, bh, edges, inv_z_plane, lo, hi, width, chunk_pixels: int = 1 << 20):
    """Depth-test every pixel of the bw x bh box of each face into zbuf (in place)."""
    oy, ox = torch.meshgrid(torch.arange(bh), torch.arange(bw), indexing="ij")
    ox, oy = ox.reshape(-1).float(), oy.reshape(-1).float()
    per_chunk = max(1, chunk_pixels // (bw * bh))
    for start in range(0, len(face_ids), per_chunk):
        f = face_ids[start:start + per_chunk]
        x = lo[f, 0:1].float() + ox  # [n, S]
        y = lo[f, 1:2].float() + oy
        valid = (x <= hi[f, 0:1]) & (y <= hi[f, 1:2])
        e = edges[f]  # [n, 3, 3]
        for i in range(3):
            valid &= e[:, i, 0:1] * x + e[:, i, 1:2] * y + e[:, i, 2:3] >= -1e-5  # no cracks on shared edges
        n_idx, s_idx = torch.nonzero(valid, as_tuple=True)
        if not len(n_idx):
            continue
        fx, fy = x[n_idx, s_idx].double(), y[n_idx, s_idx].double()
        plane = inv_z_plane[f[n_idx]]
        inv_z = plane[:, 0] * fx + plane[:, 1] * fy + plane[:, 2]
        ok = inv_z > 0
        key = ((1.0 / inv_z[ok]) * _DEPTH_SCALE).long() << _FACE_BITS | f[n_idx[ok]]
        zbuf.scatter_reduce_(0, (fy[ok] * width + fx[ok]).long(), key, reduce="amin")
