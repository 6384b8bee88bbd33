"""Exact nearest-triangle and first-hit ray queries on batched triangle meshes.

`MeshBVH` holds one binned-SAH tree per mesh (meshes share one face array, as FLAME
frames do) in the native extension `pav._C`; `nearest_triangle_torch` and
`raycast_torch` are the brute-force pure-torch twins: the test oracles and the fallback
where the extension cannot be built. Queries take no gradients (wrap callers in no_grad).
Of equally near triangles (equally early hits) the lowest face index wins, in every path.

Value checks (mesh indices in range, finite vertices) read tensor contents: free on the
CPU, a device sync on CUDA. So on CUDA they are skipped unless the environment sets
PAV_CHECK_VALUES=1 (debugging); shapes, dtypes and devices are always checked, and the
native ops stay safe without them: a query with an out-of-range mesh index finds nothing
(face -1, sqdist / t inf), and NaN vertices only make queries miss.
"""

from __future__ import annotations

import math
import os
import warnings

import torch

from ._ext import get_ext

DEFAULT_MAX_LEAF = 4
TREE_ARRAYS = ("nodes", "tri_verts", "tri_ids", "n_nodes")  # what the native ops read, besides faces


def _check_values(device: torch.device) -> bool:
    """Whether to run value checks on tensors on `device` (see the module docstring)."""
    return device.type == "cpu" or os.environ.get("PAV_CHECK_VALUES", "") not in ("", "0")


def _check_float3(name: str, t: torch.Tensor, dims: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != torch.float32:
        raise ValueError(f"{name} must be float32, got {t.dtype}")
    if t.dim() != dims or t.shape[-1] != 3:
        want = "[B, V, 3]" if dims == 3 else "[N, 3]"
        raise ValueError(f"{name} must be {want}, got shape {tuple(t.shape)}")


def _check_finite(name: str, t: torch.Tensor) -> None:
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(-1).sum())
        raise ValueError(f"{name} hold NaN or inf at {bad} vertices; a BVH needs finite positions")


def _check_faces(faces: torch.Tensor, n_verts: int) -> None:
    if not isinstance(faces, torch.Tensor) or faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces must be an int32 or int64 tensor, got {getattr(faces, 'dtype', type(faces))}")
    if faces.dim() != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"faces must be [F, 3] with F >= 1, got shape {tuple(faces.shape)}")
    lo, hi = int(faces.min()), int(faces.max())
    if lo < 0 or hi >= n_verts:
        raise ValueError(f"faces index vertices in [{lo}, {hi}], outside [0, {n_verts}) of the {n_verts} vertices")


def _mesh_index(mesh_idx: torch.Tensor | None, n: int, n_meshes: int, device: torch.device) -> torch.Tensor:
    """The per-query mesh index as contiguous int32 [N]; empty means "all mesh 0"."""
    if mesh_idx is None:
        if n_meshes != 1:
            raise ValueError(f"mesh_idx is required: this BVH holds {n_meshes} meshes")
        return torch.empty(0, dtype=torch.int32, device=device)
    if not isinstance(mesh_idx, torch.Tensor) or mesh_idx.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"mesh_idx must be an int32 or int64 tensor, got {getattr(mesh_idx, 'dtype', mesh_idx)}")
    if mesh_idx.shape != (n,):
        raise ValueError(f"mesh_idx must be [N] = [{n}], got shape {tuple(mesh_idx.shape)}")
    if mesh_idx.device != device:
        raise ValueError(f"mesh_idx is on {mesh_idx.device} but the BVH is on {device}")
    if n and _check_values(device):
        lo, hi = (int(v) for v in torch.aminmax(mesh_idx))  # one pass, one device sync
        if lo < 0 or hi >= n_meshes:
            raise ValueError(f"mesh_idx must lie in [0, {n_meshes}), got [{lo}, {hi}]")
    if mesh_idx.dtype == torch.int64:  # keep an unchecked bad index bad: int32 would wrap 2^32 to mesh 0
        mesh_idx = mesh_idx.clamp(-1, n_meshes)
    return mesh_idx.to(torch.int32).contiguous()


