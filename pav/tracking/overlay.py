"""Overlay videos: the fitted mesh, shaded, drawn over the frames so a user can judge the fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..ops.bvh import MeshBVH
from ..video import write_mp4
from .camera import to_camera

MAX_SIDE = 512  # overlays are for looking at; larger frames only cost time


def camera_rays(focal: float, size: tuple[int, int], scale: float) -> Tensor:
    """Unit directions [H*W, 3] through pixel centres of the image resized by `scale`."""
    h, w = round(size[0] * scale), round(size[1] * scale)
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    # pixel centres of the resized image, in the original image's pixel coordinates
    x = ((u + 0.5) / scale - 0.5 - (size[1] - 1) / 2) / focal
    y = ((v + 0.5) / scale - 0.5 - (size[0] - 1) / 2) / focal
    dirs = torch.stack([x, y, torch.ones_like(x)], -1).reshape(-1, 3)
    return dirs / dirs.norm(dim=-1, keepdim=True)


def shade(verts: Tensor, faces: Tensor, focal: float, size: tuple[int, int], scale: float) -> tuple[Tensor, Tensor]:
    """Headlight shading [B, h, w] and coverage [B, h, w] of world meshes verts [B, V, 3]."""
    cam = to_camera(verts).contiguous()  # [B, V, 3]
    bvh = MeshBVH(cam, faces)
    dirs = camera_rays(focal, size, scale)  # [P, 3]
    n_pix = dirs.shape[0]
    batch = cam.shape[0]
    mesh = torch.arange(batch).repeat_interleave(n_pix)
    t, face_idx, _ = bvh.raycast(torch.zeros(batch * n_pix, 3), dirs.repeat(batch, 1), mesh)
    hit = face_idx >= 0
    tri = cam[mesh[hit][:, None], faces[face_idx[hit]]]  # [N, 3, 3]
    normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    light = torch.zeros(batch * n_pix)
    light[hit] = (normal * dirs.repeat(batch, 1)[hit]).sum(-1).abs()
    h, w = round(size[0] * scale), round(size[1] * scale)
    return light.view(batch, h, w), hit.view(batch, h, w).float()


def overlay_frames(frames: np.ndarray, light: Tensor, hit: Tensor, opacity: float = 0.55) -> np.ndarray:
    """uint8 frames [B, h, w, 3] with a light-blue mesh shading blended where the mesh covers them."""
    tint = torch.tensor([0.55, 0.75, 1.0])
    mesh_rgb = (0.25 + 0.75 * light[..., None]) * tint  # [B, h, w, 3]
    alpha = opacity * hit[..., None]
    out = torch.from_numpy(frames).float() / 255 * (1 - alpha) + mesh_rgb * alpha
    return (out.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def write_overlay(path: Path, frames_of, verts_of, faces: Tensor, focal: float, size: tuple[int, int],
                  n_frames: int, fps: float, batch: int = 8) -> Path:
    """frames_of(rows) -> uint8 [B, h, w, 3] at the overlay size; verts_of(rows) -> world verts [B, V, 3]."""
    scale = min(1.0, MAX_SIDE / max(size))
    out = []
    with torch.no_grad():
        for start in range(0, n_frames, batch):
            rows = np.arange(start, min(start + batch, n_frames))
            light, hit = shade(verts_of(rows), faces, focal, size, scale)
            out.extend(overlay_frames(frames_of(rows, scale), light, hit))
    return write_mp4(path, out, fps)
