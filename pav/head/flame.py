"""The FLAME head model as a torch module: validated loading, linear blend skinning, landmarks and uv.

FLAME has 5 joints: 0 global (root), 1 neck, 2 jaw, 3 left eye, 4 right eye. A model file is a pickle
(see `pav.head.pickle_io`) with `v_template`, `f`, `shapedirs`, `posedirs`, `J_regressor`, `weights`
and `kintree_table`, plus optional uv, landmark and region extras. Every inconsistency is reported in
one `HeadModelError` that names the file and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from pav.head.landmarks import LandmarkEmbedding, points_on_mesh
from pav.head.pickle_io import HeadModelError, load_head_pickle

__all__ = [
    "FLAME",
    "FlameOutput",
    "HeadModelError",
    "JOINT_NAMES",
    "LandmarkEmbedding",
    "axis_angle_to_matrix",
    "check_head_model",
    "load_landmark_file",
    "load_uv_layout",
    "resolve_head_path",
]

JOINT_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
NUM_JOINTS = len(JOINT_NAMES)
POSE_FEATURES = (NUM_JOINTS - 1) * 9  # (R - I) of every non-root joint, flattened
DEFAULT_N_SHAPE_TOTAL = 300  # official FLAME: 300 shape components, then 100 expression components
PROCEDURAL_PREFIX = "procedural:"
_ROOT_PARENTS = (-1, 2**32 - 1)  # the root's parent in kintree_table: -1, or -1 stored as uint32
_WEIGHT_SUM_TOL = 1e-3
_SMALL_ANGLE_SQ = 1e-3  # below this squared angle Rodrigues uses its Taylor series (no 0/0)

PathLike = str | os.PathLike
Dim = int | str  # a known size, or a symbol for a size that any value satisfies


class FlameOutput(NamedTuple):
    verts: Tensor  # [B, V, 3]
    joints: Tensor  # [B, 5, 3] posed joints


# ----------------------------------------------------------------------------------------------
# Validation


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


# ----------------------------------------------------------------------------------------------
# Extra files: uv layouts and landmark embeddings


def _obj_texture_index(corner: str, n_vt: int, where: str) -> int:
    """0-based vt index of an obj face corner `v/vt[/vn]` (1-based, or negative = relative)."""
    parts = corner.split("/")
    if len(parts) < 2 or not parts[1]:
        raise HeadModelError(
            f"{where}: face corner '{corner}' has no texture index (expected v/vt or v/vt/vn)"
        )
    try:
        index = int(parts[1])
    except ValueError:
        raise HeadModelError(f"{where}: face corner '{corner}' has a non-integer texture index") from None
    if index == 0:
        raise HeadModelError(f"{where}: face corner '{corner}' has texture index 0 (obj indices start at 1)")
    return index - 1 if index > 0 else n_vt + index


def _read_obj_uv(path: Path) -> dict[str, np.ndarray]:
    """vt [Vt, 2] and ft [F, 3] from the `vt` and `f` lines of a Wavefront obj."""
    vt: list[list[float]] = []
    ft: list[list[int]] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        where = f"{path}: line {number}"
        if parts and parts[0] == "vt":
            try:
                vt.append([float(parts[1]), float(parts[2])])
            except (IndexError, ValueError):
                raise HeadModelError(f"{where}: malformed 'vt' line {line.strip()!r}") from None
        elif parts and parts[0] == "f":
            if len(parts) != 4:
                raise HeadModelError(
                    f"{where}: face with {len(parts) - 1} corners, only triangles are supported"
                )
            ft.append([_obj_texture_index(corner, len(vt), where) for corner in parts[1:]])
    return {
        "vt": np.asarray(vt, dtype=np.float64).reshape(-1, 2),
        "ft": np.asarray(ft, dtype=np.int64).reshape(-1, 3),
    }


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:  # no pickles: an npz may come from anywhere
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise HeadModelError(f"{path}: no such file") from None
    except Exception as err:  # a corrupt or non-npz file
        raise HeadModelError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from err


def load_uv_layout(path: PathLike, n_faces: int) -> dict[str, np.ndarray]:
    """{'vt': [Vt, 2], 'ft': [F, 3]} from an .obj or an .npz with `vt` and `ft`, checked against F faces."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".obj":
        if not file.is_file():
            raise HeadModelError(f"{file}: no such file")
        data = _read_obj_uv(file)
    elif suffix == ".npz":
        data = _read_npz(file)
    else:
        raise HeadModelError(f"{file}: a uv layout must be an .obj or an .npz file")
    check = _Checker(data, str(file))
    vt = check.array("vt", ("Vt", 2))
    ft = check.array("ft", (n_faces, 3), integer=True)
    if vt is not None:
        check.index_range("ft", ft, vt.shape[0], "uv vertices in 'vt'")
    check.raise_if_any()
    assert vt is not None and ft is not None
    return {"vt": vt, "ft": ft}


