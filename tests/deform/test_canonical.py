"""Canonicalization through the nearest triangle: identity, rigid motion, barycentric transfer, culling."""

import math

import pytest
import torch

from pav.deform import Canonicalizer, triangle_frames
from pav.head.flame import FLAME, axis_angle_to_matrix
from pav.ops import MeshBVH


@pytest.fixture(scope="module")
def head():
    flame = FLAME.from_file("procedural:0", n_shape=10, n_expr=10)
    verts = flame().verts[0]
    return flame, verts, flame.vt[flame.ft]


def near_surface(verts, faces, n, spread, seed=0):
    gen = torch.Generator().manual_seed(seed)
    face = torch.randint(len(faces), (n,), generator=gen)
    w = torch.rand(n, 3, generator=gen)
    w = w / w.sum(-1, keepdim=True)
    tri = verts[faces[face]]
    return torch.einsum("nc,nck->nk", w, tri) + spread * torch.randn(n, 3, generator=gen)


@pytest.mark.parametrize("mode", ["rigid", "affine"])
def test_identical_meshes_map_points_to_themselves(head, mode):
    flame, verts, face_uv = head
    canon = Canonicalizer(verts, flame.faces, face_uv, mode=mode, outer_dist=0.05)
    points = near_surface(verts, flame.faces, 2000, 0.01)
    dirs = torch.nn.functional.normalize(torch.randn(2000, 3), dim=-1)
    out = canon(points, dirs, verts[None], MeshBVH(verts[None], flame.faces), torch.zeros(2000, dtype=torch.long))
    assert out.valid.all()
    torch.testing.assert_close(out.points, points, atol=2e-5, rtol=0)
    torch.testing.assert_close(out.dirs, dirs, atol=2e-5, rtol=0)


@pytest.mark.parametrize("mode", ["rigid", "affine"])
def test_rigid_motion_is_undone(head, mode):
    flame, verts, face_uv = head
    rot = axis_angle_to_matrix(torch.tensor([[0.3, -0.5, 0.2]]))[0]
    shift = torch.tensor([0.02, -0.01, 0.05])
    posed = verts @ rot.T + shift
    canon = Canonicalizer(verts, flame.faces, face_uv, mode=mode, outer_dist=0.05)
    rest_points = near_surface(verts, flame.faces, 2000, 0.01, seed=1)
    points = rest_points @ rot.T + shift
    dirs = torch.nn.functional.normalize(torch.randn(2000, 3), dim=-1)
    out = canon(points, dirs @ rot.T, posed[None], MeshBVH(posed[None], flame.faces),
                torch.zeros(2000, dtype=torch.long))
    torch.testing.assert_close(out.points, rest_points, atol=5e-5, rtol=0)
    torch.testing.assert_close(out.dirs, dirs, atol=5e-4, rtol=0)  # float32 frames of millimetre triangles


def test_point_on_a_triangle_keeps_its_barycentrics(head):
    flame, verts, face_uv = head
    gen = torch.Generator().manual_seed(2)
    posed = verts + 0.004 * torch.randn(verts.shape, generator=gen)  # a non-rigid deformation
    canon = Canonicalizer(verts, flame.faces, face_uv, mode="affine", outer_dist=0.05)
    bvh = MeshBVH(posed[None], flame.faces)
    face = torch.randint(len(flame.faces), (500,), generator=gen)
    w = torch.rand(500, 3, generator=gen) + 0.2
    w = w / w.sum(-1, keepdim=True)
    points = torch.einsum("nc,nck->nk", w, posed[flame.faces[face]])
    out = canon(points, None, posed[None], bvh, torch.zeros(500, dtype=torch.long))
    # on the surface the nearest triangle is the one the point lies on (or a neighbour sharing the point)
    expected = torch.einsum("nc,nck->nk", out.bary, verts[flame.faces[out.face_idx]])
    torch.testing.assert_close(out.points, expected, atol=2e-5, rtol=0)
    same = out.face_idx == face
    assert same.float().mean() > 0.95
    torch.testing.assert_close(out.points[same], torch.einsum("nc,nck->nk", w, verts[flame.faces[face]])[same],
                               atol=2e-5, rtol=0)
    uv = torch.einsum("nc,nck->nk", w, face_uv[face])
    torch.testing.assert_close(out.uv[same], uv[same], atol=1e-5, rtol=0)


