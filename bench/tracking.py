"""Tracking accuracy and time on a synthetic collection whose FLAME is removed (landmarks: truth + 1 px noise).

    python bench/tracking.py truth=data/synthetic [photometric=true] [out=/tmp/pav_track_bench]

Prints a table: per appearance, seconds, mean 2D error of all vertices, mean 3D error after one
similarity alignment per sequence, focal length / true focal length; and the shape's neutral-head error.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "tracking"))

from stripped import strip_truth  # noqa: E402

from pav.config import parse_overrides  # noqa: E402
from pav.data.collection import Collection  # noqa: E402
from pav.head.flame import FLAME  # noqa: E402
from pav.tracking import TrackConfig, track  # noqa: E402
from pav.tracking.accuracy import compare_collections  # noqa: E402


@dataclass
class BenchConfig:
    truth: str = "data/synthetic"
    out: str = "/tmp/pav_track_bench"
    photometric: bool = True
    overlay: bool = False


def main(argv=None) -> None:
    cfg = parse_overrides(BenchConfig, argv, prog="python bench/tracking.py")
    out = Path(cfg.out)
    shutil.rmtree(out, ignore_errors=True)
    root = strip_truth(Path(cfg.truth), out)
    start = time.time()
    summary = track(TrackConfig(collection=str(root), photometric=cfg.photometric, overlay=cfg.overlay))
    total = time.time() - start
    truth = Collection.open(cfg.truth, verify_images="none")
    errors = compare_collections(Collection.open(root, verify_images="none"), truth,
                                 FLAME.from_file(truth.meta.head_model))
    print(f"\ntracking {cfg.truth} (photometric={cfg.photometric}): {total:.0f} s in all")
    print(f"{'appearance':14s} {'frames':>6s} {'seconds':>8s} {'2D px':>7s} {'3D mm':>7s} {'focal/true':>10s}")
    rows = [n for n in errors if n != "shape"]
    for name in rows:
        e, s = errors[name], summary[name]
        print(f"{name:14s} {s['frames']:6d} {s['seconds']:8.0f} {e['reprojection_px']:7.2f} {e['vertex_mm']:7.2f} "
              f"{e['focal_ratio']:10.2f}")
    mean = {k: sum(errors[n][k] for n in rows) / len(rows) for k in ("reprojection_px", "vertex_mm")}
    print(f"{'mean':14s} {'':6s} {'':8s} {mean['reprojection_px']:7.2f} {mean['vertex_mm']:7.2f}")
    print(f"shape: neutral head error {errors['shape']['neutral_mm']:.2f} mm (after similarity alignment)")


if __name__ == "__main__":
    main()