def load_landmark_file(path: PathLike, n_faces: int) -> tuple[str, dict[str, np.ndarray]]:
    """Read a landmark embedding (.npz, or .pkl through the restricted unpickler).

    Returns ("68", {lmk_face_idx, lmk_b_coords}) for a sparse embedding, or ("dense", {mp_lmk_face_idx,
    mp_lmk_b_coords, mp_landmark_indices}) when the file also has `landmark_indices`: the keys a
    head model pickle uses for the same embeddings.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".npz":
        data = _read_npz(file)
    elif suffix == ".pkl":
        data = load_head_pickle(file)
    else:
        raise HeadModelError(f"{file}: a landmark embedding must be an .npz or a .pkl file")
    dense = "landmark_indices" in data
    check = _Checker(data, str(file))
    fields = ("lmk_face_idx", "lmk_b_coords", "landmark_indices" if dense else None)
    if fields[0] not in data and fields[1] not in data:
        check.problems.append("missing fields 'lmk_face_idx' and 'lmk_b_coords'")
    embedding = _check_embedding(check, fields, n_faces, dense)
    check.raise_if_any()
    assert embedding is not None
    if not dense:
        return "68", {"lmk_face_idx": embedding.face_idx, "lmk_b_coords": embedding.bary}
    assert embedding.indices is not None
    keys = {"mp_lmk_face_idx": embedding.face_idx, "mp_lmk_b_coords": embedding.bary}
    return "dense", {**keys, "mp_landmark_indices": embedding.indices}


def _extra_files(
    uv_layout: PathLike | None, landmark_embedding: PathLike | Sequence[PathLike] | None, n_faces: int
) -> dict[str, np.ndarray]:
    """Model fields read from the extra files; they replace the pickle's own."""
    extra: dict[str, np.ndarray] = {}
    if uv_layout is not None:
        extra.update(load_uv_layout(uv_layout, n_faces))
    if landmark_embedding is None:
        paths: list[PathLike] = []
    elif isinstance(landmark_embedding, (str, os.PathLike)):
        paths = [landmark_embedding]
    else:
        paths = list(landmark_embedding)
    seen: dict[str, PathLike] = {}
    for path in paths:
        kind, fields = load_landmark_file(path, n_faces)
        if kind in seen:
            raise HeadModelError(f"{path}: a second {kind!r} landmark embedding (the first is {seen[kind]})")
        seen[kind] = path
        extra.update(fields)
    return extra


def resolve_head_path(path: PathLike) -> Path:
    """The model file for `path`; `procedural:<seed>` builds (once, cached) the procedural head."""
    text = os.fspath(path)
    if isinstance(text, str) and text.startswith(PROCEDURAL_PREFIX):
        seed_text = text[len(PROCEDURAL_PREFIX) :]
        try:
            seed = int(seed_text)
        except ValueError:
            raise HeadModelError(f"{text}: the seed after '{PROCEDURAL_PREFIX}' must be an integer") from None
        from pav.head.procedural import procedural_head_path  # lazy: only procedural heads need it

        return Path(procedural_head_path(seed))
    return Path(os.fsdecode(text))


# ----------------------------------------------------------------------------------------------
# Geometry


def _skew(vec: Tensor) -> Tensor:
    """[..., 3] -> [..., 3, 3] cross-product matrices."""
    x, y, z = vec.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).reshape(*vec.shape[:-1], 3, 3)