def test_samples_are_kept_by_their_distance_and_side_of_the_surface(head):
    flame, verts, face_uv = head
    tri = verts[flame.faces]  # [F, 3, 3]
    top = int(tri.mean(1)[:, 1].argmax())  # the crown: a skull 18 cm across below it
    normal = torch.linalg.cross(tri[top, 1] - tri[top, 0], tri[top, 2] - tri[top, 0])
    normal = normal / normal.norm()
    heights = torch.tensor([0.005, 0.05, -0.005, -0.015])  # metres along the outward normal
    points = tri[top].mean(0) + heights[:, None] * normal  # [4, 3]
    just_outside, too_far, shallow_inside, too_deep = range(4)
    bvh, mesh = MeshBVH(verts[None], flame.faces), torch.zeros(4, dtype=torch.long)
    outer_dist, inner_dist = 0.02, 0.01
    dist = bvh.nearest(points, mesh)[2].sqrt()
    # the deep point is within reach of the outer cull, so only the inner one can drop it
    assert inner_dist < dist[too_deep] < outer_dist and dist[too_far] > outer_dist
    canon = Canonicalizer(verts, flame.faces, face_uv, outer_dist=outer_dist, inner_dist=inner_dist)
    out = canon(points, None, verts[None], bvh, mesh)
    assert out.valid.tolist() == [True, False, True, False]
    assert out.face_idx.tolist() == [top, -1, top, -1]  # kept samples map through the triangle they lie by
    kept = torch.tensor([just_outside, shallow_inside])
    torch.testing.assert_close(out.points[kept], points[kept], atol=2e-5, rtol=0)  # an unposed mesh: identity
    no_inner_cull = Canonicalizer(verts, flame.faces, face_uv, outer_dist=outer_dist)  # inner_dist: inf, the default
    assert no_inner_cull(points, None, verts[None], bvh, mesh).valid.tolist() == [True, False, True, True]


def test_frames_are_rotations_or_edge_matrices():
    tri = torch.tensor([[[0.0, 0, 0], [2.0, 0, 0], [0.0, 3.0, 0]]])
    rigid = triangle_frames(tri, "rigid")[0]
    torch.testing.assert_close(rigid @ rigid.T, torch.eye(3))
    torch.testing.assert_close(rigid[:, 2], torch.tensor([0.0, 0, 1]))
    affine = triangle_frames(tri, "affine")[0]
    torch.testing.assert_close(affine[:, 0], torch.tensor([2.0, 0, 0]))
    torch.testing.assert_close(affine[:, 2], torch.tensor([0.0, 0, math.sqrt(6.0)]))
    with pytest.raises(ValueError, match="mode"):
        triangle_frames(tri, "twisted")


@pytest.mark.parametrize("mode", ["rigid", "affine"])
def test_the_frame_table_gives_what_each_samples_own_triangle_gives(head, mode):
    flame, verts, face_uv = head
    gen = torch.Generator().manual_seed(5)
    posed = torch.stack([verts + 0.003 * torch.randn(verts.shape, generator=gen) for _ in range(3)])  # [3, V, 3]
    bvh = MeshBVH(posed, flame.faces)
    points = near_surface(verts, flame.faces, 3000, 0.02, seed=6)
    dirs = torch.nn.functional.normalize(torch.randn(3000, 3, generator=gen), dim=-1)
    mesh = torch.randint(3, (3000,), generator=gen)
    tabled = Canonicalizer(verts, flame.faces, face_uv, mode=mode, outer_dist=0.05, inner_dist=0.01)
    direct = Canonicalizer(verts, flame.faces, face_uv, mode=mode, outer_dist=0.05, inner_dist=0.01, table_bytes=0)
    a, b = tabled(points, dirs, posed, bvh, mesh), direct(points, dirs, posed, bvh, mesh)
    assert direct.frame_table(posed) is None and tabled.frame_table(posed) is tabled.frame_table(posed)  # kept
    assert torch.equal(a.valid, b.valid) and 0 < int((~a.valid).sum()) < 3000  # some lie too deep or too far
    for got, want in ((a.points, b.points), (a.dirs, b.dirs), (a.uv, b.uv)):
        torch.testing.assert_close(got[a.valid], want[a.valid], atol=1e-6, rtol=0)
    posed[1] += 0.01  # moved meshes in place: the table is rebuilt, not reused
    bvh.refit(posed)
    moved = tabled(points, dirs, posed, bvh, mesh).points
    torch.testing.assert_close(moved, direct(points, dirs, posed, bvh, mesh).points, atol=1e-6, rtol=0)


