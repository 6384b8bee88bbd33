"""The procedural head: a FLAME-format head model that needs no licensed files.

`build_head_model(seed)` returns the same dict an official FLAME pickle holds
(v_template, f, shapedirs, posedirs, J_regressor, weights, kintree_table) plus the
extras pav reads when present (UV layout, landmark embeddings, region labels, names).
`procedural_head_path(seed)` writes it once into a cache folder and returns the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...common.cache import cache_dir
from .annotations import REGION_NAMES, face_regions, landmarks68, landmarks_mediapipe
from .bases import N_SHAPE, blend_shapes
from .fields import vertex_normals
from .mesh import build_mesh
from .rig import KINTREE, jaw_weight, joint_regressor, pose_correctives, skinning_weights
from .sdf import HeadParams

GENERATOR_VERSION = 2  # bump when the generated head changes, so caches are rebuilt


def build_head_model(seed: int = 0) -> dict:
    """The procedural head of a given seed as a FLAME-style dict of numpy arrays."""
    hp = HeadParams.jittered(seed)
    mesh = build_mesh(hp)
    normals = vertex_normals(mesh.verts, mesh.faces)
    weights = skinning_weights(mesh, hp)
    shapedirs, shape_names, expr_names = blend_shapes(mesh, hp, normals, jaw_weight(mesh, hp), seed)
    region = face_regions(mesh, hp)
    lmk_face, lmk_bary = landmarks68(mesh, hp, region)
    mp_face, mp_bary, mp_index = landmarks_mediapipe(mesh, lmk_face, lmk_bary)
    return {
        "v_template": mesh.verts.astype(np.float64),
        "f": mesh.faces.astype(np.uint32),
        "shapedirs": shapedirs.astype(np.float64),
        "posedirs": pose_correctives(mesh, weights, normals),
        "J_regressor": joint_regressor(mesh),
        "weights": weights,
        "kintree_table": KINTREE,
        "n_shape_total": N_SHAPE,
        "vt": mesh.vt.astype(np.float64),
        "ft": mesh.ft.astype(np.uint32),
        "lmk_face_idx": lmk_face,
        "lmk_b_coords": lmk_bary,
        "mp_lmk_face_idx": mp_face,
        "mp_lmk_b_coords": mp_bary,
        "mp_landmark_indices": mp_index,
        "face_region": region,
        "region_names": list(REGION_NAMES),
        "shape_names": shape_names,
        "expr_names": expr_names,
        "procedural_seed": int(seed),
        "generator_version": GENERATOR_VERSION,
    }


def write_head_model(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the procedural head of `seed` as a FLAME-format pickle (atomically)."""
    from ..pickle_io import save_head_pickle  # writes atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_head_pickle(path, build_head_model(seed))
    return path


def procedural_head_path(seed: int = 0) -> Path:
    """Path of the cached procedural head pickle of `seed`, built on first use (about 5 s)."""
    path = cache_dir() / f"procedural_head_v{GENERATOR_VERSION}_seed{int(seed)}.pkl"
    if not path.exists():
        write_head_model(path, seed)
    return path
