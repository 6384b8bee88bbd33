"""MeshBVH against brute force: exact nearest triangles and first hits, on CPU (and CUDA when present)."""

from __future__ import annotations

import math

import pytest
import torch

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
        if count > 1:
            assert kids[1] == -1, "node 1 is the unused slot"
        assert torch.all(bvh.nodes[m, count:, 7] == -1), "slots past the node count are unused"
        inner = torch.nonzero(kids == 0).flatten()
        assert torch.all(first[inner] % 2 == 0), "child pairs start at even indices"
        # Each node but the root and the unused slot is the child of exactly one inner node (the GPU refit's parents).
        children = torch.cat([first[inner], first[inner] + 1])
        assert torch.equal(children.sort().values, torch.arange(2, count)) if count > 1 else len(children) == 0
        for child in (first[inner], first[inner] + 1):
            assert torch.all(child > inner)
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


# ---------------------------------------------------------------------------------- ties


def _vertex_points(v: torch.Tensor, faces: torch.Tensor, scales: tuple[float, ...]) -> torch.Tensor:
    """Points just off each vertex of v [V, 3] along its normal, `scale` of its shortest edge away: most lie in
    the vertex's Voronoi region, bitwise equally far from every triangle sharing it."""
    f = faces.long()
    normals = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # [F, 3]
    vertex_normals = torch.zeros_like(v).index_add_(0, f.reshape(-1), normals.repeat_interleave(3, 0))
    used = vertex_normals.norm(dim=1) > 0
    vertex_normals = vertex_normals[used] / vertex_normals[used].norm(dim=1, keepdim=True)
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])  # [3F, 2]
    length = (v[edges[:, 0]] - v[edges[:, 1]]).norm(dim=1)
    shortest = torch.full((v.shape[0],), math.inf).scatter_reduce(0, edges.reshape(-1), length.repeat_interleave(2),
                                                                  "amin")[used]
    return torch.cat([v[used] + s * shortest[:, None] * vertex_normals for s in scales]).contiguous()


