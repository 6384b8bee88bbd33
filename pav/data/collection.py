"""The collection format, version 1: the one on-disk layout every data source is converted to.

    ROOT/collection.json   {"format": "pav-collection", "version": 1, "subject", "head_model",
                            "n_shape", "n_expr", "image_size": [H, W],
                            "appearances": [{"name", "kind"}], "cross": [{"appearance", "drive"}]}
    ROOT/shape.npy         identity shape [n_shape], shared by every appearance
    ROOT/<appearance>/
        frames/<cam>/<id:06d>.png   RGB 8-bit (.jpg also accepted)
        masks/<cam>/<id:06d>.png    8-bit single-channel alpha matte
        cameras.npz                 K [C,3,3], c2w [C,4,4] or [T,C,4,4] (OpenCV camera-to-world), names [C]
        flame.npz                   frame_ids [T], expr [T,n_expr], rotations [T,5,3], transl [T,3]
        landmarks.npz               optional: arrays [T,C,...]; index arrays named "*_indices" [M]
        split.json                  {"train": [ids], "test": [ids]}
    ROOT/cross/<appearance>/<drive>/{frames,masks}/<cam>/<id:06d>.png
                                    <appearance> rendered with <drive>'s cameras and FLAME
                                    parameters at <drive>'s test frame ids (synthetic data only)

`CollectionWriter` writes it, collection.json last and atomically, so an interrupted write leaves
nothing that opens. `Collection.open` checks all of it and raises one `CollectionError` that lists
every problem, each naming the file (relative to ROOT) and the field.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

FORMAT = "pav-collection"
VERSION = 1
KINDS = ("monocular", "multiview")
VerifyLevel = Literal["full", "header", "none"]
VERIFY_LEVELS: tuple[VerifyLevel, ...] = ("full", "header", "none")
ROTATION_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
FRAME_EXTS = (".png", ".jpg")
MASK_EXTS = (".png",)

META_FILE = "collection.json"
SHAPE_FILE = "shape.npy"
CAMERAS_FILE = "cameras.npz"
FLAME_FILE = "flame.npz"
LANDMARKS_FILE = "landmarks.npz"
SPLIT_FILE = "split.json"
CROSS_DIR = "cross"
FRAMES_DIR = "frames"
MASKS_DIR = "masks"

MAX_LISTED = 10  # ids listed per problem before "... and N more"
VERIFY_WORKERS = 4
POSE_TOL = 1e-3  # last row of c2w, orthonormality of its rotation
PNG_COMPRESS_LEVEL = 1

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_IMAGE_NAME_RE = re.compile(r"(\d{6,})(\.[A-Za-z]+)")
_META_KEYS = ("format", "version", "subject", "head_model", "n_shape", "n_expr", "image_size",
              "appearances", "cross", "uv_layout")


# ----------------------------------------------------------------------------- errors


class CollectionError(ValueError):
    """An invalid collection. `problems` lists every problem found, one per line of the message."""

    def __init__(self, problems: Sequence[str], root: str | Path | None = None) -> None:
        self.problems: list[str] = list(problems)
        self.root: Path | None = None if root is None else Path(root)
        super().__init__(_format_problems(self.problems, self.root))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems, self.root))


def _format_problems(problems: Sequence[str], root: Path | None) -> str:
    n = len(problems)
    where = f" ROOT={root}" if root is not None else ""
    head = f"invalid collection{where} ({n} problem{'' if n == 1 else 's'}"
    head += ", paths relative to ROOT):" if root is not None else "):"
    return "\n".join([head, *(f"  - {p}" for p in problems)])


class _Problems:
    """Collects "<file>: <message>" lines."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _raise_value_error(title: str, problems: _Problems) -> None:
    if problems:
        raise ValueError("\n".join([title, *(f"  - {p}" for p in problems.items)]))


