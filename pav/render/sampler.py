"""Fixed-step samples inside the head box, culled by an occupancy grid in head space."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from scipy.ndimage import distance_transform_edt
from torch import Tensor, nn

from .rays import ray_box


class OccupancyGrid(nn.Module):
    """A res^3 grid over the head box holding an EMA of the density at its cells and an occupancy bit.

    The bit culls samples before they are canonicalized. Until the first update every cell is occupied.
    """

    def __init__(self, box_min: Tensor, box_max: Tensor, resolution: int = 64) -> None:
        super().__init__()
        self.resolution = int(resolution)
        n = self.resolution ** 3
        self.register_buffer("box_min", box_min.float().clone())  # [3]
        self.register_buffer("box_max", box_max.float().clone())  # [3]
        self.register_buffer("density", torch.zeros(n))  # [res^3] EMA of the max density seen in the cell
        self.register_buffer("occupied", torch.ones(n, dtype=torch.bool))  # [res^3]
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("hull", torch.ones(n, dtype=torch.bool))  # [res^3] False: background in every view

    @torch.no_grad()
    def carve(self, head_to_world: Tensor, K: Tensor, c2w: Tensor, alphas: Tensor, slack: Tensor,
              group: Tensor) -> float:
        """Clears the cells outside the masks' visual hull of every appearance, for good.

        head_to_world [N, 4, 4] of each image's frame, K [N, 3, 3], c2w [N, 4, 4], alphas [N, H, W] (uint8),
        slack [N] metres: how far that frame's mesh strays from the canonical one (jaw, neck), so a cell empty
        in one frame but reached in another is kept; group [N]: the image's appearance. A cell stays when, for
        some appearance, no view of it sees the cell as background (a bald appearance must not carve another's
        hair). Masks grow by the cell's footprint plus the slack. Returns the fraction of cells kept.
        """
        n_img, height, width = alphas.shape
        cells = torch.arange(self.resolution ** 3, device=self.box_min.device)
        centres = self.cell_points(cells, jitter=False).double()  # [C, 3]
        half_diag = float((self.box_max - self.box_min).norm()) / self.resolution / 2
        groups = group.tolist()
        keep = {g: torch.ones(len(cells), dtype=torch.bool, device=centres.device) for g in set(groups)}
        for i in range(n_img):
            world_to_cam = torch.linalg.inv(c2w[i].double()) @ head_to_world[i].double()  # [4, 4]
            cam = centres @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]  # [C, 3]
            k = K[i].double()
            depth = cam[:, 2].clamp_min(1e-3)
            col = k[0, 0] * cam[:, 0] / depth + k[0, 2]
            row = k[1, 1] * cam[:, 1] / depth + k[1, 2]
            seen = (col > -0.5) & (col < width - 0.5) & (row > -0.5) & (row < height - 0.5) & (cam[:, 2] > 0)
            # pixels to the nearest foreground pixel, against the cell's footprint plus the slack
            to_fg = torch.from_numpy(distance_transform_edt(alphas[i].cpu().numpy() <= 5)).to(centres)
            reach = k[0, 0] * (half_diag + float(slack[i])) / depth + 1.0
            fg = to_fg[row.round().long().clamp(0, height - 1), col.round().long().clamp(0, width - 1)] <= reach
            keep[groups[i]] &= fg | ~seen  # out of view: this image says nothing
        self.hull.copy_(torch.stack(list(keep.values())).any(0))
        self.occupied &= self.hull
        return float(self.hull.float().mean())

    def cell_index(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """points [M, 3] -> flat cell index [M] (clamped) and whether the point is inside the box [M]."""
        unit = (points - self.box_min) / (self.box_max - self.box_min)
        inside = ((unit >= 0) & (unit < 1)).all(-1)
        ijk = (unit * self.resolution).long().clamp(0, self.resolution - 1)
        return (ijk[:, 0] * self.resolution + ijk[:, 1]) * self.resolution + ijk[:, 2], inside

    def is_occupied(self, points: Tensor) -> Tensor:
        """points [M, 3] -> bool [M]; outside the box is empty."""
        idx, inside = self.cell_index(points)
        return self.occupied[idx] & inside

    def cell_points(self, cells: Tensor, jitter: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """A point in each of the flat cells [K] -> [K, 3] (uniform inside the cell, or its centre)."""
        r = self.resolution
        ijk = torch.stack([cells // (r * r), (cells // r) % r, cells % r], -1).float()
        if jitter:
            offset = torch.rand(ijk.shape, generator=generator,
                                device=generator.device if generator is not None else ijk.device).to(ijk)
        else:
            offset = torch.full_like(ijk, 0.5)
        return self.box_min + (ijk + offset) / r * (self.box_max - self.box_min)

    @torch.no_grad()
    def update(self, density_fn: Callable[[Tensor], Tensor], threshold: float, decay: float = 0.95,
               reachable_only: bool = False, chunk: int = 1 << 18) -> float:
        """Refresh the grid from density_fn(cells [K]) -> sigma [K], the density somewhere in each cell (0 where
        out of reach; see cell_points); only the cells inside the hull are asked.

        reachable_only: mark every cell with any density (warm-up, before the field has learned anything).
        Returns the occupied fraction (a 0-dim tensor: reading it is the caller's choice of a device sync).
        """
        cells = torch.nonzero(self.hull)[:, 0]  # a cell outside the hull is never occupied: no need to look
        fresh = torch.zeros_like(self.density)
        if len(cells):
            fresh[cells] = torch.cat([density_fn(cells[i:i + chunk]) for i in range(0, len(cells), chunk)])
        self.density.copy_(torch.maximum(self.density * decay, fresh))
        if reachable_only:
            self.occupied.copy_((self.density > 0) & self.hull)
        else:  # the mean keeps a young field's faint surfaces from being culled all at once
            reached = self.density > 0
            mean = (self.density * reached).sum() / reached.sum().clamp_min(1)  # 0 when nothing is reached
            self.occupied.copy_((self.density > mean.clamp(max=threshold)) & self.hull)
        self.n_updates += 1
        return self.occupied.float().mean()


@dataclass
class RaySamples:
    """Packed samples, sorted by ray."""

    points: Tensor  # [M, 3] head space
    t: Tensor  # [M] distance along the ray
    deltas: Tensor  # [M] step length
    ray_idx: Tensor  # [M] int64


@torch.no_grad()
def march(origins: Tensor, dirs: Tensor, grid: OccupancyGrid, step: float, max_samples: int,
          offsets: Tensor | None = None) -> RaySamples:
    """Fixed steps of length `step` from where each ray [R, 3] enters the box, kept where the grid is occupied.

    offsets [R] in [0, 1): where in its steps each ray samples (training draws them with its batch, so a step's
    samples follow from its batch alone); None: the middle of each step.
    No ray is longer than the box's diagonal, max_samples steps: on a GPU the sample grid is that wide, which saves
    reading the longest ray back (a device sync); on a CPU, where that read is free, it is as wide as that ray.
    """
    device = origins.device
    near, far = ray_box(origins, dirs, grid.box_min, grid.box_max)
    n_steps = ((far - near) / step).ceil().clamp(0, max_samples).long()  # [R]
    hit = torch.nonzero(n_steps > 0)[:, 0]
    if len(hit) == 0:
        empty = origins.new_zeros(0)
        return RaySamples(origins.new_zeros(0, 3), empty, empty, torch.zeros(0, dtype=torch.long, device=device))
    width = max_samples if origins.is_cuda else int(n_steps[hit].max())
    offset = offsets[hit, None] if offsets is not None else torch.full((len(hit), 1), 0.5, device=device)
    steps = torch.arange(width, device=device)
    t = near[hit, None] + (steps[None] + offset) * step  # [H, S]
    points = origins[hit, None] + t[:, :, None] * dirs[hit, None]  # [H, S, 3]
    keep = steps[None] < n_steps[hit, None]
    keep &= grid.is_occupied(points.reshape(-1, 3)).view_as(keep)
    rows, cols = torch.nonzero(keep, as_tuple=True)
    return RaySamples(points[rows, cols], t[rows, cols], torch.full((len(rows),), step, device=device), hit[rows])
