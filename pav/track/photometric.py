"""Photometric refinement: a per-video UV albedo under spherical-harmonics light, compared with the frames.

Geometry that landmarks do not see (cheeks, forehead, the eyes' gaze) is pulled onto the image
by the colour term, while the landmark term keeps the fit anchored. Coarse to fine: half the
image size first, then `photo_size`; frames are optimised in batches of consecutive frames.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..head.flame import FLAME
from .camera import to_camera
from .fit import FitWeights, landmark_term, prior_terms, smooth_terms
from .identity import Observations, keyframe_rows
from .inputs import TrackInput
from .landmarks import LandmarkProjector
from .params import SequenceParams
from .raster import rasterize, vertex_normals

PHOTO_REGIONS = ("face", "lips", "eyes")  # skin the albedo can explain; hair and neck are not the model's
TEXTURE_SIZE = 128
LAMBDA_PHOTO = 30.0  # L1 colour error (0..1) against the landmark term (px² at 256 px)


def sh_basis(normals: Tensor) -> Tensor:
    """The 9 real spherical harmonics up to degree 2 of unit normals [N, 3] -> [N, 9]."""
    x, y, z = normals.unbind(-1)
    one = torch.ones_like(x)
    return torch.stack([0.886 * one, 1.023 * y, 1.023 * z, 1.023 * x, 0.858 * x * y, 0.858 * y * z,
                        0.248 * (3 * z * z - 1), 0.858 * x * z, 0.429 * (x * x - y * y)], -1)


class Appearance(nn.Module):
    """One video's skin: a UV albedo texture and 9 SH light coefficients per colour channel."""

    def __init__(self, size: int = TEXTURE_SIZE) -> None:
        super().__init__()
        self.albedo = nn.Parameter(torch.full((1, 3, size, size), 0.5))
        light = torch.zeros(9, 3)
        light[0] = 1.0 / 0.886  # ambient white: shading 1 everywhere
        self.light = nn.Parameter(light)

    def shade(self, uv: Tensor, normals: Tensor) -> Tensor:
        """Colours [N, 3] of surface points with uv [N, 2] in [0, 1] and camera-space normals [N, 3]."""
        grid = (uv * 2 - 1).view(1, 1, -1, 2)
        albedo = F.grid_sample(self.albedo, grid, align_corners=False, padding_mode="border")[0, :, 0].T  # [N, 3]
        return albedo * (sh_basis(normals) @ self.light)


def skin_faces(flame: FLAME, projector: LandmarkProjector) -> Tensor:
    """[F] bool: the faces the photometric term uses."""
    if flame.face_region is not None:
        wanted = [flame.region_names.index(r) for r in PHOTO_REGIONS if r in flame.region_names]
        return torch.isin(flame.face_region, torch.tensor(wanted, device=flame.face_region.device))
    # no region labels (official FLAME): the faces inside the landmarks' box on the neutral head
    with torch.no_grad():
        rest = flame.v_template[flame.faces].mean(1)  # [F, 3]
        zeros = flame.v_template.new_zeros
        lmk = projector.points(zeros(1, flame.n_shape), zeros(1, flame.n_expr), zeros(1, 5, 3), zeros(1, 3))[0]
        low, high = lmk.min(0).values, lmk.max(0).values
        return ((rest[:, :2] >= low[:2]).all(-1) & (rest[:, :2] <= high[:2]).all(-1) & (rest[:, 2] > low[2]))