def _far_points(v: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Points three head sizes away: nearest to a vertex of the convex hull, a tie of all its triangles."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, 3, generator=g)
    size = (v.max(0).values - v.min(0).values).max()
    return (v.mean(0) + 3 * size * u / u.norm(dim=1, keepdim=True)).contiguous()


def _lowest_nearest(v: torch.Tensor, faces: torch.Tensor, points: torch.Tensor, k: int = 64, chunk: int = 1024):
    """Brute force with the twin's formulas: the lowest of the nearest faces of each point, how many faces tie at
    that distance, and whether the k candidates (nearest bounding spheres) provably hold every nearest face."""
    tri = v[faces.long()]  # [F, 3, 3]
    centre = tri.mean(1)  # [F, 3]
    radius = (tri - centre[:, None]).norm(dim=2).max(1).values  # [F]
    exact = "donot_use_mm_for_euclid_dist"
    out = []
    for s in range(0, points.shape[0], chunk):
        p = points[s:s + chunk]  # [n, 3]
        upper = torch.cdist(p, v, compute_mode=exact).min(1).values  # [n]: the mesh is no farther than a vertex
        lower = (torch.cdist(p, centre, compute_mode=exact) - radius).clamp_min(0)  # [n, F]
        bound, candidates = lower.topk(k + 1, dim=1, largest=False)  # [n, k + 1]
        covered = bound[:, k] > upper * 1.001 + 1e-7
        candidates = candidates[:, :k]
        t = tri[candidates]  # [n, k, 3, 3]
        d2, _ = closest_point_triangle_torch(p[:, None], t[:, :, 0], t[:, :, 1], t[:, :, 2])  # [n, k]
        tied = d2 == d2.min(1, keepdim=True).values
        out.append((torch.where(tied, candidates, faces.shape[0]).min(1).values, tied.sum(1), covered))
    lowest, n_tied, covered = (torch.cat(column) for column in zip(*out, strict=True))
    return lowest, n_tied, covered


def _tie_queries(batch: torch.Tensor, faces: torch.Tensor):
    """Points at ties on each mesh of batch [B, V, 3]: points [N, 3], mesh_idx [N], the lowest nearest face [N]."""
    points, mesh_idx, lowest = [], [], []
    for m in range(batch.shape[0]):
        p = torch.cat([_vertex_points(batch[m], faces, (0.05, 0.3)), _far_points(batch[m], 1500, seed=30 + m)])
        face, n_tied, covered = _lowest_nearest(batch[m], faces, p)
        assert covered.float().mean() > 0.8
        assert (n_tied[covered] >= 2).float().mean() > 0.4, "many of these points are ties"
        points.append(p[covered])
        mesh_idx.append(torch.full((int(covered.sum()),), m, dtype=torch.int32))
        lowest.append(face[covered])
    return torch.cat(points).contiguous(), torch.cat(mesh_idx), torch.cat(lowest)


def test_ties_go_to_the_lowest_face_in_any_query_order(ext, head):
    verts, faces = head
    g = torch.Generator().manual_seed(22)
    batch = torch.cat([verts, verts * 1.1 + 0.02, verts + 0.002 * torch.randn(verts.shape, generator=g)]).contiguous()
    points, mesh_idx, lowest = _tie_queries(batch, faces)
    n = points.shape[0]
    assert n > 3 * 4096, "enough queries that the native side sorts them (and seeds each from the last)"
    bvh = MeshBVH(batch, faces)
    orders = {"original": torch.arange(n), "reversed": torch.arange(n).flip(0),
              "shuffled": torch.randperm(n, generator=g)}
    for name, order in orders.items():
        for sort in (True, False):
            face, _, _ = ext.bvh_nearest(bvh.nodes, bvh.tri_verts, bvh.tri_ids, points[order].contiguous(),
                                         mesh_idx[order].contiguous(), math.inf, sort)
            wrong = int((face != lowest[order]).sum())
            assert wrong == 0, f"{wrong} of {n} ties not given to the lowest face ({name} order, sort={sort})"
    for m in range(batch.shape[0]):  # one mesh alone: no mesh_idx, and the sort sees one mesh
        rows = mesh_idx == m
        face, _, _ = MeshBVH(batch[m:m + 1].contiguous(), faces).nearest(points[rows].contiguous())
        assert torch.equal(face, lowest[rows])
    check = torch.arange(0, n, n // 120)  # the twin agrees: its lowest index wins a tie too
    twin_face, _, _ = nearest_triangle_torch(batch, faces, points[check], mesh_idx[check])
    assert torch.equal(twin_face, lowest[check])


def test_duplicate_triangles_tie_to_the_lowest_face(ext):
    """Copies of one triangle under shuffled face ids, in leaves of their own: nearest and first hit are exact
    ties, whichever copy the traversal meets first."""
    soup, soup_faces = _soup(60, seed=23)
    g = torch.Generator().manual_seed(24)
    copies = 4
    faces = soup_faces.repeat(copies, 1)[torch.randperm(copies * 60, generator=g)].contiguous()  # [240, 3]
    lowest = torch.full((60,), faces.shape[0]).scatter_reduce(0, faces[:, 0].long() // 3,
                                                              torch.arange(faces.shape[0]), "amin")  # [60]
    tri = soup[0].reshape(60, 3, 3)
    centre = tri.mean(1)
    normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal = normal / normal.norm(dim=1, keepdim=True)
    points = (centre + 0.01 * normal).contiguous()
    origins, dirs = (centre + 0.05 * normal).contiguous(), (-normal).contiguous()
    ref_face, _, _ = nearest_triangle_torch(soup, faces, points)
    ref_t, ref_hit_face, _ = raycast_torch(soup, faces, origins, dirs)
    assert (ref_face == lowest).float().mean() > 0.8, "most points are nearest to their own triangle's copies"
    assert (ref_hit_face == lowest).float().mean() > 0.5, "most rays first hit their own triangle's copies"
    for max_leaf in (1, 4):
        bvh = MeshBVH(soup, faces, max_leaf=max_leaf)
        face, _, _ = bvh.nearest(points)
        assert torch.equal(face, ref_face), f"nearest, max_leaf={max_leaf}"
        t, hit_face, _ = bvh.raycast(origins, dirs)
        assert torch.equal(hit_face, ref_hit_face), f"first hit, max_leaf={max_leaf}"


def test_max_dist_is_inclusive_and_ties_still_go_to_the_lowest_face(ext, head):
    verts, faces = head
    points, _, lowest = _tie_queries(verts, faces)
    points, lowest = points[::97].contiguous(), lowest[::97]
    bvh = MeshBVH(verts, faces)
    _, _, sqdist = bvh.nearest(points)
    none = torch.empty(0, dtype=torch.int32)
    for p, face, d2 in zip(points, lowest.tolist(), sqdist.tolist(), strict=True):  # d2: a float32 value, exactly
        at, _, at_sq = ext.bvh_nearest(bvh.nodes, bvh.tri_verts, bvh.tri_ids, p[None].contiguous(), none, d2, False)
        assert at.tolist() == [face] and at_sq.tolist() == [d2], "a triangle exactly max_dist away is accepted"
        below = float(torch.nextafter(torch.tensor(d2), torch.tensor(0.0)))
        under, _, under_sq = ext.bvh_nearest(bvh.nodes, bvh.tri_verts, bvh.tri_ids, p[None].contiguous(), none,
                                             below, False)
        assert under.tolist() == [-1] and math.isinf(under_sq.item())


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


def test_out_of_range_mesh_index_finds_nothing(ext, head):
    """The native ops (which skip value checks on CUDA) never read a tree for a bad mesh index."""
    verts, faces = head
    batch = torch.cat([verts, verts * 1.1]).contiguous()
    bvh = MeshBVH(batch, faces)
    n = 6000  # enough that the native side sorts
    points = _near_surface(verts, faces, n, 0.1, seed=25)
    mesh_idx = (torch.arange(n) % 2).int()
    bad = torch.arange(n) % 3 == 0
    for value in (-1, 2, 1 << 20, -(1 << 30)):
        mixed = torch.where(bad, value, mesh_idx).int()
        for sort in (True, False):
            face, bary, sqdist = ext.bvh_nearest(bvh.nodes, bvh.tri_verts, bvh.tri_ids, points, mixed, math.inf, sort)
            assert torch.all(face[bad] == -1) and torch.all(torch.isinf(sqdist[bad])) and torch.all(bary[bad] == 0)
            ref_face, _, _ = ext.bvh_nearest(bvh.nodes, bvh.tri_verts, bvh.tri_ids, points, mesh_idx, math.inf, sort)
            assert torch.equal(face[~bad], ref_face[~bad])
        origins, dirs = _rays_at(verts, n, seed=26)
        t, face, bary = ext.bvh_raycast(bvh.nodes, bvh.tri_verts, bvh.tri_ids, origins, dirs, mixed)
        assert torch.all(face[bad] == -1) and torch.all(torch.isinf(t[bad])) and torch.all(bary[bad] == 0)
        twin_t, twin_face, _ = raycast_torch(batch, faces, origins, dirs, mixed)  # the twin agrees
        assert torch.equal(twin_face, face)


def test_value_checks_run_on_the_cpu_and_on_cuda_only_when_asked(monkeypatch):
    from pav.ops.bvh import _check_values

    monkeypatch.delenv("PAV_CHECK_VALUES", raising=False)
    assert _check_values(torch.device("cpu")) and not _check_values(torch.device("cuda", 0))
    monkeypatch.setenv("PAV_CHECK_VALUES", "0")
    assert not _check_values(torch.device("cuda", 0))
    monkeypatch.setenv("PAV_CHECK_VALUES", "1")
    assert _check_values(torch.device("cuda", 0))


def test_node_array_is_trimmed_and_nbytes_counts_it(ext, head):
    verts, faces = head
    frames = 4
    batch = (verts + 0.003 * torch.randn(frames, *verts.shape[1:], generator=torch.Generator().manual_seed(27)))
    bvh = MeshBVH(batch.contiguous(), faces)
    stride = int(bvh.n_nodes.max())
    assert bvh.nodes.shape == (frames, stride + stride % 2, 8), "the stride is the largest node count, even"
    assert not hasattr(bvh, "parents")
    arrays = (bvh.nodes, bvh.tri_verts, bvh.tri_ids, bvh.n_nodes, bvh.faces)
    assert bvh.nbytes == sum(t.numel() * t.element_size() for t in arrays)
    # The old layout (nodes at 2F, parents kept) held 1.11 MB per mesh of this head, faces aside.
    per_mesh = (bvh.nbytes - bvh.faces.numel() * 4) / frames
    assert per_mesh < 0.75e6, f"{per_mesh / 1e6:.2f} MB per mesh"
    twin = MeshBVH(verts, faces, backend="torch")
    assert twin.nbytes == verts.numel() * 4 + faces.numel() * 4


def test_empty_batch(ext, head):
    verts, faces = head
    bvh = MeshBVH(verts[:0].contiguous(), faces)
    assert bvh.nodes.shape[:2] == (0, 0)
    bvh.refit(verts[:0].contiguous())
    face, bary, sqdist = bvh.nearest(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert face.shape == (0,) and bary.shape == (0, 3) and sqdist.shape == (0,)
    t, face, _ = bvh.raycast(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert t.shape == (0,) and face.shape == (0,)


def test_to_moves_without_building(ext, head, monkeypatch):
    verts, faces = head
    batch = torch.cat([verts, verts * 1.05]).contiguous()
    bvh = MeshBVH(batch, faces)
    builds = []
    real_build = ext.bvh_build
    monkeypatch.setattr(ext, "bvh_build", lambda *args: builds.append(1) or real_build(*args))
    assert bvh.to("cpu") is bvh
    moved = bvh.to("cpu", copy=True)  # the path a move to another device takes, testable on one device
    assert builds == [], "moving a BVH must not rebuild it"
    assert moved.device == bvh.device and moved.nbytes == bvh.nbytes
    for name in ("nodes", "tri_verts", "tri_ids", "n_nodes", "faces"):
        assert torch.equal(getattr(moved, name), getattr(bvh, name))
        assert getattr(moved, name).data_ptr() != getattr(bvh, name).data_ptr()
    points = _near_surface(verts, faces, 5000, 0.1, seed=28)
    mesh_idx = torch.arange(5000) % 2
    for a, b in zip(bvh.nearest(points, mesh_idx), moved.nearest(points, mesh_idx), strict=True):
        assert torch.equal(a, b)
    moved.refit((batch * 1.2).contiguous())  # independent of the original
    assert torch.equal(bvh.tri_verts[0], batch[0][faces[bvh.tri_ids[0].long()].long()].reshape(-1, 9))
    with pytest.raises(ValueError, match="CPU or CUDA"):
        bvh.to("meta")


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


@pytest.mark.cuda
def test_cuda_matches_cpu(ext, head):
    verts, faces = head
    batch = torch.cat([verts, verts * 1.05]).contiguous()
    cpu = MeshBVH(batch, faces)
    gpu = MeshBVH(batch.cuda(), faces.cuda())
    assert gpu.tree_device.type == "cuda" and gpu.nodes.is_cuda
    points = _near_surface(verts, faces, 20000, 0.1, seed=19)
    mesh_idx = torch.arange(20000) % 2
    f_cpu, b_cpu, d_cpu = cpu.nearest(points, mesh_idx)
    f_gpu, b_gpu, d_gpu = gpu.nearest(points.cuda(), mesh_idx.cuda())
    assert torch.equal(f_gpu.cpu(), f_cpu), "CPU and GPU choose the same faces, ties included"
    torch.testing.assert_close(d_gpu.cpu(), d_cpu, rtol=1e-6, atol=1e-12)
    tie_points, tie_mesh, lowest = _tie_queries(batch, faces)
    f_gpu, _, _ = gpu.nearest(tie_points.cuda(), tie_mesh.cuda())
    assert torch.equal(f_gpu.cpu(), lowest), "GPU ties go to the lowest face"
    moved = (batch + 0.01).contiguous()
    cpu.refit(moved)
    gpu.refit(moved.cuda())
    assert torch.equal(gpu.tri_verts.cpu(), cpu.tri_verts)
    gpu_nodes = gpu.nodes.cpu()
    assert torch.equal(gpu_nodes[..., [3, 7]], cpu.nodes[..., [3, 7]]), "the refit keeps the topology"
    boxes = [0, 1, 2, 4, 5, 6]
    torch.testing.assert_close(gpu_nodes[..., boxes].view(torch.float32), cpu.nodes[..., boxes].view(torch.float32))
    origins, dirs = _rays_at(verts, 5000, seed=20)
    t_cpu, f_cpu, _ = cpu.raycast(origins, dirs, mesh_idx[:5000])
    t_gpu, f_gpu, _ = gpu.raycast(origins.cuda(), dirs.cuda(), mesh_idx[:5000].cuda())
    torch.testing.assert_close(t_gpu.cpu(), t_cpu, rtol=1e-6, atol=1e-9)
    assert torch.equal(f_gpu.cpu(), f_cpu)
    f_cpu, _, d_cpu = cpu.nearest(points, mesh_idx)
    f_gpu, _, d_gpu = gpu.nearest(points.cuda(), mesh_idx.cuda())
    torch.testing.assert_close(d_gpu.cpu(), d_cpu, rtol=1e-6, atol=1e-12)
    assert torch.equal(f_gpu.cpu(), f_cpu)


@pytest.mark.cuda
def test_cuda_bad_mesh_index_empty_work_and_moves(ext, head, monkeypatch):
    verts, faces = head
    batch = torch.cat([verts, verts * 1.05]).contiguous()
    gpu = MeshBVH(batch.cuda(), faces.cuda())
    points = _near_surface(verts, faces, 6000, 0.1, seed=29).cuda()
    mesh_idx = torch.where(torch.arange(6000) % 3 == 0, 7, torch.arange(6000) % 2).cuda()  # 7: unchecked on CUDA
    face, _, sqdist = gpu.nearest(points, mesh_idx)
    bad = (mesh_idx == 7)
    assert torch.all(face[bad] == -1) and torch.all(torch.isinf(sqdist[bad])) and torch.all(face[~bad] >= 0)
    t, face, _ = gpu.raycast(points, -points, mesh_idx)
    assert torch.all(face[bad] == -1) and torch.all(torch.isinf(t[bad]))
    empty = MeshBVH(batch[:0].cuda(), faces.cuda())  # refit of an empty batch launches nothing
    empty.refit(batch[:0].cuda())
    assert gpu.nearest(points[:0], mesh_idx[:0])[0].shape == (0,)
    torch.cuda.synchronize()
    builds = []
    real_build = ext.bvh_build
    monkeypatch.setattr(ext, "bvh_build", lambda *args: builds.append(1) or real_build(*args))
    cpu = gpu.to("cpu")
    back = cpu.to("cuda")
    assert builds == [] and back.nodes.is_cuda and back.device == gpu.device
    assert torch.equal(back.nearest(points, mesh_idx)[0], gpu.nearest(points, mesh_idx)[0])


class _CpuOnlyExt:
    """The real extension, posing as one built without CUDA."""

    with_cuda = False

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.mark.cuda
def test_cpu_only_build_serves_cuda_meshes_from_a_cpu_tree(ext, head, monkeypatch):
    import pav.ops.bvh as bvh_module

    verts, faces = head
    batch = torch.cat([verts, verts * 1.05]).contiguous()
    monkeypatch.setattr(bvh_module, "get_ext", lambda backend, op: _CpuOnlyExt(ext))
    monkeypatch.setattr(bvh_module, "_warned", set())
    with pytest.warns(RuntimeWarning, match="without CUDA"):
        served = MeshBVH(batch.cuda(), faces.cuda())
    assert served.backend == "ext" and served.tree_device.type == "cpu" and not served.nodes.is_cuda
    points = _near_surface(verts, faces, 5000, 0.1, seed=31)
    mesh_idx = torch.arange(5000) % 2
    face, _, sqdist = served.nearest(points.cuda(), mesh_idx.cuda())
    assert face.is_cuda and sqdist.is_cuda
    ref_face, _, ref_sqdist = MeshBVH(batch, faces).nearest(points, mesh_idx)
    assert torch.equal(face.cpu(), ref_face) and torch.equal(sqdist.cpu(), ref_sqdist)
    served.refit((batch * 1.1).cuda())
    t, face, _ = served.raycast(*(x.cuda() for x in _rays_at(verts, 1000, seed=32)), mesh_idx[:1000].cuda())
    assert t.is_cuda and face.is_cuda
