"""What the expression parts teach: the identity shape and where the keypoints sit on the head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ...head.flame import FLAME
from .flame_fits import FlameFits, RenderMeError, identity_shape, mask_coverage, read_fits, to_collection
from .geometry import projection_matrices, triangulate
from .keypoints import KeypointEmbedding, learn_embedding
from .options import RenderMeConfig, select_frames
from .reader import SMCError, SMCReader
from .rig import CONTOUR, KEYPOINT_CAMERAS, face_vertices, keypoints2d, nan_if_none, rig


@dataclass
class Identity:
    shape: np.ndarray  # [N_SHAPE]
    emb3d: KeypointEmbedding  # the 73 3D keypoints
    emb2d: KeypointEmbedding  # the 106 2D keypoints (contour excluded)
    report: dict


def build_identity(flame: FLAME, expression_parts: dict[str, tuple[Path, Path | None]], cfg: RenderMeConfig
                   ) -> Identity:
    """Shape, keypoint embeddings and checks from the expression parts' FLAME fits."""
    fits: list[FlameFits] = []
    kp3d, kp2d_points, posed = [], [], []
    coverage, conversion = {}, {}
    for part, (main, anno) in tqdm(expression_parts.items(), desc="expression parts", unit="part"):
        with SMCReader(main, anno) as reader:
            if not reader.has_flame:
                continue
            frames = select_frames(reader.frame_ids, f"count:{cfg.embed_frames}")
            part_fits = read_fits(reader, frames)
            fits.append(part_fits)
            posed.append(part_fits.verts)
            kp3d.append(np.stack([nan_if_none(reader.keypoints3d(f), (73, 3)) for f in frames]))
            cams = [c for c in KEYPOINT_CAMERAS if c in reader.camera_ids]
            points2d = np.full((len(frames), 106, 3), np.nan)
            if len(cams) >= 2:  # triangulated 2D keypoints: where the 106-point layout sits on the head
                K, _, c2w = rig(reader, cams)
                pixels = keypoints2d(reader, frames, cams)  # [T, C, 106, 2]
                P = projection_matrices(K, c2w)
                points2d = np.stack([triangulate(pixels[t], np.isfinite(pixels[t]).all(-1), P, 8.0)
                                     for t in range(len(frames))])
            kp2d_points.append(points2d)
            coverage[part] = _fit_coverage(reader, part_fits, flame)
    if not fits:
        raise RenderMeError("no expression part with FLAME fits was found (the e0..e11 files' anno part): "
                            "the identity shape and the keypoint embedding are learned from them")
    shape = identity_shape(fits, flame.n_shape)
    for f in fits:
        # the file's own parameters must give its vertices: this checks the head model and the conventions
        conversion[Path(f.source).name] = float(to_collection(flame, identity_shape([f], flame.n_shape), f)
                                                .error_mm.mean())
    with torch.no_grad():
        neutral = flame(shape=torch.from_numpy(shape).float()[None]).verts[0].double().numpy()
    faces = flame.faces.numpy()
    verts, pts3, pts2 = np.concatenate(posed), np.concatenate(kp3d), np.concatenate(kp2d_points)
    emb3d = learn_embedding(neutral, faces, verts, pts3)
    exclude = np.arange(106) < CONTOUR
    emb2d = learn_embedding(neutral, faces, verts, pts2, exclude=exclude)
    worst = min(coverage.values())
    if worst < cfg.mask_tolerance:
        part = min(coverage, key=coverage.get)
        raise RenderMeError(
            f"{expression_parts[part][0]}: only {100 * worst:.0f}% of the FLAME fit's face vertices project inside "
            f"the masks (need {100 * cfg.mask_tolerance:.0f}%): calibration and fits disagree")
    report = {
        "expression_parts": list(coverage), "frames_used": int(len(verts)),
        "fit_conversion_error_mm": conversion, "fit_mask_coverage": coverage,
        "keypoints3d_embedded": int(emb3d.used.sum()), "keypoints2d_embedded": int(emb2d.used.sum()),
        "keypoints3d_surface_distance_mm": _median(emb3d.distance_mm),
        "keypoints3d_spread_mm": _median(emb3d.spread_mm),
        "keypoints2d_surface_distance_mm": _median(emb2d.distance_mm),
        "keypoints2d_spread_mm": _median(emb2d.spread_mm),
    }
    return Identity(shape, emb3d, emb2d, report)


def _median(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else None


def _fit_coverage(reader: SMCReader, fits: FlameFits, flame: FLAME, cameras: int = 3) -> float:
    """Share of the fits' face vertices inside the masks, over the middle frame and a few frontal cameras."""
    if not reader.has_masks:
        return 1.0
    cams = [c for c in KEYPOINT_CAMERAS if c in reader.camera_ids] or reader.camera_ids
    cams = [cams[int(i)] for i in np.linspace(0, len(cams) - 1, min(cameras, len(cams))).round()]
    t = len(fits.frame_ids) // 2
    points = fits.verts[t][face_vertices(flame)]
    shares = []
    for cam in cams:
        try:
            calib, mask = reader.calibration(cam), reader.mask(cam, fits.frame_ids[t])
        except SMCError:  # a corrupt mask here says nothing about the fit: another camera will
            continue
        shares.append(mask_coverage(points, calib["K"], calib["D"], calib["RT"], mask))
    return float(np.mean(shares)) if shares else 1.0
