"""Checks of the collection's arrays and split, shared by the writer (before writing) and the reader."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .format import _NAME_RE, POSE_TOL, ROTATION_NAMES, SPLIT_VERSION, Cameras, FlameSequence, Split
from .problems import _list_some, _Problems
from .splits import with_validation

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
    """The split; one without a version (written before validation existed) gets its validation stretch from its
    train frames, which then train no more."""
    if not isinstance(raw, dict):
        p.add(where, f"must be a JSON object with 'train' and 'test', got {type(raw).__name__}")
        return None
    before = len(p)
    version = raw.get("version", 1)
    if version not in (1, SPLIT_VERSION):
        p.add(where, f"field 'version' must be {SPLIT_VERSION} (or absent: the first version), got {version!r}")
        return None
    known = {"train", "test", "test_cameras"} | ({"version", "val"} if version == SPLIT_VERSION else set())
    for key in sorted(set(raw) - known):
        p.add(where, f"unknown field '{key}' (expected {', '.join(repr(k) for k in sorted(known))}"
                     + ("; 'val' needs \"version\": 2)" if key == "val" else ")"))
    test_cameras = _check_test_cameras(raw.get("test_cameras", []), camera_names, where, p)
    parts = ("train", "val", "test") if version == SPLIT_VERSION else ("train", "test")
    lists = {key: _id_list(raw, key, where, p) for key in parts}
    if lists["test"] is not None and not lists["test"]:
        p.add(where, "field 'test' is empty; at least one test frame is required")
    for key, ids in lists.items():
        if ids is not None and frame_ids is not None:
            unknown = [str(i) for i in ids if i not in frame_ids]
            if unknown:
                p.add(where, f"field '{key}' has frame ids not in flame.npz 'frame_ids': "
                             f"{_list_some(unknown)}")
    for i, first in enumerate(parts):
        for second in parts[i + 1:]:
            if lists[first] is not None and lists[second] is not None:
                both = sorted(set(lists[first]) & set(lists[second]))
                if both:
                    p.add(where, f"fields '{first}' and '{second}' overlap at frame ids "
                                 f"{_list_some([str(i) for i in both])}")
    if len(p) > before or any(ids is None for ids in lists.values()):
        return None
    if version == 1:
        return with_validation(lists["train"], lists["test"], test_cameras=test_cameras)
    return Split(lists["train"], lists["test"], test_cameras, lists["val"])


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
