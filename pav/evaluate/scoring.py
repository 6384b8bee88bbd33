"""Held-out views rendered on white and scored per appearance (PSNR, SSIM)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..data.datamodule import View
from ..deform.frames import FrameSet
from ..metrics import psnr, ssim
from ..metrics.pixel import known_only
from ..render.renderer import AvatarRenderer


@torch.no_grad()
def render_view(renderer: AvatarRenderer, frames: FrameSet, view: View) -> Tensor:
    """The view's image on white [H, W, 3]; its unknown pixels (view.valid False) white."""
    device = renderer.field.box_min.device
    out = renderer.render_image(view.K.to(device), view.c2w.to(device), view.height, view.width, view.frame,
                                frames, torch.ones(3, device=device))
    return known_only(out.rgb.view(view.height, view.width, 3).clamp(0, 1).cpu(), view.valid)


def score_views(renderer: AvatarRenderer, frames: FrameSet, views: list[View], appearance_names: list[str],
                progress: bool = False) -> tuple[dict, list[tuple[View, Tensor]]]:
    """Per-appearance and mean PSNR / SSIM of the views; also returns (view, image) pairs."""
    scores: dict[str, dict[str, list[float]]] = {n: {"psnr": [], "ssim": []} for n in appearance_names}
    images = []
    for view in tqdm(views, desc="held-out views", unit="view", disable=not progress):
        image = render_view(renderer, frames, view)  # [H, W, 3] on the CPU
        name = appearance_names[view.appearance]
        truth = known_only(view.rgb.cpu(), view.valid)
        scores[name]["psnr"].append(psnr(image, truth))
        scores[name]["ssim"].append(ssim(image, truth))
        images.append((view, image))
    per_app = {n: {"psnr": float(np.mean(s["psnr"])), "ssim": float(np.mean(s["ssim"])), "views": len(s["psnr"])}
               for n, s in scores.items() if s["psnr"]}
    mean = {"psnr": float(np.mean([v["psnr"] for v in per_app.values()])),
            "ssim": float(np.mean([v["ssim"] for v in per_app.values()]))}
    return {"per_appearance": per_app, "mean": mean}, images