def _list_some(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    rest = len(items) - limit
    return shown + (f" ... and {rest} more" if rest > 0 else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _fmt_id(frame_id: int) -> str:
    return f"{frame_id:06d}"


# ----------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class AppearanceSpec:
    name: str
    kind: str  # "monocular" | "multiview"


@dataclass
class CollectionMeta:
    subject: str
    head_model: str  # path to a head model, or "procedural:<seed>"
    n_shape: int
    n_expr: int
    image_size: tuple[int, int]  # (H, W)
    appearances: list[AppearanceSpec]
    cross: list[tuple[str, str]] = field(default_factory=list)  # (appearance, drive)
    uv_layout: str | None = None  # the head model's separate uv layout file (official FLAME ships one)

    @property
    def appearance_names(self) -> list[str]:
        return [a.name for a in self.appearances]

    def spec(self, name: str) -> AppearanceSpec:
        for a in self.appearances:
            if a.name == name:
                return a
        raise KeyError(f"unknown appearance {name!r}; collection.json lists {self.appearance_names}")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "subject": self.subject,
            "head_model": self.head_model,
            "n_shape": _plain(self.n_shape),
            "n_expr": _plain(self.n_expr),
            "image_size": [_plain(v) for v in self.image_size],
            "appearances": [{"name": a.name, "kind": a.kind} for a in self.appearances],
            "cross": [{"appearance": a, "drive": d} for a, d in self.cross],
            **({} if self.uv_layout is None else {"uv_layout": self.uv_layout}),
        }


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so that JSON and the type checks accept them."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(eq=False)
class Cameras:
    K: np.ndarray  # [C, 3, 3] intrinsics in pixels
    c2w: np.ndarray  # [C, 4, 4] or per frame [T, C, 4, 4]; camera-to-world, OpenCV (x right, y down, z fwd)
    names: list[str]  # [C]

    @property
    def per_frame(self) -> bool:
        return self.c2w.ndim == 4

    def __len__(self) -> int:
        return len(self.names)

    def c2w_at(self, frame_index: int) -> np.ndarray:  # [C, 4, 4]
        """Poses at position `frame_index` of the flame sequence (an index, not a frame id)."""
        if not self.per_frame:
            return self.c2w
        if not -len(self.c2w) <= frame_index < len(self.c2w):
            raise IndexError(f"cameras.npz field 'c2w': frame index {frame_index} out of range "
                             f"for {len(self.c2w)} frames")
        return self.c2w[frame_index]

    def index_of(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"camera {name!r} not in cameras.npz names {self.names}") from None


@dataclass(eq=False)
class FlameSequence:
    frame_ids: np.ndarray  # [T] int64
    expr: np.ndarray  # [T, n_expr]
    rotations: np.ndarray  # [T, 5, 3] axis-angle: global, neck, jaw, left eye, right eye
    transl: np.ndarray  # [T, 3]

    def __len__(self) -> int:
        return len(self.frame_ids)

    @cached_property
    def _positions(self) -> dict[int, int]:
        return {int(f): i for i, f in enumerate(self.frame_ids)}

    def index_of(self, frame_id: int) -> int:
        try:
            return self._positions[int(frame_id)]
        except KeyError:
            raise KeyError(f"frame id {frame_id} not in flame.npz field 'frame_ids'") from None


@dataclass
class Split:
    train: list[int]
    test: list[int]
    test_cameras: list[str] = field(default_factory=list)  # multiview: cameras never trained on (novel views)

    def cameras(self, frame_id: int, camera_names: Sequence[str], which: str) -> list[str]:
        """The cameras of one frame in the train or held-out set: test frames are held out in every camera,
        train frames only in the test cameras."""
        held = set(self.test_cameras)
        if which == "train":
            return [c for c in camera_names if c not in held] if frame_id in set(self.train) else []
        if frame_id in set(self.test):
            return list(camera_names)
        return [c for c in camera_names if c in held] if frame_id in set(self.train) else []


# ----------------------------------------------------------------------------- field checks
# Shared by the writer (before writing) and the reader (after loading); each returns the
# checked value, or None after adding problems.

Dim = int | str  # a fixed size, or a name bound on first sight ("T", "C")


def _describe(expected: Sequence[Dim], dims: Mapping[str, int]) -> str:
    parts = [f"{d}={dims[d]}" if isinstance(d, str) and d in dims else str(d) for d in expected]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _match_shape(shape: tuple[int, ...], expected: Sequence[Dim], dims: dict[str, int]) -> bool:
    """True when `shape` fits `expected`; binds the named dims it sees first into `dims`."""
    if len(shape) != len(expected):
        return False
    bound = dict(dims)
    for got, want in zip(shape, expected, strict=True):
        if isinstance(want, str):
            if bound.setdefault(want, got) != got:
                return False
        elif got != want:
            return False
    dims.update(bound)
    return True


def _dtype_problem(a: np.ndarray, kind: str) -> str | None:
    if kind == "float" and (a.dtype.kind in "iuf"):
        return None
    if kind == "int" and a.dtype.kind in "iu":
        return None
    if kind == "str" and a.dtype.kind == "U":
        return None
    if kind == "any" and a.dtype.kind in "biuf":
        return None
    wanted = {"float": "numbers", "int": "integers", "str": "strings", "any": "numbers or bools"}[kind]
    return f"must hold {wanted}, got dtype {a.dtype}"


def _field(arrays: Mapping[str, Any], name: str, expected: Sequence[Dim], kind: str,
           dims: dict[str, int], where: str, p: _Problems, also: str = "") -> np.ndarray | None:
    """arrays[name] when present, of dtype `kind` and of shape `expected` (binding named dims)."""
    if name not in arrays:
        p.add(where, f"missing field '{name}'")
        return None
    a = np.asarray(arrays[name])
    problem = _dtype_problem(a, kind)
    if problem is not None:
        p.add(where, f"field '{name}' {problem}")
        return None
    want = _describe(expected, dims)
    if not _match_shape(a.shape, expected, dims):
        p.add(where, f"field '{name}' has shape {a.shape}, expected {want}{also}")
        return None
    return a


def _check_finite(a: np.ndarray, name: str, labels: Sequence[str], label: str, where: str,
                  p: _Problems) -> bool:
    """Reports NaN/inf along the first axis of `a`, labelled by `labels` ("frame 12")."""
    if a.dtype.kind != "f" or a.shape[0] == 0:
        return True
    flat = a.reshape(a.shape[0], -1)
    ok = True
    for what, rows in (("NaN", np.isnan(flat).any(axis=1)), ("inf", np.isinf(flat).any(axis=1))):
        idx = np.flatnonzero(rows)
        if len(idx):
            ok = False
            noun = label if len(idx) == 1 else label + "s"
            p.add(where, f"{what} in field '{name}' at {noun} {_list_some([labels[i] for i in idx])}")
    return ok


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not _NAME_RE.fullmatch(name) or name in (".", ".."):
        return f"{name!r} must be non-empty and use only [A-Za-z0-9_.-]"
    return None


def _check_flame_arrays(arrays: Mapping[str, Any], n_expr: int | None, where: str,
                        p: _Problems) -> FlameSequence | None:
    dims: dict[str, int] = {} if n_expr is None else {"n_expr": n_expr}
    before = len(p)
    ids = _field(arrays, "frame_ids", ("T",), "int", dims, where, p)
    expr = _field(arrays, "expr", ("T", "n_expr"), "float", dims, where, p)
    rotations = _field(arrays, "rotations", ("T", len(ROTATION_NAMES), 3), "float", dims, where, p)
    transl = _field(arrays, "transl", ("T", 3), "float", dims, where, p)
    if ids is not None:
        _check_frame_ids(ids, where, p)
    if dims.get("T") == 0:
        p.add(where, "has 0 frames; at least one is required")
    labels, label = _frame_labels(ids, dims.get("T", 0))
    for name, a in (("expr", expr), ("rotations", rotations), ("transl", transl)):
        if a is not None:
            _check_finite(a, name, labels, label, where, p)
    if len(p) > before or ids is None or expr is None or rotations is None or transl is None:
        return None
    return FlameSequence(ids.astype(np.int64), expr.astype(np.float32),
                         rotations.astype(np.float32), transl.astype(np.float32))


def _check_frame_ids(ids: np.ndarray, where: str, p: _Problems) -> None:
    values, counts = np.unique(ids, return_counts=True)
    dup = [str(v) for v in values[counts > 1]]
    if dup:
        p.add(where, f"field 'frame_ids' has duplicates: {_list_some(dup)}")
    negative = [str(v) for v in values[values < 0]]
    if negative:
        p.add(where, f"field 'frame_ids' has negative ids: {_list_some(negative)}")


def _frame_labels(ids: np.ndarray | None, n: int) -> tuple[list[str], str]:
    if ids is not None and len(ids) == n:
        return [str(int(i)) for i in ids], "frame"
    return [str(i) for i in range(n)], "frame index"


def _check_camera_arrays(arrays: Mapping[str, Any], n_frames: int | None, kind: str | None,
                         where: str, p: _Problems) -> Cameras | None:
    before = len(p)
    dims: dict[str, int] = {}
    K = _field(arrays, "K", ("C", 3, 3), "float", dims, where, p)
    names = _field(arrays, "names", ("C",), "str", dims, where, p)
    c2w = _field_c2w(arrays, n_frames, dims, where, p)
    n_cams = dims.get("C")
    if n_cams == 0:
        p.add(where, "has 0 cameras; at least one is required")
    if kind == "monocular" and n_cams is not None and n_cams != 1:
        p.add(where, f"a monocular appearance must have exactly 1 camera, got {n_cams}")
    cam_labels = [str(n) for n in names] if names is not None else [str(i) for i in range(n_cams or 0)]
    if names is not None:
        _check_camera_names([str(n) for n in names], where, p)
    if K is not None and _check_finite(K, "K", cam_labels, "camera", where, p):
        _check_last_row(K, [0, 0, 1], "K", cam_labels, where, p)
    if c2w is not None:
        _check_c2w_values(c2w, cam_labels, where, p)
    if len(p) > before or K is None or c2w is None or names is None:
        return None
    return Cameras(K.astype(np.float32), c2w.astype(np.float32), [str(n) for n in names])


def _field_c2w(arrays: Mapping[str, Any], n_frames: int | None, dims: dict[str, int], where: str,
               p: _Problems) -> np.ndarray | None:
    raw = arrays.get("c2w")
    per_frame = raw is not None and np.ndim(raw) == 4
    if per_frame and n_frames is not None:
        dims["T"] = n_frames
    expected: tuple[Dim, ...] = ("T", "C", 4, 4) if per_frame else ("C", 4, 4)
    also = "" if per_frame else " or (T, C, 4, 4)"
    return _field(arrays, "c2w", expected, "float", dims, where, p, also)


def _check_camera_names(names: list[str], where: str, p: _Problems) -> None:
    for name in names:
        problem = _name_problem(name)
        if problem is not None:
            p.add(where, f"field 'names': camera name {problem}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        p.add(where, f"field 'names' has duplicates: {_list_some(dup)}")


def _check_last_row(m: np.ndarray, row: list[float], name: str, cam_labels: Sequence[str], where: str,
                    p: _Problems) -> bool:
    """m [..., C, n, n]: the last row of every matrix must equal `row`."""
    err = np.abs(m[..., -1, :] - np.asarray(row)).max(axis=-1)  # [..., C]
    bad = np.argwhere(err > POSE_TOL)
    if len(bad) == 0:
        return True
    p.add(where, f"field '{name}' last row must be {row}; wrong for {_where_matrices(bad, cam_labels)}")
    return False


def _where_matrices(bad: np.ndarray, cam_labels: Sequence[str]) -> str:
    """bad [N, 1 or 2]: (camera,) or (frame index, camera) positions."""
    if bad.shape[1] == 1:
        return "camera " + _list_some([cam_labels[c] for (c,) in bad])
    return _list_some([f"frame index {t} camera {cam_labels[c]}" for t, c in bad])


def _check_c2w_values(c2w: np.ndarray, cam_labels: Sequence[str], where: str, p: _Problems) -> None:
    per_frame = c2w.ndim == 4
    labels = [str(i) for i in range(len(c2w))] if per_frame else list(cam_labels)
    if not _check_finite(c2w, "c2w", labels, "frame index" if per_frame else "camera", where, p):
        return
    if not _check_last_row(c2w, [0, 0, 0, 1], "c2w", cam_labels, where, p):
        return
    R = c2w[..., :3, :3].astype(np.float64)  # [..., C, 3, 3]
    err = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-1, -2))
    bad = np.argwhere((err > POSE_TOL) | (np.linalg.det(R) < 0))
    if len(bad):
        p.add(where, "field 'c2w' rotation must be orthonormal with determinant +1; wrong for "
              + _where_matrices(bad, cam_labels))


