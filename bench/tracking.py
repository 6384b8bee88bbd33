"""Tracking accuracy and time on a synthetic collection whose FLAME is removed (landmarks: truth + 1 px noise).

    python bench/tracking.py [truth=data/synthetic] [device=auto|cpu|cuda] [photometric=true] [out=/tmp/pav_track_bench]

Without `truth` it first generates a small collection (appearances x frames at size: 2 x 24 at 256, under a
minute of tracking on a GPU). Prints a table: per appearance, seconds, mean 2D error of all vertices, mean
3D error after one similarity alignment per sequence, focal length / true focal length; the shape's
neutral-head error; which rasteriser served the photometric term; then the same figures as
`FIG <name>: <value>` lines for scripts. Warm-up (CUDA context, native builds) is timed apart.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "track")]  # this checkout's pav, not an installed one

import torch  # noqa: E402
from stripped import strip_truth  # noqa: E402

from pav.common.cli import parse_overrides  # noqa: E402
from pav.data.collection import Collection  # noqa: E402
from pav.head.flame import FLAME  # noqa: E402
from pav.synthetic.generate import SyntheticConfig, generate  # noqa: E402
from pav.track import TrackConfig, raster, track  # noqa: E402
from pav.track.accuracy import compare_collections  # noqa: E402
from pav.track.pipeline import pick_device  # noqa: E402


@dataclass
class BenchConfig:
    truth: str = ""  # a synthetic collection with its truth; "" generates one into out/truth
    out: str = "/tmp/pav_track_bench"
    appearances: int = 2  # of a generated collection
    frames: int = 24
    size: int = 256
    photometric: bool = True
    overlay: bool = False
    device: str = "auto"  # auto | cpu | cuda


def warm_up(device: torch.device) -> float:
    """Seconds to make the device, the native BVH and the rasteriser ready (first use builds and loads them)."""
    start = time.time()
    verts = torch.tensor([[[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [0.0, 0.5, 1.0]]], device=device)  # [1, 3, 3]
    faces = torch.tensor([[0, 1, 2]], device=device)
    hits = raster.rasterize(verts, faces, 8.0, (8, 8))
    float(hits.bary.sum())  # waits for the device
    raster.SERVED.clear()
    return time.time() - start


def main(argv=None) -> None:
    cfg = parse_overrides(BenchConfig, argv, prog="python bench/tracking.py")
    device = pick_device(cfg.device)  # a bad device fails before anything is generated
    out = Path(cfg.out)
    shutil.rmtree(out, ignore_errors=True)
    truth_root = Path(cfg.truth) if cfg.truth else out / "truth"
    if not cfg.truth:
        threads = torch.get_num_threads()
        generate(SyntheticConfig(out=str(truth_root), appearances=cfg.appearances, frames=cfg.frames,
                                 size=cfg.size, seed=0, workers=1, cross=False))
        torch.set_num_threads(threads)  # generate's in-process worker leaves torch at one thread
    root = strip_truth(truth_root, out / "collection")
    warm = warm_up(device)
    start = time.time()
    summary = track(TrackConfig(collection=str(root), photometric=cfg.photometric, overlay=cfg.overlay,
                                device=cfg.device))
    total = time.time() - start
    truth = Collection.open(truth_root, verify_images="none")
    errors = compare_collections(Collection.open(root, verify_images="none"), truth,
                                 FLAME.from_file(truth.meta.head_model))
    served = "+".join(sorted(raster.SERVED)) or "none"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"\ntracking {truth_root} on {name} (photometric={cfg.photometric}, rasteriser {served}): "
          f"{total:.1f} s in all, warm-up {warm:.1f} s apart")
    print(f"{'appearance':14s} {'frames':>6s} {'seconds':>8s} {'lmk px':>7s} {'2D px':>7s} {'3D mm':>7s} "
          f"{'focal/true':>10s}")
    rows = [n for n in errors if n != "shape"]
    for app in rows:
        e, s = errors[app], summary[app]
        print(f"{app:14s} {s['frames']:6d} {s['seconds']:8.1f} {s['landmark_px']:7.2f} {e['reprojection_px']:7.2f} "
              f"{e['vertex_mm']:7.2f} {e['focal_ratio']:10.2f}")

    def mean(values) -> float:
        values = list(values)
        return sum(values) / len(values)

    figures = {"track_s_per_frame": total / sum(summary[a]["frames"] for a in rows),
               "landmark_px": mean(summary[a]["landmark_px"] for a in rows),
               "reprojection_px": mean(errors[a]["reprojection_px"] for a in rows),
               "vertex_mm": mean(errors[a]["vertex_mm"] for a in rows),
               "neutral_mm": errors["shape"]["neutral_mm"], "warmup_s": warm}
    print(f"{'mean':14s} {'':6s} {'':8s} {figures['landmark_px']:7.2f} {figures['reprojection_px']:7.2f} "
          f"{figures['vertex_mm']:7.2f}")
    print(f"shape: neutral head error {figures['neutral_mm']:.2f} mm (after similarity alignment)\n")
    for key, value in figures.items():
        print(f"FIG {key}_{device.type}: {value:.4g}")
    print(f"FIG rasteriser_{device.type}: {served}")


if __name__ == "__main__":
    main()
