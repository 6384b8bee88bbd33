"""Benchmark of the native ops against their baselines, measured side by side in one run.

    python bench/ops.py [--device auto|cpu|cuda] [--points 1000000] [--twin-points 2000] [--repeats 3]
                        [--fig-points 4000000] [--frames 4]

On the CPU (--device cpu, or auto without a GPU), on the procedural head (9,886 triangles):
BVH build and refit; exact nearest triangle for points within +-10% of the head size of the
surface and for points uniform in the box enlarged by 10% of the head size on each side;
first-hit raycast; and the hash grid's forward + backward at the paper configuration.
Baselines: the pure-torch twins (timed on fewer points, reported as a rate) and open3d's
RaycastingScene when it is installed.

On CUDA (--device cuda, or auto with a GPU), the figures of the GPU smoke run, on the head
posed in --frames frames: nearest queries/s for --fig-points points near the surfaces (as
training samples lie) and the fraction of their faces that agree with the CPU extension's
(1.0 expected: ties go to the lowest face on both), before and after a GPU refit; raycast
rays/s; rays aimed exactly at every vertex and edge midpoint (each must hit: misses are
counted); the refit time; the hash grid's forward + backward points/s at the paper config.
They print as a table and as `FIG <name>: <value>` lines for scripts.

This asserts nothing. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pav.head.flame import FLAME  # noqa: E402
from pav.ops import HashGridSpec, MeshBVH, hash_encode  # noqa: E402
from pav.ops._ext import load  # noqa: E402
from pav.ops.bvh import nearest_triangle_torch, raycast_torch  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def head_mesh():
    flame = FLAME.from_file("procedural:0")
    return flame.v_template[None].float().contiguous(), flame.faces.int().contiguous()


def near_surface_points(verts, faces, n, g):
    tri = verts[0][faces[torch.randint(0, faces.shape[0], (n,), generator=g)].long()]
    w = torch.rand(n, 3, generator=g)
    w = w / w.sum(1, keepdim=True)
    size = (verts[0].max(0).values - verts[0].min(0).values).max()
    return ((tri * w[..., None]).sum(1) + (torch.rand(n, 3, generator=g) * 2 - 1) * 0.1 * size).contiguous()


def box_points(verts, n, g):
    lo, hi = verts[0].min(0).values, verts[0].max(0).values
    size = (hi - lo).max()
    return (lo - 0.1 * size + torch.rand(n, 3, generator=g) * (hi - lo + 0.2 * size)).contiguous()


def rays(verts, n, g):
    center = verts[0].mean(0)
    origins = torch.randn(n, 3, generator=g)
    origins = center + 0.5 * origins / origins.norm(dim=1, keepdim=True)
    dirs = center + 0.1 * torch.randn(n, 3, generator=g) - origins
    return origins.contiguous(), (dirs / dirs.norm(dim=1, keepdim=True)).contiguous()


def open3d_scene(verts, faces):
    try:
        import open3d as o3d
    except ImportError:
        return None, None
    def build():
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(verts[0].numpy()), o3d.core.Tensor(faces.numpy().astype("uint32")))
        scene.compute_closest_points(o3d.core.Tensor(verts[0, :1].numpy()))  # forces the build
        return scene
    return o3d, build


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--points", type=int, default=1_000_000, help="CPU table: queries per op")
    parser.add_argument("--twin-points", type=int, default=2000, help="CPU table: queries of the torch twins")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fig-points", type=int, default=4_000_000, help="CUDA figures: queries per op")
    parser.add_argument("--frames", type=int, default=4, help="CUDA figures: posed frames of the head")
    args = parser.parse_args(argv)
    load()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device")
        print_figures(device_figures(torch.device("cuda"), args.fig_points, args.frames, args.repeats))
        return
    cpu_table(args)


def cpu_table(args) -> None:
    g = torch.Generator().manual_seed(0)
    verts, faces = head_mesh()
    n, nt = args.points, args.twin_points
    rows = []  # (what, ours, unit, baseline name, baseline value)

    bvh = MeshBVH(verts, faces)
    build_s = statistics.median(timed(lambda: MeshBVH(verts, faces), 1) for _ in range(20))
    moved = (verts * 1.01).contiguous()
    refit_s = statistics.median(timed(lambda: bvh.refit(moved), 1) for _ in range(50))
    bvh.refit(verts)
    o3d, o3d_build = open3d_scene(verts, faces)
    o3d_build_s = statistics.median(timed(o3d_build, 1) for _ in range(10)) if o3d else None
    rows.append((f"BVH build, {faces.shape[0]} triangles", build_s * 1e3, "ms", "open3d scene build", o3d_build_s and
                 o3d_build_s * 1e3))
    rows.append(("BVH refit", refit_s * 1e3, "ms", "-", None))

    scene = o3d_build() if o3d else None
    for label, points in (("nearest, near-surface", near_surface_points(verts, faces, n, g)),
                          ("nearest, enlarged box", box_points(verts, n, g))):
        ours = n / timed(lambda p=points: bvh.nearest(p), args.repeats) / 1e6
        sub = points[:nt].contiguous()
        twin = nt / timed(lambda s=sub: nearest_triangle_torch(verts, faces, s), 1) / 1e6
        rows.append((f"{label} ({n:,} pts)", ours, "M/s", "torch twin", twin))
        if scene is not None:
            o3d_pts = o3d.core.Tensor(points.numpy())
            rate = n / timed(lambda q=o3d_pts: scene.compute_closest_points(q), args.repeats) / 1e6
            rows.append((f"{label} ({n:,} pts)", ours, "M/s", "open3d closest pts", rate))

    origins, dirs = rays(verts, n, g)
    ours = n / timed(lambda: bvh.raycast(origins, dirs), args.repeats) / 1e6
    twin = nt / timed(lambda: raycast_torch(verts, faces, origins[:nt].contiguous(), dirs[:nt].contiguous()), 1) / 1e6
    hit_rate = (bvh.raycast(origins, dirs)[1] >= 0).float().mean().item()
    rows.append((f"raycast first hit ({n:,} rays, {hit_rate:.0%} hit)", ours, "M/s", "torch twin", twin))
    if scene is not None:
        o3d_rays = o3d.core.Tensor(torch.cat([origins, dirs], 1).numpy())
        rate = n / timed(lambda: scene.cast_rays(o3d_rays), args.repeats) / 1e6
        rows.append((f"raycast first hit ({n:,} rays, {hit_rate:.0%} hit)", ours, "M/s", "open3d cast_rays", rate))

    rows.extend(hashgrid_rows(n, nt, args.repeats))
    print_table(rows)


def hashgrid_rows(n, nt, repeats):
    """Forward + backward of the paper-configuration hash grid (bench/hashgrid.py has the details)."""
    from hashgrid import points_per_second  # bench/hashgrid.py, beside this script

    from pav.ops import HashGridSpec

    spec = HashGridSpec()
    twin_n = 200_000  # the twin's rate grows with N up to a few 100k points; this is near its best
    rows = []
    for label, points_grad in (("table grad", False), ("table + point grads", True)):
        ours = points_per_second(n, "ext", points_grad, spec) / 1e6
        twin = points_per_second(twin_n, "torch", points_grad, spec) / 1e6
        rows.append((f"hash grid fwd+bwd, {label} ({n:,} pts)", ours, "M/s", "torch twin", twin))
    return rows


# ---------------------------------------------------------------------------------- device figures


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_on(device: torch.device, fn, repeats: int) -> float:
    """Best wall time of `repeats` calls after one warm-up, each waited for on the device."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def posed_heads(flame: FLAME, n_frames: int, g: torch.Generator) -> torch.Tensor:
    """The head in n_frames random expressions and neck / jaw / eye poses -> verts [B, V, 3]."""
    with torch.no_grad():
        out = flame(expr=0.8 * torch.randn(n_frames, flame.n_expr, generator=g),
                    rotations=0.15 * torch.randn(n_frames, 5, 3, generator=g))
    return out.verts.float().contiguous()