def _check_split(raw: object, frame_ids: set[int] | None, where: str, p: _Problems,
                 camera_names: Sequence[str] | None = None) -> Split | None:
    if not isinstance(raw, dict):
        p.add(where, f"must be a JSON object with 'train' and 'test', got {type(raw).__name__}")
        return None
    before = len(p)
    for key in sorted(set(raw) - {"train", "test", "test_cameras"}):
        p.add(where, f"unknown field '{key}' (expected 'train', 'test' and optionally 'test_cameras')")
    test_cameras = _check_test_cameras(raw.get("test_cameras", []), camera_names, where, p)
    lists = {key: _id_list(raw, key, where, p) for key in ("train", "test")}
    train, test = lists["train"], lists["test"]
    if test is not None and not test:
        p.add(where, "field 'test' is empty; at least one test frame is required")
    for key, ids in lists.items():
        if ids is not None and frame_ids is not None:
            unknown = [str(i) for i in ids if i not in frame_ids]
            if unknown:
                p.add(where, f"field '{key}' has frame ids not in flame.npz 'frame_ids': "
                             f"{_list_some(unknown)}")
    if train is not None and test is not None:
        both = sorted(set(train) & set(test))
        if both:
            shown = _list_some([str(i) for i in both])
            p.add(where, f"fields 'train' and 'test' overlap at frame ids {shown}")
    if len(p) > before or train is None or test is None:
        return None
    return Split(train, test, test_cameras)


