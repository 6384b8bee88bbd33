"""Landmark fitting: robust reprojection, priors and temporal smoothness, over batches of frames."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional as F

from .landmarks import LandmarkProjector
from .params import SequenceParams

GLOBAL, NECK, JAW, LEFT_EYE, RIGHT_EYE = range(5)


@dataclass
class FitWeights:
    """Weights of the fitting terms; the landmark term is in pixels at 256 px image width."""

    landmark: float = 1.0
    huber_px: float = 2.0  # residuals beyond this count linearly (mislabelled detections)
    shape: float = 1e-2
    expr: float = 2e-3
    jaw: float = 1e-1  # jaw rotation about y and z (a jaw only opens about x)
    neck: float = 10.0  # neck and global rotation explain the same landmarks: keep the neck still
    eyes: float = 1e-2
    smooth_rotations: float = 5e1
    smooth_transl: float = 5e3
    smooth_expr: float = 0.5


@dataclass
class FitItem:
    """Frames `index` of one video, with their detections."""

    seq: SequenceParams
    index: Tensor  # [B] long, rows of seq
    observed: Tensor  # [B, M, 2] pixels (NaN -> 0 with confidence 0)
    confidence: Tensor  # [B, M]
    consecutive: bool = False  # neighbouring rows are neighbouring frames (smoothness applies)


@dataclass
class Stage:
    name: str
    steps: int
    joints: tuple[int, ...]  # rotations that move; the others stay as they are
    expr: bool
    shape: bool
    focal: bool
    optimizer: str = "adam"  # or "lbfgs"
    lr: dict[str, float] = field(default_factory=lambda: {
        "rotations": 1e-2, "transl": 2e-3, "expr": 5e-2, "shape": 3e-2, "focal": 5e-3})


def landmark_term(pixels: Tensor, observed: Tensor, confidence: Tensor, width: int, huber_px: float) -> Tensor:
    """Mean confidence-weighted Huber reprojection error, in squared pixels at 256 px width."""
    residual = (pixels - observed) * (256.0 / width)  # [B, M, 2]
    per_point = F.huber_loss(residual, torch.zeros_like(residual), delta=huber_px, reduction="none").sum(-1)
    return (per_point * confidence).sum() / confidence.sum().clamp_min(1.0)


def prior_terms(rotations: Tensor, expr: Tensor, w: FitWeights) -> Tensor:
    """Expression, jaw, neck and eye priors of frames' rotations [B, 5, 3] and expr [B, n_expr]."""
    return (w.expr * expr.square().sum(-1).mean() + w.jaw * rotations[:, JAW, 1:].square().sum(-1).mean()
            + w.neck * rotations[:, NECK].square().sum(-1).mean()
            + w.eyes * rotations[:, LEFT_EYE:].square().sum((-1, -2)).mean())


def smooth_terms(rotations: Tensor, transl: Tensor, expr: Tensor, w: FitWeights) -> Tensor:
    """Squared first differences between neighbouring frames."""
    def diff(x: Tensor) -> Tensor:
        return (x[1:] - x[:-1]).square().flatten(1).sum(-1).mean()

    return w.smooth_rotations * diff(rotations) + w.smooth_transl * diff(transl) + w.smooth_expr * diff(expr)


def _masked(value: Tensor, keep_grad: Tensor) -> Tensor:
    """value with gradient only where keep_grad is 1."""
    return value * keep_grad + value.detach() * (1 - keep_grad)


