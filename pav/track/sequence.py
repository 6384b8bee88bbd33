"""One video's motion with the person's shape fixed: keyframes, interpolation, then every frame."""

from __future__ import annotations

import numpy as np
import torch

from .fit import FitWeights, Stage, fit, interpolate_from_keyframes
from .identity import ALL_JOINTS, Observations, keyframe_rows, place_rigidly
from .inputs import TrackInput
from .landmarks import LandmarkProjector
from .params import SequenceParams


def fit_sequence(projector: LandmarkProjector, inp: TrackInput, shape: np.ndarray, focal: float,
                 keyframes: int, rigid_steps: int, steps: int, w: FitWeights) -> tuple[SequenceParams, float]:
    """Landmark fit of every frame of `inp`; returns the parameters and the final landmark term."""
    size, device = inp.image_size, projector.device
    shape_t = torch.from_numpy(np.asarray(shape, dtype=np.float32)).to(device)  # [n_shape]
    obs = Observations.of(projector, inp)
    seq = SequenceParams(len(inp), projector.flame.n_expr, size[1], focal, device)
    every = torch.arange(len(inp), device=device)
    place_rigidly(projector, shape_t, seq, obs, every, rigid_steps, w, size)
    rows = keyframe_rows(len(inp), keyframes, device)
    fit(projector, shape_t, [obs.item(seq, rows)], Stage("keyframes", steps, ALL_JOINTS, True, False, True), w, size)
    interpolate_from_keyframes(seq, rows)
    residual = fit(projector, shape_t, [obs.item(seq, every, consecutive=True)],
                   Stage("sequence", steps, ALL_JOINTS, True, False, True), w, size)
    return seq, residual
