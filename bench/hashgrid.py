"""Throughput of the hash-grid encoding at the paper config (16 levels x 2 features, 2^18 rows, 16..2048).

Forward + backward points per second of the native op and of the pure-torch twin: with the table gradient
only (training: canonical points carry no gradient), then with the point gradient too. The twin runs on
fewer points and its rate is scaled. Points are uniform in the unit box, the worst case for the caches.
Large fresh outputs cost page faults; THP_MEM_ALLOC_ENABLE=1 (torch's huge-page switch) trims them.

Usage, from the repository root: python -m bench.hashgrid [n_points=1000000] [twin_points=100000]
"""

from __future__ import annotations

import os
import sys
import time

import torch

from pav.ops import HashGridSpec, hash_encode

REPEATS = 3


def points_per_second(n_points: int, backend: str, points_grad: bool, spec: HashGridSpec) -> float:
    """Best of REPEATS forward + backward passes, after one warm-up."""
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(n_points, 3, generator=generator)  # [N, 3]
    table = torch.empty(spec.n_params, spec.n_features).uniform_(-1e-4, 1e-4, generator=generator)
    table.requires_grad_(True)  # [n_params, F]
    points.requires_grad_(points_grad)
    grad_out = torch.randn(n_points, spec.n_output_dims, generator=generator)  # [N, L*F]
    best = float("inf")
    for attempt in range(REPEATS + 1):
        table.grad = None
        points.grad = None
        start = time.perf_counter()
        hash_encode(points, table, spec, backend=backend).backward(grad_out)
        elapsed = time.perf_counter() - start
        if attempt > 0:
            best = min(best, elapsed)
    return n_points / best


def main(argv: list[str]) -> None:
    options = dict(arg.split("=", 1) for arg in argv)
    n_points = int(options.get("n_points", 1_000_000))
    twin_points = int(options.get("twin_points", 100_000))
    spec = HashGridSpec()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"hash grid {spec}, {torch.get_num_threads()} threads, load average {load:.2f} at start")
    print(f"{'gradients':<18}{'ext (M pts/s)':>15}{'torch (M pts/s)':>17}{'ratio':>8}")
    for label, points_grad in (("table", False), ("table + points", True)):
        ext_rate = points_per_second(n_points, "ext", points_grad, spec)
        twin_rate = points_per_second(twin_points, "torch", points_grad, spec)
        print(f"{label:<18}{ext_rate / 1e6:>15.2f}{twin_rate / 1e6:>17.3f}{ext_rate / twin_rate:>8.1f}")
    print(f"ext on {n_points:,} points, twin on {twin_points:,} points; forward + backward, best of {REPEATS}")


if __name__ == "__main__":
    main(sys.argv[1:])