def _resolve(device: torch.device | str) -> torch.device:
    """`device` as tensors report theirs ("cuda" -> "cuda:<current>")."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


class MeshBVH:
    """BVHs of B meshes that share one face array.

    verts: [B, V, 3] float32 (CPU or CUDA); faces: [F, 3] int. The trees are built on the
    CPU (binned SAH) and live on the device of `verts`; where pav._C was built without
    CUDA they stay on the CPU and CUDA queries make a round trip through the host. `refit`
    moves them to new vertex positions of the same meshes without rebuilding; `to` moves
    them to another device, also without rebuilding.
    """

    def __init__(self, verts: torch.Tensor, faces: torch.Tensor, *, max_leaf: int = DEFAULT_MAX_LEAF,
                 backend: str = "auto"):
        _check_float3("verts", verts, 3)
        if verts.device.type not in ("cpu", "cuda"):
            raise ValueError(f"MeshBVH runs on CPU or CUDA tensors, got verts on {verts.device}")
        self.device = verts.device
        self.n_meshes, self.n_verts = verts.shape[0], verts.shape[1]
        self.max_leaf = int(max_leaf)
        self._ext = get_ext(backend, "MeshBVH")
        if self._ext is None:
            _check_faces(faces, self.n_verts)
            if _check_values(self.device):
                _check_finite("verts", verts)
            self.tree_device = self.device
            self.faces = faces.to(device=self.device, dtype=torch.int32).contiguous()  # [F, 3]
            self.verts = verts.detach().contiguous()  # [B, V, 3], what the torch twin searches
        else:
            # The build runs on the CPU, so the checks read the host copies at no extra sync.
            verts_cpu = verts.detach().cpu().contiguous()  # [B, V, 3]
            faces_cpu = faces.cpu() if isinstance(faces, torch.Tensor) else faces
            _check_faces(faces_cpu, self.n_verts)
            _check_finite("verts", verts_cpu)
            self.tree_device = self._tree_device_for(self.device)
            faces_cpu = faces_cpu.to(torch.int32).contiguous()  # [F, 3]
            built = self._ext.bvh_build(verts_cpu, faces_cpu, self.max_leaf)
            self.nodes, self.tri_verts, self.tri_ids, self.n_nodes = (t.to(self.tree_device) for t in built)
            self.faces = faces_cpu.to(self.tree_device)
        self.n_faces = self.faces.shape[0]

    def _tree_device_for(self, device: torch.device) -> torch.device:
        """Where the native trees serve queries on `device`: there, or on the CPU for a CPU-only pav._C."""
        if device.type == "cuda" and not self._ext.with_cuda:
            _warn_once("MeshBVH: pav._C was built without CUDA; the CPU extension serves CUDA meshes (queries and "
                       "results are copied through the host)")
            return torch.device("cpu")
        return device

    @property
    def backend(self) -> str:
        return "ext" if self._ext is not None else "torch"

    def __getstate__(self) -> dict:
        """Picklable (a data worker started by spawn or forkserver gets a copy): the extension module is not."""
        return {**self.__dict__, "_ext": self._ext is not None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._ext = get_ext("ext", "MeshBVH") if state["_ext"] else None

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays this BVH holds: the trees and faces (the twin backend: vertices and faces)."""
        names = ("verts", "faces") if self._ext is None else (*TREE_ARRAYS, "faces")
        return sum(getattr(self, name).numel() * getattr(self, name).element_size() for name in names)

    def to(self, device: torch.device | str, *, copy: bool = False) -> MeshBVH:
        """This BVH on `device`, its arrays moved rather than rebuilt; self when already there (unless copy,
        which always returns an independent BVH)."""
        device = _resolve(device)
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"MeshBVH runs on CPU or CUDA tensors, got {device}")
        if device == self.device and not copy:
            return self
        moved = object.__new__(MeshBVH)
        moved.__dict__.update(self.__dict__)
        moved.device = device
        moved.tree_device = device if self._ext is None else self._tree_device_for(device)
        names = ("verts", "faces") if self._ext is None else (*TREE_ARRAYS, "faces")
        for name in names:
            setattr(moved, name, getattr(self, name).to(moved.tree_device, copy=copy))
        return moved

    def refit(self, verts: torch.Tensor) -> None:
        """New positions [B, V, 3] of the same meshes; the tree topology is kept."""
        _check_float3("verts", verts, 3)
        if verts.shape[:2] != (self.n_meshes, self.n_verts):
            raise ValueError(f"refit needs verts [{self.n_meshes}, {self.n_verts}, 3], got {tuple(verts.shape)}")
        if verts.device != self.device:
            raise ValueError(f"verts are on {verts.device} but the BVH is on {self.device}")
        verts = verts.detach().to(self.tree_device).contiguous()  # [B, V, 3]
        if _check_values(verts.device):
            _check_finite("verts", verts)
        if self._ext is None:
            self.verts = verts
            return
        self._ext.bvh_refit(verts, self.faces, self.nodes, self.tri_verts, self.tri_ids, self.n_nodes)

    def _queries(self, name: str, t: torch.Tensor) -> torch.Tensor:
        _check_float3(name, t, 2)
        if t.device != self.device:
            raise ValueError(f"{name} are on {t.device} but the BVH is on {self.device}")
        return t.detach().contiguous()

    def nearest(self, points: torch.Tensor, mesh_idx: torch.Tensor | None = None, max_dist: float = math.inf):
        """Exact nearest triangle of each point [N, 3] on mesh mesh_idx [N].

        Returns face_idx [N] int64 (-1 where nothing lies within max_dist, distances equal
        to max_dist included), bary [N, 3] of the closest point on that triangle and sqdist [N]
        (inf where face_idx is -1). Of equally near triangles the lowest face index wins.
        """
        points = self._queries("points", points)
        if not max_dist >= 0:
            raise ValueError(f"max_dist must be >= 0, got {max_dist}")
        mesh = _mesh_index(mesh_idx, points.shape[0], self.n_meshes, self.device)
        max_sqdist = math.inf if math.isinf(max_dist) else float(max_dist) ** 2
        if self._ext is None:
            return nearest_triangle_torch(self.verts, self.faces, points, mesh, max_sqdist)
        out = self._ext.bvh_nearest(self.nodes, self.tri_verts, self.tri_ids, points.to(self.tree_device),
                                    mesh.to(self.tree_device), max_sqdist, True)
        return tuple(t.to(self.device) for t in out)

    def raycast(self, origins: torch.Tensor, dirs: torch.Tensor, mesh_idx: torch.Tensor | None = None):
        """First hit (t >= 0) of each ray. Returns t [N] (inf on a miss), face_idx [N] int64
        (-1 on a miss) and bary [N, 3] of the hit point; of hits at the same t the lowest face wins."""
        origins = self._queries("origins", origins)
        dirs = self._queries("dirs", dirs)
        if origins.shape != dirs.shape:
            raise ValueError(f"origins {tuple(origins.shape)} and dirs {tuple(dirs.shape)} must match")
        mesh = _mesh_index(mesh_idx, origins.shape[0], self.n_meshes, self.device)
        if self._ext is None:
            return raycast_torch(self.verts, self.faces, origins, dirs, mesh)
        out = self._ext.bvh_raycast(self.nodes, self.tri_verts, self.tri_ids, origins.to(self.tree_device),
                                    dirs.to(self.tree_device), mesh.to(self.tree_device))
        return tuple(t.to(self.device) for t in out)