def _check_test_cameras(raw: object, camera_names: Sequence[str] | None, where: str, p: _Problems) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        p.add(where, "field 'test_cameras' must be a list of camera names")
        return []
    if camera_names is not None:
        unknown = [c for c in raw if c not in camera_names]
        if unknown:
            p.add(where, f"field 'test_cameras' names cameras not in cameras.npz 'names': {_list_some(unknown)}")
        elif raw and len(set(raw)) >= len(camera_names):
            p.add(where, "field 'test_cameras' holds out every camera; at least one must remain for training")
    return list(raw)


def _id_list(raw: dict[str, Any], key: str, where: str, p: _Problems) -> list[int] | None:
    if key not in raw:
        p.add(where, f"missing field '{key}'")
        return None
    value = raw[key]
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        p.add(where, f"field '{key}' must be a list of integer frame ids")
        return None
    values, counts = np.unique(np.asarray(value, dtype=np.int64), return_counts=True)
    dup = [int(v) for v in values[counts > 1]]
    if dup:
        p.add(where, f"field '{key}' has duplicates: {_list_some([str(v) for v in dup])}")
        return None
    return list(value)


def _check_landmark_arrays(arrays: Mapping[str, Any], n_frames: int | None, n_cams: int | None,
                           where: str, p: _Problems) -> dict[str, np.ndarray] | None:
    """Arrays [T, C, ...] (NaN allowed: undetected points); "<x>_indices" [M] index arrays."""
    before = len(p)
    out: dict[str, np.ndarray] = {}
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        problem = _dtype_problem(a, "int" if name.endswith("_indices") else "any")
        if problem is not None:
            p.add(where, f"field '{name}' {problem}")
        elif name.endswith("_indices"):
            _check_index_array(arrays, name, a, where, p)
        elif a.ndim < 2 or (n_frames is not None and a.shape[0] != n_frames) or (
                n_cams is not None and a.shape[1] != n_cams):
            want = f"({'T' if n_frames is None else f'T={n_frames}'}, " \
                   f"{'C' if n_cams is None else f'C={n_cams}'}, ...)"
            p.add(where, f"field '{name}' has shape {a.shape}, expected {want}")
        out[name] = a
    return None if len(p) > before else out


