"""`prepare(cfg)`: every video / image folder -> one appearance of a collection without FLAME fits.

Two passes over each source keep memory flat on long videos: (1) sample.scan: evenly spaced
frames, each the sharpest of a small window, blurred ones rejected, and their face boxes; then
one smooth crop track; (2) crop, face mesh, matte and writing. The tracker (pav/track/) adds FLAME.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import MISSING
from tqdm import tqdm

from ..data.collection import Split
from ..data.collection.splits import PROTOCOLS, VAL_FRACTION, video_split
from ..head.torso import TorsoCut, face_points_mediapipe, torso_pixels
from .crop import cut_crop, smooth_track, to_crop
from .decode import VIDEO_EXTS, DecodeError, Source, frame_count, iter_frames, list_sources
from .detect import N_MESH, FaceModels
from .matte import refine_matte
from .report import print_summary
from .sample import scan
from .sheet import make_tile, sheet_indices, write_sheet
from .write import (
    SUMMARY_FILE,
    completed_stats,
    finish_appearance,
    frame_path,
    mask_path,
    prepared_frame_ids,
    save_png,
    start_appearance,
    valid_path,
    write_collection_meta,
    write_json,
    write_split,
)

MIN_FRAMES = 2  # one train and one test frame
DEFAULT_FPS = 30.0  # for smoothing when a video does not say its frame rate


@dataclass
class PrepareConfig:
    videos: str = MISSING
    out: str = MISSING
    frames_per_video: int = 500
    size: int = 512
    crop_scale: float = 2.2  # crop side / face box side: hair and neck stay in
    crop_shift: float = 0.1  # crop centre this many face-box sizes above the box centre
    min_face_score: float = 0.5
    blur_window: int = 2  # each sampled frame is the sharpest within this many frames of its target
    blur_ratio: float = 0.3  # frames below this fraction of the video's median sharpness are dropped
    smooth_s: float = 0.2  # Gaussian sigma (seconds) of the crop centre over time
    smooth_size_s: float = 1.0  # Gaussian sigma (seconds) of the weighted median of the crop size
    image_fps: float = 0.0  # image folders: 0 = unrelated photos (no smoothing), > 0 = video frames at this rate
    # which frames are held out (pav/data/collection/splits.py): tail = the last test_fraction of the kept frames;
    # insta / flashavatar = the last 350 / 500 source frames (scaled to a clip under 1000 frames), their protocols
    split: str = "tail"
    test_fraction: float = 0.1
    val_fraction: float = VAL_FRACTION  # the validation stretch before the test frames: defaults are chosen on it
    torso_cut: bool = True  # shoulders and chest unknown (see pav/head/torso.py); False keeps them as targets


class PrepareError(RuntimeError):
    """Nothing usable came out, or the output folder holds results made with other settings."""


class NoUsableFrames(RuntimeError):
    """A source that decodes but leaves fewer than MIN_FRAMES frames with a face."""


SPLIT_KEYS = ("split", "test_fraction", "val_fraction")  # a prepared appearance is split again, not prepared again


def _settings(cfg: PrepareConfig) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("videos", "out", *SPLIT_KEYS)}


def _split(cfg: PrepareConfig, frame_ids: np.ndarray, n_source: int) -> Split:
    return video_split([int(i) for i in frame_ids], cfg.split, n_source, cfg.test_fraction, cfg.val_fraction)


def _check_config(cfg: PrepareConfig) -> None:
    problems = [f"{k} must be > 0, got {getattr(cfg, k)}" for k in ("frames_per_video", "size", "crop_scale")
                if getattr(cfg, k) <= 0]
    problems += [f"{k} must be >= 0, got {getattr(cfg, k)}"
                 for k in ("blur_window", "blur_ratio", "smooth_s", "smooth_size_s", "image_fps")
                 if getattr(cfg, k) < 0]
    if not 0 <= cfg.test_fraction < 1:
        problems.append(f"test_fraction must be in [0, 1), got {cfg.test_fraction}")
    if not 0 <= cfg.val_fraction < 1:
        problems.append(f"val_fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.split not in PROTOCOLS:
        problems.append(f"split must be one of {', '.join(PROTOCOLS)}, got {cfg.split!r}")
    if problems:
        raise PrepareError("invalid settings: " + "; ".join(problems))


def prepare(cfg: PrepareConfig) -> dict[str, Any]:
    """Prepares every source in cfg.videos into cfg.out; returns the summary written to prepare.json."""
    _check_config(cfg)
    videos, out = Path(cfg.videos), Path(cfg.out)
    try:
        sources = list_sources(videos, exclude=out)
    except DecodeError as err:
        raise PrepareError(str(err)) from None
    if not sources:
        raise PrepareError(f"videos={videos}: no video files ({', '.join(VIDEO_EXTS)}) "
                           "or folders of images (.png, .jpg) in it")
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"videos": str(videos), "size": cfg.size, "frames_per_video": cfg.frames_per_video,
                               "appearances": {}, "failed": []}
    models: FaceModels | None = None
    try:
        for source in sources:
            try:
                done = completed_stats(out, source.name)
            except ValueError as err:
                raise PrepareError(str(err)) from None
            if done is not None:
                _check_resumable(done, cfg, out / source.name)
                split = _split(cfg, prepared_frame_ids(out, source.name), done["stats"].get("decoded", 0))
                again = " (split.json written for split=" + cfg.split + ")" if write_split(out, source.name, split) \
                    else ""
                print(f"{source.name}: already prepared ({done['stats']['kept']} frames), skipped{again}")
                summary["appearances"][source.name] = done["stats"]
                continue
            models = models or FaceModels(cfg.min_face_score)
            try:
                summary["appearances"][source.name] = prepare_source(source, cfg, models, out)
            except (DecodeError, NoUsableFrames) as err:
                print(f"{source.label}: skipped: {err}", file=sys.stderr)
                summary["failed"].append({"file": source.label, "error": str(err)})
            summary["failed"] += [{"file": f, "error": e} for f, e in source.bad_files]
    finally:
        if models is not None:
            models.close()
    write_json(out / SUMMARY_FILE, summary)
    print_summary(summary)
    if not summary["appearances"]:
        lines = "\n".join(f"  - {f['file']}: {f['error']}" for f in summary["failed"])
        raise PrepareError(f"no appearance could be prepared from videos={videos}:\n{lines}")
    write_collection_meta(out, videos.resolve().name, cfg.size, list(summary["appearances"]))
    return summary


TORSO = TorsoCut()


def _face_points(points: np.ndarray | None, box: np.ndarray, crop: np.ndarray, size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Chin and brow [2] in crop pixels: from the face mesh, else from the detector's box (brow a fifth of the
    way down it, chin at its bottom)."""
    if points is not None and np.isfinite(points).all():
        return face_points_mediapipe(points)
    x0, y0, w, h = (float(v) for v in box)
    chin, brow = to_crop(np.array([[x0 + w / 2, y0 + h], [x0 + w / 2, y0 + 0.2 * h]]), crop, size)
    return chin, brow


