"""How far the person reaches beyond the head model, measured in the training mattes.

Hair (a bun, shoulder-length hair) can sit much farther from the FLAME surface than a fixed reach allows; what
is cut off there is never rendered. Each image says how far its matte reaches past the mesh: the distance, in
the image, from every known foreground pixel to the nearest pixel the posed mesh covers, turned into metres at
the mesh's depth. That is a lower bound on the hair's 3D distance from the mesh (a point that far from the
mesh's outline is at least that far from the mesh), so it never invents reach a monocular hull could not
settle. Unknown pixels (outside the source frame, the torso) say nothing.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from torch import Tensor

from ..deform.frames import FrameSet
from ..render.rays import mesh_hits

MEASURE_SIDE = 128  # images are measured on a grid about this wide: reach is metres, not pixels
PIXEL_QUANTILE = 0.99  # of an image's foreground distances: a few stray matte pixels do not count
IMAGE_QUANTILE = 0.9  # of an appearance's images: a bad matte in one frame does not count


@torch.no_grad()
def matte_reach(alphas: Tensor, valids: Tensor | None, K: Tensor, c2w: Tensor, image_frame: Tensor,
                frames: FrameSet, max_images: int = 48) -> Tensor:
    """Per appearance, metres the mattes reach past the posed mesh [A] (0 where an appearance shows none).

    alphas [N, H, W] uint8, valids [N, H, W] bool or None, K [N, 3, 3], c2w [N, 4, 4], image_frame [N] into
    frames; at most max_images images of each appearance, evenly spread, are measured.
    """
    n_img, height, width = alphas.shape
    stride = max(1, max(height, width) // MEASURE_SIDE)
    rows = torch.arange(stride // 2, height, stride)
    cols = torch.arange(stride // 2, width, stride)
    grid = torch.stack(torch.meshgrid(cols, rows, indexing="xy"), -1).reshape(-1, 2).float()  # [P, 2] (x, y)
    apps = frames.appearance[image_frame]  # [N]
    n_apps = int(frames.appearance.max()) + 1 if len(frames.appearance) else 0
    reach = torch.zeros(n_apps)
    for a in range(n_apps):
        mine = torch.nonzero(apps == a)[:, 0]
        if len(mine) == 0:
            continue
        picks = mine[torch.linspace(0, len(mine) - 1, min(max_images, len(mine))).round().long()]
        per_image = [_image_reach(alphas[i], None if valids is None else valids[i], K[i], c2w[i],
                                  int(image_frame[i]), frames, grid, rows, cols, stride) for i in picks.tolist()]
        reach[a] = float(np.quantile(per_image, IMAGE_QUANTILE))
    return reach


def _image_reach(alpha: Tensor, valid: Tensor | None, K: Tensor, c2w: Tensor, frame: int, frames: FrameSet,
                 grid: Tensor, rows: Tensor, cols: Tensor, stride: int) -> float:
    t, face = mesh_hits(frames, K, c2w, grid, frame)
    covered = (face >= 0).reshape(len(rows), len(cols)).numpy()  # [h, w] the posed mesh's pixels
    if not covered.any():
        return 0.0
    person = (alpha[rows][:, cols] > 127).numpy()
    if valid is not None:
        person &= valid[rows][:, cols].numpy()
    if not person.any():
        return 0.0
    pixels = distance_transform_edt(~covered)[person] * stride  # [M] full-image pixels past the mesh's outline
    depth = float(t[face >= 0].median())  # metres along the ray to the head
    metres = np.quantile(pixels, PIXEL_QUANTILE) * depth / float(K[0, 0])
    return float(metres)
