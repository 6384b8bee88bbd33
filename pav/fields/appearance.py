"""Per-appearance conditioning: latent neural textures in UV space (PAV) or one code per appearance (GLO)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LatentTextures(nn.Module):
    """One learnable C x H x W texture per appearance, bilinearly sampled at uv.

    Stored channels-last as [A, H, W, C] so one lookup gathers 4 contiguous rows; the gradient of a sample of
    appearance j lands only in texture j.
    """

    def __init__(self, n_appearances: int, channels: int = 16, size: int = 512, init_std: float = 0.1) -> None:
        super().__init__()
        self.n_appearances, self.channels, self.size = n_appearances, channels, size
        self.textures = nn.Parameter(torch.randn(n_appearances, size, size, channels) * init_std)

    @property
    def out_dims(self) -> int:
        return self.channels

    def forward(self, uv: Tensor, appearance: Tensor) -> Tensor:
        """uv [N, 2] in [0, 1] (v up), appearance [N] -> features [N, C]."""
        size = self.size
        # texel centres at (i + 0.5) / size; v = 0 is the bottom row
        x = uv[:, 0].clamp(0, 1) * size - 0.5
        y = (1.0 - uv[:, 1].clamp(0, 1)) * size - 0.5
        x0f, y0f = x.floor(), y.floor()
        fx, fy = (x - x0f)[:, None], (y - y0f)[:, None]
        x0 = x0f.long().clamp(0, size - 1)
        y0 = y0f.long().clamp(0, size - 1)
        x1 = (x0f.long() + 1).clamp(0, size - 1)
        y1 = (y0f.long() + 1).clamp(0, size - 1)
        base = appearance.long() * (size * size)
        texels = torch.stack([y0 * size + x0, y0 * size + x1, y1 * size + x0, y1 * size + x1], -1) + base[:, None]
        weights = torch.cat([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], -1)  # [N, 4]
        weights = weights.to(self.textures.dtype)  # uv may come in half precision under autocast
        # one weighted gather: its backward fills one dense gradient, not one per corner
        return F.embedding_bag(texels, self.textures.view(-1, self.channels), per_sample_weights=weights,
                               mode="sum")


class AppearanceCodes(nn.Module):
    """GLO: one learnable vector per appearance, the same at every point."""

    def __init__(self, n_appearances: int, channels: int = 16, init_std: float = 0.1) -> None:
        super().__init__()
        self.channels = channels
        self.codes = nn.Parameter(torch.randn(n_appearances, channels) * init_std)

    @property
    def out_dims(self) -> int:
        return self.channels

    def forward(self, uv: Tensor, appearance: Tensor) -> Tensor:
        """uv [N, 2] (unused), appearance [N] -> [N, C]."""
        return self.codes[appearance.long()]
