"""RenderMe-360 conversion: keypoint-fit accuracy on a synthetic subject, and the cost of a real-sized subject.

    python bench/renderme.py [frames=30 noise_mm=1.0 image_frames=12 size=512 workers=2]

1. Accuracy: a synthetic subject (2 expression parts with FLAME fits, 2 hair parts without) whose 3D keypoints
   carry noise_mm of Gaussian noise (the 2D keypoints are their projections); the hair parts are converted with
   and without the 2D refinement, and the fitted heads compared with the true ones (mean vertex distance).
2. Cost: one camera's frames at the real 2448 x 2048 (a photo scaled up, JPEG colour and PNG mask in an SMC
   file), converted to size x size with the converter's image stage; with the fit's seconds per frame from (1)
   this estimates a subject of 100 frames x 60 cameras.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from pav.common.cli import parse_overrides
from pav.data.collection import AppearanceSpec, Collection, CollectionMeta, CollectionWriter
from pav.data.renderme.convert import convert
from pav.data.renderme.geometry import crop_resize_intrinsics, square_crop
from pav.data.renderme.images import ViewGeometry
from pav.data.renderme.options import RenderMeConfig
from pav.data.renderme.part import _write_images
from pav.data.renderme.reader import SMCReader
from pav.head.flame import FLAME
from pav.synthetic.renderme import SyntheticSMCSpec, write_synthetic_subject

CAMERAS = ("02", "18", "22", "25", "28", "32", "44")


@dataclass
class BenchConfig:
    frames: int = 30
    noise_mm: float = 1.0
    image_frames: int = 12
    size: int = 512
    workers: int = 2


def _region_errors(flame: FLAME, shape: np.ndarray, app, truth) -> dict[str, float]:
    rows = [truth.frame_ids.index(int(f)) for f in app.flame.frame_ids]
    with torch.no_grad():
        verts = flame(shape=torch.from_numpy(shape)[None], expr=torch.from_numpy(app.flame.expr),
                      rotations=torch.from_numpy(app.flame.rotations),
                      transl=torch.from_numpy(app.flame.transl)).verts.numpy()
    error = 1e3 * np.linalg.norm(verts - truth.verts[rows], axis=-1)  # [T, V] mm
    faces, region = flame.faces.numpy(), flame.face_region.numpy()
    out = {"all": float(error.mean())}
    for name in ("face", "lips", "neck"):
        out[name] = float(error[:, np.unique(faces[region == flame.region_names.index(name)])].mean())
    return out


def accuracy(cfg: BenchConfig, work: Path) -> float:
    spec = SyntheticSMCSpec(out=str(work / "raw"), frames=cfg.frames, cameras=CAMERAS, keypoint_noise_mm=cfg.noise_mm)
    subject = write_synthetic_subject(spec)
    flame = FLAME.from_file(subject.head_model, n_shape=100, n_expr=50)
    rows, fit_seconds = [], []
    for label, steps_2d in (("3D + 2D keypoints", 200), ("3D keypoints only", 0)):
        base = RenderMeConfig(root=str(work / "raw"), subject=spec.actor, out=str(work / label.replace(" ", "_")),
                              size=64, frames="all", head_model=subject.head_model)
        out = convert(replace(base, fit=replace(base.fit, steps_2d=steps_2d)))
        collection = Collection.open(out)
        report = json.loads((out / "renderme.json").read_text())
        for app in collection:
            errors = _region_errors(flame, collection.shape, app, subject.parts[app.name])
            fit = report["parts"][app.name]["flame"]
            seconds = fit["seconds"]
            if steps_2d:
                fit_seconds.append(seconds / len(app.flame.frame_ids))
            rows.append((label, app.name, errors, fit, seconds))
    print(f"\nkeypoint fit: {cfg.frames} frames per part, 3D keypoint noise {cfg.noise_mm} mm, "
          f"{len(CAMERAS)} cameras at 64 x 80")
    print("| fit | part | all vertices mm | face mm | lips mm | neck mm | 3D res. mm | 2D res. px@512 | fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, name, e, fit, seconds in rows:
        e2 = fit["keypoints2d_error_px512"]
        print(f"| {label} | {name} | {e['all']:.2f} | {e['face']:.2f} | {e['lips']:.2f} | {e['neck']:.2f} | "
              f"{fit['keypoints3d_error_mm']:.2f} | {'-' if e2 is None else f'{e2:.2f}'} | {seconds:.1f} |")
    return float(np.mean(fit_seconds))


def _full_size_smc(path: Path, frames: int) -> None:
    """One camera, `frames` frames at 2448 x 2048: a photo scaled up (JPEG) and a soft elliptic mask (PNG)."""
    from skimage.data import astronaut

    rng = np.random.default_rng(0)
    base = Image.fromarray(astronaut()).resize((2448, 2048), Image.BICUBIC)
    rows, cols = np.mgrid[0:2048, 0:2448]
    ellipse = ((cols - 1224) / 700.0) ** 2 + ((rows - 1024) / 900.0) ** 2
    mask = (255 * np.clip((1.0 - ellipse) * 20, 0, 1)).astype(np.uint8)
    mask_png = _encode(Image.fromarray(mask), "PNG")
    with h5py.File(path, "w") as f:
        cam = f.create_group("Camera")
        cam.attrs["num_device"], cam.attrs["num_frame"], cam.attrs["resolution"] = 1, frames, [2048, 2448]
        for t in range(frames):
            grain = rng.normal(0, 6, (2048, 2448, 3))  # sensor noise: real frames do not compress like a smooth photo
            image = np.clip(np.asarray(base, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
            f.create_dataset(f"Camera/25/color/{t}", data=_encode(Image.fromarray(image), "JPEG", quality=95))
            f.create_dataset(f"Camera/25/mask/{t}", data=mask_png)
        f.create_dataset("Calibration/25/K", data=np.array([[4800.0, 0, 1224], [0, 4800.0, 1024], [0, 0, 1]]))
        f.create_dataset("Calibration/25/D", data=np.array([-0.1, 0.05, 0.0, 0.0, 0.0]))
        f.create_dataset("Calibration/25/RT", data=np.eye(4))


def _encode(image: Image.Image, fmt: str, **options) -> np.ndarray:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def image_cost(cfg: BenchConfig, work: Path) -> float:
    """Seconds per converted full-size image."""
    path = work / "full_size.smc"
    _full_size_smc(path, cfg.image_frames)
    meta = CollectionMeta(subject="bench", head_model="procedural:0", n_shape=100, n_expr=50,
                          image_size=(cfg.size, cfg.size), appearances=[AppearanceSpec("h0", "multiview")])
    writer = CollectionWriter(work / "images", meta)
    with SMCReader(path) as reader:
        calib = reader.calibration("25")
        left, top, side = square_crop(2048, 2448)
        geo = ViewGeometry(2048, 2448, left, top, side, cfg.size,
                           crop_resize_intrinsics(calib["K"], left, top, side, cfg.size), calib["D"])
        failures: list[str] = []
        with tqdm(total=cfg.image_frames, desc="full-size images") as bar:
            start = time.time()
            _write_images(reader, "h0", reader.frame_ids, ["25"], {"25": geo}, writer, cfg.workers, bar, failures)
            seconds = time.time() - start
    assert not failures, failures
    return seconds / cfg.image_frames


def main(argv=None) -> None:
    cfg = parse_overrides(BenchConfig, argv, prog="python bench/renderme.py")
    work = Path(tempfile.mkdtemp(prefix="pav_renderme_bench_"))
    try:
        fit_per_frame = accuracy(cfg, work)
        per_image = image_cost(cfg, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    images = 100 * 60
    print(f"\nconversion cost ({cfg.workers} image threads, {torch.get_num_threads()} torch threads)")
    print("| stage | measured | 100 frames x 60 cameras at 512 |")
    print("|---|---|---|")
    print(f"| images (decode 2448x2048 JPEG + PNG mask, crop, resize, undistort, write 2 PNG) | "
          f"{per_image:.3f} s/image | {images * per_image / 60:.1f} min |")
    print(f"| keypoint fit (3D then 2D, {len(CAMERAS)} cameras here; 15 on the rig) | {fit_per_frame:.2f} s/frame | "
          f"{100 * fit_per_frame / 60:.1f} min |")
    print(f"| total | | {(images * per_image + 100 * fit_per_frame) / 60:.1f} min |")


if __name__ == "__main__":
    main()
