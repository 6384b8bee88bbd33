"""What a head model file must hold, checked: every inconsistency listed in one HeadModelError."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from pav.head.pickle_io import HeadModelError

JOINT_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
NUM_JOINTS = len(JOINT_NAMES)
POSE_FEATURES = (NUM_JOINTS - 1) * 9  # (R - I) of every non-root joint, flattened
DEFAULT_N_SHAPE_TOTAL = 300  # official FLAME: 300 shape components, then 100 expression components
PROCEDURAL_PREFIX = "procedural:"
_ROOT_PARENTS = (-1, 2**32 - 1)  # the root's parent in kintree_table: -1, or -1 stored as uint32
_WEIGHT_SUM_TOL = 1e-3

PathLike = str | os.PathLike
Dim = int | str  # a known size, or a symbol for a size that any value satisfies


def _format_shape(dims: Sequence[Dim]) -> str:
    inner = ", ".join(str(d) for d in dims)
    return f"({inner},)" if len(dims) == 1 else f"({inner})"


def _shape_matches(shape: tuple[int, ...], expected: Sequence[Dim]) -> bool:
    if len(shape) != len(expected):
        return False
    return all(isinstance(e, str) or s == e for s, e in zip(shape, expected, strict=True))


def _as_numpy(value: Any) -> np.ndarray | None:
    """A numpy view of an array-like (numpy, torch, scipy sparse, nested lists); None if impossible."""
    try:
        if isinstance(value, Tensor):
            return value.detach().cpu().numpy()
        if hasattr(value, "toarray") and not isinstance(value, np.ndarray):
            return np.asarray(value.toarray())  # a scipy sparse matrix given in memory
        return np.asarray(value)
    except (TypeError, ValueError):
        return None


class _Checker:
    """Collects every problem of one file, so that a single error lists them all."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self.problems: list[str] = []

    def fail(self, field: str, message: str) -> None:
        self.problems.append(f"field '{field}' {message}")

    def raise_if_any(self) -> None:
        if self.problems:
            raise HeadModelError("\n".join(f"{self.where}: {problem}" for problem in self.problems))

    def array(
        self, field: str, expected: Sequence[Dim], *, integer: bool = False, required: bool = True
    ) -> np.ndarray | None:
        """The field as a float64 (or int64) array of the expected shape, or None after recording why not."""
        if field not in self.data:
            if required:
                self.problems.append(f"missing field '{field}'")
            return None
        value = _as_numpy(self.data[field])
        if value is None or value.dtype.kind not in "iuf":
            kind = type(self.data[field]).__name__ if value is None else f"dtype {value.dtype}"
            self.fail(field, f"has {kind}, expected an array of numbers")
            return None
        if not _shape_matches(value.shape, expected):
            self.fail(field, f"has shape {tuple(value.shape)}, expected {_format_shape(expected)}")
            return None
        if integer:
            return self._integers(field, value)
        if not np.isfinite(value).all():
            self.fail(field, "contains NaN or inf")
            return None
        return value.astype(np.float64, copy=False)

    def _integers(self, field: str, value: np.ndarray) -> np.ndarray | None:
        if value.dtype.kind == "f" and not (np.isfinite(value).all() and (value == np.round(value)).all()):
            self.fail(field, f"has non-integer values (dtype {value.dtype}), expected indices")
            return None
        return value.astype(np.int64)

    def index_range(self, field: str, value: np.ndarray | None, limit: Dim, what: str) -> bool:
        """Every entry of an index array lies in [0, limit)."""
        if value is None or value.size == 0:
            return value is not None
        low, high = int(value.min()), int(value.max())
        if low < 0:
            self.fail(field, f"has index {low}, expected indices >= 0")
            return False
        if isinstance(limit, int) and high >= limit:
            self.fail(field, f"has index {high}, expected indices in [0, {limit}) ({limit} {what})")
            return False
        return True

    def names(self, field: str) -> list[str] | None:
        if field not in self.data:
            return None
        value = self.data[field]
        items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else None
        if items is None or not all(isinstance(item, str) for item in items):
            self.fail(field, f"is a {type(value).__name__}, expected a list of str")
            return None
        return [str(item) for item in items]


