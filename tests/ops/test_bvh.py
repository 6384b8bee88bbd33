"""MeshBVH against brute force: exact nearest triangles and first hits, on CPU (and CUDA when present)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import requires_cuda

from pav.head.flame import FLAME
from pav.ops import MeshBVH
from pav.ops._ext import load
from pav.ops.bvh import closest_point_triangle_torch, nearest_triangle_torch, ray_triangle_torch, raycast_torch


@pytest.fixture(scope="module")
def ext():
    return load()


@pytest.fixture(scope="module")
def head():
    flame = FLAME.from_file("procedural:0")
    return flame.v_template[None].float().contiguous(), flame.faces.int()  # [1, V, 3], [F, 3]


def _soup(n_faces: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(n_faces, 1, 3, generator=g)
    verts = (centers + 0.15 * (torch.rand(n_faces, 3, 3, generator=g) - 0.5)).reshape(1, -1, 3)
    return verts.contiguous(), torch.arange(3 * n_faces, dtype=torch.int32).reshape(-1, 3)


def _around(verts: torch.Tensor, n: int, spread: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lo, hi = verts.reshape(-1, 3).min(0).values, verts.reshape(-1, 3).max(0).values
    size = hi - lo
    return lo - spread * size + torch.rand(n, 3, generator=g) * size * (1 + 2 * spread)


def _near_surface(verts: torch.Tensor, faces: torch.Tensor, n: int, offset: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tri = verts[0][faces[torch.randint(0, faces.shape[0], (n,), generator=g)].long()]  # [n, 3, 3]
    w = torch.rand(n, 3, generator=g)
    w = w / w.sum(1, keepdim=True)
    size = (verts[0].max(0).values - verts[0].min(0).values).max()
    return (tri * w[..., None]).sum(1) + (torch.rand(n, 3, generator=g) * 2 - 1) * offset * size


def _sqdist_to(verts, faces, points, face_idx, mesh_idx=None):
    """Brute-force squared distance from each point to the given face of its mesh."""
    mesh = torch.zeros_like(face_idx) if mesh_idx is None else mesh_idx.long()
    tri = verts[mesh[:, None], faces[face_idx.clamp(min=0)].long()]  # [N, 3, 3]
    d2, _ = closest_point_triangle_torch(points, tri[:, 0], tri[:, 1], tri[:, 2])
    return d2


def assert_nearest_exact(bvh, verts, faces, points, mesh_idx=None, max_dist=math.inf, check=None):
    """Queries every point (so the native side sorts and seeds), compares `check` of them
    (all by default) with brute force."""
    all_face, all_bary, all_sqdist = bvh.nearest(points, mesh_idx, max_dist=max_dist)
    rows = slice(None) if check is None else slice(None, None, max(1, points.shape[0] // check))
    face, bary, sqdist, points = all_face[rows], all_bary[rows], all_sqdist[rows], points[rows]
    mesh_idx = None if mesh_idx is None else mesh_idx[rows]
    max_sq = math.inf if math.isinf(max_dist) else max_dist**2
    ref_face, _, ref_sqdist = nearest_triangle_torch(verts, faces, points, mesh_idx, max_sq)
    assert face.dtype == torch.int64 and face.shape == (points.shape[0],)
    assert torch.equal(face < 0, ref_face < 0), "found / not found differs from brute force"
    found = face >= 0
    torch.testing.assert_close(sqdist[found], ref_sqdist[found], rtol=1e-6, atol=1e-12)
    # Same triangle up to ties: the chosen face is at the minimal distance.
    chosen = _sqdist_to(verts, faces, points[found], face[found], None if mesh_idx is None else mesh_idx[found])
    torch.testing.assert_close(chosen, ref_sqdist[found], rtol=1e-6, atol=1e-12)
    # The barycentrics name the closest point.
    mesh = torch.zeros_like(face) if mesh_idx is None else mesh_idx.long()
    tri = verts[mesh[found][:, None], faces[face[found]].long()]
    closest = (bary[found][..., None] * tri).sum(1)
    torch.testing.assert_close(((points[found] - closest) ** 2).sum(-1), sqdist[found], rtol=1e-4, atol=1e-10)
    assert torch.all(bary[found] >= 0) and torch.allclose(bary[found].sum(-1), torch.ones(int(found.sum())))
    assert torch.all(torch.isinf(sqdist[~found])) and torch.all(bary[~found] == 0)
    return all_face, all_bary, all_sqdist


def test_random_soup_near_and_far(ext):
    verts, faces = _soup(400, seed=0)
    bvh = MeshBVH(verts, faces)
    assert bvh.backend == "ext"
    assert_nearest_exact(bvh, verts, faces, _around(verts, 3000, 0.1, seed=1))
    assert_nearest_exact(bvh, verts, faces, _around(verts, 500, 3.0, seed=2))


def test_procedural_head_near_surface_and_box(ext, head):
    verts, faces = head
    bvh = MeshBVH(verts, faces)
    # Enough points that the native side sorts them and seeds each query from the last.
    assert_nearest_exact(bvh, verts, faces, _near_surface(verts, faces, 20000, 0.1, seed=3), check=800)
    assert_nearest_exact(bvh, verts, faces, _around(verts, 20000, 0.1, seed=4), check=800)


def _check_tree(bvh, verts, faces):
    """Layout invariants the traversals and the GPU refit rely on."""
    for m in range(bvh.n_meshes):
        count = int(bvh.n_nodes[m])
        raw = bvh.nodes[m, :count]  # [n, 8] int32: lo xyz, first, hi xyz, count
        box = raw.view(torch.float32)
        lo, hi, first, kids = box[:, 0:3], box[:, 4:7], raw[:, 3].long(), raw[:, 7].long()
        parents = bvh.parents[m, :count].long()
        if count > 1:
            assert kids[1] == -1, "node 1 is the unused slot"
        inner = torch.nonzero(kids == 0).flatten()
        assert torch.all(first[inner] % 2 == 0), "child pairs start at even indices"
        for child in (first[inner], first[inner] + 1):
            assert torch.all(child > inner) and torch.all(parents[child] == inner)
            assert torch.all(lo[child] >= lo[inner]) and torch.all(hi[child] <= hi[inner])
        leaves = torch.nonzero(kids > 0).flatten()
        slots = torch.cat([torch.arange(int(first[i]), int(first[i] + kids[i])) for i in leaves.tolist()])
        assert torch.equal(slots.sort().values, torch.arange(bvh.n_faces)), "each triangle in exactly one leaf"
        assert torch.equal(bvh.tri_ids[m].long().sort().values, torch.arange(bvh.n_faces))
        corners = verts[m][faces[bvh.tri_ids[m].long()].long()].reshape(-1, 9)
        assert torch.equal(bvh.tri_verts[m], corners)
        depth = torch.zeros(count, dtype=torch.long)
        for i in inner.tolist():
            depth[first[i]] = depth[first[i] + 1] = depth[i] + 1
        assert int(depth.max()) < 64


def test_tree_layout(ext, head):
    verts, faces = head
    _check_tree(MeshBVH(verts, faces), verts, faces)  # built on two threads
    soup_verts, soup_faces = _soup(50, seed=21)
    _check_tree(MeshBVH(soup_verts, soup_faces), soup_verts, soup_faces)  # built on one
    batch = torch.cat([verts, verts * 0.9]).contiguous()
    bvh = MeshBVH(batch, faces)
    _check_tree(bvh, batch, faces)
    bvh.refit((batch * 1.2).contiguous())
    _check_tree(bvh, batch * 1.2, faces)


def test_twin_agrees_with_float64(head):
    verts, faces = head
    points = _near_surface(verts, faces, 150, 0.05, seed=5)
    _, _, d32 = nearest_triangle_torch(verts, faces, points)
    _, _, d64 = nearest_triangle_torch(verts.double(), faces, points.double())
    torch.testing.assert_close(d32.double(), d64, rtol=1e-5, atol=1e-12)


def test_degenerate_triangles_and_points_on_the_mesh(ext):
    verts = torch.tensor([
        [0, 0, 0], [1, 0, 0], [0, 1, 0],            # a regular triangle
        [2, 0, 0], [3, 0, 0], [4, 0, 0],            # collinear: zero area
        [5, 5, 5], [5, 5, 5], [5, 5, 5],            # all corners equal
        [0, 2, 0], [3, 2, 0], [0, 2.000001, 1e-7],  # sliver
        [0, 0, 0], [1, 0, 0], [0, 1, 0],            # coplanar duplicate of the first
        [0, 0, 1], [1, 0, 1], [0, 1, 1],
    ], dtype=torch.float32)[None]
    faces = torch.arange(18, dtype=torch.int32).reshape(6, 3)
    bvh = MeshBVH(verts, faces)
    on_vertices = verts[0]
    mids = (verts[0][faces[:, 0].long()] + verts[0][faces[:, 1].long()]) / 2
    g = torch.Generator().manual_seed(6)
    scattered = torch.rand(2000, 3, generator=g) * 7 - 1
    far = torch.tensor([[1e4, -1e4, 3e3], [-1e5, 0, 0]])
    for points in (on_vertices, mids, scattered, far):
        face, _, sqdist = assert_nearest_exact(bvh, verts, faces, points.contiguous())
        assert torch.all(face >= 0)
    _, _, sqdist = bvh.nearest(on_vertices.contiguous())
    assert torch.all(sqdist <= 1e-12), "points on vertices are at distance 0"
    _, _, sqdist = bvh.nearest(mids.contiguous())
    assert torch.all(sqdist <= 1e-12), "points on edges are at distance 0"


def test_batched_meshes_with_mixed_mesh_idx(ext, head):
    verts, faces = head
    g = torch.Generator().manual_seed(7)
    batch = torch.cat([verts, verts * 1.1 + 0.02, verts + 0.01 * torch.randn(verts.shape, generator=g)]).contiguous()
    bvh = MeshBVH(batch, faces)
    points = _near_surface(verts, faces, 12000, 0.1, seed=8)
    mesh_idx = torch.randint(0, 3, (12000,), generator=g)
    assert_nearest_exact(bvh, batch, faces, points, mesh_idx, check=800)
    with pytest.raises(ValueError, match="mesh_idx is required"):
        bvh.nearest(points)


def test_refit_follows_new_vertices(ext, head):
    verts, faces = head
    g = torch.Generator().manual_seed(9)
    bvh = MeshBVH(verts, faces)
    moved = (verts + 0.02 * torch.randn(verts.shape, generator=g)).contiguous()
    moved[..., 1] *= 1.3
    bvh.refit(moved)
    assert_nearest_exact(bvh, moved, faces, _near_surface(moved, faces, 8000, 0.1, seed=10), check=600)
    origins, dirs = _rays_at(moved, 1000, seed=11)
    assert_raycast_exact(bvh, moved, faces, origins, dirs)


def test_max_dist(ext, head):
    verts, faces = head
    bvh = MeshBVH(verts, faces)
    points = _near_surface(verts, faces, 8000, 0.1, seed=12)
    face, _, sqdist = assert_nearest_exact(bvh, verts, faces, points, max_dist=0.01, check=600)
    assert (face < 0).any() and (face >= 0).any()
    assert torch.all(sqdist[face >= 0] <= 0.01**2)
    full_face, _, full_sqdist = bvh.nearest(points)
    assert torch.all(full_sqdist[face < 0] > 0.01**2)


# ---------------------------------------------------------------------------------- rays


def _rays_at(verts, n, seed):
    g = torch.Generator().manual_seed(seed)
    center = verts[0].mean(0)
    origins = torch.randn(n, 3, generator=g)
    origins = center + 0.5 * origins / origins.norm(dim=1, keepdim=True)
    dirs = center + 0.1 * torch.randn(n, 3, generator=g) - origins
    return origins.contiguous(), dirs.contiguous()


def assert_raycast_exact(bvh, verts, faces, origins, dirs, mesh_idx=None):
    t, face, bary = bvh.raycast(origins, dirs, mesh_idx)
    ref_t, ref_face, _ = raycast_torch(verts, faces, origins, dirs, mesh_idx)
    assert torch.equal(torch.isfinite(t), torch.isfinite(ref_t)), "hit / miss differs from brute force"
    assert torch.equal(face < 0, ~torch.isfinite(t))
    hit = face >= 0
    torch.testing.assert_close(t[hit], ref_t[hit], rtol=1e-6, atol=1e-9)
    mesh = torch.zeros_like(face) if mesh_idx is None else mesh_idx.long()
    tri = verts[mesh[hit][:, None], faces[face[hit]].long()]  # [n, 3, 3]
    t_chosen, _ = ray_triangle_torch(origins[hit], dirs[hit], tri[:, None, 0], tri[:, None, 1], tri[:, None, 2])
    torch.testing.assert_close(t_chosen[:, 0], ref_t[hit], rtol=1e-6, atol=1e-9)  # the same triangle up to ties
    hit_point = (bary[hit][..., None] * tri).sum(1)
    torch.testing.assert_close(hit_point, origins[hit] + t[hit, None] * dirs[hit], rtol=1e-4, atol=1e-5)
    return t, face


def test_raycast_against_brute_force(ext, head):
    verts, faces = head
    bvh = MeshBVH(verts, faces)
    origins, dirs = _rays_at(verts, 3000, seed=13)
    t, face = assert_raycast_exact(bvh, verts, faces, origins, dirs)
    assert 0.2 < (face >= 0).float().mean() < 0.95, "the ray set mixes hits and misses"
    soup_verts, soup_faces = _soup(300, seed=14)
    soup = MeshBVH(soup_verts, soup_faces)
    origins, dirs = _rays_at(soup_verts, 2000, seed=15)
    assert_raycast_exact(soup, soup_verts, soup_faces, origins, dirs)


def test_rays_through_shared_edges_and_vertices_hit(ext, head):
    verts, faces = head
    v, f = verts[0], faces.long()
    bvh = MeshBVH(verts, faces)
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    mids = (v[edges[:, 0]] + v[edges[:, 1]]) / 2
    normals = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    normals = (normals / normals.norm(dim=1, keepdim=True)).repeat(3, 1)
    targets = torch.cat([mids[::7], v[f[::11, 0]]])
    outward = torch.cat([normals[::7], normals[: f.shape[0]][::11]])
    origins = (targets + 0.05 * outward).contiguous()
    dirs = (targets - origins).contiguous()  # t = 1 at the edge or vertex
    t, face = assert_raycast_exact(bvh, verts, faces, origins, dirs)
    assert torch.all(face >= 0), "a ray through a shared edge or vertex slipped through the mesh"
    assert torch.all(t <= 1 + 1e-5)


def test_batched_raycast(ext, head):
    verts, faces = head
    batch = torch.cat([verts, verts + torch.tensor([0.03, 0.0, 0.0])]).contiguous()
    bvh = MeshBVH(batch, faces)
    origins, dirs = _rays_at(verts, 2000, seed=16)
    mesh_idx = torch.arange(2000) % 2
    assert_raycast_exact(bvh, batch, faces, origins, dirs, mesh_idx)


# ---------------------------------------------------------------------------------- input checks


def test_bad_input_raises_value_error(ext, head):
    verts, faces = head
    with pytest.raises(ValueError, match="float32"):
        MeshBVH(verts.double(), faces)
    with pytest.raises(ValueError, match=r"\[B, V, 3\]"):
        MeshBVH(verts[0], faces)
    with pytest.raises(ValueError, match="outside"):
        MeshBVH(verts, torch.cat([faces, torch.tensor([[0, 1, verts.shape[1]]], dtype=torch.int32)]))
    with pytest.raises(ValueError, match="CPU or CUDA"):
        MeshBVH(verts.to("meta"), faces)
    with pytest.raises(ValueError, match="NaN or inf"):
        MeshBVH(torch.where(torch.arange(verts.shape[1])[None, :, None] == 5, math.nan, verts), faces)
    bvh = MeshBVH(verts, faces)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        bvh.nearest(torch.zeros(10, 2))
    with pytest.raises(ValueError, match="float32"):
        bvh.nearest(torch.zeros(10, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="meta"):
        bvh.nearest(torch.zeros(10, 3, device="meta"))
    with pytest.raises(ValueError, match="mesh_idx"):
        bvh.nearest(torch.zeros(10, 3), torch.ones(10, dtype=torch.long))
    with pytest.raises(ValueError, match="refit"):
        bvh.refit(verts[:, :-1].contiguous())
    # The wrapper makes strided input contiguous; the native side checks again and refuses it.
    strided = torch.rand(20, 6)[:, ::2]
    face, _, _ = bvh.nearest(strided)
    assert face.shape == (20,)
    empty = torch.empty(0, dtype=torch.int32)
    with pytest.raises(ValueError, match="contiguous"):
        ext.bvh_nearest(bvh.nodes, bvh.tri_verts, bvh.tri_ids, strided, empty, math.inf, True)
    with pytest.raises(ValueError, match="outside"):
        ext.bvh_build(verts, torch.tensor([[0, 1, -1]], dtype=torch.int32), 4)


def test_torch_backend_matches_ext(ext, head):
    verts, faces = head
    points = _near_surface(verts, faces, 500, 0.1, seed=17)
    fast, slow = MeshBVH(verts, faces), MeshBVH(verts, faces, backend="torch")
    assert slow.backend == "torch"
    _, _, d_fast = fast.nearest(points)
    _, _, d_slow = slow.nearest(points)
    torch.testing.assert_close(d_fast, d_slow, rtol=1e-6, atol=1e-12)
    origins, dirs = _rays_at(verts, 300, seed=18)
    torch.testing.assert_close(fast.raycast(origins, dirs)[0], slow.raycast(origins, dirs)[0])


# ---------------------------------------------------------------------------------- CUDA


@requires_cuda
def test_cuda_matches_cpu(ext, head):
    verts, faces = head
    batch = torch.cat([verts, verts * 1.05]).contiguous()
    cpu = MeshBVH(batch, faces)
    gpu = MeshBVH(batch.cuda(), faces.cuda())
    points = _near_surface(verts, faces, 20000, 0.1, seed=19)
    mesh_idx = torch.arange(20000) % 2
    f_cpu, b_cpu, d_cpu = cpu.nearest(points, mesh_idx)
    f_gpu, b_gpu, d_gpu = gpu.nearest(points.cuda(), mesh_idx.cuda())
    torch.testing.assert_close(d_gpu.cpu(), d_cpu, rtol=1e-6, atol=1e-12)
    moved = (batch + 0.01).contiguous()
    cpu.refit(moved)
    gpu.refit(moved.cuda())
    origins, dirs = _rays_at(verts, 5000, seed=20)
    t_cpu, f_cpu, _ = cpu.raycast(origins, dirs, mesh_idx[:5000])
    t_gpu, f_gpu, _ = gpu.raycast(origins.cuda(), dirs.cuda(), mesh_idx[:5000].cuda())
    torch.testing.assert_close(t_gpu.cpu(), t_cpu, rtol=1e-6, atol=1e-9)
    _, _, d_cpu = cpu.nearest(points, mesh_idx)
    _, _, d_gpu = gpu.nearest(points.cuda(), mesh_idx.cuda())
    torch.testing.assert_close(d_gpu.cpu(), d_cpu, rtol=1e-6, atol=1e-12)
