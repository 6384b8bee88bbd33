"""RenderMe-360's own FLAME fits (expression parts): read them, move them into the collection's conventions,
and check them against the masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ...head.flame import FLAME
from .fit import kabsch
from .geometry import distort

JOINT_KEYS = ("global_pose", "neck_pose", "jaw_pose", "left_eye_pose", "right_eye_pose")
FIT_KEYS = (*JOINT_KEYS, "trans", "shape", "exp", "verts")


class RenderMeError(ValueError):
    """A RenderMe-360 subject that cannot be converted; the message names the file and what is wrong."""


@dataclass
class FlameFits:
    """RenderMe-360's fits of some frames of one part, as stored (file conventions)."""

    source: str  # the file they came from
    frame_ids: list[int]
    shape: np.ndarray  # [T, n_shape in the file]
    expr: np.ndarray  # [T, n_expr in the file]
    rotations: np.ndarray  # [T, 5, 3]
    transl: np.ndarray  # [T, 3]
    verts: np.ndarray  # [T, V, 3] world, metres


def read_fits(reader, frame_ids: list[int]) -> FlameFits:
    rows = [reader.flame(f, keys=FIT_KEYS) for f in frame_ids]
    return FlameFits(
        source=str(reader.path), frame_ids=list(frame_ids),
        shape=np.stack([r["shape"].reshape(-1) for r in rows]),
        expr=np.stack([r["exp"].reshape(-1) for r in rows]),
        rotations=np.stack([np.stack([r[k].reshape(3) for k in JOINT_KEYS]) for r in rows]),
        transl=np.stack([r["trans"].reshape(3) for r in rows]),
        verts=np.stack([r["verts"] for r in rows]),
    )


def fit_to(values: np.ndarray, n: int) -> np.ndarray:
    """Coefficients [..., m] cut or zero-padded to [..., n] (a head model with fewer or more components)."""
    out = np.zeros((*values.shape[:-1], n))
    m = min(n, values.shape[-1])
    out[..., :m] = values[..., :m]
    return out


def identity_shape(fits: list[FlameFits], n_shape: int) -> np.ndarray:
    """The subject's shape [n_shape]: the mean of every expression-part fit."""
    return fit_to(np.concatenate([f.shape for f in fits]), n_shape).mean(0)


@dataclass
class Converted:
    rotations: np.ndarray  # [T, 5, 3] collection conventions
    transl: np.ndarray  # [T, 3]
    expr: np.ndarray  # [T, n_expr]
    error_mm: np.ndarray  # [T] mean vertex distance to the file's verts


def to_collection(flame: FLAME, shape: np.ndarray, fits: FlameFits, tolerance_mm: float = 2.0) -> Converted:
    """The fits' pose in the collection's conventions, with the identity `shape` [n_shape].

    The file's parameters are used as they are when the head model reproduces the file's vertices with them;
    otherwise a rigid transform per frame (the file's global pose / translation conventions differ) is
    composed into the global rotation and translation. Raises when neither reproduces the vertices.
    """
    if fits.verts.shape[1] != flame.num_verts:
        raise RenderMeError(
            f"{fits.source}: FLAME 'verts' have {fits.verts.shape[1]} vertices but the head model {flame.source} "
            f"has {flame.num_verts}; pass head_model= the FLAME 2020 model RenderMe-360 was fitted with")
    expr = fit_to(fits.expr, flame.n_expr)
    rotations, transl = fits.rotations.astype(np.float64).copy(), fits.transl.astype(np.float64).copy()
    with torch.no_grad():
        out = flame(shape=torch.from_numpy(shape).float()[None], expr=torch.from_numpy(expr).float(),
                    rotations=torch.from_numpy(rotations).float(), transl=torch.from_numpy(transl).float())
    verts = out.verts.double().numpy()  # [T, V, 3]
    root = out.joints[:, 0].double().numpy() - transl  # [T, 3] rest position of the root joint
    error = 1e3 * np.linalg.norm(verts - fits.verts, axis=-1).mean(-1)
    for t in np.nonzero(error > tolerance_mm)[0]:
        scale = _scale(verts[t], fits.verts[t])
        if abs(scale - 1.0) > 0.01:
            raise RenderMeError(
                f"{fits.source}: frame {fits.frame_ids[t]}: the fitted vertices are {scale:.3f} x the head "
                f"model's size; RenderMe-360's fits are in metres, is head_model= the right FLAME model?")
        R, shift = kabsch(verts[t], fits.verts[t])
        # FLAME turns about its root joint: R (R_g (x - J) + J + t) + s = (R R_g)(x - J) + J + (R J + R t + s - J)
        rotations[t, 0] = (Rotation.from_matrix(R) * Rotation.from_rotvec(rotations[t, 0])).as_rotvec()
        transl[t] = R @ root[t] + R @ transl[t] + shift - root[t]
    if (error > tolerance_mm).any():
        with torch.no_grad():
            out = flame(shape=torch.from_numpy(shape).float()[None], expr=torch.from_numpy(expr).float(),
                        rotations=torch.from_numpy(rotations).float(), transl=torch.from_numpy(transl).float())
        error = 1e3 * np.linalg.norm(out.verts.double().numpy() - fits.verts, axis=-1).mean(-1)
    worst = int(np.argmax(error))
    if error[worst] > tolerance_mm:
        raise RenderMeError(
            f"{fits.source}: frame {fits.frame_ids[worst]}: the head model {flame.source} with the file's FLAME "
            f"parameters misses the file's vertices by {error[worst]:.1f} mm on average (tolerance "
            f"{tolerance_mm} mm); pass head_model= the FLAME 2020 model RenderMe-360 was fitted with")
    return Converted(rotations.astype(np.float32), transl.astype(np.float32), expr.astype(np.float32),
                     error)


def _scale(src: np.ndarray, dst: np.ndarray) -> float:
    return float(np.linalg.norm(dst - dst.mean(0)) / np.linalg.norm(src - src.mean(0)))


def mask_coverage(points: np.ndarray, K: np.ndarray, D: np.ndarray, c2w: np.ndarray, mask: np.ndarray) -> float:
    """Share of world points [N, 3] that project inside the mask [H, W] (alpha > 127) of a camera."""
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    xy = distort(cam[:, :2] / np.clip(cam[:, 2:], 1e-6, None), D)
    pix = np.round(xy * [K[0, 0], K[1, 1]] + K[:2, 2]).astype(int)
    h, w = mask.shape
    inside = (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h) & (cam[:, 2] > 0)
    hit = np.zeros(len(points), bool)
    hit[inside] = mask[pix[inside, 1], pix[inside, 0]] > 127
    return float(hit.mean())
