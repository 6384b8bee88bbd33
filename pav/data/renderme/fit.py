"""Per-frame pose and expression of a part without FLAME fits (the hair parts), from its keypoints.

The identity shape is fixed. A rigid start from the 3D keypoints (Kabsch per frame), then pose and
expression against the 3D keypoints, then refined against the 2D keypoints of the frontal cameras.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor
from torch.nn import functional as F

from ...head.flame import FLAME
from ...track.fit import FitWeights, prior_terms, smooth_terms
from .geometry import project
from .keypoints import KeypointEmbedding


@dataclass
class KeypointFitConfig:
    rigid_steps: int = 100
    steps_3d: int = 300
    steps_2d: int = 200
    huber_mm: float = 3.0  # 3D residuals beyond this count linearly
    huber_px: float = 3.0  # 2D residuals beyond this (pixels at 512 px per crop side) count linearly
    weight_2d: float = 1.0  # a 2D pixel at 512 weighs like a 3D millimetre (about the rig's scale at 1 m)
    expr: float = 1e-3
    jaw: float = 1e-1
    neck: float = 10.0
    smooth_rotations: float = 5.0
    smooth_transl: float = 5e2
    smooth_expr: float = 0.05

    def weights(self) -> FitWeights:
        return FitWeights(expr=self.expr, jaw=self.jaw, neck=self.neck, smooth_rotations=self.smooth_rotations,
                          smooth_transl=self.smooth_transl, smooth_expr=self.smooth_expr)


@dataclass
class KeypointObservations:
    """One part's keypoints over its frames."""

    points3d: np.ndarray  # [T, K3, 3] metres, NaN where missing
    pixels2d: np.ndarray  # [T, C, K2, 2] undistorted pixels of the full image, NaN where missing
    K: np.ndarray  # [C, 3, 3] of the full image
    c2w: np.ndarray  # [C, 4, 4]
    px_scale: float  # pixels at 512 per full-image pixel


@dataclass
class KeypointFit:
    rotations: np.ndarray  # [T, 5, 3] global, neck, jaw, left eye, right eye
    transl: np.ndarray  # [T, 3]
    expr: np.ndarray  # [T, n_expr]
    error_3d_mm: np.ndarray  # [T] mean distance to the 3D keypoints (NaN without any)
    error_2d_px: np.ndarray  # [T] mean 2D reprojection error, pixels at 512 (NaN without any)


class _Points:
    """Embedded points of both embeddings, posed through one small subset of the mesh's vertices."""

    def __init__(self, faces: np.ndarray, embeddings: list[KeypointEmbedding]) -> None:
        self.keep = [np.nonzero(e.used)[0] for e in embeddings]
        tris = [faces[e.face_idx[k]] for e, k in zip(embeddings, self.keep, strict=True)]  # [Ki, 3] each
        self.vertex_ids = torch.from_numpy(np.unique(np.concatenate([t.ravel() for t in tris]))).long()
        ids = self.vertex_ids.numpy()
        self.local = [torch.from_numpy(np.searchsorted(ids, t)).long() for t in tris]
        self.bary = [torch.from_numpy(e.bary[k]).float() for e, k in zip(embeddings, self.keep, strict=True)]

    def __call__(self, verts: Tensor) -> list[Tensor]:  # verts [T, n, 3] of vertex_ids -> [T, Ki, 3] each
        return [(verts[:, loc] * bary[None, :, :, None]).sum(-2) for loc, bary in zip(self.local, self.bary,
                                                                                      strict=True)]


def _huber(residual: Tensor, delta: float, valid: Tensor) -> Tensor:
    """Mean Huber of residual vectors [..., D] over the valid [...] entries."""
    per_point = F.huber_loss(residual, torch.zeros_like(residual), delta=delta, reduction="none").sum(-1)
    return (per_point * valid).sum() / valid.sum().clamp_min(1.0)


def kabsch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R [3, 3], t [3] minimising |R src + t - dst| over points [N, 3]."""
    cs, cd = src.mean(0), dst.mean(0)
    u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    R = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return R, cd - R @ cs


def rigid_start(neutral_points: np.ndarray, observed: np.ndarray, root_joint: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Global rotation [T, 3] and translation [T, 3] aligning the neutral head's keypoints [K, 3] to observed
    [T, K, 3] (NaN where missing). FLAME turns about its root joint [3]; frames without 3 keypoints copy the
    nearest frame that has them."""
    T = observed.shape[0]
    rot, transl = np.zeros((T, 3)), np.zeros((T, 3))
    good = []
    for t in range(T):
        valid = np.isfinite(observed[t]).all(-1)
        if valid.sum() < 3:
            continue
        R, shift = kabsch(neutral_points[valid], observed[t, valid])
        rot[t] = Rotation.from_matrix(R).as_rotvec()
        transl[t] = shift - root_joint + R @ root_joint
        good.append(t)
    if not good:
        raise ValueError("no frame has 3 or more 3D keypoints: cannot place the head")
    for t in range(T):
        if t not in good:
            nearest = min(good, key=lambda g: abs(g - t))
            rot[t], transl[t] = rot[nearest], transl[nearest]
    return rot, transl


