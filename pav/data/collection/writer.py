"""Writing a collection: `CollectionWriter`, collection.json last and atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .checks import (
    _check_camera_arrays,
    _check_finite,
    _check_flame_arrays,
    _check_landmark_arrays,
    _check_split,
    _field,
    _name_problem,
)
from .format import (
    CAMERAS_FILE,
    FLAME_FILE,
    FRAME_EXTS,
    LANDMARKS_FILE,
    META_FILE,
    PNG_COMPRESS_LEVEL,
    SHAPE_FILE,
    SPLIT_FILE,
    Cameras,
    CollectionMeta,
    FlameSequence,
    Split,
    _cross_base,
    _frame_file,
    _mask_file,
    _valid_file,
)
from .meta import _parse_meta
from .problems import _Problems, _raise_value_error
from .splits import split_json


class CollectionWriter:
    """Writes a collection; `finalize()` writes collection.json last, which makes it openable.

    Constructing a writer over an existing collection removes its collection.json first, so a
    rewrite that stops half-way leaves nothing that opens. Arrays are stored as float32
    (frame_ids int64); landmarks are stored as given.
    """

    def __init__(self, root: str | Path, meta: CollectionMeta) -> None:
        p = _Problems()
        _parse_meta(meta.to_json(), "CollectionMeta", p)
        _raise_value_error("CollectionWriter: invalid meta", p)
        self.root = Path(root)
        self.meta = meta
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / META_FILE).unlink(missing_ok=True)
        self._made_dirs: set[Path] = set()

    # -- paths

    def appearance_dir(self, appearance: str) -> Path:
        self.meta.spec(appearance)
        return self.root / appearance

    def frame_path(self, appearance: str, cam: str, frame_id: int, ext: str = ".png") -> Path:
        _check_ref(cam, frame_id, f"frame_path({appearance!r}, {cam!r}, {frame_id!r})")
        if ext not in FRAME_EXTS:
            raise ValueError(f"frame_path: ext must be one of {list(FRAME_EXTS)}, got {ext!r}")
        return _frame_file(self.appearance_dir(appearance), cam, int(frame_id), ext)

    def mask_path(self, appearance: str, cam: str, frame_id: int) -> Path:
        _check_ref(cam, frame_id, f"mask_path({appearance!r}, {cam!r}, {frame_id!r})")
        return _mask_file(self.appearance_dir(appearance), cam, int(frame_id))

    def cross_frame_path(self, appearance: str, drive: str, cam: str, frame_id: int) -> Path:
        _check_ref(cam, frame_id, f"cross_frame_path({appearance!r}, {drive!r}, {cam!r}, {frame_id!r})")
        return _frame_file(self._cross_dir(appearance, drive), cam, int(frame_id))

    def cross_mask_path(self, appearance: str, drive: str, cam: str, frame_id: int) -> Path:
        _check_ref(cam, frame_id, f"cross_mask_path({appearance!r}, {drive!r}, {cam!r}, {frame_id!r})")
        return _mask_file(self._cross_dir(appearance, drive), cam, int(frame_id))

    def _cross_dir(self, appearance: str, drive: str) -> Path:
        if (appearance, drive) not in self.meta.cross:
            raise KeyError(f"(appearance={appearance!r}, drive={drive!r}) is not in CollectionMeta.cross "
                           f"{self.meta.cross}")
        return _cross_base(self.root, appearance, drive)

    # -- arrays

    def write_shape(self, shape: np.ndarray) -> Path:  # shape [n_shape]
        p = _Problems()
        dims = {"n_shape": self.meta.n_shape}
        arr = _field({"shape": shape}, "shape", ("n_shape",), "float", dims, SHAPE_FILE, p)
        if arr is not None:
            _check_finite(arr[:, None], "shape", [str(i) for i in range(len(arr))], "index", SHAPE_FILE, p)
        _raise_value_error("CollectionWriter.write_shape: invalid shape", p)
        assert arr is not None
        path = self.root / SHAPE_FILE
        np.save(path, arr.astype(np.float32))
        return path

    def write_appearance(self, name: str, cameras: Cameras, flame: FlameSequence, split: Split,
                         landmarks: Mapping[str, np.ndarray] | None = None) -> Path:
        """cameras.npz, flame.npz, split.json and (when given) landmarks.npz of one appearance."""
        spec = self.meta.spec(name)
        p = _Problems()
        flame_arrays = {"frame_ids": flame.frame_ids, "expr": flame.expr, "rotations": flame.rotations,
                        "transl": flame.transl}
        checked_flame = _check_flame_arrays(flame_arrays, self.meta.n_expr, f"{name}/{FLAME_FILE}", p)
        n_frames = np.shape(flame.frame_ids)[0] if np.ndim(flame.frame_ids) == 1 else None
        camera_arrays = {"K": cameras.K, "c2w": cameras.c2w, "names": np.asarray(list(cameras.names))}
        checked_cams = _check_camera_arrays(camera_arrays, n_frames, spec.kind, f"{name}/{CAMERAS_FILE}", p)
        ids = None if checked_flame is None else {int(i) for i in checked_flame.frame_ids}
        split_raw = split_json(split)
        names = None if checked_cams is None else list(checked_cams.names)
        _check_split(split_raw, ids, f"{name}/{SPLIT_FILE}", p, names)
        if landmarks is not None:
            n_cams = len(checked_cams) if checked_cams is not None else None
            _check_landmark_arrays(landmarks, n_frames, n_cams, f"{name}/{LANDMARKS_FILE}", p)
        _raise_value_error(f"CollectionWriter.write_appearance({name!r}): invalid data", p)
        assert checked_flame is not None and checked_cams is not None
        return self._save_appearance(name, checked_cams, checked_flame, split_raw, landmarks)

    def _save_appearance(self, name: str, cameras: Cameras, flame: FlameSequence,
                         split: dict[str, Any], landmarks: Mapping[str, np.ndarray] | None) -> Path:
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        names = np.asarray(cameras.names, dtype=str)
        np.savez(base / CAMERAS_FILE, K=cameras.K, c2w=cameras.c2w, names=names)
        np.savez(base / FLAME_FILE, frame_ids=flame.frame_ids, expr=flame.expr, rotations=flame.rotations,
                 transl=flame.transl)
        (base / SPLIT_FILE).write_text(json.dumps(split) + "\n", encoding="utf-8")
        if landmarks is not None:
            np.savez(base / LANDMARKS_FILE, **{k: np.asarray(v) for k, v in landmarks.items()})
        else:
            (base / LANDMARKS_FILE).unlink(missing_ok=True)
        return base

    # -- images

    def write_frame(self, appearance: str, cam: str, frame_id: int, rgb: np.ndarray, mask: np.ndarray,
                    valid: np.ndarray | None = None) -> None:  # uint8 [H, W, 3], uint8 [H, W], bool [H, W]
        """valid: which pixels are real (False: unknown, used by no stage); give it for every frame of an
        appearance or for none."""
        call = f"write_frame({appearance!r}, {cam!r}, {frame_id!r})"
        self._write_pair(self.frame_path(appearance, cam, frame_id),
                         self.mask_path(appearance, cam, frame_id), rgb, mask, call)
        if valid is not None:
            self.write_valid(appearance, cam, frame_id, valid)

    def write_valid(self, appearance: str, cam: str, frame_id: int, valid: np.ndarray) -> None:  # bool [H, W]
        """Which pixels of a written frame are real (False: unknown); for every frame of an appearance or none."""
        valid = np.asarray(valid)
        if valid.dtype != bool or valid.shape != tuple(self.meta.image_size):
            raise ValueError(f"write_valid({appearance!r}, {cam!r}, {frame_id!r}): valid must be bool "
                             f"{tuple(self.meta.image_size)}, got {valid.dtype} {valid.shape}")
        self._save_png(self.valid_path(appearance, cam, frame_id), valid.astype(np.uint8) * 255)

    def valid_path(self, appearance: str, cam: str, frame_id: int) -> Path:
        _check_ref(cam, frame_id, f"valid_path({appearance!r}, {cam!r}, {frame_id!r})")
        return _valid_file(self.appearance_dir(appearance), cam, int(frame_id))

    def write_cross_frame(self, appearance: str, drive: str, cam: str, frame_id: int, rgb: np.ndarray,
                          mask: np.ndarray) -> None:  # rgb uint8 [H, W, 3], mask uint8 [H, W]
        call = f"write_cross_frame({appearance!r}, {drive!r}, {cam!r}, {frame_id!r})"
        self._write_pair(self.cross_frame_path(appearance, drive, cam, frame_id),
                         self.cross_mask_path(appearance, drive, cam, frame_id), rgb, mask, call)

    def _write_pair(self, frame_path: Path, mask_path: Path, rgb: np.ndarray, mask: np.ndarray,
                    call: str) -> None:
        H, W = self.meta.image_size
        _check_image_array(rgb, "rgb", (H, W, 3), call)
        _check_image_array(mask, "mask", (H, W), call)
        self._save_png(frame_path, rgb)
        self._save_png(mask_path, mask)

    def _save_png(self, path: Path, image: np.ndarray) -> None:
        if path.parent not in self._made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(path.parent)
        image = np.ascontiguousarray(image)
        Image.fromarray(image).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)

    # -- the end

    def finalize(self) -> Path:
        """Writes collection.json (temp file, then os.replace) once shape and appearances are written."""
        missing = [] if (self.root / SHAPE_FILE).is_file() else [f"{SHAPE_FILE} (write_shape)"]
        for spec in self.meta.appearances:
            for name in (CAMERAS_FILE, FLAME_FILE, SPLIT_FILE):
                if not (self.root / spec.name / name).is_file():
                    missing.append(f"{spec.name}/{name} (write_appearance)")
        if missing:
            raise ValueError(f"CollectionWriter.finalize: ROOT={self.root} is missing {', '.join(missing)}")
        path = self.root / META_FILE
        tmp = self.root / f".{META_FILE}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(self.meta.to_json(), indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path


def _check_ref(cam: str, frame_id: int, call: str) -> None:
    problem = _name_problem(cam)
    if problem is not None:
        raise ValueError(f"{call}: camera name {problem}")
    if isinstance(frame_id, bool) or not isinstance(frame_id, int | np.integer) or frame_id < 0:
        raise ValueError(f"{call}: frame_id must be a non-negative integer, got {frame_id!r}")


def _check_image_array(image: np.ndarray, name: str, shape: tuple[int, ...], call: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != shape:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{call}: {name} must be uint8 with shape {shape} (collection.json 'image_size' "
                         f"[H, W] = {list(shape[:2])}), got {got}")