def _check_index_array(arrays: Mapping[str, Any], name: str, a: np.ndarray, where: str,
                       p: _Problems) -> None:
    if a.ndim != 1:
        p.add(where, f"field '{name}' has shape {a.shape}, expected (M,)")
        return
    base = name[: -len("_indices")]
    if base in arrays:
        b = np.asarray(arrays[base])
        if b.ndim < 3 or b.shape[2] != len(a):
            p.add(where, f"field '{base}' has shape {b.shape}, expected (T, C, M={len(a)}, ...) "
                         f"to match field '{name}'")


# ----------------------------------------------------------------------------- collection.json


@dataclass
class _MetaDraft:
    """collection.json as far as it is valid; None where a field is not."""

    subject: str | None = None
    head_model: str | None = None
    n_shape: int | None = None
    n_expr: int | None = None
    image_size: tuple[int, int] | None = None
    appearances: list[AppearanceSpec] = field(default_factory=list)
    cross: list[tuple[str, str]] = field(default_factory=list)
    uv_layout: str | None = None

    def complete(self) -> CollectionMeta:
        assert self.subject is not None and self.head_model is not None
        assert self.n_shape is not None and self.n_expr is not None and self.image_size is not None
        return CollectionMeta(self.subject, self.head_model, self.n_shape, self.n_expr,
                              self.image_size, self.appearances, self.cross, self.uv_layout)


def _parse_meta(raw: object, where: str, p: _Problems) -> _MetaDraft | None:
    """None when `raw` is not a version-1 collection at all (nothing else can be checked)."""
    if not isinstance(raw, dict):
        p.add(where, f"must be a JSON object, got {type(raw).__name__}")
        return None
    if raw.get("format") != FORMAT:
        p.add(where, f"field 'format' must be {FORMAT!r}, got {raw.get('format')!r}")
        return None
    version = raw.get("version")
    if type(version) is not int or version != VERSION:
        p.add(where, f"field 'version' must be {VERSION}, got {version!r} (this reader reads version "
                     f"{VERSION} only)")
        return None
    for key in sorted(set(raw) - set(_META_KEYS)):
        p.add(where, f"unknown field '{key}'")
    draft = _MetaDraft(
        subject=_get_str(raw, "subject", where, p),
        head_model=_get_head_model(raw, where, p),
        n_shape=_get_int(raw, "n_shape", where, p),
        n_expr=_get_int(raw, "n_expr", where, p),
        image_size=_get_image_size(raw, where, p),
        appearances=_get_appearances(raw, where, p),
    )
    draft.cross = _get_cross(raw, [a.name for a in draft.appearances], where, p)
    if raw.get("uv_layout") is not None:
        draft.uv_layout = _get_str(raw, "uv_layout", where, p)
    return draft


def _get_str(raw: dict[str, Any], key: str, where: str, p: _Problems) -> str | None:
    if key not in raw:
        p.add(where, f"missing field '{key}'")
        return None
    value = raw[key]
    if not isinstance(value, str) or not value:
        p.add(where, f"field '{key}' must be a non-empty string, got {value!r}")
        return None
    return value


def _get_head_model(raw: dict[str, Any], where: str, p: _Problems) -> str | None:
    value = _get_str(raw, "head_model", where, p)
    if value is not None and value.startswith("procedural:"):
        seed = value[len("procedural:"):]
        if not seed.isdigit():
            p.add(where, f"field 'head_model' must be a path or 'procedural:<integer seed>', got {value!r}")
            return None
    return value


