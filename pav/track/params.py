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

    def __init__(self, n_frames: int, n_expr: int, width: int, focal: float,
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.width = width
        self.log_focal = nn.Parameter(torch.tensor(math.log(focal / width), device=device))
        self.rotations = nn.Parameter(torch.zeros(n_frames, NUM_JOINTS, 3, device=device))  # [T, 5, 3]
        self.transl = nn.Parameter(torch.zeros(n_frames, 3, device=device))  # [T, 3]
        self.expr = nn.Parameter(torch.zeros(n_frames, n_expr, device=device))  # [T, n_expr]

    def __len__(self) -> int:
        return int(self.transl.shape[0])

    @property
    def focal(self) -> Tensor:  # [] pixels
        return self.log_focal.exp() * self.width

    def state(self) -> dict[str, np.ndarray]:
        """The unknowns as CPU numpy arrays, the same on every device (what ROOT/tracking/ saves)."""
        def array(value: Tensor) -> np.ndarray:
            return value.detach().cpu().numpy().copy()

        return {"focal": np.float32(self.focal.item()), "rotations": array(self.rotations),
                "transl": array(self.transl), "expr": array(self.expr)}

    def load(self, state: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            self.log_focal.fill_(math.log(float(state["focal"]) / self.width))
            for name in ("rotations", "transl", "expr"):
                target = getattr(self, name)
                target.copy_(torch.from_numpy(np.asarray(state[name], np.float32)).to(target.device))
