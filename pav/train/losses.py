"""Training losses: pure functions of predictions and targets; weights come from LossConfig."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..render.volume import depth_before


@dataclass
class LossConfig:
    lambda_rgb: float = 50.0  # L2 photometric
    lambda_depth: float = 10.0  # L1 rendered depth vs mesh depth on face-region pixels
    lambda_alpha: float = 5.0  # L1 rendered opacity vs the alpha matte (not in the paper; 0 turns it off)
    lambda_distortion: float = 0.0  # mip-NeRF 360's distortion: each ray's weights gathered in one short stretch
    depth_regions: list[str] = field(default_factory=lambda: ["face"])  # head-model regions the depth loss sees


def loss_rgb(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of colours [R, 3]."""
    return ((pred - target) ** 2).mean()


def loss_depth(pred_depth: Tensor, mesh_depth: Tensor, mask: Tensor) -> Tensor:
    """Mean |pred - mesh| [R] over rays where mask [R] holds; 0 when no ray qualifies."""
    weight = mask.to(pred_depth.dtype)
    diff = torch.where(mask, pred_depth - mesh_depth, torch.zeros_like(pred_depth)).abs()
    return (diff * weight).sum() / weight.sum().clamp_min(1.0)


def loss_alpha(opacity: Tensor, alpha: Tensor) -> Tensor:
    """Mean |opacity - alpha| [R]: free space seen by background pixels must stay empty."""
    return (opacity - alpha).abs().mean()


def loss_distortion(weights: Tensor, t: Tensor, deltas: Tensor, ray_idx: Tensor, n_rays: int,
                    span: float) -> Tensor:
    """Mean over rays of sum_ij w_i w_j |t_i - t_j| + 1/3 sum_i w_i^2 delta_i, distances in units of span (the head
    box's diagonal, so a weight does not depend on the head's size): weights, t, deltas [M], ray_idx [M]
    non-decreasing. Low where each ray's weight sits in one short stretch; fog along the ray costs. O(M), by
    running sums within each ray."""
    if len(weights) == 0:
        return weights.sum()
    w = weights.float()
    t, deltas = t.float() / span, deltas.float() / span
    w_before = depth_before(w, ray_idx, n_rays)  # [M] sum_{j<i} w_j, float64
    wt_before = depth_before(w * t, ray_idx, n_rays)  # [M] sum_{j<i} w_j t_j
    pairs = 2.0 * (w.double() * (t.double() * w_before - wt_before)).sum()  # t sorted within a ray: t_i >= t_j
    own = (w.double() ** 2 * deltas.double()).sum() / 3.0
    return ((pairs + own) / n_rays).to(weights.dtype)


def total_loss(cfg: LossConfig, pred_rgb: Tensor, target_rgb: Tensor, pred_depth: Tensor, mesh_depth: Tensor,
               depth_mask: Tensor, opacity: Tensor | None = None, alpha: Tensor | None = None,
               distortion: Tensor | None = None) -> dict[str, Tensor]:
    """Unweighted terms 'rgb', 'depth', 'alpha', 'distortion' and the weighted sum 'total' (sum of lambda_x * x).

    The alpha term needs opacity and alpha [R]; the distortion term its value (`loss_distortion`); without them
    each is left out.
    """
    terms = {"rgb": loss_rgb(pred_rgb, target_rgb), "depth": loss_depth(pred_depth, mesh_depth, depth_mask)}
    total = cfg.lambda_rgb * terms["rgb"] + cfg.lambda_depth * terms["depth"]
    if opacity is not None and alpha is not None:
        terms["alpha"] = loss_alpha(opacity, alpha)
        total = total + cfg.lambda_alpha * terms["alpha"]
    if distortion is not None:
        terms["distortion"] = distortion
        total = total + cfg.lambda_distortion * distortion
    terms["total"] = total
    return terms
