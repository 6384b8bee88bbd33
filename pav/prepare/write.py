"""The files prepare writes: per appearance frames, masks, landmarks.npz, split.json and prepare.npz
(last: its presence marks the appearance complete), then prepare.json and collection.json."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data.collection import (
    FRAMES_DIR,
    LANDMARKS_FILE,
    MASKS_DIR,
    META_FILE,
    PNG_COMPRESS_LEVEL,
    SPLIT_FILE,
    VALID_DIR,
    AppearanceSpec,
    CollectionMeta,
    Split,
)
from ..data.collection.splits import split_json

CAM = "00"
PREPARE_FILE = "prepare.npz"
SUMMARY_FILE = "prepare.json"
HEAD_MODEL, N_SHAPE, N_EXPR = "procedural:0", 100, 50  # placeholders until the tracker rewrites them
TRACKER_KEYS = ("head_model", "n_shape", "n_expr", "uv_layout", "landmark_embedding")


def frame_path(out: Path, app: str, frame_id: int) -> Path:
    return out / app / FRAMES_DIR / CAM / f"{frame_id:06d}.png"


def mask_path(out: Path, app: str, frame_id: int) -> Path:
    return out / app / MASKS_DIR / CAM / f"{frame_id:06d}.png"


def valid_path(out: Path, app: str, frame_id: int) -> Path:
    """255 where the crop's pixel lies in the source frame, 0 where the crop reached past it (unknown)."""
    return out / app / VALID_DIR / CAM / f"{frame_id:06d}.png"


def save_png(path: Path, image: np.ndarray) -> None:  # uint8 [S, S, 3] or [S, S]
    Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def start_appearance(out: Path, app: str) -> None:
    """Removes what an interrupted run left of this appearance (never prepare.npz: it is not there)."""
    base = out / app
    for sub in (FRAMES_DIR, MASKS_DIR, VALID_DIR):
        shutil.rmtree(base / sub, ignore_errors=True)
        (base / sub / CAM).mkdir(parents=True, exist_ok=True)
    for name in (LANDMARKS_FILE, SPLIT_FILE, PREPARE_FILE + ".tmp"):
        (base / name).unlink(missing_ok=True)


def write_split(out: Path, app: str, split: Split) -> bool:
    """split.json; False when it already held this split."""
    path = out / app / SPLIT_FILE
    text = json.dumps(split_json(split)) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def prepared_frame_ids(out: Path, app: str) -> np.ndarray:
    """The source frame indices a complete appearance kept [T]."""
    with np.load(out / app / PREPARE_FILE) as f:
        return np.asarray(f["frame_ids"], np.int64)


def finish_appearance(out: Path, app: str, arrays: dict[str, np.ndarray], dense: np.ndarray,
                      score: np.ndarray, split: Split, stats: dict[str, Any]) -> None:
    """landmarks.npz, split.json, then prepare.npz (atomically, last); `stats` is stored in it as JSON."""
    base = out / app
    np.savez(base / LANDMARKS_FILE, dense=dense.astype(np.float32), dense_indices=np.arange(dense.shape[2]),
             dense_score=score.astype(np.float32))
    write_split(out, app, split)
    tmp = base / (PREPARE_FILE + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays, summary=np.array(json.dumps(stats)))
    os.replace(tmp, base / PREPARE_FILE)


def completed_stats(out: Path, app: str) -> dict[str, Any] | None:
    """The stats stored in a complete appearance's prepare.npz, or None when it is not complete."""
    path = out / app / PREPARE_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as f:
            return json.loads(str(f["summary"]))
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: unreadable ({err}); delete it to prepare {app!r} again") from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Temp file then os.replace: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_collection_meta(out: Path, subject: str, size: int, names: list[str]) -> Path:
    """collection.json; head_model/n_shape/n_expr already written by the tracker are kept."""
    meta = CollectionMeta(subject=subject, head_model=HEAD_MODEL, n_shape=N_SHAPE, n_expr=N_EXPR,
                          image_size=(size, size), appearances=[AppearanceSpec(n, "monocular") for n in names])
    data = meta.to_json()
    try:
        old = json.loads((out / META_FILE).read_text(encoding="utf-8"))
        data.update({k: old[k] for k in TRACKER_KEYS if k in old})
    except (OSError, ValueError, TypeError):
        pass  # no usable earlier collection.json: placeholders
    path = out / META_FILE
    write_json(path, data)
    return path
