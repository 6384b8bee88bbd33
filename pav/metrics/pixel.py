"""Pixel metrics on float images in [0, 1]: PSNR and SSIM (Gaussian window 11, sigma 1.5)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def check_pair(pred: Tensor, target: Tensor, metric: str) -> None:
    """Refuses a prediction and a truth of different shapes (or not [..., H, W, 3]) with both shapes named."""
    if pred.shape != target.shape:
        raise ValueError(f"{metric}: prediction and truth differ in size: prediction {tuple(pred.shape)}, "
                         f"truth {tuple(target.shape)} (expected the same [H, W, 3])")
    if pred.dim() < 3 or pred.shape[-1] != 3:
        raise ValueError(f"{metric}: images must be [H, W, 3] (or [N, H, W, 3]), got {tuple(pred.shape)}")


def on_white(rgb: Tensor, alpha: Tensor) -> Tensor:
    """An image [..., H, W, 3] composited over white with its mask [..., H, W] (both in [0, 1])."""
    return rgb * alpha[..., None] + (1.0 - alpha[..., None])


def known_only(image: Tensor, valid: Tensor | None) -> Tensor:
    """An image [H, W, 3] with its unknown pixels (valid [H, W] False) white, as the background is; prediction
    and truth both go through it, so a pixel outside the source frame scores no error and teaches nothing."""
    if valid is None:
        return image
    return torch.where(valid[..., None].to(image.device), image, torch.ones_like(image))


def psnr(pred: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images [..., H, W, 3] in [0, 1] (the prediction is clamped)."""
    check_pair(pred, target, "psnr")
    mse = float(((pred.clamp(0, 1) - target) ** 2).mean())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def squared_error(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel squared error [H, W] of images [H, W, 3] in [0, 1], averaged over channels (prediction clamped)."""
    check_pair(pred, target, "squared_error")
    return ((pred.clamp(0, 1) - target) ** 2).mean(-1)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).float()


def ssim(pred: Tensor, target: Tensor) -> float:
    """Structural similarity of images [H, W, 3] in [0, 1], averaged over channels (valid windows only)."""
    check_pair(pred, target, "ssim")
    if pred.dim() != 3:
        raise ValueError(f"ssim: images must be [H, W, 3], got {tuple(pred.shape)}")
    if min(pred.shape[:2]) < 11:
        raise ValueError(f"ssim: images of {pred.shape[1]}x{pred.shape[0]} are smaller than the 11-pixel window")
    g = _gaussian_window().to(pred.device)
    c = pred.shape[-1]
    x = pred.clamp(0, 1).permute(2, 0, 1)[None].double()  # [1, C, H, W]
    y = target.permute(2, 0, 1)[None].double()
    kx = g.double().view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = g.double().view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())
