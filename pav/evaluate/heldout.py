"""`python -m pav.evaluate.heldout ckpt=PATH [out=DIR size=0 fps=25 device=auto]`: one mp4 per appearance of
its held-out frames.

Each video shows the render (left) beside the ground truth (right), both on white, at the collection's size
(or `size` on the longest side). The collection is the one the checkpoint was trained on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING, OmegaConf

from ..common.cli import parse_overrides
from ..common.video import write_mp4
from ..data.datamodule import AvatarDataModule
from ..metrics.pixel import known_only
from ..render.job import open_checkpoint
from .scoring import render_view


@dataclass
class HeldoutConfig:
    ckpt: str = MISSING
    out: str = ""  # default: <run dir>/videos
    size: int = 0
    fps: int = 25
    device: str = "auto"  # auto (CUDA when torch sees a GPU) | cpu | cuda
    chunk: int = 0  # rays per forward pass; 0: the device's default


def render_heldout(cfg: HeldoutConfig) -> list[Path]:
    from ..train.config import typed_config

    renderer, meta, config = open_checkpoint(cfg.ckpt, cfg.device, cfg.chunk)
    typed = typed_config(OmegaConf.create(config))
    dm = AvatarDataModule(typed.data)
    dm.load(typed.loss.depth_regions)
    test_frames = dm.test_frames.to(renderer.field.box_min.device)
    out_dir = Path(cfg.out) if cfg.out else Path(cfg.ckpt).resolve().parent.parent / "videos"
    out_dir.mkdir(parents=True, exist_ok=True)
    views = dm.heldout_views(cfg.size, 0)
    paths = []
    for a, name in enumerate(meta.appearance_names):
        mine = [v for v in views if v.appearance == a]
        start = time.time()
        frames = []
        for view in mine:
            image = render_view(renderer, test_frames, view)
            both = torch.cat([image, known_only(view.rgb, view.valid)], 1)
            frames.append((both.numpy() * 255 + 0.5).astype(np.uint8))
        path = out_dir / f"{name}.mp4"
        write_mp4(path, frames, cfg.fps)
        fps = len(mine) / max(time.time() - start, 1e-9)
        print(f"[pav] {path}: {len(mine)} held-out frames at {mine[0].width}x{mine[0].height}, {fps:.2f} frames/s")
        paths.append(path)
    return paths


def main(argv=None) -> None:
    render_heldout(parse_overrides(HeldoutConfig, argv, prog="python -m pav.evaluate.heldout"))


if __name__ == "__main__":
    main()
