"""The fitted unknowns: one shape for the person, and per video a focal length and per-frame motion."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ..head.flame import NUM_JOINTS


class SequenceParams(nn.Module):
    """One video's unknowns: log focal (in units of the image width), and per frame the 5 joint
    rotations (axis-angle), translation and expression."""

    def __init__(self, n_frames: int, n_expr: int, width: int, focal: float) -> None:
        super().__init__()
        self.width = width
        self.log_focal = nn.Parameter(torch.tensor(math.log(focal / width)))
        self.rotations = nn.Parameter(torch.zeros(n_frames, NUM_JOINTS, 3))  # [T, 5, 3]
        self.transl = nn.Parameter(torch.zeros(n_frames, 3))  # [T, 3]
        self.expr = nn.Parameter(torch.zeros(n_frames, n_expr))  # [T, n_expr]

    def __len__(self) -> int:
        return int(self.transl.shape[0])

    @property
    def focal(self) -> Tensor:  # [] pixels
        return self.log_focal.exp() * self.width

    def state(self) -> dict[str, np.ndarray]:
        return {"focal": np.float32(self.focal.item()), "rotations": self.rotations.detach().numpy().copy(),
                "transl": self.transl.detach().numpy().copy(), "expr": self.expr.detach().numpy().copy()}

    def load(self, state: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            self.log_focal.fill_(math.log(float(state["focal"]) / self.width))
            for name in ("rotations", "transl", "expr"):
                getattr(self, name).copy_(torch.from_numpy(np.asarray(state[name])))