def _get_int(raw: dict[str, Any], key: str, where: str, p: _Problems) -> int | None:
    if key not in raw:
        p.add(where, f"missing field '{key}'")
        return None
    value = raw[key]
    if type(value) is not int or value < 1:
        p.add(where, f"field '{key}' must be a positive integer, got {value!r}")
        return None
    return value


def _get_image_size(raw: dict[str, Any], where: str, p: _Problems) -> tuple[int, int] | None:
    if "image_size" not in raw:
        p.add(where, "missing field 'image_size'")
        return None
    value = raw["image_size"]
    if not isinstance(value, list) or len(value) != 2 or not all(type(v) is int and v > 0 for v in value):
        p.add(where, f"field 'image_size' must be [H, W] with positive integers, got {value!r}")
        return None
    return (value[0], value[1])


def _get_appearances(raw: dict[str, Any], where: str, p: _Problems) -> list[AppearanceSpec]:
    value = raw.get("appearances")
    if not isinstance(value, list) or not value:
        p.add(where, f"field 'appearances' must be a non-empty list, got {value!r}")
        return []
    specs: list[AppearanceSpec] = []
    for i, entry in enumerate(value):
        spec = _get_appearance(entry, f"appearances[{i}]", where, p)
        if spec is None:
            continue
        if spec.name in [s.name for s in specs]:
            p.add(where, f"field 'appearances[{i}].name': duplicate name {spec.name!r}")
            continue
        specs.append(spec)
    return specs


def _get_appearance(entry: object, key: str, where: str, p: _Problems) -> AppearanceSpec | None:
    if not isinstance(entry, dict) or set(entry) != {"name", "kind"}:
        p.add(where, f"field '{key}' must be an object with exactly 'name' and 'kind', got {entry!r}")
        return None
    name, kind = entry["name"], entry["kind"]
    ok = True
    problem = _name_problem(name)
    if problem is None and name == CROSS_DIR:
        problem = f"{name!r} is reserved"
    if problem is not None:
        p.add(where, f"field '{key}.name' {problem}")
        ok = False
    if kind not in KINDS:
        p.add(where, f"field '{key}.kind' must be one of {list(KINDS)}, got {kind!r}")
        ok = False
    return AppearanceSpec(name, kind) if ok else None


def _get_cross(raw: dict[str, Any], names: list[str], where: str, p: _Problems) -> list[tuple[str, str]]:
    value = raw.get("cross", [])
    if not isinstance(value, list):
        p.add(where, f"field 'cross' must be a list, got {value!r}")
        return []
    pairs: list[tuple[str, str]] = []
    for i, entry in enumerate(value):
        key = f"cross[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"appearance", "drive"}:
            p.add(where, f"field '{key}' must be an object with exactly 'appearance' and 'drive', "
                         f"got {entry!r}")
            continue
        pair = (entry["appearance"], entry["drive"])
        unknown = [k for k in ("appearance", "drive") if entry[k] not in names]
        for k in unknown:
            p.add(where, f"field '{key}.{k}' is not a listed appearance: {entry[k]!r}")
        if pair in pairs:
            p.add(where, f"field '{key}' duplicates {pair}")
        elif not unknown:
            pairs.append(pair)
    return pairs


# ----------------------------------------------------------------------------- paths


def _frame_file(base: Path, cam: str, frame_id: int, ext: str = ".png") -> Path:
    return base / FRAMES_DIR / cam / f"{_fmt_id(frame_id)}{ext}"


def _mask_file(base: Path, cam: str, frame_id: int) -> Path:
    return base / MASKS_DIR / cam / f"{_fmt_id(frame_id)}.png"


def _cross_base(root: Path, appearance: str, drive: str) -> Path:
    return root / CROSS_DIR / appearance / drive


def _scan_images(folder: Path, exts: Sequence[str]) -> tuple[dict[int, Path], list[str]]:
    """Images named <id:06d><ext> in `folder`, and the names of anything else (hidden files skipped)."""
    found: dict[int, Path] = {}
    odd: list[str] = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            m = _IMAGE_NAME_RE.fullmatch(entry.name)
            if m is None or m.group(2) not in exts or entry.name != _fmt_id(int(m.group(1))) + m.group(2):
                odd.append(entry.name)
            elif int(m.group(1)) in found:
                odd.append(f"{entry.name} (same frame as {found[int(m.group(1))].name})")
            else:
                found[int(m.group(1))] = Path(entry.path)
    return found, odd


# ----------------------------------------------------------------------------- images


@dataclass(frozen=True)
class _ImageJob:
    path: Path
    rel: str
    mode: str  # "RGB" for frames, "L" for masks
    size: tuple[int, int] | None  # (H, W), None when collection.json has no valid image_size


