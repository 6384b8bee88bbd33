"""Reading a collection's files: every file and field checked, every problem listed in one CollectionError."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checks import (
    _check_camera_arrays,
    _check_camera_names,
    _check_finite,
    _check_flame_arrays,
    _check_frame_ids,
    _check_landmark_arrays,
    _check_split,
    _field,
    _id_list,
)
from .format import (
    CAMERAS_FILE,
    CROSS_DIR,
    FLAME_FILE,
    FRAME_EXTS,
    FRAMES_DIR,
    LANDMARKS_FILE,
    MASK_EXTS,
    MASKS_DIR,
    META_FILE,
    SHAPE_FILE,
    SPLIT_FILE,
    VALID_DIR,
    AppearanceSpec,
    FlameSequence,
    Split,
    _cross_base,
    _fmt_id,
    _scan_images,
)
from .images import _ImageJob, _verify_images
from .meta import _MetaDraft, _parse_meta
from .opened import Appearance, Collection
from .problems import CollectionError, _list_some, _plural, _Problems, _raise_value_error


@dataclass
class _Layout:
    cams: list[str]  # camera names from cameras.npz
    test: list[int] | None  # split.json test ids


def _usable_frame_ids(arrays: Mapping[str, Any] | None) -> list[int] | None:
    """flame.npz frame_ids when they alone are valid, so frames get checked when other fields are bad."""
    if arrays is None:
        return None
    scratch = _Problems()
    ids = _field(arrays, "frame_ids", ("T",), "int", {}, FLAME_FILE, scratch)
    if ids is not None:
        _check_frame_ids(ids, FLAME_FILE, scratch)
    return None if ids is None or scratch else [int(i) for i in ids]


def _usable_camera_names(arrays: Mapping[str, Any] | None) -> list[str] | None:
    """cameras.npz names when they alone are valid, so frames get checked when K or c2w are bad."""
    if arrays is None:
        return None
    scratch = _Problems()
    names = _field(arrays, "names", ("C",), "str", {}, CAMERAS_FILE, scratch)
    if names is not None:
        _check_camera_names([str(n) for n in names], CAMERAS_FILE, scratch)
    return None if names is None or scratch else [str(n) for n in names]


class _Reader:
    """One validating pass over a collection: collects problems and image jobs, then raises or builds."""

    def __init__(self, root: Path, level: str) -> None:
        self.root = root
        self.level = level
        self.p = _Problems()
        self.jobs: list[_ImageJob] = []
        self.layouts: dict[str, _Layout] = {}  # appearance -> what its cross pairs are checked against

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def fail(self) -> CollectionError:
        return CollectionError(self.p.items, self.root)

    def read(self) -> Collection:
        draft = self.read_meta()
        if draft is None:
            raise self.fail()
        shape = self.read_shape(draft.n_shape)
        appearances: dict[str, Appearance] = {}
        for spec in draft.appearances:
            appearance = self.read_appearance(spec, draft)
            if appearance is not None:
                appearances[spec.name] = appearance
        cross_files = self.read_cross(draft)
        self.p.items.extend(_verify_images(self.jobs, self.level))
        if self.p or shape is None:
            raise self.fail()
        return Collection(self.root, draft.complete(), shape, appearances, cross_files)

    # -- collection.json, shape.npy

    def read_meta(self) -> _MetaDraft | None:
        if not self.root.is_dir():
            self.p.add(str(self.root), "is not a folder")
            return None
        path = self.root / META_FILE
        if not path.is_file():
            self.p.add(META_FILE, "missing (CollectionWriter.finalize() writes it last; without it the "
                                  "collection is incomplete)")
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            self.p.add(META_FILE, f"not valid JSON ({err})")
            return None
        return _parse_meta(raw, META_FILE, self.p)

    def read_shape(self, n_shape: int | None) -> np.ndarray | None:
        path = self.root / SHAPE_FILE
        if not path.is_file():
            self.p.add(SHAPE_FILE, "missing")
            return None
        try:
            shape = np.load(path, allow_pickle=False)
        except Exception as err:
            self.p.add(SHAPE_FILE, f"not a readable .npy file ({type(err).__name__}: {err})")
            return None
        before = len(self.p)
        dims = {} if n_shape is None else {"n_shape": n_shape}
        arr = _field({"shape": shape}, "shape", ("n_shape",), "float", dims, SHAPE_FILE, self.p)
        if arr is not None:
            _check_finite(arr[:, None], "shape", [str(i) for i in range(len(arr))], "index", SHAPE_FILE,
                          self.p)
        return None if arr is None or len(self.p) > before else arr.astype(np.float32)

    # -- one appearance

    def load_npz(self, path: Path, optional: bool = False) -> dict[str, np.ndarray] | None:
        rel = self.rel(path)
        if not path.is_file():
            if not optional:
                self.p.add(rel, "missing")
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                if not isinstance(archive, np.lib.npyio.NpzFile):
                    self.p.add(rel, "not an .npz archive")
                    return None
                return {key: archive[key] for key in archive.files}
        except Exception as err:
            self.p.add(rel, f"not a readable .npz file ({type(err).__name__}: {err})")
            return None

    def read_appearance(self, spec: AppearanceSpec, draft: _MetaDraft) -> Appearance | None:
        """Checks every file of one appearance, as far as each can be checked when others are bad."""
        base = self.root / spec.name
        if not base.is_dir():
            self.p.add(f"{spec.name}/", f"appearance folder missing (listed in {META_FILE})")
            return None
        flame_arrays = self.load_npz(base / FLAME_FILE)
        camera_arrays = self.load_npz(base / CAMERAS_FILE)
        ids = _usable_frame_ids(flame_arrays)
        cams = _usable_camera_names(camera_arrays)
        n_frames = None if ids is None else len(ids)
        flame = None if flame_arrays is None else _check_flame_arrays(
            flame_arrays, draft.n_expr, self.rel(base / FLAME_FILE), self.p)
        cameras = None if camera_arrays is None else _check_camera_arrays(
            camera_arrays, n_frames, spec.kind, self.rel(base / CAMERAS_FILE), self.p)
        split, test_ids = self.read_split(base, ids, cams)
        landmarks = self.read_landmarks(base, n_frames, None if cams is None else len(cams))
        frame_files: dict[str, dict[int, Path]] = {}
        valid_files: dict[str, dict[int, Path]] = {}
        if ids is not None and cams is not None:
            frame_files = self.check_image_folders(base, cams, ids, FLAME_FILE, f"{spec.name}/{CAMERAS_FILE}",
                                                   draft.image_size)
            self.layouts[spec.name] = _Layout(cams, test_ids)
            valid_files = self.check_valid_folder(base, cams, ids, f"{spec.name}/{CAMERAS_FILE}", draft)
        if flame is None or cameras is None or split is None or draft.image_size is None:
            return None
        return Appearance(spec.name, spec.kind, base, cameras, flame, split, landmarks, draft.image_size,
                          self.root, frame_files, valid_files)

    def read_split(self, base: Path, frame_ids: list[int] | None,
                   camera_names: list[str] | None) -> tuple[Split | None, list[int] | None]:
        """The split, and its test ids alone when only they are usable."""
        path = base / SPLIT_FILE
        rel = self.rel(path)
        if not path.is_file():
            self.p.add(rel, "missing")
            return None, None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            self.p.add(rel, f"not valid JSON ({err})")
            return None, None
        split = _check_split(raw, None if frame_ids is None else set(frame_ids), rel, self.p, camera_names)
        if split is not None:
            return split, split.test
        return None, _id_list(raw, "test", rel, _Problems()) if isinstance(raw, dict) else None

    def read_landmarks(self, base: Path, n_frames: int | None,
                       n_cams: int | None) -> dict[str, np.ndarray] | None:
        """The arrays, or None when there is no landmarks.npz (or it is invalid: a problem then)."""
        path = base / LANDMARKS_FILE
        arrays = self.load_npz(path, optional=True)
        if arrays is None:
            return None
        return _check_landmark_arrays(arrays, n_frames, n_cams, self.rel(path), self.p)

    # -- image folders

    def check_image_folders(self, base: Path, cams: Sequence[str], ids: list[int], source: str,
                            cameras_file: str, size: tuple[int, int] | None) -> dict[str, dict[int, Path]]:
        """frames/<cam> and masks/<cam> for every camera hold exactly `ids`; returns cam -> id -> frame."""
        frame_files: dict[str, dict[int, Path]] = {}
        for sub, exts, what, mode in ((FRAMES_DIR, FRAME_EXTS, "image", "RGB"),
                                      (MASKS_DIR, MASK_EXTS, "mask", "L")):
            self.check_camera_folders(base / sub, cams, cameras_file)
            for cam in cams:
                found = self.check_image_folder(base / sub / cam, ids, exts, what, source, mode, size)
                if sub == FRAMES_DIR:
                    frame_files[cam] = found
        return frame_files

    def check_valid_folder(self, base: Path, cams: Sequence[str], ids: list[int], cameras_file: str,
                           draft: _MetaDraft) -> dict[str, dict[int, Path]]:
        """valid/<cam> (optional, version 2): when present, one mask per frame of every camera."""
        folder = base / VALID_DIR
        if not folder.exists():
            return {}
        if draft.version < 2:
            self.p.add(self.rel(folder), f"validity masks need collection version 2, {META_FILE} says "
                                         f"version {draft.version}")
            return {}
        self.check_camera_folders(folder, cams, cameras_file)
        return {cam: self.check_image_folder(folder / cam, ids, MASK_EXTS, "validity mask", FLAME_FILE, "L",
                                             draft.image_size) for cam in cams}

    def check_camera_folders(self, folder: Path, cams: Sequence[str], cameras_file: str) -> None:
        if not folder.is_dir():
            return
        with os.scandir(folder) as entries:
            extra = sorted(e.name for e in entries if e.name not in cams and not e.name.startswith("."))
        if extra:
            self.p.add(self.rel(folder), f"holds {_plural(len(extra), 'entry')} for cameras not in "
                                         f"{cameras_file} names: {_list_some(extra)}")

    def check_image_folder(self, folder: Path, ids: list[int], exts: Sequence[str], what: str,
                           source: str, mode: str, size: tuple[int, int] | None) -> dict[int, Path]:
        rel = self.rel(folder)
        if not folder.is_dir():
            self.p.add(rel, f"folder missing ({source} has {_plural(len(ids), 'frame')})")
            return {}
        found, odd = _scan_images(folder, exts)
        if odd:
            names = " or ".join(f"<frame:06d>{e}" for e in exts)
            self.p.add(rel, f"{_plural(len(odd), 'unexpected file')} (expected {names}): {_list_some(odd)}")
        wanted = set(ids)
        missing = sorted(wanted - found.keys())
        extra = sorted(found.keys() - wanted)
        if missing or extra:
            parts = [f"{rel} has {_plural(len(found), what)}, {source} has {_plural(len(ids), 'frame')}"]
            if missing:
                parts.append("missing: " + _list_some([_fmt_id(i) for i in missing]))
            if extra:
                parts.append(f"extra (not in {source}): " + _list_some([_fmt_id(i) for i in extra]))
            self.p.items.append("; ".join(parts))
        present = {i: found[i] for i in sorted(wanted & found.keys())}
        self.jobs.extend(_ImageJob(path, self.rel(path), mode, size) for path in present.values())
        return present

    # -- cross-appearance ground truth

    def read_cross(self, draft: _MetaDraft) -> dict[tuple[str, str], dict[str, dict[int, Path]]]:
        self.check_unlisted_cross(draft.cross)
        files: dict[tuple[str, str], dict[str, dict[int, Path]]] = {}
        for appearance, drive in draft.cross:
            layout = self.layouts.get(drive)
            if layout is None or layout.test is None:
                continue  # the drive's own files are broken, and reported already
            base = _cross_base(self.root, appearance, drive)
            if not base.is_dir():
                self.p.add(self.rel(base), f"folder missing (listed in {META_FILE} 'cross')")
                continue
            source = f"{drive}/{SPLIT_FILE} 'test'"
            files[(appearance, drive)] = self.check_image_folders(
                base, layout.cams, layout.test, source, f"{drive}/{CAMERAS_FILE}", draft.image_size)
        return files

    def check_unlisted_cross(self, pairs: list[tuple[str, str]]) -> None:
        cross = self.root / CROSS_DIR
        if not cross.is_dir():
            return
        for a in sorted(os.scandir(cross), key=lambda e: e.name):
            if a.is_dir() and not a.name.startswith("."):
                for d in sorted(os.scandir(a.path), key=lambda e: e.name):
                    if d.is_dir() and (a.name, d.name) not in pairs:
                        self.p.add(f"{CROSS_DIR}/{a.name}/{d.name}", f"not listed in {META_FILE} 'cross'")


def read_flame_npz(path: str | Path, n_expr: int | None = None) -> FlameSequence:
    """One flame.npz on its own (a drive sequence), checked as the reader checks a collection's.

    Raises FileNotFoundError when it is missing and ValueError listing every problem, each naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    p = _Problems()
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            arrays = {key: archive[key] for key in archive.files}
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise ValueError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from err
    flame = _check_flame_arrays(arrays, n_expr, str(path), p)
    n = "n_expr" if n_expr is None else f"n_expr={n_expr}"
    _raise_value_error(f"invalid {FLAME_FILE} (frame_ids [T], expr [T, {n}], rotations [T, 5, 3], transl [T, 3]):", p)
    assert flame is not None
    return flame
