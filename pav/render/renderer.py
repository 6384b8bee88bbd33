"""Renders rays of posed frames: march in head space -> canonicalize -> field -> composite."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..deform.canonical import Canonicalizer, CanonicalSamples
from ..deform.frames import FrameSet
from ..fields.avatar import AvatarField
from .rays import image_pixels, pixel_rays
from .sampler import OccupancyGrid, march
from .volume import RenderOutput, composite, depth_before, optical_depth


@dataclass
class RenderConfig:
    max_samples: int = 1024  # steps across the head box's diagonal; the step length follows from it
    grid_resolution: int = 64
    grid_threshold: float = 0.003  # a cell is occupied where one step of its density is this opaque
    grid_decay: float = 0.9
    grid_update_every: int = 8  # training steps between grid refreshes
    grid_warmup_steps: int = 256  # before this, the grid only marks cells within reach of the meshes
    grid_frames_per_update: int = 4  # random training frames each refresh canonicalizes the cells through
    chunk_rays: int = 8192  # rays per chunk when rendering whole images
    min_transmittance: float = 1e-3  # samples behind this much accumulated opacity skip the full field pass
    segment_samples: int = 64  # samples per ray canonicalized at a time, stopping where the ray is opaque; 0: all


class AvatarRenderer(nn.Module):
    """Owns the field and the occupancy grid; draws rays of frames of a FrameSet. Knows nothing of losses."""

    def __init__(self, field: AvatarField, canonicalizer: Canonicalizer, cfg: RenderConfig,
                 expr_faces: Tensor | None = None) -> None:
        """expr_faces [F] bool: only samples whose nearest triangle is one of these see the frame's expression
        (the rest zeros, INSTA's mouth-only conditioning); None: every sample sees it."""
        super().__init__()
        self.field = field
        self.canonicalizer = canonicalizer
        self.cfg = cfg
        self.grid = OccupancyGrid(field.box_min, field.box_max, cfg.grid_resolution)
        self.step = float((field.box_max - field.box_min).norm()) / cfg.max_samples
        if expr_faces is not None and expr_faces.shape != canonicalizer.faces.shape[:1]:
            raise ValueError(f"expr_faces must be [F] = [{canonicalizer.faces.shape[0]}], "
                             f"got {tuple(expr_faces.shape)}")
        # rebuilt from the checkpoint's meta, so not part of the state dict
        self.register_buffer("expr_faces", None if expr_faces is None else expr_faces.bool().clone(), persistent=False)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.canonicalizer.to(self.field.box_min.device)  # not a module: follow the field's device
        return out

    def render_rays(self, origins: Tensor, dirs: Tensor, frame_idx: Tensor, frames: FrameSet,
                    background: Tensor | None = None, offsets: Tensor | None = None) -> RenderOutput:
        """World rays origins, dirs [R, 3] of frames frame_idx [R] -> RenderOutput; background [R, 3] or None;
        offsets [R] in [0, 1): each ray's place within its steps (None: their middles)."""
        head_origins, head_dirs = frames.world_to_head(origins, dirs, frame_idx)
        samples = march(head_origins, head_dirs, self.grid, self.step, self.cfg.max_samples, offsets)
        sample_frame = frame_idx[samples.ray_idx]  # [M]
        if self.cfg.min_transmittance > 0:
            keep, canon = self.visible_samples(samples, head_dirs, sample_frame, frames, len(origins))
        else:
            canon = self.canonicalizer(samples.points, head_dirs[samples.ray_idx], frames.posed_verts, frames.bvh,
                                       sample_frame)
            keep = torch.nonzero(canon.valid)[:, 0]
            canon = canon.select(keep)
        frame_of = sample_frame[keep]
        sigma, rgb = self.field(canon.points, canon.dirs, canon.uv, frames.appearance[frame_of],
                                self._expr(frames, frame_of, canon.face_idx), frames.pose[frame_of])
        return composite(sigma, rgb, samples.t[keep], samples.deltas[keep], samples.ray_idx[keep], len(origins),
                         background)

    @torch.no_grad()
    def visible_samples(self, samples, head_dirs: Tensor, sample_frame: Tensor, frames: FrameSet,
                        n_rays: int) -> tuple[Tensor, CanonicalSamples]:
        """The samples [K] still seen through the ones before them (transmittance above cfg.min_transmittance;
        a density-only pass, no gradient), and their canonical samples. Samples hidden behind a saturated ray get
        (almost) no weight, so neither the colour network nor the backward pass needs them. Found segment by
        segment along the rays: cfg.segment_samples occupied samples of every ray at a time (0: all in one), and a
        ray that has turned opaque gets no more, so the samples behind a surface cost neither a nearest-triangle
        query nor a density evaluation."""
        ray_idx = samples.ray_idx  # [M] non-decreasing
        counts = torch.bincount(ray_idx, minlength=n_rays)
        rank = torch.arange(len(ray_idx), device=ray_idx.device) - (torch.cumsum(counts, 0) - counts)[ray_idx]
        depth = torch.zeros(n_rays, dtype=torch.float64, device=ray_idx.device)  # optical depth so far per ray
        limit = -math.log(self.cfg.min_transmittance)  # T > min_transmittance <=> depth < limit
        seg = self.cfg.segment_samples or max(1, int(counts.max()) if len(counts) else 1)
        kept: list[tuple[Tensor, CanonicalSamples]] = []
        for lo in range(0, int(counts.max()) if len(counts) else 0, seg):
            sel = torch.nonzero((rank >= lo) & (rank < lo + seg) & (depth[ray_idx] < limit))[:, 0]  # [S] by ray
            if len(sel) == 0:
                break
            rays, frame_of = ray_idx[sel], sample_frame[sel]
            canon = self.canonicalizer(samples.points[sel], head_dirs[rays], frames.posed_verts, frames.bvh, frame_of)
            valid = torch.nonzero(canon.valid)[:, 0]
            tau = torch.zeros(len(sel), dtype=torch.float64, device=sel.device)  # [S]
            if len(valid):
                sigma = self.field.density(canon.points[valid], canon.uv[valid], frames.appearance[frame_of[valid]],
                                           self._expr(frames, frame_of[valid], canon.face_idx[valid]),
                                           frames.pose[frame_of[valid]])[0]
                tau[valid] = optical_depth(sigma.double(), samples.deltas[sel[valid]])
            before = depth[rays] + depth_before(tau, rays, n_rays)  # [S] optical depth in front of each sample
            visible = torch.nonzero(canon.valid & (before < limit))[:, 0]
            kept.append((sel[visible], canon.select(visible)))
            depth.index_add_(0, rays, tau)
        if not kept:  # no sample at all: the canonicalizer's empty answer
            return ray_idx[:0], self.canonicalizer(samples.points[:0], head_dirs[:0], frames.posed_verts, frames.bvh,
                                                   sample_frame[:0])
        keep = torch.cat([k for k, _ in kept])
        order = torch.argsort(keep)  # back to ray order, near to far, as compositing needs
        parts = [c for _, c in kept]
        canon = CanonicalSamples(*(torch.cat([getattr(c, name) for c in parts])[order]
                                   for name in ("points", "dirs", "face_idx", "bary", "uv", "valid")))
        return keep[order], canon

    def _expr(self, frames: FrameSet, frame_of: Tensor, face_idx: Tensor) -> Tensor:
        """The expression each sample sees [K, n_expr]: its frame's, or zeros off expr_faces; face_idx [K] >= 0."""
        expr = frames.expr[frame_of]
        if self.expr_faces is None:
            return expr
        return expr * self.expr_faces[face_idx][:, None].to(expr.dtype)

    @torch.no_grad()
    def head_density(self, head_points: Tensor, frame: int, frames: FrameSet) -> Tensor:
        """Density [K] at head-space points [K, 3] under one frame; 0 where no triangle is in reach."""
        frame_idx = torch.full((len(head_points),), frame, dtype=torch.long, device=head_points.device)
        canon = self.canonicalizer(head_points, None, frames.posed_verts, frames.bvh, frame_idx)
        sigma = torch.zeros(len(head_points), device=head_points.device)
        keep = torch.nonzero(canon.valid)[:, 0]
        if len(keep):
            sigma[keep] = self.field.density(canon.points[keep], canon.uv[keep], frames.appearance[frame_idx[keep]],
                                             self._expr(frames, frame_idx[keep], canon.face_idx[keep]),
                                             frames.pose[frame_idx[keep]])[0].float()
        return sigma

    @torch.no_grad()
    def update_grid(self, frames: FrameSet, step: int, generator: torch.Generator | None = None) -> float:
        """Refresh the occupancy grid through a few random frames; returns the occupied fraction."""
        cfg = self.cfg
        gen_device = generator.device if generator is not None else None
        picks = torch.randint(len(frames), (cfg.grid_frames_per_update,), generator=generator,
                              device=gen_device).tolist()

        def density_fn(cells: Tensor) -> Tensor:  # a fresh random point of each cell per frame: thin shells show
            return torch.stack([self.head_density(self.grid.cell_points(cells, generator=generator), f, frames)
                                for f in picks]).amax(0)

        threshold = cfg.grid_threshold / self.step  # opacity of one step -> density
        return self.grid.update(density_fn, threshold, cfg.grid_decay, reachable_only=step < cfg.grid_warmup_steps)

    @torch.no_grad()
    def image_chunks(self, K: Tensor, c2w: Tensor, height: int, width: int, frame: int, frames: FrameSet,
                     background: Tensor) -> Iterator[RenderOutput]:
        """One frame's image in row-major chunks of cfg.chunk_rays pixels: K [3, 3], c2w [4, 4], background [3].

        A caller that stops iterating stops the work (the viewer drops a render its user has moved away from).
        """
        device = self.field.box_min.device
        pixels = image_pixels(height, width).to(device)
        for i in range(0, len(pixels), self.cfg.chunk_rays):
            px = pixels[i:i + self.cfg.chunk_rays]
            n = len(px)
            origins, dirs = pixel_rays(K[None].expand(n, 3, 3), c2w[None].expand(n, 4, 4), px)
            frame_idx = torch.full((n,), frame, dtype=torch.long, device=device)
            yield self.render_rays(origins, dirs, frame_idx, frames, background.expand(n, 3))

    @torch.no_grad()
    def render_image(self, K: Tensor, c2w: Tensor, height: int, width: int, frame: int, frames: FrameSet,
                     background: Tensor) -> RenderOutput:
        """Whole image of one frame: K [3, 3], c2w [4, 4], background [3] -> rgb [H*W, 3], opacity, depth."""
        outs = list(self.image_chunks(K, c2w, height, width, frame, frames, background))
        return RenderOutput(torch.cat([o.rgb for o in outs]), torch.cat([o.opacity for o in outs]),
                            torch.cat([o.depth for o in outs]), torch.cat([o.weights for o in outs]))

