"""Tracking's device option: checked before any work, saved progress that does not depend on it, CUDA = CPU."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from stripped import strip_truth

from pav.data.collection import Collection
from pav.head.flame import FLAME
from pav.synthetic.generate import SyntheticConfig, generate
from pav.track import TrackConfig, TrackConfigError, track
from pav.track.accuracy import posed_verts
from pav.track.fit import FitWeights
from pav.track.pipeline import _settings

QUICK = dict(rigid_steps=20, identity_steps=40, sequence_steps=40, photo_size=30, photo_batch=4, photo_steps=2,
             keyframes=4)


def test_cuda_without_a_cuda_device_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    missing = tmp_path / "no_collection"  # the device is refused before the collection is even read
    with pytest.raises(TrackConfigError, match="device=cuda but torch sees no CUDA device"):
        track(TrackConfig(collection=str(missing), device="cuda"))
    assert not missing.exists()


def test_an_unknown_device_is_named(tmp_path):
    with pytest.raises(TrackConfigError, match=r"device='gpu' is not one of auto, cpu, cuda"):
        track(TrackConfig(collection=str(tmp_path), device="gpu"))


def test_cli_reports_a_bad_device_without_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pav.track", f"collection={tmp_path}", "device=gpu"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "device='gpu' is not one of" in out.stderr and "Traceback" not in out.stderr


def test_saved_progress_does_not_depend_on_the_device():
    w = FitWeights()
    base = _settings(TrackConfig(collection="a", device="cpu"), w)
    assert base == _settings(TrackConfig(collection="a", device="cuda"), w) == _settings(
        TrackConfig(collection="a", device="auto", threads=3), w)
    assert base != _settings(TrackConfig(collection="a", device="cpu", keyframes=7), w)


@pytest.fixture(scope="module")
def tiny_truth(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "collection"
    generate(SyntheticConfig(out=str(root), appearances=1, frames=5, size=60, seed=2, workers=1, cross=False))
    return root


def _tracked_vertices(root) -> tuple[np.ndarray, float]:
    """World vertices [T, V, 3] of the tracked appearance and its focal length."""
    collection = Collection.open(root, verify_images="none")
    app = next(iter(collection))
    verts = posed_verts(FLAME.from_file("procedural:0"), collection.shape, app.flame.expr, app.flame.rotations,
                        app.flame.transl)
    return verts, float(app.cameras.K[0][0, 0])


@pytest.mark.cuda
def test_cuda_tracks_like_the_cpu_and_resumes_cpu_progress(tiny_truth, tmp_path, capsys):
    results = {}
    for device in ("cpu", "cuda"):
        root = strip_truth(tiny_truth, tmp_path / device)
        torch.manual_seed(0)
        summary = track(TrackConfig(collection=str(root), device=device, **QUICK))
        results[device] = (*_tracked_vertices(root), summary)
    (cpu_verts, cpu_focal, cpu_summary), (gpu_verts, gpu_focal, gpu_summary) = results["cpu"], results["cuda"]
    distance_mm = np.linalg.norm(cpu_verts - gpu_verts, axis=-1).mean() * 1000
    assert distance_mm < 2.0, distance_mm  # float32 on two devices: the same fit, not the same bits
    assert abs(gpu_focal / cpu_focal - 1) < 0.02, (cpu_focal, gpu_focal)
    for name, cpu in cpu_summary.items():
        assert abs(gpu_summary[name]["landmark_px"] - cpu["landmark_px"]) < 0.2, (cpu_summary, gpu_summary)

    capsys.readouterr()
    track(TrackConfig(collection=str(tmp_path / "cpu"), device="cuda", **QUICK))  # CPU progress, resumed on CUDA
    assert capsys.readouterr().out.count("resumed from") == 2
