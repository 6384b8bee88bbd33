"""Where the error lies: each scored view split into the face and the rest, scored apart.

The face is what pose and expression drive: the pixels whose ray first meets a face-region triangle of the
view's tracked mesh (the region the depth loss uses: FLAME's region file, the model's labels or the landmarks'
face). The rest of the person is hair, ears, neck and the silhouette (the truth's matte outside the face, grown
by a few pixels so that a halo drawn beside it counts); on real clips hair moves on its own, which FLAME cannot
say, so a whole-image PSNR mixes two different questions. Background far from the person is in neither.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..metrics.pixel import squared_error
from ..render.rays import image_pixels, mesh_hits

if TYPE_CHECKING:  # the table is read by report code that needs no data module
    from ..data.datamodule import View
    from ..deform.frames import FrameSet


@torch.no_grad()
def face_pixels(frames: FrameSet, view: View, face_faces: Tensor) -> Tensor:
    """[H, W] bool: the view's pixels whose first mesh hit is a face-region triangle (face_faces [F] bool)."""
    if face_faces.dim() != 1 or face_faces.dtype != torch.bool or len(face_faces) != frames.bvh.n_faces:
        raise ValueError(f"face_faces must be a [F] bool tensor with F = {frames.bvh.n_faces} (the mesh's faces), "
                         f"got {face_faces.dtype} {tuple(face_faces.shape)}")
    device = frames.posed_verts.device
    _, face = mesh_hits(frames, view.K.to(device), view.c2w.to(device),
                        image_pixels(view.height, view.width).to(device), view.frame)  # [P] first triangle, -1: none
    mine = (face >= 0) & face_faces.to(device)[face.clamp_min(0)]
    mask = mine.view(view.height, view.width).cpu()
    return mask if view.valid is None else mask & view.valid.cpu()


def person_pixels(alpha: Tensor, valid: Tensor | None, grow: int) -> Tensor:
    """[H, W] bool: known pixels within `grow` pixels of the truth's matte (alpha [H, W] in [0, 1])."""
    person = (alpha > 0.01).float()[None, None]
    if grow > 0:
        person = F.max_pool2d(person, 2 * grow + 1, stride=1, padding=grow)
    mask = person[0, 0] > 0
    return mask if valid is None else mask & valid


def _psnr(sum_sq: float, count: int) -> float | None:
    """PSNR of a region from its summed squared error and pixel count; None for an empty region."""
    if count == 0:
        return None
    mse = sum_sq / count
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


Region = tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]  # prediction, truth, face, alpha, valid


def region_scores(rows: dict[str, list[Region]]) -> dict:
    """rows: group -> [(prediction [H, W, 3], truth [H, W, 3], face [H, W] bool, truth's alpha [H, W], valid [H, W]
    bool or None)].

    -> {"per_appearance": {group: row}, "overall": row}, each row: face PSNR and rest-of-the-person PSNR (means
    over the views of each view's PSNR in that region), the face's share of the known pixels and of their squared
    error, and the views counted.
    """
    def score(items: list[Region]) -> dict:
        face_db, rest_db, pixels, face_pixels_n, error, face_error = [], [], 0, 0, 0.0, 0.0
        for pred, truth, face, alpha, valid in items:
            err = squared_error(pred, truth)  # [H, W]
            known = torch.ones_like(face) if valid is None else valid
            grow = max(1, round(4 * max(face.shape) / 256))  # 4 px at 256²
            rest = person_pixels(alpha, valid, grow) & ~face
            for region, out in ((face, face_db), (rest, rest_db)):
                value = _psnr(float(err[region].sum()), int(region.sum()))
                if value is not None:
                    out.append(value)
            pixels += int(known.sum())
            face_pixels_n += int(face.sum())
            error += float(err[known].sum())
            face_error += float(err[face].sum())
        return {"psnr_face": float(np.mean(face_db)) if face_db else "unavailable: no face pixels in any view",
                "psnr_rest": float(np.mean(rest_db)) if rest_db else "unavailable: no other pixels in any view",
                "face_pixels": face_pixels_n / max(pixels, 1), "face_error": face_error / error if error else 0.0,
                "views": len(items)}

    per_group = {group: score(items) for group, items in rows.items()}
    return {"per_appearance": per_group, "overall": score([it for items in rows.values() for it in items])}


def regions_table(regions: dict) -> list[str]:
    """Markdown rows of region_scores: one per appearance, then the overall row in bold."""
    def cells(row: dict) -> list[str]:
        db = [f"{row[k]:.2f}" if not isinstance(row[k], str) else "unavailable" for k in ("psnr_face", "psnr_rest")]
        return [*db, f"{100 * row['face_pixels']:.1f} %", f"{100 * row['face_error']:.1f} %"]

    lines = ["| appearance | face PSNR ↑ | rest PSNR ↑ | face share of pixels | face share of squared error | views |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, row in regions["per_appearance"].items():
        lines.append(f"| {name} | " + " | ".join(cells(row)) + f" | {row['views']} |")
    overall = regions["overall"]
    lines.append("| **overall** | " + " | ".join(f"**{c}**" for c in cells(overall)) + f" | {overall['views']} |")
    return lines
