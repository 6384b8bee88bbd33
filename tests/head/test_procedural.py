"""The procedural head: a closed, clean, rigged FLAME-format model with a usable UV atlas."""

from collections import Counter

import numpy as np
import pytest
import torch

from pav.head.flame import FLAME
from pav.head.procedural import build_head_model, write_head_model
from pav.head.procedural.__main__ import main as procedural_main


def _cross2(a, b):
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


@pytest.fixture(scope="module")
def model():
    return build_head_model(0)


@pytest.fixture(scope="module")
def flame(tmp_path_factory):
    path = write_head_model(tmp_path_factory.mktemp("head") / "head.pkl", seed=0)
    return FLAME.from_file(str(path), n_shape=100, n_expr=50)


def test_size_and_proportions(model):
    v, f = model["v_template"], model["f"]
    assert 4500 <= len(v) <= 5500 and 9000 <= len(f) <= 11000
    chin = v[model["f"][model["lmk_face_idx"][8]]].mean(0)
    assert 0.19 < v[:, 1].max() - chin[1] < 0.26  # crown to chin
    assert model["shapedirs"].shape[2] - model["n_shape_total"] >= 20 and model["n_shape_total"] >= 50


def test_closed_and_manifold_except_neck(model):
    v, f = model["v_template"], model["f"].astype(np.int64)
    half_edges = Counter(map(tuple, np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])))
    assert max(half_edges.values()) == 1, "a directed edge is used twice: inconsistent orientation"
    boundary = [e for e in half_edges if (e[1], e[0]) not in half_edges]
    verts = {i for e in boundary for i in e}
    assert len(boundary) == len(verts) > 20  # one simple loop ...
    assert v[list(verts), 1].max() < -0.18  # ... at the bottom of the neck
    # every vertex's faces form a single fan (no bow ties)
    for vid in np.random.default_rng(0).choice(len(v), 300, replace=False):
        ring = f[(f == vid).any(1)]
        edges = {tuple(sorted(set(tri) - {vid})) for tri in map(tuple, ring)}
        nodes = Counter(i for e in edges for i in e)
        assert all(c <= 2 for c in nodes.values())