def near_surface_batch(frames: torch.Tensor, faces: torch.Tensor, n: int, g: torch.Generator):
    """n training-like samples: a random frame each, within +-10% of the head size of its surface.
    Returns points [n, 3] and mesh_idx [n] int64."""
    mesh_idx = torch.randint(0, frames.shape[0], (n,), generator=g)
    tri = frames[mesh_idx[:, None], faces[torch.randint(0, faces.shape[0], (n,), generator=g)].long()]  # [n, 3, 3]
    w = torch.rand(n, 3, generator=g)
    w = w / w.sum(1, keepdim=True)
    size = (frames[0].max(0).values - frames[0].min(0).values).max()
    offset = (torch.rand(n, 3, generator=g) * 2 - 1) * 0.1 * size
    return ((tri * w[..., None]).sum(1) + offset).contiguous(), mesh_idx


def vertex_and_edge_rays(frames: torch.Tensor, faces: torch.Tensor):
    """Rays aimed exactly at the shared vertices and edge midpoints of each frame, from 5% of the head size
    outside along the normal there (t = 1 at the target), where every triangle sharing the target faces the
    ray: there a watertight test must hit (at a fold or the border a ray may pass beside the mesh).
    Returns origins, dirs [R, 3] and mesh_idx [R]."""
    f = faces.long()
    n_verts = frames.shape[1]
    corner_faces = torch.arange(f.shape[0]).repeat_interleave(3)  # [3F], the face of each corner of f.reshape(-1)
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values  # [3F, 2], face k at k % F
    unique, inverse, counts = edges.unique(dim=0, return_inverse=True, return_counts=True)
    occurrence_face = torch.arange(3 * f.shape[0]) % f.shape[0]  # [3F]
    first = torch.full((len(unique),), f.shape[0]).scatter_reduce(0, inverse, occurrence_face, "amin")
    last = torch.full((len(unique),), -1).scatter_reduce(0, inverse, occurrence_face, "amax")
    edge_faces = torch.stack([first, last], 1)  # [E, 2]: the two faces of a shared edge
    shared = counts == 2
    border = torch.zeros(n_verts, dtype=torch.bool)
    border[unique[~shared].reshape(-1)] = True
    origins, dirs, mesh_idx = [], [], []
    for m, v in enumerate(frames):
        tri = v[f]  # [F, 3, 3]
        normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # [F, 3], area-weighted
        vertex_dir = torch.zeros_like(v).index_add_(0, f.reshape(-1), normal[corner_faces])  # [V, 3]
        vertex_dir = vertex_dir / vertex_dir.norm(dim=1, keepdim=True).clamp_min(1e-30)
        facing = (normal[corner_faces] * vertex_dir[f.reshape(-1)]).sum(1)  # [3F]
        worst = torch.full((n_verts,), -1.0).scatter_reduce(0, f.reshape(-1), facing, "amin", include_self=False)
        verts_ok = torch.nonzero((worst > 0) & ~border)[:, 0]
        pair = normal[edge_faces]  # [E, 2, 3]
        unit = pair / pair.norm(dim=2, keepdim=True).clamp_min(1e-30)
        edge_dir = unit.sum(1)
        edge_dir = edge_dir / edge_dir.norm(dim=1, keepdim=True).clamp_min(1e-30)
        edges_ok = shared & ((pair * edge_dir[:, None]).sum(2) > 0).all(1)
        targets = torch.cat([v[verts_ok], (v[unique[edges_ok, 0]] + v[unique[edges_ok, 1]]) / 2])  # [R_m, 3]
        outward = torch.cat([vertex_dir[verts_ok], edge_dir[edges_ok]])
        size = (v.max(0).values - v.min(0).values).max()
        start = targets + 0.05 * size * outward
        origins.append(start)
        dirs.append(targets - start)
        mesh_idx.append(torch.full((len(targets),), m, dtype=torch.long))
    return torch.cat(origins).contiguous(), torch.cat(dirs).contiguous(), torch.cat(mesh_idx)


