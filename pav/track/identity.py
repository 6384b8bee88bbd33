"""The person's one shape, fitted to keyframes of every appearance at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .fit import FitItem, FitWeights, Stage, fit, initial_pose
from .inputs import TrackInput
from .landmarks import LandmarkProjector
from .params import SequenceParams

ALL_JOINTS = (0, 1, 2, 3, 4)


@dataclass
class Observations:
    """A video's detections, restricted to the embedded landmarks."""

    points: Tensor  # [T, M, 2] pixels, 0 where missing
    confidence: Tensor  # [T, M]

    @classmethod
    def of(cls, projector: LandmarkProjector, inp: TrackInput) -> Observations:
        """The detections on the projector's device."""
        points = projector.select(inp.landmarks)
        confidence = projector.select(inp.confidence) * np.isfinite(points).all(-1)
        return cls(torch.from_numpy(np.nan_to_num(points).astype(np.float32)).to(projector.device),
                   torch.from_numpy(confidence.astype(np.float32)).to(projector.device))

    def item(self, seq: SequenceParams, rows: Tensor, consecutive: bool = False) -> FitItem:
        return FitItem(seq, rows, self.points[rows], self.confidence[rows], consecutive)


def keyframe_rows(n_frames: int, count: int, device: torch.device | str = "cpu") -> Tensor:
    """[K] evenly spaced rows, first and last included."""
    rows = torch.linspace(0, n_frames - 1, min(count, n_frames)).round().long()
    return torch.unique(rows).to(device)


def place_rigidly(projector: LandmarkProjector, shape: Tensor, seq: SequenceParams, obs: Observations,
                  rows: Tensor, steps: int, w: FitWeights, size: tuple[int, int]) -> None:
    """Initial pose from the landmarks' centroid and spread, then global rotation, translation and focal."""
    initial_pose(projector, shape.detach(), seq, obs.points, obs.confidence, size)
    fit(projector, shape.detach(), [obs.item(seq, rows)], Stage("rigid", steps, (0,), False, False, True), w, size)


def fit_identity(projector: LandmarkProjector, inputs: list[TrackInput], focals: list[float], n_shape: int,
                 keyframes: int, rigid_steps: int, steps: int, w: FitWeights) -> tuple[np.ndarray, list[float], float]:
    """One shape from keyframes of all `inputs` together; returns (shape [n_shape], focal per input,
    final landmark term)."""
    n_expr, device = projector.flame.n_expr, projector.device
    shape = torch.zeros(n_shape, device=device, requires_grad=True)
    items = []
    for inp, focal in zip(inputs, focals, strict=True):
        obs = Observations.of(projector, inp)
        rows = keyframe_rows(len(inp), keyframes, device)
        seq = SequenceParams(len(inp), n_expr, inp.image_size[1], focal, device)
        place_rigidly(projector, shape, seq, obs, rows, rigid_steps, w, inp.image_size)
        items.append(obs.item(seq, rows))
    size = inputs[0].image_size
    stage = Stage("identity", steps, ALL_JOINTS, expr=True, shape=True, focal=True)
    residual = fit(projector, shape, items, stage, w, size)
    return shape.detach().cpu().numpy().copy(), [it.seq.focal.item() for it in items], residual
