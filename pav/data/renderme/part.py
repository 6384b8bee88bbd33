"""One part -> one appearance: images of every (frame, camera), then FLAME (RenderMe-360's fit or keypoints)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ...head.flame import FLAME
from ...head.torso import TorsoCut, face_points_68, torso_pixels
from ...synthetic.motion import test_frames
from ..collection import Cameras, CollectionWriter, FlameSequence, Split
from ..collection.splits import with_validation
from .fit import KeypointObservations, fit_keypoints
from .flame_fits import RenderMeError, mask_coverage, read_fits, to_collection
from .geometry import crop_resize_intrinsics, square_crop
from .identity import Identity
from .images import ViewGeometry, convert_view
from .options import RenderMeConfig, camera_list, held_out_cameras, select_frames
from .reader import SMCError, SMCReader
from .rig import KEYPOINT_CAMERAS, face_vertices, keypoints2d, nan_if_none, rig


@dataclass
class PartResult:
    cameras: Cameras
    flame: FlameSequence
    split: Split
    report: dict


def _readable_cameras(reader: SMCReader, cams: list[str], failures: list[str]) -> list[str]:
    """The cameras whose calibration reads; the others are reported and left out."""
    usable = []
    for cam in cams:
        try:
            reader.calibration(cam)
            usable.append(cam)
        except SMCError as err:
            failures.append(str(err))
    return usable


def _write_images(reader: SMCReader, part: str, frames: list[int], cams: list[str], geos: dict[str, ViewGeometry],
                  writer: CollectionWriter, workers: int, bar: tqdm, failures: list[str]) -> list[int]:
    """Writes every (frame, camera) image; returns the frames whose every camera converted."""
    def job(item: tuple[int, str]) -> tuple[int, str | None]:
        frame, cam = item
        try:
            geo = geos[cam]
            rgb, mask = convert_view(reader.image(cam, frame, at_least=geo.decode_size), reader.mask(cam, frame), geo)
        except SMCError as err:
            return frame, str(err)
        writer.write_frame(part, cam, frame, rgb, mask)
        return frame, None

    bad: set[int] = set()
    items = [(f, c) for f in frames for c in cams]
    with ThreadPoolExecutor(max(1, workers)) as pool:  # decoding and resizing release the GIL
        for frame, problem in pool.map(job, items):
            bar.update(1)
            if problem is not None:
                failures.append(problem)
                bad.add(frame)
    for frame in sorted(bad):  # a frame is used in every camera or in none
        for cam in cams:
            writer.frame_path(part, cam, frame).unlink(missing_ok=True)
            writer.mask_path(part, cam, frame).unlink(missing_ok=True)
    return [f for f in frames if f not in bad]


def _observations(reader: SMCReader, frames: list[int], side: int) -> KeypointObservations:
    cams = [c for c in KEYPOINT_CAMERAS if c in reader.camera_ids]
    K, _, c2w = rig(reader, cams) if cams else (np.zeros((0, 3, 3)), None, np.zeros((0, 4, 4)))
    points3d = np.stack([nan_if_none(reader.keypoints3d(f), (73, 3)) for f in frames])
    return KeypointObservations(points3d, keypoints2d(reader, frames, cams), K, c2w, 512.0 / side)


def convert_part(part: str, reader: SMCReader, identity: Identity, flame: FLAME, cfg: RenderMeConfig,
                 writer: CollectionWriter, bar: tqdm) -> PartResult:
    start = time.time()
    if not reader.has_masks:
        raise RenderMeError(f"{reader.path}: has no masks (the 500-subject release ships none); the converter "
                            "needs the 21-subject release's _anno.smc files")
    failures: list[str] = []
    wanted = camera_list(cfg.cameras)
    cams = reader.camera_ids if wanted is None else [c for c in wanted if c in reader.camera_ids]
    if wanted is not None and len(cams) < len(wanted):
        absent = [c for c in wanted if c not in reader.camera_ids]
        failures.append(f"{reader.path}: cameras {absent} are not in this file (it has {reader.camera_ids})")
    cams = _readable_cameras(reader, cams, failures)
    if not cams:
        raise RenderMeError(f"{reader.path}: none of the requested cameras ({cfg.cameras}) can be read")
    frames = select_frames(reader.frame_ids, cfg.frames)
    height, width = reader.resolution
    left, top, side = square_crop(height, width)
    K_full, D, c2w = rig(reader, cams)
    geos = {cam: ViewGeometry(height, width, left, top, side, cfg.size,
                              crop_resize_intrinsics(K_full[c], left, top, side, cfg.size),
                              D[c]) for c, cam in enumerate(cams)}
    bar.total += len(frames) * len(cams)
    bar.refresh()
    good = _write_images(reader, part, frames, cams, geos, writer, cfg.workers or os.cpu_count() or 1, bar, failures)
    if len(good) < 2:
        raise RenderMeError(f"{reader.path}: fewer than 2 frames converted in every camera; first problems: "
                            + "; ".join(failures[:3]))

    report: dict = {"frames": len(good), "cameras": cams, "failures": failures}
    fit_start = time.time()
    if reader.has_flame:  # an expression part chosen as an appearance: its own fits
        fits = read_fits(reader, good)
        conv = to_collection(flame, identity.shape, fits)
        rotations, transl, expr = conv.rotations, conv.transl, conv.expr
        report["flame"] = {"source": "RenderMe-360 fit", "vertex_error_mm": float(conv.error_mm.mean())}
    else:
        obs = _observations(reader, good, side)
        fit = fit_keypoints(flame, identity.shape, identity.emb3d, identity.emb2d, obs, cfg.fit)
        rotations, transl, expr = fit.rotations, fit.transl, fit.expr
        report["flame"] = {"source": "keypoint fit", "keypoints3d_error_mm": _nanmean(fit.error_3d_mm),
                           "keypoints2d_error_px512": _nanmean(fit.error_2d_px)}
    report["flame"]["seconds"] = round(time.time() - fit_start, 2)
    report["flame"]["mask_coverage"] = _written_coverage(writer, part, cams, geos, c2w, good, flame, identity.shape,
                                                         rotations, transl, expr)
    report["torso_unknown"] = _write_torso_cut(writer, part, cams, geos, c2w, good, flame, identity.shape,
                                               rotations, transl, expr) if cfg.torso_cut else None
    positions = set(test_frames(len(good)))
    split = with_validation([f for i, f in enumerate(good) if i not in positions],
                            [f for i, f in enumerate(good) if i in positions],
                            test_cameras=held_out_cameras(cfg.test_cameras, cams))
    cameras = Cameras(K=np.stack([geos[c].K_out for c in cams]).astype(np.float32), c2w=c2w.astype(np.float32),
                      names=cams)
    flame_seq = FlameSequence(frame_ids=np.asarray(good, dtype=np.int64), expr=expr.astype(np.float32),
                              rotations=rotations.astype(np.float32), transl=transl.astype(np.float32))
    report["seconds"] = round(time.time() - start, 1)
    return PartResult(cameras, flame_seq, split, report)


def _nanmean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def _written_coverage(writer: CollectionWriter, part: str, cams: list[str], geos: dict[str, ViewGeometry],
                      c2w: np.ndarray, frames: list[int], flame: FLAME, shape: np.ndarray, rotations: np.ndarray,
                      transl: np.ndarray, expr: np.ndarray, cameras: int = 3) -> float:
    """Share of the posed face vertices inside the written masks (middle frame, a few cameras)."""
    t = len(frames) // 2
    with torch.no_grad():
        verts = flame(shape=torch.from_numpy(shape).float()[None], expr=torch.from_numpy(expr[t:t + 1]).float(),
                      rotations=torch.from_numpy(rotations[t:t + 1]).float(),
                      transl=torch.from_numpy(transl[t:t + 1]).float()).verts[0].double().numpy()
    points = verts[face_vertices(flame)]
    picks = [cams[int(i)] for i in np.linspace(0, len(cams) - 1, min(cameras, len(cams))).round()]
    shares = []
    for cam in picks:
        mask = np.asarray(Image.open(writer.mask_path(part, cam, frames[t])))
        shares.append(mask_coverage(points, geos[cam].K_out, np.zeros(5), c2w[cams.index(cam)], mask))
    return float(np.mean(shares))


def _posed(flame: FLAME, shape: np.ndarray, expr: np.ndarray, rotations: np.ndarray, transl: np.ndarray
           ) -> torch.Tensor:  # -> verts [T, V, 3]
    t = len(expr)
    with torch.no_grad():
        return flame(shape=torch.from_numpy(shape).float()[None].expand(t, -1), expr=torch.from_numpy(expr).float(),
                     rotations=torch.from_numpy(rotations).float(), transl=torch.from_numpy(transl).float()).verts


def _write_torso_cut(writer: CollectionWriter, part: str, cams: list[str], geos: dict[str, ViewGeometry],
                     c2w: np.ndarray, frames: list[int], flame: FLAME, shape: np.ndarray, rotations: np.ndarray,
                     transl: np.ndarray, expr: np.ndarray) -> float | None:
    """Marks each image's shoulders and chest unknown (pav/head/torso.py), from the fitted head's chin and brow
    projected into the camera; returns the mean unknown share, None when the head model has no 68 landmarks."""
    if flame.landmarks68 is None:
        print(f"[renderme] {part}: the head model has no 68-landmark embedding: the torso is kept as a target")
        return None
    cut, shares = TorsoCut(), []
    for start in range(0, len(frames), 64):  # posed meshes of a few frames at a time
        chunk = slice(start, start + 64)
        marks = flame.landmarks(_posed(flame, shape, expr[chunk], rotations[chunk], transl[chunk]), "68").double()
        chin, brow = (p.numpy() for p in face_points_68(marks))  # [t, 3] each
        for t, frame in enumerate(frames[chunk]):
            for c, cam in enumerate(cams):
                w2c = np.linalg.inv(c2w[c])
                ends = np.stack([chin[t], brow[t]]) @ w2c[:3, :3].T + w2c[:3, 3]  # [2, 3] camera space
                K = geos[cam].K_out  # the written images are undistorted
                pix = (ends[:, :2] / ends[:, 2:]) * K[[0, 1], [0, 1]] + K[:2, 2]  # [2, 2]
                mask = np.asarray(Image.open(writer.mask_path(part, cam, frame)))
                in_front = bool((ends[:, 2] > 0).all())
                torso = torso_pixels(mask, pix[0], pix[1], cut) if in_front else np.zeros(mask.shape, bool)
                writer.write_valid(part, cam, frame, ~torso)
                shares.append(float(torso.mean()))
    return float(np.mean(shares))