def test_no_degenerate_triangles(model):
    tri = model["v_template"][model["f"].astype(np.int64)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert area.min() > 1e-8  # 0.01 mm^2
    edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
    assert edges.min() > 1e-4


def test_uv_atlas_inside_unit_square_without_overlap(model):
    vt, ft = model["vt"], model["ft"].astype(np.int64)
    assert vt.min() >= 0.0 and vt.max() <= 1.0
    size = 1024
    tri = vt[ft] * size  # [F, 3, 2]
    signed = _cross2(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert np.abs(signed).min() > 1e-4
    count = np.zeros((size, size), dtype=np.int32)
    lo, hi = np.floor(tri.min(1)).astype(int), np.ceil(tri.max(1)).astype(int)
    for t, a, l, h in zip(tri, signed, lo, hi, strict=True):
        xs, ys = np.meshgrid(np.arange(l[0], h[0] + 1) + 0.5, np.arange(l[1], h[1] + 1) + 0.5)
        p = np.stack([xs.ravel(), ys.ravel()], 1)
        w = np.stack([_cross2(t[(i + 1) % 3] - p, t[(i + 2) % 3] - p) / a for i in range(3)], 1)
        inside = (w > 1e-6).all(1)
        np.add.at(count, (p[inside, 1].astype(int).clip(0, size - 1), p[inside, 0].astype(int).clip(0, size - 1)), 1)
    assert count.max() == 1, f"{(count > 1).sum()} texels covered by two triangles"
    assert (count > 0).mean() > 0.5  # the atlas uses most of the square


def test_landmarks_lie_on_their_regions(model, flame):
    names = model["region_names"]
    region = model["face_region"]
    lmk = flame.landmarks(flame.v_template[None], kind="68")[0].numpy()
    assert all(names[region[f]] == "lips" for f in model["lmk_face_idx"][48:68])
    assert all(names[region[f]] in ("face", "neck") for f in model["lmk_face_idx"][:17])
    assert np.argmax(lmk[27:36, 2]) == 3  # landmark 30, the nose tip, sticks out furthest
    assert np.argmin(lmk[:17, 1]) == 8  # landmark 8 is the chin
    for right, left in [(0, 16), (17, 26), (36, 45), (39, 42), (48, 54), (31, 35)]:
        assert abs(lmk[right, 0] + lmk[left, 0]) < 0.003 and lmk[right, 0] < 0 < lmk[left, 0]
    eyes = flame.J_regressor[3:].numpy() @ model["v_template"]
    assert np.linalg.norm(lmk[42:48].mean(0)[:2] - eyes[0, :2]) < 0.006
    assert np.linalg.norm(lmk[36:42].mean(0)[:2] - eyes[1, :2]) < 0.006
    dense_idx = list(model["mp_landmark_indices"])
    for iris in (468, 473):
        assert names[region[model["mp_lmk_face_idx"][dense_idx.index(iris)]]] == "eyes"


def test_jaw_opens_the_mouth_and_moves_only_the_lower_face(model, flame):
    rot = torch.zeros(1, 5, 3)
    rot[0, 2, 0] = 0.3
    posed = flame(rotations=rot).verts[0]
    rest = flame.v_template
    moved = (posed - rest).norm(dim=1) > 1e-5
    jaw_w = torch.from_numpy(model["weights"][:, 2]).float()
    assert torch.equal(moved, jaw_w > 0) or (moved & (jaw_w == 0)).sum() == 0
    lips = flame.landmarks(posed[None])[0]
    assert (lips[62] - lips[66]).norm() > 0.01  # inner lips part by more than a centimetre
    rest_lips = flame.landmarks(rest[None])[0]
    assert (rest_lips[62] - rest_lips[66]).norm() < 1e-6
    assert posed[:, 1][rest[:, 1] > 0.05].sub(rest[:, 1][rest[:, 1] > 0.05]).abs().max() < 1e-6


def test_blink_closes_the_eye(model, flame):
    names = flame.expr_names
    expr = torch.zeros(1, 50)
    expr[0, names.index("blink_left")] = 1.0
    closed = flame(expr=expr).verts[0]
    eye_front = float((flame.J_regressor[3] @ flame.v_template)[2]) + 0.0122
    ex, ey = (flame.J_regressor[3] @ flame.v_template)[:2].tolist()
    shell = np.ones(len(model["v_template"]), bool)
    shell[model["f"][model["face_region"] == model["region_names"].index("eyes")].ravel()] = False
    in_front = flame.v_template[:, 2] > eye_front - 0.0122 - 0.0135  # the socket, not the skull behind it
    near = (torch.from_numpy(shell) & in_front & ((closed[:, 0] - ex).abs() < 0.004)
            & ((closed[:, 1] - ey).abs() < 0.003))
    assert near.any() and closed[near, 2].min() > eye_front - 0.001  # the lid covers the eyeball front


def test_expressions_stay_on_the_face(model, flame):
    """No expression component reaches the back of the head (a blink once pulled the skull onto the lid)."""
    dirs = flame.blenddirs[flame.n_shape:].view(flame.n_expr, -1, 3).norm(dim=-1)  # [n_expr, V] m per unit
    assert dirs.max() < 0.025
    back = torch.from_numpy(model["v_template"][:, 2] < 0.0)  # behind the ears
    names = flame.expr_names
    moved = {names[i]: float(dirs[i, back].max()) for i in range(len(names)) if dirs[i, back].max() > 1e-3}
    assert not moved, f"expression components move the back of the head (m per unit): {moved}"


def test_seeded_and_deterministic(model):
    again = build_head_model(0)
    other = build_head_model(1)
    for key in ("v_template", "shapedirs", "J_regressor", "weights", "vt", "lmk_b_coords"):
        assert np.array_equal(model[key], again[key]), key
    assert not np.allclose(model["v_template"], other["v_template"])


def test_cli_writes_a_loadable_model(tmp_path):
    out = tmp_path / "head.pkl"
    procedural_main([f"out={out}", "seed=0"])
    flame = FLAME.from_file(str(out), n_shape=60, n_expr=20)
    assert flame.landmarks68 is not None and flame.landmarks_dense is not None
    assert set(flame.region_names) >= {"face", "lips", "eyes", "ears", "scalp", "neck"}