def _hinged_lid(angle: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A thin triangle (an eyelid's: 20 x 2 mm) and a big one sharing its long edge, canonical and turned by angle
    about that edge: canon_verts [4, 3], posed_verts [4, 3], faces [2, 3]."""
    canon = torch.tensor([[0.0, 0.0, 0.0], [0.02, 0.0, 0.0], [0.01, -0.002, 0.0], [0.01, 0.05, -0.05]])
    c, s = math.cos(angle), math.sin(angle)
    posed = canon.clone()
    posed[2] = torch.tensor([0.01, -0.002 * c, 0.002 * s])  # the lid's tip turns about the x axis
    return canon, posed, torch.tensor([[0, 1, 2], [0, 3, 1]])


def test_far_samples_move_with_their_closest_point_not_the_triangles_turn():
    canon_verts, posed, faces = _hinged_lid(math.radians(60))
    face_uv = torch.zeros(2, 3, 2)
    bvh = MeshBVH(posed[None], faces)
    lid_normal = torch.linalg.cross(posed[1] - posed[0], posed[2] - posed[0])
    lid_normal = lid_normal / lid_normal.norm()
    closest = (posed[0] + posed[1] + posed[2]) / 3
    heights = torch.tensor([0.002, 0.005, 0.012, 0.015, 0.018, 0.025, 0.04])  # metres in front of the lid
    points = closest + heights[:, None] * lid_normal  # [7, 3]
    mesh = torch.zeros(len(points), dtype=torch.long)
    rigid = Canonicalizer(canon_verts, faces, face_uv, outer_dist=0.1)(points, None, posed[None], bvh, mesh)
    blended = Canonicalizer(canon_verts, faces, face_uv, outer_dist=0.1, rigid_reach=0.01)(points, None, posed[None],
                                                                                         bvh, mesh)
    assert (rigid.face_idx == 0).all() and (blended.face_idx == 0).all()
    canon_closest = canon_verts[:3].mean(0)
    translated = canon_closest + (points - closest)  # the closest point's own motion
    near, far = heights <= 0.01, heights >= 0.02
    torch.testing.assert_close(blended.points[near], rigid.points[near])
    torch.testing.assert_close(blended.points[far], translated[far], atol=1e-6, rtol=0)
    # the lid's 60-degree turn swings the 4 cm sample 4 cm sideways under the triangle's map, not under the blend
    assert (rigid.points[-1] - translated[-1]).norm() > 0.03
    # no jump where the blend begins or ends: steps along the line stay within the points' own spacing x 2
    line = closest + torch.linspace(0.005, 0.03, 60)[:, None] * lid_normal
    out = Canonicalizer(canon_verts, faces, face_uv, outer_dist=0.1, rigid_reach=0.01)(
        line, None, posed[None], bvh, torch.zeros(60, dtype=torch.long))
    steps = (out.points[1:] - out.points[:-1]).norm(dim=-1)
    assert steps.max() < 2.0 * (0.025 / 59) * 2


def test_rigid_reach_must_be_positive(head):
    flame, verts, face_uv = head
    with pytest.raises(ValueError, match="rigid_reach"):
        Canonicalizer(verts, flame.faces, face_uv, rigid_reach=0.0)
