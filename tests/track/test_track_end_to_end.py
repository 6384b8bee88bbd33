"""Tracking with every stage on (photometric, overlay), resuming, bad input, then training on the result."""

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from stripped import strip_truth

from pav.data.collection import Collection
from pav.synthetic.generate import SyntheticConfig, generate
from pav.track import TrackConfig, track
from pav.track.inputs import TrackingInputError
from pav.train.config import typed_config
from pav.train.run import run

REPO = Path(__file__).resolve().parents[2]
QUICK = dict(rigid_steps=20, identity_steps=40, sequence_steps=40, photo_size=32, photo_batch=4, photo_steps=2,
             keyframes=4)


@pytest.fixture(scope="module")
def small_truth(tmp_path_factory):
    root = tmp_path_factory.mktemp("small") / "collection"
    generate(SyntheticConfig(out=str(root), appearances=2, frames=6, size=64, seed=1, workers=1, cross=False))
    return root


def test_track_then_train_three_steps(small_truth, tmp_path, capsys):
    root = strip_truth(small_truth, tmp_path / "collection")
    summary = track(TrackConfig(collection=str(root), device="cpu", **QUICK))
    assert set(summary) == {"short_dark", "long_auburn"}
    collection = Collection.open(root)
    assert collection.shape.shape == (100,)
    for app in collection:
        assert app.flame.expr.shape == (6, 50) and np.isfinite(app.flame.rotations).all()
        video = root / "tracking" / f"{app.name}.mp4"
        reader = imageio_ffmpeg.read_frames(str(video))
        meta = next(reader)
        assert sum(1 for _ in reader) == 6 and tuple(meta["size"]) == (64, 64)  # one overlay frame per frame

    # a second run resumes every appearance instead of fitting again, whichever device it picks
    capsys.readouterr()
    track(TrackConfig(collection=str(root), device="auto", **QUICK))
    out = capsys.readouterr().out
    assert "identity: resumed" in out and out.count("resumed from") == 3

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["trainer=smoke", "data=vidcol", f"data.root={root}",
                                          "trainer.max_steps=3", "trainer.val_check_interval=3",
                                          "checkpoint_every=3"])
    run(typed_config(cfg), tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_missing_landmarks_name_the_file(small_truth, tmp_path):
    root = strip_truth(small_truth, tmp_path / "collection")
    (root / "long_auburn" / "landmarks.npz").unlink()
    with pytest.raises(TrackingInputError, match=r"long_auburn/landmarks\.npz: missing"):
        track(TrackConfig(collection=str(root), **QUICK))


def test_untracked_collection_is_refused_by_training(small_truth, tmp_path):
    root = strip_truth(small_truth, tmp_path / "collection")
    cmd = [sys.executable, str(REPO / "train.py"), "trainer=smoke", "data=vidcol", f"data.root={root}",
           f"hydra.run.dir={tmp_path / 'run'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode != 0
    assert "flame.npz" in out.stdout + out.stderr and "missing" in out.stdout + out.stderr


def test_cli_refuses_a_mistyped_key(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pav.track", f"collection={tmp_path}", "keyframe=3"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "keyframe" in out.stdout + out.stderr