# ----------------------------------------------------------------------------------------
# Pure-torch twins: brute force over every triangle, the same formulas case for case as
# pav/ops/csrc/include/pav/geometry.h.


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def _segment_sqdist(ap: torch.Tensor, ab: torch.Tensor):
    len2 = _dot(ab, ab)
    s = torch.where(len2 > 0, _dot(ap, ab) / torch.where(len2 > 0, len2, 1.0), 0.0).clamp(0.0, 1.0)
    d = ap - ab * s[..., None]
    return _dot(d, d), s


def closest_point_triangle_torch(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor):
    """Squared distance and barycentrics [..., 3] of the closest point of triangles (a, b, c)
    to points p; all [..., 3] broadcastable."""
    p, a, b, c = torch.broadcast_tensors(p, a, b, c)
    ab, ac, ap, bp, cp = b - a, c - a, p - a, p - b, p - c
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4
    zero, one = torch.zeros_like(d1), torch.ones_like(d1)

    # Edge fallback (degenerate triangles and untrustworthy interior solves).
    e_ab, s_ab = _segment_sqdist(ap, ab)
    e_ac, s_ac = _segment_sqdist(ap, ac)
    e_bc, s_bc = _segment_sqdist(bp, c - b)
    pick_ab = (e_ab <= e_ac) & (e_ab <= e_bc)
    pick_ac = ~pick_ab & (e_ac <= e_bc)
    edge_d = torch.where(pick_ab, e_ab, torch.where(pick_ac, e_ac, e_bc))
    bary_ab = torch.stack([1 - s_ab, s_ab, zero], -1)
    bary_ac = torch.stack([1 - s_ac, zero, s_ac], -1)
    bary_bc = torch.stack([zero, 1 - s_bc, s_bc], -1)
    edge_bary = torch.where(pick_ab[..., None], bary_ab, torch.where(pick_ac[..., None], bary_ac, bary_bc))

    def safe_div(num, den):
        return num / torch.where(den != 0, den, 1.0)

    # The regions in the order the native code tests them; the first that applies wins.
    in_a = (d1 <= 0) & (d2 <= 0)
    in_b = (d3 >= 0) & (d4 <= d3)
    in_c = (d6 >= 0) & (d5 <= d6)
    in_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    in_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    in_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    v_ab = safe_div(d1, d1 - d3)
    w_ac = safe_div(d2, d2 - d6)
    den_bc = (d4 - d3) + (d5 - d6)
    w_bc = safe_div(d4 - d3, den_bc)
    denom = va + vb + vc
    v_in, w_in = safe_div(vb, denom), safe_div(vc, denom)
    interior_ok = (denom > 0) & (v_in >= 0) & (w_in >= 0) & (v_in + w_in <= 1)

    cases = [
        (in_a, _dot(ap, ap), torch.stack([one, zero, zero], -1)),
        (in_b, _dot(bp, bp), torch.stack([zero, one, zero], -1)),
        (in_c, _dot(cp, cp), torch.stack([zero, zero, one], -1)),
        (in_ab & (d1 - d3 > 0), _dot(ap - ab * v_ab[..., None], ap - ab * v_ab[..., None]),
         torch.stack([1 - v_ab, v_ab, zero], -1)),
        (in_ab, edge_d, edge_bary),
        (in_ac & (d2 - d6 > 0), _dot(ap - ac * w_ac[..., None], ap - ac * w_ac[..., None]),
         torch.stack([1 - w_ac, zero, w_ac], -1)),
        (in_ac, edge_d, edge_bary),
        (in_bc & (den_bc > 0), _dot(bp - (c - b) * w_bc[..., None], bp - (c - b) * w_bc[..., None]),
         torch.stack([zero, 1 - w_bc, w_bc], -1)),
        (in_bc, edge_d, edge_bary),
    ]
    inner = ap - ab * v_in[..., None] - ac * w_in[..., None]
    sqdist = torch.where(interior_ok, _dot(inner, inner), edge_d)
    bary = torch.where(interior_ok[..., None], torch.stack([1 - v_in - w_in, v_in, w_in], -1), edge_bary)
    for cond, d, bc in reversed(cases):
        sqdist = torch.where(cond, d, sqdist)
        bary = torch.where(cond[..., None], bc, bary)
    return sqdist, bary