def _check_resumable(done: dict[str, Any], cfg: PrepareConfig, where: Path) -> None:
    old, new = done.get("settings", {}), _settings(cfg)
    diff = [f"{k}={old.get(k)!r} (now {v!r})" for k, v in new.items() if old.get(k) != v]
    if diff:
        raise PrepareError(f"{where} was prepared with other settings: {', '.join(diff)}; "
                           "use another out= or delete that folder")


def prepare_source(source: Source, cfg: PrepareConfig, models: FaceModels, out: Path) -> dict[str, Any]:
    """The two passes over one source; returns its summary entry."""
    name = source.name
    found = scan(source, frame_count(source), cfg.frames_per_video, cfg.blur_window, cfg.blur_ratio, models.detect)
    kept = np.array(sorted(found.faces), np.int64)  # [T]
    n_candidates = int((~found.blurred).sum())
    counts = {"decoded": found.decoded, "sampled": len(found.ids), "blurred": int(found.blurred.sum()),
              "no_face": n_candidates - len(kept)}
    if len(kept) < MIN_FRAMES:
        raise NoUsableFrames(f"{len(kept)} usable frame(s) with a face (need {MIN_FRAMES}): "
                             + ", ".join(f"{k} {v}" for k, v in counts.items()))
    faces = found.faces
    sharp_of = dict(zip(found.ids.tolist(), found.sharpness.tolist(), strict=True))
    fps = source.fps if source.kind == "video" else cfg.image_fps
    if source.kind == "video":
        times = kept / (fps if fps > 0 else DEFAULT_FPS)
    else:
        times = kept / fps if fps > 0 else None  # unrelated photos: no smoothing
    boxes = np.stack([faces[i].box for i in kept])  # [T, 4]
    crops = smooth_track(boxes, times, cfg.crop_scale, cfg.crop_shift, cfg.smooth_s, cfg.smooth_size_s)

    start_appearance(out, name)
    dense = np.full((len(kept), 1, N_MESH, 2), np.nan, np.float32)  # [T, 1, 478, 2]
    on_sheet, tiles = set(sheet_indices(len(kept))), []
    done, torso_share, outside_share = 0, [], []
    for k, (index, frame) in enumerate(tqdm(iter_frames(source, kept), total=len(kept), desc=name, unit="frame")):
        if index != kept[k]:
            raise DecodeError(f"frame {kept[k]} missing on the second read (got {index})")
        rgb, inside = cut_crop(frame, crops[k], cfg.size)
        outside_share.append(float(1.0 - inside.mean()))
        points = models.mesh(rgb)
        if points is not None:
            dense[k, 0] = points
        alpha = refine_matte(rgb, models.segment(rgb), inside)
        valid = inside
        if cfg.torso_cut:
            chin, brow = _face_points(points, faces[int(index)].box, crops[k], cfg.size)
            torso = torso_pixels(alpha, chin, brow, TORSO)
            valid = inside & ~torso
            torso_share.append(float(torso.mean()))
        save_png(frame_path(out, name, int(index)), rgb)
        save_png(mask_path(out, name, int(index)), alpha)
        save_png(valid_path(out, name, int(index)), valid.astype(np.uint8) * 255)
        if k in on_sheet:
            tiles.append((int(index), make_tile(rgb, alpha, points, valid)))
        done += 1
    if done != len(kept):
        raise DecodeError(f"{len(kept) - done} frame(s) missing on the second read")

    write_sheet(out, name, tiles)
    stats = {"source": source.label, "fps": float(fps), "source_size": list(source.size), **counts,
             "no_landmarks": int(np.isnan(dense[:, 0, 0, 0]).sum()), "kept": len(kept),
             "unknown_outside_frame": float(np.mean(outside_share)),
             "unknown_torso": float(np.mean(torso_share)) if torso_share else 0.0}
    arrays = {"frame_ids": kept, "crop": crops.astype(np.float32),
              "sharpness": np.array([sharp_of[i] for i in kept], np.float32), "face_box": boxes.astype(np.float32)}
    score = np.array([[faces[i].score] for i in kept], np.float32)  # [T, 1]
    finish_appearance(out, name, arrays, dense, score, _split(cfg, kept, found.decoded),
                      {"stats": stats, "settings": _settings(cfg)})
    return stats
