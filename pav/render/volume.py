"""Volume rendering of packed samples (sorted by ray)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class RenderOutput:
    rgb: Tensor  # [R, 3] composited over the background when one is given
    opacity: Tensor  # [R]
    depth: Tensor  # [R] expected ray distance, sum of w * t (0 where nothing was hit)
    weights: Tensor  # [M]
    sample_t: Tensor | None = None  # [M] each weight's distance along its ray (training renders only)
    sample_deltas: Tensor | None = None  # [M] its step length
    sample_ray: Tensor | None = None  # [M] its ray, non-decreasing


# A sample this optically deep is opaque to float precision (exp(-30) ~ 1e-13). Capping each sample there keeps the
# running sum over every ray of a batch small: one sample of density 1e20 would otherwise make that float64 sum lose
# the optical depth of every later ray (wrong occlusion, opacity above 1).
TAU_MAX = 30.0


def optical_depth(sigma: Tensor, deltas: Tensor) -> Tensor:
    """tau = sigma * delta per sample, capped at TAU_MAX: sigma [M], deltas [M] -> [M] (sigma's float dtype)."""
    return (sigma * deltas.to(sigma.dtype)).clamp(max=TAU_MAX)


def depth_before(tau: Tensor, ray_idx: Tensor, n_rays: int) -> Tensor:
    """sum_{j<i} tau_j within each ray, in float64: tau [M] optical depths, ray_idx [M] non-decreasing -> [M]."""
    if len(tau) == 0:
        return tau.double()
    # cumulative optical depth in float64: one running sum over all rays loses precision in float32
    total = torch.cumsum(tau.double(), 0)
    excl = total - tau.double()
    counts = torch.bincount(ray_idx, minlength=n_rays)
    starts = (torch.cumsum(counts, 0) - counts).clamp_max(len(tau) - 1)  # [R] first sample of each ray
    return excl - excl[starts][ray_idx]


def transmittance(tau: Tensor, ray_idx: Tensor, n_rays: int) -> Tensor:
    """T_i = exp(-sum_{j<i} tau_j) within each ray: tau [M] optical depths, ray_idx [M] non-decreasing -> [M]."""
    return torch.exp(-depth_before(tau, ray_idx, n_rays)).to(tau.dtype)


def composite(sigma: Tensor, rgb: Tensor, t: Tensor, deltas: Tensor, ray_idx: Tensor, n_rays: int,
              background: Tensor | None = None) -> RenderOutput:
    """sigma [M], rgb [M, 3], t [M], deltas [M], ray_idx [M] (non-decreasing) -> per-ray RenderOutput.

    w_i = T_i (1 - exp(-sigma_i delta_i)) with T_i = exp(-sum_{j<i} sigma_j delta_j) within each ray.
    Accumulates in float32 whatever the fields' dtype: under mixed precision their outputs are fp16/bf16, and
    index_add needs one dtype (sums of thousands of samples in half precision would lose the colour anyway).
    """
    sigma, rgb = sigma.float(), rgb.float()
    tau = optical_depth(sigma, deltas)  # [M]
    trans = transmittance(tau, ray_idx, n_rays)
    weights = trans * (1.0 - torch.exp(-tau))  # [M]
    out_rgb = torch.zeros(n_rays, 3, dtype=rgb.dtype, device=rgb.device).index_add(0, ray_idx, weights[:, None] * rgb)
    opacity = torch.zeros(n_rays, dtype=sigma.dtype, device=sigma.device).index_add(0, ray_idx, weights)
    depth = torch.zeros(n_rays, dtype=sigma.dtype, device=sigma.device).index_add(0, ray_idx, weights * t)
    if background is not None:
        out_rgb = out_rgb + (1.0 - opacity[:, None]) * background
    return RenderOutput(out_rgb, opacity, depth, weights, t, deltas, ray_idx)