def fit(projector: LandmarkProjector, shape: Tensor, items: list[FitItem], stage: Stage, w: FitWeights,
        size: tuple[int, int], log=None) -> float:
    """Adam over the stage's free unknowns; returns the final landmark term (px² at 256 px)."""
    seqs = list({id(it.seq): it.seq for it in items}.values())
    groups = [{"params": [s.rotations for s in seqs], "lr": stage.lr["rotations"]},
              {"params": [s.transl for s in seqs], "lr": stage.lr["transl"]}]
    if stage.expr:
        groups.append({"params": [s.expr for s in seqs], "lr": stage.lr["expr"]})
    if stage.focal:
        groups.append({"params": [s.log_focal for s in seqs], "lr": stage.lr["focal"]})
    if stage.shape:
        groups.append({"params": [shape], "lr": stage.lr["shape"]})
    joint_mask = torch.zeros(1, 5, 1, device=shape.device)
    joint_mask[:, list(stage.joints)] = 1.0

    def objective() -> tuple[Tensor, Tensor]:
        """(the loss, the mean landmark term); the latter stays a tensor: no device sync per step."""
        total, lmk_sum = 0.0, 0.0
        for it in items:
            rotations = _masked(it.seq.rotations[it.index], joint_mask)
            transl, expr = it.seq.transl[it.index], it.seq.expr[it.index]
            if not stage.expr:
                expr = expr.detach()
            focal = it.seq.focal.expand(len(it.index))
            pixels = projector.pixels(shape, expr, rotations, transl, focal, size)
            lmk = landmark_term(pixels, it.observed, it.confidence, size[1], w.huber_px)
            loss = w.landmark * lmk + prior_terms(rotations, expr, w)
            if it.consecutive and len(it.index) > 1:
                loss = loss + smooth_terms(rotations, transl, expr, w)
            total = total + loss
            lmk_sum = lmk_sum + lmk.detach()
        if stage.shape:
            total = total + w.shape * shape.square().sum()
        return total, lmk_sum / len(items)

    last = [shape.new_zeros(())]
    if stage.optimizer == "lbfgs":  # quasi-Newton: least squares converge in far fewer passes than Adam
        params = [p for g in groups for p in g["params"]]
        optim = torch.optim.LBFGS(params, lr=1.0, max_iter=stage.steps, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

        def closure() -> Tensor:
            optim.zero_grad(set_to_none=True)
            total, last[0] = objective()
            total.backward()
            return total

        optim.step(closure)
        return float(last[0])
    optim = torch.optim.Adam(groups, betas=(0.9, 0.99))
    # cosine decay to 5% of each group's rate: the last steps settle instead of jittering
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda k: 0.05 + 0.475 * (1 + math.cos(math.pi * k / max(stage.steps, 1))))
    for step in range(stage.steps):
        optim.zero_grad(set_to_none=True)
        total, last[0] = objective()
        total.backward()
        optim.step()
        sched.step()
        if log is not None:
            log(step, float(last[0]))
    return float(last[0])


def initial_pose(projector: LandmarkProjector, shape: Tensor, seq: SequenceParams, observed: Tensor,
                 confidence: Tensor, size: tuple[int, int]) -> None:
    """Frontal head placed so its landmarks' centroid and spread match the detections of each frame."""
    from .camera import CAMERA_DISTANCE

    with torch.no_grad():
        n_expr = seq.expr.shape[1]
        rest = projector.points(shape[None], shape.new_zeros(1, n_expr), shape.new_zeros(1, 5, 3),
                                shape.new_zeros(1, 3))[0]  # [M, 3]
        mean3 = rest.mean(0)
        model_spread = (rest[:, :2] - mean3[:2]).square().sum(-1).mean().sqrt()
        w = confidence / confidence.sum(1, keepdim=True).clamp_min(1e-6)  # [T, M]
        centre = (w[..., None] * observed).sum(1)  # [T, 2]
        spread = (w * (observed - centre[:, None]).square().sum(-1)).sum(1).sqrt().clamp_min(1.0)  # [T]
        focal = seq.focal
        depth = focal * model_spread / spread  # [T] camera distance of the landmarks' centroid
        h, wd = size
        x_cam = (centre[:, 0] - (wd - 1) / 2) * depth / focal
        y_cam = (centre[:, 1] - (h - 1) / 2) * depth / focal
        transl = torch.stack([x_cam - mean3[0], -y_cam - mean3[1], CAMERA_DISTANCE - depth - mean3[2]], -1)
        seq.rotations.zero_()
        seq.expr.zero_()
        seq.transl.copy_(transl)


def interpolate_from_keyframes(seq: SequenceParams, keyframes: Tensor) -> None:
    """Fill every frame's motion by linear interpolation between fitted keyframe rows [K] (sorted)."""
    with torch.no_grad():
        rows = torch.arange(len(seq), dtype=torch.float32, device=keyframes.device)
        right = torch.searchsorted(keyframes.float(), rows).clamp(1, len(keyframes) - 1)
        left = right - 1
        k0, k1 = keyframes[left].float(), keyframes[right].float()
        t = ((rows - k0) / (k1 - k0).clamp_min(1e-6)).clamp(0, 1)
        for name in ("rotations", "transl", "expr"):
            value = getattr(seq, name)
            a, b = value[keyframes[left]], value[keyframes[right]]
            shape = (-1,) + (1,) * (value.ndim - 1)
            value.copy_(a + (b - a) * t.view(shape))
