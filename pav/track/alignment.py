"""How well the tracked mesh sits on each real frame: the mesh against the matte, per frame.

A model cannot be sharper than its tracking. Two residuals per training image, on known pixels only:

- `outside`: the share of the pixels the posed mesh covers where the matte says background. The mesh lies inside
  the person (hair covers it, never the reverse), so anything here is the mesh poking past the silhouette: a
  pose, scale or focal-length error.
- `edge_px`: where the mesh's outline should meet the matte's edge (below the eyes, where no hair covers the
  cheeks, jaw and chin), the median distance in pixels (at the image's own size) from the mesh outline to the
  matte's nearest edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import binary_erosion, distance_transform_edt

from ..data.datamodule import AvatarDataModule
from ..render.rays import mesh_hits

MEASURE_SIDE = 256  # images are measured on a grid about this wide


@dataclass
class Alignment:
    outside: np.ndarray  # [N] share of mesh pixels on background, per training image
    edge_px: np.ndarray  # [N] median outline-to-matte-edge distance (NaN where no outline is bare)
    appearance: np.ndarray  # [N] appearance index of each image

    def summary(self, names: list[str]) -> dict[str, dict[str, float]]:
        out = {}
        for a, name in enumerate(names):
            mine = self.appearance == a
            edge = self.edge_px[mine][np.isfinite(self.edge_px[mine])]
            out[name] = {"outside_median": float(np.median(self.outside[mine])),
                         "outside_p95": float(np.quantile(self.outside[mine], 0.95)),
                         "edge_px_median": float(np.median(edge)) if len(edge) else float("nan"),
                         "edge_px_p95": float(np.quantile(edge, 0.95)) if len(edge) else float("nan")}
        return out


@torch.no_grad()
def mesh_alignment(dm: AvatarDataModule, max_images: int = 200) -> Alignment:
    """Residuals of up to max_images training images (evenly spread) of a loaded datamodule."""
    dm._load_images()
    n_img, height, width = dm.alphas.shape
    stride = max(1, max(height, width) // MEASURE_SIDE)
    rows, cols = torch.arange(stride // 2, height, stride), torch.arange(stride // 2, width, stride)
    grid = torch.stack(torch.meshgrid(cols, rows, indexing="xy"), -1).reshape(-1, 2).float()  # [P, 2]
    frames = dm.train_frames
    picks = torch.linspace(0, n_img - 1, min(max_images, n_img)).round().long().unique()
    outside, edge, apps = [], [], []
    for i in picks.tolist():
        f = int(dm.image_frame[i])
        _, face = mesh_hits(frames, dm.K[i], dm.c2w[i], grid, f)
        covered = (face >= 0).reshape(len(rows), len(cols)).numpy()
        person = (dm.alphas[i][rows][:, cols] > 127).numpy()
        known = np.ones_like(person) if dm.valids is None else dm.valids[i][rows][:, cols].numpy()
        apps.append(int(frames.appearance[f]))
        outside.append(float((covered & ~person & known).sum() / max(1, (covered & known).sum())))
        edge.append(_edge_distance(covered, person, known) * stride)
    return Alignment(np.array(outside), np.array(edge), np.array(apps))


def _edge_distance(covered: np.ndarray, person: np.ndarray, known: np.ndarray) -> float:
    """Median distance (measure-grid pixels) from the bare lower outline of the mesh to the matte's edge."""
    outline = covered & ~binary_erosion(covered)
    rows = np.nonzero(covered.any(1))[0]
    if len(rows) == 0:
        return float("nan")
    top, bottom = rows.min(), rows.max()
    lower = np.zeros_like(covered)
    lower[int(top + 0.45 * (bottom - top)): int(top + 0.8 * (bottom - top)) + 1] = True  # cheeks and jaw
    bare = outline & lower & known & binary_erosion(known, iterations=2)
    if not bare.any():
        return float("nan")
    matte_edge = person & ~binary_erosion(person)
    if not matte_edge.any():
        return float("nan")
    return float(np.median(distance_transform_edt(~matte_edge)[bare]))
