"""Textures baked in UV space and Lambert + ambient shading of rasterised frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from .raster import rasterize

AMBIENT, DIFFUSE = 0.38, 0.72


def texel_lookup(vt: np.ndarray, ft: np.ndarray, size: int):
    """For each texel of a size x size atlas: covering face [T, T] (-1 if none) and barycentrics [T, T, 3]."""
    pts = np.concatenate([vt * size - 0.5, np.ones((len(vt), 1))], 1)
    fr = rasterize(torch.from_numpy(pts), torch.from_numpy(ft.astype(np.int64)), torch.eye(3), size, size)
    return fr.face_idx.numpy(), fr.bary.numpy().astype(np.float64)


def fill_empty_texels(tex: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Copy the nearest painted texel into unpainted ones, so bilinear lookups at island borders stay clean."""
    _, (iy, ix) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return tex[iy, ix]


def sample_texture(textures: torch.Tensor, material: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup [N, 3] in textures [M, T, T, 3] at uv [N, 2] of material [N]."""
    size = textures.shape[1]
    x = (uv[:, 0] * size - 0.5).clamp(0, size - 1)
    y = (uv[:, 1] * size - 0.5).clamp(0, size - 1)
    x0, y0 = x.floor().long().clamp(max=size - 2), y.floor().long().clamp(max=size - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = textures[material, y0, x0] * (1 - fx) + textures[material, y0, x0 + 1] * fx
    bottom = textures[material, y0 + 1, x0] * (1 - fx) + textures[material, y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit normals [V, 3] of verts [V, 3]."""
    tri = verts[faces]
    n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    out = torch.zeros_like(verts).index_add_(0, faces.reshape(-1), n.repeat_interleave(3, 0))
    return torch.nn.functional.normalize(out, dim=1)


@dataclass
class Surface:
    """Everything drawn in one frame: triangles in camera space with their material and UVs."""

    verts: torch.Tensor  # [V, 3] camera space
    faces: torch.Tensor  # [F, 3]
    normals: torch.Tensor  # [V, 3] camera space
    corner_uv: torch.Tensor  # [F, 3, 2]
    material: torch.Tensor  # [F] index into the textures
    closed: torch.Tensor  # [F] bool: part of a closed surface, so back faces can be skipped


def shade(surface: Surface, textures: torch.Tensor, K: np.ndarray, size: int, light: np.ndarray,
          background: torch.Tensor, supersample: int = 2):
    """Antialiased frame: rgb [H, W, 3] and alpha [H, W] in [0, 1], plus the supersampled depth."""
    s = supersample
    Ks = torch.tensor(K, dtype=torch.float64).clone()
    Ks[:2, :2] *= s
    Ks[:2, 2] = Ks[:2, 2] * s + (s - 1) / 2.0  # pixel centres of the fine grid
    fr = rasterize(surface.verts, surface.faces, Ks, size * s, size * s, cull_back=surface.closed)
    face = fr.face_idx.view(-1)
    hit = torch.nonzero(face >= 0).squeeze(1)
    f = face[hit]
    b = fr.bary.view(-1, 3)[hit]  # [N, 3]
    uv = (surface.corner_uv[f] * b[:, :, None]).sum(1)
    albedo = sample_texture(textures, surface.material[f], uv)
    normal = torch.nn.functional.normalize((surface.normals[surface.faces[f]] * b[:, :, None]).sum(1), dim=1)
    point = (surface.verts[surface.faces[f]] * b[:, :, None]).sum(1)
    normal = torch.where(((normal * point).sum(1) > 0)[:, None], -normal, normal)  # double-sided
    light_dir = torch.nn.functional.normalize(torch.tensor(light, dtype=torch.float32), dim=0)
    lit = AMBIENT + DIFFUSE * (normal @ light_dir).clamp_min(0.0)
    fine = torch.zeros(size * s * size * s, 4)
    fine[hit, :3] = albedo * lit[:, None]
    fine[hit, 3] = 1.0
    coarse = fine.view(size, s, size, s, 4).mean((1, 3))
    alpha = coarse[..., 3]
    rgb = coarse[..., :3] + (1.0 - alpha[..., None]) * background
    return rgb.clamp(0, 1), alpha, fr.depth