def fit_keypoints(flame: FLAME, shape: np.ndarray, emb3d: KeypointEmbedding, emb2d: KeypointEmbedding | None,
                  obs: KeypointObservations, cfg: KeypointFitConfig, log=None) -> KeypointFit:
    """Pose and expression of every frame of one part."""
    embeddings = [emb3d] + ([emb2d] if emb2d is not None and emb2d.used.any() else [])
    points = _Points(flame.faces.numpy(), embeddings)
    shape_t = torch.from_numpy(np.asarray(shape, dtype=np.float32))[None]
    obs3d = torch.from_numpy(obs.points3d[:, points.keep[0]]).float()  # [T, K3, 3]
    valid3d = torch.isfinite(obs3d).all(-1).float()
    obs3d = torch.nan_to_num(obs3d)
    use_2d = len(embeddings) == 2 and np.isfinite(obs.pixels2d).any()
    if use_2d:
        obs2d = torch.from_numpy(obs.pixels2d[:, :, points.keep[1]]).float()  # [T, C, K2, 2]
        valid2d = torch.isfinite(obs2d).all(-1).float()
        obs2d = torch.nan_to_num(obs2d)
        K = torch.from_numpy(obs.K).float()
        w2c = torch.linalg.inv(torch.from_numpy(obs.c2w).double()).float()
    T = obs3d.shape[0]

    with torch.no_grad():
        rest = flame(shape=shape_t, vertex_ids=points.vertex_ids)
        neutral_points = points(rest.verts)[0][0].double().numpy()
        root = rest.joints[0, 0].double().numpy()
    rot0, transl0 = rigid_start(neutral_points, obs.points3d[:, points.keep[0]], root)
    glob = torch.tensor(rot0, dtype=torch.float32, requires_grad=True)
    transl = torch.tensor(transl0, dtype=torch.float32, requires_grad=True)
    neck = torch.zeros(T, 3, requires_grad=True)
    jaw = torch.zeros(T, 3, requires_grad=True)
    expr = torch.zeros(T, flame.n_expr, requires_grad=True)
    eyes = torch.zeros(T, 2, 3)
    weights = cfg.weights()

    def evaluate(with_2d: bool) -> tuple[Tensor, Tensor, Tensor]:
        rotations = torch.cat([glob[:, None], neck[:, None], jaw[:, None], eyes], 1)  # [T, 5, 3]
        verts = flame(shape=shape_t, expr=expr, rotations=rotations, transl=transl,
                      vertex_ids=points.vertex_ids).verts
        posed = points(verts)
        err3d = (posed[0] - obs3d) * 1e3  # mm
        loss = _huber(err3d, cfg.huber_mm, valid3d) + prior_terms(rotations, expr, weights)
        if T > 1:
            loss = loss + smooth_terms(rotations, transl, expr, weights)
        err2d = torch.zeros(())
        if with_2d:
            err2d = (project(posed[1], K, w2c) - obs2d) * obs.px_scale  # [T, C, K2, 2]
            loss = loss + cfg.weight_2d * _huber(err2d, cfg.huber_px, valid2d)
        return loss, err3d, err2d

    stages = [([glob, transl], cfg.rigid_steps, False), ([glob, transl, neck, jaw, expr], cfg.steps_3d, False),
              ([glob, transl, neck, jaw, expr], cfg.steps_2d if use_2d else 0, True)]
    lrs = {id(glob): 1e-2, id(transl): 2e-3, id(neck): 1e-2, id(jaw): 1e-2, id(expr): 5e-2}
    for params, steps, with_2d in stages:
        if steps <= 0:
            continue
        optim = torch.optim.Adam([{"params": [p], "lr": lrs[id(p)]} for p in params], betas=(0.9, 0.99))
        sched = torch.optim.lr_scheduler.LambdaLR(  # cosine to 5%: the last steps settle
            optim, lambda k, n=steps: 0.05 + 0.475 * (1 + math.cos(math.pi * k / n)))
        for step in range(steps):
            optim.zero_grad(set_to_none=True)
            loss, _, _ = evaluate(with_2d)
            loss.backward()
            optim.step()
            sched.step()
            if log is not None:
                log(step, steps, float(loss))

    with torch.no_grad():
        _, err3d, err2d = evaluate(use_2d)
        dist3d = err3d.norm(dim=-1)
        e3 = (dist3d * valid3d).sum(1) / valid3d.sum(1)
        e3 = torch.where(valid3d.sum(1) > 0, e3, torch.full_like(e3, float("nan")))
        if use_2d:
            d2 = err2d.norm(dim=-1)
            e2 = (d2 * valid2d).sum((1, 2)) / valid2d.sum((1, 2))
            e2 = torch.where(valid2d.sum((1, 2)) > 0, e2, torch.full_like(e2, float("nan")))
        else:
            e2 = torch.full((T,), float("nan"))
        rotations = torch.cat([glob[:, None], neck[:, None], jaw[:, None], eyes], 1)
    return KeypointFit(rotations.numpy(), transl.detach().numpy(), expr.detach().numpy(), e3.numpy(), e2.numpy())