class PhotometricTerm:
    """Renders frames of one video with its Appearance and compares them with the images."""

    def __init__(self, flame: FLAME, projector: LandmarkProjector, appearance: Appearance) -> None:
        if flame.vt is None or flame.ft is None:
            raise ValueError(f"{flame.source}: the photometric term needs a uv layout (uv_layout=PATH)")
        self.flame, self.appearance = flame, appearance
        self.skin = skin_faces(flame, projector)  # [F] bool, on the head model's device

    def __call__(self, shape: Tensor, expr: Tensor, rotations: Tensor, transl: Tensor, focal: float,
                 rgb: Tensor, alpha: Tensor) -> Tensor:
        """Mean L1 colour error over skin pixels inside the matte; rgb [B, h, w, 3], alpha [B, h, w], both on
        the head model's device."""
        verts = self.flame(shape=shape, expr=expr, rotations=rotations, transl=transl).verts
        cam = to_camera(verts)  # [B, V, 3]
        size = (rgb.shape[1], rgb.shape[2])
        hits = rasterize(cam, self.flame.faces, focal, size)
        keep = self.skin[hits.face_idx] & (alpha.reshape(-1)[hits.pixel] > 0.5)
        if not bool(keep.any()):
            return cam.new_zeros(())
        pixel, frame, face_idx, bary = hits.pixel[keep], hits.frame[keep], hits.face_idx[keep], hits.bary[keep]
        uv = torch.einsum("nck,nc->nk", self.flame.vt[self.flame.ft[face_idx]], bary)
        normals = torch.einsum("nck,nc->nk", vertex_normals(cam, self.flame.faces)[frame[:, None],
                                                                                    self.flame.faces[face_idx]], bary)
        colour = self.appearance.shade(uv, F.normalize(normals, dim=-1))
        return (colour - rgb.reshape(-1, 3)[pixel]).abs().mean()


def _images(inp: TrackInput, rows: Tensor, size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """RGB [B, h, w, 3] and alpha [B, h, w] of frames `rows`, h = size, on `device`."""
    rgb, alpha = inp.load_images(rows.cpu().numpy(), (size, size * inp.image_size[1] // inp.image_size[0]))
    return torch.from_numpy(rgb).to(device), torch.from_numpy(alpha).to(device)


def refine_photometric(flame: FLAME, projector: LandmarkProjector, inp: TrackInput, seq: SequenceParams,
                       shape: np.ndarray, cfg, w: FitWeights) -> float:
    """Refine seq's motion and expression with the colour term; returns the final mean L1 error."""
    device = projector.device
    shape_t = torch.from_numpy(np.asarray(shape, np.float32)).to(device)  # [n_shape]
    obs = Observations.of(projector, inp)
    appearance = Appearance().to(device)
    term = PhotometricTerm(flame, projector, appearance)
    width = inp.image_size[1]

    def loss_of(rows: Tensor, rgb: Tensor, alpha: Tensor, size: int, motion: bool) -> tuple[Tensor, float]:
        rot, transl, expr = seq.rotations[rows], seq.transl[rows], seq.expr[rows]
        if not motion:
            rot, transl, expr = rot.detach(), transl.detach(), expr.detach()
        focal = seq.focal.item() * size / width
        photo = term(shape_t, expr, rot, transl, focal, rgb, alpha)
        total = LAMBDA_PHOTO * photo
        if motion:
            pixels = projector.pixels(shape_t, expr, rot, transl, seq.focal.detach().expand(len(rows)), inp.image_size)
            total = total + w.landmark * landmark_term(pixels, obs.points[rows], obs.confidence[rows], width,
                                                       w.huber_px) + prior_terms(rot, expr, w)
            if len(rows) > 1:
                total = total + smooth_terms(rot, transl, expr, w)
        return total, float(photo.detach())

    # 1. the albedo and light on keyframes, geometry fixed
    keys = keyframe_rows(len(inp), cfg.photo_batch, device)
    rgb, alpha = _images(inp, keys, cfg.photo_size, device)
    optim = torch.optim.Adam(appearance.parameters(), lr=2e-2)
    for _ in range(max(cfg.photo_steps * 3, 1)):
        optim.zero_grad(set_to_none=True)
        loss_of(keys, rgb, alpha, cfg.photo_size, motion=False)[0].backward()
        optim.step()

    # 2. batches of consecutive frames, coarse to fine; the albedo keeps learning
    last = math.nan
    for size in (max(cfg.photo_size // 2, 16), cfg.photo_size):
        for start in range(0, len(inp), cfg.photo_batch):
            rows = torch.arange(start, min(start + cfg.photo_batch, len(inp)), device=device)
            rgb, alpha = _images(inp, rows, size, device)
            optim = torch.optim.Adam([{"params": [seq.rotations], "lr": 2e-3}, {"params": [seq.transl], "lr": 3e-4},
                                      {"params": [seq.expr], "lr": 1e-2},
                                      {"params": list(appearance.parameters()), "lr": 5e-3}], betas=(0.9, 0.99))
            for _ in range(cfg.photo_steps):
                optim.zero_grad(set_to_none=True)
                total, last = loss_of(rows, rgb, alpha, size, motion=True)
                total.backward()
                optim.step()
    return last