def axis_angle_to_matrix(rotvec: Tensor) -> Tensor:
    """Rodrigues: [..., 3] axis-angle -> [..., 3, 3]; exact gradients at zero (Taylor series near it).

    R = I + a K + b K^2 with K = skew(rotvec), a = sin(t)/t, b = (1 - cos t)/t^2, t = |rotvec|.
    """
    angle_sq = (rotvec * rotvec).sum(-1)[..., None, None]  # [..., 1, 1]
    small = angle_sq < _SMALL_ANGLE_SQ
    safe_sq = torch.where(small, torch.ones_like(angle_sq), angle_sq)  # keeps sqrt/division finite
    angle = safe_sq.sqrt()
    a_large = torch.sin(angle) / angle
    b_large = 2.0 * torch.sin(0.5 * angle) ** 2 / safe_sq  # 1 - cos t without cancellation
    a_small = 1.0 - angle_sq / 6.0 + angle_sq**2 / 120.0
    b_small = 0.5 - angle_sq / 24.0 + angle_sq**2 / 720.0
    a = torch.where(small, a_small, a_large)
    b = torch.where(small, b_small, b_large)
    k = _skew(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a * k + b * (k @ k)


def _forward_kinematics(rot: Tensor, joints: Tensor, parents: list[int]) -> tuple[Tensor, Tensor]:
    """World rotations [B, J, 3, 3] and positions [B, J, 3] from local rotations and rest joints [B, J, 3]."""
    world_rot = [rot[:, 0]]
    world_pos = [joints[:, 0]]
    for joint in range(1, len(parents)):
        parent = parents[joint]
        offset = joints[:, joint] - joints[:, parent]  # [B, 3] bone in the rest pose
        world_rot.append(world_rot[parent] @ rot[:, joint])
        world_pos.append((world_rot[parent] @ offset[..., None])[..., 0] + world_pos[parent])
    return torch.stack(world_rot, dim=1), torch.stack(world_pos, dim=1)


def _blend_skinning(points: Tensor, weights: Tensor, rot: Tensor, transl: Tensor) -> Tensor:
    """LBS: points [B, V, 3], weights [V, J], per-joint rot [B, J, 3, 3] and transl [B, J, 3] -> [B, V, 3]."""
    blended_rot = torch.einsum("vj,bjkl->bvkl", weights, rot)
    blended_transl = torch.einsum("vj,bjk->bvk", weights, transl)
    return torch.einsum("bvkl,bvl->bvk", blended_rot, points) + blended_transl


def _as_float(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _as_long(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


# ----------------------------------------------------------------------------------------------
# The module


class FLAME(nn.Module):
    """FLAME over 5 joints (global, neck, jaw, left eye, right eye).

    Model buffers are non-persistent: checkpoints never embed the (licensed) model data; the model
    is always rebuilt from `source`.
    """

    def __init__(
        self, data: Mapping[str, Any], *, n_shape: int = 100, n_expr: int = 50, source: str = "<memory>"
    ):
        super().__init__()
        arrays = check_head_model(data, source, n_shape, n_expr)
        self.source = source
        self.n_shape = n_shape
        self.n_expr = n_expr
        self.num_verts = int(arrays.v_template.shape[0])
        self.parents = list(arrays.parents)
        self.region_names = arrays.region_names
        self.shape_names = arrays.shape_names
        self.expr_names = arrays.expr_names
        self._register_geometry(arrays)
        self._register_extras(arrays)

    def _buffer(self, name: str, value: Tensor | None) -> None:
        self.register_buffer(name, value, persistent=False)

    def _register_geometry(self, arrays: _HeadArrays) -> None:
        n_coords = self.num_verts * 3
        dirs = np.concatenate([arrays.shapedirs, arrays.exprdirs], axis=2)  # [V, 3, n_shape + n_expr]
        self._buffer("v_template", _as_float(arrays.v_template))  # [V, 3]
        self._buffer("faces", _as_long(arrays.faces))  # [F, 3]
        self._buffer("blenddirs", _as_float(dirs.reshape(n_coords, -1).T))  # [n_shape + n_expr, V*3]
        self._buffer("posedirs", _as_float(arrays.posedirs.reshape(n_coords, POSE_FEATURES).T))  # [36, V*3]
        self._buffer("J_regressor", _as_float(arrays.j_regressor))  # [5, V]
        # Joints are linear in the blend coefficients: precomputed, so a vertex subset needs no full mesh.
        j_dirs = np.einsum("jv,vkc->cjk", arrays.j_regressor, dirs)  # [n_shape + n_expr, 5, 3]
        self._buffer("J_template", _as_float(arrays.j_regressor @ arrays.v_template))  # [5, 3]
        self._buffer("J_blenddirs", _as_float(j_dirs.reshape(dirs.shape[2], -1)))  # [n_shape + n_expr, 15]
        self._buffer("lbs_weights", _as_float(arrays.weights))  # [V, 5]

    def _register_extras(self, arrays: _HeadArrays) -> None:
        self._buffer("vt", None if arrays.vt is None else _as_float(arrays.vt))  # [Vt, 2]
        self._buffer("ft", None if arrays.ft is None else _as_long(arrays.ft))  # [F, 3]
        self._buffer("face_region", None if arrays.face_region is None else _as_long(arrays.face_region))
        for kind, embedding in (("68", arrays.landmarks68), ("dense", arrays.landmarks_dense)):
            present = embedding is not None
            self._buffer(f"_lmk{kind}_face_idx", _as_long(embedding.face_idx) if present else None)
            self._buffer(f"_lmk{kind}_bary", _as_float(embedding.bary) if present else None)
            has_indices = present and embedding.indices is not None
            self._buffer(f"_lmk{kind}_indices", _as_long(embedding.indices) if has_indices else None)

    @classmethod
    def from_file(
        cls,
        path: PathLike,
        n_shape: int = 100,
        n_expr: int = 50,
        uv_layout: PathLike | None = None,
        landmark_embedding: PathLike | Sequence[PathLike] | None = None,
    ) -> FLAME:
        """Load a FLAME pickle (or `procedural:<seed>`), optionally with a uv layout and landmark files."""
        file = resolve_head_path(path)
        data = load_head_pickle(file)
        check_head_model(data, str(file), n_shape, n_expr)  # errors name the real file, before extras
        n_faces = int(np.asarray(data["f"]).shape[0])
        data.update(_extra_files(uv_layout, landmark_embedding, n_faces))
        return cls(data, n_shape=n_shape, n_expr=n_expr, source=os.fsdecode(os.fspath(path)))

    # -- properties ------------------------------------------------------------------------------

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def _embedding(self, kind: str) -> LandmarkEmbedding | None:
        face_idx = getattr(self, f"_lmk{kind}_face_idx")
        if face_idx is None:
            return None
        return LandmarkEmbedding(
            face_idx, getattr(self, f"_lmk{kind}_bary"), getattr(self, f"_lmk{kind}_indices")
        )

    @property
    def landmarks68(self) -> LandmarkEmbedding | None:
        return self._embedding("68")

    @property
    def landmarks_dense(self) -> LandmarkEmbedding | None:
        return self._embedding("dense")

    def extra_repr(self) -> str:
        return (
            f"source={self.source!r}, verts={self.num_verts}, faces={self.num_faces}, "
            f"n_shape={self.n_shape}, n_expr={self.n_expr}"
        )

    # -- evaluation ------------------------------------------------------------------------------

    def _batch_size(self, params: dict[str, tuple[Tensor | None, tuple[int, ...]]]) -> int:
        """B from the given arguments; each must be [B, *tail] or [*tail] (B = 1, broadcast)."""
        sizes: dict[str, int] = {}
        for name, (value, tail) in params.items():
            if value is None:
                continue
            if not isinstance(value, Tensor):
                raise TypeError(f"FLAME: '{name}' must be a torch.Tensor, got {type(value).__name__}")
            if tuple(value.shape) == tail:
                sizes[name] = 1
            elif value.ndim == len(tail) + 1 and tuple(value.shape[1:]) == tail:
                sizes[name] = int(value.shape[0])
            else:
                expected = ", ".join(str(d) for d in tail)
                raise ValueError(f"FLAME: '{name}' must have shape [B, {expected}], got {list(value.shape)}")
        batches = {b for b in sizes.values() if b != 1}
        if len(batches) > 1:
            raise ValueError(f"FLAME: arguments disagree on the batch size: {sizes}")
        return batches.pop() if batches else 1

    def _batched(self, value: Tensor | None, tail: tuple[int, ...], batch: int) -> Tensor:
        like = self.v_template
        if value is None:
            return like.new_zeros((batch, *tail))
        value = value.to(dtype=like.dtype, device=like.device)
        if value.ndim == len(tail):
            value = value.unsqueeze(0)
        return value.expand(batch, *tail)

    def forward(
        self,
        *,
        shape: Tensor | None = None,
        expr: Tensor | None = None,
        rotations: Tensor | None = None,
        transl: Tensor | None = None,
        offsets: Tensor | None = None,
        vertex_ids: Tensor | None = None,
    ) -> FlameOutput:
        """Posed vertices and joints; arguments left out are zeros.

        shape [B, n_shape], expr [B, n_expr], rotations [B, 5, 3] axis-angle of global, neck, jaw,
        left eye, right eye, transl [B, 3]; a [1, ...] or unbatched argument is broadcast to B.
        offsets [V, 3] or [B, V, 3]: rest-space displacements added after the joints are regressed.
        vertex_ids [K] long: pose only these vertices (verts is then [B, K, 3]); landmark fitting needs
        a few hundred of the mesh's thousands.
        """
        tails = {
            "shape": (self.n_shape,),
            "expr": (self.n_expr,),
            "rotations": (NUM_JOINTS, 3),
            "transl": (3,),
        }
        given = {"shape": shape, "expr": expr, "rotations": rotations, "transl": transl}
        batch = self._batch_size({name: (given[name], tail) for name, tail in tails.items()})
        coeffs = torch.cat(
            [self._batched(shape, tails["shape"], batch), self._batched(expr, tails["expr"], batch)], 1
        )
        rotations = self._batched(rotations, tails["rotations"], batch)  # [B, 5, 3]
        transl = self._batched(transl, tails["transl"], batch)  # [B, 3]

        rest_joints = self.J_template + (coeffs @ self.J_blenddirs).view(batch, NUM_JOINTS, 3)  # [B, 5, 3]
        template, blenddirs, posedirs, weights = self.v_template, self.blenddirs, self.posedirs, self.lbs_weights
        if vertex_ids is not None:
            vertex_ids = vertex_ids.to(device=template.device, dtype=torch.long)
            if vertex_ids.ndim != 1:
                raise ValueError(f"FLAME: vertex_ids must be [K], got {list(vertex_ids.shape)}")
            cols = (vertex_ids[:, None] * 3 + torch.arange(3, device=template.device)).reshape(-1)  # [K*3]
            template, weights = template[vertex_ids], weights[vertex_ids]
            blenddirs, posedirs = blenddirs[:, cols], posedirs[:, cols]
        n_points = template.shape[0]
        v_shaped = template + (coeffs @ blenddirs).view(batch, n_points, 3)  # [B, V or K, 3]
        if offsets is not None:  # after the joints: displaced surfaces (hair, clothing) ride the same rig
            if offsets.shape[-2:] != (self.num_verts, 3):
                raise ValueError(f"FLAME: offsets must be [V, 3] or [B, V, 3] with V={self.num_verts}, "
                                 f"got {list(offsets.shape)}")
            offsets = offsets.to(v_shaped)
            v_shaped = v_shaped + (offsets if vertex_ids is None else offsets[..., vertex_ids, :])
        rot = axis_angle_to_matrix(rotations)  # [B, 5, 3, 3]
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        pose_feature = (rot[:, 1:] - eye).reshape(batch, POSE_FEATURES)  # [B, 36]
        v_posed = v_shaped + (pose_feature @ posedirs).view(batch, n_points, 3)
        world_rot, world_pos = _forward_kinematics(rot, rest_joints, self.parents)
        # Skinning transforms act on rest-pose points: remove the rest joint position first.
        skin_transl = world_pos - (world_rot @ rest_joints[..., None])[..., 0]  # [B, 5, 3]
        verts = _blend_skinning(v_posed, weights, world_rot, skin_transl)
        offset = transl[:, None]  # [B, 1, 3]
        return FlameOutput(verts + offset, world_pos + offset)

    def landmarks(self, verts: Tensor, kind: str = "68") -> Tensor:
        """Embedded landmarks of posed vertices: verts [B, V, 3] -> [B, L, 3]; kind '68' or 'dense'."""
        if kind not in ("68", "dense"):
            raise ValueError(f"FLAME.landmarks: kind must be '68' or 'dense', got {kind!r}")
        embedding = self._embedding(kind)
        if embedding is None:
            raise HeadModelError(
                f"{self.source}: has no {kind!r} landmark embedding "
                "(pass landmark_embedding= to FLAME.from_file)"
            )
        return points_on_mesh(verts, self.faces, embedding.face_idx, embedding.bary)

    def face_uv(self, face_idx: Tensor, bary: Tensor) -> Tensor:
        """uv of surface points: face_idx [N], bary [N, 3] -> [N, 2]."""
        if self.vt is None or self.ft is None:
            raise HeadModelError(f"{self.source}: has no uv layout (pass uv_layout= to FLAME.from_file)")
        if face_idx.ndim != 1 or bary.shape != (face_idx.shape[0], 3):
            raise ValueError(
                f"FLAME.face_uv: face_idx must be [N] and bary [N, 3], "
                f"got {list(face_idx.shape)} and {list(bary.shape)}"
            )
        corners = self.vt[self.ft[face_idx.to(self.ft.device)]]  # [N, 3, 2]
        return torch.einsum("nck,nc->nk", corners, bary.to(corners))