def _chunk_rows(n_faces: int, budget: int = 1 << 22) -> int:
    return max(1, budget // max(n_faces, 1))


def _twin_mesh(mesh_idx: torch.Tensor | None, n: int, n_meshes: int, device: torch.device):
    """Mesh index [N] int64 safe to gather with (an out-of-range one replaced by 0) and whether it was valid [N]."""
    if mesh_idx is None or mesh_idx.numel() == 0:
        mesh = torch.zeros(n, dtype=torch.long, device=device)
    else:
        mesh = mesh_idx.long()
    valid = (mesh >= 0) & (mesh < n_meshes)
    return torch.where(valid, mesh, 0), valid


def nearest_triangle_torch(verts: torch.Tensor, faces: torch.Tensor, points: torch.Tensor,
                           mesh_idx: torch.Tensor | None = None, max_sqdist: float = math.inf):
    """Brute-force twin of MeshBVH.nearest: verts [B, V, 3], faces [F, 3], points [N, 3],
    mesh_idx [N] (or None / empty: mesh 0). Returns face_idx [N] int64, bary [N, 3], sqdist [N];
    the lowest face index wins a tie; a point whose mesh index is out of range finds nothing."""
    n = points.shape[0]
    mesh, valid = _twin_mesh(mesh_idx, n, verts.shape[0], points.device)
    tris = verts[:, faces.long()]  # [B, F, 3, 3]
    face_out = torch.full((n,), -1, dtype=torch.long, device=points.device)
    bary_out = torch.zeros(n, 3, dtype=points.dtype, device=points.device)
    sq_out = torch.full((n,), math.inf, dtype=points.dtype, device=points.device)
    step = _chunk_rows(faces.shape[0])
    for s in range(0, n, step):
        p = points[s:s + step, None]  # [n, 1, 3]
        t = tris[mesh[s:s + step]]  # [n, F, 3, 3]
        d2, bc = closest_point_triangle_torch(p, t[:, :, 0], t[:, :, 1], t[:, :, 2])  # [n, F], [n, F, 3]
        best_d2, best_f = d2.min(dim=1)  # the first of equal minima: the lowest face
        inside = (best_d2 <= max_sqdist) & valid[s:s + step]
        face_out[s:s + step] = torch.where(inside, best_f, -1)
        sq_out[s:s + step] = torch.where(inside, best_d2, math.inf)
        picked = bc.gather(1, best_f[:, None, None].expand(-1, 1, 3))[:, 0]
        bary_out[s:s + step] = torch.where(inside[:, None], picked, 0.0)
    return face_out, bary_out, sq_out


def _safe(d: torch.Tensor) -> torch.Tensor:
    tiny = 1e-30
    return torch.where(d.abs() < tiny, torch.where(d >= 0, tiny, -tiny), d)


def ray_triangle_torch(origins: torch.Tensor, dirs: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor):
    """Watertight ray-triangle test for rays [n, 3] against triangles [n, F, 3] each.
    Returns t [n, F] (inf on a miss) and barycentrics [n, F, 3]."""
    n = origins.shape[0]
    ad = dirs.abs()
    kz = torch.where((ad[:, 0] >= ad[:, 1]) & (ad[:, 0] >= ad[:, 2]), 0, torch.where(ad[:, 1] >= ad[:, 2], 1, 2))
    kx, ky = (kz + 1) % 3, (kz + 2) % 3
    flip = dirs.gather(1, kz[:, None])[:, 0] < 0
    kx, ky = torch.where(flip, ky, kx), torch.where(flip, kx, ky)
    rows = torch.arange(n, device=origins.device)
    dz = dirs[rows, kz]
    sz = 1.0 / dz
    sx, sy = dirs[rows, kx] * sz, dirs[rows, ky] * sz

    def sheared(v):  # v [n, F, 3] relative to the origin
        vz = v.gather(2, kz[:, None, None].expand(-1, v.shape[1], 1))[..., 0]
        vx = v.gather(2, kx[:, None, None].expand(-1, v.shape[1], 1))[..., 0] - sx[:, None] * vz
        vy = v.gather(2, ky[:, None, None].expand(-1, v.shape[1], 1))[..., 0] - sy[:, None] * vz
        return vx, vy, vz

    o = origins[:, None]
    ax, ay, az = sheared(a - o)
    bx, by, bz = sheared(b - o)
    cx, cy, cz = sheared(c - o)
    U, V, W = cx * by - cy * bx, ax * cy - ay * cx, bx * ay - by * ax
    on_edge = (U == 0) | (V == 0) | (W == 0)
    if bool(on_edge.any()):
        f64 = [t.double() for t in (ax, ay, bx, by, cx, cy)]
        ax64, ay64, bx64, by64, cx64, cy64 = f64
        U = torch.where(on_edge, (cx64 * by64 - cy64 * bx64).float(), U)
        V = torch.where(on_edge, (ax64 * cy64 - ay64 * cx64).float(), V)
        W = torch.where(on_edge, (bx64 * ay64 - by64 * ax64).float(), W)
    mixed = ((U < 0) | (V < 0) | (W < 0)) & ((U > 0) | (V > 0) | (W > 0))
    det = U + V + W
    szc = sz[:, None]
    T = U * (szc * az) + V * (szc * bz) + W * (szc * cz)
    inv_det = 1.0 / torch.where(det != 0, det, 1.0)
    t = T * inv_det
    hit = ~mixed & (det != 0) & (t >= 0)
    t = torch.where(hit, t, math.inf)
    bary = torch.stack([U * inv_det, V * inv_det, W * inv_det], -1)
    return t, bary


def raycast_torch(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                  mesh_idx: torch.Tensor | None = None):
    """Brute-force twin of MeshBVH.raycast. Returns t [N], face_idx [N] int64, bary [N, 3]; of hits at the same t
    the lowest face wins; a ray whose mesh index is out of range misses."""
    n = origins.shape[0]
    mesh, valid = _twin_mesh(mesh_idx, n, verts.shape[0], origins.device)
    tris = verts[:, faces.long()]  # [B, F, 3, 3]
    t_out = torch.full((n,), math.inf, dtype=origins.dtype, device=origins.device)
    face_out = torch.full((n,), -1, dtype=torch.long, device=origins.device)
    bary_out = torch.zeros(n, 3, dtype=origins.dtype, device=origins.device)
    step = _chunk_rows(faces.shape[0])
    for s in range(0, n, step):
        tri = tris[mesh[s:s + step]]  # [n, F, 3, 3]
        t, bary = ray_triangle_torch(origins[s:s + step], dirs[s:s + step], tri[:, :, 0], tri[:, :, 1], tri[:, :, 2])
        best_t, best_f = t.min(dim=1)  # the first of equal minima: the lowest face
        hit = torch.isfinite(best_t) & valid[s:s + step]
        t_out[s:s + step] = torch.where(hit, best_t, math.inf)
        face_out[s:s + step] = torch.where(hit, best_f, -1)
        picked = bary.gather(1, best_f[:, None, None].expand(-1, 1, 3))[:, 0]
        bary_out[s:s + step] = torch.where(hit[:, None], picked, 0.0)
    return t_out, face_out, bary_out
