"""What tracking reads: a prepared collection (frames, masks, detected landmarks), no FLAME needed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.collection import FRAMES_DIR, LANDMARKS_FILE, MASKS_DIR, META_FILE, SPLIT_FILE
from ..data.collection.splits import split_json, video_split

CAM = "00"
PREPARE_FILE = "prepare.npz"


class TrackingInputError(ValueError):
    """A prepared collection that tracking cannot use; the message names the file and the problem."""


@dataclass
class TrackInput:
    """One monocular appearance as the tracker sees it."""

    name: str
    root: Path  # ROOT/<name>
    frame_ids: np.ndarray  # [T] int64
    landmarks: np.ndarray  # [T, L, 2] detected pixels, NaN where missing
    landmark_ids: np.ndarray  # [L] detector index of each column (mediapipe numbering)
    confidence: np.ndarray  # [T, L] in [0, 1]; 0 where missing
    image_size: tuple[int, int]  # (H, W)
    source_width: float | None  # source video width in pixels over the crop side, when known

    def __len__(self) -> int:
        return int(self.frame_ids.shape[0])

    def frame_path(self, frame_id: int) -> Path:
        return self.root / FRAMES_DIR / CAM / f"{int(frame_id):06d}.png"

    def mask_path(self, frame_id: int) -> Path:
        return self.root / MASKS_DIR / CAM / f"{int(frame_id):06d}.png"

    def load_images(self, index: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """RGB [B, h, w, 3] and alpha [B, h, w] float32 of frames `index`, area-resized to size (h, w)."""
        rgbs, alphas = [], []
        for i in np.asarray(index):
            rgbs.append(_load(self.frame_path(self.frame_ids[i]), "RGB", size))
            alphas.append(_load(self.mask_path(self.frame_ids[i]), "L", size))
        return np.stack(rgbs), np.stack(alphas)


def _load(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BOX)
            return np.asarray(image, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise TrackingInputError(f"{path}: missing (listed in frames/{CAM}/ but no mask, or removed)") from None
    except OSError as err:
        raise TrackingInputError(f"{path}: unreadable image ({err})") from None


def read_meta(root: Path) -> dict:
    path = root / META_FILE
    if not path.is_file():
        raise TrackingInputError(f"{path}: missing; run `python -m pav.prepare videos=DIR out={root}` first")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TrackingInputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("appearances"), list) or not meta["appearances"]:
        raise TrackingInputError(f"{path}: needs a non-empty 'appearances' list")
    size = meta.get("image_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise TrackingInputError(f"{path}: 'image_size' must be [H, W], got {size!r}")
    return meta


def _frame_ids(root: Path, name: str) -> np.ndarray:
    folder = root / name / FRAMES_DIR / CAM
    if not folder.is_dir():
        raise TrackingInputError(f"{folder}: missing; tracking needs the monocular frames of '{name}'")
    ids = sorted(int(p.stem) for p in folder.glob("*.png") if p.stem.isdigit())
    if not ids:
        raise TrackingInputError(f"{folder}: no frames (<frame:06d>.png)")
    return np.asarray(ids, dtype=np.int64)


def _landmarks(root: Path, name: str, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detected landmarks [T, L, 2], their detector ids [L] and confidence [T, L]."""
    path = root / name / LANDMARKS_FILE
    if not path.is_file():
        raise TrackingInputError(f"{path}: missing; tracking needs detected landmarks (pav.prepare writes them)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {k: archive[k] for k in archive.files}
    except Exception as err:
        raise TrackingInputError(f"{path}: not a readable .npz ({type(err).__name__}: {err})") from None
    if "dense" not in data or "dense_indices" not in data:
        raise TrackingInputError(f"{path}: needs 'dense' [T, 1, L, 2] and 'dense_indices' [L], has {sorted(data)}")
    points, ids = data["dense"], data["dense_indices"]
    if points.ndim != 4 or points.shape[0] != n_frames or points.shape[1] != 1 or points.shape[3] != 2 \
            or ids.shape != (points.shape[2],):
        raise TrackingInputError(f"{path}: 'dense' must be [T={n_frames}, 1, L, 2] with 'dense_indices' [L]; got "
                                 f"{points.shape} and {ids.shape}")
    points = points[:, 0].astype(np.float32)  # [T, L, 2]
    confidence = np.isfinite(points).all(-1).astype(np.float32)
    if "dense_visible" in data:  # synthetic truth: occluded points carry no evidence
        confidence *= data["dense_visible"][:, 0].astype(np.float32)
    if "dense_score" in data:  # detector confidence of the frame
        confidence *= np.clip(data["dense_score"][:, 0], 0.0, 1.0)[:, None].astype(np.float32)
    return points, ids.astype(np.int64), confidence


def _source_width(root: Path, name: str) -> float | None:
    """Source width / crop side (the crop's zoom), from prepare.npz and prepare.json when present."""
    summary = root / "prepare.json"
    crop_file = root / name / PREPARE_FILE
    if not summary.is_file() or not crop_file.is_file():
        return None
    try:
        info = json.loads(summary.read_text(encoding="utf-8"))["appearances"][name]
        with np.load(crop_file, allow_pickle=False) as archive:
            side = float(np.median(archive["crop"][:, 2]))
        return float(info["source_size"][1]) / side
    except (KeyError, ValueError, OSError, IndexError, TypeError):
        return None


def read_inputs(root: str | Path, names: list[str] | None = None) -> tuple[dict, list[TrackInput]]:
    """collection.json's meta and every (or the named) appearance's tracking input."""
    root = Path(root)
    meta = read_meta(root)
    size = tuple(meta["image_size"])
    inputs = []
    for entry in meta["appearances"]:
        name = entry["name"] if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise TrackingInputError(f"{root / META_FILE}: appearance entry {entry!r} has no name")
        if names is not None and name not in names:
            continue
        if entry.get("kind", "monocular") != "monocular":
            raise TrackingInputError(f"{root / META_FILE}: appearance '{name}' is {entry.get('kind')!r}; "
                                     "the video tracker fits monocular appearances")
        ids = _frame_ids(root, name)
        points, lmk_ids, confidence = _landmarks(root, name, len(ids))
        inputs.append(TrackInput(name, root / name, ids, points, lmk_ids, confidence, size,
                                 _source_width(root, name)))
    return meta, inputs


def read_split(root: Path, name: str, frame_ids: np.ndarray) -> dict:
    """split.json when present; otherwise pav.prepare's default: the last tenth held out, the stretch before it
    validates."""
    path = root / name / SPLIT_FILE
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return split_json(video_split([int(i) for i in frame_ids]))