def count_tag(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else (f"{n // 1000}k" if n % 1000 == 0 else str(n))


def device_figures(device: torch.device, n: int, n_frames: int, repeats: int):
    """Rows (figure name, value, unit, note) of the BVH and hash-grid ops on `device`, checked against the CPU
    extension where they must agree."""
    g = torch.Generator().manual_seed(0)
    flame = FLAME.from_file("procedural:0")
    faces = flame.faces.int().contiguous()
    frames, refit_frames = posed_heads(flame, n_frames, g), posed_heads(flame, n_frames, g)
    cpu_bvh = MeshBVH(frames, faces)
    bvh = cpu_bvh.to(device)  # built on the CPU once and moved, as a FrameSet does
    tag = count_tag(n)
    with_cuda = bool(load().with_cuda)
    rows = [("ext_with_cuda", int(with_cuda), "", "0: pav._C has no kernels; the BVH figures are its CPU tree's"),
            ("bvh_nbytes_per_frame", bvh.nbytes / n_frames / 1e6, "MB", f"{n_frames} frames")]

    points, mesh_idx = near_surface_batch(frames, faces, n, g)
    points_d, mesh_d = points.to(device), mesh_idx.to(device)
    seconds = timed_on(device, lambda: bvh.nearest(points_d, mesh_d), repeats)
    rows.append((f"nearest_qps_{tag}", n / seconds, "1/s", f"{n:,} points near {n_frames} posed frames"))
    face_cpu = cpu_bvh.nearest(points, mesh_idx)[0]
    agree = (bvh.nearest(points_d, mesh_d)[0].cpu() == face_cpu).double().mean().item()
    rows.append(("nearest_face_agreement", agree, "", "fraction equal to the CPU's faces (must be 1.0)"))

    origins, dirs = rays(frames, n, g)
    origins_d, dirs_d = origins.to(device), dirs.to(device)
    ray_mesh = (torch.arange(n) % n_frames).to(device)
    seconds = timed_on(device, lambda: bvh.raycast(origins_d, dirs_d, ray_mesh), repeats)
    rows.append((f"raycast_qps_{tag}", n / seconds, "1/s", f"{n:,} rays at the head"))

    origins, dirs, edge_mesh = vertex_and_edge_rays(frames, faces)
    t, face, _ = bvh.raycast(origins.to(device), dirs.to(device), edge_mesh.to(device))
    missed = int(((face < 0) | (t > 1.001)).sum())  # no hit, or one behind the target: it slipped through
    rows.append(("raycast_vertex_edge_rays", len(origins), "", "aimed exactly at vertices and edge midpoints"))
    rows.append(("raycast_vertex_edge_misses", missed, "", "must be 0"))
    face_cpu = cpu_bvh.raycast(origins, dirs, edge_mesh)[1]
    agree = (face.cpu() == face_cpu).double().mean().item()
    rows.append(("raycast_face_agreement", agree, "", "vertex / edge rays, fraction equal to the CPU's (1.0)"))

    refit_d = refit_frames.to(device)
    refit_s = statistics.median(timed_on(device, lambda: bvh.refit(refit_d), 1) for _ in range(20))
    rows.append(("refit_ms", refit_s * 1e3, "ms", f"{n_frames} frames, {faces.shape[0]:,} triangles each"))
    cpu_bvh.refit(refit_frames)
    points, mesh_idx = near_surface_batch(refit_frames, faces, min(n, 1_000_000), g)
    face_cpu = cpu_bvh.nearest(points, mesh_idx)[0]
    agree = (bvh.nearest(points.to(device), mesh_idx.to(device))[0].cpu() == face_cpu).double().mean().item()
    rows.append(("refit_nearest_face_agreement", agree, "", "after a refit on both (must be 1.0)"))

    if device.type == "cuda" and not with_cuda:
        return rows  # the hash grid has no CPU-tree fallback on CUDA tensors
    spec = HashGridSpec()  # the paper configuration
    hg = torch.Generator(device=device).manual_seed(0)
    grid_points = torch.rand(n, 3, generator=hg, device=device)  # [N, 3]
    table = torch.empty(spec.n_params, spec.n_features, device=device).uniform_(-1e-4, 1e-4, generator=hg)
    table.requires_grad_(True)  # [n_params, F]
    grad_out = torch.randn(n, spec.n_output_dims, generator=hg, device=device)  # [N, L*F]
    for name, points_grad in (("hashgrid_fwd_bwd_pps", False), ("hashgrid_fwd_bwd_point_grad_pps", True)):
        grid_points.requires_grad_(points_grad)

        def step():
            table.grad = None
            grid_points.grad = None
            hash_encode(grid_points, table, spec, backend="ext").backward(grad_out)

        seconds = timed_on(device, step, repeats)
        rows.append((name, n / seconds, "1/s", f"{n:,} points, forward + backward" +
                     (", point gradient too" if points_grad else "")))
    return rows


def print_figures(rows) -> None:
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"\npav._C ops on {name}, torch {torch.__version__}\n")
    header = f"{'figure':<36} {'value':>14}  {'unit':<4}  note"
    print(header)
    print("-" * (len(header) + 40))
    for what, value, unit, note in rows:
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{what:<36} {shown:>14}  {unit:<4}  {note}")
    print()
    for what, value, _, _ in rows:
        print(f"FIG {what}: {value:.6g}" if isinstance(value, float) else f"FIG {what}: {value}")


def _fmt(value: float, unit: str) -> str:
    if unit == "M/s" and value < 0.01:
        return f"{value * 1e3:.2f} k/s"
    return f"{value:.3f} {unit}" if value < 10 else f"{value:.1f} {unit}"


def print_table(rows):
    threads = torch.get_num_threads()
    print(f"\npav._C ops, {threads} CPU threads, torch {torch.__version__}\n")
    header = f"{'op':<54} {'pav._C':>11}  {'baseline':<22} {'baseline':>11}  {'ratio':>8}"
    print(header)
    print("-" * len(header))
    for what, ours, unit, base_name, base in rows:
        if base is None:
            ratio, base_s = "-", "-"
        else:
            ratio = f"{base / ours:.1f}x" if unit == "ms" else f"{ours / base:.1f}x"
            base_s = _fmt(base, unit)
        print(f"{what:<54} {_fmt(ours, unit):>11}  {base_name:<22} {base_s:>11}  {ratio:>8}")
    print("\nratio: how many times faster pav._C is than the baseline (times: baseline / ours).")


if __name__ == "__main__":
    main()
