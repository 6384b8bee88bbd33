"""Benchmark of the native ops against their baselines, measured side by side in one run.

    python bench/ops.py [--points 1000000] [--twin-points 2000] [--repeats 3]

On the procedural head (9,886 triangles): BVH build and refit; exact nearest triangle for
points within +-10% of the head size of the surface and for points uniform in the box
enlarged by 10% of the head size on each side; first-hit raycast; and the hash grid's
forward + backward at the paper configuration. Baselines: the pure-torch twins (timed on
fewer points, reported as a rate) and open3d's RaycastingScene when it is installed.
This prints a table; it asserts nothing. Run it on an otherwise idle machine.
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
from pav.ops import MeshBVH  # noqa: E402
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
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--twin-points", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    load()
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
