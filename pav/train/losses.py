"""Training losses: pure functions of predictions and targets; weights come from LossConfig."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class LossConfig:
    lambda_rgb: float = 50.0  # L2 photometric
    lambda_depth: float = 10.0  # L1 rendered depth vs mesh depth on face-region pixels
    lambda_alpha: float = 5.0  # L1 rendered opacity vs the alpha matte (not in the paper; 0 turns it off)
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


def total_loss(cfg: LossConfig, pred_rgb: Tensor, target_rgb: Tensor, pred_depth: Tensor, mesh_depth: Tensor,
               depth_mask: Tensor, opacity: Tensor | None = None, alpha: Tensor | None = None) -> dict[str, Tensor]:
    """Unweighted terms 'rgb', 'depth', 'alpha' and the weighted sum 'total' (sum of lambda_x * x).

    The alpha term needs opacity and alpha [R]; without them it is left out.
    """
    terms = {"rgb": loss_rgb(pred_rgb, target_rgb), "depth": loss_depth(pred_depth, mesh_depth, depth_mask)}
    total = cfg.lambda_rgb * terms["rgb"] + cfg.lambda_depth * terms["depth"]
    if opacity is not None and alpha is not None:
        terms["alpha"] = loss_alpha(opacity, alpha)
        total = total + cfg.lambda_alpha * terms["alpha"]
    terms["total"] = total
    return terms
