"""Strip a synthetic collection's truth: what `pav.track` sees, while the test keeps the original."""

import json
import shutil
from pathlib import Path

import numpy as np

LANDMARK_NOISE_PX = 1.0


def strip_truth(truth: Path, out: Path, noise_px: float = LANDMARK_NOISE_PX, seed: int = 0) -> Path:
    """Copy frames, mattes and splits; landmarks = projected truth + Gaussian noise; no FLAME, cameras, shape."""
    meta = json.loads((truth / "collection.json").read_text())
    meta["cross"] = []
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    for entry in meta["appearances"]:
        name = entry["name"]
        for sub in ("frames", "masks"):
            shutil.copytree(truth / name / sub, out / name / sub)
        shutil.copy(truth / name / "split.json", out / name / "split.json")
        with np.load(truth / name / "landmarks.npz") as archive:
            landmarks = {k: archive[k] for k in archive.files}
        landmarks["dense"] = landmarks["dense"] + rng.normal(0, noise_px, landmarks["dense"].shape).astype(np.float32)
        np.savez(out / name / "landmarks.npz", **landmarks)
    (out / "collection.json").write_text(json.dumps(meta))
    return out