def _check_weights(check: _Checker, weights: np.ndarray | None) -> None:
    if weights is None:
        return
    sums = weights.sum(axis=1)  # [V]
    bad = np.flatnonzero(np.abs(sums - 1.0) > _WEIGHT_SUM_TOL)
    if bad.size:
        row = int(bad[0])
        check.fail("weights", f"rows must sum to 1, {bad.size} do not (row {row} sums to {sums[row]:.4g})")


def _check_parents(check: _Checker, kintree: np.ndarray | None) -> list[int]:
    """Parents from kintree_table row 0; FK needs every parent listed before its child."""
    if kintree is None:
        return []
    parents: list[int] = []
    for joint, raw in enumerate(int(p) for p in kintree[0]):
        if joint == 0 and raw not in _ROOT_PARENTS:
            check.fail("kintree_table", f"gives the root joint 0 parent {raw}, expected -1 (or 4294967295)")
        elif joint > 0 and not 0 <= raw < joint:
            check.fail("kintree_table", f"gives joint {joint} parent {raw}, expected a joint in [0, {joint})")
        parents.append(-1 if joint == 0 else raw)
    return parents


def _component_split(
    check: _Checker, shapedirs: np.ndarray | None, n_shape: int, n_expr: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The first n_shape shape and the first n_expr expression blendshapes of shapedirs."""
    if shapedirs is None:
        return None
    try:
        n_shape_total = int(check.data.get("n_shape_total", DEFAULT_N_SHAPE_TOTAL))
    except (TypeError, ValueError):
        check.fail("n_shape_total", f"is {check.data['n_shape_total']!r}, expected an integer")
        return None
    total = shapedirs.shape[2]
    shape_available = min(n_shape_total, total)
    expr_available = max(total - n_shape_total, 0)
    ok = True
    if n_shape > shape_available:
        check.fail(
            "shapedirs", f"has {shape_available} shape components, but n_shape={n_shape} were requested"
        )
        ok = False
    if n_expr > expr_available:
        check.fail(
            "shapedirs",
            f"has {expr_available} expression components (after the first {n_shape_total} shape components), "
            f"but n_expr={n_expr} were requested",
        )
        ok = False
    if not ok:
        return None
    return shapedirs[:, :, :n_shape], shapedirs[:, :, n_shape_total : n_shape_total + n_expr]


@dataclass
class _Embedding:
    face_idx: np.ndarray  # [L] int64
    bary: np.ndarray  # [L, 3]
    indices: np.ndarray | None  # [L] int64


def _check_embedding(
    check: _Checker, fields: tuple[str, str, str | None], n_faces: Dim, require_indices: bool
) -> _Embedding | None:
    """An optional (face index, barycentric, detector index) triple; all or none of the fields."""
    face_field, bary_field, indices_field = fields
    present = [f for f in fields if f is not None and f in check.data]
    if not present:
        return None
    face_idx = check.array(face_field, ("L",), integer=True)
    count: Dim = face_idx.shape[0] if face_idx is not None else "L"
    bary = check.array(bary_field, (count, 3))
    indices = None
    if indices_field is not None and (require_indices or indices_field in check.data):
        indices = check.array(indices_field, (count,), integer=True)
        check.index_range(indices_field, indices, "N", "detector landmarks")
    if not check.index_range(face_field, face_idx, n_faces, "faces") or bary is None:
        return None
    if require_indices and indices is None:
        return None
    return _Embedding(face_idx, bary, indices)


@dataclass
class _HeadArrays:
    """A validated head model, reduced to the requested components."""

    v_template: np.ndarray  # [V, 3]
    faces: np.ndarray  # [F, 3] int64
    shapedirs: np.ndarray  # [V, 3, n_shape]
    exprdirs: np.ndarray  # [V, 3, n_expr]
    posedirs: np.ndarray  # [V, 3, 36]
    j_regressor: np.ndarray  # [5, V]
    weights: np.ndarray  # [V, 5]
    parents: list[int]
    vt: np.ndarray | None  # [Vt, 2]
    ft: np.ndarray | None  # [F, 3] int64
    landmarks68: _Embedding | None
    landmarks_dense: _Embedding | None
    face_region: np.ndarray | None  # [F] int64
    region_names: list[str]
    shape_names: list[str]
    expr_names: list[str]


def _check_uv(check: _Checker, n_faces: Dim) -> tuple[np.ndarray | None, np.ndarray | None]:
    if "vt" not in check.data and "ft" not in check.data:
        return None, None
    vt = check.array("vt", ("Vt", 2))
    ft = check.array("ft", (n_faces, 3), integer=True)
    if vt is None or not check.index_range("ft", ft, vt.shape[0], "uv vertices in 'vt'"):
        return None, None
    return vt, ft


def _check_regions(check: _Checker, n_faces: Dim) -> tuple[np.ndarray | None, list[str]]:
    names = check.names("region_names") or []
    if "face_region" not in check.data:
        return None, names
    labels = check.array("face_region", (n_faces,), integer=True)
    limit: Dim = len(names) if "region_names" in check.data else "R"  # without names any label >= 0
    if not check.index_range("face_region", labels, limit, "names in 'region_names'"):
        return None, names
    return labels, names


def check_head_model(data: Mapping[str, Any], where: str, n_shape: int, n_expr: int) -> _HeadArrays:
    """Validate a head model dict; raises one HeadModelError listing every problem, each naming `where`."""
    if n_shape < 0 or n_expr < 0:
        raise ValueError(f"n_shape and n_expr must be >= 0, got {n_shape} and {n_expr}")
    check = _Checker(data, where)
    template = check.array("v_template", ("V", 3))
    n_verts: Dim = template.shape[0] if template is not None else "V"
    faces = check.array("f", ("F", 3), integer=True)
    n_faces: Dim = faces.shape[0] if faces is not None else "F"
    shapedirs = check.array("shapedirs", (n_verts, 3, "K"))
    posedirs = check.array("posedirs", (n_verts, 3, POSE_FEATURES))
    j_regressor = check.array("J_regressor", (NUM_JOINTS, n_verts))
    weights = check.array("weights", (n_verts, NUM_JOINTS))
    kintree = check.array("kintree_table", (2, NUM_JOINTS), integer=True)
    check.index_range("f", faces, n_verts, "vertices in 'v_template'")
    _check_weights(check, weights)
    parents = _check_parents(check, kintree)
    split = _component_split(check, shapedirs, n_shape, n_expr)
    vt, ft = _check_uv(check, n_faces)
    landmarks68 = _check_embedding(check, ("lmk_face_idx", "lmk_b_coords", None), n_faces, False)
    dense_fields = ("mp_lmk_face_idx", "mp_lmk_b_coords", "mp_landmark_indices")
    landmarks_dense = _check_embedding(check, dense_fields, n_faces, True)
    face_region, region_names = _check_regions(check, n_faces)
    shape_names = check.names("shape_names") or []
    expr_names = check.names("expr_names") or []
    check.raise_if_any()
    assert template is not None and faces is not None and split is not None  # guaranteed: no problems
    assert posedirs is not None and j_regressor is not None and weights is not None
    return _HeadArrays(
        template, faces, split[0], split[1], posedirs, j_regressor, weights, parents, vt, ft,
        landmarks68, landmarks_dense, face_region, region_names, shape_names[:n_shape], expr_names[:n_expr],
    )  # fmt: skip
