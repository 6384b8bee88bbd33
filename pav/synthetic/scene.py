"""One appearance of the synthetic subject, ready to render: textures, hair shell, light, backdrop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..head.flame import FLAME
from ..head.procedural.mesh import UV_ISLAND_RADIUS, UV_ISLANDS
from .looks import Look, hair_albedo, hair_thickness, skin_albedo
from .shading import Surface, fill_empty_texels, texel_lookup, vertex_normals

SKIN, HAIR = 0, 1


@dataclass
class Scene:
    look: Look
    textures: torch.Tensor  # [2, T, T, 3] skin and hair albedo
    hair_offsets: torch.Tensor  # [V, 3] rest-space displacement of the hair shell
    hair_face_idx: torch.Tensor  # [Fh] head faces that carry hair
    background: torch.Tensor  # [H, W, 3]


class HeadAtlas:
    """Texel -> rest position and region of a head model's UV atlas, shared by all appearances."""

    def __init__(self, flame: FLAME, size: int):
        vt, ft = flame.vt.numpy().astype(np.float64), flame.ft.numpy()
        face, bary = texel_lookup(vt, ft, size)
        self.size = size
        self.covered = face >= 0
        f = face[self.covered]
        b = bary[self.covered]
        template = flame.v_template.numpy().astype(np.float64)
        faces = flame.faces.numpy()
        self.points = (template[faces[f]] * b[:, :, None]).sum(1)  # [N, 3]
        self.region = flame.face_region.numpy()[f]
        ys, xs = np.nonzero(self.covered)
        self.uv = np.stack([(xs + 0.5) / size, (ys + 0.5) / size], 1)
        # polar angle on the eyeball (0 at the pupil), read back from the eye islands' layout
        self.eye_polar = np.full(len(f), np.pi)
        for name in ("eye_left", "eye_right"):
            d = np.linalg.norm(self.uv - np.asarray(UV_ISLANDS[name]), axis=1)
            inside = d < UV_ISLAND_RADIUS
            self.eye_polar[inside] = d[inside] / (UV_ISLAND_RADIUS * 0.98) * np.pi

    def paint(self, values: np.ndarray) -> np.ndarray:
        tex = np.zeros((self.size, self.size, 3))
        tex[self.covered] = values
        return fill_empty_texels(tex, self.covered)


def make_scene(look: Look, flame: FLAME, atlas: HeadAtlas, size: int, rng: np.random.Generator) -> Scene:
    regions = flame.region_names
    skin = atlas.paint(skin_albedo(look, atlas.points, atlas.region, regions, atlas.eye_polar, rng))
    hair = atlas.paint(hair_albedo(look, atlas.uv, rng))
    template = flame.v_template.numpy().astype(np.float64)
    faces = flame.faces.numpy()
    face_region = flame.face_region.numpy()
    vert_region = np.full(len(template), regions.index("face"))
    shell = face_region != regions.index("eyes")
    vert_region[faces[shell].ravel()] = np.repeat(face_region[shell], 3)
    thickness = hair_thickness(look.hair, template, vert_region, regions)
    normals = vertex_normals(torch.from_numpy(template), torch.from_numpy(faces)).numpy()
    on_shell = (face_region != regions.index("eyes")) & (face_region != regions.index("mouth"))
    hair_face_idx = np.nonzero(on_shell & (thickness[faces] > 0).all(1))[0]
    top, bottom = rng.uniform(0.35, 0.9, 3), rng.uniform(0.2, 0.7, 3)
    ramp = np.linspace(0, 1, size)[:, None, None]
    background = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (size, size, 3))
    return Scene(look=look, textures=torch.from_numpy(np.stack([skin, hair])).float(),
                 hair_offsets=torch.from_numpy(thickness[:, None] * normals).float(),
                 hair_face_idx=torch.from_numpy(hair_face_idx).long(),
                 background=torch.from_numpy(background.copy()).float())


def frame_surface(scene: Scene, flame: FLAME, head_verts: torch.Tensor, hair_verts: torch.Tensor,
                  w2c: torch.Tensor) -> Surface:
    """Head and hair of one posed frame ([V, 3] each, world space) in camera space."""
    faces, hair_faces = flame.faces, flame.faces[scene.hair_face_idx]
    verts = torch.cat([head_verts, hair_verts]) @ w2c[:3, :3].T + w2c[:3, 3]
    n_verts = len(head_verts)
    all_faces = torch.cat([faces, hair_faces + n_verts])
    normals = torch.cat([vertex_normals(verts[:n_verts], faces), vertex_normals(verts[n_verts:], hair_faces)])
    corner_uv = flame.vt[flame.ft]
    corner_uv = torch.cat([corner_uv, corner_uv[scene.hair_face_idx]])
    material = torch.cat([torch.full((len(faces),), SKIN), torch.full((len(hair_faces),), HAIR)])
    return Surface(verts.float(), all_faces, normals.float(), corner_uv.float(), material, closed=material == SKIN)