def _verify_image(job: _ImageJob, level: str) -> str | None:
    """One problem line, or None when the image is fine at `level` ("full" or "header")."""
    try:
        with Image.open(job.path) as im:
            problem = _header_problem(im.size, im.mode, job)
            if problem is not None:
                return problem
            if level == "full":
                if im.format == "PNG":
                    im.verify()  # chunk CRCs up to IEND, without decoding
                else:
                    im.load()  # JPEG has no verify(): decode it
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... for broken files
        return f"{job.rel}: corrupt or unreadable image ({type(err).__name__}: {_short(err, job.path)})"
    return None


def _header_problem(size_wh: tuple[int, int], mode: str, job: _ImageJob) -> str | None:
    if job.size is not None and size_wh != (job.size[1], job.size[0]):
        return (f"{job.rel}: image is {size_wh[0]}x{size_wh[1]} (W x H), collection.json 'image_size' "
                f"[H, W] = {list(job.size)} wants {job.size[1]}x{job.size[0]}")
    if mode != job.mode:
        return f"{job.rel}: image mode is {mode!r}, expected {job.mode!r}"
    return None


def _short(err: Exception, path: Path) -> str:
    """The error text without the path, which the problem line names already."""
    quoted = repr(str(path))
    return str(err).replace(" " + quoted, "").replace(quoted, "<file>").replace(str(path), "<file>")


def _verify_images(jobs: Sequence[_ImageJob], level: str) -> list[str]:
    if level == "none" or not jobs:
        return []
    with ThreadPoolExecutor(max_workers=VERIFY_WORKERS) as pool:
        results = list(pool.map(lambda job: _verify_image(job, level), jobs))
    return [r for r in results if r is not None]


def _read_image(path: Path, mode: str, size: tuple[int, int], root: Path) -> np.ndarray:
    """uint8 [H, W, 3] for mode "RGB", [H, W] for "L"; a CollectionError naming `path` otherwise."""
    job = _ImageJob(path, str(path), mode, size)
    try:
        with Image.open(path) as im:
            problem = _header_problem(im.size, im.mode, job)
            if problem is None:
                return np.asarray(im)
    except Exception as err:
        raise CollectionError([f"{path}: corrupt or unreadable image ({type(err).__name__}: "
                               f"{_short(err, path)})"], root) from err
    raise CollectionError([problem], root)


def _to_unit(image: np.ndarray) -> np.ndarray:  # uint8 -> float32 in [0, 1]
    return image.astype(np.float32) / np.float32(255.0)


# ----------------------------------------------------------------------------- reader


@dataclass(eq=False)
class Appearance:
    """One appearance of the subject: its cameras, FLAME sequence, split and images."""

    name: str
    kind: str
    root: Path  # ROOT/<name>
    cameras: Cameras
    flame: FlameSequence
    split: Split
    landmarks: dict[str, np.ndarray] | None
    image_size: tuple[int, int]  # (H, W)
    collection_root: Path
    frame_files: dict[str, dict[int, Path]] = field(default_factory=dict, repr=False)  # cam -> id -> path

    @property
    def frame_ids(self) -> list[int]:
        return [int(i) for i in self.flame.frame_ids]

    @property
    def camera_names(self) -> list[str]:
        return list(self.cameras.names)

    def camera_name(self, cam: str | int) -> str:
        """A camera name, from its name or its index into `cameras.names`."""
        if isinstance(cam, int) and not isinstance(cam, bool):
            if not 0 <= cam < len(self.cameras):
                raise IndexError(f"appearance {self.name!r}: camera index {cam} out of range "
                                 f"for {len(self.cameras)} cameras")
            return self.cameras.names[cam]
        if cam not in self.cameras.names:
            raise KeyError(f"appearance {self.name!r}: camera {cam!r} not in cameras.npz names "
                           f"{self.cameras.names}")
        return cam

    def frame_path(self, cam: str | int, frame_id: int) -> Path:
        name = self.camera_name(cam)
        self.flame.index_of(frame_id)  # KeyError for an unknown id
        found = self.frame_files.get(name, {}).get(int(frame_id))
        return found if found is not None else _frame_file(self.root, name, int(frame_id))

    def mask_path(self, cam: str | int, frame_id: int) -> Path:
        name = self.camera_name(cam)
        self.flame.index_of(frame_id)
        return _mask_file(self.root, name, int(frame_id))

    def load_frame(self, cam: str | int, frame_id: int) -> np.ndarray:  # [H, W, 3] float32 in [0, 1]
        return _to_unit(_read_image(self.frame_path(cam, frame_id), "RGB", self.image_size,
                                    self.collection_root))

    def load_mask(self, cam: str | int, frame_id: int) -> np.ndarray:  # [H, W] float32 in [0, 1]
        return _to_unit(_read_image(self.mask_path(cam, frame_id), "L", self.image_size,
                                    self.collection_root))


