"""Regions of the head model as sets of faces: FLAME's region file, the model's own labels, or the face that the
landmarks span on the neutral head (official FLAME's pickle carries no labels)."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from .flame import FLAME
from .pickle_io import HeadModelError, load_head_pickle

ALL = "all"  # every face: the one region any head model has


def load_region_file(path: str | os.PathLike, flame: FLAME) -> dict[str, Tensor]:
    """FLAME's `FLAME_masks.pkl` (region name -> vertex ids) -> region name -> [F] bool, the faces whose three
    vertices all lie in the region."""
    data = load_head_pickle(path)
    problems, regions = [], {}
    faces = flame.faces.cpu().numpy()
    for name, ids in data.items():
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu" or not len(ids):
            problems.append(f"region '{name}' must be a non-empty list of vertex ids, got {ids.dtype} {ids.shape}")
            continue
        if ids.min() < 0 or ids.max() >= flame.num_verts:
            problems.append(f"region '{name}' names vertex {int(ids.max())}, but {flame.source} has "
                            f"{flame.num_verts} vertices (a region file of another head model?)")
            continue
        inside = np.zeros(flame.num_verts, bool)
        inside[ids] = True
        regions[name] = torch.from_numpy(inside[faces].all(1))
    if problems:
        raise HeadModelError(f"{path}: not a region file of this head model:\n  - " + "\n  - ".join(problems))
    return regions


def landmark_face(flame: FLAME) -> Tensor | None:
    """[F] bool: faces in front of the landmarks' box on the neutral head; None without a landmark embedding."""
    kind = "68" if flame.landmarks68 is not None else "dense" if flame.landmarks_dense is not None else None
    if kind is None:
        return None
    with torch.no_grad():
        rest = flame.v_template[None]  # [1, V, 3] the neutral head
        points = flame.landmarks(rest, kind)[0]  # [L, 3]
        centres = rest[0][flame.faces].mean(1)  # [F, 3]
        low, high = points.amin(0), points.amax(0)
        inside = (centres[:, :2] >= low[:2]).all(-1) & (centres[:, :2] <= high[:2]).all(-1)
        return (inside & (centres[:, 2] > low[2])).cpu()


MOUTH_LANDMARKS = slice(48, 68)  # the 68-point scheme's outer and inner lip contours
MOUTH_MARGIN = 0.5  # of the lips' width, around their box: the mouth corners and the skin that moves with them
MOUTH_DEPTH = 0.04  # metres behind the lips' front: the mouth cavity, not the back of the head


def mouth_faces(flame: FLAME) -> Tensor | None:
    """[F] bool: faces around the mouth on the neutral head (the lips' landmark box grown by MOUTH_MARGIN of the
    lips' width, no deeper than MOUTH_DEPTH behind them), with the model's own lips and mouth labels; None
    when the model has neither a 68-point embedding nor such labels."""
    labelled = None
    if flame.face_region is not None:
        names = [n for n in ("lips", "mouth") if n in flame.region_names]
        if names:
            labels = flame.face_region.cpu()
            labelled = torch.stack([labels == flame.region_names.index(n) for n in names]).any(0)
    if flame.landmarks68 is None:
        return labelled
    with torch.no_grad():
        rest = flame.v_template[None]  # [1, V, 3]
        lips = flame.landmarks(rest, "68")[0, MOUTH_LANDMARKS]  # [20, 3]
        centres = rest[0][flame.faces].mean(1)  # [F, 3]
        low, high = lips.amin(0), lips.amax(0)
        grow = MOUTH_MARGIN * float(high[0] - low[0])
        inside = ((centres[:, :2] >= low[:2] - grow) & (centres[:, :2] <= high[:2] + grow)).all(-1)
        inside &= centres[:, 2] > high[2] - MOUTH_DEPTH
    inside = inside.cpu()
    return inside if labelled is None else inside | labelled


def head_regions(flame: FLAME, region_file: str | os.PathLike | None = None) -> tuple[dict[str, Tensor], str]:
    """Region name -> [F] bool faces, and where they come from: the region file when given, else the model's
    labels, else "face" from the landmarks. "all" is always there."""
    n_faces = flame.num_faces
    every = {ALL: torch.ones(n_faces, dtype=torch.bool)}
    if region_file is not None:
        return {**load_region_file(region_file, flame), **every}, str(region_file)
    if flame.face_region is not None:
        labels = flame.face_region.cpu()
        return {**{n: labels == i for i, n in enumerate(flame.region_names)}, **every}, f"{flame.source}'s labels"
    face = landmark_face(flame)
    if face is None:
        return every, f"{flame.source} (no region labels, no landmark embedding)"
    return {"face": face, **every}, f"the landmarks of {flame.source} on its neutral head"
