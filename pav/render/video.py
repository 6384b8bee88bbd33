"""Renders a checkpoint's appearance (or a labelled grid of all of them) under a drive sequence into an mp4.

Every output frame poses the head model with one drive frame, places one camera (source, front or orbit) and
renders whole images in chunks of rays; for `appearance=all` each tile is the same frame and camera with another
appearance index. Frames stream into the mp4 (and optionally PNGs), so a long video never sits in memory.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from ..common.video import Mp4Writer
from ..deform.frames import FrameSet
from .cameras import video_cameras
from .job import RenderError, RenderVideoConfig, prepare
from .renderer import AvatarRenderer
from .tiles import grid_shape, tile_grid

__all__ = ["RenderError", "RenderResult", "RenderVideoConfig", "render_video"]


@dataclass
class RenderResult:
    path: Path
    frames: int
    height: int
    width: int
    tiles: int  # rendered images per frame (appearances)
    seconds: float  # rendering and writing, after loading

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def with_appearance(frames: FrameSet, appearance: int) -> FrameSet:
    """The same posed frames (sharing meshes and BVH) drawn with another appearance."""
    return dataclasses.replace(frames, appearance=torch.full_like(frames.appearance, appearance))


def render_tile(renderer: AvatarRenderer, frames: FrameSet, frame: int, K: Tensor, c2w: Tensor,
                size: int) -> np.ndarray:
    """One frame on white: K [3, 3], c2w [4, 4] on the renderer's device -> uint8 [size, size, 3]."""
    white = torch.ones(3, device=K.device)
    rgb = renderer.render_image(K, c2w, size, size, frame, frames, white).rgb  # [size * size, 3]
    return (rgb.view(size, size, 3).clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()


def render_video(cfg: RenderVideoConfig) -> RenderResult:
    job = prepare(cfg)
    renderer, frames, drive = job.renderer, job.frames, job.drive
    device = renderer.field.box_min.device
    K, c2w = video_cameras(cfg.camera, drive.camera, frames.head_to_world, job.head_verts, cfg.size)
    K, c2w = K.to(device), c2w.to(device)
    on_device = frames.to(device)
    tiles = [with_appearance(on_device, a) for a in job.appearances]
    labels = [job.names[a] for a in job.appearances] if cfg.appearance == "all" else None
    rows, cols = grid_shape(len(tiles))
    height, width = rows * cfg.size, cols * cfg.size
    out = Path(cfg.out)
    partial = out.with_name(f"{out.stem}.partial{out.suffix}")  # the final name appears only when complete
    frames_dir = Path(cfg.frames_dir) if cfg.frames_dir else None
    if frames_dir is not None:
        frames_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    try:
        with Mp4Writer(partial, height, width, cfg.fps) as writer:
            for t in tqdm(range(len(frames)), desc=f"rendering {cfg.appearance} driven by {drive.name}",
                          unit="frame"):
                image = tile_grid([render_tile(renderer, f, t, K, c2w[t], cfg.size) for f in tiles], labels)
                writer.add(image)
                if frames_dir is not None:
                    Image.fromarray(image).save(frames_dir / f"{t:06d}.png")
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    result = RenderResult(out, len(frames), height, width, len(tiles), time.time() - start)
    print(f"[pav] rendered {result.frames} frames of {height}x{width} in {result.seconds:.1f} s: "
          f"{result.frames_per_second:.2f} frames/s -> {out}")
    return result