class Collection:
    """A validated collection; build it with `Collection.open(root)`."""

    def __init__(self, root: Path, meta: CollectionMeta, shape: np.ndarray,
                 appearances: dict[str, Appearance],
                 cross_files: dict[tuple[str, str], dict[str, dict[int, Path]]]) -> None:
        self.root = root
        self.meta = meta
        self.shape = shape  # [n_shape] float32
        self._appearances = appearances
        self._cross_files = cross_files

    @classmethod
    def open(cls, root: str | Path, verify_images: VerifyLevel = "full") -> Collection:
        """Checks everything; raises one CollectionError listing every problem.

        verify_images: "full" checks each image's size, mode and PNG chunk CRCs (JPEGs are
        decoded); "header" only size and mode; "none" only that the files exist.
        """
        if verify_images not in VERIFY_LEVELS:
            raise ValueError(f"Collection.open: verify_images must be one of {list(VERIFY_LEVELS)}, "
                             f"got {verify_images!r}")
        return _Reader(Path(root), verify_images).read()

    @property
    def appearance_names(self) -> list[str]:
        return list(self._appearances)

    @property
    def appearances(self) -> list[Appearance]:
        return list(self._appearances.values())

    def appearance(self, name: str) -> Appearance:
        try:
            return self._appearances[name]
        except KeyError:
            raise KeyError(f"unknown appearance {name!r}; {self.root / META_FILE} lists "
                           f"{self.appearance_names}") from None

    def __getitem__(self, name: str) -> Appearance:
        return self.appearance(name)

    def __contains__(self, name: object) -> bool:
        return name in self._appearances

    def __iter__(self) -> Iterator[Appearance]:
        return iter(self._appearances.values())

    def __len__(self) -> int:
        return len(self._appearances)

    def __repr__(self) -> str:
        return f"Collection({str(self.root)!r}, appearances={self.appearance_names})"

    @property
    def cross_pairs(self) -> list[tuple[str, str]]:
        """(appearance, drive) pairs with cross-appearance ground truth."""
        return list(self.meta.cross)

    def _cross_cam(self, appearance: str, drive: str, cam: str | int, frame_id: int) -> str:
        if (appearance, drive) not in self._cross_files:
            raise KeyError(f"no cross pair (appearance={appearance!r}, drive={drive!r}) in "
                           f"{self.root / META_FILE}; pairs: {self.cross_pairs}")
        driver = self.appearance(drive)
        if int(frame_id) not in driver.split.test:
            raise KeyError(f"cross frames exist only for {drive!r}'s test ids (split.json 'test'); "
                           f"got frame id {frame_id}")
        return driver.camera_name(cam)

    def cross_frame_path(self, appearance: str, drive: str, cam: str | int, frame_id: int) -> Path:
        name = self._cross_cam(appearance, drive, cam, frame_id)
        found = self._cross_files[(appearance, drive)].get(name, {}).get(int(frame_id))
        base = _cross_base(self.root, appearance, drive)
        return found if found is not None else _frame_file(base, name, int(frame_id))

    def cross_mask_path(self, appearance: str, drive: str, cam: str | int, frame_id: int) -> Path:
        name = self._cross_cam(appearance, drive, cam, frame_id)
        return _mask_file(_cross_base(self.root, appearance, drive), name, int(frame_id))

    def load_cross(self, appearance: str, drive: str, cam: str | int,
                   frame_id: int) -> tuple[np.ndarray, np.ndarray]:  # [H, W, 3], [H, W] float32
        size = self.meta.image_size
        rgb = _read_image(self.cross_frame_path(appearance, drive, cam, frame_id), "RGB", size, self.root)
        mask = _read_image(self.cross_mask_path(appearance, drive, cam, frame_id), "L", size, self.root)
        return _to_unit(rgb), _to_unit(mask)


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
        if ids is not None and cams is not None:
            frame_files = self.check_image_folders(base, cams, ids, FLAME_FILE, f"{spec.name}/{CAMERAS_FILE}",
                                                   draft.image_size)
            self.layouts[spec.name] = _Layout(cams, test_ids)
        if flame is None or cameras is None or split is None or draft.image_size is None:
            return None
        return Appearance(spec.name, spec.kind, base, cameras, flame, split, landmarks, draft.image_size,
                          self.root, frame_files)

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


# ----------------------------------------------------------------------------- writer


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
        split_raw: dict[str, Any] = {"train": [_plain(i) for i in split.train],
                                     "test": [_plain(i) for i in split.test]}
        if split.test_cameras:
            split_raw["test_cameras"] = [str(c) for c in split.test_cameras]
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

    def write_frame(self, appearance: str, cam: str, frame_id: int, rgb: np.ndarray,
                    mask: np.ndarray) -> None:  # rgb uint8 [H, W, 3], mask uint8 [H, W]
        call = f"write_frame({appearance!r}, {cam!r}, {frame_id!r})"
        self._write_pair(self.frame_path(appearance, cam, frame_id),
                         self.mask_path(appearance, cam, frame_id), rgb, mask, call)

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
