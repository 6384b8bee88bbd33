"""Overlay videos: the fitted mesh, shaded, drawn over the frames so a user can judge the fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from ..common.video import write_mp4
from .camera import to_camera
from .raster import pixel_dirs, rasterize

MAX_SIDE = 512  # overlays are for looking at; larger frames only cost time


def shade(verts: Tensor, faces: Tensor, focal: float, size: tuple[int, int], scale: float) -> tuple[Tensor, Tensor]:
    """Headlight shading [B, h, w] and coverage [B, h, w] of world meshes verts [B, V, 3], on verts' device."""
    h, w = round(size[0] * scale), round(size[1] * scale)
    cam = to_camera(verts).contiguous()  # [B, V, 3]
    # a resized image is the same camera with its focal length scaled (principal point stays central)
    hits = rasterize(cam, faces, focal * scale, (h, w))
    tri = cam[hits.frame[:, None], faces[hits.face_idx]]  # [N, 3, 3]
    normal = F.normalize(torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), dim=-1)
    dirs = F.normalize(pixel_dirs(focal * scale, (h, w), cam.device)[hits.pixel % (h * w)], dim=-1)
    light = cam.new_zeros(cam.shape[0] * h * w)
    light[hits.pixel] = (normal * dirs).sum(-1).abs()
    hit = torch.zeros_like(light)
    hit[hits.pixel] = 1.0
    return light.view(-1, h, w), hit.view(-1, h, w)


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
            out.extend(overlay_frames(frames_of(rows, scale), light.cpu(), hit.cpu()))
    return write_mp4(path, out, fps)
