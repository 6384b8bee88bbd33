"""Training losses: pure functions of predictions and targets; weights come from LossConfig."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class LossConfig:
    lambda_rgb: float = 50.0  # L2 photometric
    lambda_depth: float = 10.0  # L1 rendered depth vs mesh depth on face-region pixels
    depth_regions: list[str] = field(default_factory=lambda: ["face"])  # head-model regions the depth loss sees


def loss_rgb(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of colours [R, 3]."""
    return ((pred - target) ** 2).mean()


def loss_depth(pred_depth: Tensor, mesh_depth: Tensor, mask: Tensor) -> Tensor:
    """Mean |pred - mesh| [R] over rays where mask [R] holds; 0 when no ray qualifies."""
    weight = mask.to(pred_depth.dtype)
    diff = torch.where(mask, pred_depth - mesh_depth, torch.zeros_like(pred_depth)).abs()
    return (diff * weight).sum() / weight.sum().clamp_min(1.0)


def total_loss(cfg: LossConfig, pred_rgb: Tensor, target_rgb: Tensor, pred_depth: Tensor, mesh_depth: Tensor,
               depth_mask: Tensor) -> dict[str, Tensor]:
    """Unweighted terms 'rgb', 'depth' and the weighted sum 'total' (lambda_x * x)."""
    terms = {"rgb": loss_rgb(pred_rgb, target_rgb), "depth": loss_depth(pred_depth, mesh_depth, depth_mask)}
    terms["total"] = cfg.lambda_rgb * terms["rgb"] + cfg.lambda_depth * terms["depth"]
    return terms
