"""The FLAME head model as a torch module: validated loading, linear blend skinning, landmarks and uv.

FLAME has 5 joints: 0 global (root), 1 neck, 2 jaw, 3 left eye, 4 right eye. A model file is a pickle
(see `pav.head.pickle_io`) with `v_template`, `f`, `shapedirs`, `posedirs`, `J_regressor`, `weights`
and `kintree_table`, plus optional uv, landmark and region extras. Every inconsistency is reported in
one `HeadModelError` that names the file and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from pav.head.landmarks import LandmarkEmbedding, points_on_mesh
from pav.head.pickle_io import HeadModelError, load_head_pickle

from .extra_files import _extra_files, load_landmark_file, load_uv_layout, resolve_head_path
from .kinematics import _as_float, _as_long, _blend_skinning, _forward_kinematics, axis_angle_to_matrix
from .validate import JOINT_NAMES, NUM_JOINTS, POSE_FEATURES, PathLike, _HeadArrays, check_head_model

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


class FlameOutput(NamedTuple):
    verts: Tensor  # [B, V, 3]
    joints: Tensor  # [B, 5, 3] posed joints


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
