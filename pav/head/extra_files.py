"""The head model's extra files: uv layouts (.obj or .npz), landmark embeddings and the model's own path."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pav.head.pickle_io import HeadModelError, load_head_pickle

from .validate import PROCEDURAL_PREFIX, PathLike, _check_embedding, _Checker


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
