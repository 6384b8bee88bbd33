"""Image metrics on float images in [0, 1]: PSNR and SSIM (Gaussian window 11, sigma 1.5)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images [..., 3] in [0, 1]."""
    mse = float(((pred.clamp(0, 1) - target) ** 2).mean())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).float()


def ssim(pred: Tensor, target: Tensor) -> float:
    """Structural similarity of images [H, W, 3] in [0, 1], averaged over channels (valid windows only)."""
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"ssim: images must share shape [H, W, C], got {tuple(pred.shape)} and {tuple(target.shape)}")
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
